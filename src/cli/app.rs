//! `app` (and no command): the desktop app, its scenarios list and its test hook.

use super::AppArgs;
use anyhow::{Context, Result, bail};
use subspace_lab::app::AutoExit;

/// The desktop app. SUBSPACE_LAB_APP_EXIT_AFTER=seconds (with _REPORT, _SCREENSHOT,
/// _MIN_STEPS, _TIMEOUT) makes it write a JSON report and a screenshot and close: the test hook.
/// The files it promises are checked before anything starts, and a run that did not write them
/// exits non-zero.
pub(super) fn app_cmd(a: AppArgs) -> Result<()> {
    use subspace_lab::app::settings::Compute;
    use subspace_lab::app::{Launch, run_native};
    if a.list_scenarios {
        return list_scenarios();
    }
    if let Some(name) = &a.scenario {
        subspace_lab::app::scenario::find(name)?;
    }
    if let Some(n) = a.samples {
        let m = a
            .model
            .as_deref()
            .and_then(subspace_lab::app::settings::AppModel::parse)
            .unwrap_or_default();
        let max = m.dataset().max_samples();
        if !(1..=max).contains(&n) {
            bail!(
                "--samples {n}: {} has 1..={max} training samples",
                m.label()
            );
        }
    }
    if let Some(dir) = &a.snapshot {
        // Refuse a snapshot the app cannot run here, before a window opens.
        let (snap, _) = subspace_lab::experiment::snapshot::load_snapshot(dir).with_context(|| {
            format!(
                "--snapshot {}: expected the directory `reproduce PRESET --snapshot-at-switch` writes (OUT/PRESET/snapshot/)",
                dir.display()
            )
        })?;
        let u = subspace_lab::app::worker::UserSnapshot {
            source: dir.display().to_string(),
            snap,
            vectors: Vec::new(),
        };
        subspace_lab::app::worker::adopt_snapshot(
            &subspace_lab::app::settings::Settings::default(),
            &u,
        )
        .with_context(|| format!("--snapshot {}", dir.display()))?;
    }
    let auto = auto_exit(&a)?;
    if let Some(auto) = &auto {
        auto.check_outputs()?;
    }
    // Leave one core to the UI: the training thread's kernels use the others.
    if std::env::var_os("SUBSPACE_LAB_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let compute = n.saturating_sub(1).max(1).to_string();
        // SAFETY: no other thread exists yet (the app and its worker start below), so nothing
        // reads the environment concurrently.
        unsafe {
            std::env::set_var("SUBSPACE_LAB_THREADS", &compute);
            std::env::set_var("MATMUL_NUM_THREADS", &compute);
        }
    }
    let compute = match a.compute.as_deref() {
        Some("gpu") => Some(Compute::Gpu),
        Some("cpu") => Some(Compute::Cpu),
        Some(_) => Some(Compute::Auto),
        None => None,
    };
    let model = a
        .model
        .as_deref()
        .map(|m| subspace_lab::app::settings::AppModel::parse(m).context("--model"))
        .transpose()?;
    run_native(Launch {
        auto,
        scenario: a.scenario,
        compute,
        branch: a.branch,
        model,
        samples: a.samples,
        snapshot: a.snapshot.map(|d| std::path::absolute(&d).unwrap_or(d)),
    })?;
    Ok(())
}

/// `app --list-scenarios`: name, title, model, figure and where θ comes from.
fn list_scenarios() -> Result<()> {
    use subspace_lab::app::scenario::{SCENARIOS, Source};
    let w = SCENARIOS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in SCENARIOS {
        let from = match s.source {
            Source::Init => "θ₀ (seed 0)".to_string(),
            Source::Embedded { .. } => match s.snapshot()? {
                Some((snap, _)) => format!(
                    "snapshot at step {} of `{}`",
                    snap.step,
                    public_command(&snap.made_by.command)
                ),
                None => "snapshot".into(),
            },
        };
        println!(
            "{:<w$} {} — {}, {} ({from})",
            s.name,
            s.title,
            s.model.label(),
            s.figure
        );
    }
    Ok(())
}

/// The command that made a snapshot, as a user would type it: the program as `subspace-lab`
/// (not the build's path) and without `--out DIR` (a directory of the machine that made it).
pub(super) fn public_command(command: &str) -> String {
    let mut words = command.split_whitespace();
    let mut out = Vec::new();
    if words.next().is_some() {
        out.push("subspace-lab");
    }
    while let Some(w) = words.next() {
        if w == "--out" {
            words.next();
        } else if !w.starts_with("--out=") {
            out.push(w);
        }
    }
    out.join(" ")
}

/// The test hook: `--exit-after-steps` (with `--report`, `--screenshot`, `--timeout`), else the
/// SUBSPACE_LAB_APP_* variables, else none.
fn auto_exit(a: &AppArgs) -> Result<Option<AutoExit>> {
    let env = |k: &str| std::env::var(format!("SUBSPACE_LAB_APP_{k}")).ok();
    Ok(if let Some(n) = a.exit_after_steps {
        Some(AutoExit {
            after_s: 0.0,
            timeout_s: a.timeout,
            min_steps: 0,
            report: a.report.clone(),
            screenshot: a.screenshot.clone(),
            exit_after_steps: Some(n),
            branch: a.branch,
        })
    } else {
        match env("EXIT_AFTER") {
            None => None,
            Some(v) => Some(AutoExit {
                after_s: v
                    .parse()
                    .with_context(|| format!("SUBSPACE_LAB_APP_EXIT_AFTER={v}: not a number"))?,
                timeout_s: env("TIMEOUT").and_then(|t| t.parse().ok()).unwrap_or(300.0),
                min_steps: env("MIN_STEPS").and_then(|t| t.parse().ok()).unwrap_or(1),
                report: env("REPORT")
                    .unwrap_or_else(|| "app-report.json".into())
                    .into(),
                screenshot: env("SCREENSHOT")
                    .unwrap_or_else(|| "app-screenshot.png".into())
                    .into(),
                exit_after_steps: None,
                branch: a.branch,
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_snapshot_command_names_no_build_path() {
        assert_eq!(
            super::public_command(
                "/work/runs/bin-snap reproduce fig1 --backend cpu --snapshot-at-switch --out /work/runs/snapfull"
            ),
            "subspace-lab reproduce fig1 --backend cpu --snapshot-at-switch"
        );
        assert_eq!(
            super::public_command("./x reproduce fig9 --out=o --quick"),
            "subspace-lab reproduce fig9 --quick"
        );
    }
}
