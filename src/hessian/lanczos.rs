//! Top-k eigenpairs of a symmetric operator by (block) Lanczos with full reorthogonalisation,
//! thick restarts and an optional warm start.
//!
//! The basis Q (orthonormal rows) and W = A·Q are kept as two row-major `m × dim` buffers. Each
//! step applies the operator to the newest block of b basis vectors and orthogonalises those
//! products against the whole basis by two classical Gram–Schmidt passes, each one batched
//! matrix–vector product against Q (on a GPU: one kernel, not m dot products); the coefficients
//! are the new columns of the projected matrix T = Qᵀ A Q, and what is left, orthonormalised,
//! is the next block. b = 1 is plain Lanczos (T tridiagonal up to round-off; solved as a dense
//! symmetric matrix by nalgebra because thick restarts make it arrowhead). b > 1 is block Lanczos,
//! which resolves eigenvalues repeated up to b times — a single-vector Krylov space holds one copy
//! of a repeated eigenvalue only.
//!
//! Convergence: after each step, the residual of a Ritz pair (θ, y = Q s) is
//! A y − θ y = Q_next R s_last (only the newest block's products leave the span of Q), so
//! ‖R s_last‖ is its norm at the cost of a b×b product. When every one of the k estimates meets
//! the tolerance, the true residuals R = Sᵀ W − Θ Sᵀ Q are formed once from the stored products
//! (no extra operator applications) and they decide; those are what is reported. A warm start
//! (the previous step's eigenvectors) starts from their sum: a Krylov space of dimension r built on
//! the sum of r (near-)eigenvectors contains them (nearly).
//!
//! Repeated eigenvalues and certification. A Krylov space built on one vector holds one copy of a
//! repeated eigenvalue only, and a tight cluster looks the same at any tolerance wider than the
//! cluster; when such a space becomes invariant (few distinct eigenvalues) the search goes on from
//! a fresh random vector, which brings one more copy of each. So k Ritz pairs that meet the
//! tolerance do not show that no eigenvalue ≥ θ_k was missed. Before returning, the solver
//! certifies the set: it restarts on exactly the converged top Ritz vectors Y (the pending Lanczos
//! vector is dropped: it belongs to the old Krylov space), adds a fresh seeded random vector x
//! orthogonalised against Y and runs the same process on, until the top |Y| + 1 Ritz pairs of
//! span(Y, K(x)) meet the tolerance. Y is invariant up to its residuals, so the extra pair is the
//! converged top eigenpair μ of the deflated operator (I − YYᵀ)A(I − YYᵀ) on Y⊥, found from a random
//! start; Rayleigh–Ritz over the enlarged span merges it. If the top-k values rose by more than
//! tol·scale in sum (they rise by max(0, μ − θ_k)), a missed copy or eigenvalue was found and
//! another round starts on the new top k + 1 (all converged); else the set is certified. Each round
//! adds at least one missed copy; invariant subspaces met in a round are continued with fresh random
//! vectors as in the search. The certificate is the usual Krylov one (a random start has a non-zero
//! component on every eigenvector with probability 1), the confidence of any top eigenvalue found
//! by Lanczos. A value tied across the k-th place (λ_k = λ_{k+1}) is reported as a warning: the
//! values are right, the vectors are one choice from that eigenspace.
//!
//! Cost: a round costs about a top-1 Lanczos solve of the deflated operator to the tolerance.
//! [`Verify::Auto`] (the default) pays it on every cold solve, and on a warm solve only when there
//! is evidence that copies may be missing: an invariant-subspace breakdown in the search, two of
//! the top k + 1 Ritz values within 1e-6 relative of each other, or a warm vector not reproduced (a
//! quarter or more of its squared norm outside the new top-k span — what a sum start does to a
//! repeated eigenvalue: it keeps one combination of the copies, and the others fall outside). Warm
//! solves (every step of a training run) without such evidence cost what they did before; their
//! result is then not `certified`.

use super::Operator;
use crate::backend::Backend;
use crate::error::{Error, Result};
use nalgebra::DMatrix;

/// Options of [`lanczos`].
#[derive(Clone, Debug)]
pub struct LanczosOptions {
    /// Number of largest (algebraic) eigenpairs wanted.
    pub k: usize,
    /// Converged when every one of the k residuals ‖A y − θ y‖ ≤ tol · max|θ|.
    pub tol: f64,
    /// Largest basis kept before a thick restart (0: max(3k, k + 50), capped at dim).
    pub max_basis: usize,
    /// Give up after this many operator products (0: 50·k + 500).
    pub max_products: usize,
    /// Vectors in a cold start block (1: plain Lanczos). Use ≥ the largest multiplicity expected
    /// among the top k eigenvalues.
    pub block: usize,
    /// Seed of the random start vectors.
    pub seed: u64,
    /// When to certify that no eigenvalue ≥ θ_k was missed (see the module documentation).
    pub verify: Verify,
}

