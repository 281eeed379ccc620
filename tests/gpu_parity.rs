//! The wgpu backend against the CPU f64 oracle: every primitive on random inputs, then the
//! gradient, HVP and top eigenpairs of a reduced fc-tanh. Runs on whatever adapter exists —
//! lavapipe in CI (`.ci/run` installs it and sets SUBSPACE_LAB_REQUIRE_GPU=1 so that a missing
//! adapter fails instead of skipping). Sizes are small: lavapipe does ~0.6 GFLOP/s here.
//!
//! Tolerances, for f32 kernels against f64: GEMM/reductions |gpu − cpu| ≤ 8·ε·√k·(|A|·|B|)ᵢⱼ
//! (ε = 2⁻²³, k the summed length, the right-hand side the sum of absolute products);
//! elementwise ≤ 4·ε·|scale|; engine: gradient and HVP ≤ 1e-5 relative (2-norm), eigenvalues
//! ≤ 1e-3 relative to λ₁, χ_k ≤ 1e-3.

mod common;
use common::*;
use subspace_lab::backend::gpu::GpuBackend;
use subspace_lab::backend::{
    Activation, Dual, LossBlock, LossKind, Mat, MatMut, Ten, TenMut, ThetaV, prelude::*,
};
use subspace_lab::hessian::lanczos::{LanczosOptions, lanczos, random_vector};
use subspace_lab::hessian::subspace::Subspace;

const EPS: f64 = f32::EPSILON as f64;

