//! The CPU kernels of the sequence ops (embedding, LayerNorm, mean pooling): the twins of
//! `shaders/embed.wgsl` and `shaders/layer_norm.wgsl`. Each works on one sequence (or one row) at a time, accumulates in f64,
//! and runs sequences on the backend's threads. Attention is in [`super::attention`].

use super::CpuBackend;
use super::par::{par_rows, par_rows2};
use super::real::Real;
use super::{sl, sl_mut};
use crate::backend::{Attn, Dual, Ln, Seq, SeqOps, Ten, TenMut, ThetaV, Varlen};
use crate::error::Result;

/// [`SeqOps::embed`](crate::backend::SeqOps::embed) on this backend.
pub(super) fn embed<T: Real>(
    g: Seq,
    ids: Ten<'_, CpuBackend<T>>,
    table: Ten<'_, CpuBackend<T>>,
    pos_off: usize,
    out: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(ids, ids_off) = ids;
    let Ten(table, tok_off) = table;
    let TenMut(out, o_off) = out;
    let (t, d) = (g.len, g.width);
    let ids = sl(ids, ids_off, g.rows * t, "embed ids")?;
    let pos = sl(table, pos_off, t * d, "embed positions")?;
    let out = sl_mut(out, o_off, g.numel(), "embed out")?;
    for (p, o) in out.chunks_exact_mut(d).enumerate() {
        let id = ids[p].wide() as usize;
        let row = sl(table, tok_off + id * d, d, "embed token row")?;
        let pr = &pos[(p % t) * d..][..d];
        for j in 0..d {
            o[j] = row[j] + pr[j];
        }
    }
    Ok(())
}

/// [`SeqOps::embed_grad`](crate::backend::SeqOps::embed_grad) on this backend.
pub(super) fn embed_grad<T: Real>(
    g: Seq,
    vocab: usize,
    start: &[T],
    order: &[T],
    gy: Ten<'_, CpuBackend<T>>,
    out: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(gy, g_off) = gy;
    let TenMut(out, tok_off) = out;
    let d = g.width;
    let start = sl(start, 0, vocab + 1, "embed_grad start")?;
    let order = sl(order, 0, g.rows * g.len, "embed_grad order")?;
    let gy = sl(gy, g_off, g.numel(), "embed_grad gy")?;
    let out = sl_mut(out, tok_off, vocab * d, "embed_grad out")?;
    for v in 0..vocab {
        let (a, b) = (start[v].wide() as usize, start[v + 1].wide() as usize);
        if a == b {
            continue;
        }
        let mut acc = vec![0.0f64; d];
        for p in &order[a..b] {
            let row = &gy[p.wide() as usize * d..][..d];
            for j in 0..d {
                acc[j] += row[j].wide();
            }
        }
        for (o, s) in out[v * d..(v + 1) * d].iter_mut().zip(&acc) {
            *o = T::of(o.wide() + s);
        }
    }
    Ok(())
}

/// [`SeqOps::layer_norm`](crate::backend::SeqOps::layer_norm) on this backend.
pub(super) fn layer_norm<T: Real>(
    l: Ln,
    x: Ten<'_, CpuBackend<T>>,
    theta: &[T],
    y: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(x, x_off) = x;
    let TenMut(y, y_off) = y;
    let len = l.rows * l.width;
    let x = sl(x, x_off, len, "layer_norm x")?;
    ln_params(theta, l)?;
    let y = sl_mut(y, y_off, len, "layer_norm y")?;
    par_rows(y, l.width, 10 * len, |r0, y| {
        let xs = &x[r0 * l.width..][..y.len()];
        ln_rows(l, xs, theta, y)
    });
    Ok(())
}

