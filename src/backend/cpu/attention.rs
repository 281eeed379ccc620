//! The CPU kernels of multi-head attention and its derivatives (forward, VJP, JVP, R-backward):
//! the twins of `shaders/attention.wgsl`'s kernels, one sequence and head at a time in f64.

use super::CpuBackend;
use super::par::{par_seqs2, threads};
use super::real::Real;
use super::{sl, sl_mut};
use crate::backend::{Attn, Dual, Ten, TenMut};
use crate::error::Result;

/// [`SeqOps::attention`](crate::backend::SeqOps::attention) on this backend.
pub(super) fn attention<T: Real>(
    a: Attn,
    ids: Ten<'_, CpuBackend<T>>,
    qkv: Ten<'_, CpuBackend<T>>,
    out: TenMut<'_, CpuBackend<T>>,
    probs: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(ids, ids_off) = ids;
    let Ten(qkv, q_off) = qkv;
    let TenMut(out, o_off) = out;
    let TenMut(probs, p_off) = probs;
    let (t, d, pr) = (a.seq, a.width(), a.probs_per_row());
    let ids = sl(ids, ids_off, a.rows * t, "attention ids")?;
    let qkv = sl(qkv, q_off, a.rows * t * 3 * d, "attention qkv")?;
    let out = sl_mut(out, o_off, a.rows * t * d, "attention out")?;
    let probs = sl_mut(probs, p_off, a.rows * pr, "attention probs")?;
    par_seqs2(threads(), out, t * d, probs, pr, |r, o, p| {
        attention_seq(
            a,
            &ids[r * t..][..t],
            &qkv[r * t * 3 * d..][..t * 3 * d],
            o,
            p,
        )
    });
    Ok(())
}

/// [`SeqOps::attention_vjp`](crate::backend::SeqOps::attention_vjp) on this backend.
pub(super) fn attention_vjp<T: Real>(
    a: Attn,
    qkv: Ten<'_, CpuBackend<T>>,
    probs: Ten<'_, CpuBackend<T>>,
    dout: Ten<'_, CpuBackend<T>>,
    dqkv: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(qkv, q_off) = qkv;
    let Ten(probs, p_off) = probs;
    let Ten(dout, d_off) = dout;
    let TenMut(dqkv, dq_off) = dqkv;
    let (t, d, pr) = (a.seq, a.width(), a.probs_per_row());
    let qkv = sl(qkv, q_off, a.rows * t * 3 * d, "attention_vjp qkv")?;
    let probs = sl(probs, p_off, a.rows * pr, "attention_vjp probs")?;
    let dout = sl(dout, d_off, a.rows * t * d, "attention_vjp dout")?;
    let dqkv = sl_mut(dqkv, dq_off, a.rows * t * 3 * d, "attention_vjp dqkv")?;
    par_seqs2(threads(), dqkv, t * 3 * d, &mut [], 0, |r, dq, _| {
        attention_vjp_seq(
            a,
            &qkv[r * t * 3 * d..][..t * 3 * d],
            &probs[r * pr..][..pr],
            &dout[r * t * d..][..t * d],
            dq,
        )
    });
    Ok(())
}

/// [`SeqOps::attention_jvp`](crate::backend::SeqOps::attention_jvp) on this backend.
pub(super) fn attention_jvp<T: Real>(
    a: Attn,
    qkv: Dual<'_, CpuBackend<T>>,
    probs: Ten<'_, CpuBackend<T>>,
    rout: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Dual {
        val: Ten(qkv, q_off),
        r: Ten(rqkv, rq_off),
    } = qkv;
    let Ten(probs, p_off) = probs;
    let TenMut(rout, ro_off) = rout;
    let (t, d, pr) = (a.seq, a.width(), a.probs_per_row());
    let qkv = sl(qkv, q_off, a.rows * t * 3 * d, "attention_jvp qkv")?;
    let probs = sl(probs, p_off, a.rows * pr, "attention_jvp probs")?;
    let rqkv = sl(rqkv, rq_off, a.rows * t * 3 * d, "attention_jvp rqkv")?;
    let rout = sl_mut(rout, ro_off, a.rows * t * d, "attention_jvp rout")?;
    par_seqs2(threads(), rout, t * d, &mut [], 0, |r, ro, _| {
        let q = r * t * 3 * d..(r + 1) * t * 3 * d;
        attention_jvp_seq(a, &qkv[q.clone()], &probs[r * pr..][..pr], &rqkv[q], ro)
    });
    Ok(())
}

