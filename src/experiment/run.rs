//! The runner behind `run`, `reproduce` and the app: one optimiser until the switch, then each
//! projected variant from the *same* θ, optimiser state and minibatch stream. S_k is recomputed
//! from the full training-loss Hessian whenever a step projects, the χ-EMA rule watches, effective learning rates are measured or
//! metrics are recorded.
//!
//! The projection applies to the optimiser's *update*: for SGD, GD and SAM that is the paper's
//! P_k g; for momentum and Adam the state evolves from the raw gradients and only the step taken
//! is projected.
//!
//! The eigensolver: a cold solve (the first of a leg) is single-vector Lanczos with its
//! certificate ([`lanczos`]); warm solves start from the previous step's eigenvectors, by
//! Lanczos from their sum (the default) or by block Davidson from them as one block
//! ([`WarmSolver`] says which and why).

use super::snapshot::{Provenance, Snapshot};
use super::spec::{OptKind, OptimizerSpec, Projection, RunSpec, SwitchRule};
use super::verdict::Verdict;
use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::hessian::block::{BlockWork, block_davidson_with};
use crate::hessian::lanczos::{LanczosOptions, LanczosWork, Riders, lanczos_riding};
use crate::nn::engine::{Engine, Eval};
use crate::nn::model::ModelSpec;
use rand::{RngExt, SeedableRng};

/// The dominant variant's relative loss decrease must stay below this fraction of the plain
/// optimiser's ("stalls").
pub const DOM_MAX_FRACTION: f64 = 0.25;
/// The bulk variant's relative loss decrease must reach at least this fraction of the plain
/// optimiser's ("trains as well").
pub const BULK_MIN_FRACTION: f64 = 0.75;
/// χ_k along full-batch GD must average below this over the second half (fig18-19's rule; the
/// app's GD-vs-SGD branches are judged by it too).
pub const GD_CHI_MAX: f64 = 0.2;

/// serde_json writes NaN as null: read null back as NaN (checkpoints hold unmeasured metrics).
pub(crate) fn nan_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The minibatch stream: consecutive slices of a permutation of 0..n redrawn every epoch from a
/// seeded ChaCha stream. Its whole state can be saved and restored (checkpoints).
#[derive(Clone)]
pub struct Stream {
    rng: rand_chacha::ChaCha8Rng,
    perm: Vec<usize>,
    pos: usize,
}

/// A stream's state as numbers.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StreamState {
    pub seed: u64,
    pub word_pos: u128,
    pub perm: Vec<usize>,
    pub pos: usize,
}

impl Stream {
    pub fn new(n: usize, seed: u64) -> Self {
        Stream {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xba7c4),
            perm: (0..n).collect(),
            pos: n,
        }
    }
    pub fn next(&mut self, batch: usize) -> Vec<usize> {
        let n = self.perm.len();
        if self.pos + batch > n {
            for i in (1..n).rev() {
                let j = self.rng.random_range(0..=i);
                self.perm.swap(i, j);
            }
            self.pos = 0;
        }
        let b = self.perm[self.pos..self.pos + batch].to_vec();
        self.pos += batch;
        b
    }
    /// The number of samples the stream draws from.
    pub fn len(&self) -> usize {
        self.perm.len()
    }
    pub fn is_empty(&self) -> bool {
        self.perm.is_empty()
    }
    pub fn state(&self, seed: u64) -> StreamState {
        StreamState {
            seed,
            word_pos: self.rng.get_word_pos(),
            perm: self.perm.clone(),
            pos: self.pos,
        }
    }
    pub fn restore(s: &StreamState) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s.seed ^ 0xba7c4);
        rng.set_word_pos(s.word_pos);
        Stream {
            rng,
            perm: s.perm.clone(),
            pos: s.pos,
        }
    }
}

/// Optimiser state (momentum buffer or Adam moments).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct OptState {
    pub t: u64,
    #[serde(skip)]
    pub m: Vec<f64>,
    #[serde(skip)]
    pub v: Vec<f64>,
}

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

/// What one step measured besides the spectrum: the effective learning rates along S_k and its
/// complement (NaN when not asked for or undefined).
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// ⟨d, P_k∇L⟩/‖P_k∇L‖² of the update d actually taken.
    pub dom_lr: f64,
    /// ⟨d, P_k⊥∇L⟩/‖P_k⊥∇L‖².
    pub bulk_lr: f64,
}

/// The eigensolver of a warm solve (the previous step's eigenvectors at hand).
///
/// Lanczos is the default because it is the faster one wherever it was measured (`bench` times
/// both in one run): a single-vector Krylov space of dimension m holds polynomials of degree m − 1
/// in H, a block one of b rows only degree m/b − 1, so the block method needs more HVPs for the
/// same tolerance (fc-tanh on MNIST-5k from initialisation: 30 HVPs per Dom-SGD step against 21;
/// times and counts in BENCHMARKS.md, "One Dom-SGD step"). Lanczos also synchronises less, since
/// its orthogonalisation reads back once per HVP. The block solver does one pass over the data per
/// iteration for all its directions ([`Engine::hvp_block`]), which pays where an HVP recomputes
/// its chunks' forward and backward passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmSolver {
    /// Single-vector Lanczos from the sum of the previous eigenvectors ([`lanczos`](crate::hessian::lanczos::lanczos)).
    #[default]
    Lanczos,
    /// Block Davidson from the previous eigenvectors as one block
    /// ([`block_davidson`](crate::hessian::block::block_davidson)), one block HVP per iteration;
    /// falls back to Lanczos when its product budget runs out.
    Block,
}

impl WarmSolver {
    /// Lanczos, the default (a spec leaves it out).
    pub fn is_default(&self) -> bool {
        *self == WarmSolver::Lanczos
    }
}

/// What [`Stepper::step`] reports (as [`Error::NonFinite`]) when the update would make θ
/// non-finite; θ is then left as it was.
pub const THETA_NOT_FINITE: &str = "θ is not finite";

/// The one step routine of the runner, the presets, the app and `bench`, with its state on the
/// backend: θ, the optimiser state (momentum buffer or Adam's moments), the minibatch gradient,
/// the update, the basis of S_k (the last solve's eigenvectors, also the warm start) and the
/// projection P_k d / P_k⊥ d all live in backend buffers. Per step only scalars cross to the host
/// (the loss, ‖∇L‖, χ_k, the Ritz values and residuals, the effective learning rates, a finiteness
/// flag) besides the minibatch's data rows; θ and the optimiser state are uploaded when a leg starts
/// or a checkpoint is resumed, and read back only for a checkpoint, a snapshot or a saved file.
///
/// Precision: θ and the optimiser state are held in the backend's precision — f32 on `cpu-f32` and
/// the GPU, as in PyTorch's or JAX's default f32 training (earlier versions kept an f64 copy of θ
/// on the host and rounded it to f32 for every gradient; an update below half an ulp of θᵢ is now
/// lost where that copy kept it). The f64 backend is unchanged bit for bit.
pub struct Stepper<B: Backend> {
    full: Engine<B>,
    batch: Engine<B>,
    data: Dataset,
    lanczos: LanczosOptions,
    k: usize,
    /// The last solve's eigenvectors (`top` × p): the basis of S_k (first k rows) and the warm
    /// start of the next solve.
    warm: Option<B::Buf>,
    warm_solver: WarmSolver,
    theta: B::Buf,
    /// Bumped by every change of θ.
    version: u64,
    /// The θ version the full-data engine was last set at.
    full_version: Option<u64>,
    /// The θ version of the last spectrum (the basis in `warm` belongs to it).
    measured: Option<u64>,
    /// Momentum buffer or Adam's first moment; Adam's second moment.
    m: Option<B::Buf>,
    v: Option<B::Buf>,
    /// The next step's optimiser state, written there and swapped in only when the step
    /// succeeds (a diverging step leaves the state as it was).
    m_next: Option<B::Buf>,
    v_next: Option<B::Buf>,
    t: u64,
    /// The minibatch gradient and the update d of the current step, a p-long scratch and
    /// `top` coefficients (twice).
    g: B::Buf,
    d: B::Buf,
    scratch: B::Buf,
    coef: B::Buf,
    coef2: B::Buf,
    /// Eight scalars read back together at the end of a step: the effective learning rates' dot
    /// products, the non-finite count of θ − d, the gradient engine's deferred statistics (slots
    /// 5..8, which also carry the full-data statistics beside a solve in `spectrum`).
    scalars: B::Buf,
    /// The eigensolver's buffers, reused from step to step.
    work: LanczosWork<B>,
    /// Block Davidson's, likewise.
    block_work: BlockWork<B>,
}

