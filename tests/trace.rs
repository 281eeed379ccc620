//! Trace estimators on explicit matrices through the operator interface: Hutchinson's error
//! falls as 1/√N and matches its known variance, Hutch++'s as 1/N where theory says so (a PSD
//! matrix with eigenvalues 1/i), the reported standard errors are honest, and deflating the top
//! eigenpairs of a low-rank-plus-noise matrix removes most of the error.
//!
//! Statistical tests with a fixed seed set; the thresholds were fixed before the numbers were
//! seen. Each test takes well under a second in release.
#![allow(clippy::needless_range_loop)]
mod common;
use common::*;
use subspace_lab::hessian::DenseOperator;
use subspace_lab::hessian::trace::{TraceEstimate, deflated, hutch_plus_plus, hutchinson};

const N: usize = 300;
const SEEDS: u64 = 30;

fn trace(a: &[f64], n: usize) -> f64 {
    (0..n).map(|i| a[i * n + i]).sum()
}

/// 2(‖A‖_F² − Σ a_ii²): the variance of one Rademacher sample zᵀAz.
fn rademacher_variance(a: &[f64], n: usize) -> f64 {
    let f2: f64 = a.iter().map(|x| x * x).sum();
    let d2: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum();
    2.0 * (f2 - d2)
}

/// RMS error over the seed set and the mean squared reported standard error.
fn rms_over_seeds(
    a: &[f64],
    n: usize,
    est: impl Fn(&mut DenseOperator<F64>, u64) -> TraceEstimate,
) -> (f64, f64) {
    let tr = trace(a, n);
    let mut op = DenseOperator::new(F64::new(), n, a).unwrap();
    let (mut se, mut reported) = (0.0, 0.0);
    for s in 0..SEEDS {
        let e = est(&mut op, 1000 * s + 17);
        se += (e.estimate - tr).powi(2);
        reported += e.std_error.powi(2);
    }
    ((se / SEEDS as f64).sqrt(), (reported / SEEDS as f64).sqrt())
}

