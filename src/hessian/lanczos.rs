//! Top-k eigenpairs of a symmetric operator by Lanczos with full reorthogonalisation, thick
//! restarts and an optional warm start from a block of vectors.
//!
//! The basis Q (orthonormal rows) and W = A·Q are kept as two row-major `m × dim` buffers, so the
//! projected matrix T = Qᵀ A Q, the reorthogonalisation (two classical Gram–Schmidt passes, each one
//! batched matrix–vector product against the whole basis) and the Ritz residuals
//! R = Sᵀ W − Θ Sᵀ Q are all GEMMs on the backend. Because W holds the products the solver really
//! computed, every reported residual is the true ‖A y − θ y‖ of the returned pair, obtained without
//! extra products.
//!
//! Expansion: the next basis vector is the residual of an unconverged Ritz pair. From a single
//! start vector all Ritz residuals are parallel to the next Lanczos vector, so this *is* Lanczos
//! (T comes out tridiagonal up to round-off; it is solved as a dense symmetric matrix by nalgebra
//! because thick restarts make it arrowhead). With `block = b > 1` the start is b vectors and each
//! step adds the residuals of b unconverged pairs, which span the next block-Krylov block: block
//! Lanczos, which resolves repeated eigenvalues up to multiplicity b — a single-vector Krylov
//! space holds one copy of a repeated eigenvalue only. A warm start (the previous step's
//! eigenvectors) replaces the random start vector by their sum.

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
    m: usize,
    q: B::Buf,
    w: B::Buf,
    t: DMatrix<f64>,
    coef: B::Buf,
    cand: B::Buf,
    products: usize,
    drop_tol: f64,
}

