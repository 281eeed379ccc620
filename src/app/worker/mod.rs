//! The model panel's run off the UI thread. A `Driver` owns the run and applies the UI's commands between
//! steps; the UI only reads a `Shared` snapshot. Natively the driver lives on a worker thread and
//! the snapshot behind one short lock per frame; on the web it lives in a Web Worker and the
//! snapshot arrives by message (`super::web`). Either way a slow step or a long eigen solve never
//! stalls a frame.

use super::live::{Action, DensityClock, History, LiveDensity, LiveRun};
use super::settings::{AppModel, Settings};
use crate::backend::prelude::*;
use crate::data::dataset::Dataset;
use crate::data::load::DatasetKind;
use crate::data::sets::DataSets;
use crate::experiment::spec::{OptKind, OptimizerSpec};
use crate::nn::model::ModelSpec;
use std::collections::VecDeque;

/// What the UI asks of the run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Cmd {
    Start,
    Pause,
    Reset(Settings),
    Act(Action),
    /// Natively a directory to write into; on the web the files are downloaded.
    Export(String),
    /// Read the user's snapshot `Settings::snapshot` (again, even if read before) and start from
    /// it with its settings (the "load" button).
    LoadSnapshot(Settings),
}

/// What the UI reads each frame.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Shared {
    pub history: History,
    pub running: bool,
    pub backend: String,
    pub steps_per_sec: f64,
    /// Data loading, errors, export results.
    pub message: Option<String>,
    /// Where the run computes and why, when that is the normal case (drawn as an info line, not
    /// in the error colour of [`Shared::message`]): see [`ComputeNote`].
    #[serde(default)]
    pub info: Option<String>,
    /// The settings of the running run, as the worker started it (a user's snapshot's model, η,
    /// batch, …; n as the data had it) and changed it since.
    pub settings: Option<Settings>,
    /// Bumped when the UI should take [`Shared::settings`] over: the worker derived them (from a
    /// snapshot, or a data set with fewer samples than asked), or a reset failed and the old run
    /// goes on.
    pub settings_gen: u64,
    /// Commands the worker has taken from the UI so far: the UI takes settings over only when it
    /// has none in flight (its own count of sent commands is equal).
    pub handled: u64,
    /// The last spectral density of the run (the density panel), when one was measured.
    #[serde(default)]
    pub density: Option<LiveDensity>,
}

/// The run's optimiser from the settings. A minibatch of all samples is the full batch (`None`):
/// the full-data gradient on the data already on the backend, not the rows gathered and uploaded
/// again every step, and named as the paper names it ("SAM", "GD+m"). SGD keeps its minibatch
/// (it has no full-batch form: that is GD).
pub fn optimizer_of(s: &Settings) -> OptimizerSpec {
    let full = s.optimizer == OptKind::Gd || (s.optimizer != OptKind::Sgd && s.batch >= s.samples);
    let batch = if full {
        None
    } else {
        Some(s.batch.min(s.samples).max(1))
    };
    let mut o = OptimizerSpec::new(s.optimizer, s.lr, batch);
    o.rho = s.rho;
    o
}

/// A live run on whichever backend was chosen.
pub enum AnyRun {
    Cpu(Box<LiveRun<crate::backend::cpu::CpuBackend<f32>>>),
    Gpu(Box<LiveRun<crate::backend::gpu::GpuBackend>>),
}

macro_rules! with_run {
    ($r:expr, |$x:ident| $body:expr) => {
        match $r {
            AnyRun::Cpu($x) => $body,
            AnyRun::Gpu($x) => $body,
        }
    };
}

