//! Every op of the engine alone, on every backend: the JVP (R-forward) against central finite
//! differences of the forward pass, the VJP against the JVP by the adjoint identity
//! ⟨J·(rx, v), gy⟩ = ⟨rx, Jₓᵀgy⟩ + ⟨v, J_θᵀgy⟩, and the R-backward against central differences of
//! the VJP, all in f64 (≤ 1e-6 relative); then CPU f32 and WGSL (lavapipe in CI) against CPU f64
//! pass by pass (≤ 2e-5 relative, 2-norm: f32 kernels). Then a tiny CNN whole: gradient and HVP
//! against differences, its dense Hessian (HVP columns) symmetric and equal to differences of the
//! gradient, and the cached and per-chunk layouts equal.

mod common;
use common::*;
use subspace_lab::backend::{Activation, LossKind, prelude::*};
use subspace_lab::backend::{ConvGeom, TokenIndex};
use subspace_lab::data::dataset::Dataset;
use subspace_lab::hessian::lanczos::random_vector;
use subspace_lab::nn::cnn::CnnSpec;
use subspace_lab::nn::engine::{Cache, Engine};
use subspace_lab::nn::graph::Op;
use subspace_lab::nn::model::ModelSpec;
use subspace_lab::nn::ops::{
    Act, Attention, Conv3x3, Embed, Flatten, GlobalAvgPool, Input, LayerNorm, Linear, MaxPool2,
    MeanPool, OpRule, Pass, Ten, TenMut,
};

/// Outputs of the four passes (host copies). `gth`/`hv` are empty for ops without parameters.
#[derive(Debug, Clone)]
struct Passes {
    y: Vec<f64>,
    gth: Vec<f64>,
    gx: Vec<f64>,
    ry: Vec<f64>,
    hv: Vec<f64>,
    rgx: Vec<f64>,
}

/// The inputs of the passes: x, θ, the direction (rx, v), gy and R{gy}; token ids for the ops
/// that read them (an embedding's x is its ids, and its rx is 0).
#[derive(Clone)]
struct Args {
    ids: Vec<f64>,
    x: Vec<f64>,
    th: Vec<f64>,
    rx: Vec<f64>,
    v: Vec<f64>,
    gy: Vec<f64>,
    rgy: Vec<f64>,
}

fn params(op: &Op) -> usize {
    op.layer().shape().params
}

/// Token ids of `rows` sequences of `seq` positions: row r ends in r mod seq padding positions
/// (never all padding), the rest ids in 1..vocab.
fn token_ids(rows: usize, seq: usize, vocab: usize) -> Vec<f64> {
    let mut ids = Vec::new();
    for r in 0..rows {
        let pad = r % seq;
        for t in 0..seq {
            ids.push(if t + pad >= seq && t > 0 {
                0.0
            } else {
                (1 + (r * 7 + t * 3) % (vocab - 1)) as f64
            });
        }
    }
    ids
}

