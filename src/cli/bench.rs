//! `bench`: time a gradient, an HVP, a top-10 solve and a warm Dom-SGD step of a network.

use super::BenchArgs;
use super::common::{Chosen, choose, load_model, on_backend, per_step_traffic};
use anyhow::Result;
use subspace_lab::backend::Precision;
use subspace_lab::jobs;

pub(super) fn bench_cmd(a: BenchArgs) -> Result<()> {
    let super::common::Loaded {
        spec,
        theta,
        data,
        described,
        loss,
        ..
    } = load_model(&a.model)?;
    // Progress: a spinner on a terminal (timing the kernels takes a while before the first
    // line), the phases' lines elsewhere unless --json.
    let phases = super::progress::Phases::new(&format!("bench {}", spec.describe()), !a.json);
    let mut say = |s: &str| phases.say(s);
    let chosen = choose(a.model.backend, Some(a.precision), a.precision)?;
    let on_gpu = matches!(chosen, Chosen::Gpu(_));
    let mut reps = vec![on_backend!(chosen, |b| jobs::bench(
        b,
        &spec,
        &theta,
        &data,
        loss,
        jobs::BenchOptions {
            runs: a.runs as usize,
            chunk: a.chunk,
            gemm_size: a.gemm_size as usize,
            hvp_only: a.hvp_only,
        },
        &mut say
    )?)];
    if on_gpu && !a.gpu_only {
        // The CPU backend in the same run, for comparison.
        let cpu = match a.precision {
            Precision::F64 => Chosen::CpuF64,
            Precision::F32 => Chosen::CpuF32,
        };
        reps.push(on_backend!(cpu, |b| jobs::bench(
            b,
            &spec,
            &theta,
            &data,
            loss,
            jobs::BenchOptions {
                runs: a.runs as usize,
                chunk: 0,
                gemm_size: a.gemm_size as usize,
                hvp_only: a.hvp_only,
            },
            &mut say
        )?));
    }
    phases.finish();
    for r in reps.iter_mut() {
        r.data = described.clone();
    }
    if a.json {
        if reps.len() == 1 {
            println!("{}", serde_json::to_string(&reps[0])?);
        } else {
            println!("{}", serde_json::to_string(&reps)?);
        }
        return Ok(());
    }
    println!("{} on {}", spec.describe(), described);
    for rep in &reps {
        println!(
            "{}{}: gradient {:.1} ms, HVP {:.1} ms ({:.1} GFLOP/s), top-10 (tol 1e-4) {:.0} ms with {} HVPs — {} samples in chunks of {}, {} params, median of {}",
            rep.backend,
            rep.adapter
                .as_ref()
                .map(|a| format!(" [{a}]"))
                .unwrap_or_default(),
            rep.grad_ms,
            rep.hvp_ms,
            rep.hvp_gflops,
            rep.top10_ms,
            rep.top10_hvps,
            rep.samples,
            rep.chunk,
            rep.params,
            rep.runs
        );
        println!(
            "    Dom-SGD step (minibatch gradient, top-{} warm to tol 1e-3, projection, update): {:.1} ms, {:.1} HVPs{}",
            rep.step_k,
            rep.step_ms,
            rep.step_hvps,
            rep.step_transfers.map(per_step_traffic).unwrap_or_default()
        );
        println!(
            "    the same step with block Davidson warm solves: {:.1} ms, {:.1} HVPs{}",
            rep.step_ms_block,
            rep.step_hvps_block,
            rep.step_transfers_block
                .map(per_step_traffic)
                .unwrap_or_default()
        );
        println!(
            "    counted {:.2} GFLOP per HVP{}; dense GEMM {}³ {:.1} GFLOP/s → limit {:.1} ms; measured {:.2}× the limit",
            rep.hvp_flops / 1e9,
            rep.live_tokens
                .map(|t| format!(" ({t} live tokens)"))
                .unwrap_or_default(),
            rep.dense_gemm_size,
            rep.dense_gemm_gflops,
            rep.hvp_limit_ms,
            rep.hvp_vs_limit
        );
        for o in &rep.hvp_flops_per_op {
            println!("      {}: {:.3} GFLOP", o.op, o.flops / 1e9);
        }
        for k in &rep.kernels {
            println!(
                "    gemm {}: {:.2} ms, {:.1} GFLOP/s",
                k.name, k.ms, k.gflops
            );
        }
    }
    Ok(())
}
