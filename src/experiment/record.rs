//! What a run records and saves: the rows of `metrics.csv` ([`Record`], written and read back
//! exactly), the per-leg summaries and their statistics, the outcome of a run (`summary.json`),
//! and the checkpoint a run resumes from.

use super::spec::{Projection, RunSpec};
use super::stream::StreamState;
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::optim::OptState;

/// serde_json writes NaN as null: read null back as NaN (checkpoints hold unmeasured metrics).
pub(crate) fn nan_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One row of metrics.csv. NaN where a metric was not measured at that step.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub run: String,
    /// "before" or "after" the switch.
    pub phase: String,
    pub step: usize,
    #[serde(deserialize_with = "nan_null")]
    pub loss: f64,
    #[serde(deserialize_with = "nan_null")]
    pub accuracy: f64,
    #[serde(deserialize_with = "nan_null")]
    pub grad_norm: f64,
    #[serde(deserialize_with = "nan_null")]
    pub chi_k: f64,
    #[serde(deserialize_with = "nan_null")]
    pub chi_ema: f64,
    pub eigenvalues: Vec<f64>,
    #[serde(deserialize_with = "nan_null")]
    pub two_over_lr: f64,
    #[serde(deserialize_with = "nan_null")]
    pub sam_edge: f64,
    /// ⟨θ_t − θ_{t+1}, P_k∇L⟩/‖P_k∇L‖² of the step from this θ (η for GD).
    #[serde(deserialize_with = "nan_null")]
    pub dom_lr: f64,
    #[serde(deserialize_with = "nan_null")]
    pub bulk_lr: f64,
    #[serde(deserialize_with = "nan_null")]
    pub dist_switch: f64,
    #[serde(deserialize_with = "nan_null")]
    pub dist_init: f64,
    pub hvps: usize,
    #[serde(deserialize_with = "nan_null")]
    pub worst_residual: f64,
}

impl Record {
    pub fn csv_header(top: usize) -> String {
        let mut h = vec![
            "run",
            "phase",
            "step",
            "loss",
            "accuracy",
            "grad_norm",
            "chi_k",
            "chi_ema",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        h.extend((1..=top).map(|i| format!("lambda_{i}")));
        h.extend(
            [
                "two_over_lr",
                "sam_edge",
                "dom_lr",
                "bulk_lr",
                "dist_switch",
                "dist_init",
                "hvps",
                "worst_residual",
            ]
            .map(String::from),
        );
        h.join(",")
    }
    /// A whole metrics.csv: the header and one line per record.
    pub fn csv(records: &[Record], top: usize) -> String {
        let mut text = Self::csv_header(top);
        text.push('\n');
        for r in records {
            text.push_str(&r.csv_line(top));
            text.push('\n');
        }
        text
    }

    /// Read back a whole metrics.csv written by [`Record::csv`]: the records and the number of
    /// eigenvalue columns. Exact: the numbers were written in Rust's shortest round-trip form.
    /// A record's eigenvalues end at its first `nan` column (none were computed at that step).
    pub fn parse_csv(text: &str) -> Result<(Vec<Record>, usize)> {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let top = header
            .split(',')
            .filter(|c| c.starts_with("lambda_"))
            .count();
        if header != Self::csv_header(top) {
            return Err(Error::Shape(format!(
                "not a metrics.csv of this version: its header is '{header}'"
            )));
        }
        let columns = header.split(',').count();
        let mut out = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
            let bad = |what: &str| Error::Shape(format!("metrics.csv line {}: {what}", i + 2));
            let c: Vec<&str> = line.split(',').collect();
            if c.len() != columns {
                return Err(bad(&format!("{} columns, expected {columns}", c.len())));
            }
            let f = |j: usize| {
                c[j].parse::<f64>()
                    .map_err(|_| bad(&format!("'{}' is not a number", c[j])))
            };
            let u = |j: usize| {
                c[j].parse::<usize>()
                    .map_err(|_| bad(&format!("'{}' is not a count", c[j])))
            };
            let mut eigenvalues = Vec::new();
            for j in 8..8 + top {
                let x = f(j)?;
                if x.is_nan() {
                    break;
                }
                eigenvalues.push(x);
            }
            let t = 8 + top;
            out.push(Record {
                run: c[0].to_string(),
                phase: c[1].to_string(),
                step: u(2)?,
                loss: f(3)?,
                accuracy: f(4)?,
                grad_norm: f(5)?,
                chi_k: f(6)?,
                chi_ema: f(7)?,
                eigenvalues,
                two_over_lr: f(t)?,
                sam_edge: f(t + 1)?,
                dom_lr: f(t + 2)?,
                bulk_lr: f(t + 3)?,
                dist_switch: f(t + 4)?,
                dist_init: f(t + 5)?,
                hvps: u(t + 6)?,
                worst_residual: f(t + 7)?,
            });
        }
        Ok((out, top))
    }