fn run<B: Backend>(be: &B, op: &Op, rows: usize, a: &Args) -> Passes {
    let up = |v: &[f64]| be.upload(v).unwrap();
    let z = |n: usize| be.zeros(n).unwrap();
    let idb = up(&a.ids);
    let (xb, thb, rxb, vb, gyb, rgyb) = (
        up(&a.x),
        up(&a.th),
        up(&a.rx),
        up(&a.v),
        up(&a.gy),
        up(&a.rgy),
    );
    let (wx, wy, p) = (op.in_width() * rows, op.out_width() * rows, params(op));
    let (mut y, mut gth, mut gx, mut ry, mut hv, mut rgx) =
        (z(wy), z(p), z(wx), z(wy), z(p), z(wx));
    let mut col = z(op.scratch_width() * rows);
    let mut aux = z(op.aux_width() * rows);
    // An embedding's gradient gathers over the token index of its input ids.
    let index = match op {
        Op::Embed(e) => {
            let ti = TokenIndex::new(&a.x, e.vocab);
            Some((up(&ti.start), up(&ti.order)))
        }
        _ => None,
    };
    let index = index.as_ref().map(|(s, o)| (s, o));
    let x = Some(Input::Buf(Ten::<B>(&xb, 0)));
    let ids = Some(Ten::<B>(&idb, 0));
    let (v, gy, rgy, rx) = (
        Some(Ten::<B>(&vb, 0)),
        Some(Ten::<B>(&gyb, 0)),
        Some(Ten::<B>(&rgyb, 0)),
        Some(Ten::<B>(&rxb, 0)),
    );
    let rule = op.rule::<B>();
    rule.forward(Pass {
        x,
        ids,
        y_out: Some(TenMut(&mut y, 0)),
        aux_out: Some(TenMut(&mut aux, 0)),
        scratch: Some(&mut col),
        ..Pass::new(be, rows, &thb)
    })
    .unwrap();
    let (yt, auxt) = (Some(Ten::<B>(&y, 0)), Some(Ten::<B>(&aux, 0)));
    rule.vjp(Pass {
        x,
        y: yt,
        gy,
        aux: auxt,
        ids,
        index,
        grad: Some(TenMut(&mut gth, 0)),
        gx: Some(TenMut(&mut gx, 0)),
        scratch: Some(&mut col),
        ..Pass::new(be, rows, &thb)
    })
    .unwrap();
    rule.jvp(Pass {
        x,
        y: yt,
        rx,
        v,
        aux: auxt,
        ids,
        ry: Some(TenMut(&mut ry, 0)),
        scratch: Some(&mut col),
        ..Pass::new(be, rows, &thb)
    })
    .unwrap();
    rule.r_vjp(Pass {
        x,
        y: yt,
        rx,
        v,
        gy,
        rgy,
        aux: auxt,
        ids,
        index,
        hv: Some(TenMut(&mut hv, 0)),
        rgx: Some(TenMut(&mut rgx, 0)),
        scratch: Some(&mut col),
        ..Pass::new(be, rows, &thb)
    })
    .unwrap();
    let d = |b: &B::Buf| be.download(b).unwrap();
    Passes {
        y: d(&y),
        gth: d(&gth),
        gx: d(&gx),
        ry: d(&ry),
        hv: d(&hv),
        rgx: d(&rgx),
    }
}

