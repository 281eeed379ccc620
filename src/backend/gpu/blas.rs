//! The GPU's matrix products (tiled GEMM, batched GEMM in one dispatch, split-K, matrix–vector)
//! and vector ops (axpy, scale, rsqrt, norms, Adam) as dispatches of `shaders/matmul.wgsl`,
//! `vector.wgsl` and `adam.wgsl`.

use super::kernels::{AdamBufs, AdamParams, Kernel, MatmulBufs, MatmulParams};
use super::recorder::RESULTS;
use super::{GpuBackend, GpuBuf, GpuInput, gpu_err, u};
use crate::backend::{
    AdamStep, Batch, Blas, Buffers, Gemm, InputRows, Mat, MatMut, check_input_view, check_range,
};
use crate::error::{Error, Result};

/// Split-K for a matmul: (slices, slice length), or None. Any K longer than GEMM_K_SLICE is
/// split (lavapipe); a product with few output tiles and a long K is split for parallelism too,
/// aiming at ≥ 256 workgroups (an H200 has 132 SMs) with slices of ≥ 512 (a multiple of 16,
/// ≤ GEMM_K_SLICE); e.g. a 20×10 Gram matrix over p = 199,210 → 390 slices of 512, Gᵀ·X of
/// 200×784 over 5,000 samples (52 tiles) → 5 slices of 1,008.
pub(super) fn split_k(tiles: usize, k: usize) -> Option<(usize, usize)> {
    pub(super) const MIN_SLICE: usize = 512;
    if tiles == 0 {
        return None;
    }
    let parallel = if tiles < 128 && k >= 2 * MIN_SLICE {
        256usize.div_ceil(tiles).min(k / MIN_SLICE)
    } else {
        1
    };
    let want = parallel.max(k.div_ceil(GEMM_K_SLICE));
    if want <= 1 {
        return None;
    }
    let len = k.div_ceil(want).next_multiple_of(16);
    let slices = k.div_ceil(len);
    (slices > 1 && slices <= 65535).then_some((slices, len))
}

/// The longest K one matmul dispatch runs: lavapipe (llvmpipe) stops a shader loop after about
/// 3,640 iterations (a 3×60,000 · 60,000×2 product of ones came back as 58,255 everywhere), and
/// the matmul's K loop advances 16 per iteration. Longer products are split (see `split_k`).
pub(super) const GEMM_K_SLICE: usize = 16384;

/// [`Backend::input`](crate::backend::Backend::input) on this backend.
pub(super) fn input(be: &GpuBackend, x: &[f64], rows: usize, cols: usize) -> Result<GpuInput> {
    if rows.checked_mul(cols) != Some(x.len()) {
        return Err(Error::Shape(format!(
            "input of {} values is not {rows}×{cols}",
            x.len()
        )));
    }
    Ok(GpuInput {
        buf: be.upload(x)?,
        cols,
    })
}

/// [`Backend::input_gemm_nt`](crate::backend::Backend::input_gemm_nt) on this backend: the GEMM
/// of X's rows and Bᵀ.
pub(super) fn input_gemm_nt(
    be: &GpuBackend,
    x: InputRows<GpuBackend>,
    b: Mat<GpuBackend>,
    out: MatMut<GpuBackend>,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    check_input_view(b.rows == out.cols, "B", &b)?;
    be.gemm(rows_of(x, out.rows), b.t(), out, alpha, beta)
}

/// [`Backend::input_gemm_nt_batched`](crate::backend::Backend::input_gemm_nt_batched): one
/// batched GEMM with X shared.
pub(super) fn input_gemm_nt_batched(
    be: &GpuBackend,
    x: InputRows<GpuBackend>,
    b: Mat<GpuBackend>,
    out: MatMut<GpuBackend>,
    alpha: f64,
    beta: f64,
    batch: Batch,
) -> Result<()> {
    check_input_view(b.rows == out.cols, "B", &b)?;
    let each = Batch { a: 0, ..batch };
    be.gemm_batched(rows_of(x, out.rows), b.t(), out, alpha, beta, each)
}

/// [`Backend::input_gemm_tn_batched`](crate::backend::Backend::input_gemm_tn_batched): one
/// batched GEMM with X shared.
pub(super) fn input_gemm_tn_batched(
    be: &GpuBackend,
    g: Mat<GpuBackend>,
    x: InputRows<GpuBackend>,
    out: MatMut<GpuBackend>,
    alpha: f64,
    beta: f64,
    batch: Batch,
) -> Result<()> {
    check_input_view(out.rows == g.cols, "G", &g)?;
    let each = Batch { b: 0, ..batch };
    be.gemm_batched(g.t(), rows_of(x, g.rows), out, alpha, beta, each)
}

/// [`Backend::input_gemm_tn`](crate::backend::Backend::input_gemm_tn) on this backend: the GEMM
/// of Gᵀ and X's rows.
pub(super) fn input_gemm_tn(
    be: &GpuBackend,
    g: Mat<GpuBackend>,
    x: InputRows<GpuBackend>,
    out: MatMut<GpuBackend>,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    check_input_view(out.rows == g.cols, "G", &g)?;
    be.gemm(g.t(), rows_of(x, g.rows), out, alpha, beta)
}

