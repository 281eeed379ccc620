//! The network's input on the CPU backend, stored for the two products every pass repeats:
//! X·Wᵀ (the first layer's forward and R-forward) and Gᵀ·X (its weight gradient and R-gradient).
//!
//! MNIST after normalisation is about 81 % one value (the normalised black pixel, −0.4242), so
//! X = b·11ᵀ + S with S sparse, and
//!
//! - X·Wᵀ = b·1·(W·1)ᵀ + S·Wᵀ,
//! - Gᵀ·X = b·(Gᵀ·1)·1ᵀ + Gᵀ·S,
//!
//! cost about a fifth of the dense products' arithmetic. These two products are over half of an
//! HVP's work on fc-tanh (784 of its 1,184 inputs per sample sit in the first layer). The sparse
//! form is used when at most [`SPARSE_MAX_DENSITY`] of the entries differ from the most common
//! value; otherwise (CIFAR, random test data) the dense GEMM runs as before.
//!
//! Both kernels are deterministic and independent of the thread count (rows, respectively
//! columns, are split between threads, each computed in one fixed order), so a resumed CPU run
//! still reproduces an uninterrupted one bit for bit. On x86-64 with AVX2 and FMA the loops are
//! compiled a second time with fused multiply-adds and picked at run time, so results may differ
//! in the last bits between machines with and without FMA (never between runs on one machine).
//! Accumulators live in vector registers: each output block of 64 f32 (32 f64) lanes is summed
//! over the sparse entries with its slab of the other operand kept in cache.

// Lane loops index several same-length blocks at once; that is the shape that vectorises.
#![allow(clippy::needless_range_loop)]

use super::par::PAR_MIN;
use super::real::Real;
use crate::backend::Gemm;
use crate::error::{Error, Result};

/// The sparse form is used when at most this fraction of the entries differs from the most common
/// value (a sparse product costs roughly 2–3× a dense one per multiply-add, so denser inputs stay
/// on the dense GEMM).
pub const SPARSE_MAX_DENSITY: f64 = 0.4;

/// An input matrix (rows×cols) as the CPU backend multiplies it.
#[derive(Clone, Debug)]
pub struct CpuInput<T> {
    rows: usize,
    cols: usize,
    repr: Repr<T>,
    /// Run the portable loops even where AVX2 and FMA exist (the tests compare the two).
    portable: bool,
}

#[derive(Clone, Debug)]
enum Repr<T> {
    Dense(Vec<T>),
    Sparse(Sparse<T>),
}

/// X = base·11ᵀ + S, with S stored both by rows (CSR) and by columns (CSC).
#[derive(Clone, Debug)]
struct Sparse<T> {
    base: f64,
    row_ptr: Vec<usize>,
    row_col: Vec<u32>,
    row_val: Vec<T>,
    col_ptr: Vec<usize>,
    col_row: Vec<u32>,
    col_val: Vec<T>,
}

impl<T: Real> CpuInput<T> {
    /// Prepare a row-major rows×cols matrix; `allow_sparse = false` keeps the dense form whatever
    /// the data (the tests' reference).
    pub fn new(x: &[f64], rows: usize, cols: usize, allow_sparse: bool) -> Result<Self> {
        if rows.checked_mul(cols) != Some(x.len()) {
            return Err(Error::Shape(format!(
                "input of {} values is not {rows}×{cols}",
                x.len()
            )));
        }
        let sparse =
            if allow_sparse && rows > 0 && cols > 0 && u32::try_from(rows.max(cols)).is_ok() {
                Sparse::build(x, rows, cols)
            } else {
                None
            };
        let repr = match sparse {
            Some(s) => Repr::Sparse(s),
            None => Repr::Dense(x.iter().map(|&v| T::of(v)).collect()),
        };
        Ok(CpuInput {
            rows,
            cols,
            repr,
            portable: false,
        })
    }

