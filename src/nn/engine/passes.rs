//! The engine's passes over one chunk of samples, each a loop over the graph's ops through their
//! [`OpRule`](crate::nn::ops::OpRule) (no op is named here): the forward pass, the loss and the
//! backward pass (set_params, or an HVP that recomputes its chunk), and the R-forward and
//! R-backward passes of a block of directions (the HVP). The loops say where each tensor of a
//! pass lives ([`Pass`]); the ops say what to do with it.

use super::input::DataInput;
use super::tokens::{Pack, TokenPlan};
use super::{Engine, SCRATCH_BUDGET};
use crate::backend::Backend;
use crate::error::Result;
use crate::nn::graph::{Graph, Op};
use crate::nn::ops::{Block, Input, Kinks, Packed, Pass, Ten, TenMut};

/// Where a chunk's rows live: data row `r0`, row `ro` of the value and gradient buffers (r0 when
/// every sample's are cached, 0 when they hold one chunk), chunk index `ci`.
#[derive(Clone, Copy)]
struct At {
    r0: usize,
    ro: usize,
    ci: usize,
}

impl<B: Backend + Clone> Engine<B> {
    fn at(&self, r0: usize) -> At {
        At {
            r0,
            ro: if self.plan.cached { r0 } else { 0 },
            ci: r0 / self.plan.chunk,
        }
    }

    /// Forward and backward pass of samples r0..r0+c. With `accumulate` the loss statistics and
    /// ∂L/∂θ are summed (set_params); without, only the per-sample tensors are refreshed (an HVP
    /// that recomputes its chunk).
    pub(super) fn forward_backward_chunk(
        &mut self,
        r0: usize,
        c: usize,
        accumulate: bool,
    ) -> Result<()> {
        self.forward_chunk(r0, c)?;
        self.backward_chunk(r0, c, accumulate)
    }

    /// The kinks θ sits on over all samples ([`Kinks`]: ReLU inputs exactly 0, max-pool windows
    /// with a tied non-zero maximum): one forward pass that reads each kinked op's input back to
    /// the host. The parameters must be set; the values it recomputes are the same bit for bit,
    /// so the engine's state is as it was.
    pub fn count_kinks(&mut self) -> Result<Kinks> {
        self.ready()?;
        if !self.graph.ops.iter().any(|op| op.layer().has_kinks()) {
            return Ok(Kinks::default());
        }
        self.probe = Some(Kinks::default());
        let mut r0 = 0;
        let mut done = Ok(());
        while r0 < self.n && done.is_ok() {
            let c = self.plan.chunk.min(self.n - r0);
            done = self.forward_chunk(r0, c);
            r0 += c;
        }
        let counted = self.probe.take().unwrap_or_default();
        done.map(|()| counted)
    }

    /// The forward pass of samples r0..r0+c into the value slots (and what ops keep in aux).
    fn forward_chunk(&mut self, r0: usize, c: usize) -> Result<()> {
        let at = self.at(r0);
        let Engine {
            backend: be,
            graph,
            input,
            theta,
            val,
            vslot,
            aux,
            col,
            probe,
            tokens,
            ..
        } = self;
        let ro = at.ro;
        let lay = Lay::new(tokens, input, at.ci, c);
        for t in 0..graph.ops.len() {
            let op = lay.op(graph, t);
            let sh = graph.ops[t].layer().shape();
            let (wx, wy) = (sh.input, sh.output);
            // Counting kinks (Engine::count_kinks): the op's input before an in-place op
            // overwrites it (the previous tensor's slot either way).
            if let Some(k) = probe.as_mut()
                && t > 0
                && op.layer().has_kinks()
            {
                let xs = be.download_range(&val[vslot[t - 1]], ro * wx, lay.len(graph, t - 1))?;
                *k = k.plus(op.layer().kinks(&xs));
            }
            // x: the data, nothing (an op in place over its input's slot) or the previous value;
            // a residual also reads an earlier value.
            let (x, skip, y): (Option<Input<B>>, Option<Ten<B>>, &mut B::Buf) = if t == 0 {
                (Some(input.first(r0, wx)), None, &mut val[vslot[0]])
            } else if vslot[t] == vslot[t - 1] {
                (None, None, &mut val[vslot[t]])
            } else if let Some(from) = op.skip_from() {
                let ws = graph.ops[from].out_width();
                let (x, s, y) = three(val, vslot[t - 1], vslot[from], vslot[t]);
                (Some(Input::Buf(Ten(x, ro * wx))), Some(Ten(s, ro * ws)), y)
            } else {
                let (x, y) = two(val, vslot[t - 1], vslot[t]);
                (Some(Input::Buf(Ten(x, ro * wx))), None, y)
            };
            op.rule::<B>().forward(Pass {
                x,
                skip,
                ids: input.ids(r0),
                y_out: Some(TenMut(y, ro * wy)),
                aux_out: Some(TenMut(&mut aux[t], ro * sh.aux)),
                scratch: Some(&mut *col),
                packed: lay.packed(),
                ..Pass::new(be, lay.rows(t), theta)
            })?;
        }
        Ok(())
    }

