//! Figure 1 (and Figures 12–14's MLP panels): SGD until the per-step EMA of χ_k passes 0.95, then
//! SGD, Dom-SGD and Bulk-SGD from the same point; on fc-tanh (fig1, fig1-ce with cross-entropy),
//! cnn-relu (fig1-cnn) and the Transformer (fig1-transformer), each with the paper's setting from
//! the models table.

use super::{Preset, Runs, projection_judge};
use crate::backend::LossKind;
use crate::experiment::spec::{
    DataSpec, ModelSpec, OptimizerSpec, Projection, RunSpec, SwitchRule,
};
use crate::paper::models::{self, Model};

/// fig1-ce's learning rate: the paper's cross-entropy runs (Figures 12–14, Appendix E) train the
/// MLP at η 0.1.
pub const FIG1_CE_LR: f64 = 0.1;

/// fig. 1's spec: SGD η 0.01, batch 50, MSE, the χ-EMA switch, then SGD / Dom-SGD / Bulk-SGD,
/// the Hessian's density recorded along it (`density_every`); with `LossKind::Ce` fig1-ce: the same with cross-entropy at η 0.1 (the paper's Figures 12–14).
pub fn fig1_spec(quick: bool, loss: LossKind) -> RunSpec {
    let ce = loss == LossKind::Ce;
    let p = models::FC_TANH.paper;
    let mut s = RunSpec::new(
        if ce { "fig1-ce" } else { "fig1" },
        OptimizerSpec::sgd(if ce { FIG1_CE_LR } else { p.lr }, p.batch),
        if quick { 300 } else { 3000 },
    );
    s.loss = loss;
    // Quick: a fixed switch step instead of the χ-EMA rule (which needs a spectrum every step).
    s.switch = if quick {
        SwitchRule::AfterSteps
    } else {
        SwitchRule::ChiEma
    };
    s.variants = vec![Projection::None, Projection::Dominant, Projection::Bulk];
    s.steps_after = if quick { 60 } else { 1000 };
    s.record_every = if quick { 10 } else { 20 };
    s.top = Some(10);
    if !ce {
        // The Hessian's density along the run (records only: the metrics are the same). Full:
        // 10 probes × 80 steps (≈ 23 s f32 each, 12 densities); quick: 2 × 30 at steps 0, 150 and
        // the switch (≈ 2 s each).
        (s.density_every, s.density_probes, s.density_steps) =
            if quick { (150, 2, 30) } else { (500, 10, 80) };
    }
    s
}

/// fig. 1's protocol on `m` with its paper setting (SGD η and batch, k, the model's data set);
/// quick: 200 samples, switch at step 100 by step count, 20 steps after.
fn fig1_on(quick: bool, name: &str, m: &Model) -> RunSpec {
    let mut s = fig1_spec(quick, LossKind::Mse);
    s.name = name.into();
    s.optimizer = OptimizerSpec::sgd(m.paper.lr, m.paper.batch);
    s.model = ModelSpec::of(m);
    s.data = DataSpec::of(m);
    s.k = m.paper.k;
    s.density_every = 0;
    if quick {
        s.data.samples = 200;
        s.steps = 100;
        s.steps_after = 20;
        s.record_every = 10;
    }
    s
}

/// fig. 1's protocol for cnn-relu on CIFAR10-5k (the paper's Figures 1–3, CNN panels): SGD
/// η 0.001, batch 50, the χ-EMA switch, then SGD / Dom-SGD / Bulk-SGD. Quick: 200 samples, switch
/// at step 100 by step count, 20 steps after (a CNN HVP costs ≈ 1.6 ms per sample on the 2-core
/// CPU, so the quick run stays within minutes).
pub fn fig1_cnn_spec(quick: bool) -> RunSpec {
    fig1_on(quick, "fig1-cnn", &models::CNN_RELU)
}

