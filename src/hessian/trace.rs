//! The trace of a symmetric operator from products alone: Hutchinson's estimator, Hutch++, and
//! the deflated form tr A = Σ λ_i over S_k + Hutchinson on P_k⊥ A P_k⊥.
//!
//! - Hutchinson (1990): tr A = E[zᵀ A z] for probes with E[z zᵀ] = I; with Rademacher z the
//!   variance of one sample is 2(‖A‖_F² − Σ a_ii²), so the error of the mean of N samples falls as
//!   1/√N. PyHessian's `trace()` is this estimator.
//! - Hutch++ (Meyer, Musco, Musco, Woodruff, "Hutch++: Optimal Stochastic Trace Estimation",
//!   SOSA 2021, Algorithm 1): of m products, m/3 sketch the range (Q = orth(A S)), m/3 give
//!   tr(Qᵀ A Q) exactly, and m/3 run Hutchinson on (I − QQᵀ) A (I − QQᵀ). The top of the spectrum
//!   is taken exactly and the estimate on the rest has the tail's Frobenius norm, so for a PSD
//!   matrix the relative error falls as 1/m instead of 1/√m (their Theorem 1.1).
//! - Deflated: with the top-k eigenpairs already at hand (the run's S_k),
//!   tr A = Σ_{i≤k} u_iᵀ A u_i + tr(P⊥ A P⊥) holds exactly for any orthonormal U (the cross terms have no trace), and the
//!   Ritz values are the u_iᵀ A u_i. Hutchinson on the complement then has variance
//!   2(‖P⊥AP⊥‖_F² − Σ diag²): this helps when the k outliers carry most of ‖A‖_F² — the Hessians
//!   of the paper, whose top k stand far above the bulk — and costs nothing extra when the
//!   eigenpairs were computed anyway. It does not help when the spectrum is flat (then ‖A‖_F² is
//!   spread over all eigenvalues and removing k of them changes little).
//!
//! The arithmetic is in f64 on the host ([`super::probe`]); the products go through the operator.

use super::Operator;
use super::probe::{HostProducts, dot, rademacher};
use crate::backend::Backend;
use crate::error::{Error, Result};

/// Which estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceMethod {
    /// Plain Hutchinson with Rademacher probes.
    Hutchinson,
    /// Hutch++ with the given number of products.
    Hutchpp,
    /// Σ of the top-k Ritz values + Hutchinson on the complement of S_k.
    Deflated,
}

impl TraceMethod {
    /// The method's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            TraceMethod::Hutchinson => "hutchinson",
            TraceMethod::Hutchpp => "hutchpp",
            TraceMethod::Deflated => "deflated",
        }
    }
}

/// A trace estimate with its evidence (the `trace` object of `spectrum --trace --json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TraceEstimate {
    pub method: TraceMethod,
    /// The estimate of tr A.
    pub estimate: f64,
    /// Its standard error: the sample standard deviation of the random part's per-probe values
    /// over √(probes) (NaN with fewer than 2 probes; 0 when the random part is exact).
    pub std_error: f64,
    /// Operator products (HVPs) spent.
    pub hvps: usize,
    /// Random probes in the estimate's random part.
    pub probes: usize,
    /// The part taken exactly: Σ of the deflated Ritz values, or tr(Qᵀ A Q) of Hutch++ (0 for
    /// Hutchinson).
    pub exact_part: f64,
    /// Dimension of the part taken exactly.
    pub exact_rank: usize,
}

/// Mean and standard error (sample standard deviation / √n; NaN for n < 2).
pub fn mean_and_std_error(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    if x.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = x.iter().sum::<f64>() / n;
    if x.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

fn check_probes(probes: usize, what: &str) -> Result<()> {
    if probes == 0 {
        return Err(Error::InvalidArgument(format!(
            "{what}: need at least 1 probe"
        )));
    }
    Ok(())
}

/// zᵀ A z for `probes` Rademacher probes (seeds `seed`, `seed + 1`, …), each first projected by
/// `perp` (rows of an orthonormal U: z ← z − Uᵀ U z) when given.
fn quadratic_forms<B: Backend, O: Operator<B>>(
    prod: &mut HostProducts<'_, B, O>,
    probes: usize,
    seed: u64,
    perp: Option<&[f64]>,
) -> Result<Vec<f64>> {
    let p = prod.dim();
    let mut z = Vec::with_capacity(probes * p);
    for i in 0..probes {
        let mut v = rademacher(p, seed.wrapping_add(i as u64));
        if let Some(u) = perp {
            project_out(u, p, &mut v);
        }
        z.extend(v);
    }
    let az = prod.apply_rows(&z)?;
    Ok(z.chunks(p)
        .zip(az.chunks(p))
        .map(|(a, b)| dot(a, b))
        .collect())
}

/// v ← v − Uᵀ U v for the rows of `u` (each `p` long, orthonormal).
fn project_out(u: &[f64], p: usize, v: &mut [f64]) {
    for row in u.chunks(p) {
        let c = dot(row, v);
        v.iter_mut().zip(row).for_each(|(x, r)| *x -= c * r);
    }
}

/// Hutchinson's estimate of tr A from `probes` Rademacher probes; `rows` products per operator
/// call (0: the backend's preferred block). Errors: no probes, the operator's.
pub fn hutchinson<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    probes: usize,
    seed: u64,
    rows: usize,
) -> Result<TraceEstimate> {
    check_probes(probes, "Hutchinson")?;
    let mut prod = HostProducts::new(b, op, rows);
    let q = quadratic_forms(&mut prod, probes, seed, None)?;
    let (estimate, std_error) = mean_and_std_error(&q);
    Ok(TraceEstimate {
        method: TraceMethod::Hutchinson,
        estimate,
        std_error,
        hvps: prod.products,
        probes,
        exact_part: 0.0,
        exact_rank: 0,
    })
}