    /// The loss of samples r0..r0+c (its statistics summed when `accumulate`) and the backward
    /// pass into the gradient slots (and ∂L/∂θ when `accumulate`).
    fn backward_chunk(&mut self, r0: usize, c: usize, accumulate: bool) -> Result<()> {
        let at = self.at(r0);
        let Engine {
            backend: be,
            graph,
            loss,
            input,
            t: target,
            theta,
            grad,
            val,
            vslot,
            grd,
            aux,
            skips,
            col,
            stats,
            scratch_stats,
            tokens,
            ..
        } = self;
        let ro = at.ro;
        let lay = Lay::new(tokens, input, at.ci, c);
        let last = graph.ops.len() - 1;
        let k = loss.classes;
        loss.forward_vjp(
            be,
            c,
            Ten(&val[vslot[last]], ro * k),
            Ten(target, r0 * k),
            TenMut(&mut grd[last], ro * k),
            if accumulate { stats } else { scratch_stats },
        )?;
        for t in (0..=last).rev() {
            let op = lay.op(graph, t);
            let sh = graph.ops[t].layer().shape();
            let (wx, wy) = (sh.input, sh.output);
            let (gy, gx) = if t > 0 {
                let (gy, gx) = two(grd, t, t - 1);
                (Ten(gy, ro * wy), Some(TenMut(gx, ro * wx)))
            } else {
                (Ten(&grd[0], ro * wy), None)
            };
            op.rule::<B>().vjp(Pass {
                x: Some(op_input(t, input, val, vslot, at, wx)),
                y: Some(Ten(&val[vslot[t]], ro * wy)),
                gy: Some(gy),
                aux: Some(Ten(&aux[t], ro * sh.aux)),
                ids: input.ids(r0),
                index: input.index(at.ci),
                grad: accumulate.then_some(TenMut(&mut *grad, 0)),
                gx,
                scratch: Some(&mut *col),
                packed: lay.packed(),
                ..Pass::new(be, lay.rows(t), theta)
            })?;
            // The residuals that read tensor t − 1 add their share of its gradient (on packed
            // tokens, the add's one-position form over the live tokens).
            for &a in skips.get(t.wrapping_sub(1)).into_iter().flatten() {
                let (add, wa) = (lay.op(graph, a), graph.ops[a].out_width());
                let (ga, gs) = two(grd, a, t - 1);
                add.rule::<B>().skip_vjp(Pass {
                    skip: Some(Ten(&val[vslot[t - 1]], ro * wx)),
                    gy: Some(Ten(ga, ro * wa)),
                    gx: Some(TenMut(gs, ro * wx)),
                    grad: accumulate.then_some(TenMut(&mut *grad, 0)),
                    scratch: Some(&mut *col),
                    packed: lay.packed(),
                    ..Pass::new(be, lay.rows(a), theta)
                })?;
            }
        }
        Ok(())
    }