    /// The same input computing with the portable loops only (what other CPUs and wasm run).
    pub fn portable(mut self) -> Self {
        self.portable = true;
        self
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Whether the sparse form is in use.
    pub fn is_sparse(&self) -> bool {
        matches!(self.repr, Repr::Sparse(_))
    }
    /// The fraction of entries that differ from the common value (1 for the dense form).
    pub fn density(&self) -> f64 {
        match &self.repr {
            Repr::Dense(_) => 1.0,
            Repr::Sparse(s) => s.row_val.len() as f64 / (self.rows * self.cols) as f64,
        }
    }

    /// Rows r0..r0+c exist, and the operand (`name`, `shape`) and the output hold the values
    /// their shapes say.
    fn check(
        &self,
        r0: usize,
        c: usize,
        name: &str,
        (len, shape): (usize, (usize, usize)),
        (out_len, out_shape): (usize, (usize, usize)),
    ) -> Result<()> {
        if r0.checked_add(c).is_none_or(|end| end > self.rows) {
            return Err(Error::Shape(format!(
                "input rows {r0}..{} out of range (the input has {} rows)",
                r0.saturating_add(c),
                self.rows
            )));
        }
        if len != shape.0 * shape.1 || out_len != out_shape.0 * out_shape.1 {
            return Err(Error::Shape(format!(
                "input product: {name} has {len} values for {}×{}, out {out_len} for {}×{}",
                shape.0, shape.1, out_shape.0, out_shape.1
            )));
        }
        Ok(())
    }

    /// out (c×n) = α·X[r0..r0+c]·Bᵀ + β·out, with B n×cols (row-major): c, n, α and β are
    /// `g.m`, `g.n`, `g.alpha`, `g.beta` (`g` as [`Gemm::input_nt`] makes it; `dense` gets it
    /// with the rows of X when X is stored dense).
    pub fn gemm_nt(
        &self,
        r0: usize,
        g: Gemm,
        b: &[T],
        out: &mut [T],
        threads: usize,
        dense: impl FnOnce(&[T], &[T], &mut [T]),
    ) -> Result<()> {
        let (c, n, alpha, beta) = (g.m, g.n, g.alpha, g.beta);
        let cols = self.cols;
        self.check(r0, c, "B", (b.len(), (n, cols)), (out.len(), (c, n)))?;
        let s = match &self.repr {
            Repr::Dense(x) => {
                dense(&x[r0 * cols..(r0 + c) * cols], b, out);
                return Ok(());
            }
            Repr::Sparse(s) => s,
        };
        if c == 0 || n == 0 {
            return Ok(());
        }
        // Bᵀ in lane blocks (one contiguous cols×w slab per block), and base·(B·1) in f64.
        let blocks = Blocks::new::<T>(n);
        let mut bt = vec![T::zero(); cols * blocks.npad];
        let mut bsum = vec![T::zero(); n];
        for &(o0, w) in &blocks.list {
            let slab = &mut bt[cols * o0..cols * (o0 + w)];
            for o in o0..(o0 + w).min(n) {
                for (j, &v) in b[o * cols..(o + 1) * cols].iter().enumerate() {
                    slab[j * w + o - o0] = v;
                }
            }
        }
        for (o, sum) in bsum.iter_mut().enumerate() {
            let acc: f64 = b[o * cols..(o + 1) * cols].iter().map(|v| v.wide()).sum();
            *sum = T::of(s.base * acc);
        }
        let nnz = s.row_ptr[r0 + c] - s.row_ptr[r0];
        let t = threads.min(c).max(1);
        let per = c.div_ceil(t);
        let args = NtArgs {
            s,
            r0,
            n,
            cols,
            blocks: &blocks,
            bt: &bt,
            bsum: &bsum,
            alpha: T::of(alpha),
            beta,
            portable: self.portable,
        };
        if t <= 1 || nnz * n < PAR_MIN {
            nt_dispatch(&args, 0, out);
            return Ok(());
        }
        std::thread::scope(|sc| {
            for (i, piece) in out.chunks_mut(per * n).enumerate() {
                let args = &args;
                sc.spawn(move || nt_dispatch(args, i * per, piece));
            }
        });
        Ok(())
    }

    /// out (n×cols) = α·Gᵀ·X[r0..r0+c] + β·out, with G c×n (row-major): c, n, α and β are
    /// `gm.k`, `gm.m`, `gm.alpha`, `gm.beta` (`gm` as [`Gemm::input_tn`] makes it).
    pub fn gemm_tn(
        &self,
        g: &[T],
        r0: usize,
        gm: Gemm,
        out: &mut [T],
        threads: usize,
        dense: impl FnOnce(&[T], &[T], &mut [T]),
    ) -> Result<()> {
        let (c, n, alpha, beta) = (gm.k, gm.m, gm.alpha, gm.beta);
        let cols = self.cols;
        self.check(r0, c, "G", (g.len(), (c, n)), (out.len(), (n, cols)))?;
        let s = match &self.repr {
            Repr::Dense(x) => {
                dense(g, &x[r0 * cols..(r0 + c) * cols], out);
                return Ok(());
            }
            Repr::Sparse(s) => s,
        };
        if n == 0 {
            return Ok(());
        }
        // G in lane blocks (one contiguous c×w slab per block), and base·(Gᵀ·1) in f64.
        let blocks = Blocks::new::<T>(n);
        let mut gp = vec![T::zero(); c * blocks.npad];
        let mut gsum = vec![0.0f64; n];
        for r in 0..c {
            let row = &g[r * n..(r + 1) * n];
            for &(o0, w) in &blocks.list {
                let hi = (o0 + w).min(n);
                gp[c * o0 + r * w..c * o0 + r * w + hi - o0].copy_from_slice(&row[o0..hi]);
            }
            for (acc, &v) in gsum.iter_mut().zip(row) {
                *acc += v.wide();
            }
        }
        let gsum: Vec<T> = gsum.iter().map(|&v| T::of(s.base * v)).collect();
        // Each column's entries in rows r0..r0+c (rows are sorted within a column).
        let lo = r0 as u32;
        let hi = (r0 + c) as u32;
        let ranges: Vec<(usize, usize)> = (0..cols)
            .map(|j| {
                let rows = &s.col_row[s.col_ptr[j]..s.col_ptr[j + 1]];
                (
                    s.col_ptr[j] + rows.partition_point(|&r| r < lo),
                    s.col_ptr[j] + rows.partition_point(|&r| r < hi),
                )
            })
            .collect();
        let nnz: usize = ranges.iter().map(|(a, b)| b - a).sum();
        let args = TnArgs {
            s,
            r0,
            c,
            n,
            cols,
            blocks: &blocks,
            gp: &gp,
            gsum: &gsum,
            ranges: &ranges,
            alpha: T::of(alpha),
            beta,
            portable: self.portable,
        };
        let t = threads.min(cols).max(1);
        let out_ptr = OutPtr(out.as_mut_ptr());
        if t <= 1 || nnz * n < PAR_MIN {
            // SAFETY: `out` is n×cols (checked above) and uniquely borrowed.
            unsafe { tn_dispatch(&args, 0, cols, &out_ptr) };
            return Ok(());
        }
        let per = cols.div_ceil(t);
        std::thread::scope(|sc| {
            for i in 0..t {
                let (args, out_ptr) = (&args, &out_ptr);
                let (j0, j1) = (i * per, ((i + 1) * per).min(cols));
                // SAFETY: threads write disjoint columns j0..j1 of the n×cols `out`.
                sc.spawn(move || unsafe { tn_dispatch(args, j0, j1, out_ptr) });
            }
        });
        Ok(())
    }
}

impl<T: Real> Sparse<T> {
    /// The sparse form, if the most common value covers at least 1 − SPARSE_MAX_DENSITY of x.
    fn build(x: &[f64], rows: usize, cols: usize) -> Option<Self> {
        // A value above the density cut is a strict majority: the Boyer–Moore vote finds it.
        let mut cand = 0.0f64;
        let mut count = 0usize;
        for &v in x {
            if count == 0 {
                cand = v;
                count = 1;
            } else if v == cand {
                count += 1;
            } else {
                count -= 1;
            }
        }
        let base = cand;
        let nnz = x.iter().filter(|&&v| v != base).count();
        if !base.is_finite() || nnz as f64 > SPARSE_MAX_DENSITY * x.len() as f64 {
            return None;
        }
        let mut row_ptr = Vec::with_capacity(rows + 1);
        let mut row_col = Vec::with_capacity(nnz);
        let mut row_val = Vec::with_capacity(nnz);
        let mut col_count = vec![0usize; cols + 1];
        row_ptr.push(0);
        for r in 0..rows {
            for (j, &v) in x[r * cols..(r + 1) * cols].iter().enumerate() {
                if v != base {
                    row_col.push(j as u32);
                    row_val.push(T::of(v - base));
                    col_count[j + 1] += 1;
                }
            }
            row_ptr.push(row_col.len());
        }
        // CSC by a counting sort of the CSR entries: rows stay sorted within each column.
        for j in 0..cols {
            col_count[j + 1] += col_count[j];
        }
        let col_ptr = col_count.clone();
        let mut next = col_count;
        let mut col_row = vec![0u32; nnz];
        let mut col_val = vec![T::zero(); nnz];
        for r in 0..rows {
            for e in row_ptr[r]..row_ptr[r + 1] {
                let j = row_col[e] as usize;
                col_row[next[j]] = r as u32;
                col_val[next[j]] = row_val[e];
                next[j] += 1;
            }
        }
        Some(Sparse {
            base,
            row_ptr,
            row_col,
            row_val,
            col_ptr,
            col_row,
            col_val,
        })
    }
}

/// The output columns split into lane blocks: full blocks of `big` lanes, then blocks of
/// `small` lanes for the rest (the last one padded), so n = 200 is 3 × 64 + 8 in f32.
struct Blocks {
    list: Vec<(usize, usize)>,
    npad: usize,
}

impl Blocks {
    fn new<T: Real>(n: usize) -> Self {
        // 8 vector registers of accumulators per block: 64 f32 or 32 f64 lanes (AVX2).
        let (big, small) = match T::PRECISION {
            super::Precision::F32 => (64, 8),
            super::Precision::F64 => (32, 4),
        };
        let mut list = Vec::new();
        let mut o = 0;
        while o + big <= n {
            list.push((o, big));
            o += big;
        }
        while o < n {
            list.push((o, small));
            o += small;
        }
        Blocks { list, npad: o }
    }
}

/// Whether the AVX2 + FMA loops run: on x86-64 where the CPU has both, unless the portable ones
/// were asked for.
fn use_fma(portable: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !portable
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = portable;
        false
    }
}

