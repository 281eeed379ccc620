//! The [`Nn`] family on the GPU: each primitive handed to its kernel in `nn` (Adam's in `blas`).

use super::{GpuBackend, GpuBuf, blas, nn};
use crate::backend::{Activation, AdamStep, ConvGeom, Dual, LossBlock, Nhwc, Nn, Ten, TenMut};
use crate::error::Result;

impl Nn for GpuBackend {
    fn bias_act(
        &self,
        act: Option<Activation>,
        rows: usize,
        cols: usize,
        bias: Ten<'_, Self>,
        x: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::bias_act(self, act, rows, cols, bias, x)
    }

    fn act_d1_mul(
        &self,
        act: Activation,
        len: usize,
        a: Ten<'_, Self>,
        g: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::act_d1_mul(self, act, len, a, g, out)
    }

    fn act_d2_r(
        &self,
        act: Activation,
        len: usize,
        a: Ten<'_, Self>,
        g: Dual<'_, Self>,
        rz: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::act_d2_r(self, act, len, a, g, rz, out)
    }

    fn act(&self, act: Activation, len: usize, x: &mut GpuBuf, off: usize) -> Result<()> {
        nn::act(self, act, len, x, off)
    }

    /// Any geometry: 3×3/1/1 on its specialised entry point, the others on the general one.
    fn im2col(&self, g: Nhwc, k: ConvGeom, x: Ten<'_, Self>, col: TenMut<'_, Self>) -> Result<()> {
        nn::im2col(self, g, k, x, col)
    }

    /// Any geometry, as [`Nn::im2col`] here.
    fn col2im(
        &self,
        g: Nhwc,
        k: ConvGeom,
        col: Ten<'_, Self>,
        beta: f64,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::col2im(self, g, k, col, beta, dx)
    }

    fn maxpool2(
        &self,
        g: Nhwc,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        idx: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::maxpool2(self, g, x, out, idx)
    }

    fn pool2_gather(
        &self,
        g: Nhwc,
        idx: Ten<'_, Self>,
        src: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::pool2_gather(self, g, idx, src, out)
    }

    fn pool2_scatter(
        &self,
        g: Nhwc,
        idx: Ten<'_, Self>,
        gy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::pool2_scatter(self, g, idx, gy, dx)
    }

    fn transpose_batch(
        &self,
        batch: usize,
        rows: usize,
        cols: usize,
        src: Ten<'_, Self>,
        dst: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::transpose_batch(self, batch, rows, cols, src, dst)
    }

    fn col_sum(
        &self,
        rows: usize,
        cols: usize,
        alpha: f64,
        src: Ten<'_, Self>,
        beta: f64,
        dst: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::col_sum(self, rows, cols, alpha, src, beta, dst)
    }

    fn loss_grad(
        &self,
        blk: LossBlock,
        out: Ten<'_, Self>,
        target: Ten<'_, Self>,
        grad: TenMut<'_, Self>,
        stats: &mut GpuBuf,
    ) -> Result<()> {
        nn::loss_grad(self, blk, out, target, grad, stats)
    }

    fn loss_hess_mul(
        &self,
        blk: LossBlock,
        out: Ten<'_, Self>,
        rout: Ten<'_, Self>,
        rgrad: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::loss_hess_mul(self, blk, out, rout, rgrad)
    }

    fn adam(
        &self,
        g: &GpuBuf,
        m: &mut GpuBuf,
        v: &mut GpuBuf,
        d: &mut GpuBuf,
        len: usize,
        h: AdamStep,
    ) -> Result<()> {
        blas::adam(self, g, m, v, d, len, h)
    }
}
