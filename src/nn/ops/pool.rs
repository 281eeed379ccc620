//! 2×2 max-pool with stride 2 (PyTorch's `nn.MaxPool2d(2)`) on NHWC activations. The forward pass
//! records each output's arg-max (the first maximum in row-major window order on ties, as PyTorch);
//! every derivative is routed through it: the pool is linear in its input at a fixed arg-max, so
//! the JVP gathers, the VJP scatters, and the R-backward is the VJP of R{gy} (no second-order term).

use super::{Ten, TenMut};
use crate::backend::{Backend, Nhwc};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2 {
    /// Input height, width (even) and channels.
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl MaxPool2 {
    pub fn in_width(&self) -> usize {
        self.h * self.w * self.c
    }
    pub fn out_width(&self) -> usize {
        self.h * self.w * self.c / 4
    }
    fn geom(&self, samples: usize) -> Nhwc {
        Nhwc {
            n: samples,
            h: self.h,
            w: self.w,
            c: self.c,
        }
    }
    /// y = max over each window; `idx` (the shape of y) receives the arg-max.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        x: Ten<B>,
        y: TenMut<B>,
        idx: TenMut<B>,
    ) -> Result<()> {
        be.maxpool2(self.geom(samples), x.0, x.1, y.0, y.1, idx.0, idx.1)
    }
    /// gx = gy at the arg-max, zero elsewhere (also the R-backward, applied to R{gy}).
    #[allow(clippy::too_many_arguments)]
    pub fn vjp<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        idx: Ten<B>,
        gy: Ten<B>,
        gx: TenMut<B>,
    ) -> Result<()> {
        be.pool2_scatter(self.geom(samples), idx.0, idx.1, gy.0, gy.1, gx.0, gx.1)
    }
    /// R{y} = R{x} at the arg-max.
    #[allow(clippy::too_many_arguments)]
    pub fn jvp<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        idx: Ten<B>,
        rx: Ten<B>,
        ry: TenMut<B>,
    ) -> Result<()> {
        be.pool2_gather(self.geom(samples), idx.0, idx.1, rx.0, rx.1, ry.0, ry.1)
    }
}
