//! Each leg's final weights, as `run` and `reproduce` save them
//! (`DIR/weights/<run>-<phase>.safetensors`), and `summary.json`'s per-leg `results` that name them.

use super::output::LegSink;
use super::record::LegSummary;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where and how [`super::output::CsvSink`] saves each leg's final weights: `DIR/weights/<run>-<phase>.safetensors`
/// (f32, PyTorch's names, the network's metadata as `init` writes it) with `run`, `phase`, `step`
/// (the global step of the leg's last row) and `train_loss` (the full-batch training loss there,
/// as in `metrics.csv`, computed before the rounding to f32) in the metadata
/// ([`crate::nn::weights::meta::INFO_KEYS`]).
#[derive(Clone, Debug)]
pub struct WeightsTo {
    /// The output directory (the files go to its `weights/`).
    pub dir: PathBuf,
    /// The network (`RunSpec::net`).
    pub spec: crate::nn::model::ModelSpec,
    /// The loss (`mse`, `ce`), written as `loss`.
    pub loss: crate::backend::LossKind,
}

/// `weights/<run>-<phase>.safetensors`, relative to the output directory: where [`WeightsTo`]
/// saves a leg's final θ (e.g. `weights/Dom-SGD-after.safetensors`).
pub fn final_weights_file(run: &str, phase: &str) -> PathBuf {
    let safe: String = format!("{run}-{phase}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Path::new("weights").join(format!("{safe}.safetensors"))
}

/// `summary.json`'s `results`: one object per leg of the run(s), in order — `run`, `phase`
/// (`before`/`after` the fork), `projection`, `first_step`, `last_step`, `start_loss`, `end_loss`
/// (full-batch training losses at the leg's first and last rows), `relative_decrease`
/// ((start − end) / start) and `weights` (the leg's final weights, relative to `dir`, when that
/// file is there). The same numbers as `runs[].legs`, flat, for a reader who wants each branch's
/// outcome without the run structure.
pub fn leg_results(dir: &Path, legs: &[&LegSummary]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = legs
        .iter()
        .map(|l| {
            let file = final_weights_file(&l.run, &l.phase);
            let finite = |x: f64| x.is_finite().then_some(x);
            serde_json::json!({
                "run": l.run, "phase": l.phase, "projection": l.projection,
                "first_step": l.first_step, "last_step": l.last_step,
                "start_loss": finite(l.start_loss), "end_loss": finite(l.end_loss),
                "relative_decrease": finite((l.start_loss - l.end_loss) / l.start_loss),
                "weights": dir.join(&file).exists().then(|| file.to_string_lossy().replace('\\', "/")),
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}

impl WeightsTo {
    /// Save `theta` as the final weights of `leg`.
    pub fn save(&self, leg: &LegSummary, theta: &[f64]) -> Result<()> {
        let path = self.dir.join(final_weights_file(&leg.run, &leg.phase));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let loss = match self.loss {
            crate::backend::LossKind::Mse => "mse",
            crate::backend::LossKind::Ce => "ce",
        };
        let meta = [
            ("loss", loss.to_string()),
            ("run", leg.run.clone()),
            ("phase", leg.phase.clone()),
            ("step", leg.last_step.to_string()),
            ("train_loss", format!("{:e}", leg.end_loss)),
        ]
        .map(|(k, v)| (k.to_string(), v));
        crate::nn::weights::save_with(
            &path,
            self.spec.clone(),
            theta,
            crate::nn::weights::SaveDtype::F32,
            &meta,
        )
    }

    /// This as the [`LegSink`] of a [`super::output::CsvSink`].
    pub fn sink<'a>(self) -> LegSink<'a> {
        Box::new(move |leg, theta| self.save(leg, theta))
    }
}
