//! The layer kinds a network is built from, one file each, all stating their rules through one
//! interface: [`Layer`] (sizes per sample, parameter count, how the op sits in a graph) and
//! [`OpRule`], four passes over a [`Pass`] context on a [`Backend`]:
//!
//! - `forward`: y = f(x; θ);
//! - `vjp` (backward): given ∂L/∂y, accumulate ∂L/∂θ and write ∂L/∂x;
//! - `jvp` (R-forward): R{y} = ∂f/∂x · R{x} + ∂f/∂θ · v;
//! - `r_vjp` (R-backward): the R-operator of `vjp`, R{∂L/∂θ} (accumulated into H·v) and R{∂L/∂x};
//!
//! and the block forms `jvp_block` / `r_vjp_block` over a [`Block`] of directions, which default
//! to a loop over the directions (a fully connected layer batches its GEMMs instead).
//!
//! Chained through a [`crate::nn::graph::Graph`] they give H·v by forward-over-reverse
//! differentiation (Pearlmutter 1994), exact to round-off. Tensors are addressed as a buffer and an
//! element offset ([`Ten`], [`TenMut`]); a batch of `rows` samples is contiguous, row-major.
//!
//! Adding a layer kind: its file here (the struct, `impl Layer` with its [`Shape`], and
//! `impl<B: Backend> OpRule<B>` with its four passes reading and writing [`Pass`] fields; a block
//! form only where it batches), a `pub mod` and `pub use` line here, its name in the `ops!` list
//! of [`crate::nn::graph`] (the [`crate::nn::graph::Op`] variant and its dispatch), a
//! [`crate::nn::graph::Builder`] method for the models, and a row in `all_ops()` of
//! `tests/ops.rs`. The engine and the graph's bookkeeping need no change.

pub mod act;
pub mod add;
pub mod attention;
pub mod conv;
pub mod embed;
pub mod flatten;
pub mod global_pool;
pub mod layer_norm;
pub mod linear;
pub mod loss;
pub mod mean_pool;
pub mod pool;
pub mod proj_add;

pub use act::Act;
pub use add::Add;
pub use attention::Attention;
pub use conv::Conv3x3;
pub use embed::Embed;
pub use flatten::Flatten;
pub use global_pool::GlobalAvgPool;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mean_pool::MeanPool;
pub use pool::MaxPool2;
pub use proj_add::ProjAdd;

use crate::backend::{Backend, Varlen};
use crate::error::{Error, Result};

/// Tensor views (a buffer and an element offset), the backend's own.
pub use crate::backend::view::{Ten, TenMut};

/// The input of a layer: an activation buffer, or the data set itself (the first layer; the CPU
/// backend multiplies by MNIST in its sparse form, [`crate::backend::input`]).
pub enum Input<'a, B: Backend> {
    /// Rows `r0..` of the data set's features.
    Data(&'a B::Input, usize),
    Buf(Ten<'a, B>),
}

impl<B: Backend> Clone for Input<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for Input<'_, B> {}

/// Where θ sits on the kinks of the network over the data (issue 31 case 13): ReLU inputs exactly
/// 0 (ReLU′(0) = 0 is taken, PyTorch's choice) and max-pool windows whose non-zero maximum is tied
/// (the first maximum takes the gradient, PyTorch's choice). A window of zeros behind a ReLU is no
/// kink: its inputs are clamped and move as one. At a kink the loss is not twice differentiable;
/// the Hessian computed is the branch these conventions pick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Kinks {
    pub relu_zeros: usize,
    pub pool_ties: usize,
}

impl Kinks {
    /// Whether θ sits on any kink.
    pub fn any(&self) -> bool {
        self.relu_zeros + self.pool_ties > 0
    }
    /// This count and `o`'s.
    pub fn plus(self, o: Kinks) -> Kinks {
        Kinks {
            relu_zeros: self.relu_zeros + o.relu_zeros,
            pool_ties: self.pool_ties + o.pool_ties,
        }
    }
}

/// Scalars per sample of an op, and its parameter count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Shape {
    /// Elements of one sample's input and output.
    pub input: usize,
    pub output: usize,
    /// Elements the op keeps for its derivative passes besides its output (a pooling's arg-max,
    /// attention's P).
    pub aux: usize,
    /// Scratch elements its passes need (im2col; LayerNorm's products).
    pub scratch: usize,
    /// Entries of θ it owns.
    pub params: usize,
}

