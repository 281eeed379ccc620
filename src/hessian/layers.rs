//! Per-layer spectra: the diagonal Hessian block H_ll of one parameter block (a layer's tensors,
//! named as in the weights file), as an operator of its own — the full HVP of a direction that is
//! zero outside the block, read back on the block — and its top eigenvalues by the project's
//! Lanczos ([`super::lanczos`]).
//!
//! H_ll v_l = (H [0; v_l; 0])_l: one full HVP per product, so a block's spectrum costs what a
//! whole-network solve of the same length does. Blocks are grouped by the name before the last
//! dot (`fc1.weight` and `fc1.bias` are the block `fc1`), the grouping of PyHessian's per-layer
//! request and of the weights' `state_dict`.

use super::Operator;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::graph::ParamTensor;

/// A contiguous range of θ made of one or more named tensors.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ParamBlock {
    /// The block's name: the tensors' common prefix (`fc1` for `fc1.weight`, `fc1.bias`).
    pub name: String,
    /// The tensors' names, in θ's order.
    pub tensors: Vec<String>,
    /// Offset in θ (elements).
    pub off: usize,
    /// Length (elements).
    pub len: usize,
}

/// The name of a tensor's block: everything before its last dot (the whole name without one).
fn prefix(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(a, _)| a)
}

/// θ's tensors grouped into blocks by name prefix, consecutive tensors of the same prefix
/// together (`params` as [`crate::nn::graph::Graph::params`]: in order, without gaps).
pub fn param_blocks(params: &[ParamTensor]) -> Vec<ParamBlock> {
    let mut out: Vec<ParamBlock> = Vec::new();
    for t in params {
        let name = prefix(&t.name);
        match out.last_mut() {
            Some(b) if b.name == name && b.off + b.len == t.off => {
                b.tensors.push(t.name.clone());
                b.len += t.len();
            }
            _ => out.push(ParamBlock {
                name: name.to_string(),
                tensors: vec![t.name.clone()],
                off: t.off,
                len: t.len(),
            }),
        }
    }
    out
}

/// The diagonal block H_ll of an operator on the range `off..off + len` of its vectors.
pub struct Restricted<'a, B: Backend, O: Operator<B>> {
    backend: &'a B,
    inner: &'a mut O,
    off: usize,
    len: usize,
    /// Full-length scratch: the embedded directions and their products (grown as rows need).
    x: Option<B::Buf>,
    y: Option<B::Buf>,
}

impl<'a, B: Backend, O: Operator<B>> Restricted<'a, B, O> {
    /// The block of `inner` on `off..off + len`. Errors: an empty or out-of-range block.
    pub fn new(backend: &'a B, inner: &'a mut O, off: usize, len: usize) -> Result<Self> {
        if len == 0 || off + len > inner.dim() {
            return Err(Error::InvalidArgument(format!(
                "block {off}..{}: outside 0..{} or empty",
                off + len,
                inner.dim()
            )));
        }
        Ok(Restricted {
            backend,
            inner,
            off,
            len,
            x: None,
            y: None,
        })
    }

    fn scratch(&mut self, rows: usize) -> Result<(B::Buf, B::Buf)> {
        let n = rows * self.inner.dim();
        let get = |slot: &mut Option<B::Buf>| -> Result<B::Buf> {
            match slot.take() {
                Some(b) if self.backend.len(&b) >= n => Ok(b),
                _ => self.backend.zeros(n),
            }
        };
        let x = get(&mut self.x)?;
        let y = get(&mut self.y)?;
        Ok((x, y))
    }
}

impl<B: Backend, O: Operator<B>> Operator<B> for Restricted<'_, B, O> {
    fn dim(&self) -> usize {
        self.len
    }
    fn apply(&mut self, x: &B::Buf, x_off: usize, y: &mut B::Buf, y_off: usize) -> Result<()> {
        self.apply_block(x, x_off, 1, y, y_off)
    }
    fn apply_block(
        &mut self,
        x: &B::Buf,
        x_off: usize,
        rows: usize,
        y: &mut B::Buf,
        y_off: usize,
    ) -> Result<()> {
        let p = self.inner.dim();
        let (mut xf, mut yf) = self.scratch(rows)?;
        let b = self.backend;
        b.fill(&mut xf, 0, rows * p, 0.0)?;
        for r in 0..rows {
            b.copy(x, x_off + r * self.len, &mut xf, r * p + self.off, self.len)?;
        }
        self.inner.apply_block(&xf, 0, rows, &mut yf, 0)?;
        for r in 0..rows {
            b.copy(&yf, r * p + self.off, y, y_off + r * self.len, self.len)?;
        }
        self.x = Some(xf);
        self.y = Some(yf);
        Ok(())
    }
}

/// The top eigenvalues of one block's H_ll (the `per_layer` rows of `spectrum --per-layer`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerSpectrum {
    pub block: ParamBlock,
    /// The top min(k, len) eigenvalues of H_ll, largest first.
    pub eigenvalues: Vec<f64>,
    /// ‖H_ll u − λ u‖ of each pair.
    pub residuals: Vec<f64>,
    /// HVPs spent on this block.
    pub hvps: usize,
    pub converged: bool,
}

/// The top `opts.k` eigenvalues (at most each block's length) of every block's H_ll by
/// [`super::lanczos::lanczos`] with `opts`; `progress` sees each block's name before its solve.
/// Errors: a block outside the operator, the solver's.
pub fn layer_spectra<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    blocks: &[ParamBlock],
    opts: &super::lanczos::LanczosOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<LayerSpectrum>> {
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        progress(&block.name);
        let mut r = Restricted::new(b, op, block.off, block.len)?;
        let o = super::lanczos::LanczosOptions {
            k: opts.k.min(block.len),
            ..opts.clone()
        };
        let eig = super::lanczos::lanczos(b, &mut r, &o, None, &mut |_| {})?;
        out.push(LayerSpectrum {
            block: block.clone(),
            eigenvalues: eig.values,
            residuals: eig.residuals,
            hvps: eig.products,
            converged: eig.converged,
        });
    }
    Ok(out)
}

/// The spectral density of one block's H_ll by stochastic Lanczos quadrature (the
/// `per_layer_density` rows of `spectrum --per-layer --density`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerDensity {
    pub block: ParamBlock,
    /// tr H_ll from the quadrature's first moment (Hutchinson with the same probes) and its
    /// standard error.
    pub trace: f64,
    pub trace_std_error: f64,
    /// The smallest and largest Gauss node over the probes (the density's support).
    pub range: (f64, f64),
    /// HVPs spent on this block (probes × min(steps, the block's length)).
    pub hvps: usize,
    /// The broadened density on its grid.
    pub density: super::slq::Density,
}

/// [`super::slq::slq`] of every block's H_ll with `slq` (steps capped at each block's length)
/// and its density with `dens`; `progress` sees each block's name before its quadrature.
/// Errors: a block outside the operator, SLQ's (no probes or steps, a non-finite product).
pub fn layer_densities<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    blocks: &[ParamBlock],
    slq: &super::slq::SlqOptions,
    dens: &super::slq::DensityOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<LayerDensity>> {
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        progress(&block.name);
        let mut r = Restricted::new(b, op, block.off, block.len)?;
        let q = super::slq::slq(b, &mut r, slq, &mut |_, _| {})?;
        let (trace, trace_std_error) = q.trace();
        out.push(LayerDensity {
            block: block.clone(),
            trace,
            trace_std_error,
            range: q.range(),
            hvps: q.hvps,
            density: q.density(dens),
        });
    }
    Ok(out)
}
