//! The CPU backend, generic over the scalar: `f64` is the oracle every other path is tested
//! against; `f32` is the fast fallback (matrixmultiply's packed, multi-threaded GEMM).
//! Reductions accumulate in `f64` in both, so an f32 dot over 199,210 terms keeps f32 round-off
//! only from its inputs.

use super::cpu_seq;
use super::input::CpuInput;
use super::{Activation, Attn, Backend, Ln, LossKind, Nhwc, Precision, Seq, check_range};
use crate::error::Result;

/// A scalar the CPU backend computes in.
pub trait Real: num_traits::Float + Copy + Send + Sync + std::fmt::Debug + 'static {
    const PRECISION: Precision;
    fn of(x: f64) -> Self;
    fn wide(self) -> f64;
    /// tanh: libm's in f64 (the oracle); in f32 a branch-free rational approximation that the
    /// compiler vectorises (max abs error 4.0e-7, a few ulp near ±1; checked in the tests).
    fn tanh_fast(self) -> Self;
    /// Raw strided GEMM: C = α A B + β C.
    ///
    /// # Safety
    /// The pointers and strides must describe valid, non-aliasing (C) matrices of the given sizes.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
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
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
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
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
}

/// CPU backend in precision `T` (`CpuBackend::<f64>::new()` is the oracle).
#[derive(Clone, Debug, Default)]
pub struct CpuBackend<T> {
    _t: std::marker::PhantomData<T>,
    /// Keep the network's input dense even where the sparse form applies (the tests' reference).
    dense_input: bool,
}

impl<T: Real> CpuBackend<T> {
    pub fn new() -> Self {
        CpuBackend {
            _t: std::marker::PhantomData,
            dense_input: false,
        }
    }
    /// A backend that multiplies by the network's input as a dense matrix always (the reference
    /// for the sparse products of [`super::input`]).
    pub fn with_dense_input() -> Self {
        CpuBackend {
            _t: std::marker::PhantomData,
            dense_input: true,
        }
    }
}

#[inline]
fn sl<'a, T>(v: &'a [T], off: usize, len: usize, what: &str) -> Result<&'a [T]> {
    check_range(what, v.len(), off, len)?;
    Ok(&v[off..off + len])
}

#[inline]
fn sl_mut<'a, T>(v: &'a mut [T], off: usize, len: usize, what: &str) -> Result<&'a mut [T]> {
    check_range(what, v.len(), off, len)?;
    Ok(&mut v[off..off + len])
}

impl<T: Real> Backend for CpuBackend<T> {
    type Buf = Vec<T>;
    type Input = CpuInput<T>;

    fn name(&self) -> String {
        format!("cpu-{}", T::PRECISION.name())
    }
    fn precision(&self) -> Precision {
        T::PRECISION
    }
    fn zeros(&self, len: usize) -> Result<Vec<T>> {
        Ok(vec![T::zero(); len])
    }
    fn upload(&self, data: &[f64]) -> Result<Vec<T>> {
        Ok(data.iter().map(|&x| T::of(x)).collect())
    }
    fn write(&self, buf: &mut Vec<T>, off: usize, data: &[f64]) -> Result<()> {
        for (d, &x) in sl_mut(buf, off, data.len(), "write")?.iter_mut().zip(data) {
            *d = T::of(x);
        }
        Ok(())
    }
    fn download(&self, buf: &Vec<T>) -> Result<Vec<f64>> {
        Ok(buf.iter().map(|x| x.wide()).collect())
    }
    fn download_range(&self, buf: &Vec<T>, off: usize, len: usize) -> Result<Vec<f64>> {
        Ok(sl(buf, off, len, "download")?
            .iter()
            .map(|x| x.wide())
            .collect())
    }
    fn len(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }

    fn copy(
        &self,
        src: &Vec<T>,
        s_off: usize,
        dst: &mut Vec<T>,
        d_off: usize,
        len: usize,
    ) -> Result<()> {
        let s = sl(src, s_off, len, "copy src")?;
        sl_mut(dst, d_off, len, "copy dst")?.copy_from_slice(s);
        Ok(())
    }

    fn input(&self, x: &[f64], rows: usize, cols: usize) -> Result<CpuInput<T>> {
        CpuInput::new(x, rows, cols, !self.dense_input)
    }

    fn input_gemm_nt(
        &self,
        x: &CpuInput<T>,
        r0: usize,
        c: usize,
        n: usize,
        alpha: f64,
        b: &Vec<T>,
        b_off: usize,
        beta: f64,
        out: &mut Vec<T>,
        c_off: usize,
    ) -> Result<()> {
        let d = x.cols();
        let b = sl(b, b_off, n * d, "input product B")?;
        let out = sl_mut(out, c_off, c * n, "input product C")?;
        x.gemm_nt(r0, c, n, alpha, b, beta, out, threads(), |xs, b, out| {
            gemm_slices(false, true, c, n, d, alpha, xs, b, beta, out)
        })
    }

