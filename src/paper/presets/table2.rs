//! Table 2 (fc-tanh, MNIST-5k, full batch): Dom-LR and Bulk-LR of GD, GD with momentum, Adam and
//! Adam without momentum over the first 1000 steps. Also the four optimisers tables 1 and 3 run
//! on their models, and the tables' judge.

use super::{JudgeInputs, Preset, Runs};
use crate::error::Result;
use crate::experiment::run::RunOutcome;
use crate::experiment::spec::{OptKind, OptimizerSpec, RunSpec};
use crate::experiment::verdict::Verdict;
use crate::paper::judges::table2_verdicts;

pub(super) fn table2_specs(q: bool) -> Vec<RunSpec> {
    let steps = if q { 30 } else { 1000 };
    let mut adam = OptimizerSpec::new(OptKind::Adam, 1e-3, None);
    let mut adam_m = adam.clone();
    adam_m.beta1 = 0.0;
    adam.beta1 = 0.9;
    let opts = [
        ("gd", OptimizerSpec::gd(0.01)),
        ("gd-m", OptimizerSpec::new(OptKind::Momentum, 0.01, None)),
        ("adam", adam),
        ("adam-no-m", adam_m),
    ];
    opts.iter()
        .map(|(n, o)| {
            let mut s = RunSpec::new(n, o.clone(), steps);
            s.effective_lr = true;
            s.record_every = if q { 5 } else { 50 };
            s.top = Some(10);
            s
        })
        .collect()
}

/// The tables' judge: GD's effective LRs are η, Adam's favour the bulk; the table goes to `extra`.
pub(super) fn table_judge(
    name: &str,
    specs: &[RunSpec],
    outs: &[RunOutcome],
    _: &JudgeInputs,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    let (v, table) = table2_verdicts(name, specs, outs)?;
    Ok((v, serde_json::json!({ "table": table })))
}

pub(super) const TABLE2: Preset = Preset {
    name: "table2",
    figure: "Table 2",
    paper_setting: "fc-tanh, full batch: GD η 0.01, GD+m (μ 0.9) η 0.01, Adam η 0.001 (β 0.9, 0.999), Adam−m (β₁ 0); mean ± std of Dom-LR and Bulk-LR over the first 1000 steps",
    runs: Runs::Specs(table2_specs),
    paired: false,
    judge: table_judge,
    always: &[],
    full: &[],
    quick: &["the first 30 steps, not the paper's 1000"],
};
