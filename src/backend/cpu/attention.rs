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

/// The buffers of one thread's kernel calls, reused across heads and sequences so that a call
/// allocates only when a buffer grows (the kernels run sequence after sequence on each thread).
/// Every buffer is refilled (or zeroed) before use: nothing carries from one head to the next.
#[derive(Default)]
struct Scratch {
    /// The live keys.
    keys: Vec<usize>,
    /// q [T, dh], k, v at the keys [L, dh].
    qkv: [Vec<f64>; 3],
    /// R{q}, R{k}, R{v}.
    rqkv: [Vec<f64>; 3],
    /// The head's rows of dout and R{dout} [T, dh].
    dout: [Vec<f64>; 2],
    /// P, RP, dP, dS, R{dS} [T, L].
    p: Vec<f64>,
    rp: Vec<f64>,
    dp: Vec<f64>,
    ds: Vec<f64>,
    rds: Vec<f64>,
    /// Two score matrices [T, L] (the two halves of RS, then of R{dP}).
    sc: [Vec<f64>; 2],
    /// δ [T].
    delta: Vec<f64>,
    /// The head's outputs: dq (or o) [T, dh], dk, dv [L, dh].
    g: [Vec<f64>; 3],
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Run `f` with this thread's [`Scratch`] (the kernels do not nest, so the borrow is free).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

/// `v` as n zeros, reusing its allocation.
fn zeroed(v: &mut Vec<f64>, n: usize) -> &mut [f64] {
    v.clear();
    v.resize(n, 0.0);
    v
}

/// One sequence's q of head h as an f64 matrix [T, dh], and k, v at `keys` [L, dh], into `out`.
fn head_qkv<T: Real>(a: Attn, qkv: &[T], h: usize, keys: &[usize], out: &mut [Vec<f64>; 3]) {
    let (t, dh, d) = (a.seq, a.head_dim, a.width());
    let [q, k, v] = out;
    q.clear();
    for i in 0..t {
        q.extend(qkv[i * 3 * d + h * dh..][..dh].iter().map(|s| s.wide()));
    }
    for (part, m) in [(1, k), (2, v)] {
        m.clear();
        for &j in keys {
            m.extend(
                qkv[j * 3 * d + part * d + h * dh..][..dh]
                    .iter()
                    .map(|s| s.wide()),
            );
        }
    }
}

fn dotd(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rows [T, dh] of head h of a [T, D] tensor, as f64, into `m`.
fn head_rows<T: Real>(a: Attn, x: &[T], h: usize, m: &mut Vec<f64>) {
    let (t, dh, d) = (a.seq, a.head_dim, a.width());
    m.clear();
    for i in 0..t {
        m.extend(x[i * d + h * dh..][..dh].iter().map(|s| s.wide()));
    }
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

/// S = s · q kᵀ ([T, L] for q [T, dh], k [L, dh]) into `out`.
fn scores(l: usize, dh: usize, q: &[f64], k: &[f64], s: f64, out: &mut Vec<f64>) {
    out.clear();
    for qi in q.chunks_exact(dh) {
        out.extend((0..l).map(|j| s * dotd(qi, &k[j * dh..(j + 1) * dh])));
    }
}

/// The keys of head h whose column of P is not all zero, and P at them [T, L].
fn live_keys<T: Real>(t: usize, probs: &[T], h: usize, keys: &mut Vec<usize>, p: &mut Vec<f64>) {
    let ph = &probs[h * t * t..(h + 1) * t * t];
    keys.clear();
    keys.extend((0..t).filter(|&j| (0..t).any(|i| ph[i * t + j].wide() != 0.0)));
    p.clear();
    for i in 0..t {
        p.extend(keys.iter().map(|&j| ph[i * t + j].wide()));
    }
}

pub(super) fn attention_seq<T: Real>(
    a: Attn,
    ids: &[T],
    qkv: &[T],
    out: &mut [T],
    probs: &mut [T],
) {
    with_scratch(|sc| attention_seq_in(sc, a, ids, qkv, out, probs));
}

fn attention_seq_in<T: Real>(
    sc: &mut Scratch,
    a: Attn,
    ids: &[T],
    qkv: &[T],
    out: &mut [T],
    probs: &mut [T],
) {
    let (t, dh) = (a.seq, a.head_dim);
    let s = 1.0 / (dh as f64).sqrt();
    let Scratch {
        keys,
        qkv: hq,
        p,
        g,
        ..
    } = sc;
    keys.clear();
    keys.extend((0..t).filter(|&j| !a.masked || ids[j].wide() != 0.0));
    let l = keys.len();
    probs.fill(T::zero());
    for h in 0..a.heads {
        head_qkv(a, qkv, h, keys, hq);
        let [q, k, v] = &*hq;
        scores(l, dh, q, k, s, p);
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
        let o = zeroed(&mut g[0], t * dh);
        m_b(t, l, dh, p, v, o, 1.0);
        put_rows(a, o, None, out, a.width(), h * dh);
        let ph = &mut probs[h * t * t..(h + 1) * t * t];
        for i in 0..t {
            for (c, &j) in keys.iter().enumerate() {
                ph[i * t + j] = T::of(p[i * l + c]);
            }
        }
    }
}

/// dP = do vᵀ, δ, dS = P ⊙ (dP − δ) for one head ([T, L]), into `dp`, `delta`, `ds`.
fn dp_ds(
    t: usize,
    l: usize,
    dh: usize,
    [p, dout, v]: [&[f64]; 3],
    dp: &mut Vec<f64>,
    delta: &mut Vec<f64>,
    ds: &mut Vec<f64>,
) {
    scores(l, dh, dout, v, 1.0, dp);
    delta.clear();
    ds.clear();
    for i in 0..t {
        let (pi, dpi) = (&p[i * l..(i + 1) * l], &dp[i * l..(i + 1) * l]);
        let di = dotd(pi, dpi);
        delta.push(di);
        ds.extend(pi.iter().zip(dpi).map(|(pij, dpij)| pij * (dpij - di)));
    }
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
    with_scratch(|sc| {
        let Scratch {
            keys,
            qkv: hq,
            dout: [hd, _],
            p,
            dp,
            ds,
            delta,
            g: [dq, dk, dv],
            ..
        } = sc;
        for h in 0..a.heads {
            live_keys(t, probs, h, keys, p);
            let l = keys.len();
            head_qkv(a, qkv, h, keys, hq);
            let [q, k, v] = &*hq;
            head_rows(a, dout, h, hd);
            dp_ds(t, l, dh, [p, hd, v], dp, delta, ds);
            let (dq, dk, dv) = (zeroed(dq, t * dh), zeroed(dk, l * dh), zeroed(dv, l * dh));
            m_b(t, l, dh, ds, k, dq, s);
            mt_b(t, l, dh, ds, q, dk, s);
            mt_b(t, l, dh, p, hd, dv, 1.0);
            put_rows(a, dq, None, dqkv, 3 * d, h * dh);
            put_rows(a, dk, Some(keys), dqkv, 3 * d, d + h * dh);
            put_rows(a, dv, Some(keys), dqkv, 3 * d, 2 * d + h * dh);
        }
    });
}

/// RP = P ⊙ (RS − Σ_j P RS) for one head ([T, L]) into `rp`, from q, k and their R{q}, R{k};
/// `sc` holds the two halves of RS = s (R{q} kᵀ + q R{k}ᵀ) on return.
fn r_probs(
    t: usize,
    l: usize,
    dh: usize,
    s: f64,
    [p, q, k, rq, rk]: [&[f64]; 5],
    sc: &mut [Vec<f64>; 2],
    rp: &mut Vec<f64>,
) {
    let [a, b] = sc;
    scores(l, dh, rq, k, s, a);
    scores(l, dh, q, rk, s, b);
    rp.clear();
    for i in 0..t {
        let row = i * l..(i + 1) * l;
        let rho: f64 = row.clone().map(|ij| p[ij] * (a[ij] + b[ij])).sum();
        rp.extend(row.map(|ij| p[ij] * (a[ij] + b[ij] - rho)));
    }
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
    with_scratch(|sc| {
        let Scratch {
            keys,
            qkv: hq,
            rqkv: hr,
            p,
            rp,
            sc: two,
            g: [ro, ..],
            ..
        } = sc;
        for h in 0..a.heads {
            live_keys(t, probs, h, keys, p);
            let l = keys.len();
            head_qkv(a, qkv, h, keys, hq);
            head_qkv(a, rqkv, h, keys, hr);
            let ([q, k, v], [rq, rk, rv]) = (&*hq, &*hr);
            r_probs(t, l, dh, s, [p, q, k, rq, rk], two, rp);
            let ro = zeroed(ro, t * dh);
            m_b(t, l, dh, rp, v, ro, 1.0);
            m_b(t, l, dh, p, rv, ro, 1.0);
            put_rows(a, ro, None, rout, a.width(), h * dh);
        }
    });
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
    with_scratch(|sc| {
        let Scratch {
            keys,
            qkv: hq,
            rqkv: hr,
            dout: [hd, hrd],
            p,
            rp,
            dp,
            ds,
            rds,
            sc: two,
            delta,
            g: [dq, dk, dv],
        } = sc;
        for h in 0..a.heads {
            live_keys(t, probs, h, keys, p);
            let l = keys.len();
            head_qkv(a, qkv, h, keys, hq);
            head_qkv(a, rqkv, h, keys, hr);
            let ([q, k, v], [rq, rk, rv]) = (&*hq, &*hr);
            head_rows(a, dout, h, hd);
            head_rows(a, rdout, h, hrd);
            r_probs(t, l, dh, s, [p, q, k, rq, rk], two, rp);
            dp_ds(t, l, dh, [p, hd, v], dp, delta, ds);
            let [rdp_a, rdp_b] = two;
            scores(l, dh, hrd, v, 1.0, rdp_a);
            scores(l, dh, hd, rv, 1.0, rdp_b);
            rds.clear();
            for (i, di) in delta.iter().enumerate() {
                let row = i * l..(i + 1) * l;
                let rdelta: f64 = row
                    .clone()
                    .map(|ij| rp[ij] * dp[ij] + p[ij] * (rdp_a[ij] + rdp_b[ij]))
                    .sum();
                rds.extend(
                    row.map(|ij| rp[ij] * (dp[ij] - di) + p[ij] * (rdp_a[ij] + rdp_b[ij] - rdelta)),
                );
            }
            let (dq, dk, dv) = (zeroed(dq, t * dh), zeroed(dk, l * dh), zeroed(dv, l * dh));
            m_b(t, l, dh, rds, k, dq, s);
            m_b(t, l, dh, ds, rk, dq, s);
            mt_b(t, l, dh, rds, q, dk, s);
            mt_b(t, l, dh, ds, rq, dk, s);
            mt_b(t, l, dh, rp, hd, dv, 1.0);
            mt_b(t, l, dh, p, hrd, dv, 1.0);
            put_rows(a, dq, None, rdqkv, 3 * d, h * dh);
            put_rows(a, dk, Some(keys), rdqkv, 3 * d, d + h * dh);
            put_rows(a, dv, Some(keys), rdqkv, 3 * d, 2 * d + h * dh);
        }
    });
}