/// The form in which a graph's first op reads the data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataForm {
    /// Feature rows (a fully connected layer; the CPU's sparse form where it applies).
    Features,
    /// Images in NHWC (a convolution), from the data set's CHW.
    Images { c: usize, h: usize, w: usize },
    /// Token ids, `seq` per sample, each below `vocab` (an embedding).
    Tokens { vocab: usize, seq: usize },
}

/// What a graph and the engine need to know of an op besides its passes.
pub trait Layer {
    /// Sizes per sample and the parameter count.
    fn shape(&self) -> Shape;
    /// True if the op writes its output over its input (tanh and ReLU): its forward pass then
    /// gets no `x` ([`Pass::x`] is `None`) and its output buffer holds the input.
    fn in_place(&self) -> bool {
        false
    }
    /// The earlier tensor a residual add reads besides the previous one ([`Pass::skip`]).
    fn skip_from(&self) -> Option<usize> {
        None
    }
    /// How the op reads the data set when it is a graph's first op; None if it cannot be first.
    fn reads_data(&self) -> Option<DataForm> {
        None
    }
    /// Whether the op has kinks where its derivatives follow a convention (ReLU at 0, max-pool
    /// ties): the engine then counts them on its input ([`Layer::kinks`]).
    fn has_kinks(&self) -> bool {
        false
    }
    /// The kinks that `input` (rows of this op's input, host values, row-major) sits on.
    fn kinks(&self, _input: &[f64]) -> Kinks {
        Kinks::default()
    }
    /// What the op needs that the WGSL backend has no kernel for (e.g. a convolution other than
    /// 3×3/1/1), in words; None when every pass runs on the GPU. An engine on a GPU refuses a
    /// graph with such an op before it allocates anything.
    fn wgsl_missing(&self) -> Option<String> {
        None
    }
}