struct NtArgs<'a, T> {
    s: &'a Sparse<T>,
    r0: usize,
    n: usize,
    cols: usize,
    blocks: &'a Blocks,
    bt: &'a [T],
    bsum: &'a [T],
    alpha: T,
    beta: f64,
    portable: bool,
}

/// Rows `first..` (relative to r0) of X·Bᵀ into `out` (whole rows of n).
fn nt_dispatch<T: Real>(a: &NtArgs<'_, T>, first: usize, out: &mut [T]) {
    if use_fma(a.portable) {
        // SAFETY: AVX2 and FMA are present (`use_fma`).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            nt_avx2(a, first, out);
            return;
        }
    }
    nt_blocks::<T, false>(a, first, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn nt_avx2<T: Real>(a: &NtArgs<'_, T>, first: usize, out: &mut [T]) {
    nt_blocks::<T, true>(a, first, out);
}

#[inline(always)]
fn nt_blocks<T: Real, const FMA: bool>(a: &NtArgs<'_, T>, first: usize, out: &mut [T]) {
    for &(o0, w) in &a.blocks.list {
        let slab = &a.bt[a.cols * o0..a.cols * (o0 + w)];
        match w {
            64 => nt_block::<T, 64, 1, FMA>(a, first, o0, slab, out),
            32 => nt_block::<T, 32, 1, FMA>(a, first, o0, slab, out),
            8 => nt_block::<T, 8, 4, FMA>(a, first, o0, slab, out),
            _ => nt_block::<T, 4, 4, FMA>(a, first, o0, slab, out),
        }
    }
}

/// One lane block (columns o0..o0+WB of the output) for the rows of `out`; the slab of Bᵀ for
/// the block (cols×WB) stays in cache across the rows; K accumulator sets ([`sparse_sum`]).
#[inline(always)]
fn nt_block<T: Real, const WB: usize, const K: usize, const FMA: bool>(
    a: &NtArgs<'_, T>,
    first: usize,
    o0: usize,
    slab: &[T],
    out: &mut [T],
) {
    let s = a.s;
    let n = a.n;
    let w = WB.min(n - o0);
    let beta = T::of(a.beta);
    for rr in 0..out.len() / n {
        let r = a.r0 + first + rr;
        let (e0, e1) = (s.row_ptr[r], s.row_ptr[r + 1]);
        let acc = sparse_sum::<T, WB, K, FMA>(&s.row_val[e0..e1], &s.row_col[e0..e1], 0, slab);
        let dst = &mut out[rr * n + o0..rr * n + o0 + w];
        for t in 0..w {
            let val = a.alpha * (a.bsum[o0 + t] + acc[t]);
            dst[t] = if a.beta == 0.0 {
                val
            } else {
                val + beta * dst[t]
            };
        }
    }
}

struct TnArgs<'a, T> {
    s: &'a Sparse<T>,
    r0: usize,
    c: usize,
    n: usize,
    cols: usize,
    blocks: &'a Blocks,
    gp: &'a [T],
    gsum: &'a [T],
    ranges: &'a [(usize, usize)],
    alpha: T,
    beta: f64,
    portable: bool,
}

