//! The loss on the network's outputs: ½‖f − y‖² (MSE, Cohen et al.'s convention) or softmax
//! cross-entropy per sample, averaged over the n samples of the data set (scale 1/n).

use super::{Ten, TenMut};
use crate::backend::{Backend, LossKind};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    pub kind: LossKind,
    /// Outputs per sample (classes).
    pub classes: usize,
}

impl Loss {
    /// g = scale·∂ℓ/∂f; stats[0] += Σℓ, stats[1] += correct predictions.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        f: Ten<B>,
        target: Ten<B>,
        scale: f64,
        g: TenMut<B>,
        stats: &mut B::Buf,
    ) -> Result<()> {
        be.loss_grad(
            self.kind,
            rows,
            self.classes,
            f.0,
            f.1,
            target.0,
            target.1,
            scale,
            g.0,
            g.1,
            stats,
        )
    }
    /// R{g} = scale·∇²ℓ(f)·R{f}.
    #[allow(clippy::too_many_arguments)]
    pub fn r_vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        f: Ten<B>,
        rf: Ten<B>,
        scale: f64,
        rg: TenMut<B>,
    ) -> Result<()> {
        be.loss_hess_mul(
            self.kind,
            rows,
            self.classes,
            f.0,
            f.1,
            rf.0,
            rf.1,
            scale,
            rg.0,
            rg.1,
        )
    }
}
