//! safetensors in and out with PyTorch's names, and every malformed file as a clear error.

use safetensors::{Dtype, tensor::TensorView};
use std::collections::HashMap;
use std::path::Path;
use subspace_lab::backend::Activation;
use subspace_lab::nn::mlp::MlpSpec;
use subspace_lab::nn::weights::{self, SaveDtype};

fn write(
    path: &Path,
    tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)],
    meta: Option<HashMap<String, String>>,
) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, meta).unwrap()).unwrap();
}

fn f32s(n: usize, v: f32) -> Vec<u8> {
    (0..n).flat_map(|_| v.to_le_bytes()).collect()
}

#[test]
fn round_trip_f32_and_f64() {
    let dir = tempfile::tempdir().unwrap();
    let spec = MlpSpec::new(vec![7, 5, 3], Activation::Relu).unwrap();
    let theta = spec.init(9);
    for (dt, tol) in [(SaveDtype::F64, 0.0), (SaveDtype::F32, 1e-7)] {
        let p = dir.path().join("w.safetensors");
        weights::save(&p, &spec, &theta, dt).unwrap();
        let (s2, t2) = weights::load(&p).unwrap();
        assert_eq!(
            s2,
            spec.clone().into(),
            "activation is kept in the metadata"
        );
        assert!(
            theta
                .iter()
                .zip(&t2)
                .all(|(a, b)| (a - b).abs() <= tol * a.abs().max(1.0))
        );
    }
}

#[test]
fn pytorch_sequential_names_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("seq.safetensors");
    write(
        &p,
        &[
            ("0.weight", Dtype::F32, vec![4, 3], f32s(12, 0.5)),
            ("0.bias", Dtype::F32, vec![4], f32s(4, 0.25)),
            ("2.weight", Dtype::F32, vec![2, 4], f32s(8, -1.0)),
            ("2.bias", Dtype::F32, vec![2], f32s(2, 2.0)),
        ],
        None,
    );
    let (spec, theta) = weights::load(&p).unwrap();
    assert_eq!(spec.as_mlp().unwrap().widths, vec![3, 4, 2]);
    assert_eq!(spec.activation(), Activation::Tanh);
    assert_eq!(theta.len(), 12 + 4 + 8 + 2);
    assert_eq!(
        (theta[0], theta[12], theta[16], theta[24]),
        (0.5, 0.25, -1.0, 2.0)
    );
}

#[test]
fn malformed_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    let case = |tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)], want: &str| {
        write(&p, tensors, None);
        let e = weights::load(&p).unwrap_err().to_string();
        assert!(
            e.contains(want) && e.contains("bad.safetensors"),
            "wanted '{want}' in: {e}"
        );
    };
    let w =
        |n: &'static str, s: Vec<usize>| (n, Dtype::F32, s.clone(), f32s(s.iter().product(), 0.1));
    case(&[w("fc1.weight", vec![4, 3])], "fc1.bias is missing");
    case(
        &[w("fc1.weight", vec![4, 3]), w("fc1.bias", vec![5])],
        "expected [4]",
    );
    case(
        &[w("fc1.weight", vec![4, 3, 1]), w("fc1.bias", vec![4])],
        "expected [out, in]",
    );
    case(
        &[
            w("fc1.weight", vec![4, 3]),
            w("fc1.bias", vec![4]),
            w("fc2.weight", vec![2, 5]),
            w("fc2.bias", vec![2]),
        ],
        "takes 5 inputs",
    );
    case(
        &[
            w("fc1.weight", vec![4, 3]),
            w("fc1.bias", vec![4]),
            w("fc3.weight", vec![2, 4]),
            w("fc3.bias", vec![2]),
        ],
        "without gaps",
    );
    case(
        &[
            w("fc1.weight", vec![4, 3]),
            w("fc1.bias", vec![4]),
            w("conv.kernel", vec![2]),
        ],
        "unexpected tensor",
    );
    case(
        &[
            w("fc1.weight", vec![4, 3]),
            w("fc1.bias", vec![4]),
            w("2.weight", vec![2, 4]),
        ],
        "mixes",
    );
    case(
        &[
            ("fc1.weight", Dtype::F16, vec![4, 3], vec![0; 24]),
            w("fc1.bias", vec![4]),
        ],
        "not supported",
    );
    case(
        &[
            ("fc1.weight", Dtype::F32, vec![1, 1], f32s(1, f32::NAN)),
            w("fc1.bias", vec![1]),
        ],
        "fc1.weight entry 0 (flat, row-major) is NaN (not finite)",
    );
    std::fs::write(&p, b"\xff\xff\xff\xff\xff\xff\xff\x7f garbage").unwrap();
    let e = weights::load(&p).unwrap_err().to_string();
    assert!(e.contains("not a safetensors file"), "{e}");
    write(
        &p,
        &[w("fc1.weight", vec![4, 3]), w("fc1.bias", vec![4])],
        Some(HashMap::from([("activation".into(), "swish".into())])),
    );
    assert!(weights::load(&p).unwrap_err().to_string().contains("swish"));
    let e = weights::load(&dir.path().join("missing.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.safetensors"), "{e}");
}

