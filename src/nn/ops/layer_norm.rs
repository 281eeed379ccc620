//! LayerNorm over the last dimension of a sequence ([rows, T, D]) with learnable γ (`weight`) and
//! β (`bias`), ε as given (Flax's default 1e-6 in Damian et al.'s Transformer). The math of each
//! pass is written on the backend method it calls ([`Backend::layer_norm`] and friends).

use super::{Layer, OpRule, Pass, Shape, buf, got, need};
use crate::backend::{Backend, Ln};
use crate::backend::{Dual, Ten, TenMut, ThetaV};
use crate::error::Result;

/// LayerNorm at each of `seq` positions of `width`: γ at `g_off`, β at `b_off` in θ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    pub seq: usize,
    pub width: usize,
    pub eps: f64,
    pub g_off: usize,
    pub b_off: usize,
}

impl Eq for LayerNorm {}

impl LayerNorm {
    fn ln(&self, rows: usize) -> Ln {
        Ln {
            rows: rows * self.seq,
            width: self.width,
            eps: self.eps,
            gamma: self.g_off,
            beta: self.b_off,
        }
    }
    pub fn out_width(&self) -> usize {
        self.seq * self.width
    }
}

impl Layer for LayerNorm {
    /// The scratch holds the products of the output's size that the sums over rows read.
    fn shape(&self) -> Shape {
        Shape {
            input: self.out_width(),
            output: self.out_width(),
            scratch: self.out_width(),
            params: 2 * self.width,
            ..Shape::default()
        }
    }
}

impl<B: Backend> OpRule<B> for LayerNorm {
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, y) = (buf(p.x)?, got(p.y_out, "output")?);
        p.be.layer_norm(self.ln(p.rows), x, p.theta, y)
    }
    /// gx (overwritten); ∂L/∂γ += Σ gy ⊙ x̂, ∂L/∂β += Σ gy into `grad` when given.
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, theta) = (p.be, p.theta);
        let (x, gy) = (buf(p.x)?, got(p.gy, "∂L/∂y")?);
        let (gx, prod) = (need(p.gx)?, got(p.scratch, "scratch")?);
        let l = self.ln(p.rows);
        be.layer_norm_vjp(l, x, theta, gy, gx, TenMut(prod, 0))?;
        if let Some(g) = p.grad {
            be.col_sum(
                l.rows,
                l.width,
                1.0,
                Ten(prod, 0),
                1.0,
                TenMut(g.0, g.1 + self.g_off),
            )?;
            be.col_sum(l.rows, l.width, 1.0, gy, 1.0, TenMut(g.0, g.1 + self.b_off))?;
        }
        Ok(())
    }
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, rx) = (buf(p.x)?, need(p.rx)?);
        let (v, ry) = (got(p.v, "direction")?, got(p.ry, "R{y}")?);
        p.be.layer_norm_jvp(
            self.ln(p.rows),
            Dual { val: x, r: rx },
            ThetaV { theta: p.theta, v },
            ry,
        )
    }
    /// R{gx} (overwritten); R{∂L/∂γ}, R{∂L/∂β} into `hv`.
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, theta) = (p.be, p.theta);
        let (x, rx) = (buf(p.x)?, need(p.rx)?);
        let (v, gy, rgy) = (
            got(p.v, "direction")?,
            got(p.gy, "∂L/∂y")?,
            got(p.rgy, "R{∂L/∂y}")?,
        );
        let (hv, rgx) = (got(p.hv, "H·v")?, need(p.rgx)?);
        let prod = got(p.scratch, "scratch")?;
        let l = self.ln(p.rows);
        be.layer_norm_rvjp(
            l,
            Dual { val: x, r: rx },
            ThetaV { theta, v },
            Dual { val: gy, r: rgy },
            rgx,
            TenMut(prod, 0),
        )?;
        be.col_sum(
            l.rows,
            l.width,
            1.0,
            Ten(prod, 0),
            1.0,
            TenMut(hv.0, hv.1 + self.g_off),
        )?;
        be.col_sum(
            l.rows,
            l.width,
            1.0,
            rgy,
            1.0,
            TenMut(hv.0, hv.1 + self.b_off),
        )
    }
}
