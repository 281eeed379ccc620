//! Top-k eigenpairs of a symmetric operator by a thick-restart **block Davidson** method with soft
//! locking, warm-started from a block of earlier eigenvectors: the solver of the per-step spectra
//! (S_k is recomputed at every step of a run, from the previous step's vectors).
//!
//! The basis V (orthonormal rows) and AV are kept as two row-major `cap × dim` buffers, and the
//! projected matrix T = V A Vᵀ on the host. Each iteration takes the Ritz pairs (θ_i, y_i = S_iᵀ V)
//! of T, forms their **true residuals** r_i = S_iᵀ AV − θ_i S_iᵀ V from the stored products (no
//! extra operator applications), and stops when every one of the top k satisfies
//! ‖r_i‖ ≤ tol · max|θ| (the same test as [`super::lanczos::lanczos`]). Otherwise the residuals of
//! the pairs that have not converged — and only those (soft locking: a converged pair adds no
//! direction and costs no product) — are orthonormalised against V (two classical Gram–Schmidt
//! passes, each one batched product, then a symmetric orthonormalisation of the new rows from
//! their Gram matrix that drops directions already in the span) and applied to the operator as
//! **one block product** ([`Operator::apply_block`]: the engine's block HVP, one pass over the
//! data). Without a preconditioner the residual directions extend V exactly as block Lanczos
//! extends its Krylov space (A y − θ y ∈ span(V, A V)), so this is block Lanczos with the
//! converged directions left out. When V is full, a thick restart keeps the leading Ritz vectors.
//!
//! Warm start: the rows of the previous solve's vectors form the first block. When they still
//! meet the tolerance (a small step moves the top eigenvectors little) the solve ends after that one
//! block product: `rows` products, the cheap exit. A cold start uses `max(k, block)` seeded random
//! rows.
//!
//! What it does not do: certify the set against missed copies of a repeated eigenvalue (the
//! single-vector [`super::lanczos::lanczos`] does, and remains the reference and the cold-start
//! solver). A block of r rows resolves multiplicities up to r; an eigenvector with no component in
//! the warm block and the residuals is not found, as in any Krylov method from that start.
//! `certified` is true only when the basis spans the whole space. Reference: Y. Saad, *Numerical
//! Methods for Large Eigenvalue Problems* (2nd ed., 2011), §8.3 (Davidson), §6.3.3 (block
//! Lanczos) and §11.2 (thick restart); Stathopoulos & McCombs, PRIMME (soft locking).

use super::Operator;
use super::lanczos::{
    EigResult, LanczosOptions, basis_cap, check_k_tol, product_budget, random_vector, sorted_eigen,
    take_or_zeros, write_rows,
};
use crate::backend::{Backend, Mat, MatMut};
use crate::error::{Error, Result};
use nalgebra::DMatrix;

/// The k largest eigenpairs of `op` by block Davidson (module documentation). `opts`: `k`, `tol`
/// (every residual ≤ tol·max|θ|), `max_basis` (0: max(3k, k + 50), at least 2k, capped at dim),
/// `max_products` (0: 50·k + 500), `block` (rows of a cold start, at least k) and `seed` are used;
/// `verify` is not (see [`super::lanczos::lanczos`] for a certified solve). `warm`: a buffer whose
/// first `rows` rows (each of length dim) start the basis. Returns the pairs, largest first, with
/// their true residuals; `converged` false when the product budget ran out first.
///
/// Errors: k = 0 or k > dim, a non-positive tolerance, a warm range outside its buffer, a
/// non-finite product or projected matrix (diverged parameters), the backend's.
pub fn block_davidson<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    opts: &LanczosOptions,
    warm: Option<(&B::Buf, usize)>,
) -> Result<EigResult<B>> {
    block_davidson_with(b, op, opts, warm, &mut BlockWork::default())
}

/// The buffers of a block Davidson solve (the basis V and AV, scratch, the candidate block, the
/// coefficients, residuals, the Ritz coefficient rows, the next result's vectors), kept between
/// solves of the same dimension, k and basis size — every step of a run — so that a warm solve
/// creates no buffer ([`LanczosWork`](super::lanczos::LanczosWork) likewise). Reused buffers are
/// not cleared: the solver writes every element before it reads it.
pub struct BlockWork<B: Backend> {
    key: (usize, usize, usize),
    bufs: Vec<Option<B::Buf>>,
    spare: Option<B::Buf>,
}

