//! The Lanczos basis of one solve: Q (orthonormal rows) and W = A·Q as row-major `cap × dim`
//! buffers, the projected matrix T, and its operations — orthogonalisation against the basis (two
//! classical Gram–Schmidt passes through [`Span`]), the warm start from a sum of rows, a block
//! step, a thick restart and the Ritz pairs.

use super::{LanczosWork, sorted_eigen, take_or_zeros, write_rows};
use crate::backend::{Backend, Mat, MatMut};
use crate::backend::{Ten, TenMut};
use crate::error::{Error, Result};
use crate::hessian::Operator;
use crate::hessian::subspace::Span;
use nalgebra::DMatrix;

/// The basis Q (orthonormal rows), W = A·Q and the projected matrix T of one solve, with the
/// scratch its steps and restarts use.
pub(super) struct Basis<B: Backend> {
    pub(super) dim: usize,
    pub(super) cap: usize,
    /// Vectors in the basis.
    pub(super) m: usize,
    /// Of which the first `applied` have their product in W.
    pub(super) applied: usize,
    pub(super) q: B::Buf,
    pub(super) w: B::Buf,
    pub(super) t: DMatrix<f64>,
    pub(super) coef: B::Buf,
    pub(super) coef2: B::Buf,
    pub(super) cand: B::Buf,
    pub(super) products: usize,
    pub(super) drop_tol: f64,
    /// Products whose remainder was dropped as lying in the span (invariant-subspace breakdowns).
    pub(super) dropped: usize,
    /// Values computed on the backend that the next orthogonalisation reads back with its own:
    /// `aux[..fetch]` (the warm rows' squared norms and the start vector's).
    pub(super) aux: B::Buf,
    pub(super) fetch: usize,
    /// What that read brought (empty until then).
    pub(super) fetched: Vec<f64>,
    /// The warm start summed to zero (found at the first read): start afresh.
    pub(super) zero_start: bool,
    /// A restart's scratch (cap × dim) and the Ritz coefficient rows S (cap × cap), also written
    /// by a convergence check.
    pub(super) scratch: B::Buf,
    pub(super) s_up: B::Buf,
}

impl<B: Backend> Basis<B> {
    /// An empty basis of at most `cap` rows of length `p` for a top-`k` solve, its buffers taken
    /// from `work`.
    pub(super) fn new(
        b: &B,
        p: usize,
        k: usize,
        cap: usize,
        work: &mut LanczosWork<B>,
    ) -> Result<Self> {
        Ok(Basis {
            dim: p,
            cap,
            m: 0,
            applied: 0,
            q: take_or_zeros(b, &mut work.q, cap * p)?,
            w: take_or_zeros(b, &mut work.w, cap * p)?,
            t: DMatrix::zeros(cap, cap),
            // The orthogonalisation's m + 1 values, then what it fetches from `aux` (≤ k + 1).
            coef: take_or_zeros(b, &mut work.coef, cap + k + 2)?,
            coef2: take_or_zeros(b, &mut work.coef2, cap)?,
            cand: take_or_zeros(b, &mut work.cand, p)?,
            products: 0,
            drop_tol: b.precision().eps().sqrt(),
            dropped: 0,
            aux: take_or_zeros(b, &mut work.aux, k + 1)?,
            fetch: 0,
            fetched: Vec::new(),
            zero_start: false,
            scratch: take_or_zeros(b, &mut work.scratch, cap * p)?,
            s_up: take_or_zeros(b, &mut work.s_up, cap * cap)?,
        })
    }

    /// The buffers back to the workspace for the next solve.
    pub(super) fn give_back(self, work: &mut LanczosWork<B>) {
        work.q = Some(self.q);
        work.w = Some(self.w);
        work.coef = Some(self.coef);
        work.coef2 = Some(self.coef2);
        work.cand = Some(self.cand);
        work.aux = Some(self.aux);
        work.scratch = Some(self.scratch);
        work.s_up = Some(self.s_up);
    }

