//! The app's settings: what the controls hold, persisted natively and kept in the page URL's hash
//! on the web (`#lr=0.01&batch=50&…`, as TensorFlow Playground does) so a configuration can be
//! shared as a link. Every setting is one row of [`KEYS`] (its key, how to read and write it, its
//! range), which the URL hash, the saved settings, sanitising and the panels' controls all read.

use crate::experiment::spec::OptKind;
use crate::experiment::toy::ToyMethod;

mod keys;

pub use super::model::{AppModel, PaperSettings};
pub use keys::{KEYS, Key, Range};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    // Toy panel.
    pub toy_lr: f64,
    pub toy_coupling: f64,
    pub toy_x0: f64,
    pub toy_y0: f64,
    pub toy_steps_per_frame: usize,
    pub toy_a: ToyMethod,
    pub toy_b: ToyMethod,
    pub toy_seed: u64,
    // Model panel.
    /// The network and its data.
    pub model: AppModel,
    pub lr: f64,
    pub batch: usize,
    pub k: usize,
    pub optimizer: OptKind,
    /// Spectrum (top-2k eigenvalues, χ_k) every this many steps.
    pub eigen_every: usize,
    pub seed: u64,
    /// The first n training samples of the model's data set.
    pub samples: usize,
    pub rho: f64,
    /// Where the model's run computes.
    pub compute: Compute,
    /// The scenario the run starts from ([`super::scenario::SCENARIOS`]); empty: a fresh run
    /// from these settings.
    pub scenario: String,
    /// A snapshot the user gives (`reproduce … --snapshot-at-switch` wrote it): natively its
    /// directory, on the web the URL of its directory (holding `snapshot.json` and
    /// `snapshot.safetensors`); empty: none. Not with a scenario.
    pub snapshot: String,
    /// Teacher mode: the advanced controls (optimiser, model, projections, snapshot, export)
    /// hidden, the lesson and the plots left (`#teacher=1`).
    pub teacher: bool,
}

/// Where the model's run computes: `Auto` takes a hardware GPU when there is one (natively the
/// renderer's device or another; in a browser WebGPU, through JSPI) and the CPU otherwise; `Gpu`
/// also takes a software adapter (lavapipe, SwiftShader), which is slower than the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compute {
    #[default]
    Auto,
    Gpu,
    Cpu,
}

impl Compute {
    pub const ALL: [Compute; 3] = [Compute::Auto, Compute::Gpu, Compute::Cpu];
    pub fn name(self) -> &'static str {
        match self {
            Compute::Auto => "auto",
            Compute::Gpu => "gpu",
            Compute::Cpu => "cpu",
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            toy_lr: 1e-4,
            toy_coupling: 100.0,
            toy_x0: 1.0,
            toy_y0: 1.0,
            toy_steps_per_frame: 200,
            toy_a: ToyMethod::Gd,
            toy_b: ToyMethod::Sgd,
            toy_seed: 0,
            model: AppModel::FcTanh,
            lr: 0.01,
            batch: 50,
            k: 10,
            optimizer: OptKind::Sgd,
            eigen_every: 10,
            seed: 0,
            samples: 5000,
            rho: 0.1,
            compute: Compute::Auto,
            scenario: String::new(),
            snapshot: String::new(),
            teacher: false,
        }
    }
}

impl Settings {
    /// The settings the app opens with when nothing else is asked (no saved settings, the
    /// page's plain URL): the landing lesson, fig1's θ at its χ-EMA switch waiting at the fork.
    pub fn landing() -> Settings {
        let base = Settings::default();
        super::scenario::find(LANDING_SCENARIO)
            .and_then(|sc| sc.settings(&base))
            .unwrap_or(base)
    }
}

/// The scenario of the landing lesson.
pub const LANDING_SCENARIO: &str = "fig1-switch";