impl<B: Backend> Default for BlockWork<B> {
    fn default() -> Self {
        BlockWork {
            key: (0, 0, 0),
            bufs: Vec::new(),
            spare: None,
        }
    }
}

impl<B: Backend> BlockWork<B> {
    /// Hand back a result's vectors that are no longer needed: the next solve writes its vectors
    /// there.
    pub fn recycle(&mut self, vectors: B::Buf) {
        self.spare = Some(vectors);
    }
    /// Buffer `i` of at least… exactly `len` elements, reused when it has that length.
    fn take(&mut self, b: &B, i: usize, len: usize) -> Result<B::Buf> {
        if self.bufs.len() <= i {
            self.bufs.resize_with(i + 1, || None);
        }
        take_or_zeros(b, &mut self.bufs[i], len)
    }
}

// The slots of [`BlockWork::bufs`].
const V: usize = 0;
const AV: usize = 1;
const SCRATCH: usize = 2;
const NEW: usize = 3;
const COEF: usize = 4;
const RESID: usize = 5;
const S_UP: usize = 6;
const TS_UP: usize = 7;
const ORTH: usize = 8;

/// [`block_davidson`] with its buffers taken from (and returned to) `work`.
pub fn block_davidson_with<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    opts: &LanczosOptions,
    warm: Option<(&B::Buf, usize)>,
    work: &mut BlockWork<B>,
) -> Result<EigResult<B>> {
    let (p, k) = (op.dim(), opts.k);
    let (mut s, mut seed) = Solver::start(b, op, opts, warm, work)?;
    let max_products = product_budget(opts);
    let mut warnings = Vec::new();
    let mut resid = work.take(b, RESID, k * p)?;
    let mut ts_up = work.take(b, TS_UP, s.cap * s.cap)?;
    loop {
        let (theta, vecs) = s.ritz()?;
        let kx = k.min(s.nv);
        let scale = theta
            .iter()
            .fold(0.0f64, |a, &x| a.max(x.abs()))
            .max(f64::MIN_POSITIVE);
        let limit = opts.tol * scale;
        let norms = s.residuals(b, &vecs, &theta, kx, &mut resid, &mut ts_up)?;
        let met = kx == k && norms.iter().all(|&x| x <= limit);
        let whole = s.nv == p;
        let active: Vec<usize> = (0..kx).filter(|&i| norms[i] > limit).collect();
        let out_of_budget = s.products + active.len().max(1) > max_products;
        if met || whole || out_of_budget {
            if !(met || whole) {
                warnings.push(format!(
                    "block Davidson: the budget of {max_products} products ran out before the top {k} met the tolerance (worst relative residual {:.2e})",
                    norms.iter().fold(0.0f64, |a, &x| a.max(x)) / scale
                ));
            }
            let vectors = s.vectors(b, kx, work)?;
            let products = s.products;
            s.give_back(work, resid, ts_up);
            return Ok(EigResult {
                values: theta[..kx].to_vec(),
                residuals: norms,
                vectors,
                dim: p,
                products,
                converged: kx == k && (met || whole),
                scale,
                certified: whole,
                warnings,
                ridden: None,
            });
        }
        // Room for the new block: a thick restart on the leading Ritz vectors.
        let cap = s.cap;
        if s.nv + active.len() > cap {
            let keep = (cap - active.len()).max(kx).min(s.nv);
            s.restart(b, &vecs, &theta, keep)?;
        }
        s.extend_by_residuals(b, op, &resid, &norms, &active, &mut seed)?;
    }
}

