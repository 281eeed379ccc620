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

/// Both paths of the toy panel.
#[derive(Clone)]
pub struct ToySim {
    pub a: ToyPath,
    pub b: ToyPath,
}

impl ToySim {
    /// Path A and path B from (x0, y0); SGD-type paths share one minibatch seed, as in the paper.
    pub fn new(a: ToyMethod, b: ToyMethod, x0: f64, y0: f64, seed: u64) -> Self {
        ToySim {
            a: ToyPath::new(a, x0, y0, seed),
            b: ToyPath::new(b, x0, y0, seed),
        }
    }
    pub fn advance(&mut self, n: usize, lr: f64, coupling: f64) {
        self.a.advance(n, lr, coupling);
        self.b.advance(n, lr, coupling);
    }
}