/// When [`lanczos`] certifies its set: a verification round from a fresh random vector on the
/// operator deflated by the found vectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// Cold solves always; warm solves when there is evidence of a multiplicity (a breakdown,
    /// coincident Ritz values, warm vectors not reproduced).
    #[default]
    Auto,
    /// Every solve.
    Always,
    /// Never: the first k pairs that meet the tolerance are returned (copies of a repeated
    /// eigenvalue may be missing); a warning is reported when there was evidence of that.
    Never,
}

impl Default for LanczosOptions {
    fn default() -> Self {
        LanczosOptions {
            k: 10,
            tol: 1e-6,
            max_basis: 0,
            max_products: 0,
            block: 1,
            seed: 0,
            verify: Verify::Auto,
        }
    }
}

/// Eigenpairs with their evidence.
pub struct EigResult<B: Backend> {
    /// Eigenvalues, largest first.
    pub values: Vec<f64>,
    /// True residual norms ‖A y_i − λ_i y_i‖ of the returned pairs.
    pub residuals: Vec<f64>,
    /// Eigenvectors as rows of a `values.len() × dim` buffer, orthonormal.
    pub vectors: B::Buf,
    pub dim: usize,
    /// Operator products (HVPs) spent.
    pub products: usize,
    /// Whether all pairs met the tolerance and no verification was cut short by the budget.
    pub converged: bool,
    /// The tolerance scale used: max |θ| over the Ritz values.
    pub scale: f64,
    /// Whether the set is certified: a verification round found nothing ≥ θ_k outside it (or the
    /// basis spanned the whole space). False when verification was skipped ([`Verify`]).
    pub certified: bool,
    /// What the solver cannot vouch for: a multiplicity that may be unresolved (evidence seen but
    /// not verified, or the budget ran out while verifying), a value tied across the k-th place.
    pub warnings: Vec<String>,
    /// What the [`Riders`] of the solve brought back with its last read (None without riders).
    pub ridden: Option<Ridden>,
}

/// Values a caller wants read back together with a solve's last read-back instead of by reads of
/// their own (on a device each read-back is a round trip that waits for the queue to drain).
/// See [`lanczos_riding`].
pub struct Riders<'a, B: Backend> {
    /// A vector v (dim long): the returned eigenvectors' coefficients Y·v and ‖v‖² come back in
    /// [`Ridden`] — ‖P_k v‖/‖v‖ (χ_k) then needs no further read.
    pub project: Option<&'a B::Buf>,
    /// `(buffer, offset, len)`: a range of another buffer, copied and read back as it is (e.g. an
    /// engine's deferred loss statistics). Its values must not change during the solve.
    pub carry: Option<(&'a B::Buf, usize, usize)>,
}

impl<B: Backend> Default for Riders<'_, B> {
    fn default() -> Self {
        Riders {
            project: None,
            carry: None,
        }
    }
}

/// What [`Riders`] brought back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ridden {
    /// Y·v: the coefficient of `project` on each returned eigenvector (empty without `project`).
    pub coefs: Vec<f64>,
    /// ‖v‖² (0 without `project`).
    pub norm2: f64,
    /// The carried range's values.
    pub carried: Vec<f64>,
}

/// What a progress callback sees after each product.
#[derive(Clone, Debug)]
pub struct Progress {
    pub products: usize,
    pub basis: usize,
    pub converged: usize,
    pub k: usize,
    /// Largest residual among the top k relative to the scale.
    pub worst_relative_residual: f64,
}

/// Random vectors from a seeded ChaCha stream, uniform in [−1, 1).
pub fn random_vector(dim: usize, seed: u64) -> Vec<f64> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_1a2c_2024);
    (0..dim).map(|_| 2.0 * rng.random::<f64>() - 1.0).collect()
}

