//! The spectrum at the stepper's θ: the full-data loss and ‖∇L‖, the top eigenpairs of the
//! training-loss Hessian (a cold Lanczos solve with its certificate, then warm solves from the
//! previous eigenvectors — [`WarmSolver`] says by which method) and χ_k. The eigenvectors stay on
//! the backend as the basis of S_k the next projected step uses.

use super::stepper::Stepper;
use crate::backend::Backend;
use crate::backend::{Ten, TenMut};
use crate::error::{Error, Result};
use crate::hessian::WarmSolver;
use crate::hessian::block::block_davidson_with;
use crate::hessian::lanczos::{EigResult, Riders, lanczos_riding};
use crate::hessian::subspace::{Span, norm_and_chi};
use crate::nn::engine::Eval;

/// The measurements at one θ: full-data loss and accuracy, ‖∇L‖, the top eigenvalues and χ_k.
/// The vectors (∇L, the basis of S_k) stay on the backend ([`Stepper::grad_host`] and
/// [`Stepper::basis_host`] read them back when asked).
#[derive(Clone, Debug)]
pub struct Spectrum {
    pub eval: Eval,
    pub grad_norm: f64,
    pub chi: f64,
    /// Eigenvalues, largest first (`top` of them).
    pub values: Vec<f64>,
    pub hvps: usize,
    pub worst_residual: f64,
}

impl<B: Backend + Clone> Stepper<B> {
    /// Put the full-data engine at the current θ (a no-op when it already is there).
    pub(super) fn full_here(&mut self) -> Result<Eval> {
        if self.full_version == Some(self.version) {
            if self.full.is_deferred() {
                return self.settle_full();
            }
            if let Ok(e) = self.full.eval() {
                return Ok(e);
            }
        }
        self.full_version = None;
        let e = self.full.set_params(&self.theta)?;
        self.full_version = Some(self.version);
        Ok(e)
    }

    /// [`Stepper::full_here`] without its read-back: the engine's statistics stay deferred
    /// (∇L and the HVPs are ready) for a later read to bring.
    pub(super) fn full_here_deferred(&mut self) -> Result<()> {
        if self.full_version == Some(self.version)
            && (self.full.is_deferred() || self.full.eval().is_ok())
        {
            return Ok(());
        }
        self.full_version = None;
        self.full.set_params_deferred(&self.theta)?;
        self.full_version = Some(self.version);
        Ok(())
    }

    /// Settle the full-data engine's statistics: `read` if they were brought along with
    /// something else, else by a read-back of their own. A divergence error leaves the engine
    /// to be set again.
    pub(super) fn settle_full_with(&mut self, read: Option<&[f64]>) -> Result<Eval> {
        if !self.full.is_deferred() {
            return self.full.eval();
        }
        let st = match read {
            Some(r) => r.to_vec(),
            None => self
                .full
                .backend()
                .download_range(self.full.stats(), 0, 3)?,
        };
        self.full
            .settle(&st)
            .inspect_err(|_| self.full_version = None)
    }

    pub(super) fn settle_full(&mut self) -> Result<Eval> {
        self.settle_full_with(None)
    }

    /// Full-data loss and accuracy at the current θ.
    pub fn full_eval(&mut self) -> Result<Eval> {
        self.full_here()
    }

    /// The full-data gradient at the current θ read back (tests, files).
    pub fn grad_host(&mut self) -> Result<Vec<f64>> {
        self.full_here()?;
        self.full.backend().download(self.full.grad()?)
    }
    /// The basis u_1..u_k of S_k (k × p rows) of the last spectrum read back, if any.
    pub fn basis_host(&self) -> Result<Option<Vec<f64>>> {
        let p = self.num_params();
        match &self.warm {
            Some(w) => {
                let all = self.full.backend().download(w)?;
                Ok(Some(all[..self.k * p].to_vec()))
            }
            None => Ok(None),
        }
    }

