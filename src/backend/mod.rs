//! The backend trait: the handful of primitives the model, the HVP and the eigen-solvers are
//! written over. A backend owns its buffers (`Self::Buf`, a flat vector of scalars on the host or on
//! a device); every operation addresses a buffer by an element offset, so the flat parameter vector
//! θ, a basis of Lanczos vectors or a chunk of the data set are all plain buffers with offsets.
//!
//! Conventions: matrices are row-major; `gemm` computes C = α·op(A)·op(B) + β·C with op(X) = X or
//! Xᵀ. Scalars cross the trait as `f64` whatever the backend's precision, so callers never depend
//! on it. Reductions return `f64` and are accumulated at least in `f64` on the CPU.
//!
//! The trait comes in four families, after burn's split of its backend into op families:
//! [`Buffers`] (allocation, transfers, copies), [`Blas`] (the matrix products and the vector
//! algebra the eigen-solvers run on), [`Nn`] (layers, losses, the optimiser's step) and [`SeqOps`]
//! (the sequence ops: embedding, LayerNorm, attention, mean over positions). [`Backend`] is all
//! four, implemented by every type that implements them; generic code writes `B: Backend`, code
//! that calls a concrete backend's methods imports [`prelude`]. Every family is required of every
//! backend: a kernel one backend lacks is a compile error, not a run-time refusal.
//!
//! The files: the traits here; [`kinds`]' enums (precision, activation, loss, backend choice);
//! [`view`]'s shapes and range checks; the two backends, [`cpu`] (the f64 oracle and the fast f32
//! path) and [`gpu`] (wgpu, WGSL kernels in `shaders/`).

/// The CPU backend (f32 and f64), its kernels on slices and its sparse input.
pub mod cpu;
/// The wgpu backend: natively it blocks on GPU futures; in a browser it suspends on them (JSPI).
pub mod gpu;
/// Precision, activation, loss and backend choice.
pub mod kinds;
/// The shapes the primitives are called with, and the range checks.
pub mod view;

/// The network's input on the CPU backend (dense, or a common value plus a sparse remainder).
pub use cpu::input;
pub use kinds::{Activation, BackendChoice, LossKind, Precision};
pub use view::{
    AdamStep, Attn, Batch, ConvGeom, Dual, Gemm, InputRows, Ln, LossBlock, Mat, MatMut, Nhwc, Seq,
    Ten, TenMut, ThetaV, TokenIndex, Transfers, Varlen, gemm_each,
};
pub(crate) use view::{check_batch, check_input_view, check_range};

use crate::error::Result;

/// The backend traits in one import, for calling methods on a concrete backend
/// (`use subspace_lab::backend::prelude::*;`); generic code bounded by [`Backend`] needs none.
pub mod prelude {
    pub use super::{Backend, Blas, Buffers, Nn, SeqOps};
}

/// The primitives, all four families. Offsets and lengths are in elements. Operands are typed
/// views ([`view`]): a matrix ([`Mat`], [`MatMut`]) for the BLAS products, a tensor ([`Ten`],
/// [`TenMut`]: a buffer and an offset) whose extent the shape argument gives ([`Seq`], [`Ln`],
/// [`Attn`], [`Nhwc`], rows×cols), a value with its R-derivative ([`Dual`]) and θ with a
/// direction ([`ThetaV`]) for the R-passes. Implemented for every type that implements the four
/// families.
pub trait Backend: Buffers + Blas + Nn + SeqOps {}

impl<B: Buffers + Blas + Nn + SeqOps + ?Sized> Backend for B {}

