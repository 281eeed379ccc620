//! VGG and ResNet weights (issue 32) in safetensors under the PyTorch modules' state-dict names: a
//! file as PyTorch writes it (no metadata) loads as it is and saves back under the same names and
//! shapes; a wrong shape, a missing or extra tensor, a BatchNorm tensor and a metadata model that
//! the tensors contradict are errors naming the tensor.

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::path::Path;
use subspace_lab::nn::model::ModelSpec;
use subspace_lab::nn::resnet::ResNetSpec;
use subspace_lab::nn::vgg::VggSpec;
use subspace_lab::nn::weights::{self, SaveDtype};

type Tensors = Vec<(String, Vec<usize>, Vec<u8>)>;

/// The tensors of a safetensors file: name, shape, f32 bytes, in the file's order.
fn tensors_of(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Write `tensors` (f32) with no metadata, as `safetensors.torch.save_file(state_dict, f)` does.
fn write_plain(path: &Path, tensors: &Tensors) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn shape_of(t: &Tensors, name: &str) -> Vec<usize> {
    t.iter().find(|(n, _, _)| n == name).unwrap().1.clone()
}

/// Save θ, strip the metadata (a PyTorch user's file), load it, save it back: the same network,
/// θ to f32 rounding, and the same names and shapes.
fn round_trip(spec: ModelSpec, names: &[(&str, Vec<usize>)]) -> Tensors {
    let dir = tempfile::tempdir().unwrap();
    let theta = spec.init(1);
    let ours = dir.path().join("ours.safetensors");
    weights::save(&ours, &spec, &theta, SaveDtype::F32).unwrap();
    let t = tensors_of(&ours);
    for (n, s) in names {
        assert_eq!(&shape_of(&t, n), s, "{n}");
    }
    let plain = dir.path().join("plain.safetensors");
    write_plain(&plain, &t);
    let (s2, t2) = weights::load(&plain).unwrap();
    assert_eq!(s2, spec, "the names and shapes give the network");
    assert!(
        theta
            .iter()
            .zip(&t2)
            .all(|(a, b)| (a - b).abs() <= 1e-7 * a.abs().max(1.0))
    );
    let back = dir.path().join("back.safetensors");
    weights::save(&back, &s2, &t2, SaveDtype::F32).unwrap();
    assert_eq!(tensors_of(&back), t, "saved back under the same names");
    t
}

fn load_err(tensors: &Tensors) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    write_plain(&p, tensors);
    match weights::load(&p) {
        Ok((s, _)) => panic!("loaded as {}", s.describe()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn vgg11_loads_and_saves_under_the_pytorch_names() {
    let t = round_trip(
        VggSpec::vgg11().into(),
        &[
            ("features.0.weight", vec![64, 3, 3, 3]),
            ("features.0.bias", vec![64]),
            ("features.3.weight", vec![128, 64, 3, 3]),
            ("features.18.weight", vec![512, 512, 3, 3]),
            ("classifier.0.weight", vec![512, 512]),
            ("classifier.2.bias", vec![512]),
            ("classifier.4.weight", vec![10, 512]),
        ],
    );
    assert_eq!(
        t.len(),
        22,
        "8 convs and 3 linear layers, weight and bias each"
    );
    // A wrong shape names the tensor, its shape and the one wanted.
    let mut bad = t.clone();
    let i = bad
        .iter()
        .position(|(n, _, _)| n == "features.3.weight")
        .unwrap();
    bad[i].1 = vec![128, 32, 3, 3];
    bad[i].2.truncate(128 * 32 * 9 * 4);
    let e = load_err(&bad);
    assert!(
        e.contains("features.3.weight")
            && e.contains("[128, 32, 3, 3]")
            && e.contains("[128, 64, 3, 3]"),
        "{e}"
    );
    // A missing tensor and an extra one are named.
    let missing: Tensors = t
        .iter()
        .filter(|(n, _, _)| n != "classifier.2.bias")
        .cloned()
        .collect();
    let e = load_err(&missing);
    assert!(e.contains("classifier.2.bias"), "{e}");
    let mut extra = t.clone();
    extra.push(("features.1.running_mean".into(), vec![1], vec![0; 4]));
    let e = load_err(&extra);
    assert!(e.contains("features.1.running_mean"), "{e}");
}

#[test]
fn vgg11_narrow_and_a_custom_vgg_round_trip() {
    round_trip(
        VggSpec::vgg11_narrow().into(),
        &[
            ("features.0.weight", vec![8, 3, 3, 3]),
            ("classifier.4.weight", vec![10, 64]),
        ],
    );
    // Two pools in a row between convs and one pool after the last conv, read back from the
    // indices and from classifier.0's width.
    let odd = VggSpec::new([3, 32, 32], vec![4, 0, 0, 6, 0], vec![5], 10).unwrap();
    round_trip(
        odd.into(),
        &[
            ("features.4.weight", vec![6, 4, 3, 3]),
            ("classifier.0.weight", vec![5, 6 * 16]),
        ],
    );
}

#[test]
fn resnet8_loads_and_saves_under_the_twins_names() {
    let t = round_trip(
        ResNetSpec::resnet8().into(),
        &[
            ("conv1.weight", vec![16, 3, 3, 3]),
            ("layer1.0.conv1.weight", vec![16, 16, 3, 3]),
            ("layer2.0.conv1.weight", vec![32, 16, 3, 3]),
            ("layer2.0.shortcut.0.weight", vec![32, 16, 1, 1]),
            ("layer3.0.shortcut.0.bias", vec![64]),
            ("linear.weight", vec![10, 64]),
        ],
    );
    let mut bad = t.clone();
    let i = bad
        .iter()
        .position(|(n, _, _)| n == "layer2.0.shortcut.0.weight")
        .unwrap();
    bad[i].1 = vec![32, 16, 3, 3];
    bad[i].2 = vec![0; 32 * 16 * 9 * 4];
    let e = load_err(&bad);
    assert!(
        e.contains("layer2.0.shortcut.0.weight") && e.contains("[32, 16, 1, 1]"),
        "{e}"
    );
    let mut bn = t.clone();
    bn.push(("layer1.0.bn1.weight".into(), vec![16], vec![0; 64]));
    let e = load_err(&bn);
    assert!(
        e.contains("layer1.0.bn1.weight") && e.contains("BatchNorm"),
        "{e}"
    );
}

#[test]
fn metadata_naming_another_network_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec: ModelSpec = VggSpec::vgg11_narrow().into();
    let p = dir.path().join("n.safetensors");
    weights::save(&p, &spec, &spec.init(0), SaveDtype::F32).unwrap();
    let t = tensors_of(&p);
    let views: Vec<(String, TensorView)> = t
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = std::collections::HashMap::from([("model".to_string(), "vgg11".to_string())]);
    let q = dir.path().join("m.safetensors");
    std::fs::write(&q, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
    let e = weights::load(&q).unwrap_err().to_string();
    assert!(
        e.contains("model = vgg11") && e.contains("vgg11-narrow"),
        "{e}"
    );
}