impl<B: Backend> Basis<B> {
    /// Orthogonalise `cand` against the basis (two passes), and if it is not (numerically) in the
    /// span already, append it, apply the operator and extend T. Returns whether it was added.
    fn push<O: Operator<B>>(&mut self, b: &B, op: &mut O) -> Result<bool> {
        let (p, m) = (self.dim, self.m);
        let n0 = b.norm(&self.cand, 0, p)?;
        if !n0.is_finite() {
            return Err(Error::NonFinite(
                "Lanczos: candidate vector is not finite".into(),
            ));
        }
        if n0 == 0.0 || m >= self.cap {
            return Ok(false);
        }
        b.scale(1.0 / n0, &mut self.cand, 0, p)?;
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
        }
        let n1 = b.norm(&self.cand, 0, p)?;
        if n1 <= self.drop_tol {
            return Ok(false);
        }
        b.scale(1.0 / n1, &mut self.cand, 0, p)?;
        b.copy(&self.cand, 0, &mut self.q, m * p, p)?;
        op.apply(&self.q, m * p, &mut self.w, m * p)?;
        self.products += 1;
        if !b.all_finite(&self.w, m * p, p)? {
            return Err(Error::NonFinite(
                "Lanczos: the operator returned NaN/Inf (diverged parameters?)".into(),
            ));
        }
        // Column m of T: Q[0..=m] · W[m].
        b.gemm(
            false,
            false,
            m + 1,
            1,
            p,
            1.0,
            &self.q,
            0,
            &self.w,
            m * p,
            0.0,
            &mut self.coef,
            0,
        )?;
        let c = b.download(&self.coef)?;
        for (i, &ci) in c.iter().enumerate().take(m + 1) {
            self.t[(i, m)] = ci;
            self.t[(m, i)] = ci;
        }
        self.m += 1;
        Ok(true)
    }

    /// Ritz pairs of the current basis, largest first: (values, eigenvectors of T as columns).
    fn ritz(&self) -> (Vec<f64>, DMatrix<f64>) {
        let m = self.m;
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
/// dim) start the basis — e.g. the previous step's eigenvectors.
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
    let block = opts.block.max(1);
    let cap = if opts.max_basis == 0 {
        (3 * k).max(k + 50)
    } else {
        opts.max_basis
    }
    .min(p)
    .max(k.min(p));
    if cap < (k + block).min(p) {
        return Err(Error::InvalidArgument(format!(
            "max_basis {cap} is below k + block = {}",
            k + block
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
        q: b.zeros(cap * p)?,
        w: b.zeros(cap * p)?,
        t: DMatrix::zeros(cap, cap),
        coef: b.zeros(cap)?,
        cand: b.zeros(p)?,
        products: 0,
        drop_tol: b.precision().eps().sqrt(),
    };
    let mut resid = b.zeros(k * p)?;
    let mut scratch = b.zeros(cap * p)?;
    let mut seed = opts.seed;
    if let Some((w, rows)) = warm {
        // Start from the sum of the given vectors: a Krylov space of dimension r built on the
        // sum of r (near-)eigenvectors contains them (nearly), so the old subspace is recovered in
        // about r products and Lanczos then refines it at its usual rate. (Measured: cheaper than
        // starting from the r vectors as a block, which spends r products per block step.)
        crate::backend::check_range("warm start", b.len(w), 0, rows * p)?;
        b.fill(&mut basis.cand, 0, p, 0.0)?;
        for r in 0..rows {
            let nr = b.norm(w, r * p, p)?;
            if nr > 0.0 && nr.is_finite() {
                b.axpy(1.0 / nr, w, r * p, &mut basis.cand, 0, p)?;
            }
        }
        basis.push(b, op)?;
    }
    while basis.m < block {
        seed = seed.wrapping_add(1);
        basis.cand = b.upload(&random_vector(p, seed))?;
        if !basis.push(b, op)? {
            break;
        }
    }
    loop {
        let m = basis.m;
        let (theta, s) = basis.ritz();
        let kk = k.min(m);
        let scale = theta
            .iter()
            .fold(0.0f64, |a, &x| a.max(x.abs()))
            .max(f64::MIN_POSITIVE);
        // R = Sₖᵀ W − Θ Sₖᵀ Q.
        let sk = upload_rows(b, &s, kk, None)?;
        let tsk = upload_rows(b, &s, kk, Some(&theta))?;
        b.gemm(
            false, false, kk, p, m, 1.0, &sk, 0, &basis.w, 0, 0.0, &mut resid, 0,
        )?;
        b.gemm(
            false, false, kk, p, m, -1.0, &tsk, 0, &basis.q, 0, 1.0, &mut resid, 0,
        )?;
        let res = b.row_norms(&resid, 0, kk, p)?;
        let limit = opts.tol * scale;
        let mut unconverged: Vec<usize> = (0..kk).filter(|&i| res[i] > limit).collect();
        let converged_count = kk - unconverged.len();
        progress(&Progress {
            products: basis.products,
            basis: m,
            converged: converged_count,
            k,
            worst_relative_residual: res.iter().fold(0.0f64, |a, &r| a.max(r)) / scale,
        });
        let done = kk == k && unconverged.is_empty();
        let exhausted = m == p && kk == k; // the basis spans everything: exact
        if done || exhausted || basis.products >= max_products {
            let mut vectors = b.zeros(kk * p)?;
            b.gemm(
                false,
                false,
                kk,
                p,
                m,
                1.0,
                &sk,
                0,
                &basis.q,
                0,
                0.0,
                &mut vectors,
                0,
            )?;
            return Ok(EigResult {
                values: theta[..kk].to_vec(),
                residuals: res.clone(),
                vectors,
                dim: p,
                products: basis.products,
                converged: kk == k && res.iter().all(|&r| r <= limit),
                scale,
            });
        }
        // Expand with the residuals of the unconverged pairs, largest residual first.
        unconverged.sort_by(|&i, &j| res[j].total_cmp(&res[i]));
        let width = block.min(unconverged.len().max(1));
        if m + width > cap {
            // Thick restart: keep the leading Ritz vectors (Q ← SᵀQ, W ← SᵀW, T ← Θ).
            let keep = ((cap + k) / 2).min(m).max(k.min(m)).min(cap - width);
            let sk = upload_rows(b, &s, keep, None)?;
            b.gemm(
                false,
                false,
                keep,
                p,
                m,
                1.0,
                &sk,
                0,
                &basis.q,
                0,
                0.0,
                &mut scratch,
                0,
            )?;
            b.copy(&scratch, 0, &mut basis.q, 0, keep * p)?;
            b.gemm(
                false,
                false,
                keep,
                p,
                m,
                1.0,
                &sk,
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
            basis.m = keep;
        }
        let mut added = 0;
        for &i in unconverged.iter().take(width) {
            b.copy(&resid, i * p, &mut basis.cand, 0, p)?;
            if basis.push(b, op)? {
                added += 1;
            }
        }
        if added == 0 {
            // An invariant subspace (or all top-k pairs converged with fewer than k vectors):
            // continue from a fresh random direction.
            seed = seed.wrapping_add(1);
            basis.cand = b.upload(&random_vector(p, seed))?;
            if !basis.push(b, op)? && basis.m >= p.min(cap) {
                return Err(Error::Backend(
                    "Lanczos: the basis cannot be extended (dimension exhausted)".into(),
                ));
            }
        }
    }
}