fn rand(n: usize, seed: u64) -> Vec<f64> {
    random_vector(n, seed)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

type Shape = (bool, bool, usize, usize, usize, f64, f64);

/// C = α op(A) op(B) + β C on backend `be`, operands at offsets in larger buffers.
fn gemm_on<B: Backend>(
    be: &B,
    s: Shape,
    a: (&[f64], usize),
    b: (&[f64], usize),
    c: (&[f64], usize),
) -> Vec<f64> {
    let (ta, tb, m, n, k, alpha, beta) = s;
    let (ab, bb) = (be.upload(a.0).unwrap(), be.upload(b.0).unwrap());
    let mut cb = be.upload(c.0).unwrap();
    be.gemm(
        Mat::op(&ab, a.1, m, k, ta),
        Mat::op(&bb, b.1, k, n, tb),
        MatMut::new(&mut cb, c.1, m, n),
        alpha,
        beta,
    )
    .unwrap();
    be.download(&cb).unwrap()
}

gpu_test!(gemm_variants_match_cpu);
fn gemm_variants_match_cpu(g: GpuBackend) {
    let c = F64::new();
    for &(ta, tb, m, n, k, alpha, beta) in &[
        (false, false, 67, 45, 33, 1.0, 0.0),
        (false, true, 70, 130, 65, 0.5, 1.0),
        (true, false, 129, 17, 40, -1.0, 0.25),
        (true, true, 5, 66, 200, 2.0, 0.0),
        (false, false, 9, 1, 3001, 1.0, 0.0),   // gemv, rows
        (true, false, 3001, 1, 12, -1.0, 1.0),  // gemv, columns
        (false, false, 10, 2000, 30, 1.0, 0.0), // skinny (Ritz vectors)
        // A long K (Gram matrices of p-long rows): split into slices on the device, because
        // lavapipe cuts a shader loop after ~3,640 iterations (these came back wrong before).
        (false, true, 5, 3, 70001, 1.0, 0.5),
        (true, false, 3, 4, 50001, -1.0, 0.0),
        (false, false, 2, 3, 60000, 1.0, 1.0),
        (true, true, 3, 2, 33000, 2.0, 0.0),
    ] {
        let (oa, ob, oc) = (3, 5, 7); // offsets inside larger buffers
        let a = rand(m * k + oa, 1);
        let b = rand(k * n + ob, 2);
        let c0 = rand(m * n + oc, 3);
        let got = gemm_on(
            &g,
            (ta, tb, m, n, k, alpha, beta),
            (&a, oa),
            (&b, ob),
            (&c0, oc),
        );
        let want = gemm_on(
            &c,
            (ta, tb, m, n, k, alpha, beta),
            (&a, oa),
            (&b, ob),
            (&c0, oc),
        );
        // |A|·|B| bound per entry.
        let abs: Vec<f64> = a.iter().map(|x| x.abs()).collect();
        let bbs: Vec<f64> = b.iter().map(|x| x.abs()).collect();
        let (aa, bb) = (c.upload(&abs).unwrap(), c.upload(&bbs).unwrap());
        let mut bound = c.zeros(m * n + oc).unwrap();
        c.gemm(
            Mat::op(&aa, oa, m, k, ta),
            Mat::op(&bb, ob, k, n, tb),
            MatMut::new(&mut bound, oc, m, n),
            alpha.abs(),
            0.0,
        )
        .unwrap();
        let bound = c.download(&bound).unwrap();
        let c0_f32: Vec<f64> = c0[..oc].iter().map(|&x| x as f32 as f64).collect();
        assert_eq!(
            &got[..oc],
            &c0_f32[..],
            "entries before the offset untouched"
        );
        for i in oc..m * n + oc {
            let tol = 8.0 * EPS * (k as f64).sqrt() * (bound[i] + beta.abs() * c0[i].abs()) + 1e-30;
            assert!(
                (got[i] - want[i]).abs() <= tol,
                "gemm ta={ta} tb={tb} {m}×{n}×{k}: entry {i}: {} vs {} (tol {tol:e})",
                got[i],
                want[i]
            );
        }
    }
}

gpu_test!(elementwise_and_loss_kernels_match_cpu);
fn elementwise_and_loss_kernels_match_cpu(g: GpuBackend) {
    let c = F64::new();
    let (rows, cols) = (37, 10);
    let len = rows * cols;
    let z = rand(len, 4).iter().map(|x| 3.0 * x).collect::<Vec<_>>();
    let bias = rand(cols, 5);
    let v1 = rand(len, 6);
    let v2 = rand(len, 7);
    let v3 = rand(len, 8);
    let tol = 8.0 * EPS;
    let check = |name: &str, got: Vec<f64>, want: Vec<f64>, scale: f64| {
        let d = max_abs_diff(&got, &want);
        assert!(d <= tol * scale.max(1.0), "{name}: max diff {d:e}");
    };
    for act in [None, Some(Activation::Tanh), Some(Activation::Relu)] {
        let mut gz = g.upload(&z).unwrap();
        let mut cz = c.upload(&z).unwrap();
        g.bias_act(
            act,
            rows,
            cols,
            Ten(&g.upload(&bias).unwrap(), 0),
            TenMut(&mut gz, 0),
        )
        .unwrap();
        c.bias_act(
            act,
            rows,
            cols,
            Ten(&c.upload(&bias).unwrap(), 0),
            TenMut(&mut cz, 0),
        )
        .unwrap();
        check(
            &format!("bias_act {act:?}"),
            g.download(&gz).unwrap(),
            c.download(&cz).unwrap(),
            4.0,
        );
    }
    for act in [Activation::Tanh, Activation::Relu] {
        let a: Vec<f64> = z.iter().map(|&x| act.eval(x).0).collect();
        let (ga, gv1, gv2, gv3) = (
            g.upload(&a).unwrap(),
            g.upload(&v1).unwrap(),
            g.upload(&v2).unwrap(),
            g.upload(&v3).unwrap(),
        );
        let (ca, cv1, cv2, cv3) = (
            c.upload(&a).unwrap(),
            c.upload(&v1).unwrap(),
            c.upload(&v2).unwrap(),
            c.upload(&v3).unwrap(),
        );
        let mut go = g.zeros(len).unwrap();
        let mut co = c.zeros(len).unwrap();
        g.act_d1_mul(act, len, Ten(&ga, 0), Ten(&gv1, 0), TenMut(&mut go, 0))
            .unwrap();
        c.act_d1_mul(act, len, Ten(&ca, 0), Ten(&cv1, 0), TenMut(&mut co, 0))
            .unwrap();
        check(
            "act_d1_mul",
            g.download(&go).unwrap(),
            c.download(&co).unwrap(),
            2.0,
        );
        g.act_d2_r(
            act,
            len,
            Ten(&ga, 0),
            Dual {
                val: Ten(&gv2, 0),
                r: Ten(&gv1, 0),
            },
            Ten(&gv3, 0),
            TenMut(&mut go, 0),
        )
        .unwrap();
        c.act_d2_r(
            act,
            len,
            Ten(&ca, 0),
            Dual {
                val: Ten(&cv2, 0),
                r: Ten(&cv1, 0),
            },
            Ten(&cv3, 0),
            TenMut(&mut co, 0),
        )
        .unwrap();
        check(
            "act_d2_r",
            g.download(&go).unwrap(),
            c.download(&co).unwrap(),
            4.0,
        );
    }
    // Column sums with accumulation, axpy, scale, fill, copy.
    let mut gd = g.upload(&bias).unwrap();
    let mut cd = c.upload(&bias).unwrap();
    g.col_sum(
        rows,
        cols,
        0.5,
        Ten(&g.upload(&v1).unwrap(), 0),
        1.0,
        TenMut(&mut gd, 0),
    )
    .unwrap();
    c.col_sum(
        rows,
        cols,
        0.5,
        Ten(&c.upload(&v1).unwrap(), 0),
        1.0,
        TenMut(&mut cd, 0),
    )
    .unwrap();
    check(
        "col_sum",
        g.download(&gd).unwrap(),
        c.download(&cd).unwrap(),
        rows as f64,
    );
    let mut gy = g.upload(&v2).unwrap();
    let mut cy = c.upload(&v2).unwrap();
    g.axpy(-0.75, &g.upload(&v1).unwrap(), 3, &mut gy, 5, len - 5)
        .unwrap();
    c.axpy(-0.75, &c.upload(&v1).unwrap(), 3, &mut cy, 5, len - 5)
        .unwrap();
    g.scale(1.5, &mut gy, 1, len - 2).unwrap();
    c.scale(1.5, &mut cy, 1, len - 2).unwrap();
    g.fill(&mut gy, 10, 4, 2.5).unwrap();
    c.fill(&mut cy, 10, 4, 2.5).unwrap();
    g.copy(&g.upload(&v3).unwrap(), 2, &mut gy, 100, 50)
        .unwrap();
    c.copy(&c.upload(&v3).unwrap(), 2, &mut cy, 100, 50)
        .unwrap();
    check(
        "axpy/scale/fill/copy",
        g.download(&gy).unwrap(),
        c.download(&cy).unwrap(),
        4.0,
    );
    // rsqrt: squared norms (positive, tiny, huge), 0 → 0, and NaN for negative and non-finite
    // values, on an offset range.
    let xs = [
        0.0,
        4.0,
        1e-30,
        3.0e30,
        0.37,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        2.0,
    ];
    let (mut gx, mut cx) = (g.upload(&xs).unwrap(), c.upload(&xs).unwrap());
    g.rsqrt(&mut gx, 1, xs.len() - 2).unwrap();
    c.rsqrt(&mut cx, 1, xs.len() - 2).unwrap();
    let (gv, cv) = (g.download(&gx).unwrap(), c.download(&cx).unwrap());
    assert_eq!(
        (gv[0], cv[0], gv[8], cv[8]),
        (0.0, 0.0, 2.0, 2.0),
        "outside the range"
    );
    assert_eq!((gv[1], cv[1]), (0.5, 0.5));
    for i in [2, 3, 4] {
        assert!(
            (gv[i] - cv[i]).abs() <= 4.0 * EPS * cv[i],
            "rsqrt({}) {} vs {}",
            xs[i],
            gv[i],
            cv[i]
        );
    }
    for i in [5, 6, 7] {
        assert!(
            gv[i].is_nan() && cv[i].is_nan(),
            "rsqrt({}): {} / {}",
            xs[i],
            gv[i],
            cv[i]
        );
    }
    let (mut gz0, mut cz0) = (g.upload(&[0.0]).unwrap(), c.upload(&[0.0]).unwrap());
    g.rsqrt(&mut gz0, 0, 1).unwrap();
    c.rsqrt(&mut cz0, 0, 1).unwrap();
    assert_eq!(
        (g.download(&gz0).unwrap()[0], c.download(&cz0).unwrap()[0]),
        (0.0, 0.0)
    );
    // A subnormal of the backend's precision counts as 0 (its 1/√ would overflow f32): the GPU
    // and the CPU's f32 backend alike.
    let c32 = F32::new();
    let sub = [1e-40, -1e-41, 2e-38];
    let (mut gs, mut cs) = (g.upload(&sub).unwrap(), c32.upload(&sub).unwrap());
    g.rsqrt(&mut gs, 0, 3).unwrap();
    c32.rsqrt(&mut cs, 0, 3).unwrap();
    let (gs, cs) = (g.download(&gs).unwrap(), c32.download(&cs).unwrap());
    assert_eq!(
        (gs[0], gs[1], cs[0], cs[1]),
        (0.0, 0.0, 0.0, 0.0),
        "{gs:?} {cs:?}"
    );
    assert!((gs[2] - cs[2]).abs() <= 4.0 * EPS * cs[2], "{gs:?} {cs:?}");
    // Losses: gradient, statistics (accumulated over two calls), Hessian product.
    let target: Vec<f64> = (0..rows)
        .flat_map(|r| (0..cols).map(move |j| if j == (r * 7) % cols { 1.0 } else { 0.0 }))
        .collect();
    for loss in [LossKind::Mse, LossKind::Ce] {
        let (gz, gt) = (g.upload(&z).unwrap(), g.upload(&target).unwrap());
        let (cz, ct) = (c.upload(&z).unwrap(), c.upload(&target).unwrap());
        let mut gg = g.zeros(len).unwrap();
        let mut cg = c.zeros(len).unwrap();
        let mut gs = g.zeros(2).unwrap();
        let mut cs = c.zeros(2).unwrap();
        for _ in 0..2 {
            g.loss_grad(
                LossBlock {
                    kind: loss,
                    rows,
                    cols,
                    scale: 0.1,
                },
                Ten(&gz, 0),
                Ten(&gt, 0),
                TenMut(&mut gg, 0),
                &mut gs,
            )
            .unwrap();
            c.loss_grad(
                LossBlock {
                    kind: loss,
                    rows,
                    cols,
                    scale: 0.1,
                },
                Ten(&cz, 0),
                Ten(&ct, 0),
                TenMut(&mut cg, 0),
                &mut cs,
            )
            .unwrap();
        }
        check(
            &format!("loss_grad {loss:?}"),
            g.download(&gg).unwrap(),
            c.download(&cg).unwrap(),
            4.0,
        );
        let (gsv, csv) = (g.download(&gs).unwrap(), c.download(&cs).unwrap());
        assert!(
            (gsv[0] - csv[0]).abs() <= 1e-5 * csv[0].abs(),
            "{loss:?} loss sum {gsv:?} vs {csv:?}"
        );
        assert_eq!(gsv[1], csv[1], "{loss:?} correct count");
        let (gr, cr) = (g.upload(&v1).unwrap(), c.upload(&v1).unwrap());
        g.loss_hess_mul(
            LossBlock {
                kind: loss,
                rows,
                cols,
                scale: 0.3,
            },
            Ten(&gz, 0),
            Ten(&gr, 0),
            TenMut(&mut gg, 0),
        )
        .unwrap();
        c.loss_hess_mul(
            LossBlock {
                kind: loss,
                rows,
                cols,
                scale: 0.3,
            },
            Ten(&cz, 0),
            Ten(&cr, 0),
            TenMut(&mut cg, 0),
        )
        .unwrap();
        check(
            &format!("loss_hess_mul {loss:?}"),
            g.download(&gg).unwrap(),
            c.download(&cg).unwrap(),
            4.0,
        );
    }
}

gpu_test!(reductions_are_accurate_on_long_vectors);
fn reductions_are_accurate_on_long_vectors(g: GpuBackend) {
    let c = F64::new();
    let n = 199_210;
    let x = rand(n, 9);
    let y = rand(n, 10);
    // f32-rounded inputs, so the comparison measures only the summation.
    let x32: Vec<f64> = x.iter().map(|&v| v as f32 as f64).collect();
    let y32: Vec<f64> = y.iter().map(|&v| v as f32 as f64).collect();
    let (gx, gy) = (g.upload(&x).unwrap(), g.upload(&y).unwrap());
    let (cx, cy) = (c.upload(&x32).unwrap(), c.upload(&y32).unwrap());
    let got = g.dot(&gx, 0, &gy, 0, n).unwrap();
    let want = c.dot(&cx, 0, &cy, 0, n).unwrap();
    let abs: f64 = x32.iter().zip(&y32).map(|(a, b)| (a * b).abs()).sum();
    assert!(
        (got - want).abs() <= 8.0 * EPS * abs,
        "dot {got} vs {want} (Σ|xy| = {abs})"
    );
    let norms = g.row_norms(&gx, 10, 3, 1000).unwrap();
    let want_n = c.row_norms(&cx, 10, 3, 1000).unwrap();
    assert!(max_abs_diff(&norms, &want_n) <= 8.0 * EPS * want_n[0]);
    assert!(g.all_finite(&gx, 0, n).unwrap());
    let mut bad = x.clone();
    bad[12345] = f64::NAN;
    assert!(!g.all_finite(&g.upload(&bad).unwrap(), 0, n).unwrap());
    bad[12345] = f64::INFINITY;
    assert!(!g.all_finite(&g.upload(&bad).unwrap(), 0, n).unwrap());
    assert!(g.all_finite(&g.upload(&bad).unwrap(), 0, 12345).unwrap());
    // dot_into: the same sum written into a buffer (beside other values, read back in one range).
    let mut out = g.upload(&[7.0, 8.0, 9.0]).unwrap();
    g.dot_into(Ten(&gx, 0), Ten(&gy, 0), n, TenMut(&mut out, 1))
        .unwrap();
    let r = g.download_range(&out, 0, 3).unwrap();
    assert_eq!((r[0], r[2]), (7.0, 9.0));
    assert!(
        (r[1] - want).abs() <= 8.0 * EPS * abs,
        "dot_into {} vs {want}",
        r[1]
    );
    assert_eq!(
        g.download_range(&gx, 5, 2).unwrap(),
        &g.download(&gx).unwrap()[5..7]
    );
    assert!(g.download_range(&gx, n - 1, 2).is_err());
}

gpu_test!(adam_matches_cpu);
/// Adam's kernels against the CPU f64 backend (three steps, bias corrections of each).
fn adam_matches_cpu(g: GpuBackend) {
    let c = F64::new();
    let n = 1000;
    let (gm, gv, gd) = (
        &mut g.zeros(n).unwrap(),
        &mut g.zeros(n).unwrap(),
        &mut g.zeros(n).unwrap(),
    );
    let (cm, cv, cd) = (
        &mut c.zeros(n).unwrap(),
        &mut c.zeros(n).unwrap(),
        &mut c.zeros(n).unwrap(),
    );
    for t in 1..=3 {
        let grad: Vec<f64> = rand(n, 30 + t).iter().map(|&x| x as f32 as f64).collect();
        let h = subspace_lab::backend::AdamStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            c1: 1.0 - 0.9f64.powi(t as i32),
            c2: 1.0 - 0.999f64.powi(t as i32),
        };
        g.adam(&g.upload(&grad).unwrap(), gm, gv, gd, n, h).unwrap();
        c.adam(&c.upload(&grad).unwrap(), cm, cv, cd, n, h).unwrap();
        let (dg, dc) = (g.download(gd).unwrap(), c.download(cd).unwrap());
        let d = max_abs_diff(&dg, &dc);
        assert!(d <= 1e-5 * 1e-3, "step {t}: max diff {d:e}");
        let d = max_abs_diff(&g.download(gv).unwrap(), &c.download(cv).unwrap());
        assert!(d <= 1e-6, "step {t}: v max diff {d:e}");
    }
}

