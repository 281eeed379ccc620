//! The jobs behind the CLI, generic over the backend: `spectrum` (loss, gradient, top-k Hessian
//! eigenpairs and χ_k(∇L) at given weights) and `bench` (gradient, HVP and top-10 timings).

use crate::backend::{Backend, LossKind, Mat, MatMut};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::hessian::Operator;
use crate::hessian::lanczos::{LanczosOptions, Progress, Verify, lanczos};
use crate::hessian::subspace::Subspace;
use crate::nn::engine::Engine;
use crate::nn::graph::Op;
use crate::nn::model::ModelSpec;
use std::time::Instant;

mod flops;
mod whole;
pub use flops::{
    HvpLimit, OpFlops, OpFlopsRow, Rows, dense_gemm_gflops, hvp_flops, hvp_flops_on, op_flops,
};
pub use whole::{DensityReport, WholeOptions, WholeReport, whole_spectrum};

/// What `spectrum` reports (also its `--json` object).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SpectrumReport {
    pub loss: f64,
    pub accuracy: f64,
    pub grad_norm: f64,
    /// Top-k Hessian eigenvalues, largest first.
    pub eigenvalues: Vec<f64>,
    /// ‖H u_i − λ_i u_i‖ of each returned pair.
    pub residuals: Vec<f64>,
    /// χ_k(∇L) = ‖P_k ∇L‖ / ‖∇L‖.
    pub chi_k: f64,
    pub k: usize,
    /// Hessian-vector products spent by the eigen-solver.
    pub hvps: usize,
    pub converged: bool,
    /// Whether the solver certified that no eigenvalue ≥ λ_k was missed (copies of a repeated
    /// eigenvalue included).
    pub certified: bool,
    /// What the solver cannot vouch for (e.g. a multiplicity that may be unresolved).
    pub warnings: Vec<String>,
    pub tol: f64,
    /// Wall time of the whole computation (gradient and eigen-solve), seconds.
    pub seconds: f64,
    pub backend: String,
    /// GPU adapter (name, type, API) when the backend has one.
    pub adapter: Option<String>,
    pub precision: String,
    pub params: usize,
    pub samples: usize,
    pub loss_kind: String,
    /// Layer widths of a fully connected network (empty for others).
    pub widths: Vec<usize>,
    /// The network, e.g. `cnn-relu 3x32x32 [32, 32] → 10`.
    pub model: String,
    /// The data, e.g. `MNIST-5k, normalize` (set by the caller that loaded them; empty otherwise).
    #[serde(default)]
    pub data: String,
    /// The smallest eigenvalue λ_min (a top-1 solve on −H, [`spectrum_with`]; None when not
    /// asked). An upper bound when `lambda_min_converged` is false (a Ritz value of −H is at most
    /// its largest eigenvalue, so the estimate is ≥ λ_min).
    pub lambda_min: Option<f64>,
    /// Whether the λ_min solve met its tolerance.
    pub lambda_min_converged: bool,
    /// HVPs spent on λ_min (not counted in `hvps`).
    pub lambda_min_hvps: usize,
    /// The relative residual tolerance of the λ_min solve: `tol`, at least [`LAMBDA_MIN_TOL`].
    pub lambda_min_tol: f64,
    /// The kinks θ sits on over the data (ReLU inputs exactly 0, tied max-pool windows; with
    /// λ_min, [`spectrum_with`]; None when not asked).
    pub kinks: Option<crate::nn::ops::Kinks>,
    /// Settings a weights file did not state and were taken at their defaults (set by the caller
    /// that loaded the file: key, value, the option that sets it).
    pub assumed: Vec<crate::nn::weights::Assumed>,
}

/// The floor of the λ_min solve's tolerance: λ_min only has to be compared with λ_k, so it is
/// never solved tighter than this (a looser `tol` is kept).
pub const LAMBDA_MIN_TOL: f64 = 1e-4;

/// −A: its largest eigenvalue is −λ_min(A), so the top-1 solve of [`lanczos`] finds λ_min.
pub struct Negated<'a, B: Backend, O: Operator<B>> {
    pub backend: &'a B,
    pub inner: &'a mut O,
}

