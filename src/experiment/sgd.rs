//! The paper's SGD protocol on a network (fig. 1): train with SGD, switch, then continue from the
//! *same* parameters with the *same* minibatch stream under SGD, Dom-SGD (update projected on the
//! top-k Hessian subspace S_k) and Bulk-SGD (projected on its complement), S_k recomputed from the
//! full training-loss Hessian at every step (Lanczos warm-started from the previous step's
//! eigenvectors).

use super::verdict::Verdict;
use crate::backend::{Backend, LossKind};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::hessian::lanczos::{LanczosOptions, lanczos};
use crate::nn::mlp::{Engine, MlpSpec};
use rand::{RngExt, SeedableRng};

/// Which part of the minibatch gradient a step uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Projection {
    None,
    Dominant,
    Bulk,
}

impl Projection {
    /// The variant's name: "SGD", "Dom-SGD", … or, full batch, "GD", "Dom-GD", ….
    pub fn run_name(self, full_batch: bool) -> &'static str {
        match (self, full_batch) {
            (Projection::None, false) => "SGD",
            (Projection::Dominant, false) => "Dom-SGD",
            (Projection::Bulk, false) => "Bulk-SGD",
            (Projection::None, true) => "GD",
            (Projection::Dominant, true) => "Dom-GD",
            (Projection::Bulk, true) => "Bulk-GD",
        }
    }
}

/// When SGD hands over to the compared variants.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Switch {
    /// After this many SGD steps.
    AtStep(usize),
    /// When the EMA (factor 0.9) of χ_k(∇L) exceeds `threshold` (the paper's rule: 0.95),
    /// checked every step; give up after `max_steps`.
    ChiEma { threshold: f64, max_steps: usize },
}

/// The settings of one fig-1 style run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SgdProtocol {
    pub lr: f64,
    /// Minibatch size; `None` is full-batch GD (the edge-of-stability protocol).
    pub batch: Option<usize>,
    pub k: usize,
    pub switch: Switch,
    /// Steps of each variant after the switch.
    pub steps_after: usize,
    /// Full-data loss, accuracy and χ_k recorded every this many steps after the switch.
    pub record_every: usize,
    /// Lanczos residual tolerance relative to |λ₁|.
    pub tol: f64,
    pub seed: u64,
    pub loss: LossKind,
}

/// One row of metrics.csv.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub run: String,
    pub step: usize,
    pub loss: f64,
    pub accuracy: f64,
    /// χ_k(∇L) when computed at this step (NaN otherwise).
    pub chi_k: f64,
    pub chi_ema: f64,
    pub lambda_1: f64,
    pub lambda_k: f64,
    /// ‖θ_t − θ_switch‖.
    pub dist_switch: f64,
}

/// The outcome: every recorded row, the switch step and the verdict.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SgdOutcome {
    pub switch_step: usize,
    pub rows: Vec<Row>,
    pub verdicts: Vec<Verdict>,
    /// Full-data loss at the switch and at the end of each variant.
    pub final_loss: Vec<(String, f64, f64)>,
}

/// The dominant variant's relative loss decrease must stay below this fraction of the plain
/// optimiser's ("stalls").
pub const DOM_MAX_FRACTION: f64 = 0.25;
/// The bulk variant's relative loss decrease must reach at least this fraction of the plain
/// optimiser's ("trains as well").
pub const BULK_MIN_FRACTION: f64 = 0.75;

#[derive(Clone)]
struct Stream {
    rng: rand_chacha::ChaCha8Rng,
    perm: Vec<usize>,
    pos: usize,
}

impl Stream {
    fn new(n: usize, seed: u64) -> Self {
        Stream {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xba7c4),
            perm: (0..n).collect(),
            pos: n,
        }
    }
    /// The next minibatch: consecutive slices of a permutation redrawn every epoch.
    fn next(&mut self, batch: usize) -> Vec<usize> {
        let n = self.perm.len();
        if self.pos + batch > n {
            for i in (1..n).rev() {
                let j = self.rng.random_range(0..=i);
                self.perm.swap(i, j);
            }
            self.pos = 0;
        }
        let b = self.perm[self.pos..self.pos + batch].to_vec();
        self.pos += batch;
        b
    }
}

/// Everything one step needs, kept across steps.
struct Trainer<B: Backend> {
    full: Engine<B>,
    batch: Engine<B>,
    data: Dataset,
    lanczos: LanczosOptions,
    /// Previous step's eigenvectors (k × p) for the warm start.
    warm: Option<B::Buf>,
    /// The parameters the full-data engine was last set to, so that a full-batch step right
    /// after a spectrum at the same θ reuses its forward/backward pass instead of redoing it.
    full_theta: Vec<f64>,
}

