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
    /// Whether all pairs met the tolerance.
    pub converged: bool,
    /// The tolerance scale used: max |θ| over the Ritz values.
    pub scale: f64,
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
    cand: B::Buf,
    products: usize,
    drop_tol: f64,
}

impl<B: Backend> Basis<B> {
    /// Orthogonalise `cand` against the first `m` basis vectors (two passes); returns the
    /// coefficients (summed over both passes) and the norm left.
    fn orthogonalise(&mut self, b: &B) -> Result<(Vec<f64>, f64)> {
        let (p, m) = (self.dim, self.m);
        let mut total = vec![0.0; m];
        for _ in 0..2 {
            if m == 0 {
                break;
            }
            // c = Q v; v ← v − Qᵀ c: one batched product each way.
            b.gemm(
                false,
                false,
                m,
                1,
                p,
                1.0,
                &self.q,
                0,
                &self.cand,
                0,
                0.0,
                &mut self.coef,
                0,
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
                &self.coef,
                0,
                1.0,
                &mut self.cand,
                0,
            )?;
            let c = b.download(&self.coef)?;
            total.iter_mut().zip(&c).for_each(|(t, c)| *t += c);
        }
        Ok((total, b.norm(&self.cand, 0, p)?))
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
        for j in first..self.m {
            op.apply(&self.q, j * p, &mut self.w, j * p)?;
            self.products += 1;
            if !b.all_finite(&self.w, j * p, p)? {
                return Err(Error::NonFinite(
                    "Lanczos: the operator returned NaN/Inf (diverged parameters?)".into(),
                ));
            }
        }
        self.applied = self.m;
        let m0 = self.m;
        let mut r = DMatrix::zeros(block, block);
        for (col, j) in (first..m0).enumerate() {
            b.copy(&self.w, j * p, &mut self.cand, 0, p)?;
            let scale = b.norm(&self.cand, 0, p)?;
            let (c, left) = self.orthogonalise(b)?;
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
            if left > self.drop_tol * scale && self.m < self.cap {
                r[(self.m - m0, col)] = left;
                self.append(b, left)?;
            }
        }
        Ok((r, first))
    }

