//! Figure 9: full-batch GD at η 0.1 trains at the edge of stability (λ₁ ≈ 2/η); at step 2500 it
//! is continued as GD, Dom-GD and Bulk-GD from the same point. Also the edge-of-stability protocol
//! fig10 shares.

use super::{JudgeInputs, Preset, Runs};
use crate::error::Result;
use crate::experiment::run::RunOutcome;
use crate::experiment::spec::{OptimizerSpec, Projection, RunSpec};
use crate::experiment::verdict::Verdict;
use crate::paper::judges::{edge_verdict, with_projection};

/// fig9's switch step: the paper switches GD (η 0.1) to Dom-GD / Bulk-GD at step 2500.
pub const FIG9_SWITCH: usize = 2500;

/// An edge-of-stability preset: `opt` (full batch) to step `steps_full` (quick 300), then the
/// plain, Dom- and Bulk- variants for 1000 steps (60) from the same point.
pub(super) fn edge_spec(name: &str, opt: OptimizerSpec, steps_full: usize, q: bool) -> RunSpec {
    let mut spec = RunSpec::new(name, opt, if q { 300 } else { steps_full });
    spec.variants = vec![Projection::None, Projection::Dominant, Projection::Bulk];
    spec.steps_after = if q { 60 } else { 1000 };
    spec.record_every = if q { 10 } else { 20 };
    spec.top = Some(10);
    spec
}

/// An edge preset's verdicts: the sharpness in its band ([`edge_verdict`] with `claim`), then
/// "Dom stalls, Bulk trains".
pub(super) fn edge_verdicts(
    claim: &str,
    name: &str,
    spec: &RunSpec,
    o: &RunOutcome,
) -> Result<Vec<Verdict>> {
    let mut v = vec![edge_verdict(claim, spec, o)?];
    v.extend(with_projection(spec, o, name));
    Ok(v)
}

fn judge(
    name: &str,
    specs: &[RunSpec],
    outs: &[RunOutcome],
    _: &JudgeInputs,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    let claim = "fig9: GD at η = 0.1 trains at the edge of stability (λ₁ within ±10 % of 2/η)";
    Ok((
        edge_verdicts(claim, name, &specs[0], &outs[0])?,
        serde_json::Value::Null,
    ))
}

pub(super) const FIG9: Preset = Preset {
    name: "fig9",
    figure: "Figure 9",
    paper_setting: "GD η 0.1 (edge of stability, λ₁ ≈ 2/η), switch to Dom-GD / Bulk-GD at step 2500",
    runs: Runs::Specs(|q| vec![edge_spec("fig9", OptimizerSpec::gd(0.1), FIG9_SWITCH, q)]),
    paired: false,
    judge,
    always: &[],
    full: &["1000 steps after the switch: our horizon"],
    quick: &["switch at step 300, not the paper's 2500; 60 steps after"],
};
