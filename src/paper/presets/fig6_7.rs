//! Figures 6–7: the exact 2-D toy ½(1000x² + y²) ± 100xy under GD, SGD, Dom-SGD and Bulk-SGD
//! (no network, no run spec: `experiment::toy` computes it, [`crate::paper::judges::toy_verdicts`]
//! judges it).

use super::{Preset, Runs, not_judged_here};

/// The toy preset's name.
pub const NAME: &str = "fig6-7";

/// The toy's steps: 20,000 (quick 2,000).
pub fn toy_steps(quick: bool) -> usize {
    if quick { 2000 } else { 20000 }
}

/// The toy's η and seed.
pub const TOY_LR: f64 = 1e-4;
pub const TOY_SEED: u64 = 0;

/// What `--print-spec` says for the toy, which has no run spec.
pub(super) fn spec_text(quick: bool) -> String {
    let steps = toy_steps(quick);
    format!(
        "# fig6-7 is the exact 2-D toy, not a network run: L = ½(1000x² + y²), minibatch losses\n\
         # L ± 100xy drawn uniformly (ChaCha8, seed 0); GD, SGD, Dom-SGD, Bulk-SGD from (1, 1),\n\
         # η = 1e-4, {steps} steps. It has no run spec.\n"
    )
}

/// `--list`'s setting for the toy.
pub(super) fn setting(quick: bool) -> String {
    format!("toy from (1, 1), η 1e-4, {} steps", toy_steps(quick))
}

pub(super) const FIG6_7: Preset = Preset {
    name: NAME,
    figure: "Figures 6–7",
    paper_setting: "the 2-D toy ½(1000x² + y²) ± 100xy; GD, SGD, Dom-SGD, Bulk-SGD",
    runs: Runs::Toy,
    paired: false,
    judge: not_judged_here,
    always: &[],
    full: &[
        "start (1, 1), η 1e-4, 20,000 steps (2,000 quick) and the uniform ± draw are our choices: the paper (its toy of Figures 6–7) gives the loss only",
    ],
    quick: &[
        "2,000 steps (the full variant: 20,000); start (1, 1), η 1e-4 and the uniform ± draw are our choices: the paper (its toy of Figures 6–7) gives the loss only",
    ],
};