impl AnyRun {
    pub fn step(&mut self) -> crate::Result<()> {
        with_run!(self, |r| r.step())
    }
    pub fn apply(&mut self, a: Action) -> crate::Result<()> {
        with_run!(self, |r| r.apply(a))
    }
    /// The steps after a fork at which the live verdict is judged.
    pub fn set_horizon(&mut self, steps: usize) {
        with_run!(self, |r| r.set_horizon(steps))
    }
    pub fn history(&self) -> &History {
        with_run!(self, |r| &r.history)
    }
    /// θ read back from the run's backend.
    pub fn theta(&self) -> crate::Result<Vec<f64>> {
        with_run!(self, |r| r.theta())
    }
    pub fn spec(&self) -> &ModelSpec {
        with_run!(self, |r| r.spec())
    }
    /// Continue from a snapshot ([`LiveRun::start_from`]).
    pub fn start_from(
        &mut self,
        s: &crate::experiment::snapshot::Snapshot,
        v: &crate::experiment::run::Vectors,
        data: &Dataset,
        label: &str,
    ) -> crate::Result<()> {
        with_run!(self, |r| r.start_from(s, v, data, label))
    }
    /// θ of branch `i` (0: the run itself) read back.
    pub fn branch_theta(&self, i: usize) -> crate::Result<Vec<f64>> {
        with_run!(self, |r| r.branch_theta(i))
    }
    /// The density at the run's θ ([`LiveRun::density`]).
    pub fn density(&mut self, probes: usize, steps: usize) -> crate::Result<LiveDensity> {
        with_run!(self, |r| r.density(probes, steps))
    }
    pub fn backend_name(&self) -> String {
        with_run!(self, |r| {
            let b = r.backend();
            match b.adapter() {
                Some(a) => format!("{} ({a})", b.name()),
                None => b.name(),
            }
        })
    }
}

/// A live run of the settings' model on `data` on the wgpu backend `g`.
pub fn new_run_gpu(
    g: crate::backend::gpu::GpuBackend,
    s: &Settings,
    data: &Dataset,
) -> crate::Result<AnyRun> {
    Ok(AnyRun::Gpu(Box::new(live(g, s, data)?)))
}

/// A live run of the settings' model on `data` with their optimiser, k, cadence and seed.
fn live<B: Backend + Clone>(b: B, s: &Settings, data: &Dataset) -> crate::Result<LiveRun<B>> {
    LiveRun::new(
        b,
        s.model.spec(),
        data,
        optimizer_of(s),
        s.k,
        s.eigen_every,
        s.seed,
    )
}

pub fn new_run_cpu(s: &Settings, data: &Dataset) -> crate::Result<AnyRun> {
    Ok(AnyRun::Cpu(Box::new(live(
        crate::backend::cpu::CpuBackend::<f32>::new(),
        s,
        data,
    )?)))
}

mod export;
#[cfg(not(target_arch = "wasm32"))]
pub use export::export;
pub use export::{branch_records, export_files, summary};

/// A snapshot the user gave (`Settings::snapshot`), read by the platform (natively from its
/// directory, on the web fetched from its URL).
#[derive(Clone)]
pub struct UserSnapshot {
    /// The directory or URL, as in the settings.
    pub source: String,
    pub snap: crate::experiment::snapshot::Snapshot,
    pub vectors: crate::experiment::run::Vectors,
}

/// A run of the settings on `data`: fresh from θ₀, from the settings' scenario (its snapshot
/// loaded, when it has one) or from the user's snapshot. Errors: the backend's, an unknown
/// scenario, a user's snapshot that was not read, a snapshot that does not fit the run (another
/// network or other data).
fn start(
    s: &Settings,
    data: &Dataset,
    make: fn(&Settings, &Dataset) -> crate::Result<AnyRun>,
    user: Option<&UserSnapshot>,
) -> crate::Result<AnyRun> {
    let mut run = make(s, data)?;
    if !s.snapshot.is_empty() {
        let u = user.filter(|u| u.source == s.snapshot).ok_or_else(|| {
            crate::Error::InvalidArgument(format!("snapshot {} was not read", s.snapshot))
        })?;
        run.start_from(&u.snap, &u.vectors, data, &u.source)?;
    } else if !s.scenario.is_empty() {
        let sc = super::scenario::find(&s.scenario)?;
        if let Some((snap, v)) = sc.snapshot()? {
            run.start_from(&snap, &v, data, &format!("{}: {}", sc.figure, sc.title))?;
        }
    }
    Ok(run)
}

