//! The GPU's sequence kernels (embedding, LayerNorm, attention, mean pooling) as dispatches of
//! `shaders/embed.wgsl`, `layer_norm.wgsl` and `attention.wgsl`.

use super::kernels::{AttnBufs, AttnParams, EmbedBufs, EmbedParams, Kernel, LnBufs, LnParams};
use super::recorder::operand;
use super::{GpuBackend, GpuBuf, gpu_err, u};
use crate::backend::{Attn, Dual, Ln, Seq, Ten, TenMut, ThetaV, check_range};
use crate::error::Result;

/// [`Backend::embed`](crate::backend::Backend::embed) on this backend.
pub(super) fn embed(
    be: &GpuBackend,
    g: Seq,
    ids: Ten<'_, GpuBackend>,
    table: Ten<'_, GpuBackend>,
    pos_off: usize,
    out: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(ids, ids_off) = ids;
    let Ten(table, tok_off) = table;
    let TenMut(out, o_off) = out;
    let (t, d, len) = (g.len, g.width, g.numel());
    check_range("embed ids", ids.len, ids_off, g.rows * t)?;
    check_range("embed token rows", table.len, tok_off, d)?;
    check_range("embed positions", table.len, pos_off, t * d)?;
    check_range("embed out", out.len, o_off, len)?;
    let p = EmbedParams {
        off_ids: u(ids_off, "offset")?,
        off_src: u(tok_off, "offset")?,
        off_pos: u(pos_off, "offset")?,
        off_out: u(o_off, "offset")?,
        ..embed_params(g, false, len)?
    };
    let bufs = EmbedBufs {
        ids: Some(ids),
        src: Some(table),
        out: Some(out),
        ..Default::default()
    };
    be.run(Kernel::Embed, &p, bufs, GpuBackend::groups_1d(len))
}

/// [`Backend::embed_grad`](crate::backend::Backend::embed_grad) on this backend.
pub(super) fn embed_grad(
    be: &GpuBackend,
    g: Seq,
    vocab: usize,
    start: &GpuBuf,
    order: &GpuBuf,
    gy: Ten<'_, GpuBackend>,
    out: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(gy, g_off) = gy;
    let TenMut(out, tok_off) = out;
    let (d, positions) = (g.width, g.rows * g.len);
    check_range("embed_grad start", start.len, 0, vocab + 1)?;
    check_range("embed_grad order", order.len, 0, positions)?;
    check_range("embed_grad gy", gy.len, g_off, g.numel())?;
    check_range("embed_grad out", out.len, tok_off, vocab * d)?;
    if positions > 1 << 24 {
        return Err(gpu_err(format!(
            "embed_grad: {positions} positions in a chunk; the GPU's token index holds them as f32, \
             exact up to 2^24: use a smaller --chunk"
        )));
    }
    let p = EmbedParams {
        off_src: u(g_off, "offset")?,
        off_out: u(tok_off, "offset")?,
        ..embed_params(g, false, vocab * d)?
    };
    let bufs = EmbedBufs {
        ids: Some(start),
        order: Some(order),
        src: Some(gy),
        out: Some(out),
    };
    be.run(
        Kernel::EmbedGrad,
        &p,
        bufs,
        GpuBackend::groups_1d(vocab * d),
    )
}

/// [`Backend::layer_norm`](crate::backend::Backend::layer_norm) on this backend.
pub(super) fn layer_norm(
    be: &GpuBackend,
    l: Ln,
    x: Ten<'_, GpuBackend>,
    theta: &GpuBuf,
    y: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(x, x_off) = x;
    let TenMut(y, y_off) = y;
    let len = l.rows * l.width;
    check_range("layer_norm x", x.len, x_off, len)?;
    ln_check(theta.len, 0, l)?;
    check_range("layer_norm y", y.len, y_off, len)?;
    let p = LnParams {
        off_x: u(x_off, "offset")?,
        off_out: u(y_off, "offset")?,
        ..ln_params(l)?
    };
    let bufs = LnBufs {
        x: Some(x),
        theta: Some(theta),
        out: Some(y),
        ..Default::default()
    };
    be.run(Kernel::LayerNorm, &p, bufs, GpuBackend::groups_1d(l.rows))
}

