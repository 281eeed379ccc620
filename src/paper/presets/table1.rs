//! Table 1 (the Transformer, SST2-1k, full batch): table 2's optimisers on the Transformer.

use super::table2::{table_judge, table2_specs};
use super::{Preset, Runs};
use crate::experiment::spec::{DataSpec, ModelSpec, RunSpec};
use crate::paper::models::TRANSFORMER;

/// Table 1 (the Transformer, SST2-1k, full batch): GD η 0.01 ± momentum 0.9, Adam η 0.001 ±
/// momentum (β₁ 0.9 or 0), k = 2; Dom-LR / Bulk-LR every step over the first 1000 steps (quick:
/// 10 steps on 200 sentences).
fn table1_specs(q: bool) -> Vec<RunSpec> {
    table2_specs(q)
        .into_iter()
        .map(|mut s| {
            s.model = ModelSpec::of(&TRANSFORMER);
            s.data = DataSpec::of(&TRANSFORMER);
            s.k = TRANSFORMER.paper.k;
            s.top = Some(4);
            if q {
                s.data.samples = 200;
                s.steps = 10;
                s.record_every = 2;
            }
            s
        })
        .collect()
}

pub(super) const TABLE1: Preset = Preset {
    name: "table1",
    figure: "Table 1",
    paper_setting: "Transformer, full batch: GD η 0.01, GD+m (μ 0.9) η 0.01, Adam η 0.001 (β 0.9, 0.999), Adam−m (β₁ 0); mean ± std of Dom-LR and Bulk-LR over the first 1000 steps",
    runs: Runs::Specs(table1_specs),
    paired: false,
    judge: table_judge,
    always: &[],
    full: &[],
    quick: &["the first 200 SST-2 sentences and the first 10 steps, not 1000 and 1000"],
};
