//! The app's settings: what the controls hold, persisted natively and kept in the page URL's hash
//! on the web (`#lr=0.01&batch=50&…`, as TensorFlow Playground does) so a configuration can be
//! shared as a link.

use crate::data::load::DatasetKind;
use crate::experiment::spec::OptKind;
use crate::experiment::toy::ToyMethod;
use crate::nn::model::ModelSpec;
use crate::paper::models::{self, Model};

/// The network and data set of the live run (the model panel): the paper's three architectures,
/// each on its own data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppModel {
    /// Cohen et al.'s fc-tanh 784-200-200-10 on MNIST-5k.
    #[default]
    FcTanh,
    /// Cohen et al.'s cnn-relu (convnet([32, 32], 'relu', 'max')) on CIFAR10-5k.
    CnnRelu,
    /// Damian et al.'s 2-layer Transformer (width 64, 8 heads) on SST2-1k.
    Transformer,
}

pub use crate::paper::models::PaperSettings;

impl AppModel {
    pub const ALL: [AppModel; 3] = [AppModel::FcTanh, AppModel::CnnRelu, AppModel::Transformer];
    /// Its row of the models table (network, data set, the paper's settings).
    pub fn row(self) -> &'static Model {
        match self {
            AppModel::FcTanh => &models::FC_TANH,
            AppModel::CnnRelu => &models::CNN_RELU,
            AppModel::Transformer => &models::TRANSFORMER,
        }
    }
    /// The name in the URL hash and `app --model`.
    pub fn name(self) -> &'static str {
        self.row().name
    }
    /// "fc-tanh / MNIST-5k", as the paper's figures name the pairs.
    pub fn label(self) -> &'static str {
        self.row().label
    }
    /// The network (its graph and initialisation).
    pub fn spec(self) -> ModelSpec {
        (self.row().build)()
    }
    /// The data set it trains on.
    pub fn dataset(self) -> DatasetKind {
        self.row().dataset
    }
    /// The paper's SGD settings for this model (the presets fig1, fig1-cnn, fig1-transformer).
    pub fn paper(self) -> PaperSettings {
        self.row().paper
    }
    pub fn parse(s: &str) -> Option<AppModel> {
        AppModel::ALL.into_iter().find(|m| m.name() == s)
    }
    /// The app's model that is `spec` (its exact architecture), if any.
    pub fn of(spec: &ModelSpec) -> Option<AppModel> {
        AppModel::ALL.into_iter().find(|m| m.spec() == *spec)
    }
}

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
            toy_steps_per_frame: 20,
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
        }
    }
}

fn toy_name(m: ToyMethod) -> &'static str {
    match m {
        ToyMethod::Gd => "gd",
        ToyMethod::Sgd => "sgd",
        ToyMethod::DomSgd => "dom-sgd",
        ToyMethod::BulkSgd => "bulk-sgd",
    }
}

