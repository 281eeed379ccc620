//! The GPU's layer kernels (bias and activation and their derivatives, im2col convolution,
//! pooling, transposes, column sums, losses) as dispatches of `shaders/elementwise.wgsl`,
//! `conv.wgsl` and `loss.wgsl`.

use super::kernels::{Kernel, Params};
use super::{GpuBackend, GpuBuf, u};
use crate::backend::{Activation, Dual, LossBlock, LossKind, Nhwc, Ten, TenMut, check_range};
use crate::error::Result;

/// [`Backend::bias_act`](crate::backend::Backend::bias_act) on this backend.
pub(super) fn bias_act(
    be: &GpuBackend,
    act: Option<Activation>,
    rows: usize,
    cols: usize,
    bias: Ten<'_, GpuBackend>,
    x: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(bias, b_off) = bias;
    let TenMut(x, x_off) = x;
    check_range("bias", bias.len, b_off, cols)?;
    check_range("bias_act x", x.len, x_off, rows * cols)?;
    let p = Params {
        n: u(cols, "cols")?,
        flags: act_flag(act),
        off_a: u(b_off, "offset")?,
        off_out: u(x_off, "offset")?,
        len: u(rows * cols, "length")?,
        ..Default::default()
    };
    be.dispatch(
        Kernel::BiasAct,
        [Some(bias), None, None, None, Some(x), None],
        p,
        GpuBackend::groups_1d(rows * cols),
    )
}

/// [`Backend::act_d1_mul`](crate::backend::Backend::act_d1_mul) on this backend.
pub(super) fn act_d1_mul(
    be: &GpuBackend,
    act: Activation,
    len: usize,
    a: Ten<'_, GpuBackend>,
    g: Ten<'_, GpuBackend>,
    out: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(a, a_off) = a;
    let Ten(g, g_off) = g;
    let TenMut(out, o_off) = out;
    check_range("act_d1 a", a.len, a_off, len)?;
    check_range("act_d1 g", g.len, g_off, len)?;
    check_range("act_d1 out", out.len, o_off, len)?;
    let p = Params {
        flags: act_flag(Some(act)),
        off_a: u(a_off, "offset")?,
        off_b: u(g_off, "offset")?,
        off_out: u(o_off, "offset")?,
        len: u(len, "length")?,
        ..Default::default()
    };
    be.dispatch(
        Kernel::ActD1,
        [Some(a), Some(g), None, None, Some(out), None],
        p,
        GpuBackend::groups_1d(len),
    )
}

/// [`Backend::act_d2_r`](crate::backend::Backend::act_d2_r) on this backend.
pub(super) fn act_d2_r(
    be: &GpuBackend,
    act: Activation,
    len: usize,
    a: Ten<'_, GpuBackend>,
    g: Dual<'_, GpuBackend>,
    rz: Ten<'_, GpuBackend>,
    out: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(a, a_off) = a;
    let Dual {
        val: Ten(g, g_off),
        r: Ten(rg, rg_off),
    } = g;
    let Ten(rz, rz_off) = rz;
    let TenMut(out, o_off) = out;
    for (name, b, o) in [
        ("a", a, a_off),
        ("rg", rg, rg_off),
        ("g", g, g_off),
        ("rz", rz, rz_off),
    ] {
        check_range(&format!("act_d2 {name}"), b.len, o, len)?;
    }
    check_range("act_d2 out", out.len, o_off, len)?;
    let p = Params {
        flags: act_flag(Some(act)),
        off_a: u(a_off, "offset")?,
        off_b: u(rg_off, "offset")?,
        off_c: u(g_off, "offset")?,
        off_d: u(rz_off, "offset")?,
        off_out: u(o_off, "offset")?,
        len: u(len, "length")?,
        ..Default::default()
    };
    be.dispatch(
        Kernel::ActD2,
        [Some(a), Some(rg), Some(g), Some(rz), Some(out), None],
        p,
        GpuBackend::groups_1d(len),
    )
}

/// [`Backend::act`](crate::backend::Backend::act) on this backend.
pub(super) fn act(
    be: &GpuBackend,
    act: Activation,
    len: usize,
    x: &mut GpuBuf,
    off: usize,
) -> Result<()> {
    check_range("act x", x.len, off, len)?;
    let p = Params {
        flags: act_flag(Some(act)),
        off_out: u(off, "offset")?,
        len: u(len, "length")?,
        ..Default::default()
    };
    be.dispatch(
        Kernel::ActInplace,
        [None, None, None, None, Some(x), None],
        p,
        GpuBackend::groups_1d(len),
    )
}

/// [`Backend::im2col3x3`](crate::backend::Backend::im2col3x3) on this backend.
pub(super) fn im2col3x3(
    be: &GpuBackend,
    g: Nhwc,
    x: Ten<'_, GpuBackend>,
    col: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(x, x_off) = x;
    let TenMut(col, col_off) = col;
    let len = g.len() * 9;
    check_range("im2col x", x.len, x_off, g.len())?;
    check_range("im2col col", col.len, col_off, len)?;
    let p = Params {
        off_a: u(x_off, "offset")?,
        off_out: u(col_off, "offset")?,
        len: u(len, "length")?,
        ..nhwc_params(g)?
    };
    be.dispatch(
        Kernel::Im2col,
        [Some(x), None, None, None, Some(col), None],
        p,
        GpuBackend::groups_1d(len),
    )
}