impl<B: Backend> Solver<B> {
    /// Check the arguments, take the buffers from `work` and apply the operator to the first
    /// block: the warm rows (at most cap), then seeded random rows up to k (warm) or
    /// max(k, block) (cold). Returns the solver and the seed of the last random row.
    fn start<O: Operator<B>>(
        b: &B,
        op: &mut O,
        opts: &LanczosOptions,
        warm: Option<(&B::Buf, usize)>,
        work: &mut BlockWork<B>,
    ) -> Result<(Self, u64)> {
        let p = op.dim();
        let k = opts.k;
        check_k_tol(opts, p)?;
        let cap = basis_cap(k, opts.max_basis, 2 * k, p);
        let warm_rows = match warm {
            Some((w, r)) => {
                crate::backend::check_range("warm start", b.len(w), 0, r * p)?;
                r.min(cap)
            }
            None => 0,
        };
        let want_rows = if warm.is_some() {
            k
        } else {
            k.max(opts.block).min(cap)
        };
        if work.key != (p, k, cap) {
            *work = BlockWork {
                key: (p, k, cap),
                ..BlockWork::default()
            };
        }
        // The candidate block: the start (warm rows or random ones), then at most k residuals.
        let new_rows = warm_rows.max(want_rows).max(k);
        let mut s = Solver {
            p,
            cap,
            nv: 0,
            v: work.take(b, V, cap * p)?,
            av: work.take(b, AV, cap * p)?,
            scratch: work.take(b, SCRATCH, cap * p)?,
            new: work.take(b, NEW, new_rows * p)?,
            coef: work.take(b, COEF, cap * cap.max(new_rows))?,
            orth: work.take(b, ORTH, new_rows * new_rows)?,
            s_up: work.take(b, S_UP, cap * cap)?,
            t: DMatrix::zeros(cap, cap),
            products: 0,
            drop_tol: b.precision().eps().sqrt(),
        };
        let mut rows = warm_rows;
        if let Some((w, _)) = warm {
            b.copy(w, 0, &mut s.new, 0, rows * p)?;
        }
        let mut seed = opts.seed;
        while rows < want_rows {
            seed = seed.wrapping_add(1);
            let x = b.upload(&random_vector(p, seed))?;
            b.copy(&x, 0, &mut s.new, rows * p, p)?;
            rows += 1;
        }
        let norms = b.row_norms(&s.new, 0, rows, p)?;
        s.extend(b, op, &norms)?;
        Ok((s, seed))
    }

    /// The true residuals R = Sₖᵀ AV − Θ Sₖᵀ V of the top `kx` Ritz pairs from the stored
    /// products, into `resid`; returns their norms.
    fn residuals(
        &mut self,
        b: &B,
        vecs: &DMatrix<f64>,
        theta: &[f64],
        kx: usize,
        resid: &mut B::Buf,
        ts_up: &mut B::Buf,
    ) -> Result<Vec<f64>> {
        let (p, nv) = (self.p, self.nv);
        write_rows(b, vecs, kx, None, &mut self.s_up)?;
        write_rows(b, vecs, kx, Some(theta), ts_up)?;
        b.gemm(
            Mat::new(&self.s_up, 0, kx, nv),
            Mat::new(&self.av, 0, nv, p),
            MatMut::new(resid, 0, kx, p),
            1.0,
            0.0,
        )?;
        b.gemm(
            Mat::new(ts_up, 0, kx, nv),
            Mat::new(&self.v, 0, nv, p),
            MatMut::new(resid, 0, kx, p),
            -1.0,
            1.0,
        )?;
        b.row_norms(resid, 0, kx, p)
    }

    /// The top `kx` Ritz vectors Y = S V (the rows of the last [`Solver::residuals`]), written
    /// into the workspace's spare buffer.
    fn vectors(&self, b: &B, kx: usize, work: &mut BlockWork<B>) -> Result<B::Buf> {
        let (p, nv) = (self.p, self.nv);
        let mut vectors = take_or_zeros(b, &mut work.spare, kx * p)?;
        b.gemm(
            Mat::new(&self.s_up, 0, kx, nv),
            Mat::new(&self.v, 0, nv, p),
            MatMut::new(&mut vectors, 0, kx, p),
            1.0,
            0.0,
        )?;
        Ok(vectors)
    }

    /// The buffers back to the workspace for the next solve.
    fn give_back(self, work: &mut BlockWork<B>, resid: B::Buf, ts_up: B::Buf) {
        for (i, x) in [
            (V, self.v),
            (AV, self.av),
            (SCRATCH, self.scratch),
            (NEW, self.new),
            (COEF, self.coef),
            (ORTH, self.orth),
            (S_UP, self.s_up),
            (RESID, resid),
            (TS_UP, ts_up),
        ] {
            work.bufs[i] = Some(x);
        }
    }

