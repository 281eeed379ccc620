//! 2-D convolution with bias: PyTorch's `nn.Conv2d(cin, cout, k, stride, padding)` for the
//! geometry `geom` ([`ConvGeom`]; today's networks use 3×3, stride 1, padding 1, whence the
//! name). W is `[cout, cin, k, k]` at `w_off` in θ, b `[cout]` at `b_off`. Activations are NHWC
//! (`[samples, h, w, c]`, the output `[samples, oh, ow, cout]`), so with col = im2col(x)
//! (`[samples·oh·ow, k²·cin]`, column ci·k² + ky·k + kx) the layer is the GEMM y = col Wᵀ + b, and
//! every pass is the matching pass of a linear layer on col; the input's gradient goes back
//! through im2col's adjoint (col2im).
//!
//! Every pass takes a scratch buffer `col` ([`Pass::scratch`](super::Pass::scratch)) of at least
//! samples·oh·ow·k²·cin elements.

use super::{DataForm, Layer, OpRule, Pass, Shape, Ten, TenMut, buf, got};
use crate::backend::{Backend, ConvGeom, Mat, MatMut, Nhwc};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3x3 {
    pub cin: usize,
    pub cout: usize,
    /// Height and width of the input (of the output too for [`ConvGeom::SAME_3X3`]).
    pub h: usize,
    pub w: usize,
    pub w_off: usize,
    pub b_off: usize,
    /// Kernel, stride and padding.
    pub geom: ConvGeom,
}

impl Conv3x3 {
    /// Parameters of the layer.
    pub fn num_params(&self) -> usize {
        self.cout * self.k() + self.cout
    }
    /// Elements of one sample's input and output.
    pub fn in_width(&self) -> usize {
        self.h * self.w * self.cin
    }
    pub fn out_width(&self) -> usize {
        self.out_pixels() * self.cout
    }
    /// Scratch elements per sample.
    pub fn col_width(&self) -> usize {
        self.out_pixels() * self.k()
    }
    /// Output pixels per sample, oh·ow ([`ConvGeom::out_size`]).
    pub fn out_pixels(&self) -> usize {
        self.geom.out_size(self.h) * self.geom.out_size(self.w)
    }
    fn images(&self, samples: usize) -> Nhwc {
        Nhwc {
            n: samples,
            h: self.h,
            w: self.w,
            c: self.cin,
        }
    }
    fn k(&self) -> usize {
        self.geom.taps() * self.cin
    }

    /// y (+)= col(x) · Mᵀ for M `[cout, k²·cin]`: im2col into `col`, then the GEMM.
    fn conv<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        x: Ten<B>,
        m: Ten<B>,
        beta: f64,
        (col, y): (&mut B::Buf, &mut TenMut<B>),
    ) -> Result<()> {
        be.im2col(self.images(samples), self.geom, x, TenMut(col, 0))?;
        let rows = samples * self.out_pixels();
        be.gemm(
            Mat::new(col, 0, rows, self.k()),
            Mat::new(m.0, m.1, self.cout, self.k()).t(),
            MatMut::new(y.0, y.1, rows, self.cout),
            1.0,
            beta,
        )
    }

    /// out_W += gᵀ · col(x) for g `[samples·h·w, cout]`.
    fn gt_col<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        g: Ten<B>,
        x: Ten<B>,
        col: &mut B::Buf,
        out: &mut TenMut<B>,
    ) -> Result<()> {
        be.im2col(self.images(samples), self.geom, x, TenMut(col, 0))?;
        let rows = samples * self.out_pixels();
        be.gemm(
            Mat::new(g.0, g.1, rows, self.cout).t(),
            Mat::new(col, 0, rows, self.k()),
            MatMut::new(out.0, out.1 + self.w_off, self.cout, self.k()),
            1.0,
            1.0,
        )
    }
}

impl Layer for Conv3x3 {
    fn shape(&self) -> Shape {
        Shape {
            input: self.in_width(),
            output: self.out_width(),
            scratch: self.col_width(),
            params: self.num_params(),
            ..Shape::default()
        }
    }
    fn reads_data(&self) -> Option<DataForm> {
        Some(DataForm::Images {
            c: self.cin,
            h: self.h,
            w: self.w,
        })
    }
}

