//! The GPU's layer kernels (bias and activation and their derivatives, im2col convolution at any
//! geometry,
//! pooling, transposes, column sums, losses) as dispatches of `shaders/act.wgsl`, `conv.wgsl`,
//! `pool.wgsl`, `vector.wgsl` and `loss.wgsl`.

use super::kernels::{
    ActBufs, ActParams, ConvBufs, ConvParams, Kernel, LossBufs, LossParams, PoolBufs, PoolParams,
    VectorBufs, VectorParams,
};
use super::recorder::operand;
use super::{GpuBackend, GpuBuf, u};
use crate::backend::{
    Activation, ConvGeom, Dual, LossBlock, LossKind, Nhwc, Ten, TenMut, check_range,
};
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
    let (Ten(bias, b_off), TenMut(x, x_off)) = (bias, x);
    let p = ActParams {
        cols: u(cols, "cols")?,
        off_bias: operand("bias", bias, b_off, cols)?,
        off_out: operand("bias_act x", x, x_off, rows * cols)?,
        ..act_params(act, rows * cols)?
    };
    let bufs = ActBufs {
        bias: Some(bias),
        out: Some(x),
        ..Default::default()
    };
    be.run(
        Kernel::BiasAct,
        &p,
        bufs,
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
    let (Ten(a, a_off), Ten(g, g_off), TenMut(out, o_off)) = (a, g, out);
    let p = ActParams {
        off_a: operand("act_d1 a", a, a_off, len)?,
        off_g: operand("act_d1 g", g, g_off, len)?,
        off_out: operand("act_d1 out", out, o_off, len)?,
        ..act_params(Some(act), len)?
    };
    let bufs = ActBufs {
        a: Some(a),
        g: Some(g),
        out: Some(out),
        ..Default::default()
    };
    be.run(Kernel::ActD1, &p, bufs, GpuBackend::groups_1d(len))
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
    let Dual {
        val: Ten(g, g_off),
        r: Ten(rg, rg_off),
    } = g;
    let (Ten(a, a_off), Ten(rz, rz_off), TenMut(out, o_off)) = (a, rz, out);
    let p = ActParams {
        off_a: operand("act_d2 a", a, a_off, len)?,
        off_rg: operand("act_d2 rg", rg, rg_off, len)?,
        off_g: operand("act_d2 g", g, g_off, len)?,
        off_rz: operand("act_d2 rz", rz, rz_off, len)?,
        off_out: operand("act_d2 out", out, o_off, len)?,
        ..act_params(Some(act), len)?
    };
    let bufs = ActBufs {
        a: Some(a),
        g: Some(g),
        rg: Some(rg),
        rz: Some(rz),
        out: Some(out),
        ..Default::default()
    };
    be.run(Kernel::ActD2, &p, bufs, GpuBackend::groups_1d(len))
}

/// [`Backend::act`](crate::backend::Backend::act) on this backend.
pub(super) fn act(
    be: &GpuBackend,
    act: Activation,
    len: usize,
    x: &mut GpuBuf,
    off: usize,
) -> Result<()> {
    let p = ActParams {
        off_out: operand("act x", x, off, len)?,
        ..act_params(Some(act), len)?
    };
    let bufs = ActBufs {
        out: Some(x),
        ..Default::default()
    };
    be.run(Kernel::ActInplace, &p, bufs, GpuBackend::groups_1d(len))
}

/// [`Nn::im2col`](crate::backend::Nn::im2col) on this backend: the 3×3/1/1 entry point for
/// [`ConvGeom::SAME_3X3`], the general one (geometry in the parameter block) otherwise.
pub(super) fn im2col(
    be: &GpuBackend,
    g: Nhwc,
    k: ConvGeom,
    x: Ten<'_, GpuBackend>,
    col: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let (oh, ow) = k.out_hw(g)?;
    let Ten(x, x_off) = x;
    let TenMut(col, col_off) = col;
    let len = g.n * oh * ow * k.taps() * g.c;
    check_range("im2col x", x.len, x_off, g.len())?;
    check_range("im2col col", col.len, col_off, len)?;
    let p = ConvParams {
        off_src: u(x_off, "offset")?,
        off_dst: u(col_off, "offset")?,
        len: u(len, "length")?,
        ..conv_params(g, k)?
    };
    let bufs = ConvBufs {
        src: Some(x),
        dst: Some(col),
    };
    let kernel = if k == ConvGeom::SAME_3X3 {
        Kernel::Im2col
    } else {
        Kernel::Im2colGeneral
    };
    be.run(kernel, &p, bufs, GpuBackend::groups_1d(len))
}