/// Rows `x.r0..x.r0 + c` of the dense input, as a matrix view.
fn rows_of(x: InputRows<'_, GpuBackend>, c: usize) -> Mat<'_, GpuBackend> {
    let d = x.x.cols;
    Mat::new(&x.x.buf, x.r0 * d, c, d)
}

/// [`Backend::gemm`](crate::backend::Backend::gemm) on this backend: a matrix–vector kernel for
/// n = 1, else the tiled matmul, split along K where it is long.
pub(super) fn gemm(
    be: &GpuBackend,
    a: Mat<GpuBackend>,
    b: Mat<GpuBackend>,
    c: MatMut<GpuBackend>,
    alpha: f64,
    beta: f64,
) -> Result<()> {
    let Gemm {
        ta, tb, m, n, k, ..
    } = Gemm::of(a, b, &c, alpha, beta)?;
    let (a, a_off, b, b_off, c, c_off) = (a.buf, a.off, b.buf, b.off, c.buf, c.off);
    check_range("gemm A", a.len, a_off, m * k)?;
    check_range("gemm B", b.len, b_off, k * n)?;
    check_range("gemm C", c.len, c_off, m * n)?;
    let p = MatmulParams {
        flags: ta as u32 | (tb as u32) << 1,
        alpha: alpha as f32,
        beta: beta as f32,
        ..matmul_params(m, n, k, a_off, b_off, c_off)?
    };
    let bufs = MatmulBufs {
        a: Some(a),
        b: Some(b),
        c: Some(c),
    };
    if n == 1 && !ta {
        let g = m.min(65535);
        let groups = [g as u32, m.div_ceil(g) as u32, 1];
        be.run(Kernel::GemvRows, &p, bufs, groups)
    } else if n == 1 {
        be.run(Kernel::GemvCols, &p, bufs, GpuBackend::groups_1d(m))
    } else {
        if m.div_ceil(64) > 65535 || n.div_ceil(64) > 65535 {
            return Err(gpu_err(format!(
                "gemm {m}×{n}: more than 65,535 tiles in a dimension"
            )));
        }
        let groups = [n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1];
        let tiles = groups[0] as usize * groups[1] as usize;
        if let Some((slices, len)) = split_k(tiles, k) {
            // Parallel split-K: a few output tiles and a long K (the Gram matrices of p-long
            // rows, Gᵀ·X over the samples): slices in parallel into a scratch, then a sum.
            let mn = m * n;
            return be.with_gemm_scratch(slices * mn, |s| {
                let q = MatmulParams {
                    flags: p.flags | 4,
                    slice: u(len, "slice")?,
                    off_c: 0,
                    ..p
                };
                let g3 = [groups[0], groups[1], slices as u32];
                be.run(Kernel::Matmul, &q, MatmulBufs { c: Some(s), ..bufs }, g3)?;
                let r = MatmulParams {
                    m: p.m,
                    n: p.n,
                    slices: u(slices, "slices")?,
                    beta: p.beta,
                    off_c: p.off_c,
                    ..Default::default()
                };
                let bufs = MatmulBufs {
                    a: Some(s),
                    b: None,
                    c: Some(&*c),
                };
                be.run(Kernel::GemmReduce, &r, bufs, GpuBackend::groups_1d(mn))
            });
        }
        be.run(Kernel::Matmul, &p, bufs, groups)
    }
}

/// The sizes and offsets of a product in its parameter block.
fn matmul_params(
    m: usize,
    n: usize,
    k: usize,
    a_off: usize,
    b_off: usize,
    c_off: usize,
) -> Result<MatmulParams> {
    Ok(MatmulParams {
        m: u(m, "m")?,
        n: u(n, "n")?,
        k: u(k, "k")?,
        off_a: u(a_off, "offset")?,
        off_b: u(b_off, "offset")?,
        off_c: u(c_off, "offset")?,
        ..Default::default()
    })
}

/// [`Backend::gemm_batched`](crate::backend::Backend::gemm_batched) on this backend: one
/// dispatch where it fits, else one GEMM after another.
pub(super) fn gemm_batched(
    be: &GpuBackend,
    a: Mat<GpuBackend>,
    b: Mat<GpuBackend>,
    c: MatMut<GpuBackend>,
    alpha: f64,
    beta: f64,
    batch: Batch,
) -> Result<()> {
    let Gemm {
        ta, tb, m, n, k, ..
    } = Gemm::of(a, b, &c, alpha, beta)?;
    crate::backend::check_batch(m, n, batch)?;
    let groups = [n.div_ceil(64), m.div_ceil(64)];
    // One dispatch holds them when the plain tiled kernel would run each (no matrix–vector
    // kernel, no split K) and the count fits a dispatch dimension.
    let one = batch.count > 1
        && n > 1
        && batch.count <= 65535
        && groups.iter().all(|&g| g <= 65535)
        && split_k(groups[0] * groups[1], k).is_none();
    if !one {
        return crate::backend::gemm_each(be, a, b, c, alpha, beta, batch);
    }
    let (a, a_off, b, b_off, c, c_off) = (a.buf, a.off, b.buf, b.off, c.buf, c.off);
    let last = batch.count - 1;
    check_range("gemm A", a.len, a_off + last * batch.a, m * k)?;
    check_range("gemm B", b.len, b_off + last * batch.b, k * n)?;
    check_range("gemm C", c.len, c_off + last * batch.c, m * n)?;
    let p = MatmulParams {
        flags: ta as u32 | (tb as u32) << 1 | 8,
        stride_a: u(batch.a, "stride")?,
        stride_b: u(batch.b, "stride")?,
        stride_c: u(batch.c, "stride")?,
        alpha: alpha as f32,
        beta: beta as f32,
        ..matmul_params(m, n, k, a_off, b_off, c_off)?
    };
    let bufs = MatmulBufs {
        a: Some(a),
        b: Some(b),
        c: Some(c),
    };
    let groups = [groups[0] as u32, groups[1] as u32, batch.count as u32];
    be.run(Kernel::Matmul, &p, bufs, groups)
}

/// [`Backend::row_norms`](crate::backend::Backend::row_norms) on this backend.
pub(super) fn row_norms(
    be: &GpuBackend,
    x: &GpuBuf,
    off: usize,
    rows: usize,
    len: usize,
) -> Result<Vec<f64>> {
    check_range("row_norms", x.len, off, rows * len)?;
    let _g = be.reduce_guard()?;
    let mut out = Vec::with_capacity(rows);
    for first in (0..rows).step_by(RESULTS) {
        let count = (rows - first).min(RESULTS);
        for r in 0..count {
            let o = off + (first + r) * len;
            be.reduce_into(x, o, Some((x, o)), len, r)?;
        }
        out.extend(
            be.read(&be.inner.results, 0, count)?
                .into_iter()
                .map(|s| (s.max(0.0) as f64).sqrt()),
        );
    }
    Ok(out)
}

/// [`Backend::axpy`](crate::backend::Backend::axpy) on this backend.
pub(super) fn axpy(
    be: &GpuBackend,
    alpha: f64,
    x: &GpuBuf,
    x_off: usize,
    y: &mut GpuBuf,
    y_off: usize,
    len: usize,
) -> Result<()> {
    check_range("axpy x", x.len, x_off, len)?;
    check_range("axpy y", y.len, y_off, len)?;
    be.vector_op(Kernel::Axpy, Some((x, x_off)), (y, y_off), len, alpha)
}

/// [`Backend::scale`](crate::backend::Backend::scale) on this backend.
pub(super) fn scale(
    be: &GpuBackend,
    alpha: f64,
    x: &mut GpuBuf,
    off: usize,
    len: usize,
) -> Result<()> {
    check_range("scale", x.len, off, len)?;
    be.vector_op(Kernel::Scale, None, (x, off), len, alpha)
}

/// [`Backend::rsqrt`](crate::backend::Backend::rsqrt) on this backend.
pub(super) fn rsqrt(be: &GpuBackend, x: &mut GpuBuf, off: usize, len: usize) -> Result<()> {
    check_range("rsqrt", x.len, off, len)?;
    be.vector_op(Kernel::Rsqrt, None, (x, off), len, 0.0)
}

/// [`Backend::adam`](crate::backend::Backend::adam) on this backend.
pub(super) fn adam(
    be: &GpuBackend,
    g: &GpuBuf,
    m: &mut GpuBuf,
    v: &mut GpuBuf,
    d: &mut GpuBuf,
    len: usize,
    h: AdamStep,
) -> Result<()> {
    for (name, b) in [("g", g), ("m", &*m), ("v", &*v), ("d", &*d)] {
        check_range(&format!("adam {name}"), b.len, 0, len)?;
    }
    let n = u(len, "length")?;
    let groups = GpuBackend::groups_1d(len);
    // Two kernels: the moments (two read-write outputs), then the update from them.
    let p = AdamParams {
        len: n,
        beta1: h.beta1 as f32,
        beta2: h.beta2 as f32,
        ..Default::default()
    };
    let bufs = AdamBufs {
        g: Some(g),
        m: Some(&*m),
        v: Some(&*v),
        d: None,
    };
    be.run(Kernel::AdamMoments, &p, bufs, groups)?;
    let p = AdamParams {
        len: n,
        lr: h.lr as f32,
        c1: h.c1 as f32,
        c2: h.c2 as f32,
        eps: h.eps as f32,
        ..Default::default()
    };
    let bufs = AdamBufs {
        g: None,
        m: Some(&*m),
        v: Some(&*v),
        d: Some(&*d),
    };
    be.run(Kernel::AdamUpdate, &p, bufs, groups)
}
