//! The MNIST run off the UI thread. Natively a worker thread owns the run and publishes a snapshot
//! after every step; the UI only reads the snapshot (one short lock per frame), so a slow step or
//! a long eigen solve never stalls a frame. On the web there are no threads: see `web_step`.

use super::live::{Action, History, LiveRun};
use super::settings::Settings;
use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::experiment::spec::{OptKind, OptimizerSpec};
use crate::nn::mlp::MlpSpec;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub enum Cmd {
    Start,
    Pause,
    Reset(Settings),
    Act(Action),
    Export(PathBuf),
}

/// What the UI reads each frame.
#[derive(Clone, Debug, Default)]
pub struct Shared {
    pub history: History,
    pub running: bool,
    pub backend: String,
    pub steps_per_sec: f64,
    /// Data loading, errors, export results.
    pub message: Option<String>,
}

pub struct Worker {
    shared: Arc<Mutex<Shared>>,
    tx: std::sync::mpsc::Sender<Cmd>,
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    s.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn optimizer_of(s: &Settings) -> OptimizerSpec {
    let batch = if s.optimizer == OptKind::Gd {
        None
    } else {
        Some(s.batch.min(s.samples).max(1))
    };
    let mut o = OptimizerSpec::new(s.optimizer, s.lr, batch);
    o.rho = s.rho;
    o
}

/// A live run on whichever backend was chosen.
pub enum AnyRun {
    Cpu(Box<LiveRun<crate::backend::cpu::CpuBackend<f32>>>),
    Gpu(Box<LiveRun<crate::backend::gpu::GpuBackend>>),
}

macro_rules! with_run {
    ($r:expr, |$x:ident| $body:expr) => {
        match $r {
            AnyRun::Cpu($x) => $body,
            AnyRun::Gpu($x) => $body,
        }
    };
}

impl AnyRun {
    pub fn step(&mut self) -> crate::Result<()> {
        with_run!(self, |r| r.step())
    }
    pub fn apply(&mut self, a: Action) -> crate::Result<()> {
        with_run!(self, |r| r.apply(a))
    }
    pub fn history(&self) -> &History {
        with_run!(self, |r| &r.history)
    }
    pub fn theta(&self) -> &[f64] {
        with_run!(self, |r| &r.theta)
    }
    pub fn spec(&self) -> &MlpSpec {
        with_run!(self, |r| r.spec())
    }
    pub fn backend_name(&self) -> String {
        with_run!(self, |r| {
            let b = r.backend();
            match b.adapter() {
                Some(a) => format!("{} ({a})", b.name()),
                None => b.name(),
            }
        })
    }
}

/// A live run of fc-tanh on `data` with the settings' optimiser, k, cadence and seed.
fn live<B: Backend + Clone>(b: B, s: &Settings, data: &Dataset) -> crate::Result<LiveRun<B>> {
    LiveRun::new(
        b,
        &MlpSpec::fc_tanh(),
        data,
        optimizer_of(s),
        s.k,
        s.eigen_every,
        s.seed,
    )
}

pub fn new_run_cpu(s: &Settings, data: &Dataset) -> crate::Result<AnyRun> {
    Ok(AnyRun::Cpu(Box::new(live(
        crate::backend::cpu::CpuBackend::<f32>::new(),
        s,
        data,
    )?)))
}

/// Export the run as the CLI does: metrics.csv, summary.json, metrics.png and the weights.
pub fn export(run: &AnyRun, dir: &std::path::Path) -> crate::Result<String> {
    use crate::experiment::output::write_atomic;
    use crate::experiment::run::Record;
    let h = run.history();
    let top = h
        .points
        .iter()
        .map(|p| p.eigenvalues.len())
        .max()
        .unwrap_or(0);
    let records: Vec<Record> = h
        .points
        .iter()
        .map(|p| Record {
            run: h.run_name.clone(),
            phase: "live".into(),
            step: p.step,
            loss: p.loss,
            accuracy: p.accuracy,
            grad_norm: f64::NAN,
            chi_k: p.chi,
            chi_ema: p.chi_ema,
            eigenvalues: p.eigenvalues.clone(),
            two_over_lr: p.edge,
            sam_edge: f64::NAN,
            dom_lr: f64::NAN,
            bulk_lr: f64::NAN,
            dist_switch: f64::NAN,
            dist_init: f64::NAN,
            hvps: 0,
            worst_residual: f64::NAN,
        })
        .collect();
    write_atomic(
        &dir.join("metrics.csv"),
        Record::csv(&records, top).as_bytes(),
    )?;
    let markers: Vec<serde_json::Value> = h
        .markers
        .iter()
        .map(|m| serde_json::json!({"step": m.step, "event": m.label}))
        .collect();
    let summary = serde_json::json!({
        "source": "subspace-lab app", "version": env!("CARGO_PKG_VERSION"),
        "backend": run.backend_name(), "run": h.run_name, "step": h.step, "k": h.k,
        "events": markers,
    });
    let text = serde_json::to_string_pretty(&summary)
        .map_err(|e| crate::Error::InvalidArgument(e.to_string()))?;
    write_atomic(&dir.join("summary.json"), text.as_bytes())?;
    let first = h.markers.first().map(|m| m.step);
    crate::experiment::plot::metrics_png(
        &dir.join("metrics.png"),
        &h.run_name,
        &records,
        h.k,
        first,
    )?;
    crate::nn::weights::save(
        &dir.join("weights.safetensors"),
        run.spec(),
        run.theta(),
        crate::nn::weights::SaveDtype::F32,
    )?;
    Ok(format!("exported to {}", dir.display()))
}

impl Worker {
    pub fn spawn(settings: Settings) -> Worker {
        let shared = Arc::new(Mutex::new(Shared {
            message: Some("loading MNIST-5k…".into()),
            running: true,
            ..Shared::default()
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("mnist-run".into())
            .spawn(move || native_loop(settings, sh, rx));
        if let Err(e) = spawned {
            lock(&shared).message = Some(format!("cannot start the training thread: {e}"));
        }
        Worker { shared, tx }
    }
    pub fn send(&self, c: Cmd) {
        // The thread only ends when the app does; a send error then is harmless.
        let _ = self.tx.send(c);
    }
    pub fn snapshot(&self) -> Shared {
        lock(&self.shared).clone()
    }
}

fn native_data(s: &Settings) -> crate::Result<Dataset> {
    use crate::data::mnist;
    let dir = mnist::data_dir()?;
    let (m, _) = mnist::load_or_fetch(&dir, &mut |_| {})?;
    m.dataset(mnist::Preprocess::Normalize, s.samples)
}

fn native_run(s: &Settings, data: &Dataset) -> crate::Result<AnyRun> {
    use crate::backend::gpu::{GpuBackend, GpuOptions};
    // A real GPU if there is one; a software adapter would be slower than the CPU backend.
    let force_cpu = std::env::var("SUBSPACE_LAB_APP_BACKEND").as_deref() == Ok("cpu");
    if !force_cpu
        && let Ok(g) = GpuBackend::new(GpuOptions {
            allow_software: false,
        })
    {
        return Ok(AnyRun::Gpu(Box::new(live(g, s, data)?)));
    }
    new_run_cpu(s, data)
}

fn native_loop(settings: Settings, shared: Arc<Mutex<Shared>>, rx: std::sync::mpsc::Receiver<Cmd>) {
    let data = match native_data(&settings) {
        Ok(d) => d,
        Err(e) => {
            let mut s = lock(&shared);
            s.running = false;
            s.message = Some(format!(
                "MNIST-5k is not available ({e}). Run `subspace-lab data fetch` (needs npm or network once), then reset. The toy runs without it."
            ));
            return;
        }
    };
    let mut run = match native_run(&settings, &data) {
        Ok(r) => r,
        Err(e) => {
            let mut s = lock(&shared);
            s.running = false;
            s.message = Some(format!("cannot start the run: {e}"));
            return;
        }
    };
    {
        let mut s = lock(&shared);
        s.backend = run.backend_name();
        s.message = None;
        s.history = run.history().clone();
    }
    let mut running = true;
    let mut window: std::collections::VecDeque<web_time::Instant> = Default::default();
    loop {
        let cmd = if running {
            match rx.try_recv() {
                Ok(c) => Some(c),
                Err(std::sync::mpsc::TryRecvError::Empty) => None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => return,
            }
        };
        let mut msg = None;
        match cmd {
            Some(Cmd::Start) => running = true,
            Some(Cmd::Pause) => running = false,
            Some(Cmd::Reset(s)) => {
                let data = if s.samples == data.n {
                    Ok(data.clone())
                } else {
                    native_data(&s)
                };
                match data.and_then(|d| native_run(&s, &d)) {
                    Ok(r) => {
                        run = r;
                        window.clear();
                    }
                    Err(e) => msg = Some(format!("reset failed: {e}")),
                }
            }
            Some(Cmd::Act(a)) => {
                if let Err(e) = run.apply(a) {
                    msg = Some(e.to_string());
                }
            }
            Some(Cmd::Export(dir)) => {
                msg = Some(match export(&run, &dir) {
                    Ok(m) => m,
                    Err(e) => format!("export failed: {e}"),
                });
            }
            None => {}
        }
        if running {
            if let Err(e) = run.step() {
                running = false;
                msg = Some(format!("{e} — paused; reset or lower η"));
            }
            let now = web_time::Instant::now();
            window.push_back(now);
            while window.len() > 20 {
                window.pop_front();
            }
        }
        let sps = match (window.front(), window.back()) {
            (Some(a), Some(b)) if window.len() > 1 => {
                (window.len() - 1) as f64 / b.duration_since(*a).as_secs_f64().max(1e-9)
            }
            _ => 0.0,
        };
        let mut s = lock(&shared);
        s.history = run.history().clone();
        s.running = running;
        s.steps_per_sec = sps;
        if msg.is_some() {
            s.message = msg;
        }
    }
}
