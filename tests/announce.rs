//! What the library announces instead of deciding silently (issue 31): the settings a weights
//! file does not state and the loader assumed, with the options that set them; metadata keys the
//! reader does not know; a CNN's input against the data set's shape; the spectrum's λ_min and
//! kink caveats.

use safetensors::tensor::TensorView;
use std::collections::HashMap;
use std::path::Path;
use subspace_lab::backend::Activation;
use subspace_lab::hessian::caveats;
use subspace_lab::nn::model::ModelSpec;
use subspace_lab::nn::transformer::TransformerSpec;
use subspace_lab::nn::weights::{self, Expect, Overrides, SaveDtype};

/// `spec`'s tensors with exactly the metadata `meta` (None: a plain `save_file(state_dict)`).
fn write(path: &Path, spec: &ModelSpec, theta: &[f64], meta: Option<HashMap<String, String>>) {
    let bytes = weights::serialize(path, spec, theta, SaveDtype::F32).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, TensorView)> = st.tensors().into_iter().collect();
    std::fs::write(path, safetensors::serialize(views, meta).unwrap()).unwrap();
}

fn transformer(heads: usize) -> (ModelSpec, Vec<f64>) {
    let spec: ModelSpec = TransformerSpec::new(9, 4, 8, heads, 1, Activation::Gelu, false, 2)
        .unwrap()
        .into();
    let theta = spec.init(3);
    (spec, theta)
}

/// Case 2: a Transformer file without metadata gets heads 8, ε 1e-6, the mask and SiLU — and the
/// loader says so, naming the option of each; the caller's options set them instead.
#[test]
fn assumed_settings_are_announced_and_can_be_set() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plain.safetensors");
    let (spec, theta) = transformer(2);
    write(&p, &spec, &theta, None);
    let l = weights::load_checked(&p, &Expect::default(), &Overrides::default()).unwrap();
    let keys: Vec<(&str, &str, &str)> = l
        .assumed
        .iter()
        .map(|a| (a.key.as_str(), a.value.as_str(), a.option.as_str()))
        .collect();
    for want in [
        ("activation", "silu", "--activation"),
        ("ln_eps", "0.000001", "--ln-eps"),
        ("heads", "8", "--heads"),
        ("mask", "true", "--mask"),
    ] {
        assert!(keys.contains(&want), "{want:?} in {keys:?}");
    }
    let line = weights::assumed_line(&l.assumed).unwrap();
    assert!(line.contains("heads = 8 (--heads)"), "{line}");
    // The JSON carries the same list.
    let json = serde_json::to_value(&l.assumed).unwrap();
    assert_eq!(json[0]["option"], "--activation", "{json}");
    // The options say what the file cannot: the network built is the one saved.
    let expect = Expect {
        activation: Some(Activation::Gelu),
        mask: Some(false),
        ..Expect::default()
    };
    let over = Overrides {
        heads: Some(2),
        ln_eps: Some(1e-6),
        ..Overrides::default()
    };
    let l = weights::load_checked(&p, &expect, &over).unwrap();
    assert_eq!(l.spec, spec);
    assert!(l.assumed.is_empty(), "{:?}", l.assumed);
    assert!(weights::assumed_line(&l.assumed).is_none());
    // Another ε cannot be computed here: refused, not run with 1e-6.
    let eps = Overrides {
        ln_eps: Some(1e-5),
        ..Overrides::default()
    };
    let e = weights::load_checked(&p, &Expect::default(), &eps)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--ln-eps 0.00001") && e.contains("ε"), "{e}");
    // --heads against the file's metadata: an error naming both.
    let q = dir.path().join("meta.safetensors");
    weights::save(&q, &spec, &theta, SaveDtype::F32).unwrap();
    let e = weights::load_checked(&q, &Expect::default(), &over_heads(4))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("heads = 2") && e.contains("--heads says 4"),
        "{e}"
    );
    let l = weights::load_checked(&q, &Expect::default(), &Overrides::default()).unwrap();
    assert!(l.assumed.is_empty(), "{:?}", l.assumed);
    // The options of the Transformer on another network: refused.
    let m = dir.path().join("mlp.safetensors");
    let mlp = ModelSpec::fc_tanh();
    weights::save(&m, &mlp, &mlp.init(0), SaveDtype::F32).unwrap();
    let e = weights::load_checked(&m, &Expect::default(), &over_heads(2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--heads"), "{e}");
    // A fully connected network without metadata: its activation is announced too.
    write(&m, &mlp, &mlp.init(0), None);
    let l = weights::load_checked(&m, &Expect::default(), &Overrides::default()).unwrap();
    assert_eq!(
        weights::assumed_line(&l.assumed).unwrap(),
        "assumed (the file does not say): activation = tanh (--activation)"
    );
}

fn over_heads(h: usize) -> Overrides {
    Overrides {
        heads: Some(h),
        ..Overrides::default()
    }
}

/// Case 1: a metadata key the reader does not know is named in a warning; an old and a new name
/// of one setting that disagree are an error.
#[test]
fn unknown_metadata_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    let (spec, theta) = transformer(2);
    let mut meta = HashMap::from([
        ("heads".to_string(), "2".to_string()),
        ("activation".to_string(), "gelu".to_string()),
        ("mask".to_string(), "false".to_string()),
        ("ln_eps".to_string(), "1e-6".to_string()),
        ("num_heads".to_string(), "4".to_string()),
        ("seed".to_string(), "0".to_string()),
    ]);
    write(&p, &spec, &theta, Some(meta.clone()));
    let l = weights::load_checked(&p, &Expect::default(), &Overrides::default()).unwrap();
    assert_eq!(l.spec, spec);
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(l.warnings[0].contains("`num_heads`"), "{:?}", l.warnings);
    meta.insert("act".into(), "silu".into());
    write(&p, &spec, &theta, Some(meta));
    let e = weights::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("act = silu") && e.contains("activation = gelu"),
        "{e}"
    );
}

