//! Lanczos against nalgebra's dense symmetric eigen-solver on synthetic spectra (well separated,
//! clustered, repeated, indefinite) and on a tiny network's Hessian; warm starts; power
//! iteration; the subspace helpers.

#![allow(clippy::needless_range_loop)] // index loops read closer to the math here

mod common;
use common::*;
use subspace_lab::backend::{Activation, Backend, LossKind};
use subspace_lab::hessian::lanczos::{LanczosOptions, lanczos};
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
