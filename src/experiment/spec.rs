//! A run as data: the TOML spec `subspace-lab run SPEC.toml` executes and every output directory
//! keeps (`spec.toml`). Every field but `optimizer` and `steps` has a default (the paper's fig. 1
//! setting); unknown fields are rejected, and `validate` names the field of any impossible value
//! before any work starts.

use super::density_spec as ds;
pub use super::ema::EmaStart;
use crate::backend::{Activation, LossKind};
use crate::data::load::DatasetKind;
use crate::error::{Error, Result};
use crate::nn::mlp::MlpSpec;
use crate::paper::models::{self, Model};

/// Which part of the optimiser's update a step applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Projection {
    /// The whole update.
    None,
    /// P_k·update: only the part in the top-k Hessian eigenspace S_k.
    Dominant,
    /// P_k⊥·update: only the part orthogonal to S_k.
    Bulk,
}

impl Projection {
    pub fn prefix(self) -> &'static str {
        match self {
            Projection::None => "",
            Projection::Dominant => "Dom-",
            Projection::Bulk => "Bulk-",
        }
    }
}

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptKind {
    /// θ ← θ − η g on minibatches (`batch` required).
    Sgd,
    /// θ ← θ − η ∇L on the full training set (`batch` must be absent).
    Gd,
    /// Heavy ball, PyTorch's convention: b ← μ b + g, θ ← θ − η b.
    Momentum,
    /// Adam with bias correction; `beta1 = 0` is "Adam −m".
    Adam,
    /// Sharpness-aware minimisation: θ ← θ − η g(θ + ρ g/‖g‖), both gradients on the same batch.
    Sam,
}

fn d_momentum() -> f64 {
    0.9
}
fn d_beta1() -> f64 {
    0.9
}
fn d_beta2() -> f64 {
    0.999
}
fn d_eps() -> f64 {
    1e-8
}
fn d_rho() -> f64 {
    0.1
}

/// An optimiser and its parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSpec {
    pub name: OptKind,
    pub lr: f64,
    /// Minibatch size; absent means full batch (required for `sgd`, forbidden for `gd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Heavy-ball coefficient μ (`momentum`).
    #[serde(default = "d_momentum")]
    pub momentum: f64,
    #[serde(default = "d_beta1")]
    pub beta1: f64,
    #[serde(default = "d_beta2")]
    pub beta2: f64,
    #[serde(default = "d_eps")]
    pub eps: f64,
    /// SAM's perturbation radius ρ.
    #[serde(default = "d_rho")]
    pub rho: f64,
}

impl OptimizerSpec {
    pub fn new(name: OptKind, lr: f64, batch: Option<usize>) -> Self {
        OptimizerSpec {
            name,
            lr,
            batch,
            momentum: d_momentum(),
            beta1: d_beta1(),
            beta2: d_beta2(),
            eps: d_eps(),
            rho: d_rho(),
        }
    }
    pub fn sgd(lr: f64, batch: usize) -> Self {
        Self::new(OptKind::Sgd, lr, Some(batch))
    }
    pub fn gd(lr: f64) -> Self {
        Self::new(OptKind::Gd, lr, None)
    }

    /// The name the paper uses: SGD, GD, GD+m, SGD+m, Adam, Adam−m, SAM (with "(b=…)" for
    /// minibatch SAM and Adam).
    pub fn display(&self) -> String {
        let mb = self.batch.is_some();
        match self.name {
            OptKind::Sgd => "SGD".into(),
            OptKind::Gd => "GD".into(),
            OptKind::Momentum => if mb { "SGD+m" } else { "GD+m" }.into(),
            OptKind::Adam => {
                let base = if self.beta1 == 0.0 {
                    "Adam−m"
                } else {
                    "Adam"
                };
                match self.batch {
                    Some(b) => format!("{base} (b={b})"),
                    None => base.into(),
                }
            }
            OptKind::Sam => match self.batch {
                Some(b) => format!("SAM (b={b})"),
                None => "SAM".into(),
            },
        }
    }

