//! The wgpu backend: every primitive of [`Backend`] as a WGSL compute kernel (`shaders/*.wgsl`),
//! f32 throughout, portable to browser WebGPU (≤ 256 invocations per workgroup, no f64, no atomics
//! or subgroups, storage bindings within the default 128 MiB, 8 storage buffers per bind group:
//! WebGPU's default per-stage limit).
//!
//! Work is *recorded*, not run: each call appends a dispatch to one command encoder and its
//! parameters to a staging block; nothing is submitted until a value is read back (a dot product,
//! a download) or the parameter ring fills. A whole HVP — forward caches are reused; R-forward and
//! R-backward over all chunks — is therefore one submit, and Lanczos reads back only scalars per
//! step. Pipelines are created once; one bind-group layout serves every kernel, so bind groups are
//! cached by the identity of their buffers and reused across steps.
//!
//! Waiting on the GPU (a read-back, an error scope) blocks natively (pollster). In a browser a
//! wasm stack cannot block: there the wait suspends it with JSPI (WebAssembly JS Promise
//! Integration) until the GPU's promise settles, which only works inside a JSPI context — the
//! compute worker of the web app enters one (`src/app/web.rs`). Elsewhere a wait fails with an
//! error that says so.
//!
//! Here: [`GpuBackend`] and its buffers, and the [`Backend`] impl that hands each primitive to its
//! family — `blas` (products, vector ops), `nn` (layers, losses), `seq` (sequence ops); `device`
//! opens the adapter and builds the pipelines of `kernels` (the table of WGSL entry points);
//! `recorder` records dispatches, submits, and reads back.

mod blas;
mod device;
mod kernels;
mod nn;
mod recorder;
mod seq;

use super::{
    Activation, Attn, Backend, Dual, InputRows, Ln, LossBlock, Mat, MatMut, Nhwc, Precision, Seq,
    Ten, TenMut, ThetaV, check_range,
};
use crate::error::{Error, Result};
use recorder::Inner;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A device buffer of f32.
pub struct GpuBuf {
    buf: wgpu::Buffer,
    len: usize,
    id: u64,
}

/// The network's input on the GPU: a dense buffer (rows×cols, row-major).
#[derive(Debug)]
pub struct GpuInput {
    buf: GpuBuf,
    cols: usize,
}

impl std::fmt::Debug for GpuBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuf({} × f32)", self.len)
    }
}

/// What [`GpuBackend::new`] may pick.
#[derive(Clone, Copy, Debug)]
pub struct GpuOptions {
    /// Accept a software adapter (lavapipe/llvmpipe, WARP, SwiftShader).
    pub allow_software: bool,
}

/// The wgpu backend (cheap to clone: the device is shared).
#[derive(Clone)]
pub struct GpuBackend {
    inner: Arc<Inner>,
}

fn gpu_err(msg: impl Into<String>) -> Error {
    Error::Backend(msg.into())
}

fn u(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| {
        gpu_err(format!(
            "{what} = {x} exceeds the GPU backend's 32-bit indexing"
        ))
    })
}

impl Backend for GpuBackend {
    type Buf = GpuBuf;
    type Input = GpuInput;

    fn name(&self) -> String {
        "gpu-f32".into()
    }
    fn precision(&self) -> Precision {
        Precision::F32
    }
    fn adapter(&self) -> Option<String> {
        Some(self.adapter_description())
    }
    /// The whole data set: the full-data activations are already this size, and a GPU runs a
    /// few large dispatches faster than many small ones (BENCHMARKS.md, H200: chunk 1000 against
    /// 5000).
    fn default_chunk(&self) -> usize {
        usize::MAX
    }
    fn preferred_block(&self) -> usize {
        usize::MAX
    }
    fn max_buffer_len(&self) -> usize {
        (self.inner.max_binding / 4) as usize
    }
    fn input(&self, x: &[f64], rows: usize, cols: usize) -> Result<GpuInput> {
        blas::input(self, x, rows, cols)
    }

    fn input_gemm_nt(
        &self,
        x: InputRows<Self>,
        b: Mat<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        blas::input_gemm_nt(self, x, b, out, alpha, beta)
    }

    fn input_gemm_nt_batched(
        &self,
        x: InputRows<Self>,
        b: Mat<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
        batch: super::Batch,
    ) -> Result<()> {
        blas::input_gemm_nt_batched(self, x, b, out, alpha, beta, batch)
    }

