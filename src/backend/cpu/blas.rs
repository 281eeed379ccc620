//! The CPU's matrix products: GEMM on slices (matrixmultiply's packed kernel, a matrix–vector
//! path and a skinny path for the Lanczos basis products) and the f64-accumulated dot product.

use super::input::CpuInput;
use super::par::{PAR_MIN, par_chunks, threads};
use super::real::{Real, Strided, StridedMut, rsqrt_f64};
use super::{CpuBackend, sl, sl_mut};
use crate::backend::{Blas, Gemm, InputRows, Mat, MatMut, check_input_view};
use crate::error::Result;

/// Largest m and k sent to [`skinny_gemm`] (C is m×n with n large).
const SKINNY_ROWS: usize = 64;

/// c = α·op(A)·b + β·c with b, c vectors. Not transposed: A is m×k, each c[i] a dot product
/// accumulated in f64. Transposed: A is stored k×m and c = α·Σ_l b[l]·A[l, :] + β·c, swept by rows.
fn gemv<T: Real>(g: Gemm, a: &[T], b: &[T], c: &mut [T]) {
    let Gemm {
        ta,
        m,
        k,
        alpha,
        beta,
        ..
    } = g;
    if !ta {
        par_chunks(c, m * k, |start, part| {
            for (i, ci) in part.iter_mut().enumerate() {
                let row = &a[(start + i) * k..(start + i + 1) * k];
                let d = dot_f64(row, b);
                let prev = if beta == 0.0 { 0.0 } else { beta * ci.wide() };
                *ci = T::of(alpha * d + prev);
            }
        });
    } else {
        par_chunks(c, m * k, |start, part| {
            let len = part.len();
            scale_by_beta(part, beta);
            for l in 0..k {
                let coef = T::of(alpha * b[l].wide());
                let row = &a[l * m + start..l * m + start + len];
                for (x, &r) in part.iter_mut().zip(row) {
                    *x = *x + coef * r;
                }
            }
        });
    }
}

/// C (m×n) = α·A (m×k)·B (k×n) + β·C for small m and k and long rows: C and B are walked in
/// column blocks so each block of C stays in cache while the k rows of B stream through once.
fn skinny_gemm<T: Real>(g: Gemm, a: &[T], b: &[T], c: &mut [T]) {
    let Gemm {
        m,
        n,
        k,
        alpha,
        beta,
        ..
    } = g;
    const BLOCK: usize = 1024;
    let blocks = n.div_ceil(BLOCK);
    // Parallelise over column blocks: split the block index range, each thread owning its
    // columns of every row of C (so the pieces are strided: use raw indices per thread).
    let t = threads().min(blocks).max(1);
    let per = blocks.div_ceil(t);
    let c_ptr = SendPtr(c.as_mut_ptr());
    let work = |first: usize, last: usize| {
        let c_ptr = &c_ptr;
        for blk in first..last {
            let j0 = blk * BLOCK;
            let j1 = (j0 + BLOCK).min(n);
            for i in 0..m {
                // SAFETY: rows i of C, columns j0..j1: disjoint across threads (distinct blocks).
                let ci =
                    unsafe { std::slice::from_raw_parts_mut(c_ptr.0.add(i * n + j0), j1 - j0) };
                scale_by_beta(ci, beta);
                for l in 0..k {
                    let coef = T::of(alpha * a[i * k + l].wide());
                    let bl = &b[l * n + j0..l * n + j1];
                    for (x, &y) in ci.iter_mut().zip(bl) {
                        *x = *x + coef * y;
                    }
                }
            }
        }
    };
    if t <= 1 || m * n * k < PAR_MIN {
        work(0, blocks);
        return;
    }
    std::thread::scope(|s| {
        for ti in 0..t {
            let work = &work;
            s.spawn(move || work(ti * per, ((ti + 1) * per).min(blocks)));
        }
    });
}

fn scale_by_beta<T: Real>(x: &mut [T], beta: f64) {
    if beta == 0.0 {
        x.fill(T::zero());
    } else if beta != 1.0 {
        let bt = T::of(beta);
        x.iter_mut().for_each(|v| *v = *v * bt);
    }
}

