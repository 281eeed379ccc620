//! The CPU kernels on packed live tokens ([`Varlen`], issue 33): the embedding, attention and
//! its derivative passes, and the mean over a sequence. A sequence's tokens are one block of
//! rows; its attention is [`super::attention`]'s kernel run on its L tokens with every key live,
//! so each live position gets the masked padded form's numbers (the padded form's extra terms
//! all carry a factor 0: masked keys, zero gradients at padding queries).

use super::CpuBackend;
use super::attention::{attention_jvp_seq, attention_rvjp_seq, attention_seq, attention_vjp_seq};
use super::par::{PAR_MIN, threads};
use super::real::Real;
use super::{sl, sl_mut};
use crate::backend::{Attn, Dual, Ten, TenMut, Varlen};
use crate::error::{Error, Result};

/// The token offsets of `v` as integers, checked: `rows + 1` entries rising from 0 to `tokens`,
/// no sequence longer than T.
fn offsets<T: Real>(v: Varlen<'_, CpuBackend<T>>) -> Result<Vec<usize>> {
    let o = sl(v.offs, 0, v.rows + 1, "varlen offsets")?;
    let offs: Vec<usize> = o.iter().map(|x| x.wide() as usize).collect();
    let bad = offs[0] != 0
        || offs[v.rows] != v.tokens
        || offs.windows(2).any(|w| w[1] < w[0] || w[1] - w[0] > v.seq);
    if bad {
        return Err(Error::Shape(format!(
            "varlen offsets of {} sequences of at most {} tokens do not rise from 0 to {} tokens",
            v.rows, v.seq, v.tokens
        )));
    }
    Ok(offs)
}

/// Run `f(r, a_r, b_r)` for every sequence r, where `a` holds `aw` scalars per token (sequence
/// r's tokens `offs[r]..offs[r+1]`) and `b` `bw` per sequence (`bw` may be 0: `b_r` is then
/// empty), on up to [`threads`] threads, each a run of whole sequences with about as many
/// tokens as the others. Each sequence is computed alone, so the results do not depend on the
/// split.
fn par_varlen<T: Send>(
    offs: &[usize],
    (a, aw): (&mut [T], usize),
    (b, bw): (&mut [T], usize),
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) {
    let rows = offs.len() - 1;
    let tokens = offs[rows];
    let work = tokens * aw * offs.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let t = if work < PAR_MIN {
        1
    } else {
        threads().min(rows).max(1)
    };
    let run = |r0: usize, r1: usize, mut a: &mut [T], mut b: &mut [T]| {
        for r in r0..r1 {
            let (ar, rest) = std::mem::take(&mut a).split_at_mut((offs[r + 1] - offs[r]) * aw);
            a = rest;
            let (br, rest) = std::mem::take(&mut b).split_at_mut(bw);
            b = rest;
            f(r, ar, br);
        }
    };
    if t <= 1 {
        run(0, rows, a, b);
        return;
    }
    let mut cut = vec![0];
    for g in 1..t {
        let r = offs.partition_point(|&o| o < tokens * g / t).min(rows);
        cut.push(r.max(cut[g - 1]));
    }
    cut.push(rows);
    std::thread::scope(|s| {
        let (mut a, mut b) = (a, b);
        for g in 0..t {
            let (r0, r1) = (cut[g], cut[g + 1]);
            let (ag, rest) = std::mem::take(&mut a).split_at_mut((offs[r1] - offs[r0]) * aw);
            a = rest;
            let (bg, rest) = std::mem::take(&mut b).split_at_mut((r1 - r0) * bw);
            b = rest;
            let run = &run;
            s.spawn(move || run(r0, r1, ag, bg));
        }
    });
}

/// One sequence of L packed tokens as a batch of one unmasked sequence of length L.
fn one(a: Attn, l: usize) -> Attn {
    Attn {
        rows: 1,
        seq: l,
        masked: false,
        ..a
    }
}

/// [`SeqOps::embed_varlen`](crate::backend::SeqOps::embed_varlen) on this backend.
pub(super) fn embed_varlen<T: Real>(
    v: Varlen<'_, CpuBackend<T>>,
    d: usize,
    ids: Ten<'_, CpuBackend<T>>,
    table: Ten<'_, CpuBackend<T>>,
    pos_off: usize,
    out: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let (Ten(ids, ids_off), Ten(table, tok_off), TenMut(out, o_off)) = (ids, table, out);
    let t = v.seq;
    let ids = sl(ids, ids_off, v.rows * t, "embed_varlen ids")?;
    let pos = sl(v.pos, 0, v.tokens, "embed_varlen positions")?;
    let ptab = sl(table, pos_off, t * d, "embed_varlen position table")?;
    let out = sl_mut(out, o_off, v.tokens * d, "embed_varlen out")?;
    for (o, p) in out.chunks_exact_mut(d).zip(pos) {
        let p = p.wide() as usize;
        let id = ids.get(p).map_or(usize::MAX, |x| x.wide() as usize);
        let row = sl(
            table,
            tok_off + id.saturating_mul(d),
            d,
            "embed_varlen token row",
        )?;
        let pr = &ptab[(p % t) * d..][..d];
        for j in 0..d {
            o[j] = row[j] + pr[j];
        }
    }
    Ok(())
}

