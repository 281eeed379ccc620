//! The CPU kernels of the sequence ops (embedding, LayerNorm, attention, mean pooling): the twins
//! of `shaders/seq.wgsl`. Each works on one sequence (or one row) at a time, accumulates in f64,
//! and runs sequences on the backend's threads.

use super::cpu::Real;
use super::{Attn, Ln, Seq};

/// Run `f(r, a_r, b_r)` for every sequence r, where `a` and `b` are split into rows of `aw` and
/// `bw` elements (`bw` may be 0: `b_r` is then empty), on up to `threads` threads.
pub(crate) fn par_seqs2<T: Send>(
    threads: usize,
    a: &mut [T],
    aw: usize,
    b: &mut [T],
    bw: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) {
    let rows = a.len().checked_div(aw).unwrap_or(0);
    let t = threads.min(rows).max(1);
    let per = rows.div_ceil(t).max(1);
    let run = |r0: usize, a: &mut [T], b: &mut [T]| {
        let n = a.len().checked_div(aw).unwrap_or(0);
        for i in 0..n {
            let (ai, bi) = (
                &mut a[i * aw..(i + 1) * aw],
                if bw > 0 {
                    &mut b[i * bw..(i + 1) * bw]
                } else {
                    &mut b[0..0]
                },
            );
            f(r0 + i, ai, bi);
        }
    };
    if t <= 1 {
        run(0, a, b);
        return;
    }
    std::thread::scope(|s| {
        let mut b_rest: &mut [T] = b;
        for (i, ac) in a.chunks_mut(per * aw).enumerate() {
            let nb = if bw > 0 { (ac.len() / aw) * bw } else { 0 };
            let (bc, rest) = std::mem::take(&mut b_rest).split_at_mut(nb);
            b_rest = rest;
            let run = &run;
            s.spawn(move || run(i * per, ac, bc));
        }
    });
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

pub(crate) fn layer_norm<T: Real>(l: Ln, x: &[T], theta: &[T], y: &mut [T]) {
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

pub(crate) fn layer_norm_vjp<T: Real>(
    l: Ln,
    x: &[T],
    theta: &[T],
    dy: &[T],
    dx: &mut [T],
    prod: &mut [T],
) {
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

pub(crate) fn layer_norm_jvp<T: Real>(
    l: Ln,
    x: &[T],
    rx: &[T],
    theta: &[T],
    v: &[T],
    ry: &mut [T],
) {
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

#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm_rvjp<T: Real>(
    l: Ln,
    x: &[T],
    rx: &[T],
    theta: &[T],
    v: &[T],
    dy: &[T],
    rdy: &[T],
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

pub(crate) fn attention_seq<T: Real>(
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

pub(crate) fn attention_vjp_seq<T: Real>(
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

/// RP = P ⊙ (RS − Σ_j P RS) for one head ([T, L]).
#[allow(clippy::too_many_arguments)]
fn r_probs(
    t: usize,
    l: usize,
    dh: usize,
    s: f64,
    p: &[f64],
    q: &[f64],
    k: &[f64],
    rq: &[f64],
    rk: &[f64],
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

pub(crate) fn attention_jvp_seq<T: Real>(
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
        let rp = r_probs(t, l, dh, s, &p, &q, &k, &rq, &rk);
        let mut ro = vec![0.0; t * dh];
        m_b(t, l, dh, &rp, &v, &mut ro, 1.0);
        m_b(t, l, dh, &p, &rv, &mut ro, 1.0);
        put_rows(a, &ro, None, rout, a.width(), h * dh);
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_rvjp_seq<T: Real>(
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
        let rp = r_probs(t, l, dh, s, &p, &q, &k, &rq, &rk);
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

/// The pooling weights of one sequence.
pub(crate) fn pool_weights<T: Real>(masked: bool, ids: &[T]) -> Vec<f64> {
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

pub(crate) fn seq_mean<T: Real>(g: Seq, masked: bool, ids: &[T], x: &[T], out: &mut [T]) {
    let (t, d) = (g.len, g.width);
    for r in 0..g.rows {
        let w = pool_weights(masked, &ids[r * t..(r + 1) * t]);
        for j in 0..d {
            let s: f64 = (0..t).map(|p| w[p] * x[(r * t + p) * d + j].wide()).sum();
            out[r * d + j] = T::of(s);
        }
    }
}

pub(crate) fn seq_mean_adjoint<T: Real>(g: Seq, masked: bool, ids: &[T], dy: &[T], dx: &mut [T]) {
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
