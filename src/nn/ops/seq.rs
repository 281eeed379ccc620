//! The Transformer's ops over sequences (a sample is `seq` positions of `width` scalars, row-major
//! [rows, T, D]): token + position embedding, LayerNorm, multi-head attention, mean pooling over
//! positions, and the residual add. Their kernels are [`Backend::embed`], [`Backend::layer_norm`]
//! and friends; the math of each pass is written on the backend method it calls.

use super::{Ten, TenMut};
use crate::backend::{Attn, Backend, Ln, Seq};
use crate::error::Result;

/// Token embedding plus learned position embedding, `nn.Embedding(vocab, D)` and
/// `nn.Embedding(T, D)`: `y[r, t] = E[id(r, t)] + P[t]`. The graph's first op: it reads token ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embed {
    pub vocab: usize,
    pub seq: usize,
    pub width: usize,
    /// Offsets of E `[vocab, D]` and P `[T, D]` in θ.
    pub tok_off: usize,
    pub pos_off: usize,
}

impl Embed {
    fn geom(&self, rows: usize) -> Seq {
        Seq {
            rows,
            len: self.seq,
            width: self.width,
        }
    }
    pub fn out_width(&self) -> usize {
        self.seq * self.width
    }
    /// y = E[ids] + P (with `table` = θ), or R{y} = V_E[ids] + V_P (with `table` = v).
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        ids: Ten<B>,
        table: Ten<B>,
        y: TenMut<B>,
    ) -> Result<()> {
        be.embed(
            self.geom(rows),
            ids.0,
            ids.1,
            table.0,
            table.1 + self.tok_off,
            table.1 + self.pos_off,
            y.0,
            y.1,
        )
    }
    /// ∂L/∂E += scatter of gy by token id (a gather over `index`, the chunk's [`crate::backend::TokenIndex`]),
    /// ∂L/∂P += Σ_rows gy. Also the R-backward with R{gy} into H·v (the op is linear in θ).
    pub fn vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        index: (&B::Buf, &B::Buf),
        gy: Ten<B>,
        grad: TenMut<B>,
    ) -> Result<()> {
        be.embed_grad(
            self.geom(rows),
            self.vocab,
            index.0,
            index.1,
            gy.0,
            gy.1,
            grad.0,
            grad.1 + self.tok_off,
        )?;
        be.col_sum(
            rows,
            self.out_width(),
            1.0,
            gy.0,
            gy.1,
            1.0,
            grad.0,
            grad.1 + self.pos_off,
        )
    }
}

/// LayerNorm over the last dimension with learnable γ (`weight`) and β (`bias`), ε as given
/// (Flax's default 1e-6 in Damian et al.'s Transformer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    pub seq: usize,
    pub width: usize,
    pub eps: f64,
    pub g_off: usize,
    pub b_off: usize,
}

impl Eq for LayerNorm {}

impl LayerNorm {
    fn ln(&self, rows: usize) -> Ln {
        Ln {
            rows: rows * self.seq,
            width: self.width,
            eps: self.eps,
            gamma: self.g_off,
            beta: self.b_off,
        }
    }
    pub fn out_width(&self) -> usize {
        self.seq * self.width
    }
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: Ten<B>,
        theta: &B::Buf,
        y: TenMut<B>,
    ) -> Result<()> {
        be.layer_norm(self.ln(rows), x.0, x.1, theta, y.0, y.1)
    }
    /// gx (overwritten); ∂L/∂γ += Σ gy ⊙ x̂, ∂L/∂β += Σ gy into `grad` when given. `prod` is
    /// scratch of the output's size.
    #[allow(clippy::too_many_arguments)]
    pub fn vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: Ten<B>,
        theta: &B::Buf,
        gy: Ten<B>,
        grad: Option<TenMut<B>>,
        gx: TenMut<B>,
        prod: &mut B::Buf,
    ) -> Result<()> {
        let l = self.ln(rows);
        be.layer_norm_vjp(l, x.0, x.1, theta, gy.0, gy.1, gx.0, gx.1, prod, 0)?;
        if let Some(g) = grad {
            be.col_sum(l.rows, l.width, 1.0, prod, 0, 1.0, g.0, g.1 + self.g_off)?;
            be.col_sum(l.rows, l.width, 1.0, gy.0, gy.1, 1.0, g.0, g.1 + self.b_off)?;
        }
        Ok(())
    }
    #[allow(clippy::too_many_arguments)]
    pub fn jvp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: Ten<B>,
        rx: Ten<B>,
        theta: &B::Buf,
        v: Ten<B>,
        ry: TenMut<B>,
    ) -> Result<()> {
        be.layer_norm_jvp(
            self.ln(rows),
            x.0,
            x.1,
            rx.0,
            rx.1,
            theta,
            v.0,
            v.1,
            ry.0,
            ry.1,
        )
    }
    /// R{gx} (overwritten); R{∂L/∂γ}, R{∂L/∂β} into `hv`.
    #[allow(clippy::too_many_arguments)]
    pub fn r_vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: Ten<B>,
        rx: Ten<B>,
        theta: &B::Buf,
        v: Ten<B>,
        gy: Ten<B>,
        rgy: Ten<B>,
        hv: TenMut<B>,
        rgx: TenMut<B>,
        prod: &mut B::Buf,
    ) -> Result<()> {
        let l = self.ln(rows);
        be.layer_norm_rvjp(
            l, x.0, x.1, rx.0, rx.1, theta, v.0, v.1, gy.0, gy.1, rgy.0, rgy.1, rgx.0, rgx.1, prod,
            0,
        )?;
        be.col_sum(l.rows, l.width, 1.0, prod, 0, 1.0, hv.0, hv.1 + self.g_off)?;
        be.col_sum(
            l.rows,
            l.width,
            1.0,
            rgy.0,
            rgy.1,
            1.0,
            hv.0,
            hv.1 + self.b_off,
        )
    }
}

