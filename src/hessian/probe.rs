//! Random probes and operator products on host vectors, for the randomized trace estimators
//! ([`super::trace`]) and the quadrature's start vectors ([`super::slq`]).
//!
//! The estimators need a few inner products per probe, not a basis, so their arithmetic runs in
//! f64 on the host; the operator (the engine's HVP) runs on its backend, rows at a time through
//! [`Operator::apply_block`] — one pass over the data for a block where the backend stacks
//! directions ([`Backend::preferred_block`]).

use super::Operator;
use crate::backend::Backend;
use crate::error::{Error, Result};

/// `dim` Rademacher signs (±1, each with probability ½) from a seeded ChaCha8 stream: the
/// probes of Hutchinson's estimator (the minimum-variance choice among i.i.d. probes with
/// E[z zᵀ] = I; Hutchinson 1990) and of PyHessian's `trace()` and `density()`.
pub fn rademacher(dim: usize, seed: u64) -> Vec<f64> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x7ade_3ac4_e2b0_0001);
    (0..dim)
        .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
        .collect()
}

/// Products A X of host row blocks through an operator on a backend, counting them.
pub struct HostProducts<'a, B: Backend, O: Operator<B>> {
    backend: &'a B,
    op: &'a mut O,
    /// Rows per operator call (at least 1).
    rows: usize,
    x: Option<B::Buf>,
    y: Option<B::Buf>,
    /// Operator products (HVPs) so far.
    pub products: usize,
}

impl<'a, B: Backend, O: Operator<B>> HostProducts<'a, B, O> {
    /// Products through `op`, `rows` rows per call (0: the backend's preferred block).
    pub fn new(backend: &'a B, op: &'a mut O, rows: usize) -> Self {
        let rows = if rows == 0 {
            backend.preferred_block().max(1)
        } else {
            rows
        };
        HostProducts {
            backend,
            op,
            rows,
            x: None,
            y: None,
            products: 0,
        }
    }

    /// The operator's dimension.
    pub fn dim(&self) -> usize {
        self.op.dim()
    }

    /// A X for the rows of `x` (row-major, each `dim` long), as rows of the result.
    /// Errors: a length that is not a multiple of `dim`, the operator's.
    pub fn apply_rows(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        let p = self.dim();
        if p == 0 || !x.len().is_multiple_of(p) {
            return Err(Error::Shape(format!(
                "products: {} values are not rows of {p}",
                x.len()
            )));
        }
        let n = x.len() / p;
        let mut out = Vec::with_capacity(x.len());
        for chunk in x.chunks(self.rows * p) {
            let r = chunk.len() / p;
            let (xb, yb) = (
                take(self.backend, &mut self.x, r * p)?,
                take(self.backend, &mut self.y, r * p)?,
            );
            let (mut xb, mut yb) = (xb, yb);
            self.backend.write(&mut xb, 0, chunk)?;
            self.op.apply_block(&xb, 0, r, &mut yb, 0)?;
            out.extend(self.backend.download_range(&yb, 0, r * p)?);
            self.x = Some(xb);
            self.y = Some(yb);
        }
        self.products += n;
        Ok(out)
    }
}

/// A buffer of at least `len` elements: the one kept, or a new one.
fn take<B: Backend>(b: &B, slot: &mut Option<B::Buf>, len: usize) -> Result<B::Buf> {
    match slot.take() {
        Some(x) if b.len(&x) >= len => Ok(x),
        _ => b.zeros(len),
    }
}

/// Σ x_i y_i.
pub fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}
