//! The [`SeqOps`] family on the GPU: each primitive handed to its kernel in `seq`.

use super::{GpuBackend, GpuBuf, seq};
use crate::backend::{Attn, Dual, Ln, Seq, SeqOps, Ten, TenMut, ThetaV, Varlen};
use crate::error::{Error, Result};

impl SeqOps for GpuBackend {
    fn embed(
        &self,
        g: Seq,
        ids: Ten<'_, Self>,
        table: Ten<'_, Self>,
        pos_off: usize,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::embed(self, g, ids, table, pos_off, out)
    }

    fn embed_grad(
        &self,
        g: Seq,
        vocab: usize,
        start: &GpuBuf,
        order: &GpuBuf,
        gy: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::embed_grad(self, g, vocab, start, order, gy, out)
    }

    fn layer_norm(
        &self,
        l: Ln,
        x: Ten<'_, Self>,
        theta: &GpuBuf,
        y: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::layer_norm(self, l, x, theta, y)
    }

    fn layer_norm_vjp(
        &self,
        l: Ln,
        x: Ten<'_, Self>,
        theta: &GpuBuf,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
        prod: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::layer_norm_vjp(self, l, x, theta, dy, dx, prod)
    }

    fn layer_norm_jvp(
        &self,
        l: Ln,
        x: Dual<'_, Self>,
        theta: ThetaV<'_, Self>,
        ry: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::layer_norm_jvp(self, l, x, theta, ry)
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
        seq::layer_norm_rvjp(self, l, x, theta, dy, rdx, prod)
    }

    fn attention(
        &self,
        a: Attn,
        ids: Ten<'_, Self>,
        qkv: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        probs: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::attention(self, a, ids, qkv, out, probs)
    }

    fn attention_vjp(
        &self,
        a: Attn,
        qkv: Ten<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Ten<'_, Self>,
        dqkv: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::attention_vjp(self, a, qkv, probs, dout, dqkv)
    }

    fn attention_jvp(
        &self,
        a: Attn,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        rout: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::attention_jvp(self, a, qkv, probs, rout)
    }

    fn attention_rvjp(
        &self,
        a: Attn,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Dual<'_, Self>,
        rdqkv: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::attention_rvjp(self, a, qkv, probs, dout, rdqkv)
    }

    fn seq_mean(
        &self,
        g: Seq,
        masked: bool,
        ids: Ten<'_, Self>,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::seq_mean(self, g, masked, ids, x, out)
    }

    fn seq_mean_adjoint(
        &self,
        g: Seq,
        masked: bool,
        ids: Ten<'_, Self>,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        seq::seq_mean_adjoint(self, g, masked, ids, dy, dx)
    }

    fn packs_tokens(&self) -> bool {
        false
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
        let _ = (v, width, ids, table, pos_off, out);
        not_packed("embed_varlen")
    }

    fn attention_varlen(
        &self,
        a: Attn,
        v: Varlen<'_, Self>,
        qkv: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        probs: TenMut<'_, Self>,
    ) -> Result<()> {
        let _ = (a, v, qkv, out, probs);
        not_packed("attention_varlen")
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
        let _ = (a, v, qkv, probs, dout, dqkv);
        not_packed("attention_varlen_vjp")
    }

    fn attention_varlen_jvp(
        &self,
        a: Attn,
        v: Varlen<'_, Self>,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        rout: TenMut<'_, Self>,
    ) -> Result<()> {
        let _ = (a, v, qkv, probs, rout);
        not_packed("attention_varlen_jvp")
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
        let _ = (a, v, qkv, probs, dout, rdqkv);
        not_packed("attention_varlen_rvjp")
    }

    fn seq_mean_varlen(
        &self,
        v: Varlen<'_, Self>,
        width: usize,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        let _ = (v, width, x, out);
        not_packed("seq_mean_varlen")
    }

    fn seq_mean_varlen_adjoint(
        &self,
        v: Varlen<'_, Self>,
        width: usize,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()> {
        let _ = (v, width, dy, dx);
        not_packed("seq_mean_varlen_adjoint")
    }
}

/// The refusal of a packed-token kernel: the GPU keeps the padded form (its
/// [`SeqOps::packs_tokens`] is false, so the engine never asks for one).
fn not_packed(kernel: &str) -> Result<()> {
    Err(Error::Backend(format!(
        "{kernel}: the GPU runs sequences in their padded form (packed tokens are CPU-only for now)"
    )))
}
