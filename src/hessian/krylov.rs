//! A fixed-length Lanczos run from one start vector, with full reorthogonalisation: the
//! tridiagonal matrix T_m that stochastic Lanczos quadrature ([`super::slq`]) turns into nodes and
//! weights.
//!
//! The top-k solver ([`super::lanczos`]) restarts and deflates, which a quadrature must not do:
//! here the Krylov space K_m(A, v) is built once, step by step, and T_m = Qᵀ A Q is kept. The
//! orthogonalisation is the solver's: two classical Gram–Schmidt passes against the whole basis,
//! each one batched product through [`Span`] (without it, ghost copies of converged eigenvalues
//! appear and the quadrature weights of the outliers double). Every backend call of the
//! quadrature lives in this file.

use super::subspace::Span;
use crate::backend::{Backend, Ten, TenMut};
use crate::error::{Error, Result};

/// One Lanczos run of at most `steps` steps: the basis Q (rows, on the backend) and T's
/// diagonal α and off-diagonal β (on the host).
pub struct KrylovRun<B: Backend> {
    dim: usize,
    steps: usize,
    /// `steps × dim`: the orthonormal basis rows q_0, q_1, ….
    q: B::Buf,
    cand: B::Buf,
    coef: B::Buf,
    coef2: B::Buf,
    /// T's diagonal (one per product absorbed).
    pub alpha: Vec<f64>,
    /// T's off-diagonal: β_j = ‖r_j‖ after step j (the last one is the residual norm, not in T).
    pub beta: Vec<f64>,
    /// The Krylov space became invariant (β below round-off): no further step.
    pub finished: bool,
}

impl<B: Backend> KrylovRun<B> {
    /// Buffers for a run of at most `steps` steps on a `dim`-dimensional operator.
    /// Errors: `steps` or `dim` zero, the backend's allocation.
    pub fn new(b: &B, dim: usize, steps: usize) -> Result<Self> {
        if steps == 0 || dim == 0 {
            return Err(Error::InvalidArgument(format!(
                "Lanczos run: {steps} steps on dimension {dim}: both must be positive"
            )));
        }
        let steps = steps.min(dim);
        Ok(KrylovRun {
            dim,
            steps,
            q: b.zeros(steps * dim)?,
            cand: b.zeros(dim)?,
            coef: b.zeros(steps + 1)?,
            coef2: b.zeros(steps)?,
            alpha: Vec::with_capacity(steps),
            beta: Vec::with_capacity(steps),
            finished: false,
        })
    }

    /// The steps this run can take (at most the dimension).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Start from `v` (host, `dim` long, normalised here). Errors: a zero or non-finite vector.
    pub fn start(&mut self, b: &B, v: &[f64]) -> Result<()> {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if !(n > 0.0 && n.is_finite()) || v.len() != self.dim {
            return Err(Error::InvalidArgument(format!(
                "Lanczos start: a vector of {} elements with norm {n} (need {} and a positive norm)",
                v.len(),
                self.dim
            )));
        }
        let unit: Vec<f64> = v.iter().map(|x| x / n).collect();
        b.write(&mut self.q, 0, &unit)?;
        self.alpha.clear();
        self.beta.clear();
        self.finished = false;
        Ok(())
    }

    /// Whether another product is wanted.
    pub fn wants_product(&self) -> bool {
        !self.finished && self.alpha.len() < self.steps
    }

    /// The newest basis vector q_j into `x[x_off..x_off + dim]` (the operator's input).
    pub fn current_into(&self, b: &B, x: &mut B::Buf, x_off: usize) -> Result<()> {
        let j = self.alpha.len();
        b.copy(&self.q, j * self.dim, x, x_off, self.dim)
    }

    /// Take w = A q_j from `y[y_off..]`: α_j = q_jᵀ w, w ← w − Q Qᵀ w (two passes), β_j = ‖w‖,
    /// q_{j+1} = w/β_j. One read-back (the coefficients and ‖w‖²).
    pub fn absorb(&mut self, b: &B, y: &B::Buf, y_off: usize) -> Result<()> {
        let (p, j) = (self.dim, self.alpha.len());
        let m = j + 1;
        b.copy(y, y_off, &mut self.cand, 0, p)?;
        let span = Span::new(&self.q, m, p);
        span.coefficients(b, &self.cand, &mut self.coef)?;
        span.expand(b, &self.coef, &mut self.cand, true)?;
        span.coefficients(b, &self.cand, &mut self.coef2)?;
        span.expand(b, &self.coef2, &mut self.cand, true)?;
        b.axpy(1.0, &self.coef2, 0, &mut self.coef, 0, m)?;
        b.dot_into(
            Ten(&self.cand, 0),
            Ten(&self.cand, 0),
            p,
            TenMut(&mut self.coef, m),
        )?;
        let got = b.download_range(&self.coef, 0, m + 1)?;
        let alpha = got[j];
        let beta = got[m].max(0.0).sqrt();
        if !alpha.is_finite() || !beta.is_finite() {
            return Err(Error::NonFinite(format!(
                "Lanczos step {j}: α = {alpha}, β = {beta} (the operator returned non-finite values)"
            )));
        }
        self.alpha.push(alpha);
        self.beta.push(beta);
        // Below this the remainder is round-off: the space is invariant (A has at most j + 1
        // distinct eigenvalues seen from this start) and T_j's Ritz values are exact.
        let scale = self.alpha.iter().fold(0.0f64, |a, x| a.max(x.abs())) + beta;
        if beta <= 64.0 * b.precision().eps() * scale.max(f64::MIN_POSITIVE) {
            self.finished = true;
            return Ok(());
        }
        if m < self.steps {
            b.scale(1.0 / beta, &mut self.cand, 0, p)?;
            b.copy(&self.cand, 0, &mut self.q, m * p, p)?;
        }
        Ok(())
    }
}