gpu_test!(engine_matches_cpu_on_reduced_fc_tanh);
/// Reduced fc-tanh: gradient, HVP, top-5 eigenpairs and χ₅ against the CPU f64 engine.
fn engine_matches_cpu_on_reduced_fc_tanh(g: GpuBackend) {
    for loss in [LossKind::Mse, LossKind::Ce] {
        let (spec, theta, data) = tiny(&[784, 24, 16, 10], Activation::Tanh, 500, 21);
        let mut eg = engine(g.clone(), &spec, loss, &data, 200, &theta);
        let mut ec = engine(F64::new(), &spec, loss, &data, 200, &theta);
        let (lg, lc) = (eg.eval().unwrap(), ec.eval().unwrap());
        assert!(
            (lg.loss - lc.loss).abs() <= 1e-5 * lc.loss,
            "{loss:?} loss {} vs {}",
            lg.loss,
            lc.loss
        );
        assert_eq!(lg.accuracy, lc.accuracy);
        let gg = g.download(eg.grad().unwrap()).unwrap();
        let gc = ec.backend().download(ec.grad().unwrap()).unwrap();
        assert!(
            rel_err(&gg, &gc) < 1e-5,
            "{loss:?} gradient {:e}",
            rel_err(&gg, &gc)
        );
        let p = theta.len();
        let v = rand(p, 3);
        let mut hg = g.zeros(p).unwrap();
        eg.hvp(&g.upload(&v).unwrap(), 0, &mut hg, 0).unwrap();
        let hg = g.download(&hg).unwrap();
        let mut hc = ec.backend().zeros(p).unwrap();
        ec.hvp(&ec.backend().upload(&v).unwrap(), 0, &mut hc, 0)
            .unwrap();
        let hc = ec.backend().download(&hc).unwrap();
        assert!(
            rel_err(&hg, &hc) < 1e-5,
            "{loss:?} HVP {:e}",
            rel_err(&hg, &hc)
        );
        // Top-5 eigenpairs.
        let o = LanczosOptions {
            k: 5,
            tol: 1e-4,
            ..LanczosOptions::default()
        };
        let rg = lanczos(&g, &mut eg, &o, None, &mut |_| {}).unwrap();
        let rc = lanczos(
            &F64::new(),
            &mut ec,
            &LanczosOptions {
                tol: 1e-9,
                ..o.clone()
            },
            None,
            &mut |_| {},
        )
        .unwrap();
        assert!(rg.converged && rc.converged);
        for i in 0..5 {
            let rel = (rg.values[i] - rc.values[i]).abs() / rc.values[0].abs();
            assert!(
                rel <= 1e-3,
                "{loss:?} λ{}: gpu {} vs cpu {} ({rel:e})",
                i + 1,
                rg.values[i],
                rc.values[i]
            );
        }
        let mut sg = Subspace::new(&g, rg.vectors, 5, p).unwrap();
        let mut sc = Subspace::new(&F64::new(), rc.vectors, 5, p).unwrap();
        let chi_g = sg.chi(&g, eg.grad().unwrap()).unwrap();
        let chi_c = sc.chi(&F64::new(), ec.grad().unwrap()).unwrap();
        assert!(
            (chi_g - chi_c).abs() <= 1e-3,
            "{loss:?} χ₅ {chi_g} vs {chi_c}"
        );
    }
}

