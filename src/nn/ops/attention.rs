//! Multi-head scaled dot-product attention over a sequence (no parameters: its projections are
//! [`super::Linear`] ops with `seq` = T before and after it). Input [rows, T, 3D] = [q | k | v]
//! per position, output [rows, T, D]; P [rows, H, T, T] is kept (`aux`) for the derivative
//! passes. The math of each pass is written on the backend method it calls
//! ([`Backend::attention`] and friends).

use super::{Layer, OpRule, Pass, Shape, buf, got, ids, need};
use crate::backend::Dual;
use crate::backend::{Attn, Backend};
use crate::error::Result;

/// Attention of `heads` heads of `head_dim` over `seq` positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attention {
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Padding keys (token id 0) masked.
    pub masked: bool,
}

impl Attention {
    pub fn attn(&self, rows: usize) -> Attn {
        Attn {
            rows,
            seq: self.seq,
            heads: self.heads,
            head_dim: self.head_dim,
            masked: self.masked,
        }
    }
    pub fn in_width(&self) -> usize {
        3 * self.out_width()
    }
    pub fn out_width(&self) -> usize {
        self.seq * self.heads * self.head_dim
    }
    /// Scalars of P per sample.
    pub fn probs_width(&self) -> usize {
        self.heads * self.seq * self.seq
    }
}

impl Layer for Attention {
    /// P is the kept tensor.
    fn shape(&self) -> Shape {
        Shape {
            input: self.in_width(),
            output: self.out_width(),
            aux: self.probs_width(),
            ..Shape::default()
        }
    }
}

impl<B: Backend> OpRule<B> for Attention {
    /// y and P (into `aux_out`), masking by the token ids.
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let qkv = buf(p.x)?;
        let (y, probs) = (got(p.y_out, "output")?, got(p.aux_out, "P")?);
        match p.packed {
            Some(pk) => {
                p.be.attention_varlen(self.attn(p.rows), pk.v, qkv, y, probs)
            }
            None => {
                p.be.attention(self.attn(p.rows), ids(p.ids)?, qkv, y, probs)
            }
        }
    }
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (qkv, probs) = (buf(p.x)?, got(p.aux, "P")?);
        let (gy, gx) = (got(p.gy, "∂L/∂y")?, need(p.gx)?);
        match p.packed {
            Some(pk) => {
                p.be.attention_varlen_vjp(self.attn(p.rows), pk.v, qkv, probs, gy, gx)
            }
            None => p.be.attention_vjp(self.attn(p.rows), qkv, probs, gy, gx),
        }
    }
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (qkv, probs) = (buf(p.x)?, got(p.aux, "P")?);
        let (rqkv, ry) = (need(p.rx)?, got(p.ry, "R{y}")?);
        let x = Dual { val: qkv, r: rqkv };
        match p.packed {
            Some(pk) => {
                p.be.attention_varlen_jvp(self.attn(p.rows), pk.v, x, probs, ry)
            }
            None => p.be.attention_jvp(self.attn(p.rows), x, probs, ry),
        }
    }
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (qkv, probs, rqkv) = (buf(p.x)?, got(p.aux, "P")?, need(p.rx)?);
        let (gy, rgy) = (got(p.gy, "∂L/∂y")?, got(p.rgy, "R{∂L/∂y}")?);
        let rgx = need(p.rgx)?;
        let (x, g) = (Dual { val: qkv, r: rqkv }, Dual { val: gy, r: rgy });
        match p.packed {
            Some(pk) => {
                p.be.attention_varlen_rvjp(self.attn(p.rows), pk.v, x, probs, g, rgx)
            }
            None => p.be.attention_rvjp(self.attn(p.rows), x, probs, g, rgx),
        }
    }
}