/// Least-squares slope of log(err) against log(n).
fn slope(ns: &[usize], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = ns.iter().map(|&n| (n as f64).ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let (mx, my) = (
        xs.iter().sum::<f64>() / xs.len() as f64,
        ys.iter().sum::<f64>() / ys.len() as f64,
    );
    let num: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    num / den
}

fn power_law() -> Vec<f64> {
    let lambdas: Vec<f64> = (1..=N).map(|i| 1.0 / i as f64).collect();
    sym_with_spectrum(&lambdas, 5)
}

#[test]
fn hutchinson_error_falls_as_one_over_root_n_with_its_known_variance() {
    let a = power_law();
    let var = rademacher_variance(&a, N);
    let ns = [6, 12, 24, 48, 96, 192];
    let mut errs = Vec::new();
    for &probes in &ns {
        let (rms, reported) = rms_over_seeds(&a, N, |op, s| {
            let e = hutchinson(&F64::new(), op, probes, s, 0).unwrap();
            assert_eq!(e.hvps, probes);
            e
        });
        let theory = (var / probes as f64).sqrt();
        eprintln!(
            "Hutchinson N = {probes}: RMS error {rms:.4e}, theory {theory:.4e}, reported {reported:.4e}"
        );
        assert!(
            (0.6..1.5).contains(&(rms / theory)),
            "N = {probes}: RMS error {rms} vs theory {theory}"
        );
        assert!(
            (0.5..2.0).contains(&(reported / rms)),
            "N = {probes}: reported standard error {reported} vs RMS error {rms}"
        );
        errs.push(rms);
    }
    let s = slope(&ns, &errs);
    eprintln!("Hutchinson log-log slope {s:.3}");
    assert!((-0.65..=-0.35).contains(&s), "slope {s}, expected −1/2");
}

#[test]
fn hutchpp_error_falls_as_one_over_n_on_a_decaying_spectrum() {
    // λ_i = 1/i: ‖A − A_k‖_F ≈ 1/√k, so Hutch++'s error ≈ ‖A − A_k‖_F/√k ∝ 1/m (Meyer et al.,
    // Theorem 1.1), while Hutchinson's stays ∝ ‖A‖_F/√m.
    let a = power_law();
    let ms = [12, 24, 48, 96, 192];
    let mut errs = Vec::new();
    for &m in &ms {
        let (rms, _) = rms_over_seeds(&a, N, |op, s| {
            let e = hutch_plus_plus(&F64::new(), op, m, s, 0).unwrap();
            assert!(e.hvps <= m, "{} products for a budget of {m}", e.hvps);
            e
        });
        eprintln!("Hutch++ m = {m}: RMS error {rms:.4e}");
        errs.push(rms);
    }
    let s = slope(&ms, &errs);
    eprintln!("Hutch++ log-log slope {s:.3}");
    assert!((-1.35..=-0.75).contains(&s), "slope {s}, expected −1");
    let (plain, _) = rms_over_seeds(&a, N, |op, s| {
        hutchinson(&F64::new(), op, 192, s, 0).unwrap()
    });
    assert!(
        errs[4] < plain / 3.0,
        "Hutch++ at 192 products {} vs Hutchinson {plain}",
        errs[4]
    );
}

/// Ten outliers of 100 over a bulk in [−0.5, 1]: the shape of the paper's Hessians.
fn low_rank_plus_noise() -> (Vec<f64>, Vec<f64>) {
    let bulk = subspace_lab::hessian::lanczos::random_vector(N - 10, 9);
    let mut lambdas: Vec<f64> = (0..10).map(|i| 100.0 + i as f64).collect();
    lambdas.extend(bulk.iter().map(|x| 0.25 + 0.75 * x));
    (sym_with_spectrum(&lambdas, 7), lambdas)
}

#[test]
fn deflation_and_hutchpp_remove_the_outliers_error() {
    let (a, _) = low_rank_plus_noise();
    let (vals, vecs) = dense_eigs(&a, N);
    let k = 10;
    let mut u = Vec::with_capacity(k * N);
    for i in 0..k {
        u.extend(vecs.column(i).iter().copied());
    }
    let top = &vals[..k];
    let probes = 60;
    let (plain, _) = rms_over_seeds(&a, N, |op, s| {
        hutchinson(&F64::new(), op, probes, s, 0).unwrap()
    });
    let (defl, reported) = rms_over_seeds(&a, N, |op, s| {
        let e = deflated(&F64::new(), op, (top, &u), probes, s, 0).unwrap();
        assert_eq!((e.exact_rank, e.hvps), (k, probes));
        e
    });
    let (pp, _) = rms_over_seeds(&a, N, |op, s| {
        hutch_plus_plus(&F64::new(), op, probes, s, 0).unwrap()
    });
    eprintln!(
        "low rank + noise, {probes} products: Hutchinson {plain:.3e}, deflated {defl:.3e} (reported {reported:.3e}), Hutch++ {pp:.3e}"
    );
    assert!(defl < plain / 5.0, "deflated {defl} vs plain {plain}");
    assert!(pp < plain / 5.0, "Hutch++ {pp} vs plain {plain}");
    assert!((0.5..2.0).contains(&(reported / defl)));
}

#[test]
fn bad_arguments_are_errors() {
    let (a, _) = low_rank_plus_noise();
    let mut op = DenseOperator::new(F64::new(), N, &a).unwrap();
    assert!(hutchinson(&F64::new(), &mut op, 0, 0, 0).is_err());
    assert!(hutch_plus_plus(&F64::new(), &mut op, 2, 0, 0).is_err());
    assert!(deflated(&F64::new(), &mut op, (&[1.0], &[0.0; 3]), 4, 0, 0).is_err());
}