/// [`Backend::layer_norm_vjp`](crate::backend::Backend::layer_norm_vjp) on this backend.
pub(super) fn layer_norm_vjp(
    be: &GpuBackend,
    l: Ln,
    x: Ten<'_, GpuBackend>,
    theta: &GpuBuf,
    dy: Ten<'_, GpuBackend>,
    dx: TenMut<'_, GpuBackend>,
    prod: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(x, x_off) = x;
    let Ten(dy, dy_off) = dy;
    let TenMut(dx, dx_off) = dx;
    let TenMut(prod, p_off) = prod;
    let len = l.rows * l.width;
    check_range("layer_norm_vjp x", x.len, x_off, len)?;
    check_range("layer_norm_vjp dy", dy.len, dy_off, len)?;
    ln_check(theta.len, 0, l)?;
    check_range("layer_norm_vjp dx", dx.len, dx_off, len)?;
    check_range("layer_norm_vjp prod", prod.len, p_off, len)?;
    let p = LnParams {
        off_x: u(x_off, "offset")?,
        off_dy: u(dy_off, "offset")?,
        off_out: u(dx_off, "offset")?,
        off_prod: u(p_off, "offset")?,
        ..ln_params(l)?
    };
    let bufs = LnBufs {
        x: Some(x),
        theta: Some(theta),
        dy: Some(dy),
        out: Some(dx),
        prod: Some(prod),
        ..Default::default()
    };
    be.run(
        Kernel::LayerNormVjp,
        &p,
        bufs,
        GpuBackend::groups_1d(l.rows),
    )
}

/// [`Backend::layer_norm_jvp`](crate::backend::Backend::layer_norm_jvp) on this backend.
pub(super) fn layer_norm_jvp(
    be: &GpuBackend,
    l: Ln,
    x: Dual<'_, GpuBackend>,
    theta: ThetaV<'_, GpuBackend>,
    ry: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Dual {
        val: Ten(x, x_off),
        r: Ten(rx, rx_off),
    } = x;
    let ThetaV {
        theta,
        v: Ten(v, v_off),
    } = theta;
    let TenMut(ry, ry_off) = ry;
    let len = l.rows * l.width;
    check_range("layer_norm_jvp x", x.len, x_off, len)?;
    check_range("layer_norm_jvp rx", rx.len, rx_off, len)?;
    ln_check(theta.len, 0, l)?;
    ln_check(v.len, v_off, l)?;
    check_range("layer_norm_jvp ry", ry.len, ry_off, len)?;
    let p = LnParams {
        off_x: u(x_off, "offset")?,
        off_rx: u(rx_off, "offset")?,
        off_vgamma: u(v_off + l.gamma, "offset")?,
        off_vbeta: u(v_off + l.beta, "offset")?,
        off_out: u(ry_off, "offset")?,
        ..ln_params(l)?
    };
    let bufs = LnBufs {
        x: Some(x),
        rx: Some(rx),
        theta: Some(theta),
        v: Some(v),
        out: Some(ry),
        ..Default::default()
    };
    be.run(
        Kernel::LayerNormJvp,
        &p,
        bufs,
        GpuBackend::groups_1d(l.rows),
    )
}

