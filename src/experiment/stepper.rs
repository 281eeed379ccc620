//! The one device-resident step of the runner, the presets, the app and `bench`: [`Stepper`]
//! holds θ, the optimiser state, the minibatch gradient, the update and the basis of S_k on the
//! backend, and owns the one projection of the update (through [`crate::optim::project_update`]).
//! Its spectrum (full-data loss, top eigenpairs, χ_k) is measured in [`super::spectrum`].
//!
//! How a step flows: the minibatch's rows from the [`Stream`] → ∇L on them into `g` (the
//! minibatch engine) → the optimiser's update d ([`crate::optim`]) → d projected onto S_k or its
//! complement with the basis the last spectrum left (and, when asked, the effective learning
//! rates' dot products) → θ − d checked for finiteness in the step's one read-back (with the
//! gradient's loss statistics) → θ and the optimiser state committed.

use super::spec::{OptKind, OptimizerSpec, Projection};
use super::stream::Stream;
use crate::backend::Backend;
use crate::backend::{Ten, TenMut};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::hessian::WarmSolver;
use crate::hessian::block::BlockWork;
use crate::hessian::lanczos::{LanczosOptions, LanczosWork};
use crate::hessian::subspace::Span;
use crate::nn::engine::Engine;
use crate::nn::model::ModelSpec;
use crate::optim::{OptBuffers, OptState, adam, momentum, project_update, sam, sgd};

