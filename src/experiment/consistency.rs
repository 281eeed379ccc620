//! What `verdict DIR` checks before it judges: a preset's files must hold possible values and agree
//! with each other, or nothing is judged (a tampered or mixed-up directory would otherwise print
//! HOLDS from numbers no run produced). Each refusal names the file, line and column.

use super::run::{Record, RunOutcome};
use super::spec::RunSpec;
use super::toy::ToyPoint;
use crate::error::{Error, Result};
use crate::paper::presets::{preset_specs, with_samples};
use std::path::Path;

/// Slack of χ's bounds for round-off (χ = ‖P_k g‖²/‖g‖² in f32 on a GPU).
const CHI_SLACK: f64 = 1e-6;

/// The metrics.csv columns (1-based) of the values checked here.
const COL_STEP: usize = 3;
const COL_LOSS: usize = 4;
const COL_ACCURACY: usize = 5;
const COL_CHI_K: usize = 7;
const COL_CHI_EMA: usize = 8;

/// The line numbers (1-based, the header is line 1) of the records `Record::parse_csv` read from
/// `text`, in order.
pub fn record_lines(text: &str) -> Vec<usize> {
    text.lines()
        .skip(1)
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, _)| i + 2)
        .collect()
}

fn refuse(path: &Path, line: usize, col: usize, name: &str, what: String) -> Error {
    Error::data(path, format!("line {line}, column {col} ({name}): {what}"))
}

/// Whether `x` is a possible χ (finite, in [0, 1] up to round-off).
fn is_chi(x: f64) -> bool {
    x.is_finite() && (-CHI_SLACK..=1.0 + CHI_SLACK).contains(&x)
}

/// The records of `metrics.csv` (at `lines`): χ_k and its EMA in [0, 1], losses finite (a run that
/// diverged stops its preset, so a judged one did not), accuracy in [0, 1], and each run's rows
/// of a phase together with their steps increasing (no row reversed, duplicated or out of order).
pub fn check_records(path: &Path, records: &[Record], lines: &[usize]) -> Result<()> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(i + 2);
        for (col, name, x) in [
            (COL_CHI_K, "chi_k", r.chi_k),
            (COL_CHI_EMA, "chi_ema", r.chi_ema),
        ] {
            if !is_chi(x) {
                return Err(refuse(
                    path,
                    line,
                    col,
                    name,
                    format!("{x} is not a χ (0 ≤ χ ≤ 1)"),
                ));
            }
        }
        if !r.loss.is_finite() {
            return Err(refuse(
                path,
                line,
                COL_LOSS,
                "loss",
                format!("{} is not finite, and the run did not diverge", r.loss),
            ));
        }
        if !(0.0..=1.0).contains(&r.accuracy) {
            return Err(refuse(
                path,
                line,
                COL_ACCURACY,
                "accuracy",
                format!("{} is not an accuracy (0 ≤ a ≤ 1)", r.accuracy),
            ));
        }
        let key = (r.run.as_str(), r.phase.as_str());
        let prev = i.checked_sub(1).map(|j| &records[j]);
        match prev.filter(|p| (p.run.as_str(), p.phase.as_str()) == key) {
            Some(p) if r.step <= p.step => {
                return Err(refuse(
                    path,
                    line,
                    COL_STEP,
                    "step",
                    format!(
                        "step {} of {} ({}) after step {}: the steps are out of order or repeated",
                        r.step, r.run, r.phase, p.step
                    ),
                ));
            }
            Some(_) => {}
            None if seen.contains(&key) => {
                return Err(refuse(
                    path,
                    line,
                    COL_STEP,
                    "step",
                    format!(
                        "rows of {} ({}) again after other runs' rows: a run's rows are written together",
                        r.run, r.phase
                    ),
                ));
            }
            None => seen.push(key),
        }
    }
    Ok(())
}

