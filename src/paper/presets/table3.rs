//! Table 3 (cnn-relu, CIFAR10-5k, full batch): table 2's optimisers on the CNN at the paper's
//! smaller learning rates.

use super::table2::{table_judge, table2_specs};
use super::{Preset, Runs};
use crate::experiment::spec::{DataSpec, ModelSpec, OptKind, RunSpec};
use crate::paper::models::CNN_RELU;

/// Table 3 (cnn-relu, CIFAR10-5k, full batch): GD η 0.001 ± momentum 0.9, Adam η 1e-4 ± momentum
/// (β₁ 0.9 or 0); Dom-LR / Bulk-LR every step over the first 1000 steps (quick: 10 steps on 200
/// samples).
fn table3_specs(q: bool) -> Vec<RunSpec> {
    table2_specs(q)
        .into_iter()
        .map(|mut s| {
            s.optimizer.lr = if s.optimizer.name == OptKind::Adam {
                1e-4
            } else {
                1e-3
            };
            s.model = ModelSpec::of(&CNN_RELU);
            s.data = DataSpec::of(&CNN_RELU);
            if q {
                s.data.samples = 200;
                s.steps = 10;
                s.record_every = 2;
            }
            s
        })
        .collect()
}

pub(super) const TABLE3: Preset = Preset {
    name: "table3",
    figure: "Table 3",
    paper_setting: "cnn-relu, full batch: GD η 0.001, GD+m (μ 0.9) η 0.001, Adam η 1e-4 (β 0.9, 0.999), Adam−m (β₁ 0); mean ± std of Dom-LR and Bulk-LR over the first 1000 steps",
    runs: Runs::Specs(table3_specs),
    paired: false,
    judge: table_judge,
    always: &[],
    full: &[],
    quick: &["the first 200 CIFAR-10 images and the first 10 steps, not 5000 and 1000"],
};
