//! `run`: run a spec (TOML), or continue a stopped run (`--resume`).

use super::RunArgs;
use super::common::{choose, log, on_backend, stop_flag};
use super::progress::Progress;
use super::verdict::print_verdicts;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use subspace_lab::backend::prelude::*;
use subspace_lab::experiment::run::{Checkpoint, Vectors};
use subspace_lab::experiment::spec::RunSpec;
use subspace_lab::experiment::verdict::Verdict;

/// Where a run writes, its spec, and the checkpoint it continues (if resumed).
type Target = (PathBuf, RunSpec, Option<(Checkpoint, Vectors)>);

pub(super) fn run_cmd(a: RunArgs) -> Result<()> {
    use subspace_lab::experiment::output::{self, CsvSink, write_atomic};
    use subspace_lab::experiment::run as runner;
    let (dir, spec, resume) = match (&a.resume, &a.spec) {
        (Some(dir), _) => resume_target(dir)?,
        (None, Some(path)) => fresh_target(&a, path)?,
        (None, None) => bail!("give a spec file or --resume DIR"),
    };
    let mut spec = spec;
    if let Some(c) = a.checkpoint_every {
        spec.checkpoint_every = c;
    }
    // Reject impossible specs before touching the data or a device.
    let (d_in, classes) = spec.dataset().shape();
    spec.validate(d_in, classes, spec.dataset().max_samples())
        .with_context(|| "invalid spec (nothing was run)")?;
    let data_dir = a.dir.resolve()?;
    let sets = subspace_lab::experiment::reproduce::DataSets::for_specs(
        std::slice::from_ref(&spec),
        &data_dir,
        &mut |s| log(s),
    )?;
    let clamped = sets.clamp(&spec);
    if clamped.data.samples != spec.data.samples {
        log(&format!(
            "data.samples = {}: {} — the run uses {} (spec.toml says so)",
            spec.data.samples,
            sets.describe(&spec),
            clamped.data.samples
        ));
        spec = clamped;
    }
    let data = subspace_lab::experiment::reproduce::dataset_for(&sets, &spec)?;
    let chosen = choose(a.backend, Some(a.precision), a.precision)?;
    if resume.is_none() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomic(&dir.join("spec.toml"), spec.to_toml()?.as_bytes())?;
        output::clear_checkpoint(&dir)?;
    } else if !dir.join("spec.toml").exists() {
        // The spec beside the run, as run (a deleted spec.toml comes back).
        write_atomic(&dir.join("spec.toml"), spec.to_toml()?.as_bytes())?;
    }
    let (earlier_s, resumed_at) = resume
        .as_ref()
        .map_or((0.0, None), |(c, _)| (c.elapsed_s, Some(c.step)));
    let existing = resume
        .as_ref()
        .map(|(c, _)| c.records.clone())
        .unwrap_or_default();
    let stop = stop_flag();
    let bar = Progress::new();
    let mut progress = |run: &str, step: usize, total: usize| bar.update(run, step, total);
    let start = std::time::Instant::now();
    let mut sink = CsvSink::create(&dir, spec.top(), &existing, false, stop, &mut progress)?;
    sink.weights = Some(
        subspace_lab::experiment::final_weights::WeightsTo {
            dir: dir.clone(),
            spec: spec.net()?,
            loss: spec.loss,
        }
        .sink(),
    );
    let (res, backend_name, adapter) = on_backend!(chosen, |b| {
        let name = b.name();
        let adapter = b.adapter();
        (
            runner::run(b, &spec, &data, false, resume, &mut sink),
            name,
            adapter,
        )
    });
    bar.finish();
    let o = match res {
        Ok(o) => o,
        Err(e) => {
            let hint = match &e {
                subspace_lab::Error::Interrupted { .. } => format!(
                    "\ncontinue with: subspace-lab run --resume {}",
                    dir.display()
                ),
                _ => String::new(),
            };
            return Err(anyhow::anyhow!(e).context(format!(
                "run stopped; the metrics so far are in {}{hint}",
                dir.join("metrics.csv").display()
            )));
        }
    };
    let verdicts: Vec<Verdict> = runner::projection_verdict(&spec, &o).into_iter().collect();
    subspace_lab::experiment::plot::metrics_png_with(
        &dir.join("metrics.png"),
        &spec.name,
        &o.records,
        spec.k,
        o.switch_step,
        &verdicts,
    )?;
    // Seconds computed over all sessions (a resumed run adds what its checkpoint had).
    let wall = earlier_s + start.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "spec": spec, "seed": spec.seed, "version": env!("CARGO_PKG_VERSION"),
        "backend": backend_name, "adapter": adapter, "wall_seconds": wall,
        "resumed": a.resume.is_some(), "resumed_at_step": resumed_at, "switch_step": o.switch_step,
        "switch_rule_fired": o.switch_rule_fired, "runs": o.legs, "verdicts": verdicts,
        "fork_step": o.switch_step,
        "results": subspace_lab::experiment::final_weights::leg_results(&dir, &o.legs.iter().collect::<Vec<_>>()),
    });
    write_atomic(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    // Finished: the checkpoint has nothing left to continue.
    output::clear_checkpoint(&dir)?;
    print_outcome(&spec.name, wall, &dir, &o.legs);
    print_verdicts(&verdicts);
    Ok(())
}