fn args(op: &Op, rows: usize, seed: u64) -> Args {
    let r = |n: usize, s: u64| {
        random_vector(n, seed * 10 + s)
            .iter()
            .map(|x| x * 3.0)
            .collect::<Vec<_>>()
    };
    let (wx, wy, p) = (op.in_width() * rows, op.out_width() * rows, params(op));
    let seq = match op {
        Op::Attention(a) => a.seq,
        Op::MeanPool(m) => m.seq,
        _ => 1,
    };
    let mut a = Args {
        ids: token_ids(rows, seq, 5),
        x: r(wx, 1),
        th: r(p, 2),
        rx: r(wx, 3),
        v: r(p, 4),
        gy: r(wy, 5),
        rgy: r(wy, 6),
    };
    if let Op::Embed(e) = op {
        // Ids from the whole vocabulary except its last word (a row without gradient).
        a.x = (0..wx)
            .map(|i| ((i * 5 + 2) % (e.vocab - 1)) as f64)
            .collect();
        a.rx = vec![0.0; wx];
    }
    a
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn shifted(a: &Args, h: f64) -> Args {
    let add = |x: &[f64], d: &[f64]| x.iter().zip(d).map(|(p, q)| p + h * q).collect::<Vec<_>>();
    Args {
        x: add(&a.x, &a.rx),
        th: add(&a.th, &a.v),
        gy: add(&a.gy, &a.rgy),
        ..a.clone()
    }
}

fn fd(plus: &[f64], minus: &[f64], h: f64) -> Vec<f64> {
    plus.iter()
        .zip(minus)
        .map(|(p, m)| (p - m) / (2.0 * h))
        .collect()
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    rel_err(a, b)
}

/// The four passes in f64 against finite differences and the adjoint identity.
fn check_f64(name: &str, op: &Op, rows: usize) {
    let be = F64::new();
    let a = args(op, rows, 7);
    let p = run(&be, op, rows, &a);
    let h = 1e-6;
    let (pp, pm) = (
        run(&be, op, rows, &shifted(&a, h)),
        run(&be, op, rows, &shifted(&a, -h)),
    );
    let e_jvp = rel(&p.ry, &fd(&pp.y, &pm.y, h));
    assert!(e_jvp < 1e-6, "{name}: JVP vs differences {e_jvp:e}");
    let lhs = dot(&p.ry, &a.gy);
    let rhs = dot(&a.rx, &p.gx) + dot(&a.v, &p.gth);
    assert!(
        (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(rhs.abs()).max(1.0),
        "{name}: adjoint {lhs} vs {rhs}"
    );
    let e_hv = rel(&p.hv, &fd(&pp.gth, &pm.gth, h));
    let e_rgx = rel(&p.rgx, &fd(&pp.gx, &pm.gx, h));
    assert!(
        e_hv < 1e-6 && e_rgx < 1e-6,
        "{name}: R-backward vs differences of the VJP: θ {e_hv:e}, x {e_rgx:e}"
    );
    assert!(
        p.ry.iter().any(|v| *v != 0.0)
            && (p.rgx.iter().any(|v| *v != 0.0) || matches!(op, Op::Embed(_))),
        "{name}: trivial test"
    );
}

/// Another backend's passes against CPU f64.
fn check_parity<B: Backend>(be: &B, name: &str, op: &Op, rows: usize) {
    let a = args(op, rows, 11);
    let want = run(&F64::new(), op, rows, &a);
    let got = run(be, op, rows, &a);
    for (what, g, w) in [
        ("forward", &got.y, &want.y),
        ("vjp θ", &got.gth, &want.gth),
        ("vjp x", &got.gx, &want.gx),
        ("jvp", &got.ry, &want.ry),
        ("r-vjp θ", &got.hv, &want.hv),
        ("r-vjp x", &got.rgx, &want.rgx),
    ] {
        let e = rel(g, w);
        assert!(
            e < 2e-5,
            "{name} on {}: {what} differs from CPU f64 by {e:e}",
            be.name()
        );
    }
}

fn all_ops() -> Vec<(&'static str, Op, usize)> {
    let lin = Linear {
        fan_in: 5,
        fan_out: 4,
        w_off: 0,
        b_off: 20,
        seq: 1,
    };
    let conv = Conv3x3 {
        cin: 2,
        cout: 3,
        h: 4,
        w: 6,
        w_off: 0,
        b_off: 54,
        geom: ConvGeom::SAME_3X3,
    };
    vec![
        ("linear", Op::Linear(lin), 3),
        ("conv3x3", Op::Conv3x3(conv), 2),
        (
            "conv3x3 1×1 image",
            Op::Conv3x3(Conv3x3 {
                cin: 3,
                cout: 2,
                h: 1,
                w: 1,
                w_off: 0,
                b_off: 54,
                geom: ConvGeom::SAME_3X3,
            }),
            3,
        ),
        (
            "tanh",
            Op::Act(Act {
                act: Activation::Tanh,
                width: 7,
            }),
            3,
        ),
        (
            "relu",
            Op::Act(Act {
                act: Activation::Relu,
                width: 7,
            }),
            3,
        ),
        (
            "silu",
            Op::Act(Act {
                act: Activation::Silu,
                width: 7,
            }),
            3,
        ),
        (
            "gelu",
            Op::Act(Act {
                act: Activation::Gelu,
                width: 7,
            }),
            3,
        ),
        ("maxpool2", Op::MaxPool2(MaxPool2 { h: 4, w: 6, c: 3 }), 2),
        ("flatten", Op::Flatten(Flatten { hw: 6, c: 3 }), 2),
        (
            "linear over a sequence",
            Op::Linear(Linear {
                fan_in: 3,
                fan_out: 4,
                w_off: 0,
                b_off: 12,
                seq: 3,
            }),
            2,
        ),
        (
            "layer_norm",
            Op::LayerNorm(LayerNorm {
                seq: 3,
                width: 5,
                eps: 1e-6,
                g_off: 0,
                b_off: 5,
            }),
            2,
        ),
        (
            "attention, padding masked",
            Op::Attention(Attention {
                seq: 4,
                heads: 2,
                head_dim: 3,
                masked: true,
            }),
            3,
        ),
        (
            "attention, no mask",
            Op::Attention(Attention {
                seq: 4,
                heads: 2,
                head_dim: 3,
                masked: false,
            }),
            2,
        ),
        (
            "mean over positions, padding masked",
            Op::MeanPool(MeanPool {
                seq: 4,
                width: 3,
                masked: true,
            }),
            3,
        ),
        (
            "mean over positions, no mask",
            Op::MeanPool(MeanPool {
                seq: 4,
                width: 3,
                masked: false,
            }),
            2,
        ),
        (
            "global average pool",
            Op::GlobalAvgPool(GlobalAvgPool { hw: 6, c: 3 }),
            2,
        ),
        (
            "embedding",
            Op::Embed(Embed {
                vocab: 6,
                seq: 4,
                width: 3,
                tok_off: 0,
                pos_off: 18,
            }),
            3,
        ),
    ]
}

/// Convolutions of other geometries, with bias (ResNet8's strided 3×3 and its 1×1 stride-2
/// projection, odd sizes and padding 0 included): in f64 and f32 here, and in WGSL through
/// `every_conv_geometry_in_wgsl_matches_cpu_f64`.
fn cpu_only_ops() -> Vec<(&'static str, Op, usize)> {
    let conv = |cin, cout, (h, w), geom| {
        Op::Conv3x3(Conv3x3 {
            cin,
            cout,
            h,
            w,
            w_off: 0,
            b_off: cout * cin * ConvGeom::taps(&geom),
            geom,
        })
    };
    let g = |kernel, stride, pad| ConvGeom {
        kernel,
        stride,
        pad,
    };
    vec![
        ("conv 3×3 stride 2 pad 1", conv(2, 3, (4, 6), g(3, 2, 1)), 2),
        ("conv 1×1 stride 2 pad 0", conv(3, 2, (4, 6), g(1, 2, 0)), 2),
        (
            "conv 3×3 stride 2 pad 1, odd",
            conv(2, 2, (5, 3), g(3, 2, 1)),
            2,
        ),
        ("conv 3×3 stride 1 pad 0", conv(2, 3, (4, 5), g(3, 1, 0)), 2),
        ("conv 1×1 stride 1 pad 0", conv(3, 2, (3, 3), g(1, 1, 0)), 3),
    ]
}

#[test]
fn every_op_matches_finite_differences_and_the_adjoint_identity_in_f64() {
    for (name, op, rows) in all_ops().into_iter().chain(cpu_only_ops()) {
        check_f64(name, &op, rows);
    }
}

#[test]
fn every_op_on_cpu_f32_matches_f64() {
    for (name, op, rows) in all_ops().into_iter().chain(cpu_only_ops()) {
        check_parity(&F32::new(), name, &op, rows);
    }
}

gpu_test!(every_op_in_wgsl_matches_cpu_f64);
fn every_op_in_wgsl_matches_cpu_f64(g: GpuBackend) {
    for (name, op, rows) in all_ops() {
        check_parity(&g, name, &op, rows);
    }
}

gpu_test!(every_conv_geometry_in_wgsl_matches_cpu_f64);
/// The convolutions of [`cpu_only_ops`] (the general im2col/col2im entry points) in WGSL.
fn every_conv_geometry_in_wgsl_matches_cpu_f64(g: GpuBackend) {
    let convs = cpu_only_ops()
        .into_iter()
        .filter(|(_, op, _)| matches!(op, Op::Conv3x3(_)));
    for (name, op, rows) in convs {
        check_parity(&g, name, &op, rows);
    }
}

/// The pool's forward pass on one sample: y and the arg-max `idx`.
fn pool_forward<B: Backend>(op: &MaxPool2, be: &B, x: &B::Buf, y: &mut B::Buf, idx: &mut B::Buf) {
    op.forward(Pass {
        x: Some(Input::Buf(Ten(x, 0))),
        y_out: Some(TenMut(y, 0)),
        aux_out: Some(TenMut(idx, 0)),
        ..Pass::new(be, 1, x)
    })
    .unwrap();
}

#[test]
fn maxpool_routes_ties_to_the_first_maximum_like_pytorch() {
    // One 2×2 window per channel: channel 0 all equal, channel 1 max at (1, 0) and (1, 1).
    let op = MaxPool2 { h: 2, w: 2, c: 2 };
    let x = [1.0, 0.0, 1.0, 0.0, 1.0, 5.0, 1.0, 5.0]; // NHWC: (y, x, c)
    let check = |be: &dyn Fn(&[f64]) -> Vec<f64>| {
        let idx = be(&x);
        assert_eq!(idx, vec![0.0, 2.0], "arg-max window positions");
    };
    let cpu = F64::new();
    check(&|x: &[f64]| {
        let xb = cpu.upload(x).unwrap();
        let (mut y, mut i) = (cpu.zeros(2).unwrap(), cpu.zeros(2).unwrap());
        pool_forward(&op, &cpu, &xb, &mut y, &mut i);
        i
    });
    if let Some(g) = gpu() {
        check(&|x: &[f64]| {
            let xb = g.upload(x).unwrap();
            let (mut y, mut i) = (g.zeros(2).unwrap(), g.zeros(2).unwrap());
            pool_forward(&op, &g, &xb, &mut y, &mut i);
            g.download(&i).unwrap()
        });
    }
}

fn tiny_cnn(act: Activation) -> (ModelSpec, Vec<f64>, Dataset) {
    let spec: ModelSpec = CnnSpec::new([2, 4, 4], vec![3, 2], act, 3).unwrap().into();
    let theta: Vec<f64> = spec.init(3).iter().map(|x| 2.0 * x).collect();
    let data = Dataset::synthetic(5, 32, 3, 9).unwrap();
    (spec, theta, data)
}

fn cnn_engine<B: Backend + Clone>(
    b: B,
    spec: &ModelSpec,
    data: &Dataset,
    theta: &[f64],
    loss: LossKind,
    chunk: usize,
    cache: Cache,
) -> Engine<B> {
    let mut e = Engine::with_cache(b, spec, loss, data, chunk, cache).unwrap();
    e.set_params_host(theta).unwrap();
    e
}

fn hvp_host<B: Backend + Clone>(e: &mut Engine<B>, v: &[f64]) -> Vec<f64> {
    let b = e.backend().clone();
    let vb = b.upload(v).unwrap();
    let mut out = b.zeros(v.len()).unwrap();
    e.hvp(&vb, 0, &mut out, 0).unwrap();
    b.download(&out).unwrap()
}

#[test]
fn tiny_cnn_gradient_hvp_and_dense_hessian_match_differences() {
    for act in [Activation::Relu, Activation::Tanh] {
        for loss in [LossKind::Mse, LossKind::Ce] {
            let (spec, theta, data) = tiny_cnn(act);
            let p = spec.num_params();
            // conv 2→3, conv 3→2, then 4×4 pooled twice is 1×1×2 → 3.
            assert_eq!(p, (2 * 3 * 9 + 3) + (3 * 2 * 9 + 2) + (2 * 3 + 3));
            let mut e = cnn_engine(F64::new(), &spec, &data, &theta, loss, 0, Cache::Auto);
            let g = e.backend().download(e.grad().unwrap()).unwrap();
            let h = 1e-6;
            let mut at = |th: &[f64]| {
                let ev = e.set_params_host(th).unwrap();
                (ev.loss, e.backend().download(e.grad().unwrap()).unwrap())
            };
            let mut fd_g = vec![0.0; p];
            let mut dense_fd = vec![0.0; p * p];
            for i in 0..p {
                let mut tp = theta.clone();
                tp[i] += h;
                let (lp, gp) = at(&tp);
                tp[i] -= 2.0 * h;
                let (lm, gm) = at(&tp);
                fd_g[i] = (lp - lm) / (2.0 * h);
                for j in 0..p {
                    dense_fd[j * p + i] = (gp[j] - gm[j]) / (2.0 * h);
                }
            }
            assert!(
                rel_err(&g, &fd_g) < 1e-6,
                "{act:?} {loss:?} gradient {:e}",
                rel_err(&g, &fd_g)
            );
            e.set_params_host(&theta).unwrap();
            let mut dense = vec![0.0; p * p];
            for i in 0..p {
                let mut ei = vec![0.0; p];
                ei[i] = 1.0;
                let col = hvp_host(&mut e, &ei);
                for j in 0..p {
                    dense[j * p + i] = col[j];
                }
            }
            let asym = (0..p)
                .flat_map(|i| (0..p).map(move |j| (i, j)))
                .map(|(i, j)| (dense[i * p + j] - dense[j * p + i]).abs())
                .fold(0.0, f64::max);
            let scale = dense.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(
                asym <= 1e-12 * scale,
                "{act:?} {loss:?}: HVP columns not symmetric ({asym:e})"
            );
            let e_h = rel_err(&dense, &dense_fd);
            assert!(
                e_h < 1e-6,
                "{act:?} {loss:?}: dense Hessian vs differences of the gradient {e_h:e}"
            );
        }
    }
}

#[test]
fn cached_and_per_chunk_layouts_agree() {
    let (spec, theta, data) = tiny_cnn(Activation::Relu);
    let v = random_vector(spec.num_params(), 5);
    let mut a = cnn_engine(
        F64::new(),
        &spec,
        &data,
        &theta,
        LossKind::Mse,
        0,
        Cache::All,
    );
    let mut b = cnn_engine(
        F64::new(),
        &spec,
        &data,
        &theta,
        LossKind::Mse,
        2,
        Cache::PerChunk,
    );
    let mut c = cnn_engine(
        F64::new(),
        &spec,
        &data,
        &theta,
        LossKind::Mse,
        1,
        Cache::All,
    );
    assert!(a.plan().cached && !b.plan().cached);
    let (ha, hb, hc) = (
        hvp_host(&mut a, &v),
        hvp_host(&mut b, &v),
        hvp_host(&mut c, &v),
    );
    assert!(rel_err(&hb, &ha) < 1e-13 && rel_err(&hc, &ha) < 1e-13);
    assert!((a.eval().unwrap().loss - c.eval().unwrap().loss).abs() < 1e-15);
    assert!((a.eval().unwrap().loss - b.eval().unwrap().loss).abs() < 1e-15);
}

gpu_test!(tiny_cnn_in_wgsl_matches_cpu_f64);
fn tiny_cnn_in_wgsl_matches_cpu_f64(g: GpuBackend) {
    let (spec, theta, data) = tiny_cnn(Activation::Relu);
    let v = random_vector(spec.num_params(), 8);
    let mut c = cnn_engine(
        F64::new(),
        &spec,
        &data,
        &theta,
        LossKind::Mse,
        0,
        Cache::Auto,
    );
    let mut w = cnn_engine(
        g.clone(),
        &spec,
        &data,
        &theta,
        LossKind::Mse,
        0,
        Cache::Auto,
    );
    let (lc, lw) = (c.eval().unwrap().loss, w.eval().unwrap().loss);
    assert!((lc - lw).abs() <= 1e-5 * lc.abs());
    let gc = c.backend().download(c.grad().unwrap()).unwrap();
    let gw = g.download(w.grad().unwrap()).unwrap();
    assert!(rel_err(&gw, &gc) < 1e-5, "gradient {:e}", rel_err(&gw, &gc));
    let (hc, hw) = (hvp_host(&mut c, &v), hvp_host(&mut w, &v));
    assert!(rel_err(&hw, &hc) < 1e-5, "HVP {:e}", rel_err(&hw, &hc));
}

#[test]
fn cnn_relu_has_the_papers_shape_and_pytorch_names() {
    let spec = ModelSpec::cnn_relu();
    assert_eq!(spec.num_params(), 30_634);
    let g = spec.graph();
    let names: Vec<(String, Vec<usize>)> = g
        .params
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("0.weight".to_string(), vec![32, 3, 3, 3]),
            ("0.bias".to_string(), vec![32]),
            ("3.weight".to_string(), vec![32, 32, 3, 3]),
            ("3.bias".to_string(), vec![32]),
            ("7.weight".to_string(), vec![10, 2048]),
            ("7.bias".to_string(), vec![10]),
        ]
    );
    // PyTorch's default init bounds: 1/√27, 1/√288, 1/√2048.
    let th = spec.init(0);
    let max = |a: usize, b: usize| th[a..b].iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(max(0, 896) <= 1.0 / 27f64.sqrt() && max(0, 896) > 0.9 / 27f64.sqrt());
    assert!(max(896, 896 + 9248) <= 1.0 / 288f64.sqrt());
    assert!(max(896 + 9248, 30_634) <= 1.0 / 2048f64.sqrt());
    // fc-tanh's init is unchanged by the generic initialiser.
    let m = subspace_lab::nn::mlp::MlpSpec::fc_tanh();
    assert_eq!(ModelSpec::from(m.clone()).init(4), m.init(4));
}

