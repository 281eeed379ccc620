//! `reproduce`: a figure or table of the paper to CSV/JSON/PNG with verdicts; `--list`,
//! `--print-spec`, `--snapshot-at-switch`.

use super::ReproduceArgs;
use super::common::{Chosen, choose, git_commit, log, on_backend, stop_flag};
use super::progress::Progress;
use super::verdict::print_verdicts;
use anyhow::{Context, Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use subspace_lab::backend::Precision;
use subspace_lab::experiment::reproduce::DataSets;
use subspace_lab::paper::presets;

pub(super) fn reproduce_cmd(a: ReproduceArgs) -> Result<()> {
    use subspace_lab::experiment::reproduce::{self, Ctx};
    if a.list {
        return list_presets(a.quick, a.json);
    }
    if a.json {
        bail!(
            "--json goes with --list (reproduce --list --json); a preset's results are in OUT/<preset>/summary.json"
        );
    }
    let presets = select_presets(&a)?;
    if a.print_spec {
        return print_specs(&presets, a.quick, a.samples);
    }
    if a.snapshot_at_switch {
        check_single_runs(&presets, a.quick)?;
    }
    let (data, chosen) = load_data(&a, &presets)?;
    let bar = Progress::new();
    let mut progress = |run: &str, step: usize, total: usize| bar.update(run, step, total);
    let stop = stop_flag();
    let mut ctx = Ctx::new(&a.out, a.quick, stop, &mut progress);
    ctx.resume = a.resume;
    ctx.samples = a.samples;
    // The flags a continuation repeats.
    let again = format!(
        "{}{}",
        if a.quick { " --quick" } else { "" },
        a.samples
            .map(|n| format!(" --samples {n}"))
            .unwrap_or_default()
    );
    if a.snapshot_at_switch {
        ctx.snapshot = Some(subspace_lab::experiment::output::SnapshotTo {
            dir: a.out.clone(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            commit: git_commit(),
            stop_after: a.stop_at_switch,
            written: Arc::new(AtomicBool::new(false)),
        });
    }
    let snapshot_written = ctx.snapshot.as_ref().map(|t| t.written.clone());
    let mut all_hold = true;
    let mut wall = Vec::new();
    for preset in presets {
        let res = match (preset, &data, &chosen) {
            (p, _, _) if presets::is_toy(p) => reproduce::toy(&a.out, a.quick),
            (p, Some(data), Some(chosen)) => {
                let chosen = match chosen {
                    Chosen::CpuF64 => Chosen::CpuF64,
                    Chosen::CpuF32 => Chosen::CpuF32,
                    Chosen::Gpu(g) => Chosen::Gpu(g.clone()),
                };
                on_backend!(chosen, |b| reproduce::preset(b, p, data, &mut ctx))
            }
            _ => bail!("preset {preset} needs MNIST-5k"),
        };
        bar.finish();
        let dir = a.out.join(preset);
        let snap = dir.join("snapshot");
        // Written by this invocation (not one left by an earlier run), then stopped.
        let written = snapshot_written
            .as_ref()
            .is_some_and(|w| w.swap(false, Ordering::Relaxed));
        if a.stop_at_switch
            && written
            && matches!(&res, Err(subspace_lab::Error::Interrupted { .. }))
        {
            println!(
                "{preset}: snapshot at the switch written to {}; stopped one step after it, with a checkpoint (continue the run with: subspace-lab reproduce {preset}{again} --resume --out {})",
                snap.display(),
                a.out.display()
            );
            continue;
        }
        let res = res.with_context(|| {
            let resume = if dir.join("checkpoint.json").exists() || dir.join("resume").is_dir() {
                format!(
                    "; continue it with: subspace-lab reproduce {preset}{again} --resume --out {}",
                    a.out.display()
                )
            } else {
                String::new()
            };
            format!(
                "preset {preset} stopped; what it wrote so far is in {}{resume}",
                dir.display()
            )
        })?;
        let resumed = res
            .resumed_at
            .map(|s| format!(", resumed at step {s}"))
            .unwrap_or_default();
        println!(
            "{} ({:.1} s{resumed}, {}):",
            res.preset,
            res.wall_seconds,
            res.dir.display()
        );
        all_hold &= print_verdicts(&res.verdicts);
        wall.push((res.preset.clone(), res.wall_seconds));
    }
    if wall.len() > 1 {
        let list: Vec<String> = wall.iter().map(|(p, w)| format!("{p} {w:.0} s")).collect();
        println!("wall times: {}", list.join(", "));
    }
    if !all_hold {
        println!("some claims did not hold on these numbers (see summary.json)");
    }
    Ok(())
}

/// `reproduce --list [--json]`: each preset beside the paper's setting, with the differences.
fn list_presets(quick: bool, json: bool) -> Result<()> {
    use subspace_lab::experiment::reproduce;
    let rows = reproduce::list(quick)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            println!("{} — {}", r.preset, r.paper);
            println!("  paper:  {}", r.paper_setting);
            println!("  preset: {}", r.setting);
            if r.differences.is_empty() {
                println!("  differences: none");
            }
            for d in &r.differences {
                println!("  differs: {d}");
            }
        }
    }
    Ok(())
}

