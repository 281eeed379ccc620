//! Eigen-solvers for symmetric linear operators given only as products (the Hessian through
//! HVPs), the choice of solver for warm solves, and the subspace helpers the experiments need.

pub mod block;
pub mod caveats;
pub mod krylov;
pub mod lanczos;
pub mod layers;
pub mod power;
pub mod probe;
pub mod slq;
pub mod subspace;
pub mod trace;

/// The eigensolver of a warm solve (the previous step's eigenvectors at hand).
///
/// Lanczos is the default because it is the faster one wherever it was measured (`bench` times
/// both in one run): a single-vector Krylov space of dimension m holds polynomials of degree m − 1
/// in H, a block one of b rows only degree m/b − 1, so the block method needs more HVPs for the
/// same tolerance (fc-tanh on MNIST-5k from initialisation: 30 HVPs per Dom-SGD step against 21;
/// times and counts in BENCHMARKS.md, "One Dom-SGD step"). Lanczos also synchronises less, since
/// its orthogonalisation reads back once per HVP. The block solver does one pass over the data per
/// iteration for all its directions
/// ([`Engine::hvp_block`](crate::nn::engine::Engine::hvp_block)), which pays where an HVP
/// recomputes its chunks' forward and backward passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmSolver {
    /// Single-vector Lanczos from the sum of the previous eigenvectors
    /// ([`lanczos`](crate::hessian::lanczos::lanczos)).
    #[default]
    Lanczos,
    /// Block Davidson from the previous eigenvectors as one block
    /// ([`block_davidson`](crate::hessian::block::block_davidson)), one block HVP per iteration;
    /// falls back to Lanczos when its product budget runs out.
    Block,
}

impl WarmSolver {
    /// Lanczos, the default (a spec leaves it out).
    pub fn is_default(&self) -> bool {
        *self == WarmSolver::Lanczos
    }
}

use crate::backend::{Backend, Mat, MatMut};
use crate::error::Result;

/// A symmetric linear operator y = A x on vectors of length `dim`, stored in backend buffers at
/// element offsets.
pub trait Operator<B: Backend> {
    fn dim(&self) -> usize;
    fn apply(&mut self, x: &B::Buf, x_off: usize, y: &mut B::Buf, y_off: usize) -> Result<()>;
    /// Y = A X for a block of `rows` vectors: rows of length `dim` at `x_off + r·dim` and
    /// `y_off + r·dim`. The default applies the operator row by row; an operator with a cheaper
    /// block product (the engine's block HVP: one pass over the data for all rows) overrides it.
    fn apply_block(
        &mut self,
        x: &B::Buf,
        x_off: usize,
        rows: usize,
        y: &mut B::Buf,
        y_off: usize,
    ) -> Result<()> {
        let n = self.dim();
        for r in 0..rows {
            self.apply(x, x_off + r * n, y, y_off + r * n)?;
        }
        Ok(())
    }
}

/// A dense symmetric matrix (row-major, n×n) held on a backend: the test operator.
pub struct DenseOperator<B: Backend> {
    backend: B,
    n: usize,
    a: B::Buf,
}

impl<B: Backend> DenseOperator<B> {
    pub fn new(backend: B, n: usize, a: &[f64]) -> Result<Self> {
        if a.len() != n * n {
            return Err(crate::error::Error::Shape(format!(
                "dense operator: {} entries for {n}×{n}",
                a.len()
            )));
        }
        let a = backend.upload(a)?;
        Ok(DenseOperator { backend, n, a })
    }
}

impl<B: Backend> Operator<B> for DenseOperator<B> {
    fn dim(&self) -> usize {
        self.n
    }
    fn apply(&mut self, x: &B::Buf, x_off: usize, y: &mut B::Buf, y_off: usize) -> Result<()> {
        self.backend.gemm(
            Mat::new(&self.a, 0, self.n, self.n),
            Mat::new(x, x_off, self.n, 1),
            MatMut::new(y, y_off, self.n, 1),
            1.0,
            0.0,
        )
    }
}

/// The dense matrix of an operator, column by column (n products): for tests on tiny nets.
pub fn dense_matrix<B: Backend, O: Operator<B>>(backend: &B, op: &mut O) -> Result<Vec<f64>> {
    let n = op.dim();
    let mut e = backend.zeros(n)?;
    let mut col = backend.zeros(n)?;
    let mut m = vec![0.0; n * n];
    for j in 0..n {
        backend.fill(&mut e, 0, n, 0.0)?;
        backend.fill(&mut e, j, 1, 1.0)?;
        op.apply(&e, 0, &mut col, 0)?;
        let c = backend.download(&col)?;
        for i in 0..n {
            m[i * n + j] = c[i];
        }
    }
    Ok(m)
}