impl<B: Backend + Clone> Stepper<B> {
    /// Engines for the full data and for minibatches, at θ = 0 until [`Stepper::set_theta`].
    /// `k`: the dimension of S_k; `top` ≥ k eigenpairs solved for to residual `tol`·|λ₁|.
    /// Errors: the engines' (shapes, memory).
    pub fn new(
        backend: B,
        spec: impl Into<ModelSpec>,
        loss: crate::backend::LossKind,
        data: &Dataset,
        k: usize,
        top: usize,
        tol: f64,
    ) -> Result<Self> {
        let first = data.gather(&[0])?;
        let spec: ModelSpec = spec.into();
        let full = Engine::new(backend.clone(), spec.clone(), loss, data, 0)?;
        let p = full.num_params();
        Ok(Stepper {
            batch: Engine::new(backend.clone(), spec.clone(), loss, &first, 0)?,
            full,
            data: data.clone(),
            lanczos: LanczosOptions {
                k: top,
                tol,
                ..LanczosOptions::default()
            },
            k,
            warm: None,
            warm_solver: WarmSolver::default(),
            theta: backend.zeros(p)?,
            version: 0,
            full_version: None,
            measured: None,
            m: None,
            v: None,
            m_next: None,
            v_next: None,
            t: 0,
            g: backend.zeros(p)?,
            d: backend.zeros(p)?,
            scratch: backend.zeros(p)?,
            coef: backend.zeros(top + 1)?,
            coef2: backend.zeros(top.max(1))?,
            scalars: backend.zeros(8)?,
            work: LanczosWork::default(),
            block_work: BlockWork::default(),
        })
    }

    pub fn backend(&self) -> &B {
        self.full.backend()
    }
    pub fn num_params(&self) -> usize {
        self.full.num_params()
    }
    /// The full training data the stepper computes on.
    pub fn data(&self) -> &Dataset {
        &self.data
    }
    pub fn k(&self) -> usize {
        self.k
    }
    /// Change k and the number of eigenpairs computed (drops the warm start).
    pub fn set_k(&mut self, k: usize, top: usize) -> Result<()> {
        self.k = k;
        self.lanczos.k = top;
        self.warm = None;
        self.measured = None;
        let b = self.full.backend().clone();
        self.coef = b.zeros(top + 1)?;
        self.coef2 = b.zeros(top.max(1))?;
        Ok(())
    }
    /// Choose the solver of warm solves (Lanczos by default).
    pub fn set_warm_solver(&mut self, s: WarmSolver) {
        self.warm_solver = s;
    }
    pub fn forget_warm_start(&mut self) {
        self.warm = None;
        self.measured = None;
    }
    /// The warm-start vectors on the host (for checkpoints).
    pub fn warm_host(&self) -> Result<Option<Vec<f64>>> {
        self.warm
            .as_ref()
            .map(|w| self.full.backend().download(w))
            .transpose()
    }
    pub fn set_warm_host(&mut self, w: Option<&[f64]>) -> Result<()> {
        self.warm = w.map(|w| self.full.backend().upload(w)).transpose()?;
        self.measured = None;
        Ok(())
    }

    /// Take `other`'s last spectrum as this stepper's: its eigenvectors become the basis of S_k
    /// (and the warm start) here, as if [`Stepper::spectrum`] had run (the first `top` of them when
    /// `other` solved for more). Used where runs fork from
    /// one θ (the app's branches share the spectrum at the fork; each solves its own afterwards).
    /// Errors: `other` has no spectrum at its current θ, fewer eigenpairs than wanted here, or a θ
    /// that differs from this one (a spectrum is shared only at the same θ, bit for bit).
    pub fn adopt_spectrum(&mut self, other: &Stepper<B>) -> Result<()> {
        let w = match (&other.warm, other.measured == Some(other.version)) {
            (Some(w), true) => w,
            _ => {
                return Err(Error::InvalidArgument(
                    "adopt_spectrum: the other stepper has no spectrum at its θ".into(),
                ));
            }
        };
        if other.lanczos.k < self.lanczos.k || other.num_params() != self.num_params() {
            return Err(Error::InvalidArgument(format!(
                "adopt_spectrum: {} eigenpairs of {} parameters there, {} (or fewer) of {} wanted here",
                other.lanczos.k,
                other.num_params(),
                self.lanczos.k,
                self.num_params()
            )));
        }
        let d = self.dist(&other.theta)?;
        if d != 0.0 {
            return Err(Error::InvalidArgument(format!(
                "adopt_spectrum: θ differs by {d:e}; a spectrum is shared only at the same θ"
            )));
        }
        let b = self.full.backend().clone();
        let len = self.lanczos.k * self.num_params();
        let mut mine = b.zeros(len)?;
        b.copy(w, 0, &mut mine, 0, len)?;
        self.warm = Some(mine);
        self.measured = Some(self.version);
        Ok(())
    }

    /// Put θ on the backend (an upload: when a leg starts or a checkpoint resumes).
    /// Errors: a length other than p.
    pub fn set_theta(&mut self, theta: &[f64]) -> Result<()> {
        let p = self.num_params();
        if theta.len() != p {
            return Err(Error::Shape(format!(
                "θ has {} entries, the model {p}",
                theta.len()
            )));
        }
        self.theta = self.full.backend().upload(theta)?;
        self.version += 1;
        Ok(())
    }
    /// θ on the backend.
    pub fn theta(&self) -> &B::Buf {
        &self.theta
    }
    /// θ read back (a checkpoint, a snapshot, a saved file).
    pub fn theta_host(&self) -> Result<Vec<f64>> {
        self.full.backend().download(&self.theta)
    }
    /// A copy of θ on the backend (θ at the switch, θ₀).
    pub fn theta_copy(&self) -> Result<B::Buf> {
        let b = self.full.backend();
        let p = self.num_params();
        let mut c = b.zeros(p)?;
        b.copy(&self.theta, 0, &mut c, 0, p)?;
        Ok(c)
    }
    /// ‖θ − other‖ on the backend (one scalar read back).
    pub fn dist(&mut self, other: &B::Buf) -> Result<f64> {
        let b = self.full.backend().clone();
        let p = self.num_params();
        b.copy(&self.theta, 0, &mut self.scratch, 0, p)?;
        b.axpy(-1.0, other, 0, &mut self.scratch, 0, p)?;
        b.norm(&self.scratch, 0, p)
    }
    /// Whether every entry of θ is finite (one flag read back).
    pub fn theta_finite(&self) -> Result<bool> {
        self.full
            .backend()
            .all_finite(&self.theta, 0, self.num_params())
    }