    fn input_gemm_tn(
        &self,
        g: &Vec<T>,
        g_off: usize,
        x: &CpuInput<T>,
        r0: usize,
        c: usize,
        n: usize,
        alpha: f64,
        beta: f64,
        out: &mut Vec<T>,
        c_off: usize,
    ) -> Result<()> {
        let d = x.cols();
        let g = sl(g, g_off, c * n, "input product G")?;
        let out = sl_mut(out, c_off, n * d, "input product C")?;
        x.gemm_tn(g, r0, c, n, alpha, beta, out, threads(), |g, xs, out| {
            gemm_slices(true, false, n, d, c, alpha, g, xs, beta, out)
        })
    }

    fn fill(&self, x: &mut Vec<T>, off: usize, len: usize, value: f64) -> Result<()> {
        sl_mut(x, off, len, "fill")?.fill(T::of(value));
        Ok(())
    }

    fn gemm(
        &self,
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f64,
        a: &Vec<T>,
        a_off: usize,
        b: &Vec<T>,
        b_off: usize,
        beta: f64,
        c: &mut Vec<T>,
        c_off: usize,
    ) -> Result<()> {
        let a = sl(a, a_off, m * k, "gemm A")?;
        let b = sl(b, b_off, k * n, "gemm B")?;
        let c = sl_mut(c, c_off, m * n, "gemm C")?;
        gemm_slices(ta, tb, m, n, k, alpha, a, b, beta, c);
        Ok(())
    }

    fn bias_act(
        &self,
        act: Option<Activation>,
        rows: usize,
        cols: usize,
        bias: &Vec<T>,
        b_off: usize,
        x: &mut Vec<T>,
        x_off: usize,
    ) -> Result<()> {
        let bias = sl(bias, b_off, cols, "bias")?;
        let x = sl_mut(x, x_off, rows * cols, "bias_act x")?;
        for row in x.chunks_exact_mut(cols.max(1)) {
            match act {
                None => row.iter_mut().zip(bias).for_each(|(v, &b)| *v = *v + b),
                Some(Activation::Tanh) => row
                    .iter_mut()
                    .zip(bias)
                    .for_each(|(v, &b)| *v = T::tanh_fast(*v + b)),
                Some(Activation::Relu) => row
                    .iter_mut()
                    .zip(bias)
                    .for_each(|(v, &b)| *v = (*v + b).max(T::zero())),
                Some(a) => row
                    .iter_mut()
                    .zip(bias)
                    .for_each(|(v, &b)| *v = T::of(a.eval((*v + b).wide()).0)),
            }
        }
        Ok(())
    }

    fn act_d1_mul(
        &self,
        act: Activation,
        len: usize,
        a: &Vec<T>,
        a_off: usize,
        g: &Vec<T>,
        g_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
    ) -> Result<()> {
        let a = sl(a, a_off, len, "act_d1 a")?;
        let g = sl(g, g_off, len, "act_d1 g")?;
        let out = sl_mut(out, o_off, len, "act_d1 out")?;
        let one = T::one();
        match act {
            Activation::Tanh => {
                for ((o, &ai), &gi) in out.iter_mut().zip(a).zip(g) {
                    *o = gi * (one - ai * ai);
                }
            }
            Activation::Relu => {
                for ((o, &ai), &gi) in out.iter_mut().zip(a).zip(g) {
                    *o = if ai > T::zero() { gi } else { T::zero() };
                }
            }
            smooth => {
                for ((o, &zi), &gi) in out.iter_mut().zip(a).zip(g) {
                    *o = gi * T::of(smooth.derivs_cached(zi.wide()).0);
                }
            }
        }
        Ok(())
    }

    fn act_d2_r(
        &self,
        act: Activation,
        len: usize,
        a: &Vec<T>,
        a_off: usize,
        rg: &Vec<T>,
        rg_off: usize,
        g: &Vec<T>,
        g_off: usize,
        rz: &Vec<T>,
        rz_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
    ) -> Result<()> {
        let a = sl(a, a_off, len, "act_d2 a")?;
        let rg = sl(rg, rg_off, len, "act_d2 rg")?;
        let g = sl(g, g_off, len, "act_d2 g")?;
        let rz = sl(rz, rz_off, len, "act_d2 rz")?;
        let out = sl_mut(out, o_off, len, "act_d2 out")?;
        let one = T::one();
        let two = one + one;
        match act {
            Activation::Tanh => {
                for ((((o, &ai), &rgi), &gi), &rzi) in out.iter_mut().zip(a).zip(rg).zip(g).zip(rz)
                {
                    let d1 = one - ai * ai;
                    let d2 = -two * ai * d1;
                    *o = rgi * d1 + gi * d2 * rzi;
                }
            }
            Activation::Relu => {
                for ((o, &ai), &rgi) in out.iter_mut().zip(a).zip(rg) {
                    *o = if ai > T::zero() { rgi } else { T::zero() };
                }
            }
            smooth => {
                for ((((o, &zi), &rgi), &gi), &rzi) in out.iter_mut().zip(a).zip(rg).zip(g).zip(rz)
                {
                    let (d1, d2) = smooth.derivs_cached(zi.wide());
                    *o = rgi * T::of(d1) + gi * T::of(d2) * rzi;
                }
            }
        }
        Ok(())
    }