/// An explicit option wins over a default, and contradicting the file is an error naming both:
/// a ReLU net saved the usual PyTorch way (no metadata) with `--activation relu` is a ReLU net.
#[test]
fn explicit_options_win_over_defaults_and_conflicts_are_errors() {
    use subspace_lab::backend::LossKind;
    use weights::Expect;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("relu.safetensors");
    let plain = [
        ("fc1.weight", Dtype::F32, vec![4, 3], f32s(12, 0.5)),
        ("fc1.bias", Dtype::F32, vec![4], f32s(4, 0.25)),
        ("fc2.weight", Dtype::F32, vec![2, 4], f32s(8, -1.0)),
        ("fc2.bias", Dtype::F32, vec![2], f32s(2, 2.0)),
    ];
    write(&p, &plain, None);
    let relu = Expect {
        activation: Some(Activation::Relu),
        ..Expect::default()
    };
    let (spec, _) = weights::load_expecting(&p, &relu).unwrap();
    assert_eq!(
        spec.activation(),
        Activation::Relu,
        "the explicit option must win"
    );
    assert_eq!(weights::load(&p).unwrap().0.activation(), Activation::Tanh);
    // The file says tanh: an explicit relu is a conflict naming both.
    write(
        &p,
        &plain,
        Some(HashMap::from([("activation".into(), "tanh".into())])),
    );
    let e = weights::load_expecting(&p, &relu).unwrap_err().to_string();
    assert!(
        e.contains("tanh") && e.contains("relu") && e.contains("relu.safetensors"),
        "{e}"
    );
    let tanh = Expect {
        activation: Some(Activation::Tanh),
        ..Expect::default()
    };
    assert!(weights::load_expecting(&p, &tanh).is_ok());
    // Widths from the shapes against --widths.
    let wide = Expect {
        widths: Some(vec![3, 5, 2]),
        ..Expect::default()
    };
    let e = weights::load_expecting(&p, &wide).unwrap_err().to_string();
    assert!(e.contains("[3, 4, 2]") && e.contains("[3, 5, 2]"), "{e}");
    let same = Expect {
        widths: Some(vec![3, 4, 2]),
        ..Expect::default()
    };
    assert!(weights::load_expecting(&p, &same).is_ok());
    // A loss in the metadata against --loss.
    write(
        &p,
        &plain,
        Some(HashMap::from([("loss".into(), "mse".into())])),
    );
    let ce = Expect {
        loss: Some(LossKind::Ce),
        ..Expect::default()
    };
    let e = weights::load_expecting(&p, &ce).unwrap_err().to_string();
    assert!(e.contains("loss = mse") && e.contains("ce"), "{e}");
    // Without --loss, the file's loss decides.
    let (_, _, loss) = weights::load_full(&p, &Expect::default()).unwrap();
    assert_eq!(loss, Some(LossKind::Mse));
    // A model or data set the file names must be ours.
    for (key, value, want) in [
        ("model", "cnn-relu", "model = cnn-relu"),
        ("dataset", "cifar10-5k", "dataset = cifar10-5k"),
    ] {
        write(
            &p,
            &plain,
            Some(HashMap::from([(key.into(), value.into())])),
        );
        let e = weights::load(&p).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    write(
        &p,
        &plain,
        Some(HashMap::from([
            ("model".into(), "fc-tanh".into()),
            ("dataset".into(), "MNIST-5k".into()),
        ])),
    );
    assert!(weights::load(&p).is_ok());
}

/// A kernel stored [in, out] (JAX/Keras) is blamed on the weight, as transposed, not on the bias;
/// a torch.save file (zip or pickle) says what it is and how to convert it.
#[test]
fn transposed_kernels_and_torch_save_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.safetensors");
    let w = |n: &'static str, s: Vec<usize>| {
        let len = s.iter().product();
        (n, Dtype::F32, s, f32s(len, 0.1))
    };
    // First layer transposed: [784, 32] with bias [32].
    write(
        &p,
        &[
            w("fc1.weight", vec![784, 32]),
            w("fc1.bias", vec![32]),
            w("fc2.weight", vec![10, 32]),
            w("fc2.bias", vec![10]),
        ],
        None,
    );
    let e = weights::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("fc1.weight") && e.contains("looks transposed"),
        "{e}"
    );
    assert!(!e.contains("fc1.bias has shape"), "{e}");
    // A later layer transposed: fc2 [32, 10] after fc1 [32, 784].
    write(
        &p,
        &[
            w("fc1.weight", vec![32, 784]),
            w("fc1.bias", vec![32]),
            w("fc2.weight", vec![32, 10]),
            w("fc2.bias", vec![10]),
        ],
        None,
    );
    let e = weights::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("fc2.weight") && e.contains("looks transposed"),
        "{e}"
    );
    // torch.save: a zip archive (PyTorch ≥ 1.6) and a pickle (older).
    for (bytes, what) in [
        (b"PK\x03\x04\x00\x00archive/data.pkl".to_vec(), "zip"),
        (b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P".to_vec(), "pickle"),
    ] {
        std::fs::write(&p, bytes).unwrap();
        let e = weights::load(&p).unwrap_err().to_string();
        assert!(
            e.contains(what) && e.contains("torch.save") && e.contains("save_file("),
            "{e}"
        );
    }
}

