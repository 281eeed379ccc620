//! The native worker: a thread owning the [`Driver`], so that a slow step or a long eigen solve
//! never stalls a frame; the app reads its [`Shared`] state under a mutex.

use super::*;
use std::sync::{Arc, Mutex};

/// The native worker: a thread owning the `Driver`.
pub struct Worker {
    shared: Arc<Mutex<Shared>>,
    tx: std::sync::mpsc::Sender<Cmd>,
    sent: std::cell::Cell<u64>,
    repaint: Repaint,
}

/// The window's context, once the app has drawn a frame: the thread asks for a repaint when it
/// publishes something new, so the window redraws only then (not every frame while nothing
/// changed: under a software rasteriser drawing took 1.5 of 2 cores from the training thread).
type Repaint = Arc<Mutex<Option<egui::Context>>>;

/// How soon after new numbers the window redraws: at most this often while the run steps fast.
pub const REPAINT_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

fn ask_repaint(r: &Repaint) {
    if let Some(c) = r.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        c.request_repaint_after(REPAINT_AFTER);
    }
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl Worker {
    pub fn spawn(settings: Settings) -> Worker {
        let shared = Arc::new(Mutex::new(Shared {
            message: Some(format!("loading {}…", data_name(settings.model))),
            running: true,
            ..Shared::default()
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        let sh = shared.clone();
        let repaint: Repaint = Arc::default();
        let rp = repaint.clone();
        let spawned = std::thread::Builder::new()
            .name("model-run".into())
            .spawn(move || native_loop(settings, sh, rx, rp));
        if let Err(e) = spawned {
            lock(&shared).message = Some(format!("cannot start the training thread: {e}"));
        }
        Worker {
            shared,
            tx,
            sent: std::cell::Cell::new(0),
            repaint,
        }
    }
    /// Have the worker ask `ctx` for a repaint whenever it publishes new state.
    pub fn set_repaint(&self, ctx: &egui::Context) {
        let mut r = self.repaint.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(ctx.clone());
        }
    }
    pub fn send(&self, c: Cmd) {
        self.sent.set(self.sent.get() + 1);
        // The thread only ends when the app does; a send error then is harmless.
        let _ = self.tx.send(c);
    }
    /// Commands sent so far ([`Shared::handled`] counts those the worker took).
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }
    pub fn snapshot(&self) -> Shared {
        lock(&self.shared).clone()
    }
}

type Device = (wgpu::Device, wgpu::Queue, wgpu::AdapterInfo);

static RENDER_DEVICE: Mutex<Option<Device>> = Mutex::new(None);

/// Offer the renderer's device for compute (the desktop app calls this before spawning the
/// worker). Only a hardware adapter is taken: on a software one the CPU backend is faster.
pub fn share_render_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) {
    if info.device_type != wgpu::DeviceType::Cpu {
        *RENDER_DEVICE.lock().unwrap_or_else(|e| e.into_inner()) = Some((device, queue, info));
    }
}

fn native_run(s: &Settings, data: &Dataset) -> crate::Result<AnyRun> {
    use crate::app::settings::Compute;
    use crate::backend::gpu::{GpuBackend, GpuOptions};
    let force_cpu = std::env::var("SUBSPACE_LAB_APP_BACKEND").as_deref() == Ok("cpu");
    if force_cpu || s.compute == Compute::Cpu {
        return new_run_cpu(s, data);
    }
    // The renderer's device when it is a real GPU, else a GPU of our own: a software adapter
    // only when asked for (`Gpu`), as it is slower than the CPU backend.
    let shared = RENDER_DEVICE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let gpu = match shared {
        Some((d, q, i)) => GpuBackend::on_device(d, q, i),
        None => GpuBackend::new(GpuOptions {
            allow_software: s.compute == Compute::Gpu,
        }),
    };
    match gpu {
        Ok(g) => new_run_gpu(g, s, data),
        Err(e) if s.compute == Compute::Gpu => Err(e),
        Err(_) => new_run_cpu(s, data),
    }
}

/// Load `m`'s data set from the data directory (fetching it where it can); the message says
/// what to do when it cannot.
fn load(sets: &mut DataSets, m: AppModel) -> Result<(), String> {
    let kind = m.dataset();
    crate::data::mnist::data_dir()
        .and_then(|dir| sets.ensure(kind, &dir, &mut |_| {}))
        .map_err(|e| {
            format!(
                "{} is not available ({e}). Run `subspace-lab data fetch --dataset {}` once, then pick the model again or restart. The toy runs without it.",
                data_name(m),
                kind.name()
            )
        })
}

