//! Figures 18–19: GD and SGD (η 0.01, batch 50) from the same initialisation, paired step by step:
//! χ_k under GD, and ‖θ_GD − θ_SGD‖.

use super::{JudgeInputs, Preset, Runs};
use crate::error::Result;
use crate::experiment::run::RunOutcome;
use crate::experiment::spec::{OptimizerSpec, RunSpec};
use crate::experiment::verdict::Verdict;
use crate::paper::judges::fig18_19_verdicts;
use crate::paper::models::FC_TANH;

fn fig18_19_specs(q: bool) -> Vec<RunSpec> {
    let mk = |name: &str, o: OptimizerSpec| {
        let mut s = RunSpec::new(name, o, if q { 300 } else { 3000 });
        s.record_every = if q { 25 } else { 50 };
        s.top = Some(10);
        s
    };
    let p = FC_TANH.paper;
    vec![
        mk("gd", OptimizerSpec::gd(p.lr)),
        mk("sgd", OptimizerSpec::sgd(p.lr, p.batch)),
    ]
}

fn judge(
    _: &str,
    specs: &[RunSpec],
    outs: &[RunOutcome],
    inputs: &JudgeInputs,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    Ok((
        fig18_19_verdicts(specs, outs, inputs)?,
        serde_json::Value::Null,
    ))
}

pub(super) const FIG18_19: Preset = Preset {
    name: "fig18-19",
    figure: "Figures 18–19",
    paper_setting: "GD and SGD (η 0.01, batch 50) from the same initialisation: χ_k under GD, and ‖θ_GD − θ_SGD‖",
    runs: Runs::Specs(fig18_19_specs),
    paired: true,
    judge,
    always: &[],
    full: &["3000 steps: our horizon (the paper, Appendix E, states none)"],
    quick: &["300 steps"],
};