/// A real safetensors file whose header length's bytes look like another format's magic (640 =
/// 0x80 0x02 …, a pickle's start; 0x4b50 = "PK", a zip's) still loads. (The header is padded to
/// a multiple of 8, so its first byte is never '{'.)
#[test]
fn header_lengths_that_look_like_magic_bytes_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    for want in [640usize, 0x4b50] {
        // Pad the metadata until the JSON header is exactly `want` bytes long.
        let mut pad = String::new();
        loop {
            let meta = HashMap::from([("pad".to_string(), pad.clone())]);
            write(
                &p,
                &[
                    ("fc1.weight", Dtype::F32, vec![2, 3], f32s(6, 0.5)),
                    ("fc1.bias", Dtype::F32, vec![2], f32s(2, 0.25)),
                ],
                Some(meta),
            );
            let bytes = std::fs::read(&p).unwrap();
            let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            if len == want {
                break;
            }
            assert!(len < want, "cannot hit a header of {want} bytes (at {len})");
            pad.push_str(&"x".repeat((want - len).saturating_sub(8).max(1)));
        }
        assert!(weights::load(&p).is_ok(), "header of {want} bytes");
    }
}

#[test]
fn cnn_weights_round_trip_under_pytorch_sequential_names() {
    use subspace_lab::nn::model::ModelSpec;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cnn.safetensors");
    let spec = ModelSpec::cnn_relu();
    let theta = spec.init(2);
    weights::save(&p, &spec, &theta, weights::SaveDtype::F64).unwrap();
    let (s2, t2) = weights::load(&p).unwrap();
    assert_eq!(s2, spec);
    assert_eq!(t2, theta);
    // The names and shapes a PyTorch nn.Sequential state dict has.
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<(String, Vec<usize>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("0.bias".into(), vec![32]),
            ("0.weight".into(), vec![32, 3, 3, 3]),
            ("3.bias".into(), vec![32]),
            ("3.weight".into(), vec![32, 32, 3, 3]),
            ("7.bias".into(), vec![10]),
            ("7.weight".into(), vec![10, 2048]),
        ]
    );
    // A file without our metadata (PyTorch's save_file(model.state_dict())) is read as a CNN from
    // its 4-D weights, relu by default.
    let views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors().into_iter().collect();
    let bare = safetensors::serialize(views, None).unwrap();
    let q = dir.path().join("bare.safetensors");
    std::fs::write(&q, bare).unwrap();
    let (s3, t3) = weights::load(&q).unwrap();
    assert_eq!(s3, spec);
    assert_eq!(t3, theta);
    // A tensor of the wrong shape is named.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    for t in tensors.iter_mut().filter(|t| t.0 == "7.weight") {
        t.1 = vec![20, 1024];
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(&q, safetensors::serialize(views, None).unwrap()).unwrap();
    let e = weights::load(&q).unwrap_err().to_string();
    assert!(
        e.contains("bare.safetensors") && e.contains("7.weight"),
        "{e}"
    );
}

