//! The residual add `y = x + s`, where x is the previous tensor and s the output of op `from`
//! (an earlier tensor, not the previous one: [`Pass::skip`](super::Pass::skip)). Its VJP passes
//! gy to both: to x as the op's input gradient, to s by the engine, which adds it once the
//! consumer of s has written s's gradient. Linear: its JVP is itself on (R{x}, R{s}).

use super::{Layer, OpRule, Pass, Shape, Ten, TenMut, buf, got, need};
use crate::backend::Backend;
use crate::error::Result;

/// A residual connection from tensor `from`, `width` scalars per sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Add {
    pub from: usize,
    pub width: usize,
}

impl Add {
    /// y = x + s.
    fn add<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: Ten<B>,
        s: Ten<B>,
        y: TenMut<B>,
    ) -> Result<()> {
        let len = rows * self.width;
        be.copy(x.0, x.1, y.0, y.1, len)?;
        be.axpy(1.0, s.0, s.1, y.0, y.1, len)
    }
}

impl Layer for Add {
    fn shape(&self) -> Shape {
        Shape {
            input: self.width,
            output: self.width,
            ..Shape::default()
        }
    }
    fn skip_from(&self) -> Option<usize> {
        Some(self.from)
    }
}

impl<B: Backend> OpRule<B> for Add {
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, s, y) = (buf(p.x)?, got(p.skip, "residual")?, got(p.y_out, "output")?);
        self.add(p.be, p.rows, x, s, y)
    }
    /// gx = gy (s's share is added by the engine).
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (gy, gx) = (got(p.gy, "∂L/∂y")?, need(p.gx)?);
        p.be.copy(gy.0, gy.1, gx.0, gx.1, p.rows * self.width)
    }
    /// R{y} = R{x} + R{s}.
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (rx, rs, ry) = (need(p.rx)?, got(p.skip, "residual")?, got(p.ry, "R{y}")?);
        self.add(p.be, p.rows, rx, rs, ry)
    }
    /// R{gx} = R{gy}.
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (rgy, rgx) = (got(p.rgy, "R{∂L/∂y}")?, need(p.rgx)?);
        p.be.copy(rgy.0, rgy.1, rgx.0, rgx.1, p.rows * self.width)
    }
}
