//! The residual add with a projection shortcut of He et al. (2016, option B): `y = x + P(s)`,
//! where x is the previous tensor (the block's main path, NHWC `[oh, ow, cout]`) and s an earlier
//! tensor (the block's input, NHWC `[h, w, cin]`) that P, a convolution with bias (1×1, stride 2,
//! padding 0 in ResNet8: `shortcut.0` of the PyTorch twin), maps to x's shape.
//!
//! The op's own passes see only the main path: gx = gy, R{gx} = R{gy}. The shortcut's share is in
//! [`OpRule::skip_vjp`] and [`OpRule::skip_r_vjp_block`], which the engine calls once s's gradient
//! is written: ∂L/∂W_P += gyᵀ col(s), ∂L/∂b_P += Σ gy, ∂L/∂s += col2im(gy W_P); and their
//! R-operators. The R-forward needs s itself (the term conv(s; V_P)), which its pass does not
//! carry (its `skip` is R{s}): the forward pass keeps a copy of s in `aux`.

use super::{Block, Conv3x3, Input, Layer, OpRule, Pass, Shape, Ten, buf, got, need};
use crate::backend::{Backend, Mat, MatMut, Nhwc};
use crate::error::Result;

/// `y = x + conv(tensor from; proj)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjAdd {
    /// The tensor the shortcut reads (the block's input).
    pub from: usize,
    /// The shortcut's convolution (its input is tensor `from`; its output has this op's width).
    pub proj: Conv3x3,
}

impl ProjAdd {
    fn width(&self) -> usize {
        self.proj.out_width()
    }
    fn images(&self, rows: usize) -> Nhwc {
        Nhwc {
            n: rows,
            h: self.proj.h,
            w: self.proj.w,
            c: self.proj.cin,
        }
    }
    /// ∂L/∂s (+)= col2im(gy·M) for M `[cout, k²·cin]` at `m` (W_P or V_P), through `col`.
    fn back_to_s<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        (gy, m): (Ten<B>, Ten<B>),
        col: &mut B::Buf,
        beta: f64,
    ) -> Result<()> {
        let c = &self.proj;
        let (r, k) = (rows * c.out_pixels(), c.geom.taps() * c.cin);
        be.gemm(
            Mat::new(gy.0, gy.1, r, c.cout),
            Mat::new(m.0, m.1, c.cout, k),
            MatMut::new(col, 0, r, k),
            1.0,
            beta,
        )
    }
}

impl Layer for ProjAdd {
    /// The copy of s (`aux`) has the shape of s; the scratch is the shortcut's im2col.
    fn shape(&self) -> Shape {
        Shape {
            input: self.width(),
            output: self.width(),
            aux: self.proj.in_width(),
            scratch: self.proj.col_width(),
            params: self.proj.num_params(),
        }
    }
    fn skip_from(&self) -> Option<usize> {
        Some(self.from)
    }
    fn wgsl_missing(&self) -> Option<String> {
        self.proj
            .wgsl_missing()
            .map(|c| format!("a projection shortcut through {c}"))
    }
}

impl<B: Backend> OpRule<B> for ProjAdd {
    /// y = P(s) + x; s copied into `aux_out`.
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, rows) = (p.be, p.rows);
        let (x, s) = (buf(p.x)?, got(p.skip, "shortcut input")?);
        let (mut y, kept) = (got(p.y_out, "output")?, got(p.aux_out, "kept input")?);
        be.copy(s.0, s.1, kept.0, kept.1, rows * self.proj.in_width())?;
        self.proj.forward(Pass {
            x: Some(Input::Buf(s)),
            y_out: Some(y.re()),
            scratch: p.scratch,
            ..Pass::new(be, rows, p.theta)
        })?;
        be.axpy(1.0, x.0, x.1, y.0, y.1, rows * self.width())
    }
    /// gx = gy (the shortcut's share: [`OpRule::skip_vjp`]).
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (gy, gx) = (got(p.gy, "∂L/∂y")?, need(p.gx)?);
        p.be.copy(gy.0, gy.1, gx.0, gx.1, p.rows * self.width())
    }
    /// R{y} = R{x} + conv(s; V_P) + conv(R{s}; W_P) + v_b.
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, rows) = (p.be, p.rows);
        let (rx, rs) = (need(p.rx)?, got(p.skip, "R{shortcut input}")?);
        let (s, mut ry) = (got(p.aux, "kept input")?, got(p.ry, "R{y}")?);
        self.proj.jvp(Pass {
            x: Some(Input::Buf(s)),
            rx: Some(rs),
            v: p.v,
            ry: Some(ry.re()),
            scratch: p.scratch,
            ..Pass::new(be, rows, p.theta)
        })?;
        be.axpy(1.0, rx.0, rx.1, ry.0, ry.1, rows * self.width())
    }
    /// R{gx} = R{gy}.
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (rgy, rgx) = (got(p.rgy, "R{∂L/∂y}")?, need(p.rgx)?);
        p.be.copy(rgy.0, rgy.1, rgx.0, rgx.1, p.rows * self.width())
    }
    /// ∂L/∂(W_P, b_P) += the shortcut convolution's VJP at s (when `grad` is given);
    /// ∂L/∂s += col2im(gy W_P).
    fn skip_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, rows, theta) = (p.be, p.rows, p.theta);
        let (s, gy) = (got(p.skip, "shortcut input")?, got(p.gy, "∂L/∂y")?);
        let (col, gs) = (got(p.scratch, "scratch")?, got(p.gx, "∂L/∂s")?);
        if let Some(grad) = p.grad {
            self.proj.vjp(Pass {
                x: Some(Input::Buf(s)),
                gy: Some(gy),
                grad: Some(grad),
                scratch: Some(&mut *col),
                ..Pass::new(be, rows, theta)
            })?;
        }
        self.back_to_s(be, rows, (gy, Ten(theta, self.proj.w_off)), col, 0.0)?;
        be.col2im(self.images(rows), self.proj.geom, Ten(col, 0), 1.0, gs)
    }
    /// Per direction: H·v += the shortcut convolution's R-backward at (s, R{s}); R{∂L/∂s} +=
    /// col2im(R{gy} W_P + gy V_P).
    fn skip_r_vjp_block(&self, mut p: Pass<'_, B>, b: Block) -> Result<()> {
        for i in 0..b.n {
            let q = p.direction(i, &b);
            let (be, rows, theta) = (q.be, q.rows, q.theta);
            let (s, rs) = (got(q.skip, "shortcut input")?, got(q.rx, "R{s}")?);
            let (gy, rgy, v) = (got(q.gy, "∂L/∂y")?, got(q.rgy, "R{∂L/∂y}")?, got(q.v, "v")?);
            let (col, rgs) = (got(q.scratch, "scratch")?, got(q.rgx, "R{∂L/∂s}")?);
            self.proj.r_vjp(Pass {
                x: Some(Input::Buf(s)),
                rx: Some(rs),
                v: Some(v),
                gy: Some(gy),
                rgy: Some(rgy),
                hv: q.hv,
                scratch: Some(&mut *col),
                ..Pass::new(be, rows, theta)
            })?;
            let w_off = self.proj.w_off;
            self.back_to_s(be, rows, (rgy, Ten(theta, w_off)), col, 0.0)?;
            self.back_to_s(be, rows, (gy, Ten(v.0, v.1 + w_off)), col, 1.0)?;
            be.col2im(self.images(rows), self.proj.geom, Ten(col, 0), 1.0, rgs)?;
        }
        Ok(())
    }
}
