//! Lanczos against nalgebra's dense symmetric eigen-solver on synthetic spectra (well separated,
//! clustered, repeated, indefinite) and on a tiny network's Hessian; warm starts; power
//! iteration; the subspace helpers.

#![allow(clippy::needless_range_loop)] // index loops read closer to the math here

mod common;
use common::*;
use subspace_lab::backend::{Activation, LossKind, prelude::*};
use subspace_lab::hessian::lanczos::{LanczosOptions, Verify, lanczos};
use subspace_lab::hessian::power::power_iteration;
use subspace_lab::hessian::subspace::Subspace;
use subspace_lab::hessian::{DenseOperator, dense_matrix};

fn opts(k: usize, tol: f64, block: usize) -> LanczosOptions {
    LanczosOptions {
        k,
        tol,
        block,
        ..LanczosOptions::default()
    }
}

/// Check values against the dense reference and that every returned pair is a true eigenpair
/// of A to the reported residual.
fn check(name: &str, a: &[f64], n: usize, o: &LanczosOptions, value_tol: f64) -> usize {
    let b = F64::new();
    let (ref_vals, _) = dense_eigs(a, n);
    let mut op = DenseOperator::new(b.clone(), n, a).unwrap();
    let r = lanczos(&b, &mut op, o, None, &mut |_| {}).unwrap();
    assert!(r.converged, "{name}: not converged");
    assert!(r.certified, "{name}: not certified");
    for w in &r.warnings {
        eprintln!("{name}: warning: {w}");
    }
    let scale = ref_vals.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for i in 0..o.k {
        assert!(
            (r.values[i] - ref_vals[i]).abs() <= value_tol * scale,
            "{name}: λ{} = {} vs dense {}",
            i + 1,
            r.values[i],
            ref_vals[i]
        );
    }
    // Recompute residuals independently from the returned vectors.
    let v = b.download(&r.vectors).unwrap();
    for i in 0..o.k {
        let u = &v[i * n..(i + 1) * n];
        let au: Vec<f64> = (0..n)
            .map(|row| (0..n).map(|c| a[row * n + c] * u[c]).sum())
            .collect();
        let res: f64 = au
            .iter()
            .zip(u)
            .map(|(x, y)| (x - r.values[i] * y).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            res <= o.tol * scale * 1.01 + 1e-12 * scale,
            "{name}: residual {i} = {res:e}"
        );
        assert!(
            (res - r.residuals[i]).abs() <= 1e-9 * scale,
            "{name}: reported residual {} vs {res}",
            r.residuals[i]
        );
        for j in 0..=i {
            let d: f64 = u
                .iter()
                .zip(&v[j * n..(j + 1) * n])
                .map(|(x, y)| x * y)
                .sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((d - want).abs() < 1e-10, "{name}: ⟨u{i}, u{j}⟩ = {d}");
        }
    }
    r.products
}

#[test]
fn well_separated_spectrum() {
    let n = 150;
    let lam: Vec<f64> = (0..n).map(|i| 100.0 * 0.9f64.powi(i as i32)).collect();
    let a = sym_with_spectrum(&lam, 1);
    let hvps = check("separated", &a, n, &opts(10, 1e-10, 1), 1e-12);
    eprintln!("well separated, n = 150, k = 10, tol 1e-10: {hvps} HVPs");
    assert!(hvps < 120, "{hvps} products");
}

#[test]
fn clustered_spectrum() {
    let n = 160;
    let mut lam: Vec<f64> = (0..n).map(|i| 5.0 * (i as f64 / n as f64) - 1.0).collect();
    for (i, l) in lam.iter_mut().take(6).enumerate() {
        *l = 10.0 + 1e-3 * i as f64;
    }
    let a = sym_with_spectrum(&lam, 2);
    check("clustered", &a, n, &opts(6, 1e-10, 1), 1e-12);
}

#[test]
fn repeated_eigenvalues_need_a_block() {
    let n = 140;
    let mut lam: Vec<f64> = (0..n).map(|i| 3.0 * (i as f64 / n as f64)).collect();
    lam[..3].fill(8.0);
    lam[3..5].fill(6.0);
    let a = sym_with_spectrum(&lam, 3);
    check("repeated", &a, n, &opts(6, 1e-10, 3), 1e-12);
}