    /// Load an optimiser state (its step count and, when non-empty, its buffers).
    pub fn set_opt_state(&mut self, s: &OptState) -> Result<()> {
        let b = self.full.backend();
        let p = self.num_params();
        for (name, x) in [("m", &s.m), ("v", &s.v)] {
            if !x.is_empty() && x.len() != p {
                return Err(Error::Shape(format!(
                    "optimiser state `{name}` has {} entries, the model {p}",
                    x.len()
                )));
            }
        }
        self.t = s.t;
        self.m = (!s.m.is_empty()).then(|| b.upload(&s.m)).transpose()?;
        self.v = (!s.v.is_empty()).then(|| b.upload(&s.v)).transpose()?;
        Ok(())
    }
    /// The optimiser state read back (a checkpoint, the state at the switch).
    pub fn opt_state(&self) -> Result<OptState> {
        let b = self.full.backend();
        Ok(OptState {
            t: self.t,
            m: self
                .m
                .as_ref()
                .map(|m| b.download(m))
                .transpose()?
                .unwrap_or_default(),
            v: self
                .v
                .as_ref()
                .map(|v| b.download(v))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// Put the full-data engine at the current θ (a no-op when it already is there).
    fn full_here(&mut self) -> Result<Eval> {
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
    fn full_here_deferred(&mut self) -> Result<()> {
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
    fn settle_full_with(&mut self, read: Option<&[f64]>) -> Result<Eval> {
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

    fn settle_full(&mut self) -> Result<Eval> {
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
        let top = self.lanczos.k;
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
        let eig = match eig {
            Some(e) => e,
            None => {
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
                    Ok(e) => e,
                    Err(e) => {
                        // A diverged θ: the loss's error comes first, as when it was read first.
                        self.settle_full()?;
                        return Err(e);
                    }
                }
            }
        };
        let hvps = self.full.hvp_count() - before;
        let k = self.k.min(eig.values.len());
        let (c, eval) = match &eig.ridden {
            Some(r) if r.coefs.len() >= k => {
                let eval =
                    self.settle_full_with((r.carried.len() == 3).then_some(&r.carried[..]))?;
                let mut c = r.coefs[..k].to_vec();
                c.push(r.norm2);
                (c, eval)
            }
            _ => {
                let eval = self.settle_full()?;
                let g = self.full.grad()?;
                // χ_k = ‖P_k g‖/‖g‖ = ‖U g‖/‖g‖ for orthonormal rows U: k coefficients and ‖g‖²
                // read back together.
                b.gemm(
                    false,
                    false,
                    k,
                    1,
                    p,
                    1.0,
                    &eig.vectors,
                    0,
                    g,
                    0,
                    0.0,
                    &mut self.coef,
                    0,
                )?;
                b.dot_into(g, 0, g, 0, p, &mut self.coef, k)?;
                (b.download_range(&self.coef, 0, k + 1)?, eval)
            }
        };
        let grad_norm = c[k].max(0.0).sqrt();
        let pg = c[..k].iter().map(|x| x * x).sum::<f64>().sqrt();
        let chi = if grad_norm == 0.0 {
            0.0
        } else {
            (pg / grad_norm).min(1.0)
        };
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

    /// ∇L on `rows` of the data (None: all) at θ, or at `scratch` when `at_scratch` (SAM's
    /// perturbed point), copied into `g`. With `defer` the engine's loss statistics are left on
    /// the backend unread: the result says which engine then waits for [`Engine::settle`]
    /// (`Some(true)`: the minibatch's, `Some(false)`: the full data's).
    fn grad_into_g(
        &mut self,
        rows: Option<&[usize]>,
        at_scratch: bool,
        defer: bool,
    ) -> Result<Option<bool>> {
        let p = self.num_params();
        let Stepper {
            full,
            batch,
            data,
            theta,
            scratch,
            g,
            full_version,
            version,
            ..
        } = self;
        let at: &B::Buf = if at_scratch { scratch } else { theta };
        let mut pending = None;
        let e: &mut Engine<B> = match rows {
            Some(rows) => {
                let mb = data.gather(rows)?;
                if batch.num_samples() == rows.len() {
                    batch.replace_data(&mb)?;
                } else {
                    let b = full.backend().clone();
                    let spec = full.spec().clone();
                    *batch = Engine::new(b, spec, full.loss_kind(), &mb, 0)?;
                }
                if defer {
                    batch.set_params_deferred(at)?;
                    pending = Some(true);
                } else {
                    batch.set_params(at)?;
                }
                batch
            }
            None => {
                if at_scratch || *full_version != Some(*version) {
                    *full_version = None;
                    if defer {
                        full.set_params_deferred(at)?;
                        pending = Some(false);
                    } else {
                        full.set_params(at)?;
                    }
                    if !at_scratch {
                        *full_version = Some(*version);
                    }
                }
                full
            }
        };
        let b = e.backend().clone();
        b.copy(e.grad()?, 0, g, 0, p)?;
        Ok(pending)
    }

    /// One optimiser step θ ← θ − d on the backend, d the optimiser's update (SGD/GD: η g;
    /// momentum: η·buffer; Adam; normalised SAM), projected by `proj` onto S_k (Dom) or its
    /// complement (Bulk) with the basis of the spectrum measured at this θ. With `effective_lr`
    /// the effective learning rates of d along S_k and its complement are measured too. The
    /// minibatch comes from `stream` (`opt.batch`; None: the full data).
    ///
    /// Errors: a projection or the effective rates asked for without a spectrum at this θ
    /// ([`Stepper::spectrum`] first), a non-finite gradient (the run diverged), the backend's.
    pub fn step(
        &mut self,
        opt: &OptimizerSpec,
        stream: &mut Stream,
        proj: Projection,
        effective_lr: bool,
    ) -> Result<StepInfo> {
        let b = self.full.backend().clone();
        let p = self.num_params();
        if (proj != Projection::None || effective_lr) && self.measured != Some(self.version) {
            return Err(Error::InvalidArgument(
                "a projected step or effective learning rates need the spectrum at this θ first"
                    .into(),
            ));
        }
        let rows = opt.batch.map(|n| stream.next(n));
        let lr = opt.lr;
        // The step counter, the optimiser state and θ change only when the step succeeds.
        let t_next = self.t + 1;
        // SAM reads ‖g‖ at once anyway; every other step reads its gradient's loss statistics
        // with the update's finiteness, at the end.
        let pending = self.grad_into_g(rows.as_deref(), false, opt.name != OptKind::Sam)?;
        match opt.name {
            OptKind::Sgd | OptKind::Gd => {
                b.copy(&self.g, 0, &mut self.d, 0, p)?;
            }
            OptKind::Momentum => {
                if self.m_next.is_none() {
                    self.m_next = Some(b.zeros(p)?);
                }
                if let Some(next) = self.m_next.as_mut() {
                    match &self.m {
                        Some(m) => {
                            // PyTorch: buf ← μ·buf + g.
                            b.copy(m, 0, next, 0, p)?;
                            b.scale(opt.momentum, next, 0, p)?;
                            b.axpy(1.0, &self.g, 0, next, 0, p)?;
                        }
                        // The first step initialises the buffer with the gradient.
                        None => b.copy(&self.g, 0, next, 0, p)?,
                    }
                    b.copy(next, 0, &mut self.d, 0, p)?;
                }
            }
            OptKind::Adam => {
                if self.m.is_none() || self.v.is_none() {
                    self.m = Some(b.zeros(p)?);
                    self.v = Some(b.zeros(p)?);
                }
                if self.m_next.is_none() || self.v_next.is_none() {
                    self.m_next = Some(b.zeros(p)?);
                    self.v_next = Some(b.zeros(p)?);
                }
                let t = t_next as i32;
                let h = crate::backend::AdamStep {
                    lr,
                    beta1: opt.beta1,
                    beta2: opt.beta2,
                    eps: opt.eps,
                    c1: 1.0 - opt.beta1.powi(t),
                    c2: 1.0 - opt.beta2.powi(t),
                };
                if let (Some(m), Some(v), Some(m2), Some(v2)) = (
                    self.m.as_ref(),
                    self.v.as_ref(),
                    self.m_next.as_mut(),
                    self.v_next.as_mut(),
                ) {
                    b.copy(m, 0, m2, 0, p)?;
                    b.copy(v, 0, v2, 0, p)?;
                    b.adam(&self.g, m2, v2, &mut self.d, p, h)?;
                }
            }
            OptKind::Sam => {
                // d = η ∇L(θ + ρ g/‖g‖) on the same minibatch; ρ = 0 or g = 0: η g.
                let gn = b.norm(&self.g, 0, p)?;
                if gn != 0.0 && opt.rho != 0.0 {
                    b.copy(&self.theta, 0, &mut self.scratch, 0, p)?;
                    b.axpy(opt.rho / gn, &self.g, 0, &mut self.scratch, 0, p)?;
                    self.grad_into_g(rows.as_deref(), true, false)?;
                }
                b.copy(&self.g, 0, &mut self.d, 0, p)?;
            }
        }
        if opt.name != OptKind::Adam {
            b.scale(lr, &mut self.d, 0, p)?;
        }
        let mut info = StepInfo {
            dom_lr: f64::NAN,
            bulk_lr: f64::NAN,
        };
        // Whether the rates' dot products are in `scalars[0..4]`, to read with the update's check.
        let mut rates = false;
        if proj != Projection::None || effective_lr {
            if effective_lr {
                // The full-data gradient at this θ (SAM on the full data moved the engine).
                self.full_here()?;
            }
            let k = self.k;
            let u = self
                .warm
                .as_ref()
                .ok_or_else(|| Error::InvalidArgument("no basis of S_k".into()))?;
            if proj != Projection::None {
                // c = U d; Dom: d ← Uᵀc; Bulk: d ← d − Uᵀc.
                b.gemm(
                    false,
                    false,
                    k,
                    1,
                    p,
                    1.0,
                    u,
                    0,
                    &self.d,
                    0,
                    0.0,
                    &mut self.coef,
                    0,
                )?;
                if proj == Projection::Dominant {
                    b.gemm(
                        true,
                        false,
                        p,
                        1,
                        k,
                        1.0,
                        u,
                        0,
                        &self.coef,
                        0,
                        0.0,
                        &mut self.d,
                        0,
                    )?;
                } else {
                    b.gemm(
                        true,
                        false,
                        p,
                        1,
                        k,
                        -1.0,
                        u,
                        0,
                        &self.coef,
                        0,
                        1.0,
                        &mut self.d,
                        0,
                    )?;
                }
            }
            if effective_lr {
                // The full-data gradient at this θ (the spectrum's) split into P_k g (scratch)
                // and P_k⊥ g (g − scratch); four scalars read back.
                let g = self.full.grad()?;
                b.gemm(
                    false,
                    false,
                    k,
                    1,
                    p,
                    1.0,
                    u,
                    0,
                    g,
                    0,
                    0.0,
                    &mut self.coef2,
                    0,
                )?;
                b.gemm(
                    true,
                    false,
                    p,
                    1,
                    k,
                    1.0,
                    u,
                    0,
                    &self.coef2,
                    0,
                    0.0,
                    &mut self.scratch,
                    0,
                )?;
                let sc = &mut self.scalars;
                b.dot_into(&self.scratch, 0, &self.scratch, 0, p, sc, 0)?;
                b.dot_into(&self.d, 0, &self.scratch, 0, p, sc, 1)?;
                // scratch ← g − P_k g.
                b.scale(-1.0, &mut self.scratch, 0, p)?;
                b.axpy(1.0, g, 0, &mut self.scratch, 0, p)?;
                b.dot_into(&self.scratch, 0, &self.scratch, 0, p, sc, 2)?;
                b.dot_into(&self.d, 0, &self.scratch, 0, p, sc, 3)?;
                rates = true;
            }
        }
        // θ − d into the scratch; it becomes θ only when finite (its non-finite count read back
        // with the rates' dot products and the gradient's loss statistics, in one read), so a
        // diverging step leaves θ and the optimiser state at their last finite values.
        b.copy(&self.theta, 0, &mut self.scratch, 0, p)?;
        b.axpy(-1.0, &self.d, 0, &mut self.scratch, 0, p)?;
        b.count_nonfinite_into(&self.scratch, 0, p, &mut self.scalars, 4)?;
        if let Some(mini) = pending {
            let e = if mini { &self.batch } else { &self.full };
            b.copy(e.stats(), 0, &mut self.scalars, 5, 3)?;
        }
        let from = if rates { 0 } else { 4 };
        let to = if pending.is_some() { 8 } else { 5 };
        let all = b.download_range(&self.scalars, from, to - from)?;
        // Indexed as scalars[0..to].
        let mut sc = vec![0.0; from];
        sc.extend(all);
        match pending {
            // The gradient's divergence is named first, as when its statistics were read first.
            Some(true) => {
                self.batch.settle(&sc[5..8])?;
            }
            Some(false) => {
                self.settle_full_with(Some(&sc[5..8]))?;
            }
            None => {}
        }
        if sc[4] != 0.0 {
            return Err(Error::NonFinite(THETA_NOT_FINITE.into()));
        }
        if rates {
            let (np, dp, nb, db) = (sc[0], sc[1], sc[2], sc[3]);
            info.dom_lr = if np > 0.0 { dp / np } else { f64::NAN };
            info.bulk_lr = if nb > 0.0 { db / nb } else { f64::NAN };
        }
        std::mem::swap(&mut self.theta, &mut self.scratch);
        match opt.name {
            OptKind::Momentum => std::mem::swap(&mut self.m, &mut self.m_next),
            OptKind::Adam => {
                std::mem::swap(&mut self.m, &mut self.m_next);
                std::mem::swap(&mut self.v, &mut self.v_next);
            }
            _ => {}
        }
        self.t = t_next;
        self.version += 1;
        Ok(info)
    }
}

/// The update d of one normalised SAM step, θ ← θ − d with d = η ∇L(θ + ρ g/‖g‖), where `g` is
/// the gradient at θ and `grad_at` evaluates the gradient (on the same minibatch) at another point.
/// ρ = 0 or g = 0: the plain gradient step. Errors: those of `grad_at`.
pub fn sam_update(
    theta: &[f64],
    g: Vec<f64>,
    lr: f64,
    rho: f64,
    mut grad_at: impl FnMut(&[f64]) -> Result<Vec<f64>>,
) -> Result<Vec<f64>> {
    let gn = norm(&g);
    let g2 = if gn == 0.0 || rho == 0.0 {
        g
    } else {
        let s = rho / gn;
        let pert: Vec<f64> = theta.iter().zip(&g).map(|(t, gi)| t + s * gi).collect();
        grad_at(&pert)?
    };
    Ok(g2.iter().map(|x| lr * x).collect())
}

pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// P_k v or P_k⊥ v, the basis as k orthonormal rows of length p.
pub fn project(basis: &[f64], p: usize, v: &[f64], proj: Projection) -> Vec<f64> {
    if proj == Projection::None {
        return v.to_vec();
    }
    let mut pv = vec![0.0; p];
    for u in basis.chunks_exact(p) {
        let c = dot(u, v);
        pv.iter_mut().zip(u).for_each(|(x, &ui)| *x += c * ui);
    }
    if proj == Projection::Bulk {
        pv.iter_mut().zip(v).for_each(|(x, &vi)| *x = vi - *x);
    }
    pv
}

/// SAM's edge of stability (Long & Bartlett 2023, "Sharpness-aware minimization and the edge of
/// stability"): the largest sharpness λ₁ at which full-batch normalised SAM,
/// θ ← θ − η∇L(θ + ρ∇L/‖∇L‖), is stable on a quadratic,
///
///   SAM-edge = ‖∇L‖/(2ρ) · (√(1 + 8ρ/(η‖∇L‖)) − 1),
///
/// in units of λ (1/η). Derivation: on L = ½θᵀHθ, write g = ‖∇L‖ and take the component x of θ
/// along the top eigenvector u (eigenvalue λ); ‖∇L‖ is dominated by the other directions and held
/// fixed. The perturbed point's u-component is x + ρλx/g, its gradient λ(1 + ρλ/g)x, so one SAM
/// step multiplies x by m(λ) = 1 − ηλ(1 + ρλ/g). m < 1 for λ > 0, and m ≥ −1 ⇔
/// (ηρ/g)λ² + ηλ − 2 ≤ 0 ⇔ λ ≤ g/(2ρ)·(√(1 + 8ρ/(ηg)) − 1). As ρ → 0 this tends to GD's 2/η, and
/// it lies below 2/η for ρ > 0. The paper (Appendix B) prints 8/(η‖∇L‖) inside the root — not
/// dimensionless, and divergent as ρ → 0: a typo; this is the corrected form.
/// Returns 2/η when ρ = 0 or ∇L = 0 (the limit).
pub fn sam_edge(grad_norm: f64, lr: f64, rho: f64) -> f64 {
    if grad_norm == 0.0 || rho == 0.0 {
        return 2.0 / lr;
    }
    let a = 8.0 * rho / (lr * grad_norm);
    // √(1 + a) − 1 = a/(√(1 + a) + 1), without cancellation for small a.
    grad_norm / (2.0 * rho) * (a / ((1.0 + a).sqrt() + 1.0))
}

/// The factor one normalised-SAM step multiplies the component along an eigenvector of
/// eigenvalue λ by, on a quadratic with gradient norm `grad_norm` held fixed:
/// 1 − ηλ(1 + ρλ/‖∇L‖) (see [`sam_edge`]). |·| = 1 exactly at the SAM edge.
pub fn sam_multiplier(lambda: f64, grad_norm: f64, lr: f64, rho: f64) -> f64 {
    1.0 - lr * lambda * (1.0 + rho * lambda / grad_norm)
}

/// The SAM edge as the paper's Appendix B prints it, ‖∇L‖/(2ρ)·(√(1 + 8/(η‖∇L‖)) − 1): kept only
/// to name the typo in summaries (`sam_edge_printed`); not used for any verdict.
pub fn sam_edge_as_printed(grad_norm: f64, lr: f64, rho: f64) -> f64 {
    if grad_norm == 0.0 || rho == 0.0 {
        return 2.0 / lr;
    }
    grad_norm / (2.0 * rho) * ((1.0 + 8.0 / (lr * grad_norm)).sqrt() - 1.0)
}

/// One row of metrics.csv. NaN where a metric was not measured at that step.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub run: String,
    /// "before" or "after" the switch.
    pub phase: String,
    pub step: usize,
    #[serde(deserialize_with = "nan_null")]
    pub loss: f64,
    #[serde(deserialize_with = "nan_null")]
    pub accuracy: f64,
    #[serde(deserialize_with = "nan_null")]
    pub grad_norm: f64,
    #[serde(deserialize_with = "nan_null")]
    pub chi_k: f64,
    #[serde(deserialize_with = "nan_null")]
    pub chi_ema: f64,
    pub eigenvalues: Vec<f64>,
    #[serde(deserialize_with = "nan_null")]
    pub two_over_lr: f64,
    #[serde(deserialize_with = "nan_null")]
    pub sam_edge: f64,
    /// ⟨θ_t − θ_{t+1}, P_k∇L⟩/‖P_k∇L‖² of the step from this θ (η for GD).
    #[serde(deserialize_with = "nan_null")]
    pub dom_lr: f64,
    #[serde(deserialize_with = "nan_null")]
    pub bulk_lr: f64,
    #[serde(deserialize_with = "nan_null")]
    pub dist_switch: f64,
    #[serde(deserialize_with = "nan_null")]
    pub dist_init: f64,
    pub hvps: usize,
    #[serde(deserialize_with = "nan_null")]
    pub worst_residual: f64,
}

impl Record {
    pub fn csv_header(top: usize) -> String {
        let mut h = vec![
            "run",
            "phase",
            "step",
            "loss",
            "accuracy",
            "grad_norm",
            "chi_k",
            "chi_ema",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        h.extend((1..=top).map(|i| format!("lambda_{i}")));
        h.extend(
            [
                "two_over_lr",
                "sam_edge",
                "dom_lr",
                "bulk_lr",
                "dist_switch",
                "dist_init",
                "hvps",
                "worst_residual",
            ]
            .map(String::from),
        );
        h.join(",")
    }
    /// A whole metrics.csv: the header and one line per record.
    pub fn csv(records: &[Record], top: usize) -> String {
        let mut text = Self::csv_header(top);
        text.push('\n');
        for r in records {
            text.push_str(&r.csv_line(top));
            text.push('\n');
        }
        text
    }

    /// Read back a whole metrics.csv written by [`Record::csv`]: the records and the number of
    /// eigenvalue columns. Exact: the numbers were written in Rust's shortest round-trip form.
    /// A record's eigenvalues end at its first `nan` column (none were computed at that step).
    pub fn parse_csv(text: &str) -> Result<(Vec<Record>, usize)> {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let top = header
            .split(',')
            .filter(|c| c.starts_with("lambda_"))
            .count();
        if header != Self::csv_header(top) {
            return Err(Error::Shape(format!(
                "not a metrics.csv of this version: its header is '{header}'"
            )));
        }
        let columns = header.split(',').count();
        let mut out = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
            let bad = |what: &str| Error::Shape(format!("metrics.csv line {}: {what}", i + 2));
            let c: Vec<&str> = line.split(',').collect();
            if c.len() != columns {
                return Err(bad(&format!("{} columns, expected {columns}", c.len())));
            }
            let f = |j: usize| {
                c[j].parse::<f64>()
                    .map_err(|_| bad(&format!("'{}' is not a number", c[j])))
            };
            let u = |j: usize| {
                c[j].parse::<usize>()
                    .map_err(|_| bad(&format!("'{}' is not a count", c[j])))
            };
            let mut eigenvalues = Vec::new();
            for j in 8..8 + top {
                let x = f(j)?;
                if x.is_nan() {
                    break;
                }
                eigenvalues.push(x);
            }
            let t = 8 + top;
            out.push(Record {
                run: c[0].to_string(),
                phase: c[1].to_string(),
                step: u(2)?,
                loss: f(3)?,
                accuracy: f(4)?,
                grad_norm: f(5)?,
                chi_k: f(6)?,
                chi_ema: f(7)?,
                eigenvalues,
                two_over_lr: f(t)?,
                sam_edge: f(t + 1)?,
                dom_lr: f(t + 2)?,
                bulk_lr: f(t + 3)?,
                dist_switch: f(t + 4)?,
                dist_init: f(t + 5)?,
                hvps: u(t + 6)?,
                worst_residual: f(t + 7)?,
            });
        }
        Ok((out, top))
    }

    pub fn csv_line(&self, top: usize) -> String {
        let f = |x: f64| {
            if x.is_nan() {
                "nan".to_string()
            } else {
                format!("{x}")
            }
        };
        let mut c = vec![
            self.run.clone(),
            self.phase.clone(),
            self.step.to_string(),
            f(self.loss),
            f(self.accuracy),
            f(self.grad_norm),
            f(self.chi_k),
            f(self.chi_ema),
        ];
        c.extend((0..top).map(|i| f(self.eigenvalues.get(i).copied().unwrap_or(f64::NAN))));
        c.extend([
            f(self.two_over_lr),
            f(self.sam_edge),
            f(self.dom_lr),
            f(self.bulk_lr),
            f(self.dist_switch),
            f(self.dist_init),
            self.hvps.to_string(),
            f(self.worst_residual),
        ]);
        c.join(",")
    }
}

/// Mean and (population) standard deviation of a series.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub n: usize,
    #[serde(deserialize_with = "nan_null")]
    pub mean: f64,
    #[serde(deserialize_with = "nan_null")]
    pub std: f64,
}

impl Stats {
    pub fn of(xs: &[f64]) -> Stats {
        let n = xs.len();
        if n == 0 {
            return Stats {
                n,
                mean: f64::NAN,
                std: f64::NAN,
            };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        Stats {
            n,
            mean,
            std: var.sqrt(),
        }
    }
}

/// What one leg (the run before the switch, or one variant after it) ended with.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LegSummary {
    pub run: String,
    pub phase: String,
    pub projection: Projection,
    pub first_step: usize,
    pub last_step: usize,
    #[serde(deserialize_with = "nan_null")]
    pub start_loss: f64,
    #[serde(deserialize_with = "nan_null")]
    pub end_loss: f64,
    pub dom_lr: Stats,
    pub bulk_lr: Stats,
    /// Per-step Dom-LR and Bulk-LR of a leg in progress (a checkpoint carries them, so the
    /// statistics of a resumed run cover every step); empty once the leg has finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dom_lr_series: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    bulk_lr_series: Vec<f64>,
}

impl LegSummary {
    /// (start − end)/start of the full-data loss.
    pub fn rel_decrease(&self) -> f64 {
        (self.start_loss - self.end_loss) / self.start_loss
    }
}

/// Everything a run produced (`summary.json` holds all but the records and θs).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunOutcome {
    /// The step where the variants branched (None: no switch happened).
    pub switch_step: Option<usize>,
    /// False when the χ-EMA rule never fired within `steps`.
    pub switch_rule_fired: bool,
    pub legs: Vec<LegSummary>,
    #[serde(skip)]
    pub records: Vec<Record>,
    /// θ at every record, when asked for (paired comparisons).
    #[serde(skip)]
    pub thetas: Vec<Vec<f64>>,
}

impl RunOutcome {
    pub fn leg(&self, run: &str) -> Option<&LegSummary> {
        self.legs
            .iter()
            .find(|l| l.run == run && l.phase == "after")
    }
    pub fn records_of<'a>(
        &'a self,
        run: &'a str,
        phase: &'a str,
    ) -> impl Iterator<Item = &'a Record> {
        self.records
            .iter()
            .filter(move |r| r.run == run && r.phase == phase)
    }
}

/// Where the run is, as saved in a checkpoint (vectors go to a safetensors file beside it).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub spec: RunSpec,
    /// Global step reached.
    pub step: usize,
    /// 0: before the switch; i ≥ 1: variant i − 1 after it.
    pub leg: usize,
    #[serde(deserialize_with = "nan_null")]
    pub ema: f64,
    pub opt: OptState,
    pub stream: StreamState,
    pub switch_step: Option<usize>,
    pub switch_rule_fired: bool,
    #[serde(deserialize_with = "nan_null")]
    pub switch_ema: f64,
    pub switch_opt: OptState,
    pub switch_stream: Option<StreamState>,
    pub legs: Vec<LegSummary>,
    pub current: Option<LegSummary>,
    pub records: Vec<Record>,
    /// Seconds the run had computed when this was written, over all its sessions (0 in
    /// checkpoints from before this field).
    #[serde(default)]
    pub elapsed_s: f64,
    /// [`data_fingerprint`] of the data the run computed on (absent in checkpoints from before
    /// this field): a resume on other data (another CIFAR-10 cache changes the standardisation)
    /// is refused.
    #[serde(default)]
    pub data: Option<String>,
}

