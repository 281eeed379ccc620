//! Weights in safetensors with PyTorch's names, the tensors of the model's graph
//! ([`crate::nn::graph::ParamTensor`]): fully connected networks as `fc1.weight [out, in]`,
//! `fc1.bias [out]`, … (a state dict of `nn.Sequential(Linear, Tanh, Linear, …)` with keys
//! `0.weight`, `2.weight`, … is also accepted: its Linear layers are taken in index order);
//! convolutional networks as their `nn.Sequential` state dict (`0.weight [32,3,3,3]`, `0.bias`,
//! `3.weight`, …, `7.weight [10,2048]`, `7.bias` for cnn-relu: a file with 4-D weights is read as
//! one). The activation is kept in the file's metadata (`activation`; tanh when absent for a
//! fully connected network, relu for a convolutional one), and the model's name in `model`.
//! The Transformer's tensors are named as [`crate::nn::transformer`] lists (`tok_emb.weight`,
//! `layers.0.attn.q.weight`, …, `head.bias`); its metadata holds `model = transformer`, `heads`,
//! `mask`, `ln_eps` and, when the saver knows it, `vocab` (a JSON list of the words in id order),
//! so that a saved model is complete.
//!
//! The metadata's key names are one set for this program and the PyTorch twins ([`meta`]); a
//! setting a file does not state is taken from the caller ([`Expect`], [`Overrides`]) or assumed
//! and said so ([`LoadedWeights::assumed`]); a key the reader does not know is named in a warning
//! ([`LoadedWeights::warnings`]). Files are read once (a pipe works), no more than their header
//! promises (safetensors' header is at most 100,000,000 bytes) and than memory allows.
//!
//! VGG and the CIFAR ResNet (issue 32) are saved and read under their PyTorch modules' state-dict
//! names (`features.0.weight`, …, `classifier.4.bias`; `conv1.weight`, `layer2.0.shortcut.0.weight`,
//! …), with `model` (`vgg11`, `resnet8`, …) and `input` in the metadata.
//!
//! Layout: this file saves and loads; `meta` holds the key table; `parse` reads a network;
//! `deep` reads a VGG's or a ResNet's.

mod deep;
mod fields;
pub mod meta;
mod parse;

use super::model::ModelSpec;
use crate::backend::{Activation, LossKind};
use crate::error::{Error, Result};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Storage type of saved weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    F64,
}

/// Save θ of `spec` to `path` (atomically: a temporary file, then a rename).
pub fn save(
    path: &Path,
    spec: impl Into<ModelSpec>,
    theta: &[f64],
    dtype: SaveDtype,
) -> Result<()> {
    save_with(path, spec, theta, dtype, &[])
}

/// [`save`] with more metadata (the Transformer's `vocab`).
pub fn save_with(
    path: &Path,
    spec: impl Into<ModelSpec>,
    theta: &[f64],
    dtype: SaveDtype,
    meta: &[(String, String)],
) -> Result<()> {
    let bytes = serialize_with(path, spec, theta, dtype, meta)?;
    crate::experiment::output::write_atomic(path, &bytes)
}

/// The `vocab` a weights file's metadata holds (the Transformer's words in id order), if any.
pub fn vocab_of(path: &Path) -> Result<Option<Vec<String>>> {
    let werr = |msg: String| Error::Weights {
        path: path.into(),
        msg,
    };
    let bytes = read_file(path)?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| werr(format!("bad header: {e}")))?;
    match meta.metadata().as_ref().and_then(|m| m.get("vocab")) {
        Some(v) => serde_json::from_str(v)
            .map(Some)
            .map_err(|e| werr(format!("metadata vocab is not a JSON list of words: {e}"))),
        None => Ok(None),
    }
}

/// θ of `spec` as safetensors bytes (PyTorch names); `path` only names the file in errors.
pub fn serialize(
    path: &Path,
    spec: impl Into<ModelSpec>,
    theta: &[f64],
    dtype: SaveDtype,
) -> Result<Vec<u8>> {
    serialize_with(path, spec, theta, dtype, &[])
}

