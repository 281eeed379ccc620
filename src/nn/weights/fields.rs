//! What every weights reader shares: how a fault names the file, the loss the metadata names,
//! a tensor's entries read as f64 and checked finite (the flat readers in `parse` and the
//! PyTorch-named VGG/ResNet reader in `deep`).

use super::Expect;
use super::meta::Meta;
use crate::backend::LossKind;
use crate::error::{Error, Result};
use safetensors::{Dtype, tensor::TensorView};

/// How a reader names a fault: an error naming the file.
pub(super) type Werr<'a> = &'a dyn Fn(String) -> Error;

/// The loss the metadata names (checked against `--loss`).
pub(super) fn file_loss(meta: &Meta, expect: &Expect, werr: Werr) -> Result<Option<LossKind>> {
    let loss = match meta.get("loss") {
        Some(l) => Some(
            l.parse::<LossKind>()
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
    Ok(loss)
}

/// [`read_floats`], every entry finite: else an error naming the entry and its index in θ
/// (`at` is where the tensor starts).
pub(super) fn finite_floats(
    v: &TensorView,
    lname: &str,
    part: &str,
    at: usize,
    werr: Werr,
) -> Result<Vec<f64>> {
    let x = read_floats(v, lname, werr)?;
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(werr(format!(
            "{lname}.{part} entry {i} (flat, row-major) is {} (not finite); parameter {} of θ",
            x[i],
            at + i
        )));
    }
    Ok(x)
}

/// The tensor's entries as f64 (float32 or float64 files); else an error naming `lname`.
pub(super) fn read_floats(v: &TensorView, lname: &str, werr: Werr) -> Result<Vec<f64>> {
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