    fn act(&self, act: Activation, len: usize, x: &mut Vec<T>, off: usize) -> Result<()> {
        let x = sl_mut(x, off, len, "act x")?;
        match act {
            Activation::Tanh => x.iter_mut().for_each(|v| *v = T::tanh_fast(*v)),
            Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(T::zero())),
            smooth => x
                .iter_mut()
                .for_each(|v| *v = T::of(smooth.eval(v.wide()).0)),
        }
        Ok(())
    }

    fn im2col3x3(
        &self,
        g: Nhwc,
        x: &Vec<T>,
        x_off: usize,
        col: &mut Vec<T>,
        col_off: usize,
    ) -> Result<()> {
        let x = sl(x, x_off, g.len(), "im2col x")?;
        let k9 = 9 * g.c;
        let col = sl_mut(col, col_off, g.n * g.h * g.w * k9, "im2col col")?;
        let (h, w, c) = (g.h, g.w, g.c);
        let work = col.len();
        // Whole rows (one output pixel each) per thread.
        par_rows(col, k9, work, |row0, rows| {
            for (r, row) in rows.chunks_exact_mut(k9).enumerate() {
                let pix = row0 + r;
                let (s, p) = (pix / (h * w), pix % (h * w));
                let (y, xx) = (p / w, p % w);
                for ky in 0..3 {
                    let yy = y as isize + ky as isize - 1;
                    for kx in 0..3 {
                        let xs = xx as isize + kx as isize - 1;
                        let inside = yy >= 0 && yy < h as isize && xs >= 0 && xs < w as isize;
                        let j = ky * 3 + kx;
                        if inside {
                            let base = ((s * h + yy as usize) * w + xs as usize) * c;
                            for ci in 0..c {
                                row[ci * 9 + j] = x[base + ci];
                            }
                        } else {
                            for ci in 0..c {
                                row[ci * 9 + j] = T::zero();
                            }
                        }
                    }
                }
            }
        });
        Ok(())
    }

    fn col2im3x3(
        &self,
        g: Nhwc,
        col: &Vec<T>,
        col_off: usize,
        beta: f64,
        dx: &mut Vec<T>,
        dx_off: usize,
    ) -> Result<()> {
        let k9 = 9 * g.c;
        let col = sl(col, col_off, g.n * g.h * g.w * k9, "col2im col")?;
        let dx = sl_mut(dx, dx_off, g.len(), "col2im dx")?;
        let (h, w, c) = (g.h, g.w, g.c);
        let beta = T::of(beta);
        let work = dx.len() * 9;
        par_rows(dx, c, work, |pix0, px| {
            for (r, out) in px.chunks_exact_mut(c).enumerate() {
                let pix = pix0 + r;
                let (s, p) = (pix / (h * w), pix % (h * w));
                let (y, xx) = (p / w, p % w);
                for v in out.iter_mut() {
                    *v = if beta == T::zero() {
                        T::zero()
                    } else {
                        beta * *v
                    };
                }
                // Pixel (y, x) is read by output pixel (y − ky + 1, x − kx + 1) at tap (ky, kx).
                for ky in 0..3 {
                    let yo = y as isize - ky as isize + 1;
                    if yo < 0 || yo >= h as isize {
                        continue;
                    }
                    for kx in 0..3 {
                        let xo = xx as isize - kx as isize + 1;
                        if xo < 0 || xo >= w as isize {
                            continue;
                        }
                        let row = ((s * h + yo as usize) * w + xo as usize) * k9;
                        let j = ky * 3 + kx;
                        for (ci, v) in out.iter_mut().enumerate() {
                            *v = *v + col[row + ci * 9 + j];
                        }
                    }
                }
            }
        });
        Ok(())
    }

    fn maxpool2(
        &self,
        g: Nhwc,
        x: &Vec<T>,
        x_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
        idx: &mut Vec<T>,
        i_off: usize,
    ) -> Result<()> {
        let x = sl(x, x_off, g.len(), "maxpool x")?;
        let q = g.pooled();
        let out = sl_mut(out, o_off, q.len(), "maxpool out")?;
        let idx = sl_mut(idx, i_off, q.len(), "maxpool idx")?;
        let c = g.c;
        pool_windows(g, |o, at| {
            for k in 0..c {
                let mut best = x[at[0] + k];
                let mut pos = 0usize;
                for (p, &a) in at.iter().enumerate().skip(1) {
                    let v = x[a + k];
                    if v > best {
                        best = v;
                        pos = p;
                    }
                }
                out[o + k] = best;
                idx[o + k] = T::of(pos as f64);
            }
        });
        Ok(())
    }

    fn pool2_gather(
        &self,
        g: Nhwc,
        idx: &Vec<T>,
        i_off: usize,
        src: &Vec<T>,
        s_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
    ) -> Result<()> {
        let src = sl(src, s_off, g.len(), "pool gather src")?;
        let q = g.pooled();
        let idx = sl(idx, i_off, q.len(), "pool gather idx")?;
        let out = sl_mut(out, o_off, q.len(), "pool gather out")?;
        let c = g.c;
        pool_windows(g, |o, at| {
            for k in 0..c {
                out[o + k] = src[at[idx[o + k].wide() as usize & 3] + k];
            }
        });
        Ok(())
    }

    fn pool2_scatter(
        &self,
        g: Nhwc,
        idx: &Vec<T>,
        i_off: usize,
        gy: &Vec<T>,
        g_off: usize,
        dx: &mut Vec<T>,
        dx_off: usize,
    ) -> Result<()> {
        let q = g.pooled();
        let idx = sl(idx, i_off, q.len(), "pool scatter idx")?;
        let gy = sl(gy, g_off, q.len(), "pool scatter gy")?;
        let dx = sl_mut(dx, dx_off, g.len(), "pool scatter dx")?;
        let c = g.c;
        // Windows do not overlap: zero everything, then put each gradient at its arg-max.
        dx.fill(T::zero());
        pool_windows(g, |o, at| {
            for k in 0..c {
                dx[at[idx[o + k].wide() as usize & 3] + k] = gy[o + k];
            }
        });
        Ok(())
    }

    fn transpose_batch(
        &self,
        batch: usize,
        rows: usize,
        cols: usize,
        src: &Vec<T>,
        s_off: usize,
        dst: &mut Vec<T>,
        d_off: usize,
    ) -> Result<()> {
        let len = batch * rows * cols;
        let src = sl(src, s_off, len, "transpose src")?;
        let dst = sl_mut(dst, d_off, len, "transpose dst")?;
        let m = rows * cols;
        for (sb, db) in src
            .chunks_exact(m.max(1))
            .zip(dst.chunks_exact_mut(m.max(1)))
        {
            for i in 0..rows {
                for j in 0..cols {
                    db[j * rows + i] = sb[i * cols + j];
                }
            }
        }
        Ok(())
    }

    fn col_sum(
        &self,
        rows: usize,
        cols: usize,
        alpha: f64,
        src: &Vec<T>,
        s_off: usize,
        beta: f64,
        dst: &mut Vec<T>,
        d_off: usize,
    ) -> Result<()> {
        let src = sl(src, s_off, rows * cols, "col_sum src")?;
        let dst = sl_mut(dst, d_off, cols, "col_sum dst")?;
        let mut acc = vec![0.0f64; cols];
        for row in src.chunks_exact(cols.max(1)) {
            for (a, &x) in acc.iter_mut().zip(row) {
                *a += x.wide();
            }
        }
        for (d, a) in dst.iter_mut().zip(acc) {
            let prev = if beta == 0.0 { 0.0 } else { beta * d.wide() };
            *d = T::of(prev + alpha * a);
        }
        Ok(())
    }

    fn loss_grad(
        &self,
        loss: LossKind,
        rows: usize,
        cols: usize,
        out: &Vec<T>,
        o_off: usize,
        target: &Vec<T>,
        t_off: usize,
        scale: f64,
        grad: &mut Vec<T>,
        g_off: usize,
        stats: &mut Vec<T>,
    ) -> Result<()> {
        let out = sl(out, o_off, rows * cols, "loss out")?;
        let target = sl(target, t_off, rows * cols, "loss target")?;
        let grad = sl_mut(grad, g_off, rows * cols, "loss grad")?;
        check_range("loss stats", stats.len(), 0, 2)?;
        let mut loss_sum = 0.0f64;
        let mut correct = 0usize;
        for r in 0..rows {
            let o = &out[r * cols..(r + 1) * cols];
            let t = &target[r * cols..(r + 1) * cols];
            let g = &mut grad[r * cols..(r + 1) * cols];
            if argmax(o) == argmax(t) {
                correct += 1;
            }
            match loss {
                LossKind::Mse => {
                    let mut l = 0.0;
                    for j in 0..cols {
                        let d = o[j].wide() - t[j].wide();
                        l += 0.5 * d * d;
                        g[j] = T::of(scale * d);
                    }
                    loss_sum += l;
                }
                LossKind::Ce => {
                    // log-sum-exp with the max subtracted; soft targets allowed.
                    let mx = o.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x.wide()));
                    let se: f64 = o.iter().map(|&x| (x.wide() - mx).exp()).sum();
                    let lse = mx + se.ln();
                    let tsum: f64 = t.iter().map(|x| x.wide()).sum();
                    let mut l = 0.0;
                    for j in 0..cols {
                        let p = (o[j].wide() - lse).exp();
                        l -= t[j].wide() * (o[j].wide() - lse);
                        g[j] = T::of(scale * (tsum * p - t[j].wide()));
                    }
                    loss_sum += l;
                }
            }
        }
        stats[0] = T::of(stats[0].wide() + loss_sum);
        stats[1] = T::of(stats[1].wide() + correct as f64);
        Ok(())
    }

    fn loss_hess_mul(
        &self,
        loss: LossKind,
        rows: usize,
        cols: usize,
        out: &Vec<T>,
        o_off: usize,
        rout: &Vec<T>,
        r_off: usize,
        scale: f64,
        rgrad: &mut Vec<T>,
        g_off: usize,
    ) -> Result<()> {
        let out = sl(out, o_off, rows * cols, "loss_hess out")?;
        let rout = sl(rout, r_off, rows * cols, "loss_hess rout")?;
        let rgrad = sl_mut(rgrad, g_off, rows * cols, "loss_hess rgrad")?;
        match loss {
            LossKind::Mse => {
                for (g, &r) in rgrad.iter_mut().zip(rout) {
                    *g = T::of(scale * r.wide());
                }
            }
            LossKind::Ce => {
                // ∇² of Σ_j t_j·(lse − o_j) is (Σ_j t_j)·(diag(p) − p pᵀ); targets are
                // distributions (one-hot here), so Σ_j t_j = 1.
                let mut p = vec![0.0f64; cols];
                for r in 0..rows {
                    let o = &out[r * cols..(r + 1) * cols];
                    let ro = &rout[r * cols..(r + 1) * cols];
                    let mx = o.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x.wide()));
                    let mut se = 0.0;
                    for j in 0..cols {
                        p[j] = (o[j].wide() - mx).exp();
                        se += p[j];
                    }
                    let mut pr = 0.0;
                    for j in 0..cols {
                        p[j] /= se;
                        pr += p[j] * ro[j].wide();
                    }
                    for j in 0..cols {
                        rgrad[r * cols + j] = T::of(scale * p[j] * (ro[j].wide() - pr));
                    }
                }
            }
        }
        Ok(())
    }

    fn embed(
        &self,
        g: Seq,
        ids: &Vec<T>,
        ids_off: usize,
        table: &Vec<T>,
        tok_off: usize,
        pos_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
    ) -> Result<()> {
        let (t, d) = (g.len, g.width);
        let ids = sl(ids, ids_off, g.rows * t, "embed ids")?;
        let pos = sl(table, pos_off, t * d, "embed positions")?;
        let out = sl_mut(out, o_off, g.numel(), "embed out")?;
        for (p, o) in out.chunks_exact_mut(d).enumerate() {
            let id = ids[p].wide() as usize;
            let row = sl(table, tok_off + id * d, d, "embed token row")?;
            let pr = &pos[(p % t) * d..][..d];
            for j in 0..d {
                o[j] = row[j] + pr[j];
            }
        }
        Ok(())
    }

    fn embed_grad(
        &self,
        g: Seq,
        vocab: usize,
        start: &Vec<T>,
        order: &Vec<T>,
        gy: &Vec<T>,
        g_off: usize,
        out: &mut Vec<T>,
        tok_off: usize,
    ) -> Result<()> {
        let d = g.width;
        let start = sl(start, 0, vocab + 1, "embed_grad start")?;
        let order = sl(order, 0, g.rows * g.len, "embed_grad order")?;
        let gy = sl(gy, g_off, g.numel(), "embed_grad gy")?;
        let out = sl_mut(out, tok_off, vocab * d, "embed_grad out")?;
        for v in 0..vocab {
            let (a, b) = (start[v].wide() as usize, start[v + 1].wide() as usize);
            if a == b {
                continue;
            }
            let mut acc = vec![0.0f64; d];
            for p in &order[a..b] {
                let row = &gy[p.wide() as usize * d..][..d];
                for j in 0..d {
                    acc[j] += row[j].wide();
                }
            }
            for (o, s) in out[v * d..(v + 1) * d].iter_mut().zip(&acc) {
                *o = T::of(o.wide() + s);
            }
        }
        Ok(())
    }

    fn layer_norm(
        &self,
        l: Ln,
        x: &Vec<T>,
        x_off: usize,
        theta: &Vec<T>,
        y: &mut Vec<T>,
        y_off: usize,
    ) -> Result<()> {
        let len = l.rows * l.width;
        let x = sl(x, x_off, len, "layer_norm x")?;
        ln_params(theta, l)?;
        let y = sl_mut(y, y_off, len, "layer_norm y")?;
        par_rows(y, l.width, 10 * len, |r0, y| {
            let xs = &x[r0 * l.width..][..y.len()];
            cpu_seq::layer_norm(l, xs, theta, y)
        });
        Ok(())
    }

    fn layer_norm_vjp(
        &self,
        l: Ln,
        x: &Vec<T>,
        x_off: usize,
        theta: &Vec<T>,
        dy: &Vec<T>,
        dy_off: usize,
        dx: &mut Vec<T>,
        dx_off: usize,
        prod: &mut Vec<T>,
        p_off: usize,
    ) -> Result<()> {
        let (len, w) = (l.rows * l.width, l.width);
        let x = sl(x, x_off, len, "layer_norm_vjp x")?;
        let dy = sl(dy, dy_off, len, "layer_norm_vjp dy")?;
        ln_params(theta, l)?;
        let dx = sl_mut(dx, dx_off, len, "layer_norm_vjp dx")?;
        let prod = sl_mut(prod, p_off, len, "layer_norm_vjp prod")?;
        par_rows2(dx, prod, w, 20 * len, |r0, dx, prod| {
            let rows = r0 * w..r0 * w + dx.len();
            cpu_seq::layer_norm_vjp(l, &x[rows.clone()], theta, &dy[rows], dx, prod)
        });
        Ok(())
    }

    fn layer_norm_jvp(
        &self,
        l: Ln,
        x: &Vec<T>,
        x_off: usize,
        rx: &Vec<T>,
        rx_off: usize,
        theta: &Vec<T>,
        v: &Vec<T>,
        v_off: usize,
        ry: &mut Vec<T>,
        ry_off: usize,
    ) -> Result<()> {
        let (len, w) = (l.rows * l.width, l.width);
        let x = sl(x, x_off, len, "layer_norm_jvp x")?;
        let rx = sl(rx, rx_off, len, "layer_norm_jvp rx")?;
        ln_params(theta, l)?;
        let v = &v[v_off.min(v.len())..];
        ln_params(v, l)?;
        let ry = sl_mut(ry, ry_off, len, "layer_norm_jvp ry")?;
        par_rows(ry, w, 20 * len, |r0, ry| {
            let rows = r0 * w..r0 * w + ry.len();
            cpu_seq::layer_norm_jvp(l, &x[rows.clone()], &rx[rows], theta, v, ry)
        });
        Ok(())
    }

    fn layer_norm_rvjp(
        &self,
        l: Ln,
        x: &Vec<T>,
        x_off: usize,
        rx: &Vec<T>,
        rx_off: usize,
        theta: &Vec<T>,
        v: &Vec<T>,
        v_off: usize,
        dy: &Vec<T>,
        dy_off: usize,
        rdy: &Vec<T>,
        rdy_off: usize,
        rdx: &mut Vec<T>,
        rdx_off: usize,
        prod: &mut Vec<T>,
        p_off: usize,
    ) -> Result<()> {
        let (len, w) = (l.rows * l.width, l.width);
        let x = sl(x, x_off, len, "layer_norm_rvjp x")?;
        let rx = sl(rx, rx_off, len, "layer_norm_rvjp rx")?;
        let dy = sl(dy, dy_off, len, "layer_norm_rvjp dy")?;
        let rdy = sl(rdy, rdy_off, len, "layer_norm_rvjp rdy")?;
        ln_params(theta, l)?;
        let v = &v[v_off.min(v.len())..];
        ln_params(v, l)?;
        let rdx = sl_mut(rdx, rdx_off, len, "layer_norm_rvjp rdx")?;
        let prod = sl_mut(prod, p_off, len, "layer_norm_rvjp prod")?;
        par_rows2(rdx, prod, w, 30 * len, |r0, rdx, prod| {
            let rows = r0 * w..r0 * w + rdx.len();
            cpu_seq::layer_norm_rvjp(
                l,
                &x[rows.clone()],
                &rx[rows.clone()],
                theta,
                v,
                &dy[rows.clone()],
                &rdy[rows],
                rdx,
                prod,
            )
        });
        Ok(())
    }

    fn attention(
        &self,
        a: Attn,
        ids: &Vec<T>,
        ids_off: usize,
        qkv: &Vec<T>,
        q_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
        probs: &mut Vec<T>,
        p_off: usize,
    ) -> Result<()> {
        let (t, d, pr) = (a.seq, a.width(), a.probs_per_row());
        let ids = sl(ids, ids_off, a.rows * t, "attention ids")?;
        let qkv = sl(qkv, q_off, a.rows * t * 3 * d, "attention qkv")?;
        let out = sl_mut(out, o_off, a.rows * t * d, "attention out")?;
        let probs = sl_mut(probs, p_off, a.rows * pr, "attention probs")?;
        cpu_seq::par_seqs2(threads(), out, t * d, probs, pr, |r, o, p| {
            cpu_seq::attention_seq(
                a,
                &ids[r * t..][..t],
                &qkv[r * t * 3 * d..][..t * 3 * d],
                o,
                p,
            )
        });
        Ok(())
    }

    fn attention_vjp(
        &self,
        a: Attn,
        qkv: &Vec<T>,
        q_off: usize,
        probs: &Vec<T>,
        p_off: usize,
        dout: &Vec<T>,
        d_off: usize,
        dqkv: &mut Vec<T>,
        dq_off: usize,
    ) -> Result<()> {
        let (t, d, pr) = (a.seq, a.width(), a.probs_per_row());
        let qkv = sl(qkv, q_off, a.rows * t * 3 * d, "attention_vjp qkv")?;
        let probs = sl(probs, p_off, a.rows * pr, "attention_vjp probs")?;
        let dout = sl(dout, d_off, a.rows * t * d, "attention_vjp dout")?;
        let dqkv = sl_mut(dqkv, dq_off, a.rows * t * 3 * d, "attention_vjp dqkv")?;
        cpu_seq::par_seqs2(threads(), dqkv, t * 3 * d, &mut [], 0, |r, dq, _| {
            cpu_seq::attention_vjp_seq(
                a,
                &qkv[r * t * 3 * d..][..t * 3 * d],
                &probs[r * pr..][..pr],
                &dout[r * t * d..][..t * d],
                dq,
            )
        });
        Ok(())
    }

    fn attention_jvp(
        &self,
        a: Attn,
        qkv: &Vec<T>,
        q_off: usize,
        probs: &Vec<T>,
        p_off: usize,
        rqkv: &Vec<T>,
        rq_off: usize,
        rout: &mut Vec<T>,
        ro_off: usize,
    ) -> Result<()> {
        let (t, d, pr) = (a.seq, a.width(), a.probs_per_row());
        let qkv = sl(qkv, q_off, a.rows * t * 3 * d, "attention_jvp qkv")?;
        let probs = sl(probs, p_off, a.rows * pr, "attention_jvp probs")?;
        let rqkv = sl(rqkv, rq_off, a.rows * t * 3 * d, "attention_jvp rqkv")?;
        let rout = sl_mut(rout, ro_off, a.rows * t * d, "attention_jvp rout")?;
        cpu_seq::par_seqs2(threads(), rout, t * d, &mut [], 0, |r, ro, _| {
            let q = r * t * 3 * d..(r + 1) * t * 3 * d;
            cpu_seq::attention_jvp_seq(a, &qkv[q.clone()], &probs[r * pr..][..pr], &rqkv[q], ro)
        });
        Ok(())
    }

    fn attention_rvjp(
        &self,
        a: Attn,
        qkv: &Vec<T>,
        q_off: usize,
        probs: &Vec<T>,
        p_off: usize,
        rqkv: &Vec<T>,
        rq_off: usize,
        dout: &Vec<T>,
        d_off: usize,
        rdout: &Vec<T>,
        rd_off: usize,
        rdqkv: &mut Vec<T>,
        rdq_off: usize,
    ) -> Result<()> {
        let (t, d, pr) = (a.seq, a.width(), a.probs_per_row());
        let qkv = sl(qkv, q_off, a.rows * t * 3 * d, "attention_rvjp qkv")?;
        let probs = sl(probs, p_off, a.rows * pr, "attention_rvjp probs")?;
        let rqkv = sl(rqkv, rq_off, a.rows * t * 3 * d, "attention_rvjp rqkv")?;
        let dout = sl(dout, d_off, a.rows * t * d, "attention_rvjp dout")?;
        let rdout = sl(rdout, rd_off, a.rows * t * d, "attention_rvjp rdout")?;
        let rdqkv = sl_mut(rdqkv, rdq_off, a.rows * t * 3 * d, "attention_rvjp rdqkv")?;
        cpu_seq::par_seqs2(threads(), rdqkv, t * 3 * d, &mut [], 0, |r, rdq, _| {
            let q = r * t * 3 * d..(r + 1) * t * 3 * d;
            let o = r * t * d..(r + 1) * t * d;
            cpu_seq::attention_rvjp_seq(
                a,
                &qkv[q.clone()],
                &probs[r * pr..][..pr],
                &rqkv[q],
                &dout[o.clone()],
                &rdout[o],
                rdq,
            )
        });
        Ok(())
    }

    fn seq_mean(
        &self,
        g: Seq,
        masked: bool,
        ids: &Vec<T>,
        ids_off: usize,
        x: &Vec<T>,
        x_off: usize,
        out: &mut Vec<T>,
        o_off: usize,
    ) -> Result<()> {
        let ids = sl(ids, ids_off, g.rows * g.len, "seq_mean ids")?;
        let x = sl(x, x_off, g.numel(), "seq_mean x")?;
        let out = sl_mut(out, o_off, g.rows * g.width, "seq_mean out")?;
        cpu_seq::seq_mean(g, masked, ids, x, out);
        Ok(())
    }

    fn seq_mean_adjoint(
        &self,
        g: Seq,
        masked: bool,
        ids: &Vec<T>,
        ids_off: usize,
        dy: &Vec<T>,
        dy_off: usize,
        dx: &mut Vec<T>,
        dx_off: usize,
    ) -> Result<()> {
        let ids = sl(ids, ids_off, g.rows * g.len, "seq_mean_adjoint ids")?;
        let dy = sl(dy, dy_off, g.rows * g.width, "seq_mean_adjoint dy")?;
        let dx = sl_mut(dx, dx_off, g.numel(), "seq_mean_adjoint dx")?;
        cpu_seq::seq_mean_adjoint(g, masked, ids, dy, dx);
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

    fn adam(
        &self,
        g: &Vec<T>,
        m: &mut Vec<T>,
        v: &mut Vec<T>,
        d: &mut Vec<T>,
        len: usize,
        h: super::AdamStep,
    ) -> Result<()> {
        let g = sl(g, 0, len, "adam g")?;
        let m = sl_mut(m, 0, len, "adam m")?;
        let v = sl_mut(v, 0, len, "adam v")?;
        let d = sl_mut(d, 0, len, "adam d")?;
        // The operations of the earlier host formula, in its order (on the f64 backend the
        // results are those of earlier versions bit for bit).
        for i in 0..len {
            let gi = g[i].wide();
            let mi = h.beta1 * m[i].wide() + (1.0 - h.beta1) * gi;
            let vi = h.beta2 * v[i].wide() + (1.0 - h.beta2) * gi * gi;
            m[i] = T::of(mi);
            v[i] = T::of(vi);
            d[i] = T::of(h.lr * (mi / h.c1) / ((vi / h.c2).sqrt() + h.eps));
        }
        Ok(())
    }

    fn all_finite(&self, x: &Vec<T>, off: usize, len: usize) -> Result<bool> {
        Ok(sl(x, off, len, "all_finite")?.iter().all(|v| v.is_finite()))
    }
}