    /// Check every field; `at` names where this optimiser sits in the spec.
    pub fn validate(&self, at: &str, n: usize) -> Result<()> {
        let bad = |field: &str, v: String, need: &str| {
            Err(Error::InvalidArgument(format!(
                "{at}.{field} = {v}: {need}"
            )))
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(
                "lr",
                self.lr.to_string(),
                "must be a positive finite number",
            );
        }
        match (self.name, self.batch) {
            (OptKind::Sgd, None) => {
                return bad(
                    "batch",
                    "absent".into(),
                    "sgd needs a minibatch size (or use name = \"gd\" for full batch)",
                );
            }
            (OptKind::Gd, Some(b)) => {
                return bad(
                    "batch",
                    b.to_string(),
                    "gd is full batch: drop `batch` or use name = \"sgd\"",
                );
            }
            (_, Some(b)) if b == 0 || b > n => {
                return bad(
                    "batch",
                    b.to_string(),
                    &format!("need 1..={n} (the data size)"),
                );
            }
            _ => {}
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", self.momentum.to_string(), "need 0 ≤ μ < 1");
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return bad("beta1", self.beta1.to_string(), "need 0 ≤ β₁ < 1");
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return bad("beta2", self.beta2.to_string(), "need 0 ≤ β₂ < 1");
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", self.eps.to_string(), "must be positive");
        }
        if !(self.rho.is_finite() && self.rho >= 0.0) {
            return bad("rho", self.rho.to_string(), "must be ≥ 0 and finite");
        }
        Ok(())
    }
}

fn d_widths() -> Vec<usize> {
    vec![784, 200, 200, 10]
}
fn d_act() -> Activation {
    Activation::Tanh
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The network: absent or `fc-tanh` for a fully connected one shaped by `widths` and
    /// `activation`; `cnn-relu` for Cohen et al.'s convnet (fixed layers: `widths` and
    /// `activation` do not apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Input width, hidden widths…, classes (fc-tanh: 784, 200, 200, 10).
    #[serde(default = "d_widths")]
    pub widths: Vec<usize>,
    /// tanh or relu for a fully connected network (absent: tanh); cnn-relu takes relu only; the
    /// Transformer silu (absent) or gelu.
    #[serde(default)]
    pub activation: Option<Activation>,
    /// The Transformer only: mask padding keys and average over real positions (absent: true;
    /// false is Damian et al.'s code, which masks nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<bool>,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            name: None,
            widths: d_widths(),
            activation: Some(d_act()),
            mask: None,
        }
    }
}

/// A convolutional network's section names only the network (its widths and activation do not
/// apply); a fully connected one writes its widths and activation.
impl serde::Serialize for ModelSpec {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let conv = self
            .name
            .as_deref()
            .is_some_and(|n| ["cnn", "vgg11", "resnet8"].iter().any(|p| n.starts_with(p)));
        let fixed = conv || self.name.as_deref() == Some("transformer");
        let mut st = ser.serialize_struct("ModelSpec", 4)?;
        if let Some(n) = &self.name {
            st.serialize_field("name", n)?;
        }
        if !fixed {
            st.serialize_field("widths", &self.widths)?;
        }
        if let Some(a) = self
            .activation
            .filter(|_| !conv || self.activation != Some(Activation::Relu))
        {
            st.serialize_field("activation", &a)?;
        }
        if let Some(m) = self.mask {
            st.serialize_field("mask", &m)?;
        }
        st.end()
    }
}

impl ModelSpec {
    /// The section naming a model of the table (its widths and activation fields keep their
    /// defaults: a fixed network ignores them).
    pub fn of(m: &Model) -> Self {
        ModelSpec {
            name: Some(m.name.into()),
            activation: None,
            ..Default::default()
        }
    }
    /// cnn-relu (its widths and activation fields keep their defaults and are ignored).
    pub fn cnn_relu() -> Self {
        Self::of(&models::CNN_RELU)
    }
    /// The paper's Transformer (SiLU, padding masked) on SST2-1k.
    pub fn transformer() -> Self {
        Self::of(&models::TRANSFORMER)
    }
}

fn d_samples() -> usize {
    5000
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// `mnist` (MNIST-5k) or `cifar10` (CIFAR10-5k; where fewer records are at hand, those, and
    /// every output says so). Absent: the model's (mnist for fc-tanh, cifar10 for cnn-relu).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetKind>,
    /// The first `samples` samples (canonical order).
    #[serde(default = "d_samples")]
    pub samples: usize,
    /// MNIST: normalize, center, standardize or none; CIFAR-10: standardize or scale. Absent: the
    /// data set's (normalize, standardize).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<String>,
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec {
            dataset: None,
            samples: d_samples(),
            preprocess: None,
        }
    }
}