#[test]
fn indefinite_spectrum_returns_largest_algebraic() {
    let n = 120;
    let mut lam: Vec<f64> = (0..n).map(|i| -2.0 + 4.0 * (i as f64 / n as f64)).collect();
    lam[0] = -50.0; // largest magnitude, but not among the top k
    lam[1] = -30.0;
    lam[2] = 9.0;
    lam[3] = 7.5;
    lam[4] = 6.0;
    let a = sym_with_spectrum(&lam, 4);
    check("indefinite", &a, n, &opts(4, 1e-10, 1), 1e-12);
}

#[test]
fn thick_restart_small_basis() {
    let n = 200;
    let lam: Vec<f64> = (0..n).map(|i| 1.0 / (1.0 + i as f64).sqrt()).collect();
    let a = sym_with_spectrum(&lam, 5);
    let o = LanczosOptions {
        max_basis: 16,
        ..opts(5, 1e-9, 1)
    };
    check("restarted", &a, n, &o, 1e-11);
}

#[test]
fn warm_start_is_cheaper_and_agrees() {
    let n = 200;
    let lam: Vec<f64> = (0..n).map(|i| 50.0 * 0.95f64.powi(i as i32)).collect();
    let a = sym_with_spectrum(&lam, 6);
    let b = F64::new();
    let o = opts(8, 1e-8, 1);
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let cold = lanczos(&b, &mut op, &o, None, &mut |_| {}).unwrap();
    // A nearby operator: the previous step's vectors are a good start.
    let pert = sym_with_spectrum(
        &(0..n).map(|i| 1e-4 * (i as f64).sin()).collect::<Vec<_>>(),
        7,
    );
    let a2: Vec<f64> = a.iter().zip(&pert).map(|(x, y)| x + y).collect();
    let mut op2 = DenseOperator::new(b.clone(), n, &a2).unwrap();
    let warm = lanczos(&b, &mut op2, &o, Some((&cold.vectors, 8)), &mut |_| {}).unwrap();
    let cold2 = lanczos(&b, &mut op2, &o, None, &mut |_| {}).unwrap();

    eprintln!(
        "n = 200, k = 8, tol 1e-8: cold {} HVPs, warm {} HVPs",
        cold2.products, warm.products
    );
    assert!(warm.converged && cold2.converged);
    for i in 0..8 {
        assert!((warm.values[i] - cold2.values[i]).abs() < 1e-9 * 50.0);
    }
    // The warm start must save at least a quarter of the products.
    assert!(
        warm.products * 4 < cold2.products * 3,
        "warm {} vs cold {} products",
        warm.products,
        cold2.products
    );
}

#[test]
fn power_iteration_reference() {
    let n = 80;
    let lam: Vec<f64> = (0..n).map(|i| 20.0 * 0.7f64.powi(i as i32)).collect();
    let a = sym_with_spectrum(&lam, 8);
    let b = F64::new();
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let r = power_iteration(&b, &mut op, 3, 1e-9, 2000, 1).unwrap();
    assert!(r.converged);
    for i in 0..3 {
        assert!(
            (r.values[i] - lam[i]).abs() < 1e-8 * 20.0,
            "{} vs {}",
            r.values[i],
            lam[i]
        );
    }
}

#[test]
fn tiny_network_hessian_matches_dense_eigen() {
    let (spec, theta, data) = tiny(&[6, 8, 5, 4], Activation::Tanh, 40, 3);
    let b = F64::new();
    let mut e = engine(b.clone(), &spec, LossKind::Mse, &data, 16, &theta);
    let p = theta.len();
    let h = dense_matrix(&b, &mut e).unwrap();
    let (ref_vals, _) = dense_eigs(&h, p);
    let r = lanczos(&b, &mut e, &opts(5, 1e-10, 1), None, &mut |_| {}).unwrap();
    eprintln!(
        "tiny network, p = {p}, k = 5, tol 1e-10: {} HVPs",
        r.products
    );
    assert!(r.converged);
    for i in 0..5 {
        assert!(
            (r.values[i] - ref_vals[i]).abs() < 1e-10 * ref_vals[0].abs(),
            "λ{i}: {} vs {}",
            r.values[i],
            ref_vals[i]
        );
    }
    // The same through power iteration (top eigenvalues of this Hessian are positive).
    let pw = power_iteration(&b, &mut e, 2, 1e-8, 5000, 2).unwrap();
    assert!((pw.values[0] - ref_vals[0]).abs() < 1e-7 * ref_vals[0].abs());
}