gpu_test!(the_default_chunk_is_the_whole_data_set);
/// The GPU's default chunk is the whole data set (the CPU's stays 1000), and its HVP equals the
/// chunked one and the f64 oracle's.
fn the_default_chunk_is_the_whole_data_set(g: GpuBackend) {
    let (spec, theta, data) = tiny(&[784, 24, 16, 10], Activation::Tanh, 1300, 5);
    let mut whole = engine(g.clone(), &spec, LossKind::Mse, &data, 0, &theta);
    assert_eq!(whole.chunk(), 1300);
    let mut chunked = engine(g.clone(), &spec, LossKind::Mse, &data, 300, &theta);
    let mut oracle = engine(F64::new(), &spec, LossKind::Mse, &data, 0, &theta);
    assert_eq!(oracle.chunk(), 1000);
    let p = theta.len();
    let v = rand(p, 4);
    let on_gpu = |e: &mut subspace_lab::nn::mlp::Engine<GpuBackend>| {
        let mut o = g.zeros(p).unwrap();
        e.hvp(&g.upload(&v).unwrap(), 0, &mut o, 0).unwrap();
        g.download(&o).unwrap()
    };
    let (hw, hc) = (on_gpu(&mut whole), on_gpu(&mut chunked));
    let c = oracle.backend().clone();
    let mut ho = c.zeros(p).unwrap();
    oracle.hvp(&c.upload(&v).unwrap(), 0, &mut ho, 0).unwrap();
    let ho = c.download(&ho).unwrap();
    assert!(rel_err(&hw, &ho) < 1e-5, "whole {:e}", rel_err(&hw, &ho));
    assert!(rel_err(&hc, &ho) < 1e-5, "chunked {:e}", rel_err(&hc, &ho));
}

gpu_test!(own an_hvp_is_one_submit);
/// A whole HVP (R-forward and R-backward over every chunk) is one command buffer. Its own
/// device: the shared one sees other tests' submits.
fn an_hvp_is_one_submit(g: GpuBackend) {
    let (spec, theta, data) = tiny(&[50, 20, 10], Activation::Tanh, 300, 2);
    let mut e = engine(g.clone(), &spec, LossKind::Mse, &data, 64, &theta);
    let p = theta.len();
    let v = g.upload(&rand(p, 1)).unwrap();
    let mut out = g.zeros(p).unwrap();
    g.sync().unwrap();
    let before = g.submits();
    e.hvp(&v, 0, &mut out, 0).unwrap();
    assert_eq!(g.submits(), before, "an HVP is recorded, not submitted");
    g.download(&out).unwrap();
    assert_eq!(
        g.submits(),
        before + 1,
        "one submit for the HVP (5 chunks) and its read-back"
    );
}

gpu_test!(own transfers_are_counted_exactly);
/// The transfer counters (`Backend::transfers`, what `bench` reports per Dom-SGD step) count
/// exactly: an upload of n scalars is one upload of 4n bytes into one new buffer, a buffer of
/// zeros an allocation, a write into a buffer an upload (and a submit of what was recorded) but
/// no allocation, a download one read-back (and one submit) of 4n bytes, an HVP at cached
/// parameters none of these; the CPU has no device and no counters.
fn transfers_are_counted_exactly(g: GpuBackend) {
    assert!(
        subspace_lab::backend::cpu::CpuBackend::<f32>::new()
            .transfers()
            .is_none()
    );
    let (spec, theta, data) = tiny(&[50, 20, 10], Activation::Tanh, 300, 2);
    let mut e = engine(g.clone(), &spec, LossKind::Mse, &data, 64, &theta);
    let p = theta.len();
    let t0 = g.transfers().unwrap();
    let v = g.upload(&rand(p, 1)).unwrap();
    let t1 = g.transfers().unwrap();
    assert_eq!((t1 - t0).uploads, 1, "{:?}", t1 - t0);
    assert_eq!((t1 - t0).bytes_uploaded, 4 * p as u64);
    assert_eq!((t1 - t0).readbacks, 0);
    assert_eq!(
        ((t1 - t0).allocations, (t1 - t0).bytes_allocated),
        (1, 4 * p as u64)
    );
    let mut out = g.zeros(p).unwrap();
    let t1 = g.transfers().unwrap();
    g.write(&mut out, 3, &[1.0, 2.0]).unwrap();
    let w = g.transfers().unwrap() - t1;
    assert_eq!(
        (w.uploads, w.bytes_uploaded, w.allocations, w.readbacks),
        (1, 8, 0, 0),
        "{w:?}"
    );
    assert_eq!(g.download_range(&out, 2, 3).unwrap(), vec![0.0, 1.0, 2.0]);
    assert!(
        g.write(&mut out, p - 1, &[1.0, 2.0]).is_err(),
        "out of range"
    );
    // A write is ordered after the work recorded before it: that work sees the old values.
    let mut src = g.upload(&[1.0, 2.0, 3.0]).unwrap();
    let mut dst = g.zeros(3).unwrap();
    g.copy(&src, 0, &mut dst, 0, 3).unwrap();
    g.write(&mut src, 0, &[7.0, 8.0, 9.0]).unwrap();
    g.axpy(1.0, &src, 0, &mut dst, 0, 3).unwrap();
    assert_eq!(g.download(&dst).unwrap(), vec![8.0, 10.0, 12.0]);
    let t1 = g.transfers().unwrap();
    e.hvp(&v, 0, &mut out, 0).unwrap();
    let t2 = g.transfers().unwrap();
    let moved = t2 - t1;
    assert!(moved.dispatches > 0, "an HVP records its kernels");
    assert_eq!(
        subspace_lab::backend::Transfers {
            dispatches: 0,
            ..moved
        },
        Default::default(),
        "an HVP moves nothing by itself"
    );
    let hv = g.download(&out).unwrap();
    let d = g.transfers().unwrap() - t2;
    assert_eq!(hv.len(), p);
    assert_eq!(
        (d.readbacks, d.bytes_read, d.submits, d.uploads),
        (1, 4 * p as u64, 1, 0)
    );
}

