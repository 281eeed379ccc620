//! Figures 4 and 5: SGD → GD and GD → SGD from the same point on fc-tanh; the alignment follows
//! the noise.

use super::{JudgeInputs, Preset, Runs};
use crate::error::Result;
use crate::experiment::run::RunOutcome;
use crate::experiment::spec::{OptimizerSpec, RunSpec};
use crate::experiment::verdict::Verdict;
use crate::paper::judges::switch_verdict;
use crate::paper::models::FC_TANH;

/// fig. 4 / 5: `first` for 2000 steps (quick 300), then `after` for 1000 (60) from the same point.
fn switch_spec(name: &str, first: OptimizerSpec, after: OptimizerSpec, q: bool) -> RunSpec {
    let mut spec = RunSpec::new(name, first, if q { 300 } else { 2000 });
    spec.after = Some(after);
    spec.steps_after = if q { 60 } else { 1000 };
    spec.record_every = if q { 10 } else { 20 };
    spec.top = Some(10);
    spec
}

/// fc-tanh's SGD and GD at the paper's η.
fn sgd() -> OptimizerSpec {
    OptimizerSpec::sgd(FC_TANH.paper.lr, FC_TANH.paper.batch)
}
fn gd() -> OptimizerSpec {
    OptimizerSpec::gd(FC_TANH.paper.lr)
}

fn judge(
    name: &str,
    specs: &[RunSpec],
    outs: &[RunOutcome],
    _: &JudgeInputs,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    Ok((
        vec![switch_verdict(name, &specs[0], &outs[0])],
        serde_json::Value::Null,
    ))
}

const OUR_SWITCH: &str =
    "switch at step 2000 and 1000 steps after: our choices (the paper, Appendix E, states none)";
const QUICK: &str = "switch at step 300, 60 steps after";

pub(super) const FIG4: Preset = Preset {
    name: "fig4",
    figure: "Figure 4",
    paper_setting: "fc-tanh, SGD η 0.01 batch 50, then GD η 0.01 from the same point: χ_k falls",
    runs: Runs::Specs(|q| vec![switch_spec("fig4", sgd(), gd(), q)]),
    paired: false,
    judge,
    always: &[],
    full: &[OUR_SWITCH],
    quick: &[QUICK],
};

pub(super) const FIG5: Preset = Preset {
    name: "fig5",
    figure: "Figure 5",
    paper_setting: "fc-tanh, GD η 0.01, then SGD η 0.01 batch 50 from the same point: χ_k rises",
    runs: Runs::Specs(|q| vec![switch_spec("fig5", gd(), sgd(), q)]),
    paired: false,
    judge,
    always: &[],
    full: &[OUR_SWITCH],
    quick: &[QUICK],
};