    pub fn csv_line(&self, top: usize) -> String {
        let f = |x: f64| {
            if x.is_nan() {
                "nan".to_string()
            } else {
                format!("{x}")
            }
        };
        let mut c = vec![
            self.run.clone(),
            self.phase.clone(),
            self.step.to_string(),
            f(self.loss),
            f(self.accuracy),
            f(self.grad_norm),
            f(self.chi_k),
            f(self.chi_ema),
        ];
        c.extend((0..top).map(|i| f(self.eigenvalues.get(i).copied().unwrap_or(f64::NAN))));
        c.extend([
            f(self.two_over_lr),
            f(self.sam_edge),
            f(self.dom_lr),
            f(self.bulk_lr),
            f(self.dist_switch),
            f(self.dist_init),
            self.hvps.to_string(),
            f(self.worst_residual),
        ]);
        c.join(",")
    }
}

/// Mean and (population) standard deviation of a series.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub n: usize,
    #[serde(deserialize_with = "nan_null")]
    pub mean: f64,
    #[serde(deserialize_with = "nan_null")]
    pub std: f64,
}

impl Stats {
    pub fn of(xs: &[f64]) -> Stats {
        let n = xs.len();
        if n == 0 {
            return Stats {
                n,
                mean: f64::NAN,
                std: f64::NAN,
            };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        Stats {
            n,
            mean,
            std: var.sqrt(),
        }
    }
}

/// What one leg (the run before the switch, or one variant after it) ended with.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LegSummary {
    pub run: String,
    pub phase: String,
    pub projection: Projection,
    pub first_step: usize,
    pub last_step: usize,
    #[serde(deserialize_with = "nan_null")]
    pub start_loss: f64,
    #[serde(deserialize_with = "nan_null")]
    pub end_loss: f64,
    pub dom_lr: Stats,
    pub bulk_lr: Stats,
    /// Per-step Dom-LR and Bulk-LR of a leg in progress (a checkpoint carries them, so the
    /// statistics of a resumed run cover every step); empty once the leg has finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) dom_lr_series: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) bulk_lr_series: Vec<f64>,
}

impl LegSummary {
    /// (start − end)/start of the full-data loss.
    pub fn rel_decrease(&self) -> f64 {
        (self.start_loss - self.end_loss) / self.start_loss
    }
}

/// Everything a run produced (`summary.json` holds all but the records and θs).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunOutcome {
    /// The step where the variants branched (None: no switch happened).
    pub switch_step: Option<usize>,
    /// False when the χ-EMA rule never fired within `steps`.
    pub switch_rule_fired: bool,
    pub legs: Vec<LegSummary>,
    #[serde(skip)]
    pub records: Vec<Record>,
    /// θ at every record, when asked for (paired comparisons).
    #[serde(skip)]
    pub thetas: Vec<Vec<f64>>,
}

impl RunOutcome {
    pub fn leg(&self, run: &str) -> Option<&LegSummary> {
        self.legs
            .iter()
            .find(|l| l.run == run && l.phase == "after")
    }
    pub fn records_of<'a>(
        &'a self,
        run: &'a str,
        phase: &'a str,
    ) -> impl Iterator<Item = &'a Record> {
        self.records
            .iter()
            .filter(move |r| r.run == run && r.phase == phase)
    }
}

fn one() -> f64 {
    1.0
}

/// Where the run is, as saved in a checkpoint (vectors go to a safetensors file beside it).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub spec: RunSpec,
    /// Global step reached.
    pub step: usize,
    /// 0: before the switch; i ≥ 1: variant i − 1 after it.
    pub leg: usize,
    #[serde(deserialize_with = "nan_null")]
    pub ema: f64,
    /// The χ-EMA's sum of weights ([`EmaStart::update`](super::spec::EmaStart::update); 1 in
    /// checkpoints from before `ema_start`, which all started at the first value).
    #[serde(default = "one")]
    pub ema_weight: f64,
    pub opt: OptState,
    pub stream: StreamState,
    pub switch_step: Option<usize>,
    pub switch_rule_fired: bool,
    #[serde(deserialize_with = "nan_null")]
    pub switch_ema: f64,
    /// `ema_weight` at the switch.
    #[serde(default = "one")]
    pub switch_ema_weight: f64,
    pub switch_opt: OptState,
    pub switch_stream: Option<StreamState>,
    pub legs: Vec<LegSummary>,
    pub current: Option<LegSummary>,
    pub records: Vec<Record>,
    /// Seconds the run had computed when this was written, over all its sessions (0 in
    /// checkpoints from before this field).
    #[serde(default)]
    pub elapsed_s: f64,
    /// [`data_fingerprint`] of the data the run computed on (absent in checkpoints from before
    /// this field): a resume on other data (another CIFAR-10 cache changes the standardisation)
    /// is refused.
    #[serde(default)]
    pub data: Option<String>,
    /// The densities recorded so far (`density_every`; empty in checkpoints from before it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub densities: Vec<super::density::DensityRecord>,
}

