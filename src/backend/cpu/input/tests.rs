//! The sparse input products against dense ones.

use super::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// rows×cols with about `fill` of the entries off a common value (like normalised MNIST).
fn mnist_like(rows: usize, cols: usize, fill: f64, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let base = (0.0 - 0.1307) / 0.3081;
    (0..rows * cols)
        .map(|_| {
            if rng.random::<f64>() < fill {
                base + rng.random::<f64>() * 3.2
            } else {
                base
            }
        })
        .collect()
}

fn dense_nt(x: &[f64], r0: usize, c: usize, cols: usize, n: usize, b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; c * n];
    for r in 0..c {
        for o in 0..n {
            out[r * n + o] = (0..cols)
                .map(|j| x[(r0 + r) * cols + j] * b[o * cols + j])
                .sum();
        }
    }
    out
}

fn dense_tn(x: &[f64], r0: usize, c: usize, cols: usize, n: usize, g: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; n * cols];
    for o in 0..n {
        for j in 0..cols {
            out[o * cols + j] = (0..c).map(|r| g[r * n + o] * x[(r0 + r) * cols + j]).sum();
        }
    }
    out
}

fn unused<T>(_: &[T], _: &[T], _: &mut [T]) {
    panic!("the sparse form must not fall back to the dense product");
}

/// Sparse products against a naive dense sum: several shapes (n below, at and across the
/// 64-lane block), row windows, α/β, and one or three threads.
#[test]
fn sparse_products_match_dense_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for &(rows, cols, n) in &[
        (37, 50, 3),
        (90, 784 / 8, 64),
        (120, 33, 130),
        (64, 20, 200),
    ] {
        let x = mnist_like(rows, cols, 0.2, rows as u64);
        let fast = CpuInput::<f64>::new(&x, rows, cols, true).unwrap();
        assert!(
            fast.is_sparse(),
            "{rows}×{cols}: density {}",
            fast.density()
        );
        assert!((fast.density() - 0.2).abs() < 0.05);
        let portable = fast.clone().portable();
        for (inp, &(r0, c)) in [&fast, &portable]
            .into_iter()
            .flat_map(|i| {
                [(0, rows), (5, rows / 2), (rows - 1, 1)]
                    .map(|rc| (i, rc))
                    .to_vec()
            })
            .collect::<Vec<_>>()
            .iter()
            .map(|(i, rc)| (*i, rc))
        {
            let b: Vec<f64> = (0..n * cols).map(|_| rng.random::<f64>() - 0.5).collect();
            let g: Vec<f64> = (0..c * n).map(|_| rng.random::<f64>() - 0.5).collect();
            let want_nt = dense_nt(&x, r0, c, cols, n, &b);
            let want_tn = dense_tn(&x, r0, c, cols, n, &g);
            for &(alpha, beta) in &[(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)] {
                for threads in [1, 3] {
                    let prior: Vec<f64> = (0..c * n).map(|i| i as f64 * 0.01).collect();
                    let mut out = prior.clone();
                    inp.gemm_nt(
                        r0,
                        Gemm::input_nt(c, n, cols, alpha, beta),
                        &b,
                        &mut out,
                        threads,
                        unused,
                    )
                    .unwrap();
                    for i in 0..c * n {
                        let want = alpha * want_nt[i] + beta * prior[i];
                        assert!(
                            (out[i] - want).abs() < 1e-12 * (1.0 + want.abs()),
                            "nt {rows}×{cols}·{n} rows {r0}+{c}: {} vs {want}",
                            out[i]
                        );
                    }
                    let prior: Vec<f64> = (0..n * cols).map(|i| i as f64 * 0.01).collect();
                    let mut out = prior.clone();
                    inp.gemm_tn(
                        &g,
                        r0,
                        Gemm::input_tn(c, n, cols, alpha, beta),
                        &mut out,
                        threads,
                        unused,
                    )
                    .unwrap();
                    for i in 0..n * cols {
                        let want = alpha * want_tn[i] + beta * prior[i];
                        assert!(
                            (out[i] - want).abs() < 1e-12 * (1.0 + want.abs()),
                            "tn {rows}×{cols}·{n} rows {r0}+{c}: {} vs {want}",
                            out[i]
                        );
                    }
                }
            }
        }
    }
}

