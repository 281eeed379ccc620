//! The views and shapes the backend's primitives are called with. Views: a tensor in a buffer
//! ([`Ten`], [`TenMut`]: buffer and element offset), a matrix for the BLAS products ([`Mat`],
//! [`MatMut`], reduced to a [`Gemm`]), rows of the network input ([`InputRows`]), a value with
//! its R-derivative ([`Dual`]), θ with a direction ([`ThetaV`]), a loss block ([`LossBlock`]).
//! Shapes: a batched GEMM's strides ([`Batch`]), a batch of sequences ([`Seq`]), a LayerNorm
//! ([`Ln`]), an attention pass ([`Attn`]), images in NHWC ([`Nhwc`]), a convolution's window
//! ([`ConvGeom`]), a chunk's token index
//! ([`TokenIndex`]), an Adam step ([`AdamStep`]); what crossed between host and device
//! ([`Transfers`]); and the range checks every backend runs. All are plain `Copy` structs passed
//! by value (a [`TenMut`]/[`MatMut`] is a unique borrow: reborrow with `re`/`at`).

use super::{Blas, Buffers};
use crate::error::Result;

/// The count and the element strides of a [`Blas::gemm_batched`] (0: an operand shared by
/// every product).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub count: usize,
    pub a: usize,
    pub b: usize,
    pub c: usize,
}

impl Batch {
    /// `count` products, A_i, B_i, C_i `a`, `b`, `c` elements apart.
    pub fn new(count: usize, a: usize, b: usize, c: usize) -> Self {
        Batch { count, a, b, c }
    }
}

/// A read-only tensor view: a buffer and the element offset where the tensor starts (its extent
/// is the shape argument's: a [`Seq`], an [`Ln`], rows×cols, ...).
pub struct Ten<'a, B: Buffers + ?Sized>(pub &'a B::Buf, pub usize);

impl<B: Buffers + ?Sized> Clone for Ten<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Buffers + ?Sized> Copy for Ten<'_, B> {}

/// A written tensor view: a buffer and the element offset where the tensor starts.
pub struct TenMut<'a, B: Buffers + ?Sized>(pub &'a mut B::Buf, pub usize);

impl<'a, B: Buffers + ?Sized> TenMut<'a, B> {
    /// Reborrow (to pass the same output to several calls).
    pub fn re(&mut self) -> TenMut<'_, B> {
        TenMut(self.0, self.1)
    }
}

/// A value and its R-derivative (the direction's tangent), read together by the R-passes:
/// x and R{x}, dy and R{dy}, qkv and R{qkv}.
pub struct Dual<'a, B: Buffers + ?Sized> {
    pub val: Ten<'a, B>,
    pub r: Ten<'a, B>,
}

impl<B: Buffers + ?Sized> Clone for Dual<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Buffers + ?Sized> Copy for Dual<'_, B> {}

/// The parameters θ (a whole buffer, the op's entries at the offsets its shape names) and a
/// direction v (the same layout from `v.1`): what a parametrised op's JVP and R-backward read.
pub struct ThetaV<'a, B: Buffers + ?Sized> {
    pub theta: &'a B::Buf,
    pub v: Ten<'a, B>,
}

impl<B: Buffers + ?Sized> Clone for ThetaV<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Buffers + ?Sized> Copy for ThetaV<'_, B> {}

/// A block of a loss's inputs: `rows`×`cols` outputs (and targets) of loss `kind`, its gradient
/// scaled by `scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossBlock {
    pub kind: super::LossKind,
    pub rows: usize,
    pub cols: usize,
    pub scale: f64,
}

/// A read-only matrix view for the BLAS primitives: op(X), `rows`×`cols`, in `buf` from element
/// `off`, stored row-major as is, or as its transpose (`cols`×`rows`) when `trans`.
pub struct Mat<'a, B: Buffers + ?Sized> {
    pub buf: &'a B::Buf,
    pub off: usize,
    pub rows: usize,
    pub cols: usize,
    pub trans: bool,
}

impl<B: Buffers + ?Sized> Clone for Mat<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Buffers + ?Sized> Copy for Mat<'_, B> {}

impl<'a, B: Buffers + ?Sized> Mat<'a, B> {
    /// The rows×cols matrix stored row-major in `buf` from `off`.
    pub fn new(buf: &'a B::Buf, off: usize, rows: usize, cols: usize) -> Self {
        Mat {
            buf,
            off,
            rows,
            cols,
            trans: false,
        }
    }
    /// Its transpose (the same storage read the other way).
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            trans: !self.trans,
            ..self
        }
    }
    /// op(X), rows×cols: X stored as is, or stored cols×rows and read transposed when `trans`
    /// (a GEMM's `ta`/`tb` flag).
    pub fn op(buf: &'a B::Buf, off: usize, rows: usize, cols: usize, trans: bool) -> Self {
        if trans {
            Mat::new(buf, off, cols, rows).t()
        } else {
            Mat::new(buf, off, rows, cols)
        }
    }
    /// The same view `by` elements further on (a batched product's i-th operand).
    pub fn at(self, by: usize) -> Self {
        Mat {
            off: self.off + by,
            ..self
        }
    }
}