/// Whether a reset to `s` must first read the user's snapshot (named, and not the one read).
pub fn needs_snapshot(s: &Settings, user: Option<&UserSnapshot>) -> bool {
    !s.snapshot.is_empty() && user.is_none_or(|u| u.source != s.snapshot)
}

/// The settings of a run from the user's snapshot `u`: its model, optimiser, k, samples and
/// seed ([`Settings::for_snapshot`]) over `s`, naming `u`. Errors: a network the app does not run,
/// settings out of the app's ranges (a hand-edited snapshot), a stream position past the data.
pub fn adopt_snapshot(s: &Settings, u: &UserSnapshot) -> crate::Result<Settings> {
    let mut t = s.for_snapshot(&u.snap)?;
    t.snapshot = u.source.clone();
    t.scenario.clear();
    let mut checked = t.clone();
    let w = checked.sanitize();
    if !w.is_empty() {
        return Err(crate::Error::InvalidArgument(format!(
            "its settings are out of the app's ranges: {}",
            w.join("; ")
        )));
    }
    if u.snap.stream.pos > u.snap.spec.data.samples {
        return Err(crate::Error::InvalidArgument(format!(
            "its minibatch stream stands at {}, past its {} samples",
            u.snap.stream.pos, u.snap.spec.data.samples
        )));
    }
    Ok(t)
}

/// Whether a reset to `s` reads the user's snapshot first: when it names one and `force` (the
/// "load" button) or it was not read yet.
pub fn wants_snapshot(s: &Settings, force: bool, user: Option<&UserSnapshot>) -> bool {
    !s.snapshot.is_empty() && (force || needs_snapshot(s, user))
}

/// The user's snapshot `s.snapshot`, read, and the settings of a run from it
/// ([`adopt_snapshot`]). Errors: for the status line, naming the snapshot.
pub fn user_snapshot(
    s: &Settings,
    snap: crate::experiment::snapshot::Snapshot,
    vectors: crate::experiment::run::Vectors,
) -> Result<(Settings, UserSnapshot), String> {
    let u = UserSnapshot {
        source: s.snapshot.clone(),
        snap,
        vectors,
    };
    let t = adopt_snapshot(s, &u).map_err(|e| format!("snapshot {}: {e}", u.source))?;
    Ok((t, u))
}

/// Snapshot and vectors as read from a snapshot's two files.
pub type ReadSnapshot = (
    crate::experiment::snapshot::Snapshot,
    crate::experiment::run::Vectors,
);

/// What a reset to `s` needs read first, natively (the web page does the same with fetches):
/// the user's snapshot when [`wants_snapshot`] — the settings then become the snapshot's — and the
/// model's data set. `read` reads a snapshot's source; `load` loads a data set into the sets. The
/// snapshot is kept only once both succeeded. Returns the settings to reset to and whether they
/// were derived.
pub fn prepare_with(
    s: Settings,
    force: bool,
    sets: &mut DataSets,
    user: &mut Option<UserSnapshot>,
    read: impl FnOnce(&str) -> Result<ReadSnapshot, String>,
    load: impl FnOnce(&mut DataSets, AppModel) -> Result<(), String>,
) -> Result<(Settings, bool), String> {
    let mut s = s;
    let mut pending = None;
    if wants_snapshot(&s, force, user.as_ref()) {
        let (snap, vectors) = read(&s.snapshot)?;
        let (t, u) = user_snapshot(&s, snap, vectors)?;
        s = t;
        pending = Some(u);
    }
    if !sets.has(s.model.dataset()) {
        load(sets, s.model)?;
    }
    let derived = pending.is_some();
    if let Some(u) = pending {
        *user = Some(u);
    }
    Ok((s, derived))
}