/// fig. 1's protocol for the Transformer on SST2-1k (the paper's Figures 1–3, Transformer
/// panels): SGD η 0.001, batch 50, k = 2 (the classes), the χ-EMA switch, then SGD / Dom-SGD /
/// Bulk-SGD; the top 4 eigenvalues recorded. Quick: 200 sentences, switch at step 100 by step
/// count, 20 steps after.
pub fn fig1_transformer_spec(quick: bool) -> RunSpec {
    let mut s = fig1_on(quick, "fig1-transformer", &models::TRANSFORMER);
    s.top = Some(4);
    s
}

/// The cap and horizon notes of every fig. 1 protocol with the χ-EMA switch.
const CAP: &str =
    "the switch happens at step 3000 at the latest if the rule has not fired (no cap in the paper)";
const HORIZON: &str = "1000 steps after the switch: our horizon";
/// fig1's quick protocol (also fig22's and fig1-ce's).
pub(super) const QUICK_MLP: &str = "switch at step 300 by step count, not by the χ-EMA rule (which needs a spectrum every step); 60 steps after";
pub(super) const QUICK_CNN: &str = "the first 200 CIFAR-10 images, switch at step 100 by step count (not the χ-EMA rule), 20 steps after";
pub(super) const QUICK_TRANSFORMER: &str = "the first 200 SST-2 sentences, switch at step 100 by step count (not the χ-EMA rule), 20 steps after";

pub(super) const FIG1: Preset = Preset {
    name: "fig1",
    figure: "Figure 1 (fc-tanh, MNIST-5k)",
    paper_setting: "SGD η 0.01, batch 50, MSE (½, 1/n), k 10; switch to Dom-SGD / Bulk-SGD when the EMA (0.9) of χ_k(∇L), updated every step, exceeds 0.95; S_k recomputed every step from the full-batch Hessian",
    runs: Runs::Specs(|q| vec![fig1_spec(q, LossKind::Mse)]),
    paired: false,
    judge: projection_judge,
    always: &[],
    full: &[
        "the switch happens at step 3000 at the latest if the rule has not fired (the paper's rule has no cap; the full run fired at step 2322)",
        "1000 steps after the switch: our horizon (the paper, Appendix E, states none)",
    ],
    quick: &[QUICK_MLP],
};

pub(super) const FIG1_CE: Preset = Preset {
    name: "fig1-ce",
    figure: "Figures 12–14 (MLP panels)",
    paper_setting: "as Figure 1 with cross-entropy, η 0.1",
    runs: Runs::Specs(|q| vec![fig1_spec(q, LossKind::Ce)]),
    paired: false,
    judge: projection_judge,
    always: &[],
    full: &[
        "the switch happens at step 3000 at the latest if the χ-EMA rule has not fired (no cap in the paper)",
        HORIZON,
    ],
    quick: &[QUICK_MLP],
};

pub(super) const FIG1_CNN: Preset = Preset {
    name: "fig1-cnn",
    figure: "Figure 1 (cnn-relu, CIFAR10-5k)",
    paper_setting: "SGD η 0.001, batch 50, MSE, k 10; switch to Dom-SGD / Bulk-SGD when the per-step EMA (0.9) of χ_k exceeds 0.95",
    runs: Runs::Specs(|q| vec![fig1_cnn_spec(q)]),
    paired: false,
    judge: projection_judge,
    always: &[],
    full: &[CAP, HORIZON],
    quick: &[QUICK_CNN],
};

pub(super) const FIG1_TRANSFORMER: Preset = Preset {
    name: "fig1-transformer",
    figure: "Figure 1 (Transformer, SST2-1k)",
    paper_setting: "2-layer Transformer (width 64, 8 heads; Damian et al.), SGD η 0.001, batch 50, MSE, k 2; switch to Dom-SGD / Bulk-SGD when the per-step EMA (0.9) of χ_k exceeds 0.95",
    runs: Runs::Specs(|q| vec![fig1_transformer_spec(q)]),
    paired: false,
    judge: projection_judge,
    always: &[],
    full: &[CAP, HORIZON],
    quick: &[QUICK_TRANSFORMER],
};