/// The deflated estimate: Σ `values` (the Ritz values of the orthonormal rows `vectors`, k × dim,
/// host) + Hutchinson with `probes` probes on P⊥ A P⊥. Errors: no probes, `vectors` not k rows
/// of dim, the operator's.
pub fn deflated<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    (values, vectors): (&[f64], &[f64]),
    probes: usize,
    seed: u64,
    rows: usize,
) -> Result<TraceEstimate> {
    check_probes(probes, "deflated trace")?;
    let p = op.dim();
    if vectors.len() != values.len() * p {
        return Err(Error::Shape(format!(
            "deflated trace: {} vector values for {} eigenvalues of dimension {p}",
            vectors.len(),
            values.len()
        )));
    }
    let mut prod = HostProducts::new(b, op, rows);
    let q = quadratic_forms(&mut prod, probes, seed, Some(vectors))?;
    let (rest, std_error) = mean_and_std_error(&q);
    let exact: f64 = values.iter().sum();
    Ok(TraceEstimate {
        method: TraceMethod::Deflated,
        estimate: exact + rest,
        std_error,
        hvps: prod.products,
        probes,
        exact_part: exact,
        exact_rank: values.len(),
    })
}

/// Orthonormal rows spanning the rows of `x` (each `p` long): modified Gram–Schmidt, twice,
/// dropping rows whose remainder is below 1e-10 of their norm (a rank-deficient sketch).
pub fn orthonormal_rows(x: &[f64], p: usize) -> Vec<f64> {
    let mut q: Vec<f64> = Vec::with_capacity(x.len());
    for row in x.chunks(p) {
        let mut v = row.to_vec();
        let n0 = dot(&v, &v).sqrt();
        for _ in 0..2 {
            project_out(&q, p, &mut v);
        }
        let n = dot(&v, &v).sqrt();
        if n > 1e-10 * n0 && n > 0.0 {
            q.extend(v.iter().map(|x| x / n));
        }
    }
    q
}

/// Hutch++ (Meyer et al. 2021, Algorithm 1) with `hvps` products: ⌊hvps/3⌋ Rademacher sketch
/// columns S, Q = orth(A S), tr(Qᵀ A Q) exactly, and Hutchinson with ⌊hvps/3⌋ probes on
/// (I − QQᵀ) A (I − QQᵀ). Errors: fewer than 3 products, the operator's.
pub fn hutch_plus_plus<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    hvps: usize,
    seed: u64,
    rows: usize,
) -> Result<TraceEstimate> {
    let third = hvps / 3;
    check_probes(third, "Hutch++ (3 products at least)")?;
    let p = op.dim();
    let mut prod = HostProducts::new(b, op, rows);
    let mut s = Vec::with_capacity(third * p);
    for i in 0..third {
        s.extend(rademacher(p, seed.wrapping_add(0x5151_0000 + i as u64)));
    }
    let as_ = prod.apply_rows(&s)?;
    let q = orthonormal_rows(&as_, p);
    let aq = prod.apply_rows(&q)?;
    let exact: f64 = q.chunks(p).zip(aq.chunks(p)).map(|(a, b)| dot(a, b)).sum();
    let forms = quadratic_forms(&mut prod, third, seed, Some(&q))?;
    let (rest, std_error) = mean_and_std_error(&forms);
    Ok(TraceEstimate {
        method: TraceMethod::Hutchpp,
        estimate: exact + rest,
        std_error,
        hvps: prod.products,
        probes: third,
        exact_part: exact,
        exact_rank: q.len() / p.max(1),
    })
}
