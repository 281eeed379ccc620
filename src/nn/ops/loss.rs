//! The loss on the network's outputs: ½‖f − y‖² (MSE, Cohen et al.'s convention) or softmax
//! cross-entropy per sample, averaged over the n samples of the data set (`scale` = 1/n).

use super::{Ten, TenMut};
use crate::backend::LossBlock;
use crate::backend::{Backend, LossKind};
use crate::error::Result;

/// The loss of an engine: its kind, the outputs per sample, and the weight of one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    pub kind: LossKind,
    /// Outputs per sample (classes).
    pub classes: usize,
    /// The factor of each sample's loss (1/n for the mean over n samples).
    pub scale: f64,
}

impl Loss {
    /// g = scale·∂ℓ/∂f for the targets `target`; stats\[0\] += Σℓ, stats\[1\] += correct predictions.
    pub fn forward_vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        f: Ten<B>,
        target: Ten<B>,
        g: TenMut<B>,
        stats: &mut B::Buf,
    ) -> Result<()> {
        be.loss_grad(
            LossBlock {
                kind: self.kind,
                rows,
                cols: self.classes,
                scale: self.scale,
            },
            f,
            target,
            g,
            stats,
        )
    }
    /// R{g} = scale·∇²ℓ(f)·R{f}.
    pub fn r_vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        f: Ten<B>,
        rf: Ten<B>,
        rg: TenMut<B>,
    ) -> Result<()> {
        be.loss_hess_mul(
            LossBlock {
                kind: self.kind,
                rows,
                cols: self.classes,
                scale: self.scale,
            },
            f,
            rf,
            rg,
        )
    }
}
