//! The block HVP and the block eigensolver (issue 18): `Engine::hvp_block` row by row against
//! `Engine::hvp` (bit for bit on the CPU, cached and recomputed per chunk); block Davidson against
//! nalgebra's dense symmetric eigen on well-separated, clustered, repeated and indefinite spectra,
//! cold and warm, against single-vector Lanczos on a network's Hessian, in f32 and on the wgpu
//! backend (lavapipe in CI).

#![allow(clippy::needless_range_loop)]

mod common;
use common::*;
use subspace_lab::backend::{Activation, LossKind, prelude::*};
use subspace_lab::hessian::DenseOperator;
use subspace_lab::hessian::block::block_davidson;
use subspace_lab::hessian::lanczos::{EigResult, LanczosOptions, lanczos, random_vector};
use subspace_lab::nn::engine::{Cache, Engine};

fn opts(k: usize, tol: f64, block: usize) -> LanczosOptions {
    LanczosOptions {
        k,
        tol,
        block,
        ..LanczosOptions::default()
    }
}

/// Values against the dense reference; every returned pair a true eigenpair of A to its
/// reported residual (recomputed here); the vectors orthonormal.
#[allow(clippy::too_many_arguments)]
fn check_pairs<B: Backend>(
    name: &str,
    b: &B,
    r: &EigResult<B>,
    a: &[f64],
    n: usize,
    k: usize,
    tol: f64,
    value_tol: f64,
) {
    let (ref_vals, _) = dense_eigs(a, n);
    assert!(r.converged, "{name}: not converged ({:?})", r.warnings);
    let scale = ref_vals.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for i in 0..k {
        assert!(
            (r.values[i] - ref_vals[i]).abs() <= value_tol * scale,
            "{name}: λ{} = {} vs dense {} (all {:?} vs {:?})",
            i + 1,
            r.values[i],
            ref_vals[i],
            r.values,
            &ref_vals[..k + 1]
        );
    }
    let v = b.download(&r.vectors).unwrap();
    let ortho = 1e3 * b.precision().eps();
    for i in 0..k {
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
            res <= tol * scale * 1.01 + ortho * scale,
            "{name}: residual {i} = {res:e} (limit {:e})",
            tol * scale
        );
        assert!(
            (res - r.residuals[i]).abs() <= ortho * scale,
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
            assert!((d - want).abs() < ortho, "{name}: ⟨u{i}, u{j}⟩ = {d}");
        }
    }
}

fn dense_case(name: &str, lambdas: &[f64], k: usize, block: usize, seed: u64) -> usize {
    let n = lambdas.len();
    let a = sym_with_spectrum(lambdas, seed);
    let b = F64::new();
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let r = block_davidson(&b, &mut op, &opts(k, 1e-10, block), None).unwrap();
    check_pairs(name, &b, &r, &a, n, k, 1e-10, 1e-9);
    eprintln!("{name}: {} products", r.products);
    r.products
}

#[test]
fn well_separated_spectrum() {
    let l: Vec<f64> = (0..120).map(|i| 100.0 * 0.9f64.powi(i)).collect();
    dense_case("separated", &l, 6, 1, 1);
}

#[test]
fn clustered_spectrum() {
    // Top cluster 10, 9.999, 9.998 then a gap, then a bulk.
    let mut l = vec![10.0, 9.999, 9.998, 5.0, 4.999];
    l.extend((0..95).map(|i| 1.0 - 0.01 * i as f64));
    dense_case("clustered", &l, 5, 1, 2);
}

#[test]
fn repeated_eigenvalues_with_a_block_as_wide() {
    // λ = 7 three times, 3 twice: a start block of k ≥ 3 rows resolves every copy.
    let mut l = vec![7.0, 7.0, 7.0, 3.0, 3.0];
    l.extend((0..75).map(|i| 1.0 - 0.01 * i as f64));
    dense_case("repeated", &l, 5, 5, 3);
}

#[test]
fn indefinite_spectrum_returns_largest_algebraic() {
    // Large negative eigenvalues (|λ| above the top) must not be returned.
    let mut l = vec![4.0, 3.0, 2.5, -50.0, -40.0];
    l.extend((0..95).map(|i| 1.0 - 0.02 * i as f64));
    dense_case("indefinite", &l, 3, 1, 4);
}

