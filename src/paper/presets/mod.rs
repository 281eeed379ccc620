//! The paper's figures and tables as presets: one file per figure or table, each giving its run
//! specs, its judge and its notes against the paper, and one [`REGISTRY`] row per preset.
//! `reproduce` (run, `--list`, `--print-spec`), `verdict DIR` and the app read the registry.
//!
//! Adding a preset: write `presets/<figure>.rs` with its specs builder (`fn(quick) -> Vec<RunSpec>`)
//! and judge ([`JudgeFn`], built from [`super::judges`] and [`super::claims`]) and a
//! `pub(super) const` [`Preset`] row; add the module below and the row to [`REGISTRY`].

mod fig1;
mod fig10;
mod fig15_17;
mod fig18_19;
mod fig22;
mod fig2_3;
mod fig4_5;
pub mod fig6_7;
mod fig9;
pub mod list;
pub mod switch_sweep;
mod table1;
mod table2;
mod table3;

pub use super::judges::JudgeInputs;
pub use fig1::{FIG1_CE_LR, fig1_cnn_spec, fig1_spec, fig1_transformer_spec};
pub use fig6_7::toy_steps;
pub use fig9::FIG9_SWITCH;
pub use fig10::FIG10_SWITCH;
pub use fig15_17::{fig15_17_resnet8_spec, fig15_17_vgg11_spec};
pub use list::{PresetInfo, list, print_spec};

use crate::error::{Error, Result};
use crate::experiment::run::RunOutcome;
use crate::experiment::spec::RunSpec;
use crate::experiment::verdict::Verdict;

/// A preset's run specs for the full (false) or quick (true) protocol.
pub type SpecsFn = fn(bool) -> Vec<RunSpec>;
/// A preset's verdicts from its name, specs and runs, and what `summary.json`'s `extra` gains.
pub type JudgeFn =
    fn(&str, &[RunSpec], &[RunOutcome], &JudgeInputs) -> Result<(Vec<Verdict>, serde_json::Value)>;

/// What a preset runs.
#[derive(Clone, Copy)]
pub enum Runs {
    /// The exact 2-D toy (figs. 6–7): no network, no run spec.
    Toy,
    /// Its own run specs.
    Specs(SpecsFn),
    /// Computed from another preset's run (the paper's Figures 1–3 and 22 share one run): that
    /// preset's specs, reused from it when it finished.
    From(&'static str),
}

/// One row of the registry.
pub struct Preset {
    /// The name `reproduce` takes.
    pub name: &'static str,
    /// The paper's figure or table, e.g. "Figure 1 (fc-tanh, MNIST-5k)".
    pub figure: &'static str,
    /// Its setting in the paper (Appendix E and `shared/PAPER.md`).
    pub paper_setting: &'static str,
    pub runs: Runs,
    /// Keeps θ along its runs to pair them (fig18-19): writes `pair.csv`, has no resume.
    pub paired: bool,
    pub judge: JudgeFn,
    /// Differences from the paper of both protocols, of the full one only, and of `--quick`.
    pub always: &'static [&'static str],
    pub full: &'static [&'static str],
    pub quick: &'static [&'static str],
}

/// Every preset, in the order `all` runs them.
pub const REGISTRY: &[Preset] = &[
    fig6_7::FIG6_7,
    fig1::FIG1,
    fig22::FIG22,
    fig1::FIG1_CE,
    fig2_3::FIG2_3,
    fig4_5::FIG4,
    fig4_5::FIG5,
    fig9::FIG9,
    fig10::FIG10,
    table2::TABLE2,
    fig1::FIG1_CNN,
    fig2_3::FIG2_3_CNN,
    table3::TABLE3,
    fig1::FIG1_TRANSFORMER,
    fig2_3::FIG2_3_TRANSFORMER,
    table1::TABLE1,
    fig15_17::FIG15_17_VGG11,
    fig15_17::FIG15_17_RESNET8,
    fig18_19::FIG18_19,
    switch_sweep::SWEEP,
    switch_sweep::SWEEP_CNN,
    switch_sweep::SWEEP_TRANSFORMER,
];

const fn registry_names<const N: usize>() -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = REGISTRY[i].name;
        i += 1;
    }
    out
}

/// Every preset's name, in the order `all` runs them (the registry's).
pub const PRESETS: &[&str] = &registry_names::<{ REGISTRY.len() }>();

/// Checkpoint interval (steps) of the full variants.
pub const FULL_CHECKPOINT_EVERY: usize = 100;

/// The registry row named `name`, if any.
pub fn find(name: &str) -> Option<&'static Preset> {
    REGISTRY.iter().find(|p| p.name == name)
}

/// The registry row named `name`. Errors: an unknown preset, listing them.
pub fn get(name: &str) -> Result<&'static Preset> {
    find(name).ok_or_else(|| unknown(name))
}

/// Whether `name` is the toy (no data, no samples, no network run).
pub fn is_toy(name: &str) -> bool {
    find(name).is_some_and(Preset::is_toy)
}