/// A fingerprint of a data set as the network sees it: sample count, Σx and Σx² (17 digits) and a
/// position-weighted label sum. Two runs on the same cache and preprocessing give the same string;
/// other records or other statistics change it.
pub fn data_fingerprint(d: &Dataset) -> String {
    let (s1, s2) =
        d.x.iter()
            .fold((0.0f64, 0.0f64), |(a, b), &v| (a + v, b + v * v));
    let labels: u64 = d
        .labels
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u64 + 1) * l as u64)
        .sum();
    format!(
        "{} samples × {}, Σx {s1:.17e}, Σx² {s2:.17e}, labels {labels}",
        d.n, d.d
    )
}

/// Named vectors saved with a checkpoint.
pub type Vectors = Vec<(String, Vec<f64>)>;

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(run: &str, step: usize, eigenvalues: Vec<f64>, x: f64) -> Record {
        Record {
            run: run.into(),
            phase: "after".into(),
            step,
            loss: 0.1 + x,
            accuracy: 0.9375,
            grad_norm: 1.0 / 3.0 + x,
            chi_k: f64::NAN,
            chi_ema: 0.95,
            eigenvalues,
            two_over_lr: 200.0,
            sam_edge: f64::NAN,
            dom_lr: 1e-300 * x,
            bulk_lr: -7.25e-12,
            dist_switch: std::f64::consts::PI * x,
            dist_init: f64::MAX,
            hvps: 18,
            worst_residual: f64::MIN_POSITIVE,
        }
    }

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn metrics_csv_reads_back_exactly() {
        let recs = vec![
            rec("SGD", 0, vec![35.609835739387, 32.35, 1e-9], 0.0),
            rec("Dom-SGD", 50, vec![], 0.123456789012345),
            rec("Bulk-SGD", 100, vec![-4.5], 2.0f64.sqrt()),
        ];
        let text = Record::csv(&recs, 3);
        let (back, top) = Record::parse_csv(&text).unwrap();
        assert_eq!(top, 3);
        assert_eq!(Record::csv(&back, 3), text);
        for (a, b) in recs.iter().zip(&back) {
            assert_eq!(
                (&a.run, &a.phase, a.step, a.hvps),
                (&b.run, &b.phase, b.step, b.hvps)
            );
            assert_eq!(a.eigenvalues.len(), b.eigenvalues.len());
            let fa = [
                a.loss,
                a.accuracy,
                a.chi_ema,
                a.grad_norm,
                a.chi_k,
                a.sam_edge,
                a.dom_lr,
                a.bulk_lr,
            ];
            let fb = [
                b.loss,
                b.accuracy,
                b.chi_ema,
                b.grad_norm,
                b.chi_k,
                b.sam_edge,
                b.dom_lr,
                b.bulk_lr,
            ];
            let ga = [a.dist_switch, a.dist_init, a.worst_residual, a.two_over_lr];
            let gb = [b.dist_switch, b.dist_init, b.worst_residual, b.two_over_lr];
            for (x, y) in fa.iter().chain(&ga).zip(fb.iter().chain(&gb)) {
                assert!(same(*x, *y), "{x} vs {y}");
            }
            for (x, y) in a.eigenvalues.iter().zip(&b.eigenvalues) {
                assert!(same(*x, *y));
            }
        }
    }

    #[test]
    fn a_broken_metrics_csv_is_an_error_naming_the_line() {
        let text = Record::csv(&[rec("SGD", 0, vec![1.0], 0.0)], 2);
        let err = |t: &str| Record::parse_csv(t).unwrap_err().to_string();
        assert!(err("step,loss\n1,2\n").contains("header"));
        let short = text.trim_end().rsplit_once(',').unwrap().0.to_string();
        assert!(
            err(&short).contains("line 2: 17 columns, expected 18"),
            "{}",
            err(&short)
        );
        let words = text.replace(",18,", ",many,");
        assert!(err(&words).contains("line 2: 'many' is not a count"));
        let loss = text.replace("SGD,after,0,0.1,", "SGD,after,0,zero,");
        assert!(err(&loss).contains("'zero' is not a number"));
    }
}
