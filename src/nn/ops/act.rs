//! Elementwise activation y = σ(x). tanh and ReLU are computed in place (the output overwrites the
//! input: σ' and σ'' are functions of the output); SiLU and GELU keep their input, which their
//! derivatives need ([`Activation::from_output`]). Every derivative pass reads the `cached` tensor:
//! y for the former, x for the latter ([`Act::cached_is_output`]).

use super::{Ten, TenMut};
use crate::backend::{Activation, Backend};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Act {
    pub act: Activation,
    /// Elements per sample.
    pub width: usize,
}

impl Act {
    /// True if the derivative passes read the output (tanh, ReLU), false if the input (SiLU, GELU).
    pub fn cached_is_output(&self) -> bool {
        self.act.from_output()
    }
    /// y = σ(y) in place on `rows` samples (copy x into y first for an activation that keeps x).
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(&self, be: &B, rows: usize, y: TenMut<B>) -> Result<()> {
        be.act(self.act, rows * self.width, y.0, y.1)
    }
    /// gx = gy ⊙ σ'(x), from the cached tensor (y or x).
    #[allow(clippy::too_many_arguments)]
    pub fn vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        y: Ten<B>,
        gy: Ten<B>,
        gx: TenMut<B>,
    ) -> Result<()> {
        be.act_d1_mul(
            self.act,
            rows * self.width,
            y.0,
            y.1,
            gy.0,
            gy.1,
            gx.0,
            gx.1,
        )
    }
    /// R{y} = σ'(x) ⊙ R{x}.
    #[allow(clippy::too_many_arguments)]
    pub fn jvp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        y: Ten<B>,
        rx: Ten<B>,
        ry: TenMut<B>,
    ) -> Result<()> {
        be.act_d1_mul(
            self.act,
            rows * self.width,
            y.0,
            y.1,
            rx.0,
            rx.1,
            ry.0,
            ry.1,
        )
    }
    /// R{gx} = R{gy} ⊙ σ'(x) + gy ⊙ σ''(x) ⊙ R{x}.
    #[allow(clippy::too_many_arguments)]
    pub fn r_vjp<B: Backend>(
        &self,
        be: &B,
        rows: usize,
        y: Ten<B>,
        gy: Ten<B>,
        rgy: Ten<B>,
        rx: Ten<B>,
        rgx: TenMut<B>,
    ) -> Result<()> {
        be.act_d2_r(
            self.act,
            rows * self.width,
            y.0,
            y.1,
            rgy.0,
            rgy.1,
            gy.0,
            gy.1,
            rx.0,
            rx.1,
            rgx.0,
            rgx.1,
        )
    }
}
