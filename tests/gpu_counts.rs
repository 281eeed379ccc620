//! What one HVP and one warm Dom-SGD step cost on the wgpu backend, per model (fc-tanh,
//! cnn-relu, Transformer at small sizes): submits, read-backs, bytes read, uploads, bytes
//! uploaded, buffers created and their bytes, dispatches. Printed as a table (`--nocapture`) and
//! held to the counts measured before the per-module shader layouts (issue 29): a change to the
//! kernels' bindings must not add traffic or work. Deterministic (fixed sizes and seeds), on a
//! device of its own so no other test's traffic is counted. ~10 s on lavapipe.

mod common;
use common::*;
use subspace_lab::backend::gpu::GpuBackend;
use subspace_lab::backend::prelude::*;
use subspace_lab::backend::{Activation, LossKind, Transfers};
use subspace_lab::data::dataset::Dataset;
use subspace_lab::nn::cnn::CnnSpec;
use subspace_lab::nn::engine::Engine;
use subspace_lab::nn::mlp::MlpSpec;
use subspace_lab::nn::model::ModelSpec;
use subspace_lab::nn::transformer::TransformerSpec;

/// The three models at test sizes, with their data.
fn models() -> Vec<(&'static str, ModelSpec, Dataset)> {
    let n = 40;
    let tokens: Vec<f64> = (0..n)
        .flat_map(|r| {
            (0..9).map(move |p| {
                if p + r % 5 >= 9 {
                    0.0
                } else {
                    (1 + (r * 5 + p * 3) % 11) as f64
                }
            })
        })
        .collect();
    let labels: Vec<u8> = (0..n).map(|r| (r % 3) as u8).collect();
    vec![
        (
            "fc-tanh",
            MlpSpec::new(vec![50, 20, 10], Activation::Tanh)
                .unwrap()
                .into(),
            Dataset::synthetic(120, 50, 10, 3).unwrap(),
        ),
        (
            "cnn-relu",
            CnnSpec::new([2, 4, 4], vec![3, 2], Activation::Relu, 3)
                .unwrap()
                .into(),
            Dataset::synthetic(60, 32, 3, 4).unwrap(),
        ),
        (
            "transformer",
            TransformerSpec::new(12, 9, 8, 2, 2, Activation::Gelu, true, 3)
                .unwrap()
                .into(),
            Dataset::new(9, 3, tokens, labels).unwrap(),
        ),
    ]
}

/// One HVP at cached parameters, recorded and read back.
fn hvp_counts(g: &GpuBackend, spec: &ModelSpec, data: &Dataset) -> Transfers {
    let theta: Vec<f64> = spec.init(5).iter().map(|x| 2.0 * x + 0.01).collect();
    let mut e = Engine::new(g.clone(), spec.clone(), LossKind::Ce, data, 16).unwrap();
    e.set_params_host(&theta).unwrap();
    let v = g
        .upload(&subspace_lab::hessian::lanczos::random_vector(
            theta.len(),
            1,
        ))
        .unwrap();
    let mut out = g.zeros(theta.len()).unwrap();
    e.hvp(&v, 0, &mut out, 0).unwrap();
    g.sync().unwrap();
    let t0 = g.transfers().unwrap();
    e.hvp(&v, 0, &mut out, 0).unwrap();
    g.download(&out).unwrap();
    g.transfers().unwrap() - t0
}

/// One warm Dom-SGD step (spectrum by Lanczos, then the projected step), after two warm-ups.
fn step_counts(g: &GpuBackend, spec: &ModelSpec, data: &Dataset) -> Transfers {
    use subspace_lab::experiment::run::{Stepper, Stream};
    use subspace_lab::experiment::spec::{OptimizerSpec, Projection};
    let theta: Vec<f64> = spec.init(5).iter().map(|x| 2.0 * x + 0.01).collect();
    let opt = OptimizerSpec::sgd(0.01, 20);
    let mut st = Stepper::new(g.clone(), spec, LossKind::Ce, data, 2, 2, 1e-3).unwrap();
    st.set_theta(&theta).unwrap();
    let mut stream = Stream::new(data.n, 0);
    for _ in 0..2 {
        st.spectrum().unwrap();
        st.step(&opt, &mut stream, Projection::Dominant, true)
            .unwrap();
    }
    g.sync().unwrap();
    let t0 = g.transfers().unwrap();
    st.spectrum().unwrap();
    st.step(&opt, &mut stream, Projection::Dominant, true)
        .unwrap();
    g.sync().unwrap();
    g.transfers().unwrap() - t0
}

/// (submits, read-backs, bytes read, uploads, bytes uploaded, buffers created, bytes created,
/// dispatches) of a count.
fn row(t: &Transfers) -> [u64; 8] {
    [
        t.submits,
        t.readbacks,
        t.bytes_read,
        t.uploads,
        t.bytes_uploaded,
        t.allocations,
        t.bytes_allocated,
        t.dispatches,
    ]
}

/// The counts measured at 7e9917a (one shared bind-group layout), in the order of [`row`]:
/// (model, HVP, Dom-SGD step).
const BEFORE: &[(&str, [u64; 8], [u64; 8])] = &[
    (
        "fc-tanh",
        [1, 1, 4920, 0, 0, 1, 4920, 121],
        [7, 6, 148, 4, 4864, 0, 0, 168],
    ),
    (
        "cnn-relu",
        [1, 1, 488, 0, 0, 0, 0, 153],
        [7, 6, 148, 4, 2864, 0, 0, 295],
    ),
    (
        "transformer",
        [1, 1, 4492, 0, 0, 1, 4492, 337],
        [10, 9, 232, 6, 1844, 0, 0, 1065],
    ),
];

gpu_test!(own per_step_counts_do_not_grow);
fn per_step_counts_do_not_grow(g: GpuBackend) {
    eprintln!(
        "| model | what | submits | read-backs | bytes read | uploads | bytes up | buffers | bytes | dispatches |"
    );
    for (name, spec, data) in models() {
        let h = row(&hvp_counts(&g, &spec, &data));
        let s = row(&step_counts(&g, &spec, &data));
        for (what, r) in [("HVP", h), ("Dom-SGD step", s)] {
            let cells: Vec<String> = r.iter().map(|x| x.to_string()).collect();
            eprintln!("| {name} | {what} | {} |", cells.join(" | "));
        }
        eprintln!("(\"{name}\", {h:?}, {s:?}),");
        let (_, bh, bs) = BEFORE.iter().find(|(n, _, _)| *n == name).unwrap();
        {
            for (what, now, before) in [("HVP", h, *bh), ("step", s, *bs)] {
                assert!(
                    now.iter().zip(before).all(|(a, b)| *a <= b),
                    "{name} {what}: {now:?} against {before:?} before"
                );
            }
        }
    }
}
