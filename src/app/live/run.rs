//! The live run itself: its lanes (the run, and after a fork its branches), each a `Stepper` with
//! its optimiser, minibatch stream and projection, advanced in lockstep; the controls' actions.

use super::*;

/// One run the live run advances: the run itself, or a branch after a fork.
struct Lane<B: Backend> {
    st: Stepper<B>,
    opt: OptimizerSpec,
    stream: Stream,
    proj: Projection,
    /// The χ-EMA's running sum and sum of weights ([`EmaStart::update`]).
    ema: f64,
    ema_w: f64,
}

impl<B: Backend + Clone> Lane<B> {
    fn name(&self) -> String {
        format!("{}{}", self.proj.prefix(), self.opt.display())
    }
}

/// The model panel's run (see the module `live`).
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
    /// Where that EMA starts: the runner's rule ([`EmaStart`]; a loaded snapshot's spec decides).
    pub ema_start: EmaStart,
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
                ema_w: 1.0,
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
            ema_start: EmaStart::First,
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
        lane.ema_w = s.ema_weight;
        self.ema_start = s.spec.ema_start;
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
    /// The steps after a fork at which the live verdict is judged ([`super::judge`]).
    pub fn set_horizon(&mut self, steps: usize) {
        self.history.horizon = steps;
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
                ema_w: self.lanes[0].ema_w,
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

    /// The first lane's stepper (the run, or after a fork its first branch): the density's.
    pub(super) fn stepper_mut(&mut self) -> &mut Stepper<B> {
        &mut self.lanes[0].st
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
            (lane.ema, lane.ema_w) = self.ema_start.update(lane.ema, lane.ema_w, sp.chi);
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
                    chi_ema: self.ema_start.value(lane.ema, lane.ema_w),
                    eigenvalues: sp.values.clone(),
                    edge: if lane.opt.name == OptKind::Sam {
                        sam_edge(sp.grad_norm, lane.opt.lr, lane.opt.rho)
                    } else {
                        2.0 / lane.opt.lr
                    },
                });
            }
            if let Some(p) = self.history.armed
                && self.ema_start.value(lane.ema, lane.ema_w) > self.auto_threshold
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