#[test]
fn thick_restart_in_a_small_basis() {
    let l: Vec<f64> = (0..200).map(|i| 1.0 / (1.0 + i as f64)).collect();
    let n = l.len();
    let a = sym_with_spectrum(&l, 5);
    let b = F64::new();
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let o = LanczosOptions {
        max_basis: 12,
        ..opts(5, 1e-9, 1)
    };
    let r = block_davidson(&b, &mut op, &o, None).unwrap();
    check_pairs("restart", &b, &r, &a, n, 5, 1e-9, 1e-8);
}

/// Warm starts: from exact eigenvectors the solve ends after one block product (the cheap exit);
/// from the eigenvectors of a nearby operator it agrees with dense eigen and with a warm Lanczos.
#[test]
fn warm_starts_exit_early_and_agree() {
    let k = 4;
    let mut l = vec![20.0, 15.0, 12.0, 11.0, 6.0];
    l.extend((0..95).map(|i| 5.0 - 0.05 * i as f64));
    let n = l.len();
    let a = sym_with_spectrum(&l, 6);
    let b = F64::new();
    let mut op = DenseOperator::new(b.clone(), n, &a).unwrap();
    let cold = lanczos(&b, &mut op, &opts(k, 1e-11, 1), None, &mut |_| {}).unwrap();
    let same = block_davidson(&b, &mut op, &opts(k, 1e-6, 1), Some((&cold.vectors, k))).unwrap();
    assert_eq!(same.products, k, "exact warm vectors: one block product");
    check_pairs("warm, same operator", &b, &same, &a, n, k, 1e-6, 1e-9);
    // A nearby operator: A + εE.
    let e = sym_with_spectrum(&random_vector(n, 9), 7);
    let a2: Vec<f64> = a.iter().zip(&e).map(|(x, y)| x + 0.05 * y).collect();
    let mut op2 = DenseOperator::new(b.clone(), n, &a2).unwrap();
    let warm = block_davidson(&b, &mut op2, &opts(k, 1e-8, 1), Some((&cold.vectors, k))).unwrap();
    check_pairs("warm, nearby operator", &b, &warm, &a2, n, k, 1e-8, 1e-7);
    let lz = lanczos(
        &b,
        &mut op2,
        &opts(k, 1e-8, 1),
        Some((&cold.vectors, k)),
        &mut |_| {},
    )
    .unwrap();
    for i in 0..k {
        assert!((warm.values[i] - lz.values[i]).abs() < 1e-6, "λ{i}");
    }
    eprintln!(
        "warm nearby: block {} products, Lanczos {}",
        warm.products, lz.products
    );
}

/// A workspace reused across solves (cold, warm on another operator, cold on a third) and
/// recycled result vectors change nothing: every value and vector equals a fresh solve's.
#[test]
fn a_reused_block_workspace_changes_nothing() {
    use subspace_lab::hessian::block::{BlockWork, block_davidson_with};
    let n = 90;
    let k = 4;
    let b = F64::new();
    let ops: Vec<Vec<f64>> = (0..3)
        .map(|s| {
            let l: Vec<f64> = (0..n)
                .map(|i| 9.0 * 0.93f64.powi(i as i32) - s as f64)
                .collect();
            sym_with_spectrum(&l, 20 + s)
        })
        .collect();
    let o = opts(k, 1e-9, 1);
    let mut work = BlockWork::default();
    let mut prev: Option<Vec<f64>> = None;
    for (i, a) in ops.iter().enumerate() {
        let mut op = DenseOperator::new(b.clone(), n, a).unwrap();
        let warm_host = if i == 1 { prev.clone() } else { None };
        let warm = warm_host.as_ref().map(|w| b.upload(w).unwrap());
        let w = warm.as_ref().map(|w| (w, k));
        let reused = block_davidson_with(&b, &mut op, &o, w, &mut work).unwrap();
        let fresh = block_davidson(&b, &mut op, &o, w).unwrap();
        assert_eq!(reused.values, fresh.values, "solve {i}");
        assert_eq!(reused.products, fresh.products, "solve {i}");
        let v = b.download(&reused.vectors).unwrap();
        assert_eq!(v, b.download(&fresh.vectors).unwrap(), "solve {i}");
        prev = Some(v);
        work.recycle(reused.vectors);
    }
}

