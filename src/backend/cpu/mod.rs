//! The CPU backend, generic over the scalar: `f64` is the oracle every other path is tested
//! against; `f32` is the fast fallback (matrixmultiply's packed, multi-threaded GEMM).
//! Reductions accumulate in `f64` in both, so an f32 dot over 199,210 terms keeps f32 round-off
//! only from its inputs.
//!
//! `mod.rs` holds the backend and its [`Backend`] impl (argument checks, then a kernel); the
//! kernels work on slices: [`real`] (the scalars), `blas` (GEMM, dot), `nn` (layers, losses,
//! Adam), `seq` and `attention` (the sequence ops), [`input`] (the network's input, sparse where
//! it pays), `par` (threads).

mod attention;
mod blas;
/// The network's input on the CPU backend (dense, or a common value plus a sparse remainder).
pub mod input;
mod nn;
mod par;
/// The scalars the CPU backend computes in.
pub mod real;
mod seq;

pub use real::{Real, tanh_f32};

use super::{
    Activation, Attn, Backend, Dual, Gemm, InputRows, Ln, LossBlock, Mat, MatMut, Nhwc, Precision,
    Seq, Ten, TenMut, ThetaV, check_input_view, check_range,
};
use crate::error::Result;
use blas::{dot_f64, gemm_slices};
use input::CpuInput;
use par::threads;
use real::rsqrt_f64;

/// CPU backend in precision `T` (`CpuBackend::<f64>::new()` is the oracle).
#[derive(Clone, Debug, Default)]
pub struct CpuBackend<T> {
    _t: std::marker::PhantomData<T>,
    /// Keep the network's input dense even where the sparse form applies (the tests' reference).
    dense_input: bool,
}

impl<T: Real> CpuBackend<T> {
    pub fn new() -> Self {
        CpuBackend {
            _t: std::marker::PhantomData,
            dense_input: false,
        }
    }
    /// A backend that multiplies by the network's input as a dense matrix always (the reference
    /// for the sparse products of [`super::input`]).
    pub fn with_dense_input() -> Self {
        CpuBackend {
            _t: std::marker::PhantomData,
            dense_input: true,
        }
    }
}

#[inline]
fn sl<'a, T>(v: &'a [T], off: usize, len: usize, what: &str) -> Result<&'a [T]> {
    check_range(what, v.len(), off, len)?;
    Ok(&v[off..off + len])
}

#[inline]
fn sl_mut<'a, T>(v: &'a mut [T], off: usize, len: usize, what: &str) -> Result<&'a mut [T]> {
    check_range(what, v.len(), off, len)?;
    Ok(&mut v[off..off + len])
}

impl<T: Real> Backend for CpuBackend<T> {
    type Buf = Vec<T>;
    type Input = CpuInput<T>;

    fn name(&self) -> String {
        format!("cpu-{}", T::PRECISION.name())
    }
    fn precision(&self) -> Precision {
        T::PRECISION
    }
    fn zeros(&self, len: usize) -> Result<Vec<T>> {
        Ok(vec![T::zero(); len])
    }
    fn upload(&self, data: &[f64]) -> Result<Vec<T>> {
        Ok(data.iter().map(|&x| T::of(x)).collect())
    }
    fn write(&self, buf: &mut Vec<T>, off: usize, data: &[f64]) -> Result<()> {
        for (d, &x) in sl_mut(buf, off, data.len(), "write")?.iter_mut().zip(data) {
            *d = T::of(x);
        }
        Ok(())
    }
    fn download(&self, buf: &Vec<T>) -> Result<Vec<f64>> {
        Ok(buf.iter().map(|x| x.wide()).collect())
    }
    fn download_range(&self, buf: &Vec<T>, off: usize, len: usize) -> Result<Vec<f64>> {
        Ok(sl(buf, off, len, "download")?
            .iter()
            .map(|x| x.wide())
            .collect())
    }
    fn len(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }

    fn copy(
        &self,
        src: &Vec<T>,
        s_off: usize,
        dst: &mut Vec<T>,
        d_off: usize,
        len: usize,
    ) -> Result<()> {
        let s = sl(src, s_off, len, "copy src")?;
        sl_mut(dst, d_off, len, "copy dst")?.copy_from_slice(s);
        Ok(())
    }

    fn input(&self, x: &[f64], rows: usize, cols: usize) -> Result<CpuInput<T>> {
        CpuInput::new(x, rows, cols, !self.dense_input)
    }