pub fn opt_name(o: OptKind) -> &'static str {
    match o {
        OptKind::Sgd => "sgd",
        OptKind::Gd => "gd",
        OptKind::Momentum => "momentum",
        OptKind::Adam => "adam",
        OptKind::Sam => "sam",
    }
}

pub const OPTIMIZERS: [OptKind; 5] = [
    OptKind::Sgd,
    OptKind::Gd,
    OptKind::Momentum,
    OptKind::Adam,
    OptKind::Sam,
];

impl Settings {
    /// The settings of a run continued from `snap` (a user's snapshot or a scenario's): its
    /// model, optimiser (kind, η, batch, ρ), k, samples and seed; the toy's settings, the
    /// spectrum cadence and the compute choice stay. Errors: a snapshot of a network the app does
    /// not run (another architecture or widths), naming it.
    pub fn for_snapshot(
        &self,
        snap: &crate::experiment::snapshot::Snapshot,
    ) -> crate::Result<Settings> {
        let net = snap.spec.net()?;
        let m = AppModel::of(&net).ok_or_else(|| {
            crate::Error::InvalidArgument(format!(
                "the snapshot is of {}; the app runs {}",
                net.describe(),
                AppModel::ALL
                    .iter()
                    .map(|m| m.spec().describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let mut s = self.with_model(m);
        let o = &snap.spec.optimizer;
        s.optimizer = o.name;
        s.lr = o.lr;
        s.batch = o.batch.unwrap_or(snap.spec.data.samples);
        s.rho = o.rho;
        s.k = snap.spec.k;
        s.samples = snap.spec.data.samples;
        s.seed = snap.spec.seed;
        Ok(s)
    }

    /// Take the run's fields of `from` (model, optimiser, η, batch, ρ, k, samples, seed, cadence,
    /// scenario, snapshot), keeping the toy's and the compute choice.
    pub fn take_run_settings(&mut self, from: &Settings) {
        self.model = from.model;
        self.optimizer = from.optimizer;
        self.lr = from.lr;
        self.batch = from.batch;
        self.rho = from.rho;
        self.k = from.k;
        self.samples = from.samples;
        self.seed = from.seed;
        self.eigen_every = from.eigen_every;
        self.scenario = from.scenario.clone();
        self.snapshot = from.snapshot.clone();
    }

    /// These settings with `m` and the paper's SGD settings for it (η, batch, k, the app's n);
    /// a scenario of another model and a user's snapshot are dropped. The toy's settings, the spectrum cadence, the
    /// seed, ρ and the compute choice stay.
    pub fn with_model(&self, m: AppModel) -> Settings {
        let p = m.paper();
        let mut s = self.clone();
        s.model = m;
        s.optimizer = OptKind::Sgd;
        s.lr = p.lr;
        s.batch = p.batch;
        s.k = p.k;
        s.samples = p.app_samples;
        s.snapshot.clear();
        if super::scenario::find(&s.scenario).is_ok_and(|sc| sc.model != m) {
            s.scenario.clear();
        }
        s
    }
}

// A scenario's settings live here, not in `scenario`: the scenarios' table stays below the
// settings (no import back up).
impl super::scenario::Scenario {
    /// The settings of the scenario's run: its model; the snapshot's optimiser (kind, η, batch,
    /// ρ), k, samples and seed (from the initialisation: the model's paper settings, seed 0), and
    /// the scenario's spectrum cadence; the toy's settings and the compute choice stay as in
    /// `base`.
    pub fn settings(&self, base: &Settings) -> crate::Result<Settings> {
        let mut s = match self.snapshot()? {
            None => {
                let mut s = base.with_model(self.model);
                s.optimizer = OptKind::Sgd;
                s.seed = 0;
                s
            }
            Some((snap, _)) => base.for_snapshot(&snap)?,
        };
        s.scenario = self.name.to_string();
        s.snapshot.clear();
        s.eigen_every = self.eigen_every;
        Ok(s)
    }
}