/// f32 against f64 on a real-sized tiny net: top eigenvalues agree to 1e-4 relative.
#[test]
fn f32_spectrum_agrees_with_f64() {
    let (spec, theta, data) = tiny(&[40, 30, 20, 10], Activation::Tanh, 200, 11);
    let mut e64 = engine(F64::new(), &spec, LossKind::Mse, &data, 0, &theta);
    let mut e32 = engine(F32::new(), &spec, LossKind::Mse, &data, 0, &theta);
    let r64 = lanczos(&F64::new(), &mut e64, &opts(5, 1e-8, 1), None, &mut |_| {}).unwrap();
    let r32 = lanczos(&F32::new(), &mut e32, &opts(5, 1e-4, 1), None, &mut |_| {}).unwrap();
    assert!(r64.converged && r32.converged);
    for i in 0..5 {
        let rel = (r32.values[i] - r64.values[i]).abs() / r64.values[0].abs();
        assert!(
            rel < 1e-4,
            "λ{i}: f32 {} vs f64 {} ({rel:e})",
            r32.values[i],
            r64.values[i]
        );
    }
}

#[test]
fn bad_arguments_are_errors() {
    let a = sym_with_spectrum(&[3.0, 2.0, 1.0], 1);
    let b = F64::new();
    let mut op = DenseOperator::new(b.clone(), 3, &a).unwrap();
    for o in [
        opts(0, 1e-6, 1),
        opts(4, 1e-6, 1),
        opts(2, 0.0, 1),
        opts(2, f64::NAN, 1),
    ] {
        assert!(lanczos(&b, &mut op, &o, None, &mut |_| {}).is_err());
    }
    // k = n: the whole space, exact.
    let r = lanczos(&b, &mut op, &opts(3, 1e-10, 1), None, &mut |_| {}).unwrap();
    assert!((r.values[0] - 3.0).abs() < 1e-12 && (r.values[2] - 1.0).abs() < 1e-12);
}

#[test]
fn subspace_projections_and_chi() {
    let n = 50;
    let lam: Vec<f64> = (0..n).map(|i| 10.0 - i as f64 * 0.1).collect();
    let a = sym_with_spectrum(&lam, 9);
    let b = F64::new();
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let r = lanczos(&b, &mut op, &opts(3, 1e-10, 1), None, &mut |_| {}).unwrap();
    let vecs = b.download(&r.vectors).unwrap();
    let mut s = Subspace::new(&b, r.vectors, 3, n).unwrap();
    assert_eq!(s.chi(&b, &b.zeros(n).unwrap()).unwrap(), 0.0);
    let u1 = b.upload(&vecs[..n]).unwrap();
    assert!((s.chi(&b, &u1).unwrap() - 1.0).abs() < 1e-12);
    // v = u1 + w with w ⊥ S: P v = u1, P⊥ v = w, χ = 1/√2 when ‖w‖ = 1.
    let mut w = subspace_lab::hessian::lanczos::random_vector(n, 4);
    for j in 0..3 {
        let u = &vecs[j * n..(j + 1) * n];
        let d: f64 = u.iter().zip(&w).map(|(x, y)| x * y).sum();
        w.iter_mut().zip(u).for_each(|(x, y)| *x -= d * y);
    }
    let nw = w.iter().map(|x| x * x).sum::<f64>().sqrt();
    w.iter_mut().for_each(|x| *x /= nw);
    let v: Vec<f64> = vecs[..n].iter().zip(&w).map(|(a, b)| a + b).collect();
    let vb = b.upload(&v).unwrap();
    let mut pv = b.zeros(n).unwrap();
    s.project(&b, &vb, &mut pv, false).unwrap();
    assert!(rel_err(&b.download(&pv).unwrap(), &vecs[..n]) < 1e-12);
    s.project(&b, &vb, &mut pv, true).unwrap();
    assert!(rel_err(&b.download(&pv).unwrap(), &w) < 1e-12);
    assert!((s.chi(&b, &vb).unwrap() - 0.5f64.sqrt()).abs() < 1e-12);
}

// ── Repeated and clustered eigenvalues with the default options (block 1): the solver must find
// every copy (issue 15, item 1). A single-vector Krylov space holds one copy of a repeated
// eigenvalue only; the certification phase has to find the others.

/// Default options but k and tol: block 1, verification on.
fn default_opts(k: usize, tol: f64) -> LanczosOptions {
    LanczosOptions {
        k,
        tol,
        ..LanczosOptions::default()
    }
}

