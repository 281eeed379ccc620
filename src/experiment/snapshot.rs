//! Snapshots: a run's state at its switch (θ, the optimiser state, the minibatch stream, the EMA of
//! χ_k and the rows recorded so far), written by `reproduce <preset> --snapshot-at-switch` and
//! loaded by the app's scenarios ("SGD at the χ-EMA switch": fig1's θ at the step its χ-EMA rule
//! fired). Two files: `snapshot.json` ([`Snapshot`]: spec, step, stream, records, how it was made)
//! and `snapshot.safetensors` (`theta`, and `opt_m` / `opt_v` when the optimiser has state; f64,
//! metadata `step`), the same layout as a checkpoint's.

use super::files::{read_pair, tensors_bytes, tensors_parse, write_atomic};
use super::record::{Record, Vectors, nan_null};
use super::spec::RunSpec;
use super::stream::StreamState;
use crate::error::{Error, Result};
use crate::optim::OptState;
use std::path::Path;

/// The JSON file of a snapshot directory.
pub const SNAPSHOT_JSON: &str = "snapshot.json";
/// The tensors file of a snapshot directory.
pub const SNAPSHOT_TENSORS: &str = "snapshot.safetensors";

/// How a snapshot was made: the command, the program's version and commit, the backend, the
/// seconds the run computed until the switch.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    pub command: String,
    pub version: String,
    /// `git rev-parse --short HEAD` of the working tree it was built from, when known.
    pub commit: Option<String>,
    pub backend: String,
    pub seconds: f64,
}

fn one() -> f64 {
    1.0
}

/// A run's state at its switch step.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The spec of the run it comes from (model, data, loss, optimiser, k, tol, seed).
    pub spec: RunSpec,
    /// The global step of θ (the switch step: the first step after the switch starts here).
    pub step: usize,
    /// Whether the χ-EMA rule fired (false: the run reached `spec.steps` without it).
    pub rule_fired: bool,
    /// The EMA (0.9) of χ_k at θ.
    #[serde(deserialize_with = "nan_null")]
    pub ema: f64,
    /// The EMA's sum of weights ([`EmaStart::update`](super::spec::EmaStart::update)); 1 in
    /// snapshots from before `ema_start` (which all started at the first value).
    #[serde(default = "one")]
    pub ema_weight: f64,
    /// The optimiser's step counter (its vectors are in the tensors file).
    pub opt: OptState,
    /// The minibatch stream positioned at the switch: a run continued from the snapshot draws the
    /// minibatches the uninterrupted run drew.
    pub stream: StreamState,
    /// The rows the run recorded up to and including the switch (loss, χ_k, EMA, eigenvalues).
    pub records: Vec<Record>,
    /// [`super::record::data_fingerprint`] of the data the run computed on.
    pub data: String,
    pub made_by: Provenance,
}

impl Snapshot {
    /// The snapshot's θ and optimiser state from its vectors. Errors: `theta` missing, or of
    /// another length than `p`; `opt_m` / `opt_v` of another length.
    pub fn state(&self, v: &Vectors, p: usize) -> Result<(Vec<f64>, OptState)> {
        let get = |n: &str| v.iter().find(|(name, _)| name == n).map(|(_, x)| x.clone());
        let theta = get("theta")
            .ok_or_else(|| Error::InvalidArgument("snapshot: vector `theta` is missing".into()))?;
        if theta.len() != p {
            return Err(Error::Shape(format!(
                "snapshot θ has {} entries, the model {p}",
                theta.len()
            )));
        }
        let mut opt = self.opt.clone();
        opt.m = get("opt_m").unwrap_or_default();
        opt.v = get("opt_v").unwrap_or_default();
        for (n, x) in [("opt_m", &opt.m), ("opt_v", &opt.v)] {
            if !x.is_empty() && x.len() != p {
                return Err(Error::Shape(format!(
                    "snapshot {n} has {} entries, the model {p}",
                    x.len()
                )));
            }
        }
        Ok((theta, opt))
    }
}

/// Write a snapshot into `dir` (created): the tensors first, then the JSON (the commit point).
pub fn save_snapshot(dir: &Path, s: &Snapshot, v: &Vectors) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_atomic(&dir.join(SNAPSHOT_TENSORS), &tensors_bytes(v, s.step)?)?;
    let json = serde_json::to_string(s).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    write_atomic(&dir.join(SNAPSHOT_JSON), json.as_bytes())
}

/// Read a snapshot directory written by [`save_snapshot`].
pub fn load_snapshot(dir: &Path) -> Result<(Snapshot, Vectors)> {
    let (text, jp, raw, tp) = read_pair(dir, SNAPSHOT_JSON, SNAPSHOT_TENSORS)?;
    parse_snapshot(&text, &jp, &raw, &tp)
}

/// A snapshot from the text of `snapshot.json` and the bytes of `snapshot.safetensors` (the paths
/// only name the files in errors). Errors: JSON that is not a snapshot, tensors that are not f64,
/// not finite, or written for another step than the JSON's.
pub fn parse_snapshot(text: &str, jp: &Path, raw: &[u8], tp: &Path) -> Result<(Snapshot, Vectors)> {
    let s: Snapshot =
        serde_json::from_str(text).map_err(|e| Error::data(jp, format!("not a snapshot: {e}")))?;
    let v = tensors_parse(raw, tp, s.step)?;
    Ok((s, v))
}