fn argmax<T: Real>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
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

/// Largest m and k sent to [`skinny_gemm`] (C is m×n with n large).
const SKINNY_ROWS: usize = 64;
/// Below this many elements a kernel runs on one thread.
pub(crate) const PAR_MIN: usize = 1 << 16;

/// Threads of the CPU kernels: `SUBSPACE_LAB_THREADS` if set (the desktop app leaves one core to
/// the UI), else every core.
fn threads() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("SUBSPACE_LAB_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Run `f(start, chunk)` over `out` split into contiguous pieces on up to `threads()` threads.
fn par_chunks<T: Send>(out: &mut [T], work: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let t = threads().min(out.len().max(1));
    if t <= 1 || work < PAR_MIN {
        f(0, out);
        return;
    }
    let per = out.len().div_ceil(t);
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(per).enumerate() {
            let f = &f;
            s.spawn(move || f(i * per, chunk));
        }
    });
}

/// Visit the 2×2 windows of images `g` (NHWC) in the pooled output's order: `f(o, at)` with `o` the
/// offset of the window's first output element and `at` the offsets of its four pixels' first
/// channel in row-major window order (dy, dx) = (0,0), (0,1), (1,0), (1,1).
fn pool_windows(g: Nhwc, mut f: impl FnMut(usize, [usize; 4])) {
    let (w, c) = (g.w, g.c);
    let q = g.pooled();
    let mut o = 0;
    for s in 0..g.n {
        for yq in 0..q.h {
            for xq in 0..q.w {
                let base = ((s * g.h + 2 * yq) * w + 2 * xq) * c;
                f(o, [base, base + c, base + w * c, base + w * c + c]);
                o += c;
            }
        }
    }
}