/// A written rows×cols row-major matrix in `buf` from element `off` (a GEMM's C).
pub struct MatMut<'a, B: Buffers + ?Sized> {
    pub buf: &'a mut B::Buf,
    pub off: usize,
    pub rows: usize,
    pub cols: usize,
}

impl<'a, B: Buffers + ?Sized> MatMut<'a, B> {
    /// The rows×cols matrix stored row-major in `buf` from `off`.
    pub fn new(buf: &'a mut B::Buf, off: usize, rows: usize, cols: usize) -> Self {
        MatMut {
            buf,
            off,
            rows,
            cols,
        }
    }
    /// Reborrow, `by` elements further on (to write several products through one view).
    pub fn at(&mut self, by: usize) -> MatMut<'_, B> {
        MatMut {
            buf: self.buf,
            off: self.off + by,
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// The scalars of one GEMM C = α·op(A)·op(B) + β·C: op(A) is m×k, op(B) k×n, C m×n, row-major;
/// A stored k×m if `ta`, B stored n×k if `tb`. What the views of [`Blas::gemm`] come down to,
/// and what the backends' kernels take.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    pub ta: bool,
    pub tb: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f64,
    pub beta: f64,
}

impl Gemm {
    /// The GEMM of the views `a`, `b`, `c`. Errors: shapes that do not chain (op(A) m×k, op(B)
    /// k×n, C m×n).
    pub fn of<B: Buffers + ?Sized>(
        a: Mat<B>,
        b: Mat<B>,
        c: &MatMut<B>,
        alpha: f64,
        beta: f64,
    ) -> Result<Gemm> {
        if a.cols != b.rows || c.rows != a.rows || c.cols != b.cols {
            return Err(crate::error::Error::Shape(format!(
                "gemm: op(A) {}×{}, op(B) {}×{}, C {}×{}",
                a.rows, a.cols, b.rows, b.cols, c.rows, c.cols
            )));
        }
        Ok(Gemm {
            ta: a.trans,
            tb: b.trans,
            m: a.rows,
            n: b.cols,
            k: a.cols,
            alpha,
            beta,
        })
    }
}

impl Gemm {
    /// The first layer's forward product C (c×n) = α·X·Bᵀ + β·C, X c×cols, B n×cols.
    pub fn input_nt(c: usize, n: usize, cols: usize, alpha: f64, beta: f64) -> Gemm {
        Gemm {
            ta: false,
            tb: true,
            m: c,
            n,
            k: cols,
            alpha,
            beta,
        }
    }
    /// The first layer's weight gradient C (n×cols) = α·Gᵀ·X + β·C, G c×n, X c×cols.
    pub fn input_tn(c: usize, n: usize, cols: usize, alpha: f64, beta: f64) -> Gemm {
        Gemm {
            ta: true,
            tb: false,
            m: n,
            n: cols,
            k: c,
            alpha,
            beta,
        }
    }
}

/// Rows `r0..` of a backend's network input ([`Blas::Input`]), the first layer's operand.
pub struct InputRows<'a, B: Blas + ?Sized> {
    pub x: &'a B::Input,
    pub r0: usize,
}

impl<B: Blas + ?Sized> Clone for InputRows<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Blas + ?Sized> Copy for InputRows<'_, B> {}

impl<'a, B: Blas + ?Sized> InputRows<'a, B> {
    /// Rows `r0..` of `x`.
    pub fn new(x: &'a B::Input, r0: usize) -> Self {
        InputRows { x, r0 }
    }
}

/// [`Blas::gemm_batched`] as `batch.count` calls of [`Blas::gemm`] (the default, and the
/// GPU's fallback where one dispatch cannot hold them).
pub fn gemm_each<B: Blas + ?Sized>(
    be: &B,
    a: Mat<B>,
    b: Mat<B>,
    mut c: MatMut<B>,
    alpha: f64,
    beta: f64,
    batch: Batch,
) -> Result<()> {
    check_batch(c.rows, c.cols, batch)?;
    for i in 0..batch.count {
        be.gemm(
            a.at(i * batch.a),
            b.at(i * batch.b),
            c.at(i * batch.c),
            alpha,
            beta,
        )?;
    }
    Ok(())
}

