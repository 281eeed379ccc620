//! `verdict DIR`: a preset's verdicts recomputed from its output directory (`metrics.csv` and
//! `summary.json`, or a stopped run's `checkpoint.json`) with the current rules, through the
//! registry's judges, without computing anything else.

use super::consistency;
use super::output::{CHECKPOINT_JSON, write_atomic};
use super::presets_run::merge_extra;
use super::run::{self, RunOutcome};
use super::spec::RunSpec;
use super::toy;
use super::verdict::Verdict;
use crate::error::{Error, Result};
use crate::paper::claims::VERDICT_RULES;
use crate::paper::judges::toy_verdicts;
use crate::paper::presets::{self, JudgeInputs, PRESETS, judge, preset_specs, with_samples};
use std::path::{Path, PathBuf};

fn parse_toy_csv(path: &Path) -> Result<Vec<(String, Vec<toy::ToyPoint>)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_toy_csv_text(&text, path)
}

/// The toy's `metrics.csv` (method, step, x, y, loss, chi_1) back as trajectories; `path` only
/// names the file in errors.
pub fn parse_toy_csv_text(text: &str, path: &Path) -> Result<Vec<(String, Vec<toy::ToyPoint>)>> {
    let mut lines = text.lines();
    if lines.next() != Some("method,step,x,y,loss,chi_1") {
        return Err(Error::data(
            path,
            "line 1: expected the header method,step,x,y,loss,chi_1",
        ));
    }
    let mut runs: Vec<(String, Vec<toy::ToyPoint>)> = Vec::new();
    for (i, line) in lines.enumerate() {
        let bad = |what: &str| Error::data(path, format!("line {}: {what}", i + 2));
        let c: Vec<&str> = line.split(',').collect();
        if c.len() != 6 {
            return Err(bad(&format!("{} fields, expected 6", c.len())));
        }
        let f = |j: usize| {
            c[j].parse::<f64>()
                .map_err(|_| bad(&format!("'{}' is not a number", c[j])))
        };
        let point = toy::ToyPoint {
            step: c[1]
                .parse()
                .map_err(|_| bad(&format!("'{}' is not a step", c[1])))?,
            x: f(2)?,
            y: f(3)?,
            loss: f(4)?,
            chi: f(5)?,
        };
        match runs.last_mut() {
            Some((m, pts)) if m == c[0] => pts.push(point),
            _ => runs.push((c[0].to_string(), vec![point])),
        }
    }
    Ok(runs)
}

/// What `verdict DIR` found and did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Rejudged {
    pub preset: String,
    pub verdicts: Vec<Verdict>,
    /// The verdicts `summary.json` held before (empty for a stopped run).
    pub previous: Vec<serde_json::Value>,
    /// The rules those were made under (`verdict_rules`; 1 when absent).
    pub previous_rules: u64,
    /// A stopped run (no `summary.json`, judged from its checkpoint and rows so far): its step.
    pub stopped_at: Option<usize>,
    /// `summary.json`, rewritten; None for a stopped run or without `write` (nothing is written).
    pub rewrote: Option<PathBuf>,
    /// For a stopped run, the command that finishes it (with its `--quick`, `--samples` and
    /// `--out`).
    pub resume_command: Option<String>,
}

/// `verdict DIR`: recompute a preset's verdicts from `DIR/metrics.csv` and `DIR/summary.json`
/// (or, for a stopped single-run preset, `DIR/checkpoint.json`) without computing anything else,
/// with the current rules ([`judge`]). A finished preset's `summary.json` gets the new verdicts; the
/// old ones move to `previous_verdicts` (a list, newest last) with the rules and version that made
/// them. Errors: no summary or checkpoint, a corrupt file (named), a quantity the verdicts need
/// missing (named).
pub fn rejudge(dir: &Path) -> Result<Rejudged> {
    rejudge_with(dir, true)
}

/// [`rejudge`], writing `summary.json` only when `write` is true (`verdict DIR --write`); without
/// it the verdicts are computed and returned, and nothing on disk changes (`rewrote` is None).
/// Errors: as [`rejudge`].
pub fn rejudge_with(dir: &Path, write: bool) -> Result<Rejudged> {
    if !dir.is_dir() {
        return Err(Error::data(dir, "no such directory"));
    }
    let sum_path = dir.join("summary.json");
    if !sum_path.exists() {
        return rejudge_stopped(dir);
    }
    rejudge_finished(dir, &sum_path, write)
}

/// The records of `metrics.csv`, checked ([`consistency::check_records`]). Errors: unreadable,
/// corrupt or impossible (file, line and column named).
fn read_records(csv_path: &Path) -> Result<Vec<run::Record>> {
    let text = std::fs::read_to_string(csv_path).map_err(|e| Error::io(csv_path, e))?;
    let records = run::Record::parse_csv(&text)
        .map(|(r, _)| r)
        .map_err(|e| Error::data(csv_path, e.to_string()))?;
    consistency::check_records(csv_path, &records, &consistency::record_lines(&text))?;
    Ok(records)
}