/// [`Nn::col2im`](crate::backend::Nn::col2im) on this backend (entry points as [`im2col`]).
pub(super) fn col2im(
    be: &GpuBackend,
    g: Nhwc,
    k: ConvGeom,
    col: Ten<'_, GpuBackend>,
    beta: f64,
    dx: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let (oh, ow) = k.out_hw(g)?;
    let Ten(col, col_off) = col;
    let TenMut(dx, dx_off) = dx;
    check_range(
        "col2im col",
        col.len,
        col_off,
        g.n * oh * ow * k.taps() * g.c,
    )?;
    check_range("col2im dx", dx.len, dx_off, g.len())?;
    let p = ConvParams {
        off_src: u(col_off, "offset")?,
        off_dst: u(dx_off, "offset")?,
        len: u(g.len(), "length")?,
        beta: beta as f32,
        ..conv_params(g, k)?
    };
    let bufs = ConvBufs {
        src: Some(col),
        dst: Some(dx),
    };
    let kernel = if k == ConvGeom::SAME_3X3 {
        Kernel::Col2im
    } else {
        Kernel::Col2imGeneral
    };
    be.run(kernel, &p, bufs, GpuBackend::groups_1d(g.len()))
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
    let p = PoolParams {
        off_src: u(x_off, "offset")?,
        off_out: u(o_off, "offset")?,
        off_idx_out: u(i_off, "offset")?,
        ..pool_params(g, q)?
    };
    let bufs = PoolBufs {
        idx: None,
        src: Some(x),
        out: Some(out),
        idx_out: Some(idx),
    };
    be.run(Kernel::MaxPool2, &p, bufs, GpuBackend::groups_1d(q))
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
    pool_read(
        be,
        Kernel::PoolGather,
        g,
        (idx, i_off),
        (src, s_off),
        (out, o_off),
        q,
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
    pool_read(
        be,
        Kernel::PoolScatter,
        g,
        (idx, i_off),
        (gy, g_off),
        (dx, dx_off),
        g.len(),
    )
}

/// pool2_gather or pool2_scatter: `len` outputs from the arg-max `idx` and `src`.
fn pool_read(
    be: &GpuBackend,
    k: Kernel,
    g: Nhwc,
    idx: (&GpuBuf, usize),
    src: (&GpuBuf, usize),
    out: (&GpuBuf, usize),
    len: usize,
) -> Result<()> {
    let p = PoolParams {
        off_idx: u(idx.1, "offset")?,
        off_src: u(src.1, "offset")?,
        off_out: u(out.1, "offset")?,
        ..pool_params(g, len)?
    };
    let bufs = PoolBufs {
        idx: Some(idx.0),
        src: Some(src.0),
        out: Some(out.0),
        idx_out: None,
    };
    be.run(k, &p, bufs, GpuBackend::groups_1d(len))
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
    let p = VectorParams {
        rows: u(rows, "rows")?,
        cols: u(cols, "cols")?,
        off_x: u(s_off, "offset")?,
        off_y: u(d_off, "offset")?,
        len: u(len, "length")?,
        ..Default::default()
    };
    let bufs = VectorBufs {
        x: Some(src),
        y: Some(dst),
    };
    be.run(Kernel::TransposeBatch, &p, bufs, GpuBackend::groups_1d(len))
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
    let p = VectorParams {
        rows: u(rows, "rows")?,
        cols: u(cols, "cols")?,
        off_x: u(s_off, "offset")?,
        off_y: u(d_off, "offset")?,
        alpha: alpha as f32,
        beta: beta as f32,
        ..Default::default()
    };
    let bufs = VectorBufs {
        x: Some(src),
        y: Some(dst),
    };
    be.run(Kernel::ColSum, &p, bufs, GpuBackend::groups_1d(cols))
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
    let (rows, cols) = (blk.rows, blk.cols);
    let Ten(out, o_off) = out;
    let Ten(target, t_off) = target;
    let TenMut(grad, g_off) = grad;
    check_range("loss out", out.len, o_off, rows * cols)?;
    check_range("loss target", target.len, t_off, rows * cols)?;
    check_range("loss grad", grad.len, g_off, rows * cols)?;
    check_range("loss stats", stats.len, 0, 2)?;
    let p = loss_params(blk, o_off, t_off, g_off)?;
    let bufs = LossBufs {
        y: Some(out),
        w: Some(target),
        grad: Some(grad),
        stats: Some(stats),
    };
    be.run(Kernel::LossGrad, &p, bufs, [1, 1, 1])
}

/// [`Backend::loss_hess_mul`](crate::backend::Backend::loss_hess_mul) on this backend.
pub(super) fn loss_hess_mul(
    be: &GpuBackend,
    blk: LossBlock,
    out: Ten<'_, GpuBackend>,
    rout: Ten<'_, GpuBackend>,
    rgrad: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let (rows, cols) = (blk.rows, blk.cols);
    let Ten(out, o_off) = out;
    let Ten(rout, r_off) = rout;
    let TenMut(rgrad, g_off) = rgrad;
    check_range("loss_hess out", out.len, o_off, rows * cols)?;
    check_range("loss_hess rout", rout.len, r_off, rows * cols)?;
    check_range("loss_hess rgrad", rgrad.len, g_off, rows * cols)?;
    let p = loss_params(blk, o_off, r_off, g_off)?;
    let bufs = LossBufs {
        y: Some(out),
        w: Some(rout),
        grad: Some(rgrad),
        stats: None,
    };
    be.run(Kernel::LossHess, &p, bufs, GpuBackend::groups_1d(rows))
}

/// A loss block in its parameter block: y at `y_off`, the targets or R{y} at `w_off`, the
/// gradient at `g_off`.
fn loss_params(blk: LossBlock, y_off: usize, w_off: usize, g_off: usize) -> Result<LossParams> {
    Ok(LossParams {
        rows: u(blk.rows, "rows")?,
        cols: u(blk.cols, "cols")?,
        kind: loss_flag(blk.kind),
        off_y: u(y_off, "offset")?,
        off_w: u(w_off, "offset")?,
        off_grad: u(g_off, "offset")?,
        scale: blk.scale as f32,
        ..Default::default()
    })
}

/// An activation kernel's parameter block: the kind, `len` elements.
fn act_params(act: Option<Activation>, len: usize) -> Result<ActParams> {
    Ok(ActParams {
        act: act_flag(act),
        len: u(len, "length")?,
        ..Default::default()
    })
}

/// The image geometry and the window `k` (with the output size it gives) in the convolution's
/// parameter block.
fn conv_params(g: Nhwc, k: ConvGeom) -> Result<ConvParams> {
    let (oh, ow) = k.out_hw(g)?;
    Ok(ConvParams {
        h: u(g.h, "height")?,
        w: u(g.w, "width")?,
        c: u(g.c, "channels")?,
        samples: u(g.n, "samples")?,
        kernel: u(k.kernel, "kernel")?,
        stride: u(k.stride, "stride")?,
        padding: u(k.pad, "padding")?,
        oh: u(oh, "output height")?,
        ow: u(ow, "output width")?,
        ..Default::default()
    })
}

/// The input geometry and the elements written (`len`) in the pooling's parameter block.
fn pool_params(g: Nhwc, len: usize) -> Result<PoolParams> {
    Ok(PoolParams {
        h: u(g.h, "height")?,
        w: u(g.w, "width")?,
        c: u(g.c, "channels")?,
        len: u(len, "length")?,
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