/// [`SeqOps::attention_varlen`](crate::backend::SeqOps::attention_varlen) on this backend.
pub(super) fn attention_varlen<T: Real>(
    a: Attn,
    v: Varlen<'_, CpuBackend<T>>,
    qkv: Ten<'_, CpuBackend<T>>,
    out: TenMut<'_, CpuBackend<T>>,
    probs: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let (Ten(qkv, q_off), TenMut(out, o_off), TenMut(probs, p_off)) = (qkv, out, probs);
    let (d, pr) = (a.width(), a.probs_per_row());
    let offs = offsets(v)?;
    let qkv = sl(qkv, q_off, v.tokens * 3 * d, "attention_varlen qkv")?;
    let out = sl_mut(out, o_off, v.tokens * d, "attention_varlen out")?;
    let probs = sl_mut(probs, p_off, v.rows * pr, "attention_varlen probs")?;
    par_varlen(&offs, (out, d), (probs, pr), |r, o, p| {
        let (t0, l) = (offs[r], offs[r + 1] - offs[r]);
        let hll = a.heads * l * l;
        attention_seq(
            one(a, l),
            &[],
            &qkv[t0 * 3 * d..][..l * 3 * d],
            o,
            &mut p[..hll],
        );
    });
    Ok(())
}

/// [`SeqOps::attention_varlen_vjp`](crate::backend::SeqOps::attention_varlen_vjp) on this
/// backend.
pub(super) fn attention_varlen_vjp<T: Real>(
    a: Attn,
    v: Varlen<'_, CpuBackend<T>>,
    qkv: Ten<'_, CpuBackend<T>>,
    probs: Ten<'_, CpuBackend<T>>,
    dout: Ten<'_, CpuBackend<T>>,
    dqkv: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let (Ten(qkv, q_off), Ten(probs, p_off)) = (qkv, probs);
    let (Ten(dout, d_off), TenMut(dqkv, dq_off)) = (dout, dqkv);
    let (d, pr) = (a.width(), a.probs_per_row());
    let offs = offsets(v)?;
    let qkv = sl(qkv, q_off, v.tokens * 3 * d, "attention_varlen_vjp qkv")?;
    let probs = sl(probs, p_off, v.rows * pr, "attention_varlen_vjp probs")?;
    let dout = sl(dout, d_off, v.tokens * d, "attention_varlen_vjp dout")?;
    let dqkv = sl_mut(dqkv, dq_off, v.tokens * 3 * d, "attention_varlen_vjp dqkv")?;
    par_varlen(&offs, (dqkv, 3 * d), (&mut [], 0), |r, dq, _| {
        let (t0, l) = (offs[r], offs[r + 1] - offs[r]);
        attention_vjp_seq(
            one(a, l),
            &qkv[t0 * 3 * d..][..l * 3 * d],
            &probs[r * pr..][..a.heads * l * l],
            &dout[t0 * d..][..l * d],
            dq,
        );
    });
    Ok(())
}

/// [`SeqOps::attention_varlen_jvp`](crate::backend::SeqOps::attention_varlen_jvp) on this
/// backend.
pub(super) fn attention_varlen_jvp<T: Real>(
    a: Attn,
    v: Varlen<'_, CpuBackend<T>>,
    qkv: Dual<'_, CpuBackend<T>>,
    probs: Ten<'_, CpuBackend<T>>,
    rout: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Dual {
        val: Ten(qkv, q_off),
        r: Ten(rqkv, rq_off),
    } = qkv;
    let (Ten(probs, p_off), TenMut(rout, ro_off)) = (probs, rout);
    let (d, pr) = (a.width(), a.probs_per_row());
    let offs = offsets(v)?;
    let qkv = sl(qkv, q_off, v.tokens * 3 * d, "attention_varlen_jvp qkv")?;
    let rqkv = sl(rqkv, rq_off, v.tokens * 3 * d, "attention_varlen_jvp rqkv")?;
    let probs = sl(probs, p_off, v.rows * pr, "attention_varlen_jvp probs")?;
    let rout = sl_mut(rout, ro_off, v.tokens * d, "attention_varlen_jvp rout")?;
    par_varlen(&offs, (rout, d), (&mut [], 0), |r, ro, _| {
        let (t0, l) = (offs[r], offs[r + 1] - offs[r]);
        let q = t0 * 3 * d..(t0 + l) * 3 * d;
        let p = &probs[r * pr..][..a.heads * l * l];
        attention_jvp_seq(one(a, l), &qkv[q.clone()], p, &rqkv[q], ro);
    });
    Ok(())
}

