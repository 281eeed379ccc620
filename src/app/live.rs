//! The model panel's live run: one optimiser step at a time on the `Stepper` the CLI uses, with
//! the controls' actions (switch to Dom-/Bulk-, to GD, arm the paper's auto-switch) as state
//! changes that mark the branch point, and the history the plots draw.
//!
//! **Branches** (the paper's Figure 1, live): [`Action::Branch`] forks the run at its current θ
//! into several runs — SGD, Dom-SGD and Bulk-SGD (for GD: GD, Dom-GD, Bulk-GD; for SAM likewise),
//! or SGD and GD from the same point — each with a copy of θ, of the optimiser state and of the
//! minibatch stream, so they draw the same minibatches afterwards. [`LiveRun::step`] then advances
//! every branch by one step (lockstep). Each branch solves its own spectrum: they share θ only at
//! the fork, where the new branches start from the run's eigenvectors (a warm start that already
//! meets the tolerance); after one step their θ differ and so do their Hessians.

use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::experiment::run::{
    BULK_MIN_FRACTION, DOM_MAX_FRACTION, GD_CHI_MAX, OptState, Spectrum, Stepper, Stream,
    data_fingerprint, nan_null, sam_edge,
};
use crate::experiment::run::{THETA_NOT_FINITE, Vectors};
use crate::experiment::snapshot::Snapshot;
use crate::experiment::spec::{OptKind, OptimizerSpec, Projection};
use crate::nn::model::ModelSpec;

/// Which runs a fork makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BranchSet {
    /// The optimiser as it is, its Dom- and its Bulk- variant (the paper's Figure 1).
    Projections,
    /// The optimiser as it is and full-batch GD at the same η (the paper's Figures 18–19).
    GdVsSgd,
}

/// What a control asks of the run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Action {
    /// Project every update from now on (Dom-, Bulk-) or stop projecting.
    Project(Projection),
    /// Continue with full-batch GD (same η).
    ToGd,
    /// Arm the paper's rule: when the EMA (0.9) of χ_k exceeds 0.95, switch to this projection.
    ArmAuto(Projection),
    Disarm,
    /// Change the optimiser (kind, η, batch, ρ) from the next step.
    SetOptimizer(OptimizerSpec),
    /// Spectrum every n steps.
    SetEigenEvery(usize),
    /// Fork the run at its current θ into these branches, advanced in lockstep (once per run).
    Branch(BranchSet),
}

/// A marked event on the plots.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub step: usize,
    pub label: String,
}

/// One measured point. NaN (not measured) travels as JSON null (to the web page's worker).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub step: usize,
    #[serde(deserialize_with = "nan_null")]
    pub loss: f64,
    #[serde(deserialize_with = "nan_null")]
    pub accuracy: f64,
    #[serde(deserialize_with = "nan_null")]
    pub chi: f64,
    #[serde(deserialize_with = "nan_null")]
    pub chi_ema: f64,
    pub eigenvalues: Vec<f64>,
    #[serde(deserialize_with = "nan_null")]
    pub edge: f64,
}

/// One branch after a fork, as the plots and the report show it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BranchView {
    /// "SGD", "Dom-SGD", "Bulk-SGD", "GD", …
    pub name: String,
    pub projection: Projection,
    /// Steps since the fork.
    pub steps: usize,
    /// (step, full-data loss) after every step since the fork, the fork's θ first.
    pub loss: Vec<[f64; 2]>,
    /// (step, χ_k(∇L)) where a spectrum was measured.
    pub chi: Vec<[f64; 2]>,
    /// (step, full-data accuracy) after every step since the fork, the fork's θ first.
    #[serde(default)]
    pub accuracy: Vec<[f64; 2]>,
    /// (step, λ₁ of the full-data loss Hessian) where a spectrum was measured: the branch's own
    /// sharpness (each branch solves its own top-k after the first step).
    #[serde(default)]
    pub lambda1: Vec<[f64; 2]>,
    /// ‖θ − θ_fork‖ now.
    #[serde(deserialize_with = "nan_null")]
    pub dist_fork: f64,
    /// Why the branch stopped (diverged), if it did.
    pub stopped: Option<String>,
}