/// Buffers: what a backend computes in (`Self::Buf`, a flat vector of scalars on the host or on a
/// device), its allocation, host ↔ device transfers, copies and fills, and what the callers ask
/// of the device (its name, chunk and block sizes, buffer limit, traffic, a barrier).
pub trait Buffers {
    type Buf;
    /// Human-readable name, e.g. `cpu-f32`.
    fn name(&self) -> String;
    fn precision(&self) -> Precision;
    /// The device behind the backend (GPU adapter name, type and API), if any.
    fn adapter(&self) -> Option<String> {
        None
    }
    /// Samples per chunk of the HVP's R-passes when the caller leaves the choice to the backend
    /// (chunk 0). The CPU keeps a chunk's activations in cache (1000); a GPU wants few, large
    /// dispatches.
    fn default_chunk(&self) -> usize {
        1000
    }
    /// Directions a block HVP stacks into one R-pass ([`crate::nn::engine::Engine::hvp_block`]).
    /// The CPU runs batched GEMMs one after another, so stacking gains nothing there and costs
    /// cache (a block Davidson step measured 1.1–1.2× slower stacked): 1, one direction at a time.
    /// A GPU runs a batch in one dispatch: as many as memory allows.
    fn preferred_block(&self) -> usize {
        1
    }
    /// The most elements one buffer may hold (a GPU's storage-binding limit; unbounded on the CPU).
    fn max_buffer_len(&self) -> usize {
        usize::MAX
    }
    fn zeros(&self, len: usize) -> Result<Self::Buf>;
    fn upload(&self, data: &[f64]) -> Result<Self::Buf>;
    /// Host values into `buf[off..off + data.len()]`, an existing buffer (no allocation: what a
    /// step that uploads something every time — a minibatch, small coefficient matrices — uses
    /// in its steady state). On a device ordered after everything recorded before it. Errors: a
    /// range outside the buffer.
    fn write(&self, buf: &mut Self::Buf, off: usize, data: &[f64]) -> Result<()>;
    fn download(&self, buf: &Self::Buf) -> Result<Vec<f64>>;
    /// Elements `off..off+len` of a buffer (one read-back of `len` elements on a device).
    /// Errors: a range outside the buffer.
    fn download_range(&self, buf: &Self::Buf, off: usize, len: usize) -> Result<Vec<f64>> {
        check_range("download", self.len(buf), off, len)?;
        Ok(self.download(buf)?[off..off + len].to_vec())
    }
    fn len(&self, buf: &Self::Buf) -> usize;
    /// `dst[d_off..d_off+len] = src[s_off..s_off+len]`.
    fn copy(
        &self,
        src: &Self::Buf,
        s_off: usize,
        dst: &mut Self::Buf,
        d_off: usize,
        len: usize,
    ) -> Result<()>;
    /// `x[off..off+len] = value`.
    fn fill(&self, x: &mut Self::Buf, off: usize, len: usize, value: f64) -> Result<()>;
    /// What crossed between host and device so far (None on a backend without a device: the
    /// CPU). Deterministic: counted, not timed.
    fn transfers(&self) -> Option<Transfers> {
        None
    }
    /// Wait until everything recorded so far has executed (a no-op on the CPU). For timing.
    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// The matrix products (GEMM, batched GEMM, the products with the network's input) and the vector
/// algebra of the eigen-solvers and optimisers (dot, axpy, scale, norms, finiteness checks).
pub trait Blas: Buffers {
    /// The network's input (a data matrix the engine multiplies by in every pass), in the form
    /// this backend computes with it: the CPU backend stores MNIST as its common value plus a
    /// sparse remainder ([`input`]); the GPU keeps a dense buffer.
    type Input;
    /// C (m×n) = α·op(A)·op(B) + β·C, where the view `a` is op(A), m×k, and `b` is op(B), k×n
    /// (each stored row-major, transposed where its `trans` says: [`Mat::t`]).
    /// Errors: shapes that do not chain, ranges outside the buffers.
    fn gemm(
        &self,
        a: Mat<Self>,
        b: Mat<Self>,
        c: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()>;
    /// `batch.count` products C_i = α·op(A_i)·op(B_i) + β·C_i as in [`Self::gemm`], with A_i
    /// at `a.off + i·batch.a`, B_i at `b.off + i·batch.b`, C_i at `c.off + i·batch.c` (a stride
    /// of 0 shares an operand; the C_i must not overlap: `batch.c` ≥ m·n). Each C_i equals what
    /// [`Self::gemm`] gives for it, bit for bit. The default runs them one after another; the
    /// GPU runs them in one dispatch (the directions of a block HVP). Errors: overlapping C_i,
    /// shapes that do not chain, ranges outside the buffers.
    fn gemm_batched(
        &self,
        a: Mat<Self>,
        b: Mat<Self>,
        c: MatMut<Self>,
        alpha: f64,
        beta: f64,
        batch: Batch,
    ) -> Result<()> {
        gemm_each(self, a, b, c, alpha, beta, batch)
    }
    /// Prepare a row-major rows×cols input matrix for [`Self::input_gemm_nt`] and
    /// [`Self::input_gemm_tn`].
    fn input(&self, x: &[f64], rows: usize, cols: usize) -> Result<Self::Input>;
    /// Replace an input's values by another matrix of the same shape: into its buffers where the
    /// backend can (the GPU: no allocation), else prepared afresh ([`Self::input`]).
    fn input_write(
        &self,
        x: &mut Self::Input,
        data: &[f64],
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        *x = self.input(data, rows, cols)?;
        Ok(())
    }
    /// C (c×n, `out`) = α·X[r0..r0+c, :]·Bᵀ + β·C, with `b` the matrix B, n×cols, as stored (a
    /// weight matrix in θ's layout; not transposed): the first layer's forward product.
    /// Errors: shapes that do not chain, ranges outside the buffers.
    fn input_gemm_nt(
        &self,
        x: InputRows<Self>,
        b: Mat<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()>;
    /// C (n×cols, `out`) = α·Gᵀ·X[r0..r0+c, :] + β·C, with `g` the matrix G, c×n, as stored (not
    /// transposed): the first layer's weight gradient. Errors: shapes that do not chain, ranges
    /// outside the buffers.
    fn input_gemm_tn(
        &self,
        g: Mat<Self>,
        x: InputRows<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()>;
    /// [`Self::input_gemm_nt`] for `batch.count` matrices B_i at `b.off + i·batch.b` into C_i
    /// at `out.off + i·batch.c` (X shared; `batch.a` unused): the first layer's R-forward for the
    /// directions of a block HVP. Each C_i equals [`Self::input_gemm_nt`]'s bit for bit; the
    /// default runs them one by one, the GPU in one dispatch.
    fn input_gemm_nt_batched(
        &self,
        x: InputRows<Self>,
        b: Mat<Self>,
        mut out: MatMut<Self>,
        alpha: f64,
        beta: f64,
        batch: Batch,
    ) -> Result<()> {
        check_batch(out.rows, out.cols, batch)?;
        for i in 0..batch.count {
            self.input_gemm_nt(x, b.at(i * batch.b), out.at(i * batch.c), alpha, beta)?;
        }
        Ok(())
    }
    /// [`Self::input_gemm_tn`] for `batch.count` matrices G_i at `g.off + i·batch.a` into C_i
    /// at `out.off + i·batch.c` (X shared; `batch.b` unused): the first layer's weight-gradient
    /// products of a block HVP, bit for bit those of [`Self::input_gemm_tn`].
    fn input_gemm_tn_batched(
        &self,
        g: Mat<Self>,
        x: InputRows<Self>,
        mut out: MatMut<Self>,
        alpha: f64,
        beta: f64,
        batch: Batch,
    ) -> Result<()> {
        // The input's width is the backend's to know: refuse at least outputs less than a row
        // apart (stride 0 would sum every product into one place on the CPU and race on a GPU).
        check_batch(out.rows, 1, batch)?;
        for i in 0..batch.count {
            self.input_gemm_tn(g.at(i * batch.a), x, out.at(i * batch.c), alpha, beta)?;
        }
        Ok(())
    }
    /// Σ x[i]·y[i] over `len` elements.
    fn dot(
        &self,
        x: &Self::Buf,
        x_off: usize,
        y: &Self::Buf,
        y_off: usize,
        len: usize,
    ) -> Result<f64>;
    /// `out[out.1] = Σᵢ x[x.1 + i]·y[y.1 + i]` over `len` elements, written into a buffer
    /// instead of returned: on a device no read-back, so that a later [`Self::download_range`]
    /// brings it together with other values (the default computes [`Self::dot`] and stores
    /// it). `out` must be another buffer than `x` and `y`. Errors: ranges outside the buffers.
    fn dot_into(
        &self,
        x: Ten<'_, Self>,
        y: Ten<'_, Self>,
        len: usize,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        let Ten(x, x_off) = x;
        let Ten(y, y_off) = y;
        let TenMut(out, out_off) = out;
        let d = self.dot(x, x_off, y, y_off, len)?;
        self.fill(out, out_off, 1, d)
    }
    /// `y = α·x + y` over `len` elements.
    fn axpy(
        &self,
        alpha: f64,
        x: &Self::Buf,
        x_off: usize,
        y: &mut Self::Buf,
        y_off: usize,
        len: usize,
    ) -> Result<()>;
    /// `x = α·x` over `len` elements.
    fn scale(&self, alpha: f64, x: &mut Self::Buf, off: usize, len: usize) -> Result<()>;
    /// `x = 1/√x` elementwise over `len` elements, with 0 where x = 0 (or is subnormal in the
    /// backend's precision) and NaN where x is negative or not finite. Turns squared norms computed by [`Self::dot_into`] into the factors that
    /// normalise their vectors on the backend (no read-back: a zero vector stays zero, a NaN
    /// shows in what it multiplies). Errors: a range outside the buffer.
    fn rsqrt(&self, x: &mut Self::Buf, off: usize, len: usize) -> Result<()>;
    /// ‖x‖₂ over `len` elements.
    fn norm(&self, x: &Self::Buf, off: usize, len: usize) -> Result<f64> {
        Ok(self.dot(x, off, x, off, len)?.max(0.0).sqrt())
    }
    /// Euclidean norms of `rows` consecutive vectors of length `len` starting at `off`.
    fn row_norms(&self, x: &Self::Buf, off: usize, rows: usize, len: usize) -> Result<Vec<f64>> {
        (0..rows)
            .map(|r| self.norm(x, off + r * len, len))
            .collect()
    }
    /// True if every element of `x[off..off+len]` is finite.
    fn all_finite(&self, x: &Self::Buf, off: usize, len: usize) -> Result<bool>;
    /// `out[out_off]` = 0 when every value of `x[off..off+len]` is finite, else a positive number
    /// (the GPU counts them; the default writes 1), written into a buffer like
    /// [`Self::dot_into`] (no read-back on a device).
    /// `out` must be another buffer than `x`. Errors: ranges outside the buffers.
    fn count_nonfinite_into(
        &self,
        x: &Self::Buf,
        off: usize,
        len: usize,
        out: &mut Self::Buf,
        out_off: usize,
    ) -> Result<()> {
        let ok = self.all_finite(x, off, len)?;
        self.fill(out, out_off, 1, if ok { 0.0 } else { 1.0 })
    }
}

/// The layers' kernels: bias and activations with their first and second derivatives, the
/// convolution's im2col and its adjoint, pooling, transposes, column sums, the losses with their
/// gradients and Hessian products, and the Adam step.
pub trait Nn: Buffers {
    /// Fused bias add and activation in place on a rows×cols block: `x ← σ(x + bias)` (row
    /// broadcast of the bias). With `act = None` only the bias is added (the output layer).
    fn bias_act(
        &self,
        act: Option<Activation>,
        rows: usize,
        cols: usize,
        bias: Ten<'_, Self>,
        x: TenMut<'_, Self>,
    ) -> Result<()>;
    /// `out = g ⊙ σ'(z)` on `len` elements from the cached value `a`: the output σ(z) for tanh
    /// and ReLU, whose derivatives are functions of it (1 − a², 1[a > 0], so no transcendental is
    /// evaluated again), z itself for SiLU and GELU ([`Activation::from_output`]).
    fn act_d1_mul(
        &self,
        act: Activation,
        len: usize,
        a: Ten<'_, Self>,
        g: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()>;
    /// The R-operator of the backward activation step, from the cached value `a` (as in
    /// [`Self::act_d1_mul`]): `out = rg ⊙ σ'(z) + g ⊙ σ''(z) ⊙ rz` on `len` elements.
    fn act_d2_r(
        &self,
        act: Activation,
        len: usize,
        a: Ten<'_, Self>,
        g: Dual<'_, Self>,
        rz: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()>;
    /// `x ← σ(x)` in place on `len` elements (the activation op's forward pass).
    fn act(&self, act: Activation, len: usize, x: &mut Self::Buf, off: usize) -> Result<()>;
    /// Column sums of a rows×cols block: `dst[j] = β·dst[j] + α·Σ_r src[r, j]`.
    fn col_sum(
        &self,
        rows: usize,
        cols: usize,
        alpha: f64,
        src: Ten<'_, Self>,
        beta: f64,
        dst: TenMut<'_, Self>,
    ) -> Result<()>;
    /// Loss of a rows×cols block of outputs against targets, its gradient and statistics:
    /// `grad = scale · ∂ℓ/∂out` (rows×cols); `stats[0] += Σ ℓ`, `stats[1] +=` number of
    /// rows whose argmax output equals the argmax target. `stats` stays on the backend so that a
    /// full-data pass needs one read-back.
    fn loss_grad(
        &self,
        blk: LossBlock,
        out: Ten<'_, Self>,
        target: Ten<'_, Self>,
        grad: TenMut<'_, Self>,
        stats: &mut Self::Buf,
    ) -> Result<()>;
    /// The loss Hessian (w.r.t. the outputs) times R{out}: `rgrad = scale · ∇²ℓ(out) · rout`, per row.
    fn loss_hess_mul(
        &self,
        blk: LossBlock,
        out: Ten<'_, Self>,
        rout: Ten<'_, Self>,
        rgrad: TenMut<'_, Self>,
    ) -> Result<()>;
    /// im2col of a convolution of geometry `k` ([`ConvGeom`]) on images `g` (NHWC, the view `x`):
    /// writes the n·oh·ow × k²·c matrix `col` (oh, ow: [`ConvGeom::out_size`]) whose row (s, oy,
    /// ox) holds the zero-padded window X[s, oy·stride + ky − pad, ox·stride + kx − pad, ci] at
    /// column ci·k² + ky·k + kx — PyTorch's weight layout `[c_out, c_in, k, k]`, so the
    /// convolution is `col · Wᵀ`. Errors: a geometry that does not fit the images
    /// ([`ConvGeom::out_hw`]), ranges outside the buffers. Every backend runs every geometry (the
    /// CPU and the GPU each with a loop or entry point specialised to [`ConvGeom::SAME_3X3`]).
    fn im2col(&self, g: Nhwc, k: ConvGeom, x: Ten<'_, Self>, col: TenMut<'_, Self>) -> Result<()>;
    /// The adjoint of [`Self::im2col`]: `dx = β·dx + colᵀ-scatter`, i.e. every entry of `col`
    /// added to the input pixel it was read from (NHWC `g`, the view `dx`; entries read from the
    /// padding are dropped). Written as a gather (each pixel sums its ≤ k² reads in the order
    /// ky, kx), so no atomics are needed. Errors: as [`Self::im2col`].
    fn col2im(
        &self,
        g: Nhwc,
        k: ConvGeom,
        col: Ten<'_, Self>,
        beta: f64,
        dx: TenMut<'_, Self>,
    ) -> Result<()>;
    /// 2×2 max-pool with stride 2 of images `g` (NHWC, h and w even): `out` [n, h/2, w/2, c] and
    /// `idx` of the same shape holding the arg-max's window position dy·2 + dx, the first maximum
    /// in row-major window order on ties (PyTorch's choice).
    fn maxpool2(
        &self,
        g: Nhwc,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        idx: TenMut<'_, Self>,
    ) -> Result<()>;
    /// The pooling's Jacobian at fixed arg-max (the R-forward): `out[s, Y, X, k] = src[s, 2Y+dy,
    /// 2X+dx, k]` with (dy, dx) from `idx`; `g` is the input geometry.
    fn pool2_gather(
        &self,
        g: Nhwc,
        idx: Ten<'_, Self>,
        src: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()>;
    /// The adjoint of [`Self::pool2_gather`]: `dx` (geometry `g`) receives each output's
    /// gradient at its arg-max and zero elsewhere (overwritten).
    fn pool2_scatter(
        &self,
        g: Nhwc,
        idx: Ten<'_, Self>,
        gy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()>;
    /// `batch` row-major rows×cols matrices transposed: `dst[b, j, i] = src[b, i, j]`. With rows =
    /// h·w and cols = c it turns NHWC into PyTorch's NCHW flatten order, and back with the sizes
    /// swapped.
    fn transpose_batch(
        &self,
        batch: usize,
        rows: usize,
        cols: usize,
        src: Ten<'_, Self>,
        dst: TenMut<'_, Self>,
    ) -> Result<()>;
    /// One Adam step on `len` elements (Kingma & Ba 2015, Algorithm 1; PyTorch's `torch.optim.Adam`
    /// without weight decay): m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², then the update
    /// d = η·(m/c₁)/(√(v/c₂) + ε) with the bias corrections c₁ = 1 − β₁ᵗ, c₂ = 1 − β₂ᵗ given by the
    /// caller. All four buffers hold `len` elements from offset 0. Errors: a short buffer.
    fn adam(
        &self,
        g: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        d: &mut Self::Buf,
        len: usize,
        h: AdamStep,
    ) -> Result<()>;
}

/// The sequence ops of the Transformer: token and position embedding, LayerNorm, multi-head
/// attention and the mean over positions, each with its VJP, JVP and R-backward. (Named
/// `SeqOps` because [`Seq`] is the shape of a batch of sequences.)
pub trait SeqOps: Buffers {
    /// Token and position embedding of a batch of sequences `g`: `out[r, t, :] = table[table.1 +
    /// id·D ..] + table[pos_off + t·D ..]` with `id = ids[ids.1 + r·T + t]` (a token id stored as
    /// a scalar; the engine checks every id is below the vocabulary). Used with θ (forward) and
    /// with a direction v (R-forward: the embedding is linear in its tables).
    fn embed(
        &self,
        g: Seq,
        ids: Ten<'_, Self>,
        table: Ten<'_, Self>,
        pos_off: usize,
        out: TenMut<'_, Self>,
    ) -> Result<()>;
    /// The token table's gradient, a scatter-add written as a gather: for every vocabulary row v,
    /// `out[out.1 + v·D + j] += Σ gy[order[p]·D + j]` over `p ∈ start[v]..start[v+1]`, where
    /// `order` lists the chunk's positions (r·T + t) sorted by token id and `start` (vocab + 1
    /// entries) delimits each id's run ([`TokenIndex`]). No atomics; the summation order is fixed.
    fn embed_grad(
        &self,
        g: Seq,
        vocab: usize,
        start: &Self::Buf,
        order: &Self::Buf,
        gy: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()>;
    /// LayerNorm over the last dimension of `l.rows` rows of `l.width`: `y = γ ⊙ x̂ + β`, `x̂ =
    /// (x − μ)/√(σ² + ε)` (biased variance, as PyTorch and Flax), γ and β in `theta` at `l.gamma`,
    /// `l.beta`.
    fn layer_norm(
        &self,
        l: Ln,
        x: Ten<'_, Self>,
        theta: &Self::Buf,
        y: TenMut<'_, Self>,
    ) -> Result<()>;
    /// LayerNorm's VJP: with `dx̂ = dy ⊙ γ`, `dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂ ⊙ x̂)) / σ`
    /// (overwritten) and `prod = dy ⊙ x̂` (the summand of ∂L/∂γ; ∂L/∂β is the column sum of dy).
    fn layer_norm_vjp(
        &self,
        l: Ln,
        x: Ten<'_, Self>,
        theta: &Self::Buf,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
        prod: TenMut<'_, Self>,
    ) -> Result<()>;
    /// LayerNorm's JVP: `R{x̂} = (Rx − mean(Rx) − x̂·mean(x̂ ⊙ Rx)) / σ`, `R{y} = v_γ ⊙ x̂ + γ ⊙ R{x̂}
    /// + v_β` with the direction's γ and β in `v` at `l.gamma`, `l.beta`.
    fn layer_norm_jvp(
        &self,
        l: Ln,
        x: Dual<'_, Self>,
        theta: ThetaV<'_, Self>,
        ry: TenMut<'_, Self>,
    ) -> Result<()>;
    /// LayerNorm's R-backward (the R-operator of [`Self::layer_norm_vjp`]): with `A = dx̂ −
    /// mean(dx̂) − x̂·mean(dx̂ ⊙ x̂)`, `R{1/σ} = −mean(x̂ ⊙ Rx)/σ²`,
    /// `R{dx} = R{1/σ}·A + (R{dx̂} − mean(R{dx̂}) − R{x̂}·mean(dx̂ ⊙ x̂) − x̂·mean(R{dx̂} ⊙ x̂ + dx̂ ⊙
    /// R{x̂}))/σ` where `R{dx̂} = R{dy} ⊙ γ + dy ⊙ v_γ`; `prod = R{dy} ⊙ x̂ + dy ⊙ R{x̂}` (the
    /// summand of R{∂L/∂γ}).
    fn layer_norm_rvjp(
        &self,
        l: Ln,
        x: Dual<'_, Self>,
        theta: ThetaV<'_, Self>,
        dy: Dual<'_, Self>,
        rdx: TenMut<'_, Self>,
        prod: TenMut<'_, Self>,
    ) -> Result<()>;
    /// Multi-head scaled dot-product attention over a batch `a` of sequences. `qkv` holds per
    /// token [q | k | v] (3·D scalars, head h in columns h·dh..(h+1)·dh of each); `out[r, i, h·dh..]
    /// = Σ_j P[r,h,i,j] v_j`, `P = softmax_j(q_i·k_j / √dh)` over the keys j whose token id is not 0
    /// when `a.masked` (ids from `ids.1`, r·T + j), all keys otherwise. `probs` [rows, H, T, T]
    /// keeps P (0 at masked keys; a row with every key masked is all 0).
    fn attention(
        &self,
        a: Attn,
        ids: Ten<'_, Self>,
        qkv: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        probs: TenMut<'_, Self>,
    ) -> Result<()>;
    /// Attention's VJP at the cached P (`dqkv` overwritten): `dP_ij = do_i·v_j`, `δ_i = Σ_j P_ij
    /// dP_ij`, `dS = P ⊙ (dP − δ)`, `dq_i = Σ_j dS_ij k_j / √dh`, `dk_j = Σ_i dS_ij q_i / √dh`,
    /// `dv_j = Σ_i P_ij do_i`.
    fn attention_vjp(
        &self,
        a: Attn,
        qkv: Ten<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Ten<'_, Self>,
        dqkv: TenMut<'_, Self>,
    ) -> Result<()>;
    /// Attention's JVP: `RS_ij = (Rq_i·k_j + q_i·Rk_j)/√dh`, `RP = P ⊙ (RS − Σ_j P_ij RS_ij)`,
    /// `R{o_i} = Σ_j RP_ij v_j + P_ij Rv_j`.
    fn attention_jvp(
        &self,
        a: Attn,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        rout: TenMut<'_, Self>,
    ) -> Result<()>;
    /// Attention's R-backward (R-operator of [`Self::attention_vjp`]; `rdqkv` overwritten):
    /// `R{dP}_ij = R{do_i}·v_j + do_i·Rv_j`, `R{δ_i} = Σ_j RP_ij dP_ij + P_ij R{dP}_ij`,
    /// `R{dS} = RP ⊙ (dP − δ) + P ⊙ (R{dP} − R{δ})`, `R{dq_i} = Σ_j (R{dS}_ij k_j + dS_ij Rk_j)/√dh`,
    /// `R{dk_j} = Σ_i (R{dS}_ij q_i + dS_ij Rq_i)/√dh`, `R{dv_j} = Σ_i RP_ij do_i + P_ij R{do_i}`.
    fn attention_rvjp(
        &self,
        a: Attn,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Dual<'_, Self>,
        rdqkv: TenMut<'_, Self>,
    ) -> Result<()>;
    /// Mean over each sequence's positions: `out[r, :] = Σ_t w_rt x[r, t, :]` with `w_rt = [id ≠
    /// 0] / #{t: id ≠ 0}` when `masked` (a sequence of padding only gives 0), `1/T` otherwise.
    fn seq_mean(
        &self,
        g: Seq,
        masked: bool,
        ids: Ten<'_, Self>,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()>;
    /// The adjoint of [`Self::seq_mean`]: `dx[r, t, :] = w_rt dy[r, :]` (overwritten).
    fn seq_mean_adjoint(
        &self,
        g: Seq,
        masked: bool,
        ids: Ten<'_, Self>,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()>;
    /// Whether the engine runs a masked sequence model on its live tokens packed ([`Varlen`]) on
    /// this backend. A backend answering false keeps the padded form: the engine never hands it
    /// a [`Varlen`], and its `*_varlen` methods refuse with [`crate::error::Error::Backend`].
    fn packs_tokens(&self) -> bool;
    /// [`Self::embed`] on packed tokens: `out[j, :] = table[table.1 + id·D ..] + table[pos_off +
    /// t·D ..]` for token j at `pos[j] = r·T + t`, `id = ids[ids.1 + pos[j]]`, D = `width`.
    fn embed_varlen(
        &self,
        v: Varlen<'_, Self>,
        width: usize,
        ids: Ten<'_, Self>,
        table: Ten<'_, Self>,
        pos_off: usize,
        out: TenMut<'_, Self>,
    ) -> Result<()>;
    /// [`Self::attention`] on packed tokens, each sequence's live queries over its live keys:
    /// `qkv` [tokens, 3D], `out` [tokens, D]; sequence r's P (its H × L × L, L its token count)
    /// at `probs.1 + r·H·T·T` (the padded layout's slot, `a.rows` = sequences, `a.seq` = T).
    /// Equal to the masked padded form at every live position.
    fn attention_varlen(
        &self,
        a: Attn,
        v: Varlen<'_, Self>,
        qkv: Ten<'_, Self>,
        out: TenMut<'_, Self>,
        probs: TenMut<'_, Self>,
    ) -> Result<()>;
    /// [`Self::attention_vjp`] on packed tokens (layout of [`Self::attention_varlen`]).
    fn attention_varlen_vjp(
        &self,
        a: Attn,
        v: Varlen<'_, Self>,
        qkv: Ten<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Ten<'_, Self>,
        dqkv: TenMut<'_, Self>,
    ) -> Result<()>;
    /// [`Self::attention_jvp`] on packed tokens (layout of [`Self::attention_varlen`]).
    fn attention_varlen_jvp(
        &self,
        a: Attn,
        v: Varlen<'_, Self>,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        rout: TenMut<'_, Self>,
    ) -> Result<()>;
    /// [`Self::attention_rvjp`] on packed tokens (layout of [`Self::attention_varlen`]).
    fn attention_varlen_rvjp(
        &self,
        a: Attn,
        v: Varlen<'_, Self>,
        qkv: Dual<'_, Self>,
        probs: Ten<'_, Self>,
        dout: Dual<'_, Self>,
        rdqkv: TenMut<'_, Self>,
    ) -> Result<()>;
    /// The masked [`Self::seq_mean`] on packed tokens: `out[r, :] = Σ_j x[j, :] / L_r` over
    /// sequence r's L_r tokens (0 for a sequence without any), x [tokens, `width`].
    fn seq_mean_varlen(
        &self,
        v: Varlen<'_, Self>,
        width: usize,
        x: Ten<'_, Self>,
        out: TenMut<'_, Self>,
    ) -> Result<()>;
    /// The adjoint of [`Self::seq_mean_varlen`]: `dx[j, :] = dy[r, :] / L_r` (overwritten).
    fn seq_mean_varlen_adjoint(
        &self,
        v: Varlen<'_, Self>,
        width: usize,
        dy: Ten<'_, Self>,
        dx: TenMut<'_, Self>,
    ) -> Result<()>;
}