/// [`SeqOps::layer_norm_vjp`](crate::backend::SeqOps::layer_norm_vjp) on this backend.
pub(super) fn layer_norm_vjp<T: Real>(
    l: Ln,
    x: Ten<'_, CpuBackend<T>>,
    theta: &[T],
    dy: Ten<'_, CpuBackend<T>>,
    dx: TenMut<'_, CpuBackend<T>>,
    prod: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(x, x_off) = x;
    let Ten(dy, dy_off) = dy;
    let TenMut(dx, dx_off) = dx;
    let TenMut(prod, p_off) = prod;
    let (len, w) = (l.rows * l.width, l.width);
    let x = sl(x, x_off, len, "layer_norm_vjp x")?;
    let dy = sl(dy, dy_off, len, "layer_norm_vjp dy")?;
    ln_params(theta, l)?;
    let dx = sl_mut(dx, dx_off, len, "layer_norm_vjp dx")?;
    let prod = sl_mut(prod, p_off, len, "layer_norm_vjp prod")?;
    par_rows2(dx, prod, w, 20 * len, |r0, dx, prod| {
        let rows = r0 * w..r0 * w + dx.len();
        ln_vjp_rows(l, &x[rows.clone()], theta, &dy[rows], dx, prod)
    });
    Ok(())
}

/// [`SeqOps::layer_norm_jvp`](crate::backend::SeqOps::layer_norm_jvp) on this backend.
pub(super) fn layer_norm_jvp<T: Real>(
    l: Ln,
    x: Dual<'_, CpuBackend<T>>,
    theta: ThetaV<'_, CpuBackend<T>>,
    ry: TenMut<'_, CpuBackend<T>>,
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
    let (len, w) = (l.rows * l.width, l.width);
    let x = sl(x, x_off, len, "layer_norm_jvp x")?;
    let rx = sl(rx, rx_off, len, "layer_norm_jvp rx")?;
    ln_params(theta, l)?;
    let v = &v[v_off.min(v.len())..];
    ln_params(v, l)?;
    let ry = sl_mut(ry, ry_off, len, "layer_norm_jvp ry")?;
    par_rows(ry, w, 20 * len, |r0, ry| {
        let rows = r0 * w..r0 * w + ry.len();
        ln_jvp_rows(l, &x[rows.clone()], &rx[rows], theta, v, ry)
    });
    Ok(())
}

/// [`SeqOps::layer_norm_rvjp`](crate::backend::SeqOps::layer_norm_rvjp) on this backend.
pub(super) fn layer_norm_rvjp<T: Real>(
    l: Ln,
    x: Dual<'_, CpuBackend<T>>,
    theta: ThetaV<'_, CpuBackend<T>>,
    dy: Dual<'_, CpuBackend<T>>,
    rdx: TenMut<'_, CpuBackend<T>>,
    prod: TenMut<'_, CpuBackend<T>>,
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
    let (len, w) = (l.rows * l.width, l.width);
    let x = sl(x, x_off, len, "layer_norm_rvjp x")?;
    let rx = sl(rx, rx_off, len, "layer_norm_rvjp rx")?;
    let dy = sl(dy, dy_off, len, "layer_norm_rvjp dy")?;
    let rdy = sl(rdy, rdy_off, len, "layer_norm_rvjp rdy")?;
    ln_params(theta, l)?;
    let v = &v[v_off.min(v.len())..];
    ln_params(v, l)?;
    let rdx = sl_mut(rdx, rdx_off, len, "layer_norm_rvjp rdx")?;
    let prod = sl_mut(prod, p_off, len, "layer_norm_rvjp prod")?;
    par_rows2(rdx, prod, w, 30 * len, |r0, rdx, prod| {
        let rows = r0 * w..r0 * w + rdx.len();
        ln_rvjp_rows(
            l,
            [&x[rows.clone()], &rx[rows.clone()]],
            theta,
            v,
            [&dy[rows.clone()], &rdy[rows]],
            rdx,
            prod,
        )
    });
    Ok(())
}

/// [`SeqOps::seq_mean`](crate::backend::SeqOps::seq_mean) on this backend.
pub(super) fn seq_mean<T: Real>(
    g: Seq,
    masked: bool,
    ids: Ten<'_, CpuBackend<T>>,
    x: Ten<'_, CpuBackend<T>>,
    out: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(ids, ids_off) = ids;
    let Ten(x, x_off) = x;
    let TenMut(out, o_off) = out;
    let ids = sl(ids, ids_off, g.rows * g.len, "seq_mean ids")?;
    let x = sl(x, x_off, g.numel(), "seq_mean x")?;
    let out = sl_mut(out, o_off, g.rows * g.width, "seq_mean out")?;
    mean_rows(g, masked, ids, x, out);
    Ok(())
}