impl BranchView {
    /// Full-data loss now (NaN before the first measurement).
    pub fn loss_now(&self) -> f64 {
        self.loss.last().map_or(f64::NAN, |p| p[1])
    }
    /// (L_fork − L_now) / L_fork.
    pub fn rel_decrease(&self, fork_loss: f64) -> f64 {
        (fork_loss - self.loss_now()) / fork_loss
    }
    /// Mean of the χ_k measured since the fork (NaN without any).
    pub fn mean_chi(&self) -> f64 {
        mean(self.chi.iter().map(|c| c[1]))
    }
    /// Mean of the χ_k measured over the second half of the steps since the fork (the rule of
    /// `reproduce fig18-19`), never the fork's own sample (shared by every branch); NaN without
    /// any.
    pub fn late_mean_chi(&self) -> f64 {
        let Some(first) = self.chi.first().map(|c| c[0]) else {
            return f64::NAN;
        };
        let half = first + self.steps as f64 / 2.0;
        mean(
            self.chi
                .iter()
                .filter(|c| c[0] > first && c[0] >= half)
                .map(|c| c[1]),
        )
    }
}

fn mean(x: impl Iterator<Item = f64>) -> f64 {
    let (n, sum) = x.fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// The fork: where it happened and its branches.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Fork {
    pub step: usize,
    pub set: Option<BranchSet>,
    /// Full-data loss at θ_fork.
    #[serde(deserialize_with = "nan_null")]
    pub loss: f64,
    pub branches: Vec<BranchView>,
}

impl Fork {
    /// Steps every branch still running has made (the lockstep count).
    pub fn steps(&self) -> usize {
        self.branches
            .iter()
            .filter(|b| b.stopped.is_none())
            .map(|b| b.steps)
            .min()
            .unwrap_or(0)
    }

    /// The paper's claim on the live numbers: for [`BranchSet::Projections`] "Dom- stalls
    /// (< 0.25 × the plain branch's relative loss decrease) while Bulk- trains like it (> 0.75 ×)",
    /// for [`BranchSet::GdVsSgd`] "GD's mean χ_k over the second half < 0.2 and below SGD's"
    /// (fig18-19's rule), with the numbers; None before the branches have numbers; "cannot be
    /// compared" (false) once a branch has stopped. The thresholds are the CLI verdicts'.
    pub fn verdict(&self) -> Option<(bool, String)> {
        // A stopped branch has no numbers to compare from its stop on: say so.
        if let Some(b) = self.branches.iter().find(|b| b.stopped.is_some()) {
            return Some((
                false,
                format!(
                    "{} stopped after {} steps ({}): the branches cannot be compared",
                    b.name,
                    b.steps,
                    b.stopped.as_deref().unwrap_or("")
                ),
            ));
        }
        let b = |p: Projection, gd: Option<bool>| {
            self.branches.iter().find(|x| {
                x.projection == p
                    && gd.is_none_or(|g| (x.name == "GD" || x.name.ends_with("-GD")) == g)
            })
        };
        match self.set? {
            BranchSet::Projections => {
                let plain = b(Projection::None, None)?;
                let dom = b(Projection::Dominant, None)?;
                let bulk = b(Projection::Bulk, None)?;
                let (p, d, u) = (
                    plain.rel_decrease(self.loss),
                    dom.rel_decrease(self.loss),
                    bulk.rel_decrease(self.loss),
                );
                if !(p.is_finite() && d.is_finite() && u.is_finite()) || self.steps() == 0 {
                    return None;
                }
                let holds = crate::paper::claims::dom_stalls_bulk_trains(p, d, u);
                let ratio = |x: f64| {
                    if p > 0.0 {
                        format!(" = {:.2} × {}", x / p, plain.name)
                    } else {
                        String::new()
                    }
                };
                Some((
                    holds,
                    format!(
                        "{} steps since the fork at step {}: loss {} {:+.2} %, {} {:+.2} %{}, {} {:+.2} %{} — \
                         \"{} stalls (< {DOM_MAX_FRACTION} ×) while {} trains like {} (> {BULK_MIN_FRACTION} ×)\" {}",
                        self.steps(),
                        self.step,
                        plain.name,
                        -100.0 * p,
                        dom.name,
                        -100.0 * d,
                        ratio(d),
                        bulk.name,
                        -100.0 * u,
                        ratio(u),
                        dom.name,
                        bulk.name,
                        plain.name,
                        if holds {
                            "HOLDS"
                        } else {
                            "does not hold (yet)"
                        }
                    ),
                ))
            }
            BranchSet::GdVsSgd => {
                let gd = b(Projection::None, Some(true))?;
                let sgd = b(Projection::None, Some(false))?;
                let (g, s) = (gd.late_mean_chi(), sgd.late_mean_chi());
                if !(g.is_finite() && s.is_finite()) {
                    return None;
                }
                let holds = crate::paper::claims::gd_chi_near_zero(g, s);
                Some((
                    holds,
                    format!(
                        "{} steps since the fork at step {}: mean χ_k(∇L) over the second half under {} {:.3}, under {} {:.3} — \
                         \"χ_k under GD < {GD_CHI_MAX} (and below SGD's)\" {}",
                        self.steps(),
                        self.step,
                        sgd.name,
                        s,
                        gd.name,
                        g,
                        if holds {
                            "HOLDS"
                        } else {
                            "does not hold (yet)"
                        }
                    ),
                ))
            }
        }
    }
}

