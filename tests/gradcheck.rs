//! Gradient and HVP of the network against central finite differences in f64, the dense Hessian
//! against its finite-difference twin, chunking invariance, and f32 against f64.

#![allow(clippy::needless_range_loop)] // index loops read closer to the math here

mod common;
use common::*;
use subspace_lab::backend::{Activation, LossKind, prelude::*};
use subspace_lab::hessian::{dense_matrix, lanczos::random_vector};

const CASES: &[(&[usize], Activation, LossKind)] = &[
    (&[5, 4, 3, 3], Activation::Tanh, LossKind::Mse),
    (&[5, 4, 3, 3], Activation::Tanh, LossKind::Ce),
    (&[6, 7, 4], Activation::Relu, LossKind::Mse),
    (&[4, 6, 5, 4, 3], Activation::Tanh, LossKind::Ce),
];

fn loss_at(e: &mut subspace_lab::nn::mlp::Engine<F64>, th: &[f64]) -> f64 {
    e.set_params_host(th).unwrap().loss
}

fn grad_at(e: &mut subspace_lab::nn::mlp::Engine<F64>, th: &[f64]) -> Vec<f64> {
    e.set_params_host(th).unwrap();
    e.backend().download(e.grad().unwrap()).unwrap()
}

#[test]
fn gradient_matches_central_differences() {
    for (i, &(w, act, loss)) in CASES.iter().enumerate() {
        let (spec, theta, data) = tiny(w, act, 9, i as u64);
        let mut e = engine(F64::new(), &spec, loss, &data, 4, &theta);
        let g = grad_at(&mut e, &theta);
        let h = 1e-5;
        let fd: Vec<f64> = (0..theta.len())
            .map(|j| {
                let mut tp = theta.clone();
                let mut tm = theta.clone();
                tp[j] += h;
                tm[j] -= h;
                (loss_at(&mut e, &tp) - loss_at(&mut e, &tm)) / (2.0 * h)
            })
            .collect();
        let err = rel_err(&g, &fd);
        assert!(err < 1e-6, "case {i}: gradient rel. error {err:e}");
    }
}

#[test]
fn hvp_matches_central_differences_of_the_gradient() {
    for (i, &(w, act, loss)) in CASES.iter().enumerate() {
        let (spec, theta, data) = tiny(w, act, 9, 10 + i as u64);
        let mut e = engine(F64::new(), &spec, loss, &data, 4, &theta);
        let p = theta.len();
        let v = random_vector(p, 3);
        let vb = e.backend().upload(&v).unwrap();
        let mut hv = e.backend().zeros(p).unwrap();
        e.hvp(&vb, 0, &mut hv, 0).unwrap();
        let hv = e.backend().download(&hv).unwrap();
        let h = 1e-5;
        let tp: Vec<f64> = theta.iter().zip(&v).map(|(t, d)| t + h * d).collect();
        let tm: Vec<f64> = theta.iter().zip(&v).map(|(t, d)| t - h * d).collect();
        let gp = grad_at(&mut e, &tp);
        let gm = grad_at(&mut e, &tm);
        let fd: Vec<f64> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        let err = rel_err(&hv, &fd);
        assert!(err < 1e-6, "case {i}: HVP rel. error {err:e}");
    }
}

#[test]
fn dense_hessian_is_symmetric_and_matches_finite_differences() {
    let (spec, theta, data) = tiny(&[4, 5, 3, 3], Activation::Tanh, 11, 5);
    let mut e = engine(F64::new(), &spec, LossKind::Mse, &data, 0, &theta);
    let b = F64::new();
    let p = theta.len();
    let hm = dense_matrix(&b, &mut e).unwrap();
    let scale = hm.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    let asym = (0..p)
        .flat_map(|i| (0..p).map(move |j| (i, j)))
        .map(|(i, j)| (hm[i * p + j] - hm[j * p + i]).abs())
        .fold(0.0f64, f64::max);
    assert!(
        asym <= 1e-12 * scale,
        "asymmetry {asym:e} vs scale {scale:e}"
    );
    // Columns of the finite-difference Hessian (from the exact gradient) equal HVPs of e_j.
    let h = 1e-5;
    for j in 0..p {
        let mut tp = theta.clone();
        let mut tm = theta.clone();
        tp[j] += h;
        tm[j] -= h;
        let gp = grad_at(&mut e, &tp);
        let gm = grad_at(&mut e, &tm);
        let fd: Vec<f64> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        let col: Vec<f64> = (0..p).map(|i| hm[i * p + j]).collect();
        let err = fd
            .iter()
            .zip(&col)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err <= 1e-6 * scale, "column {j}: max abs diff {err:e}");
    }
}