/// Case 3 (the caller's data shape): the data set decides a CNN's input; a contradicting
/// metadata `input` is an error naming both; without one, the data's shape is used.
#[test]
fn the_data_sets_shape_decides_a_cnns_input() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::cnn_relu();
    let theta = spec.init(0);
    let p = dir.path().join("cnn.safetensors");
    let meta = HashMap::from([("input".to_string(), "3,16,64".to_string())]);
    write(&p, &spec, &theta, Some(meta));
    let cifar = Overrides {
        data_shape: Some([3, 32, 32]),
        ..Overrides::default()
    };
    let e = weights::load_checked(&p, &Expect::default(), &cifar)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3,16,64") && e.contains("3×32×32"), "{e}");
    write(&p, &spec, &theta, None);
    let l = weights::load_checked(&p, &Expect::default(), &cifar).unwrap();
    assert_eq!(l.spec, spec);
}

/// Case 13: λ_min negative and larger in magnitude than λ_k is said, with what it means; the
/// kink conventions are PyTorch's and say so.
#[test]
fn the_spectrums_caveats() {
    let top = [888.6, 500.0, 120.5];
    let w = caveats::negative_dominance(&top, -2407.2).unwrap();
    assert!(
        w.contains("λ_min = -2407.2") && w.contains("λ_3 = 120.5") && w.contains("'LM'"),
        "{w}"
    );
    assert!(w.contains("larger than λ₁"), "{w}");
    assert!(caveats::negative_dominance(&top, -100.0).is_none());
    assert!(caveats::negative_dominance(&top, 3.0).is_none());
    assert!(caveats::negative_dominance(&[], -1.0).is_none());
    let w = caveats::negative_dominance(&top, -200.0).unwrap();
    assert!(!w.contains("larger than λ₁"), "{w}");
    let k = caveats::KINK_CONVENTIONS;
    assert!(k.contains("ReLU′(0) = 0") && k.contains("first maximum") && k.contains("PyTorch"));
    assert!(caveats::on_kinks(0, 0).is_none());
    assert!(
        caveats::on_kinks(3, 1)
            .unwrap()
            .contains("3 ReLU input(s) exactly 0")
    );
}