/// Run `f(first_row, rows)` over `out` split into whole rows of `width` elements on up to
/// `threads()` threads.
fn par_rows<T: Send>(out: &mut [T], width: usize, work: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let width = width.max(1);
    let rows = out.len() / width;
    let t = threads().min(rows.max(1));
    if t <= 1 || work < PAR_MIN {
        f(0, out);
        return;
    }
    let per = rows.div_ceil(t);
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(per * width).enumerate() {
            let f = &f;
            s.spawn(move || f(i * per, chunk));
        }
    });
}

/// [`par_rows`] over two outputs split into the same rows of `width`.
fn par_rows2<T: Send>(
    a: &mut [T],
    b: &mut [T],
    width: usize,
    work: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) {
    let width = width.max(1);
    let rows = a.len() / width;
    let t = threads().min(rows.max(1));
    if t <= 1 || work < PAR_MIN {
        f(0, a, b);
        return;
    }
    let per = rows.div_ceil(t);
    std::thread::scope(|s| {
        for (i, (ca, cb)) in a
            .chunks_mut(per * width)
            .zip(b.chunks_mut(per * width))
            .enumerate()
        {
            let f = &f;
            s.spawn(move || f(i * per, ca, cb));
        }
    });
}

/// Check that a LayerNorm's γ and β lie inside `theta`.
fn ln_params<T>(theta: &[T], l: Ln) -> Result<()> {
    sl(theta, l.gamma, l.width, "layer_norm gamma")?;
    sl(theta, l.beta, l.width, "layer_norm beta")?;
    Ok(())
}