struct Spectrum {
    loss: f64,
    accuracy: f64,
    chi: f64,
    lambda_1: f64,
    lambda_k: f64,
    /// All computed eigenvalues, largest first.
    values: Vec<f64>,
    /// Rows u_i of S_k on the host (k × p).
    basis: Vec<f64>,
}

impl<B: Backend + Clone> Trainer<B> {
    fn minibatch_grad(&mut self, theta: &[f64], rows: &[usize]) -> Result<Vec<f64>> {
        self.batch.replace_data(&self.data.gather(rows)?)?;
        self.batch.set_params_host(theta)?;
        self.batch.backend().download(self.batch.grad()?)
    }

    /// Put the full-data engine at θ (a no-op when it already is there).
    fn full_at(&mut self, theta: &[f64]) -> Result<crate::nn::mlp::Eval> {
        if self.full_theta.as_slice() == theta
            && let Ok(e) = self.full.eval()
        {
            return Ok(e);
        }
        let e = self.full.set_params_host(theta)?;
        self.full_theta.clear();
        self.full_theta.extend_from_slice(theta);
        Ok(e)
    }

    /// The gradient a step uses: a minibatch's from the stream, or the full-data one.
    fn step_grad(
        &mut self,
        theta: &[f64],
        batch: Option<usize>,
        stream: &mut Stream,
    ) -> Result<Vec<f64>> {
        match batch {
            Some(b) => {
                let rows = stream.next(b);
                self.minibatch_grad(theta, &rows)
            }
            None => {
                self.full_at(theta)?;
                self.full.backend().download(self.full.grad()?)
            }
        }
    }

    /// Full-data loss, ∇L and the top-k subspace at θ.
    fn spectrum(&mut self, theta: &[f64]) -> Result<Spectrum> {
        let k = self.lanczos.k;
        self.spectrum_top(theta, k)
    }

