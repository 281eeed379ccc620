//! `spectrum`: loss, gradient norm, the top-k Hessian eigenvalues with residuals, and χ_k(∇L).

use super::SpectrumArgs;
use super::common::{Chosen, Loaded, choose, load_model, on_backend, spinner};
use anyhow::{Result, bail};
use subspace_lab::backend::Precision;
use subspace_lab::hessian::lanczos::{LanczosOptions, Progress};
use subspace_lab::jobs::{self, SpectrumOptions};

pub(super) fn spectrum_cmd(a: SpectrumArgs) -> Result<()> {
    // Options are checked before any data or device is touched (the same rule as a spec's tol).
    if let Some(t) = a.tol {
        subspace_lab::experiment::spec::check_tol("--tol", t)?;
    }
    let block_fits = |k: usize| {
        if a.block == 0 || a.block > k.max(1) * 4 {
            bail!(
                "--block {}: need 1 ≤ block ≤ 4·k = {} (the start block; 1 is right by default, a block of the largest multiplicity expected is faster)",
                a.block,
                4 * k.max(1)
            );
        }
        Ok(())
    };
    if let Some(k) = a.k {
        block_fits(k)?;
    }
    let Loaded {
        spec,
        theta,
        data,
        described,
        loss,
        assumed,
    } = load_model(&a.model)?;
    // The paper's k: the number of classes (10 for MNIST and CIFAR-10, 2 for SST-2).
    let k = a.k.unwrap_or(data.classes);
    block_fits(k)?;
    let chosen = choose(a.model.backend, a.precision, Precision::F64)?;
    let tol = a.tol.unwrap_or(match chosen {
        Chosen::CpuF64 => 1e-7,
        _ => 1e-4,
    });
    let opts = SpectrumOptions {
        lanczos: LanczosOptions {
            k,
            tol,
            block: a.block,
            max_products: a.max_hvps,
            ..LanczosOptions::default()
        },
        chunk: a.chunk,
    };
    let pb = spinner(false);
    pb.set_message("gradient…");
    let mut progress = |p: &Progress| {
        pb.set_message(format!(
            "Lanczos: {} HVPs, basis {}, {}/{} converged, worst residual {:.1e}",
            p.products, p.basis, p.converged, p.k, p.worst_relative_residual
        ))
    };
    let rep = on_backend!(chosen, |b| jobs::spectrum_with(
        b,
        &spec,
        &theta,
        &data,
        (loss, !a.no_lambda_min),
        &opts,
        &mut progress
    ));
    pb.finish_and_clear();
    let mut rep = rep?;
    rep.data = described;
    rep.assumed = assumed;
    if a.json {
        println!("{}", serde_json::to_string(&rep)?);
        return Ok(());
    }
    println!(
        "network {}, {} parameters, {} samples of {}, {} loss, backend {}",
        rep.model, rep.params, rep.samples, rep.data, rep.loss_kind, rep.backend
    );
    if let Some(line) = subspace_lab::nn::weights::assumed_line(&rep.assumed) {
        println!("{line}");
    }
    if let Some(ad) = &rep.adapter {
        println!("adapter {ad}");
    }
    println!(
        "loss {:.6}  accuracy {:.4}  ‖∇L‖ {:.6e}",
        rep.loss, rep.accuracy, rep.grad_norm
    );
    println!("  i   eigenvalue            residual ‖Hu−λu‖");
    for (i, (l, r)) in rep.eigenvalues.iter().zip(&rep.residuals).enumerate() {
        println!("{:3}   {:<20.12} {:.2e}", i + 1, l, r);
    }
    if let Some(l) = rep.lambda_min {
        println!(
            "λ_min {}{l:.6} ({} HVPs, tol {:.0e}{})",
            if rep.lambda_min_converged { "" } else { "≤ " },
            rep.lambda_min_hvps,
            rep.lambda_min_tol,
            if rep.lambda_min_converged {
                ""
            } else {
                ", not converged: an upper bound"
            }
        );
    }
    println!("χ_{}(∇L) = {:.6}", rep.k, rep.chi_k);
    println!(
        "{} HVPs, tol {:.0e}, {:.2} s; {}",
        rep.hvps,
        rep.tol,
        rep.seconds,
        if rep.certified {
            "certified: a round from a fresh random vector, deflated by these vectors, found nothing above λ_k"
        } else {
            "not certified (see the warnings)"
        }
    );
    for w in &rep.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