/// An input product's operand ([`Blas::input_gemm_nt`], [`Blas::input_gemm_tn`]) must be
/// stored as is (not transposed) and chain with the output (`ok`).
pub(crate) fn check_input_view<B: Buffers + ?Sized>(
    ok: bool,
    what: &str,
    m: &Mat<B>,
) -> Result<()> {
    if ok && !m.trans {
        return Ok(());
    }
    Err(crate::error::Error::Shape(format!(
        "input product: {what} {}×{}{} does not fit",
        m.rows,
        m.cols,
        if m.trans { " (transposed)" } else { "" }
    )))
}

/// The outputs of a batched GEMM must not overlap.
pub(crate) fn check_batch(m: usize, n: usize, batch: Batch) -> Result<()> {
    if batch.count > 1 && batch.c < m * n {
        return Err(crate::error::Error::InvalidArgument(format!(
            "gemm_batched: outputs {} apart overlap ({m}×{n} each)",
            batch.c
        )));
    }
    Ok(())
}

/// Host ↔ device traffic of a backend since it was made ([`Buffers::transfers`]); differences of
/// two readings give the traffic of what ran between them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Transfers {
    /// Command buffers submitted.
    pub submits: u64,
    /// Read-backs (each waits for the device).
    pub readbacks: u64,
    /// Bytes read back.
    pub bytes_read: u64,
    /// Buffers created from host data.
    pub uploads: u64,
    /// Bytes of those buffers and of host values written into existing ones.
    pub bytes_uploaded: u64,
    /// Device buffers created (each one, on the GPU, also an error-scope round trip natively):
    /// none in a steady-state step.
    pub allocations: u64,
    /// Bytes of those buffers.
    pub bytes_allocated: u64,
    /// Kernels dispatched (recorded).
    pub dispatches: u64,
}

impl std::ops::Sub for Transfers {
    type Output = Transfers;
    fn sub(self, o: Transfers) -> Transfers {
        Transfers {
            submits: self.submits - o.submits,
            readbacks: self.readbacks - o.readbacks,
            bytes_read: self.bytes_read - o.bytes_read,
            uploads: self.uploads - o.uploads,
            bytes_uploaded: self.bytes_uploaded - o.bytes_uploaded,
            allocations: self.allocations - o.allocations,
            bytes_allocated: self.bytes_allocated - o.bytes_allocated,
            dispatches: self.dispatches - o.dispatches,
        }
    }
}

/// A chunk's live tokens packed one after another (the variable-length form of FlashAttention's
/// `varlen` kernels, Dao 2023): sequence r's tokens are rows `offs[r]..offs[r+1]` of a
/// `[tokens, D]` tensor, in position order, and token j sits at `pos[j] = r·T + t` of the chunk's
/// padded `[rows, T]` ids. Both index buffers hold integers as scalars at offset 0 (exact in f32
/// below 2^24, as [`TokenIndex`]). Padding (token id 0) has no row: with padding masked it never
/// reaches the loss, so the ops on packed tokens compute the masked network exactly.
pub struct Varlen<'a, B: Buffers + ?Sized> {
    /// Sequences of the chunk.
    pub rows: usize,
    /// Positions per padded sequence (T).
    pub seq: usize,
    /// Live tokens of the chunk (`offs[rows]`).
    pub tokens: usize,
    /// `rows + 1` cumulative token counts.
    pub offs: &'a B::Buf,
    /// `tokens` padded positions r·T + t.
    pub pos: &'a B::Buf,
}

impl<B: Buffers + ?Sized> Clone for Varlen<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Buffers + ?Sized> Copy for Varlen<'_, B> {}

/// A batch of sequences: `rows` sequences of `len` positions (T), each position `width` (D)
/// scalars, row-major [rows, T, D].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seq {
    pub rows: usize,
    pub len: usize,
    pub width: usize,
}

impl Seq {
    /// Elements of the batch.
    pub fn numel(&self) -> usize {
        self.rows * self.len * self.width
    }
}

/// A LayerNorm pass: `rows` rows (sequences × positions) of `width` scalars; ε and the offsets of
/// γ and β (in θ, or in the direction v for the R-passes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ln {
    pub rows: usize,
    pub width: usize,
    pub eps: f64,
    pub gamma: usize,
    pub beta: usize,
}

/// A multi-head attention pass over `rows` sequences of `seq` positions with `heads` heads of
/// `head_dim` scalars (D = heads·head_dim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attn {
    pub rows: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Keys whose token id is 0 (padding) get no attention.
    pub masked: bool,
}

impl Attn {
    /// Model width D.
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }
    /// Scalars of P per sequence (H·T·T).
    pub fn probs_per_row(&self) -> usize {
        self.heads * self.seq * self.seq
    }
}

/// Positions of a chunk of token ids grouped by id (CSR), for [`SeqOps::embed_grad`](super::SeqOps::embed_grad): `order`
/// lists the positions r·T + t sorted by (id, position), `start[v]..start[v+1]` is id v's run.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenIndex {
    pub start: Vec<f64>,
    pub order: Vec<f64>,
}

