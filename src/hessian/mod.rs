//! Eigen-solvers for symmetric linear operators given only as products (the Hessian through
//! HVPs), and the subspace helpers the experiments need.

pub mod block;
pub mod caveats;
pub mod lanczos;
pub mod power;
pub mod subspace;

use crate::backend::Backend;
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
            false, false, self.n, 1, self.n, 1.0, &self.a, 0, x, x_off, 0.0, y, y_off,
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