impl DataSpec {
    /// The data a model of the table trains on in the paper (its data set, sample count and
    /// preprocessing).
    pub fn of(m: &Model) -> Self {
        DataSpec {
            dataset: Some(m.dataset),
            samples: m.paper.samples,
            preprocess: m.preprocess.map(String::from),
        }
    }
    /// SST2-1k as word ids.
    pub fn sst2() -> Self {
        Self::of(&models::TRANSFORMER)
    }
    /// CIFAR10-5k with Cohen et al.'s standardisation.
    pub fn cifar10() -> Self {
        Self::of(&models::CNN_RELU)
    }
}

/// When the first optimiser hands over to the compared variants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwitchRule {
    /// After exactly `steps` steps.
    AfterSteps,
    /// When the EMA (factor 0.9) of χ_k(∇L) first exceeds `chi_threshold` (the paper's rule),
    /// checked every step; after `steps` steps at the latest. The default (the paper's fig. 1).
    #[default]
    ChiEma,
}

fn d_name() -> String {
    "run".into()
}
fn d_loss() -> LossKind {
    LossKind::Mse
}
fn d_variants() -> Vec<Projection> {
    vec![Projection::None, Projection::Dominant, Projection::Bulk]
}
fn d_steps_after() -> usize {
    1000
}
fn d_k() -> usize {
    10
}
fn d_record() -> usize {
    10
}
fn d_tol() -> f64 {
    1e-3
}
fn d_threshold() -> f64 {
    0.95
}

/// One run: train with `optimizer` for `steps` steps (or until the χ-EMA rule fires), then
/// continue every variant in `variants` for `steps_after` steps from the same θ, optimiser state
/// and minibatch stream, with `after` (default: the same optimiser).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    #[serde(default = "d_name")]
    pub name: String,
    #[serde(default)]
    pub model: ModelSpec,
    #[serde(default)]
    pub data: DataSpec,
    #[serde(default = "d_loss")]
    pub loss: LossKind,
    pub optimizer: OptimizerSpec,
    /// The optimiser after the switch (SGD → GD and back); absent: the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<OptimizerSpec>,
    #[serde(default)]
    pub switch: SwitchRule,
    #[serde(default = "d_threshold")]
    pub chi_threshold: f64,
    /// Where the `chi-ema` rule's EMA starts ([`EmaStart`]; absent in specs from before this
    /// field: `first`, what they used).
    #[serde(default)]
    pub ema_start: EmaStart,
    /// The `chi-ema` rule cannot fire before this many steps of the first optimiser (0: at any
    /// step, θ₀ included).
    #[serde(default)]
    pub switch_min_steps: usize,
    /// Projections compared after the switch, each from the same point (default: none, dominant,
    /// bulk — the paper's SGD, Dom-SGD, Bulk-SGD). Each at most once.
    #[serde(default = "d_variants")]
    pub variants: Vec<Projection>,
    /// Dimension of the dominant subspace (the number of classes).
    #[serde(default = "d_k")]
    pub k: usize,
    /// Eigenvalues recorded (default 2k: the paper plots the top k and the next k).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<usize>,
    /// Steps before the switch (the most, under `chi-ema`).
    pub steps: usize,
    /// Steps of each variant after the switch (0: no switch, one run). Default 1000.
    #[serde(default = "d_steps_after")]
    pub steps_after: usize,
    /// Metrics (loss, accuracy, spectrum, χ_k) every this many steps.
    #[serde(default = "d_record")]
    pub record_every: usize,
    /// Compute the top-k subspace at every step and record Dom-LR / Bulk-LR of each step.
    #[serde(default)]
    pub effective_lr: bool,
    /// Lanczos residual tolerance, relative to |λ₁|.
    #[serde(default = "d_tol")]
    pub tol: f64,
    /// The solver of every spectrum after the first, warm-started from the last one: `lanczos`
    /// (the default) or `block` (block Davidson on block HVPs; see
    /// [`WarmSolver`](crate::hessian::WarmSolver)). Both meet `tol` by their true
    /// residuals; written to `spec.toml` only when not the default.
    #[serde(
        default,
        skip_serializing_if = "crate::hessian::WarmSolver::is_default"
    )]
    pub warm_solver: crate::hessian::WarmSolver,
    #[serde(default)]
    pub seed: u64,
    /// Write a checkpoint every this many steps (0: never).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Appended to the names of the run's legs ("SGD @200", "Dom-SGD @200"), so that the runs of
    /// one preset that compare the same optimisers (the switch-step study) keep their rows apart
    /// in `metrics.csv`; empty (the default, not written) for every other run.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// The SLQ density and trace every this many steps (0: never, the default; not written
    /// then), into `density.csv` / `trace.csv` ([`super::density`]); records only.
    #[serde(default, skip_serializing_if = "ds::is_zero")]
    pub density_every: usize,
    /// Probes and Lanczos steps of each density (written when not the defaults, 4 and 40).
    #[serde(default = "ds::d_probes", skip_serializing_if = "ds::is_d_probes")]
    pub density_probes: usize,
    /// Lanczos steps per probe of each density (HVPs = probes × steps).
    #[serde(default = "ds::d_steps", skip_serializing_if = "ds::is_d_steps")]
    pub density_steps: usize,
}