impl<B: Backend, O: Operator<B>> Operator<B> for Negated<'_, B, O> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn apply(&mut self, x: &B::Buf, x_off: usize, y: &mut B::Buf, y_off: usize) -> Result<()> {
        self.inner.apply(x, x_off, y, y_off)?;
        self.backend.scale(-1.0, y, y_off, self.inner.dim())
    }
}

/// λ_min of `op` by a top-1 Lanczos solve on −A to `tol` (relative to |λ_min|), without the
/// verification round (one value, no multiplicity to certify): (the estimate, converged, HVPs).
pub fn lambda_min<B: Backend, O: Operator<B>>(
    backend: &B,
    op: &mut O,
    tol: f64,
    seed: u64,
) -> Result<(f64, bool, usize)> {
    let opts = LanczosOptions {
        k: 1,
        tol,
        seed,
        verify: Verify::Never,
        ..LanczosOptions::default()
    };
    let mut neg = Negated { backend, inner: op };
    let eig = lanczos(backend, &mut neg, &opts, None, &mut |_| {})?;
    let value = eig.values.first().map_or(f64::NAN, |v| -v);
    Ok((value, eig.converged, eig.products))
}

/// Settings of the eigen-solve.
#[derive(Clone, Debug)]
pub struct SpectrumOptions {
    pub lanczos: LanczosOptions,
    /// Samples per chunk of the HVP (0: the backend's default).
    pub chunk: usize,
}