struct Basis<B: Backend> {
    dim: usize,
    cap: usize,
    /// Vectors in the basis.
    m: usize,
    /// Of which the first `applied` have their product in W.
    applied: usize,
    q: B::Buf,
    w: B::Buf,
    t: DMatrix<f64>,
    coef: B::Buf,
    coef2: B::Buf,
    cand: B::Buf,
    products: usize,
    drop_tol: f64,
    /// Products whose remainder was dropped as lying in the span (invariant-subspace breakdowns).
    dropped: usize,
    /// Values computed on the backend that the next orthogonalisation reads back with its own:
    /// `aux[..fetch]` (the warm rows' squared norms and the start vector's).
    aux: B::Buf,
    fetch: usize,
    /// What that read brought (empty until then).
    fetched: Vec<f64>,
    /// The warm start summed to zero (found at the first read): start afresh.
    zero_start: bool,
}

impl<B: Backend> Basis<B> {
    /// Orthogonalise `cand` against the first `m` basis vectors (two passes); returns the
    /// coefficients (summed over both passes) and the norm left. One read-back: the passes'
    /// coefficients are summed on the backend and come back with ‖left‖² in one range.
    fn orthogonalise(&mut self, b: &B) -> Result<(Vec<f64>, f64)> {
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
            b.gemm(
                false, false, m, 1, p, 1.0, &self.q, 0, &self.cand, 0, 0.0, c, 0,
            )?;
            b.gemm(
                true,
                false,
                p,
                1,
                m,
                -1.0,
                &self.q,
                0,
                c,
                0,
                1.0,
                &mut self.cand,
                0,
            )?;
            if pass == 1 {
                b.axpy(1.0, &self.coef2, 0, &mut self.coef, 0, m)?;
            }
        }
        b.dot_into(&self.cand, 0, &self.cand, 0, p, &mut self.coef, m)?;
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
    fn warm_start(&mut self, b: &B, w: &B::Buf, rows: usize, factors: &mut B::Buf) -> Result<()> {
        let p = self.dim;
        for r in 0..rows {
            b.dot_into(w, r * p, w, r * p, p, factors, r)?;
        }
        b.copy(factors, 0, &mut self.aux, 0, rows)?;
        b.rsqrt(factors, 0, rows)?;
        // cand = Wᵀ (1/‖w_r‖)_r.
        b.gemm(
            true,
            false,
            p,
            1,
            rows,
            1.0,
            w,
            0,
            factors,
            0,
            0.0,
            &mut self.cand,
            0,
        )?;
        b.dot_into(&self.cand, 0, &self.cand, 0, p, factors, rows)?;
        b.copy(factors, rows, &mut self.aux, rows, 1)?;
        b.rsqrt(factors, rows, 1)?;
        // q₀ = cand/‖cand‖: a 1×1 by 1×p product with the factor.
        b.gemm(
            false,
            false,
            1,
            p,
            1,
            1.0,
            factors,
            rows,
            &self.cand,
            0,
            0.0,
            &mut self.q,
            0,
        )?;
        self.m = 1;
        self.fetch = rows + 1;
        Ok(())
    }

    /// Append `cand / norm` to the basis.
    fn append(&mut self, b: &B, norm: f64) -> Result<()> {
        let p = self.dim;
        b.scale(1.0 / norm, &mut self.cand, 0, p)?;
        b.copy(&self.cand, 0, &mut self.q, self.m * p, p)?;
        self.m += 1;
        Ok(())
    }