    /// Ritz pairs of the applied part of the basis, largest first: (values, eigenvectors of T
    /// as columns).
    fn ritz(&self) -> (Vec<f64>, DMatrix<f64>) {
        let m = self.applied;
        let t = self.t.view((0, 0), (m, m)).into_owned();
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
}

/// Upload the first `rows` columns of `s` (m×·) as a `rows × m` row-major buffer, each row
/// multiplied by `weights[r]`.
fn upload_rows<B: Backend>(
    b: &B,
    s: &DMatrix<f64>,
    rows: usize,
    weights: Option<&[f64]>,
) -> Result<B::Buf> {
    let m = s.nrows();
    let mut h = Vec::with_capacity(rows * m);
    for r in 0..rows {
        let w = weights.map_or(1.0, |w| w[r]);
        h.extend(s.column(r).iter().map(|x| x * w));
    }
    b.upload(&h)
}

/// The k largest eigenpairs of `op`. `warm`: a buffer whose first `rows` rows (each of length
/// dim) are the previous eigenvectors; the solve starts from their sum.
pub fn lanczos<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    opts: &LanczosOptions,
    warm: Option<(&B::Buf, usize)>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<EigResult<B>> {
    let p = op.dim();
    let k = opts.k;
    if k == 0 || k > p {
        return Err(Error::InvalidArgument(format!(
            "k = {k}: need 1 ≤ k ≤ {p} (the operator's dimension)"
        )));
    }
    if !(opts.tol > 0.0 && opts.tol.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "tol = {}: must be positive",
            opts.tol
        )));
    }
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
    let mut basis = Basis::<B> {
        dim: p,
        cap,
        m: 0,
        applied: 0,
        q: b.zeros(cap * p)?,
        w: b.zeros(cap * p)?,
        t: DMatrix::zeros(cap, cap),
        coef: b.zeros(cap)?,
        cand: b.zeros(p)?,
        products: 0,
        drop_tol: b.precision().eps().sqrt(),
    };
    let mut seed = opts.seed;
    if let Some((w, rows)) = warm {
        crate::backend::check_range("warm start", b.len(w), 0, rows * p)?;
        b.fill(&mut basis.cand, 0, p, 0.0)?;
        for r in 0..rows {
            let nr = b.norm(w, r * p, p)?;
            if nr > 0.0 && nr.is_finite() {
                b.axpy(1.0 / nr, w, r * p, &mut basis.cand, 0, p)?;
            }
        }
        basis.append_start(b)?;
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
    let mut resid = b.zeros(k * p)?;
    let mut scratch = b.zeros(cap * p)?;
    loop {
        let (r, first) = basis.step(b, op)?;
        let m = basis.applied;
        let (theta, s) = basis.ritz();
        let kk = k.min(m);
        let scale = theta
            .iter()
            .fold(0.0f64, |a, &x| a.max(x.abs()))
            .max(f64::MIN_POSITIVE);
        let limit = opts.tol * scale;
        // ‖A y_i − θ_i y_i‖ = ‖R · s_i[first..m]‖.
        let estimate: Vec<f64> = (0..kk)
            .map(|i| (&r * s.view((first, i), (m - first, 1))).norm())
            .collect();
        let all_met = kk == k && estimate.iter().all(|&e| e <= limit);
        let out_of_room = basis.m == basis.applied && basis.m == p; // nothing left to add: exact
        let out_of_budget = basis.products >= max_products;
        let mut report = estimate.clone();
        let mut finished = false;
        let mut sk = None;
        if all_met || out_of_room || out_of_budget {
            // The true residuals from the stored products: R = Sₖᵀ W − Θ Sₖᵀ Q.
            let s_up = upload_rows(b, &s, kk, None)?;
            let ts_up = upload_rows(b, &s, kk, Some(&theta))?;
            b.gemm(
                false, false, kk, p, m, 1.0, &s_up, 0, &basis.w, 0, 0.0, &mut resid, 0,
            )?;
            b.gemm(
                false, false, kk, p, m, -1.0, &ts_up, 0, &basis.q, 0, 1.0, &mut resid, 0,
            )?;
            report = b.row_norms(&resid, 0, kk, p)?;
            finished =
                (kk == k && report.iter().all(|&x| x <= limit)) || out_of_room || out_of_budget;
            sk = Some(s_up);
        }
        progress(&Progress {
            products: basis.products,
            basis: m,
            converged: report.iter().filter(|&&x| x <= limit).count(),
            k,
            worst_relative_residual: report.iter().fold(0.0f64, |a, &x| a.max(x)) / scale,
        });
        if finished {
            let s_up = match sk {
                Some(x) => x,
                None => upload_rows(b, &s, kk, None)?,
            };
            let mut vectors = b.zeros(kk * p)?;
            b.gemm(
                false,
                false,
                kk,
                p,
                m,
                1.0,
                &s_up,
                0,
                &basis.q,
                0,
                0.0,
                &mut vectors,
                0,
            )?;
            return Ok(EigResult {
                values: theta[..kk].to_vec(),
                converged: kk == k && report.iter().all(|&x| x <= limit),
                residuals: report,
                vectors,
                dim: p,
                products: basis.products,
                scale,
            });
        }
        if cap < p && basis.m + block > cap {
            // Thick restart: keep the leading Ritz vectors (Q ← SᵀQ, W ← SᵀW, T ← Θ) and the
            // pending block, whose coupling to them the next step recomputes.
            let keep = ((cap + k) / 2).min(m).max(k.min(m)).min(cap - 2 * block);
            let pending = basis.m - basis.applied;
            let s_up = upload_rows(b, &s, keep, None)?;
            b.gemm(
                false,
                false,
                keep,
                p,
                m,
                1.0,
                &s_up,
                0,
                &basis.q,
                0,
                0.0,
                &mut scratch,
                0,
            )?;
            // Move the pending vectors down behind the kept ones, then the kept ones in.
            for j in 0..pending {
                let (src, dst) = ((m + j) * p, (keep + j) * p);
                b.copy(&basis.q, src, &mut basis.cand, 0, p)?;
                b.copy(&basis.cand, 0, &mut basis.q, dst, p)?;
            }
            b.copy(&scratch, 0, &mut basis.q, 0, keep * p)?;
            b.gemm(
                false,
                false,
                keep,
                p,
                m,
                1.0,
                &s_up,
                0,
                &basis.w,
                0,
                0.0,
                &mut scratch,
                0,
            )?;
            b.copy(&scratch, 0, &mut basis.w, 0, keep * p)?;
            basis.t.fill(0.0);
            for (i, &th) in theta.iter().enumerate().take(keep) {
                basis.t[(i, i)] = th;
            }
            basis.applied = keep;
            basis.m = keep + pending;
        }
        if basis.m == basis.applied && !add_random(&mut basis)? {
            // An invariant subspace and no independent direction left to add.
            return Err(Error::Backend(
                "Lanczos: the basis cannot be extended (dimension exhausted)".into(),
            ));
        }
    }
}
