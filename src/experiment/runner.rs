//! The runner behind `run`, `reproduce` and the app: one optimiser until the switch, then each
//! projected variant from the *same* θ, optimiser state and minibatch stream. S_k is recomputed
//! from the full training-loss Hessian whenever a step projects, the χ-EMA rule watches,
//! effective learning rates are measured or metrics are recorded.
//!
//! The projection applies to the optimiser's *update*: for SGD, GD and SAM that is the paper's
//! P_k g; for momentum and Adam the state evolves from the raw gradients and only the step taken
//! is projected ([`crate::optim`]).
//!
//! The eigensolver: a cold solve (the first of a leg) is single-vector Lanczos with its
//! certificate ([`lanczos`](crate::hessian::lanczos::lanczos)); warm solves start from the
//! previous step's eigenvectors, by Lanczos from their sum (the default) or by block Davidson
//! from them as one block ([`WarmSolver`](crate::hessian::WarmSolver) says which and why).
//!
//! A run is a list of legs: leg 0 before the switch, one leg per variant after it. Each leg is a
//! loop of (spectrum where needed → row → step → checkpoint); the observer sees the rows, the
//! progress, the checkpoints and the snapshot at the switch.

use super::density::{DensityRecord, probe_seed};
use super::record::{Checkpoint, LegSummary, Record, RunOutcome, Stats, Vectors, data_fingerprint};
use super::snapshot::{Provenance, Snapshot};
use super::spec::{EmaStart, OptKind, OptimizerSpec, Projection, RunSpec, SwitchRule};
use super::spectrum::Spectrum;
use super::stepper::{Stepper, THETA_NOT_FINITE};
use super::stream::Stream;
use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::optim::{OptState, sam_edge};

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
    /// Whether [`Observer::leg_finished`] should be called (it costs one read-back of θ per leg).
    fn wants_final_theta(&self) -> bool {
        false
    }
    /// A leg has ended: its summary (run, phase, last step, the full-batch loss there) and θ at
    /// its last step (the θ of that loss), when `wants_final_theta`.
    fn leg_finished(&mut self, _leg: &LegSummary, _theta: &[f64]) -> Result<()> {
        Ok(())
    }
    /// A density was measured (`density_every`): every record of the run so far, the new one
    /// last (a resumed run's include the checkpoint's).
    fn density(&mut self, _all: &[DensityRecord]) -> Result<()> {
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
    /// The χ-EMA's running sum and the sum of its weights ([`EmaStart::update`]).
    ema: f64,
    ema_w: f64,
    summary: LegSummary,
}

/// What a leg runs: its optimiser and projection, its phase, its first global step and length,
/// the χ-EMA threshold that ends it early (the first leg only) and its name in the records.
struct LegPlan<'s> {
    opt: &'s OptimizerSpec,
    proj: Projection,
    phase: &'static str,
    first: usize,
    len: usize,
    rule: Option<f64>,
    name: String,
}

/// A step's error as the run's: a non-finite value becomes [`Error::Diverged`] at `step`.
fn diverged(run: &str, e: Error, step: usize) -> Error {
    match e {
        Error::NonFinite(what) => Error::Diverged {
            run: run.to_string(),
            step,
            what,
        },
        e => e,
    }
}