/// What one step measured besides the spectrum: the effective learning rates along S_k and its
/// complement (NaN when not asked for or undefined).
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// ⟨d, P_k∇L⟩/‖P_k∇L‖² of the update d actually taken.
    pub dom_lr: f64,
    /// ⟨d, P_k⊥∇L⟩/‖P_k⊥∇L‖².
    pub bulk_lr: f64,
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
    pub(super) full: Engine<B>,
    pub(super) batch: Engine<B>,
    pub(super) data: Dataset,
    pub(super) lanczos: LanczosOptions,
    pub(super) k: usize,
    /// The last solve's eigenvectors (`top` × p): the basis of S_k (first k rows) and the warm
    /// start of the next solve.
    pub(super) warm: Option<B::Buf>,
    pub(super) warm_solver: WarmSolver,
    pub(super) theta: B::Buf,
    /// Bumped by every change of θ.
    pub(super) version: u64,
    /// The θ version the full-data engine was last set at.
    pub(super) full_version: Option<u64>,
    /// The θ version of the last spectrum (the basis in `warm` belongs to it).
    pub(super) measured: Option<u64>,
    /// The optimiser's state (momentum buffer or Adam's moments, the step count) and the next
    /// step's, swapped in only when the step succeeds (a diverging step leaves it as it was).
    pub(super) opt: OptBuffers<B>,
    /// The minibatch gradient and the update d of the current step, a p-long scratch and
    /// `top` coefficients (twice).
    pub(super) g: B::Buf,
    pub(super) d: B::Buf,
    pub(super) scratch: B::Buf,
    pub(super) coef: B::Buf,
    coef2: B::Buf,
    /// Eight scalars read back together at the end of a step: the effective learning rates' dot
    /// products, the non-finite count of θ − d, the gradient engine's deferred statistics (slots
    /// 5..8, which also carry the full-data statistics beside a solve in `spectrum`).
    pub(super) scalars: B::Buf,
    /// The eigensolver's buffers, reused from step to step.
    pub(super) work: LanczosWork<B>,
    /// Block Davidson's, likewise.
    pub(super) block_work: BlockWork<B>,
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
            opt: OptBuffers::default(),
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
        let p = self.num_params();
        self.opt.load(self.full.backend(), s, p)
    }
    /// The optimiser state read back (a checkpoint, the state at the switch).
    pub fn opt_state(&self) -> Result<OptState> {
        self.opt.state(self.full.backend())
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
        if (proj != Projection::None || effective_lr) && self.measured != Some(self.version) {
            return Err(Error::InvalidArgument(
                "a projected step or effective learning rates need the spectrum at this θ first"
                    .into(),
            ));
        }
        let rows = opt.batch.map(|n| stream.next(n));
        // The step counter, the optimiser state and θ change only when the step succeeds.
        let t_next = self.opt.t + 1;
        // SAM reads ‖g‖ at once anyway; every other step reads its gradient's loss statistics
        // with the update's finiteness, at the end.
        let pending = self.grad_into_g(rows.as_deref(), false, opt.name != OptKind::Sam)?;
        self.update(opt, rows.as_deref(), t_next)?;
        // Whether the rates' dot products are in `scalars[0..4]`, to read with the update's check.
        let mut rates = false;
        if proj != Projection::None || effective_lr {
            rates = self.project_and_rates(proj, effective_lr)?;
        }
        let info = self.finish_step(pending, rates)?;
        std::mem::swap(&mut self.theta, &mut self.scratch);
        self.opt.commit(opt.name, t_next);
        self.version += 1;
        Ok(info)
    }

    /// The optimiser's update d from the gradient in `g` ([`crate::optim`]); SAM takes the
    /// gradient at its perturbed point on the same `rows` first.
    fn update(&mut self, opt: &OptimizerSpec, rows: Option<&[usize]>, t_next: u64) -> Result<()> {
        let b = self.full.backend().clone();
        let p = self.num_params();
        let lr = opt.lr;
        match opt.name {
            OptKind::Sgd | OptKind::Gd => sgd::update(&b, lr, &self.g, &mut self.d, p),
            OptKind::Momentum => {
                momentum::update(&b, &mut self.opt, opt.momentum, lr, &self.g, &mut self.d, p)
            }
            OptKind::Adam => {
                let h = adam::hyper(opt, t_next);
                adam::update(&b, &mut self.opt, h, &self.g, &mut self.d, p)
            }
            OptKind::Sam => {
                // d = η ∇L(θ + ρ g/‖g‖) on the same minibatch; ρ = 0 or g = 0: η g.
                if sam::perturb(&b, &self.theta, &self.g, opt.rho, &mut self.scratch, p)? {
                    self.grad_into_g(rows, true, false)?;
                }
                sgd::update(&b, lr, &self.g, &mut self.d, p)
            }
        }
    }

    /// Project d as `proj` says with the basis of S_k; with `effective_lr` also put the dot
    /// products of the effective learning rates into `scalars[0..4]` (then true).
    fn project_and_rates(&mut self, proj: Projection, effective_lr: bool) -> Result<bool> {
        let b = self.full.backend().clone();
        let p = self.num_params();
        if effective_lr {
            // The full-data gradient at this θ (SAM on the full data moved the engine).
            self.full_here()?;
        }
        let u = self
            .warm
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("no basis of S_k".into()))?;
        let span = Span::new(u, self.k, p);
        project_update(&b, proj, &span, &mut self.d, &mut self.coef)?;
        if !effective_lr {
            return Ok(false);
        }
        // The full-data gradient at this θ (the spectrum's) split into P_k g (scratch)
        // and P_k⊥ g (g − scratch); four scalars read back.
        let g = self.full.grad()?;
        span.coefficients(&b, g, &mut self.coef2)?;
        span.expand(&b, &self.coef2, &mut self.scratch, false)?;
        let sc = &mut self.scalars;
        b.dot_into(
            Ten(&self.scratch, 0),
            Ten(&self.scratch, 0),
            p,
            TenMut(sc, 0),
        )?;
        b.dot_into(Ten(&self.d, 0), Ten(&self.scratch, 0), p, TenMut(sc, 1))?;
        // scratch ← g − P_k g.
        b.scale(-1.0, &mut self.scratch, 0, p)?;
        b.axpy(1.0, g, 0, &mut self.scratch, 0, p)?;
        b.dot_into(
            Ten(&self.scratch, 0),
            Ten(&self.scratch, 0),
            p,
            TenMut(sc, 2),
        )?;
        b.dot_into(Ten(&self.d, 0), Ten(&self.scratch, 0), p, TenMut(sc, 3))?;
        Ok(true)
    }

    /// θ − d into the scratch, and the step's one read-back: the non-finite count of θ − d with
    /// the rates' dot products (`rates`) and the gradient's loss statistics (`pending`). The
    /// caller makes the scratch θ when this succeeds, so a diverging step leaves θ and the
    /// optimiser state at their last finite values.
    fn finish_step(&mut self, pending: Option<bool>, rates: bool) -> Result<StepInfo> {
        let b = self.full.backend().clone();
        let p = self.num_params();
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
        let mut info = StepInfo {
            dom_lr: f64::NAN,
            bulk_lr: f64::NAN,
        };
        if rates {
            let (np, dp, nb, db) = (sc[0], sc[1], sc[2], sc[3]);
            info.dom_lr = if np > 0.0 { dp / np } else { f64::NAN };
            info.bulk_lr = if nb > 0.0 { db / nb } else { f64::NAN };
        }
        Ok(info)
    }
}
