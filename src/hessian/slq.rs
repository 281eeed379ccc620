//! Stochastic Lanczos quadrature (SLQ): the spectral density of a symmetric operator from
//! products alone (Ghorbani, Krishnan, Xiao, "An Investigation into Neural Net Optimization via
//! Hessian Eigenvalue Density", ICML 2019, §2; Lin, Saad, Yang 2016; PyHessian's `density()` is
//! the reference code).
//!
//! For a unit start vector v, m Lanczos steps with full reorthogonalisation give the tridiagonal
//! T_m = Qᵀ A Q; its eigenpairs (θ_j, s_j) are the nodes and τ_j = s_{1j}² the weights of the
//! m-point Gauss quadrature of the measure μ_v = Σ_i (vᵀu_i)² δ(λ − λ_i):
//! vᵀ f(A) v ≈ Σ_j τ_j f(θ_j), exact for polynomials f of degree ≤ 2m − 1. With v = z/√p and z
//! Rademacher, E[vᵀ f(A) v] = tr f(A)/p, so the mean over n_v probes estimates the normalised
//! spectral measure; convolving its nodes with a Gaussian of width σ gives the density
//! φ_σ(t) = (1/n_v) Σ_probes Σ_j τ_j N(t; θ_j, σ²) on a grid. Each probe is its own run (no
//! restarts: a restart would change the quadrature); runs advance in lockstep, one block product
//! ([`Operator::apply_block`]) per step for a group of probes where the backend stacks directions.

use super::Operator;
use super::krylov::KrylovRun;
use super::probe::rademacher;
use super::trace::mean_and_std_error;
use crate::backend::Backend;
use crate::error::{Error, Result};

/// Options of [`slq`]. PyHessian's defaults are 100 steps and 1 probe; ours are 10 probes of 80
/// steps (the density's bulk varies between probes, the outliers do not).
#[derive(Clone, Copy, Debug)]
pub struct SlqOptions {
    /// Start vectors n_v (Rademacher, normalised).
    pub probes: usize,
    /// Lanczos steps m per probe (at most the dimension).
    pub steps: usize,
    /// Seed of the first probe (probe i uses `seed + i`).
    pub seed: u64,
    /// Probes advanced together by block products (0: the backend's preferred block, at most
    /// what keeps the group's bases within 1 GiB).
    pub group: usize,
}

impl Default for SlqOptions {
    fn default() -> Self {
        SlqOptions {
            probes: 10,
            steps: 80,
            seed: 0,
            group: 0,
        }
    }
}

/// The Gauss quadrature of one probe: nodes (Ritz values, ascending) and weights (summing to 1).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quadrature {
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
}

/// What [`slq`] returns.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SlqResult {
    /// The operator's dimension p.
    pub dim: usize,
    /// One quadrature per probe.
    pub probes: Vec<Quadrature>,
    /// Operator products (HVPs) spent.
    pub hvps: usize,
    /// Steps asked per probe.
    pub steps: usize,
}

impl SlqResult {
    /// The estimate of tr f(A) / p: the mean over probes of Σ_j τ_j f(θ_j), and its standard
    /// error over probes.
    pub fn moment(&self, f: impl Fn(f64) -> f64) -> (f64, f64) {
        let per: Vec<f64> = self
            .probes
            .iter()
            .map(|q| q.nodes.iter().zip(&q.weights).map(|(x, w)| w * f(*x)).sum())
            .collect();
        mean_and_std_error(&per)
    }

    /// The estimate of tr A (p times the first moment: Hutchinson's estimate with the same
    /// probes) and its standard error.
    pub fn trace(&self) -> (f64, f64) {
        let (m, s) = self.moment(|x| x);
        (m * self.dim as f64, s * self.dim as f64)
    }

    /// The smallest and largest node over all probes.
    pub fn range(&self) -> (f64, f64) {
        self.probes
            .iter()
            .flat_map(|q| q.nodes.iter().copied())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            })
    }

    /// The Gaussian-broadened density on a grid ([`Density`]).
    pub fn density(&self, opts: &DensityOptions) -> Density {
        broaden(self, opts)
    }
}

/// Options of [`SlqResult::density`].
#[derive(Clone, Copy, Debug)]
pub struct DensityOptions {
    /// Grid points (at least 2).
    pub points: usize,
    /// Gaussian standard deviation σ (0: automatic, see [`Density::sigma`]).
    pub sigma: f64,
}

impl Default for DensityOptions {
    fn default() -> Self {
        DensityOptions {
            points: 2000,
            sigma: 0.0,
        }
    }
}

/// A spectral density on a grid (the `density` object of `spectrum --density --json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Density {
    /// Eigenvalue grid, ascending, evenly spaced from the smallest node − 5σ to the largest + 5σ.
    pub grid: Vec<f64>,
    /// φ_σ on the grid, normalised so that its trapezoid integral is 1 (as PyHessian's
    /// `density_generate`); plot it on a log scale to see the outliers beside the bulk.
    pub density: Vec<f64>,
    /// The broadening σ used: given, or PyHessian's √(1e-5 · max(1, range)) and at least two
    /// grid spacings (a narrower Gaussian falls between grid points).
    pub sigma: f64,
}

