//! The dominant subspace S_k = span(u₁..u_k) and its projections: P_k v, P_k⊥ v = v − P_k v and
//! the alignment χ_k(v) = ‖P_k v‖ / ‖v‖ (0 for v = 0).
//!
//! The one home of that arithmetic: [`Span`] states the two products (c = U v, then Uᵀ c added or
//! written) once, and the stepper's projected update, its effective learning rates and χ_k, the
//! `spectrum` job and [`Subspace`] all call it.

use crate::backend::{Backend, Mat, MatMut};
use crate::error::{Error, Result};

/// The first `k` rows (each `dim` long) of a buffer, read as the orthonormal basis U of S_k.
pub struct Span<'a, B: Backend> {
    /// The buffer whose first `k` rows are the basis.
    pub rows: &'a B::Buf,
    /// The dimension of S_k.
    pub k: usize,
    /// The length of a row (the number of parameters).
    pub dim: usize,
}

impl<'a, B: Backend> Span<'a, B> {
    /// The first `k` rows of `rows` (each `dim` long).
    pub fn new(rows: &'a B::Buf, k: usize, dim: usize) -> Self {
        Span { rows, k, dim }
    }

    /// `coef[..k]` = U v: the coefficients of v on the basis (one batched product).
    pub fn coefficients(&self, b: &B, v: &B::Buf, coef: &mut B::Buf) -> Result<()> {
        let (k, p) = (self.k, self.dim);
        b.gemm(
            Mat::new(self.rows, 0, k, p),
            Mat::new(v, 0, p, 1),
            MatMut::new(coef, 0, k, 1),
            1.0,
            0.0,
        )
    }

    /// `out` ← Uᵀ c (`perp` false: the part in S_k) or `out` ← `out` − Uᵀ c (`perp` true: what
    /// is left outside it), c = `coef[..k]`.
    pub fn expand(&self, b: &B, coef: &B::Buf, out: &mut B::Buf, perp: bool) -> Result<()> {
        let (k, p) = (self.k, self.dim);
        if perp {
            b.gemm(
                Mat::new(self.rows, 0, k, p).t(),
                Mat::new(coef, 0, k, 1),
                MatMut::new(out, 0, p, 1),
                -1.0,
                1.0,
            )
        } else {
            b.gemm(
                Mat::new(self.rows, 0, k, p).t(),
                Mat::new(coef, 0, k, 1),
                MatMut::new(out, 0, p, 1),
                1.0,
                0.0,
            )
        }
    }

    /// x ← P_k x (or P_k⊥ x when `perp`) in place; `coef`: k elements of scratch.
    pub fn project_in_place(
        &self,
        b: &B,
        x: &mut B::Buf,
        coef: &mut B::Buf,
        perp: bool,
    ) -> Result<()> {
        self.coefficients(b, x, coef)?;
        self.expand(b, coef, x, perp)
    }
}

/// ‖v‖ and χ_k(v) = ‖U v‖/‖v‖ (at most 1; 0 for v = 0) from the k coefficients U v and ‖v‖²
/// read back (the stepper's χ_k of ∇L).
pub fn norm_and_chi(coefs: &[f64], norm2: f64) -> (f64, f64) {
    let norm = norm2.max(0.0).sqrt();
    let pv = coefs.iter().map(|x| x * x).sum::<f64>().sqrt();
    let chi = if norm == 0.0 {
        0.0
    } else {
        (pv / norm).min(1.0)
    };
    (norm, chi)
}

/// An orthonormal basis of k vectors (rows of a k × dim buffer).
pub struct Subspace<B: Backend> {
    pub k: usize,
    pub dim: usize,
    pub basis: B::Buf,
    coef: B::Buf,
}

impl<B: Backend> Subspace<B> {
    /// Wrap `basis`, whose first k rows must be orthonormal (as Lanczos returns them).
    pub fn new(b: &B, basis: B::Buf, k: usize, dim: usize) -> Result<Self> {
        if k == 0 || b.len(&basis) < k * dim {
            return Err(Error::Shape(format!(
                "subspace: {} elements cannot hold {k} vectors of length {dim}",
                b.len(&basis)
            )));
        }
        Ok(Subspace {
            k,
            dim,
            basis,
            coef: b.zeros(k)?,
        })
    }

    /// The basis as a [`Span`].
    pub fn span(&self) -> Span<'_, B> {
        Span::new(&self.basis, self.k, self.dim)
    }

    /// out = P_k v (or P_k⊥ v when `perp`).
    pub fn project(&mut self, b: &B, v: &B::Buf, out: &mut B::Buf, perp: bool) -> Result<()> {
        let span = Span::new(&self.basis, self.k, self.dim);
        span.coefficients(b, v, &mut self.coef)?;
        if perp {
            b.copy(v, 0, out, 0, self.dim)?;
        }
        span.expand(b, &self.coef, out, perp)
    }

    /// χ_k(v) = ‖P_k v‖ / ‖v‖, 0 for v = 0.
    pub fn chi(&mut self, b: &B, v: &B::Buf) -> Result<f64> {
        let p = self.dim;
        let nv = b.norm(v, 0, p)?;
        if nv == 0.0 {
            return Ok(0.0);
        }
        let mut pv = b.zeros(p)?;
        self.project(b, v, &mut pv, false)?;
        Ok((b.norm(&pv, 0, p)? / nv).min(1.0))
    }
}
