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
    Activation, Attn, Backend, Gemm, InputRows, Ln, LossKind, Mat, MatMut, Nhwc, Precision, Seq,
    check_input_view, check_range,
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
        bias: &Vec<T>,
        b_off: usize,
        x: &mut Vec<T>,
        x_off: usize,
    ) -> Result<()> {
        nn::bias_act(act, rows, cols, bias, b_off, x, x_off)
    }

    fn act_d1_mul(
        &self,
        act: Activation,
        len: usize,
        a: &Vec<T>,
        a_off: usize,
        g: &Vec<T>,
        g_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
    ) -> Result<()> {
        nn::act_d1_mul(act, len, a, a_off, g, g_off, out, o_off)
    }

    fn act_d2_r(
        &self,
        act: Activation,
        len: usize,
        a: &Vec<T>,
        a_off: usize,
        rg: &Vec<T>,
        rg_off: usize,
        g: &Vec<T>,
        g_off: usize,
        rz: &Vec<T>,
        rz_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
    ) -> Result<()> {
        nn::act_d2_r(
            act, len, a, a_off, rg, rg_off, g, g_off, rz, rz_off, out, o_off,
        )
    }

    fn act(&self, act: Activation, len: usize, x: &mut Vec<T>, off: usize) -> Result<()> {
        nn::act(act, len, x, off)
    }

    fn im2col3x3(
        &self,
        g: Nhwc,
        x: &Vec<T>,
        x_off: usize,
        col: &mut Vec<T>,
        col_off: usize,
    ) -> Result<()> {
        nn::im2col3x3(g, x, x_off, col, col_off)
    }

    fn col2im3x3(
        &self,
        g: Nhwc,
        col: &Vec<T>,
        col_off: usize,
        beta: f64,
        dx: &mut Vec<T>,
        dx_off: usize,
    ) -> Result<()> {
        nn::col2im3x3(g, col, col_off, beta, dx, dx_off)
    }

    fn maxpool2(
        &self,
        g: Nhwc,
        x: &Vec<T>,
        x_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
        idx: &mut Vec<T>,
        i_off: usize,
    ) -> Result<()> {
        nn::maxpool2(g, x, x_off, out, o_off, idx, i_off)
    }

    fn pool2_gather(
        &self,
        g: Nhwc,
        idx: &Vec<T>,
        i_off: usize,
        src: &Vec<T>,
        s_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
    ) -> Result<()> {
        nn::pool2_gather(g, idx, i_off, src, s_off, out, o_off)
    }

    fn pool2_scatter(
        &self,
        g: Nhwc,
        idx: &Vec<T>,
        i_off: usize,
        gy: &Vec<T>,
        g_off: usize,
        dx: &mut Vec<T>,
        dx_off: usize,
    ) -> Result<()> {
        nn::pool2_scatter(g, idx, i_off, gy, g_off, dx, dx_off)
    }

    fn transpose_batch(
        &self,
        batch: usize,
        rows: usize,
        cols: usize,
        src: &Vec<T>,
        s_off: usize,
        dst: &mut Vec<T>,
        d_off: usize,
    ) -> Result<()> {
        nn::transpose_batch(batch, rows, cols, src, s_off, dst, d_off)
    }

    fn col_sum(
        &self,
        rows: usize,
        cols: usize,
        alpha: f64,
        src: &Vec<T>,
        s_off: usize,
        beta: f64,
        dst: &mut Vec<T>,
        d_off: usize,
    ) -> Result<()> {
        nn::col_sum(rows, cols, alpha, src, s_off, beta, dst, d_off)
    }

    fn loss_grad(
        &self,
        loss: LossKind,
        rows: usize,
        cols: usize,
        out: &Vec<T>,
        o_off: usize,
        target: &Vec<T>,
        t_off: usize,
        scale: f64,
        grad: &mut Vec<T>,
        g_off: usize,
        stats: &mut Vec<T>,
    ) -> Result<()> {
        nn::loss_grad(
            loss, rows, cols, out, o_off, target, t_off, scale, grad, g_off, stats,
        )
    }

    fn loss_hess_mul(
        &self,
        loss: LossKind,
        rows: usize,
        cols: usize,
        out: &Vec<T>,
        o_off: usize,
        rout: &Vec<T>,
        r_off: usize,
        scale: f64,
        rgrad: &mut Vec<T>,
        g_off: usize,
    ) -> Result<()> {
        nn::loss_hess_mul(
            loss, rows, cols, out, o_off, rout, r_off, scale, rgrad, g_off,
        )
    }

    fn embed(
        &self,
        g: Seq,
        ids: &Vec<T>,
        ids_off: usize,
        table: &Vec<T>,
        tok_off: usize,
        pos_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
    ) -> Result<()> {
        seq::embed(g, ids, ids_off, table, tok_off, pos_off, out, o_off)
    }

    fn embed_grad(
        &self,
        g: Seq,
        vocab: usize,
        start: &Vec<T>,
        order: &Vec<T>,
        gy: &Vec<T>,
        g_off: usize,
        out: &mut Vec<T>,
        tok_off: usize,
    ) -> Result<()> {
        seq::embed_grad(g, vocab, start, order, gy, g_off, out, tok_off)
    }

    fn layer_norm(
        &self,
        l: Ln,
        x: &Vec<T>,
        x_off: usize,
        theta: &Vec<T>,
        y: &mut Vec<T>,
        y_off: usize,
    ) -> Result<()> {
        seq::layer_norm(l, x, x_off, theta, y, y_off)
    }

    fn layer_norm_vjp(
        &self,
        l: Ln,
        x: &Vec<T>,
        x_off: usize,
        theta: &Vec<T>,
        dy: &Vec<T>,
        dy_off: usize,
        dx: &mut Vec<T>,
        dx_off: usize,
        prod: &mut Vec<T>,
        p_off: usize,
    ) -> Result<()> {
        seq::layer_norm_vjp(l, x, x_off, theta, dy, dy_off, dx, dx_off, prod, p_off)
    }

    fn layer_norm_jvp(
        &self,
        l: Ln,
        x: &Vec<T>,
        x_off: usize,
        rx: &Vec<T>,
        rx_off: usize,
        theta: &Vec<T>,
        v: &Vec<T>,
        v_off: usize,
        ry: &mut Vec<T>,
        ry_off: usize,
    ) -> Result<()> {
        seq::layer_norm_jvp(l, x, x_off, rx, rx_off, theta, v, v_off, ry, ry_off)
    }

    fn layer_norm_rvjp(
        &self,
        l: Ln,
        x: &Vec<T>,
        x_off: usize,
        rx: &Vec<T>,
        rx_off: usize,
        theta: &Vec<T>,
        v: &Vec<T>,
        v_off: usize,
        dy: &Vec<T>,
        dy_off: usize,
        rdy: &Vec<T>,
        rdy_off: usize,
        rdx: &mut Vec<T>,
        rdx_off: usize,
        prod: &mut Vec<T>,
        p_off: usize,
    ) -> Result<()> {
        seq::layer_norm_rvjp(
            l, x, x_off, rx, rx_off, theta, v, v_off, dy, dy_off, rdy, rdy_off, rdx, rdx_off, prod,
            p_off,
        )
    }

    fn attention(
        &self,
        a: Attn,
        ids: &Vec<T>,
        ids_off: usize,
        qkv: &Vec<T>,
        q_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
        probs: &mut Vec<T>,
        p_off: usize,
    ) -> Result<()> {
        attention::attention(a, ids, ids_off, qkv, q_off, out, o_off, probs, p_off)
    }

    fn attention_vjp(
        &self,
        a: Attn,
        qkv: &Vec<T>,
        q_off: usize,
        probs: &Vec<T>,
        p_off: usize,
        dout: &Vec<T>,
        d_off: usize,
        dqkv: &mut Vec<T>,
        dq_off: usize,
    ) -> Result<()> {
        attention::attention_vjp(a, qkv, q_off, probs, p_off, dout, d_off, dqkv, dq_off)
    }

    fn attention_jvp(
        &self,
        a: Attn,
        qkv: &Vec<T>,
        q_off: usize,
        probs: &Vec<T>,
        p_off: usize,
        rqkv: &Vec<T>,
        rq_off: usize,
        rout: &mut Vec<T>,
        ro_off: usize,
    ) -> Result<()> {
        attention::attention_jvp(a, qkv, q_off, probs, p_off, rqkv, rq_off, rout, ro_off)
    }

    fn attention_rvjp(
        &self,
        a: Attn,
        qkv: &Vec<T>,
        q_off: usize,
        probs: &Vec<T>,
        p_off: usize,
        rqkv: &Vec<T>,
        rq_off: usize,
        dout: &Vec<T>,
        d_off: usize,
        rdout: &Vec<T>,
        rd_off: usize,
        rdqkv: &mut Vec<T>,
        rdq_off: usize,
    ) -> Result<()> {
        attention::attention_rvjp(
            a, qkv, q_off, probs, p_off, rqkv, rq_off, dout, d_off, rdout, rd_off, rdqkv, rdq_off,
        )
    }

    fn seq_mean(
        &self,
        g: Seq,
        masked: bool,
        ids: &Vec<T>,
        ids_off: usize,
        x: &Vec<T>,
        x_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
    ) -> Result<()> {
        seq::seq_mean(g, masked, ids, ids_off, x, x_off, out, o_off)
    }

    fn seq_mean_adjoint(
        &self,
        g: Seq,
        masked: bool,
        ids: &Vec<T>,
        ids_off: usize,
        dy: &Vec<T>,
        dy_off: usize,
        dx: &mut Vec<T>,
        dx_off: usize,
    ) -> Result<()> {
        seq::seq_mean_adjoint(g, masked, ids, ids_off, dy, dy_off, dx, dx_off)
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