fn broaden(r: &SlqResult, opts: &DensityOptions) -> Density {
    let (lo, hi) = r.range();
    let points = opts.points.max(2);
    let range = (hi - lo).max(0.0);
    let sigma = if opts.sigma > 0.0 {
        opts.sigma
    } else {
        // PyHessian's sigma_squared = 1e-5 · max(1, range) is a variance.
        let auto = (1e-5 * range.max(1.0)).sqrt();
        // The grid spans range + 10σ: σ ≥ 2·(range + 10σ)/(points − 1) solved for σ.
        let n = (points - 1) as f64;
        let floor = if n > 20.0 {
            2.0 * range / (n - 20.0)
        } else {
            range
        };
        auto.max(floor)
    };
    let (a, b) = (lo - 5.0 * sigma, hi + 5.0 * sigma);
    let step = (b - a) / (points - 1) as f64;
    let grid: Vec<f64> = (0..points).map(|i| a + step * i as f64).collect();
    let norm = 1.0 / ((2.0 * std::f64::consts::PI).sqrt() * sigma * r.probes.len().max(1) as f64);
    let mut density: Vec<f64> = grid
        .iter()
        .map(|&t| {
            r.probes
                .iter()
                .flat_map(|q| q.nodes.iter().zip(&q.weights))
                .map(|(x, w)| w * (-0.5 * ((t - x) / sigma).powi(2)).exp())
                .sum::<f64>()
                * norm
        })
        .collect();
    let integral: f64 = density.windows(2).map(|w| 0.5 * (w[0] + w[1]) * step).sum();
    if integral > 0.0 && integral.is_finite() {
        density.iter_mut().for_each(|d| *d /= integral);
    }
    Density {
        grid,
        density,
        sigma,
    }
}

/// Nodes and weights of the tridiagonal matrix with diagonal `alpha` and off-diagonal `beta`
/// (the first `alpha.len() − 1` entries): the eigenvalues ascending and the squared first
/// components of the eigenvectors.
pub fn gauss_quadrature(alpha: &[f64], beta: &[f64]) -> Quadrature {
    let m = alpha.len();
    let mut t = nalgebra::DMatrix::zeros(m, m);
    for i in 0..m {
        t[(i, i)] = alpha[i];
        if i + 1 < m {
            t[(i, i + 1)] = beta[i];
            t[(i + 1, i)] = beta[i];
        }
    }
    let eig = nalgebra::SymmetricEigen::new(t);
    let mut pairs: Vec<(f64, f64)> = (0..m)
        .map(|j| (eig.eigenvalues[j], eig.eigenvectors[(0, j)].powi(2)))
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    Quadrature {
        nodes: pairs.iter().map(|p| p.0).collect(),
        weights: pairs.iter().map(|p| p.1).collect(),
    }
}

/// Progress of [`slq`]: products done and the total planned.
pub type SlqProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// Stochastic Lanczos quadrature of `op` ([`SlqOptions`]; module documentation). Errors: no
/// probes or steps, a non-finite product, the operator's.
pub fn slq<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    opts: &SlqOptions,
    progress: SlqProgress<'_>,
) -> Result<SlqResult> {
    let p = op.dim();
    if opts.probes == 0 || opts.steps == 0 || p == 0 {
        return Err(Error::InvalidArgument(format!(
            "SLQ: {} probes of {} steps on dimension {p}: all must be positive",
            opts.probes, opts.steps
        )));
    }
    let steps = opts.steps.min(p);
    let elem = b.precision().bytes();
    let fit = ((1usize << 30) / (steps * p * elem).max(1)).max(1);
    let group = if opts.group == 0 {
        b.preferred_block().clamp(1, fit)
    } else {
        opts.group
    }
    .min(opts.probes);
    let total = opts.probes * steps;
    let mut done = 0usize;
    let mut out = Vec::with_capacity(opts.probes);
    let (mut x, mut y) = (b.zeros(group * p)?, b.zeros(group * p)?);
    let mut first = 0;
    while first < opts.probes {
        let n = group.min(opts.probes - first);
        let mut runs = Vec::with_capacity(n);
        for i in 0..n {
            let mut run = KrylovRun::new(b, p, steps)?;
            let seed = opts.seed.wrapping_add((first + i) as u64);
            run.start(b, &rademacher(p, seed))?;
            runs.push(run);
        }
        loop {
            let active: Vec<usize> = (0..n).filter(|&i| runs[i].wants_product()).collect();
            if active.is_empty() {
                break;
            }
            for (slot, &i) in active.iter().enumerate() {
                runs[i].current_into(b, &mut x, slot * p)?;
            }
            op.apply_block(&x, 0, active.len(), &mut y, 0)?;
            for (slot, &i) in active.iter().enumerate() {
                runs[i].absorb(b, &y, slot * p)?;
            }
            done += active.len();
            progress(done, total);
        }
        for run in &runs {
            out.push(gauss_quadrature(&run.alpha, &run.beta));
        }
        first += n;
    }
    Ok(SlqResult {
        dim: p,
        probes: out,
        hvps: done,
        steps,
    })
}
