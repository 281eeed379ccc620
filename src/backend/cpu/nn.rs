//! The CPU kernels of the network layers: fused bias and activation and their derivatives,
//! the convolution's im2col (in `conv`), 2×2 max-pooling, transposes, column sums, the losses and Adam.

use super::real::Real;
use super::{CpuBackend, conv};
use super::{sl, sl_mut};
use crate::backend::{
    Activation, AdamStep, ConvGeom, Dual, LossBlock, LossKind, Nhwc, Nn, Ten, TenMut, check_range,
};
use crate::error::Result;

/// [`Nn::bias_act`](crate::backend::Nn::bias_act) on this backend.
pub(super) fn bias_act<T: Real>(
    act: Option<Activation>,
    rows: usize,
    cols: usize,
    bias: Ten<'_, CpuBackend<T>>,
    x: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(bias, b_off) = bias;
    let TenMut(x, x_off) = x;
    let bias = sl(bias, b_off, cols, "bias")?;
    let x = sl_mut(x, x_off, rows * cols, "bias_act x")?;
    for row in x.chunks_exact_mut(cols.max(1)) {
        match act {
            None => row.iter_mut().zip(bias).for_each(|(v, &b)| *v = *v + b),
            Some(Activation::Tanh) => row
                .iter_mut()
                .zip(bias)
                .for_each(|(v, &b)| *v = T::tanh_fast(*v + b)),
            Some(Activation::Relu) => row
                .iter_mut()
                .zip(bias)
                .for_each(|(v, &b)| *v = (*v + b).max(T::zero())),
            Some(a) => row
                .iter_mut()
                .zip(bias)
                .for_each(|(v, &b)| *v = T::of(a.eval((*v + b).wide()).0)),
        }
    }
    Ok(())
}

/// [`Nn::act_d1_mul`](crate::backend::Nn::act_d1_mul) on this backend.
pub(super) fn act_d1_mul<T: Real>(
    act: Activation,
    len: usize,
    a: Ten<'_, CpuBackend<T>>,
    g: Ten<'_, CpuBackend<T>>,
    out: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(a, a_off) = a;
    let Ten(g, g_off) = g;
    let TenMut(out, o_off) = out;
    let a = sl(a, a_off, len, "act_d1 a")?;
    let g = sl(g, g_off, len, "act_d1 g")?;
    let out = sl_mut(out, o_off, len, "act_d1 out")?;
    let one = T::one();
    match act {
        Activation::Tanh => {
            for ((o, &ai), &gi) in out.iter_mut().zip(a).zip(g) {
                *o = gi * (one - ai * ai);
            }
        }
        Activation::Relu => {
            for ((o, &ai), &gi) in out.iter_mut().zip(a).zip(g) {
                *o = if ai > T::zero() { gi } else { T::zero() };
            }
        }
        smooth => {
            for ((o, &zi), &gi) in out.iter_mut().zip(a).zip(g) {
                *o = gi * T::of(smooth.derivs_cached(zi.wide()).0);
            }
        }
    }
    Ok(())
}

/// [`Nn::act_d2_r`](crate::backend::Nn::act_d2_r) on this backend.
pub(super) fn act_d2_r<T: Real>(
    act: Activation,
    len: usize,
    a: Ten<'_, CpuBackend<T>>,
    g: Dual<'_, CpuBackend<T>>,
    rz: Ten<'_, CpuBackend<T>>,
    out: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(a, a_off) = a;
    let Dual {
        val: Ten(g, g_off),
        r: Ten(rg, rg_off),
    } = g;
    let Ten(rz, rz_off) = rz;
    let TenMut(out, o_off) = out;
    let a = sl(a, a_off, len, "act_d2 a")?;
    let rg = sl(rg, rg_off, len, "act_d2 rg")?;
    let g = sl(g, g_off, len, "act_d2 g")?;
    let rz = sl(rz, rz_off, len, "act_d2 rz")?;
    let out = sl_mut(out, o_off, len, "act_d2 out")?;
    let one = T::one();
    let two = one + one;
    match act {
        Activation::Tanh => {
            for ((((o, &ai), &rgi), &gi), &rzi) in out.iter_mut().zip(a).zip(rg).zip(g).zip(rz) {
                let d1 = one - ai * ai;
                let d2 = -two * ai * d1;
                *o = rgi * d1 + gi * d2 * rzi;
            }
        }
        Activation::Relu => {
            for ((o, &ai), &rgi) in out.iter_mut().zip(a).zip(rg) {
                *o = if ai > T::zero() { rgi } else { T::zero() };
            }
        }
        smooth => {
            for ((((o, &zi), &rgi), &gi), &rzi) in out.iter_mut().zip(a).zip(rg).zip(g).zip(rz) {
                let (d1, d2) = smooth.derivs_cached(zi.wide());
                *o = rgi * T::of(d1) + gi * T::of(d2) * rzi;
            }
        }
    }
    Ok(())
}