/// [`Backend::col2im3x3`](crate::backend::Backend::col2im3x3) on this backend.
pub(super) fn col2im3x3(
    be: &GpuBackend,
    g: Nhwc,
    col: Ten<'_, GpuBackend>,
    beta: f64,
    dx: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(col, col_off) = col;
    let TenMut(dx, dx_off) = dx;
    check_range("col2im col", col.len, col_off, g.len() * 9)?;
    check_range("col2im dx", dx.len, dx_off, g.len())?;
    let p = Params {
        off_a: u(col_off, "offset")?,
        off_out: u(dx_off, "offset")?,
        len: u(g.len(), "length")?,
        beta: beta as f32,
        ..nhwc_params(g)?
    };
    be.dispatch(
        Kernel::Col2im,
        [Some(col), None, None, None, Some(dx), None],
        p,
        GpuBackend::groups_1d(g.len()),
    )
}

/// [`Backend::maxpool2`](crate::backend::Backend::maxpool2) on this backend.
pub(super) fn maxpool2(
    be: &GpuBackend,
    g: Nhwc,
    x: Ten<'_, GpuBackend>,
    out: TenMut<'_, GpuBackend>,
    idx: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(x, x_off) = x;
    let TenMut(out, o_off) = out;
    let TenMut(idx, i_off) = idx;
    let q = g.pooled().len();
    check_range("maxpool x", x.len, x_off, g.len())?;
    check_range("maxpool out", out.len, o_off, q)?;
    check_range("maxpool idx", idx.len, i_off, q)?;
    let p = Params {
        off_a: u(x_off, "offset")?,
        off_out: u(o_off, "offset")?,
        off_d: u(i_off, "offset")?,
        len: u(q, "length")?,
        ..nhwc_params(g)?
    };
    be.dispatch(
        Kernel::MaxPool2,
        [Some(x), None, None, None, Some(out), Some(idx)],
        p,
        GpuBackend::groups_1d(q),
    )
}

/// [`Backend::pool2_gather`](crate::backend::Backend::pool2_gather) on this backend.
pub(super) fn pool2_gather(
    be: &GpuBackend,
    g: Nhwc,
    idx: Ten<'_, GpuBackend>,
    src: Ten<'_, GpuBackend>,
    out: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(idx, i_off) = idx;
    let Ten(src, s_off) = src;
    let TenMut(out, o_off) = out;
    let q = g.pooled().len();
    check_range("pool gather idx", idx.len, i_off, q)?;
    check_range("pool gather src", src.len, s_off, g.len())?;
    check_range("pool gather out", out.len, o_off, q)?;
    let p = Params {
        off_a: u(i_off, "offset")?,
        off_b: u(s_off, "offset")?,
        off_out: u(o_off, "offset")?,
        len: u(q, "length")?,
        ..nhwc_params(g)?
    };
    be.dispatch(
        Kernel::PoolGather,
        [Some(idx), Some(src), None, None, Some(out), None],
        p,
        GpuBackend::groups_1d(q),
    )
}

/// [`Backend::pool2_scatter`](crate::backend::Backend::pool2_scatter) on this backend.
pub(super) fn pool2_scatter(
    be: &GpuBackend,
    g: Nhwc,
    idx: Ten<'_, GpuBackend>,
    gy: Ten<'_, GpuBackend>,
    dx: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(idx, i_off) = idx;
    let Ten(gy, g_off) = gy;
    let TenMut(dx, dx_off) = dx;
    let q = g.pooled().len();
    check_range("pool scatter idx", idx.len, i_off, q)?;
    check_range("pool scatter gy", gy.len, g_off, q)?;
    check_range("pool scatter dx", dx.len, dx_off, g.len())?;
    let p = Params {
        off_a: u(i_off, "offset")?,
        off_b: u(g_off, "offset")?,
        off_out: u(dx_off, "offset")?,
        len: u(g.len(), "length")?,
        ..nhwc_params(g)?
    };
    be.dispatch(
        Kernel::PoolScatter,
        [Some(idx), Some(gy), None, None, Some(dx), None],
        p,
        GpuBackend::groups_1d(g.len()),
    )
}