/// [`Backend::layer_norm_rvjp`](crate::backend::Backend::layer_norm_rvjp) on this backend.
pub(super) fn layer_norm_rvjp(
    be: &GpuBackend,
    l: Ln,
    x: Dual<'_, GpuBackend>,
    theta: ThetaV<'_, GpuBackend>,
    dy: Dual<'_, GpuBackend>,
    rdx: TenMut<'_, GpuBackend>,
    prod: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Dual {
        val: Ten(x, x_off),
        r: Ten(rx, rx_off),
    } = x;
    let ThetaV {
        theta,
        v: Ten(v, v_off),
    } = theta;
    let Dual {
        val: Ten(dy, dy_off),
        r: Ten(rdy, rdy_off),
    } = dy;
    let TenMut(rdx, rdx_off) = rdx;
    let TenMut(prod, p_off) = prod;
    let len = l.rows * l.width;
    check_range("layer_norm_rvjp x", x.len, x_off, len)?;
    check_range("layer_norm_rvjp rx", rx.len, rx_off, len)?;
    check_range("layer_norm_rvjp dy", dy.len, dy_off, len)?;
    check_range("layer_norm_rvjp rdy", rdy.len, rdy_off, len)?;
    ln_check(theta.len, 0, l)?;
    ln_check(v.len, v_off, l)?;
    check_range("layer_norm_rvjp rdx", rdx.len, rdx_off, len)?;
    check_range("layer_norm_rvjp prod", prod.len, p_off, len)?;
    let p = LnParams {
        off_x: u(x_off, "offset")?,
        off_rx: u(rx_off, "offset")?,
        off_vgamma: u(v_off + l.gamma, "offset")?,
        off_dy: u(dy_off, "offset")?,
        off_rdy: u(rdy_off, "offset")?,
        off_out: u(rdx_off, "offset")?,
        off_prod: u(p_off, "offset")?,
        ..ln_params(l)?
    };
    let bufs = LnBufs {
        x: Some(x),
        rx: Some(rx),
        theta: Some(theta),
        v: Some(v),
        dy: Some(dy),
        rdy: Some(rdy),
        out: Some(rdx),
        prod: Some(prod),
    };
    be.run(
        Kernel::LayerNormRvjp,
        &p,
        bufs,
        GpuBackend::groups_1d(l.rows),
    )
}

/// [`Backend::attention`](crate::backend::Backend::attention) on this backend.
pub(super) fn attention(
    be: &GpuBackend,
    a: Attn,
    ids: Ten<'_, GpuBackend>,
    qkv: Ten<'_, GpuBackend>,
    out: TenMut<'_, GpuBackend>,
    probs: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let (Ten(ids, ids_off), Ten(qkv, q_off)) = (ids, qkv);
    let (TenMut(out, o_off), TenMut(probs, p_off)) = (out, probs);
    let s = AttnSizes::of(a);
    let p = AttnParams {
        off_ids: operand("attention ids", ids, ids_off, s.ids)?,
        off_qkv: operand("attention qkv", qkv, q_off, s.qkv)?,
        off_out: operand("attention out", out, o_off, s.out)?,
        off_aux: operand("attention probs", probs, p_off, s.probs)?,
        ..attn_params(a)?
    };
    let bufs = AttnBufs {
        qkv: Some(qkv),
        ids: Some(ids),
        out: Some(out),
        aux: Some(probs),
        ..Default::default()
    };
    be.run(Kernel::Attention, &p, bufs, s.groups)
}

/// [`Backend::attention_vjp`](crate::backend::Backend::attention_vjp) on this backend.
pub(super) fn attention_vjp(
    be: &GpuBackend,
    a: Attn,
    qkv: Ten<'_, GpuBackend>,
    probs: Ten<'_, GpuBackend>,
    dout: Ten<'_, GpuBackend>,
    dqkv: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let (Ten(qkv, q_off), Ten(probs, p_off)) = (qkv, probs);
    let (Ten(dout, d_off), TenMut(dqkv, dq_off)) = (dout, dqkv);
    let s = AttnSizes::of(a);
    let p = AttnParams {
        off_qkv: operand("attention_vjp qkv", qkv, q_off, s.qkv)?,
        off_probs: operand("attention_vjp probs", probs, p_off, s.probs)?,
        off_dout: operand("attention_vjp dout", dout, d_off, s.out)?,
        off_out: operand("attention_vjp dqkv", dqkv, dq_off, s.qkv)?,
        ..attn_params(a)?
    };
    let bufs = AttnBufs {
        qkv: Some(qkv),
        probs: Some(probs),
        dout: Some(dout),
        out: Some(dqkv),
        ..Default::default()
    };
    rows_then_cols(
        be,
        [Kernel::AttentionVjpRows, Kernel::AttentionVjpCols],
        &p,
        bufs,
        s,
    )
}