#[test]
fn chunk_size_does_not_change_results() {
    let (spec, theta, data) = tiny(&[6, 5, 4], Activation::Tanh, 23, 9);
    let p = theta.len();
    let v = random_vector(p, 1);
    let run = |chunk| {
        let mut e = engine(F64::new(), &spec, LossKind::Ce, &data, chunk, &theta);
        let vb = e.backend().upload(&v).unwrap();
        let mut hv = e.backend().zeros(p).unwrap();
        e.hvp(&vb, 0, &mut hv, 0).unwrap();
        let g = e.backend().download(e.grad().unwrap()).unwrap();
        (
            e.eval().unwrap().loss,
            g,
            e.backend().download(&hv).unwrap(),
        )
    };
    let (l1, g1, h1) = run(23);
    for chunk in [1, 4, 7] {
        let (l, g, h) = run(chunk);
        assert!((l - l1).abs() <= 1e-14 * l1.abs().max(1.0));
        assert!(rel_err(&g, &g1) < 1e-13, "chunk {chunk}");
        assert!(rel_err(&h, &h1) < 1e-13, "chunk {chunk}");
    }
}

/// f32 against the f64 oracle: gradient and HVP agree to ≈ 1e-5 relative on a mid-sized net.
#[test]
fn f32_backend_agrees_with_f64() {
    let (spec, theta, data) = tiny(&[30, 20, 20, 10], Activation::Tanh, 300, 4);
    let p = theta.len();
    let v = random_vector(p, 2);
    let mut e64 = engine(F64::new(), &spec, LossKind::Mse, &data, 128, &theta);
    let mut e32 = engine(F32::new(), &spec, LossKind::Mse, &data, 128, &theta);
    let g64 = e64.backend().download(e64.grad().unwrap()).unwrap();
    let g32 = e32.backend().download(e32.grad().unwrap()).unwrap();
    assert!(rel_err(&g32, &g64) < 1e-5, "grad {:e}", rel_err(&g32, &g64));
    let l64 = e64.eval().unwrap().loss;
    let l32 = e32.eval().unwrap().loss;
    assert!((l32 - l64).abs() < 1e-6 * l64);
    let mut h64 = e64.backend().zeros(p).unwrap();
    e64.hvp(&e64.backend().upload(&v).unwrap(), 0, &mut h64, 0)
        .unwrap();
    let mut h32 = e32.backend().zeros(p).unwrap();
    let v32 = e32.backend().upload(&v).unwrap();
    e32.hvp(&v32, 0, &mut h32, 0).unwrap();
    let err = rel_err(
        &e32.backend().download(&h32).unwrap(),
        &e64.backend().download(&h64).unwrap(),
    );
    assert!(err < 1e-5, "hvp {err:e}");
}

#[test]
fn fast_tanh_f32_is_accurate() {
    let mut worst = 0.0f64;
    let mut x = -12.0f64;
    while x <= 12.0 {
        let approx = subspace_lab::backend::cpu::tanh_f32(x as f32) as f64;
        let exact = (x as f32 as f64).tanh();
        worst = worst.max((approx - exact).abs());
        x += 1e-3;
    }
    // Measured: 4.0e-7 at x ≈ ±5.93 (≈ 7 ulp of values near 1); libm tanhf is within 1 ulp.
    assert!(worst < 4.5e-7, "max abs error {worst:e}");
    assert_eq!(subspace_lab::backend::cpu::tanh_f32(0.0), 0.0);
}