#[test]
fn bad_arguments_are_errors() {
    let b = F64::new();
    let a = sym_with_spectrum(&[3.0, 2.0, 1.0], 1);
    let mut op = DenseOperator::new(b.clone(), 3, &a).unwrap();
    assert!(block_davidson(&b, &mut op, &opts(0, 1e-6, 1), None).is_err());
    assert!(block_davidson(&b, &mut op, &opts(4, 1e-6, 1), None).is_err());
    assert!(block_davidson(&b, &mut op, &opts(1, 0.0, 1), None).is_err());
    let short = b.zeros(2).unwrap();
    assert!(block_davidson(&b, &mut op, &opts(1, 1e-6, 1), Some((&short, 1))).is_err());
    // The whole space: exact, certified.
    let r = block_davidson(&b, &mut op, &opts(3, 1e-12, 1), None).unwrap();
    assert!(r.certified && r.converged);
    assert!((r.values[0] - 3.0).abs() < 1e-12 && (r.values[2] - 1.0).abs() < 1e-12);
}

/// A budget too small to converge: reported, not an error.
#[test]
fn an_exhausted_budget_is_reported() {
    let l: Vec<f64> = (0..300).map(|i| 1.0 / (1.0 + 0.01 * i as f64)).collect();
    let a = sym_with_spectrum(&l, 8);
    let b = F64::new();
    let mut op = DenseOperator::new(b.clone(), 300, &a).unwrap();
    let o = LanczosOptions {
        max_products: 12,
        ..opts(4, 1e-12, 1)
    };
    let r = block_davidson(&b, &mut op, &o, None).unwrap();
    assert!(!r.converged && r.products <= 12 && !r.warnings.is_empty());
}

/// Each row of a block HVP is the single HVP of that row, bit for bit on the CPU f64 backend,
/// with the activations cached and recomputed per chunk, one direction at a time (the CPU's
/// width) and stacked (a GPU's).
#[test]
fn block_hvp_rows_equal_single_hvps() {
    let (spec, theta, data) = tiny(&[6, 7, 5, 3], Activation::Tanh, 23, 4);
    let b = F64::new();
    let p = theta.len();
    let rows = 4;
    let v = b.upload(&random_vector(rows * p, 3)).unwrap();
    // The CPU's own block width (1: one direction at a time) and the GPU's (stacked).
    for (cache, stack) in [
        (Cache::All, 1),
        (Cache::All, usize::MAX),
        (Cache::PerChunk, usize::MAX),
    ] {
        let mut e =
            Engine::with_cache(b.clone(), spec.clone(), LossKind::Mse, &data, 5, cache).unwrap();
        e.set_max_block(stack);
        e.set_params_host(&theta).unwrap();
        let mut block = b.zeros(rows * p + 3).unwrap();
        e.hvp_block(&v, 0, rows, &mut block, 3).unwrap();
        assert_eq!(e.hvp_count(), rows);
        let block = b.download(&block).unwrap();
        for r in 0..rows {
            let mut one = b.zeros(p).unwrap();
            e.hvp(&v, r * p, &mut one, 0).unwrap();
            let one = b.download(&one).unwrap();
            assert_eq!(
                &block[3 + r * p..3 + (r + 1) * p],
                &one[..],
                "{cache:?} row {r}"
            );
        }
        assert!(
            e.hvp_block(&v, 1, rows, &mut b.zeros(rows * p).unwrap(), 0)
                .is_err()
        );
    }
}

/// The block HVP of every layer kind (convolution, pooling, ReLU; embedding, attention,
/// LayerNorm, residual adds, mean pooling) equals the single HVPs bit for bit on the CPU f64
/// backend, with a chunk that splits the data (the stacked R-tensors of a shorter last chunk).
#[test]
fn block_hvp_rows_equal_single_hvps_on_every_model() {
    use subspace_lab::data::dataset::Dataset;
    use subspace_lab::nn::cnn::CnnSpec;
    use subspace_lab::nn::model::ModelSpec;
    use subspace_lab::nn::transformer::TransformerSpec;
    let b = F64::new();
    let n = 11;
    let cnn: ModelSpec = CnnSpec::new([2, 4, 4], vec![3, 2], Activation::Relu, 3)
        .unwrap()
        .into();
    let images = Dataset::new(
        32,
        3,
        random_vector(n * 32, 7),
        (0..n).map(|r| (r % 3) as u8).collect(),
    )
    .unwrap();
    let tr: ModelSpec = TransformerSpec::new(12, 9, 8, 2, 2, Activation::Gelu, true, 3)
        .unwrap()
        .into();
    let tokens = Dataset::new(
        9,
        3,
        (0..n)
            .flat_map(|r| (0..9).map(move |q| ((r * 5 + q * 3) % 12) as f64))
            .collect(),
        (0..n).map(|r| (r % 3) as u8).collect(),
    )
    .unwrap();
    for (spec, data, loss) in [(cnn, images, LossKind::Mse), (tr, tokens, LossKind::Ce)] {
        let p = spec.num_params();
        let theta: Vec<f64> = spec
            .init(1)
            .iter()
            .zip(random_vector(p, 9))
            .map(|(a, b)| a + 0.3 * b)
            .collect();
        let rows = 3;
        let v = b.upload(&random_vector(rows * p, 4)).unwrap();
        let mut e = Engine::new(b.clone(), spec.clone(), loss, &data, 4).unwrap();
        // Stacked as on a GPU (the CPU's own width is 1).
        e.set_max_block(usize::MAX);
        e.set_params_host(&theta).unwrap();
        let mut block = b.zeros(rows * p).unwrap();
        e.hvp_block(&v, 0, rows, &mut block, 0).unwrap();
        let block = b.download(&block).unwrap();
        for r in 0..rows {
            let mut one = b.zeros(p).unwrap();
            e.hvp(&v, r * p, &mut one, 0).unwrap();
            let one = b.download(&one).unwrap();
            assert!(one.iter().any(|&x| x != 0.0));
            assert_eq!(
                &block[r * p..(r + 1) * p],
                &one[..],
                "{} row {r}",
                spec.describe()
            );
        }
    }
}