/// What the UI shows: history and status.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct History {
    pub points: Vec<Point>,
    pub markers: Vec<Marker>,
    pub step: usize,
    pub run_name: String,
    pub hvps_last: usize,
    #[serde(deserialize_with = "nan_null")]
    pub worst_residual: f64,
    pub armed: Option<Projection>,
    pub k: usize,
    /// The branches after a fork.
    pub fork: Option<Fork>,
    /// Where the run started: "θ₀ (seed 0)" or the snapshot it was loaded from.
    pub origin: String,
    /// The step it started at (the snapshot's; 0 from θ₀).
    pub start_step: usize,
}

/// One run the live run advances: the run itself, or a branch after a fork.
struct Lane<B: Backend> {
    st: Stepper<B>,
    opt: OptimizerSpec,
    stream: Stream,
    proj: Projection,
    ema: f64,
}

impl<B: Backend + Clone> Lane<B> {
    fn name(&self) -> String {
        format!("{}{}", self.proj.prefix(), self.opt.display())
    }
}

pub struct LiveRun<B: Backend> {
    /// The run (first) and, after a fork, its other branches.
    lanes: Vec<Lane<B>>,
    /// θ at the fork, on the backend.
    fork_theta: Option<B::Buf>,
    eigen_every: usize,
    pub history: History,
    spec: ModelSpec,
    tol: f64,
    /// The auto-switch fires when the EMA of χ_k exceeds this (the paper's 0.95).
    pub auto_threshold: f64,
}

pub const AUTO_THRESHOLD: f64 = 0.95;

impl<B: Backend + Clone> LiveRun<B> {
    pub fn new(
        backend: B,
        spec: impl Into<ModelSpec>,
        data: &Dataset,
        opt: OptimizerSpec,
        k: usize,
        eigen_every: usize,
        seed: u64,
    ) -> Result<Self> {
        let spec: ModelSpec = spec.into();
        opt.validate("optimizer", data.n)?;
        if k == 0 || 2 * k > spec.num_params() {
            return Err(Error::InvalidArgument(format!(
                "k = {k}: too large for this net"
            )));
        }
        let tol = 1e-3;
        let mut st = Self::stepper(backend, &spec, data, k, 2 * k, tol)?;
        st.set_theta(&spec.init(seed))?;
        let run_name = opt.display();
        Ok(LiveRun {
            lanes: vec![Lane {
                st,
                opt,
                stream: Stream::new(data.n, seed),
                proj: Projection::None,
                ema: f64::NAN,
            }],
            fork_theta: None,
            eigen_every: eigen_every.max(1),
            history: History {
                run_name,
                k,
                origin: format!("θ₀ (seed {seed})"),
                ..History::default()
            },
            spec,
            tol,
            auto_threshold: AUTO_THRESHOLD,
        })
    }