#[test]
fn repeated_eigenvalues_with_the_default_block() {
    let n = 120;
    let mut lam: Vec<f64> = (0..n).map(|i| 3.0 * (i as f64 / n as f64)).collect();
    lam[..4].fill(8.0);
    lam[4..6].fill(6.0);
    let a = sym_with_spectrum(&lam, 21);
    let hvps = check("repeated ×4 ×2", &a, n, &default_opts(7, 1e-10), 1e-10);
    eprintln!("repeated ×4 ×2 over a bulk, n = 120, k = 7: {hvps} HVPs");
    // Few distinct eigenvalues (a low-rank operator, like a network's Hessian at θ = 0): the
    // Krylov space of one vector is invariant after four products.
    let mut lam = vec![0.0; n];
    lam[..4].fill(8.0);
    lam[4..6].fill(6.0);
    lam[6..9].fill(3.0);
    let a = sym_with_spectrum(&lam, 25);
    let hvps = check("low rank, repeated", &a, n, &default_opts(8, 1e-10), 1e-10);
    eprintln!("low rank 8 ×4, 6 ×2, 3 ×3, n = 120, k = 8: {hvps} HVPs");
}

#[test]
fn tight_cluster_at_the_top_with_the_default_block() {
    // Four eigenvalues within 7.5e-7 relative at the top, a pair below, then a bulk.
    let n = 150;
    let mut lam: Vec<f64> = (0..n).map(|i| 2.0 * (i as f64 / n as f64)).collect();
    for (j, l) in lam.iter_mut().take(4).enumerate() {
        *l = 10.0 * (1.0 + 2.5e-7 * j as f64);
    }
    lam[4] = 7.0;
    lam[5] = 7.0 * (1.0 + 1e-7);
    let a = sym_with_spectrum(&lam, 22);
    // At the default tolerance any unit vector of the cluster passes as an eigenvector.
    check("cluster 1e-6", &a, n, &default_opts(6, 1e-6), 1e-6);
    check(
        "cluster 1e-6, tol 1e-10",
        &a,
        n,
        &default_opts(6, 1e-10),
        1e-10,
    );
    // The same top over an exactly zero bulk: the search stops after a handful of products.
    lam[6..].fill(0.0);
    let a = sym_with_spectrum(&lam, 26);
    check(
        "cluster 1e-6, zero bulk",
        &a,
        n,
        &default_opts(6, 1e-6),
        1e-6,
    );
    check(
        "cluster 1e-6, zero bulk, k 7",
        &a,
        n,
        &default_opts(7, 1e-3),
        1e-3,
    );
}

#[test]
fn indefinite_with_a_repeated_top_returns_largest_algebraic() {
    let n = 100;
    let mut lam: Vec<f64> = (0..n).map(|i| -1.0 + 2.0 * (i as f64 / n as f64)).collect();
    lam[0] = -50.0;
    lam[1] = -50.0;
    lam[2..5].fill(9.0);
    lam[5] = 4.0;
    lam[6..].fill(0.0);
    let a = sym_with_spectrum(&lam, 23);
    check("indefinite repeated", &a, n, &default_opts(5, 1e-10), 1e-10);
}

/// A warm start from the sum of the vectors of a repeated eigenvalue holds one copy only.
#[test]
fn warm_start_on_repeated_eigenvalues() {
    let n = 120;
    let mut lam: Vec<f64> = (0..n).map(|i| 3.0 * (i as f64 / n as f64)).collect();
    lam[..3].fill(8.0);
    lam[3..5].fill(6.0);
    lam[6..].fill(0.5);
    let a = sym_with_spectrum(&lam, 24);
    let (ref_vals, _) = dense_eigs(&a, n);
    let b = F64::new();
    let o = default_opts(6, 1e-10);
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let cold = lanczos(&b, &mut op, &o, None, &mut |_| {}).unwrap();
    let warm = lanczos(&b, &mut op, &o, Some((&cold.vectors, 6)), &mut |_| {}).unwrap();
    for (name, r) in [("cold", &cold), ("warm", &warm)] {
        assert!(r.converged, "{name}: not converged");
        assert!(r.certified, "{name}: not certified");
        for i in 0..6 {
            assert!(
                (r.values[i] - ref_vals[i]).abs() < 1e-9 * 8.0,
                "{name}: λ{} = {} vs dense {}",
                i + 1,
                r.values[i],
                ref_vals[i]
            );
        }
    }
    eprintln!(
        "repeated, cold {} HVPs, warm on the same operator {} HVPs",
        cold.products, warm.products
    );
}

