//! The files of checkpoints and snapshots: atomic writes (through a temporary and a rename) and
//! named f64 vectors as safetensors stamped with their step, read back with the check that a
//! JSON and its tensors belong together.

use super::record::Vectors;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Write a file through a temporary in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    readable(tmp.as_file(), path)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Give a file written through a temporary (created 0600) the usual mode of a new file, 0644,
/// so results and weights are readable like any other output.
fn readable(file: &std::fs::File, path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

/// Named f64 vectors as safetensors bytes, with `step` in the metadata (checkpoints, snapshots).
/// Errors: a tensor the format refuses.
pub fn tensors_bytes(v: &Vectors, step: usize) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<(String, Vec<u8>, usize)> = v
        .iter()
        .map(|(n, x)| (n.clone(), bytemuck::cast_slice(x).to_vec(), x.len()))
        .collect();
    let views = bytes
        .iter()
        .map(|(n, b, len)| {
            TensorView::new(Dtype::F64, vec![*len], b)
                .map(|t| (n.clone(), t))
                .map_err(|e| Error::InvalidArgument(format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("step".to_string(), step.to_string());
    safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| Error::InvalidArgument(format!("safetensors: {e}")))
}

/// The text of `dir/json` and the bytes of `dir/tensors` with their paths (a checkpoint's or a
/// snapshot's pair). Errors: either file unreadable, named.
pub fn read_pair(
    dir: &Path,
    json: &str,
    tensors: &str,
) -> Result<(String, PathBuf, Vec<u8>, PathBuf)> {
    let jp = dir.join(json);
    let text = std::fs::read_to_string(&jp).map_err(|e| Error::io(&jp, e))?;
    let tp = dir.join(tensors);
    let raw = std::fs::read(&tp).map_err(|e| Error::io(&tp, e))?;
    Ok((text, jp, raw, tp))
}

/// The vectors of a file written by [`tensors_bytes`] (`tp` names it in errors). Errors: not
/// safetensors, written for another step than `step` (a torn pair of files), a tensor that is not
/// f64 or not finite.
pub fn tensors_parse(raw: &[u8], tp: &Path, step: usize) -> Result<Vectors> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(raw)
        .map_err(|e| Error::data(tp, format!("not a safetensors file: {e}")))?;
    let written = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("step").cloned());
    if written.as_deref() != Some(step.to_string().as_str()) {
        return Err(Error::data(
            tp,
            format!(
                "written for step {written:?}, its JSON says {step}: the pair is torn (interrupted while writing); rerun from scratch"
            ),
        ));
    }
    let st = safetensors::SafeTensors::deserialize(raw)
        .map_err(|e| Error::data(tp, format!("not a safetensors file: {e}")))?;
    let mut v = Vec::new();
    for (name, t) in st.tensors() {
        if t.dtype() != safetensors::tensor::Dtype::F64 {
            return Err(Error::data(tp, format!("{name}: expected f64")));
        }
        let x: Vec<f64> = t
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect();
        if x.iter().any(|v| !v.is_finite()) {
            return Err(Error::data(tp, format!("{name}: non-finite values")));
        }
        v.push((name, x));
    }
    Ok(v)
}
