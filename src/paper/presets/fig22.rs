//! Figure 22: ‖θ − θ_switch‖ of SGD, Dom-SGD and Bulk-SGD after fig. 1's switch (computed from
//! fig1's run).

use super::{JudgeInputs, Preset, Runs};
use crate::error::Result;
use crate::experiment::run::RunOutcome;
use crate::experiment::spec::RunSpec;
use crate::experiment::verdict::Verdict;
use crate::paper::judges::fig22_verdict;

fn judge(
    _: &str,
    specs: &[RunSpec],
    outs: &[RunOutcome],
    _: &JudgeInputs,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    Ok((
        vec![fig22_verdict(&specs[0], &outs[0])],
        serde_json::Value::Null,
    ))
}

pub(super) const FIG22: Preset = Preset {
    name: "fig22",
    figure: "Figure 22",
    paper_setting: "‖θ − θ_switch‖ of SGD, Dom-SGD and Bulk-SGD after fig. 1's switch",
    runs: Runs::From("fig1"),
    paired: false,
    judge,
    always: &["computed from fig1's run, as in the paper: fig1's differences apply"],
    full: &[],
    quick: &[super::fig1::QUICK_MLP],
};
