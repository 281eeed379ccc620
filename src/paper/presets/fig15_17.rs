//! Figures 15–17: VGG11 and ResNet8 on CIFAR10-5k (the paper's Section F): SGD η 0.01, batch 50,
//! MSE, k 10; switch to Dom-SGD / Bulk-SGD when the per-step EMA (0.9) of χ₁₀ exceeds 0.95; the top
//! 10 and the next 10 eigenvalues, χ₁₀ with its EMA and the three training losses recorded.
//! Judged as fig. 1 (Dom-SGD stalls, Bulk-SGD trains) and as figs. 2–3 (χ₁₀ near 1 before the
//! switch).

use super::{JudgeInputs, Preset, Runs};
use crate::backend::LossKind;
use crate::error::Result;
use crate::experiment::run::RunOutcome;
use crate::experiment::spec::{DataSpec, ModelSpec, OptimizerSpec, RunSpec};
use crate::experiment::verdict::Verdict;
use crate::paper::judges::{fig2_3_verdict, with_projection};
use crate::paper::models::{self, Model};

/// Samples, steps before the switch and steps after it of the quick protocol.
pub const QUICK_SAMPLES: usize = 100;
const QUICK_STEPS: usize = 30;
const QUICK_AFTER: usize = 4;

/// The quick protocol's VGG: cfg A at 1/8 of VGG11's widths (`vgg11-narrow`, 153,530
/// parameters): every op of VGG11, at a cost this 2-core CPU runs in minutes.
pub const QUICK_VGG: &str = "vgg11-narrow";

/// fig. 1's protocol (the χ-EMA switch, SGD / Dom-SGD / Bulk-SGD) on `m` with the paper's
/// Section F setting, top 2k eigenvalues recorded. Quick: the first 100 images, switch at step 30
/// by step count, 4 steps after, records every 10 steps; `quick_model` replaces the network.
fn spec_on(quick: bool, name: &str, m: &Model, quick_model: Option<&str>) -> RunSpec {
    let mut s = super::fig1_spec(quick, LossKind::Mse);
    s.name = name.into();
    s.optimizer = OptimizerSpec::sgd(m.paper.lr, m.paper.batch);
    s.model = ModelSpec::of(m);
    s.data = DataSpec::of(m);
    s.k = m.paper.k;
    s.top = Some(2 * m.paper.k);
    if quick {
        if let Some(q) = quick_model {
            s.model.name = Some(q.into());
        }
        s.data.samples = QUICK_SAMPLES;
        s.steps = QUICK_STEPS;
        s.steps_after = QUICK_AFTER;
        s.record_every = 10;
    }
    s
}

/// fig15-17-vgg11's spec (quick: [`QUICK_VGG`]).
pub fn fig15_17_vgg11_spec(quick: bool) -> RunSpec {
    spec_on(quick, "fig15-17-vgg11", &models::VGG11, Some(QUICK_VGG))
}

/// fig15-17-resnet8's spec.
///
/// Quick: 20 SGD steps and 2 after the switch (not 30 and 4): its strided and 1×1 convolutions
/// run the CPU's general im2col loop, and the longer quick protocol took over 10 minutes here.
pub fn fig15_17_resnet8_spec(quick: bool) -> RunSpec {
    let mut s = spec_on(quick, "fig15-17-resnet8", &models::RESNET8, None);
    if quick {
        s.steps = QUICK_RESNET_STEPS;
        s.steps_after = QUICK_RESNET_AFTER;
    }
    s
}

/// The quick ResNet8 protocol's SGD steps and steps after the switch.
const QUICK_RESNET_STEPS: usize = 20;
const QUICK_RESNET_AFTER: usize = 2;

/// Fig. 1's projection verdicts and figs. 2–3's alignment verdict on the one run.
fn judge(
    name: &str,
    specs: &[RunSpec],
    outs: &[RunOutcome],
    _: &JudgeInputs,
) -> Result<(Vec<Verdict>, serde_json::Value)> {
    let mut v = with_projection(&specs[0], &outs[0], name);
    v.push(fig2_3_verdict(name, &specs[0], &outs[0])?);
    Ok((v, serde_json::Value::Null))
}

const CAP: &str =
    "the switch happens at step 3000 at the latest if the rule has not fired (no cap in the paper)";
const HORIZON: &str = "1000 steps after the switch: our horizon (the paper states none)";
const QUICK: &str = "the first 100 CIFAR-10 images, switch at step 30 by step count (not the χ-EMA rule), 4 steps after, records every 10 steps";

pub(super) const FIG15_17_VGG11: Preset = Preset {
    name: "fig15-17-vgg11",
    figure: "Figures 15–17 (VGG11, CIFAR10-5k)",
    paper_setting: "VGG11 (Cohen et al.'s vgg11_nodropout), SGD η 0.01, batch 50, MSE, k 10; switch to Dom-SGD / Bulk-SGD when the per-step EMA (0.9) of χ₁₀ exceeds 0.95; top 10 and next 10 eigenvalues",
    runs: Runs::Specs(|q| vec![fig15_17_vgg11_spec(q)]),
    paired: false,
    judge,
    always: &["CPU or GPU (VGG11's ops are cnn-relu's: 3×3/1/1 convs, max-pools, linear layers)"],
    full: &[
        CAP,
        HORIZON,
        "a top-20 Lanczos solve over 9.75 M parameters keeps ≈ 250 vectors (≈ 10 GB in f32): the memory check refuses it where that does not fit",
    ],
    quick: &[
        QUICK,
        "VGG11 at 1/8 of its widths (vgg11-narrow: cfg A with 8…64 channels, classifier 64–64–10, 153,530 parameters): the full network's HVP costs seconds per few images on a 2-core CPU, too slow for a per-step spectrum in minutes",
    ],
};

pub(super) const FIG15_17_RESNET8: Preset = Preset {
    name: "fig15-17-resnet8",
    figure: "Figures 15–17 (ResNet8, CIFAR10-5k)",
    paper_setting: "ResNet8 (He et al.'s CIFAR ResNet, one BasicBlock per stage), SGD η 0.01, batch 50, MSE, k 10; switch to Dom-SGD / Bulk-SGD when the per-step EMA (0.9) of χ₁₀ exceeds 0.95; top 10 and next 10 eigenvalues",
    runs: Runs::Specs(|q| vec![fig15_17_resnet8_spec(q)]),
    paired: false,
    judge,
    always: &[],
    full: &[CAP, HORIZON],
    quick: &[
        "the first 100 CIFAR-10 images, switch at step 20 by step count (not the χ-EMA rule), 2 steps after, records every 10 steps",
    ],
};