fn toy_parse(s: &str) -> Option<ToyMethod> {
    ToyMethod::ALL.into_iter().find(|m| toy_name(*m) == s)
}

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
    /// `key=value&…` with every field that differs from the model's defaults, and the model when
    /// it is not fc-tanh (the URL hash without '#').
    pub fn to_hash(&self) -> String {
        // Against the model's own defaults (the paper's settings for it), so that a link that
        // names only the model, `#model=transformer`, gets them.
        let d = Settings::default().with_model(self.model);
        let mut kv: Vec<(String, String)> = Vec::new();
        macro_rules! num {
            ($k:literal, $f:ident) => {
                if self.$f != d.$f {
                    kv.push(($k.into(), self.$f.to_string()));
                }
            };
        }
        num!("toy_lr", toy_lr);
        num!("toy_c", toy_coupling);
        num!("toy_x0", toy_x0);
        num!("toy_y0", toy_y0);
        num!("toy_spf", toy_steps_per_frame);
        if self.toy_a != d.toy_a {
            kv.push(("toy_a".into(), toy_name(self.toy_a).into()));
        }
        if self.toy_b != d.toy_b {
            kv.push(("toy_b".into(), toy_name(self.toy_b).into()));
        }
        num!("toy_seed", toy_seed);
        if self.model != AppModel::default() {
            kv.push(("model".into(), self.model.name().into()));
        }
        num!("lr", lr);
        num!("batch", batch);
        num!("k", k);
        if self.optimizer != d.optimizer {
            kv.push(("opt".into(), opt_name(self.optimizer).into()));
        }
        num!("eig", eigen_every);
        num!("seed", seed);
        num!("n", samples);
        num!("rho", rho);
        if self.compute != d.compute {
            kv.push(("compute".into(), self.compute.name().into()));
        }
        if !self.scenario.is_empty() {
            kv.push(("scenario".into(), self.scenario.clone()));
        }
        if !self.snapshot.is_empty() {
            // '&', '#' and '%' would end or garble the hash: escaped as in a URL.
            let esc = self
                .snapshot
                .replace('%', "%25")
                .replace('&', "%26")
                .replace('#', "%23");
            kv.push(("snapshot".into(), esc));
        }
        kv.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Put every field the app cannot run back to its default (the model's), saying which (one rule for the
    /// URL hash and for the settings a native app saved: a hand-edited or older file with
    /// `samples: 0` must not leave a panel stuck). Ranges: η, the toy's η positive and finite;
    /// the toy's coupling and start finite; steps per frame 1..=10000; samples 1..=the model's data
    /// set's (5000 images, 1000 sentences);
    /// batch 1..=samples; k 1..=50; eigen every 1..=1000; ρ finite, ≥ 0.
    pub fn sanitize(&mut self) -> Vec<String> {
        let d = Settings::default().with_model(self.model);
        let mut w = Vec::new();
        macro_rules! need {
            ($f:ident, $ok:expr, $range:literal) => {
                #[allow(clippy::redundant_closure_call)]
                if !($ok)(self.$f) {
                    w.push(format!(
                        "{} = {} is out of range ({}): reset to {}",
                        stringify!($f),
                        self.$f,
                        $range,
                        d.$f
                    ));
                    self.$f = d.$f;
                }
            };
        }
        let pos = |x: f64| x.is_finite() && x > 0.0;
        let fin = |x: f64| x.is_finite();
        need!(toy_lr, pos, "positive");
        need!(toy_coupling, fin, "finite");
        need!(toy_x0, fin, "finite");
        need!(toy_y0, fin, "finite");
        need!(
            toy_steps_per_frame,
            |x: usize| (1..=10_000).contains(&x),
            "1..=10000"
        );
        need!(lr, pos, "positive");
        let max_n = self.model.dataset().max_samples();
        if !(1..=max_n).contains(&self.samples) {
            let to = self.model.paper().app_samples;
            w.push(format!(
                "samples = {} is out of range (1..={max_n} for {}): reset to {to}",
                self.samples,
                self.model.label()
            ));
            self.samples = to;
        }
        need!(k, |x: usize| (1..=50).contains(&x), "1..=50");
        need!(eigen_every, |x: usize| (1..=1000).contains(&x), "1..=1000");
        need!(rho, |x: f64| x.is_finite() && x >= 0.0, "≥ 0");
        if self.batch == 0 {
            w.push(format!(
                "batch = 0 is out of range (1..=samples): reset to {}",
                d.batch
            ));
            self.batch = d.batch;
        }
        self.batch = self.batch.min(self.samples);
        if !self.snapshot.is_empty() && !self.scenario.is_empty() {
            w.push(format!(
                "scenario {} and snapshot {} both given: starting from the snapshot",
                self.scenario, self.snapshot
            ));
            self.scenario.clear();
        }
        if !self.scenario.is_empty() {
            match super::scenario::find(&self.scenario) {
                Err(e) => {
                    w.push(format!("scenario: {e}; starting a fresh run"));
                    self.scenario.clear();
                }
                Ok(sc) if sc.model != self.model => {
                    w.push(format!(
                        "scenario {} is of {}, not of {}: starting a fresh run of {}",
                        sc.name,
                        sc.model.label(),
                        self.model.label(),
                        self.model.label()
                    ));
                    self.scenario.clear();
                }
                Ok(_) => {}
            }
        }
        w
    }

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

    /// Parse a hash (with or without '#'). Unknown keys and unparsable values are skipped and
    /// reported; values out of range are reset by [`Settings::sanitize`] and reported.
    pub fn from_hash(hash: &str) -> (Settings, Vec<String>) {
        let mut warnings = Vec::new();
        // The model first: the other keys override its paper settings. Without one, a
        // scenario's model (`#scenario=fig1-switch-transformer` is a run of the Transformer).
        let parts = || hash.trim_start_matches('#').split('&').rev();
        let model = parts()
            .find_map(|p| p.strip_prefix("model=").and_then(AppModel::parse))
            .or_else(|| {
                parts()
                    .find_map(|p| p.strip_prefix("scenario="))
                    .and_then(|n| super::scenario::find(n).ok())
                    .map(|sc| sc.model)
            })
            .unwrap_or_default();
        let mut s = Settings::default().with_model(model);
        for part in hash
            .trim_start_matches('#')
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let Some((k, v)) = part.split_once('=') else {
                warnings.push(format!("ignored '{part}': expected key=value"));
                continue;
            };
            let f = || v.parse::<f64>().ok();
            let u = || v.parse::<usize>().ok();
            let ok = match k {
                "toy_lr" => f().map(|x| s.toy_lr = x).is_some(),
                "toy_c" => f().map(|x| s.toy_coupling = x).is_some(),
                "toy_x0" => f().map(|x| s.toy_x0 = x).is_some(),
                "toy_y0" => f().map(|x| s.toy_y0 = x).is_some(),
                "toy_spf" => u().map(|x| s.toy_steps_per_frame = x).is_some(),
                "toy_a" => toy_parse(v).map(|m| s.toy_a = m).is_some(),
                "toy_b" => toy_parse(v).map(|m| s.toy_b = m).is_some(),
                "toy_seed" => v.parse().ok().map(|x| s.toy_seed = x).is_some(),
                "model" => AppModel::parse(v).map(|m| s.model = m).is_some(),
                "lr" => f().map(|x| s.lr = x).is_some(),
                "batch" => u().map(|x| s.batch = x).is_some(),
                "k" => u().map(|x| s.k = x).is_some(),
                "opt" => OPTIMIZERS
                    .into_iter()
                    .find(|o| opt_name(*o) == v)
                    .map(|o| s.optimizer = o)
                    .is_some(),
                "eig" => u().map(|x| s.eigen_every = x).is_some(),
                "seed" => v.parse().ok().map(|x| s.seed = x).is_some(),
                "n" => u().map(|x| s.samples = x).is_some(),
                "rho" => f().map(|x| s.rho = x).is_some(),
                "scenario" => {
                    s.scenario = v.to_string();
                    true
                }
                "snapshot" => {
                    s.snapshot = v
                        .replace("%26", "&")
                        .replace("%23", "#")
                        .replace("%25", "%");
                    true
                }
                "compute" => Compute::ALL
                    .into_iter()
                    .find(|c| c.name() == v)
                    .map(|c| s.compute = c)
                    .is_some(),
                _ => {
                    warnings.push(format!("ignored unknown setting '{k}'"));
                    continue;
                }
            };
            if !ok {
                warnings.push(format!("ignored {k}={v}: not a valid value"));
            }
        }
        warnings.extend(s.sanitize());
        (s, warnings)
    }
}
