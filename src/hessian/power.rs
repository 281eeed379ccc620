//! Power iteration with deflation: the simple reference for [`super::lanczos`]. Finds the k
//! eigenvalues of largest *magnitude* one after another, each iteration projecting out the
//! eigenvectors already found. Slow (its rate is |λ_{i+1}/λ_i|) but hard to get wrong.

use super::Operator;
use super::lanczos::{EigResult, random_vector};
use crate::backend::Backend;
use crate::error::{Error, Result};

/// k eigenpairs of largest |λ|, each to ‖A v − λ v‖ ≤ tol·|λ₁|, at most `max_iters` products each.
pub fn power_iteration<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    k: usize,
    tol: f64,
    max_iters: usize,
    seed: u64,
) -> Result<EigResult<B>> {
    let p = op.dim();
    if k == 0 || k > p {
        return Err(Error::InvalidArgument(format!("k = {k}: need 1 ≤ k ≤ {p}")));
    }
    let mut vectors = b.zeros(k * p)?;
    let mut values = Vec::with_capacity(k);
    let mut residuals = Vec::with_capacity(k);
    let mut w = b.zeros(p)?;
    let mut products = 0;
    let mut converged = true;
    let mut scale = 0.0f64;
    // Remove the components along the eigenvectors found so far (twice, for stability).
    let deflate = |b: &B, x: &mut B::Buf, vecs: &B::Buf, found: usize| -> Result<()> {
        for _ in 0..2 {
            for j in 0..found {
                let c = b.dot(vecs, j * p, x, 0, p)?;
                b.axpy(-c, vecs, j * p, x, 0, p)?;
            }
        }
        Ok(())
    };
    for i in 0..k {
        let mut v = b.upload(&random_vector(p, seed.wrapping_add(1000 + i as u64)))?;
        deflate(b, &mut v, &vectors, i)?;
        let nv = b.norm(&v, 0, p)?;
        b.scale(1.0 / nv, &mut v, 0, p)?;
        let mut lambda = 0.0;
        let mut res = f64::INFINITY;
        for _ in 0..max_iters.max(1) {
            op.apply(&v, 0, &mut w, 0)?;
            products += 1;
            deflate(b, &mut w, &vectors, i)?;
            lambda = b.dot(&v, 0, &w, 0, p)?;
            // residual ‖w − λ v‖ = sqrt(‖w‖² − λ²) would cancel; form it explicitly.
            let nw = b.norm(&w, 0, p)?;
            b.axpy(-lambda, &v, 0, &mut w, 0, p)?;
            res = b.norm(&w, 0, p)?;
            b.axpy(lambda, &v, 0, &mut w, 0, p)?;
            if !nw.is_finite() {
                return Err(Error::NonFinite(
                    "power iteration: operator returned NaN/Inf".into(),
                ));
            }
            scale = scale.max(lambda.abs());
            if res <= tol * scale || nw == 0.0 {
                break;
            }
            std::mem::swap(&mut v, &mut w);
            b.scale(1.0 / nw, &mut v, 0, p)?;
        }
        if res > tol * scale {
            converged = false;
        }
        b.copy(&v, 0, &mut vectors, i * p, p)?;
        values.push(lambda);
        residuals.push(res);
    }
    Ok(EigResult {
        values,
        residuals,
        vectors,
        dim: p,
        products,
        converged,
        scale,
        certified: false,
        warnings: Vec::new(),
        ridden: None,
    })
}
