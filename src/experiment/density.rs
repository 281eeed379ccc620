//! `density_every`: the Hessian's spectral density by stochastic Lanczos quadrature
//! ([`crate::hessian::slq`]; Ghorbani, Krishnan, Xiao 2019) and its trace recorded along a run.
//!
//! At every step that is a multiple of `density_every` (a variant's first step excepted: it is the
//! switch, measured at the end of the first leg), and at the switch itself, the runner runs
//! `density_probes` Rademacher probes of `density_steps` Lanczos steps on the full-data HVP at θ
//! and keeps a [`DensityRecord`]: each probe's Gauss nodes and weights, the trace from their first
//! moment (Hutchinson with the same probes) and its standard error, and the share of the trace in
//! S_k (Σ_{i≤k} λ_i from the step's own top-k solve). The probes are seeded by the run's seed and
//! the step, so a resumed run records the same densities as an uninterrupted one; the records ride
//! in the checkpoint. The metrics are untouched: the quadrature only reads θ (the full-data engine
//! is recomputed at θ afterwards, bit for bit the state it had).
//!
//! Files ([`super::output::CsvSink`]): `density.csv` (run, phase, step, λ on a grid, the density
//! normalised to integral 1), `trace.csv` (one row per measurement) and `density.json` (the
//! records, with the raw quadrature).

use super::stepper::Stepper;
use crate::backend::Backend;
use crate::error::Result;
use crate::hessian::slq::{Density, DensityOptions, Quadrature, SlqOptions, SlqResult, slq};

/// Grid points of each density in `density.csv`.
pub const CSV_POINTS: usize = 400;

pub use super::density_spec::{d_probes, d_steps};

/// The seed of the first probe of a density at `step` of a run seeded `seed` (probe i uses
/// this + i): the same at the same step whether the run was resumed or not.
pub fn probe_seed(seed: u64, step: usize) -> u64 {
    (seed << 40) ^ ((step as u64) << 12) ^ 0x5EED_0000_0000
}

/// One density measurement along a run (a row of `trace.csv`, a density in `density.csv`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DensityRecord {
    /// The leg's name ("SGD", "Dom-SGD") and phase ("before" / "after").
    pub run: String,
    pub phase: String,
    pub step: usize,
    pub probes: usize,
    /// Lanczos steps per probe.
    pub steps: usize,
    /// HVPs spent.
    pub hvps: usize,
    /// tr H from the quadrature (p · the mean first moment) and its standard error over probes.
    pub trace: f64,
    pub trace_std_error: f64,
    /// Σ_{i≤k} λ_i at this step and its share of `trace`.
    pub top_k_sum: f64,
    pub top_k_share: f64,
    /// The top k eigenvalues at this step, largest first.
    pub eigenvalues: Vec<f64>,
    /// Each probe's Gauss nodes and weights.
    pub quadrature: Vec<Quadrature>,
    /// Wall time of the quadrature, seconds (not compared between runs).
    #[serde(default)]
    pub seconds: f64,
}

impl DensityRecord {
    /// The record of an SLQ result at `step`, with the step's top-k eigenvalues `top_k`.
    pub fn new(run: &str, phase: &str, step: usize, r: SlqResult, top_k: &[f64], s: f64) -> Self {
        let (trace, trace_std_error) = r.trace();
        let top_k_sum: f64 = top_k.iter().sum();
        DensityRecord {
            run: run.into(),
            phase: phase.into(),
            step,
            probes: r.probes.len(),
            steps: r.steps,
            hvps: r.hvps,
            trace,
            trace_std_error,
            top_k_sum,
            top_k_share: top_k_sum / trace,
            eigenvalues: top_k.to_vec(),
            quadrature: r.probes,
            seconds: s,
        }
    }

    /// The broadened density on `points` grid points (σ automatic, as `spectrum --density`).
    pub fn density(&self, points: usize) -> Density {
        let r = SlqResult {
            dim: 0,
            probes: self.quadrature.clone(),
            hvps: self.hvps,
            steps: self.steps,
        };
        r.density(&DensityOptions { points, sigma: 0.0 })
    }

    /// Equal up to the wall time (a resumed run's records against an uninterrupted run's).
    pub fn same_as(&self, o: &DensityRecord) -> bool {
        DensityRecord {
            seconds: o.seconds,
            ..self.clone()
        } == *o
    }
}

/// `density.csv`: `run,phase,step,lambda,density`, [`CSV_POINTS`] rows per record.
pub fn density_csv(records: &[DensityRecord]) -> String {
    let mut s = String::from("run,phase,step,lambda,density\n");
    for r in records {
        let d = r.density(CSV_POINTS);
        for (x, y) in d.grid.iter().zip(&d.density) {
            s.push_str(&format!("{},{},{},{x:e},{y:e}\n", r.run, r.phase, r.step));
        }
    }
    s
}

/// `trace.csv`: one row per record.
pub fn trace_csv(records: &[DensityRecord]) -> String {
    let mut s = String::from(
        "run,phase,step,probes,steps,hvps,trace,trace_std_error,top_k_sum,top_k_share,lambda_1,seconds\n",
    );
    for r in records {
        let l1 = r.eigenvalues.first().copied().unwrap_or(f64::NAN);
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{:.3}\n",
            r.run,
            r.phase,
            r.step,
            r.probes,
            r.steps,
            r.hvps,
            r.trace,
            r.trace_std_error,
            r.top_k_sum,
            r.top_k_share,
            l1,
            r.seconds
        ));
    }
    s
}

impl<B: Backend + Clone> Stepper<B> {
    /// Stochastic Lanczos quadrature of the full-data Hessian at the current θ: `probes` probes of
    /// `steps` steps from `seed`. The full-data engine is put back at θ afterwards (its next use
    /// recomputes the loss and gradient the HVPs may have overwritten: the same numbers).
    /// Errors: the quadrature's (no probes), the backend's.
    pub fn density(&mut self, probes: usize, steps: usize, seed: u64) -> Result<SlqResult> {
        self.full_here()?;
        let b = self.full.backend().clone();
        let opts = SlqOptions {
            probes,
            steps: steps.min(self.num_params()),
            seed,
            group: 0,
        };
        let r = slq(&b, &mut self.full, &opts, &mut |_, _| {});
        self.full_version = None;
        r
    }
}
