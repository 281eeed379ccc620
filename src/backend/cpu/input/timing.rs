//! Timings of the sparse input products (printed, not asserted).

use super::*;

/// Not a check: `cargo test --release --lib input::timing -- --ignored --nocapture` prints
/// the sparse and dense first-layer products' times on MNIST-like data (1000×784, 19 %).
#[test]
#[ignore]
fn print_times() {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let cols: usize = std::env::var("COLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(784);
    let (rows, n) = (1000, 200);
    let base = -0.4242;
    let x: Vec<f64> = (0..rows * cols)
        .map(|_| {
            if rng.random::<f64>() < 0.19 {
                base + rng.random::<f64>() * 3.0
            } else {
                base
            }
        })
        .collect();
    let sp = CpuInput::<f32>::new(&x, rows, cols, true).unwrap();
    let de = CpuInput::<f32>::new(&x, rows, cols, false).unwrap();
    let b: Vec<f32> = (0..n * cols).map(|_| rng.random::<f32>() - 0.5).collect();
    let g: Vec<f32> = (0..rows * n).map(|_| rng.random::<f32>() - 0.5).collect();
    let dense_nt = |xs: &[f32], b: &[f32], out: &mut [f32]| unsafe {
        matrixmultiply::sgemm(
            rows,
            cols,
            n,
            1.0,
            xs.as_ptr(),
            cols as isize,
            1,
            b.as_ptr(),
            1,
            cols as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        )
    };
    let dense_tn = |g: &[f32], xs: &[f32], out: &mut [f32]| unsafe {
        matrixmultiply::sgemm(
            n,
            rows,
            cols,
            1.0,
            g.as_ptr(),
            1,
            n as isize,
            xs.as_ptr(),
            cols as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            cols as isize,
            1,
        )
    };
    let mut o1 = vec![0.0f32; rows * n];
    let mut o2 = vec![0.0f32; n * cols];
    for (name, inp) in [("sparse", &sp), ("dense", &de)] {
        let reps = 20;
        let t = std::time::Instant::now();
        for _ in 0..reps {
            inp.gemm_nt(
                0,
                Gemm::input_nt(rows, n, cols, 1.0, 0.0),
                &b,
                &mut o1,
                1,
                dense_nt,
            )
            .unwrap();
        }
        let nt = t.elapsed().as_secs_f64() / reps as f64;
        let t = std::time::Instant::now();
        for _ in 0..reps {
            inp.gemm_tn(
                &g,
                0,
                Gemm::input_tn(rows, n, cols, 1.0, 0.0),
                &mut o2,
                1,
                dense_tn,
            )
            .unwrap();
        }
        let tn = t.elapsed().as_secs_f64() / reps as f64;
        println!("{name}: X·Bᵀ {:.2} ms, Gᵀ·X {:.2} ms", nt * 1e3, tn * 1e3);
        let nnz = (sp.density() * (rows * cols) as f64) as usize;
        println!(
            "  ns per entry and 8 lanes: nt {:.2}, tn {:.2}",
            nt * 1e9 / (nnz * n / 8) as f64,
            tn * 1e9 / (nnz * n / 8) as f64
        );
    }
}