impl RunSpec {
    /// A single run of `steps` steps with `optimizer` (no switch: `variants = ["none"]`,
    /// `steps_after = 0`, `switch = "after-steps"`); every other field at its default.
    pub fn new(name: &str, optimizer: OptimizerSpec, steps: usize) -> Self {
        RunSpec {
            name: name.into(),
            model: ModelSpec::default(),
            data: DataSpec::default(),
            loss: d_loss(),
            optimizer,
            after: None,
            switch: SwitchRule::AfterSteps,
            chi_threshold: d_threshold(),
            ema_start: EmaStart::First,
            switch_min_steps: 0,
            variants: vec![Projection::None],
            k: d_k(),
            top: None,
            steps,
            steps_after: 0,
            record_every: d_record(),
            effective_lr: false,
            tol: d_tol(),
            warm_solver: Default::default(),
            seed: 0,
            checkpoint_every: 0,
            tag: String::new(),
            density_every: 0,
            density_probes: ds::d_probes(),
            density_steps: ds::d_steps(),
        }
    }

    /// The name of a leg that runs `opt` under `proj` ("Dom-SGD"), with the spec's [`tag`].
    ///
    /// [`tag`]: RunSpec::tag
    pub fn leg_name(&self, proj: Projection, opt: &OptimizerSpec) -> String {
        format!("{}{}{}", proj.prefix(), opt.display(), self.tag)
    }