    fn input_gemm_tn_batched(
        &self,
        g: Mat<Self>,
        x: InputRows<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
        batch: super::Batch,
    ) -> Result<()> {
        blas::input_gemm_tn_batched(self, g, x, out, alpha, beta, batch)
    }

    fn input_gemm_tn(
        &self,
        g: Mat<Self>,
        x: InputRows<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        blas::input_gemm_tn(self, g, x, out, alpha, beta)
    }

    fn zeros(&self, len: usize) -> Result<GpuBuf> {
        // New buffers are zero-initialised by wgpu.
        self.make_buffer(len, None)
    }
    fn upload(&self, data: &[f64]) -> Result<GpuBuf> {
        let f: Vec<f32> = data.iter().map(|&x| x as f32).collect();
        let b = self.make_buffer(data.len(), Some(&f))?;
        let mut st = self.state()?;
        st.uploads += 1;
        st.bytes_uploaded += 4 * data.len() as u64;
        Ok(b)
    }
    fn write(&self, buf: &mut GpuBuf, off: usize, data: &[f64]) -> Result<()> {
        recorder::write(self, buf, off, data)
    }
    fn input_write(&self, x: &mut GpuInput, data: &[f64], rows: usize, cols: usize) -> Result<()> {
        recorder::input_write(self, x, data, rows, cols)
    }
    fn transfers(&self) -> Option<super::Transfers> {
        recorder::transfers(self)
    }
    fn download(&self, buf: &GpuBuf) -> Result<Vec<f64>> {
        Ok(self
            .read(buf, 0, buf.len)?
            .into_iter()
            .map(f64::from)
            .collect())
    }
    fn download_range(&self, buf: &GpuBuf, off: usize, len: usize) -> Result<Vec<f64>> {
        check_range("download", buf.len, off, len)?;
        Ok(self
            .read(buf, off, len)?
            .into_iter()
            .map(f64::from)
            .collect())
    }
    fn len(&self, buf: &GpuBuf) -> usize {
        buf.len
    }

    fn copy(
        &self,
        src: &GpuBuf,
        s_off: usize,
        dst: &mut GpuBuf,
        d_off: usize,
        len: usize,
    ) -> Result<()> {
        recorder::copy(self, src, s_off, dst, d_off, len)
    }

    fn fill(&self, x: &mut GpuBuf, off: usize, len: usize, value: f64) -> Result<()> {
        recorder::fill(self, x, off, len, value)
    }

    fn gemm(
        &self,
        a: Mat<Self>,
        b: Mat<Self>,
        c: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        blas::gemm(self, a, b, c, alpha, beta)
    }

    fn gemm_batched(
        &self,
        a: Mat<Self>,
        b: Mat<Self>,
        c: MatMut<Self>,
        alpha: f64,
        beta: f64,
        batch: super::Batch,
    ) -> Result<()> {
        blas::gemm_batched(self, a, b, c, alpha, beta, batch)
    }

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

    fn im2col3x3(&self, g: Nhwc, x: Ten<'_, Self>, col: TenMut<'_, Self>) -> Result<()> {
        nn::im2col3x3(self, g, x, col)
    }

