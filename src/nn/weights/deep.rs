//! Reading a VGG's or a CIFAR ResNet's file (issue 32) under the PyTorch modules' state-dict
//! names, so that a PyTorch user's file loads as it is:
//!
//! - VGG (Cohen et al.'s `vgg11_nodropout`, [`crate::nn::vgg`]): `features.{i}.weight
//!   [cout, cin, 3, 3]` / `.bias` at the Sequential index i of each Conv2d (a ReLU follows each
//!   conv, so consecutive convs are 2 apart and each MaxPool2d in between adds 1), then
//!   `classifier.{0,2,4,…}.weight [out, in]` / `.bias`. The pools after the last conv are read
//!   off `classifier.0.weight`'s width.
//! - ResNet ([`crate::nn::resnet`], norm none): `conv1`, `layer{s}.0.conv{1,2}`,
//!   `layer{s}.0.shortcut.0` where the shape changes, `linear`. A normalisation layer's tensors
//!   (BatchNorm's `bn1.weight`, `running_mean`, …) are refused with the reason.
//!
//! The architecture read off the names and shapes is built, then every tensor of its graph must
//! be in the file under its name with its shape, and nothing else: a wrong shape is an error
//! naming the tensor, its shape and the one wanted.

use super::fields::{Werr, file_loss, finite_floats};
use super::meta::Meta;
use super::{Expect, Overrides};
use crate::backend::{Activation, LossKind};
use crate::data::cifar10;
use crate::error::Result;
use crate::nn::model::ModelSpec;
use crate::nn::resnet::{Norm, ResNetSpec};
use crate::nn::vgg::VggSpec;
use safetensors::SafeTensors;

/// The two families this file reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    Vgg,
    ResNet,
}

/// The family a file holds: the metadata's `model` (`vgg…`, `resnet…`), else its names (a 4-D
/// `features.N.weight` for VGG, `layer1.0.conv1.weight` for a ResNet); None for other networks.
pub(super) fn family(st: &SafeTensors, meta: &Meta) -> Option<Family> {
    match meta.get("model") {
        Some(m) if m.starts_with("vgg") => return Some(Family::Vgg),
        Some(m) if m.starts_with("resnet") => return Some(Family::ResNet),
        Some(_) => return None,
        None => {}
    }
    let tensors = st.tensors();
    if tensors
        .iter()
        .any(|(n, v)| n.starts_with("features.") && v.shape().len() == 4)
    {
        Some(Family::Vgg)
    } else if tensors.iter().any(|(n, _)| n == "layer1.0.conv1.weight") {
        Some(Family::ResNet)
    } else {
        None
    }
}

/// The network, θ and the metadata's loss of a VGG or ResNet file, checked against the caller's
/// options (these networks have fixed ReLUs and take no `--widths`, `--mask`, `--heads`).
pub(super) fn parse_deep(
    st: &SafeTensors,
    meta: &Meta,
    fam: Family,
    expect: &Expect,
    over: &Overrides,
    werr: Werr,
) -> Result<(ModelSpec, Vec<f64>, Option<LossKind>)> {
    let what = match fam {
        Family::Vgg => "a VGG",
        Family::ResNet => "a ResNet",
    };
    if expect.widths.is_some() || expect.mask.is_some() || over.heads.is_some() {
        return Err(werr(format!(
            "this file holds {what}, whose layers the tensors give: --widths, --mask and --heads do not apply (drop them)"
        )));
    }
    let file_act = match meta.get("activation") {
        Some(a) => Some(a.parse::<Activation>().map_err(werr)?),
        None => None,
    };
    if let Some(a) = file_act.or(expect.activation)
        && a != Activation::Relu
    {
        return Err(werr(format!(
            "activation = {}: {what} here has ReLUs only",
            a.name()
        )));
    }
    if let Some(d) = meta.get("dataset")
        && !d.to_ascii_lowercase().replace('-', "").contains("cifar")
    {
        return Err(werr(format!(
            "the file's metadata says dataset = {d}; {what} here runs on CIFAR10-5k"
        )));
    }
    let input = input_of(meta, over, werr)?;
    let spec: ModelSpec = match fam {
        Family::Vgg => vgg_spec(st, input, werr)?.into(),
        Family::ResNet => resnet_spec(st, input, werr)?.into(),
    };
    if let Some(m) = meta.get("model")
        && (m == "vgg11" || m == "vgg11-narrow" || m == "resnet8")
        && m != spec.name()
    {
        return Err(werr(format!(
            "the file's metadata says model = {m}, but its tensors give {}: fix the metadata or the file",
            spec.describe()
        )));
    }
    let theta = read_graph(st, &spec, werr)?;
    let loss = file_loss(meta, expect, werr)?;
    Ok((spec, theta, loss))
}

