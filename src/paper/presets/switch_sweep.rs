//! The switch-step study (issue 34; a figure the paper does not have): where does "Dom-SGD
//! stalls, Bulk-SGD trains" start to hold? One SGD protocol (the network's Figure 1 setting) is
//! forked at a list of steps — θ₀, fixed steps up to the paper's horizon, and the χ-EMA switch
//! under each start of its EMA ([`EmaStart`]) — and every fork runs SGD, Dom-SGD and Bulk-SGD for
//! the same number of steps. Each fork is judged by the shared rule
//! ([`claims::dom_stalls_bulk_trains`]); `sweep.csv` / `sweep.png` give (Dom decrease / SGD
//! decrease, Bulk decrease / SGD decrease) against the fork step with the loss and accuracy at
//! the fork.
//!
//! Every fork is its own run from θ₀ with the same seed, so the SGD path up to a fork is the one
//! path all forks share (the runs are deterministic); each fork's legs carry its tag
//! ("SGD @200") in `metrics.csv`.

use super::{JudgeInputs, Preset, Runs, fig1_cnn_spec, fig1_spec, fig1_transformer_spec};
use crate::backend::LossKind;
use crate::error::Result;
use crate::experiment::run::RunOutcome;
use crate::experiment::spec::{EmaStart, Projection, RunSpec, SwitchRule};
use crate::experiment::verdict::Verdict;
use crate::paper::claims;

/// Fixed fork steps of the full protocol (fc-tanh's χ-EMA rule fired at step 2322 in fig1's full
/// run: the last fixed fork lies before it).
pub const FULL_FORKS: &[usize] = &[0, 50, 200, 500, 1000, 2000];
/// Fixed fork steps of `--quick`.
pub const QUICK_FORKS: &[usize] = &[0, 20, 60];
/// Steps of each variant after a fork: full 200, quick 10.
pub const FULL_AFTER: usize = 200;
pub const QUICK_AFTER: usize = 10;
/// The cap of the χ-EMA forks (fig1's) and `--quick`'s.
const FULL_CAP: usize = 3000;
const QUICK_CAP: usize = 60;

/// The forks of `base` (a network's fig1 protocol): one run per fixed step, then one per start
/// of the χ-EMA rule. Quick: the first 500 samples.
fn forks(mut base: RunSpec, quick: bool) -> Vec<RunSpec> {
    base.variants = vec![Projection::None, Projection::Dominant, Projection::Bulk];
    base.steps_after = if quick { QUICK_AFTER } else { FULL_AFTER };
    base.record_every = if quick { 5 } else { 20 };
    if quick {
        base.data.samples = base.data.samples.min(500);
    }
    let fixed = if quick { QUICK_FORKS } else { FULL_FORKS };
    let mut out: Vec<RunSpec> = fixed
        .iter()
        .map(|&s| {
            let mut f = base.clone();
            f.name = format!("{}-at-{s}", base.name);
            f.switch = SwitchRule::AfterSteps;
            f.steps = s;
            f.tag = format!(" @{s}");
            f
        })
        .collect();
    for start in [EmaStart::First, EmaStart::Zero, EmaStart::Debiased] {
        let mut f = base.clone();
        f.name = format!("{}-chi-ema-{}", base.name, start.name());
        f.switch = SwitchRule::ChiEma;
        f.ema_start = start;
        f.steps = if quick { QUICK_CAP } else { FULL_CAP };
        f.tag = format!(" @χ-EMA {}", start.name());
        out.push(f);
    }
    out
}

/// fc-tanh on MNIST-5k (fig1's setting).
pub fn sweep_specs(quick: bool) -> Vec<RunSpec> {
    let mut b = fig1_spec(quick, LossKind::Mse);
    b.name = "sweep".into();
    b.density_every = 0;
    forks(b, quick)
}

/// cnn-relu on CIFAR10-5k (fig1-cnn's setting).
pub fn sweep_cnn_specs(quick: bool) -> Vec<RunSpec> {
    let mut b = fig1_cnn_spec(quick);
    b.name = "sweep-cnn".into();
    forks(b, quick)
}

/// The Transformer on SST2-1k (fig1-transformer's setting).
pub fn sweep_transformer_specs(quick: bool) -> Vec<RunSpec> {
    let mut b = fig1_transformer_spec(quick);
    b.name = "sweep-transformer".into();
    forks(b, quick)
}

/// One fork's row of the study.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ForkRow {
    /// "200" or "χ-EMA zero".
    pub fork: String,
    /// The step the variants start from.
    pub step: usize,
    /// Whether a χ-EMA rule fired there (false for fixed forks and for a rule that reached its
    /// cap).
    pub rule_fired: bool,
    /// Full-batch loss and accuracy at the fork.
    pub loss: f64,
    pub accuracy: f64,
    /// χ_k and its EMA at the fork.
    pub chi: f64,
    pub chi_ema: f64,
    /// Relative loss decrease of SGD over the fork's horizon, and Dom's and Bulk's as fractions
    /// of it.
    pub sgd_decrease: f64,
    pub dom_ratio: f64,
    pub bulk_ratio: f64,
    /// The shared judge's verdict at this fork.
    pub holds: bool,
}

