//! The paper's 2-D toy, exact: L(x, y) = ½(1000x² + y²) with minibatch losses ℓ₁,₂ = L ± 100xy,
//! SGD picking one of the two uniformly. The Hessian of L is diag(1000, 1), so the dominant
//! direction is e_x and χ₁(∇L) = |∂ₓL| / ‖∇L‖ = |1000x| / ‖(1000x, y)‖.
//!
//! GD drives x to 0 geometrically (ηλ₁ = 0.1 at η = 1e-4) while y decays at ηλ₂ = 1e-4 per step,
//! so χ₁ → 0; SGD's ±100y kicks keep x at ≈ 0.02·y, so 1000x dominates and χ₁ stays ≈ 1 — yet
//! only the y direction still has loss to lose, and Dom-SGD (the update projected on e_x) can
//! never move y.

use rand::{RngExt, SeedableRng};

/// How the toy is optimised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToyMethod {
    Gd,
    Sgd,
    DomSgd,
    BulkSgd,
}

impl ToyMethod {
    pub const ALL: [ToyMethod; 4] = [
        ToyMethod::Gd,
        ToyMethod::Sgd,
        ToyMethod::DomSgd,
        ToyMethod::BulkSgd,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ToyMethod::Gd => "GD",
            ToyMethod::Sgd => "SGD",
            ToyMethod::DomSgd => "Dom-SGD",
            ToyMethod::BulkSgd => "Bulk-SGD",
        }
    }
}

/// One recorded step of the toy.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ToyPoint {
    pub step: usize,
    pub x: f64,
    pub y: f64,
    pub loss: f64,
    /// χ₁ of the full gradient ∇L.
    pub chi: f64,
}

pub fn loss(x: f64, y: f64) -> f64 {
    0.5 * (1000.0 * x * x + y * y)
}

pub fn chi1(x: f64, y: f64) -> f64 {
    let gx = 1000.0 * x;
    let n = gx.hypot(y);
    if n == 0.0 { 0.0 } else { gx.abs() / n }
}

/// One step from (x, y): GD on L, or a minibatch loss ℓ± = L ± c·xy (`coupling` c, the paper's
/// 100) drawn from `rng`, with the Dom/Bulk projection (S₁ = span(e_x) at every point).
pub fn step(
    method: ToyMethod,
    x: f64,
    y: f64,
    lr: f64,
    coupling: f64,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> (f64, f64) {
    // ∇ℓ± = (1000x ± c·y, y ± c·x); GD uses ∇L = (1000x, y).
    let sign = if method == ToyMethod::Gd {
        0.0
    } else if rng.random::<bool>() {
        1.0
    } else {
        -1.0
    };
    let gx = 1000.0 * x + sign * coupling * y;
    let gy = y + sign * coupling * x;
    let (gx, gy) = match method {
        ToyMethod::DomSgd => (gx, 0.0),
        ToyMethod::BulkSgd => (0.0, gy),
        _ => (gx, gy),
    };
    (x - lr * gx, y - lr * gy)
}

/// Run `steps` steps from (x0, y0) with learning rate `lr`; the minibatch stream is ChaCha8
/// seeded with `seed` (the same stream for every SGD variant).
pub fn run(method: ToyMethod, x0: f64, y0: f64, lr: f64, steps: usize, seed: u64) -> Vec<ToyPoint> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut x, mut y) = (x0, y0);
    let mut out = Vec::with_capacity(steps + 1);
    out.push(ToyPoint {
        step: 0,
        x,
        y,
        loss: loss(x, y),
        chi: chi1(x, y),
    });
    for s in 1..=steps {
        (x, y) = step(method, x, y, lr, 100.0, &mut rng);
        if !(x.is_finite() && y.is_finite()) {
            break;
        }
        out.push(ToyPoint {
            step: s,
            x,
            y,
            loss: loss(x, y),
            chi: chi1(x, y),
        });
    }
    out
}
