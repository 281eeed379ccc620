//! Stochastic Lanczos quadrature on a tiny network's Hessian against its dense matrix: each
//! probe's quadrature is the Gauss rule (exact for x, x², x³), the mean over probes estimates
//! tr(f(H))/p within its known statistical error, and the nodes converge to the dense eigenvalues.
//! Thresholds fixed before the numbers were seen; each test runs in about a second in release.
#![allow(clippy::needless_range_loop)]
mod common;
use common::*;
use subspace_lab::backend::{Activation, LossKind};
use subspace_lab::hessian::dense_matrix;
use subspace_lab::hessian::probe::rademacher;
use subspace_lab::hessian::slq::{DensityOptions, SlqOptions, slq};

fn matvec(a: &[f64], n: usize, x: &[f64]) -> Vec<f64> {
    (0..n)
        .map(|i| (0..n).map(|j| a[i * n + j] * x[j]).sum())
        .collect()
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    c
}

/// The tiny network of tests/lanczos.rs (p = 125) and its dense Hessian.
fn tiny_hessian() -> (
    subspace_lab::nn::mlp::Engine<F64>,
    Vec<f64>,
    usize,
    Vec<f64>,
) {
    let (spec, theta, data) = tiny(&[6, 8, 5, 4], Activation::Tanh, 40, 3);
    let b = F64::new();
    let mut e = engine(b.clone(), &spec, LossKind::Mse, &data, 16, &theta);
    let p = theta.len();
    let h = dense_matrix(&b, &mut e).unwrap();
    let (vals, _) = dense_eigs(&h, p);
    (e, h, p, vals)
}

#[test]
fn quadrature_is_gauss_per_probe_and_estimates_the_normalised_traces() {
    let (mut e, h, p, vals) = tiny_hessian();
    let opts = SlqOptions {
        probes: 100,
        steps: 20,
        seed: 40,
        group: 0,
    };
    let r = slq(&F64::new(), &mut e, &opts, &mut |_, _| {}).unwrap();
    assert_eq!(r.probes.len(), 100);
    assert!(r.hvps <= 100 * 20);
    let h2 = matmul(&h, &h, p);
    let h3 = matmul(&h2, &h, p);
    let norm = vals[0].abs().max(vals[p - 1].abs());
    for (i, q) in r.probes.iter().enumerate() {
        let wsum: f64 = q.weights.iter().sum();
        assert!((wsum - 1.0).abs() < 1e-12, "probe {i}: weights sum {wsum}");
        // v = z/√p, the probe's start vector.
        let z = rademacher(p, 40 + i as u64);
        let v: Vec<f64> = z.iter().map(|x| x / (p as f64).sqrt()).collect();
        for (j, m) in [&h, &h2, &h3].iter().enumerate() {
            let exact: f64 = v.iter().zip(matvec(m, p, &v)).map(|(a, b)| a * b).sum();
            let quad: f64 = q
                .nodes
                .iter()
                .zip(&q.weights)
                .map(|(x, w)| w * x.powi(j as i32 + 1))
                .sum();
            assert!(
                (quad - exact).abs() <= 1e-9 * norm.powi(j as i32 + 1),
                "probe {i}, x^{}: quadrature {quad} vs vᵀH^jv {exact}",
                j + 1
            );
        }
    }
    // The mean over n_v probes: |error| ≤ 4 standard deviations of the Rademacher estimate,
    // √(2‖f(H)‖_F²/n_v)/p.
    for (j, m) in [&h, &h2, &h3].iter().enumerate() {
        let exact: f64 = (0..p).map(|i| m[i * p + i]).sum::<f64>() / p as f64;
        let (est, se) = r.moment(|x| x.powi(j as i32 + 1));
        let fro: f64 = m.iter().map(|x| x * x).sum::<f64>().sqrt();
        let bound = 4.0 * (2.0 * fro * fro / 100.0).sqrt() / p as f64;
        eprintln!(
            "tr(H^{})/p: dense {exact:.6e}, SLQ {est:.6e} ± {se:.1e} (bound {bound:.1e})",
            j + 1
        );
        assert!(
            (est - exact).abs() <= bound,
            "x^{}: {est} vs {exact}",
            j + 1
        );
    }
    let (tr, _) = r.trace();
    assert!((tr / p as f64 - r.moment(|x| x).0).abs() < 1e-12 * tr.abs().max(1.0));
}

#[test]
fn nodes_converge_to_the_dense_eigenvalues() {
    let (mut e, _, p, vals) = tiny_hessian();
    let norm = vals[0].abs().max(vals[p - 1].abs());
    let mut last = f64::INFINITY;
    for steps in [10, 20, 40] {
        let opts = SlqOptions {
            probes: 1,
            steps,
            seed: 3,
            group: 0,
        };
        let r = slq(&F64::new(), &mut e, &opts, &mut |_, _| {}).unwrap();
        let (lo, hi) = r.range();
        let err = (hi - vals[0]).abs().max((lo - vals[p - 1]).abs());
        eprintln!("{steps} steps: extreme nodes {lo:.6e} .. {hi:.6e}, error {err:.2e}");
        assert!(
            err <= last * (1.0 + 1e-12) + 1e-14 * norm,
            "{steps} steps: {err} after {last}"
        );
        last = err;
        if steps == 40 {
            assert!(err <= 1e-6 * norm, "40 steps: extreme error {err}");
        }
    }
    // The whole space (or an invariant subspace before it): every dense eigenvalue is a node.
    let opts = SlqOptions {
        probes: 1,
        steps: p,
        seed: 3,
        group: 0,
    };
    let r = slq(&F64::new(), &mut e, &opts, &mut |_, _| {}).unwrap();
    let nodes = &r.probes[0].nodes;
    for (i, l) in vals.iter().enumerate() {
        let d = nodes
            .iter()
            .map(|x| (x - l).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(d <= 1e-8 * norm, "λ{i} = {l}: nearest node {d} away");
    }
}

#[test]
fn density_integrates_to_one_and_shows_the_top_eigenvalue() {
    let (mut e, _, _, vals) = tiny_hessian();
    let r = slq(
        &F64::new(),
        &mut e,
        &SlqOptions {
            probes: 4,
            steps: 30,
            seed: 0,
            group: 2,
        },
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(r.hvps, 4 * 30);
    let d = r.density(&DensityOptions::default());
    let step = d.grid[1] - d.grid[0];
    let integral: f64 = d
        .density
        .windows(2)
        .map(|w| 0.5 * (w[0] + w[1]) * step)
        .sum();
    assert!((integral - 1.0).abs() < 1e-9, "integral {integral}");
    assert!(
        d.sigma >= 2.0 * step * 0.999,
        "σ {} vs spacing {step}",
        d.sigma
    );
    // A bump at λ_max: the density there exceeds its value 6σ further out.
    let at = |t: f64| {
        let i = ((t - d.grid[0]) / step).round() as usize;
        d.density[i.min(d.grid.len() - 1)]
    };
    assert!(at(vals[0]) > 0.0);
    assert!(d.grid[d.grid.len() - 1] >= vals[0]);
    assert!(at(vals[0]) > 10.0 * at((vals[0] + 6.0 * d.sigma).min(d.grid[d.grid.len() - 1])));
}

#[test]
fn bad_arguments_are_errors() {
    let (mut e, _, _, _) = tiny_hessian();
    for (probes, steps) in [(0, 10), (3, 0)] {
        let o = SlqOptions {
            probes,
            steps,
            ..SlqOptions::default()
        };
        assert!(slq(&F64::new(), &mut e, &o, &mut |_, _| {}).is_err());
    }
}
