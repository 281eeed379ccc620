//! The dominant subspace S_k = span(u₁..u_k) and its projections: P_k v, P_k⊥ v = v − P_k v and
//! the alignment χ_k(v) = ‖P_k v‖ / ‖v‖ (0 for v = 0).

use crate::backend::Backend;
use crate::error::{Error, Result};

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

    /// out = P_k v (or P_k⊥ v when `perp`).
    pub fn project(&mut self, b: &B, v: &B::Buf, out: &mut B::Buf, perp: bool) -> Result<()> {
        let (k, p) = (self.k, self.dim);
        b.gemm(
            false,
            false,
            k,
            1,
            p,
            1.0,
            &self.basis,
            0,
            v,
            0,
            0.0,
            &mut self.coef,
            0,
        )?;
        if perp {
            b.copy(v, 0, out, 0, p)?;
            b.gemm(
                true,
                false,
                p,
                1,
                k,
                -1.0,
                &self.basis,
                0,
                &self.coef,
                0,
                1.0,
                out,
                0,
            )
        } else {
            b.gemm(
                true,
                false,
                p,
                1,
                k,
                1.0,
                &self.basis,
                0,
                &self.coef,
                0,
                0.0,
                out,
                0,
            )
        }
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