/// [`Nn::act`](crate::backend::Nn::act) on this backend.
pub(super) fn act<T: Real>(act: Activation, len: usize, x: &mut [T], off: usize) -> Result<()> {
    let x = sl_mut(x, off, len, "act x")?;
    match act {
        Activation::Tanh => x.iter_mut().for_each(|v| *v = T::tanh_fast(*v)),
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(T::zero())),
        smooth => x
            .iter_mut()
            .for_each(|v| *v = T::of(smooth.eval(v.wide()).0)),
    }
    Ok(())
}

/// [`Nn::maxpool2`](crate::backend::Nn::maxpool2) on this backend.
pub(super) fn maxpool2<T: Real>(
    g: Nhwc,
    x: Ten<'_, CpuBackend<T>>,
    out: TenMut<'_, CpuBackend<T>>,
    idx: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(x, x_off) = x;
    let TenMut(out, o_off) = out;
    let TenMut(idx, i_off) = idx;
    let x = sl(x, x_off, g.len(), "maxpool x")?;
    let q = g.pooled();
    let out = sl_mut(out, o_off, q.len(), "maxpool out")?;
    let idx = sl_mut(idx, i_off, q.len(), "maxpool idx")?;
    let c = g.c;
    pool_windows(g, |o, at| {
        for k in 0..c {
            let mut best = x[at[0] + k];
            let mut pos = 0usize;
            for (p, &a) in at.iter().enumerate().skip(1) {
                let v = x[a + k];
                if v > best {
                    best = v;
                    pos = p;
                }
            }
            out[o + k] = best;
            idx[o + k] = T::of(pos as f64);
        }
    });
    Ok(())
}

/// [`Nn::pool2_gather`](crate::backend::Nn::pool2_gather) on this backend.
pub(super) fn pool2_gather<T: Real>(
    g: Nhwc,
    idx: Ten<'_, CpuBackend<T>>,
    src: Ten<'_, CpuBackend<T>>,
    out: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(idx, i_off) = idx;
    let Ten(src, s_off) = src;
    let TenMut(out, o_off) = out;
    let src = sl(src, s_off, g.len(), "pool gather src")?;
    let q = g.pooled();
    let idx = sl(idx, i_off, q.len(), "pool gather idx")?;
    let out = sl_mut(out, o_off, q.len(), "pool gather out")?;
    let c = g.c;
    pool_windows(g, |o, at| {
        for k in 0..c {
            out[o + k] = src[at[idx[o + k].wide() as usize & 3] + k];
        }
    });
    Ok(())
}

/// [`Nn::pool2_scatter`](crate::backend::Nn::pool2_scatter) on this backend.
pub(super) fn pool2_scatter<T: Real>(
    g: Nhwc,
    idx: Ten<'_, CpuBackend<T>>,
    gy: Ten<'_, CpuBackend<T>>,
    dx: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(idx, i_off) = idx;
    let Ten(gy, g_off) = gy;
    let TenMut(dx, dx_off) = dx;
    let q = g.pooled();
    let idx = sl(idx, i_off, q.len(), "pool scatter idx")?;
    let gy = sl(gy, g_off, q.len(), "pool scatter gy")?;
    let dx = sl_mut(dx, dx_off, g.len(), "pool scatter dx")?;
    let c = g.c;
    // Windows do not overlap: zero everything, then put each gradient at its arg-max.
    dx.fill(T::zero());
    pool_windows(g, |o, at| {
        for k in 0..c {
            dx[at[idx[o + k].wide() as usize & 3] + k] = gy[o + k];
        }
    });
    Ok(())
}

/// [`Nn::transpose_batch`](crate::backend::Nn::transpose_batch) on this backend.
pub(super) fn transpose_batch<T: Real>(
    batch: usize,
    rows: usize,
    cols: usize,
    src: Ten<'_, CpuBackend<T>>,
    dst: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(src, s_off) = src;
    let TenMut(dst, d_off) = dst;
    let len = batch * rows * cols;
    let src = sl(src, s_off, len, "transpose src")?;
    let dst = sl_mut(dst, d_off, len, "transpose dst")?;
    let m = rows * cols;
    for (sb, db) in src
        .chunks_exact(m.max(1))
        .zip(dst.chunks_exact_mut(m.max(1)))
    {
        for i in 0..rows {
            for j in 0..cols {
                db[j * rows + i] = sb[i * cols + j];
            }
        }
    }
    Ok(())
}

