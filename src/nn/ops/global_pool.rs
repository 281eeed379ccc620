//! Global average pooling (PyTorch's `nn.AdaptiveAvgPool2d(1)` followed by `flatten(1)`) on NHWC
//! activations: `[rows, h, w, c] → [rows, c]`, y[r, ch] = (1/(h·w)) Σ_{i,j} x[r, i, j, ch]. It is
//! the unmasked mean over positions with the h·w pixels as positions, so it runs on
//! [`crate::backend::SeqOps::seq_mean`] and its adjoint (CPU and WGSL kernels exist). Linear: its
//! JVP is itself and its R-backward its VJP, with no second-order term.
//!
//! The unmasked mean reads no token ids; the kernels' `ids` operand (range-checked for rows·h·w
//! elements) is given the op's input, which is at least that long.

use super::{Layer, OpRule, Pass, Shape, Ten, TenMut, buf, got, need};
use crate::backend::{Backend, Seq};
use crate::error::Result;

/// The mean over the `hw` pixels of each of `c` channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalAvgPool {
    /// Pixels per image (h·w).
    pub hw: usize,
    /// Channels.
    pub c: usize,
}

impl GlobalAvgPool {
    fn geom(&self, rows: usize) -> Seq {
        Seq {
            rows,
            len: self.hw,
            width: self.c,
        }
    }
    /// y = the mean of x over pixels (also the JVP, on R{x}); `ids` is any tensor of at least
    /// rows·hw elements (unread).
    fn mean<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        ids: Ten<B>,
        x: Ten<B>,
        y: TenMut<B>,
    ) -> Result<()> {
        be.seq_mean(self.geom(rows), false, ids, x, y)
    }
    /// gx[r, p, ch] = gy[r, ch]/hw (also the R-backward, on R{gy}).
    fn adjoint<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        ids: Ten<B>,
        gy: Ten<B>,
        gx: TenMut<B>,
    ) -> Result<()> {
        be.seq_mean_adjoint(self.geom(rows), false, ids, gy, gx)
    }
}

impl Layer for GlobalAvgPool {
    fn shape(&self) -> Shape {
        Shape {
            input: self.hw * self.c,
            output: self.c,
            ..Shape::default()
        }
    }
}

impl<B: Backend> OpRule<B> for GlobalAvgPool {
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, y) = (buf(p.x)?, got(p.y_out, "output")?);
        self.mean(p.be, p.rows, x, x, y)
    }
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, gy, gx) = (buf(p.x)?, got(p.gy, "∂L/∂y")?, need(p.gx)?);
        self.adjoint(p.be, p.rows, x, gy, gx)
    }
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, rx, ry) = (buf(p.x)?, need(p.rx)?, got(p.ry, "R{y}")?);
        self.mean(p.be, p.rows, x, rx, ry)
    }
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, rgy, rgx) = (buf(p.x)?, got(p.rgy, "R{∂L/∂y}")?, need(p.rgx)?);
        self.adjoint(p.be, p.rows, x, rgy, rgx)
    }
}