/// Top-k of a network's Hessian through the engine (block 1, default options) against the dense
/// Hessian's eigenvalues; returns the products spent.
fn net_vs_dense(name: &str, widths: &[usize], theta: &[f64], n: usize, k: usize) -> usize {
    let spec = subspace_lab::nn::mlp::MlpSpec::new(widths.to_vec(), Activation::Tanh).unwrap();
    let data =
        subspace_lab::data::dataset::Dataset::synthetic(n, widths[0], *widths.last().unwrap(), 31)
            .unwrap();
    let b = F64::new();
    let mut e = engine(b.clone(), &spec, LossKind::Mse, &data, 0, theta);
    let p = theta.len();
    let h = dense_matrix(&b, &mut e).unwrap();
    let (ref_vals, _) = dense_eigs(&h, p);
    let r = lanczos(&b, &mut e, &default_opts(k, 1e-10), None, &mut |_| {}).unwrap();
    assert!(r.converged, "{name}: not converged");
    assert!(r.certified, "{name}: not certified");
    for w in &r.warnings {
        eprintln!("{name}: warning: {w}");
    }
    let scale = ref_vals[0].abs().max(ref_vals[p - 1].abs());
    for i in 0..k {
        assert!(
            (r.values[i] - ref_vals[i]).abs() < 1e-9 * scale,
            "{name}: λ{} = {} vs dense {} (Lanczos {:?}, dense {:?})",
            i + 1,
            r.values[i],
            ref_vals[i],
            &r.values,
            &ref_vals[..k + 2]
        );
    }
    eprintln!("{name}: {} HVPs for k = {k}", r.products);
    r.products
}

/// Every tensor zero: the Hessian is low-rank with eigenvalues of high multiplicity (the
/// output-bias block is the identity: 1.0 × outputs).
#[test]
fn zero_network_hessian_matches_dense_eigen() {
    let widths = [6, 4, 4, 5];
    let p = subspace_lab::nn::mlp::MlpSpec::new(widths.to_vec(), Activation::Tanh)
        .unwrap()
        .num_params();
    net_vs_dense("zero net", &widths, &vec![0.0; p], 30, 8);
}

/// Permutation-symmetric hidden units (each layer's units share incoming and outgoing weights):
/// the Hessian commutes with the permutations, so its eigenvalues come in repeated groups.
#[test]
fn symmetric_init_hessian_matches_dense_eigen() {
    let widths = [5, 4, 4, 3];
    let spec = subspace_lab::nn::mlp::MlpSpec::new(widths.to_vec(), Activation::Tanh).unwrap();
    let mut theta = vec![0.0; spec.num_params()];
    let r = subspace_lab::hessian::lanczos::random_vector(64, 77);
    let ls = spec.layers();
    // Layer 1: every hidden unit has the same incoming weights and bias.
    for o in 0..4 {
        for i in 0..5 {
            theta[ls[0].w_off + o * 5 + i] = 0.8 * r[i];
        }
        theta[ls[0].b_off + o] = 0.3 * r[5];
    }
    // Layer 2: one shared weight (incoming and outgoing weights equal), one shared bias.
    for x in &mut theta[ls[1].w_off..ls[1].w_off + 16] {
        *x = 0.7 * r[6];
    }
    for x in &mut theta[ls[1].b_off..ls[1].b_off + 4] {
        *x = 0.2 * r[7];
    }
    // Output layer: each output's weights are equal across the hidden units.
    for o in 0..3 {
        for j in 0..4 {
            theta[ls[2].w_off + o * 4 + j] = r[8 + o];
        }
        theta[ls[2].b_off + o] = 0.1 * r[11 + o];
    }
    net_vs_dense("symmetric init", &widths, &theta, 30, 10);
}