/// [`serialize`] with more metadata.
pub fn serialize_with(
    path: &Path,
    spec: impl Into<ModelSpec>,
    theta: &[f64],
    dtype: SaveDtype,
    extra: &[(String, String)],
) -> Result<Vec<u8>> {
    let spec = spec.into();
    let graph = spec.graph();
    if theta.len() != graph.num_params() {
        return Err(Error::Shape(format!(
            "θ has {} entries, network has {}",
            theta.len(),
            graph.num_params()
        )));
    }
    let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = graph
        .params
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.shape.clone(),
                to_bytes(&theta[t.off..t.off + t.len()], dtype),
            )
        })
        .collect();
    let st_dtype = match dtype {
        SaveDtype::F32 => Dtype::F32,
        SaveDtype::F64 => Dtype::F64,
    };
    let views = bufs
        .iter()
        .map(|(n, s, d)| {
            Ok((
                n.clone(),
                TensorView::new(st_dtype, s.clone(), d).map_err(|e| Error::Weights {
                    path: path.into(),
                    msg: e.to_string(),
                })?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = HashMap::from([
        (
            "activation".to_string(),
            spec.activation().name().to_string(),
        ),
        ("format".to_string(), "pt".to_string()),
    ]);
    if let ModelSpec::Cnn(c) = &spec {
        meta.insert("model".to_string(), spec.name());
        meta.insert(
            "input".to_string(),
            format!("{},{},{}", c.input[0], c.input[1], c.input[2]),
        );
    }
    if let ModelSpec::Vgg(super::vgg::VggSpec { input, .. })
    | ModelSpec::ResNet(super::resnet::ResNetSpec { input, .. }) = &spec
    {
        meta.insert("model".to_string(), spec.name());
        meta.insert(
            "input".to_string(),
            format!("{},{},{}", input[0], input[1], input[2]),
        );
    }
    if let ModelSpec::Transformer(t) = &spec {
        meta.insert("model".to_string(), spec.name());
        meta.insert("heads".to_string(), t.heads.to_string());
        meta.insert("mask".to_string(), t.masked.to_string());
        meta.insert("ln_eps".to_string(), super::transformer::LN_EPS.to_string());
    }
    for (k, v) in extra {
        meta.insert(k.clone(), v.clone());
    }
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::Weights {
        path: path.into(),
        msg: e.to_string(),
    })
}

fn to_bytes(x: &[f64], dtype: SaveDtype) -> Vec<u8> {
    match dtype {
        SaveDtype::F32 => x.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
        SaveDtype::F64 => x.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    }
}

/// What the user said explicitly about a weights file's network (command-line options). An
/// explicit value wins over a default; one that contradicts what the file says (its shapes, its
/// metadata) is an error naming both.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// `--widths`: must equal the widths the tensors' shapes give.
    pub widths: Option<Vec<usize>>,
    /// `--activation`: used when the file's metadata has none (PyTorch's
    /// `save_file(model.state_dict(), f)` writes none); must equal it when it has one.
    pub activation: Option<Activation>,
    /// `--loss`: must equal the metadata's `loss` when the file has one.
    pub loss: Option<crate::backend::LossKind>,
    /// `--mask` (the Transformer only): must equal the metadata's `mask` when the file has one.
    pub mask: Option<bool>,
}

/// More of what the caller knows and the file may not say (kept apart from [`Expect`], whose
/// fields callers list in full). Each is used when the file's metadata is silent and must agree
/// with it when it speaks.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--heads` (the Transformer): attention heads.
    pub heads: Option<usize>,
    /// `--ln-eps` (the Transformer): LayerNorm's ε the weights were trained with; this engine
    /// computes with [`crate::nn::transformer::LN_EPS`] only, so another value is an error.
    pub ln_eps: Option<f64>,
    /// The data set's shape of one sample, C, H, W (a convolutional network): the data set
    /// decides, and a metadata `input` that contradicts it is an error naming both. Without it a
    /// network of CIFAR-10's 3072 inputs is checked against CIFAR-10's 3×32×32.
    pub data_shape: Option<[usize; 3]>,
}

