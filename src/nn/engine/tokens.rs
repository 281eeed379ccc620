//! A masked sequence model on packed live tokens (issue 33, "no work at padding"): the chunk's
//! live tokens (id ≠ 0) one after another ([`Varlen`], FlashAttention's varlen form), every
//! position-wise op (the q/k/v, out, fc1, fc2 projections, LayerNorm, activations, residuals)
//! run on them as on rows of one matrix, attention per sequence on its live queries and keys,
//! the mean over each sequence's tokens.
//!
//! Exact: with padding masked (every attention and mean masked), padding positions never reach
//! the loss, and every ∂L at them is 0, so the packed network computes the padded one's loss,
//! gradient and H·v (only the order of the sums over positions changes, in the weight
//! gradients). An unmasked model (Damian et al.'s form) is never packed.
//!
//! Layout: a packed tensor of a chunk lies at the start of that chunk's padded slot (the
//! buffers keep their padded sizes), so the engine's offsets do not change; the directions of
//! a block R-pass are stacked at the packed tensor's length ([`TokenPlan::len`]).

use crate::backend::{Backend, TokenIndex, Varlen};
use crate::error::Result;
use crate::nn::graph::{Graph, Op};
use crate::nn::ops::{Act, Add, LayerNorm, Linear, Packed};

/// How the engine runs a graph on packed tokens: per op, the op it runs and how many rows.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct TokenPlan {
    /// The op run for op t: the graph's, or its one-position form for a position-wise op.
    ops: Vec<Op>,
    /// Op t runs on the tokens as rows (a position-wise op).
    per_token: Vec<bool>,
    /// Scalars per token of tensor t when it is packed tokens (None: one row per sample).
    tok_width: Vec<Option<usize>>,
}

/// The op at one position of a sequence of `seq`, for an op that acts position by position.
fn per_position(op: &Op, seq: usize) -> Option<Op> {
    Some(match *op {
        Op::Linear(l) if l.seq == seq => Op::Linear(Linear { seq: 1, ..l }),
        Op::LayerNorm(n) if n.seq == seq => Op::LayerNorm(LayerNorm { seq: 1, ..n }),
        Op::Act(a) if a.width % seq == 0 => Op::Act(Act {
            width: a.width / seq,
            ..a
        }),
        Op::Add(a) if a.width % seq == 0 => Op::Add(Add {
            width: a.width / seq,
            ..a
        }),
        _ => return None,
    })
}

impl TokenPlan {
    /// The plan of `graph`, when it applies: an embedding first, every attention and mean
    /// masked, only position-wise ops and attention between the embedding and the mean, and
    /// residuals within one side of the mean.
    pub(super) fn new(graph: &Graph) -> Option<TokenPlan> {
        let (_, seq) = graph.tokens()?;
        let n = graph.ops.len();
        let mut plan = TokenPlan {
            ops: Vec::with_capacity(n),
            per_token: Vec::with_capacity(n),
            tok_width: Vec::with_capacity(n),
        };
        let mut in_seq = false;
        for (t, op) in graph.ops.iter().enumerate() {
            let (run, per, tw) = match op {
                Op::Embed(e) if t == 0 => {
                    in_seq = true;
                    (*op, false, Some(e.width))
                }
                Op::Attention(a) if in_seq && a.masked => (*op, false, Some(a.out_width() / seq)),
                Op::MeanPool(m) if in_seq && m.masked => {
                    in_seq = false;
                    (*op, false, None)
                }
                Op::Embed(_) | Op::Attention(_) | Op::MeanPool(_) => return None,
                _ if in_seq => (per_position(op, seq)?, true, Some(op.out_width() / seq)),
                _ => (*op, false, None),
            };
            if let Some(from) = op.skip_from()
                && plan.tok_width[from].is_some() != tw.is_some()
            {
                return None;
            }
            plan.ops.push(run);
            plan.per_token.push(per);
            plan.tok_width.push(tw);
        }
        (!in_seq).then_some(plan)
    }

    /// The op run for op t.
    pub(super) fn op(&self, t: usize) -> &Op {
        &self.ops[t]
    }

    /// Rows op t runs on: the chunk's live tokens for a position-wise op, else its `c` samples.
    pub(super) fn rows(&self, t: usize, c: usize, tokens: usize) -> usize {
        if self.per_token[t] { tokens } else { c }
    }

    /// Elements of tensor t in a chunk of `c` samples with `tokens` live tokens (`width`: its
    /// scalars per sample).
    pub(super) fn len(&self, t: usize, c: usize, tokens: usize, width: usize) -> usize {
        self.tok_width[t].map_or(c * width, |w| tokens * w)
    }
}

/// One chunk's packing on a backend: [`Varlen`]'s offsets and positions, and the embedding
/// gradient's indices over the packed tokens by id and by position.
pub(super) struct Pack<B: Backend> {
    rows: usize,
    seq: usize,
    tokens: usize,
    offs: B::Buf,
    pos: B::Buf,
    by_id: (B::Buf, B::Buf),
    by_pos: (B::Buf, B::Buf),
}

/// [`Pack`] on the host.
pub(super) struct HostPack {
    rows: usize,
    tokens: usize,
    offs: Vec<f64>,
    pos: Vec<f64>,
    by_id: TokenIndex,
    by_pos: TokenIndex,
}

impl HostPack {
    /// The packing of one chunk's ids (`seq` per sample, id 0 = padding).
    pub(super) fn new(ids: &[f64], seq: usize, vocab: usize) -> HostPack {
        let rows = ids.len() / seq.max(1);
        let mut offs = Vec::with_capacity(rows + 1);
        let (mut pos, mut live_ids, mut at) = (Vec::new(), Vec::new(), Vec::new());
        offs.push(0.0);
        for (p, &id) in ids.iter().enumerate() {
            if id != 0.0 {
                pos.push(p as f64);
                live_ids.push(id);
                at.push((p % seq) as f64);
            }
            if (p + 1) % seq == 0 {
                offs.push(pos.len() as f64);
            }
        }
        HostPack {
            rows,
            tokens: pos.len(),
            offs,
            pos,
            by_id: TokenIndex::new(&live_ids, vocab),
            by_pos: TokenIndex::new(&at, seq),
        }
    }

    /// The packing uploaded.
    pub(super) fn upload<B: Backend>(&self, be: &B, seq: usize) -> Result<Pack<B>> {
        Ok(Pack {
            rows: self.rows,
            seq,
            tokens: self.tokens,
            offs: be.upload(&self.offs)?,
            pos: be.upload(&self.pos)?,
            by_id: (be.upload(&self.by_id.start)?, be.upload(&self.by_id.order)?),
            by_pos: (
                be.upload(&self.by_pos.start)?,
                be.upload(&self.by_pos.order)?,
            ),
        })
    }
}

impl<B: Backend> Pack<B> {
    /// Live tokens of the chunk.
    pub(super) fn tokens(&self) -> usize {
        self.tokens
    }

    /// The view the ops read.
    pub(super) fn view(&self) -> Packed<'_, B> {
        Packed {
            v: Varlen {
                rows: self.rows,
                seq: self.seq,
                tokens: self.tokens,
                offs: &self.offs,
                pos: &self.pos,
            },
            by_id: (&self.by_id.0, &self.by_id.1),
            by_pos: (&self.by_pos.0, &self.by_pos.1),
        }
    }
}
