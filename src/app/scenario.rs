//! Scenarios: one click to the paper's interesting states. Each starts the live run at a θ the
//! project's own runs reached — "SGD at the χ-EMA switch" is fig1's θ at the step its χ-EMA rule
//! fired, written by `subspace-lab reproduce fig1 --snapshot-at-switch --stop-at-switch` (the
//! snapshot ships inside the app, natively and on the web: `web/snapshots/`, how each was made in
//! its `made_by` and in `web/snapshots/README.md`) — with the branches the paper compares there and
//! a short lesson whose numbers are the live run's.

use super::live::{BranchSet, History};
use super::model::AppModel;
use crate::error::{Error, Result};
use crate::experiment::run::Vectors;
use crate::experiment::snapshot::{Snapshot, parse_snapshot};
use std::path::Path;

/// Where a scenario's θ comes from.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// The network's initialisation (seed 0) with the paper's SGD settings for the model
    /// ([`AppModel::paper`]).
    Init,
    /// A snapshot compiled into the app: the bytes of `snapshot.json` and `snapshot.safetensors`.
    Embedded {
        json: &'static [u8],
        tensors: &'static [u8],
    },
}

/// A starting state with its branches and its lesson.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// The name in `--scenario`, the URL hash and the report.
    pub name: &'static str,
    pub title: &'static str,
    /// Network and data.
    pub model: AppModel,
    /// The paper's figure it reproduces live.
    pub figure: &'static str,
    /// What "branch" forks into.
    pub branch: BranchSet,
    /// A spectrum every this many steps (each branch; Dom-/Bulk- branches every step anyway).
    pub eigen_every: usize,
    /// Steps after the fork at which the claim is judged (the live verdict is "provisional"
    /// before): where the branches' difference exceeds their noise on the paper's settings.
    pub horizon: usize,
    pub source: Source,
    /// What the state is, what to press, what to look for (the live numbers follow it).
    pub lesson: &'static str,
}

/// The snapshot `web/snapshots/<name>/` compiled in.
macro_rules! embedded {
    ($name:literal) => {
        Source::Embedded {
            json: include_bytes!(concat!("../../web/snapshots/", $name, "/snapshot.json")),
            tensors: include_bytes!(concat!(
                "../../web/snapshots/",
                $name,
                "/snapshot.safetensors"
            )),
        }
    };
}