/// f32: within f32 round-off of the f64 result, and identical for one and two threads.
#[test]
fn sparse_products_f32_close_and_thread_independent() {
    let (rows, cols, n) = (300, 784, 200);
    let x = mnist_like(rows, cols, 0.19, 3);
    let inp = CpuInput::<f32>::new(&x, rows, cols, true).unwrap();
    assert!(inp.is_sparse());
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let b: Vec<f64> = (0..n * cols)
        .map(|_| (rng.random::<f64>() - 0.5) * 0.1)
        .collect();
    let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
    let want = dense_nt(&x, 100, 150, cols, n, &b);
    let mut one = vec![0.0f32; 150 * n];
    let mut two = vec![0.0f32; 150 * n];
    inp.gemm_nt(
        100,
        Gemm::input_nt(150, n, cols, 1.0, 0.0),
        &b32,
        &mut one,
        1,
        unused,
    )
    .unwrap();
    inp.gemm_nt(
        100,
        Gemm::input_nt(150, n, cols, 1.0, 0.0),
        &b32,
        &mut two,
        2,
        unused,
    )
    .unwrap();
    assert_eq!(one, two);
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (a, w) in one.iter().zip(&want) {
        assert!((*a as f64 - w).abs() < 1e-5 * scale, "{a} vs {w}");
    }
    let g: Vec<f32> = (0..150 * n).map(|_| rng.random::<f32>() - 0.5).collect();
    let g64: Vec<f64> = g.iter().map(|&v| v as f64).collect();
    let want = dense_tn(&x, 100, 150, cols, n, &g64);
    let mut one = vec![0.0f32; n * cols];
    let mut two = vec![0.0f32; n * cols];
    inp.gemm_tn(
        &g,
        100,
        Gemm::input_tn(150, n, cols, 1.0, 0.0),
        &mut one,
        1,
        unused,
    )
    .unwrap();
    inp.gemm_tn(
        &g,
        100,
        Gemm::input_tn(150, n, cols, 1.0, 0.0),
        &mut two,
        2,
        unused,
    )
    .unwrap();
    assert_eq!(one, two);
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (a, w) in one.iter().zip(&want) {
        assert!((*a as f64 - w).abs() < 1e-5 * scale, "{a} vs {w}");
    }
}

#[test]
fn dense_data_stays_dense_and_shapes_are_checked() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x: Vec<f64> = (0..40 * 30).map(|_| rng.random::<f64>()).collect();
    let inp = CpuInput::<f64>::new(&x, 40, 30, true).unwrap();
    assert!(!inp.is_sparse());
    assert_eq!(inp.density(), 1.0);
    let sparse = mnist_like(40, 30, 0.1, 2);
    assert!(
        !CpuInput::<f64>::new(&sparse, 40, 30, false)
            .unwrap()
            .is_sparse()
    );
    // 60 % off the common value: above the cut, dense.
    let denser = mnist_like(40, 30, 0.6, 2);
    assert!(
        !CpuInput::<f64>::new(&denser, 40, 30, true)
            .unwrap()
            .is_sparse()
    );
    assert!(CpuInput::<f64>::new(&x, 41, 30, true).is_err());
    let inp = CpuInput::<f64>::new(&sparse, 40, 30, true).unwrap();
    let mut out = vec![0.0; 5 * 4];
    let b = vec![0.0; 4 * 30];
    assert!(
        inp.gemm_nt(
            38,
            Gemm::input_nt(5, 4, 30, 1.0, 0.0),
            &b,
            &mut out,
            1,
            unused
        )
        .is_err()
    );
    assert!(
        inp.gemm_nt(
            0,
            Gemm::input_nt(5, 4, 30, 1.0, 0.0),
            &b[1..],
            &mut out,
            1,
            unused
        )
        .is_err()
    );
}
