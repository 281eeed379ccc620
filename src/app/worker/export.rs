//! Export what is shown: the run's records and, after a fork, every branch's (CSV rows, the PNG
//! natively, each branch's final weights with its step and loss in the metadata) and a
//! summary.json with the settings, the fork, per-branch results and the live verdict — the
//! same files the CLI writes, named per branch.

use super::Driver;
use crate::app::live::{History, judge};
use crate::experiment::run::Record;
use crate::nn::model::ModelSpec;

/// A record with only what the app measured at `step`.
fn record(run: &str, phase: &str, step: usize) -> Record {
    Record {
        run: run.to_string(),
        phase: phase.into(),
        step,
        loss: f64::NAN,
        accuracy: f64::NAN,
        grad_norm: f64::NAN,
        chi_k: f64::NAN,
        chi_ema: f64::NAN,
        eigenvalues: Vec::new(),
        two_over_lr: f64::NAN,
        sam_edge: f64::NAN,
        dom_lr: f64::NAN,
        bulk_lr: f64::NAN,
        dist_switch: f64::NAN,
        dist_init: f64::NAN,
        hvps: 0,
        worst_residual: f64::NAN,
    }
}

/// The value at `step` of a (step, value) series, NaN where not measured.
fn at(series: &[[f64; 2]], step: usize) -> f64 {
    series
        .iter()
        .find(|p| p[0] == step as f64)
        .map_or(f64::NAN, |p| p[1])
}

/// The run's records as the CLI writes them: one per measured point before the fork (all of them
/// without one, phase "live"), then one per step of every branch (phase "branch": its loss and
/// accuracy after every step, χ_k and λ₁ where solved — the first branch's whole spectrum where
/// the run's own was measured).
pub fn branch_records(h: &History) -> Vec<Record> {
    let fork = h.fork.as_ref();
    let mut out: Vec<Record> = h
        .points
        .iter()
        .filter(|p| fork.is_none_or(|f| p.step <= f.step))
        .map(|p| Record {
            chi_k: p.chi,
            chi_ema: p.chi_ema,
            eigenvalues: p.eigenvalues.clone(),
            two_over_lr: p.edge,
            loss: p.loss,
            accuracy: p.accuracy,
            ..record(
                &if fork.is_some() {
                    "before the fork".to_string()
                } else {
                    h.run_name.clone()
                },
                "live",
                p.step,
            )
        })
        .collect();
    let Some(f) = fork else { return out };
    for (i, b) in f.branches.iter().enumerate() {
        for l in &b.loss {
            let step = l[0] as usize;
            let run_point = h.points.iter().find(|p| p.step == step && step > f.step);
            let eig = match run_point {
                Some(p) if i == 0 => p.eigenvalues.clone(),
                _ => {
                    let l1 = at(&b.lambda1, step);
                    if l1.is_finite() { vec![l1] } else { Vec::new() }
                }
            };
            out.push(Record {
                loss: l[1],
                accuracy: at(&b.accuracy, step),
                chi_k: at(&b.chi, step),
                eigenvalues: eig,
                ..record(&b.name, "branch", step)
            });
        }
    }
    out
}

/// summary.json: the app's version and backend, the run's settings (and as a link's hash), its
/// events, and after a fork its step, loss and horizon, each branch's results and the verdict.
pub fn summary(d: &Driver) -> serde_json::Value {
    let run = &d.run;
    let h = run.history();
    let markers: Vec<serde_json::Value> = h
        .markers
        .iter()
        .map(|m| serde_json::json!({"step": m.step, "event": m.label}))
        .collect();
    let num = |x: f64| {
        if x.is_finite() {
            serde_json::json!(x)
        } else {
            serde_json::Value::Null
        }
    };
    let fork = h.fork.as_ref().map(|f| {
        serde_json::json!({
            "step": f.step, "loss": num(f.loss), "set": f.set, "horizon": h.horizon,
            "branches": f.branches.iter().map(|b| serde_json::json!({
                "name": b.name, "projection": b.projection, "steps": b.steps,
                "loss_fork": num(f.loss), "loss_now": num(b.loss_now()),
                "rel_decrease": num(b.rel_decrease(f.loss)), "dist_fork": num(b.dist_fork),
                "mean_chi": num(b.mean_chi()), "stopped": b.stopped,
                "weights": format!("weights-{}.safetensors", b.name),
            })).collect::<Vec<_>>(),
        })
    });
    serde_json::json!({
        "source": "subspace-lab app", "version": env!("CARGO_PKG_VERSION"),
        "backend": run.backend_name(), "run": h.run_name, "step": h.step, "k": h.k,
        "origin": h.origin, "start_step": h.start_step,
        "settings": d.current, "settings_hash": d.current.to_hash(),
        "events": markers,
        "fork": fork,
        "verdict": judge(h),
    })
}

