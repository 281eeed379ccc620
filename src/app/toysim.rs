//! The toy panel's simulation: two paths from the same start, each with its own optimiser that
//! can be switched mid-run ("switch now"), sharing the paper's exact toy step.

use crate::experiment::toy::{self, ToyMethod};
use rand::SeedableRng;

/// Steps kept per path (older points are thinned, never the start).
const MAX_POINTS: usize = 20_000;

#[derive(Clone)]
pub struct ToyPath {
    pub method: ToyMethod,
    pub x: f64,
    pub y: f64,
    pub step: usize,
    rng: rand_chacha::ChaCha8Rng,
    /// (x, y) along the path.
    pub path: Vec<[f64; 2]>,
    /// (step, χ₁(∇L)).
    pub chi: Vec<[f64; 2]>,
    /// Steps where the method was switched.
    pub switches: Vec<usize>,
    /// (x, y) where the method was switched (the path plot's marks; `path` is thinned).
    pub switch_points: Vec<[f64; 2]>,
    pub diverged: bool,
}

impl ToyPath {
    pub fn new(method: ToyMethod, x0: f64, y0: f64, seed: u64) -> Self {
        ToyPath {
            method,
            x: x0,
            y: y0,
            step: 0,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            path: vec![[x0, y0]],
            chi: vec![[0.0, toy::chi1(x0, y0)]],
            switches: Vec::new(),
            switch_points: Vec::new(),
            diverged: false,
        }
    }

    pub fn advance(&mut self, n: usize, lr: f64, coupling: f64) {
        for _ in 0..n {
            if self.diverged {
                return;
            }
            let (x, y) = toy::step(self.method, self.x, self.y, lr, coupling, &mut self.rng);
            if !(x.is_finite() && y.is_finite()) || x.abs() > 1e12 || y.abs() > 1e12 {
                self.diverged = true;
                return;
            }
            (self.x, self.y) = (x, y);
            self.step += 1;
            self.path.push([x, y]);
            self.chi.push([self.step as f64, toy::chi1(x, y)]);
        }
        if self.path.len() > MAX_POINTS {
            thin(&mut self.path);
            thin(&mut self.chi);
        }
    }

    /// Continue from here with another method; the switch step is marked.
    pub fn switch_to(&mut self, m: ToyMethod) {
        if m != self.method {
            self.method = m;
            self.switches.push(self.step);
            self.switch_points.push([self.x, self.y]);
        }
    }

    pub fn loss(&self) -> f64 {
        toy::loss(self.x, self.y)
    }

    /// A branch of this path from where it stands: method `m`, the same minibatch stream from
    /// here on (the rng's state copied), its own history starting at this point and step.
    pub fn fork(&self, m: ToyMethod) -> ToyPath {
        ToyPath {
            method: m,
            path: vec![[self.x, self.y]],
            chi: vec![[self.step as f64, toy::chi1(self.x, self.y)]],
            switches: Vec::new(),
            switch_points: Vec::new(),
            ..self.clone()
        }
    }
}

/// The EMA weight of the toy's fork rule: the networks' (0.9, [`crate::app::live::AUTO_THRESHOLD`]).
const EMA: f64 = 0.9;

/// Where the toy's SGD path forks into Dom-SGD and Bulk-SGD (the paper's Figure 8): the step where
/// SGD's EMA (0.9) of χ₁ is above the networks' threshold 0.95 while GD's, from the same start, has
/// fallen below it — SGD is aligned although both have reached the valley's floor (at (1, 1) the
/// wall's slope makes χ₁ ≈ 1 for both, so the rule alone would fork at the start, outside the
/// valley, where the dominant direction *is* the way down).
pub fn fork_due(sgd_ema: f64, gd_ema: f64) -> bool {
    let t = crate::app::live::AUTO_THRESHOLD;
    sgd_ema > t && gd_ema < t
}

/// Keep the first point and every second one after it (the last one too).
fn thin(v: &mut Vec<[f64; 2]>) {
    let last = v.last().copied();
    let kept: Vec<[f64; 2]> = v.iter().step_by(2).copied().collect();
    *v = kept;
    if let Some(l) = last
        && v.last() != Some(&l)
    {
        v.push(l);
    }
}

/// The toy's lesson ends after this many steps (the animation stops; "run" goes on).
pub const LESSON_STEPS: usize = 20_000;

/// Both paths of the toy panel and, once SGD aligned on the valley's floor, its Dom-SGD and
/// Bulk-SGD branches ([`fork_due`]).
#[derive(Clone)]
pub struct ToySim {
    pub a: ToyPath,
    pub b: ToyPath,
    /// Dom-SGD and Bulk-SGD from the SGD path's point at [`ToySim::fork_step`].
    pub forks: Vec<ToyPath>,
    pub fork_step: Option<usize>,
    /// EMA (0.9) of χ₁ along a and b, starting at the first χ₁ (as the networks').
    pub ema: [f64; 2],
}

impl ToySim {
    /// Path A and path B from (x0, y0); SGD-type paths share one minibatch seed, as in the paper.
    pub fn new(a: ToyMethod, b: ToyMethod, x0: f64, y0: f64, seed: u64) -> Self {
        let c = toy::chi1(x0, y0);
        ToySim {
            a: ToyPath::new(a, x0, y0, seed),
            b: ToyPath::new(b, x0, y0, seed),
            forks: Vec::new(),
            fork_step: None,
            ema: [c, c],
        }
    }

    /// The paths as (which SGD path, which GD path) when they are the lesson's pair.
    fn lesson_pair(&self) -> Option<(usize, usize)> {
        match (self.a.method, self.b.method) {
            (ToyMethod::Gd, ToyMethod::Sgd) => Some((1, 0)),
            (ToyMethod::Sgd, ToyMethod::Gd) => Some((0, 1)),
            _ => None,
        }
    }

    /// `n` steps of every path in lockstep; forks when [`fork_due`] (once, for the GD/SGD pair).
    pub fn advance(&mut self, n: usize, lr: f64, coupling: f64) {
        for _ in 0..n {
            self.a.advance(1, lr, coupling);
            self.b.advance(1, lr, coupling);
            for f in &mut self.forks {
                f.advance(1, lr, coupling);
            }
            for (e, p) in self.ema.iter_mut().zip([&self.a, &self.b]) {
                if let Some(c) = p.chi.last() {
                    *e = EMA * *e + (1.0 - EMA) * c[1];
                }
            }
            if self.fork_step.is_none()
                && let Some((s, g)) = self.lesson_pair()
                && fork_due(self.ema[s], self.ema[g])
            {
                let sgd = if s == 0 { &self.a } else { &self.b };
                self.forks = vec![sgd.fork(ToyMethod::DomSgd), sgd.fork(ToyMethod::BulkSgd)];
                self.fork_step = Some(sgd.step);
            }
        }
    }

    /// Whether the lesson's steps are done (the animation stops by itself).
    pub fn lesson_done(&self) -> bool {
        self.a.step.min(self.b.step) >= LESSON_STEPS || (self.a.diverged && self.b.diverged)
    }
}