/// [`Nn::col_sum`](crate::backend::Nn::col_sum) on this backend.
pub(super) fn col_sum<T: Real>(
    rows: usize,
    cols: usize,
    alpha: f64,
    src: Ten<'_, CpuBackend<T>>,
    beta: f64,
    dst: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(src, s_off) = src;
    let TenMut(dst, d_off) = dst;
    let src = sl(src, s_off, rows * cols, "col_sum src")?;
    let dst = sl_mut(dst, d_off, cols, "col_sum dst")?;
    let mut acc = vec![0.0f64; cols];
    for row in src.chunks_exact(cols.max(1)) {
        for (a, &x) in acc.iter_mut().zip(row) {
            *a += x.wide();
        }
    }
    for (d, a) in dst.iter_mut().zip(acc) {
        let prev = if beta == 0.0 { 0.0 } else { beta * d.wide() };
        *d = T::of(prev + alpha * a);
    }
    Ok(())
}

/// [`Nn::loss_grad`](crate::backend::Nn::loss_grad) on this backend.
pub(super) fn loss_grad<T: Real>(
    blk: LossBlock,
    out: Ten<'_, CpuBackend<T>>,
    target: Ten<'_, CpuBackend<T>>,
    grad: TenMut<'_, CpuBackend<T>>,
    stats: &mut [T],
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
    let out = sl(out, o_off, rows * cols, "loss out")?;
    let target = sl(target, t_off, rows * cols, "loss target")?;
    let grad = sl_mut(grad, g_off, rows * cols, "loss grad")?;
    check_range("loss stats", stats.len(), 0, 2)?;
    let mut loss_sum = 0.0f64;
    let mut correct = 0usize;
    for r in 0..rows {
        let o = &out[r * cols..(r + 1) * cols];
        let t = &target[r * cols..(r + 1) * cols];
        let g = &mut grad[r * cols..(r + 1) * cols];
        if argmax(o) == argmax(t) {
            correct += 1;
        }
        match loss {
            LossKind::Mse => {
                let mut l = 0.0;
                for j in 0..cols {
                    let d = o[j].wide() - t[j].wide();
                    l += 0.5 * d * d;
                    g[j] = T::of(scale * d);
                }
                loss_sum += l;
            }
            LossKind::Ce => {
                // log-sum-exp with the max subtracted; soft targets allowed.
                let mx = o.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x.wide()));
                let se: f64 = o.iter().map(|&x| (x.wide() - mx).exp()).sum();
                let lse = mx + se.ln();
                let tsum: f64 = t.iter().map(|x| x.wide()).sum();
                let mut l = 0.0;
                for j in 0..cols {
                    let p = (o[j].wide() - lse).exp();
                    l -= t[j].wide() * (o[j].wide() - lse);
                    g[j] = T::of(scale * (tsum * p - t[j].wide()));
                }
                loss_sum += l;
            }
        }
    }
    stats[0] = T::of(stats[0].wide() + loss_sum);
    stats[1] = T::of(stats[1].wide() + correct as f64);
    Ok(())
}

/// [`Nn::loss_hess_mul`](crate::backend::Nn::loss_hess_mul) on this backend.
pub(super) fn loss_hess_mul<T: Real>(
    blk: LossBlock,
    out: Ten<'_, CpuBackend<T>>,
    rout: Ten<'_, CpuBackend<T>>,
    rgrad: TenMut<'_, CpuBackend<T>>,
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
    let out = sl(out, o_off, rows * cols, "loss_hess out")?;
    let rout = sl(rout, r_off, rows * cols, "loss_hess rout")?;
    let rgrad = sl_mut(rgrad, g_off, rows * cols, "loss_hess rgrad")?;
    match loss {
        LossKind::Mse => {
            for (g, &r) in rgrad.iter_mut().zip(rout) {
                *g = T::of(scale * r.wide());
            }
        }
        LossKind::Ce => {
            // ∇² of Σ_j t_j·(lse − o_j) is (Σ_j t_j)·(diag(p) − p pᵀ); targets are
            // distributions (one-hot here), so Σ_j t_j = 1.
            let mut p = vec![0.0f64; cols];
            for r in 0..rows {
                let o = &out[r * cols..(r + 1) * cols];
                let ro = &rout[r * cols..(r + 1) * cols];
                let mx = o.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x.wide()));
                let mut se = 0.0;
                for j in 0..cols {
                    p[j] = (o[j].wide() - mx).exp();
                    se += p[j];
                }
                let mut pr = 0.0;
                for j in 0..cols {
                    p[j] /= se;
                    pr += p[j] * ro[j].wide();
                }
                for j in 0..cols {
                    rgrad[r * cols + j] = T::of(scale * p[j] * (ro[j].wide() - pr));
                }
            }
        }
    }
    Ok(())
}

