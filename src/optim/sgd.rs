//! SGD and full-batch GD: d = η g (the minibatch's gradient or the full data's).

use crate::backend::Backend;
use crate::error::Result;

/// d ← η g.
pub fn update<B: Backend>(b: &B, lr: f64, g: &B::Buf, d: &mut B::Buf, p: usize) -> Result<()> {
    b.copy(g, 0, d, 0, p)?;
    b.scale(lr, d, 0, p)
}