/// A fingerprint of a data set as the network sees it: sample count, Σx and Σx² (17 digits) and a
/// position-weighted label sum. Two runs on the same cache and preprocessing give the same string;
/// other records or other statistics change it.
pub fn data_fingerprint(d: &Dataset) -> String {
    let (s1, s2) =
        d.x.iter()
            .fold((0.0f64, 0.0f64), |(a, b), &v| (a + v, b + v * v));
    let labels: u64 = d
        .labels
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u64 + 1) * l as u64)
        .sum();
    format!(
        "{} samples × {}, Σx {s1:.17e}, Σx² {s2:.17e}, labels {labels}",
        d.n, d.d
    )
}

/// Named vectors saved with a checkpoint.
pub type Vectors = Vec<(String, Vec<f64>)>;

/// What the runner reports to whoever drives it.
pub trait Observer {
    /// A metrics row, in order.
    fn record(&mut self, _r: &Record) -> Result<()> {
        Ok(())
    }
    fn progress(&mut self, _run: &str, _step: usize, _total: usize) {}
    fn checkpoint(&mut self, _c: &Checkpoint, _v: &Vectors) -> Result<()> {
        Ok(())
    }
    /// Polled after every step: true stops the run (after a checkpoint) with `Interrupted`.
    fn stop_requested(&self) -> bool {
        false
    }
    /// Whether [`Observer::switched`] should be called (the snapshot costs a copy of the rows).
    fn wants_snapshot(&self) -> bool {
        false
    }
    /// The run's state at its switch (the end of the first leg), when `wants_snapshot`.
    fn switched(&mut self, _s: &Snapshot, _v: &Vectors) -> Result<()> {
        Ok(())
    }
}