gpu_test!(oversized_buffers_are_clear_errors);
fn oversized_buffers_are_clear_errors(g: GpuBackend) {
    let e = g.zeros(40 << 20).unwrap_err().to_string();
    assert!(e.contains("exceeds") && e.contains("--backend cpu"), "{e}");
}

gpu_test!(a_shared_device_computes_the_same);
/// A backend on a device opened elsewhere (the desktop app shares its renderer's this way) computes
/// what the backend on its own device does.
fn a_shared_device_computes_the_same(g: GpuBackend) {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let name = g.adapter_description();
    let Some(adapter) = adapters
        .into_iter()
        .find(|a| name.contains(&a.get_info().name))
    else {
        panic!("the adapter of {name} is not listed again");
    };
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let shared = GpuBackend::on_device(device, queue, adapter.get_info()).unwrap();
    let s = (false, true, 40, 30, 50, 1.0, 0.0);
    let (a, b, c0) = (rand(40 * 50, 11), rand(30 * 50, 12), rand(40 * 30, 13));
    let mine = gemm_on(&shared, s, (&a, 0), (&b, 0), (&c0, 0));
    let theirs = gemm_on(&g, s, (&a, 0), (&b, 0), (&c0, 0));
    assert_eq!(
        mine, theirs,
        "same kernels on the same adapter: identical results"
    );
}

/// Uniform values in [−s, s] (a small LCG: independent of `rand`'s streams).
fn uniform(n: usize, seed: u64, s: f64) -> Vec<f64> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s * (2.0 * ((x >> 11) as f64 / (1u64 << 53) as f64) - 1.0)
        })
        .collect()
}

/// `OFF` scalars of junk ahead of `v`: every operand sits at a non-zero offset.
const OFF: usize = 5;
fn at_off(v: &[f64]) -> Vec<f64> {
    let mut o = vec![7.5; OFF];
    o.extend_from_slice(v);
    o
}

/// Every sequence kernel of `be` at the paper's attention sizes (T = 51, dh = 8), operands at
/// offsets, the named outputs downloaded (without their leading junk).
fn seq_kernels<B: Backend>(be: &B, masked: bool, rows: usize) -> Vec<(String, Vec<f64>)> {
    use subspace_lab::backend::{Attn, Ln, Seq, TokenIndex};
    let (t, heads, dh, vocab) = (51, 2, 8, 40);
    let d = heads * dh;
    // Row r: r mod 4 = 0 no padding, 1 trailing padding, 2 only padding, 3 leading padding.
    let ids: Vec<f64> = (0..rows)
        .flat_map(|r| {
            (0..t).map(move |p| {
                let pad = match r % 4 {
                    0 => false,
                    1 => p >= 20 + r % 7,
                    2 => true,
                    _ => p < 9,
                };
                if pad {
                    0.0
                } else {
                    (1 + (r * 13 + p * 7) % (vocab - 1)) as f64
                }
            })
        })
        .collect();
    let up = |v: &[f64]| be.upload(&at_off(v)).unwrap();
    let z = |n: usize| be.upload(&vec![0.25; n + OFF]).unwrap();
    let get = |b: &B::Buf| be.download(b).unwrap()[OFF..].to_vec();
    let mut out = Vec::new();
    let idb = up(&ids);
    // Embedding (an accumulating gradient: out starts at 0.25).
    let g = Seq {
        rows,
        len: t,
        width: d,
    };
    let table = up(&uniform((vocab + t) * d, 1, 1.0));
    let mut y = z(g.numel());
    be.embed(
        g,
        Ten(&idb, OFF),
        Ten(&table, OFF),
        OFF + vocab * d,
        TenMut(&mut y, OFF),
    )
    .unwrap();
    out.push(("embed".into(), get(&y)));
    let ti = TokenIndex::new(&ids, vocab);
    let (st, or) = (be.upload(&ti.start).unwrap(), be.upload(&ti.order).unwrap());
    let gy = up(&uniform(g.numel(), 2, 1.0));
    let mut gt = z(vocab * d);
    be.embed_grad(g, vocab, &st, &or, Ten(&gy, OFF), TenMut(&mut gt, OFF))
        .unwrap();
    out.push(("embed_grad".into(), get(&gt)));
    // Mean over positions and its adjoint.
    let mut m = z(rows * d);
    be.seq_mean(
        g,
        masked,
        Ten(&idb, OFF),
        Ten(&gy, OFF),
        TenMut(&mut m, OFF),
    )
    .unwrap();
    out.push(("seq_mean".into(), get(&m)));
    let dm = up(&uniform(rows * d, 3, 1.0));
    let mut dx = z(g.numel());
    be.seq_mean_adjoint(
        g,
        masked,
        Ten(&idb, OFF),
        Ten(&dm, OFF),
        TenMut(&mut dx, OFF),
    )
    .unwrap();
    out.push(("seq_mean_adjoint".into(), get(&dx)));
    // LayerNorm over the rows·T positions (width 16, inputs with an offset mean).
    let l = Ln {
        rows: rows * t,
        width: d,
        eps: 1e-6,
        gamma: 3,
        beta: 3 + d,
    };
    let n = l.rows * l.width;
    let x = up(&uniform(n, 4, 2.0)
        .iter()
        .map(|v| v + 3.0)
        .collect::<Vec<_>>());
    let th = be.upload(&uniform(3 + 2 * d, 5, 1.5)).unwrap();
    let vv = up(&uniform(3 + 2 * d, 6, 1.0));
    let (rx, dy, rdy) = (
        up(&uniform(n, 7, 1.0)),
        up(&uniform(n, 8, 1.0)),
        up(&uniform(n, 9, 1.0)),
    );
    let (mut a, mut b) = (z(n), z(n));
    be.layer_norm(l, Ten(&x, OFF), &th, TenMut(&mut a, OFF))
        .unwrap();
    out.push(("layer_norm".into(), get(&a)));
    be.layer_norm_vjp(
        l,
        Ten(&x, OFF),
        &th,
        Ten(&dy, OFF),
        TenMut(&mut a, OFF),
        TenMut(&mut b, OFF),
    )
    .unwrap();
    out.push(("layer_norm_vjp dx".into(), get(&a)));
    out.push(("layer_norm_vjp prod".into(), get(&b)));
    be.layer_norm_jvp(
        l,
        Dual {
            val: Ten(&x, OFF),
            r: Ten(&rx, OFF),
        },
        ThetaV {
            theta: &th,
            v: Ten(&vv, OFF),
        },
        TenMut(&mut a, OFF),
    )
    .unwrap();
    out.push(("layer_norm_jvp".into(), get(&a)));
    be.layer_norm_rvjp(
        l,
        Dual {
            val: Ten(&x, OFF),
            r: Ten(&rx, OFF),
        },
        ThetaV {
            theta: &th,
            v: Ten(&vv, OFF),
        },
        Dual {
            val: Ten(&dy, OFF),
            r: Ten(&rdy, OFF),
        },
        TenMut(&mut a, OFF),
        TenMut(&mut b, OFF),
    )
    .unwrap();
    out.push(("layer_norm_rvjp dx".into(), get(&a)));
    out.push(("layer_norm_rvjp prod".into(), get(&b)));
    // Attention: scores of order 1–10 so that the softmax is far from uniform.
    let at = Attn {
        rows,
        seq: t,
        heads,
        head_dim: dh,
        masked,
    };
    let nq = rows * t * 3 * d;
    let (qkv, rqkv) = (up(&uniform(nq, 10, 1.5)), up(&uniform(nq, 11, 1.0)));
    let (dout, rdout) = (
        up(&uniform(rows * t * d, 12, 1.0)),
        up(&uniform(rows * t * d, 13, 1.0)),
    );
    let (mut o, mut probs, mut dq) = (z(rows * t * d), z(rows * at.probs_per_row()), z(nq));
    be.attention(
        at,
        Ten(&idb, OFF),
        Ten(&qkv, OFF),
        TenMut(&mut o, OFF),
        TenMut(&mut probs, OFF),
    )
    .unwrap();
    out.push(("attention out".into(), get(&o)));
    out.push(("attention probs".into(), get(&probs)));
    be.attention_vjp(
        at,
        Ten(&qkv, OFF),
        Ten(&probs, OFF),
        Ten(&dout, OFF),
        TenMut(&mut dq, OFF),
    )
    .unwrap();
    out.push(("attention_vjp".into(), get(&dq)));
    be.attention_jvp(
        at,
        Dual {
            val: Ten(&qkv, OFF),
            r: Ten(&rqkv, OFF),
        },
        Ten(&probs, OFF),
        TenMut(&mut o, OFF),
    )
    .unwrap();
    out.push(("attention_jvp".into(), get(&o)));
    be.attention_rvjp(
        at,
        Dual {
            val: Ten(&qkv, OFF),
            r: Ten(&rqkv, OFF),
        },
        Ten(&probs, OFF),
        Dual {
            val: Ten(&dout, OFF),
            r: Ten(&rdout, OFF),
        },
        TenMut(&mut dq, OFF),
    )
    .unwrap();
    out.push(("attention_rvjp".into(), get(&dq)));
    out
}