/// A training-like warm start: the previous vectors of a repeated eigenvalue, slightly off (so
/// the Krylov space never becomes invariant), at a loose tolerance. The sum start keeps one
/// combination of the copies; the warm vectors not reproduced trigger the verification.
#[test]
fn noisy_warm_start_on_repeated_eigenvalues() {
    let n = 150;
    let mut lam: Vec<f64> = (0..n).map(|i| 3.0 * (i as f64 / n as f64)).collect();
    lam[..3].fill(8.0);
    lam[3..5].fill(6.0);
    let a = sym_with_spectrum(&lam, 27);
    let (ref_vals, _) = dense_eigs(&a, n);
    let b = F64::new();
    let k = 5;
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let cold = lanczos(&b, &mut op, &default_opts(k, 1e-10), None, &mut |_| {}).unwrap();
    assert!(cold.certified);
    let noise = subspace_lab::hessian::lanczos::random_vector(k * n, 99);
    let w: Vec<f64> = b
        .download(&cold.vectors)
        .unwrap()
        .iter()
        .zip(&noise)
        .map(|(v, e)| v + 1e-5 * e)
        .collect();
    let w = b.upload(&w).unwrap();
    let o = default_opts(k, 1e-4);
    let warm = lanczos(&b, &mut op, &o, Some((&w, k)), &mut |_| {}).unwrap();
    assert!(warm.converged && warm.certified);
    for i in 0..k {
        assert!(
            (warm.values[i] - ref_vals[i]).abs() < 1e-4 * 8.0,
            "warm: λ{} = {} vs dense {} ({:?})",
            i + 1,
            warm.values[i],
            ref_vals[i],
            warm.values
        );
    }
    // Without verification the same solve says what it cannot vouch for.
    let never = LanczosOptions {
        verify: Verify::Never,
        ..o.clone()
    };
    let quick = lanczos(&b, &mut op, &never, Some((&w, k)), &mut |_| {}).unwrap();
    assert!(!quick.certified);
    let missed = (0..k).any(|i| (quick.values[i] - ref_vals[i]).abs() > 1e-4 * 8.0);
    assert!(
        !missed || quick.warnings.iter().any(|w| w.contains("not verified")),
        "a missed copy without a warning: {:?}",
        quick.values
    );
    eprintln!(
        "noisy warm start, repeated: verified {} HVPs ({:?}), unverified {} HVPs ({:?}) {:?}",
        warm.products, warm.values, quick.products, quick.values, quick.warnings
    );
}

/// Verification is cut short by the product budget: not converged, with a warning.
#[test]
fn budget_exhausted_while_verifying_is_reported() {
    let n = 120;
    let mut lam: Vec<f64> = (0..n).map(|i| 3.0 * (i as f64 / n as f64)).collect();
    lam[..4].fill(8.0);
    let a = sym_with_spectrum(&lam, 28);
    let b = F64::new();
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let full = lanczos(&b, &mut op, &default_opts(4, 1e-10), None, &mut |_| {}).unwrap();
    assert!(full.certified);
    let o = LanczosOptions {
        max_products: full.products - 3,
        ..default_opts(4, 1e-10)
    };
    let r = lanczos(&b, &mut op, &o, None, &mut |_| {}).unwrap();
    assert!(!r.converged && !r.certified);
    assert!(
        r.warnings.iter().any(|w| w.contains("budget")),
        "{:?}",
        r.warnings
    );
}

/// A workspace reused across solves (every step of a run) gives the results of fresh buffers bit
/// for bit — the second solve runs on the first one's buffers. A failed solve (NaN) and one of
/// another size before them leave nothing that changes the result.
#[test]
fn a_reused_workspace_changes_nothing() {
    use subspace_lab::hessian::lanczos::{LanczosWork, lanczos_with};
    let b = F64::new();
    let l: Vec<f64> = (0..80).map(|i| 10.0 * 0.93f64.powi(i)).collect();
    let a = sym_with_spectrum(&l, 21);
    let mut op = DenseOperator::new(b.clone(), 80, &a).unwrap();
    let o = opts(4, 1e-9, 1);
    let fresh = lanczos(&b, &mut op, &o, None, &mut |_| {}).unwrap();
    let mut work = LanczosWork::default();
    // A NaN operator first: the error leaves whatever it wrote behind.
    let bad: Vec<f64> = a.iter().map(|x| x * f64::NAN).collect();
    let mut nan_op = DenseOperator::new(b.clone(), 80, &bad).unwrap();
    assert!(lanczos_with(&b, &mut nan_op, &o, None, &mut |_| {}, &mut work).is_err());
    let other = opts(6, 1e-9, 1);
    lanczos_with(&b, &mut op, &other, None, &mut |_| {}, &mut work).unwrap();
    for _ in 0..2 {
        let r = lanczos_with(&b, &mut op, &o, None, &mut |_| {}, &mut work).unwrap();
        assert_eq!(r.values, fresh.values);
        assert_eq!(r.products, fresh.products);
        assert_eq!(
            b.download(&r.vectors).unwrap(),
            b.download(&fresh.vectors).unwrap()
        );
    }
}

