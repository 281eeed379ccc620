//! Helpers shared by the integration tests.
#![allow(dead_code)]

use subspace_lab::backend::cpu::CpuBackend;
use subspace_lab::backend::{Activation, Backend, LossKind};
use subspace_lab::data::dataset::Dataset;
use subspace_lab::nn::mlp::{Engine, MlpSpec};

pub type F64 = CpuBackend<f64>;

pub use subspace_lab::backend::gpu::GpuBackend;

/// Declares GPU tests: the one place that says how a GPU test gets its device (as wgpu's
/// `#[gpu_test]` and candle's `test_device!` do). Each name is a `fn name(g: GpuBackend)` of the
/// calling module; `gpu_test!(name)` registers it as the test `name::on_gpu`, called with the
/// test binary's shared backend ([`gpu`]); `gpu_test!(own name)` with a backend of its own
/// ([`open_gpu`]: its transfer counters see only that test's traffic). Without an adapter the
/// test says so and passes, unless `SUBSPACE_LAB_REQUIRE_GPU` is set (CI): then it fails.
#[allow(unused_macros)] // test binaries without GPU tests
macro_rules! gpu_test {
    ($name:ident) => {
        $crate::common::gpu_test!(@on $crate::common::gpu, $name);
    };
    (own $name:ident) => {
        $crate::common::gpu_test!(@on $crate::common::open_gpu, $name);
    };
    (@on $open:path, $name:ident) => {
        mod $name {
            #[test]
            fn on_gpu() {
                $crate::common::run_on_gpu($open, super::$name);
            }
        }
    };
}
#[allow(unused_imports)] // test binaries without GPU tests
pub(crate) use gpu_test;

/// Run `test` on the backend `open` gives; none: a skip, or a failure where CI requires a GPU
/// (decided in [`open_gpu`]).
pub fn run_on_gpu(open: fn() -> Option<GpuBackend>, test: fn(GpuBackend)) {
    if let Some(g) = open() {
        test(g);
    }
}

/// A wgpu backend of its own (lavapipe in CI; its transfer counters see only this test's
/// traffic), or None — the test skips — when no adapter opens, unless `SUBSPACE_LAB_REQUIRE_GPU`
/// is set, as in CI: then it panics (the test fails).
pub fn open_gpu() -> Option<GpuBackend> {
    use subspace_lab::backend::gpu::GpuOptions;
    match GpuBackend::new(GpuOptions {
        allow_software: true,
    }) {
        Ok(g) => Some(g),
        Err(e) => {
            assert!(
                std::env::var_os("SUBSPACE_LAB_REQUIRE_GPU").is_none(),
                "SUBSPACE_LAB_REQUIRE_GPU is set but no adapter opened: {e}"
            );
            eprintln!("SKIP: no GPU adapter: {e}");
            None
        }
    }
}

/// One wgpu backend shared by a test binary's tests ([`open_gpu`], opened once).
pub fn gpu() -> Option<GpuBackend> {
    static G: std::sync::OnceLock<Option<GpuBackend>> = std::sync::OnceLock::new();
    G.get_or_init(|| {
        let g = open_gpu();
        if let Some(g) = &g {
            eprintln!("GPU tests on {}", g.adapter_description());
        }
        g
    })
    .clone()
}
pub type F32 = CpuBackend<f32>;

/// A tiny net on random data, with θ drawn by the PyTorch-style init (scaled up so that the
/// curvature terms matter).
pub fn tiny(
    widths: &[usize],
    act: Activation,
    n: usize,
    seed: u64,
) -> (MlpSpec, Vec<f64>, Dataset) {
    let spec = MlpSpec::new(widths.to_vec(), act).unwrap();
    let theta: Vec<f64> = spec.init(seed).iter().map(|x| 2.0 * x).collect();
    let data = Dataset::synthetic(n, widths[0], *widths.last().unwrap(), seed + 100).unwrap();
    (spec, theta, data)
}

pub fn engine<B: Backend + Clone>(
    b: B,
    spec: &MlpSpec,
    loss: LossKind,
    data: &Dataset,
    chunk: usize,
    theta: &[f64],
) -> Engine<B> {
    let mut e = Engine::new(b, spec.clone(), loss, data, chunk).unwrap();
    e.set_params_host(theta).unwrap();
    e
}

pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-300);
    num / den
}

/// Random symmetric matrix Q diag(λ) Qᵀ with a random orthogonal Q (QR of a Gaussian matrix).
pub fn sym_with_spectrum(lambdas: &[f64], seed: u64) -> Vec<f64> {
    let n = lambdas.len();
    let g = Dataset::synthetic(n, n, 1, seed).unwrap().x;
    let m = nalgebra::DMatrix::from_row_slice(n, n, &g);
    let q = m.qr().q();
    let d = nalgebra::DMatrix::from_diagonal(&nalgebra::DVector::from_row_slice(lambdas));
    let a = &q * d * q.transpose();
    let a = (&a + a.transpose()) * 0.5;
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = a[(i, j)];
        }
    }
    out
}

/// Eigenvalues of a dense symmetric matrix, largest first (nalgebra, sorted here).
pub fn dense_eigs(a: &[f64], n: usize) -> (Vec<f64>, nalgebra::DMatrix<f64>) {
    let m = nalgebra::DMatrix::from_row_slice(n, n, a);
    let e = nalgebra::SymmetricEigen::new(m);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&i, &j| e.eigenvalues[j].total_cmp(&e.eigenvalues[i]));
    let vals = idx.iter().map(|&i| e.eigenvalues[i]).collect();
    let mut vecs = nalgebra::DMatrix::zeros(n, n);
    for (c, &i) in idx.iter().enumerate() {
        vecs.set_column(c, &e.eigenvectors.column(i));
    }
    (vals, vecs)
}

/// A screenshot is not blank: many distinct colours, and a good share of pixels away from the
/// background (the colour of the bottom-right corner).
pub fn assert_not_blank(shot: &std::path::Path) {
    let img = image::open(shot).expect("read the screenshot").to_rgba8();
    let bg = *img.get_pixel(img.width() - 2, img.height() - 2);
    let mut colours = std::collections::HashSet::new();
    let mut differing = 0usize;
    for p in img.pixels() {
        colours.insert(p.0);
        if p.0 != bg.0 {
            differing += 1;
        }
    }
    let frac = differing as f64 / (img.width() * img.height()) as f64;
    assert!(
        colours.len() > 100,
        "{}: {} colours",
        shot.display(),
        colours.len()
    );
    assert!(
        frac > 0.05,
        "{}: only {frac:.3} of the pixels differ from the background",
        shot.display()
    );
}

/// Whether a display is there for the desktop app's tests: without one they skip, unless
/// SUBSPACE_LAB_REQUIRE_DISPLAY is set (CI sets it and starts Xvfb), where that fails.
pub fn display_or_skip() -> bool {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        assert!(
            std::env::var_os("SUBSPACE_LAB_REQUIRE_DISPLAY").is_none(),
            "SUBSPACE_LAB_REQUIRE_DISPLAY is set but there is no DISPLAY"
        );
        eprintln!("SKIP: no display (run under Xvfb: see .ci/run)");
        return false;
    }
    true
}

/// The JSON report an app run wrote to `report` (parsed, and as text for messages); without one,
/// a panic that shows what the app printed.
pub fn read_app_report(
    out: &std::process::Output,
    report: &std::path::Path,
) -> (serde_json::Value, String) {
    let text = std::fs::read_to_string(report).unwrap_or_else(|e| {
        panic!(
            "no report ({e}); the app printed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("{text}");
    let v =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON ({e}): {text}"));
    (v, text)
}