    fn input_gemm_nt(
        &self,
        x: InputRows<Self>,
        b: Mat<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        let (c, n, d) = (out.rows, out.cols, x.x.cols());
        check_input_view(b.rows == n, "B", &b)?;
        let bs = sl(b.buf, b.off, n * d, "input product B")?;
        let os = sl_mut(out.buf, out.off, c * n, "input product C")?;
        let g = Gemm::input_nt(c, n, d, alpha, beta);
        x.x.gemm_nt(x.r0, g, bs, os, threads(), |xs, b, out| {
            gemm_slices(g, xs, b, out)
        })
    }

    fn input_gemm_tn(
        &self,
        g: Mat<Self>,
        x: InputRows<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        let (c, n, d) = (g.rows, g.cols, x.x.cols());
        check_input_view(out.rows == n, "G", &g)?;
        let gs = sl(g.buf, g.off, c * n, "input product G")?;
        let os = sl_mut(out.buf, out.off, n * d, "input product C")?;
        let gm = Gemm::input_tn(c, n, d, alpha, beta);
        x.x.gemm_tn(gs, x.r0, gm, os, threads(), |g, xs, out| {
            gemm_slices(gm, g, xs, out)
        })
    }

    fn fill(&self, x: &mut Vec<T>, off: usize, len: usize, value: f64) -> Result<()> {
        sl_mut(x, off, len, "fill")?.fill(T::of(value));
        Ok(())
    }

    fn gemm(
        &self,
        a: Mat<Self>,
        b: Mat<Self>,
        c: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        let g = Gemm::of(a, b, &c, alpha, beta)?;
        let (m, n, k) = (g.m, g.n, g.k);
        let a = sl(a.buf, a.off, m * k, "gemm A")?;
        let b = sl(b.buf, b.off, k * n, "gemm B")?;
        let c = sl_mut(c.buf, c.off, m * n, "gemm C")?;
        gemm_slices(g, a, b, c);
        Ok(())
    }

    fn bias_act(
        &self,
        act: Option<Activation>,
        rows: usize,
        cols: usize,
        bias: Ten<'_, Self>,
        x: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::bias_act(act, rows, cols, bias, x)
    }

    fn act_d1_mul(
        &self,
        act: Activation,
        len: usize,
        a: Ten<'_, Self>,
        g: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::act_d1_mul(act, len, a, g, out)
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
        nn::act_d2_r(act, len, a, g, rz, out)
    }

    fn act(&self, act: Activation, len: usize, x: &mut Vec<T>, off: usize) -> Result<()> {
        nn::act(act, len, x, off)
    }

    fn im2col3x3(&self, g: Nhwc, x: Ten<'_, Self>, col: TenMut<'_, Self>) -> Result<()> {
        nn::im2col3x3(g, x, col)
    }

    fn col2im3x3(
        &self,
        g: Nhwc,
        col: Ten<'_, Self>,
        beta: f64,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::col2im3x3(g, col, beta, dx)
    }

    fn maxpool2(
        &self,
        g: Nhwc,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        idx: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::maxpool2(g, x, out, idx)
    }

    fn pool2_gather(
        &self,
        g: Nhwc,
        idx: Ten<'_, Self>,
        src: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::pool2_gather(g, idx, src, out)
    }

    fn pool2_scatter(
        &self,
        g: Nhwc,
        idx: Ten<'_, Self>,
        gy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::pool2_scatter(g, idx, gy, dx)
    }

    fn transpose_batch(
        &self,
        batch: usize,
        rows: usize,
        cols: usize,
        src: Ten<'_, Self>,
        dst: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::transpose_batch(batch, rows, cols, src, dst)
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
        nn::col_sum(rows, cols, alpha, src, beta, dst)
    }

    fn loss_grad(
        &self,
        blk: LossBlock,
        out: Ten<'_, Self>,
        target: Ten<'_, Self>,
        grad: TenMut<'_, Self>,
        stats: &mut Vec<T>,
    ) -> Result<()> {
        nn::loss_grad(blk, out, target, grad, stats)
    }

    fn loss_hess_mul(
        &self,
        blk: LossBlock,
        out: Ten<'_, Self>,
        rout: Ten<'_, Self>,
        rgrad: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::loss_hess_mul(blk, out, rout, rgrad)
    }

    fn embed(
        &self,
        g: Seq,
        ids: Ten<'_, Self>,
        table: Ten<'_, Self>,
        pos_off: usize,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::embed(g, ids, table, pos_off, out)
    }

    fn embed_grad(
        &self,
        g: Seq,
        vocab: usize,
        start: &Vec<T>,
        order: &Vec<T>,
        gy: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::embed_grad(g, vocab, start, order, gy, out)
    }