struct SendPtr<T>(*mut T);
// SAFETY: used only to hand disjoint regions of one slice to scoped threads.
unsafe impl<T> Sync for SendPtr<T> {}
unsafe impl<T> Send for SendPtr<T> {}

/// Σ x·y accumulated in f64 with four independent lanes.
pub(super) fn dot_f64<T: Real>(x: &[T], y: &[T]) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut xc = x.chunks_exact(4);
    let mut yc = y.chunks_exact(4);
    for (a, b) in (&mut xc).zip(&mut yc) {
        for i in 0..4 {
            acc[i] += a[i].wide() * b[i].wide();
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (a, b) in xc.remainder().iter().zip(yc.remainder()) {
        s += a.wide() * b.wide();
    }
    s
}

/// Shapes whose smallest side is at most this go to the `gemm` crate under the default choice: a
/// convolution's im2col GEMMs (c_out = 32 columns, or k = 27) run 1.3× faster there on this
/// machine's AVX2/AVX-512 cores, where matrixmultiply spends more time packing the long operand
/// than multiplying; square-ish shapes stay with matrixmultiply, faster on them (BENCHMARKS.md,
/// issue 33).
#[cfg(not(target_arch = "wasm32"))]
const GEMM_CRATE_SIDE: usize = 64;

/// Which GEMM back end takes an m×k·k×n product: `SUBSPACE_LAB_GEMM=mm` (matrixmultiply for every
/// shape), `gemm` (the gemm crate for every shape) or unset / `auto` (by shape,
/// [`GEMM_CRATE_SIDE`]); any other value counts as `auto`. Native builds only (the browser build
/// keeps matrixmultiply).
#[cfg(not(target_arch = "wasm32"))]
fn use_gemm_crate(m: usize, n: usize, k: usize) -> bool {
    static G: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    let mode = *G.get_or_init(|| match std::env::var("SUBSPACE_LAB_GEMM").as_deref() {
        Ok("mm") => 0,
        Ok("gemm") => 1,
        _ => 2,
    });
    match mode {
        0 => false,
        1 => true,
        _ => m.min(n).min(k) <= GEMM_CRATE_SIDE,
    }
}

/// C (m×n) = α·op(A)·op(B) + β·C on slices holding exactly op(A)'s m×k, op(B)'s k×n and C's m×n
/// elements (row-major; A stored k×m if `ta`, B stored n×k if `tb`).
pub(super) fn gemm_slices<T: Real>(g: Gemm, a: &[T], b: &[T], c: &mut [T]) {
    let Gemm {
        ta,
        tb,
        m,
        n,
        k,
        alpha,
        beta,
    } = g;
    if m == 0 || n == 0 {
        return;
    }
    // Skinny shapes (the Lanczos basis products) are memory-bound: packing them as a GEMM
    // costs more than the arithmetic, so they get streaming kernels.
    if n == 1 {
        gemv(g, a, b, c);
        return;
    }
    if !ta && !tb && m <= SKINNY_ROWS && k <= SKINNY_ROWS {
        skinny_gemm(g, a, b, c);
        return;
    }
    // Row-major storage: op(A)[i, l] is A[i*k + l] or, transposed, A[l*m + i].
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    #[cfg(not(target_arch = "wasm32"))]
    if use_gemm_crate(m, n, k) {
        let par = match threads() {
            1 => gemm::Parallelism::None,
            t => gemm::Parallelism::Rayon(t),
        };
        // SAFETY: as below. The gemm crate computes dst = α'·dst + β'·A·B (its α' is our β).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                beta != 0.0,
                a.as_ptr(),
                csa,
                rsa,
                b.as_ptr(),
                csb,
                rsb,
                T::of(beta),
                T::of(alpha),
                false,
                false,
                false,
                par,
            )
        };
        return;
    }
    // SAFETY: the slices hold (asserted) the m×k, k×n and m×n elements the strides address,
    // and `c` is a unique borrow, so it cannot alias `a` or `b`.
    unsafe {
        T::gemm_raw(
            (m, k, n),
            T::of(alpha),
            Strided {
                ptr: a.as_ptr(),
                rs: rsa,
                cs: csa,
            },
            Strided {
                ptr: b.as_ptr(),
                rs: rsb,
                cs: csb,
            },
            T::of(beta),
            StridedMut {
                ptr: c.as_mut_ptr(),
                rs: n as isize,
                cs: 1,
            },
        )
    };
}