/// The study's rows from its runs (specs as [`forks`] made them). Returns `None` for a run
/// whose legs are missing (a stopped preset).
pub fn rows(specs: &[RunSpec], outs: &[RunOutcome]) -> Vec<ForkRow> {
    specs
        .iter()
        .zip(outs)
        .filter_map(|(s, o)| {
            let after = s.after_optimizer();
            let leg = |p| o.leg(&s.leg_name(p, after)).map(|l| l.rel_decrease());
            let (d_p, d_d, d_b) = (
                leg(Projection::None)?,
                leg(Projection::Dominant)?,
                leg(Projection::Bulk)?,
            );
            let step = o.switch_step?;
            let at = o
                .records
                .iter()
                .rev()
                .find(|r| r.phase == "before" && r.step == step)?;
            Some(ForkRow {
                fork: s.tag.trim_start_matches(" @").to_string(),
                step,
                rule_fired: o.switch_rule_fired,
                loss: at.loss,
                accuracy: at.accuracy,
                chi: at.chi_k,
                chi_ema: at.chi_ema,
                sgd_decrease: d_p,
                dom_ratio: d_d / d_p,
                bulk_ratio: d_b / d_p,
                holds: claims::dom_stalls_bulk_trains(d_p, d_d, d_b),
            })
        })
        .collect()
}

/// The study's judge: each fork's "Dom stalls, Bulk trains" verdict (the runner's, through the
/// shared rule) and the table in `extra.forks`.
fn sweep_judge(
    name: &str,
    specs: &[RunSpec],
    outs: &[RunOutcome],
    _: &JudgeInputs,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    let mut verdicts = Vec::new();
    for (s, o) in specs.iter().zip(outs) {
        let label = format!("{name} fork at {}", s.tag.trim_start_matches(" @"));
        verdicts.extend(crate::paper::judges::with_projection(s, o, &label));
    }
    let table = rows(specs, outs);
    let first_hold = {
        // The first fixed fork from which every later fixed fork holds.
        let fixed: Vec<&ForkRow> = table.iter().filter(|r| !r.fork.starts_with('χ')).collect();
        (0..fixed.len())
            .find(|&i| fixed[i..].iter().all(|r| r.holds))
            .map(|i| fixed[i].step)
    };
    Ok((
        verdicts,
        serde_json::json!({ "forks": table, "holds_from_step": first_hold }),
    ))
}

const ALWAYS: &[&str] = &[
    "a study the paper does not have: its text switches once, \"up until we observe Phenomenon 1\" and when the EMA (0.9) of χ_k exceeds 0.95, without saying where the EMA starts",
    "each fork is judged by fig1's rule (Dom < 0.25·SGD and Bulk > 0.75·SGD in relative loss decrease) over the fork's own horizon",
];
const FULL: &[&str] = &[
    "forks at steps 0, 50, 200, 500, 1000, 2000 and at the χ-EMA switch under each start (first, zero, debiased; by step 3000 at the latest); 200 steps after each fork, not fig1's 1000",
];
const QUICK: &[&str] = &[
    "the first 500 samples; forks at steps 0, 20, 60 and at the χ-EMA switch under each start (by step 60 at the latest); 10 steps after each",
];

pub(super) const SWEEP: Preset = Preset {
    name: "switch-sweep",
    figure: "switch-step study (fc-tanh, MNIST-5k; not in the paper)",
    paper_setting: "fig1's setting: SGD η 0.01, batch 50, MSE, k 10; SGD / Dom-SGD / Bulk-SGD from each fork",
    runs: Runs::Specs(sweep_specs),
    paired: false,
    judge: sweep_judge,
    always: ALWAYS,
    full: FULL,
    quick: QUICK,
};

pub(super) const SWEEP_CNN: Preset = Preset {
    name: "switch-sweep-cnn",
    figure: "switch-step study (cnn-relu, CIFAR10-5k; not in the paper)",
    paper_setting: "fig1-cnn's setting: SGD η 0.001, batch 50, MSE, k 10; SGD / Dom-SGD / Bulk-SGD from each fork",
    runs: Runs::Specs(sweep_cnn_specs),
    paired: false,
    judge: sweep_judge,
    always: ALWAYS,
    full: FULL,
    quick: QUICK,
};

pub(super) const SWEEP_TRANSFORMER: Preset = Preset {
    name: "switch-sweep-transformer",
    figure: "switch-step study (Transformer, SST2-1k; not in the paper)",
    paper_setting: "fig1-transformer's setting: SGD η 0.001, batch 50, MSE, k 2; SGD / Dom-SGD / Bulk-SGD from each fork",
    runs: Runs::Specs(sweep_transformer_specs),
    paired: false,
    judge: sweep_judge,
    always: ALWAYS,
    full: FULL,
    quick: QUICK,
};