struct OutPtr<T>(*mut T);
// SAFETY: used only to hand disjoint columns of one matrix to scoped threads.
unsafe impl<T> Sync for OutPtr<T> {}
unsafe impl<T> Send for OutPtr<T> {}

/// Columns j0..j1 of Gᵀ·X into the n×cols matrix at `out`.
///
/// # Safety
/// `out` must point to a live n×cols matrix no one else reads or writes in columns j0..j1.
unsafe fn tn_dispatch<T: Real>(a: &TnArgs<'_, T>, j0: usize, j1: usize, out: &OutPtr<T>) {
    if use_fma(a.portable) {
        // SAFETY: AVX2 and FMA are present (`use_fma`); the caller's contract covers `out`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            tn_avx2(a, j0, j1, out);
            return;
        }
    }
    // SAFETY: the caller's contract.
    unsafe { tn_blocks::<T, false>(a, j0, j1, out) };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tn_avx2<T: Real>(a: &TnArgs<'_, T>, j0: usize, j1: usize, out: &OutPtr<T>) {
    // SAFETY: the caller's contract.
    unsafe { tn_blocks::<T, true>(a, j0, j1, out) };
}

#[inline(always)]
unsafe fn tn_blocks<T: Real, const FMA: bool>(
    a: &TnArgs<'_, T>,
    j0: usize,
    j1: usize,
    out: &OutPtr<T>,
) {
    for &(o0, w) in &a.blocks.list {
        let slab = &a.gp[a.c * o0..a.c * (o0 + w)];
        // SAFETY (all arms): the caller's contract.
        unsafe {
            match w {
                64 => tn_block::<T, 64, 1, FMA>(a, j0, j1, o0, slab, out),
                32 => tn_block::<T, 32, 1, FMA>(a, j0, j1, o0, slab, out),
                8 => tn_block::<T, 8, 4, FMA>(a, j0, j1, o0, slab, out),
                _ => tn_block::<T, 4, 4, FMA>(a, j0, j1, o0, slab, out),
            }
        }
    }
}

