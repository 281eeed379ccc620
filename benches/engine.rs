//! criterion benches of the engine on fc-tanh / MNIST-5k in f32 (falls back to synthetic data of
//! the same shape when MNIST-5k cannot be fetched): the HVP's GEMM shapes, one full-batch
//! gradient, one HVP, the block HVP at b = 1, 4, 16 and a top-10 Lanczos solve at tol 1e-4 — on the CPU backend and, when an
//! adapter exists, on the wgpu backend next to it (on a software adapter such as lavapipe only the
//! GEMMs: its HVP takes seconds).
//!
//!   cargo bench --bench engine

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use subspace_lab::backend::cpu::CpuBackend;
use subspace_lab::backend::gpu::{GpuBackend, GpuOptions};
use subspace_lab::backend::{Backend, LossKind, Mat, MatMut};
use subspace_lab::data::dataset::Dataset;
use subspace_lab::data::mnist::{self, Preprocess};
use subspace_lab::hessian::lanczos::{LanczosOptions, lanczos, random_vector};
use subspace_lab::jobs::hvp_flops;
use subspace_lab::nn::mlp::{Engine, MlpSpec};

fn data() -> Dataset {
    match mnist::data_dir().and_then(|d| mnist::load_or_fetch(&d, &mut |_| {})) {
        Ok((m, _)) => m.dataset(Preprocess::Normalize, 5000).expect("MNIST-5k"),
        Err(e) => {
            eprintln!(
                "MNIST-5k unavailable ({e}); benchmarking on synthetic data of the same shape"
            );
            Dataset::synthetic(5000, 784, 10, 0).expect("synthetic data")
        }
    }
}

fn gemm_benches<B: Backend>(c: &mut Criterion, b: &B, group: &str) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for &(ta, tb, m, n, k, name) in &[
        (false, true, 1000, 200, 784, "X·W1ᵀ 1000×200×784"),
        (true, false, 200, 784, 1000, "Gᵀ·X 200×784×1000"),
        (false, false, 1000, 200, 200, "G·W2 1000×200×200"),
    ] {
        let a = b.upload(&random_vector(m * k, 1)).expect("upload");
        let bb = b.upload(&random_vector(k * n, 2)).expect("upload");
        let mut out = b.zeros(m * n).expect("zeros");
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_function(name, |bench| {
            bench.iter(|| {
                b.gemm(
                    Mat::op(&a, 0, m, k, ta),
                    Mat::op(&bb, 0, k, n, tb),
                    MatMut::new(&mut out, 0, m, n),
                    1.0,
                    0.0,
                )
                .expect("gemm");
                b.sync().expect("sync")
            })
        });
    }
    g.finish();
}

fn engine_benches<B: Backend + Clone>(c: &mut Criterion, b: &B, data: &Dataset, group: &str) {
    let spec = MlpSpec::fc_tanh();
    let theta = b.upload(&spec.init(0)).expect("upload");
    let mut e = Engine::new(b.clone(), spec.clone(), LossKind::Mse, data, 0).expect("engine");
    e.set_params(&theta).expect("set_params");
    let p = e.num_params();
    let v = b.upload(&random_vector(p, 3)).expect("upload");
    let mut out = b.zeros(p).expect("zeros");
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.bench_function("gradient (full batch)", |bench| {
        bench.iter(|| black_box(e.set_params(&theta).expect("gradient")))
    });
    g.throughput(Throughput::Elements(
        hvp_flops(&spec.clone().into(), data.n, e.plan().cached) as u64,
    ));
    g.bench_function("hvp", |bench| {
        bench.iter(|| {
            e.hvp(&v, 0, &mut out, 0).expect("hvp");
            b.sync().expect("sync")
        })
    });
    // The block HVP (one pass over the data for b directions), per direction as throughput.
    for bsize in [1usize, 4, 16] {
        let vb = b.upload(&random_vector(bsize * p, 5)).expect("upload");
        let mut ob = b.zeros(bsize * p).expect("zeros");
        g.throughput(Throughput::Elements(bsize as u64));
        g.bench_function(format!("block hvp b={bsize}"), |bench| {
            bench.iter(|| {
                e.hvp_block(&vb, 0, bsize, &mut ob, 0).expect("block hvp");
                b.sync().expect("sync")
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    let opts = LanczosOptions {
        k: 10,
        tol: 1e-4,
        ..LanczosOptions::default()
    };
    g.bench_function("top-10 lanczos tol 1e-4", |bench| {
        bench.iter(|| {
            lanczos(b, &mut e, &opts, None, &mut |_| {})
                .expect("lanczos")
                .products
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let data = data();
    let cpu = CpuBackend::<f32>::new();
    gemm_benches(c, &cpu, "gemm-cpu-f32");
    engine_benches(c, &cpu, &data, "fc-tanh-mnist5k-cpu-f32");
    match GpuBackend::new(GpuOptions {
        allow_software: true,
    }) {
        Ok(gpu) => {
            eprintln!("wgpu adapter: {}", gpu.adapter_description());
            gemm_benches(c, &gpu, "gemm-gpu");
            if !gpu.is_software() {
                engine_benches(c, &gpu, &data, "fc-tanh-mnist5k-gpu");
            }
        }
        Err(e) => eprintln!("no wgpu adapter, GPU benches skipped: {e}"),
    }
}

criterion_group!(engine, benches);
criterion_main!(engine);