/// The Hessian of a network: block Davidson (cold, then warm after a parameter step) against
/// the certified single-vector Lanczos, in f64 and f32.
#[test]
fn network_hessian_agrees_with_lanczos() {
    let (spec, theta, data) = tiny(&[8, 10, 6, 3], Activation::Tanh, 40, 2);
    let k = 3;
    for f32_ in [false, true] {
        let (vals_block, vals_lz) = if f32_ {
            run_net(F32::new(), &spec, &theta, &data, k, 1e-4)
        } else {
            run_net(F64::new(), &spec, &theta, &data, k, 1e-9)
        };
        let tol = if f32_ { 1e-3 } else { 1e-7 };
        for i in 0..k {
            assert!(
                (vals_block[i] - vals_lz[i]).abs() <= tol * vals_lz[0].abs(),
                "f32 {f32_}: λ{i} {} vs Lanczos {}",
                vals_block[i],
                vals_lz[i]
            );
        }
    }
}

fn run_net<B: Backend + Clone>(
    b: B,
    spec: &subspace_lab::nn::mlp::MlpSpec,
    theta: &[f64],
    data: &subspace_lab::data::dataset::Dataset,
    k: usize,
    tol: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut e = engine(b.clone(), spec, LossKind::Mse, data, 0, theta);
    let o = opts(k, tol, 1);
    let cold = block_davidson(&b, &mut e, &o, None).unwrap();
    assert!(cold.converged);
    // A small step, then warm.
    let t2: Vec<f64> = theta
        .iter()
        .zip(random_vector(theta.len(), 5))
        .map(|(x, r)| x + 1e-3 * r)
        .collect();
    e.set_params_host(&t2).unwrap();
    let warm = block_davidson(&b, &mut e, &o, Some((&cold.vectors, k))).unwrap();
    assert!(warm.converged, "{:?}", warm.warnings);
    let lz = lanczos(&b, &mut e, &o, None, &mut |_| {}).unwrap();
    eprintln!(
        "{}: warm block {} products, cold Lanczos {}",
        b.name(),
        warm.products,
        lz.products
    );
    (warm.values, lz.values)
}

gpu_test!(wgpu_block_davidson_matches_dense);
/// The wgpu backend (lavapipe in CI) against dense eigen: the same solver over its GEMMs.
fn wgpu_block_davidson_matches_dense(g: GpuBackend) {
    let mut l = vec![9.0, 8.0, 8.0, 6.0, 5.5];
    l.extend((0..95).map(|i| 4.0 - 0.04 * i as f64));
    let n = l.len();
    let a = sym_with_spectrum(&l, 11);
    let mut op = DenseOperator::new(g.clone(), n, &a).unwrap();
    let r = block_davidson(&g, &mut op, &opts(4, 1e-4, 4), None).unwrap();
    check_pairs("wgpu", &g, &r, &a, n, 4, 1e-4, 1e-5);
    let warm = block_davidson(&g, &mut op, &opts(4, 1e-4, 1), Some((&r.vectors, 4))).unwrap();
    assert_eq!(
        warm.products, 4,
        "converged warm vectors: one block product"
    );
}