    /// The block HVP's loop over the data (see [`Engine::hvp_block`]; the ranges checked):
    /// rows r of `out` (at `out.1 + r·p`) = H times row r of `v`.
    pub(super) fn hvp_rows(&mut self, v: Ten<B>, rows: usize, out: TenMut<B>) -> Result<()> {
        let p = self.num_params();
        let width = self.block_width(rows)?;
        self.backend.fill(out.0, out.1, rows * p, 0.0)?;
        let mut r0 = 0;
        while r0 < self.n {
            let c = self.plan.chunk.min(self.n - r0);
            if !self.plan.cached {
                self.forward_backward_chunk(r0, c, false)?;
            }
            let mut d = 0;
            while d < rows {
                let nb = width.min(rows - d);
                let (vo, oo) = (v.1 + d * p, out.1 + d * p);
                self.r_forward_chunk(r0, c, nb, Ten(v.0, vo))?;
                self.r_backward_chunk(r0, c, nb, Ten(v.0, vo), TenMut(&mut *out.0, oo))?;
                d += nb;
            }
            r0 += c;
        }
        Ok(())
    }

    /// Directions per R-pass for a block of `rows`: as many as the stacked R-tensors allow within
    /// [`SCRATCH_BUDGET`] and the backend's largest buffer (at least 1). Grows the R-buffers to
    /// that width (they keep their size afterwards).
    fn block_width(&mut self, rows: usize) -> Result<usize> {
        let ch = self.plan.chunk;
        let bytes = self.backend.precision().bytes();
        let per: usize = self.graph.ops.iter().map(|o| 2 * ch * o.out_width()).sum();
        let widest = self.graph.ops.iter().map(|o| ch * o.out_width()).max();
        let widest = widest.unwrap_or(1).max(1);
        let by_budget = (SCRATCH_BUDGET / (per.max(1) * bytes) as f64) as usize;
        let by_buffer = self.backend.max_buffer_len() / widest;
        let width = rows
            .min(self.max_block)
            .min(by_budget)
            .min(by_buffer)
            .max(1);
        // Directions every R-buffer holds now (the least of them).
        let have = self
            .graph
            .ops
            .iter()
            .enumerate()
            .map(|(t, op)| {
                let per = (ch * op.out_width()).max(1);
                let held = self
                    .backend
                    .len(&self.rval[t])
                    .min(self.backend.len(&self.rgrd[t]));
                held / per
            })
            .min()
            .unwrap_or(1);
        if width > have {
            // All new buffers first: a failed allocation (out of memory) leaves the engine as it
            // was.
            let mut new = Vec::with_capacity(2 * self.graph.ops.len());
            for op in &self.graph.ops {
                let len = width * ch * op.out_width();
                new.push((self.backend.zeros(len)?, self.backend.zeros(len)?));
            }
            for (t, (rv, rg)) in new.into_iter().enumerate() {
                self.rval[t] = rv;
                self.rgrd[t] = rg;
            }
            return Ok(width);
        }
        Ok(have.min(rows).max(1))
    }