    /// Orthogonalise `cand` against the first `m` basis vectors (two passes); returns the
    /// coefficients (summed over both passes) and the norm left. One read-back: the passes'
    /// coefficients are summed on the backend and come back with ‖left‖² in one range.
    pub(super) fn orthogonalise(&mut self, b: &B) -> Result<(Vec<f64>, f64)> {
        let (p, m) = (self.dim, self.m);
        for pass in 0..2 {
            if m == 0 {
                break;
            }
            // c = Q v; v ← v − Qᵀ c: one batched product each way. The first pass's
            // coefficients go to `coef`, the second's to `coef2` and are added to them.
            let c = if pass == 0 {
                &mut self.coef
            } else {
                &mut self.coef2
            };
            let span = Span::new(&self.q, m, p);
            span.coefficients(b, &self.cand, c)?;
            span.expand(b, c, &mut self.cand, true)?;
            if pass == 1 {
                b.axpy(1.0, &self.coef2, 0, &mut self.coef, 0, m)?;
            }
        }
        b.dot_into(
            Ten(&self.cand, 0),
            Ten(&self.cand, 0),
            p,
            TenMut(&mut self.coef, m),
        )?;
        let extra = self.fetch;
        if extra > 0 {
            b.copy(&self.aux, 0, &mut self.coef, m + 1, extra)?;
        }
        let mut c = b.download_range(&self.coef, 0, m + 1 + extra)?;
        if extra > 0 {
            self.fetched = c.split_off(m + 1);
            self.fetch = 0;
            // The start vector's squared norm comes last: checked before what it produced.
            let start2 = self.fetched.last().copied().unwrap_or(0.0);
            if !start2.is_finite() {
                return Err(Error::NonFinite(
                    "Lanczos: start vector is not finite".into(),
                ));
            }
            self.zero_start = start2 == 0.0;
        }
        let left2 = c.pop().unwrap_or(0.0);
        // (NaN.max(0) is 0 in Rust: test before clamping.)
        let left = left2.max(0.0).sqrt();
        if !left2.is_finite() || c.iter().any(|x| !x.is_finite()) {
            return Err(Error::NonFinite(
                "Lanczos: the operator returned NaN/Inf (diverged parameters?)".into(),
            ));
        }
        Ok((c, left))
    }

    /// Start the basis from Σ_r w_r/‖w_r‖ over the `rows` warm rows of `w` (zero rows skipped),
    /// normalised, without a read-back: the norms are computed and applied on the backend
    /// ([`Backend::dot_into`], [`Backend::rsqrt`], a GEMM) and read with the first
    /// orthogonalisation (`fetched`: the rows' squared norms, then the start's). `factors`: a
    /// scratch of ≥ rows + 1 elements.
    pub(super) fn warm_start(
        &mut self,
        b: &B,
        w: &B::Buf,
        rows: usize,
        factors: &mut B::Buf,
    ) -> Result<()> {
        let p = self.dim;
        for r in 0..rows {
            b.dot_into(Ten(w, r * p), Ten(w, r * p), p, TenMut(factors, r))?;
        }
        b.copy(factors, 0, &mut self.aux, 0, rows)?;
        b.rsqrt(factors, 0, rows)?;
        // cand = Wᵀ (1/‖w_r‖)_r.
        b.gemm(
            Mat::new(w, 0, rows, p).t(),
            Mat::new(factors, 0, rows, 1),
            MatMut::new(&mut self.cand, 0, p, 1),
            1.0,
            0.0,
        )?;
        b.dot_into(
            Ten(&self.cand, 0),
            Ten(&self.cand, 0),
            p,
            TenMut(factors, rows),
        )?;
        b.copy(factors, rows, &mut self.aux, rows, 1)?;
        b.rsqrt(factors, rows, 1)?;
        // q₀ = cand/‖cand‖: a 1×1 by 1×p product with the factor.
        b.gemm(
            Mat::new(factors, rows, 1, 1),
            Mat::new(&self.cand, 0, 1, p),
            MatMut::new(&mut self.q, 0, 1, p),
            1.0,
            0.0,
        )?;
        self.m = 1;
        self.fetch = rows + 1;
        Ok(())
    }

    /// Append `cand / norm` to the basis.
    pub(super) fn append(&mut self, b: &B, norm: f64) -> Result<()> {
        let p = self.dim;
        b.scale(1.0 / norm, &mut self.cand, 0, p)?;
        b.copy(&self.cand, 0, &mut self.q, self.m * p, p)?;
        self.m += 1;
        Ok(())
    }

    /// Append a (non-zero) start vector held in `cand`; false if it lies in the span already.
    pub(super) fn append_start(&mut self, b: &B) -> Result<bool> {
        if self.m == 0 && self.cap > 0 {
            // The first vector: its norm is all the orthogonalisation would compute (one
            // read-back).
            let (_, n0) = self.orthogonalise(b).map_err(|e| match e {
                Error::NonFinite(_) => {
                    Error::NonFinite("Lanczos: start vector is not finite".into())
                }
                e => e,
            })?;
            if n0 == 0.0 {
                return Ok(false);
            }
            self.append(b, n0)?;
            return Ok(true);
        }
        let n0 = b.norm(&self.cand, 0, self.dim)?;
        if !n0.is_finite() {
            return Err(Error::NonFinite(
                "Lanczos: start vector is not finite".into(),
            ));
        }
        if n0 == 0.0 || self.m >= self.cap {
            return Ok(false);
        }
        b.scale(1.0 / n0, &mut self.cand, 0, self.dim)?;
        let (_, n1) = self.orthogonalise(b)?;
        if n1 <= self.drop_tol {
            return Ok(false);
        }
        self.append(b, n1)?;
        Ok(true)
    }

