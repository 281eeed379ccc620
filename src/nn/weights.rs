//! Weights in safetensors with PyTorch's names: `fc1.weight [out, in]`, `fc1.bias [out]`, …
//! A state dict of `nn.Sequential(Linear, Tanh, Linear, …)` (keys `0.weight`, `2.weight`, …) is
//! also accepted: its Linear layers are taken in index order. The activation is kept in the
//! file's metadata (`activation`), tanh when absent.

use super::mlp::MlpSpec;
use crate::backend::Activation;
use crate::error::{Error, Result};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Storage type of saved weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    F64,
}

/// Save θ of `spec` to `path` (atomically: a temporary file, then a rename).
pub fn save(path: &Path, spec: &MlpSpec, theta: &[f64], dtype: SaveDtype) -> Result<()> {
    let bytes = serialize(path, spec, theta, dtype)?;
    crate::experiment::output::write_atomic(path, &bytes)
}

/// θ of `spec` as safetensors bytes (PyTorch names); `path` only names the file in errors.
pub fn serialize(path: &Path, spec: &MlpSpec, theta: &[f64], dtype: SaveDtype) -> Result<Vec<u8>> {
    if theta.len() != spec.num_params() {
        return Err(Error::Shape(format!(
            "θ has {} entries, network has {}",
            theta.len(),
            spec.num_params()
        )));
    }
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, l) in spec.layers().iter().enumerate() {
        let w = &theta[l.w_off..l.w_off + l.fan_in * l.fan_out];
        let b = &theta[l.b_off..l.b_off + l.fan_out];
        bufs.push((
            format!("fc{}.weight", i + 1),
            vec![l.fan_out, l.fan_in],
            to_bytes(w, dtype),
        ));
        bufs.push((
            format!("fc{}.bias", i + 1),
            vec![l.fan_out],
            to_bytes(b, dtype),
        ));
    }
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
    let meta = HashMap::from([
        ("activation".to_string(), spec.activation.name().to_string()),
        ("format".to_string(), "pt".to_string()),
    ]);
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
}

/// Load weights: the architecture is read from the tensors' shapes, the activation from the
/// metadata (tanh when absent).
pub fn load(path: &Path) -> Result<(MlpSpec, Vec<f64>)> {
    load_expecting(path, &Expect::default())
}

/// [`load`], checked against what the user said explicitly ([`Expect`]).
pub fn load_expecting(path: &Path, expect: &Expect) -> Result<(MlpSpec, Vec<f64>)> {
    load_full(path, expect).map(|(s, t, _)| (s, t))
}

/// [`load_expecting`], with the loss the file's metadata names (`loss`), if any.
pub fn load_full(
    path: &Path,
    expect: &Expect,
) -> Result<(MlpSpec, Vec<f64>, Option<crate::backend::LossKind>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::Weights {
        path: path.into(),
        msg: format!("cannot read the weights file: {e}"),
    })?;
    parse(&bytes, path, expect)
}

pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<(MlpSpec, Vec<f64>)> {
    load_bytes_expecting(bytes, path, &Expect::default())
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

/// [`load_bytes`], checked against [`Expect`]; `path` only names the file in errors.
pub fn load_bytes_expecting(
    bytes: &[u8],
    path: &Path,
    expect: &Expect,
) -> Result<(MlpSpec, Vec<f64>)> {
    parse(bytes, path, expect).map(|(s, t, _)| (s, t))
}

/// The network, θ and the loss the metadata names, checked against [`Expect`].
fn parse(
    bytes: &[u8],
    path: &Path,
    expect: &Expect,
) -> Result<(MlpSpec, Vec<f64>, Option<crate::backend::LossKind>)> {
    let werr = |msg: String| Error::Weights {
        path: path.into(),
        msg,
    };
    if let Some(what) = foreign_format(bytes) {
        return Err(werr(format!("this is {what}")));
    }
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| werr(format!("not a safetensors file: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| werr(format!("bad header: {e}")))?;
    let from_file = match meta.metadata().as_ref().and_then(|m| m.get("activation")) {
        Some(a) => Some(a.parse::<Activation>().map_err(werr)?),
        None => None,
    };
    let activation = match (from_file, expect.activation) {
        (Some(f), Some(o)) if f != o => {
            return Err(werr(format!(
                "the file's metadata says activation = {}, --activation says {}: drop the option (the file decides) or fix the file",
                f.name(),
                o.name()
            )));
        }
        (f, o) => o.or(f).unwrap_or(Activation::Tanh),
    };
    // A file that names the network or the data it belongs to must name ours: fully connected
    // layers on MNIST.
    let named = |key: &str| meta.metadata().as_ref().and_then(|m| m.get(key)).cloned();
    if let Some(m) = named("model")
        && !(m == "mlp" || m.starts_with("fc"))
    {
        return Err(werr(format!(
            "the file's metadata says model = {m}; this engine runs fully connected networks (fc-tanh, fc-relu): use weights of one"
        )));
    }
    if let Some(d) = named("dataset")
        && !d.to_ascii_lowercase().contains("mnist")
    {
        return Err(werr(format!(
            "the file's metadata says dataset = {d}; these commands run on MNIST-5k: use weights trained on it"
        )));
    }
    let loss = match named("loss") {
        Some(l) => Some(
            l.parse::<crate::backend::LossKind>()
                .map_err(|e| werr(format!("metadata loss = {l}: {e}")))?,
        ),
        None => None,
    };
    if let (Some(f), Some(o)) = (loss, expect.loss)
        && f != o
    {
        return Err(werr(format!(
            "the file's metadata says loss = {}, --loss says {}: drop the option or fix the file",
            f.name(),
            o.name()
        )));
    }
    // Group tensors by layer prefix: `fcN` (N from 1) or a Sequential index `N`.
    let mut layers: BTreeMap<usize, [Option<TensorView>; 2]> = BTreeMap::new();
    let mut fc_style = None;
    for (name, view) in st.tensors() {
        let (prefix, kind) = name.rsplit_once('.').ok_or_else(|| {
            werr(format!(
                "unexpected tensor '{name}' (expected fcN.weight / fcN.bias)"
            ))
        })?;
        let slot = match kind {
            "weight" => 0,
            "bias" => 1,
            _ => {
                return Err(werr(format!(
                    "unexpected tensor '{name}' (expected fcN.weight / fcN.bias)"
                )));
            }
        };
        let (is_fc, idx) = match prefix.strip_prefix("fc") {
            Some(n) => (true, n.parse::<usize>().ok().filter(|&n| n >= 1)),
            None => (false, prefix.parse::<usize>().ok()),
        };
        let idx = idx.ok_or_else(|| {
            werr(format!(
                "unexpected tensor '{name}' (expected fcN.weight / fcN.bias)"
            ))
        })?;
        if *fc_style.get_or_insert(is_fc) != is_fc {
            return Err(werr("mixes `fcN.*` and Sequential `N.*` names".into()));
        }
        layers.entry(idx).or_default()[slot] = Some(view);
    }
    if layers.is_empty() {
        return Err(werr("no tensors".into()));
    }
    if fc_style == Some(true) {
        let want: Vec<usize> = (1..=layers.len()).collect();
        let have: Vec<usize> = layers.keys().copied().collect();
        if have != want {
            return Err(werr(format!(
                "layers {have:?}; expected fc1..fc{} without gaps",
                layers.len()
            )));
        }
    }
    let mut widths = Vec::new();
    let mut theta = Vec::new();
    for (li, (idx, [w, b])) in layers.into_iter().enumerate() {
        let lname = if fc_style == Some(true) {
            format!("fc{idx}")
        } else {
            idx.to_string()
        };
        let w = w.ok_or_else(|| werr(format!("{lname}.weight is missing")))?;
        let b = b.ok_or_else(|| werr(format!("{lname}.bias is missing")))?;
        // The weight first: a transposed kernel ([in, out], as JAX/Keras store it) is the
        // weight's fault, not the bias's.
        let ws = w.shape();
        if ws.len() != 2 {
            return Err(werr(format!(
                "{lname}.weight has shape {ws:?}; expected [out, in]"
            )));
        }
        let transposed = || {
            werr(format!(
                "{lname}.weight has shape {ws:?}, which looks transposed: PyTorch stores [out, in] = [{}, {}] (JAX/Keras kernels are [in, out]; save kernel.T)",
                ws[1], ws[0]
            ))
        };
        let prev = widths.get(li).copied();
        if let Some(prev) = prev
            && ws[1] != prev
        {
            if ws[0] == prev {
                return Err(transposed());
            }
            return Err(werr(format!(
                "{lname}.weight takes {} inputs but the previous layer gives {prev}",
                ws[1]
            )));
        }
        if b.shape() != [ws[0]] {
            if b.shape() == [ws[1]] && ws[0] != ws[1] {
                return Err(transposed());
            }
            return Err(werr(format!(
                "{lname}.bias has shape {:?}; expected [{}] ({lname}.weight is {ws:?})",
                b.shape(),
                ws[0]
            )));
        }
        if li == 0 {
            widths.push(ws[1]);
        }
        widths.push(ws[0]);
        for (t, part) in [(&w, "weight"), (&b, "bias")] {
            let x = read_floats(t, &lname, &werr)?;
            if let Some(i) = x.iter().position(|v| !v.is_finite()) {
                return Err(werr(format!(
                    "{lname}.{part} entry {i} (flat, row-major) is {} (not finite); parameter {} of θ",
                    x[i],
                    theta.len() + i
                )));
            }
            theta.extend(x);
        }
    }
    if let Some(want) = &expect.widths
        && *want != widths
    {
        return Err(werr(format!(
            "the tensors' shapes give widths {widths:?}, --widths says {want:?}: drop the option (the file decides) or give the matching file"
        )));
    }
    let spec = MlpSpec::new(widths, activation).map_err(|e| werr(e.to_string()))?;
    Ok((spec, theta, loss))
}

fn read_floats(v: &TensorView, lname: &str, werr: &dyn Fn(String) -> Error) -> Result<Vec<f64>> {
    let d = v.data();
    match v.dtype() {
        Dtype::F32 => Ok(d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect()),
        Dtype::F64 => Ok(d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()),
        other => Err(werr(format!(
            "{lname}: dtype {other:?} is not supported (save as float32 or float64)"
        ))),
    }
}