/// One lane block (rows o0..o0+WB of the output) for columns j0..j1; the slab of G for the
/// block (c×WB) stays in cache across the columns; K accumulator sets ([`sparse_sum`]).
#[inline(always)]
unsafe fn tn_block<T: Real, const WB: usize, const K: usize, const FMA: bool>(
    a: &TnArgs<'_, T>,
    j0: usize,
    j1: usize,
    o0: usize,
    slab: &[T],
    out: &OutPtr<T>,
) {
    let s = a.s;
    let w = WB.min(a.n - o0);
    let beta = T::of(a.beta);
    for j in j0..j1 {
        let (e0, e1) = a.ranges[j];
        let acc = sparse_sum::<T, WB, K, FMA>(&s.col_val[e0..e1], &s.col_row[e0..e1], a.r0, slab);
        for t in 0..w {
            let o = o0 + t;
            // SAFETY: o < n and j < cols address the n×cols matrix; column j is this thread's
            // alone (the caller's contract).
            let dst = unsafe { &mut *out.0.add(o * a.cols + j) };
            let val = a.alpha * (a.gsum[o] + acc[t]);
            *dst = if a.beta == 0.0 {
                val
            } else {
                val + beta * *dst
            };
        }
    }
}

/// Σ_e vals[e]·slab[idx[e] − skip] over one sparse row (or column), for one block of WB lanes
/// (the slab holds WB scalars per index). K accumulator sets take the entries in turn, so a
/// narrow block is not bound by the latency of one chain of multiply-adds; they are summed in a
/// fixed order.
#[inline(always)]
fn sparse_sum<T: Real, const WB: usize, const K: usize, const FMA: bool>(
    vals: &[T],
    idx: &[u32],
    skip: usize,
    slab: &[T],
) -> [T; WB] {
    let mut accs = [[T::zero(); WB]; K];
    let mut vc = vals.chunks_exact(K);
    let mut ic = idx.chunks_exact(K);
    for (vs, is) in (&mut vc).zip(&mut ic) {
        for (k, acc) in accs.iter_mut().enumerate() {
            let row: &[T; WB] = lanes(slab, (is[k] as usize - skip) * WB);
            for t in 0..WB {
                acc[t] = madd::<T, FMA>(vs[k], row[t], acc[t]);
            }
        }
    }
    for (&v, &i) in vc.remainder().iter().zip(ic.remainder()) {
        let row: &[T; WB] = lanes(slab, (i as usize - skip) * WB);
        for t in 0..WB {
            accs[0][t] = madd::<T, FMA>(v, row[t], accs[0][t]);
        }
    }
    fold(accs)
}

/// The K accumulator sets summed in a fixed order.
#[inline(always)]
fn fold<T: Real, const WB: usize, const K: usize>(accs: [[T; WB]; K]) -> [T; WB] {
    let mut acc = accs[0];
    for other in &accs[1..] {
        for t in 0..WB {
            acc[t] = acc[t] + other[t];
        }
    }
    acc
}

/// v·b + acc: fused where the kernel runs with FMA (one rounding), else two roundings.
#[inline(always)]
fn madd<T: Real, const FMA: bool>(v: T, b: T, acc: T) -> T {
    if FMA { v.mul_add(b, acc) } else { acc + v * b }
}

/// WB consecutive scalars starting at `at`.
#[inline(always)]
fn lanes<T, const WB: usize>(m: &[T], at: usize) -> &[T; WB] {
    match m[at..at + WB].try_into() {
        Ok(s) => s,
        Err(_) => unreachable!("a slice of WB scalars converts to [T; WB]"),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod timing;