/// Riders come back with the solve's last read: the returned vectors' coefficients on a vector
/// and its squared norm (equal to what the host computes from the returned vectors), and a
/// carried range as it is; a solve without riders brings none.
#[test]
fn riders_bring_the_projection_and_the_carried_values() {
    use subspace_lab::hessian::lanczos::{LanczosWork, Riders, lanczos_riding};
    let n = 120;
    let lam: Vec<f64> = (0..n).map(|i| 30.0 * 0.9f64.powi(i as i32) - 1.0).collect();
    let a = sym_with_spectrum(&lam, 11);
    let b = F64::new();
    let o = opts(4, 1e-9, 1);
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let v: Vec<f64> = (0..n).map(|i| ((i * 7 % 13) as f64) - 6.0).collect();
    let vb = b.upload(&v).unwrap();
    let carry = b.upload(&[9.0, 1.5, -2.0, 7.25, 4.0]).unwrap();
    let riders = Riders {
        project: Some(&vb),
        carry: Some((&carry, 1, 3)),
    };
    let mut work = LanczosWork::default();
    let mut run = |warm: Option<(&Vec<f64>, usize)>, work: &mut LanczosWork<F64>| {
        lanczos_riding(&b, &mut op, &o, warm, &mut |_| {}, work, &riders).unwrap()
    };
    let cold = run(None, &mut work);
    let warm = run(Some((&cold.vectors, 4)), &mut work);
    for r in [&cold, &warm] {
        let got = r.ridden.as_ref().expect("riders were given");
        let y = b.download(&r.vectors).unwrap();
        let want: Vec<f64> = (0..4)
            .map(|i| (0..n).map(|j| y[i * n + j] * v[j]).sum())
            .collect();
        assert_eq!(got.coefs.len(), 4);
        for i in 0..4 {
            assert!(
                (got.coefs[i] - want[i]).abs() <= 1e-12 * 40.0,
                "{got:?} vs {want:?}"
            );
        }
        let vv: f64 = v.iter().map(|x| x * x).sum();
        assert!((got.norm2 - vv).abs() <= 1e-12 * vv);
        assert_eq!(got.carried, vec![1.5, -2.0, 7.25]);
    }
    assert!(
        warm.products < cold.products,
        "{} vs {}",
        warm.products,
        cold.products
    );
    let plain = lanczos(&b, &mut op, &o, None, &mut |_| {}).unwrap();
    assert!(plain.ridden.is_none());
    assert_eq!(
        plain.values, cold.values,
        "riders change nothing in the solve"
    );
}

/// A warm start of zero rows starts afresh from random vectors (the zero sum is found at the
/// first read, without a read of its own) and agrees with a cold solve; a warm row with a NaN is
/// an error naming the start vector; more warm rows than k is an argument error.
#[test]
fn degenerate_warm_starts() {
    let n = 80;
    let lam: Vec<f64> = (0..n).map(|i| 10.0 - 0.1 * i as f64).collect();
    let a = sym_with_spectrum(&lam, 3);
    let b = F64::new();
    let o = opts(3, 1e-9, 1);
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let zeros = b.zeros(3 * n).unwrap();
    let z = lanczos(&b, &mut op, &o, Some((&zeros, 3)), &mut |_| {}).unwrap();
    assert!(z.converged && z.certified);
    for i in 0..3 {
        assert!(
            (z.values[i] - lam[i]).abs() <= 1e-8 * 10.0,
            "{:?}",
            z.values
        );
    }
    let mut nan = vec![0.5; 3 * n];
    nan[n + 4] = f64::NAN;
    let nan = b.upload(&nan).unwrap();
    let e = lanczos(&b, &mut op, &o, Some((&nan, 3)), &mut |_| {})
        .err()
        .expect("a NaN warm row is an error");
    assert!(e.to_string().contains("start vector is not finite"), "{e}");
    let four = b.zeros(4 * n).unwrap();
    let e = lanczos(&b, &mut op, &o, Some((&four, 4)), &mut |_| {})
        .err()
        .expect("4 warm rows for k = 3");
    assert!(e.to_string().contains("at most k"), "{e}");
}
