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

mod basis;
mod riding;

pub use riding::lanczos_riding;

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

/// The basis size of a top-`k` solve on a `dim`-dimensional operator: `max_basis` rows (0: the
/// default max(3k, k + 50)), at least `floor`, at most `dim`. The one statement of the cap, for
/// Lanczos (floor 0), block Davidson (floor 2k) and the memory estimate of a solve.
pub fn basis_cap(k: usize, max_basis: usize, floor: usize, dim: usize) -> usize {
    if max_basis == 0 {
        (3 * k).max(k + 50)
    } else {
        max_basis.max(floor)
    }
    .min(dim)
}

/// The product budget of a solve: `max_products` (0: 50·k + 500).
pub(crate) fn product_budget(opts: &LanczosOptions) -> usize {
    if opts.max_products == 0 {
        50 * opts.k + 500
    } else {
        opts.max_products
    }
}