    /// Append a (non-zero) start vector held in `cand`; false if it lies in the span already.
    fn append_start(&mut self, b: &B) -> Result<bool> {
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
    fn step<O: Operator<B>>(&mut self, b: &B, op: &mut O) -> Result<(DMatrix<f64>, usize)> {
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
    #[allow(clippy::too_many_arguments)]
    fn restart(
        &mut self,
        b: &B,
        s: &DMatrix<f64>,
        theta: &[f64],
        keep: usize,
        keep_pending: bool,
        scratch: &mut B::Buf,
        s_up: &mut B::Buf,
    ) -> Result<()> {
        let (p, m) = (self.dim, self.applied);
        let pending = if keep_pending { self.m - m } else { 0 };
        write_rows(b, s, keep, None, s_up)?;
        let s_up = &*s_up;
        b.gemm(
            false, false, keep, p, m, 1.0, s_up, 0, &self.q, 0, 0.0, scratch, 0,
        )?;
        // Move the pending vectors down behind the kept ones, then the kept ones in.
        for j in 0..pending {
            let (src, dst) = ((m + j) * p, (keep + j) * p);
            b.copy(&self.q, src, &mut self.cand, 0, p)?;
            b.copy(&self.cand, 0, &mut self.q, dst, p)?;
        }
        b.copy(scratch, 0, &mut self.q, 0, keep * p)?;
        b.gemm(
            false, false, keep, p, m, 1.0, s_up, 0, &self.w, 0, 0.0, scratch, 0,
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
    fn ritz(&self) -> (Vec<f64>, DMatrix<f64>) {
        let m = self.applied;
        sorted_eigen(self.t.view((0, 0), (m, m)).into_owned())
    }
}

/// Eigenpairs of a symmetric matrix, largest first: (values, eigenvectors as columns). The Ritz
/// pairs of a projected matrix T, for both solvers.
pub(crate) fn sorted_eigen(t: DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let m = t.nrows();
    let eig = nalgebra::SymmetricEigen::new(t);
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| eig.eigenvalues[j].total_cmp(&eig.eigenvalues[i]));
    let values = order.iter().map(|&i| eig.eigenvalues[i]).collect();
    let mut s = DMatrix::zeros(m, m);
    for (c, &i) in order.iter().enumerate() {
        s.set_column(c, &eig.eigenvectors.column(i));
    }
    (values, s)
}

/// The first `rows` columns of `s` (m×·) as `rows × m` row-major values, each row multiplied by
/// `weights[r]`.
fn rows_of(s: &DMatrix<f64>, rows: usize, weights: Option<&[f64]>) -> Vec<f64> {
    let m = s.nrows();
    let mut h = Vec::with_capacity(rows * m);
    for r in 0..rows {
        let w = weights.map_or(1.0, |w| w[r]);
        h.extend(s.column(r).iter().map(|x| x * w));
    }
    h
}

/// The first `rows` columns of `s` (m×·) as a `rows × m` row-major matrix, each row multiplied
/// by `weights[r]`, written into the front of an existing buffer (no allocation).
pub(crate) fn write_rows<B: Backend>(
    b: &B,
    s: &DMatrix<f64>,
    rows: usize,
    weights: Option<&[f64]>,
    into: &mut B::Buf,
) -> Result<()> {
    b.write(into, 0, &rows_of(s, rows, weights))
}

/// The top `rows` Ritz vectors Y = S Q (`rows × dim`) from the Ritz coefficient rows `s_up`,
/// written into `y` (≥ rows × dim).
fn ritz_vectors<B: Backend>(
    b: &B,
    basis: &Basis<B>,
    s_up: &B::Buf,
    rows: usize,
    mut y: B::Buf,
) -> Result<B::Buf> {
    let p = basis.dim;
    b.gemm(
        false,
        false,
        rows,
        p,
        basis.applied,
        1.0,
        s_up,
        0,
        &basis.q,
        0,
        0.0,
        &mut y,
        0,
    )?;
    Ok(y)
}

/// Signs that the k converged pairs may hold too few copies of a repeated eigenvalue (empty: none
/// seen). `dropped`: the search's invariant-subspace breakdowns; `warm`: G = Y Uᵀ (k × rows, row
/// major) of the k top Ritz vectors Y and the warm rows U, with the rows' norms.
fn multiplicity_evidence(
    dropped: usize,
    theta: &[f64],
    k: usize,
    scale: f64,
    coincide: f64,
    warm: Option<(&[f64], usize)>,
    warm_norms: &[f64],
) -> Vec<String> {
    let mut why = Vec::new();
    if dropped > 0 {
        why.push(format!(
            "the Krylov space became invariant {dropped} time(s) (few distinct eigenvalues)"
        ));
    }
    let top = (k + 1).min(theta.len());
    if let Some(i) = (1..top).find(|&i| theta[i - 1] - theta[i] <= coincide * scale) {
        why.push(format!(
            "Ritz values {i} and {} coincide ({:.3e} relative)",
            i + 1,
            (theta[i - 1] - theta[i]) / scale
        ));
    }
    if let Some((g, rows)) = warm
        && rows > 0
        && rows <= k
        && warm_norms.len() == rows
    {
        // g = Y Uᵀ (k × rows): the part of each warm vector inside the new top-k span; the rows'
        // norms as read at the start (the same buffer, unchanged since).
        let norms = warm_norms;
        let worst = (0..rows)
            .filter(|&r| norms[r] > 0.0 && norms[r].is_finite())
            .map(|r| {
                let inside: f64 = (0..k).map(|i| g[i * rows + r].powi(2)).sum();
                (r, 1.0 - inside / (norms[r] * norms[r]))
            })
            .max_by(|a, c| a.1.total_cmp(&c.1));
        if let Some((r, out)) = worst
            && out >= 0.25
        {
            why.push(format!(
                "warm-start vector {} has {:.0}% of its squared norm outside the new top-{k} span",
                r + 1,
                100.0 * out
            ));
        }
    }
    why
}

/// The buffers of a solve (the basis Q and its products W, residuals, scratch, coefficients),
/// kept between solves of the same dimension, k and basis size — every step of a run — so that
/// a warm solve allocates nothing when handed the previous result to write into
/// ([`LanczosWork::recycle`]; on the CPU in f64 the basis alone is 3 × 60 × p zeroed doubles,
/// 290 MB for fc-tanh, at every step otherwise). Reused buffers are not cleared: the solver writes
/// every element before it reads it.
pub struct LanczosWork<B: Backend> {
    key: (usize, usize, usize),
    q: Option<B::Buf>,
    w: Option<B::Buf>,
    scratch: Option<B::Buf>,
    resid: Option<B::Buf>,
    coef: Option<B::Buf>,
    coef2: Option<B::Buf>,
    cand: Option<B::Buf>,
    aux: Option<B::Buf>,
    factors: Option<B::Buf>,
    last: Option<B::Buf>,
    /// The Ritz coefficient rows S and ΘS (cap × cap each).
    s_up: Option<B::Buf>,
    ts_up: Option<B::Buf>,
    /// A buffer for the next result's vectors ([`LanczosWork::recycle`]).
    spare: Option<B::Buf>,
}

impl<B: Backend> LanczosWork<B> {
    /// Hand back a result's vectors that are no longer needed (the previous step's basis): the
    /// next solve writes its vectors there instead of allocating.
    pub fn recycle(&mut self, vectors: B::Buf) {
        self.spare = Some(vectors);
    }
}

impl<B: Backend> Default for LanczosWork<B> {
    fn default() -> Self {
        LanczosWork {
            key: (0, 0, 0),
            q: None,
            w: None,
            scratch: None,
            resid: None,
            coef: None,
            coef2: None,
            cand: None,
            aux: None,
            factors: None,
            last: None,
            s_up: None,
            ts_up: None,
            spare: None,
        }
    }
}

pub(crate) fn take_or_zeros<B: Backend>(
    b: &B,
    slot: &mut Option<B::Buf>,
    len: usize,
) -> Result<B::Buf> {
    match slot.take() {
        Some(x) if b.len(&x) == len => Ok(x),
        _ => b.zeros(len),
    }
}

/// The k largest eigenpairs of `op`. `warm`: a buffer whose first `rows` rows (each of length
/// dim) are the previous eigenvectors; the solve starts from their sum. The set is certified
/// against missed copies of repeated eigenvalues as [`LanczosOptions::verify`] says (see the
/// module documentation).
pub fn lanczos<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    opts: &LanczosOptions,
    warm: Option<(&B::Buf, usize)>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<EigResult<B>> {
    lanczos_with(b, op, opts, warm, progress, &mut LanczosWork::default())
}

/// The arguments every solver checks: 1 ≤ k ≤ dim and a positive, finite tolerance.
pub(crate) fn check_k_tol(opts: &LanczosOptions, dim: usize) -> Result<()> {
    let k = opts.k;
    if k == 0 || k > dim {
        return Err(Error::InvalidArgument(format!(
            "k = {k}: need 1 ≤ k ≤ {dim} (the operator's dimension)"
        )));
    }
    if !(opts.tol > 0.0 && opts.tol.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "tol = {}: must be positive",
            opts.tol
        )));
    }
    Ok(())
}

