//! 3×3 convolution, stride 1, zero padding 1, with bias: PyTorch's `nn.Conv2d(cin, cout, 3,
//! padding=1)`. W is `[cout, cin, 3, 3]` at `w_off` in θ, b `[cout]` at `b_off`. Activations are
//! NHWC (`[samples, h, w, c]`), so with col = im2col(x) (`[samples·h·w, 9·cin]`, column
//! ci·9 + ky·3 + kx) the layer is the GEMM y = col Wᵀ + b, and every pass is the matching pass of a
//! linear layer on col; the input's gradient goes back through im2col's adjoint (col2im).
//!
//! Every pass takes a scratch buffer `col` ([`Pass::scratch`](super::Pass::scratch)) of at least
//! samples·h·w·9·cin elements.

use super::{DataForm, Layer, OpRule, Pass, Shape, Ten, TenMut, buf, got};
use crate::backend::{Backend, Mat, MatMut, Nhwc};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3x3 {
    pub cin: usize,
    pub cout: usize,
    /// Height and width of the input (and of the output).
    pub h: usize,
    pub w: usize,
    pub w_off: usize,
    pub b_off: usize,
}

impl Conv3x3 {
    /// Parameters of the layer.
    pub fn num_params(&self) -> usize {
        self.cout * self.cin * 9 + self.cout
    }
    /// Elements of one sample's input and output.
    pub fn in_width(&self) -> usize {
        self.h * self.w * self.cin
    }
    pub fn out_width(&self) -> usize {
        self.h * self.w * self.cout
    }
    /// Scratch elements per sample.
    pub fn col_width(&self) -> usize {
        self.h * self.w * 9 * self.cin
    }
    fn geom(&self, samples: usize) -> Nhwc {
        Nhwc {
            n: samples,
            h: self.h,
            w: self.w,
            c: self.cin,
        }
    }
    fn k(&self) -> usize {
        9 * self.cin
    }

    /// y (+)= col(x) · Mᵀ for M `[cout, 9·cin]`: im2col into `col`, then the GEMM.
    fn conv<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        x: Ten<B>,
        m: Ten<B>,
        beta: f64,
        (col, y): (&mut B::Buf, &mut TenMut<B>),
    ) -> Result<()> {
        be.im2col3x3(self.geom(samples), x, TenMut(col, 0))?;
        let rows = samples * self.h * self.w;
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
        be.im2col3x3(self.geom(samples), x, TenMut(col, 0))?;
        let rows = samples * self.h * self.w;
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
        let rows = samples * self.h * self.w;
        be.bias_act(None, rows, self.cout, Ten(theta, self.b_off), y)
    }

    /// ∂L/∂W += gyᵀ col(x), ∂L/∂b += Σ gy (when `grad` is given); gx = col2im(gy W) (when given).
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, samples, theta) = (p.be, p.rows, p.theta);
        let (x, gy) = (buf(p.x)?, got(p.gy, "∂L/∂y")?);
        let col = got(p.scratch, "scratch")?;
        let rows = samples * self.h * self.w;
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
            be.col2im3x3(self.geom(samples), Ten(col, 0), 0.0, gx)?;
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
        let rows = samples * self.h * self.w;
        be.bias_act(None, rows, self.cout, Ten(v.0, v.1 + self.b_off), ry)
    }

    /// R{∂L/∂W} += R{gy}ᵀ col(x) + gyᵀ col(R{x}), R{∂L/∂b} += Σ R{gy} (into `hv`);
    /// R{gx} = col2im(R{gy} W + gy V) (when given).
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (be, samples, theta) = (p.be, p.rows, p.theta);
        let (x, v) = (buf(p.x)?, got(p.v, "direction")?);
        let (gy, rgy) = (got(p.gy, "∂L/∂y")?, got(p.rgy, "R{∂L/∂y}")?);
        let (col, mut hv) = (got(p.scratch, "scratch")?, got(p.hv, "H·v")?);
        let rows = samples * self.h * self.w;
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
            be.col2im3x3(self.geom(samples), Ten(col, 0), 0.0, rgx)?;
        }
        Ok(())
    }
}