/// [`SeqOps::attention_rvjp`](crate::backend::SeqOps::attention_rvjp) on this backend.
pub(super) fn attention_rvjp<T: Real>(
    a: Attn,
    qkv: Dual<'_, CpuBackend<T>>,
    probs: Ten<'_, CpuBackend<T>>,
    dout: Dual<'_, CpuBackend<T>>,
    rdqkv: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Dual {
        val: Ten(qkv, q_off),
        r: Ten(rqkv, rq_off),
    } = qkv;
    let Ten(probs, p_off) = probs;
    let Dual {
        val: Ten(dout, d_off),
        r: Ten(rdout, rd_off),
    } = dout;
    let TenMut(rdqkv, rdq_off) = rdqkv;
    let (t, d, pr) = (a.seq, a.width(), a.probs_per_row());
    let qkv = sl(qkv, q_off, a.rows * t * 3 * d, "attention_rvjp qkv")?;
    let probs = sl(probs, p_off, a.rows * pr, "attention_rvjp probs")?;
    let rqkv = sl(rqkv, rq_off, a.rows * t * 3 * d, "attention_rvjp rqkv")?;
    let dout = sl(dout, d_off, a.rows * t * d, "attention_rvjp dout")?;
    let rdout = sl(rdout, rd_off, a.rows * t * d, "attention_rvjp rdout")?;
    let rdqkv = sl_mut(rdqkv, rdq_off, a.rows * t * 3 * d, "attention_rvjp rdqkv")?;
    par_seqs2(threads(), rdqkv, t * 3 * d, &mut [], 0, |r, rdq, _| {
        let q = r * t * 3 * d..(r + 1) * t * 3 * d;
        let o = r * t * d..(r + 1) * t * d;
        attention_rvjp_seq(
            a,
            &qkv[q.clone()],
            &probs[r * pr..][..pr],
            &rqkv[q],
            &dout[o.clone()],
            &rdout[o],
            rdq,
        )
    });
    Ok(())
}

// Attention works on the keys that can receive attention: those not masked (forward), or
// those whose column of P is not all zero (the derivative passes). Every term of every pass at
// another key j carries a factor P_ij = 0 (P, RP = P ⊙ (…), dS = P ⊙ (…), R{dS} = RP ⊙ (…) +
// P ⊙ (…), dv_j = Σ_i P_ij do_i), so leaving them out is exact; with padding masked it saves
// most of the work (SST2-1k: 9.4 words on average of T = 51).

/// One sequence's q of head h as an f64 matrix [T, dh], and k, v at `keys` [L, dh].
fn head_qkv<T: Real>(a: Attn, qkv: &[T], h: usize, keys: &[usize]) -> [Vec<f64>; 3] {
    let (t, dh, d) = (a.seq, a.head_dim, a.width());
    let mut q = vec![0.0; t * dh];
    for i in 0..t {
        for (o, s) in q[i * dh..(i + 1) * dh]
            .iter_mut()
            .zip(&qkv[i * 3 * d + h * dh..][..dh])
        {
            *o = s.wide();
        }
    }
    let gather = |part: usize| {
        let mut m = vec![0.0; keys.len() * dh];
        for (l, &j) in keys.iter().enumerate() {
            for (o, s) in m[l * dh..(l + 1) * dh]
                .iter_mut()
                .zip(&qkv[j * 3 * d + part * d + h * dh..][..dh])
            {
                *o = s.wide();
            }
        }
        m
    };
    [q, gather(1), gather(2)]
}