/// An observer that only reports progress.
pub struct Progress<'a>(pub &'a mut dyn FnMut(&str, usize, usize));

impl Observer for Progress<'_> {
    fn progress(&mut self, run: &str, step: usize, total: usize) {
        (self.0)(run, step, total)
    }
}

struct LegState {
    theta: Vec<f64>,
    opt: OptState,
    stream: Stream,
    step: usize,
    ema: f64,
    summary: LegSummary,
}

/// Run a spec on a dataset (already cut to `spec.data.samples` and preprocessed).
pub fn run<B: Backend + Clone>(
    backend: B,
    spec: &RunSpec,
    data: &Dataset,
    keep_theta: bool,
    resume: Option<(Checkpoint, Vectors)>,
    obs: &mut dyn Observer,
) -> Result<RunOutcome> {
    spec.validate(data.d, data.classes, data.n)?;
    if data.n != spec.data.samples {
        return Err(Error::Shape(format!(
            "spec wants {} samples, the dataset has {}",
            spec.data.samples, data.n
        )));
    }
    let started = web_time::Instant::now();
    let earlier_s = resume.as_ref().map_or(0.0, |(c, _)| c.elapsed_s);
    let mlp = spec.net()?;
    let p = mlp.num_params();
    if backend.adapter().is_none() {
        let elem = backend.precision().bytes();
        crate::mem::check_spectrum(&mlp, data.n, spec.top(), 0, elem, "top (and k) in the spec")?;
    }
    let mut st = Stepper::new(backend, &mlp, spec.loss, data, spec.k, spec.top(), spec.tol)?;
    st.set_warm_solver(spec.warm_solver);
    let theta0 = mlp.init(spec.seed);
    // θ₀ and θ at the switch stay on the backend for the distances recorded.
    let theta0_buf = st.backend().upload(&theta0)?;
    let mut theta_switch_buf: Option<B::Buf> = None;
    let mut out = RunOutcome {
        switch_step: None,
        switch_rule_fired: false,
        legs: Vec::new(),
        records: Vec::new(),
        thetas: Vec::new(),
    };
    let vec_of =
        |v: &Vectors, name: &str| v.iter().find(|(n, _)| n == name).map(|(_, x)| x.clone());
    // Where to start: from scratch or from a checkpoint.
    let (mut leg_idx, mut cur, mut theta_switch, mut switch_opt, mut switch_stream, mut switch_ema);
    match resume {
        None => {
            leg_idx = 0;
            cur = None;
            theta_switch = None;
            switch_opt = OptState::default();
            switch_stream = None;
            switch_ema = f64::NAN;
        }
        Some((c, v)) => {
            let diff = c.spec.differences(spec);
            if !diff.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "the checkpoint was written by another spec (checkpoint vs now: {}); a resumed run continues the checkpoint's spec",
                    diff.join("; ")
                )));
            }
            let now = data_fingerprint(data);
            if let Some(was) = c.data.as_ref().filter(|was| **was != now) {
                return Err(Error::InvalidArgument(format!(
                    "the checkpoint was computed on other data ({was}; now {now}): resume with the same data cache (SUBSPACE_LAB_DATA / --data-dir) it started on, or start a new run"
                )));
            }
            let get = |name: &str| {
                vec_of(&v, name).ok_or_else(|| {
                    Error::InvalidArgument(format!("checkpoint: vector `{name}` is missing"))
                })
            };
            let theta = get("theta")?;
            if theta.len() != p {
                return Err(Error::Shape(format!(
                    "checkpoint θ has {} entries, the model {p}",
                    theta.len()
                )));
            }
            let mut opt = c.opt.clone();
            opt.m = vec_of(&v, "opt_m").unwrap_or_default();
            opt.v = vec_of(&v, "opt_v").unwrap_or_default();
            let mut sw_opt = c.switch_opt.clone();
            sw_opt.m = vec_of(&v, "switch_opt_m").unwrap_or_default();
            sw_opt.v = vec_of(&v, "switch_opt_v").unwrap_or_default();
            st.set_warm_host(vec_of(&v, "warm").as_deref())?;
            leg_idx = c.leg;
            theta_switch = vec_of(&v, "theta_switch");
            theta_switch_buf = theta_switch
                .as_deref()
                .map(|t| st.backend().upload(t))
                .transpose()?;
            switch_opt = sw_opt;
            switch_stream = c.switch_stream.as_ref().map(Stream::restore);
            switch_ema = c.switch_ema;
            out.switch_step = c.switch_step;
            out.switch_rule_fired = c.switch_rule_fired;
            out.legs = c.legs.clone();
            out.records = c.records.clone();
            let summary = c
                .current
                .clone()
                .ok_or_else(|| Error::InvalidArgument("checkpoint: no current leg".into()))?;
            cur = Some(LegState {
                theta,
                opt,
                stream: Stream::restore(&c.stream),
                step: c.step,
                ema: c.ema,
                summary,
            });
        }
    }
    let n_legs = if spec.steps_after > 0 {
        1 + spec.variants.len()
    } else {
        1
    };
    while leg_idx < n_legs {
        let (opt_spec, proj, phase, first, len, rule) = if leg_idx == 0 {
            let rule = (spec.switch == SwitchRule::ChiEma).then_some(spec.chi_threshold);
            (
                &spec.optimizer,
                Projection::None,
                "before",
                0,
                spec.steps,
                rule,
            )
        } else {
            let s = out.switch_step.unwrap_or(spec.steps);
            (
                spec.after_optimizer(),
                spec.variants[leg_idx - 1],
                "after",
                s,
                spec.steps_after,
                None,
            )
        };
        let run_name = format!("{}{}", proj.prefix(), opt_spec.display());
        let mut leg = match cur.take() {
            Some(l) => l,
            None => {
                st.forget_warm_start();
                let (theta, opt, stream, ema) = if leg_idx == 0 {
                    (
                        theta0.clone(),
                        OptState::default(),
                        Stream::new(data.n, spec.seed),
                        f64::NAN,
                    )
                } else {
                    let carry = spec.after_optimizer().name == spec.optimizer.name;
                    (
                        theta_switch.clone().unwrap_or_else(|| theta0.clone()),
                        if carry {
                            switch_opt.clone()
                        } else {
                            OptState::default()
                        },
                        switch_stream
                            .clone()
                            .unwrap_or_else(|| Stream::new(data.n, spec.seed)),
                        switch_ema,
                    )
                };
                LegState {
                    theta,
                    opt,
                    stream,
                    step: first,
                    ema,
                    summary: LegSummary {
                        run: run_name.clone(),
                        phase: phase.into(),
                        projection: proj,
                        first_step: first,
                        last_step: first,
                        start_loss: f64::NAN,
                        end_loss: f64::NAN,
                        dom_lr: Stats::default(),
                        bulk_lr: Stats::default(),
                        dom_lr_series: Vec::new(),
                        bulk_lr_series: Vec::new(),
                    },
                }
            }
        };
        // The leg's θ and optimiser state go to the backend; they stay there until the leg ends.
        st.set_theta(&std::mem::take(&mut leg.theta))?;
        st.set_opt_state(&leg.opt)?;
        let fired = loop {
            let local = leg.step - first;
            let done = local >= len;
            let record = local.is_multiple_of(spec.record_every) || done;
            let need = record
                || (!done && (proj != Projection::None || rule.is_some() || spec.effective_lr));
            let diverged = |e: Error, step: usize| match e {
                Error::NonFinite(what) => Error::Diverged {
                    run: run_name.clone(),
                    step,
                    what,
                },
                e => e,
            };
            let sp = if need {
                Some(st.spectrum().map_err(|e| diverged(e, leg.step))?)
            } else {
                None
            };
            if let Some(sp) = &sp {
                if !sp.eval.loss.is_finite() {
                    return Err(Error::Diverged {
                        run: run_name.clone(),
                        step: leg.step,
                        what: format!("the loss is not finite ({})", sp.eval.loss),
                    });
                }
                leg.ema = if leg.ema.is_nan() {
                    sp.chi
                } else {
                    0.9 * leg.ema + 0.1 * sp.chi
                };
                if leg.summary.start_loss.is_nan() {
                    leg.summary.start_loss = sp.eval.loss;
                }
                leg.summary.end_loss = sp.eval.loss;
                leg.summary.last_step = leg.step;
            }
            let stop_rule = matches!((rule, &sp), (Some(t), Some(_)) if leg.ema > t);
            let stop = done || stop_rule;
            let emit = record || stop;
            let (dist_switch, dist_init) = if sp.is_some() && emit {
                (
                    match &theta_switch_buf {
                        Some(t) => st.dist(t)?,
                        None => f64::NAN,
                    },
                    st.dist(&theta0_buf)?,
                )
            } else {
                (f64::NAN, f64::NAN)
            };
            let mut row = sp.as_ref().map(|sp| Record {
                run: run_name.clone(),
                phase: phase.into(),
                step: leg.step,
                loss: sp.eval.loss,
                accuracy: sp.eval.accuracy,
                grad_norm: sp.grad_norm,
                chi_k: sp.chi,
                chi_ema: leg.ema,
                eigenvalues: sp.values.clone(),
                two_over_lr: 2.0 / opt_spec.lr,
                sam_edge: if opt_spec.name == OptKind::Sam {
                    sam_edge(sp.grad_norm, opt_spec.lr, opt_spec.rho)
                } else {
                    f64::NAN
                },
                dom_lr: f64::NAN,
                bulk_lr: f64::NAN,
                dist_switch,
                dist_init,
                hvps: sp.hvps,
                worst_residual: sp.worst_residual,
            });
            let snap = (keep_theta && row.is_some() && emit)
                .then(|| st.theta_host())
                .transpose()?;
            if !stop {
                // Projected only where a spectrum was measured (always, when projecting).
                let proj_now = if sp.is_some() { proj } else { Projection::None };
                let elr = spec.effective_lr && sp.is_some();
                let info = match st.step(opt_spec, &mut leg.stream, proj_now, elr) {
                    Ok(info) => info,
                    Err(e) => {
                        // The row measured at this (finite) θ is kept; the error names the step
                        // whose θ would not be finite, or this one when its gradient is not.
                        if let Some(r) = row.filter(|_| record || stop) {
                            obs.record(&r)?;
                            out.records.push(r);
                        }
                        let at = match &e {
                            Error::NonFinite(w) if w == THETA_NOT_FINITE => leg.step + 1,
                            _ => leg.step,
                        };
                        return Err(diverged(e, at));
                    }
                };
                if let (true, Some(r)) = (elr, row.as_mut()) {
                    r.dom_lr = info.dom_lr;
                    r.bulk_lr = info.bulk_lr;
                    if r.dom_lr.is_finite() {
                        leg.summary.dom_lr_series.push(r.dom_lr);
                    }
                    if r.bulk_lr.is_finite() {
                        leg.summary.bulk_lr_series.push(r.bulk_lr);
                    }
                }
                leg.step += 1;
            }
            if let Some(r) = row.filter(|_| record || stop) {
                obs.record(&r)?;
                out.records.push(r);
                if let Some(t) = snap {
                    out.thetas.push(t);
                }
            }
            if stop {
                break stop_rule;
            }
            obs.progress(&run_name, leg.step - first, len);
            let want_ckpt =
                spec.checkpoint_every > 0 && leg.step.is_multiple_of(spec.checkpoint_every);
            let stop_now = obs.stop_requested();
            if want_ckpt || stop_now {
                let mut opt = st.opt_state()?;
                let mut v: Vectors = vec![("theta".into(), st.theta_host()?)];
                if !opt.m.is_empty() {
                    v.push(("opt_m".into(), std::mem::take(&mut opt.m)));
                }
                if !opt.v.is_empty() {
                    v.push(("opt_v".into(), std::mem::take(&mut opt.v)));
                }
                if let Some(ts) = &theta_switch {
                    v.push(("theta_switch".into(), ts.clone()));
                }
                if !switch_opt.m.is_empty() {
                    v.push(("switch_opt_m".into(), switch_opt.m.clone()));
                }
                if !switch_opt.v.is_empty() {
                    v.push(("switch_opt_v".into(), switch_opt.v.clone()));
                }
                if let Some(w) = st.warm_host()? {
                    v.push(("warm".into(), w));
                }
                let c = Checkpoint {
                    spec: spec.clone(),
                    step: leg.step,
                    leg: leg_idx,
                    ema: leg.ema,
                    opt,
                    stream: leg.stream.state(spec.seed),
                    switch_step: out.switch_step,
                    switch_rule_fired: out.switch_rule_fired,
                    switch_ema,
                    switch_opt: switch_opt.clone(),
                    switch_stream: switch_stream.as_ref().map(|s| s.state(spec.seed)),
                    legs: out.legs.clone(),
                    current: Some(leg.summary.clone()),
                    records: out.records.clone(),
                    elapsed_s: earlier_s + started.elapsed().as_secs_f64(),
                    data: Some(data_fingerprint(data)),
                };
                obs.checkpoint(&c, &v)?;
                if stop_now {
                    return Err(Error::Interrupted {
                        step: leg.step,
                        msg: format!("{run_name} stopped; a checkpoint was written"),
                    });
                }
            }
        };
        // The series end here: a finished leg keeps only their statistics.
        leg.summary.dom_lr = Stats::of(&std::mem::take(&mut leg.summary.dom_lr_series));
        leg.summary.bulk_lr = Stats::of(&std::mem::take(&mut leg.summary.bulk_lr_series));
        if leg_idx == 0 {
            out.switch_step = Some(leg.step);
            out.switch_rule_fired = fired;
            theta_switch = Some(st.theta_host()?);
            theta_switch_buf = Some(st.theta_copy()?);
            switch_opt = st.opt_state()?;
            switch_stream = Some(leg.stream.clone());
            switch_ema = leg.ema;
            if obs.wants_snapshot() {
                let mut opt = switch_opt.clone();
                let mut v: Vectors =
                    vec![("theta".into(), theta_switch.clone().unwrap_or_default())];
                if !opt.m.is_empty() {
                    v.push(("opt_m".into(), std::mem::take(&mut opt.m)));
                }
                if !opt.v.is_empty() {
                    v.push(("opt_v".into(), std::mem::take(&mut opt.v)));
                }
                let s = Snapshot {
                    spec: spec.clone(),
                    step: leg.step,
                    rule_fired: fired,
                    ema: leg.ema,
                    opt,
                    stream: leg.stream.state(spec.seed),
                    records: out.records.clone(),
                    data: data_fingerprint(data),
                    made_by: Provenance {
                        backend: st.backend().name(),
                        seconds: earlier_s + started.elapsed().as_secs_f64(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Provenance::default()
                    },
                };
                obs.switched(&s, &v)?;
            }
        }
        out.legs.push(leg.summary);
        leg_idx += 1;
    }
    if n_legs == 1 {
        out.switch_step = None;
    }
    Ok(out)
}

