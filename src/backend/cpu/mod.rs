//! The CPU backend, generic over the scalar: `f64` is the oracle every other path is tested
//! against; `f32` is the fast fallback (matrixmultiply's packed, multi-threaded GEMM).
//! Reductions accumulate in `f64` in both, so an f32 dot over 199,210 terms keeps f32 round-off
//! only from its inputs.
//!
//! `mod.rs` holds the backend and its [`Buffers`] impl; each other family's impl (argument
//! checks, then a kernel) sits in the file of its kernels, which work on slices: `blas` (GEMM,
//! dot), `nn` (layers, losses, Adam), `conv` (im2col and col2im), `seq` and `attention` (the
//! sequence ops). Beside them: [`real`] (the scalars), [`input`] (the network's input, sparse
//! where it pays), `par` (threads).

mod attention;
mod blas;
mod conv;
/// The network's input on the CPU backend (dense, or a common value plus a sparse remainder).
pub mod input;
mod nn;
mod par;
/// The scalars the CPU backend computes in.
pub mod real;
mod seq;
mod varlen;

pub use real::{Real, tanh_f32};

use super::{Buffers, Precision, check_range};
use crate::error::Result;

/// CPU backend in precision `T` (`CpuBackend::<f64>::new()` is the oracle).
#[derive(Clone, Debug, Default)]
pub struct CpuBackend<T> {
    _t: std::marker::PhantomData<T>,
    /// Keep the network's input dense even where the sparse form applies (the tests' reference).
    dense_input: bool,
}

impl<T: Real> CpuBackend<T> {
    pub fn new() -> Self {
        CpuBackend {
            _t: std::marker::PhantomData,
            dense_input: false,
        }
    }
    /// A backend that multiplies by the network's input as a dense matrix always (the reference
    /// for the sparse products of [`super::input`]).
    pub fn with_dense_input() -> Self {
        CpuBackend {
            _t: std::marker::PhantomData,
            dense_input: true,
        }
    }
}

#[inline]
fn sl<'a, T>(v: &'a [T], off: usize, len: usize, what: &str) -> Result<&'a [T]> {
    check_range(what, v.len(), off, len)?;
    Ok(&v[off..off + len])
}

#[inline]
fn sl_mut<'a, T>(v: &'a mut [T], off: usize, len: usize, what: &str) -> Result<&'a mut [T]> {
    check_range(what, v.len(), off, len)?;
    Ok(&mut v[off..off + len])
}

impl<T: Real> Buffers for CpuBackend<T> {
    type Buf = Vec<T>;

    fn name(&self) -> String {
        format!("cpu-{}", T::PRECISION.name())
    }

    fn precision(&self) -> Precision {
        T::PRECISION
    }

    fn zeros(&self, len: usize) -> Result<Vec<T>> {
        Ok(vec![T::zero(); len])
    }

    fn upload(&self, data: &[f64]) -> Result<Vec<T>> {
        Ok(data.iter().map(|&x| T::of(x)).collect())
    }

    fn write(&self, buf: &mut Vec<T>, off: usize, data: &[f64]) -> Result<()> {
        for (d, &x) in sl_mut(buf, off, data.len(), "write")?.iter_mut().zip(data) {
            *d = T::of(x);
        }
        Ok(())
    }

    fn download(&self, buf: &Vec<T>) -> Result<Vec<f64>> {
        Ok(buf.iter().map(|x| x.wide()).collect())
    }

    fn download_range(&self, buf: &Vec<T>, off: usize, len: usize) -> Result<Vec<f64>> {
        Ok(sl(buf, off, len, "download")?
            .iter()
            .map(|x| x.wide())
            .collect())
    }

    fn len(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }

    fn copy(
        &self,
        src: &Vec<T>,
        s_off: usize,
        dst: &mut Vec<T>,
        d_off: usize,
        len: usize,
    ) -> Result<()> {
        let s = sl(src, s_off, len, "copy src")?;
        sl_mut(dst, d_off, len, "copy dst")?.copy_from_slice(s);
        Ok(())
    }

    fn fill(&self, x: &mut Vec<T>, off: usize, len: usize, value: f64) -> Result<()> {
        sl_mut(x, off, len, "fill")?.fill(T::of(value));
        Ok(())
    }
}
