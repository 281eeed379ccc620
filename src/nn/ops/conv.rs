//! 3×3 convolution, stride 1, zero padding 1, with bias: PyTorch's `nn.Conv2d(cin, cout, 3,
//! padding=1)`. W is `[cout, cin, 3, 3]` at `w_off` in θ, b `[cout]` at `b_off`. Activations are
//! NHWC (`[samples, h, w, c]`), so with col = im2col(x) (`[samples·h·w, 9·cin]`, column
//! ci·9 + ky·3 + kx) the layer is the GEMM y = col Wᵀ + b, and every pass is the matching pass of a
//! linear layer on col; the input's gradient goes back through im2col's adjoint (col2im).
//!
//! Every pass takes a scratch buffer `col` of at least samples·h·w·9·cin elements.

use super::{Ten, TenMut};
use crate::backend::{Backend, Nhwc};
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

    /// y (+)= col(x) · Mᵀ for M `[cout, 9·cin]` at `m_off`.
    #[allow(clippy::too_many_arguments)]
    fn conv<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        x: Ten<B>,
        m: &B::Buf,
        m_off: usize,
        beta: f64,
        col: &mut B::Buf,
        y: &mut TenMut<B>,
    ) -> Result<()> {
        be.im2col3x3(self.geom(samples), x.0, x.1, col, 0)?;
        let rows = samples * self.h * self.w;
        be.gemm(
            false,
            true,
            rows,
            self.cout,
            self.k(),
            1.0,
            col,
            0,
            m,
            m_off,
            beta,
            y.0,
            y.1,
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
        be.im2col3x3(self.geom(samples), x.0, x.1, col, 0)?;
        let rows = samples * self.h * self.w;
        be.gemm(
            true,
            false,
            self.cout,
            self.k(),
            rows,
            1.0,
            g.0,
            g.1,
            col,
            0,
            1.0,
            out.0,
            out.1 + self.w_off,
        )
    }

    /// y = conv(x; W) + b.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        x: Ten<B>,
        theta: &B::Buf,
        col: &mut B::Buf,
        mut y: TenMut<B>,
    ) -> Result<()> {
        self.conv(be, samples, x, theta, self.w_off, 0.0, col, &mut y)?;
        let rows = samples * self.h * self.w;
        be.bias_act(None, rows, self.cout, theta, self.b_off, y.0, y.1)
    }

    /// ∂L/∂W += gyᵀ col(x), ∂L/∂b += Σ gy (when `grad` is given); gx = col2im(gy W) (when given).
    #[allow(clippy::too_many_arguments)]
    pub fn vjp<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        x: Ten<B>,
        theta: &B::Buf,
        gy: Ten<B>,
        col: &mut B::Buf,
        grad: Option<TenMut<B>>,
        gx: Option<TenMut<B>>,
    ) -> Result<()> {
        let rows = samples * self.h * self.w;
        if let Some(mut g) = grad {
            self.gt_col(be, samples, gy, x, col, &mut g)?;
            be.col_sum(rows, self.cout, 1.0, gy.0, gy.1, 1.0, g.0, g.1 + self.b_off)?;
        }
        if let Some(gx) = gx {
            be.gemm(
                false,
                false,
                rows,
                self.k(),
                self.cout,
                1.0,
                gy.0,
                gy.1,
                theta,
                self.w_off,
                0.0,
                col,
                0,
            )?;
            be.col2im3x3(self.geom(samples), col, 0, 0.0, gx.0, gx.1)?;
        }
        Ok(())
    }

    /// R{y} = conv(x; V) + conv(R{x}; W) + v_b (R{x} absent on the first layer).
    #[allow(clippy::too_many_arguments)]
    pub fn jvp<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        x: Ten<B>,
        rx: Option<Ten<B>>,
        theta: &B::Buf,
        v: Ten<B>,
        col: &mut B::Buf,
        mut ry: TenMut<B>,
    ) -> Result<()> {
        self.conv(be, samples, x, v.0, v.1 + self.w_off, 0.0, col, &mut ry)?;
        if let Some(rx) = rx {
            self.conv(be, samples, rx, theta, self.w_off, 1.0, col, &mut ry)?;
        }
        let rows = samples * self.h * self.w;
        be.bias_act(None, rows, self.cout, v.0, v.1 + self.b_off, ry.0, ry.1)
    }

    /// R{∂L/∂W} += R{gy}ᵀ col(x) + gyᵀ col(R{x}), R{∂L/∂b} += Σ R{gy} (into `hv`);
    /// R{gx} = col2im(R{gy} W + gy V) (when given).
    #[allow(clippy::too_many_arguments)]
    pub fn r_vjp<B: Backend>(
        &self,
        be: &B,
        samples: usize,
        x: Ten<B>,
        rx: Option<Ten<B>>,
        theta: &B::Buf,
        v: Ten<B>,
        gy: Ten<B>,
        rgy: Ten<B>,
        col: &mut B::Buf,
        mut hv: TenMut<B>,
        rgx: Option<TenMut<B>>,
    ) -> Result<()> {
        let rows = samples * self.h * self.w;
        self.gt_col(be, samples, rgy, x, col, &mut hv)?;
        if let Some(rx) = rx {
            self.gt_col(be, samples, gy, rx, col, &mut hv)?;
        }
        be.col_sum(
            rows,
            self.cout,
            1.0,
            rgy.0,
            rgy.1,
            1.0,
            hv.0,
            hv.1 + self.b_off,
        )?;
        if let Some(rgx) = rgx {
            let (k, c) = (self.k(), self.cout);
            be.gemm(
                false, false, rows, k, c, 1.0, rgy.0, rgy.1, theta, self.w_off, 0.0, col, 0,
            )?;
            be.gemm(
                false,
                false,
                rows,
                k,
                c,
                1.0,
                gy.0,
                gy.1,
                v.0,
                v.1 + self.w_off,
                1.0,
                col,
                0,
            )?;
            be.col2im3x3(self.geom(samples), col, 0, 0.0, rgx.0, rgx.1)?;
        }
        Ok(())
    }
}