    /// A stepper of the app's runs: MSE, the top `top` eigenpairs (2k for the run, whose plots
    /// show the next k too; k for the branches after a fork, as the CLI's fig1 solves).
    fn stepper(
        backend: B,
        spec: &ModelSpec,
        data: &Dataset,
        k: usize,
        top: usize,
        tol: f64,
    ) -> Result<Stepper<B>> {
        Stepper::new(
            backend,
            spec.clone(),
            crate::backend::LossKind::Mse,
            data,
            k,
            top,
            tol,
        )
    }

    /// Continue from a snapshot (`reproduce … --snapshot-at-switch`): its θ, optimiser state,
    /// minibatch stream, χ-EMA and step; its recorded rows become the history before now. The
    /// run's optimiser should be the snapshot's (the scenario's settings take it from there).
    /// Errors: a snapshot of another network, loss or data (it names what differs), or vectors
    /// of the wrong length.
    pub fn start_from(
        &mut self,
        s: &Snapshot,
        v: &Vectors,
        data: &Dataset,
        label: &str,
    ) -> Result<()> {
        let net = s.spec.net()?;
        let mine = &self.spec;
        if net != *mine {
            return Err(Error::InvalidArgument(format!(
                "snapshot {label}: it is of {}, this run of {}",
                net.describe(),
                mine.describe()
            )));
        }
        if s.spec.loss != crate::backend::LossKind::Mse {
            return Err(Error::InvalidArgument(format!(
                "snapshot {label}: its loss is {:?}; the app trains with MSE",
                s.spec.loss
            )));
        }
        let now = data_fingerprint(data);
        if s.data != now {
            return Err(Error::InvalidArgument(format!(
                "snapshot {label} was computed on other data ({}; the app has {now}): the data cache differs from the one the snapshot was made with",
                s.data
            )));
        }
        // The minibatch stream must be a permutation of this data's samples (a hand-edited
        // snapshot must not index past it).
        let n = data.n;
        let mut seen = vec![false; n];
        let perm_ok = s.stream.perm.len() == n
            && s.stream
                .perm
                .iter()
                .all(|&i| i < n && !std::mem::replace(&mut seen[i], true));
        if !perm_ok {
            return Err(Error::InvalidArgument(format!(
                "snapshot {label}: its minibatch stream is not a permutation of the {n} samples"
            )));
        }
        let (theta, opt) = s.state(v, self.lanes[0].st.num_params())?;
        let lane = &mut self.lanes[0];
        lane.st.set_theta(&theta)?;
        // The snapshot's optimiser state only for its own optimiser (a momentum buffer is no
        // first moment of Adam's); another starts fresh, as a branch to another optimiser does.
        let carry = s.spec.optimizer.name == lane.opt.name;
        lane.st
            .set_opt_state(&if carry { opt } else { OptState::default() })?;
        lane.st.forget_warm_start();
        lane.stream = Stream::restore(&s.stream);
        lane.ema = s.ema;
        lane.proj = Projection::None;
        let h = &mut self.history;
        h.step = s.step;
        h.start_step = s.step;
        h.points = s
            .records
            .iter()
            .map(|r| Point {
                step: r.step,
                loss: r.loss,
                accuracy: r.accuracy,
                chi: r.chi_k,
                chi_ema: r.chi_ema,
                eigenvalues: r.eigenvalues.clone(),
                edge: if r.sam_edge.is_finite() {
                    r.sam_edge
                } else {
                    r.two_over_lr
                },
            })
            .collect();
        h.markers = vec![Marker {
            step: s.step,
            label: label.to_string(),
        }];
        h.origin = format!("{label} (step {})", s.step);
        h.fork = None;
        self.fork_theta = None;
        self.lanes.truncate(1);
        Ok(())
    }

