//! Mean over a sequence's positions ([rows, T, D] → [rows, D]): over the non-padding positions
//! when `masked`, over all T otherwise (Damian et al.'s `x.mean(1)`). Linear: its JVP is itself
//! and its R-backward its VJP ([`Backend::seq_mean`], [`Backend::seq_mean_adjoint`]).

use super::{Layer, OpRule, Packed, Pass, Shape, Ten, TenMut, buf, got, ids, need};
use crate::backend::{Backend, Seq};
use crate::error::Result;

/// The mean over `seq` positions of `width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeanPool {
    pub seq: usize,
    pub width: usize,
    pub masked: bool,
}

impl MeanPool {
    fn geom(&self, rows: usize) -> Seq {
        Seq {
            rows,
            len: self.seq,
            width: self.width,
        }
    }
    /// y = mean of x (also the JVP, on R{x}).
    fn mean<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        at: Rows<B>,
        x: Ten<B>,
        y: TenMut<B>,
    ) -> Result<()> {
        match at.0 {
            Some(pk) => be.seq_mean_varlen(pk.v, self.width, x, y),
            None => be.seq_mean(self.geom(rows), self.masked, ids(at.1)?, x, y),
        }
    }
    /// gx = the mean's adjoint of gy (also the R-backward, on R{gy}).
    fn adjoint<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        at: Rows<B>,
        gy: Ten<B>,
        gx: TenMut<B>,
    ) -> Result<()> {
        match at.0 {
            Some(pk) => be.seq_mean_varlen_adjoint(pk.v, self.width, gy, gx),
            None => be.seq_mean_adjoint(self.geom(rows), self.masked, ids(at.1)?, gy, gx),
        }
    }
}

impl Layer for MeanPool {
    fn shape(&self) -> Shape {
        Shape {
            input: self.seq * self.width,
            output: self.width,
            ..Shape::default()
        }
    }
}

impl<B: Backend> OpRule<B> for MeanPool {
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, y) = (buf(p.x)?, got(p.y_out, "output")?);
        self.mean(p.be, p.rows, Rows(p.packed, p.ids), x, y)
    }
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (gy, gx) = (got(p.gy, "∂L/∂y")?, need(p.gx)?);
        self.adjoint(p.be, p.rows, Rows(p.packed, p.ids), gy, gx)
    }
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (rx, ry) = (need(p.rx)?, got(p.ry, "R{y}")?);
        self.mean(p.be, p.rows, Rows(p.packed, p.ids), rx, ry)
    }
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (rgy, rgx) = (got(p.rgy, "R{∂L/∂y}")?, need(p.rgx)?);
        self.adjoint(p.be, p.rows, Rows(p.packed, p.ids), rgy, rgx)
    }
}

/// Where the positions of a chunk are: packed live tokens, or the padded form with its ids.
struct Rows<'a, B: Backend>(Option<Packed<'a, B>>, Option<Ten<'a, B>>);