/// Every scenario, in the picker's order.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "fig1-switch",
        title: "SGD at the χ-EMA switch",
        model: AppModel::FcTanh,
        figure: "Figure 1",
        branch: BranchSet::Projections,
        eigen_every: 10,
        horizon: 150,
        source: embedded!("fig1-switch"),
        lesson: "fc-tanh trained by SGD (η 0.01, batch 50, MSE) on MNIST-5k from θ₀ up to the step \
where the EMA (0.9) of χ_k(∇L) = ‖P_k ∇L‖ / ‖∇L‖ first exceeded 0.95. S_k is spanned by the top k = 10 \
Hessian eigenvectors (k = the number of classes), recomputed at every step of the Dom- and Bulk- \
branches: the gradient lies almost entirely in it.\n\
Press \"branch\" (key B): the run forks into SGD, Dom-SGD (θ ← θ − η P_k g) and Bulk-SGD \
(θ ← θ − η (I − P_k) g), from this θ with the same minibatches.\n\
Look for: at first Dom-SGD's loss falls too (the step along the top eigendirections pays at once), \
then it stalls, while Bulk-SGD's keeps falling like SGD's although Bulk-SGD drops the part of each \
step that lies in S_k; give it 100–200 steps. The alignment is spurious: training happens in the \
bulk (Song, Ahn, Yun 2024, Figure 1).",
    },
    Scenario {
        name: "fig1-switch-cnn",
        title: "SGD at the χ-EMA switch",
        model: AppModel::CnnRelu,
        figure: "Figure 1",
        branch: BranchSet::Projections,
        eigen_every: 10,
        horizon: 20,
        source: embedded!("fig1-switch-cnn"),
        lesson: "cnn-relu trained by SGD (η 0.001, batch 50, MSE) on the first 500 CIFAR-10 images \
(the paper uses 5000; a spectrum here takes a tenth of the time), fig1-cnn's protocol. Its χ-EMA \
rule fires at θ₀ itself: χ_10(∇L) = ‖P_10 ∇L‖ / ‖∇L‖ is already 0.98 at the initialisation (the \
EMA starts at the first χ), so this scenario starts at step 0. S_10 is spanned by the top 10 \
Hessian eigenvectors, recomputed at every step of the Dom- and Bulk- branches.\n\
Press \"branch\" (key B): the run forks into SGD, Dom-SGD (θ ← θ − η P_k g) and Bulk-SGD \
(θ ← θ − η (I − P_k) g), from this θ with the same minibatches.\n\
Look for: the paper finds that Dom-SGD, which keeps only the part of each step in S_10, stalls, \
while Bulk-SGD, which drops it, trains like SGD (Song, Ahn, Yun 2024, Figure 1, CNN panels). Here, \
at θ₀, the first steps go the other way: the loss falls fast and that fall lies in S_10 (measured \
on a 2-core CPU after 20 steps: SGD −21.1 %, Dom-SGD −20.1 %, Bulk-SGD −2.8 %), so the live \
verdict says the claim does not hold there; the paper's comparison runs 1000 steps past the switch. \
Each branched step solves two top-10 problems on a CNN: about half a minute on a 2-core CPU.",
    },
    Scenario {
        name: "fig1-switch-transformer",
        title: "SGD at the χ-EMA switch",
        model: AppModel::Transformer,
        figure: "Figure 1",
        branch: BranchSet::Projections,
        eigen_every: 10,
        horizon: 100,
        source: embedded!("fig1-switch-transformer"),
        lesson: "The 2-layer Transformer (width 64, 8 heads) trained by SGD (η 0.001, batch 50, MSE) \
on SST2-1k from θ₀ up to the step where the EMA (0.9) of χ_2(∇L) = ‖P_2 ∇L‖ / ‖∇L‖ first exceeded \
0.95: step 72 (χ_2 rose from 0.67 at θ₀ to 0.96; the loss from 0.50 to 0.28). Two classes, so \
k = 2: S_2 is spanned by the top 2 Hessian eigenvectors, recomputed at every step of the Dom- and \
Bulk- branches.\n\
Press \"branch\" (key B): the run forks into SGD, Dom-SGD (θ ← θ − η P_k g) and Bulk-SGD \
(θ ← θ − η (I − P_k) g), from this θ with the same minibatches.\n\
Look for: the paper finds that Dom-SGD, which keeps only the part of each step in S_2, stalls, \
while Bulk-SGD, which drops it, trains like SGD (Song, Ahn, Yun 2024, Figure 1, Transformer \
panels). Here the first hundred steps go the other way: the loss still falls towards about 0.25, \
the loss of predicting the label mean (the accuracy stays at 0.54, the majority class's share), and \
that fit lies in S_2 (measured on a 2-core CPU after 94 steps: SGD −10.7 %, Dom-SGD −9.9 %, \
Bulk-SGD −2.0 %), so the live verdict says the claim does not hold there; the paper's comparison \
runs 1000 steps past the switch.",
    },
    Scenario {
        name: "fig9-eos",
        title: "GD at the edge of stability",
        model: AppModel::FcTanh,
        figure: "Figure 9",
        branch: BranchSet::Projections,
        eigen_every: 5,
        horizon: 100,
        source: embedded!("fig9-eos"),
        lesson: "fc-tanh trained by full-batch GD (η 0.1, MSE) on MNIST-5k from θ₀ to step 2500, \
fig9's switch. The sharpness λ₁ has risen to 2/η = 20 (the dashed line of the eigenvalue plot) and \
hovers there: GD runs at the edge of stability (Cohen et al. 2021), its loss falling on average, not \
at every step. Here, unlike stable GD, the gradient lies almost wholly in S_k (χ_k near 1).\n\
Press \"branch\" (key B): the run forks into GD, Dom-GD (θ ← θ − η P_k ∇L) and Bulk-GD \
(θ ← θ − η (I − P_k) ∇L) from this θ.\n\
Look for: λ₁ of GD staying near 2/η; Dom-GD making little progress while Bulk-GD trains like GD or \
faster (Song, Ahn, Yun 2024, Figure 9). GD's own loss oscillates at the edge, so compare over \
100 steps or more.",
    },
    Scenario {
        name: "fig10-sam-edge",
        title: "SAM at its edge of stability",
        model: AppModel::FcTanh,
        figure: "Figure 10",
        branch: BranchSet::Projections,
        eigen_every: 5,
        horizon: 100,
        source: embedded!("fig10-sam-edge"),
        lesson: "fc-tanh trained by full-batch SAM (η 0.01, ρ 0.1, MSE) on MNIST-5k from θ₀ to step 5000, \
fig10's switch. SAM does not stop at GD's edge 2/η = 200: its sharpness λ₁ rises to SAM's own edge, \
‖∇L‖/(2ρ)·(√(1 + 8ρ/(η‖∇L‖)) − 1) (Long & Bartlett 2023; the dashed line of the eigenvalue plot, \
about 10 here), and hovers there (over the last 200 steps before the switch λ₁ averaged 1.10 × \
the edge).\n\
Press \"branch\" (key B): the run forks into SAM, Dom-SAM and Bulk-SAM — SAM's update projected \
on S_k or on its complement — from this θ.\n\
Look for: Dom-SAM making little progress while Bulk-SAM trains like SAM (Song, Ahn, Yun 2024, \
Figure 10). Each SAM step takes two full-data gradients: give it 100 steps or more.",
    },
    Scenario {
        name: "gd-vs-sgd",
        title: "GD vs SGD from the same init",
        model: AppModel::FcTanh,
        figure: "Figures 18–19",
        branch: BranchSet::GdVsSgd,
        eigen_every: 2,
        horizon: 100,
        source: Source::Init,
        lesson: "fc-tanh at its initialisation θ₀ (seed 0), SGD η 0.01, batch 50, MSE, on MNIST-5k.\n\
Press \"branch\" (key B): the run forks into SGD and full-batch GD at the same η from θ₀.\n\
Look for: χ_k(∇L), the share of the full gradient in the top-k Hessian eigenspace (right plot, one \
point per spectrum), climbs towards 1 under SGD and falls to nearly 0 under GD. The alignment comes \
with SGD's noise, not with the landscape (Song, Ahn, Yun 2024, Figures 18–19; fig4 and fig5 of \
`reproduce` measure the same on longer runs).",
    },
    Scenario {
        name: "low-rank",
        title: "The Hessian is approximately low-rank",
        model: AppModel::FcTanh,
        figure: "Figure 2",
        branch: BranchSet::Projections,
        eigen_every: 10,
        horizon: 150,
        source: Source::Init,
        lesson: "fc-tanh at its initialisation θ₀ (seed 0), SGD η 0.01, batch 50, MSE, on MNIST-5k.\n\
Look at the density panel above the plots: the Hessian's spectral density by stochastic Lanczos \
quadrature (Ghorbani et al. 2019), measured in the background every 25 steps, on a log scale. Its \
bulk — nearly all of the 199,210 eigenvalues — sits at 0; k = 10 outliers (the red lines, λ_k named) \
stand apart from it, and the line under the plot says which share of the trace tr H they hold \
(about 40% at θ₀, where tr H ≈ 600). The Hessian is approximately low-rank: k = the number of \
classes directions carry its curvature (Song, Ahn, Yun 2024, Figure 2; Sagun et al. 2017).\n\
Look for: as SGD trains the outliers move out (λ₁ 35.6 at θ₀, 52.5 at fig1's switch, step 2322) \
while the bulk widens too (tr H ≈ 600 at θ₀, ≈ 1100 at the switch, where the top 10 hold 34%); press \"branch\" (key B) to see what training in the bulk alone \
does (Figure 1).",
    },
    Scenario {
        name: "gd-vs-sgd-cnn",
        title: "GD vs SGD from the same init",
        model: AppModel::CnnRelu,
        figure: "Figures 18–19",
        branch: BranchSet::GdVsSgd,
        eigen_every: 2,
        horizon: 50,
        source: Source::Init,
        lesson: "cnn-relu at its initialisation θ₀ (seed 0), SGD η 0.001, batch 50, MSE, on the first \
500 CIFAR-10 images (the paper uses 5000: raise n in the panel; a spectrum then takes ten times \
longer).\n\
Press \"branch\" (key B): the run forks into SGD and full-batch GD at the same η from θ₀.\n\
Look for: χ_k(∇L) (k = 10) rising under SGD and falling under GD, as for fc-tanh on MNIST \
(Song, Ahn, Yun 2024, Figures 18–19). η 0.001 is small: give it a few hundred steps.",
    },
    Scenario {
        name: "gd-vs-sgd-transformer",
        title: "GD vs SGD from the same init",
        model: AppModel::Transformer,
        figure: "Figures 18–19",
        branch: BranchSet::GdVsSgd,
        eigen_every: 2,
        horizon: 100,
        source: Source::Init,
        lesson: "The 2-layer Transformer (width 64, 8 heads) at its initialisation θ₀ (seed 0), SGD \
η 0.001, batch 50, MSE, on SST2-1k (two classes, so k = 2).\n\
Press \"branch\" (key B): the run forks into SGD and full-batch GD at the same η from θ₀.\n\
Look for: χ_2(∇L), the share of the full gradient in the top-2 Hessian eigenspace, under SGD and \
under GD (Song, Ahn, Yun 2024, Figures 18–19 show it for the paper's networks).",
    },
];