/// The presets `reproduce PRESET` names (`all`: every one), checked before anything runs:
/// `--samples` against each preset's specs, `--snapshot-at-switch` against single runs.
fn select_presets(a: &ReproduceArgs) -> Result<Vec<&str>> {
    use subspace_lab::experiment::reproduce::{self, PRESETS};
    let preset = a.preset.as_deref().unwrap_or_default();
    let presets: Vec<&str> = if preset == "all" {
        PRESETS.to_vec()
    } else {
        match presets::find(preset) {
            Some(p) => vec![p.name],
            None => bail!(
                "unknown preset '{preset}': one of {} or all",
                PRESETS.join(", ")
            ),
        }
    };
    if let Some(n) = a.samples {
        if let [p] = presets[..]
            && presets::is_toy(p)
        {
            bail!(
                "--samples: {p} is the exact 2-D toy, which has no samples; give a network preset"
            );
        }
        // Checked before anything runs (`all` would otherwise stop hours in).
        for p in presets.iter().filter(|p| !presets::is_toy(p)) {
            for spec in reproduce::preset_specs(p, a.quick)? {
                let (d_in, classes) = spec.dataset().shape();
                reproduce::with_samples(&spec, Some(n))
                    .validate(d_in, classes, spec.dataset().max_samples())
                    .with_context(|| {
                        format!("--samples {n} does not fit preset {p} (nothing was run)")
                    })?;
            }
        }
    }
    Ok(presets)
}

/// `reproduce … --print-spec`: each preset's specs as TOML.
fn print_specs(presets: &[&str], quick: bool, samples: Option<usize>) -> Result<()> {
    use subspace_lab::experiment::reproduce;
    for (i, p) in presets.iter().enumerate() {
        if presets.len() > 1 {
            if i > 0 {
                println!();
            }
            println!("# ======== preset {p} ========");
        }
        print!("{}", reproduce::print_spec(p, quick, samples)?);
    }
    Ok(())
}

/// `--snapshot-at-switch` needs presets of a single run with a switch.
fn check_single_runs(presets: &[&str], quick: bool) -> Result<()> {
    use subspace_lab::experiment::reproduce;
    for p in presets {
        let n = if presets::is_toy(p) {
            0
        } else {
            reproduce::preset_specs(p, quick)?.len()
        };
        if n != 1 {
            bail!(
                "--snapshot-at-switch: {p} is not a single run with a switch; the single-run presets are {}",
                presets::single_run_words()
            );
        }
    }
    Ok(())
}

/// The data sets and the backend the presets need (none for the toy alone); a `--samples` beyond
/// what is at hand is said.
fn load_data(a: &ReproduceArgs, presets: &[&str]) -> Result<(Option<DataSets>, Option<Chosen>)> {
    use subspace_lab::experiment::reproduce;
    let needs_data = presets.iter().any(|p| !presets::is_toy(p));
    Ok(if needs_data {
        let dir = a.dir.resolve()?;
        let mut specs = Vec::new();
        for p in presets.iter().filter(|p| !presets::is_toy(p)) {
            specs.extend(reproduce::preset_specs(p, a.quick)?);
        }
        let sets = reproduce::DataSets::for_specs(&specs, &dir, &mut |s| log(s))?;
        if let Some(n) = a.samples {
            for s in &specs {
                let have = sets.available(s.dataset());
                if n > have {
                    log(&format!(
                        "--samples {n}: {} has {have} here; {} runs on {have} (its spec.toml says so)",
                        s.dataset().name(),
                        s.name
                    ));
                }
            }
        }
        (Some(sets), Some(choose(a.backend, None, Precision::F32)?))
    } else {
        (None, None)
    })
}