/// Top-k spectrum of the full-data loss Hessian of `spec` at θ on `data`.
pub fn spectrum<B: Backend + Clone>(
    backend: B,
    spec: &ModelSpec,
    theta: &[f64],
    data: &Dataset,
    loss: LossKind,
    opts: &SpectrumOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<SpectrumReport> {
    spectrum_with(backend, spec, theta, data, (loss, false), opts, progress)
}

/// [`spectrum`], and with `lambda_min` also the caveats: λ_min (a top-1 solve on −H, its HVPs
/// counted apart) and whether θ sits on a kink ([`Engine::count_kinks`], a warning naming the
/// counts and the conventions taken there). When λ_min is negative and larger in magnitude than λ_k the report's warnings say so
/// ([`crate::hessian::caveats::negative_dominance`]; issue 31 case 13: the paper orders the
/// eigenvalues algebraically, a solver by magnitude would have returned λ_min among the top k).
pub fn spectrum_with<B: Backend + Clone>(
    backend: B,
    spec: &ModelSpec,
    theta: &[f64],
    data: &Dataset,
    (loss, with_lambda_min): (LossKind, bool),
    opts: &SpectrumOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<SpectrumReport> {
    let at = At { spec, theta, data };
    Ok(spectrum_parts(backend, at, (loss, with_lambda_min), opts, progress)?.report)
}

/// The network, weights and data a job works at.
#[derive(Clone, Copy)]
pub struct At<'a> {
    pub spec: &'a ModelSpec,
    pub theta: &'a [f64],
    pub data: &'a Dataset,
}

/// What [`spectrum_parts`] leaves besides its report: the engine (at θ, its gradient computed)
/// and the top-k eigenvectors (rows of a k × p buffer), for jobs that go on from there.
pub struct SpectrumParts<B: Backend> {
    pub report: SpectrumReport,
    pub engine: Engine<B>,
    pub vectors: B::Buf,
}

/// [`spectrum_with`], keeping the engine and the eigenvectors ([`SpectrumParts`]).
pub fn spectrum_parts<B: Backend + Clone>(
    backend: B,
    At { spec, theta, data }: At<'_>,
    (loss, with_lambda_min): (LossKind, bool),
    opts: &SpectrumOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<SpectrumParts<B>> {
    let start = Instant::now();
    if backend.adapter().is_none() {
        // The CPU backends allocate in this process: refuse what cannot fit before allocating.
        let elem = backend.precision().bytes();
        crate::mem::check_spectrum(
            spec,
            data.n,
            opts.lanczos.k,
            opts.lanczos.max_basis,
            elem,
            "--k",
        )?;
    } else {
        // A GPU allocates on its device; each buffer must fit one storage binding.
        let lim = crate::mem::BufferLimit {
            max_len: backend.max_buffer_len(),
            elem: backend.precision().bytes(),
            k_option: "--k",
        };
        let (k, basis) = (opts.lanczos.k, opts.lanczos.max_basis);
        crate::mem::check_buffers(spec, data.n, k, basis, lim)?;
    }
    let mut engine = Engine::new(backend.clone(), spec.clone(), loss, data, opts.chunk)?;
    let eval = engine.set_params_host(theta)?;
    let p = engine.num_params();
    let grad_norm = backend.norm(engine.grad()?, 0, p)?;
    let eig = lanczos(&backend, &mut engine, &opts.lanczos, None, progress)?;
    let k = eig.values.len();
    let mut sub = Subspace::new(&backend, eig.vectors, k, p)?;
    let chi_k = sub.chi(&backend, engine.grad()?)?;
    let vectors = sub.basis;
    if !eig.converged {
        return Err(Error::InvalidArgument(format!(
            "Lanczos did not converge to tol {} within {} HVPs (worst residual {:.3e} relative): raise --max-hvps or --tol{}",
            opts.lanczos.tol,
            eig.products,
            eig.residuals.iter().fold(0.0f64, |a, &r| a.max(r)) / eig.scale,
            eig.warnings
                .iter()
                .map(|w| format!("; {w}"))
                .collect::<String>()
        )));
    }
    let mut warnings = eig.warnings;
    let lambda_min_tol = opts.lanczos.tol.max(LAMBDA_MIN_TOL);
    let (lambda_min, lambda_min_converged, lambda_min_hvps, kinks) = if with_lambda_min {
        let (l, ok, n) = lambda_min(
            &backend,
            &mut engine,
            lambda_min_tol,
            opts.lanczos.seed ^ 0x6c6d_696e,
        )?;
        if let Some(w) = crate::hessian::caveats::negative_dominance(&eig.values, l) {
            warnings.push(w);
        }
        let k = engine.count_kinks()?;
        if let Some(w) = crate::hessian::caveats::on_kinks(k.relu_zeros, k.pool_ties) {
            warnings.push(w);
        }
        (Some(l), ok, n, Some(k))
    } else {
        (None, false, 0, None)
    };
    let report = SpectrumReport {
        loss: eval.loss,
        accuracy: eval.accuracy,
        grad_norm,
        eigenvalues: eig.values,
        residuals: eig.residuals,
        chi_k,
        k,
        hvps: eig.products,
        converged: eig.converged,
        certified: eig.certified,
        warnings,
        tol: opts.lanczos.tol,
        seconds: start.elapsed().as_secs_f64(),
        backend: backend.name(),
        adapter: backend.adapter(),
        precision: backend.precision().name().into(),
        params: p,
        samples: data.n,
        loss_kind: loss.name().into(),
        widths: spec.as_mlp().map(|m| m.widths.clone()).unwrap_or_default(),
        model: spec.describe(),
        data: String::new(),
        lambda_min,
        lambda_min_converged,
        lambda_min_hvps,
        lambda_min_tol,
        kinks,
        assumed: Vec::new(),
    };
    Ok(SpectrumParts {
        report,
        engine,
        vectors,
    })
}

/// Settings of `bench`.
#[derive(Clone, Copy, Debug)]
pub struct BenchOptions {
    /// Repetitions (medians are reported; the top-10 solve at most 3 times).
    pub runs: usize,
    /// Samples per chunk of the HVP (0: the backend's default).
    pub chunk: usize,
    /// Side of the square GEMM that measures the dense-GEMM rate ([`dense_gemm_gflops`]; 0:
    /// 1024).
    pub gemm_size: usize,
    /// Only the gradient, the HVP and its limit (no top-10 solve, no Dom-SGD steps: NaN in the
    /// report).
    pub hvp_only: bool,
}

/// What `bench` reports (also its `--json` object). Times are medians over `runs`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// The network, e.g. `cnn-relu 3x32x32 [32, 32] → 10`.
    pub model: String,
    /// The data (set by the caller that loaded them; empty otherwise).
    #[serde(default)]
    pub data: String,
    pub backend: String,
    pub adapter: Option<String>,
    pub grad_ms: f64,
    pub hvp_ms: f64,
    pub top10_ms: f64,
    pub top10_hvps: usize,
    pub runs: usize,
    /// Samples per chunk of the HVP.
    pub chunk: usize,
    pub samples: usize,
    pub params: usize,
    /// GFLOP/s of one HVP: [`BenchReport::hvp_flops`] over its time.
    pub hvp_gflops: f64,
    /// Flops of one HVP counted from the graph ([`op_flops`]: 2 per multiply-add of the GEMMs
    /// and attention's products; a masked model's live tokens only).
    pub hvp_flops: f64,
    /// The same count per op.
    pub hvp_flops_per_op: Vec<OpFlopsRow>,
    /// Live tokens of the data (Σ L over the sentences) when the padding is masked.
    pub live_tokens: Option<usize>,
    /// The machine's dense-GEMM rate: a square GEMM of side `dense_gemm_size` through the
    /// backend ([`dense_gemm_gflops`]), GFLOP/s.
    pub dense_gemm_gflops: f64,
    pub dense_gemm_size: usize,
    /// The time `hvp_flops` takes at `dense_gemm_gflops` (the HVP's limit), ms.
    pub hvp_limit_ms: f64,
    /// Measured HVP time over that limit (1 = at the dense-GEMM rate).
    pub hvp_vs_limit: f64,
    /// The HVP's GEMM shapes timed alone through the backend (median of `runs`).
    pub kernels: Vec<KernelTiming>,
    /// One warm Dom-SGD step (median of `runs`, after two unmeasured steps): the minibatch
    /// gradient (batch 50, the paper's SGD rate for the model), the top-k eigenpairs of the
    /// full-data Hessian to tol 1e-3 warm-started from the previous step, the projection P_k g and
    /// the update — what every step of fig. 1 after the switch costs. k = the classes.
    pub step_ms: f64,
    /// HVPs per such step (mean over the measured steps).
    pub step_hvps: f64,
    pub step_k: usize,
    /// Host ↔ device traffic of the last measured step (a backend with a device only).
    pub step_transfers: Option<crate::backend::Transfers>,
    /// The same steps with block Davidson as the warm solver (one block HVP per iteration; see
    /// `WarmSolver`), timed in the same run.
    pub step_ms_block: f64,
    pub step_hvps_block: f64,
    pub step_transfers_block: Option<crate::backend::Transfers>,
}

/// One GEMM shape timed through the backend.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTiming {
    pub name: String,
    pub ms: f64,
    pub gflops: f64,
}