/// The presets of one network run of their own (the ones `--snapshot-at-switch` and `--resume`
/// from `checkpoint.json` apply to), in the registry's order.
pub fn single_run() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter(|p| matches!(p.runs, Runs::Specs(f) if f(true).len() == 1))
        .map(|p| p.name)
        .collect()
}

/// [`single_run`] in words: "fig1, fig1-ce, … and fig1-transformer".
pub fn single_run_words() -> String {
    let names = single_run();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(", "),
    }
}

/// The error of an unknown preset name.
pub fn unknown(name: &str) -> Error {
    Error::InvalidArgument(format!(
        "unknown preset '{name}': one of {} or all",
        PRESETS.join(", ")
    ))
}

impl Preset {
    /// The exact 2-D toy (no network run).
    pub fn is_toy(&self) -> bool {
        matches!(self.runs, Runs::Toy)
    }
    /// The preset whose run this one is computed from, if any.
    pub fn derives_from(&self) -> Option<&'static str> {
        match self.runs {
            Runs::From(base) => Some(base),
            _ => None,
        }
    }
    /// Whether other presets are computed from this one's run.
    pub fn is_base(&self) -> bool {
        REGISTRY.iter().any(|p| p.derives_from() == Some(self.name))
    }
    /// The number of runs its specs hold (the toy: none, counted as one by [`judge`]).
    /// How many runs the preset makes, quick and full (they differ where the quick variant
    /// has fewer forks, as the switch-step studies do).
    fn runs_counts(&self) -> [usize; 2] {
        match self.runs {
            Runs::Specs(f) => [f(true).len(), f(false).len()],
            Runs::Toy | Runs::From(_) => [1, 1],
        }
    }
}

/// The run specs a preset executes, as `run_specs` runs them (full presets that can resume
/// checkpoint every [`FULL_CHECKPOINT_EVERY`] steps). fig22 and fig2-3 are computed from fig1's
/// run (the paper's Figures 1–3 and 22 share one SGD run), so their spec is fig1's; fig6-7 (the
/// 2-D toy) has none. Errors: an unknown preset.
pub fn preset_specs(name: &str, quick: bool) -> Result<Vec<RunSpec>> {
    let p = get(name)?;
    let specs = match p.runs {
        Runs::Toy => Vec::new(),
        Runs::Specs(f) => f(quick),
        Runs::From(base) => return preset_specs(base, quick),
    };
    // A paired preset (fig18-19) keeps θ along its runs and has no resume.
    let resumable = !p.paired;
    Ok(specs
        .into_iter()
        .map(|s| with_checkpoints(s, quick, resumable))
        .collect())
}

/// Full variants run for an hour or more: when they can resume, they checkpoint every
/// [`FULL_CHECKPOINT_EVERY`] steps (Ctrl-C writes one too) unless the spec says otherwise.
pub fn with_checkpoints(mut s: RunSpec, quick: bool, resumable: bool) -> RunSpec {
    if resumable && !quick && s.checkpoint_every == 0 {
        s.checkpoint_every = FULL_CHECKPOINT_EVERY;
    }
    s
}

/// `spec` training on its first `samples` samples where given (`reproduce --samples`).
pub fn with_samples(spec: &RunSpec, samples: Option<usize>) -> RunSpec {
    let mut s = spec.clone();
    if let Some(n) = samples {
        s.data.samples = n;
    }
    s
}

/// The verdicts of a preset from its specs and runs (records and legs) alone, and what
/// `summary.json`'s `extra` gains. `run` and `verdict DIR` both call this, so a re-judged run gets
/// exactly the verdicts a fresh one would. Errors: an unknown preset; a quantity the verdicts need
/// is missing (named).
pub fn judge(
    name: &str,
    specs: &[RunSpec],
    outs: &[RunOutcome],
    inputs: &JudgeInputs,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    let p = get(name)?;
    let [quick, full] = p.runs_counts();
    if specs.len() != outs.len() || (specs.len() != quick && specs.len() != full) {
        let want = if quick == full {
            format!("{full}")
        } else {
            format!("{quick} (quick) or {full}")
        };
        return Err(Error::InvalidArgument(format!(
            "{name}: {} specs and {} runs; the preset has {want}",
            specs.len(),
            outs.len()
        )));
    }
    (p.judge)(name, specs, outs, inputs)
}

/// A judge for presets whose verdicts are judged elsewhere (the toy's, from its trajectories).
fn not_judged_here(
    name: &str,
    _: &[RunSpec],
    _: &[RunOutcome],
    _: &JudgeInputs,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    Err(Error::InvalidArgument(format!(
        "{name} is not judged from network runs (see judges::toy_verdicts)"
    )))
}

/// The judge of a preset whose one verdict set is the runner's "Dom stalls, Bulk trains".
fn projection_judge(
    name: &str,
    specs: &[RunSpec],
    outs: &[RunOutcome],
    _: &JudgeInputs,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    Ok((
        super::judges::with_projection(&specs[0], &outs[0], name),
        serde_json::Value::Null,
    ))
}
