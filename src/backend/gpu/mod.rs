//! The wgpu backend: every primitive of [`Backend`] as a WGSL compute kernel (`shaders/*.wgsl`),
//! f32 throughout, portable to browser WebGPU (≤ 256 invocations per workgroup, no f64, no atomics
//! or subgroups, storage bindings within the default 128 MiB, 8 storage buffers per bind group:
//! WebGPU's default per-stage limit).
//!
//! Work is *recorded*, not run: each call appends a dispatch to one command encoder and its
//! parameters to a staging block; nothing is submitted until a value is read back (a dot product,
//! a download) or the parameter ring fills. A whole HVP — forward caches are reused; R-forward and
//! R-backward over all chunks — is therefore one submit, and Lanczos reads back only scalars per
//! step. Pipelines are created once; each WGSL module has its own bind-group layout with named
//! bindings and its own parameter block (`kernels::layouts`), and bind groups are cached by module
//! and the identity of their buffers and reused across steps.
//!
//! Waiting on the GPU (a read-back, an error scope) blocks natively (pollster). In a browser a
//! wasm stack cannot block: there the wait suspends it with JSPI (WebAssembly JS Promise
//! Integration) until the GPU's promise settles, which only works inside a JSPI context — the
//! compute worker of the web app enters one (`src/app/web.rs`). Elsewhere a wait fails with an
//! error that says so.
//!
//! Here: [`GpuBackend`] and its buffers, and its [`Buffers`] impl; `impl_blas`, `impl_nn` and
//! `impl_seq` implement the other families by handing each primitive to its kernels — `blas`
//! (products, vector ops), `nn` (layers, losses), `seq` (sequence ops); `device`
//! opens the adapter and builds the pipelines of `kernels` (the table of WGSL entry points);
//! `recorder` records dispatches, submits, and reads back.

mod blas;
mod device;
mod impl_blas;
mod impl_nn;
mod impl_seq;
mod kernels;
mod nn;
mod recorder;
mod seq;

use super::{Buffers, Precision, Transfers, check_range};
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

/// The error text of [`GpuBackend::new_web`] when the browser's adapter is a software one and
/// [`GpuOptions::allow_software`] is off (the page then computes on the CPU in wasm: a normal
/// fallback, which the app says as an info line, not an error).
pub const SOFTWARE_ADAPTER_REFUSED: &str =
    "the browser's WebGPU adapter is a software fallback, slower than computing on the CPU in wasm";

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

impl Buffers for GpuBackend {
    type Buf = GpuBuf;

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

    fn transfers(&self) -> Option<Transfers> {
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

    fn sync(&self) -> Result<()> {
        recorder::sync(self)
    }
}
