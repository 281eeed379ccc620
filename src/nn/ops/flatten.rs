//! Flatten of NHWC activations into PyTorch's NCHW order (`nn.Flatten` after a convolution):
//! feature ch·h·w + y·w + x. A per-sample transpose of the `[h·w, c]` matrix; its VJP, JVP and
//! R-backward are the same linear map or its inverse.

use super::{Layer, OpRule, Pass, Shape, buf, got, need};
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
}

impl Layer for Flatten {
    fn shape(&self) -> Shape {
        Shape {
            input: self.width(),
            output: self.width(),
            ..Shape::default()
        }
    }
}

impl<B: Backend> OpRule<B> for Flatten {
    /// y = NCHW order of x.
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, y) = (buf(p.x)?, got(p.y_out, "output")?);
        p.be.transpose_batch(p.rows, self.hw, self.c, x, y)
    }
    /// gx = NHWC order of gy.
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        if let Some(gx) = p.gx {
            let gy = got(p.gy, "∂L/∂y")?;
            p.be.transpose_batch(p.rows, self.c, self.hw, gy, gx)?;
        }
        Ok(())
    }
    /// R{y} = NCHW order of R{x}.
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (rx, ry) = (need(p.rx)?, got(p.ry, "R{y}")?);
        p.be.transpose_batch(p.rows, self.hw, self.c, rx, ry)
    }
    /// R{gx} = NHWC order of R{gy}.
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        if let Some(rgx) = p.rgx {
            let rgy = got(p.rgy, "R{∂L/∂y}")?;
            p.be.transpose_batch(p.rows, self.c, self.hw, rgy, rgx)?;
        }
        Ok(())
    }
}