    fn col2im3x3(
        &self,
        g: Nhwc,
        col: Ten<'_, Self>,
        beta: f64,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        nn::col2im3x3(self, g, col, beta, dx)
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

    fn embed(
        &self,
        g: Seq,
        ids: Ten<'_, Self>,
        table: Ten<'_, Self>,
        pos_off: usize,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::embed(self, g, ids, table, pos_off, out)
    }

    fn embed_grad(
        &self,
        g: Seq,
        vocab: usize,
        start: &GpuBuf,
        order: &GpuBuf,
        gy: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::embed_grad(self, g, vocab, start, order, gy, out)
    }

    fn layer_norm(
        &self,
        l: Ln,
        x: Ten<'_, Self>,
        theta: &GpuBuf,
        y: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::layer_norm(self, l, x, theta, y)
    }

    fn layer_norm_vjp(
        &self,
        l: Ln,
        x: Ten<'_, Self>,
        theta: &GpuBuf,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
        prod: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::layer_norm_vjp(self, l, x, theta, dy, dx, prod)
    }

    fn layer_norm_jvp(
        &self,
        l: Ln,
        x: Dual<'_, Self>,
        theta: ThetaV<'_, Self>,
        ry: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::layer_norm_jvp(self, l, x, theta, ry)
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
        seq::layer_norm_rvjp(self, l, x, theta, dy, rdx, prod)
    }

    fn attention(
        &self,
        a: Attn,
        ids: Ten<'_, Self>,
        qkv: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        probs: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::attention(self, a, ids, qkv, out, probs)
    }

    fn attention_vjp(
        &self,
        a: Attn,
        qkv: Ten<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Ten<'_, Self>,
        dqkv: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::attention_vjp(self, a, qkv, probs, dout, dqkv)
    }

    fn attention_jvp(
        &self,
        a: Attn,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        rout: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::attention_jvp(self, a, qkv, probs, rout)
    }

    fn attention_rvjp(
        &self,
        a: Attn,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Dual<'_, Self>,
        rdqkv: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::attention_rvjp(self, a, qkv, probs, dout, rdqkv)
    }

    fn seq_mean(
        &self,
        g: Seq,
        masked: bool,
        ids: Ten<'_, Self>,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::seq_mean(self, g, masked, ids, x, out)
    }

    fn seq_mean_adjoint(
        &self,
        g: Seq,
        masked: bool,
        ids: Ten<'_, Self>,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::seq_mean_adjoint(self, g, masked, ids, dy, dx)
    }

    fn dot(&self, x: &GpuBuf, x_off: usize, y: &GpuBuf, y_off: usize, len: usize) -> Result<f64> {
        check_range("dot x", x.len, x_off, len)?;
        check_range("dot y", y.len, y_off, len)?;
        let _g = self.reduce_guard()?;
        self.reduce_into(x, x_off, Some((y, y_off)), len, 0)?;
        Ok(self.read(&self.inner.results, 0, 1)?[0] as f64)
    }

    fn dot_into(
        &self,
        x: Ten<'_, Self>,
        y: Ten<'_, Self>,
        len: usize,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        let Ten(x, x_off) = x;
        let Ten(y, y_off) = y;
        let TenMut(out, out_off) = out;
        check_range("dot x", x.len, x_off, len)?;
        check_range("dot y", y.len, y_off, len)?;
        check_range("dot out", out.len, out_off, 1)?;
        // Both passes recorded under the reduction lock (they share the partials).
        let _g = self.reduce_guard()?;
        self.reduce_to(x, x_off, Some((y, y_off)), len, out, out_off)
    }

    fn count_nonfinite_into(
        &self,
        x: &GpuBuf,
        off: usize,
        len: usize,
        out: &mut GpuBuf,
        out_off: usize,
    ) -> Result<()> {
        check_range("count x", x.len, off, len)?;
        check_range("count out", out.len, out_off, 1)?;
        let _g = self.reduce_guard()?;
        self.reduce_to(x, off, None, len, out, out_off)
    }

    fn row_norms(&self, x: &GpuBuf, off: usize, rows: usize, len: usize) -> Result<Vec<f64>> {
        blas::row_norms(self, x, off, rows, len)
    }

    fn axpy(
        &self,
        alpha: f64,
        x: &GpuBuf,
        x_off: usize,
        y: &mut GpuBuf,
        y_off: usize,
        len: usize,
    ) -> Result<()> {
        blas::axpy(self, alpha, x, x_off, y, y_off, len)
    }

    fn scale(&self, alpha: f64, x: &mut GpuBuf, off: usize, len: usize) -> Result<()> {
        blas::scale(self, alpha, x, off, len)
    }

    fn rsqrt(&self, x: &mut GpuBuf, off: usize, len: usize) -> Result<()> {
        blas::rsqrt(self, x, off, len)
    }

    fn sync(&self) -> Result<()> {
        recorder::sync(self)
    }

    fn adam(
        &self,
        g: &GpuBuf,
        m: &mut GpuBuf,
        v: &mut GpuBuf,
        d: &mut GpuBuf,
        len: usize,
        h: super::AdamStep,
    ) -> Result<()> {
        blas::adam(self, g, m, v, d, len, h)
    }

    fn all_finite(&self, x: &GpuBuf, off: usize, len: usize) -> Result<bool> {
        check_range("all_finite", x.len, off, len)?;
        let _g = self.reduce_guard()?;
        self.reduce_into(x, off, None, len, 0)?;
        Ok(self.read(&self.inner.results, 0, 1)?[0] == 0.0)
    }
}