    /// Full-data loss, ∇L, the top `lanczos.k` eigenpairs at θ, and χ over the first `k_chi`.
    fn spectrum_top(&mut self, theta: &[f64], k_chi: usize) -> Result<Spectrum> {
        let e = self.full_at(theta)?;
        let b = self.full.backend().clone();
        let k = self.lanczos.k;
        let eig = lanczos(
            &b,
            &mut self.full,
            &self.lanczos,
            self.warm.as_ref().map(|w| (w, k)),
            &mut |_| {},
        )?;
        let basis = b.download(&eig.vectors)?;
        let g = b.download(self.full.grad()?)?;
        let p = g.len();
        let gn = norm(&g);
        let kc = k_chi.min(k);
        let pg = project(&basis, kc, p, &g, Projection::Dominant);
        let chi = if gn == 0.0 {
            0.0
        } else {
            (norm(&pg) / gn).min(1.0)
        };
        let s = Spectrum {
            loss: e.loss,
            accuracy: e.accuracy,
            chi,
            lambda_1: eig.values[0],
            lambda_k: eig.values[kc - 1],
            values: eig.values.clone(),
            basis,
        };
        self.warm = Some(eig.vectors);
        Ok(s)
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// P_k g or P_k⊥ g with the basis as k rows of length p.
fn project(basis: &[f64], k: usize, p: usize, g: &[f64], proj: Projection) -> Vec<f64> {
    if proj == Projection::None {
        return g.to_vec();
    }
    let mut pg = vec![0.0; p];
    for i in 0..k {
        let u = &basis[i * p..(i + 1) * p];
        let c: f64 = u.iter().zip(g).map(|(a, b)| a * b).sum();
        pg.iter_mut().zip(u).for_each(|(x, &ui)| *x += c * ui);
    }
    if proj == Projection::Bulk {
        pg.iter_mut().zip(g).for_each(|(x, &gi)| *x = gi - *x);
    }
    pg
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Run the protocol. `progress(run, step, total)` is called after every step.
pub fn run<B: Backend + Clone>(
    backend: B,
    spec: &MlpSpec,
    data: &Dataset,
    proto: &SgdProtocol,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<SgdOutcome> {
    let p = spec.num_params();
    if proto.lr <= 0.0 || !proto.lr.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "lr = {}: must be positive",
            proto.lr
        )));
    }
    if proto.batch.is_some_and(|b| b == 0 || b > data.n) {
        return Err(Error::InvalidArgument(format!(
            "batch = {:?}: need 1..={}",
            proto.batch, data.n
        )));
    }
    if proto.k == 0 || proto.k > p {
        return Err(Error::InvalidArgument(format!(
            "k = {}: need 1..={p}",
            proto.k
        )));
    }
    let first = data.gather(&(0..proto.batch.unwrap_or(1)).collect::<Vec<_>>())?;
    let full_batch = proto.batch.is_none();
    let mut t = Trainer {
        full: Engine::new(backend.clone(), spec.clone(), proto.loss, data, 0)?,
        batch: Engine::new(backend.clone(), spec.clone(), proto.loss, &first, 0)?,
        data: data.clone(),
        lanczos: LanczosOptions {
            k: proto.k,
            tol: proto.tol,
            ..LanczosOptions::default()
        },
        warm: None,
        full_theta: Vec::new(),
    };
    let mut theta = spec.init(proto.seed);
    let mut stream = Stream::new(data.n, proto.seed);
    let mut rows = Vec::new();
    // Phase 1: SGD until the switch.
    let mut ema = f64::NAN;
    let (max_pre, rule) = match proto.switch {
        Switch::AtStep(s) => (s, None),
        Switch::ChiEma {
            threshold,
            max_steps,
        } => (max_steps, Some(threshold)),
    };
    let mut step = 0;
    while step < max_pre {
        if let Some(threshold) = rule {
            let s = t.spectrum(&theta)?;
            ema = if ema.is_nan() {
                s.chi
            } else {
                0.9 * ema + 0.1 * s.chi
            };
            rows.push(Row {
                run: "SGD (before switch)".into(),
                step,
                loss: s.loss,
                accuracy: s.accuracy,
                chi_k: s.chi,
                chi_ema: ema,
                lambda_1: s.lambda_1,
                lambda_k: s.lambda_k,
                dist_switch: f64::NAN,
            });
            if ema > threshold {
                break;
            }
        }
        let g = t.step_grad(&theta, proto.batch, &mut stream)?;
        theta
            .iter_mut()
            .zip(&g)
            .for_each(|(th, gi)| *th -= proto.lr * gi);
        step += 1;
        progress("SGD", step, max_pre);
    }
    let switch_step = step;
    let theta_switch = theta.clone();
    // Phase 2: the three variants from the same θ and the same stream.
    let mut final_loss = Vec::new();
    for proj in [Projection::None, Projection::Dominant, Projection::Bulk] {
        let name = proj.run_name(full_batch);
        let mut th = theta_switch.clone();
        let mut st = stream.clone();
        t.warm = None;
        let mut start_loss = f64::NAN;
        let mut end_loss = f64::NAN;
        for s in 0..=proto.steps_after {
            let record = s % proto.record_every.max(1) == 0 || s == proto.steps_after;
            let needs_basis = proj != Projection::None && s < proto.steps_after;
            let spec_now = if needs_basis || record {
                Some(t.spectrum(&th)?)
            } else {
                None
            };
            if let (true, Some(sp)) = (record, &spec_now) {
                rows.push(Row {
                    run: name.into(),
                    step: switch_step + s,
                    loss: sp.loss,
                    accuracy: sp.accuracy,
                    chi_k: sp.chi,
                    chi_ema: f64::NAN,
                    lambda_1: sp.lambda_1,
                    lambda_k: sp.lambda_k,
                    dist_switch: dist(&th, &theta_switch),
                });
                if s == 0 {
                    start_loss = sp.loss;
                }
                end_loss = sp.loss;
            }
            if s == proto.steps_after {
                break;
            }
            let g = t.step_grad(&th, proto.batch, &mut st)?;
            let d = match &spec_now {
                Some(sp) if proj != Projection::None => project(&sp.basis, proto.k, p, &g, proj),
                _ => g,
            };
            th.iter_mut()
                .zip(&d)
                .for_each(|(x, di)| *x -= proto.lr * di);
            if th.iter().any(|x| !x.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "{name} diverged at step {}",
                    switch_step + s + 1
                )));
            }
            progress(name, s + 1, proto.steps_after);
        }
        final_loss.push((name.to_string(), start_loss, end_loss));
    }
    let drop = |i: usize| {
        let (_, a, b) = &final_loss[i];
        (a - b) / a
    };
    let (d_sgd, d_dom, d_bulk) = (drop(0), drop(1), drop(2));
    let holds =
        d_sgd > 0.0 && d_dom < DOM_MAX_FRACTION * d_sgd && d_bulk > BULK_MIN_FRACTION * d_sgd;
    let pct = |i: usize| {
        let (n, a, b) = &final_loss[i];
        format!("{n} {a:.4} → {b:.4} ({:+.1} %)", -100.0 * (a - b) / a)
    };
    let claim = if full_batch {
        "Dom-GD stalls while Bulk-GD trains like GD"
    } else {
        "Dom-SGD stalls while Bulk-SGD trains like SGD"
    };
    let plain = Projection::None.run_name(full_batch);
    let verdict = Verdict::new(
        claim,
        holds,
        format!(
            "over {} steps after the switch at step {switch_step}: {}; {}; {} (thresholds: Dom < {DOM_MAX_FRACTION}·{plain}, Bulk > {BULK_MIN_FRACTION}·{plain})",
            proto.steps_after,
            pct(0),
            pct(1),
            pct(2)
        ),
        &[
            ("switch_step", switch_step as f64),
            ("sgd_rel_decrease", d_sgd),
            ("dom_rel_decrease", d_dom),
            ("bulk_rel_decrease", d_bulk),
        ],
    );
    Ok(SgdOutcome {
        switch_step,
        rows,
        verdicts: vec![verdict],
        final_loss,
    })
}