/// c = α·op(A)·b + β·c with b, c vectors. Not transposed: A is m×k, each c[i] a dot product
/// accumulated in f64. Transposed: A is stored k×m and c = α·Σ_l b[l]·A[l, :] + β·c, swept by rows.
#[allow(clippy::too_many_arguments)]
fn gemv<T: Real>(
    ta: bool,
    m: usize,
    k: usize,
    alpha: f64,
    a: &[T],
    b: &[T],
    beta: f64,
    c: &mut [T],
) {
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
#[allow(clippy::too_many_arguments)]
fn skinny_gemm<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    alpha: f64,
    a: &[T],
    b: &[T],
    beta: f64,
    c: &mut [T],
) {
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

/// `x ← β·x`, with β = 0 overwriting (so NaN/Inf already in `x` do not survive, as in BLAS).
/// 1/√x, 0 at 0, NaN for negative or non-finite x: the CPU twin of `rsqrt` in
/// `shaders/elementwise.wgsl`.
pub(crate) fn rsqrt_f64(v: f64) -> f64 {
    if v == 0.0 {
        0.0
    } else if v > 0.0 && v.is_finite() {
        1.0 / v.sqrt()
    } else {
        f64::NAN
    }
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
fn dot_f64<T: Real>(x: &[T], y: &[T]) -> f64 {
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

/// C (m×n) = α·op(A)·op(B) + β·C on slices holding exactly op(A)'s m×k, op(B)'s k×n and C's m×n
/// elements (row-major; A stored k×m if `ta`, B stored n×k if `tb`).
#[allow(clippy::too_many_arguments)]
fn gemm_slices<T: Real>(
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f64,
    a: &[T],
    b: &[T],
    beta: f64,
    c: &mut [T],
) {
    if m == 0 || n == 0 {
        return;
    }
    // Skinny shapes (the Lanczos basis products) are memory-bound: packing them as a GEMM
    // costs more than the arithmetic, so they get streaming kernels.
    if n == 1 {
        gemv(ta, m, k, alpha, a, b, beta, c);
        return;
    }
    if !ta && !tb && m <= SKINNY_ROWS && k <= SKINNY_ROWS {
        skinny_gemm(m, n, k, alpha, a, b, beta, c);
        return;
    }
    // Row-major storage: op(A)[i, l] is A[i*k + l] or, transposed, A[l*m + i].
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the slices hold (asserted) the m×k, k×n and m×n elements the strides address,
    // and `c` is a unique borrow, so it cannot alias `a` or `b`.
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            T::of(alpha),
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            T::of(beta),
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    };
}