/// C, H, W: the data set's when the caller knows it, else the metadata's `input`, else
/// CIFAR-10's 3×32×32; the metadata contradicting the data set is an error naming both.
fn input_of(meta: &Meta, over: &Overrides, werr: Werr) -> Result<[usize; 3]> {
    let file = match meta.get("input") {
        Some(s) => {
            let v: Vec<usize> = s
                .split(',')
                .map(|x| x.trim().parse::<usize>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| werr(format!("metadata input = {s}: expected C,H,W")))?;
            let dims: [usize; 3] = v
                .try_into()
                .map_err(|_| werr(format!("metadata input = {s}: expected C,H,W")))?;
            Some(dims)
        }
        None => None,
    };
    match (file, over.data_shape) {
        (Some(f), Some(d)) if f != d => Err(werr(format!(
            "the file's metadata says input = {},{},{} (C,H,W), but the data set's images are {}×{}×{}: the data set's shape decides; fix or drop the metadata input",
            f[0], f[1], f[2], d[0], d[1], d[2]
        ))),
        (_, Some(d)) => Ok(d),
        (Some(f), None) => Ok(f),
        (None, None) => Ok([cifar10::CHANNELS, cifar10::SIDE, cifar10::SIDE]),
    }
}

/// The `(index, shape)` of every `{prefix}{index}.weight`, sorted by index.
fn indexed_weights(st: &SafeTensors, prefix: &str) -> Vec<(usize, Vec<usize>)> {
    let mut out: Vec<(usize, Vec<usize>)> = st
        .tensors()
        .iter()
        .filter_map(|(n, v)| {
            let i = n
                .strip_prefix(prefix)?
                .strip_suffix(".weight")?
                .parse()
                .ok()?;
            Some((i, v.shape().to_vec()))
        })
        .collect();
    out.sort();
    out
}

/// A VGG's cfg and classifier from the names: conv indices 2 apart (+1 per MaxPool2d between),
/// classifier Linear layers at 0, 2, 4, …, the trailing pools from `classifier.0.weight`'s width.
fn vgg_spec(st: &SafeTensors, input: [usize; 3], werr: Werr) -> Result<VggSpec> {
    let convs = indexed_weights(st, "features.");
    let lins = indexed_weights(st, "classifier.");
    if let Some((i, s)) = convs.iter().find(|(_, s)| s.len() != 4) {
        return Err(werr(format!(
            "features.{i}.weight has shape {s:?}: a VGG's features hold Conv2d weights [cout, cin, 3, 3]"
        )));
    }
    if let Some((i, s)) = lins.iter().find(|(_, s)| s.len() != 2) {
        return Err(werr(format!(
            "classifier.{i}.weight has shape {s:?}: a VGG's classifier holds Linear weights [out, in]"
        )));
    }
    let mut cfg = Vec::new();
    let mut prev: Option<usize> = None;
    for (i, s) in &convs {
        let gap = match prev {
            None if *i == 0 => 2,
            None => {
                return Err(werr(format!(
                    "features.{i}.weight is the first conv: the features must start with a Conv2d at index 0"
                )));
            }
            Some(p) => i - p,
        };
        if gap < 2 {
            return Err(werr(format!(
                "features.{i}.weight follows features.{}.weight with no ReLU between: each Conv2d is followed by a ReLU (indices 2 apart, +1 per MaxPool2d)",
                prev.unwrap_or(0)
            )));
        }
        cfg.extend(std::iter::repeat_n(0, gap - 2));
        cfg.push(s[0]);
        prev = Some(*i);
    }
    if cfg.is_empty() {
        return Err(werr(
            "no Conv2d weight features.N.weight [cout, cin, 3, 3] found".into(),
        ));
    }
    for (k, (j, _)) in lins.iter().enumerate() {
        if *j != 2 * k {
            return Err(werr(format!(
                "classifier.{j}.weight: the classifier's Linear layers are expected at indices 0, 2, 4, … (Linear, ReLU, …; a dropout variant is not vgg11_nodropout)"
            )));
        }
    }
    let Some(((_, first), (_, last))) = lins.first().zip(lins.last()) else {
        return Err(werr(
            "no classifier.0.weight [out, in]: a VGG ends in its Linear classifier".into(),
        ));
    };
    let c_last = cfg.iter().rev().find(|&&c| c > 0).copied().unwrap_or(1);
    let pools = cfg.iter().filter(|&&c| c == 0).count();
    let (h, w) = (input[1] >> pools.min(16), input[2] >> pools.min(16));
    let trailing = (0..=16usize)
        .find(|&k| c_last * (h >> k) * (w >> k) == first[1] && (h >> k) > 0)
        .ok_or_else(|| {
            werr(format!(
                "classifier.0.weight has shape {first:?}: its width {} is not {c_last} channels × the pooled image of {}×{} (with any number of final 2×2 pools)",
                first[1], input[1], input[2]
            ))
        })?;
    cfg.extend(std::iter::repeat_n(0, trailing));
    let hidden: Vec<usize> = lins[..lins.len() - 1].iter().map(|(_, s)| s[0]).collect();
    VggSpec::new(input, cfg, hidden, last[0]).map_err(|e| werr(e.to_string()))
}