/// [`Nn::adam`](crate::backend::Nn::adam) on this backend.
pub(super) fn adam<T: Real>(
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    d: &mut [T],
    len: usize,
    h: AdamStep,
) -> Result<()> {
    let g = sl(g, 0, len, "adam g")?;
    let m = sl_mut(m, 0, len, "adam m")?;
    let v = sl_mut(v, 0, len, "adam v")?;
    let d = sl_mut(d, 0, len, "adam d")?;
    // The operations of the earlier host formula, in its order (on the f64 backend the
    // results are those of earlier versions bit for bit).
    for i in 0..len {
        let gi = g[i].wide();
        let mi = h.beta1 * m[i].wide() + (1.0 - h.beta1) * gi;
        let vi = h.beta2 * v[i].wide() + (1.0 - h.beta2) * gi * gi;
        m[i] = T::of(mi);
        v[i] = T::of(vi);
        d[i] = T::of(h.lr * (mi / h.c1) / ((vi / h.c2).sqrt() + h.eps));
    }
    Ok(())
}

fn argmax<T: Real>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Visit the 2×2 windows of images `g` (NHWC) in the pooled output's order: `f(o, at)` with `o` the
/// offset of the window's first output element and `at` the offsets of its four pixels' first
/// channel in row-major window order (dy, dx) = (0,0), (0,1), (1,0), (1,1).
fn pool_windows(g: Nhwc, mut f: impl FnMut(usize, [usize; 4])) {
    let (w, c) = (g.w, g.c);
    let q = g.pooled();
    let mut o = 0;
    for s in 0..g.n {
        for yq in 0..q.h {
            for xq in 0..q.w {
                let base = ((s * g.h + 2 * yq) * w + 2 * xq) * c;
                f(o, [base, base + c, base + w * c, base + w * c + c]);
                o += c;
            }
        }
    }
}

impl<T: Real> Nn for CpuBackend<T> {
    fn bias_act(
        &self,
        act: Option<Activation>,
        rows: usize,
        cols: usize,
        bias: Ten<'_, Self>,
        x: TenMut<'_, Self>,
    ) -> Result<()> {
        self::bias_act(act, rows, cols, bias, x)
    }

    fn act_d1_mul(
        &self,
        act: Activation,
        len: usize,
        a: Ten<'_, Self>,
        g: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        self::act_d1_mul(act, len, a, g, out)
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
        self::act_d2_r(act, len, a, g, rz, out)
    }

    fn act(&self, act: Activation, len: usize, x: &mut Vec<T>, off: usize) -> Result<()> {
        self::act(act, len, x, off)
    }

    fn im2col(&self, g: Nhwc, k: ConvGeom, x: Ten<'_, Self>, col: TenMut<'_, Self>) -> Result<()> {
        conv::im2col(g, k, x, col)
    }

    fn col2im(
        &self,
        g: Nhwc,
        k: ConvGeom,
        col: Ten<'_, Self>,
        beta: f64,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        conv::col2im(g, k, col, beta, dx)
    }

    fn maxpool2(
        &self,
        g: Nhwc,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        idx: TenMut<'_, Self>,
    ) -> Result<()> {
        self::maxpool2(g, x, out, idx)
    }

    fn pool2_gather(
        &self,
        g: Nhwc,
        idx: Ten<'_, Self>,
        src: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        self::pool2_gather(g, idx, src, out)
    }

    fn pool2_scatter(
        &self,
        g: Nhwc,
        idx: Ten<'_, Self>,
        gy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        self::pool2_scatter(g, idx, gy, dx)
    }

    fn transpose_batch(
        &self,
        batch: usize,
        rows: usize,
        cols: usize,
        src: Ten<'_, Self>,
        dst: TenMut<'_, Self>,
    ) -> Result<()> {
        self::transpose_batch(batch, rows, cols, src, dst)
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
        self::col_sum(rows, cols, alpha, src, beta, dst)
    }

    fn loss_grad(
        &self,
        blk: LossBlock,
        out: Ten<'_, Self>,
        target: Ten<'_, Self>,
        grad: TenMut<'_, Self>,
        stats: &mut Vec<T>,
    ) -> Result<()> {
        self::loss_grad(blk, out, target, grad, stats)
    }

    fn loss_hess_mul(
        &self,
        blk: LossBlock,
        out: Ten<'_, Self>,
        rout: Ten<'_, Self>,
        rgrad: TenMut<'_, Self>,
    ) -> Result<()> {
        self::loss_hess_mul(blk, out, rout, rgrad)
    }

    fn adam(
        &self,
        g: &Vec<T>,
        m: &mut Vec<T>,
        v: &mut Vec<T>,
        d: &mut Vec<T>,
        len: usize,
        h: AdamStep,
    ) -> Result<()> {
        self::adam(g, m, v, d, len, h)
    }
}