fn dotd(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rows [T, dh] of head h of a [T, D] tensor, as f64.
fn head_rows<T: Real>(a: Attn, x: &[T], h: usize) -> Vec<f64> {
    let (t, dh, d) = (a.seq, a.head_dim, a.width());
    let mut m = vec![0.0; t * dh];
    for i in 0..t {
        for (o, s) in m[i * dh..(i + 1) * dh]
            .iter_mut()
            .zip(&x[i * d + h * dh..][..dh])
        {
            *o = s.wide();
        }
    }
    m
}

/// Write `m` (rows at positions `at`, [len(at), dh]) into head h's columns of a [T, stride]
/// tensor at column offset `col`, zeroing the rows not in `at`.
fn put_rows<T: Real>(
    a: Attn,
    m: &[f64],
    at: Option<&[usize]>,
    out: &mut [T],
    stride: usize,
    col: usize,
) {
    let dh = a.head_dim;
    if let Some(at) = at {
        for i in 0..a.seq {
            out[i * stride + col..][..dh].fill(T::zero());
        }
        for (l, &i) in at.iter().enumerate() {
            for (o, s) in out[i * stride + col..][..dh].iter_mut().zip(&m[l * dh..]) {
                *o = T::of(*s);
            }
        }
    } else {
        for i in 0..a.seq {
            for (o, s) in out[i * stride + col..][..dh].iter_mut().zip(&m[i * dh..]) {
                *o = T::of(*s);
            }
        }
    }
}

/// c[i] += scale · Σ_l m[i, l] b[l] for m [T, L], b [L, dh], c [T, dh].
fn m_b(t: usize, l: usize, dh: usize, m: &[f64], b: &[f64], c: &mut [f64], scale: f64) {
    for i in 0..t {
        let ci = &mut c[i * dh..(i + 1) * dh];
        for j in 0..l {
            let mij = m[i * l + j] * scale;
            if mij != 0.0 {
                for (o, x) in ci.iter_mut().zip(&b[j * dh..(j + 1) * dh]) {
                    *o += mij * x;
                }
            }
        }
    }
}

/// c[l] += scale · Σ_i m[i, l] b[i] for m [T, L], b [T, dh], c [L, dh].
fn mt_b(t: usize, l: usize, dh: usize, m: &[f64], b: &[f64], c: &mut [f64], scale: f64) {
    for i in 0..t {
        let bi = &b[i * dh..(i + 1) * dh];
        for j in 0..l {
            let mij = m[i * l + j] * scale;
            if mij != 0.0 {
                for (o, x) in c[j * dh..(j + 1) * dh].iter_mut().zip(bi) {
                    *o += mij * x;
                }
            }
        }
    }
}

/// S = s · q kᵀ ([T, L] for q [T, dh], k [L, dh]).
fn scores(t: usize, l: usize, dh: usize, q: &[f64], k: &[f64], s: f64) -> Vec<f64> {
    let mut out = vec![0.0; t * l];
    for i in 0..t {
        let qi = &q[i * dh..(i + 1) * dh];
        for j in 0..l {
            out[i * l + j] = s * dotd(qi, &k[j * dh..(j + 1) * dh]);
        }
    }
    out
}

/// The keys of head h whose column of P is not all zero, and P at them [T, L].
fn live_keys<T: Real>(t: usize, probs: &[T], h: usize) -> (Vec<usize>, Vec<f64>) {
    let ph = &probs[h * t * t..(h + 1) * t * t];
    let keys: Vec<usize> = (0..t)
        .filter(|&j| (0..t).any(|i| ph[i * t + j].wide() != 0.0))
        .collect();
    let l = keys.len();
    let mut p = vec![0.0; t * l];
    for i in 0..t {
        for (c, &j) in keys.iter().enumerate() {
            p[i * l + c] = ph[i * t + j].wide();
        }
    }
    (keys, p)
}

pub(super) fn attention_seq<T: Real>(
    a: Attn,
    ids: &[T],
    qkv: &[T],
    out: &mut [T],
    probs: &mut [T],
) {
    let (t, dh) = (a.seq, a.head_dim);
    let s = 1.0 / (dh as f64).sqrt();
    let keys: Vec<usize> = (0..t)
        .filter(|&j| !a.masked || ids[j].wide() != 0.0)
        .collect();
    let l = keys.len();
    probs.fill(T::zero());
    for h in 0..a.heads {
        let [q, k, v] = head_qkv(a, qkv, h, &keys);
        let mut p = scores(t, l, dh, &q, &k, s);
        for i in 0..t {
            let row = &mut p[i * l..(i + 1) * l];
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if m == f64::NEG_INFINITY {
                continue;
            }
            let mut z = 0.0;
            for x in row.iter_mut() {
                *x = (*x - m).exp();
                z += *x;
            }
            for x in row.iter_mut() {
                *x /= z;
            }
        }
        let mut o = vec![0.0; t * dh];
        m_b(t, l, dh, &p, &v, &mut o, 1.0);
        put_rows(a, &o, None, out, a.width(), h * dh);
        let ph = &mut probs[h * t * t..(h + 1) * t * t];
        for i in 0..t {
            for (c, &j) in keys.iter().enumerate() {
                ph[i * t + j] = T::of(p[i * l + c]);
            }
        }
    }
}

/// dP = do vᵀ, δ, dS = P ⊙ (dP − δ) for one head ([T, L]).
#[allow(clippy::type_complexity)]
fn dp_ds(
    t: usize,
    l: usize,
    dh: usize,
    p: &[f64],
    dout: &[f64],
    v: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let dp = scores(t, l, dh, dout, v, 1.0);
    let mut delta = vec![0.0; t];
    let mut ds = vec![0.0; t * l];
    for i in 0..t {
        delta[i] = dotd(&p[i * l..(i + 1) * l], &dp[i * l..(i + 1) * l]);
        for j in 0..l {
            ds[i * l + j] = p[i * l + j] * (dp[i * l + j] - delta[i]);
        }
    }
    (dp, delta, ds)
}

pub(super) fn attention_vjp_seq<T: Real>(
    a: Attn,
    qkv: &[T],
    probs: &[T],
    dout: &[T],
    dqkv: &mut [T],
) {
    let (t, dh, d) = (a.seq, a.head_dim, a.width());
    let s = 1.0 / (dh as f64).sqrt();
    for h in 0..a.heads {
        let (keys, p) = live_keys(t, probs, h);
        let l = keys.len();
        let [q, k, v] = head_qkv(a, qkv, h, &keys);
        let dout = head_rows(a, dout, h);
        let (_, _, ds) = dp_ds(t, l, dh, &p, &dout, &v);
        let (mut dq, mut dk, mut dv) = (vec![0.0; t * dh], vec![0.0; l * dh], vec![0.0; l * dh]);
        m_b(t, l, dh, &ds, &k, &mut dq, s);
        mt_b(t, l, dh, &ds, &q, &mut dk, s);
        mt_b(t, l, dh, &p, &dout, &mut dv, 1.0);
        put_rows(a, &dq, None, dqkv, 3 * d, h * dh);
        put_rows(a, &dk, Some(&keys), dqkv, 3 * d, d + h * dh);
        put_rows(a, &dv, Some(&keys), dqkv, 3 * d, 2 * d + h * dh);
    }
}

/// RP = P ⊙ (RS − Σ_j P RS) for one head ([T, L]), from q, k and their R{q}, R{k}.
fn r_probs(
    t: usize,
    l: usize,
    dh: usize,
    s: f64,
    p: &[f64],
    [q, k]: [&[f64]; 2],
    [rq, rk]: [&[f64]; 2],
) -> Vec<f64> {
    let a = scores(t, l, dh, rq, k, s);
    let b = scores(t, l, dh, q, rk, s);
    let mut rp = vec![0.0; t * l];
    for i in 0..t {
        let row = i * l..(i + 1) * l;
        let rho: f64 = row.clone().map(|ij| p[ij] * (a[ij] + b[ij])).sum();
        for ij in row {
            rp[ij] = p[ij] * (a[ij] + b[ij] - rho);
        }
    }
    rp
}

pub(super) fn attention_jvp_seq<T: Real>(
    a: Attn,
    qkv: &[T],
    probs: &[T],
    rqkv: &[T],
    rout: &mut [T],
) {
    let (t, dh) = (a.seq, a.head_dim);
    let s = 1.0 / (dh as f64).sqrt();
    for h in 0..a.heads {
        let (keys, p) = live_keys(t, probs, h);
        let l = keys.len();
        let [q, k, v] = head_qkv(a, qkv, h, &keys);
        let [rq, rk, rv] = head_qkv(a, rqkv, h, &keys);
        let rp = r_probs(t, l, dh, s, &p, [&q, &k], [&rq, &rk]);
        let mut ro = vec![0.0; t * dh];
        m_b(t, l, dh, &rp, &v, &mut ro, 1.0);
        m_b(t, l, dh, &p, &rv, &mut ro, 1.0);
        put_rows(a, &ro, None, rout, a.width(), h * dh);
    }
}

pub(super) fn attention_rvjp_seq<T: Real>(
    a: Attn,
    qkv: &[T],
    probs: &[T],
    rqkv: &[T],
    dout: &[T],
    rdout: &[T],
    rdqkv: &mut [T],
) {
    let (t, dh, d) = (a.seq, a.head_dim, a.width());
    let s = 1.0 / (dh as f64).sqrt();
    for h in 0..a.heads {
        let (keys, p) = live_keys(t, probs, h);
        let l = keys.len();
        let [q, k, v] = head_qkv(a, qkv, h, &keys);
        let [rq, rk, rv] = head_qkv(a, rqkv, h, &keys);
        let dout = head_rows(a, dout, h);
        let rdout = head_rows(a, rdout, h);
        let rp = r_probs(t, l, dh, s, &p, [&q, &k], [&rq, &rk]);
        let (dp, delta, ds) = dp_ds(t, l, dh, &p, &dout, &v);
        let rdp_a = scores(t, l, dh, &rdout, &v, 1.0);
        let rdp_b = scores(t, l, dh, &dout, &rv, 1.0);
        let mut rds = vec![0.0; t * l];
        for (i, di) in delta.iter().enumerate() {
            let row = i * l..(i + 1) * l;
            let rdelta: f64 = row
                .clone()
                .map(|ij| rp[ij] * dp[ij] + p[ij] * (rdp_a[ij] + rdp_b[ij]))
                .sum();
            for ij in row {
                rds[ij] = rp[ij] * (dp[ij] - di) + p[ij] * (rdp_a[ij] + rdp_b[ij] - rdelta);
            }
        }
        let (mut dq, mut dk, mut dv) = (vec![0.0; t * dh], vec![0.0; l * dh], vec![0.0; l * dh]);
        m_b(t, l, dh, &rds, &k, &mut dq, s);
        m_b(t, l, dh, &ds, &rk, &mut dq, s);
        mt_b(t, l, dh, &rds, &q, &mut dk, s);
        mt_b(t, l, dh, &ds, &rq, &mut dk, s);
        mt_b(t, l, dh, &rp, &dout, &mut dv, 1.0);
        mt_b(t, l, dh, &p, &rdout, &mut dv, 1.0);
        put_rows(a, &dq, None, rdqkv, 3 * d, h * dh);
        put_rows(a, &dk, Some(&keys), rdqkv, 3 * d, d + h * dh);
        put_rows(a, &dv, Some(&keys), rdqkv, 3 * d, 2 * d + h * dh);
    }
}
