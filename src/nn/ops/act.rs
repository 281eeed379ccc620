//! Elementwise activation y = σ(x). tanh and ReLU are computed in place (the output overwrites the
//! input: σ' and σ'' are functions of the output); SiLU and GELU keep their input, which their
//! derivatives need ([`Activation::from_output`]). Every derivative pass reads the `cached` tensor:
//! y for the former, x for the latter ([`Act::cached_is_output`]).

use super::{Input, Kinks, Layer, OpRule, Pass, Shape, Ten, buf, got, need};
use crate::backend::Dual;
use crate::backend::{Activation, Backend};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Act {
    pub act: Activation,
    /// Elements per sample.
    pub width: usize,
}

impl Act {
    /// True if the derivative passes read the output (tanh, ReLU), false if the input (SiLU, GELU).
    pub fn cached_is_output(&self) -> bool {
        self.act.from_output()
    }
    /// The tensor the derivative passes read: y (tanh, ReLU; in place, the slot it shares with
    /// x) or x (SiLU, GELU).
    fn cached<'a, B: Backend>(
        &self,
        x: Option<Input<'a, B>>,
        y: Option<Ten<'a, B>>,
    ) -> Result<Ten<'a, B>> {
        if self.cached_is_output() {
            got(y, "output")
        } else {
            buf(x)
        }
    }
}

impl Layer for Act {
    fn shape(&self) -> Shape {
        Shape {
            input: self.width,
            output: self.width,
            ..Shape::default()
        }
    }
    fn in_place(&self) -> bool {
        self.cached_is_output()
    }
    /// ReLU: its kink at 0 (ReLU′(0) = 0 is taken).
    fn has_kinks(&self) -> bool {
        self.act == Activation::Relu
    }
    /// Inputs exactly 0 (ReLU only).
    fn kinks(&self, input: &[f64]) -> Kinks {
        Kinks {
            relu_zeros: if self.has_kinks() {
                input.iter().filter(|&&x| x == 0.0).count()
            } else {
                0
            },
            pool_ties: 0,
        }
    }
}

impl<B: Backend> OpRule<B> for Act {
    /// y = σ(x): x copied into y first when the op is not in place, then σ in place on y.
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, n) = (p.be, p.rows * self.width);
        let y = got(p.y_out, "output")?;
        if p.x.is_some() {
            let x = buf(p.x)?;
            be.copy(x.0, x.1, y.0, y.1, n)?;
        }
        be.act(self.act, n, y.0, y.1)
    }
    /// gx = gy ⊙ σ'(x), from the cached tensor (y or x).
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, n) = (p.be, p.rows * self.width);
        if let Some(gx) = p.gx {
            let (y, gy) = (self.cached(p.x, p.y)?, got(p.gy, "∂L/∂y")?);
            be.act_d1_mul(self.act, n, y, gy, gx)?;
        }
        Ok(())
    }
    /// R{y} = σ'(x) ⊙ R{x}.
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, n) = (p.be, p.rows * self.width);
        let (y, rx) = (self.cached(p.x, p.y)?, need(p.rx)?);
        let ry = got(p.ry, "R{y}")?;
        be.act_d1_mul(self.act, n, y, rx, ry)
    }
    /// R{gx} = R{gy} ⊙ σ'(x) + gy ⊙ σ''(x) ⊙ R{x}.
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, n) = (p.be, p.rows * self.width);
        if let Some(rgx) = p.rgx {
            let y = self.cached(p.x, p.y)?;
            let (gy, rgy) = (got(p.gy, "∂L/∂y")?, got(p.rgy, "R{∂L/∂y}")?);
            let rx = need(p.rx)?;
            be.act_d2_r(self.act, n, y, Dual { val: gy, r: rgy }, rx, rgx)?;
        }
        Ok(())
    }
}