impl<T: Real> Blas for CpuBackend<T> {
    type Input = CpuInput<T>;

    fn input(&self, x: &[f64], rows: usize, cols: usize) -> Result<CpuInput<T>> {
        CpuInput::new(x, rows, cols, !self.dense_input)
    }

    fn input_gemm_nt(
        &self,
        x: InputRows<Self>,
        b: Mat<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        let (c, n, d) = (out.rows, out.cols, x.x.cols());
        check_input_view(b.rows == n, "B", &b)?;
        let bs = sl(b.buf, b.off, n * d, "input product B")?;
        let os = sl_mut(out.buf, out.off, c * n, "input product C")?;
        let g = Gemm::input_nt(c, n, d, alpha, beta);
        x.x.gemm_nt(x.r0, g, bs, os, threads(), |xs, b, out| {
            gemm_slices(g, xs, b, out)
        })
    }

    fn input_gemm_tn(
        &self,
        g: Mat<Self>,
        x: InputRows<Self>,
        out: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        let (c, n, d) = (g.rows, g.cols, x.x.cols());
        check_input_view(out.rows == n, "G", &g)?;
        let gs = sl(g.buf, g.off, c * n, "input product G")?;
        let os = sl_mut(out.buf, out.off, n * d, "input product C")?;
        let gm = Gemm::input_tn(c, n, d, alpha, beta);
        x.x.gemm_tn(gs, x.r0, gm, os, threads(), |g, xs, out| {
            gemm_slices(gm, g, xs, out)
        })
    }

    fn gemm(
        &self,
        a: Mat<Self>,
        b: Mat<Self>,
        c: MatMut<Self>,
        alpha: f64,
        beta: f64,
    ) -> Result<()> {
        let g = Gemm::of(a, b, &c, alpha, beta)?;
        let (m, n, k) = (g.m, g.n, g.k);
        let a = sl(a.buf, a.off, m * k, "gemm A")?;
        let b = sl(b.buf, b.off, k * n, "gemm B")?;
        let c = sl_mut(c.buf, c.off, m * n, "gemm C")?;
        gemm_slices(g, a, b, c);
        Ok(())
    }

    fn dot(&self, x: &Vec<T>, x_off: usize, y: &Vec<T>, y_off: usize, len: usize) -> Result<f64> {
        let x = sl(x, x_off, len, "dot x")?;
        let y = sl(y, y_off, len, "dot y")?;
        // f64 accumulation: for f32 inputs the products are exact.
        Ok(dot_f64(x, y))
    }

    fn axpy(
        &self,
        alpha: f64,
        x: &Vec<T>,
        x_off: usize,
        y: &mut Vec<T>,
        y_off: usize,
        len: usize,
    ) -> Result<()> {
        let x = sl(x, x_off, len, "axpy x")?;
        let y = sl_mut(y, y_off, len, "axpy y")?;
        let a = T::of(alpha);
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = *yi + a * xi;
        }
        Ok(())
    }

    fn scale(&self, alpha: f64, x: &mut Vec<T>, off: usize, len: usize) -> Result<()> {
        let a = T::of(alpha);
        for xi in sl_mut(x, off, len, "scale")? {
            *xi = *xi * a;
        }
        Ok(())
    }

    fn rsqrt(&self, x: &mut Vec<T>, off: usize, len: usize) -> Result<()> {
        let tiny = T::min_positive_value().wide();
        for xi in sl_mut(x, off, len, "rsqrt")? {
            let v = xi.wide();
            // A subnormal counts as 0, as on a GPU that flushes it (1/√ of it would overflow).
            *xi = T::of(if v.abs() < tiny { 0.0 } else { rsqrt_f64(v) });
        }
        Ok(())
    }

    fn all_finite(&self, x: &Vec<T>, off: usize, len: usize) -> Result<bool> {
        Ok(sl(x, off, len, "all_finite")?.iter().all(|v| v.is_finite()))
    }
}