/// The app's training set for `s`: the first `s.samples` of its model's data set, preprocessed as
/// the paper's code does (MNIST normalised, CIFAR-10 standardised, SST-2 as word ids). Errors: the
/// data set not loaded, n out of range.
pub fn app_dataset(sets: &DataSets, s: &Settings) -> crate::Result<Dataset> {
    let kind = s.model.dataset();
    sets.dataset(kind, kind.default_preprocess(), s.samples)
}

/// The run and its data, driven by the UI's commands: the same on a native thread and in a Web
/// Worker.
pub struct Driver {
    /// The data sets loaded so far (the platform loads a model's before a reset needs it).
    sets: DataSets,
    /// The last snapshot the user gave, once read.
    user: Option<UserSnapshot>,
    /// `user` before the platform prepared the pending reset ([`Driver::parts_mut`]): restored
    /// when the reset fails, so that a snapshot the failed run was read for is not kept.
    user_before: Option<Option<UserSnapshot>>,
    /// The running run's settings ([`Shared::settings`]).
    current: Settings,
    settings_gen: u64,
    /// Commands taken from the UI ([`Shared::handled`]); the platform counts them.
    pub handled: u64,
    data: Dataset,
    pub run: AnyRun,
    pub running: bool,
    window: VecDeque<web_time::Instant>,
    make: fn(&Settings, &Dataset) -> crate::Result<AnyRun>,
    /// The last density and when the next is due (the density panel).
    density: Option<LiveDensity>,
    clock: DensityClock,
}

/// Whether a run of `s` waits at its fork when loaded: a scenario's run stops where the paper's
/// comparison starts (its snapshot's step, or θ₀), so that "branch" forks there and not some steps
/// later; a fresh run trains at once.
pub fn waits_at_fork(s: &Settings) -> bool {
    !s.scenario.is_empty()
}

/// The steps the live verdict is judged over for a run of `s`: its scenario's horizon, else
/// [`super::live::DEFAULT_HORIZON`].
pub fn horizon_of(s: &Settings) -> usize {
    super::scenario::find(&s.scenario).map_or(super::live::DEFAULT_HORIZON, |sc| sc.horizon)
}

/// An error as the status line says it: the message alone, without the error kind's prefix
/// ("invalid argument: …") that means nothing to a user of the app.
pub fn plain_message(e: &crate::Error) -> String {
    match e {
        crate::Error::InvalidArgument(m) => m.clone(),
        e => e.to_string(),
    }
}

/// Why the run computes on the CPU (wasm) although the settings allow WebGPU: an info line when
/// that is the normal fallback (`compute=auto` refuses a software adapter such as SwiftShader's;
/// a browser without JSPI), an error otherwise (the status line's orange).
#[derive(Clone, Debug, PartialEq)]
pub enum ComputeNote {
    /// A normal fallback, said as an info line ([`Shared::info`]).
    Info(String),
    /// Something failed ([`Shared::message`]).
    Error(String),
}

impl ComputeNote {
    /// The note of opening WebGPU for compute having failed with `e`.
    pub fn of_gpu_error(e: &crate::Error) -> ComputeNote {
        let text = e.to_string();
        if text.contains(crate::backend::gpu::SOFTWARE_ADAPTER_REFUSED) {
            ComputeNote::Info(SOFTWARE_ADAPTER_NOTE.into())
        } else {
            ComputeNote::Error(format!("{text}: computing on the CPU (wasm)"))
        }
    }

    /// The error's text, if it is one.
    pub fn error(&self) -> Option<&str> {
        match self {
            ComputeNote::Error(t) => Some(t),
            ComputeNote::Info(_) => None,
        }
    }

    /// The info line's text, if it is one.
    pub fn info(&self) -> Option<&str> {
        match self {
            ComputeNote::Info(t) => Some(t),
            ComputeNote::Error(_) => None,
        }
    }
}

/// The info line of `compute=auto` on a software WebGPU adapter.
pub const SOFTWARE_ADAPTER_NOTE: &str = "computing on the CPU (wasm): the WebGPU adapter is a software one, slower than the CPU (compute=gpu would use it)";

