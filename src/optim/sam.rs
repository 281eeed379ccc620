//! Normalised sharpness-aware minimisation: d = η ∇L(θ + ρ g/‖g‖), both gradients on the same
//! minibatch (ρ = 0 or g = 0: the plain gradient step). On the backend it is [`perturb`] (the
//! stepper then takes the gradient there) followed by SGD's update; on the host [`sam_update`].
//! With it, SAM's edge of stability and the multiplier it is derived from.

use super::norm;
use crate::backend::Backend;
use crate::error::Result;

/// Write SAM's perturbed point θ + ρ g/‖g‖ into `at`; false (nothing written: the step is the
/// plain gradient step) when ρ = 0 or g = 0. One scalar (‖g‖) read back.
pub fn perturb<B: Backend>(
    b: &B,
    theta: &B::Buf,
    g: &B::Buf,
    rho: f64,
    at: &mut B::Buf,
    p: usize,
) -> Result<bool> {
    let gn = b.norm(g, 0, p)?;
    if gn != 0.0 && rho != 0.0 {
        b.copy(theta, 0, at, 0, p)?;
        b.axpy(rho / gn, g, 0, at, 0, p)?;
        return Ok(true);
    }
    Ok(false)
}

/// The update d of one normalised SAM step, θ ← θ − d with d = η ∇L(θ + ρ g/‖g‖), where `g` is
/// the gradient at θ and `grad_at` evaluates the gradient (on the same minibatch) at another point.
/// ρ = 0 or g = 0: the plain gradient step. Errors: those of `grad_at`.
pub fn sam_update(
    theta: &[f64],
    g: Vec<f64>,
    lr: f64,
    rho: f64,
    mut grad_at: impl FnMut(&[f64]) -> Result<Vec<f64>>,
) -> Result<Vec<f64>> {
    let gn = norm(&g);
    let g2 = if gn == 0.0 || rho == 0.0 {
        g
    } else {
        let s = rho / gn;
        let pert: Vec<f64> = theta.iter().zip(&g).map(|(t, gi)| t + s * gi).collect();
        grad_at(&pert)?
    };
    Ok(g2.iter().map(|x| lr * x).collect())
}

/// SAM's edge of stability (Long & Bartlett 2023, "Sharpness-aware minimization and the edge of
/// stability"): the largest sharpness λ₁ at which full-batch normalised SAM,
/// θ ← θ − η∇L(θ + ρ∇L/‖∇L‖), is stable on a quadratic,
///
///   SAM-edge = ‖∇L‖/(2ρ) · (√(1 + 8ρ/(η‖∇L‖)) − 1),
///
/// in units of λ (1/η). Derivation: on L = ½θᵀHθ, write g = ‖∇L‖ and take the component x of θ
/// along the top eigenvector u (eigenvalue λ); ‖∇L‖ is dominated by the other directions and held
/// fixed. The perturbed point's u-component is x + ρλx/g, its gradient λ(1 + ρλ/g)x, so one SAM
/// step multiplies x by m(λ) = 1 − ηλ(1 + ρλ/g). m < 1 for λ > 0, and m ≥ −1 ⇔
/// (ηρ/g)λ² + ηλ − 2 ≤ 0 ⇔ λ ≤ g/(2ρ)·(√(1 + 8ρ/(ηg)) − 1). As ρ → 0 this tends to GD's 2/η, and
/// it lies below 2/η for ρ > 0. The paper (Appendix B) prints 8/(η‖∇L‖) inside the root — not
/// dimensionless, and divergent as ρ → 0: a typo; this is the corrected form.
/// Returns 2/η when ρ = 0 or ∇L = 0 (the limit).
pub fn sam_edge(grad_norm: f64, lr: f64, rho: f64) -> f64 {
    if grad_norm == 0.0 || rho == 0.0 {
        return 2.0 / lr;
    }
    let a = 8.0 * rho / (lr * grad_norm);
    // √(1 + a) − 1 = a/(√(1 + a) + 1), without cancellation for small a.
    grad_norm / (2.0 * rho) * (a / ((1.0 + a).sqrt() + 1.0))
}

/// The factor one normalised-SAM step multiplies the component along an eigenvector of
/// eigenvalue λ by, on a quadratic with gradient norm `grad_norm` held fixed:
/// 1 − ηλ(1 + ρλ/‖∇L‖) (see [`sam_edge`]). |·| = 1 exactly at the SAM edge.
pub fn sam_multiplier(lambda: f64, grad_norm: f64, lr: f64, rho: f64) -> f64 {
    1.0 - lr * lambda * (1.0 + rho * lambda / grad_norm)
}

/// The SAM edge as the paper's Appendix B prints it, ‖∇L‖/(2ρ)·(√(1 + 8/(η‖∇L‖)) − 1): kept only
/// to name the typo in summaries (`sam_edge_printed`); not used for any verdict.
pub fn sam_edge_as_printed(grad_norm: f64, lr: f64, rho: f64) -> f64 {
    if grad_norm == 0.0 || rho == 0.0 {
        return 2.0 / lr;
    }
    grad_norm / (2.0 * rho) * ((1.0 + 8.0 / (lr * grad_norm)).sqrt() - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On ½(λx² + μy²) with x tiny (‖∇L‖ dominated by y), one SAM step of the optimiser's own
    /// update multiplies x by 1 − ηλ(1 + ρλ/‖∇L‖); |·| < 1 at 0.9× the SAM edge, > 1 at 1.1×.
    #[test]
    fn sam_edge_is_where_one_sam_step_turns_unstable() {
        let (lr, rho, mu) = (0.01, 0.1, 3.0);
        let (x, y) = (1e-9, 2.0);
        let g0 = mu * y;
        let edge = sam_edge(g0, lr, rho);
        assert!(edge < 2.0 / lr && edge > 0.0);
        for (f, stable) in [(0.9, true), (1.1, false)] {
            let lam = f * edge;
            let grad = |t: &[f64]| Ok(vec![lam * t[0], mu * t[1]]);
            let theta = [x, y];
            let g = grad(&theta).unwrap();
            let gn = norm(&g);
            let d = sam_update(&theta, g, lr, rho, grad).unwrap();
            let measured = (x - d[0]) / x;
            let m = sam_multiplier(lam, gn, lr, rho);
            assert!((measured - m).abs() < 1e-12, "{measured} vs {m}");
            assert_eq!(m.abs() < 1.0, stable, "f = {f}: multiplier {m}");
            // At the edge itself the multiplier is −1 (to round-off).
        }
        let at = sam_multiplier(edge, g0, lr, rho);
        assert!((at + 1.0).abs() < 1e-12, "{at}");
        // ρ → 0: GD's 2/η; the printed form instead diverges.
        assert!((sam_edge(g0, lr, 1e-12) - 2.0 / lr).abs() < 1e-6);
        assert!(sam_edge_as_printed(g0, lr, 1e-12) > 1e6);
        // Dimensionless inside the root: scaling ‖∇L‖ and ρ together (a change of units of θ)
        // leaves the edge unchanged; the printed form does not.
        let c = 7.0;
        assert!((sam_edge(c * g0, lr, c * rho) - edge).abs() < 1e-9 * edge);
        let printed = sam_edge_as_printed(g0, lr, rho);
        assert!((sam_edge_as_printed(c * g0, lr, c * rho) - printed).abs() > 1e-3 * printed);
    }
}