#[test]
fn cnn_weights_in_other_layouts_are_named_with_the_fix() {
    use subspace_lab::nn::model::ModelSpec;
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::cnn_relu();
    let theta = spec.init(0);
    let g = spec.graph();
    let write = |name: &str, shape_of: &dyn Fn(&str, &[usize]) -> Vec<usize>| {
        let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = g
            .params
            .iter()
            .map(|t| {
                let shape = shape_of(&t.name, &t.shape);
                let len: usize = shape.iter().product();
                let b: Vec<u8> = theta[t.off..t.off + len.min(t.len())]
                    .iter()
                    .flat_map(|v| (*v as f32).to_le_bytes())
                    .collect();
                (t.name.clone(), shape, b)
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = bufs
            .iter()
            .map(|(n, s, d)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                        .unwrap(),
                )
            })
            .collect();
        let p = dir.path().join(name);
        std::fs::write(&p, safetensors::serialize(views, None).unwrap()).unwrap();
        weights::load(&p).unwrap_err().to_string()
    };
    let e = write("t.safetensors", &|n, s| {
        if n == "7.weight" {
            vec![s[1], s[0]]
        } else {
            s.to_vec()
        }
    });
    assert!(e.contains("7.weight") && e.contains("transposed"), "{e}");
    let e = write("hwio.safetensors", &|n, s| {
        if n == "0.weight" {
            vec![3, 3, s[1], s[0]]
        } else {
            s.to_vec()
        }
    });
    assert!(e.contains("[cout, cin, kh, kw]"), "{e}");
    let e = write("narrow.safetensors", &|n, s| {
        if n == "7.weight" {
            vec![10, 1024]
        } else {
            s.to_vec()
        }
    });
    assert!(e.contains("7.weight") && e.contains("[10, 2048]"), "{e}");
}