/// [`Backend::attention_jvp`](crate::backend::Backend::attention_jvp) on this backend.
pub(super) fn attention_jvp(
    be: &GpuBackend,
    a: Attn,
    qkv: Dual<'_, GpuBackend>,
    probs: Ten<'_, GpuBackend>,
    rout: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Dual {
        val: Ten(qkv, q_off),
        r: Ten(rqkv, rq_off),
    } = qkv;
    let (Ten(probs, p_off), TenMut(rout, ro_off)) = (probs, rout);
    let s = AttnSizes::of(a);
    let p = AttnParams {
        off_qkv: operand("attention_jvp qkv", qkv, q_off, s.qkv)?,
        off_probs: operand("attention_jvp probs", probs, p_off, s.probs)?,
        off_rqkv: operand("attention_jvp rqkv", rqkv, rq_off, s.qkv)?,
        off_out: operand("attention_jvp rout", rout, ro_off, s.out)?,
        ..attn_params(a)?
    };
    let bufs = AttnBufs {
        qkv: Some(qkv),
        probs: Some(probs),
        rqkv: Some(rqkv),
        out: Some(rout),
        ..Default::default()
    };
    be.run(Kernel::AttentionJvp, &p, bufs, s.groups)
}

/// [`Backend::attention_rvjp`](crate::backend::Backend::attention_rvjp) on this backend.
pub(super) fn attention_rvjp(
    be: &GpuBackend,
    a: Attn,
    qkv: Dual<'_, GpuBackend>,
    probs: Ten<'_, GpuBackend>,
    dout: Dual<'_, GpuBackend>,
    rdqkv: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Dual {
        val: Ten(qkv, q_off),
        r: Ten(rqkv, rq_off),
    } = qkv;
    let Dual {
        val: Ten(dout, d_off),
        r: Ten(rdout, rd_off),
    } = dout;
    let (Ten(probs, p_off), TenMut(rdqkv, rdq_off)) = (probs, rdqkv);
    let s = AttnSizes::of(a);
    let p = AttnParams {
        off_qkv: operand("attention_rvjp qkv", qkv, q_off, s.qkv)?,
        off_probs: operand("attention_rvjp probs", probs, p_off, s.probs)?,
        off_rqkv: operand("attention_rvjp rqkv", rqkv, rq_off, s.qkv)?,
        off_dout: operand("attention_rvjp dout", dout, d_off, s.out)?,
        off_rdout: operand("attention_rvjp rdout", rdout, rd_off, s.out)?,
        off_out: operand("attention_rvjp rdqkv", rdqkv, rdq_off, s.qkv)?,
        ..attn_params(a)?
    };
    let bufs = AttnBufs {
        qkv: Some(qkv),
        probs: Some(probs),
        rqkv: Some(rqkv),
        dout: Some(dout),
        rdout: Some(rdout),
        out: Some(rdqkv),
        ..Default::default()
    };
    let k = [Kernel::AttentionRvjpRows, Kernel::AttentionRvjpCols];
    rows_then_cols(be, k, &p, bufs, s)
}

/// The scalars of an attention pass's tensors (ids, qkv, out, probs) and its dispatch (one
/// invocation per (sequence, head, position)).
#[derive(Clone, Copy)]
struct AttnSizes {
    ids: usize,
    qkv: usize,
    out: usize,
    probs: usize,
    rows: usize,
    groups: [u32; 3],
}

impl AttnSizes {
    fn of(a: Attn) -> Self {
        let (t, d) = (a.seq, a.width());
        let rows = a.rows * a.heads * t;
        AttnSizes {
            ids: a.rows * t,
            qkv: a.rows * t * 3 * d,
            out: a.rows * t * d,
            probs: a.rows * a.probs_per_row(),
            rows,
            groups: GpuBackend::groups_1d(rows),
        }
    }
}

/// A backward pass's two kernels, the rows kernel leaving its per-row scalars in the attention
/// scratch (bound as aux) for the cols kernel.
fn rows_then_cols(
    be: &GpuBackend,
    k: [Kernel; 2],
    p: &AttnParams,
    bufs: AttnBufs<'_>,
    s: AttnSizes,
) -> Result<()> {
    be.with_attn_scratch(3 * s.rows, |scratch| {
        let bufs = AttnBufs {
            aux: Some(scratch),
            ..bufs
        };
        be.run(k[0], p, bufs, s.groups)?;
        be.run(k[1], p, bufs, s.groups)
    })
}