    /// The R-forward of chunk rows r0..r0+c for `nb` directions (direction i's v at
    /// `v.1 + i·p`, its R-tensors stacked in the R-buffers at `i·c·width`), then the loss's
    /// R{∂L/∂f}.
    fn r_forward_chunk(&mut self, r0: usize, c: usize, nb: usize, v: Ten<B>) -> Result<()> {
        let at = self.at(r0);
        let Engine {
            backend: be,
            graph,
            loss,
            input,
            theta,
            val,
            vslot,
            aux,
            rval,
            rgrd,
            col,
            tokens,
            ..
        } = self;
        let p = graph.num_params();
        let ro = at.ro;
        let lay = Lay::new(tokens, input, at.ci, c);
        for t in 0..graph.ops.len() {
            let op = lay.op(graph, t);
            let sh = graph.ops[t].layer().shape();
            let (wx, wy) = (sh.input, sh.output);
            let mut ss = 0;
            let (rx, rs, ry) = if t == 0 {
                (None, None, &mut rval[0])
            } else if let Some(from) = op.skip_from() {
                ss = lay.len(graph, from);
                let (rx, rs, ry) = three(rval, t - 1, from, t);
                (Some(rx), Some(rs), ry)
            } else {
                let (rx, ry) = two(rval, t - 1, t);
                (Some(rx), None, ry)
            };
            let block = Block {
                n: nb,
                vs: p,
                sx: lay.len_in(graph, t, wx),
                sy: lay.len(graph, t),
                skip: ss,
            };
            let pass = Pass {
                x: Some(op_input(t, input, val, vslot, at, wx)),
                y: Some(Ten(&val[vslot[t]], ro * wy)),
                rx: rx.map(|b| Ten(b, 0)),
                skip: rs.map(|b| Ten(b, 0)),
                v: Some(v),
                aux: Some(Ten(&aux[t], ro * sh.aux)),
                ids: input.ids(r0),
                ry: Some(TenMut(ry, 0)),
                scratch: Some(&mut *col),
                packed: lay.packed(),
                ..Pass::new(be, lay.rows(t), theta)
            };
            op.rule::<B>().jvp_block(pass, block)?;
        }
        let last = graph.ops.len() - 1;
        let k = loss.classes;
        for i in 0..nb {
            loss.r_vjp(
                be,
                c,
                Ten(&val[vslot[last]], ro * k),
                Ten(&rval[last], i * c * k),
                TenMut(&mut rgrd[last], i * c * k),
            )?;
        }
        Ok(())
    }

    /// The R-backward of chunk rows r0..r0+c for `nb` directions (after
    /// [`Engine::r_forward_chunk`]): direction i's H·v accumulated at `hv.1 + i·p`.
    fn r_backward_chunk(
        &mut self,
        r0: usize,
        c: usize,
        nb: usize,
        v: Ten<B>,
        mut hv: TenMut<B>,
    ) -> Result<()> {
        let at = self.at(r0);
        let Engine {
            backend: be,
            graph,
            input,
            theta,
            val,
            vslot,
            grd,
            aux,
            skips,
            rval,
            rgrd,
            col,
            tokens,
            ..
        } = self;
        let p = graph.num_params();
        let ro = at.ro;
        let lay = Lay::new(tokens, input, at.ci, c);
        for t in (0..graph.ops.len()).rev() {
            let op = lay.op(graph, t);
            let sh = graph.ops[t].layer().shape();
            let (wx, wy) = (sh.input, sh.output);
            let (rgy, rgx) = if t > 0 {
                let (rgy, rgx) = two(rgrd, t, t - 1);
                (rgy, Some(rgx))
            } else {
                (&rgrd[0], None)
            };
            let block = Block {
                n: nb,
                vs: p,
                sx: lay.len_in(graph, t, wx),
                sy: lay.len(graph, t),
                skip: 0,
            };
            let pass = Pass {
                x: Some(op_input(t, input, val, vslot, at, wx)),
                y: Some(Ten(&val[vslot[t]], ro * wy)),
                rx: (t > 0).then(|| Ten(&rval[t - 1], 0)),
                v: Some(v),
                gy: Some(Ten(&grd[t], ro * wy)),
                rgy: Some(Ten(rgy, 0)),
                aux: Some(Ten(&aux[t], ro * sh.aux)),
                ids: input.ids(r0),
                index: input.index(at.ci),
                hv: Some(hv.re()),
                rgx: rgx.map(|b| TenMut(b, 0)),
                scratch: Some(&mut *col),
                packed: lay.packed(),
                ..Pass::new(be, lay.rows(t), theta)
            };
            op.rule::<B>().r_vjp_block(pass, block)?;
            // The residuals that read tensor t − 1, through their `skip_r_vjp_block` (Add's
            // default: one add for all directions, stacked alike in every R-buffer; ProjAdd's:
            // direction by direction).
            for &a in skips.get(t.wrapping_sub(1)).into_iter().flatten() {
                let (add, wa) = (lay.op(graph, a), graph.ops[a].out_width());
                let (rga, rgs) = two(rgrd, a, t - 1);
                let block = Block {
                    n: nb,
                    vs: p,
                    sx: lay.len(graph, t - 1),
                    sy: lay.len(graph, a),
                    skip: 0,
                };
                let pass = Pass {
                    skip: Some(Ten(&val[vslot[t - 1]], ro * wx)),
                    rx: Some(Ten(&rval[t - 1], 0)),
                    v: Some(v),
                    gy: Some(Ten(&grd[a], ro * wa)),
                    rgy: Some(Ten(rga, 0)),
                    hv: Some(hv.re()),
                    rgx: Some(TenMut(rgs, 0)),
                    scratch: Some(&mut *col),
                    packed: lay.packed(),
                    ..Pass::new(be, lay.rows(a), theta)
                };
                add.rule::<B>().skip_r_vjp_block(pass, block)?;
            }
        }
        Ok(())
    }
}

