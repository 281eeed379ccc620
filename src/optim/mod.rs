//! The optimisers of a run. Each computes the update d of a step θ ← θ − d on the backend from
//! the minibatch gradient g: [`sgd`] (SGD and full-batch GD: d = η g), [`momentum`] (PyTorch's
//! heavy ball), [`adam`], [`sam`] (normalised SAM: SGD's update at the perturbed point). Any of
//! them is then projected by [`project_update`] — none, onto S_k (dominant) or onto its
//! complement (bulk) — with the arithmetic of [`crate::hessian::subspace::Span`]. For momentum and
//! Adam the state evolves from the raw gradients and only the step taken is projected.
//!
//! The state lives in [`OptBuffers`] on the backend (read back as [`OptState`] for checkpoints);
//! an update writes the next state beside the current one, and [`OptBuffers::commit`] swaps it
//! in only when the step succeeds, so a diverging step leaves the state as it was.
//!
//! Adding an optimiser: a file here with its `update` (writing d, and its next state into
//! `OptBuffers`), a variant of [`OptKind`] in the spec, one arm in the stepper's
//! `Stepper::update` (and in [`OptBuffers::commit`] when it has state).

pub mod adam;
pub mod momentum;
pub mod sam;
pub mod sgd;

pub use sam::{sam_edge, sam_edge_as_printed, sam_multiplier, sam_update};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::experiment::spec::{OptKind, Projection};
use crate::hessian::subspace::Span;

/// Optimiser state (momentum buffer or Adam moments).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct OptState {
    /// Steps taken.
    pub t: u64,
    #[serde(skip)]
    pub m: Vec<f64>,
    #[serde(skip)]
    pub v: Vec<f64>,
}

/// The optimiser's state on the backend: the step count, the momentum buffer or Adam's first
/// moment `m`, Adam's second moment `v`, and the next step's state (`m_next`, `v_next`), written
/// there by an update and swapped in by [`OptBuffers::commit`] only when the step succeeds.
pub struct OptBuffers<B: Backend> {
    /// Steps taken.
    pub t: u64,
    /// The momentum buffer or Adam's first moment.
    pub m: Option<B::Buf>,
    /// Adam's second moment.
    pub v: Option<B::Buf>,
    /// `m` and `v` after the step being taken.
    pub m_next: Option<B::Buf>,
    pub v_next: Option<B::Buf>,
}

impl<B: Backend> Default for OptBuffers<B> {
    fn default() -> Self {
        OptBuffers {
            t: 0,
            m: None,
            v: None,
            m_next: None,
            v_next: None,
        }
    }
}

impl<B: Backend> OptBuffers<B> {
    /// Load a state (its step count and, when non-empty, its buffers) for `p` parameters.
    /// Errors: a buffer of another length than p.
    pub fn load(&mut self, b: &B, s: &OptState, p: usize) -> Result<()> {
        for (name, x) in [("m", &s.m), ("v", &s.v)] {
            if !x.is_empty() && x.len() != p {
                return Err(Error::Shape(format!(
                    "optimiser state `{name}` has {} entries, the model {p}",
                    x.len()
                )));
            }
        }
        self.t = s.t;
        self.m = (!s.m.is_empty()).then(|| b.upload(&s.m)).transpose()?;
        self.v = (!s.v.is_empty()).then(|| b.upload(&s.v)).transpose()?;
        Ok(())
    }

    /// The state read back.
    pub fn state(&self, b: &B) -> Result<OptState> {
        Ok(OptState {
            t: self.t,
            m: self
                .m
                .as_ref()
                .map(|m| b.download(m))
                .transpose()?
                .unwrap_or_default(),
            v: self
                .v
                .as_ref()
                .map(|v| b.download(v))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// The step succeeded: the next state written by `kind`'s update becomes the state, and the
    /// step count becomes `t_next`.
    pub fn commit(&mut self, kind: OptKind, t_next: u64) {
        match kind {
            OptKind::Momentum => std::mem::swap(&mut self.m, &mut self.m_next),
            OptKind::Adam => {
                std::mem::swap(&mut self.m, &mut self.m_next);
                std::mem::swap(&mut self.v, &mut self.v_next);
            }
            _ => {}
        }
        self.t = t_next;
    }
}

/// The update d projected as `proj` says: unchanged (none), d ← P_k d (dominant) or
/// d ← P_k⊥ d (bulk), S_k spanned by `basis`; `coef`: k elements of scratch.
pub fn project_update<B: Backend>(
    b: &B,
    proj: Projection,
    basis: &Span<B>,
    d: &mut B::Buf,
    coef: &mut B::Buf,
) -> Result<()> {
    match proj {
        Projection::None => Ok(()),
        // c = U d; Dom: d ← Uᵀc; Bulk: d ← d − Uᵀc.
        Projection::Dominant => basis.project_in_place(b, d, coef, false),
        Projection::Bulk => basis.project_in_place(b, d, coef, true),
    }
}

/// ‖v‖ on the host.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// ⟨a, b⟩ on the host.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// ‖a − b‖ on the host.
pub fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}