/// [`SeqOps::seq_mean_adjoint`](crate::backend::SeqOps::seq_mean_adjoint) on this backend.
pub(super) fn seq_mean_adjoint<T: Real>(
    g: Seq,
    masked: bool,
    ids: Ten<'_, CpuBackend<T>>,
    dy: Ten<'_, CpuBackend<T>>,
    dx: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(ids, ids_off) = ids;
    let Ten(dy, dy_off) = dy;
    let TenMut(dx, dx_off) = dx;
    let ids = sl(ids, ids_off, g.rows * g.len, "seq_mean_adjoint ids")?;
    let dy = sl(dy, dy_off, g.rows * g.width, "seq_mean_adjoint dy")?;
    let dx = sl_mut(dx, dx_off, g.numel(), "seq_mean_adjoint dx")?;
    mean_adjoint_rows(g, masked, ids, dy, dx);
    Ok(())
}

/// Check that a LayerNorm's γ and β lie inside `theta`.
fn ln_params<T>(theta: &[T], l: Ln) -> Result<()> {
    sl(theta, l.gamma, l.width, "layer_norm gamma")?;
    sl(theta, l.beta, l.width, "layer_norm beta")?;
    Ok(())
}

fn mean(x: impl Iterator<Item = f64>, n: usize) -> f64 {
    x.sum::<f64>() / n as f64
}

/// x̂ and 1/σ of one row.
fn normalise<T: Real>(x: &[T], eps: f64, xh: &mut [f64]) -> f64 {
    let w = x.len();
    let mu = mean(x.iter().map(|v| v.wide()), w);
    let var = mean(x.iter().map(|v| (v.wide() - mu).powi(2)), w);
    let rstd = 1.0 / (var + eps).sqrt();
    for (h, v) in xh.iter_mut().zip(x) {
        *h = (v.wide() - mu) * rstd;
    }
    rstd
}

/// R{x̂} of one row from Rx.
fn r_normalise<T: Real>(xh: &[f64], rstd: f64, rx: &[T], rxh: &mut [f64]) -> f64 {
    let w = xh.len();
    let a = mean(rx.iter().map(|v| v.wide()), w);
    let b = mean(xh.iter().zip(rx).map(|(h, r)| h * r.wide()), w);
    for ((o, h), r) in rxh.iter_mut().zip(xh).zip(rx) {
        *o = rstd * (r.wide() - a - h * b);
    }
    b
}

fn ln_rows<T: Real>(l: Ln, x: &[T], theta: &[T], y: &mut [T]) {
    let w = l.width;
    let (g, b) = (&theta[l.gamma..l.gamma + w], &theta[l.beta..l.beta + w]);
    let mut xh = vec![0.0; w];
    for (xr, yr) in x.chunks_exact(w).zip(y.chunks_exact_mut(w)) {
        normalise(xr, l.eps, &mut xh);
        for j in 0..w {
            yr[j] = T::of(g[j].wide() * xh[j] + b[j].wide());
        }
    }
}

fn ln_vjp_rows<T: Real>(l: Ln, x: &[T], theta: &[T], dy: &[T], dx: &mut [T], prod: &mut [T]) {
    let w = l.width;
    let g = &theta[l.gamma..l.gamma + w];
    let (mut xh, mut dxh) = (vec![0.0; w], vec![0.0; w]);
    for (((xr, dyr), dxr), pr) in x
        .chunks_exact(w)
        .zip(dy.chunks_exact(w))
        .zip(dx.chunks_exact_mut(w))
        .zip(prod.chunks_exact_mut(w))
    {
        let rstd = normalise(xr, l.eps, &mut xh);
        for j in 0..w {
            dxh[j] = dyr[j].wide() * g[j].wide();
            pr[j] = T::of(dyr[j].wide() * xh[j]);
        }
        let m1 = mean(dxh.iter().copied(), w);
        let m2 = mean(dxh.iter().zip(&xh).map(|(a, b)| a * b), w);
        for j in 0..w {
            dxr[j] = T::of(rstd * (dxh[j] - m1 - xh[j] * m2));
        }
    }
}

