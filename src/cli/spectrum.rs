//! `spectrum`: loss, gradient norm, the top-k Hessian eigenvalues with residuals, and χ_k(∇L);
//! with `--density`, `--trace`, `--per-layer` also the whole spectrum (`jobs::whole_spectrum`).

use super::SpectrumArgs;
use super::common::{Chosen, Loaded, choose, load_model, on_backend, spinner};
use anyhow::{Result, bail};
use std::path::PathBuf;
use subspace_lab::backend::Precision;
use subspace_lab::hessian::lanczos::{LanczosOptions, Progress};
use subspace_lab::hessian::slq::{DensityOptions, SlqOptions};
use subspace_lab::hessian::trace::TraceMethod;
use subspace_lab::jobs::{self, At, SpectrumOptions, SpectrumReport, WholeOptions, WholeReport};

/// The whole-spectrum options of `spectrum` (flattened into its arguments).
#[derive(clap::Args, Debug, Default)]
pub(super) struct WholeArgs {
    /// The spectral density by stochastic Lanczos quadrature (Ghorbani et al. 2019): --probes
    /// start vectors, --steps Lanczos steps each (full reorthogonalisation), broadened on a grid;
    /// the top k marked and their share of the trace. Costs probes × steps HVPs.
    #[arg(long)]
    density: bool,
    /// The trace tr H (--trace-method; --probes probes): estimate, standard error, HVPs.
    #[arg(long)]
    trace: bool,
    /// deflated: Σ of the top-k eigenvalues + Hutchinson on the complement of S_k (the least
    /// variance when k outliers dominate, as here); hutchinson: plain Rademacher probes (as
    /// PyHessian's trace()); hutchpp: Hutch++ (Meyer et al. 2021) with --probes products.
    #[arg(long, default_value = "deflated", value_parser = ["deflated", "hutchinson", "hutchpp"])]
    trace_method: String,
    /// Probes of --density (default 10) and --trace (default 30; Hutch++: products, default 90).
    #[arg(long)]
    probes: Option<usize>,
    /// Lanczos steps per probe of --density (PyHessian's default is 100).
    #[arg(long, default_value_t = 80)]
    steps: usize,
    /// Gaussian broadening σ of the density (default: PyHessian's √(1e-5·range), at least two
    /// grid spacings).
    #[arg(long)]
    sigma: Option<f64>,
    /// Grid points of the density.
    #[arg(long, default_value_t = 2000)]
    grid: usize,
    /// Seed of the random probes of --density and --trace.
    #[arg(long, default_value_t = 0)]
    probe_seed: u64,
    /// The top k eigenvalues (--k) of each layer's diagonal Hessian block H_ll (the HVP restricted
    /// to its parameters, named as in the weights: fc1 = fc1.weight + fc1.bias); with --density
    /// also each block's density by SLQ (same probes and steps; text and JSON
    /// `per_layer_density`).
    #[arg(long)]
    per_layer: bool,
    /// Write the density (linear and log scale, top k marked) to this PNG (with --density).
    #[arg(long, requires = "density")]
    png: Option<PathBuf>,
}

impl WholeArgs {
    fn any(&self) -> bool {
        self.density || self.trace || self.per_layer
    }

    /// The job's options; errors on zero probes or steps before anything is loaded.
    fn options(&self, k: usize) -> Result<WholeOptions> {
        if self.probes == Some(0) || self.steps == 0 || self.grid < 2 {
            bail!("--probes and --steps must be at least 1, --grid at least 2");
        }
        if matches!(self.sigma, Some(s) if !(s > 0.0 && s.is_finite())) {
            bail!("--sigma must be positive");
        }
        let method = match self.trace_method.as_str() {
            "hutchinson" => TraceMethod::Hutchinson,
            "hutchpp" => TraceMethod::Hutchpp,
            _ => TraceMethod::Deflated,
        };
        let trace_probes = self.probes.unwrap_or(match method {
            TraceMethod::Hutchpp => 90,
            _ => 30,
        });
        if method == TraceMethod::Hutchpp && trace_probes < 3 {
            bail!(
                "--trace-method hutchpp needs --probes ≥ 3 (a third sketches, a third is exact, a third estimates)"
            );
        }
        Ok(WholeOptions {
            density: self.density.then_some((
                SlqOptions {
                    probes: self.probes.unwrap_or(10),
                    steps: self.steps,
                    seed: self.probe_seed,
                    group: 0,
                },
                DensityOptions {
                    points: self.grid,
                    sigma: self.sigma.unwrap_or(0.0),
                },
            )),
            trace: self
                .trace
                .then_some((method, trace_probes, self.probe_seed ^ 0x7472_6163)),
            per_layer: self.per_layer.then_some(k),
        })
    }
}