/// The run between its legs: the stepper, θ₀, the state at the switch and what was recorded.
struct Runner<'a, B: Backend> {
    spec: &'a RunSpec,
    data: &'a Dataset,
    keep_theta: bool,
    obs: &'a mut dyn Observer,
    st: Stepper<B>,
    theta0: Vec<f64>,
    // θ₀ and θ at the switch stay on the backend for the distances recorded.
    theta0_buf: B::Buf,
    theta_switch: Option<Vec<f64>>,
    theta_switch_buf: Option<B::Buf>,
    switch_opt: OptState,
    switch_stream: Option<Stream>,
    switch_ema: f64,
    switch_ema_w: f64,
    out: RunOutcome,
    started: web_time::Instant,
    earlier_s: f64,
    /// The densities measured so far (`density_every`).
    densities: Vec<DensityRecord>,
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
    } else {
        let lim = crate::mem::BufferLimit {
            max_len: backend.max_buffer_len(),
            elem: backend.precision().bytes(),
            k_option: "top (and k) in the spec",
        };
        crate::mem::check_buffers(&mlp, data.n, spec.top(), 0, lim)?;
    }
    let mut st = Stepper::new(backend, &mlp, spec.loss, data, spec.k, spec.top(), spec.tol)?;
    st.set_warm_solver(spec.warm_solver);
    let theta0 = mlp.init(spec.seed);
    let theta0_buf = st.backend().upload(&theta0)?;
    let mut r = Runner {
        spec,
        data,
        keep_theta,
        obs,
        st,
        theta0,
        theta0_buf,
        theta_switch: None,
        theta_switch_buf: None,
        switch_opt: OptState::default(),
        switch_stream: None,
        switch_ema: f64::NAN,
        switch_ema_w: 1.0,
        out: RunOutcome {
            switch_step: None,
            switch_rule_fired: false,
            legs: Vec::new(),
            records: Vec::new(),
            thetas: Vec::new(),
        },
        started,
        earlier_s,
        densities: Vec::new(),
    };
    // Where to start: from scratch or from a checkpoint.
    let (mut leg_idx, mut cur) = match resume {
        None => (0, None),
        Some((c, v)) => r.resume(c, v, p)?,
    };
    let n_legs = if spec.steps_after > 0 {
        1 + spec.variants.len()
    } else {
        1
    };
    while leg_idx < n_legs {
        let plan = r.plan(leg_idx);
        let mut leg = match cur.take() {
            Some(l) => l,
            None => r.new_leg(leg_idx, &plan),
        };
        // The leg's θ and optimiser state go to the backend; they stay there until the leg ends.
        r.st.set_theta(&std::mem::take(&mut leg.theta))?;
        r.st.set_opt_state(&leg.opt)?;
        let fired = r.run_leg(&plan, leg_idx, &mut leg)?;
        // The series end here: a finished leg keeps only their statistics.
        leg.summary.dom_lr = Stats::of(&std::mem::take(&mut leg.summary.dom_lr_series));
        leg.summary.bulk_lr = Stats::of(&std::mem::take(&mut leg.summary.bulk_lr_series));
        if leg_idx == 0 {
            r.at_switch(&leg, fired)?;
        }
        if r.obs.wants_final_theta() {
            let theta = r.st.theta_host()?;
            r.obs.leg_finished(&leg.summary, &theta)?;
        }
        r.out.legs.push(leg.summary);
        leg_idx += 1;
    }
    if n_legs == 1 {
        r.out.switch_step = None;
    }
    Ok(r.out)
}

impl<'a, B: Backend + Clone> Runner<'a, B> {
    /// Take up a checkpoint: the leg it was in and that leg's state. Errors: another spec, other
    /// data, a missing or misshapen vector.
    fn resume(&mut self, c: Checkpoint, v: Vectors, p: usize) -> Result<(usize, Option<LegState>)> {
        let (spec, data) = (self.spec, self.data);
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
        let vec_of =
            |v: &Vectors, name: &str| v.iter().find(|(n, _)| n == name).map(|(_, x)| x.clone());
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
        self.st.set_warm_host(vec_of(&v, "warm").as_deref())?;
        self.theta_switch = vec_of(&v, "theta_switch");
        self.theta_switch_buf = self
            .theta_switch
            .as_deref()
            .map(|t| self.st.backend().upload(t))
            .transpose()?;
        self.switch_opt = sw_opt;
        self.switch_stream = c.switch_stream.as_ref().map(Stream::restore);
        self.switch_ema = c.switch_ema;
        self.switch_ema_w = c.switch_ema_weight;
        self.out.switch_step = c.switch_step;
        self.out.switch_rule_fired = c.switch_rule_fired;
        self.out.legs = c.legs.clone();
        self.out.records = c.records.clone();
        self.densities = c.densities.clone();
        let summary = c
            .current
            .clone()
            .ok_or_else(|| Error::InvalidArgument("checkpoint: no current leg".into()))?;
        let leg = LegState {
            theta,
            opt,
            stream: Stream::restore(&c.stream),
            step: c.step,
            ema: c.ema,
            ema_w: c.ema_weight,
            summary,
        };
        Ok((c.leg, Some(leg)))
    }