/// A ResNet's stage widths from `layer{s}.0.conv1.weight`, its classes from `linear.weight`.
fn resnet_spec(st: &SafeTensors, input: [usize; 3], werr: Werr) -> Result<ResNetSpec> {
    let tensors = st.tensors();
    if let Some((n, _)) = tensors.iter().find(|(n, _)| {
        n.contains(".bn") || n.starts_with("bn") || n.contains("running_") || n.contains("norm")
    }) {
        return Err(werr(format!(
            "{n}: a normalisation layer's tensor; this ResNet has norm = {} (BatchNorm in training mode makes a sample's loss depend on its batch, so the full-data Hessian is not defined)",
            Norm::None.name()
        )));
    }
    let shape = |n: &str| {
        tensors
            .iter()
            .find(|(m, _)| m == n)
            .map(|(_, v)| v.shape().to_vec())
    };
    let mut channels = Vec::new();
    while let Some(s) = shape(&format!("layer{}.0.conv1.weight", channels.len() + 1)) {
        if s.len() != 4 {
            return Err(werr(format!(
                "layer{}.0.conv1.weight has shape {s:?}: expected a Conv2d weight [cout, cin, 3, 3]",
                channels.len() + 1
            )));
        }
        channels.push(s[0]);
    }
    let classes = match shape("linear.weight") {
        Some(s) if s.len() == 2 => s[0],
        Some(s) => {
            return Err(werr(format!(
                "linear.weight has shape {s:?}: expected a Linear weight [classes, channels]"
            )));
        }
        None => return Err(werr("linear.weight is missing".into())),
    };
    ResNetSpec::new(input, channels, Norm::None, classes).map_err(|e| werr(e.to_string()))
}

/// θ of `spec` from the file: every tensor of its graph under its name with its shape (an error
/// naming the tensor otherwise), finite, and no other tensor in the file.
fn read_graph(st: &SafeTensors, spec: &ModelSpec, werr: Werr) -> Result<Vec<f64>> {
    let graph = spec.graph();
    let mut theta = Vec::with_capacity(graph.num_params());
    for t in &graph.params {
        let v = st.tensor(&t.name).map_err(|_| {
            werr(format!(
                "{} {:?} is missing: {} has it",
                t.name,
                t.shape,
                spec.describe()
            ))
        })?;
        if v.shape() != t.shape.as_slice() {
            return Err(werr(format!(
                "{} has shape {:?}; {} wants {:?}",
                t.name,
                v.shape(),
                spec.describe(),
                t.shape
            )));
        }
        let (lname, part) = t.name.rsplit_once('.').unwrap_or((&t.name, ""));
        theta.extend(finite_floats(&v, lname, part, theta.len(), werr)?);
    }
    let extra: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !graph.params.iter().any(|t| t.name == **n))
        .map(|n| n.to_string())
        .collect();
    if !extra.is_empty() {
        return Err(werr(format!(
            "tensors {extra:?} are not part of {}",
            spec.describe()
        )));
    }
    Ok(theta)
}