/// [`lanczos`] with its buffers taken from (and returned to) `work`.
pub fn lanczos_with<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    opts: &LanczosOptions,
    warm: Option<(&B::Buf, usize)>,
    progress: &mut dyn FnMut(&Progress),
    work: &mut LanczosWork<B>,
) -> Result<EigResult<B>> {
    lanczos_riding(b, op, opts, warm, progress, work, &Riders::default())
}

/// [`lanczos_with`] with [`Riders`]: values read back with the solve's last read-back
/// ([`EigResult::ridden`]).
///
/// Read-backs on a device: one per operator product (its orthogonalisation's coefficients and
/// norm), and one per convergence check by true residuals, which also brings the warm-start
/// evidence and the riders — a warm solve (block 1) that converges at once costs its products + 1
/// (each random start vector of a wider block costs two more). The warm start's norms are
/// computed on the backend and read with the first product's coefficients.
pub fn lanczos_riding<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    opts: &LanczosOptions,
    warm: Option<(&B::Buf, usize)>,
    progress: &mut dyn FnMut(&Progress),
    work: &mut LanczosWork<B>,
    riders: &Riders<B>,
) -> Result<EigResult<B>> {
    let p = op.dim();
    let k = opts.k;
    check_k_tol(opts, p)?;
    let block = opts.block.max(1).min(p);
    let cap = if opts.max_basis == 0 {
        (3 * k).max(k + 50)
    } else {
        opts.max_basis
    }
    .min(p);
    if cap < p && cap < k + 2 * block {
        return Err(Error::InvalidArgument(format!(
            "max_basis {cap} is below k + 2·block = {}",
            k + 2 * block
        )));
    }
    let max_products = if opts.max_products == 0 {
        50 * k + 500
    } else {
        opts.max_products
    };
    // The warm rows (at most k: the previous top k), their sum the start vector; checked before
    // the workspace's buffers are taken.
    let mut warm = warm.filter(|&(_, rows)| rows > 0);
    if let Some((w, rows)) = warm {
        crate::backend::check_range("warm start", b.len(w), 0, rows * p)?;
        if rows > k {
            return Err(Error::InvalidArgument(format!(
                "a warm start of {rows} vectors for the top {k}: give at most k"
            )));
        }
    }
    if work.key != (p, k, cap) {
        *work = LanczosWork {
            key: (p, k, cap),
            ..LanczosWork::default()
        };
    }
    let mut basis = Basis::<B> {
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
    };
    let mut factors = take_or_zeros(b, &mut work.factors, k + 1)?;
    let mut seed = opts.seed;
    if let Some((w, rows)) = warm
        && cap > 0
    {
        basis.warm_start(b, w, rows, &mut factors)?;
    }
    let mut add_random = |basis: &mut Basis<B>| -> Result<bool> {
        seed = seed.wrapping_add(1);
        basis.cand = b.upload(&random_vector(p, seed))?;
        basis.append_start(b)
    };
    while basis.m < block {
        if !add_random(&mut basis)? {
            break;
        }
    }
    // Ritz values closer than this (relative) count as coincident: evidence of a multiplicity.
    let coincide = 1e-6f64.max(100.0 * b.precision().eps());
    let mut resid = take_or_zeros(b, &mut work.resid, (k + 2).min(p) * p)?;
    let mut scratch = take_or_zeros(b, &mut work.scratch, cap * p)?;
    let mut s_up = take_or_zeros(b, &mut work.s_up, cap * cap)?;
    let mut ts_up = take_or_zeros(b, &mut work.ts_up, cap * cap)?;
    // What a check reads back: ‖R_i‖² (≤ k + 2 in a verification round) | G (k × k) | Y v and
    // ‖v‖² (≤ k + 1) | carried.
    let n_carry = riders.carry.map_or(0, |c| c.2);
    let mut last = take_or_zeros(b, &mut work.last, (k + 2) + k * k + (k + 1) + n_carry)?;
    // None while searching; during a verification round, (hold, base): the round started from the
    // top `hold` converged Ritz vectors, whose top-k values were `base`.
    let mut round: Option<(usize, Vec<f64>)> = None;
    let mut rounds = 0usize;
    // The budget ran out before a wanted verification was done.
    let mut verify_cut = false;
    let mut warnings = Vec::new();
    // The warm rows' norms (read with the first product's coefficients; for the evidence check).
    let mut warm_norms: Vec<f64> = Vec::new();
    loop {
        let (r, first) = basis.step(b, op)?;
        if let Some((_, rows)) = warm
            && warm_norms.is_empty()
            && basis.fetched.len() == rows + 1
        {
            warm_norms = basis.fetched[..rows]
                .iter()
                .map(|&x| x.max(0.0).sqrt())
                .collect();
        }
        if std::mem::take(&mut basis.zero_start) {
            // The warm rows summed to zero: drop that product and solve as from a cold start
            // (random vectors, verified like one).
            warm = None;
            basis.m = 0;
            basis.applied = 0;
            basis.dropped = 0;
            basis.t.fill(0.0);
            while basis.m < block {
                if !add_random(&mut basis)? {
                    break;
                }
            }
            continue;
        }
        let m = basis.applied;
        let (theta, s) = basis.ritz();
        // Pairs that must meet the tolerance: k, or in a round the kept ones and the deflated top.
        let want = round.as_ref().map_or(k, |(hold, _)| (hold + 1).min(p));
        let kk = want.min(m);
        let kout = k.min(kk);
        let scale = theta
            .iter()
            .fold(0.0f64, |a, &x| a.max(x.abs()))
            .max(f64::MIN_POSITIVE);
        let limit = opts.tol * scale;
        // ‖A y_i − θ_i y_i‖ = ‖R · s_i[first..m]‖ (the kept vectors of a verification round add
        // their own residuals, which the true residuals below include).
        let estimate: Vec<f64> = (0..kk)
            .map(|i| (&r * s.view((first, i), (m - first, 1))).norm())
            .collect();
        let all_met = kk == want && estimate.iter().all(|&e| e <= limit);
        let out_of_room = basis.m == basis.applied && basis.m == p; // nothing left to add: exact
        let out_of_budget = basis.products >= max_products;
        let mut report = estimate.clone();
        let mut met = false;
        // At a check: the top kout Ritz vectors (what a finish returns), the warm-start evidence
        // G = Y Uᵀ if it will be wanted, what the riders brought.
        let mut checked: Option<(B::Buf, Option<Vec<f64>>, Ridden)> = None;
        if all_met || out_of_room || out_of_budget {
            // The true residuals from the stored products: R = Sₖᵀ W − Θ Sₖᵀ Q.
            write_rows(b, &s, kk, None, &mut s_up)?;
            write_rows(b, &s, kk, Some(&theta), &mut ts_up)?;
            b.gemm(
                false, false, kk, p, m, 1.0, &s_up, 0, &basis.w, 0, 0.0, &mut resid, 0,
            )?;
            b.gemm(
                false, false, kk, p, m, -1.0, &ts_up, 0, &basis.q, 0, 1.0, &mut resid, 0,
            )?;
            let spare = take_or_zeros(b, &mut work.spare, kout * p)?;
            let y = ritz_vectors(b, &basis, &s_up, kout, spare)?;
            // G is wanted when these pairs meet the tolerance and the evidence check follows.
            let g_rows = match (round.is_none() && kout == k, opts.verify, warm) {
                (true, Verify::Auto | Verify::Never, Some((_, rows))) => rows,
                _ => 0,
            };
            // One read-back: ‖R_i‖² (kk) | G (k·g_rows) | Y v (kout) and ‖v‖² | the carried range.
            let n_proj = if riders.project.is_some() {
                kout + 1
            } else {
                0
            };
            let len = kk + k * g_rows + n_proj + n_carry;
            for i in 0..kk {
                b.dot_into(&resid, i * p, &resid, i * p, p, &mut last, i)?;
            }
            let mut at = kk;
            if let (true, Some((w, rows))) = (g_rows > 0, warm) {
                b.gemm(
                    false, true, k, rows, p, 1.0, &y, 0, w, 0, 0.0, &mut last, at,
                )?;
                at += k * rows;
            }
            if let Some(v) = riders.project {
                crate::backend::check_range("projected vector", b.len(v), 0, p)?;
                b.gemm(
                    false, false, kout, 1, p, 1.0, &y, 0, v, 0, 0.0, &mut last, at,
                )?;
                b.dot_into(v, 0, v, 0, p, &mut last, at + kout)?;
                at += kout + 1;
            }
            if let Some((c, off, n)) = riders.carry {
                b.copy(c, off, &mut last, at, n)?;
            }
            let vals = b.download_range(&last, 0, len)?;
            report = vals[..kk].iter().map(|&x| x.max(0.0).sqrt()).collect();
            met = kk == want && report.iter().all(|&x| x <= limit);
            let mut at = kk;
            let g = (g_rows > 0).then(|| vals[at..at + k * g_rows].to_vec());
            at += k * g_rows;
            let mut ridden = Ridden::default();
            if n_proj > 0 {
                ridden.coefs = vals[at..at + kout].to_vec();
                ridden.norm2 = vals[at + kout];
                at += n_proj;
            }
            ridden.carried = vals[at..at + n_carry].to_vec();
            checked = Some((y, g, ridden));
        }
        progress(&Progress {
            products: basis.products,
            basis: m,
            converged: report[..kout].iter().filter(|&&x| x <= limit).count(),
            k,
            worst_relative_residual: report[..kout].iter().fold(0.0f64, |a, &x| a.max(x)) / scale,
        });
        // What next: finish (with or without a certificate), start a verification round keeping
        // the top `hold` pairs, or go on.
        let mut finish = None;
        let mut start_round = None;
        if out_of_room {
            finish = Some(true);
        } else if met {
            match &round {
                None => {
                    let g = checked.as_ref().and_then(|c| c.1.as_deref());
                    let evidence = match (opts.verify, warm) {
                        (Verify::Auto, None) | (Verify::Always, _) => Vec::new(),
                        _ => multiplicity_evidence(
                            basis.dropped,
                            &theta,
                            k,
                            scale,
                            coincide,
                            g.zip(warm.map(|w| w.1)),
                            &warm_norms,
                        ),
                    };
                    let verify = match opts.verify {
                        Verify::Always => true,
                        Verify::Auto => warm.is_none() || !evidence.is_empty(),
                        Verify::Never => false,
                    };
                    if k == p {
                        finish = Some(true);
                    } else if verify {
                        start_round = Some(k);
                    } else {
                        if !evidence.is_empty() {
                            warnings.push(format!(
                                "a repeated eigenvalue may have copies missing from the top {k} \
                                 (not verified): {}",
                                evidence.join("; ")
                            ));
                        }
                        finish = Some(false);
                    }
                }
                Some((_, base)) => {
                    let gain = theta[..k].iter().sum::<f64>() - base.iter().sum::<f64>();
                    if gain <= limit {
                        finish = Some(true);
                    } else {
                        // Something ≥ θ_k was missed and is now merged; its round converged the
                        // top k + 1 pairs, so the next round keeps them all when there is room.
                        rounds += 1;
                        let hold = if k + 1 < p && k + 3 <= cap { k + 1 } else { k };
                        start_round = Some(hold);
                    }
                }
            }
        }
        if finish.is_none() && out_of_budget {
            if round.is_some() || start_round.is_some() {
                verify_cut = true;
                warnings.push(format!(
                    "the budget of {max_products} products ran out while verifying the top {k} \
                     (after {rounds} merge(s)): copies of a repeated eigenvalue may be missing; \
                     raise max_products"
                ));
            }
            start_round = None;
            finish = Some(false);
        }
        if let Some(certified) = finish {
            // Every finish follows a check in the same iteration.
            let (vectors, _, ridden) = checked.ok_or_else(|| {
                Error::Backend("Lanczos: finished without a residual check".into())
            })?;
            let pairs_met = kout == k && report[..k].iter().all(|&x| x <= limit);
            // A value tied across the k-th place: right values, but the vectors are one choice.
            if certified && kk > k && report[k] <= limit && theta[k] >= theta[k - 1] - limit {
                warnings.push(format!(
                    "λ{k} = {:.6e} is repeated beyond the top {k}: the returned vectors span only \
                     part of its eigenspace (projections onto them depend on that choice)",
                    theta[k - 1]
                ));
            }
            // The buffers go back to the workspace for the next solve.
            work.q = Some(basis.q);
            work.w = Some(basis.w);
            work.coef = Some(basis.coef);
            work.coef2 = Some(basis.coef2);
            work.cand = Some(basis.cand);
            work.resid = Some(resid);
            work.scratch = Some(scratch);
            work.aux = Some(basis.aux);
            work.factors = Some(factors);
            work.s_up = Some(s_up);
            work.ts_up = Some(ts_up);
            work.last = Some(last);
            return Ok(EigResult {
                values: theta[..kout].to_vec(),
                converged: pairs_met && !verify_cut,
                residuals: report[..kout].to_vec(),
                vectors,
                dim: p,
                products: basis.products,
                scale,
                certified,
                warnings,
                ridden: (riders.project.is_some() || riders.carry.is_some()).then_some(ridden),
            });
        }
        // Not finished: the vectors formed at the check are scratch for the next one.
        if let Some((y, _, _)) = checked {
            work.spare = Some(y);
        }
        if let Some(hold) = start_round {
            // Verification round: restart on exactly the top `hold` (converged) Ritz vectors, drop
            // the pending Lanczos vector and go on from a fresh random vector orthogonal to them.
            basis.restart(b, &s, &theta, hold, false, &mut scratch, &mut s_up)?;
            round = Some((hold, theta[..k].to_vec()));
            if !add_random(&mut basis)? && !add_random(&mut basis)? {
                return Err(Error::Backend(
                    "Lanczos: no random direction left outside the found vectors".into(),
                ));
            }
            continue;
        }
        if cap < p && basis.m + block > cap {
            // Thick restart: keep the leading Ritz vectors and the pending block.
            let keep = ((cap + want) / 2)
                .min(m)
                .max(want.min(m))
                .min(cap - 2 * block);
            basis.restart(b, &s, &theta, keep, true, &mut scratch, &mut s_up)?;
        }
        if basis.m == basis.applied && !add_random(&mut basis)? {
            // An invariant subspace and no independent direction left to add.
            return Err(Error::Backend(
                "Lanczos: the basis cannot be extended (dimension exhausted)".into(),
            ));
        }
    }
}