fn ln_jvp_rows<T: Real>(l: Ln, x: &[T], rx: &[T], theta: &[T], v: &[T], ry: &mut [T]) {
    let w = l.width;
    let g = &theta[l.gamma..l.gamma + w];
    let (vg, vb) = (&v[l.gamma..l.gamma + w], &v[l.beta..l.beta + w]);
    let (mut xh, mut rxh) = (vec![0.0; w], vec![0.0; w]);
    for ((xr, rxr), ryr) in x
        .chunks_exact(w)
        .zip(rx.chunks_exact(w))
        .zip(ry.chunks_exact_mut(w))
    {
        let rstd = normalise(xr, l.eps, &mut xh);
        r_normalise(&xh, rstd, rxr, &mut rxh);
        for j in 0..w {
            ryr[j] = T::of(vg[j].wide() * xh[j] + g[j].wide() * rxh[j] + vb[j].wide());
        }
    }
}

/// LayerNorm's R-backward on whole rows: x and R{x}, θ and v, dy and R{dy} in; R{dx} and the
/// γ summand out.
fn ln_rvjp_rows<T: Real>(
    l: Ln,
    [x, rx]: [&[T]; 2],
    theta: &[T],
    v: &[T],
    [dy, rdy]: [&[T]; 2],
    rdx: &mut [T],
    prod: &mut [T],
) {
    let w = l.width;
    let g = &theta[l.gamma..l.gamma + w];
    let vg = &v[l.gamma..l.gamma + w];
    let (mut xh, mut rxh, mut dxh, mut rdxh) =
        (vec![0.0; w], vec![0.0; w], vec![0.0; w], vec![0.0; w]);
    for (i, (rdxr, pr)) in rdx
        .chunks_exact_mut(w)
        .zip(prod.chunks_exact_mut(w))
        .enumerate()
    {
        let row = i * w..(i + 1) * w;
        let (xr, rxr, dyr, rdyr) = (
            &x[row.clone()],
            &rx[row.clone()],
            &dy[row.clone()],
            &rdy[row],
        );
        let rstd = normalise(xr, l.eps, &mut xh);
        let b = r_normalise(&xh, rstd, rxr, &mut rxh);
        for j in 0..w {
            dxh[j] = dyr[j].wide() * g[j].wide();
            rdxh[j] = rdyr[j].wide() * g[j].wide() + dyr[j].wide() * vg[j].wide();
            pr[j] = T::of(rdyr[j].wide() * xh[j] + dyr[j].wide() * rxh[j]);
        }
        let m1 = mean(dxh.iter().copied(), w);
        let m2 = mean(dxh.iter().zip(&xh).map(|(a, b)| a * b), w);
        let rm1 = mean(rdxh.iter().copied(), w);
        let rm2 = mean((0..w).map(|j| rdxh[j] * xh[j] + dxh[j] * rxh[j]), w);
        let r_rstd = -b * rstd * rstd;
        for j in 0..w {
            let a = dxh[j] - m1 - xh[j] * m2;
            rdxr[j] = T::of(r_rstd * a + rstd * (rdxh[j] - rm1 - rxh[j] * m2 - xh[j] * rm2));
        }
    }
}

/// The pooling weights of one sequence.
fn pool_weights<T: Real>(masked: bool, ids: &[T]) -> Vec<f64> {
    let t = ids.len();
    if !masked {
        return vec![1.0 / t as f64; t];
    }
    let cnt = ids.iter().filter(|x| x.wide() != 0.0).count();
    ids.iter()
        .map(|x| {
            if x.wide() != 0.0 {
                1.0 / cnt as f64
            } else {
                0.0
            }
        })
        .collect()
}

fn mean_rows<T: Real>(g: Seq, masked: bool, ids: &[T], x: &[T], out: &mut [T]) {
    let (t, d) = (g.len, g.width);
    for r in 0..g.rows {
        let w = pool_weights(masked, &ids[r * t..(r + 1) * t]);
        for j in 0..d {
            let s: f64 = (0..t).map(|p| w[p] * x[(r * t + p) * d + j].wide()).sum();
            out[r * d + j] = T::of(s);
        }
    }
}

fn mean_adjoint_rows<T: Real>(g: Seq, masked: bool, ids: &[T], dy: &[T], dx: &mut [T]) {
    let (t, d) = (g.len, g.width);
    for r in 0..g.rows {
        let w = pool_weights(masked, &ids[r * t..(r + 1) * t]);
        for p in 0..t {
            for j in 0..d {
                dx[(r * t + p) * d + j] = T::of(w[p] * dy[r * d + j].wide());
            }
        }
    }
}