/// The finished run's lines: its name, time and directory, each leg's losses, where the weights are.
fn print_outcome(
    name: &str,
    wall: f64,
    dir: &Path,
    legs: &[subspace_lab::experiment::record::LegSummary],
) {
    println!("{} ({wall:.1} s, {}):", name, dir.display());
    for l in legs {
        println!(
            "  {:<12} {:>6} steps {:>5}..{:<5} loss {:.5} → {:.5}",
            l.run, l.phase, l.first_step, l.last_step, l.start_loss, l.end_loss
        );
    }
    println!(
        "  final weights of each leg: {} (step and train_loss in their metadata)",
        dir.join("weights").display()
    );
}

/// A stopped run, its spec and its checkpoint, from `run --resume DIR`. Errors: no directory, a
/// finished run, no usable checkpoint, a spec.toml edited since.
fn resume_target(dir: &Path) -> Result<Target> {
    use subspace_lab::experiment::output;
    if !dir.is_dir() {
        bail!("cannot resume from {}: no such directory", dir.display());
    }
    if !dir.join(output::CHECKPOINT_JSON).exists() && dir.join("summary.json").exists() {
        bail!(
            "{} holds a finished run (summary.json, no checkpoint): nothing to resume; start a new one with `subspace-lab run SPEC --out NEW_DIR`",
            dir.display()
        );
    }
    let (c, v) = output::load_checkpoint(dir).with_context(|| {
        format!(
            "cannot resume from {}: no usable checkpoint (runs write one every `checkpoint_every` steps and on Ctrl-C)",
            dir.display()
        )
    })?;
    // The spec beside the checkpoint must still describe it: an edited spec.toml would
    // otherwise be ignored silently and then misstate the run.
    let beside = dir.join("spec.toml");
    if beside.exists() {
        let text = std::fs::read_to_string(&beside)
            .with_context(|| format!("cannot read {}", beside.display()))?;
        let on_disk = RunSpec::parse_toml(&text).with_context(|| {
            format!(
                "{} (beside the checkpoint; nothing was run or changed)",
                beside.display()
            )
        })?;
        let diff = c.spec.differences(&on_disk);
        if !diff.is_empty() {
            bail!(
                "{} was edited after the run started ({}; checkpoint vs spec.toml). A resumed run continues the checkpoint's spec, so nothing was run or changed: restore spec.toml, or start a new run with the edited spec (subspace-lab run {} --out NEW_DIR)",
                beside.display(),
                diff.join("; "),
                beside.display()
            );
        }
    }
    Ok((dir.to_path_buf(), c.spec.clone(), Some((c, v))))
}

/// A new run of the spec at `path` and where it writes (`--out`, else out/NAME). Errors: an
/// unreadable spec, a directory that holds another run (without `--overwrite`).
fn fresh_target(a: &RunArgs, path: &Path) -> Result<Target> {
    use subspace_lab::experiment::output;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the spec {}", path.display()))?;
    let spec = RunSpec::parse_toml(&text).with_context(|| format!("{}", path.display()))?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(&spec.name));
    // A directory that holds another run is not overwritten by mistake.
    let stopped = out.join(output::CHECKPOINT_JSON).exists();
    let finished = out.join("summary.json").exists() || out.join("metrics.csv").exists();
    if (stopped || finished) && !a.overwrite {
        bail!(
            "{} already holds {}: {}, or choose another --out (or pass --overwrite to start over there)",
            out.display(),
            if stopped {
                "a stopped run (checkpoint.json)"
            } else {
                "a run's results (metrics.csv, summary.json)"
            },
            if stopped {
                format!(
                    "continue it with `subspace-lab run --resume {}`",
                    out.display()
                )
            } else {
                "keep them".to_string()
            }
        );
    }
    Ok((out, spec, None))
}