/// [`Backend::seq_mean`](crate::backend::Backend::seq_mean) on this backend.
pub(super) fn seq_mean(
    be: &GpuBackend,
    g: Seq,
    masked: bool,
    ids: Ten<'_, GpuBackend>,
    x: Ten<'_, GpuBackend>,
    out: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(ids, ids_off) = ids;
    let Ten(x, x_off) = x;
    let TenMut(out, o_off) = out;
    let len = g.rows * g.width;
    check_range("seq_mean ids", ids.len, ids_off, g.rows * g.len)?;
    check_range("seq_mean x", x.len, x_off, g.numel())?;
    check_range("seq_mean out", out.len, o_off, len)?;
    let p = embed_params(g, masked, len)?;
    seq_mean_run(
        be,
        Kernel::SeqMean,
        p,
        (ids, ids_off),
        (x, x_off),
        (out, o_off),
    )
}

/// [`Backend::seq_mean_adjoint`](crate::backend::Backend::seq_mean_adjoint) on this backend.
pub(super) fn seq_mean_adjoint(
    be: &GpuBackend,
    g: Seq,
    masked: bool,
    ids: Ten<'_, GpuBackend>,
    dy: Ten<'_, GpuBackend>,
    dx: TenMut<'_, GpuBackend>,
) -> Result<()> {
    let Ten(ids, ids_off) = ids;
    let Ten(dy, dy_off) = dy;
    let TenMut(dx, dx_off) = dx;
    let len = g.numel();
    check_range("seq_mean_adjoint ids", ids.len, ids_off, g.rows * g.len)?;
    check_range("seq_mean_adjoint dy", dy.len, dy_off, g.rows * g.width)?;
    check_range("seq_mean_adjoint dx", dx.len, dx_off, len)?;
    let p = embed_params(g, masked, len)?;
    seq_mean_run(
        be,
        Kernel::SeqMeanAdjoint,
        p,
        (ids, ids_off),
        (dy, dy_off),
        (dx, dx_off),
    )
}

/// seq_mean or its adjoint (`p`: the geometry): `p.len` outputs from the ids and `src`.
fn seq_mean_run(
    be: &GpuBackend,
    k: Kernel,
    p: EmbedParams,
    ids: (&GpuBuf, usize),
    src: (&GpuBuf, usize),
    out: (&GpuBuf, usize),
) -> Result<()> {
    let groups = GpuBackend::groups_1d(p.len as usize);
    let p = EmbedParams {
        off_ids: u(ids.1, "offset")?,
        off_src: u(src.1, "offset")?,
        off_out: u(out.1, "offset")?,
        ..p
    };
    let bufs = EmbedBufs {
        ids: Some(ids.0),
        src: Some(src.0),
        out: Some(out.0),
        ..Default::default()
    };
    be.run(k, &p, bufs, groups)
}

/// A batch of sequences in the embedding module's parameter block, `len` outputs.
fn embed_params(g: Seq, masked: bool, len: usize) -> Result<EmbedParams> {
    Ok(EmbedParams {
        seq: u(g.len, "sequence length")?,
        width: u(g.width, "width")?,
        masked: masked as u32,
        len: u(len, "length")?,
        ..Default::default()
    })
}

/// A LayerNorm pass in its parameter block (γ and β where `l` says, ε).
fn ln_params(l: Ln) -> Result<LnParams> {
    Ok(LnParams {
        rows: u(l.rows, "rows")?,
        width: u(l.width, "width")?,
        off_gamma: u(l.gamma, "offset")?,
        off_beta: u(l.beta, "offset")?,
        eps: l.eps as f32,
        ..Default::default()
    })
}

/// γ and β of a LayerNorm within a buffer of `len` scalars, from `off`.
fn ln_check(len: usize, off: usize, l: Ln) -> Result<()> {
    check_range("layer_norm gamma", len, off + l.gamma, l.width)?;
    check_range("layer_norm beta", len, off + l.beta, l.width)
}

/// An attention pass in its parameter block (len = rows·H·T invocations, scale = 1/√dh).
fn attn_params(a: Attn) -> Result<AttnParams> {
    Ok(AttnParams {
        seq: u(a.seq, "sequence length")?,
        head_dim: u(a.head_dim, "head width")?,
        heads: u(a.heads, "heads")?,
        masked: a.masked as u32,
        len: u(a.rows * a.heads * a.seq, "attention rows")?,
        scale: (1.0 / (a.head_dim as f64).sqrt()) as f32,
        ..Default::default()
    })
}
