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
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    std::io::Write::write_all(tmp.as_file_mut(), &bytes).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
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

/// Load weights: the architecture is read from the tensors' shapes.
pub fn load(path: &Path) -> Result<(MlpSpec, Vec<f64>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    load_bytes(&bytes, path)
}

pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<(MlpSpec, Vec<f64>)> {
    let werr = |msg: String| Error::Weights {
        path: path.into(),
        msg,
    };
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| werr(format!("not a safetensors file: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| werr(format!("bad header: {e}")))?;
    let activation = match meta.metadata().as_ref().and_then(|m| m.get("activation")) {
        Some(a) => a.parse::<Activation>().map_err(werr)?,
        None => Activation::Tanh,
    };
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
        let ws = w.shape();
        if ws.len() != 2 {
            return Err(werr(format!(
                "{lname}.weight has shape {ws:?}; expected [out, in]"
            )));
        }
        if b.shape() != [ws[0]] {
            return Err(werr(format!(
                "{lname}.bias has shape {:?}; expected [{}]",
                b.shape(),
                ws[0]
            )));
        }
        if li == 0 {
            widths.push(ws[1]);
        } else if widths[li] != ws[1] {
            return Err(werr(format!(
                "{lname}.weight takes {} inputs but the previous layer gives {}",
                ws[1], widths[li]
            )));
        }
        widths.push(ws[0]);
        theta.extend(read_floats(&w, &lname, &werr)?);
        theta.extend(read_floats(&b, &lname, &werr)?);
    }
    if let Some(i) = theta.iter().position(|v| !v.is_finite()) {
        return Err(werr(format!("parameter {i} is {} (not finite)", theta[i])));
    }
    let spec = MlpSpec::new(widths, activation).map_err(|e| werr(e.to_string()))?;
    Ok((spec, theta))
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
