//! Token embedding plus learned position embedding, `nn.Embedding(vocab, D)` and
//! `nn.Embedding(T, D)`: `y[r, t] = E[id(r, t)] + P[t]`. A Transformer's first op: it reads token
//! ids (a sample is `seq` positions of `width` scalars, row-major [rows, T, D]); the math of each
//! pass is written on the backend method it calls ([`Backend::embed`], [`Backend::embed_grad`]).

use super::{DataForm, Layer, OpRule, Packed, Pass, Shape, Ten, TenMut, buf, got};
use crate::backend::{Backend, Seq};
use crate::error::{Error, Result};

/// The embedding: E `[vocab, D]` at `tok_off` and P `[T, D]` at `pos_off` in θ.
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
    /// y = E\[ids\] + P (with `table` = θ), or R{y} = V_E\[ids\] + V_P (with `table` = v).
    fn gather<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        ids: Ten<B>,
        table: Ten<B>,
        y: TenMut<B>,
    ) -> Result<()> {
        be.embed(
            self.geom(rows),
            ids,
            Ten(table.0, table.1 + self.tok_off),
            table.1 + self.pos_off,
            y,
        )
    }
    /// ∂L/∂E += scatter of gy by token id (a gather over `index`, the chunk's
    /// [`crate::backend::TokenIndex`]), ∂L/∂P += Σ_rows gy. Also the R-backward with R{gy} into
    /// H·v (the op is linear in θ).
    fn scatter<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        index: Option<(&B::Buf, &B::Buf)>,
        gy: Ten<B>,
        grad: TenMut<B>,
    ) -> Result<()> {
        let index = index.ok_or_else(|| {
            Error::Shape("an embedding's gradient needs the chunk's token index".into())
        })?;
        be.embed_grad(
            self.geom(rows),
            self.vocab,
            index.0,
            index.1,
            gy,
            TenMut(grad.0, grad.1 + self.tok_off),
        )?;
        be.col_sum(
            rows,
            self.out_width(),
            1.0,
            gy,
            1.0,
            TenMut(grad.0, grad.1 + self.pos_off),
        )
    }
}

impl Embed {
    /// [`Embed::gather`] on the chunk's packed live tokens (`y` [tokens, D]).
    fn gather_packed<B: Backend>(
        &self,
        be: &B,
        pk: Packed<B>,
        ids: Ten<B>,
        table: Ten<B>,
        y: TenMut<B>,
    ) -> Result<()> {
        be.embed_varlen(
            pk.v,
            self.width,
            ids,
            Ten(table.0, table.1 + self.tok_off),
            table.1 + self.pos_off,
            y,
        )
    }
    /// [`Embed::scatter`] from packed tokens: ∂L/∂E by the packed tokens' ids, ∂L/∂P by their
    /// positions (both gathers over an index of the packed tokens, [`Packed`]).
    fn scatter_packed<B: Backend>(
        &self,
        be: &B,
        pk: Packed<B>,
        gy: Ten<B>,
        grad: TenMut<B>,
    ) -> Result<()> {
        let g = Seq {
            rows: pk.v.tokens,
            len: 1,
            width: self.width,
        };
        let (ids, pos) = (pk.by_id, pk.by_pos);
        let tok = TenMut(&mut *grad.0, grad.1 + self.tok_off);
        be.embed_grad(g, self.vocab, ids.0, ids.1, gy, tok)?;
        let at = TenMut(grad.0, grad.1 + self.pos_off);
        be.embed_grad(g, self.seq, pos.0, pos.1, gy, at)
    }
}

impl Layer for Embed {
    /// The input is `seq` token ids per sample.
    fn shape(&self) -> Shape {
        Shape {
            input: self.seq,
            output: self.out_width(),
            params: (self.vocab + self.seq) * self.width,
            ..Shape::default()
        }
    }
    fn reads_data(&self) -> Option<DataForm> {
        Some(DataForm::Tokens {
            vocab: self.vocab,
            seq: self.seq,
        })
    }
}

impl<B: Backend> OpRule<B> for Embed {
    /// y = E\[ids\] + P, the ids being the op's input.
    fn forward(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, y) = (buf(p.x)?, got(p.y_out, "output")?);
        match p.packed {
            Some(pk) => self.gather_packed(p.be, pk, x, Ten(p.theta, 0), y),
            None => self.gather(p.be, p.rows, x, Ten(p.theta, 0), y),
        }
    }
    /// ∂L/∂E, ∂L/∂P into `grad` when given (the ids have no gradient).
    fn vjp(&self, p: Pass<'_, B>) -> Result<()> {
        if let Some(g) = p.grad {
            let gy = got(p.gy, "∂L/∂y")?;
            match p.packed {
                Some(pk) => self.scatter_packed(p.be, pk, gy, g)?,
                None => self.scatter(p.be, p.rows, p.index, gy, g)?,
            }
        }
        Ok(())
    }
    /// R{y} = V_E\[ids\] + V_P.
    fn jvp(&self, p: Pass<'_, B>) -> Result<()> {
        let (x, v, ry) = (buf(p.x)?, got(p.v, "direction")?, got(p.ry, "R{y}")?);
        match p.packed {
            Some(pk) => self.gather_packed(p.be, pk, x, v, ry),
            None => self.gather(p.be, p.rows, x, v, ry),
        }
    }
    /// R{∂L/∂E}, R{∂L/∂P} into `hv`: the VJP of R{gy}.
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (rgy, hv) = (got(p.rgy, "R{∂L/∂y}")?, got(p.hv, "H·v")?);
        match p.packed {
            Some(pk) => self.scatter_packed(p.be, pk, rgy, hv),
            None => self.scatter(p.be, p.rows, p.index, rgy, hv),
        }
    }
}
