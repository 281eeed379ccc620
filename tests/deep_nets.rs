//! VGG and ResNet (issue 32) in f64: the paper's VGG11 and ResNet8 have the stated shapes,
//! parameter counts and PyTorch names; a tiny VGG-shaped and a tiny ResNet-shaped net (a strided
//! 3×3 conv, a 1×1 stride-2 projection shortcut, an identity residual, global average pooling)
//! give a gradient equal to central differences of the loss, and HVP columns that form a
//! symmetric matrix equal to central differences of the gradient (the dense Hessian); in WGSL
//! the tiny nets, ResNet8 and vgg11-narrow match CPU f64.

mod common;
use common::*;
use subspace_lab::backend::{LossKind, prelude::*};
use subspace_lab::data::dataset::Dataset;
use subspace_lab::mem::Cache;
use subspace_lab::nn::engine::Engine;
use subspace_lab::nn::model::ModelSpec;
use subspace_lab::nn::resnet::{Norm, ResNetSpec};
use subspace_lab::nn::vgg::VggSpec;

#[test]
fn vgg11_has_the_papers_shape_count_and_pytorch_names() {
    let spec = VggSpec::vgg11();
    let g = spec.graph();
    assert_eq!(g.num_params(), 9_750_922);
    let names: Vec<(&str, Vec<usize>)> = g
        .params
        .iter()
        .map(|t| (t.name.as_str(), t.shape.clone()))
        .collect();
    assert_eq!(names[0], ("features.0.weight", vec![64, 3, 3, 3]));
    assert_eq!(names[1], ("features.0.bias", vec![64]));
    let convs: Vec<&str> = names
        .iter()
        .filter(|(n, s)| n.starts_with("features.") && s.len() == 4)
        .map(|(n, _)| *n)
        .collect();
    let want: Vec<String> = [0, 3, 6, 8, 11, 13, 16, 18]
        .iter()
        .map(|i| format!("features.{i}.weight"))
        .collect();
    assert_eq!(convs, want);
    let tail = &names[names.len() - 6..];
    assert_eq!(tail[0], ("classifier.0.weight", vec![512, 512]));
    assert_eq!(tail[2], ("classifier.2.weight", vec![512, 512]));
    assert_eq!(tail[4], ("classifier.4.weight", vec![10, 512]));
    assert_eq!(g.output(), 10);
    // Cohen's init: conv biases 0, conv weights of std √(2/(9·64)) in the first layer.
    let theta = ModelSpec::Vgg(spec).init(0);
    let w0 = &theta[..64 * 27];
    let sd = (w0.iter().map(|x| x * x).sum::<f64>() / w0.len() as f64).sqrt();
    assert!((sd / (2.0 / 576.0f64).sqrt() - 1.0).abs() < 0.1, "std {sd}");
    assert!(theta[64 * 27..64 * 28].iter().all(|&b| b == 0.0));
    // The quick presets' stand-in: every op of VGG11 at 1/8 of its widths.
    let narrow = VggSpec::vgg11_narrow();
    assert_eq!(
        (narrow.name(), narrow.graph().num_params()),
        ("vgg11-narrow", 153_530)
    );
}