    /// Extend the basis by the residuals of the `active` pairs (those not yet converged),
    /// normalised; when every one lies in the span to working precision (the accuracy floor), by
    /// a random direction instead. Errors: no direction left (dimension exhausted).
    fn extend_by_residuals<O: Operator<B>>(
        &mut self,
        b: &B,
        op: &mut O,
        resid: &B::Buf,
        norms: &[f64],
        active: &[usize],
        seed: &mut u64,
    ) -> Result<()> {
        let p = self.p;
        let mut nrm = Vec::with_capacity(active.len());
        for (j, &i) in active.iter().enumerate() {
            b.copy(resid, i * p, &mut self.new, j * p, p)?;
            nrm.push(norms[i]);
        }
        let before = self.nv;
        self.extend(b, op, &nrm)?;
        if self.nv == before {
            // Go on from a random direction, or stop when there is none.
            *seed = seed.wrapping_add(1);
            let x = b.upload(&random_vector(p, *seed))?;
            b.copy(&x, 0, &mut self.new, 0, p)?;
            let n = b.norm(&self.new, 0, p)?;
            self.extend(b, op, &[n])?;
            if self.nv == before {
                return Err(Error::Backend(
                    "block Davidson: the basis cannot be extended (dimension exhausted)".into(),
                ));
            }
        }
        Ok(())
    }
}

struct Solver<B: Backend> {
    p: usize,
    cap: usize,
    /// Rows of V (and AV) in use.
    nv: usize,
    v: B::Buf,
    av: B::Buf,
    scratch: B::Buf,
    /// Candidate rows to add (the start block, then residuals).
    new: B::Buf,
    coef: B::Buf,
    /// The candidates' orthonormalising matrix (kept × rows).
    orth: B::Buf,
    /// Ritz coefficient rows (≤ cap × cap).
    s_up: B::Buf,
    /// T = V A Vᵀ (the leading nv × nv block).
    t: DMatrix<f64>,
    products: usize,
    drop_tol: f64,
}

impl<B: Backend> Solver<B> {
    /// Orthonormalise the first `norms.len()` rows of `new` (with those norms) against V and
    /// among themselves, append what is left to V, apply the operator to it as one block and
    /// extend T.
    fn extend<O: Operator<B>>(&mut self, b: &B, op: &mut O, norms: &[f64]) -> Result<()> {
        let p = self.p;
        let mut rows = 0;
        for (r, &n) in norms.iter().enumerate() {
            if !n.is_finite() {
                return Err(Error::NonFinite(
                    "block Davidson: a start or residual vector is not finite".into(),
                ));
            }
            if n > 0.0 {
                if rows != r {
                    let (src, dst) = (r * p, rows * p);
                    b.copy(&self.new, src, &mut self.scratch, 0, p)?;
                    b.copy(&self.scratch, 0, &mut self.new, dst, p)?;
                }
                b.scale(1.0 / n, &mut self.new, rows * p, p)?;
                rows += 1;
            }
        }
        rows = rows.min(self.cap - self.nv);
        for _ in 0..2 {
            rows = self.orthonormalise(b, rows)?;
            if rows == 0 {
                return Ok(());
            }
        }
        let (nv, m) = (self.nv, self.nv + rows);
        b.copy(&self.new, 0, &mut self.v, nv * p, rows * p)?;
        op.apply_block(&self.v, nv * p, rows, &mut self.av, nv * p)?;
        self.products += rows;
        if !b.all_finite(&self.av, nv * p, rows * p)? {
            return Err(Error::NonFinite(
                "block Davidson: the operator returned NaN/Inf (diverged parameters?)".into(),
            ));
        }
        // New columns of T: V[0..m] · AV[nv..m]ᵀ (m × rows).
        b.gemm(
            Mat::new(&self.v, 0, m, p),
            Mat::new(&self.av, nv * p, rows, p).t(),
            MatMut::new(&mut self.coef, 0, m, rows),
            1.0,
            0.0,
        )?;
        let c = b.download_range(&self.coef, 0, m * rows)?;
        for i in 0..m {
            for j in 0..rows {
                let x = if i >= nv {
                    // Within the new block: symmetrise.
                    0.5 * (c[i * rows + j] + c[(nv + j) * rows + (i - nv)])
                } else {
                    c[i * rows + j]
                };
                self.t[(i, nv + j)] = x;
                self.t[(nv + j, i)] = x;
            }
        }
        self.nv = m;
        Ok(())
    }

