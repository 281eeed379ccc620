//! Flatten of NHWC activations into PyTorch's NCHW order (`nn.Flatten` after a convolution):
//! feature ch·h·w + y·w + x. A per-sample transpose of the `[h·w, c]` matrix; its VJP, JVP and
//! R-backward are the same linear map or its inverse.

use super::{Ten, TenMut};
use crate::backend::Backend;
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    /// Pixels (h·w) and channels per sample.
    pub hw: usize,
    pub c: usize,
}

impl Flatten {
    pub fn width(&self) -> usize {
        self.hw * self.c
    }
    /// y = NCHW order of x (also the JVP, on R{x}).
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        x: Ten<B>,
        y: TenMut<B>,
    ) -> Result<()> {
        be.transpose_batch(samples, self.hw, self.c, x.0, x.1, y.0, y.1)
    }
    /// gx = NHWC order of gy (also the R-backward, on R{gy}).
    #[allow(clippy::too_many_arguments)]
    pub fn vjp<B: Backend>(&self, be: &B, samples: usize, gy: Ten<B>, gx: TenMut<B>) -> Result<()> {
        be.transpose_batch(samples, self.c, self.hw, gy.0, gy.1, gx.0, gx.1)
    }
}
