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

// ---- issue 31: the twin's metadata keys, the data's shape, unbounded reads -----------------

/// Size of the sparse files of the size-cap test: far beyond memory, never allocated.
const HUGE: u64 = 1 << 40;

/// The tensors of `spec`/`theta` as f64 safetensors with exactly the metadata `meta`.
fn with_meta(
    path: &Path,
    spec: &subspace_lab::nn::model::ModelSpec,
    theta: &[f64],
    meta: HashMap<String, String>,
) {
    let bytes = weights::serialize(path, spec, theta, SaveDtype::F64).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, TensorView)> = st.tensors().into_iter().collect();
    std::fs::write(path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

/// The metadata a file holds.
fn meta_of(path: &Path) -> HashMap<String, String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    m.metadata().clone().unwrap_or_default()
}

fn gelu_transformer() -> (subspace_lab::nn::model::ModelSpec, Vec<f64>) {
    let spec: subspace_lab::nn::model::ModelSpec =
        subspace_lab::nn::transformer::TransformerSpec::new(
            9,
            4,
            8,
            2,
            1,
            Activation::Gelu,
            false,
            2,
        )
        .unwrap()
        .into();
    let theta: Vec<f64> = (0..spec.num_params()).map(|i| (i as f64).cos()).collect();
    (spec, theta)
}

/// Case 1: the Transformer twin wrote its activation as `act`; such a file (already written) is
/// read as the GELU network it is, not as SiLU.
#[test]
fn the_twins_old_act_key_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, theta) = gelu_transformer();
    let p = dir.path().join("twin.safetensors");
    // What torch_transformer_reference.py `init --act gelu` wrote: its keys, its values.
    let meta = HashMap::from([
        ("model".to_string(), "transformer".to_string()),
        ("heads".to_string(), "2".to_string()),
        ("act".to_string(), "gelu".to_string()),
        ("mask".to_string(), "false".to_string()),
        ("seed".to_string(), "0".to_string()),
        ("random_head".to_string(), "true".to_string()),
    ]);
    with_meta(&p, &spec, &theta, meta);
    let (s2, t2) = weights::load(&p).unwrap();
    assert_eq!(s2.activation(), Activation::Gelu);
    assert_eq!(s2, spec);
    assert_eq!(t2, theta);
}

/// Case 1: one set of metadata names for both sides, checked by a round trip through the twin's
/// own metadata code (scripts/twin_metadata.py, which the three twins import; standard library
/// only): what the twin writes the engine reads, and what the engine writes the twin reads.
#[test]
fn metadata_round_trip_through_the_twin() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/twin_metadata.py");
    let run = |args: &[&str]| -> Option<serde_json::Value> {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .args(args)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(serde_json::from_slice(&out.stdout).unwrap())
    };
    let Some(twin_meta) = run(&[
        "write",
        "--heads",
        "2",
        "--activation",
        "gelu",
        "--mask",
        "false",
    ]) else {
        eprintln!("SKIP: no python3 here");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (spec, theta) = gelu_transformer();
    // Twin → engine.
    let p = dir.path().join("from-twin.safetensors");
    let meta: HashMap<String, String> = serde_json::from_value(twin_meta).unwrap();
    with_meta(&p, &spec, &theta, meta);
    assert_eq!(weights::load(&p).unwrap().0, spec);
    // Engine → twin.
    let q = dir.path().join("from-engine.safetensors");
    weights::save(&q, &spec, &theta, SaveDtype::F64).unwrap();
    let json = serde_json::to_string(&meta_of(&q)).unwrap();
    let read = run(&["read", &json]).unwrap();
    assert_eq!(read["activation"], "gelu", "{read}");
    assert_eq!(read["heads"], 2, "{read}");
    assert_eq!(read["mask"], false, "{read}");
    assert_eq!(read["warnings"].as_array().map(Vec::len), Some(0), "{read}");
    // Every key either side writes is one the other knows.
    let keys = |m: &HashMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    let known: Vec<&str> = weights::meta::MODEL_KEYS
        .iter()
        .chain(weights::meta::INFO_KEYS)
        .copied()
        .collect();
    for k in keys(&meta_of(&q)).iter().chain(&keys(&meta_of(&p))) {
        assert!(known.contains(&k.as_str()), "key {k}");
    }
}

/// Case 3: a convolutional network's metadata `input` that contradicts the data (16×64 for
/// CIFAR-10's 32×32 images, the same 3072 inputs) is an error naming both shapes.
#[test]
fn cnn_input_contradicting_the_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = subspace_lab::nn::model::ModelSpec::cnn_relu();
    let theta = spec.init(1);
    let p = dir.path().join("cnn.safetensors");
    weights::save(&p, &spec, &theta, SaveDtype::F32).unwrap();
    let mut meta = meta_of(&p);
    meta.insert("input".into(), "3,16,64".into());
    with_meta(&p, &spec, &theta, meta);
    let e = weights::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("3,16,64") && e.contains("3×32×32") && e.contains("cnn.safetensors"),
        "{e}"
    );
}

/// Case 9: a weights file is read no further than its header promises: a huge (sparse) file is
/// refused before it is read, and so is a device without end; a pipe is read once.
#[cfg(unix)]
#[test]
fn oversized_weights_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let spec = MlpSpec::new(vec![3, 2], Activation::Tanh).unwrap();
    let theta = spec.init(0);
    let p = dir.path().join("w.safetensors");
    weights::save(&p, &spec, &theta, SaveDtype::F32).unwrap();
    let good = std::fs::read(&p).unwrap();
    let t = std::time::Instant::now();
    // The real file with a huge sparse tail.
    let big = dir.path().join("extended.safetensors");
    std::fs::write(&big, &good).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(HUGE)
        .unwrap();
    let e = weights::load(&big).unwrap_err().to_string();
    assert!(
        e.contains("extended.safetensors") && e.contains("promises"),
        "{e}"
    );
    let e = weights::vocab_of(&big).unwrap_err().to_string();
    assert!(e.contains("promises"), "{e}");
    // All zeros.
    let zeros = dir.path().join("zeros.safetensors");
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(HUGE)
        .unwrap();
    let e = weights::load(&zeros).unwrap_err().to_string();
    assert!(e.contains("not a safetensors file"), "{e}");
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
    if Path::new("/dev/zero").exists() {
        let e = weights::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a safetensors file"), "{e}");
    }
    // A pipe holding the good file loads.
    let fifo = dir.path().join("w.fifo");
    if std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        let w = fifo.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&w)
                .and_then(|mut f| f.write_all(&good))
        });
        let (s2, t2) = weights::load(&fifo).unwrap();
        assert_eq!(s2, spec.into());
        assert_eq!(t2.len(), theta.len());
        writer.join().unwrap().unwrap();
    }
}