    pub fn parse_toml(text: &str) -> Result<Self> {
        let s: RunSpec = toml::from_str(text)
            .map_err(|e| Error::InvalidArgument(format!("spec: {}", e.to_string().trim())))?;
        Ok(s)
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::InvalidArgument(format!("spec: {e}")))
    }

    pub fn top(&self) -> usize {
        self.top.unwrap_or(2 * self.k)
    }

    pub fn mlp(&self) -> Result<MlpSpec> {
        MlpSpec::new(
            self.model.widths.clone(),
            self.model.activation.unwrap_or(d_act()),
        )
        .map_err(|e| Error::InvalidArgument(format!("model.widths: {e}")))
    }

    /// The data set: `data.dataset`, else the model's in the models table (cifar10 for cnn-relu,
    /// sst2 for the Transformer, else mnist).
    pub fn dataset(&self) -> DatasetKind {
        self.data
            .dataset
            .unwrap_or(models::for_spec_name(self.model.name.as_deref()).dataset)
    }

    /// The preprocessing: `data.preprocess`, else the data set's default.
    pub fn preprocess(&self) -> String {
        self.data
            .preprocess
            .clone()
            .unwrap_or_else(|| self.dataset().default_preprocess().to_string())
    }

    /// The network the spec names ([`ModelSpec::name`]).
    pub fn net(&self) -> Result<crate::nn::model::ModelSpec> {
        if self.model.mask.is_some() && self.model.name.as_deref() != Some("transformer") {
            return Err(Error::InvalidArgument(
                "model.mask applies to the Transformer only (drop it)".into(),
            ));
        }
        match self.model.name.as_deref() {
            None | Some("fc-tanh") | Some("fc") => Ok(self.mlp()?.into()),
            Some("cnn-relu") => {
                if let Some(a) = self.model.activation.filter(|a| *a != Activation::Relu) {
                    return Err(Error::InvalidArgument(format!(
                        "model.activation = {}: cnn-relu uses relu (drop model.activation)",
                        a.name()
                    )));
                }
                if self.model.widths != d_widths() {
                    return Err(Error::InvalidArgument(format!(
                        "model.widths = {:?}: widths shape a fully connected network; cnn-relu has fixed layers (drop model.widths)",
                        self.model.widths
                    )));
                }
                Ok(crate::nn::model::ModelSpec::cnn_relu())
            }
            Some("transformer") => {
                let act = match self.model.activation {
                    None | Some(Activation::Silu) => Activation::Silu,
                    Some(Activation::Gelu) => Activation::Gelu,
                    Some(a) => {
                        return Err(Error::InvalidArgument(format!(
                            "model.activation = {}: the Transformer's MLP blocks take silu or gelu",
                            a.name()
                        )));
                    }
                };
                if self.model.widths != d_widths() {
                    return Err(Error::InvalidArgument(format!(
                        "model.widths = {:?}: the Transformer has the paper's fixed sizes (drop model.widths)",
                        self.model.widths
                    )));
                }
                let mut t = crate::nn::transformer::TransformerSpec::sst2();
                t.activation = act;
                t.masked = self.model.mask.unwrap_or(true);
                Ok(t.into())
            }
            Some(n @ ("vgg11" | "vgg11-narrow" | "resnet8")) => {
                if self.model.activation.is_some_and(|a| a != Activation::Relu)
                    || self.model.widths != d_widths()
                {
                    return Err(Error::InvalidArgument(format!(
                        "model.name = {n} has fixed layers and ReLU (drop model.widths and model.activation)"
                    )));
                }
                models::section_f_net(n)
            }
            Some(o) => Err(Error::InvalidArgument(format!(
                "model.name = {o}: unknown (fc-tanh, cnn-relu, transformer, vgg11, vgg11-narrow or resnet8)"
            ))),
        }
    }

    pub fn after_optimizer(&self) -> &OptimizerSpec {
        self.after.as_ref().unwrap_or(&self.optimizer)
    }

    /// The fields in which `other` would compute different numbers than `self`, as
    /// `field: self's value vs other's value` (dotted TOML paths, `absent` for an unset optional
    /// field). `checkpoint_every` is left out: it changes when checkpoints are written, not what
    /// is computed. Empty: the same run.
    pub fn differences(&self, other: &RunSpec) -> Vec<String> {
        fn flat(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, x) in m {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        flat(&key, x, out);
                    }
                }
                other => out.push((prefix.to_string(), other.to_string())),
            }
        }
        let fields = |s: &RunSpec| {
            let mut out = Vec::new();
            if let Ok(v) = serde_json::to_value(s) {
                flat("", &v, &mut out);
            }
            // Neither changes a number of the run: checkpoints and the densities it records.
            out.retain(|(k, _)| k != "checkpoint_every" && !k.starts_with("density_"));
            out
        };
        let (a, b) = (fields(self), fields(other));
        let mut keys: Vec<&String> = a.iter().chain(&b).map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        let get = |f: &[(String, String)], k: &str| {
            f.iter()
                .find(|(x, _)| x == k)
                .map_or_else(|| "absent".to_string(), |(_, v)| v.clone())
        };
        keys.into_iter()
            .filter_map(|k| {
                let (x, y) = (get(&a, k), get(&b, k));
                (x != y).then(|| format!("{k}: {x} vs {y}"))
            })
            .collect()
    }

    /// Check every field against the data (n samples of `input` features, `classes` classes).
    pub fn validate(&self, input: usize, classes: usize, available: usize) -> Result<()> {
        let bad = |field: &str, v: String, need: &str| {
            Err(Error::InvalidArgument(format!("{field} = {v}: {need}")))
        };
        check_name(&self.name)?;
        if self.data.samples == 0 || self.data.samples > available {
            return bad(
                "data.samples",
                self.data.samples.to_string(),
                &format!("need 1..={available}"),
            );
        }
        if let Err(e) = self.dataset().check_preprocess(&self.preprocess()) {
            return bad("data.preprocess", self.preprocess(), &e);
        }
        let net = self.net()?;
        if net.as_mlp().is_some() {
            let w = &self.model.widths;
            if w.len() < 2 || w.contains(&0) {
                return bad(
                    "model.widths",
                    format!("{w:?}"),
                    "need input, hidden…, output widths, all positive",
                );
            }
            if w[0] != input || w[w.len() - 1] != classes {
                return bad(
                    "model.widths",
                    format!("{w:?}"),
                    &format!("the data has {input} inputs and {classes} classes"),
                );
            }
        }
        if net.input_dim() != input || net.output_dim() != classes {
            return bad(
                "model.name",
                net.describe(),
                &format!(
                    "the data ({}) have {input} inputs and {classes} classes (pair cnn-relu with data.dataset = \"cifar10\", fc-tanh with \"mnist\", transformer with \"sst2\")",
                    self.dataset().name()
                ),
            );
        }
        let p = net.num_params();
        let n = self.data.samples;
        self.optimizer.validate("optimizer", n)?;
        if let Some(a) = &self.after {
            a.validate("after", n)?;
        }
        if self.k == 0 || self.k > p {
            return bad(
                "k",
                self.k.to_string(),
                &format!("need 1..={p} (the parameter count)"),
            );
        }
        if self.top() < self.k || self.top() > p {
            return bad(
                "top",
                self.top().to_string(),
                &format!("need k = {} ..= {p}", self.k),
            );
        }
        if self.record_every == 0 {
            return bad("record_every", "0".into(), "need ≥ 1");
        }
        let (e, n, m) = (self.density_every, self.density_probes, self.density_steps);
        ds::validate(e, n, m, p)?;
        check_tol("tol", self.tol)?;
        if !(self.chi_threshold.is_finite() && (0.0..=1.0).contains(&self.chi_threshold)) {
            return bad(
                "chi_threshold",
                self.chi_threshold.to_string(),
                "need 0 ≤ t ≤ 1",
            );
        }
        if self.switch_min_steps > self.steps {
            return bad(
                "switch_min_steps",
                self.switch_min_steps.to_string(),
                &format!("need ≤ steps ({})", self.steps),
            );
        }
        if self.variants.is_empty() {
            return bad(
                "variants",
                "[]".into(),
                "need at least one of none, dominant, bulk",
            );
        }
        for (i, v) in self.variants.iter().enumerate() {
            if self.variants[..i].contains(v) {
                return bad(
                    "variants",
                    format!("{:?}", self.variants).to_lowercase(),
                    &format!(
                        "{} appears twice: each variant runs once (their rows would be indistinguishable)",
                        format!("{v:?}").to_lowercase()
                    ),
                );
            }
        }
        if self.steps == 0 && self.steps_after == 0 {
            return bad("steps", "0".into(), "nothing to run");
        }
        let max_steps = 10_000_000;
        if self.steps > max_steps || self.steps_after > max_steps {
            return bad(
                "steps",
                self.steps.max(self.steps_after).to_string(),
                &format!("at most {max_steps}"),
            );
        }
        Ok(())
    }
}