/// The Transformer: a round trip keeps every tensor and the spec (heads, mask, activation from the
/// metadata); a file with a wrong shape or an extra tensor is named.
#[test]
fn transformer_weights_round_trip_and_faults() {
    use subspace_lab::nn::model::ModelSpec;
    use subspace_lab::nn::transformer::TransformerSpec;
    let dir = tempfile::tempdir().unwrap();
    let spec: ModelSpec = TransformerSpec::new(9, 4, 8, 2, 2, Activation::Gelu, false, 2)
        .unwrap()
        .into();
    let theta: Vec<f64> = (0..spec.num_params()).map(|i| (i as f64).sin()).collect();
    let p = dir.path().join("t.safetensors");
    let words: Vec<String> = ["<pad>", "<unk>", "a", "b", "c", "d", "e", "f", "g"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let meta = vec![("vocab".to_string(), serde_json::to_string(&words).unwrap())];
    weights::save_with(&p, &spec, &theta, SaveDtype::F64, &meta).unwrap();
    let (s2, t2) = weights::load(&p).unwrap();
    assert_eq!(s2, spec);
    assert_eq!(t2, theta);
    assert_eq!(weights::vocab_of(&p).unwrap().unwrap(), words);
    // Drop the head's bias: named.
    let g = spec.graph();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = g
        .params
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.shape.clone(),
                theta[t.off..t.off + t.len()]
                    .iter()
                    .flat_map(|v| (*v as f32).to_le_bytes())
                    .collect(),
            )
        })
        .collect();
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = bytes
        .iter()
        .filter(|(n, _, _)| n != "head.bias")
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.clone(), b.clone()))
        .collect();
    let q = dir.path().join("bad.safetensors");
    write(&q, &tensors, None);
    let e = weights::load(&q).unwrap_err().to_string();
    assert!(
        e.contains("head.bias") && e.contains("bad.safetensors"),
        "{e}"
    );
    // A q weight of the wrong shape: named with the shape needed.
    let mut tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = bytes
        .iter()
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.clone(), b.clone()))
        .collect();
    let at = tensors
        .iter()
        .position(|t| t.0 == "layers.1.attn.q.weight")
        .unwrap();
    // --mask against the file's metadata (mask = false here); --mask on another network.
    let unmasked = weights::Expect {
        mask: Some(true),
        ..weights::Expect::default()
    };
    let e = weights::load_expecting(&p, &unmasked)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mask = false") && e.contains("--mask says true"),
        "{e}"
    );
    let mlp = dir.path().join("mlp.safetensors");
    let m = MlpSpec::new(vec![3, 2], Activation::Tanh).unwrap();
    weights::save(&mlp, &m, &m.init(0), SaveDtype::F32).unwrap();
    let e = weights::load_expecting(&mlp, &unmasked)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--mask applies to the Transformer"), "{e}");
    // A layer index far beyond the others: refused before any allocation of that size.
    let mut gap = tensors_of(&bytes);
    gap.push(("layers.100000000.x", Dtype::F32, vec![1], f32s(1, 0.0)));
    write(&q, &gap, None);
    let e = weights::load(&q).unwrap_err().to_string();
    assert!(
        e.contains("layer indices") && e.contains("100000000"),
        "{e}"
    );
    // Another LayerNorm ε or a tanh MLP block: named.
    for (k, v, want) in [
        ("ln_eps", "1e-5", "ln_eps = 1e-5"),
        ("activation", "tanh", "silu or gelu"),
    ] {
        write(
            &q,
            &tensors_of(&bytes),
            Some(HashMap::from([(k.to_string(), v.to_string())])),
        );
        let e = weights::load(&q).unwrap_err().to_string();
        assert!(e.contains(want), "{k}: {e}");
    }
    tensors[at].2 = vec![4, 16];
    write(&q, &tensors, None);
    let e = weights::load(&q).unwrap_err().to_string();
    assert!(
        e.contains("layers.1.attn.q.weight") && e.contains("[8, 8]"),
        "{e}"
    );
}

#[allow(clippy::type_complexity)]
fn tensors_of(bytes: &[(String, Vec<usize>, Vec<u8>)]) -> Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> {
    bytes
        .iter()
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.clone(), b.clone()))
        .collect()
}