/// Every finished leg of `outs` (from `summary.json`) against its records (from `metrics.csv`): its
/// first row at its first step with its start loss, its last row at its last step with its end
/// loss, bit for bit. The verdicts read the legs' losses, so a leg the rows contradict is refused.
pub fn check_legs(sum_path: &Path, outs: &[RunOutcome]) -> Result<()> {
    for o in outs {
        for leg in &o.legs {
            let rows: Vec<&Record> = o
                .records
                .iter()
                .filter(|r| r.run == leg.run && r.phase == leg.phase)
                .collect();
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                return Err(Error::data(
                    sum_path,
                    format!(
                        "the leg {} ({}) has no rows in metrics.csv: the two files are not of one run",
                        leg.run, leg.phase
                    ),
                ));
            };
            let same = |a: f64, b: f64| a.to_bits() == b.to_bits();
            if first.step != leg.first_step || !same(first.loss, leg.start_loss) {
                return Err(Error::data(
                    sum_path,
                    format!(
                        "the leg {} ({}) starts at step {} with loss {}, but metrics.csv's first row of it is step {} with loss {}: the two files disagree",
                        leg.run, leg.phase, leg.first_step, leg.start_loss, first.step, first.loss
                    ),
                ));
            }
            if last.step != leg.last_step || !same(last.loss, leg.end_loss) {
                return Err(Error::data(
                    sum_path,
                    format!(
                        "the leg {} ({}) ends at step {} with loss {}, but metrics.csv's last row of it is step {} with loss {}: the two files disagree",
                        leg.run, leg.phase, leg.last_step, leg.end_loss, last.step, last.loss
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The specs of `summary.json` must be the preset's (full or quick, on any number of samples):
/// a summary naming one preset and holding another's runs is refused.
pub fn check_specs(sum_path: &Path, preset: &str, specs: &[RunSpec]) -> Result<()> {
    let matches = |quick: bool| {
        preset_specs(preset, quick).is_ok_and(|want| {
            want.len() == specs.len()
                && want.iter().zip(specs).all(|(w, s)| {
                    with_samples(w, Some(s.data.samples))
                        .differences(s)
                        .is_empty()
                })
        })
    };
    if matches(false) || matches(true) {
        Ok(())
    } else {
        Err(Error::data(
            sum_path,
            format!(
                "names the preset '{preset}', but its specs are not that preset's (see `reproduce {preset} --print-spec`): refusing to judge them as {preset}"
            ),
        ))
    }
}

/// The toy's trajectories: χ₁ in [0, 1], x, y and the loss finite, steps increasing within a
/// method and each method's rows together. `path` names the file; lines are counted as written
/// (the header is line 1, one row per point).
pub fn check_toy(path: &Path, runs: &[(String, Vec<ToyPoint>)]) -> Result<()> {
    let mut line = 1;
    for (_, pts) in runs {
        for (i, p) in pts.iter().enumerate() {
            line += 1;
            if !is_chi(p.chi) {
                return Err(refuse(
                    path,
                    line,
                    6,
                    "chi_1",
                    format!("{} is not a χ (0 ≤ χ ≤ 1)", p.chi),
                ));
            }
            for (col, name, x) in [(3, "x", p.x), (4, "y", p.y), (5, "loss", p.loss)] {
                if !x.is_finite() {
                    return Err(refuse(path, line, col, name, format!("{x} is not finite")));
                }
            }
            if i > 0 && p.step <= pts[i - 1].step {
                return Err(refuse(
                    path,
                    line,
                    2,
                    "step",
                    format!(
                        "step {} after step {}: the steps are out of order or repeated",
                        p.step,
                        pts[i - 1].step
                    ),
                ));
            }
        }
    }
    let mut names: Vec<&str> = runs.iter().map(|(m, _)| m.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::data(
            path,
            format!(
                "the rows of {} are not together: a method's rows are written together",
                w[0]
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(run: &str, phase: &str, step: usize, loss: f64) -> Record {
        Record {
            run: run.into(),
            phase: phase.into(),
            step,
            loss,
            accuracy: 0.5,
            grad_norm: 1.0,
            chi_k: 0.5,
            chi_ema: 0.5,
            eigenvalues: vec![10.0; 2],
            two_over_lr: 200.0,
            sam_edge: f64::NAN,
            dom_lr: f64::NAN,
            bulk_lr: f64::NAN,
            dist_switch: 0.0,
            dist_init: 1.0,
            hvps: 3,
            worst_residual: 1e-6,
        }
    }

    /// A run of SGD to step 20, then SGD and Dom-SGD to step 40, as metrics.csv holds it.
    fn run_rows() -> Vec<Record> {
        vec![
            rec("SGD", "before", 0, 1.0),
            rec("SGD", "before", 20, 0.5),
            rec("SGD", "after", 20, 0.5),
            rec("SGD", "after", 40, 0.3),
            rec("Dom-SGD", "after", 20, 0.5),
            rec("Dom-SGD", "after", 40, 0.49),
        ]
    }

    /// `rows` through metrics.csv and back, and what `check_records` says of them.
    fn check(rows: &[Record]) -> Result<()> {
        let text = Record::csv(rows, 2);
        let (back, _) = Record::parse_csv(&text).unwrap();
        check_records(Path::new("metrics.csv"), &back, &record_lines(&text))
    }

    fn outcome(rows: Vec<Record>, end: f64) -> RunOutcome {
        let stats = serde_json::json!({"n": 0, "mean": null, "std": null});
        let leg = |run: &str,
                   phase: &str,
                   proj: &str,
                   first: usize,
                   last: usize,
                   a: f64,
                   b: f64| {
            serde_json::json!({"run": run, "phase": phase, "projection": proj, "first_step": first,
                "last_step": last, "start_loss": a, "end_loss": b, "dom_lr": stats, "bulk_lr": stats})
        };
        let mut o: RunOutcome = serde_json::from_value(serde_json::json!({
            "switch_step": 20, "switch_rule_fired": false, "legs": [
                leg("SGD", "before", "none", 0, 20, 1.0, 0.5),
                leg("SGD", "after", "none", 20, 40, 0.5, end),
                leg("Dom-SGD", "after", "dominant", 20, 40, 0.5, 0.49)]
        }))
        .unwrap();
        o.records = rows;
        o
    }

    #[test]
    fn consistent_rows_and_legs_pass() {
        check(&run_rows()).unwrap();
        check_legs(Path::new("summary.json"), &[outcome(run_rows(), 0.3)]).unwrap();
    }

    #[test]
    fn an_impossible_chi_is_refused_naming_line_and_column() {
        for (bad, col) in [(5.0, "column 7 (chi_k)"), (f64::NAN, "column 7 (chi_k)")] {
            let mut rows = run_rows();
            rows[3].chi_k = bad;
            let e = check(&rows).unwrap_err().to_string();
            assert!(
                e.contains("metrics.csv") && e.contains("line 5") && e.contains(col),
                "{e}"
            );
        }
        let mut rows = run_rows();
        rows[1].chi_ema = -0.5;
        let e = check(&rows).unwrap_err().to_string();
        assert!(e.contains("line 3, column 8 (chi_ema)"), "{e}");
    }

    #[test]
    fn a_non_finite_loss_is_refused() {
        let mut rows = run_rows();
        rows[2].loss = f64::INFINITY;
        let e = check(&rows).unwrap_err().to_string();
        assert!(e.contains("line 4, column 4 (loss)"), "{e}");
    }

    #[test]
    fn rows_reversed_duplicated_or_out_of_order_are_refused() {
        let mut reversed = run_rows();
        reversed.swap(0, 1);
        let e = check(&reversed).unwrap_err().to_string();
        assert!(
            e.contains("line 3, column 3 (step)") && e.contains("out of order"),
            "{e}"
        );
        let mut duplicated = run_rows();
        duplicated.insert(1, rec("SGD", "before", 0, 1.0));
        let e = check(&duplicated).unwrap_err().to_string();
        assert!(e.contains("line 3, column 3 (step)"), "{e}");
        let mut interleaved = run_rows();
        interleaved.swap(3, 4);
        let e = check(&interleaved).unwrap_err().to_string();
        assert!(e.contains("line 6") && e.contains("again after"), "{e}");
    }

    #[test]
    fn a_leg_the_rows_contradict_is_refused() {
        // summary.json says SGD ended at 0.3; metrics.csv's last SGD row says otherwise.
        let mut rows = run_rows();
        rows[3].loss = 0.45;
        let e = check_legs(Path::new("summary.json"), &[outcome(rows, 0.3)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("summary.json") && e.contains("the two files disagree"),
            "{e}"
        );
        // Tampered end loss in summary.json (Dom-SGD's 0.49 would then look stalled or not).
        let e = check_legs(Path::new("summary.json"), &[outcome(run_rows(), 0.1)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ends at step 40 with loss 0.1"), "{e}");
        let mut missing = run_rows();
        missing.truncate(4);
        let e = check_legs(Path::new("summary.json"), &[outcome(missing, 0.3)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("Dom-SGD") && e.contains("no rows"), "{e}");
    }

    #[test]
    fn a_summary_naming_another_presets_specs_is_refused() {
        let fig9 = preset_specs("fig9", true).unwrap();
        check_specs(Path::new("summary.json"), "fig9", &fig9).unwrap();
        let e = check_specs(Path::new("summary.json"), "fig10", &fig9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not that preset's"), "{e}");
        // On other samples (`--samples`, CIFAR-10 at hand) it is still the preset.
        let fewer = with_samples(&fig9[0], Some(100));
        check_specs(Path::new("summary.json"), "fig9", &[fewer]).unwrap();
    }

    #[test]
    fn the_toys_impossible_values_are_refused() {
        let p = |step, chi| ToyPoint {
            step,
            x: 1.0,
            y: 1.0,
            loss: 1.0,
            chi,
        };
        let ok = vec![("GD".to_string(), vec![p(0, 0.5), p(1, 0.4)])];
        check_toy(Path::new("metrics.csv"), &ok).unwrap();
        let bad = vec![("GD".to_string(), vec![p(0, 0.5), p(1, 5.0)])];
        let e = check_toy(Path::new("metrics.csv"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3, column 6 (chi_1)"), "{e}");
        let back = vec![("GD".to_string(), vec![p(1, 0.5), p(0, 0.4)])];
        let e = check_toy(Path::new("metrics.csv"), &back)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3, column 2 (step)"), "{e}");
        let split = vec![
            ("GD".to_string(), vec![p(0, 0.5)]),
            ("SGD".to_string(), vec![p(0, 0.5)]),
            ("GD".to_string(), vec![p(1, 0.5)]),
        ];
        let e = check_toy(Path::new("metrics.csv"), &split)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not together"), "{e}");
    }
}
