//! What a spectrum cannot say by itself, as sentences for its output (the `spectrum` command's
//! warnings and help, the README): the order of the eigenvalues when the most negative one
//! dominates, and the derivative conventions at the kinks of ReLU and max-pooling.

/// The top-k eigenvalues are the k algebraically largest (the paper's order, λ₁ ≥ … ≥ λ_k), not
/// the k largest in magnitude. When the smallest eigenvalue `lambda_min` is negative and larger in
/// magnitude than λ_k (the last of `eigenvalues`, largest first), say so: a solver by magnitude
/// (Cohen et al.'s `eigsh(which='LM')`) would have returned it among the top, and the dominant
/// subspace P_k would differ. None otherwise (or when `eigenvalues` is empty or a value is not
/// finite).
pub fn negative_dominance(eigenvalues: &[f64], lambda_min: f64) -> Option<String> {
    let (&l1, &lk) = (eigenvalues.first()?, eigenvalues.last()?);
    let k = eigenvalues.len();
    if !(lambda_min.is_finite() && l1.is_finite() && lk.is_finite()) {
        return None;
    }
    if lambda_min >= 0.0 || lambda_min.abs() <= lk.abs() {
        return None;
    }
    let beyond = if lambda_min.abs() > l1.abs() {
        format!(
            ", even larger than λ₁ = {l1:.6}: it is the Hessian's largest eigenvalue in magnitude"
        )
    } else {
        String::new()
    };
    Some(format!(
        "λ_min = {lambda_min:.6} is negative and larger in magnitude than λ_{k} = {lk:.6}{beyond}. \
         The top {k} here are the {k} algebraically largest eigenvalues (the paper orders them λ₁ ≥ λ₂ ≥ …); \
         a solver by magnitude, such as Cohen et al.'s eigsh(which='LM'), would have returned λ_min among \
         them, and its dominant subspace (P_k, χ_k) would hold that negative-curvature direction"
    ))
}

/// The derivative conventions at the kinks, for `spectrum --help` and the README.
pub const KINK_CONVENTIONS: &str = "ReLU′(0) = 0 (an input exactly 0 passes no gradient), and a max-pool window \
whose maximum is tied routes the gradient to the first maximum (in the window's row-major order): PyTorch's \
choices. At such a kink the loss is not twice differentiable; the Hessian computed is that of the branch these \
choices pick, as PyTorch's autograd computes it.";

/// When θ sits on kinks (`relu_zeros` pre-activations exactly 0 over the data, `pool_ties` max-pool
/// windows with a tied maximum): a sentence saying so and what it means; None when there are none.
pub fn on_kinks(relu_zeros: usize, pool_ties: usize) -> Option<String> {
    if relu_zeros == 0 && pool_ties == 0 {
        return None;
    }
    Some(format!(
        "θ sits on kinks of the network: {relu_zeros} ReLU input(s) exactly 0 and {pool_ties} max-pool window(s) with a tied maximum over the data. {KINK_CONVENTIONS} A θ a hair away may give another Hessian."
    ))
}