gpu_test!(sequence_kernels_match_cpu_at_the_papers_sizes);
/// The sequence kernels at the paper's sizes (T = 51, 2 heads of 8) against CPU f64, masked
/// (with a sequence of padding only) and not, twice with growing rows (the attention scratch
/// grows), every operand at an offset.
fn sequence_kernels_match_cpu_at_the_papers_sizes(g: GpuBackend) {
    for masked in [true, false] {
        for rows in [3, 6] {
            let want = seq_kernels(&F64::new(), masked, rows);
            let got = seq_kernels(&g, masked, rows);
            for ((name, w), (_, v)) in want.iter().zip(&got) {
                let e = rel_err(v, w);
                assert!(
                    e < 2e-5,
                    "{name} (masked {masked}, {rows} rows): {e:e} from CPU f64"
                );
            }
        }
    }
}

gpu_test!(a_transformer_on_the_gpu_matches_cpu);
/// A whole small Transformer (embedding, attention, LayerNorm, mean pooling, residuals): loss,
/// gradient and HVP on the GPU against CPU f64, whole data set and in chunks.
fn a_transformer_on_the_gpu_matches_cpu(g: GpuBackend) {
    use subspace_lab::data::dataset::Dataset;
    use subspace_lab::nn::engine::Engine;
    use subspace_lab::nn::transformer::TransformerSpec;
    for (masked, act, loss) in [
        (true, Activation::Silu, LossKind::Ce),
        (false, Activation::Gelu, LossKind::Mse),
    ] {
        let spec = TransformerSpec::new(12, 9, 8, 2, 2, act, masked, 3).unwrap();
        let n = 40;
        let x: Vec<f64> = (0..n)
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
        let data = Dataset::new(9, 3, x, labels).unwrap();
        // Damian's init has a zero head: perturb every weight so that all of θ gets curvature.
        let theta: Vec<f64> = spec
            .init(4)
            .iter()
            .zip(uniform(spec.graph().num_params(), 14, 0.3))
            .map(|(a, b)| a + b)
            .collect();
        let v = rand(theta.len(), 15);
        fn run<B: Backend + Clone>(
            mut e: Engine<B>,
            theta: &[f64],
            v: &[f64],
        ) -> (f64, Vec<f64>, Vec<f64>) {
            let loss = e.set_params_host(theta).unwrap().loss;
            let b = e.backend().clone();
            let grad = b.download(e.grad().unwrap()).unwrap();
            let mut h = b.zeros(v.len()).unwrap();
            e.hvp(&b.upload(v).unwrap(), 0, &mut h, 0).unwrap();
            (loss, grad, b.download(&h).unwrap())
        }
        let cpu = Engine::new(F64::new(), spec.clone(), loss, &data, 0).unwrap();
        let (lc, gc, hc) = run(cpu, &theta, &v);
        for chunk in [0, 16] {
            let e = Engine::new(g.clone(), spec.clone(), loss, &data, chunk).unwrap();
            let (lg, gg, hg) = run(e, &theta, &v);
            let what = format!("masked {masked}, {loss:?}, chunk {chunk}");
            assert!(
                (lg - lc).abs() <= 1e-5 * lc.abs(),
                "{what}: loss {lg} vs {lc}"
            );
            assert!(
                rel_err(&gg, &gc) < 1e-5,
                "{what}: gradient {:e}",
                rel_err(&gg, &gc)
            );
            assert!(
                rel_err(&hg, &hc) < 1e-5,
                "{what}: HVP {:e}",
                rel_err(&hg, &hc)
            );
        }
    }
}