impl Driver {
    /// `make` builds a run on the platform's backend; `sets` must hold the data set of
    /// `s.model`.
    pub fn new(
        sets: DataSets,
        user: Option<UserSnapshot>,
        s: &Settings,
        make: fn(&Settings, &Dataset) -> crate::Result<AnyRun>,
    ) -> crate::Result<Driver> {
        let data = app_dataset(&sets, s)?;
        let run = start(s, &data, make, user.as_ref())?;
        let mut current = s.clone();
        current.samples = data.n;
        let settings_gen = u64::from(current != *s);
        let mut run = run;
        run.set_horizon(horizon_of(s));
        Ok(Driver {
            sets,
            user,
            user_before: None,
            current,
            settings_gen,
            handled: 0,
            data,
            run,
            running: !waits_at_fork(s),
            window: VecDeque::new(),
            make,
            density: None,
            clock: DensityClock::default(),
        })
    }

    /// Whether the data set `kind` is loaded (a reset to a model whose data is not fails).
    pub fn has(&self, kind: DatasetKind) -> bool {
        self.sets.has(kind)
    }

    /// The data sets and the user's snapshot, for the platform to add to before a reset that
    /// needs them (see [`needs_snapshot`], [`adopt_snapshot`]). The snapshot as it was is kept
    /// until the reset: if that fails, it comes back (the old run goes on, from it).
    pub fn parts_mut(&mut self) -> (&mut DataSets, &mut Option<UserSnapshot>) {
        self.user_before = Some(self.user.clone());
        (&mut self.sets, &mut self.user)
    }

    /// The loaded data sets, to add one to (natively read from the cache, on the web fetched).
    pub fn sets_mut(&mut self) -> &mut DataSets {
        &mut self.sets
    }

    /// The running run's settings.
    pub fn settings(&self) -> &Settings {
        &self.current
    }

    /// Have the UI take the running run's settings over (after the platform derived them, or
    /// when a reset could not even be tried).
    pub fn announce(&mut self) {
        self.settings_gen += 1;
    }

    /// Apply a command (not `Export`, which the platform writes or downloads); a message for the
    /// status line if there is one.
    pub fn handle(&mut self, cmd: Cmd) -> Option<String> {
        match cmd {
            Cmd::Start => {
                self.running = true;
                self.window.clear();
            }
            Cmd::Pause => self.running = false,
            Cmd::Reset(s) | Cmd::LoadSnapshot(s) => {
                let before = self.user_before.take();
                let data = if s.samples == self.data.n && s.model == self.current.model {
                    Ok(self.data.clone())
                } else {
                    app_dataset(&self.sets, &s)
                };
                match data.and_then(|d| Ok((start(&s, &d, self.make, self.user.as_ref())?, d))) {
                    Ok((r, d)) => {
                        self.run = r;
                        self.run.set_horizon(horizon_of(&s));
                        self.running = !waits_at_fork(&s);
                        self.current = s.clone();
                        // CIFAR-10 with fewer records at hand than asked for: the UI shows n.
                        if d.n != s.samples {
                            self.current.samples = d.n;
                            self.settings_gen += 1;
                        }
                        self.data = d;
                        self.window.clear();
                    }
                    Err(e) => {
                        // The old run goes on: the UI goes back to its settings, and the user's
                        // snapshot to the one it started from.
                        if let Some(u) = before {
                            self.user = u;
                        }
                        self.settings_gen += 1;
                        return Some(format!("reset failed: {e}"));
                    }
                }
            }
            Cmd::Act(Action::Branch(_)) if self.run.history().fork.is_some() => {
                let at = self.run.history().fork.as_ref().map_or(0, |f| f.step);
                return Some(format!(
                    "already branched at step {at}: reset (R) or pick the scenario again to branch anew"
                ));
            }
            Cmd::Act(a) => {
                if let Err(e) = self.run.apply(a.clone()) {
                    // Refused (a branched run keeps its optimiser): the UI goes back to the run's.
                    self.settings_gen += 1;
                    return Some(plain_message(&e));
                }
                if matches!(a, Action::Branch(_)) {
                    // The branches start at once (a scenario waited at its fork for this), and
                    // the rate is theirs from now on.
                    self.running = true;
                    self.window.clear();
                }
                let n = self.data.n;
                let c = &mut self.current;
                match &a {
                    Action::SetOptimizer(o) => {
                        c.optimizer = o.name;
                        c.lr = o.lr;
                        c.batch = o.batch.map_or(c.batch, |b| b.min(n));
                        c.rho = o.rho;
                    }
                    Action::ToGd => c.optimizer = OptKind::Gd,
                    Action::SetEigenEvery(n) => c.eigen_every = *n,
                    _ => {}
                }
            }
            Cmd::Export(_) => {}
        }
        None
    }