#[test]
fn smooth_activations_in_a_whole_network_match_differences() {
    // A fully connected net with SiLU / GELU (the Transformer's activations), whose ops keep their
    // input: HVP against central differences of the gradient, cached and per-chunk layouts equal,
    // and WGSL against CPU f64.
    for act in [Activation::Silu, Activation::Gelu] {
        let spec: ModelSpec = subspace_lab::nn::mlp::MlpSpec::new(vec![6, 5, 4, 3], act)
            .unwrap()
            .into();
        let theta: Vec<f64> = spec.init(1).iter().map(|x| 2.0 * x).collect();
        let data = Dataset::synthetic(7, 6, 3, 4).unwrap();
        let mut e = cnn_engine(
            F64::new(),
            &spec,
            &data,
            &theta,
            LossKind::Mse,
            0,
            Cache::All,
        );
        let mut q = cnn_engine(
            F64::new(),
            &spec,
            &data,
            &theta,
            LossKind::Mse,
            3,
            Cache::PerChunk,
        );
        let p = spec.num_params();
        let v = random_vector(p, 2);
        let hv = hvp_host(&mut e, &v);
        assert!(rel_err(&hvp_host(&mut q, &v), &hv) < 1e-13);
        let h = 1e-6;
        let mut grad_at = |s: f64| {
            let th: Vec<f64> = theta.iter().zip(&v).map(|(t, d)| t + s * d).collect();
            e.set_params_host(&th).unwrap();
            e.backend().download(e.grad().unwrap()).unwrap()
        };
        let (gp, gm) = (grad_at(h), grad_at(-h));
        let fd: Vec<f64> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        assert!(
            rel_err(&hv, &fd) < 1e-6,
            "{act:?}: HVP vs differences {:e}",
            rel_err(&hv, &fd)
        );
        if let Some(g) = gpu() {
            let mut w = cnn_engine(
                g.clone(),
                &spec,
                &data,
                &theta,
                LossKind::Mse,
                0,
                Cache::Auto,
            );
            let e_w = rel_err(&hvp_host(&mut w, &v), &hv);
            assert!(e_w < 1e-5, "{act:?} on the GPU: HVP {e_w:e}");
        }
    }
}
