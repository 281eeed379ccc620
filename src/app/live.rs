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
use crate::experiment::spec::{EmaStart, OptKind, OptimizerSpec, Projection};
use crate::nn::model::ModelSpec;

mod density;
mod run;
mod verdict;
pub use density::{DensityClock, LiveDensity};
pub use run::{AUTO_THRESHOLD, LiveRun};
pub use verdict::{
    DEFAULT_HORIZON, Judged, LiveVerdict, judge, smoothed_rel_decrease, smoothing_steps,
};

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

    /// The paper's claim on this step's raw numbers (noisy: the app judges with [`judge`], on
    /// smoothed losses at the horizon): for [`BranchSet::Projections`] "Dom- stalls
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
                            "holds at this step"
                        } else {
                            "does not hold at this step"
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
    /// Steps after a fork at which the claim is judged ([`judge`]); 0: [`DEFAULT_HORIZON`].
    #[serde(default)]
    pub horizon: usize,
}