// A device of its own: the counters of the shared one also count the other tests' traffic.
gpu_test!(own a_dom_sgd_step_keeps_its_state_on_the_device);
/// One warm Dom-SGD step on the device (issue 18's counting goals, deterministic): θ is never
/// uploaded and no p-long vector is read back — per step the host sends the minibatch's data rows
/// and a few Ritz coefficients, and receives scalars and k-long coefficient vectors. Counted for
/// both warm solvers; the block solver synchronises fewer times.
fn a_dom_sgd_step_keeps_its_state_on_the_device(g: GpuBackend) {
    use subspace_lab::experiment::run::{Stepper, Stream, WarmSolver};
    use subspace_lab::experiment::spec::{OptKind, OptimizerSpec, Projection};
    let (spec, theta, data) = tiny(&[784, 24, 3], Activation::Tanh, 120, 3);
    let p = theta.len();
    let batch = 50;
    // What a minibatch is: its inputs and one-hot targets, f32.
    let minibatch_bytes = (batch * (784 + 3) * 4) as u64;
    for solver in [WarmSolver::Lanczos, WarmSolver::Block] {
        for opt in [
            OptimizerSpec::sgd(0.01, batch),
            OptimizerSpec::new(OptKind::Adam, 1e-4, Some(batch)),
        ] {
            let mut st = Stepper::new(g.clone(), &spec, LossKind::Mse, &data, 3, 3, 1e-3).unwrap();
            st.set_warm_solver(solver);
            st.set_theta(&theta).unwrap();
            let mut stream = Stream::new(data.n, 0);
            for _ in 0..2 {
                st.spectrum().unwrap();
                st.step(&opt, &mut stream, Projection::Dominant, true)
                    .unwrap();
            }
            let t0 = g.transfers().unwrap();
            let sp = st.spectrum().unwrap();
            let info = st
                .step(&opt, &mut stream, Projection::Dominant, true)
                .unwrap();
            let t = g.transfers().unwrap() - t0;
            assert!(info.dom_lr.is_finite() && info.bulk_lr.is_finite());
            eprintln!(
                "{solver:?} {:?}: λ {:?}, {} HVPs; {} submits, {} read-backs ({} bytes), {} uploads ({} bytes), {} allocations ({} bytes); p = {p}",
                opt.name,
                sp.values,
                sp.hvps,
                t.submits,
                t.readbacks,
                t.bytes_read,
                t.uploads,
                t.bytes_uploaded,
                t.allocations,
                t.bytes_allocated
            );
            // θ (4p bytes) is not among the uploads: the minibatch plus small coefficient rows.
            assert!(
                t.bytes_uploaded < minibatch_bytes + 16 * 1024 && (4 * p as u64) > 16 * 1024,
                "{solver:?}: {} bytes uploaded",
                t.bytes_uploaded
            );
            // Nothing p-long comes back: a few kB of scalars and coefficient vectors.
            assert!(
                t.bytes_read < 16 * 1024,
                "{solver:?}: {} bytes read",
                t.bytes_read
            );
            // Lanczos: one read-back per HVP (its orthogonalisation's coefficients and norm
            // together; the first also brings the warm start's norms) and two more per step: the
            // solver's convergence check (true residuals, the warm-start evidence, U·∇L and
            // ‖∇L‖², the full-data loss statistics) and the step's end (the minibatch's loss
            // statistics, the effective rates, the update's finiteness). The goal:
            // read-backs ≤ solver iterations + 2.
            if solver == WarmSolver::Lanczos {
                assert!(
                    t.readbacks <= sp.hvps as u64 + 2,
                    "{} read-backs for {} HVPs",
                    t.readbacks,
                    sp.hvps
                );
            }
            // Steady state, both solvers: the minibatch and the Ritz coefficients are written
            // into existing buffers, the solve's vectors into the previous basis.
            assert_eq!(
                t.allocations, 0,
                "{solver:?}: {} buffers created",
                t.allocations
            );
        }
    }
}

gpu_test!(own batched_gemm_is_one_dispatch_and_equals_single_products);
/// A batched GEMM is one dispatch on the GPU and gives each product bit for bit what a single
/// GEMM gives it (shared operands by stride 0, transposes, accumulation); on the CPU it equals
/// the products one after another. Overlapping outputs are refused.
fn batched_gemm_is_one_dispatch_and_equals_single_products(g: GpuBackend) {
    use subspace_lab::backend::Batch;
    let c = F64::new();
    let count = 5;
    for &(ta, tb, m, n, k, beta) in &[
        (false, true, 70, 33, 45, 0.0),
        (false, false, 64, 130, 17, 1.0),
        (true, false, 20, 48, 90, 1.0),
        (false, true, 1, 40, 7, 0.5),
    ] {
        for share_a in [true, false] {
            // A shared (stride 0) and B per product with a gap between them, or the other way
            // round; C per product.
            let (sa, sb, sc) = if share_a {
                (0, k * n + 3, m * n + 1)
            } else {
                (m * k + 2, 0, m * n + 1)
            };
            let a = rand(1 + count * sa.max(m * k), 31);
            let b = rand(2 + count * sb.max(k * n), 32);
            let c0 = rand(1 + count * sc, 33);
            let batch = Batch {
                count,
                a: sa,
                b: sb,
                c: sc,
            };
            let (ga, gb) = (g.upload(&a).unwrap(), g.upload(&b).unwrap());
            let mut one = g.upload(&c0).unwrap();
            let mut each = g.upload(&c0).unwrap();
            let t0 = g.transfers().unwrap();
            g.gemm_batched(
                Mat::op(&ga, 1, m, k, ta),
                Mat::op(&gb, 2, k, n, tb),
                MatMut::new(&mut one, 1, m, n),
                0.7,
                beta,
                batch,
            )
            .unwrap();
            let t1 = g.transfers().unwrap();
            assert_eq!((t1 - t0).dispatches, 1, "{m}×{n}×{k}: one dispatch");
            for i in 0..count {
                g.gemm(
                    Mat::op(&ga, 1 + i * sa, m, k, ta),
                    Mat::op(&gb, 2 + i * sb, k, n, tb),
                    MatMut::new(&mut each, 1 + i * sc, m, n),
                    0.7,
                    beta,
                )
                .unwrap();
            }
            let (one, each) = (g.download(&one).unwrap(), g.download(&each).unwrap());
            assert_eq!(one, each, "{m}×{n}×{k}: bit for bit");
            let (ca, cb) = (c.upload(&a).unwrap(), c.upload(&b).unwrap());
            let mut cc = c.upload(&c0).unwrap();
            c.gemm_batched(
                Mat::op(&ca, 1, m, k, ta),
                Mat::op(&cb, 2, k, n, tb),
                MatMut::new(&mut cc, 1, m, n),
                0.7,
                beta,
                batch,
            )
            .unwrap();
            let cc = c.download(&cc).unwrap();
            let worst = max_abs_diff(&one, &cc);
            assert!(
                worst <= 1e-4 * (k as f64).sqrt(),
                "{m}×{n}×{k}: {worst} from the CPU"
            );
            assert_eq!(cc[0], c0[0], "before the first product: untouched");
            let overlap = Batch {
                c: m * n - 1,
                ..batch
            };
            let mut x = g.upload(&c0).unwrap();
            if m * n > 1 {
                assert!(
                    g.gemm_batched(
                        Mat::op(&ga, 1, m, k, ta),
                        Mat::op(&gb, 2, k, n, tb),
                        MatMut::new(&mut x, 1, m, n),
                        1.0,
                        0.0,
                        overlap
                    )
                    .is_err()
                );
            }
        }
    }
}