/// A stopped single-run preset (no `summary.json`): judged from its checkpoint and rows so far,
/// nothing written; with the command that finishes it.
fn rejudge_stopped(dir: &Path) -> Result<Rejudged> {
    let csv_path = dir.join("metrics.csv");
    let ck = dir.join(CHECKPOINT_JSON);
    if !ck.exists() {
        return Err(Error::data(
            dir,
            "no summary.json and no checkpoint.json: not the output directory of a reproduce preset",
        ));
    }
    let text = std::fs::read_to_string(&ck).map_err(|e| Error::io(&ck, e))?;
    let c: run::Checkpoint = serde_json::from_str(&text)
        .map_err(|e| Error::data(&ck, format!("not a checkpoint: {e}")))?;
    let preset = c.spec.name.clone();
    if !PRESETS.contains(&preset.as_str()) {
        return Err(Error::data(
            &ck,
            format!(
                "a checkpoint of the run '{preset}', not of a reproduce preset: nothing to judge"
            ),
        ));
    }
    // A run merely named like a preset is not that preset (on any number of samples:
    // `--samples`, or CIFAR-10 lowered to the records at hand).
    let n = c.spec.data.samples;
    let mut quick = false;
    let is_preset = [false, true].iter().any(|&q| {
        let same = preset_specs(&preset, q)
            .ok()
            .and_then(|s| {
                s.first()
                    .map(|s| with_samples(s, Some(n)).differences(&c.spec).is_empty())
            })
            .unwrap_or(false);
        quick |= same && q;
        same
    });
    if !is_preset {
        return Err(Error::data(
            &ck,
            format!(
                "a checkpoint of a run named '{preset}' whose spec is not that preset's (see `reproduce {preset} --print-spec`): verdict judges only reproduce presets"
            ),
        ));
    }
    let resume = resume_command(dir, &preset, quick, n);
    let outcome = RunOutcome {
        switch_step: c.switch_step,
        switch_rule_fired: c.switch_rule_fired,
        legs: c.legs.clone(),
        records: read_records(&csv_path)?,
        thetas: Vec::new(),
    };
    let (verdicts, _) = judge(
        &preset,
        std::slice::from_ref(&c.spec),
        &[outcome],
        &JudgeInputs::default(),
    )
    .map_err(|e| {
        Error::InvalidArgument(format!(
            "{preset} stopped at step {} (no summary.json yet): {e}; finish it with `{resume}`",
            c.step
        ))
    })?;
    Ok(Rejudged {
        preset,
        verdicts,
        previous: Vec::new(),
        previous_rules: 0,
        stopped_at: Some(c.step),
        rewrote: None,
        resume_command: Some(resume),
    })
}

/// The command that finishes the stopped `preset` in `dir` (with its `--quick`, `--samples` for
/// `n` samples where the preset has another count, and `--out`).
fn resume_command(dir: &Path, preset: &str, quick: bool, n: usize) -> String {
    format!(
        "subspace-lab reproduce {preset}{}{} --resume --out {}",
        if quick { " --quick" } else { "" },
        preset_specs(preset, quick)
            .ok()
            .and_then(|s| s.first().map(|s| s.data.samples))
            .filter(|&d| d != n)
            .map(|_| format!(" --samples {n}"))
            .unwrap_or_default(),
        // `--out` holds `<preset>/`: this directory's parent, when it is so named.
        if dir.file_name().is_some_and(|f| f == preset) {
            dir.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .display()
                .to_string()
        } else {
            format!("OUT (where {} is OUT/{preset})", dir.display())
        }
    )
}