    pub fn backend(&self) -> &B {
        self.lanes[0].st.backend()
    }
    /// θ of the run (the first branch after a fork) read back from the backend (files, exports).
    pub fn theta(&self) -> Result<Vec<f64>> {
        self.lanes[0].st.theta_host()
    }
    /// θ of branch `i` (0: the run itself) read back.
    pub fn branch_theta(&self, i: usize) -> Result<Vec<f64>> {
        self.lanes
            .get(i)
            .ok_or_else(|| Error::InvalidArgument(format!("no branch {i}")))?
            .st
            .theta_host()
    }
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }
    pub fn projection(&self) -> Projection {
        self.lanes[0].proj
    }
    pub fn optimizer(&self) -> &OptimizerSpec {
        &self.lanes[0].opt
    }
    /// Branches being advanced (1 before a fork).
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    fn mark(&mut self, label: String) {
        self.history.markers.push(Marker {
            step: self.history.step,
            label,
        });
        self.history.run_name = self.lanes[0].name();
    }

    pub fn apply(&mut self, a: Action) -> Result<()> {
        let branched = self.history.fork.is_some();
        if branched && !matches!(a, Action::SetEigenEvery(_) | Action::Disarm) {
            return Err(Error::InvalidArgument(
                "the run is branched: reset (or load the scenario again) to change it".into(),
            ));
        }
        match a {
            Action::Project(p) => {
                if p != self.lanes[0].proj {
                    self.lanes[0].proj = p;
                    let n = self.lanes[0].name();
                    self.mark(format!("→ {n}"));
                }
            }
            Action::ToGd => {
                if self.lanes[0].opt.name != OptKind::Gd {
                    let lane = &mut self.lanes[0];
                    lane.opt = OptimizerSpec::gd(lane.opt.lr);
                    lane.st.set_opt_state(&OptState::default())?;
                    let n = lane.name();
                    self.mark(format!("→ {n}"));
                }
            }
            Action::ArmAuto(p) => self.history.armed = Some(p),
            Action::Disarm => self.history.armed = None,
            Action::SetOptimizer(o) => {
                o.validate("optimizer", usize::MAX)?;
                let lane = &mut self.lanes[0];
                if o != lane.opt {
                    if o.name != lane.opt.name {
                        lane.st.set_opt_state(&OptState::default())?;
                    }
                    lane.opt = o;
                    let n = lane.name();
                    let lr = lane.opt.lr;
                    self.mark(format!("→ {n} (η {lr})"));
                }
            }
            Action::SetEigenEvery(n) => self.eigen_every = n.max(1),
            Action::Branch(set) => self.branch(set)?,
        }
        Ok(())
    }

    /// Fork at the current θ: the run becomes the first branch (unprojected), the others are new
    /// steppers with copies of θ, the optimiser state, the stream, the χ-EMA and the eigenvectors.
    fn branch(&mut self, set: BranchSet) -> Result<()> {
        let base = self.lanes[0].opt.clone();
        let variants: Vec<(OptimizerSpec, Projection)> = match set {
            BranchSet::Projections => vec![
                (base.clone(), Projection::None),
                (base.clone(), Projection::Dominant),
                (base, Projection::Bulk),
            ],
            BranchSet::GdVsSgd => {
                let gd = OptimizerSpec::gd(base.lr);
                if base.name == OptKind::Gd {
                    return Err(Error::InvalidArgument(
                        "GD vs SGD: the run is GD already; start from an SGD run".into(),
                    ));
                }
                vec![(base, Projection::None), (gd, Projection::None)]
            }
        };
        self.history.armed = None;
        let (theta, opt_state, warm) = {
            let l = &self.lanes[0];
            (l.st.theta_host()?, l.st.opt_state()?, l.st.warm_host()?)
        };
        let k = self.history.k;
        let data = self.lanes[0].st.data().clone();
        let mut lanes = Vec::with_capacity(variants.len());
        for (i, (opt, proj)) in variants.into_iter().enumerate() {
            if i == 0 {
                continue;
            }
            // The branches' spectra serve their projections and χ_k: the top k suffice (the
            // run's own plots keep the next k).
            let mut st = Self::stepper(self.backend().clone(), &self.spec, &data, k, k, self.tol)?;
            st.set_theta(&theta)?;
            let carry = opt.name == self.lanes[0].opt.name;
            st.set_opt_state(&if carry {
                opt_state.clone()
            } else {
                OptState::default()
            })?;
            st.set_warm_host(warm.as_deref().and_then(|w| w.get(..k * theta.len())))?;
            lanes.push(Lane {
                st,
                opt,
                stream: self.lanes[0].stream.clone(),
                proj,
                ema: self.lanes[0].ema,
            });
        }
        // Everything that can fail before the run changes: a failed fork leaves it as it was.
        let fork_theta = self.lanes[0].st.theta_copy()?;
        let eval = self.lanes[0].st.full_eval()?;
        let loss = eval.loss;
        self.lanes[0].proj = Projection::None;
        self.lanes.truncate(1);
        self.lanes.extend(lanes);
        self.fork_theta = Some(fork_theta);
        let s = self.history.step;
        self.history.fork = Some(Fork {
            step: s,
            set: Some(set),
            loss,
            branches: self
                .lanes
                .iter()
                .map(|l| BranchView {
                    name: l.name(),
                    projection: l.proj,
                    steps: 0,
                    loss: vec![[s as f64, loss]],
                    chi: Vec::new(),
                    // (JSON has no NaN: the page's messages must parse.)
                    accuracy: if eval.accuracy.is_finite() {
                        vec![[s as f64, eval.accuracy]]
                    } else {
                        Vec::new()
                    },
                    lambda1: Vec::new(),
                    dist_fork: 0.0,
                    stopped: None,
                })
                .collect(),
        });
        let names: Vec<String> = self.lanes.iter().map(|l| l.name()).collect();
        self.mark(format!("fork: {}", names.join(" / ")));
        Ok(())
    }

    /// One optimiser step of every branch (with a spectrum first when it is due or a projection
    /// needs it). Before a fork an error ends the step (and names the step that diverged); after
    /// it a branch that diverges stops with its message while the others go on, and the error
    /// comes only when none is left.
    pub fn step(&mut self) -> Result<()> {
        let s = self.history.step;
        // The first step after a fork: every branch is at θ_fork, so one spectrum serves all
        // (the others adopt its eigenvectors); afterwards each branch solves its own.
        let shared = if self.history.fork.as_ref().is_some_and(|f| f.step == s) {
            let sp = self.lanes[0].st.spectrum()?;
            let (first, rest) = self.lanes.split_at_mut(1);
            for l in rest {
                l.st.adopt_spectrum(&first[0].st)?;
            }
            Some(sp)
        } else {
            None
        };
        for i in 0..self.lanes.len() {
            let stopped = self
                .history
                .fork
                .as_ref()
                .is_some_and(|f| f.branches[i].stopped.is_some());
            if stopped {
                continue;
            }
            match self.step_lane(i, s, shared.as_ref()) {
                Ok(()) => {}
                Err(e) if self.history.fork.is_some() => {
                    if let Some(f) = &mut self.history.fork {
                        f.branches[i].stopped = Some(e.to_string());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(f) = &self.history.fork
            && f.branches.iter().all(|b| b.stopped.is_some())
        {
            return Err(Error::InvalidArgument(format!(
                "every branch stopped: {}",
                f.branches
                    .iter()
                    .filter_map(|b| b.stopped.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        self.history.step = s + 1;
        Ok(())
    }

    /// One step of lane `i` at global step `s`; `shared`: the spectrum at θ_fork, which every
    /// branch has adopted (the first step after a fork).
    fn step_lane(&mut self, i: usize, s: usize, shared: Option<&Spectrum>) -> Result<()> {
        let due = s.is_multiple_of(self.eigen_every);
        let armed = i == 0 && self.history.armed.is_some();
        let branched = self.history.fork.is_some();
        let lane = &mut self.lanes[i];
        let need = due || lane.proj != Projection::None || armed;
        let sp = match shared {
            Some(sp) => Some(sp.clone()),
            None if need => Some(lane.st.spectrum()?),
            None => None,
        };
        if let Some(sp) = &sp {
            lane.ema = if lane.ema.is_nan() {
                sp.chi
            } else {
                0.9 * lane.ema + 0.1 * sp.chi
            };
        }
        if i == 0
            && let Some(sp) = &sp
        {
            self.history.hvps_last = sp.hvps;
            self.history.worst_residual = sp.worst_residual;
            if due || armed {
                self.history.points.push(Point {
                    step: s,
                    loss: sp.eval.loss,
                    accuracy: sp.eval.accuracy,
                    chi: sp.chi,
                    chi_ema: lane.ema,
                    eigenvalues: sp.values.clone(),
                    edge: if lane.opt.name == OptKind::Sam {
                        sam_edge(sp.grad_norm, lane.opt.lr, lane.opt.rho)
                    } else {
                        2.0 / lane.opt.lr
                    },
                });
            }
            if let Some(p) = self.history.armed
                && lane.ema > self.auto_threshold
            {
                self.history.armed = None;
                lane.proj = p;
                let n = lane.name();
                let t = self.auto_threshold;
                self.mark(format!("EMA(χ) > {t}: → {n}"));
            }
        }
        let lane = &mut self.lanes[i];
        let mut opt = lane.opt.clone();
        if let Some(b) = opt.batch {
            opt.batch = Some(b.min(lane.stream.len()));
        }
        let proj = if sp.is_some() {
            lane.proj
        } else {
            Projection::None
        };
        // The one step routine of the runner (θ and the optimiser state stay on the backend).
        match lane.st.step(&opt, &mut lane.stream, proj, false) {
            Err(Error::NonFinite(what)) => {
                // As the runner: the step whose θ would not be finite, or this one when its
                // gradient is not.
                let step = if what == THETA_NOT_FINITE { s + 1 } else { s };
                return Err(Error::Diverged {
                    run: lane.name(),
                    step,
                    what,
                });
            }
            r => r?,
        };
        if branched {
            // The branch's loss after this step (a spectrum next step reuses the evaluation)
            // and its distance from the fork.
            let eval = lane.st.full_eval()?;
            let loss = eval.loss;
            let dist = match &self.fork_theta {
                Some(t) => lane.st.dist(t)?,
                None => f64::NAN,
            };
            if let Some(f) = &mut self.history.fork {
                let b = &mut f.branches[i];
                if let Some(sp) = sp.as_ref().filter(|sp| sp.chi.is_finite()) {
                    b.chi.push([s as f64, sp.chi]);
                }
                if let Some(l1) = sp
                    .as_ref()
                    .and_then(|sp| sp.values.first().copied())
                    .filter(|l| l.is_finite())
                {
                    b.lambda1.push([s as f64, l1]);
                }
                b.steps += 1;
                if loss.is_finite() {
                    b.loss.push([(s + 1) as f64, loss]);
                    if eval.accuracy.is_finite() {
                        b.accuracy.push([(s + 1) as f64, eval.accuracy]);
                    }
                    b.dist_fork = dist;
                } else {
                    // Kept out of the series (JSON has no NaN: the page's messages must parse).
                    b.stopped = Some(format!("the loss is not finite ({loss}) after step {s}"));
                }
            }
        }
        Ok(())
    }
}