    /// Leg 0 runs the optimiser to the switch (its rule, if any, may end it early); leg i ≥ 1 runs
    /// variant i − 1 from the switch.
    fn plan(&self, leg_idx: usize) -> LegPlan<'a> {
        let spec = self.spec;
        let (opt, proj, phase, first, len, rule) = if leg_idx == 0 {
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
            let s = self.out.switch_step.unwrap_or(spec.steps);
            (
                spec.after_optimizer(),
                spec.variants[leg_idx - 1],
                "after",
                s,
                spec.steps_after,
                None,
            )
        };
        let name = spec.leg_name(proj, opt);
        LegPlan {
            opt,
            proj,
            phase,
            first,
            len,
            rule,
            name,
        }
    }

    /// A leg from its start: θ₀ and a fresh optimiser and stream (leg 0), or the state at the
    /// switch (the optimiser's state carried when the optimiser after the switch is the same).
    fn new_leg(&mut self, leg_idx: usize, plan: &LegPlan) -> LegState {
        let (spec, data) = (self.spec, self.data);
        self.st.forget_warm_start();
        let (theta, opt, stream, (ema, ema_w)) = if leg_idx == 0 {
            (
                self.theta0.clone(),
                OptState::default(),
                Stream::new(data.n, spec.seed),
                (f64::NAN, 1.0),
            )
        } else {
            let carry = spec.after_optimizer().name == spec.optimizer.name;
            (
                self.theta_switch
                    .clone()
                    .unwrap_or_else(|| self.theta0.clone()),
                if carry {
                    self.switch_opt.clone()
                } else {
                    OptState::default()
                },
                self.switch_stream
                    .clone()
                    .unwrap_or_else(|| Stream::new(data.n, spec.seed)),
                (self.switch_ema, self.switch_ema_w),
            )
        };
        LegState {
            theta,
            opt,
            stream,
            step: plan.first,
            ema,
            ema_w,
            summary: LegSummary {
                run: plan.name.clone(),
                phase: plan.phase.into(),
                projection: plan.proj,
                first_step: plan.first,
                last_step: plan.first,
                start_loss: f64::NAN,
                end_loss: f64::NAN,
                dom_lr: Stats::default(),
                bulk_lr: Stats::default(),
                dom_lr_series: Vec::new(),
                bulk_lr_series: Vec::new(),
            },
        }
    }

    /// The steps of one leg: at each, the spectrum where needed, the row, the step, the
    /// checkpoint. Returns whether the switch rule ended it.
    fn run_leg(&mut self, plan: &LegPlan, leg_idx: usize, leg: &mut LegState) -> Result<bool> {
        let spec = self.spec;
        loop {
            let local = leg.step - plan.first;
            let done = local >= plan.len;
            let record = local.is_multiple_of(spec.record_every) || done;
            // A density where due (a variant's first step is the switch, measured in leg 0).
            let density = spec.density_every > 0
                && (leg.step.is_multiple_of(spec.density_every) || (done && leg_idx == 0))
                && !(leg_idx > 0 && local == 0);
            let need = record
                || density
                || (!done
                    && (plan.proj != Projection::None || plan.rule.is_some() || spec.effective_lr));
            let sp = if need {
                let sp = self
                    .st
                    .spectrum()
                    .map_err(|e| diverged(&plan.name, e, leg.step))?;
                observe(plan, spec.ema_start, leg, &sp)?;
                Some(sp)
            } else {
                None
            };
            let ema = spec.ema_start.value(leg.ema, leg.ema_w);
            let stop_rule = matches!((plan.rule, &sp), (Some(t), Some(_))
                if ema > t && leg.step - plan.first >= spec.switch_min_steps);
            let stop = done || stop_rule;
            if let Some(sp) = sp
                .as_ref()
                .filter(|_| density || (stop_rule && spec.density_every > 0))
            {
                self.density(plan, leg.step, sp)?;
            }
            let emit = record || stop;
            let mut row = match &sp {
                Some(sp) => Some(self.row(plan, leg, sp, emit)?),
                None => None,
            };
            let snap = (self.keep_theta && row.is_some() && emit)
                .then(|| self.st.theta_host())
                .transpose()?;
            if !stop {
                self.take_step(plan, leg, &mut row, sp.is_some(), record)?;
            }
            if let Some(r) = row.filter(|_| record || stop) {
                self.obs.record(&r)?;
                self.out.records.push(r);
                if let Some(t) = snap {
                    self.out.thetas.push(t);
                }
            }
            if stop {
                return Ok(stop_rule);
            }
            self.obs
                .progress(&plan.name, leg.step - plan.first, plan.len);
            self.checkpoint(plan, leg_idx, leg)?;
        }
    }

    /// The density at the current θ (`density_every`), kept and handed to the observer.
    fn density(&mut self, plan: &LegPlan, step: usize, sp: &Spectrum) -> Result<()> {
        let spec = self.spec;
        let t = web_time::Instant::now();
        let seed = probe_seed(spec.seed, step);
        let r = self
            .st
            .density(spec.density_probes, spec.density_steps, seed)
            .map_err(|e| diverged(&plan.name, e, step))?;
        let k = spec.k.min(sp.values.len());
        let s = t.elapsed().as_secs_f64();
        let rec = DensityRecord::new(&plan.name, plan.phase, step, r, &sp.values[..k], s);
        self.densities.push(rec);
        self.obs.density(&self.densities)
    }

    /// The metrics row at the current θ from its spectrum; the distances to θ at the switch and
    /// θ₀ measured when the row is written (`emit`).
    fn row(&mut self, plan: &LegPlan, leg: &LegState, sp: &Spectrum, emit: bool) -> Result<Record> {
        let (dist_switch, dist_init) = if emit {
            (
                match &self.theta_switch_buf {
                    Some(t) => self.st.dist(t)?,
                    None => f64::NAN,
                },
                self.st.dist(&self.theta0_buf)?,
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        let opt = plan.opt;
        Ok(Record {
            run: plan.name.clone(),
            phase: plan.phase.into(),
            step: leg.step,
            loss: sp.eval.loss,
            accuracy: sp.eval.accuracy,
            grad_norm: sp.grad_norm,
            chi_k: sp.chi,
            chi_ema: self.spec.ema_start.value(leg.ema, leg.ema_w),
            eigenvalues: sp.values.clone(),
            two_over_lr: 2.0 / opt.lr,
            sam_edge: if opt.name == OptKind::Sam {
                sam_edge(sp.grad_norm, opt.lr, opt.rho)
            } else {
                f64::NAN
            },
            dom_lr: f64::NAN,
            bulk_lr: f64::NAN,
            dist_switch,
            dist_init,
            hvps: sp.hvps,
            worst_residual: sp.worst_residual,
        })
    }

    /// One step of the leg's optimiser, projected where a spectrum was `measured` (always, when
    /// projecting); its effective learning rates go into the row. On an error the row measured
    /// at this (finite) θ is kept (when `keep_row`) and the error names the step whose θ would
    /// not be finite, or this one when its gradient is not.
    fn take_step(
        &mut self,
        plan: &LegPlan,
        leg: &mut LegState,
        row: &mut Option<Record>,
        measured: bool,
        keep_row: bool,
    ) -> Result<()> {
        let proj_now = if measured {
            plan.proj
        } else {
            Projection::None
        };
        let elr = self.spec.effective_lr && measured;
        let info = match self.st.step(plan.opt, &mut leg.stream, proj_now, elr) {
            Ok(info) => info,
            Err(e) => {
                if let Some(r) = row.take().filter(|_| keep_row) {
                    self.obs.record(&r)?;
                    self.out.records.push(r);
                }
                let at = match &e {
                    Error::NonFinite(w) if w == THETA_NOT_FINITE => leg.step + 1,
                    _ => leg.step,
                };
                return Err(diverged(&plan.name, e, at));
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
        Ok(())
    }

    /// The optimiser state read back as named vectors (`opt_m`, `opt_v` when non-empty) after
    /// `first`; its step count stays in the returned state.
    fn with_opt(first: (String, Vec<f64>), opt: &mut OptState) -> Vectors {
        let mut v: Vectors = vec![first];
        if !opt.m.is_empty() {
            v.push(("opt_m".into(), std::mem::take(&mut opt.m)));
        }
        if !opt.v.is_empty() {
            v.push(("opt_v".into(), std::mem::take(&mut opt.v)));
        }
        v
    }

    /// A checkpoint when one is due (`checkpoint_every`) or a stop is requested; the stop then
    /// ends the run with [`Error::Interrupted`].
    fn checkpoint(&mut self, plan: &LegPlan, leg_idx: usize, leg: &LegState) -> Result<()> {
        let spec = self.spec;
        let want_ckpt = spec.checkpoint_every > 0 && leg.step.is_multiple_of(spec.checkpoint_every);
        let stop_now = self.obs.stop_requested();
        if !(want_ckpt || stop_now) {
            return Ok(());
        }
        let mut opt = self.st.opt_state()?;
        let mut v = Self::with_opt(("theta".into(), self.st.theta_host()?), &mut opt);
        if let Some(ts) = &self.theta_switch {
            v.push(("theta_switch".into(), ts.clone()));
        }
        if !self.switch_opt.m.is_empty() {
            v.push(("switch_opt_m".into(), self.switch_opt.m.clone()));
        }
        if !self.switch_opt.v.is_empty() {
            v.push(("switch_opt_v".into(), self.switch_opt.v.clone()));
        }
        if let Some(w) = self.st.warm_host()? {
            v.push(("warm".into(), w));
        }
        let c = Checkpoint {
            spec: spec.clone(),
            step: leg.step,
            leg: leg_idx,
            ema: leg.ema,
            ema_weight: leg.ema_w,
            opt,
            stream: leg.stream.state(spec.seed),
            switch_step: self.out.switch_step,
            switch_rule_fired: self.out.switch_rule_fired,
            switch_ema: self.switch_ema,
            switch_ema_weight: self.switch_ema_w,
            switch_opt: self.switch_opt.clone(),
            switch_stream: self.switch_stream.as_ref().map(|s| s.state(spec.seed)),
            legs: self.out.legs.clone(),
            current: Some(leg.summary.clone()),
            records: self.out.records.clone(),
            elapsed_s: self.earlier_s + self.started.elapsed().as_secs_f64(),
            data: Some(data_fingerprint(self.data)),
            densities: self.densities.clone(),
        };
        self.obs.checkpoint(&c, &v)?;
        if stop_now {
            return Err(Error::Interrupted {
                step: leg.step,
                msg: format!("{} stopped; a checkpoint was written", plan.name),
            });
        }
        Ok(())
    }

    /// The first leg ended: keep θ, the optimiser state, the stream and the EMA at the switch
    /// (the variants start there), and hand the observer a snapshot when it wants one.
    fn at_switch(&mut self, leg: &LegState, fired: bool) -> Result<()> {
        let spec = self.spec;
        self.out.switch_step = Some(leg.step);
        self.out.switch_rule_fired = fired;
        self.theta_switch = Some(self.st.theta_host()?);
        self.theta_switch_buf = Some(self.st.theta_copy()?);
        self.switch_opt = self.st.opt_state()?;
        self.switch_stream = Some(leg.stream.clone());
        self.switch_ema = leg.ema;
        self.switch_ema_w = leg.ema_w;
        if !self.obs.wants_snapshot() {
            return Ok(());
        }
        let mut opt = self.switch_opt.clone();
        let theta = self.theta_switch.clone().unwrap_or_default();
        let v = Self::with_opt(("theta".into(), theta), &mut opt);
        let s = Snapshot {
            spec: spec.clone(),
            step: leg.step,
            rule_fired: fired,
            ema: leg.ema,
            ema_weight: leg.ema_w,
            opt,
            stream: leg.stream.state(spec.seed),
            records: self.out.records.clone(),
            data: data_fingerprint(self.data),
            made_by: Provenance {
                backend: self.st.backend().name(),
                seconds: self.earlier_s + self.started.elapsed().as_secs_f64(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Provenance::default()
            },
        };
        self.obs.switched(&s, &v)
    }
}

/// A measured spectrum in the leg's state: the EMA (0.9) of χ_k from `start`, the leg's start and
/// end loss. Errors: a non-finite loss (the run diverged).
fn observe(plan: &LegPlan, start: EmaStart, leg: &mut LegState, sp: &Spectrum) -> Result<()> {
    if !sp.eval.loss.is_finite() {
        return Err(Error::Diverged {
            run: plan.name.clone(),
            step: leg.step,
            what: format!("the loss is not finite ({})", sp.eval.loss),
        });
    }
    (leg.ema, leg.ema_w) = start.update(leg.ema, leg.ema_w, sp.chi);
    if leg.summary.start_loss.is_nan() {
        leg.summary.start_loss = sp.eval.loss;
    }
    leg.summary.end_loss = sp.eval.loss;
    leg.summary.last_step = leg.step;
    Ok(())
}