/// [`Backend::transpose_batch`](crate::backend::Backend::transpose_batch) on this backend.
pub(super) fn transpose_batch(
    be: &GpuBackend,
    batch: usize,
    rows: usize,
    cols: usize,
    src: Ten<'_, GpuBackend>,
    dst: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(src, s_off) = src;
    let TenMut(dst, d_off) = dst;
    let len = batch * rows * cols;
    check_range("transpose src", src.len, s_off, len)?;
    check_range("transpose dst", dst.len, d_off, len)?;
    let p = Params {
        m: u(rows, "rows")?,
        n: u(cols, "cols")?,
        aux: u(batch, "batch")?,
        off_a: u(s_off, "offset")?,
        off_out: u(d_off, "offset")?,
        len: u(len, "length")?,
        ..Default::default()
    };
    be.dispatch(
        Kernel::TransposeBatch,
        [Some(src), None, None, None, Some(dst), None],
        p,
        GpuBackend::groups_1d(len),
    )
}

/// [`Backend::col_sum`](crate::backend::Backend::col_sum) on this backend.
pub(super) fn col_sum(
    be: &GpuBackend,
    rows: usize,
    cols: usize,
    alpha: f64,
    src: Ten<'_, GpuBackend>,
    beta: f64,
    dst: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(src, s_off) = src;
    let TenMut(dst, d_off) = dst;
    check_range("col_sum src", src.len, s_off, rows * cols)?;
    check_range("col_sum dst", dst.len, d_off, cols)?;
    let p = Params {
        m: u(rows, "rows")?,
        n: u(cols, "cols")?,
        off_a: u(s_off, "offset")?,
        off_out: u(d_off, "offset")?,
        alpha: alpha as f32,
        beta: beta as f32,
        ..Default::default()
    };
    be.dispatch(
        Kernel::ColSum,
        [Some(src), None, None, None, Some(dst), None],
        p,
        GpuBackend::groups_1d(cols),
    )
}

/// [`Backend::loss_grad`](crate::backend::Backend::loss_grad) on this backend.
pub(super) fn loss_grad(
    be: &GpuBackend,
    blk: LossBlock,
    out: Ten<'_, GpuBackend>,
    target: Ten<'_, GpuBackend>,
    grad: TenMut<'_, GpuBackend>,
    stats: &mut GpuBuf,
) -> Result<()> {
    let LossBlock {
        kind: loss,
        rows,
        cols,
        scale,
    } = blk;
    let Ten(out, o_off) = out;
    let Ten(target, t_off) = target;
    let TenMut(grad, g_off) = grad;
    check_range("loss out", out.len, o_off, rows * cols)?;
    check_range("loss target", target.len, t_off, rows * cols)?;
    check_range("loss grad", grad.len, g_off, rows * cols)?;
    check_range("loss stats", stats.len, 0, 2)?;
    let p = Params {
        m: u(rows, "rows")?,
        n: u(cols, "cols")?,
        flags: loss_flag(loss),
        off_a: u(o_off, "offset")?,
        off_b: u(t_off, "offset")?,
        off_out: u(g_off, "offset")?,
        scale: scale as f32,
        ..Default::default()
    };
    be.dispatch(
        Kernel::LossGrad,
        [Some(out), Some(target), None, None, Some(grad), Some(stats)],
        p,
        [1, 1, 1],
    )
}

/// [`Backend::loss_hess_mul`](crate::backend::Backend::loss_hess_mul) on this backend.
pub(super) fn loss_hess_mul(
    be: &GpuBackend,
    blk: LossBlock,
    out: Ten<'_, GpuBackend>,
    rout: Ten<'_, GpuBackend>,
    rgrad: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let LossBlock {
        kind: loss,
        rows,
        cols,
        scale,
    } = blk;
    let Ten(out, o_off) = out;
    let Ten(rout, r_off) = rout;
    let TenMut(rgrad, g_off) = rgrad;
    check_range("loss_hess out", out.len, o_off, rows * cols)?;
    check_range("loss_hess rout", rout.len, r_off, rows * cols)?;
    check_range("loss_hess rgrad", rgrad.len, g_off, rows * cols)?;
    let p = Params {
        m: u(rows, "rows")?,
        n: u(cols, "cols")?,
        flags: loss_flag(loss),
        off_a: u(o_off, "offset")?,
        off_b: u(r_off, "offset")?,
        off_out: u(g_off, "offset")?,
        scale: scale as f32,
        ..Default::default()
    };
    be.dispatch(
        Kernel::LossHess,
        [Some(out), Some(rout), None, None, Some(rgrad), None],
        p,
        GpuBackend::groups_1d(rows),
    )
}

/// The image geometry in a kernel's parameter block (m = height, n = width, k = channels,
/// aux = samples).
fn nhwc_params(g: Nhwc) -> Result<Params> {
    Ok(Params {
        m: u(g.h, "height")?,
        n: u(g.w, "width")?,
        k: u(g.c, "channels")?,
        aux: u(g.n, "samples")?,
        ..Default::default()
    })
}

fn act_flag(act: Option<Activation>) -> u32 {
    match act {
        None => 0,
        Some(Activation::Tanh) => 1,
        Some(Activation::Relu) => 2,
        Some(Activation::Silu) => 3,
        Some(Activation::Gelu) => 4,
    }
}

fn loss_flag(loss: LossKind) -> u32 {
    match loss {
        LossKind::Mse => 0,
        LossKind::Ce => 1,
    }
}