impl<T: Real> SeqOps for CpuBackend<T> {
    fn embed(
        &self,
        g: Seq,
        ids: Ten<'_, Self>,
        table: Ten<'_, Self>,
        pos_off: usize,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        self::embed(g, ids, table, pos_off, out)
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
        self::embed_grad(g, vocab, start, order, gy, out)
    }

    fn layer_norm(
        &self,
        l: Ln,
        x: Ten<'_, Self>,
        theta: &Vec<T>,
        y: TenMut<'_, Self>,
    ) -> Result<()> {
        self::layer_norm(l, x, theta, y)
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
        self::layer_norm_vjp(l, x, theta, dy, dx, prod)
    }

    fn layer_norm_jvp(
        &self,
        l: Ln,
        x: Dual<'_, Self>,
        theta: ThetaV<'_, Self>,
        ry: TenMut<'_, Self>,
    ) -> Result<()> {
        self::layer_norm_jvp(l, x, theta, ry)
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
        self::layer_norm_rvjp(l, x, theta, dy, rdx, prod)
    }

    fn attention(
        &self,
        a: Attn,
        ids: Ten<'_, Self>,
        qkv: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        probs: TenMut<'_, Self>,
    ) -> Result<()> {
        super::attention::attention(a, ids, qkv, out, probs)
    }

    fn attention_vjp(
        &self,
        a: Attn,
        qkv: Ten<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Ten<'_, Self>,
        dqkv: TenMut<'_, Self>,
    ) -> Result<()> {
        super::attention::attention_vjp(a, qkv, probs, dout, dqkv)
    }

    fn attention_jvp(
        &self,
        a: Attn,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        rout: TenMut<'_, Self>,
    ) -> Result<()> {
        super::attention::attention_jvp(a, qkv, probs, rout)
    }

    fn attention_rvjp(
        &self,
        a: Attn,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Dual<'_, Self>,
        rdqkv: TenMut<'_, Self>,
    ) -> Result<()> {
        super::attention::attention_rvjp(a, qkv, probs, dout, rdqkv)
    }

    fn seq_mean(
        &self,
        g: Seq,
        masked: bool,
        ids: Ten<'_, Self>,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        self::seq_mean(g, masked, ids, x, out)
    }

    fn seq_mean_adjoint(
        &self,
        g: Seq,
        masked: bool,
        ids: Ten<'_, Self>,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        self::seq_mean_adjoint(g, masked, ids, dy, dx)
    }

    fn packs_tokens(&self) -> bool {
        true
    }

    fn embed_varlen(
        &self,
        v: Varlen<'_, Self>,
        width: usize,
        ids: Ten<'_, Self>,
        table: Ten<'_, Self>,
        pos_off: usize,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        super::varlen::embed_varlen(v, width, ids, table, pos_off, out)
    }

    fn attention_varlen(
        &self,
        a: Attn,
        v: Varlen<'_, Self>,
        qkv: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        probs: TenMut<'_, Self>,
    ) -> Result<()> {
        super::varlen::attention_varlen(a, v, qkv, out, probs)
    }

    fn attention_varlen_vjp(
        &self,
        a: Attn,
        v: Varlen<'_, Self>,
        qkv: Ten<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Ten<'_, Self>,
        dqkv: TenMut<'_, Self>,
    ) -> Result<()> {
        super::varlen::attention_varlen_vjp(a, v, qkv, probs, dout, dqkv)
    }

    fn attention_varlen_jvp(
        &self,
        a: Attn,
        v: Varlen<'_, Self>,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        rout: TenMut<'_, Self>,
    ) -> Result<()> {
        super::varlen::attention_varlen_jvp(a, v, qkv, probs, rout)
    }

    fn attention_varlen_rvjp(
        &self,
        a: Attn,
        v: Varlen<'_, Self>,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Dual<'_, Self>,
        rdqkv: TenMut<'_, Self>,
    ) -> Result<()> {
        super::varlen::attention_varlen_rvjp(a, v, qkv, probs, dout, rdqkv)
    }

    fn seq_mean_varlen(
        &self,
        v: Varlen<'_, Self>,
        width: usize,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        super::varlen::seq_mean_varlen(v, width, x, out)
    }

    fn seq_mean_varlen_adjoint(
        &self,
        v: Varlen<'_, Self>,
        width: usize,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        super::varlen::seq_mean_varlen_adjoint(v, width, dy, dx)
    }
}