/// The paper's claim for a run with the three variants after the switch: the dominant one stalls,
/// the bulk one trains like the plain optimiser. None when the run has not all three.
pub fn projection_verdict(spec: &RunSpec, o: &RunOutcome) -> Option<Verdict> {
    let base = spec.after_optimizer().display();
    let plain = o.leg(&base)?;
    let dom = o.leg(&format!("Dom-{base}"))?;
    let bulk = o.leg(&format!("Bulk-{base}"))?;
    let (d_p, d_d, d_b) = (
        plain.rel_decrease(),
        dom.rel_decrease(),
        bulk.rel_decrease(),
    );
    let holds = d_p > 0.0 && d_d < DOM_MAX_FRACTION * d_p && d_b > BULK_MIN_FRACTION * d_p;
    let pct = |l: &LegSummary| {
        format!(
            "{} {:.4} → {:.4} ({:+.1} %)",
            l.run,
            l.start_loss,
            l.end_loss,
            -100.0 * l.rel_decrease()
        )
    };
    let switch = o.switch_step.unwrap_or(0);
    let rule = if spec.switch == SwitchRule::ChiEma {
        if o.switch_rule_fired {
            format!(" (EMA of χ_k passed {})", spec.chi_threshold)
        } else {
            format!(
                " (EMA of χ_k never passed {} in {} steps)",
                spec.chi_threshold, spec.steps
            )
        }
    } else {
        String::new()
    };
    Some(Verdict::new(
        &format!("Dom-{base} stalls while Bulk-{base} trains like {base}"),
        holds,
        format!(
            "over {} steps after the switch at step {switch}{rule}: {}; {}; {} (thresholds: Dom < {DOM_MAX_FRACTION}·{base}, Bulk > {BULK_MIN_FRACTION}·{base})",
            spec.steps_after,
            pct(plain),
            pct(dom),
            pct(bulk)
        ),
        &[
            ("switch_step", switch as f64),
            ("plain_rel_decrease", d_p),
            ("dom_rel_decrease", d_d),
            ("bulk_rel_decrease", d_b),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(run: &str, step: usize, eigenvalues: Vec<f64>, x: f64) -> Record {
        Record {
            run: run.into(),
            phase: "after".into(),
            step,
            loss: 0.1 + x,
            accuracy: 0.9375,
            grad_norm: 1.0 / 3.0 + x,
            chi_k: f64::NAN,
            chi_ema: 0.95,
            eigenvalues,
            two_over_lr: 200.0,
            sam_edge: f64::NAN,
            dom_lr: 1e-300 * x,
            bulk_lr: -7.25e-12,
            dist_switch: std::f64::consts::PI * x,
            dist_init: f64::MAX,
            hvps: 18,
            worst_residual: f64::MIN_POSITIVE,
        }
    }

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn metrics_csv_reads_back_exactly() {
        let recs = vec![
            rec("SGD", 0, vec![35.609835739387, 32.35, 1e-9], 0.0),
            rec("Dom-SGD", 50, vec![], 0.123456789012345),
            rec("Bulk-SGD", 100, vec![-4.5], 2.0f64.sqrt()),
        ];
        let text = Record::csv(&recs, 3);
        let (back, top) = Record::parse_csv(&text).unwrap();
        assert_eq!(top, 3);
        assert_eq!(Record::csv(&back, 3), text);
        for (a, b) in recs.iter().zip(&back) {
            assert_eq!(
                (&a.run, &a.phase, a.step, a.hvps),
                (&b.run, &b.phase, b.step, b.hvps)
            );
            assert_eq!(a.eigenvalues.len(), b.eigenvalues.len());
            let fa = [
                a.loss,
                a.accuracy,
                a.chi_ema,
                a.grad_norm,
                a.chi_k,
                a.sam_edge,
                a.dom_lr,
                a.bulk_lr,
            ];
            let fb = [
                b.loss,
                b.accuracy,
                b.chi_ema,
                b.grad_norm,
                b.chi_k,
                b.sam_edge,
                b.dom_lr,
                b.bulk_lr,
            ];
            let ga = [a.dist_switch, a.dist_init, a.worst_residual, a.two_over_lr];
            let gb = [b.dist_switch, b.dist_init, b.worst_residual, b.two_over_lr];
            for (x, y) in fa.iter().chain(&ga).zip(fb.iter().chain(&gb)) {
                assert!(same(*x, *y), "{x} vs {y}");
            }
            for (x, y) in a.eigenvalues.iter().zip(&b.eigenvalues) {
                assert!(same(*x, *y));
            }
        }
    }

    #[test]
    fn a_broken_metrics_csv_is_an_error_naming_the_line() {
        let text = Record::csv(&[rec("SGD", 0, vec![1.0], 0.0)], 2);
        let err = |t: &str| Record::parse_csv(t).unwrap_err().to_string();
        assert!(err("step,loss\n1,2\n").contains("header"));
        let short = text.trim_end().rsplit_once(',').unwrap().0.to_string();
        assert!(
            err(&short).contains("line 2: 17 columns, expected 18"),
            "{}",
            err(&short)
        );
        let words = text.replace(",18,", ",many,");
        assert!(err(&words).contains("line 2: 'many' is not a count"));
        let loss = text.replace("SGD,after,0,0.1,", "SGD,after,0,zero,");
        assert!(err(&loss).contains("'zero' is not a number"));
    }

    /// On ½(λx² + μy²) with x tiny (‖∇L‖ dominated by y), one SAM step of the optimiser's own
    /// update multiplies x by 1 − ηλ(1 + ρλ/‖∇L‖); |·| < 1 at 0.9× the SAM edge, > 1 at 1.1×.
    #[test]
    fn sam_edge_is_where_one_sam_step_turns_unstable() {
        let (lr, rho, mu) = (0.01, 0.1, 3.0);
        let (x, y) = (1e-9, 2.0);
        let g0 = mu * y;
        let edge = sam_edge(g0, lr, rho);
        assert!(edge < 2.0 / lr && edge > 0.0);
        for (f, stable) in [(0.9, true), (1.1, false)] {
            let lam = f * edge;
            let grad = |t: &[f64]| Ok(vec![lam * t[0], mu * t[1]]);
            let theta = [x, y];
            let g = grad(&theta).unwrap();
            let gn = norm(&g);
            let d = sam_update(&theta, g, lr, rho, grad).unwrap();
            let measured = (x - d[0]) / x;
            let m = sam_multiplier(lam, gn, lr, rho);
            assert!((measured - m).abs() < 1e-12, "{measured} vs {m}");
            assert_eq!(m.abs() < 1.0, stable, "f = {f}: multiplier {m}");
            // At the edge itself the multiplier is −1 (to round-off).
        }
        let at = sam_multiplier(edge, g0, lr, rho);
        assert!((at + 1.0).abs() < 1e-12, "{at}");
        // ρ → 0: GD's 2/η; the printed form instead diverges.
        assert!((sam_edge(g0, lr, 1e-12) - 2.0 / lr).abs() < 1e-6);
        assert!(sam_edge_as_printed(g0, lr, 1e-12) > 1e6);
        // Dimensionless inside the root: scaling ‖∇L‖ and ρ together (a change of units of θ)
        // leaves the edge unchanged; the printed form does not.
        let c = 7.0;
        assert!((sam_edge(c * g0, lr, c * rho) - edge).abs() < 1e-9 * edge);
        let printed = sam_edge_as_printed(g0, lr, rho);
        assert!((sam_edge_as_printed(c * g0, lr, c * rho) - printed).abs() > 1e-3 * printed);
    }
}