gpu_test!(own a_block_hvp_batches_its_products_on_the_gpu);
/// The block HVP on the GPU: each row equals the single HVP bit for bit (the batched GEMMs run
/// each direction's product as a single GEMM would), and its fully connected layers' products
/// are one dispatch for all directions, so a block of b directions records fewer dispatches
/// than b single HVPs (counted, deterministic; the speed is for a device run to time).
fn a_block_hvp_batches_its_products_on_the_gpu(g: GpuBackend) {
    let (spec, theta, data) = tiny(&[30, 24, 16, 5], Activation::Tanh, 70, 6);
    let p = theta.len();
    let mut e = engine(g.clone(), &spec, LossKind::Mse, &data, 0, &theta);
    let rows = 4;
    let v = g.upload(&rand(rows * p, 8)).unwrap();
    let mut block = g.zeros(rows * p).unwrap();
    // Once to grow the stacked R-buffers, then counted.
    e.hvp_block(&v, 0, rows, &mut block, 0).unwrap();
    let t0 = g.transfers().unwrap();
    e.hvp_block(&v, 0, rows, &mut block, 0).unwrap();
    let t1 = g.transfers().unwrap();
    let block = g.download(&block).unwrap();
    let mut singles = 0;
    for r in 0..rows {
        let mut one = g.zeros(p).unwrap();
        let s0 = g.transfers().unwrap();
        e.hvp(&v, r * p, &mut one, 0).unwrap();
        singles += (g.transfers().unwrap() - s0).dispatches;
        let one = g.download(&one).unwrap();
        assert_eq!(&block[r * p..(r + 1) * p], &one[..], "row {r}");
    }
    let batched = (t1 - t0).dispatches;
    eprintln!("block of {rows}: {batched} dispatches; {rows} single HVPs: {singles}");
    assert!(
        batched * 10 <= singles * 8,
        "{batched} dispatches for the block vs {singles} for single HVPs"
    );
}

gpu_test!(own a_transformer_block_hvp_equals_single_hvps_on_the_gpu);
/// The block HVP of the Transformer on the GPU (embedding, attention, LayerNorm, residual adds,
/// per-position linear layers batched over the block) equals its single HVPs bit for bit.
fn a_transformer_block_hvp_equals_single_hvps_on_the_gpu(g: GpuBackend) {
    use subspace_lab::data::dataset::Dataset;
    use subspace_lab::nn::engine::Engine;
    use subspace_lab::nn::transformer::TransformerSpec;
    let spec = TransformerSpec::new(12, 9, 8, 2, 2, Activation::Gelu, true, 3).unwrap();
    let n = 20;
    let x: Vec<f64> = (0..n)
        .flat_map(|r| (0..9).map(move |q| ((r * 5 + q * 3) % 12) as f64))
        .collect();
    let data = Dataset::new(9, 3, x, (0..n).map(|r| (r % 3) as u8).collect()).unwrap();
    let p = spec.graph().num_params();
    let theta: Vec<f64> = spec
        .init(4)
        .iter()
        .zip(uniform(p, 14, 0.3))
        .map(|(a, b)| a + b)
        .collect();
    let mut e = Engine::new(g.clone(), spec, LossKind::Ce, &data, 8).unwrap();
    e.set_params_host(&theta).unwrap();
    let rows = 3;
    let v = g.upload(&rand(rows * p, 21)).unwrap();
    let mut block = g.zeros(rows * p).unwrap();
    e.hvp_block(&v, 0, rows, &mut block, 0).unwrap();
    let block = g.download(&block).unwrap();
    for r in 0..rows {
        let mut one = g.zeros(p).unwrap();
        e.hvp(&v, r * p, &mut one, 0).unwrap();
        let one = g.download(&one).unwrap();
        assert!(one.iter().any(|&x| x != 0.0));
        assert_eq!(&block[r * p..(r + 1) * p], &one[..], "row {r}");
    }
}

/// im2col then col2im (β = 0.5 onto a prior dx) of images `g` at geometry `k` on `be`, the
/// operands at offsets 3 (x), 5 (col) and 2 (dx) in larger buffers: (col, dx) downloaded.
fn im2col_col2im<B: Backend>(
    be: &B,
    g: subspace_lab::backend::Nhwc,
    k: subspace_lab::backend::ConvGeom,
) -> (Vec<f64>, Vec<f64>) {
    let (oh, ow) = (k.out_size(g.h), k.out_size(g.w));
    let cols = g.n * oh * ow * k.taps() * g.c;
    let x = be.upload(&uniform(g.len() + 3, 31, 1.0)).unwrap();
    let mut col = be.upload(&uniform(cols + 5, 32, 1.0)).unwrap();
    be.im2col(g, k, Ten(&x, 3), TenMut(&mut col, 5)).unwrap();
    let gy = be.upload(&uniform(cols + 5, 33, 1.0)).unwrap();
    let mut dx = be.upload(&uniform(g.len() + 2, 34, 1.0)).unwrap();
    be.col2im(g, k, Ten(&gy, 5), 0.5, TenMut(&mut dx, 2))
        .unwrap();
    (be.download(&col).unwrap(), be.download(&dx).unwrap())
}

gpu_test!(im2col_and_col2im_match_cpu_at_every_geometry);
/// The convolution's im2col and col2im at kernel 1 and 3, stride 1 and 2, padding 0 and 1
/// (3×3/1/1 on its specialised entry point, the others on the general one), odd and even image
/// sizes: im2col copies (equal to the f32 rounding of x), col2im sums ≤ 9 values in [−1, 1]
/// (≤ 16·ε).
fn im2col_and_col2im_match_cpu_at_every_geometry(g: GpuBackend) {
    use subspace_lab::backend::{ConvGeom, Nhwc};
    let c = F64::new();
    for kernel in [1, 3] {
        for stride in [1, 2] {
            for pad in [0, 1] {
                let k = ConvGeom::new(kernel, stride, pad);
                for (h, w) in [(5, 4), (4, 6), (1, 1)] {
                    let im = Nhwc { n: 2, h, w, c: 3 };
                    if k.out_hw(im).is_err() {
                        continue;
                    }
                    let (col_c, dx_c) = im2col_col2im(&c, im, k);
                    let (col_g, dx_g) = im2col_col2im(&g, im, k);
                    let e_col = max_abs_diff(&col_g, &col_c);
                    let e_dx = max_abs_diff(&dx_g, &dx_c);
                    assert!(e_col <= EPS, "{k} on {h}×{w}: im2col {e_col:e}");
                    assert!(e_dx <= 16.0 * EPS, "{k} on {h}×{w}: col2im {e_dx:e}");
                }
            }
        }
    }
}