/// A plain trajectory — SGD (minibatches of `batch`) or full-batch GD (`batch = None`) — with the
/// top-`top` Hessian eigenvalues and χ_k(∇L) recorded every `record_every` steps (figs. 2–3, 18–19).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrajectoryConfig {
    pub lr: f64,
    pub batch: Option<usize>,
    pub steps: usize,
    pub record_every: usize,
    pub k: usize,
    pub top: usize,
    pub tol: f64,
    pub seed: u64,
    pub loss: LossKind,
}

/// One record of a trajectory: `values` are the top eigenvalues; `chi_ema` is the EMA (0.9) of
/// χ_k over the records.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrajectoryRow {
    pub step: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub chi_k: f64,
    pub chi_ema: f64,
    /// ‖θ_t − θ_0‖.
    pub dist_init: f64,
    pub values: Vec<f64>,
    /// Parameters at this record (kept for paired comparisons, not written to CSV).
    #[serde(skip)]
    pub theta: Vec<f64>,
}

pub fn trajectory<B: Backend + Clone>(
    backend: B,
    spec: &MlpSpec,
    data: &Dataset,
    cfg: &TrajectoryConfig,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Vec<TrajectoryRow>> {
    let p = spec.num_params();
    if cfg.lr <= 0.0 || !cfg.lr.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "lr = {}: must be positive",
            cfg.lr
        )));
    }
    if cfg.batch.is_some_and(|b| b == 0 || b > data.n) {
        return Err(Error::InvalidArgument(format!(
            "batch = {:?}: need 1..={}",
            cfg.batch, data.n
        )));
    }
    if cfg.k == 0 || cfg.top < cfg.k || cfg.top > p {
        return Err(Error::InvalidArgument(format!(
            "k = {}, top = {}: need 1 ≤ k ≤ top ≤ {p}",
            cfg.k, cfg.top
        )));
    }
    let bsz = cfg.batch.unwrap_or(1);
    let first = data.gather(&(0..bsz).collect::<Vec<_>>())?;
    let mut t = Trainer {
        full: Engine::new(backend.clone(), spec.clone(), cfg.loss, data, 0)?,
        batch: Engine::new(backend.clone(), spec.clone(), cfg.loss, &first, 0)?,
        data: data.clone(),
        lanczos: LanczosOptions {
            k: cfg.top,
            tol: cfg.tol,
            ..LanczosOptions::default()
        },
        warm: None,
        full_theta: Vec::new(),
    };
    let name = if cfg.batch.is_some() { "SGD" } else { "GD" };
    let theta0 = spec.init(cfg.seed);
    let mut theta = theta0.clone();
    let mut stream = Stream::new(data.n, cfg.seed);
    let mut rows = Vec::new();
    let mut ema = f64::NAN;
    for step in 0..=cfg.steps {
        if step % cfg.record_every.max(1) == 0 || step == cfg.steps {
            let s = t.spectrum_top(&theta, cfg.k)?;
            ema = if ema.is_nan() {
                s.chi
            } else {
                0.9 * ema + 0.1 * s.chi
            };
            rows.push(TrajectoryRow {
                step,
                loss: s.loss,
                accuracy: s.accuracy,
                chi_k: s.chi,
                chi_ema: ema,
                dist_init: dist(&theta, &theta0),
                values: s.values,
                theta: theta.clone(),
            });
        }
        if step == cfg.steps {
            break;
        }
        let g = t.step_grad(&theta, cfg.batch, &mut stream)?;
        theta
            .iter_mut()
            .zip(&g)
            .for_each(|(th, gi)| *th -= cfg.lr * gi);
        if theta.iter().any(|x| !x.is_finite()) {
            return Err(Error::NonFinite(format!(
                "{name} diverged at step {}",
                step + 1
            )));
        }
        progress(name, step + 1, cfg.steps);
    }
    Ok(rows)
}