#[test]
fn parameter_layout_and_init_follow_pytorch() {
    let spec = subspace_lab::nn::mlp::MlpSpec::fc_tanh();
    assert_eq!(spec.num_params(), 199_210);
    let l = spec.layers();
    assert_eq!((l[0].w_off, l[0].b_off, l[1].w_off), (0, 156_800, 157_000));
    let th = spec.init(3);
    assert_eq!(th, spec.init(3), "seeded init must be reproducible");
    assert_ne!(th, spec.init(4));
    for layer in &l {
        let bound = 1.0 / (layer.fan_in as f64).sqrt();
        let w = &th[layer.w_off..layer.b_off + layer.fan_out];
        assert!(w.iter().all(|x| x.abs() <= bound));
        // Uniform on [−b, b]: the mean square is b²/3.
        let ms = w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64;
        assert!(
            (ms / (bound * bound / 3.0) - 1.0).abs() < 0.15,
            "layer mean square {ms}"
        );
    }
}

#[test]
fn diverged_parameters_are_an_error_not_a_panic() {
    let (spec, mut theta, data) = tiny(&[5, 4, 3], Activation::Tanh, 5, 1);
    theta[0] = f64::NAN;
    let mut e =
        subspace_lab::nn::mlp::Engine::new(F64::new(), spec, LossKind::Mse, &data, 0).unwrap();
    let err = e.set_params_host(&theta).unwrap_err().to_string();
    assert!(err.contains("not finite"), "{err}");
    let v = F64::new().zeros(theta.len()).unwrap();
    let mut out = F64::new().zeros(theta.len()).unwrap();
    assert!(
        e.hvp(&v, 0, &mut out, 0).is_err(),
        "HVP without valid parameters must fail"
    );
}

/// Inputs like normalised MNIST (most entries one value) take the CPU backend's sparse products:
/// gradient and HVP against the dense products in f64 (to round-off), and against central
/// differences; chunks that split the data mid-way exercise the row windows.
#[test]
fn sparse_input_products_match_dense_ones() {
    use subspace_lab::backend::cpu::CpuBackend;
    for (i, &(w, act, loss)) in CASES.iter().enumerate() {
        let (spec, theta, mut data) = tiny(w, act, 23, 40 + i as u64);
        // 75 % of the inputs at the normalised black pixel, the rest spread around it.
        let base = (0.0 - 0.1307) / 0.3081;
        for (j, x) in data.x.iter_mut().enumerate() {
            *x = if j % 4 == 0 { base + 1.5 + *x } else { base };
        }
        let form =
            subspace_lab::backend::input::CpuInput::<f64>::new(&data.x, data.n, data.d, true);
        assert!(
            form.unwrap().is_sparse(),
            "case {i}: the data must take the sparse products"
        );
        let mut sparse = engine(F64::new(), &spec, loss, &data, 5, &theta);
        let mut dense = engine(
            CpuBackend::<f64>::with_dense_input(),
            &spec,
            loss,
            &data,
            5,
            &theta,
        );
        let (ls, ld) = (sparse.eval().unwrap().loss, dense.eval().unwrap().loss);
        assert!(
            (ls - ld).abs() < 1e-13 * ld.abs(),
            "case {i}: loss {ls} vs {ld}"
        );
        let gs = sparse.backend().download(sparse.grad().unwrap()).unwrap();
        let gd = dense.backend().download(dense.grad().unwrap()).unwrap();
        assert!(rel_err(&gs, &gd) < 1e-12, "case {i}: gradient");
        let p = theta.len();
        let v = random_vector(p, 5);
        let hv = |e: &mut subspace_lab::nn::mlp::Engine<F64>| {
            let vb = e.backend().upload(&v).unwrap();
            let mut out = e.backend().zeros(p).unwrap();
            e.hvp(&vb, 0, &mut out, 0).unwrap();
            e.backend().download(&out).unwrap()
        };
        let (hs, hd) = (hv(&mut sparse), hv(&mut dense));
        assert!(
            rel_err(&hs, &hd) < 1e-12,
            "case {i}: HVP {:e}",
            rel_err(&hs, &hd)
        );
        // And the sparse HVP against central differences of the sparse gradient.
        let h = 1e-5;
        let tp: Vec<f64> = theta.iter().zip(&v).map(|(t, d)| t + h * d).collect();
        let tm: Vec<f64> = theta.iter().zip(&v).map(|(t, d)| t - h * d).collect();
        let gp = grad_at(&mut sparse, &tp);
        let gm = grad_at(&mut sparse, &tm);
        let fd: Vec<f64> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        assert!(rel_err(&hs, &fd) < 1e-6, "case {i}: HVP vs differences");
    }
}