impl<B: Backend> OpRule<B> for Conv3x3 {
    /// y = conv(x; W) + b.
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, samples, theta) = (p.be, p.rows, p.theta);
        let x = buf(p.x)?;
        let (col, mut y) = (got(p.scratch, "scratch")?, got(p.y_out, "output")?);
        self.conv(be, samples, x, Ten(theta, self.w_off), 0.0, (col, &mut y))?;
        let rows = samples * self.out_pixels();
        be.bias_act(None, rows, self.cout, Ten(theta, self.b_off), y)
    }

    /// ∂L/∂W += gyᵀ col(x), ∂L/∂b += Σ gy (when `grad` is given); gx = col2im(gy W) (when given).
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, samples, theta) = (p.be, p.rows, p.theta);
        let (x, gy) = (buf(p.x)?, got(p.gy, "∂L/∂y")?);
        let col = got(p.scratch, "scratch")?;
        let rows = samples * self.out_pixels();
        if let Some(mut g) = p.grad {
            self.gt_col(be, samples, gy, x, col, &mut g)?;
            be.col_sum(rows, self.cout, 1.0, gy, 1.0, TenMut(g.0, g.1 + self.b_off))?;
        }
        if let Some(gx) = p.gx {
            be.gemm(
                Mat::new(gy.0, gy.1, rows, self.cout),
                Mat::new(theta, self.w_off, self.cout, self.k()),
                MatMut::new(col, 0, rows, self.k()),
                1.0,
                0.0,
            )?;
            be.col2im(self.images(samples), self.geom, Ten(col, 0), 0.0, gx)?;
        }
        Ok(())
    }

    /// R{y} = conv(x; V) + conv(R{x}; W) + v_b (R{x} absent on the first layer).
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, samples, theta) = (p.be, p.rows, p.theta);
        let (x, v) = (buf(p.x)?, got(p.v, "direction")?);
        let (col, mut ry) = (got(p.scratch, "scratch")?, got(p.ry, "R{y}")?);
        let vw = Ten(v.0, v.1 + self.w_off);
        self.conv(be, samples, x, vw, 0.0, (&mut *col, &mut ry))?;
        if let Some(rx) = p.rx {
            self.conv(be, samples, rx, Ten(theta, self.w_off), 1.0, (col, &mut ry))?;
        }
        let rows = samples * self.out_pixels();
        be.bias_act(None, rows, self.cout, Ten(v.0, v.1 + self.b_off), ry)
    }

    /// R{∂L/∂W} += R{gy}ᵀ col(x) + gyᵀ col(R{x}), R{∂L/∂b} += Σ R{gy} (into `hv`);
    /// R{gx} = col2im(R{gy} W + gy V) (when given).
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, samples, theta) = (p.be, p.rows, p.theta);
        let (x, v) = (buf(p.x)?, got(p.v, "direction")?);
        let (gy, rgy) = (got(p.gy, "∂L/∂y")?, got(p.rgy, "R{∂L/∂y}")?);
        let (col, mut hv) = (got(p.scratch, "scratch")?, got(p.hv, "H·v")?);
        let rows = samples * self.out_pixels();
        self.gt_col(be, samples, rgy, x, col, &mut hv)?;
        if let Some(rx) = p.rx {
            self.gt_col(be, samples, gy, rx, col, &mut hv)?;
        }
        be.col_sum(
            rows,
            self.cout,
            1.0,
            rgy,
            1.0,
            TenMut(hv.0, hv.1 + self.b_off),
        )?;
        if let Some(rgx) = p.rgx {
            let (k, c) = (self.k(), self.cout);
            be.gemm(
                Mat::new(rgy.0, rgy.1, rows, c),
                Mat::new(theta, self.w_off, c, k),
                MatMut::new(col, 0, rows, k),
                1.0,
                0.0,
            )?;
            be.gemm(
                Mat::new(gy.0, gy.1, rows, c),
                Mat::new(v.0, v.1 + self.w_off, c, k),
                MatMut::new(col, 0, rows, k),
                1.0,
                1.0,
            )?;
            be.col2im(self.images(samples), self.geom, Ten(col, 0), 0.0, rgx)?;
        }
        Ok(())
    }
}