    /// Apply the operator to the basis vectors that have no product yet, extend T, and build the
    /// next block from what the products leave outside the span. Returns the b×b factor R with
    /// (I − QQᵀ)·W[block] = Q_next·R (rows: new vectors; columns: the block) and the block's
    /// first index.
    pub(super) fn step<O: Operator<B>>(
        &mut self,
        b: &B,
        op: &mut O,
    ) -> Result<(DMatrix<f64>, usize)> {
        let p = self.dim;
        let first = self.applied;
        let block = self.m - first;
        // One block product for the whole block (the engine's block HVP: one pass over the data).
        // A non-finite product shows in its coefficients and norm below (no read-back here).
        op.apply_block(&self.q, first * p, block, &mut self.w, first * p)?;
        self.products += block;
        self.applied = self.m;
        let m0 = self.m;
        let mut r = DMatrix::zeros(block, block);
        for (col, j) in (first..m0).enumerate() {
            b.copy(&self.w, j * p, &mut self.cand, 0, p)?;
            let (c, left) = self.orthogonalise(b)?;
            // ‖A q_j‖ from its parts in and outside the span (Q orthonormal).
            let scale = (c.iter().map(|x| x * x).sum::<f64>() + left * left).sqrt();
            // Columns of T: q_iᵀ A q_j for the old basis; coefficients on vectors added during this
            // block are entries of R instead.
            for (i, &ci) in c.iter().enumerate() {
                if i < m0 {
                    self.t[(i, j)] = ci;
                    self.t[(j, i)] = ci;
                } else {
                    r[(i - m0, col)] = ci;
                }
            }
            // A remainder that is numerically in the span (or finds no room) is dropped; the
            // final true-residual check covers what the estimate then misses.
            if left <= self.drop_tol * scale {
                self.dropped += 1;
            } else if self.m < self.cap {
                r[(self.m - m0, col)] = left;
                self.append(b, left)?;
            }
        }
        Ok((r, first))
    }

    /// Thick restart: keep the leading `keep` Ritz vectors (Q ← SᵀQ, W ← SᵀW, T ← Θ) and, if
    /// `keep_pending`, the pending vectors (not yet applied), whose coupling to the kept ones the
    /// next step recomputes; otherwise they are dropped.
    pub(super) fn restart(
        &mut self,
        b: &B,
        s: &DMatrix<f64>,
        theta: &[f64],
        keep: usize,
        keep_pending: bool,
    ) -> Result<()> {
        let (p, m) = (self.dim, self.applied);
        let pending = if keep_pending { self.m - m } else { 0 };
        write_rows(b, s, keep, None, &mut self.s_up)?;
        let (s_up, scratch) = (&self.s_up, &mut self.scratch);
        b.gemm(
            Mat::new(s_up, 0, keep, m),
            Mat::new(&self.q, 0, m, p),
            MatMut::new(scratch, 0, keep, p),
            1.0,
            0.0,
        )?;
        // Move the pending vectors down behind the kept ones, then the kept ones in.
        for j in 0..pending {
            let (src, dst) = ((m + j) * p, (keep + j) * p);
            b.copy(&self.q, src, &mut self.cand, 0, p)?;
            b.copy(&self.cand, 0, &mut self.q, dst, p)?;
        }
        b.copy(scratch, 0, &mut self.q, 0, keep * p)?;
        b.gemm(
            Mat::new(s_up, 0, keep, m),
            Mat::new(&self.w, 0, m, p),
            MatMut::new(scratch, 0, keep, p),
            1.0,
            0.0,
        )?;
        b.copy(scratch, 0, &mut self.w, 0, keep * p)?;
        self.t.fill(0.0);
        for (i, &th) in theta.iter().enumerate().take(keep) {
            self.t[(i, i)] = th;
        }
        self.applied = keep;
        self.m = keep + pending;
        Ok(())
    }

    /// Ritz pairs of the applied part of the basis, largest first: (values, eigenvectors of T
    /// as columns).
    pub(super) fn ritz(&self) -> (Vec<f64>, DMatrix<f64>) {
        let m = self.applied;
        sorted_eigen(self.t.view((0, 0), (m, m)).into_owned())
    }
}

/// The top `rows` Ritz vectors Y = S Q (`rows × dim`) from the Ritz coefficient rows in
/// `basis.s_up`, written into `y` (≥ rows × dim).
pub(super) fn ritz_vectors<B: Backend>(
    b: &B,
    basis: &Basis<B>,
    rows: usize,
    mut y: B::Buf,
) -> Result<B::Buf> {
    let p = basis.dim;
    b.gemm(
        Mat::new(&basis.s_up, 0, rows, basis.applied),
        Mat::new(&basis.q, 0, basis.applied, p),
        MatMut::new(&mut y, 0, rows, p),
        1.0,
        0.0,
    )?;
    Ok(y)
}