/// Time the GEMM shapes of one HVP chunk (layer 1 forward and backward, layer 2).
fn time_kernels<B: Backend>(
    b: &B,
    spec: &ModelSpec,
    rows: usize,
    runs: usize,
) -> Result<Vec<KernelTiming>> {
    // The GEMMs of the first two layers with parameters: forward X·Wᵀ and weight gradient Gᵀ·X
    // (a convolution's X is its im2col matrix, rows·h·w × 9·c_in).
    let mut shapes = Vec::new();
    for (li, (m, k, n)) in gemm_shapes(spec, rows).into_iter().take(2).enumerate() {
        let l = li + 1;
        shapes.push((false, true, m, n, k, format!("X·W{l}ᵀ {m}×{n}×{k}")));
        shapes.push((true, false, n, k, m, format!("Gᵀ·X{l} {n}×{k}×{m}")));
    }
    let mut out = Vec::new();
    for (ta, tb, m, n, k, name) in shapes {
        let a = b.upload(&crate::hessian::lanczos::random_vector(m * k, 1))?;
        let bb = b.upload(&crate::hessian::lanczos::random_vector(k * n, 2))?;
        let mut c = b.zeros(m * n)?;
        b.gemm(
            Mat::op(&a, 0, m, k, ta),
            Mat::op(&bb, 0, k, n, tb),
            MatMut::new(&mut c, 0, m, n),
            1.0,
            0.0,
        )?;
        b.sync()?;
        let mut t = Vec::new();
        for _ in 0..runs {
            let s = Instant::now();
            b.gemm(
                Mat::op(&a, 0, m, k, ta),
                Mat::op(&bb, 0, k, n, tb),
                MatMut::new(&mut c, 0, m, n),
                1.0,
                0.0,
            )?;
            b.sync()?;
            t.push(s.elapsed().as_secs_f64() * 1e3);
        }
        let ms = median(t);
        out.push(KernelTiming {
            name,
            ms,
            gflops: 2.0 * (m * n * k) as f64 / (ms * 1e6),
        });
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// (rows, inner, outputs) of each layer's GEMM on `n` samples: a linear layer's n × fan_in ×
/// fan_out, a convolution's n·h·w × 9·c_in × c_out.
fn gemm_shapes(spec: &ModelSpec, n: usize) -> Vec<(usize, usize, usize)> {
    gemm_layers(spec, n).into_iter().map(|(s, _)| s).collect()
}

/// [`gemm_shapes`] with whether the layer is the graph's first op (it reads the data: no R{x}).
/// A Transformer's projections act on n·T rows; its attention products are not GEMMs here.
fn gemm_layers(spec: &ModelSpec, n: usize) -> Vec<((usize, usize, usize), bool)> {
    spec.graph()
        .ops
        .iter()
        .enumerate()
        .filter_map(|(t, op)| match op {
            Op::Linear(l) => Some(((n * l.seq, l.fan_in, l.fan_out), t == 0)),
            Op::Conv3x3(c) => Some(((n * c.h * c.w, 9 * c.cin, c.cout), t == 0)),
            _ => None,
        })
        .collect()
}

/// Time warm Dom-SGD steps from θ (see [`BenchReport::step_ms`]): (median ms, mean HVPs, the
/// last step's transfers).
fn time_dom_step<B: Backend + Clone>(
    backend: &B,
    spec: &ModelSpec,
    theta: &[f64],
    data: &Dataset,
    loss: LossKind,
    runs: usize,
    solver: crate::experiment::run::WarmSolver,
) -> Result<(f64, f64, Option<crate::backend::Transfers>)> {
    use crate::experiment::run::{Stepper, Stream};
    use crate::experiment::spec::{OptimizerSpec, Projection};
    let k = spec.output_dim();
    let lr = if matches!(spec, ModelSpec::Mlp(_)) {
        0.01
    } else {
        0.001
    };
    let opt = OptimizerSpec::sgd(lr, 50.min(data.n));
    let mut st = Stepper::new(backend.clone(), spec.clone(), loss, data, k, k, 1e-3)?;
    st.set_warm_solver(solver);
    st.set_theta(theta)?;
    let mut stream = Stream::new(data.n, 0);
    let (mut ms, mut hvps, mut last) = (Vec::new(), 0usize, None);
    for i in 0..2 + runs {
        let before = backend.transfers();
        let t = Instant::now();
        let sp = st.spectrum()?;
        st.step(&opt, &mut stream, Projection::Dominant, false)?;
        backend.sync()?;
        if i >= 2 {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            hvps += sp.hvps;
            last = backend.transfers().zip(before).map(|(a, b)| a - b);
        }
    }
    Ok((median(ms), hvps as f64 / runs as f64, last))
}

/// Time one full-batch gradient, one HVP and a top-10 solve (tol 1e-4).
pub fn bench<B: Backend + Clone>(
    backend: B,
    spec: &ModelSpec,
    theta: &[f64],
    data: &Dataset,
    loss: LossKind,
    opts: BenchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    let runs = opts.runs.max(1);
    let mut engine = Engine::new(backend.clone(), spec.clone(), loss, data, opts.chunk)?;
    let p = engine.num_params();
    let kernels = time_kernels(&backend, spec, engine.chunk(), runs)?;
    let th = backend.upload(theta)?;
    engine.set_params(&th)?; // warm-up
    let mut grad = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        engine.set_params(&th)?;
        grad.push(t.elapsed().as_secs_f64() * 1e3);
    }
    log(&format!("gradient: {:.1} ms", median(grad.clone())));
    let v = backend.upload(&crate::hessian::lanczos::random_vector(p, 7))?;
    let mut out = backend.zeros(p)?;
    engine.hvp(&v, 0, &mut out, 0)?; // warm-up
    backend.sync()?;
    let mut hvp = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        engine.hvp(&v, 0, &mut out, 0)?;
        backend.sync()?;
        hvp.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let hvp_ms = median(hvp);
    let limit = HvpLimit::measure(
        &backend,
        spec,
        data,
        engine.plan().cached,
        opts.gemm_size,
        runs,
    )?;
    log(&limit.describe(hvp_ms));
    let nan = (f64::NAN, f64::NAN, None);
    if opts.hvp_only {
        let r = report(
            spec,
            &backend,
            &engine,
            (grad, hvp_ms, limit),
            (f64::NAN, 0),
            nan,
            nan,
        );
        return Ok(BenchReport {
            kernels,
            runs,
            samples: data.n,
            ..r
        });
    }
    let solve = LanczosOptions {
        k: 10.min(p),
        tol: 1e-4,
        ..LanczosOptions::default()
    };
    let mut top = Vec::new();
    let mut top_hvps = 0;
    for r in 0..runs.min(3) {
        let t = Instant::now();
        let eig = lanczos(&backend, &mut engine, &solve, None, &mut |_| {})?;
        top.push(t.elapsed().as_secs_f64() * 1e3);
        top_hvps = eig.products;
        log(&format!(
            "top-10 solve {}: {:.0} ms, {} HVPs",
            r + 1,
            top.last().copied().unwrap_or(0.0),
            eig.products
        ));
    }
    use crate::experiment::run::WarmSolver;
    let (step_ms_block, step_hvps_block, step_transfers_block) =
        time_dom_step(&backend, spec, theta, data, loss, runs, WarmSolver::Block)?;
    log(&format!(
        "Dom-SGD step, block Davidson warm solves: {step_ms_block:.1} ms, {step_hvps_block:.1} HVPs"
    ));
    let (step_ms, step_hvps, step_transfers) =
        time_dom_step(&backend, spec, theta, data, loss, runs, WarmSolver::Lanczos)?;
    log(&format!(
        "Dom-SGD step: {step_ms:.1} ms, {step_hvps:.1} HVPs (k = {})",
        spec.output_dim()
    ));
    let r = report(
        spec,
        &backend,
        &engine,
        (grad, hvp_ms, limit),
        (median(top), top_hvps),
        (step_ms, step_hvps, step_transfers),
        (step_ms_block, step_hvps_block, step_transfers_block),
    );
    Ok(BenchReport {
        kernels,
        runs,
        samples: data.n,
        ..r
    })
}

/// A step's (median ms, HVPs, transfers).
type StepTiming = (f64, f64, Option<crate::backend::Transfers>);

/// The report of [`bench`] from its measurements: (gradient times, HVP ms, the limit), the top-10
/// solve (ms, HVPs), the Lanczos step and the block-Davidson step.
fn report<B: Backend + Clone>(
    spec: &ModelSpec,
    backend: &B,
    engine: &Engine<B>,
    (grad, hvp_ms, limit): (Vec<f64>, f64, HvpLimit),
    (top10_ms, top10_hvps): (f64, usize),
    (step_ms, step_hvps, step_transfers): StepTiming,
    (step_ms_block, step_hvps_block, step_transfers_block): StepTiming,
) -> BenchReport {
    BenchReport {
        step_ms,
        step_hvps,
        step_ms_block,
        step_hvps_block,
        step_transfers_block,
        step_k: spec.output_dim(),
        step_transfers,
        model: spec.describe(),
        data: String::new(),
        backend: backend.name(),
        adapter: backend.adapter(),
        kernels: Vec::new(),
        grad_ms: median(grad),
        hvp_ms,
        top10_ms,
        top10_hvps,
        runs: 0,
        chunk: engine.chunk(),
        samples: 0,
        params: engine.num_params(),
        hvp_gflops: limit.flops / (hvp_ms * 1e6),
        hvp_flops: limit.flops,
        hvp_flops_per_op: limit.per_op,
        live_tokens: limit.live_tokens,
        dense_gemm_gflops: limit.dense_gflops,
        dense_gemm_size: limit.size,
        hvp_limit_ms: limit.limit_ms,
        hvp_vs_limit: hvp_ms / limit.limit_ms,
    }
}
