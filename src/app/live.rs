//! The MNIST panel's live run: one optimiser step at a time on the `Stepper` the CLI uses, with
//! the controls' actions (switch to Dom-/Bulk-, to GD, arm the paper's auto-switch) as state
//! changes that mark the branch point, and the history the plots draw.

use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::experiment::run::{OptState, Stepper, Stream, nan_null, sam_edge};
use crate::experiment::spec::{OptKind, OptimizerSpec, Projection};
use crate::nn::mlp::MlpSpec;

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
}

pub struct LiveRun<B: Backend> {
    st: Stepper<B>,
    opt: OptimizerSpec,
    stream: Stream,
    proj: Projection,
    eigen_every: usize,
    ema: f64,
    pub history: History,
    spec: MlpSpec,
    /// The auto-switch fires when the EMA of χ_k exceeds this (the paper's 0.95).
    pub auto_threshold: f64,
}

pub const AUTO_THRESHOLD: f64 = 0.95;

impl<B: Backend + Clone> LiveRun<B> {
    pub fn new(
        backend: B,
        spec: &MlpSpec,
        data: &Dataset,
        opt: OptimizerSpec,
        k: usize,
        eigen_every: usize,
        seed: u64,
    ) -> Result<Self> {
        opt.validate("optimizer", data.n)?;
        if k == 0 || 2 * k > spec.num_params() {
            return Err(Error::InvalidArgument(format!(
                "k = {k}: too large for this net"
            )));
        }
        let st = Stepper::new(
            backend,
            spec,
            crate::backend::LossKind::Mse,
            data,
            k,
            2 * k,
            1e-3,
        )?;
        let mut st = st;
        st.set_theta(&spec.init(seed))?;
        let run_name = opt.display();
        Ok(LiveRun {
            st,
            opt,
            stream: Stream::new(data.n, seed),
            proj: Projection::None,
            eigen_every: eigen_every.max(1),
            ema: f64::NAN,
            history: History {
                run_name,
                k,
                ..History::default()
            },
            spec: spec.clone(),
            auto_threshold: AUTO_THRESHOLD,
        })
    }

    pub fn backend(&self) -> &B {
        self.st.backend()
    }
    /// θ read back from the backend (files, exports).
    pub fn theta(&self) -> Result<Vec<f64>> {
        self.st.theta_host()
    }
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }
    pub fn projection(&self) -> Projection {
        self.proj
    }
    pub fn optimizer(&self) -> &OptimizerSpec {
        &self.opt
    }

    fn name(&self) -> String {
        format!("{}{}", self.proj.prefix(), self.opt.display())
    }

    fn mark(&mut self, label: String) {
        self.history.markers.push(Marker {
            step: self.history.step,
            label,
        });
        self.history.run_name = self.name();
    }

    pub fn apply(&mut self, a: Action) -> Result<()> {
        match a {
            Action::Project(p) => {
                if p != self.proj {
                    self.proj = p;
                    let n = self.name();
                    self.mark(format!("→ {n}"));
                }
            }
            Action::ToGd => {
                if self.opt.name != OptKind::Gd {
                    self.opt = OptimizerSpec::gd(self.opt.lr);
                    self.st.set_opt_state(&OptState::default())?;
                    let n = self.name();
                    self.mark(format!("→ {n}"));
                }
            }
            Action::ArmAuto(p) => self.history.armed = Some(p),
            Action::Disarm => self.history.armed = None,
            Action::SetOptimizer(o) => {
                o.validate("optimizer", usize::MAX)?;
                if o != self.opt {
                    if o.name != self.opt.name {
                        self.st.set_opt_state(&OptState::default())?;
                    }
                    self.opt = o;
                    let n = self.name();
                    self.mark(format!("→ {n} (η {})", self.opt.lr));
                }
            }
            Action::SetEigenEvery(n) => self.eigen_every = n.max(1),
        }
        Ok(())
    }

    /// One optimiser step (with a spectrum first when it is due or a projection needs it).
    pub fn step(&mut self) -> Result<()> {
        let s = self.history.step;
        let due = s.is_multiple_of(self.eigen_every);
        let need = due || self.proj != Projection::None || self.history.armed.is_some();
        let sp = if need {
            Some(self.st.spectrum()?)
        } else {
            None
        };
        if let Some(sp) = &sp {
            self.ema = if self.ema.is_nan() {
                sp.chi
            } else {
                0.9 * self.ema + 0.1 * sp.chi
            };
            self.history.hvps_last = sp.hvps;
            self.history.worst_residual = sp.worst_residual;
            if due || self.history.armed.is_some() {
                self.history.points.push(Point {
                    step: s,
                    loss: sp.eval.loss,
                    accuracy: sp.eval.accuracy,
                    chi: sp.chi,
                    chi_ema: self.ema,
                    eigenvalues: sp.values.clone(),
                    edge: if self.opt.name == OptKind::Sam {
                        sam_edge(sp.grad_norm, self.opt.lr, self.opt.rho)
                    } else {
                        2.0 / self.opt.lr
                    },
                });
            }
            if let Some(p) = self.history.armed
                && self.ema > self.auto_threshold
            {
                self.history.armed = None;
                self.proj = p;
                let n = self.name();
                let t = self.auto_threshold;
                self.mark(format!("EMA(χ) > {t}: → {n}"));
            }
        }
        let mut opt = self.opt.clone();
        if let Some(b) = opt.batch {
            opt.batch = Some(b.min(self.stream_len()));
        }
        let proj = if sp.is_some() {
            self.proj
        } else {
            Projection::None
        };
        // The one step routine of the runner (θ and the optimiser state stay on the backend).
        match self.st.step(&opt, &mut self.stream, proj, false) {
            Err(Error::NonFinite(what)) => {
                // As the runner: the step whose θ would not be finite, or this one when its
                // gradient is not.
                let step = if what == crate::experiment::run::THETA_NOT_FINITE {
                    s + 1
                } else {
                    s
                };
                return Err(Error::Diverged {
                    run: self.name(),
                    step,
                    what,
                });
            }
            r => r?,
        };
        self.history.step = s + 1;
        Ok(())
    }

    fn stream_len(&self) -> usize {
        self.stream.len()
    }
}
