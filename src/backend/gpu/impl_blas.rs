//! The [`Blas`] family on the GPU: argument checks, then the kernels of `blas` and the
//! reductions of `recorder`.

use super::{GpuBackend, GpuBuf, GpuInput, blas, recorder};
use crate::backend::{Batch, Blas, InputRows, Mat, MatMut, Ten, TenMut, check_range};
use crate::error::Result;

impl Blas for GpuBackend {
    type Input = GpuInput;

    fn input(&self, x: &[f64], rows: usize, cols: usize) -> Result<GpuInput> {
        blas::input(self, x, rows, cols)
    }

    fn input_write(&self, x: &mut GpuInput, data: &[f64], rows: usize, cols: usize) -> Result<()> {
        recorder::input_write(self, x, data, rows, cols)
    }

    fn input_gemm_nt(
        &self,
        x: InputRows<Self>,
        b: Mat<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        blas::input_gemm_nt(self, x, b, out, alpha, beta)
    }

    fn input_gemm_tn(
        &self,
        g: Mat<Self>,
        x: InputRows<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        blas::input_gemm_tn(self, g, x, out, alpha, beta)
    }

    fn input_gemm_nt_batched(
        &self,
        x: InputRows<Self>,
        b: Mat<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
        batch: Batch,
    ) -> Result<()> {
        blas::input_gemm_nt_batched(self, x, b, out, alpha, beta, batch)
    }

    fn input_gemm_tn_batched(
        &self,
        g: Mat<Self>,
        x: InputRows<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
        batch: Batch,
    ) -> Result<()> {
        blas::input_gemm_tn_batched(self, g, x, out, alpha, beta, batch)
    }

    fn gemm(
        &self,
        a: Mat<Self>,
        b: Mat<Self>,
        c: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        blas::gemm(self, a, b, c, alpha, beta)
    }

    fn gemm_batched(
        &self,
        a: Mat<Self>,
        b: Mat<Self>,
        c: MatMut<Self>,
        alpha: f64,
        beta: f64,
        batch: Batch,
    ) -> Result<()> {
        blas::gemm_batched(self, a, b, c, alpha, beta, batch)
    }

    fn dot(&self, x: &GpuBuf, x_off: usize, y: &GpuBuf, y_off: usize, len: usize) -> Result<f64> {
        check_range("dot x", x.len, x_off, len)?;
        check_range("dot y", y.len, y_off, len)?;
        let _g = self.reduce_guard()?;
        self.reduce_into(x, x_off, Some((y, y_off)), len, 0)?;
        Ok(self.read(&self.inner.results, 0, 1)?[0] as f64)
    }

    fn dot_into(
        &self,
        x: Ten<'_, Self>,
        y: Ten<'_, Self>,
        len: usize,
        out: TenMut<'_, Self>,
    ) -> Result<()> {
        let Ten(x, x_off) = x;
        let Ten(y, y_off) = y;
        let TenMut(out, out_off) = out;
        check_range("dot x", x.len, x_off, len)?;
        check_range("dot y", y.len, y_off, len)?;
        check_range("dot out", out.len, out_off, 1)?;
        // Both passes recorded under the reduction lock (they share the partials).
        let _g = self.reduce_guard()?;
        self.reduce_to(x, x_off, Some((y, y_off)), len, out, out_off)
    }

    fn axpy(
        &self,
        alpha: f64,
        x: &GpuBuf,
        x_off: usize,
        y: &mut GpuBuf,
        y_off: usize,
        len: usize,
    ) -> Result<()> {
        blas::axpy(self, alpha, x, x_off, y, y_off, len)
    }

    fn scale(&self, alpha: f64, x: &mut GpuBuf, off: usize, len: usize) -> Result<()> {
        blas::scale(self, alpha, x, off, len)
    }

    fn rsqrt(&self, x: &mut GpuBuf, off: usize, len: usize) -> Result<()> {
        blas::rsqrt(self, x, off, len)
    }

    fn row_norms(&self, x: &GpuBuf, off: usize, rows: usize, len: usize) -> Result<Vec<f64>> {
        blas::row_norms(self, x, off, rows, len)
    }

    fn all_finite(&self, x: &GpuBuf, off: usize, len: usize) -> Result<bool> {
        check_range("all_finite", x.len, off, len)?;
        let _g = self.reduce_guard()?;
        self.reduce_into(x, off, None, len, 0)?;
        Ok(self.read(&self.inner.results, 0, 1)?[0] == 0.0)
    }

    fn count_nonfinite_into(
        &self,
        x: &GpuBuf,
        off: usize,
        len: usize,
        out: &mut GpuBuf,
        out_off: usize,
    ) -> Result<()> {
        check_range("count x", x.len, off, len)?;
        check_range("count out", out.len, out_off, 1)?;
        let _g = self.reduce_guard()?;
        self.reduce_to(x, off, None, len, out, out_off)
    }
}