    /// Full-data loss, ‖∇L‖, the top eigenpairs (warm-started from the last ones) and χ_k at the
    /// current θ; the eigenvectors stay on the backend as the basis of S_k.
    ///
    /// Read-backs on a device with the (default) Lanczos solver: one per HVP and one more — the
    /// full-data loss statistics, the residuals and U·∇L with ‖∇L‖² all come back with the
    /// solver's last read ([`Riders`]).
    pub fn spectrum(&mut self) -> Result<Spectrum> {
        self.full_here_deferred()?;
        let b = self.full.backend().clone();
        let before = self.full.hvp_count();
        if self.warm.is_some() && self.warm_solver == WarmSolver::Block {
            // The loss first (the block solver takes no riders).
            self.settle_full()?;
        }
        let p = self.num_params();
        let deferred = self.full.is_deferred();
        if deferred {
            // The statistics and ∇L copied beside the solve (the solve borrows the engine):
            // 3 + p elements on the backend, no read-back.
            b.copy(self.full.stats(), 0, &mut self.scalars, 5, 3)?;
        }
        b.copy(self.full.grad()?, 0, &mut self.scratch, 0, p)?;
        let eig = self.solve(deferred)?;
        let hvps = self.full.hvp_count() - before;
        let k = self.k.min(eig.values.len());
        let (c, eval) = self.coefficients_of_grad(&eig, k)?;
        let (grad_norm, chi) = norm_and_chi(&c[..k], c[k]);
        let worst_residual = eig.residuals.iter().cloned().fold(0.0, f64::max);
        // The previous basis becomes the buffer of the next solve's vectors (no allocation).
        if let Some(old) = self.warm.replace(eig.vectors) {
            match self.warm_solver {
                WarmSolver::Block => self.block_work.recycle(old),
                WarmSolver::Lanczos => self.work.recycle(old),
            }
        }
        self.measured = Some(self.version);
        Ok(Spectrum {
            eval,
            grad_norm,
            chi,
            values: eig.values,
            hvps,
            worst_residual,
        })
    }

    /// The eigensolve of [`Stepper::spectrum`]: block Davidson when asked for and warm (Lanczos
    /// takes over when it does not converge), else Lanczos carrying ∇L (in `scratch`) and, when
    /// `deferred`, the loss statistics (in `scalars[5..8]`) as riders.
    fn solve(&mut self, deferred: bool) -> Result<EigResult<B>> {
        let b = self.full.backend().clone();
        let top = self.lanczos.k;
        let warm = self.warm.as_ref().map(|w| (w, top));
        let mut eig = None;
        if let (Some(w), WarmSolver::Block) = (warm, self.warm_solver) {
            // Not converged within its budget, or stuck: Lanczos takes over. NaN is an error.
            match block_davidson_with(
                &b,
                &mut self.full,
                &self.lanczos,
                Some(w),
                &mut self.block_work,
            ) {
                Ok(e) if e.converged => eig = Some(e),
                Err(e @ Error::NonFinite(_)) => return Err(e),
                _ => {}
            }
        }
        if let Some(e) = eig {
            return Ok(e);
        }
        let riders = Riders {
            project: Some(&self.scratch),
            carry: deferred.then_some((&self.scalars, 5, 3)),
        };
        match lanczos_riding(
            &b,
            &mut self.full,
            &self.lanczos,
            warm,
            &mut |_| {},
            &mut self.work,
            &riders,
        ) {
            Ok(e) => Ok(e),
            Err(e) => {
                // A diverged θ: the loss's error comes first, as when it was read first.
                self.settle_full()?;
                Err(e)
            }
        }
    }

    /// U·∇L (k coefficients) and ‖∇L‖² with the full-data loss: from the solve's riders, or
    /// computed and read back together when the solve brought none.
    fn coefficients_of_grad(&mut self, eig: &EigResult<B>, k: usize) -> Result<(Vec<f64>, Eval)> {
        let b = self.full.backend().clone();
        let p = self.num_params();
        match &eig.ridden {
            Some(r) if r.coefs.len() >= k => {
                let eval =
                    self.settle_full_with((r.carried.len() == 3).then_some(&r.carried[..]))?;
                let mut c = r.coefs[..k].to_vec();
                c.push(r.norm2);
                Ok((c, eval))
            }
            _ => {
                let eval = self.settle_full()?;
                let g = self.full.grad()?;
                // χ_k = ‖P_k g‖/‖g‖ = ‖U g‖/‖g‖ for orthonormal rows U: k coefficients and ‖g‖²
                // read back together.
                Span::new(&eig.vectors, k, p).coefficients(&b, g, &mut self.coef)?;
                b.dot_into(Ten(g, 0), Ten(g, 0), p, TenMut(&mut self.coef, k))?;
                Ok((b.download_range(&self.coef, 0, k + 1)?, eval))
            }
        }
    }
}
