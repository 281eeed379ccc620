//! `reproduce`: the paper's figures as presets. Each is one or more run specs; each writes its own
//! directory with the specs as run (`spec*.toml`), `metrics.csv`, `summary.json` and `metrics.png`,
//! and returns verdicts computed from the numbers.
//!
//! This module gathers the paths the CLI, the app and the tests use: the presets themselves (specs,
//! judges, notes, the registry) are [`crate::paper::presets`], the thresholds
//! [`crate::paper::claims`], the runner [`super::presets_run`] and `verdict DIR`
//! [`super::rejudge`].

pub use super::presets_run::{
    Ctx, DataSets, PresetResult, dataset_for, finished_fig1, preset, run_specs, toy,
};
pub use super::rejudge::{Rejudged, parse_toy_csv_text, rejudge, rejudge_with};
pub use crate::paper::claims::{
    DIST_BAND, EOS_BAND, GD_CHI_MAX, SGD_CHI_EMA_MIN, SWITCH_CHI_FACTOR, TOY_GD_CHI_MAX,
    TOY_SGD_CHI_MIN, VERDICT_RULES,
};
pub use crate::paper::judges::toy_verdicts;
pub use crate::paper::presets::{
    FIG1_CE_LR, FIG9_SWITCH, FIG10_SWITCH, FULL_CHECKPOINT_EVERY, JudgeInputs, PRESETS, PresetInfo,
    fig1_cnn_spec, fig1_spec, fig1_transformer_spec, judge, list, preset_specs, print_spec,
    with_samples,
};