    fn layer_norm(
        &self,
        l: Ln,
        x: Ten<'_, Self>,
        theta: &Vec<T>,
        y: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::layer_norm(l, x, theta, y)
    }

    fn layer_norm_vjp(
        &self,
        l: Ln,
        x: Ten<'_, Self>,
        theta: &Vec<T>,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
        prod: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::layer_norm_vjp(l, x, theta, dy, dx, prod)
    }

    fn layer_norm_jvp(
        &self,
        l: Ln,
        x: Dual<'_, Self>,
        theta: ThetaV<'_, Self>,
        ry: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::layer_norm_jvp(l, x, theta, ry)
    }

    fn layer_norm_rvjp(
        &self,
        l: Ln,
        x: Dual<'_, Self>,
        theta: ThetaV<'_, Self>,
        dy: Dual<'_, Self>,
        rdx: TenMut<'_, Self>,
        prod: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::layer_norm_rvjp(l, x, theta, dy, rdx, prod)
    }

    fn attention(
        &self,
        a: Attn,
        ids: Ten<'_, Self>,
        qkv: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        probs: TenMut<'_, Self>,
    ) -> Result<()> {
        attention::attention(a, ids, qkv, out, probs)
    }

    fn attention_vjp(
        &self,
        a: Attn,
        qkv: Ten<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Ten<'_, Self>,
        dqkv: TenMut<'_, Self>,
    ) -> Result<()> {
        attention::attention_vjp(a, qkv, probs, dout, dqkv)
    }

    fn attention_jvp(
        &self,
        a: Attn,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        rout: TenMut<'_, Self>,
    ) -> Result<()> {
        attention::attention_jvp(a, qkv, probs, rout)
    }

    fn attention_rvjp(
        &self,
        a: Attn,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Dual<'_, Self>,
        rdqkv: TenMut<'_, Self>,
    ) -> Result<()> {
        attention::attention_rvjp(a, qkv, probs, dout, rdqkv)
    }

    fn seq_mean(
        &self,
        g: Seq,
        masked: bool,
        ids: Ten<'_, Self>,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::seq_mean(g, masked, ids, x, out)
    }

    fn seq_mean_adjoint(
        &self,
        g: Seq,
        masked: bool,
        ids: Ten<'_, Self>,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::seq_mean_adjoint(g, masked, ids, dy, dx)
    }

    fn dot(&self, x: &Vec<T>, x_off: usize, y: &Vec<T>, y_off: usize, len: usize) -> Result<f64> {
        let x = sl(x, x_off, len, "dot x")?;
        let y = sl(y, y_off, len, "dot y")?;
        // f64 accumulation: for f32 inputs the products are exact.
        Ok(dot_f64(x, y))
    }

    fn axpy(
        &self,
        alpha: f64,
        x: &Vec<T>,
        x_off: usize,
        y: &mut Vec<T>,
        y_off: usize,
        len: usize,
    ) -> Result<()> {
        let x = sl(x, x_off, len, "axpy x")?;
        let y = sl_mut(y, y_off, len, "axpy y")?;
        let a = T::of(alpha);
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = *yi + a * xi;
        }
        Ok(())
    }

    fn scale(&self, alpha: f64, x: &mut Vec<T>, off: usize, len: usize) -> Result<()> {
        let a = T::of(alpha);
        for xi in sl_mut(x, off, len, "scale")? {
            *xi = *xi * a;
        }
        Ok(())
    }

    fn rsqrt(&self, x: &mut Vec<T>, off: usize, len: usize) -> Result<()> {
        let tiny = T::min_positive_value().wide();
        for xi in sl_mut(x, off, len, "rsqrt")? {
            let v = xi.wide();
            // A subnormal counts as 0, as on a GPU that flushes it (1/√ of it would overflow).
            *xi = T::of(if v.abs() < tiny { 0.0 } else { rsqrt_f64(v) });
        }
        Ok(())
    }

    fn adam(
        &self,
        g: &Vec<T>,
        m: &mut Vec<T>,
        v: &mut Vec<T>,
        d: &mut Vec<T>,
        len: usize,
        h: super::AdamStep,
    ) -> Result<()> {
        nn::adam(g, m, v, d, len, h)
    }

    fn all_finite(&self, x: &Vec<T>, off: usize, len: usize) -> Result<bool> {
        Ok(sl(x, off, len, "all_finite")?.iter().all(|v| v.is_finite()))
    }
}
