//! The layer kinds a network is built from. Each op has four passes over [`Backend`]:
//!
//! - `forward`: y = f(x; θ);
//! - `vjp` (backward): given ∂L/∂y, accumulate ∂L/∂θ and write ∂L/∂x;
//! - `jvp` (R-forward): R{y} = ∂f/∂x · R{x} + ∂f/∂θ · v;
//! - `r_vjp` (R-backward): the R-operator of `vjp`, R{∂L/∂θ} (accumulated into H·v) and R{∂L/∂x}.
//!
//! Chained through a [`crate::nn::graph::Graph`] they give H·v by forward-over-reverse
//! differentiation (Pearlmutter 1994), exact to round-off. Tensors are addressed as a buffer and an
//! element offset ([`Ten`], [`TenMut`]); a batch of `rows` samples is contiguous, row-major.

pub mod act;
pub mod conv;
pub mod flatten;
pub mod linear;
pub mod loss;
pub mod pool;
pub mod seq;

pub use act::Act;
pub use conv::Conv3x3;
pub use flatten::Flatten;
pub use linear::Linear;
pub use pool::MaxPool2;
pub use seq::{Add, Attention, Embed, LayerNorm, MeanPool};

use crate::backend::Backend;

/// A read-only tensor: a buffer and the element offset where it starts.
pub struct Ten<'a, B: Backend>(pub &'a B::Buf, pub usize);

impl<B: Backend> Clone for Ten<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for Ten<'_, B> {}

/// A written tensor: a buffer and the element offset where it starts.
pub struct TenMut<'a, B: Backend>(pub &'a mut B::Buf, pub usize);

impl<'a, B: Backend> TenMut<'a, B> {
    /// Reborrow (to pass the same output to several calls).
    pub fn re(&mut self) -> TenMut<'_, B> {
        TenMut(self.0, self.1)
    }
}

/// The input of a layer: an activation buffer, or the data set itself (the first layer; the CPU
/// backend multiplies by MNIST in its sparse form, [`crate::backend::input`]).
pub enum Input<'a, B: Backend> {
    /// Rows `r0..` of the data set's features.
    Data(&'a B::Input, usize),
    Buf(Ten<'a, B>),
}