/// [`prepare_with`] natively: the snapshot read from its directory, the data set from the
/// data directory.
fn prepare(
    s: Settings,
    force: bool,
    sets: &mut DataSets,
    user: &mut Option<UserSnapshot>,
) -> Result<(Settings, bool), String> {
    prepare_with(
        s,
        force,
        sets,
        user,
        |src| {
            let dir = std::path::Path::new(src);
            crate::experiment::snapshot::load_snapshot(dir).map_err(|e| {
                format!(
                    "cannot read the snapshot in {}: {e}. A snapshot is the directory `reproduce PRESET --snapshot-at-switch` writes (OUT/PRESET/snapshot/, with snapshot.json and snapshot.safetensors)",
                    dir.display()
                )
            })
        },
        load,
    )
}

/// The run of `settings`, or, when it cannot start (its data set or snapshot missing, a
/// snapshot that does not fit), fc-tanh on MNIST-5k with the paper's settings and the reason
/// on the status line, so that the worker lives on and the next pick can work. Errors: not even
/// that run starts (MNIST-5k missing).
fn first_run(settings: Settings) -> Result<(Driver, Option<String>), String> {
    let try_start = |s: Settings| -> Result<Driver, String> {
        let mut sets = DataSets::default();
        let mut user = None;
        let (s, derived) = prepare(s, false, &mut sets, &mut user)?;
        let mut d = Driver::new(sets, user, &s, native_run)
            .map_err(|e| format!("cannot start the run: {e}"))?;
        if derived {
            d.announce();
        }
        Ok(d)
    };
    match try_start(settings.clone()) {
        Ok(d) => Ok((d, None)),
        Err(e)
            if settings.model != AppModel::FcTanh
                || !settings.snapshot.is_empty()
                || !settings.scenario.is_empty()
                || settings.compute != crate::app::settings::Compute::Auto =>
        {
            let mut fallback = settings.with_model(AppModel::FcTanh);
            fallback.scenario.clear();
            fallback.compute = crate::app::settings::Compute::Auto;
            let mut d =
                try_start(fallback).map_err(|e2| format!("{e}; and fc-tanh / MNIST-5k: {e2}"))?;
            d.announce();
            Ok((d, Some(format!("{e} — running fc-tanh / MNIST-5k instead"))))
        }
        Err(e) => Err(e),
    }
}

/// A reset (or, with `force`, a snapshot load): what it needs read first, then the new run;
/// the status line's message, cleared on success.
fn reset(d: &mut Driver, s: Settings, force: bool, shared: &Mutex<Shared>) -> Option<String> {
    let (sets, user) = d.parts_mut();
    if wants_snapshot(&s, force, user.as_ref()) || !sets.has(s.model.dataset()) {
        lock(shared).message = Some("loading…".into());
    }
    match prepare(s, force, sets, user) {
        Ok((s, derived)) => {
            if derived {
                d.announce();
            }
            let m = d.handle(Cmd::Reset(s));
            if m.is_none() {
                lock(shared).message = None;
            }
            m
        }
        Err(e) => {
            d.announce();
            Some(e)
        }
    }
}

fn native_loop(
    settings: Settings,
    shared: Arc<Mutex<Shared>>,
    rx: std::sync::mpsc::Receiver<Cmd>,
    repaint: Repaint,
) {
    let fail = |msg: String| {
        let mut s = lock(&shared);
        s.running = false;
        s.message = Some(msg);
        ask_repaint(&repaint);
    };
    // Nothing starts (MNIST-5k missing too): say why and wait for a reset that can.
    let mut settings = settings;
    let mut handled = 0;
    let (mut d, note) = loop {
        match first_run(settings) {
            Ok(x) => break x,
            Err(e) => fail(e),
        }
        settings = loop {
            match rx.recv() {
                Ok(Cmd::Reset(s) | Cmd::LoadSnapshot(s)) => {
                    handled += 1;
                    break s;
                }
                Ok(_) => handled += 1,
                Err(_) => return,
            }
        };
        lock(&shared).message = Some("loading…".into());
    };
    d.handled = handled;
    lock(&shared).message = note.clone();
    d.publish(&mut lock(&shared), note);
    ask_repaint(&repaint);
    loop {
        let cmd = if d.running {
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
        if cmd.is_some() {
            d.handled += 1;
        }
        let mut msg = match cmd {
            Some(Cmd::Export(dir)) => Some(match export(&d, dir.as_ref()) {
                Ok(m) => m,
                Err(e) => format!("export failed: {e}"),
            }),
            Some(Cmd::Reset(s)) => reset(&mut d, s, false, &shared),
            Some(Cmd::LoadSnapshot(s)) => reset(&mut d, s, true, &shared),
            Some(c) => d.handle(c),
            None => None,
        };
        if let Some(m) = d.tick() {
            msg = Some(m);
        }
        d.publish(&mut lock(&shared), msg);
        ask_repaint(&repaint);
    }
}
