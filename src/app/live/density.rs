//! The live run's spectral density (issue 35): stochastic Lanczos quadrature on the full-data
//! Hessian at the run's θ ([`crate::experiment::density`]), measured in the worker between steps
//! every [`DensityClock::every`] steps — never on the UI thread, so frames are not held up — and
//! capped so that it costs at most [`DensityClock::max_share`] of the worker's time: a density is
//! skipped while the time spent on densities exceeds that share of the time since the run began.

use super::LiveRun;
use crate::backend::Backend;
use crate::error::Result;
use crate::experiment::density::{DensityRecord, probe_seed};

/// Grid points of the app's density.
pub const LIVE_POINTS: usize = 200;

/// One density of the live run, what the density panel draws.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LiveDensity {
    /// The step it was measured at and the run's origin (a reset or a new snapshot drops it).
    pub step: usize,
    pub origin: String,
    /// Eigenvalue grid and the broadened density (integral 1).
    pub grid: Vec<f64>,
    pub density: Vec<f64>,
    /// The top k eigenvalues of the last spectrum (largest first).
    pub top_k: Vec<f64>,
    /// tr H from the quadrature, its standard error, and Σ_{i≤k} λ_i / tr H.
    pub trace: f64,
    pub trace_std_error: f64,
    pub top_k_share: f64,
    pub probes: usize,
    pub steps: usize,
    pub hvps: usize,
    /// Wall time of this density, seconds, and the share of the worker's time spent on
    /// densities so far.
    pub seconds: f64,
    pub time_share: f64,
}

impl<B: Backend + Clone> LiveRun<B> {
    /// The density at the run's θ (the first branch after a fork): `probes` probes of `steps`
    /// Lanczos steps, seeded by the step; the top k from the last spectrum. Errors: the backend's.
    pub fn density(&mut self, probes: usize, steps: usize) -> Result<LiveDensity> {
        let t = web_time::Instant::now();
        let step = self.history.step;
        let k = self.history.k;
        let top: Vec<f64> = self
            .history
            .points
            .last()
            .map(|p| p.eigenvalues.iter().take(k).copied().collect())
            .unwrap_or_default();
        let r = self
            .stepper_mut()
            .density(probes, steps, probe_seed(0, step))?;
        let s = t.elapsed().as_secs_f64();
        let rec = DensityRecord::new("", "", step, r, &top, s);
        let d = rec.density(LIVE_POINTS);
        Ok(LiveDensity {
            step,
            origin: self.history.origin.clone(),
            grid: d.grid,
            density: d.density,
            top_k: top,
            trace: rec.trace,
            trace_std_error: rec.trace_std_error,
            top_k_share: rec.top_k_share,
            probes: rec.probes,
            steps: rec.steps,
            hvps: rec.hvps,
            seconds: s,
            time_share: 0.0,
        })
    }
}

/// When the worker measures the next density, and at what cost.
#[derive(Clone, Debug)]
pub struct DensityClock {
    /// Steps between densities.
    pub every: usize,
    /// Probes and Lanczos steps per density.
    pub probes: usize,
    pub steps: usize,
    /// The most of the worker's time densities may take (the next waits until it is below).
    pub max_share: f64,
    busy_s: f64,
    since: web_time::Instant,
    last: Option<usize>,
}

impl Default for DensityClock {
    /// Every 25 steps, 3 probes × 30 steps (90 HVPs), at most 20% of the worker's time.
    fn default() -> Self {
        DensityClock {
            every: 25,
            probes: 3,
            steps: 30,
            max_share: 0.2,
            busy_s: 0.0,
            since: web_time::Instant::now(),
            last: None,
        }
    }
}

impl DensityClock {
    /// The share of the time since the clock started spent on densities.
    pub fn share(&self) -> f64 {
        self.busy_s / self.since.elapsed().as_secs_f64().max(1e-9)
    }

    /// Whether a density is due at `step`: the first at once, then at a multiple of `every` not
    /// measured yet while the time spent so far is below `max_share`.
    pub fn due(&self, step: usize) -> bool {
        match self.last {
            None => true,
            Some(l) => {
                l != step
                    && step.is_multiple_of(self.every.max(1))
                    && self.share() <= self.max_share
            }
        }
    }

    /// Count a density measured at `step` that took `seconds`.
    pub fn done(&mut self, step: usize, seconds: f64) {
        self.busy_s += seconds;
        self.last = Some(step);
    }
}