/// The passes of an op on backend `B`, each over a [`Pass`] that holds what the pass reads and
/// writes (a pass takes from it the fields its math names; the others are `None`).
pub trait OpRule<B: Backend>: Layer {
    /// Reads `x` (`None` for an in-place op), θ, `skip`, `ids`; writes `y_out`, `aux_out`.
    fn forward(&self, p: Pass<'_, B>) -> Result<()>;
    /// Reads `x`, `y`, θ, `gy`, `aux`, `ids`, `index`; writes `grad` (∂L/∂θ accumulated, when
    /// given) and `gx` (∂L/∂x, overwritten, when given: absent for the first op).
    fn vjp(&self, p: Pass<'_, B>) -> Result<()>;
    /// Reads `x`, `y`, `rx` (absent for the first op), θ, `v`, `skip` (R{s}), `aux`, `ids`;
    /// writes `ry`.
    fn jvp(&self, p: Pass<'_, B>) -> Result<()>;
    /// Reads `x`, `y`, `rx`, θ, `v`, `gy`, `rgy`, `aux`, `ids`, `index`; writes `hv` (R{∂L/∂θ}
    /// accumulated) and `rgx` (R{∂L/∂x}, overwritten, when given).
    fn r_vjp(&self, p: Pass<'_, B>) -> Result<()>;
    /// The residual's share of its source's gradient, for an op with [`Layer::skip_from`]: called
    /// once the source tensor s's gradient is written, it reads `skip` (s's value), `gy` (this
    /// op's ∂L/∂y) and θ, and accumulates ∂L/∂s into `gx` and, when given, ∂L/∂θ into `grad`.
    /// By default the identity shortcut of [`Add`]: gx += gy.
    fn skip_vjp(&self, p: Pass<'_, B>) -> Result<()> {
        let (gy, gx) = (got(p.gy, "∂L/∂y")?, got(p.gx, "∂L/∂s")?);
        let len = p.rows * self.shape().output;
        p.be.axpy(1.0, gy.0, gy.1, gx.0, gx.1, len)
    }
    /// The R-operator of [`OpRule::skip_vjp`] for the directions of `b` (stacked as [`Block`]
    /// says: R{s} in `rx`, R{∂L/∂s} in `rgx`, both at `i·sx`; `rgy` at `i·sy`): reads `skip`,
    /// `rx`, θ, `v`, `gy`, `rgy`; accumulates into `hv` and `rgx`. By default the identity
    /// shortcut, one add for all directions: rgx += rgy — right only where s and y have the same
    /// width (`b.sx == b.sy`); an op whose shortcut changes the width overrides it and goes
    /// direction by direction (as `ProjAdd`).
    fn skip_r_vjp_block(&self, p: Pass<'_, B>, b: Block) -> Result<()> {
        let (rgy, rgx) = (got(p.rgy, "R{∂L/∂y}")?, got(p.rgx, "R{∂L/∂s}")?);
        let len = b.n * p.rows * self.shape().output;
        p.be.axpy(1.0, rgy.0, rgy.1, rgx.0, rgx.1, len)
    }
    /// [`OpRule::jvp`] for the directions of `b`, stacked as [`Block`] says; by default one
    /// direction after another.
    fn jvp_block(&self, mut p: Pass<'_, B>, b: Block) -> Result<()> {
        for i in 0..b.n {
            self.jvp(p.direction(i, &b))?;
        }
        Ok(())
    }
    /// [`OpRule::r_vjp`] for the directions of `b`; by default one direction after another.
    fn r_vjp_block(&self, mut p: Pass<'_, B>, b: Block) -> Result<()> {
        for i in 0..b.n {
            self.r_vjp(p.direction(i, &b))?;
        }
        Ok(())
    }
}

/// A block of `n` directions in the R-passes: direction i's `v` and `hv` at `+ i·vs` (θ's
/// layout), its `rx` and `rgx` at `+ i·sx`, `ry` and `rgy` at `+ i·sy`, R{skip} at `+ i·skip`
/// from the pass's offsets; `x`, `y`, `gy`, `aux` are shared by all directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub n: usize,
    pub vs: usize,
    pub sx: usize,
    pub sy: usize,
    pub skip: usize,
}

/// What one pass of one op reads and writes, for `rows` samples. Tensors are at the offset of
/// the chunk's first row; which fields a pass reads and writes is said on each [`OpRule`] method.
pub struct Pass<'a, B: Backend> {
    pub be: &'a B,
    pub rows: usize,
    /// The parameters (each op addresses its slice by its own offsets).
    pub theta: &'a B::Buf,
    /// The op's input: the previous tensor, or the data for the first op.
    pub x: Option<Input<'a, B>>,
    /// The op's output (read by the derivative passes).
    pub y: Option<Ten<'a, B>>,
    /// A residual's second input (forward) or its R{} (R-forward).
    pub skip: Option<Ten<'a, B>>,
    /// R{x}.
    pub rx: Option<Ten<'a, B>>,
    /// The direction, in θ's layout.
    pub v: Option<Ten<'a, B>>,
    /// ∂L/∂y and R{∂L/∂y}.
    pub gy: Option<Ten<'a, B>>,
    pub rgy: Option<Ten<'a, B>>,
    /// What the forward pass kept in `aux_out` (arg-max, attention's P).
    pub aux: Option<Ten<'a, B>>,
    /// The chunk's token ids (a graph that starts with an embedding).
    pub ids: Option<Ten<'a, B>>,
    /// The chunk's token index ([`crate::backend::TokenIndex`]: start, order).
    pub index: Option<(&'a B::Buf, &'a B::Buf)>,
    /// Written: y, the kept tensor, R{y}, ∂L/∂θ, ∂L/∂x, H·v, R{∂L/∂x}.
    pub y_out: Option<TenMut<'a, B>>,
    pub aux_out: Option<TenMut<'a, B>>,
    pub ry: Option<TenMut<'a, B>>,
    pub grad: Option<TenMut<'a, B>>,
    pub gx: Option<TenMut<'a, B>>,
    pub hv: Option<TenMut<'a, B>>,
    pub rgx: Option<TenMut<'a, B>>,
    /// Scratch of at least rows × [`Shape::scratch`] elements (at offset 0).
    pub scratch: Option<&'a mut B::Buf>,
    /// The chunk's live tokens packed, when the engine runs a masked sequence model that way
    /// (the embedding, attention and the mean then read and write packed tokens; `rows` stays
    /// the chunk's sequences for them, and is the token count for the per-position ops).
    pub packed: Option<Packed<'a, B>>,
}

/// A chunk's live tokens packed ([`Varlen`]) with the embedding gradient's two indices over the
/// packed tokens ([`crate::backend::TokenIndex`], `(start, order)`): grouped by token id, and by
/// position t (a vocabulary of T).
pub struct Packed<'a, B: Backend> {
    /// The chunk's sentences: offsets of their live tokens and each token's padded position.
    pub v: Varlen<'a, B>,
    /// The packed tokens grouped by token id: `(start, order)`.
    pub by_id: (&'a B::Buf, &'a B::Buf),
    /// The packed tokens grouped by position t: `(start, order)`.
    pub by_pos: (&'a B::Buf, &'a B::Buf),
}

impl<B: Backend> Clone for Packed<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for Packed<'_, B> {}

impl<'a, B: Backend> Pass<'a, B> {
    /// A pass with nothing to read or write but θ; fill in the rest by struct update.
    pub fn new(be: &'a B, rows: usize, theta: &'a B::Buf) -> Self {
        Pass {
            be,
            rows,
            theta,
            x: None,
            y: None,
            skip: None,
            rx: None,
            v: None,
            gy: None,
            rgy: None,
            aux: None,
            ids: None,
            index: None,
            y_out: None,
            aux_out: None,
            ry: None,
            grad: None,
            gx: None,
            hv: None,
            rgx: None,
            scratch: None,
            packed: None,
        }
    }