/// [`SeqOps::attention_varlen_rvjp`](crate::backend::SeqOps::attention_varlen_rvjp) on this
/// backend.
pub(super) fn attention_varlen_rvjp<T: Real>(
    a: Attn,
    v: Varlen<'_, CpuBackend<T>>,
    qkv: Dual<'_, CpuBackend<T>>,
    probs: Ten<'_, CpuBackend<T>>,
    dout: Dual<'_, CpuBackend<T>>,
    rdqkv: TenMut<'_, CpuBackend<T>>,
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
    let (d, pr, n) = (a.width(), a.probs_per_row(), v.tokens);
    let offs = offsets(v)?;
    let qkv = sl(qkv, q_off, n * 3 * d, "attention_varlen_rvjp qkv")?;
    let rqkv = sl(rqkv, rq_off, n * 3 * d, "attention_varlen_rvjp rqkv")?;
    let probs = sl(probs, p_off, v.rows * pr, "attention_varlen_rvjp probs")?;
    let dout = sl(dout, d_off, n * d, "attention_varlen_rvjp dout")?;
    let rdout = sl(rdout, rd_off, n * d, "attention_varlen_rvjp rdout")?;
    let rdqkv = sl_mut(rdqkv, rdq_off, n * 3 * d, "attention_varlen_rvjp rdqkv")?;
    par_varlen(&offs, (rdqkv, 3 * d), (&mut [], 0), |r, rdq, _| {
        let (t0, l) = (offs[r], offs[r + 1] - offs[r]);
        let (q, o) = (t0 * 3 * d..(t0 + l) * 3 * d, t0 * d..(t0 + l) * d);
        attention_rvjp_seq(
            one(a, l),
            &qkv[q.clone()],
            &probs[r * pr..][..a.heads * l * l],
            &rqkv[q],
            &dout[o.clone()],
            &rdout[o],
            rdq,
        );
    });
    Ok(())
}

/// [`SeqOps::seq_mean_varlen`](crate::backend::SeqOps::seq_mean_varlen) on this backend: in
/// f64, token by token in order (the padded form's sum without its zero terms).
pub(super) fn seq_mean_varlen<T: Real>(
    v: Varlen<'_, CpuBackend<T>>,
    d: usize,
    x: Ten<'_, CpuBackend<T>>,
    out: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let (Ten(x, x_off), TenMut(out, o_off)) = (x, out);
    let offs = offsets(v)?;
    let x = sl(x, x_off, v.tokens * d, "seq_mean_varlen x")?;
    let out = sl_mut(out, o_off, v.rows * d, "seq_mean_varlen out")?;
    for (r, o) in out.chunks_exact_mut(d).enumerate() {
        let (t0, t1) = (offs[r], offs[r + 1]);
        let w = if t1 > t0 { 1.0 / (t1 - t0) as f64 } else { 0.0 };
        for (j, oj) in o.iter_mut().enumerate() {
            let s: f64 = (t0..t1).map(|p| w * x[p * d + j].wide()).sum();
            *oj = T::of(s);
        }
    }
    Ok(())
}

/// [`SeqOps::seq_mean_varlen_adjoint`](crate::backend::SeqOps::seq_mean_varlen_adjoint) on
/// this backend.
pub(super) fn seq_mean_varlen_adjoint<T: Real>(
    v: Varlen<'_, CpuBackend<T>>,
    d: usize,
    dy: Ten<'_, CpuBackend<T>>,
    dx: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let (Ten(dy, y_off), TenMut(dx, x_off)) = (dy, dx);
    let offs = offsets(v)?;
    let dy = sl(dy, y_off, v.rows * d, "seq_mean_varlen_adjoint dy")?;
    let dx = sl_mut(dx, x_off, v.tokens * d, "seq_mean_varlen_adjoint dx")?;
    for r in 0..v.rows {
        let (t0, t1) = (offs[r], offs[r + 1]);
        let w = 1.0 / (t1 - t0).max(1) as f64;
        for p in t0..t1 {
            for j in 0..d {
                dx[p * d + j] = T::of(w * dy[r * d + j].wide());
            }
        }
    }
    Ok(())
}