/// A setting the file does not state, taken at its default: to announce on the network line and
/// in the JSON, with the option that sets it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Assumed {
    /// The metadata key (`heads`, `ln_eps`, `mask`, `activation`).
    pub key: String,
    /// The value taken.
    pub value: String,
    /// The command-line option that sets it (`--heads`, …).
    pub option: String,
}

impl Assumed {
    pub(crate) fn new(key: &str, value: &str, option: &str) -> Self {
        Assumed {
            key: key.into(),
            value: value.into(),
            option: option.into(),
        }
    }
}

/// Assumed settings as one clause: "assumed (the file does not say): heads = 8 (--heads), …";
/// None when nothing was assumed.
pub fn assumed_line(assumed: &[Assumed]) -> Option<String> {
    if assumed.is_empty() {
        return None;
    }
    let each: Vec<String> = assumed
        .iter()
        .map(|a| format!("{} = {} ({})", a.key, a.value, a.option))
        .collect();
    Some(format!(
        "assumed (the file does not say): {}",
        each.join(", ")
    ))
}

/// A loaded weights file: the network, θ, the loss its metadata names, what was assumed and
/// what the reader warns about.
#[derive(Clone, Debug)]
pub struct LoadedWeights {
    pub spec: ModelSpec,
    pub theta: Vec<f64>,
    /// The metadata's `loss` (the Transformer: else `--loss`'s).
    pub loss: Option<LossKind>,
    /// Settings the file does not state, taken at their defaults (announce them).
    pub assumed: Vec<Assumed>,
    /// One line per metadata key the reader does not know (print them).
    pub warnings: Vec<String>,
}

/// Load weights: the architecture is read from the tensors' shapes, the activation from the
/// metadata (tanh when absent).
pub fn load(path: &Path) -> Result<(ModelSpec, Vec<f64>)> {
    load_expecting(path, &Expect::default())
}

/// [`load`], checked against what the user said explicitly ([`Expect`]).
pub fn load_expecting(path: &Path, expect: &Expect) -> Result<(ModelSpec, Vec<f64>)> {
    load_full(path, expect).map(|(s, t, _)| (s, t))
}

/// [`load_expecting`], with the loss the file's metadata names (`loss`), if any.
pub fn load_full(
    path: &Path,
    expect: &Expect,
) -> Result<(ModelSpec, Vec<f64>, Option<crate::backend::LossKind>)> {
    load_checked(path, expect, &Overrides::default()).map(|l| (l.spec, l.theta, l.loss))
}

/// Everything a weights file gives ([`LoadedWeights`]: with the assumed settings and the
/// warnings), checked against [`Expect`] and [`Overrides`].
pub fn load_checked(path: &Path, expect: &Expect, over: &Overrides) -> Result<LoadedWeights> {
    let bytes = read_file(path)?;
    parse::parse(&bytes, path, expect, over)
}

pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<(ModelSpec, Vec<f64>)> {
    load_bytes_expecting(bytes, path, &Expect::default())
}

/// [`load_bytes`], checked against [`Expect`]; `path` only names the file in errors.
pub fn load_bytes_expecting(
    bytes: &[u8],
    path: &Path,
    expect: &Expect,
) -> Result<(ModelSpec, Vec<f64>)> {
    load_bytes_checked(bytes, path, expect, &Overrides::default()).map(|l| (l.spec, l.theta))
}

/// [`load_checked`] of bytes in memory; `path` only names the file in errors.
pub fn load_bytes_checked(
    bytes: &[u8],
    path: &Path,
    expect: &Expect,
    over: &Overrides,
) -> Result<LoadedWeights> {
    parse::parse(bytes, path, expect, over)
}