/// The export as (file name, bytes): `metrics.csv`, `summary.json` and `weights.safetensors` (the
/// run, or its first branch), and after a fork `weights-<branch>.safetensors` for every branch
/// with its step, loss and the fork in the metadata (the PNG is drawn natively only). The
/// Transformer's weights carry the vocabulary (as `init` writes them), from the SST-2 loaded.
pub fn export_files(d: &Driver) -> crate::Result<Vec<(String, Vec<u8>)>> {
    let run = &d.run;
    let h = run.history();
    let recs = branch_records(h);
    let top = recs.iter().map(|r| r.eigenvalues.len()).max().unwrap_or(0);
    let csv = Record::csv(&recs, top);
    let json = serde_json::to_string_pretty(&summary(d))
        .map_err(|e| crate::Error::InvalidArgument(e.to_string()))?;
    let mut meta = Vec::new();
    if let (ModelSpec::Transformer(_), Some(sst2)) = (run.spec(), &d.sets.sst2) {
        let words = serde_json::to_string(&sst2.vocab().words)
            .map_err(|e| crate::Error::InvalidArgument(e.to_string()))?;
        meta.push(("vocab".to_string(), words));
    }
    let weights = |theta: &[f64], extra: &[(String, String)]| {
        let mut m = meta.clone();
        m.extend_from_slice(extra);
        crate::nn::weights::serialize_with(
            std::path::Path::new("weights.safetensors"),
            run.spec().clone(),
            theta,
            crate::nn::weights::SaveDtype::F32,
            &m,
        )
    };
    let mut files = vec![
        ("metrics.csv".to_string(), csv.into_bytes()),
        ("summary.json".to_string(), json.into_bytes()),
        (
            "weights.safetensors".to_string(),
            weights(&run.theta()?, &[("step".to_string(), h.step.to_string())])?,
        ),
    ];
    if let Some(f) = &h.fork {
        for (i, b) in f.branches.iter().enumerate() {
            let extra = [
                ("branch".to_string(), b.name.clone()),
                ("step".to_string(), (f.step + b.steps).to_string()),
                ("train_loss".to_string(), b.loss_now().to_string()),
                ("fork_step".to_string(), f.step.to_string()),
                ("fork_loss".to_string(), f.loss.to_string()),
            ];
            files.push((
                format!("weights-{}.safetensors", b.name),
                weights(&run.branch_theta(i)?, &extra)?,
            ));
        }
    }
    Ok(files)
}

/// Export the run as the CLI does: metrics.csv, summary.json, metrics.png (after a fork every
/// branch, from a little before the fork) and the weights.
#[cfg(not(target_arch = "wasm32"))]
pub fn export(d: &Driver, dir: &std::path::Path) -> crate::Result<String> {
    use crate::experiment::output::write_atomic;
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    let files = export_files(d)?;
    for (name, bytes) in &files {
        write_atomic(&dir.join(name), bytes)?;
    }
    let h = d.run.history();
    let mut recs = branch_records(h);
    let title = match &h.fork {
        Some(f) => {
            // From as many steps before the fork as the branches made (at least 50): the
            // branches fill the plot instead of its last sliver.
            let from = f.step.saturating_sub(f.steps().max(50));
            recs.retain(|r| r.step >= from);
            let names: Vec<&str> = f.branches.iter().map(|b| b.name.as_str()).collect();
            let verdict = judge(h).map_or(String::new(), |v| {
                format!(
                    " — {}",
                    if v.provisional {
                        "verdict provisional"
                    } else if v.holds {
                        "the claim holds"
                    } else {
                        "the claim does not hold"
                    }
                )
            });
            format!(
                "{} from step {} ({} steps each){verdict}",
                names.join(" / "),
                f.step,
                f.steps()
            )
        }
        None => h.run_name.clone(),
    };
    crate::experiment::plot::metrics_png(
        &dir.join("metrics.png"),
        &title,
        &recs,
        h.k,
        h.fork
            .as_ref()
            .map(|f| f.step)
            .or(h.markers.first().map(|m| m.step)),
    )?;
    Ok(format!(
        "exported {} files and metrics.png to {}",
        files.len(),
        dir.display()
    ))
}