/// Multi-head scaled dot-product attention (no parameters: its projections are [`super::Linear`]
/// ops with `seq` = T before and after it). Input [rows, T, 3D] = [q | k | v] per position,
/// output [rows, T, D]; P [rows, H, T, T] is kept for the derivative passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attention {
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Padding keys (token id 0) masked.
    pub masked: bool,
}

impl Attention {
    pub fn attn(&self, rows: usize) -> Attn {
        Attn {
            rows,
            seq: self.seq,
            heads: self.heads,
            head_dim: self.head_dim,
            masked: self.masked,
        }
    }
    pub fn in_width(&self) -> usize {
        3 * self.out_width()
    }
    pub fn out_width(&self) -> usize {
        self.seq * self.heads * self.head_dim
    }
    /// Scalars of P per sample.
    pub fn probs_width(&self) -> usize {
        self.heads * self.seq * self.seq
    }
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        ids: Ten<B>,
        qkv: Ten<B>,
        y: TenMut<B>,
        probs: TenMut<B>,
    ) -> Result<()> {
        be.attention(
            self.attn(rows),
            ids.0,
            ids.1,
            qkv.0,
            qkv.1,
            y.0,
            y.1,
            probs.0,
            probs.1,
        )
    }
    pub fn vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        qkv: Ten<B>,
        probs: Ten<B>,
        gy: Ten<B>,
        gx: TenMut<B>,
    ) -> Result<()> {
        be.attention_vjp(
            self.attn(rows),
            qkv.0,
            qkv.1,
            probs.0,
            probs.1,
            gy.0,
            gy.1,
            gx.0,
            gx.1,
        )
    }
    pub fn jvp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        qkv: Ten<B>,
        probs: Ten<B>,
        rqkv: Ten<B>,
        ry: TenMut<B>,
    ) -> Result<()> {
        be.attention_jvp(
            self.attn(rows),
            qkv.0,
            qkv.1,
            probs.0,
            probs.1,
            rqkv.0,
            rqkv.1,
            ry.0,
            ry.1,
        )
    }
    #[allow(clippy::too_many_arguments)]
    pub fn r_vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        qkv: Ten<B>,
        probs: Ten<B>,
        rqkv: Ten<B>,
        gy: Ten<B>,
        rgy: Ten<B>,
        rgx: TenMut<B>,
    ) -> Result<()> {
        be.attention_rvjp(
            self.attn(rows),
            qkv.0,
            qkv.1,
            probs.0,
            probs.1,
            rqkv.0,
            rqkv.1,
            gy.0,
            gy.1,
            rgy.0,
            rgy.1,
            rgx.0,
            rgx.1,
        )
    }
}

/// Mean over a sequence's positions ([rows, T, D] → [rows, D]): over the non-padding positions
/// when `masked`, over all T otherwise (Damian et al.'s `x.mean(1)`). Linear: its JVP is itself
/// and its R-backward its VJP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeanPool {
    pub seq: usize,
    pub width: usize,
    pub masked: bool,
}

impl MeanPool {
    fn geom(&self, rows: usize) -> Seq {
        Seq {
            rows,
            len: self.seq,
            width: self.width,
        }
    }
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        ids: Ten<B>,
        x: Ten<B>,
        y: TenMut<B>,
    ) -> Result<()> {
        be.seq_mean(
            self.geom(rows),
            self.masked,
            ids.0,
            ids.1,
            x.0,
            x.1,
            y.0,
            y.1,
        )
    }
    pub fn vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        ids: Ten<B>,
        gy: Ten<B>,
        gx: TenMut<B>,
    ) -> Result<()> {
        be.seq_mean_adjoint(
            self.geom(rows),
            self.masked,
            ids.0,
            ids.1,
            gy.0,
            gy.1,
            gx.0,
            gx.1,
        )
    }
}

/// The residual add `y = x + s`, where x is the previous tensor and s the output of op `from`
/// (an earlier tensor, not the previous one). Its VJP passes gy to both: to x as the op's input
/// gradient, to s by the engine, which adds it once the consumer of s has written s's gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Add {
    pub from: usize,
    pub width: usize,
}

impl Add {
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        x: Ten<B>,
        s: Ten<B>,
        y: TenMut<B>,
    ) -> Result<()> {
        let len = rows * self.width;
        be.copy(x.0, x.1, y.0, y.1, len)?;
        be.axpy(1.0, s.0, s.1, y.0, y.1, len)
    }
}