    /// One step if running; a message if it failed (the run is then paused).
    pub fn tick(&mut self) -> Option<String> {
        if !self.running {
            return None;
        }
        if let Err(e) = self.run.step() {
            self.running = false;
            return Some(format!("{e} — paused; reset or lower η"));
        }
        self.window.push_back(web_time::Instant::now());
        while self.window.len() > self.rate_window() {
            self.window.pop_front();
        }
        self.density_tick();
        None
    }

    /// The density when its clock says so ([`DensityClock`]); a failure only skips it.
    fn density_tick(&mut self) {
        let step = self.run.history().step;
        if !self.clock.due(step) {
            return;
        }
        let (probes, steps) = (self.clock.probes, self.clock.steps);
        match self.run.density(probes, steps) {
            Ok(mut d) => {
                self.clock.done(step, d.seconds);
                d.time_share = self.clock.share();
                self.density = Some(d);
            }
            Err(_) => self.clock.done(step, 0.0),
        }
    }

    /// Steps the rate is measured over: 20, and at least two of the spectrum's cycles (a cycle's
    /// cheap steps alone would say hundreds of steps per second).
    fn rate_window(&self) -> usize {
        20.max(2 * self.current.eigen_every + 1)
    }

    /// Training samples of the run.
    pub fn samples(&self) -> usize {
        self.data.n
    }

    /// Steps per second over the last steps ([`Driver::rate_window`]); 0 (not known yet) until
    /// the window holds a whole cycle of the spectrum's cadence since the last start, reset or
    /// fork (right after loading a few cheap steps would claim hundreds of steps per second).
    pub fn steps_per_sec(&self) -> f64 {
        let cycle = if self.run.history().fork.is_some() {
            1
        } else {
            self.current.eigen_every
        };
        match (self.window.front(), self.window.back()) {
            (Some(a), Some(b)) if self.window.len() > cycle.max(1) + 1 => {
                (self.window.len() - 1) as f64 / b.duration_since(*a).as_secs_f64().max(1e-9)
            }
            _ => 0.0,
        }
    }

    /// Write the run's state into the snapshot (keeping its message unless `msg` replaces it).
    pub fn publish(&self, s: &mut Shared, msg: Option<String>) {
        s.settings = Some(self.current.clone());
        s.settings_gen = self.settings_gen;
        s.handled = self.handled;
        s.history = self.run.history().clone();
        s.running = self.running;
        s.steps_per_sec = self.steps_per_sec();
        s.backend = self.run.backend_name();
        // A density of another run (reset, a snapshot loaded) is not shown.
        let h = self.run.history();
        s.density = self
            .density
            .clone()
            .filter(|d| d.origin == h.origin && d.step <= h.step);
        if msg.is_some() {
            s.message = msg;
        }
    }
}

/// The data set of `m` by the paper's name ("MNIST-5k", "CIFAR10-5k", "SST2-1k").
pub fn data_name(m: AppModel) -> &'static str {
    match m.dataset() {
        DatasetKind::Mnist => "MNIST-5k",
        DatasetKind::Cifar10 => "CIFAR10-5k",
        DatasetKind::Sst2 => "SST2-1k",
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{Worker, share_render_device};
#[cfg(target_arch = "wasm32")]
pub use web::Worker;

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(target_arch = "wasm32")]
pub mod web;