impl TokenIndex {
    /// The index of `ids` (each an integer below `vocab`).
    pub fn new(ids: &[f64], vocab: usize) -> TokenIndex {
        let mut count = vec![0usize; vocab + 1];
        for &id in ids {
            count[id as usize + 1] += 1;
        }
        for v in 0..vocab {
            count[v + 1] += count[v];
        }
        let start: Vec<f64> = count.iter().map(|&c| c as f64).collect();
        let mut next = count;
        let mut order = vec![0.0; ids.len()];
        for (p, &id) in ids.iter().enumerate() {
            let v = id as usize;
            order[next[v]] = p as f64;
            next[v] += 1;
        }
        TokenIndex { start, order }
    }
}

/// Geometry of a batch of images stored NHWC (samples × height × width × channels, row-major):
/// the layout the convolution and pooling kernels compute in (a pixel's channels are contiguous,
/// so a 3×3 convolution is one GEMM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nhwc {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Nhwc {
    /// Elements of the batch.
    pub fn len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }
    /// True if the batch holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The same images after a 2×2 pool.
    pub fn pooled(&self) -> Nhwc {
        Nhwc {
            h: self.h / 2,
            w: self.w / 2,
            ..*self
        }
    }
}

/// The geometry of a square 2-D convolution (PyTorch's `nn.Conv2d(cin, cout, kernel, stride,
/// padding)` with dilation 1): a `kernel`×`kernel` window moved `stride` pixels at a time over the
/// image zero-padded by `pad` pixels on every side. An h×w input gives an oh×ow output with
/// `oh = (h + 2·pad − kernel)/stride + 1` (rounded down; the same for w), PyTorch's formula.
/// [`Nn::im2col`](super::Nn::im2col) lays its windows out as the rows of a matrix with
/// `kernel²·c` columns; [`ConvGeom::SAME_3X3`] is the 3×3, stride-1, padding-1 convolution that
/// keeps h×w (the CNN of Cohen et al.).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Side of the window (taps per row and per column).
    pub kernel: usize,
    /// Pixels between two windows' starts (both axes).
    pub stride: usize,
    /// Zero pixels added on each side (both axes).
    pub pad: usize,
}

impl ConvGeom {
    /// 3×3, stride 1, padding 1: output h×w = input h×w.
    pub const SAME_3X3: ConvGeom = ConvGeom {
        kernel: 3,
        stride: 1,
        pad: 1,
    };

    /// A `kernel`×`kernel` window, `stride` apart, `pad` zeros on each side.
    pub fn new(kernel: usize, stride: usize, pad: usize) -> Self {
        ConvGeom {
            kernel,
            stride,
            pad,
        }
    }
    /// Taps of a window: kernel² (im2col's columns per input channel).
    pub fn taps(&self) -> usize {
        self.kernel * self.kernel
    }
    /// Output positions along an axis of `size` pixels: `(size + 2·pad − kernel)/stride + 1`, and
    /// 0 where no window fits (kernel 0, stride 0, or a kernel wider than the padded axis).
    pub fn out_size(&self, size: usize) -> usize {
        let span = size + 2 * self.pad;
        if self.kernel == 0 || self.stride == 0 || span < self.kernel {
            return 0;
        }
        (span - self.kernel) / self.stride + 1
    }
    /// The output's height and width on images `g`. Errors ([`crate::error::Error::Shape`]):
    /// kernel or stride 0, or a window that does not fit the padded image.
    pub fn out_hw(&self, g: Nhwc) -> Result<(usize, usize)> {
        let (oh, ow) = (self.out_size(g.h), self.out_size(g.w));
        if oh == 0 || ow == 0 {
            return Err(crate::error::Error::Shape(format!(
                "convolution {self} does not fit {}×{} images",
                g.h, g.w
            )));
        }
        Ok((oh, ow))
    }
}

impl std::fmt::Display for ConvGeom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{k}×{k}, stride {}, padding {}",
            self.stride,
            self.pad,
            k = self.kernel
        )
    }
}

/// The scalars of one [`Nn::adam`](super::Nn::adam) step: rate η, decay rates β₁ and β₂, ε, and the bias
/// corrections c₁ = 1 − β₁ᵗ and c₂ = 1 − β₂ᵗ of step t.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub c1: f64,
    pub c2: f64,
}

/// Check that `off + len` elements fit in a buffer of `buf_len` elements.
pub(crate) fn check_range(what: &str, buf_len: usize, off: usize, len: usize) -> Result<()> {
    match off.checked_add(len) {
        Some(end) if end <= buf_len => Ok(()),
        _ => Err(crate::error::Error::Shape(format!(
            "{what}: range {off}..{off}+{len} exceeds buffer of {buf_len} elements"
        ))),
    }
}