    /// Direction i of a block pass (see [`Block`]); the forward and backward outputs are not
    /// carried.
    pub fn direction(&mut self, i: usize, b: &Block) -> Pass<'_, B> {
        Pass {
            be: self.be,
            rows: self.rows,
            theta: self.theta,
            x: self.x,
            y: self.y,
            skip: shift(self.skip, i * b.skip),
            rx: shift(self.rx, i * b.sx),
            v: shift(self.v, i * b.vs),
            gy: self.gy,
            rgy: shift(self.rgy, i * b.sy),
            aux: self.aux,
            ids: self.ids,
            index: self.index,
            y_out: None,
            aux_out: None,
            ry: shift_mut(&mut self.ry, i * b.sy),
            grad: None,
            gx: None,
            hv: shift_mut(&mut self.hv, i * b.vs),
            rgx: shift_mut(&mut self.rgx, i * b.sx),
            scratch: self.scratch.as_deref_mut(),
            packed: self.packed,
        }
    }
}

/// `t` moved `by` elements on.
fn shift<B: Backend>(t: Option<Ten<'_, B>>, by: usize) -> Option<Ten<'_, B>> {
    t.map(|t| Ten(t.0, t.1 + by))
}

/// `t` reborrowed and moved `by` elements on.
fn shift_mut<'s, B: Backend>(t: &'s mut Option<TenMut<'_, B>>, by: usize) -> Option<TenMut<'s, B>> {
    t.as_mut().map(|t| TenMut(&mut *t.0, t.1 + by))
}

/// A field the pass must carry (the engine always gives it; a missing one is a caller's bug).
pub(crate) fn got<T>(x: Option<T>, what: &str) -> Result<T> {
    x.ok_or_else(|| Error::InvalidArgument(format!("an op's pass was given no {what}")))
}

/// The tensors only ops after the first have (R{x}, ∂L/∂x, R{∂L/∂x}).
pub(crate) fn need<T>(x: Option<T>) -> Result<T> {
    x.ok_or_else(|| {
        Error::InvalidArgument(
            "only a linear, convolution or embedding op can be a graph's first op (it reads the data)".into(),
        )
    })
}

/// The input of an op that reads an activation buffer (every op but a fully connected first
/// layer).
pub(crate) fn buf<B: Backend>(x: Option<Input<'_, B>>) -> Result<Ten<'_, B>> {
    match got(x, "input")? {
        Input::Buf(t) => Ok(t),
        Input::Data(..) => Err(Error::InvalidArgument(
            "this op cannot read the data directly: the graph must start with a linear or convolution layer"
                .into(),
        )),
    }
}

/// The error of an op that needs token ids in a graph without them.
pub(crate) fn no_tokens() -> Error {
    Error::InvalidArgument(
        "an embedding, attention or sequence-mean op needs token ids: the graph must start with an embedding".into(),
    )
}

/// The token ids of the chunk.
pub(crate) fn ids<B: Backend>(x: Option<Ten<'_, B>>) -> Result<Ten<'_, B>> {
    x.ok_or_else(no_tokens)
}