/// The Lanczos residual tolerance (relative to |λ₁|) every command and spec accepts: finite,
/// 1e-14 ≤ tol < 1 (a residual as large as the eigenvalue itself certifies nothing; below 1e-14
/// is f64 round-off, which no solve can meet). `field` names the
/// option or spec field in the error.
pub fn check_tol(field: &str, tol: f64) -> Result<()> {
    if tol.is_finite() && (1e-14..1.0).contains(&tol) {
        Ok(())
    } else {
        let shown = if tol != 0.0 && tol.is_finite() && !(1e-4..1e6).contains(&tol.abs()) {
            format!("{tol:e}")
        } else {
            tol.to_string()
        };
        Err(Error::InvalidArgument(format!(
            "{field} = {shown}: need 1e-14 ≤ tol < 1 (a residual tolerance relative to |λ₁|: below 1e-14 is f64 round-off, no solve can meet it; 1e-3 for runs, 1e-7 for an f64 spectrum)"
        )))
    }
}

/// A run's name is a directory name under the output directory: letters, digits, `-`, `_` and
/// `.` only, not starting with `.`, at most 100 characters (no separators, no `..`).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "name = {name:?}: a run's name becomes a directory under the output directory: use letters, digits, '-', '_' and '.' only (no '/', '\\' or '..'), not starting with '.', at most 100 characters"
        )))
    }
}
