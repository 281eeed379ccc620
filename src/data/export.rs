//! A data set as safetensors, for other programs (PyTorch's `safetensors.torch.load_file`):
//! `x` (f32, the features in the shape the caller gives, e.g. `[n, 784]` or `[n, 3, 32, 32]`) and
//! `y` (i64 labels, `[n]`), with string metadata (data set, preprocessing, n, …).

use super::dataset::Dataset;
use crate::error::{Error, Result};
use safetensors::{Dtype, tensor::TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// The safetensors bytes of `data` with `x` reshaped to `x_shape` (whose first entry must be n
/// and whose product n·d); `path` only names the file in errors.
pub fn to_safetensors(
    data: &Dataset,
    x_shape: &[usize],
    meta: &[(&str, String)],
    path: &Path,
) -> Result<Vec<u8>> {
    to_safetensors_with(data, x_shape, meta, &[], path)
}

/// [`to_safetensors`] with more f32 tensors `(name, values, shape)` (SST-2's `mask`).
pub fn to_safetensors_with(
    data: &Dataset,
    x_shape: &[usize],
    meta: &[(&str, String)],
    extra: &[(&str, Vec<f64>, Vec<usize>)],
    path: &Path,
) -> Result<Vec<u8>> {
    if x_shape.first() != Some(&data.n) || x_shape.iter().product::<usize>() != data.n * data.d {
        return Err(Error::Shape(format!(
            "export: shape {x_shape:?} for {} samples of {} features",
            data.n, data.d
        )));
    }
    let x: Vec<u8> = data
        .x
        .iter()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect();
    let y: Vec<u8> = data
        .labels
        .iter()
        .flat_map(|&l| (l as i64).to_le_bytes())
        .collect();
    let err = |e: safetensors::SafeTensorError| Error::data(path, e.to_string());
    let extra_bytes: Vec<Vec<u8>> = extra
        .iter()
        .map(|(_, v, _)| v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect())
        .collect();
    let mut views = vec![
        (
            "x",
            TensorView::new(Dtype::F32, x_shape.to_vec(), &x).map_err(err)?,
        ),
        (
            "y",
            TensorView::new(Dtype::I64, vec![data.n], &y).map_err(err)?,
        ),
    ];
    for ((name, _, shape), b) in extra.iter().zip(&extra_bytes) {
        views.push((
            name,
            TensorView::new(Dtype::F32, shape.clone(), b).map_err(err)?,
        ));
    }
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    safetensors::serialize(views, Some(meta)).map_err(err)
}

/// Write `to_safetensors(…)` to `path` atomically (a temporary file in the same directory, then a
/// rename; mode 0644 on Unix). The directory is created if needed.
pub fn write_safetensors(
    path: &Path,
    data: &Dataset,
    x_shape: &[usize],
    meta: &[(&str, String)],
) -> Result<()> {
    write_safetensors_with(path, data, x_shape, meta, &[])
}

/// [`write_safetensors`] with more f32 tensors ([`to_safetensors_with`]).
pub fn write_safetensors_with(
    path: &Path,
    data: &Dataset,
    x_shape: &[usize],
    meta: &[(&str, String)],
    extra: &[(&str, Vec<f64>, Vec<usize>)],
) -> Result<()> {
    let bytes = to_safetensors_with(data, x_shape, meta, extra, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(&bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