pub(super) fn spectrum_cmd(a: SpectrumArgs) -> Result<()> {
    // Options are checked before any data or device is touched (the same rule as a spec's tol).
    if let Some(t) = a.tol {
        subspace_lab::experiment::spec::check_tol("--tol", t)?;
    }
    a.whole.options(0)?;
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
    let whole = a.whole.options(k)?;
    let pb = spinner(false);
    pb.set_message("gradient…");
    let mut progress = |p: &Progress| {
        pb.set_message(format!(
            "Lanczos: {} HVPs, basis {}, {}/{} converged, worst residual {:.1e}",
            p.products, p.basis, p.converged, p.k, p.worst_relative_residual
        ))
    };
    let mut log = |m: &str| pb.set_message(m.to_string());
    let at = At {
        spec: &spec,
        theta: &theta,
        data: &data,
    };
    let lm = (loss, !a.no_lambda_min);
    let rep = if a.whole.any() {
        on_backend!(chosen, |b| jobs::whole_spectrum(
            b,
            at,
            lm,
            &opts,
            &whole,
            &mut progress,
            &mut log
        ))
    } else {
        on_backend!(chosen, |b| jobs::spectrum_with(
            b,
            &spec,
            &theta,
            &data,
            lm,
            &opts,
            &mut progress
        ))
        .map(|spectrum| WholeReport {
            spectrum,
            trace: None,
            density: None,
            per_layer: None,
            per_layer_density: None,
            whole_seconds: 0.0,
        })
    };
    pb.finish_and_clear();
    let mut rep = rep?;
    rep.spectrum.data = described;
    rep.spectrum.assumed = assumed;
    if let (Some(path), Some(d)) = (&a.whole.png, &rep.density) {
        write_png(path, &rep, d)?;
    }
    if a.json {
        // Without the whole-spectrum options the object is the top-k report as it always was.
        let json = if a.whole.any() {
            serde_json::to_string(&rep)?
        } else {
            serde_json::to_string(&rep.spectrum)?
        };
        println!("{json}");
        return Ok(());
    }
    print_spectrum(&rep.spectrum);
    print_whole(&rep);
    Ok(())
}

/// The top-k report as text.
fn print_spectrum(rep: &SpectrumReport) {
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
}

/// The whole-spectrum parts as text: the trace, the density's summary (the plot is the PNG), the
/// per-layer top eigenvalues.
fn print_whole(rep: &WholeReport) {
    if let Some(t) = &rep.trace {
        println!(
            "trace tr H ≈ {:.6e} ± {:.2e} ({}, {} probes, {} HVPs{})",
            t.estimate,
            t.std_error,
            t.method.name(),
            t.probes,
            t.hvps,
            if t.exact_rank > 0 {
                format!(
                    "; exact part {:.6e} from rank {}",
                    t.exact_part, t.exact_rank
                )
            } else {
                String::new()
            }
        );
    }
    if let Some(d) = &rep.density {
        let (lo, hi) = d
            .quadrature
            .iter()
            .flat_map(|q| q.nodes.iter().copied())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            });
        println!(
            "density: {} probes × {} steps, {} HVPs, {:.2} s; nodes in [{lo:.4e}, {hi:.4e}], σ {:.2e}",
            d.probes, d.steps, d.hvps, d.seconds, d.density.sigma
        );
        println!(
            "  tr H from the quadrature ≈ {:.6e} ± {:.2e}; the top {} hold {:.1}% of the trace",
            d.trace,
            d.trace_std_error,
            rep.spectrum.eigenvalues.len(),
            100.0 * d.top_k_share
        );
        // The weight of the nodes above λ_k/2: the outliers' share of the spectral measure.
        let lk = rep
            .spectrum
            .eigenvalues
            .last()
            .copied()
            .unwrap_or(f64::INFINITY);
        let n = d.quadrature.len().max(1) as f64;
        let mass: f64 = d
            .quadrature
            .iter()
            .flat_map(|q| q.nodes.iter().zip(&q.weights))
            .filter(|(x, _)| **x >= 0.5 * lk)
            .map(|(_, w)| w)
            .sum::<f64>()
            / n;
        println!(
            "  spectral mass at λ ≥ λ_k/2: {:.3e} (≈ {:.1} of {} eigenvalues)",
            mass,
            mass * rep.spectrum.params as f64,
            rep.spectrum.params
        );
    }
    if let Some(layers) = &rep.per_layer {
        println!("per-layer top eigenvalues of H_ll:");
        for l in layers {
            let vals: Vec<String> = l.eigenvalues.iter().map(|v| format!("{v:.6}")).collect();
            println!(
                "  {:<12} {:>9} params  {} HVPs{}  {}",
                l.block.name,
                l.block.len,
                l.hvps,
                if l.converged { "" } else { " (not converged)" },
                vals.join(" ")
            );
        }
    }
    if let Some(layers) = &rep.per_layer_density {
        println!("per-layer densities of H_ll (SLQ; tr from the quadrature):");
        for l in layers {
            println!(
                "  {:<12} {:>9} params  {} HVPs  tr {:.4} ± {:.4}  nodes in [{:.4}, {:.4}]",
                l.block.name, l.block.len, l.hvps, l.trace, l.trace_std_error, l.range.0, l.range.1
            );
        }
    }
    if rep.trace.is_some() || rep.density.is_some() || rep.per_layer.is_some() {
        println!("whole spectrum: {:.2} s", rep.whole_seconds);
    }
}

/// The density PNG (`--png`): linear and log scale, the top k marked, their share in the title.
fn write_png(path: &std::path::Path, rep: &WholeReport, d: &jobs::DensityReport) -> Result<()> {
    let title = format!(
        "{} on {}: Hessian spectral density",
        rep.spectrum.model, rep.spectrum.data
    );
    subspace_lab::experiment::plot_density::density_png(
        path,
        &subspace_lab::experiment::plot_density::DensityPlot {
            density: &d.density,
            top_k: &rep.spectrum.eigenvalues,
            title: &title,
            top_k_share: Some(d.top_k_share),
        },
    )?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