/// safetensors' largest header (its `MAX_HEADER_SIZE`).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The bytes of a weights file, read once (a pipe works) and no more than the format can hold:
/// the header no longer than [`MAX_HEADER_BYTES`], the data no longer than the header's offsets
/// say (and than memory allows), so `/dev/zero` or a huge sparse file ends in an error. A file
/// not shaped like safetensors is read no further than its first bytes (which name its format).
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let werr = |msg: String| Error::Weights {
        path: path.into(),
        msg,
    };
    let mut f = std::fs::File::open(path)
        .map_err(|e| werr(format!("cannot read the weights file: {e}")))?;
    let file_len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    let read_err = |e: std::io::Error| werr(format!("cannot read the weights file: {e}"));
    let mut head = Vec::new();
    (&mut f).take(64).read_to_end(&mut head).map_err(read_err)?;
    let n = head
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    let Some(n) = n.filter(|&n| n <= MAX_HEADER_BYTES && head.get(8) == Some(&b'{')) else {
        // Not safetensors: its first bytes say what it is (or that it is not safetensors).
        return Ok(head);
    };
    let header_end = 8 + n;
    if let Some(len) = file_len
        && len < header_end
    {
        return Err(werr(format!(
            "not a safetensors file: the header claims {n} bytes, the file holds {len}: truncated"
        )));
    }
    let mut bytes = head;
    let have = bytes.len() as u64;
    (&mut f)
        .take(header_end.saturating_sub(have))
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let header_end_at = usize::try_from(header_end)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let header = bytes.get(8..header_end_at).unwrap_or_default();
    let Some(data_len) = data_len(header) else {
        return Ok(bytes); // a malformed or short header: the parser names it
    };
    let total = header_end + data_len;
    if let Some(len) = file_len
        && len != total
    {
        return Err(werr(format!(
            "not a safetensors file: its header promises {total} bytes in all, the file holds {len}: truncated, extended, or not one file"
        )));
    }
    crate::data::read::check_fits(&format!("reading the weights {}", path.display()), total)?;
    let have = bytes.len() as u64;
    (&mut f)
        .take(total.saturating_sub(have) + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > total {
        return Err(werr(format!(
            "more bytes than the {total} its header promises: not one safetensors file"
        )));
    }
    Ok(bytes)
}

/// The data bytes a safetensors JSON header promises: the largest end offset of its tensors.
/// None when the header is not such JSON.
fn data_len(header: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(header).ok()?;
    let mut end = 0u64;
    for (k, t) in v.as_object()? {
        if k == "__metadata__" {
            continue;
        }
        let stop = t.get("data_offsets")?.get(1)?.as_u64()?;
        end = end.max(stop);
    }
    Some(end)
}

/// What a file that is not safetensors most likely is, with how to convert it. A file shaped like
/// safetensors (an 8-byte header length that fits, then `{`) is never called foreign, whatever its
/// first bytes (a 640-byte header starts 0x80 0x02, like a pickle).
fn foreign_format(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() >= 9 && bytes[8] == b'{' {
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[..8]);
        if u64::from_le_bytes(len) <= (bytes.len() - 8) as u64 {
            return None;
        }
    }
    if bytes.starts_with(b"PK\x03\x04") {
        Some(
            "a zip archive — what torch.save writes (PyTorch ≥ 1.6), or NumPy's .npz — not safetensors: convert it in Python: `from safetensors.torch import save_file; save_file(torch.load(f, map_location=\"cpu\"), \"w.safetensors\")` (or save_file(model.state_dict(), …))",
        )
    } else if bytes.first() == Some(&0x80) && bytes.get(1).is_some_and(|&v| (2..=5).contains(&v)) {
        Some(
            "a Python pickle — what torch.save wrote before PyTorch 1.6 — not safetensors: convert it in Python: `from safetensors.torch import save_file; save_file(torch.load(f, map_location=\"cpu\"), \"w.safetensors\")` (or save_file(model.state_dict(), …))",
        )
    } else if bytes.starts_with(b"\x89HDF") {
        Some(
            "an HDF5 file (Keras .h5), not safetensors: export the kernels transposed to PyTorch's [out, in] and save them with safetensors",
        )
    } else if bytes.first().is_some_and(|&b| b == b'{' || b == b'[') {
        Some(
            "a JSON file, not safetensors: weights are safetensors with PyTorch's names (fc1.weight [out, in], fc1.bias, …), e.g. `safetensors.torch.save_file(model.state_dict(), \"w.safetensors\")`",
        )
    } else if bytes.starts_with(b"\x93NUMPY") {
        Some(
            "a NumPy .npy array, not safetensors: save the named tensors with safetensors.numpy.save_file",
        )
    } else {
        None
    }
}