/// How the ops of one chunk run: the graph's ops on its `c` samples, or (with a [`TokenPlan`]
/// and the chunk's [`Pack`]) the plan's ops on its packed live tokens.
struct Lay<'a, B: Backend> {
    plan: Option<(&'a TokenPlan, &'a Pack<B>)>,
    c: usize,
}

impl<'a, B: Backend> Lay<'a, B> {
    fn new(plan: &'a Option<TokenPlan>, input: &'a DataInput<B>, ci: usize, c: usize) -> Self {
        Lay {
            plan: plan.as_ref().zip(input.pack(ci)),
            c,
        }
    }
    /// The op run for op t.
    fn op<'g>(&self, graph: &'g Graph, t: usize) -> &'g Op
    where
        'a: 'g,
    {
        self.plan.map_or(&graph.ops[t], |(p, _)| p.op(t))
    }
    /// The rows op t runs on ([`Pass::rows`]).
    fn rows(&self, t: usize) -> usize {
        self.plan
            .map_or(self.c, |(p, k)| p.rows(t, self.c, k.tokens()))
    }
    /// Elements of tensor t in this chunk.
    fn len(&self, graph: &Graph, t: usize) -> usize {
        let w = graph.ops[t].out_width();
        self.plan
            .map_or(self.c * w, |(p, k)| p.len(t, self.c, k.tokens(), w))
    }
    /// Elements of op t's input (`wx` per sample) in this chunk.
    fn len_in(&self, graph: &Graph, t: usize, wx: usize) -> usize {
        if t == 0 {
            self.c * wx
        } else {
            self.len(graph, t - 1)
        }
    }
    /// The packed tokens the ops read.
    fn packed(&self) -> Option<Packed<'a, B>> {
        self.plan.map(|(_, k)| k.view())
    }
}

/// The input of op `t` for the chunk `at`: the data for the first op, else the value of tensor
/// t − 1.
fn op_input<'a, B: Backend>(
    t: usize,
    input: &'a DataInput<B>,
    val: &'a [B::Buf],
    vslot: &[usize],
    at: At,
    wx: usize,
) -> Input<'a, B> {
    if t == 0 {
        input.first(at.r0, wx)
    } else {
        Input::Buf(Ten(&val[vslot[t - 1]], at.ro * wx))
    }
}

/// `(&v[r], &mut v[w])` for r ≠ w.
fn two<T>(v: &mut [T], r: usize, w: usize) -> (&T, &mut T) {
    debug_assert_ne!(r, w);
    if r < w {
        let (a, b) = v.split_at_mut(w);
        (&a[r], &mut b[0])
    } else {
        let (a, b) = v.split_at_mut(r);
        (&b[0], &mut a[w])
    }
}

/// `(&v[r1], &v[r2], &mut v[w])` for w different from r1 and r2.
fn three<T>(v: &mut [T], r1: usize, r2: usize, w: usize) -> (&T, &T, &mut T) {
    assert!(w != r1 && w != r2, "three: the written slot is also read");
    let (lo, hi) = v.split_at_mut(w);
    let (y, hi) = hi.split_first_mut().expect("w is in range");
    let a = if r1 < w { &lo[r1] } else { &hi[r1 - w - 1] };
    let b = if r2 < w { &lo[r2] } else { &hi[r2 - w - 1] };
    (a, b, y)
}