#[test]
fn resnet8_has_the_stated_count_and_pytorch_names() {
    let g = ResNetSpec::resnet8().graph();
    assert_eq!(g.num_params(), 77_706);
    let names: Vec<&str> = g.params.iter().map(|t| t.name.as_str()).collect();
    for n in [
        "conv1.weight",
        "layer1.0.conv2.bias",
        "layer2.0.conv1.weight",
        "layer2.0.shortcut.0.weight",
        "layer3.0.shortcut.0.bias",
        "linear.weight",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(!names.contains(&"layer1.0.shortcut.0.weight"));
    let sc = g
        .params
        .iter()
        .find(|t| t.name == "layer3.0.shortcut.0.weight")
        .map(|t| t.shape.clone());
    assert_eq!(sc, Some(vec![64, 32, 1, 1]));
    assert_eq!(g.output(), 10);
    assert!(Norm::parse("batch").is_err() && Norm::parse("none").is_ok());
}

fn tiny_vgg() -> ModelSpec {
    VggSpec::new([2, 4, 4], vec![3, 0, 2, 0], vec![4], 3)
        .unwrap()
        .into()
}

fn tiny_resnet() -> ModelSpec {
    ResNetSpec::new([2, 4, 4], vec![2, 3], Norm::None, 3)
        .unwrap()
        .into()
}

fn hvp_host(e: &mut Engine<F64>, v: &[f64]) -> Vec<f64> {
    let b = e.backend().clone();
    let vb = b.upload(v).unwrap();
    let mut out = b.zeros(v.len()).unwrap();
    e.hvp(&vb, 0, &mut out, 0).unwrap();
    b.download(&out).unwrap()
}

/// Gradient against differences of the loss; HVP columns symmetric and equal to differences of
/// the gradient (f64, ≤ 1e-6 relative).
fn check_dense_hessian(name: &str, spec: &ModelSpec, loss: LossKind, chunk: usize) {
    let theta: Vec<f64> = spec.init(3).iter().map(|x| 2.0 * x).collect();
    let data = Dataset::synthetic(5, spec.input_dim(), 3, 9).unwrap();
    let p = spec.num_params();
    let mut e = Engine::new(F64::new(), spec, loss, &data, chunk).unwrap();
    e.set_params_host(&theta).unwrap();
    let g = e.backend().download(e.grad().unwrap()).unwrap();
    let h = 1e-6;
    let (mut fd_g, mut dense_fd) = (vec![0.0; p], vec![0.0; p * p]);
    for i in 0..p {
        let mut at = |d: f64| {
            let mut t = theta.clone();
            t[i] += d;
            let ev = e.set_params_host(&t).unwrap();
            (ev.loss, e.backend().download(e.grad().unwrap()).unwrap())
        };
        let ((lp, gp), (lm, gm)) = (at(h), at(-h));
        fd_g[i] = (lp - lm) / (2.0 * h);
        for j in 0..p {
            dense_fd[j * p + i] = (gp[j] - gm[j]) / (2.0 * h);
        }
    }
    let e_g = rel_err(&g, &fd_g);
    assert!(
        e_g < 1e-6,
        "{name} {loss:?}: gradient vs differences {e_g:e}"
    );
    e.set_params_host(&theta).unwrap();
    let mut dense = vec![0.0; p * p];
    for i in 0..p {
        let mut ei = vec![0.0; p];
        ei[i] = 1.0;
        for (j, c) in hvp_host(&mut e, &ei).into_iter().enumerate() {
            dense[j * p + i] = c;
        }
    }
    let scale = dense.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let asym = (0..p * p)
        .map(|k| (dense[k] - dense[(k % p) * p + k / p]).abs())
        .fold(0.0, f64::max);
    assert!(
        scale > 0.0 && asym <= 1e-12 * scale,
        "{name} {loss:?}: HVP columns not symmetric ({asym:e} of {scale:e})"
    );
    let e_h = rel_err(&dense, &dense_fd);
    assert!(
        e_h < 1e-6,
        "{name} {loss:?}: dense Hessian vs differences {e_h:e}"
    );
}

#[test]
fn tiny_vgg_gradient_and_dense_hessian_match_differences() {
    for loss in [LossKind::Mse, LossKind::Ce] {
        check_dense_hessian("tiny vgg", &tiny_vgg(), loss, 0);
    }
}

#[test]
fn tiny_resnet_gradient_and_dense_hessian_match_differences() {
    for loss in [LossKind::Mse, LossKind::Ce] {
        check_dense_hessian("tiny resnet", &tiny_resnet(), loss, 0);
    }
    // Chunks of 2 samples: the shortcut's passes at a chunk's offset.
    check_dense_hessian("tiny resnet, chunks of 2", &tiny_resnet(), LossKind::Mse, 2);
}

/// Loss, gradient and H·v of `spec` at θ on `data` on backend `b` (chunk 0: the backend's;
/// `cache` the engine's layout).
fn loss_grad_hvp<B: Backend + Clone>(
    b: B,
    spec: &ModelSpec,
    at: (&[f64], &Dataset, &[f64]),
    loss: LossKind,
    (chunk, cache): (usize, Cache),
) -> (f64, Vec<f64>, Vec<f64>) {
    let (theta, data, v) = at;
    let mut e = Engine::with_cache(b.clone(), spec, loss, data, chunk, cache).unwrap();
    let l = e.set_params_host(theta).unwrap().loss;
    let g = b.download(e.grad().unwrap()).unwrap();
    let vb = b.upload(v).unwrap();
    let mut out = b.zeros(v.len()).unwrap();
    e.hvp(&vb, 0, &mut out, 0).unwrap();
    (l, g, b.download(&out).unwrap())
}

gpu_test!(vgg_and_resnet_on_a_gpu_match_cpu);
/// The whole networks in WGSL (strided and 1×1 convolutions on the general im2col kernels, the
/// projection shortcut, global average pooling) against CPU f64: the tiny nets (as cached and per
/// chunk of 2 samples, the shortcut at a chunk's offset) and ResNet8 and vgg11-narrow at their
/// full sizes on 3 images. Loss ≤ 1e-5, gradient and H·v ≤ 2e-5 relative (2-norm) — the f32
/// CPU's errors are printed beside the GPU's.
fn vgg_and_resnet_on_a_gpu_match_cpu(g: GpuBackend) {
    let resnet8: ModelSpec = ResNetSpec::resnet8().into();
    let narrow: ModelSpec = VggSpec::vgg11_narrow().into();
    let cases = [
        ("tiny vgg", tiny_vgg(), 5, LossKind::Mse, (0, Cache::Auto)),
        (
            "tiny resnet",
            tiny_resnet(),
            5,
            LossKind::Mse,
            (0, Cache::Auto),
        ),
        (
            "tiny resnet, chunks of 2",
            tiny_resnet(),
            5,
            LossKind::Ce,
            (2, Cache::PerChunk),
        ),
        ("resnet8", resnet8, 3, LossKind::Ce, (0, Cache::Auto)),
        ("vgg11-narrow", narrow, 3, LossKind::Mse, (0, Cache::Auto)),
    ];
    for (name, spec, n, loss, layout) in cases {
        let theta = spec.init(5);
        let classes = spec.graph().output();
        let data = Dataset::synthetic(n, spec.input_dim(), classes, 9).unwrap();
        let v = subspace_lab::hessian::lanczos::random_vector(spec.num_params(), 4);
        let at = (&theta[..], &data, &v[..]);
        let (l64, g64, h64) = loss_grad_hvp(F64::new(), &spec, at, loss, layout);
        let (l32, g32, h32) = loss_grad_hvp(F32::new(), &spec, at, loss, layout);
        let (lw, gw, hw) = loss_grad_hvp(g.clone(), &spec, at, loss, layout);
        let (e_l, e_g, e_h) = (
            (lw - l64).abs() / l64.abs(),
            rel_err(&gw, &g64),
            rel_err(&hw, &h64),
        );
        eprintln!(
            "{name}: GPU vs f64 loss {e_l:.1e} gradient {e_g:.1e} HVP {e_h:.1e}; CPU f32 vs f64 loss {:.1e} gradient {:.1e} HVP {:.1e}",
            (l32 - l64).abs() / l64.abs(),
            rel_err(&g32, &g64),
            rel_err(&h32, &h64)
        );
        assert!(e_l < 1e-5, "{name}: loss {e_l:e}");
        assert!(e_g < 2e-5, "{name}: gradient {e_g:e}");
        assert!(e_h < 2e-5, "{name}: HVP {e_h:e}");
    }
}