/// A finished preset: judged from `summary.json` and `metrics.csv`, and `summary.json` rewritten
/// with the new verdicts (the old ones kept in `previous_verdicts`).
fn rejudge_finished(dir: &Path, sum_path: &Path, write: bool) -> Result<Rejudged> {
    let csv_path = dir.join("metrics.csv");
    let raw = std::fs::read(sum_path).map_err(|e| Error::io(sum_path, e))?;
    let mut summary: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| Error::data(sum_path, format!("not JSON: {e}")))?;
    let preset = summary["preset"]
        .as_str()
        .ok_or_else(|| {
            Error::data(
                sum_path,
                "no `preset`: not a summary written by `reproduce` (a `run` directory's verdict is already in its summary.json; `verdict` re-judges preset directories such as out/fig10)",
            )
        })?
        .to_string();
    if !PRESETS.contains(&preset.as_str()) {
        return Err(Error::data(
            sum_path,
            format!(
                "names the preset '{preset}', which is not one of {}",
                PRESETS.join(", ")
            ),
        ));
    }
    let row = presets::get(&preset)?;
    let (verdicts, extra) = if row.is_toy() {
        judge_toy(&csv_path)?
    } else {
        judge_runs(dir, sum_path, &summary, row)?
    };
    let previous: Vec<serde_json::Value> =
        summary["verdicts"].as_array().cloned().unwrap_or_default();
    let previous_rules = summary["verdict_rules"].as_u64().unwrap_or(1);
    let entry = serde_json::json!({
        "verdict_rules": previous_rules,
        "version": summary["verdicts_version"].clone().as_str().map(String::from)
            .or_else(|| summary["version"].as_str().map(String::from)),
        "verdicts": previous.clone(),
    });
    let obj = summary
        .as_object_mut()
        .ok_or_else(|| Error::data(sum_path, "not a JSON object"))?;
    match obj
        .get_mut("previous_verdicts")
        .and_then(|v| v.as_array_mut())
    {
        Some(list) => list.push(entry),
        None => {
            obj.insert("previous_verdicts".into(), serde_json::json!([entry]));
        }
    }
    obj.insert(
        "verdicts".into(),
        serde_json::to_value(&verdicts).map_err(|e| Error::InvalidArgument(e.to_string()))?,
    );
    obj.insert("verdict_rules".into(), VERDICT_RULES.into());
    obj.insert("verdicts_version".into(), env!("CARGO_PKG_VERSION").into());
    let old_extra = obj.remove("extra").unwrap_or(serde_json::Value::Null);
    obj.insert("extra".into(), merge_extra(old_extra, extra));
    if write {
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        write_atomic(sum_path, text.as_bytes())?;
    }
    Ok(Rejudged {
        preset,
        verdicts,
        previous,
        previous_rules,
        stopped_at: None,
        rewrote: write.then(|| sum_path.to_path_buf()),
        resume_command: None,
    })
}

/// The toy's verdicts from its `metrics.csv`.
fn judge_toy(csv_path: &Path) -> Result<(Vec<Verdict>, serde_json::Value)> {
    let runs = parse_toy_csv(csv_path)?;
    consistency::check_toy(csv_path, &runs)?;
    let steps = runs
        .first()
        .and_then(|(_, p)| p.last())
        .map_or(0, |p| p.step);
    let named: Vec<(&str, &[toy::ToyPoint])> = runs
        .iter()
        .map(|(m, p)| (m.as_str(), p.as_slice()))
        .collect();
    Ok((toy_verdicts(&named, steps), serde_json::Value::Null))
}

/// A network preset's verdicts from its `summary.json` (specs and runs' legs), `metrics.csv` (the
/// records, each to the run whose legs carry its name and phase) and, for a paired preset,
/// `pair.csv`.
fn judge_runs(
    dir: &Path,
    sum_path: &Path,
    summary: &serde_json::Value,
    row: &presets::Preset,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    let preset = row.name;
    let csv_path = dir.join("metrics.csv");
    let not_this = |what: &str, e: String| {
        Error::data(
            sum_path,
            format!(
                "`{what}`: {e} — this summary.json does not hold a {preset} run written by reproduce"
            ),
        )
    };
    let specs: Vec<RunSpec> = serde_json::from_value(summary["specs"].clone())
        .map_err(|e| not_this("specs", e.to_string()))?;
    let mut outs: Vec<RunOutcome> = serde_json::from_value(summary["runs"].clone())
        .map_err(|e| not_this("runs", e.to_string()))?;
    // Each record belongs to the run whose legs carry its name and phase.
    for r in read_records(&csv_path)? {
        let i = outs
            .iter()
            .position(|o| o.legs.iter().any(|l| l.run == r.run && l.phase == r.phase))
            .ok_or_else(|| {
                Error::data(
                    &csv_path,
                    format!(
                        "a row of run '{}' ({}, step {}) matches no run in summary.json",
                        r.run, r.phase, r.step
                    ),
                )
            })?;
        outs[i].records.push(r);
    }
    consistency::check_specs(sum_path, preset, &specs)?;
    consistency::check_legs(sum_path, &outs)?;
    let mut inputs = JudgeInputs::default();
    if row.paired {
        let pair = dir.join("pair.csv");
        let text = std::fs::read_to_string(&pair).map_err(|e| Error::io(&pair, e))?;
        let last = text
            .lines()
            .skip(1)
            .last()
            .and_then(|l| l.split(',').nth(1))
            .and_then(|x| x.parse::<f64>().ok())
            .ok_or_else(|| Error::data(&pair, "no distance in its last row"))?;
        inputs.pair_distance = Some(last);
    }
    judge(preset, &specs, &outs, &inputs)
}