/// Case 13's last part: when θ sits on a kink the spectrum says so. ReLU inputs exactly 0 and
/// max-pool windows whose non-zero maximum is tied are counted by the ops (`Layer::kinks`) and over
/// the data by the engine (`Engine::count_kinks`); a window of zeros behind a ReLU is no kink.
#[test]
fn kinks_are_counted_where_theta_sits_on_them() {
    use subspace_lab::backend::cpu::CpuBackend;
    use subspace_lab::backend::{LossKind, prelude::*};
    use subspace_lab::data::dataset::Dataset;
    use subspace_lab::nn::Engine;
    use subspace_lab::nn::mlp::MlpSpec;
    use subspace_lab::nn::ops::{Act, Layer, MaxPool2};
    let relu = Act {
        act: Activation::Relu,
        width: 4,
    };
    assert_eq!(relu.kinks(&[0.0, -1.0, 2.0, 0.0]).relu_zeros, 2);
    let tanh = Act {
        act: Activation::Tanh,
        width: 4,
    };
    assert!(!tanh.has_kinks() && !tanh.kinks(&[0.0; 4]).any());
    // One channel, 2×4: windows [3, 3 | 1, 0] (a tie of 3), [0, 0 | 0, 0] (zeros: no kink).
    let pool = MaxPool2 { h: 2, w: 4, c: 1 };
    assert_eq!(
        pool.kinks(&[3.0, 3.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
            .pool_ties,
        1
    );
    // Two channels, NHWC: channel 0 tied (5, 5), channel 1 not (1, 2).
    let pool = MaxPool2 { h: 2, w: 2, c: 2 };
    assert_eq!(
        pool.kinks(&[5.0, 1.0, 5.0, 2.0, 0.0, 0.0, -1.0, 0.0])
            .pool_ties,
        1
    );
    // A ReLU network whose first layer is zero: every hidden pre-activation is exactly 0.
    let spec: ModelSpec = MlpSpec::new(vec![3, 5, 2], Activation::Relu)
        .unwrap()
        .into();
    let mut theta = spec.init(1);
    let first = 3 * 5 + 5;
    theta[..first].iter_mut().for_each(|x| *x = 0.0);
    let n = 7;
    let x: Vec<f64> = (0..n * 3).map(|i| (i as f64 * 0.37).sin()).collect();
    let y: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    let data = Dataset::new(3, 2, x, y).unwrap();
    let mut e = Engine::new(
        CpuBackend::<f64>::new(),
        spec.clone(),
        LossKind::Mse,
        &data,
        3,
    )
    .unwrap();
    e.set_params_host(&theta).unwrap();
    let k = e.count_kinks().unwrap();
    assert_eq!((k.relu_zeros, k.pool_ties), (n * 5, 0));
    let w = caveats::on_kinks(k.relu_zeros, k.pool_ties).unwrap();
    assert!(w.contains("35 ReLU input(s) exactly 0"), "{w}");
    // Counting changes nothing: an HVP after it equals one before it, bit for bit (a generic θ,
    // chunks of 3 of the 7 samples, so values are recomputed).
    let theta = spec.init(2);
    e.set_params_host(&theta).unwrap();
    let be = CpuBackend::<f64>::new();
    let p = e.num_params();
    let v = be
        .upload(&(0..p).map(|i| (i as f64 * 0.11).cos()).collect::<Vec<_>>())
        .unwrap();
    let mut h1 = be.zeros(p).unwrap();
    let mut h2 = be.zeros(p).unwrap();
    e.hvp(&v, 0, &mut h1, 0).unwrap();
    // A generic θ sits on no kink.
    assert!(!e.count_kinks().unwrap().any());
    e.hvp(&v, 0, &mut h2, 0).unwrap();
    let (h1, h2) = (be.download(&h1).unwrap(), be.download(&h2).unwrap());
    assert!(h1.iter().zip(&h2).all(|(a, b)| a.to_bits() == b.to_bits()));
}
