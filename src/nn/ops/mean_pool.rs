//! Mean over a sequence's positions ([rows, T, D] → [rows, D]): over the non-padding positions
//! when `masked`, over all T otherwise (Damian et al.'s `x.mean(1)`). Linear: its JVP is itself
//! and its R-backward its VJP ([`Backend::seq_mean`], [`Backend::seq_mean_adjoint`]).

use super::{Layer, OpRule, Pass, Shape, Ten, TenMut, buf, got, ids, need};
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
        ids: Ten<B>,
        x: Ten<B>,
        y: TenMut<B>,
    ) -> Result<()> {
        let g = self.geom(rows);
        be.seq_mean(g, self.masked, ids, x, y)
    }
    /// gx = the mean's adjoint of gy (also the R-backward, on R{gy}).
    fn adjoint<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        ids: Ten<B>,
        gy: Ten<B>,
        gx: TenMut<B>,
    ) -> Result<()> {
        let g = self.geom(rows);
        be.seq_mean_adjoint(g, self.masked, ids, gy, gx)
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
        let (ids, x, y) = (ids(p.ids)?, buf(p.x)?, got(p.y_out, "output")?);
        self.mean(p.be, p.rows, ids, x, y)
    }
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (ids, gy, gx) = (ids(p.ids)?, got(p.gy, "∂L/∂y")?, need(p.gx)?);
        self.adjoint(p.be, p.rows, ids, gy, gx)
    }
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (ids, rx, ry) = (ids(p.ids)?, need(p.rx)?, got(p.ry, "R{y}")?);
        self.mean(p.be, p.rows, ids, rx, ry)
    }
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (ids, rgy, rgx) = (ids(p.ids)?, got(p.rgy, "R{∂L/∂y}")?, need(p.rgx)?);
        self.adjoint(p.be, p.rows, ids, rgy, rgx)
    }
}