    /// One pass: project the first `rows` rows of `new` off V, then make them orthonormal among
    /// themselves from their Gram matrix G = E D Eᵀ (rows ← D^{-1/2} Eᵀ rows), dropping the
    /// directions with d ≤ drop_tol² · max(1, max d) (already in the span). Returns the rows kept.
    fn orthonormalise(&mut self, b: &B, rows: usize) -> Result<usize> {
        let (p, nv) = (self.p, self.nv);
        if rows == 0 {
            return Ok(0);
        }
        if nv > 0 {
            // C = N Vᵀ; N ← N − C V.
            b.gemm(
                Mat::new(&self.new, 0, rows, p),
                Mat::new(&self.v, 0, nv, p).t(),
                MatMut::new(&mut self.coef, 0, rows, nv),
                1.0,
                0.0,
            )?;
            b.gemm(
                Mat::new(&self.coef, 0, rows, nv),
                Mat::new(&self.v, 0, nv, p),
                MatMut::new(&mut self.new, 0, rows, p),
                -1.0,
                1.0,
            )?;
        }
        b.gemm(
            Mat::new(&self.new, 0, rows, p),
            Mat::new(&self.new, 0, rows, p).t(),
            MatMut::new(&mut self.coef, 0, rows, rows),
            1.0,
            0.0,
        )?;
        let g = b.download_range(&self.coef, 0, rows * rows)?;
        let g = DMatrix::from_fn(rows, rows, |i, j| 0.5 * (g[i * rows + j] + g[j * rows + i]));
        if g.iter().any(|x| !x.is_finite()) {
            return Err(Error::NonFinite(
                "block Davidson: a new direction is not finite".into(),
            ));
        }
        let eig = nalgebra::SymmetricEigen::new(g);
        let top = eig.eigenvalues.iter().fold(1.0f64, |a, &d| a.max(d));
        let floor = self.drop_tol * self.drop_tol * top;
        let mut order: Vec<usize> = (0..rows).filter(|&i| eig.eigenvalues[i] > floor).collect();
        order.sort_by(|&i, &j| eig.eigenvalues[j].total_cmp(&eig.eigenvalues[i]));
        let kept = order.len().min(self.cap - nv);
        if kept == 0 {
            return Ok(0);
        }
        let mut m = Vec::with_capacity(kept * rows);
        for &i in &order[..kept] {
            let s = 1.0 / eig.eigenvalues[i].sqrt();
            m.extend(eig.eigenvectors.column(i).iter().map(|x| x * s));
        }
        b.write(&mut self.orth, 0, &m)?;
        b.gemm(
            Mat::new(&self.orth, 0, kept, rows),
            Mat::new(&self.new, 0, rows, p),
            MatMut::new(&mut self.scratch, 0, kept, p),
            1.0,
            0.0,
        )?;
        b.copy(&self.scratch, 0, &mut self.new, 0, kept * p)?;
        Ok(kept)
    }

    /// Ritz pairs of T, largest first: (values, eigenvectors of T as columns).
    fn ritz(&self) -> Result<(Vec<f64>, DMatrix<f64>)> {
        let m = self.nv;
        let t = self.t.view((0, 0), (m, m)).into_owned();
        if t.iter().any(|x| !x.is_finite()) {
            return Err(Error::NonFinite(
                "block Davidson: the projected matrix is not finite".into(),
            ));
        }
        Ok(sorted_eigen(t))
    }

    /// Thick restart on the leading `keep` Ritz vectors: V ← SᵀV, AV ← SᵀAV, T ← Θ.
    fn restart(&mut self, b: &B, s: &DMatrix<f64>, theta: &[f64], keep: usize) -> Result<()> {
        let (p, m) = (self.p, self.nv);
        write_rows(b, s, keep, None, &mut self.s_up)?;
        for x in [&mut self.v, &mut self.av] {
            b.gemm(
                Mat::new(&self.s_up, 0, keep, m),
                Mat::new(x, 0, m, p),
                MatMut::new(&mut self.scratch, 0, keep, p),
                1.0,
                0.0,
            )?;
            b.copy(&self.scratch, 0, x, 0, keep * p)?;
        }
        self.t.fill(0.0);
        for (i, &th) in theta.iter().enumerate().take(keep) {
            self.t[(i, i)] = th;
        }
        self.nv = keep;
        Ok(())
    }
}
