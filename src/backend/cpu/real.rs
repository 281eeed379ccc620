//! The scalars the CPU backend computes in (f32 and f64) and their scalar kernels: the raw GEMM
//! each forwards to (matrixmultiply), the fast f32 tanh, the reciprocal square root.

use crate::backend::Precision;

/// A read matrix for [`Real::gemm_raw`]: its first element and its row and column strides.
#[derive(Clone, Copy, Debug)]
pub struct Strided<T> {
    pub ptr: *const T,
    pub rs: isize,
    pub cs: isize,
}

/// The written matrix of [`Real::gemm_raw`]: its first element and its row and column strides.
#[derive(Clone, Copy, Debug)]
pub struct StridedMut<T> {
    pub ptr: *mut T,
    pub rs: isize,
    pub cs: isize,
}

/// A scalar the CPU backend computes in.
pub trait Real: num_traits::Float + Copy + Send + Sync + std::fmt::Debug + 'static {
    const PRECISION: Precision;
    fn of(x: f64) -> Self;
    fn wide(self) -> f64;
    /// tanh: libm's in f64 (the oracle); in f32 a branch-free rational approximation that the
    /// compiler vectorises (max abs error 4.0e-7, a few ulp near ±1; checked in the tests).
    fn tanh_fast(self) -> Self;
    /// Raw strided GEMM: C = α A B + β C, A m×k, B k×n, C m×n (`mkn`).
    ///
    /// # Safety
    /// The pointers and strides must describe valid, non-aliasing (C) matrices of the given sizes.
    unsafe fn gemm_raw(
        mkn: (usize, usize, usize),
        alpha: Self,
        a: Strided<Self>,
        b: Strided<Self>,
        beta: Self,
        c: StridedMut<Self>,
    );
}

impl Real for f32 {
    const PRECISION: Precision = Precision::F32;
    #[inline]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn wide(self) -> f64 {
        self as f64
    }
    #[inline]
    fn tanh_fast(self) -> Self {
        tanh_f32(self)
    }
    unsafe fn gemm_raw(
        (m, k, n): (usize, usize, usize),
        alpha: Self,
        a: Strided<Self>,
        b: Strided<Self>,
        beta: Self,
        c: StridedMut<Self>,
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            matrixmultiply::sgemm(
                m, k, n, alpha, a.ptr, a.rs, a.cs, b.ptr, b.rs, b.cs, beta, c.ptr, c.rs, c.cs,
            )
        }
    }
}

impl Real for f64 {
    const PRECISION: Precision = Precision::F64;
    #[inline]
    fn of(x: f64) -> Self {
        x
    }
    #[inline]
    fn wide(self) -> f64 {
        self
    }
    #[inline]
    fn tanh_fast(self) -> Self {
        self.tanh()
    }
    unsafe fn gemm_raw(
        (m, k, n): (usize, usize, usize),
        alpha: Self,
        a: Strided<Self>,
        b: Strided<Self>,
        beta: Self,
        c: StridedMut<Self>,
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            matrixmultiply::dgemm(
                m, k, n, alpha, a.ptr, a.rs, a.cs, b.ptr, b.rs, b.cs, beta, c.ptr, c.rs, c.cs,
            )
        }
    }
}

/// tanh in f32 by the rational minimax approximation Eigen uses (`generic_fast_tanh_float`):
/// x·p(x²)/q(x²) on |x| ≤ 7.9053 (beyond, tanh rounds to ±1 in f32). Branch-free, so loops over
/// it vectorise; libm's `tanhf` costs ≈ 20 ns a call here, this ≈ 1 ns.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the published coefficients, as published
pub fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = -2.760_768_5e-16_f32;
    p = p * x2 + 2.000_187_9e-13;
    p = p * x2 + -8.604_671_5e-11;
    p = p * x2 + 5.122_297e-8;
    p = p * x2 + 1.485_722_4e-5;
    p = p * x2 + 6.372_619_3e-4;
    p = p * x2 + 4.893_524_6e-3;
    let mut q = 1.198_258_4e-6_f32;
    q = q * x2 + 1.185_347e-4;
    q = q * x2 + 2.268_434_6e-3;
    q = q * x2 + 4.893_525e-3;
    x * p / q
}

/// `x ← β·x`, with β = 0 overwriting (so NaN/Inf already in `x` do not survive, as in BLAS).
/// 1/√x, 0 at 0, NaN for negative or non-finite x: the CPU twin of `rsqrt` in
/// `shaders/vector.wgsl`.
pub(crate) fn rsqrt_f64(v: f64) -> f64 {
    if v == 0.0 {
        0.0
    } else if v > 0.0 && v.is_finite() {
        1.0 / v.sqrt()
    } else {
        f64::NAN
    }
}