/// The scenario called `name`. Errors: an unknown name (the message lists the known ones).
pub fn find(name: &str) -> Result<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "unknown scenario '{name}': one of {}",
            SCENARIOS
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

impl Scenario {
    /// The snapshot, for a scenario that has one. Errors: a corrupt embedded snapshot (a build
    /// from a damaged checkout), naming the file.
    pub fn snapshot(&self) -> Result<Option<(Snapshot, Vectors)>> {
        match self.source {
            Source::Init => Ok(None),
            Source::Embedded { json, tensors } => {
                let dir = Path::new("web/snapshots").join(self.name);
                let text = std::str::from_utf8(json).map_err(|e| {
                    Error::data(dir.join("snapshot.json"), format!("not UTF-8: {e}"))
                })?;
                parse_snapshot(
                    text,
                    &dir.join("snapshot.json"),
                    tensors,
                    &dir.join("snapshot.safetensors"),
                )
                .map(Some)
            }
        }
    }

    /// The lesson with the live numbers: where the run started, and the paper's claim on the
    /// branches so far (or what to press when there are none).
    pub fn lesson_now(&self, h: &History) -> String {
        let live = match h.fork.as_ref().and_then(|f| f.verdict()) {
            Some((_, text)) => match super::live::judge(h) {
                Some(v) => format!("Now: {text}.\nVerdict: {}.", v.text),
                None => format!("Now: {text}."),
            },
            None if h.fork.is_some() => {
                "Now: branched; the numbers come after the first step.".into()
            }
            None => format!(
                "Now: step {} from {}; press \"branch\" to compare.",
                h.step, h.origin
            ),
        };
        format!("{}\n{live}", self.lesson)
    }
}
