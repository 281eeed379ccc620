//! The browser's compute side: the page's handle on the compute Web Worker ([`Worker`], the same
//! API as the native worker thread), and the worker itself (`worker.js` imports the same wasm
//! module and calls [`subspace_lab_worker`] or [`jspi::subspace_lab_worker_jspi`]): it fetches
//! the model's data set from `assets/`, steps the run, and posts `Shared` snapshots (JSON) at most
//! every 100 ms. How it computes (WebGPU through JSPI, or the CPU backend in wasm) is told in
//! `crate::app::platform::web`.

use super::{
    AnyRun, Cmd, ComputeNote, Driver, ReadSnapshot, Shared, UserSnapshot, data_name, export_files,
    new_run_cpu, new_run_gpu, user_snapshot, wants_snapshot,
};
use crate::app::model::AppModel;
use crate::app::settings::{Compute, Settings};
use crate::backend::gpu::{GpuBackend, GpuOptions};
use crate::data::dataset::Dataset;
use crate::data::load::DatasetKind;
use crate::data::sets::DataSets;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Where the page's worker finds a data set (relative to the page): `assets/` and the cache's
/// file name.
pub fn asset_path(kind: DatasetKind) -> String {
    format!("assets/{}", kind.asset_name())
}

mod handle;
pub use handle::Worker;

/// An error on the browser's console.
pub(crate) fn console(msg: &str) {
    web_sys::console::error_1(&JsValue::from_str(msg));
}

// ----- the worker -----

/// The compute worker's entry where the browser lacks JSPI: the model's run on the CPU (wasm).
#[wasm_bindgen]
pub async fn subspace_lab_worker() {
    worker_main(false).await;
}

/// The compute worker's entry where the browser has JSPI: the run's code may suspend on WebGPU.
pub mod jspi {
    // wasm-bindgen marks its JSPI support experimental (a deprecation note).
    #![allow(deprecated)]
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen(jspi)]
    pub async fn subspace_lab_worker_jspi() {
        super::worker_main(true).await;
    }
}

async fn worker_main(jspi: bool) {
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    if let Err(e) = worker_loop(&scope, jspi).await {
        let s = Shared {
            message: Some(e),
            ..Shared::default()
        };
        post_snapshot(&scope, &s);
    }
}

thread_local! {
    /// The worker's WebGPU compute device, once opened.
    static WEB_GPU: RefCell<Option<GpuBackend>> = const { RefCell::new(None) };
}

/// Open WebGPU for compute if the settings want it and it is not open yet; why the run computes
/// on the CPU instead, if it does (an info line for the normal fallbacks, see [`ComputeNote`]).
async fn ensure_gpu(c: Compute, jspi: bool) -> Option<ComputeNote> {
    let open = WEB_GPU.with(|g| g.borrow().as_ref().map(|g| g.is_software()));
    match (c, open) {
        (Compute::Cpu, _) => return None,
        (Compute::Auto, Some(true)) => {
            return Some(ComputeNote::Info(super::SOFTWARE_ADAPTER_NOTE.into()));
        }
        (_, Some(_)) => return None,
        (_, None) => {}
    }
    if !jspi {
        return Some(ComputeNote::Info(
            "computing on the CPU (wasm): this browser lacks JSPI (WebAssembly JS Promise Integration), which computing on WebGPU from wasm needs"
                .into(),
        ));
    }
    let opts = GpuOptions {
        allow_software: c == Compute::Gpu,
    };
    match GpuBackend::new_web(opts).await {
        Ok(g) => {
            WEB_GPU.with(|slot| *slot.borrow_mut() = Some(g));
            None
        }
        Err(e) => Some(ComputeNote::of_gpu_error(&e)),
    }
}

/// The worker's run: on WebGPU when it is open and the settings allow it, else on the CPU.
fn web_run(s: &Settings, data: &Dataset) -> crate::Result<AnyRun> {
    if s.compute != Compute::Cpu {
        let g = WEB_GPU.with(|g| g.borrow().clone());
        if let Some(g) = g.filter(|g| s.compute == Compute::Gpu || !g.is_software()) {
            return new_run_gpu(g, s, data);
        }
    }
    new_run_cpu(s, data)
}

fn post_snapshot(scope: &web_sys::DedicatedWorkerGlobalScope, s: &Shared) {
    match serde_json::to_string(s) {
        Ok(t) => {
            let msg = js_sys::Array::of2(&JsValue::from_str("snapshot"), &JsValue::from_str(&t));
            let _ = scope.post_message(&msg);
        }
        Err(e) => console(&format!("subspace-lab worker: {e}")),
    }
}

async fn sleep(scope: &web_sys::DedicatedWorkerGlobalScope, ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        let _ = scope.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

/// The bytes at `url` (relative to the page or absolute). Errors: the fetch's or the HTTP status,
/// naming the URL.
async fn fetch_bytes(
    scope: &web_sys::DedicatedWorkerGlobalScope,
    url: &str,
) -> Result<Vec<u8>, String> {
    use wasm_bindgen_futures::JsFuture;
    let resp = JsFuture::from(scope.fetch_with_str(url))
        .await
        .map_err(|e| format!("{url} could not be fetched ({e:?})"))?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "fetch returned no Response")?;
    if !resp.ok() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("reading {url}: {e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// Fetch the data set of `m` from the page's assets into `sets`. Errors: what is missing on the
/// server and the command that makes it.
async fn fetch_data(
    scope: &web_sys::DedicatedWorkerGlobalScope,
    m: AppModel,
    sets: &mut DataSets,
) -> Result<(), String> {
    let kind = m.dataset();
    let asset = asset_path(kind);
    let how = format!(
        "build it from the verified cache: `cargo run --release -- data web-asset` (with `data fetch --dataset {}` done once; see README), then rebuild the page. The toy runs without it",
        kind.name()
    );
    let bytes = fetch_bytes(scope, &asset)
        .await
        .map_err(|e| format!("{} is not on this server ({e}): {how}", data_name(m)))?;
    sets.insert_cache_bytes(kind, &bytes, std::path::Path::new(&asset))
        .map_err(|e| e.to_string())
}

/// The user's snapshot at `src` (a URL of its directory), fetched and parsed. Errors: for the
/// status line, naming the URL and what a snapshot is.
async fn fetch_snapshot(
    scope: &web_sys::DedicatedWorkerGlobalScope,
    src: &str,
) -> Result<ReadSnapshot, String> {
    let base = src.trim_end_matches('/');
    let how = "a snapshot is the directory `reproduce PRESET --snapshot-at-switch` writes (snapshot.json and snapshot.safetensors), served beside the page or from a server that allows this page (CORS)";
    let (jp, tp) = (
        format!("{base}/snapshot.json"),
        format!("{base}/snapshot.safetensors"),
    );
    let json = fetch_bytes(scope, &jp)
        .await
        .map_err(|e| format!("{e}: {how}"))?;
    let raw = fetch_bytes(scope, &tp)
        .await
        .map_err(|e| format!("{e}: {how}"))?;
    let text = String::from_utf8(json).map_err(|e| format!("{jp}: not UTF-8 ({e})"))?;
    crate::experiment::snapshot::parse_snapshot(
        &text,
        std::path::Path::new(&jp),
        &raw,
        std::path::Path::new(&tp),
    )
    .map_err(|e| e.to_string())
}

/// What a reset to `s` needs first, fetched (as [`super::prepare_with`] natively): the
/// user's snapshot when wanted — the settings then become the snapshot's (`true`) — and the
/// model's data set; the snapshot is kept only once both arrived.
async fn prepare(
    scope: &web_sys::DedicatedWorkerGlobalScope,
    s: Settings,
    force: bool,
    sets: &mut DataSets,
    user: &mut Option<UserSnapshot>,
) -> Result<(Settings, bool), String> {
    let mut s = s;
    let mut pending = None;
    if wants_snapshot(&s, force, user.as_ref()) {
        let (snap, vectors) = fetch_snapshot(scope, &s.snapshot).await?;
        let (t, u) = user_snapshot(&s, snap, vectors)?;
        s = t;
        pending = Some(u);
    }
    if !sets.has(s.model.dataset()) {
        fetch_data(scope, s.model, sets).await?;
    }
    let derived = pending.is_some();
    if let Some(u) = pending {
        *user = Some(u);
    }
    Ok((s, derived))
}

/// The settings of the next reset (or snapshot load) the page sends, counting every command taken
/// on the way (`Shared::handled`; the others mean nothing without a run).
async fn next_reset(
    scope: &web_sys::DedicatedWorkerGlobalScope,
    pop: &impl Fn() -> Option<Cmd>,
    handled: &mut u64,
) -> Settings {
    loop {
        match pop() {
            Some(Cmd::Reset(s) | Cmd::LoadSnapshot(s)) => {
                *handled += 1;
                return s;
            }
            Some(_) => *handled += 1,
            None => sleep(scope, 10).await,
        }
    }
}

/// A reset (or, with `force`, a snapshot load): what it needs fetched first, then the new run;
/// the status line's message (cleared, or the compute note, on success).
async fn reset(
    scope: &web_sys::DedicatedWorkerGlobalScope,
    d: &mut Driver,
    shared: &mut Shared,
    note: &mut Option<ComputeNote>,
    s: Settings,
    force: bool,
    jspi: bool,
) -> Option<String> {
    let new_note = ensure_gpu(s.compute, jspi).await;
    let (sets, user) = d.parts_mut();
    if wants_snapshot(&s, force, user.as_ref()) || !sets.has(s.model.dataset()) {
        shared.message = Some("loading…".into());
        post_snapshot(scope, shared);
    }
    match prepare(scope, s, force, sets, user).await {
        Ok((s, derived)) => {
            if derived {
                d.announce();
            }
            let m = d.handle(Cmd::Reset(s));
            if m.is_none() {
                *note = new_note;
                shared.message = note_error(note);
                shared.info = note_info(note);
            }
            m.or(note_error(note))
        }
        Err(e) => {
            d.announce();
            Some(e)
        }
    }
}

async fn worker_loop(
    scope: &web_sys::DedicatedWorkerGlobalScope,
    jspi: bool,
) -> Result<(), String> {
    let queue = listen(scope);
    let pop = || queue.borrow_mut().pop_front();

    // The page sends the settings first. Every command taken counts (`Shared::handled`).
    let mut handled = 0u64;
    let mut settings = next_reset(scope, &pop, &mut handled).await;
    let mut shared = Shared {
        message: Some(format!("loading {}…", data_name(settings.model))),
        running: true,
        ..Shared::default()
    };
    post_snapshot(scope, &shared);
    let (mut d, derived, mut note, mut reason) =
        first_run(scope, &pop, &mut handled, &mut shared, &mut settings, jspi).await;
    d.handled = handled;
    if derived || reason.is_some() {
        d.announce();
    }
    // The reason a fallback runs stays on the status line (behind the first spectrum's note).
    shared.message = reason.clone().or(note_error(&note));
    shared.info = note_info(&note);
    let mut last_post: Option<web_time::Instant> = None;
    let mut last_yield = web_time::Instant::now();
    loop {
        let mut msg = None;
        let mut changed = false;
        while let Some(c) = pop() {
            changed = true;
            d.handled += 1;
            let mut run = Run {
                scope,
                d: &mut d,
                shared: &mut shared,
                note: &mut note,
                reason: &mut reason,
                jspi,
            };
            msg = run.command(c).await.or(msg);
        }
        if d.running && d.run.history().points.is_empty() {
            // The first spectrum is a cold Lanczos solve: say why nothing is drawn yet (an info
            // line; the fallback's reason or a compute error stays the message).
            let info = note_info(&note);
            shared.info = Some(first_spectrum_note(&d, info.as_deref()));
            post_snapshot(scope, &shared);
            sleep(scope, 0).await;
        }
        let first = d.run.history().points.is_empty();
        if let Some(m) = d.tick() {
            msg = Some(m);
        }
        if first && !d.run.history().points.is_empty() && msg.is_none() {
            shared.message = reason.clone().or(note_error(&note));
            shared.info = note_info(&note);
            changed = true;
        }
        // While paused nothing changes unless a command came: post only then.
        let due = d.running && last_post.is_none_or(|t| t.elapsed().as_millis() >= 100);
        if changed || msg.is_some() || due {
            d.publish(&mut shared, msg);
            let place = match d.run {
                AnyRun::Gpu(_) => "WebGPU through JSPI, from a Web Worker",
                AnyRun::Cpu(_) => "wasm, in a Web Worker",
            };
            shared.backend = format!("{} ({place})", shared.backend);
            post_snapshot(scope, &shared);
            last_post = Some(web_time::Instant::now());
        }
        // Yield so that commands arrive (every 16 ms while training: a chained zero timeout is
        // clamped to 4 ms, too much to pay after every small step); idle politely while paused.
        if !d.running {
            sleep(scope, 50).await;
            last_yield = web_time::Instant::now();
        } else if last_yield.elapsed().as_millis() >= 16 {
            sleep(scope, 0).await;
            last_yield = web_time::Instant::now();
        }
    }
}

/// The page's commands, as they arrive (the handler lives as long as the worker).
fn listen(scope: &web_sys::DedicatedWorkerGlobalScope) -> Rc<RefCell<VecDeque<Cmd>>> {
    let queue: Rc<RefCell<VecDeque<Cmd>>> = Rc::default();
    let q = queue.clone();
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let text = ev
            .dyn_ref::<web_sys::MessageEvent>()
            .and_then(|e| e.data().as_string());
        match text.map(|t| serde_json::from_str::<Cmd>(&t)) {
            Some(Ok(c)) => q.borrow_mut().push_back(c),
            Some(Err(e)) => console(&format!("subspace-lab worker: bad command: {e}")),
            None => {}
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as the page: so does its handler.
    on_message.forget();
    let _ = scope.post_message(&js_sys::Array::of1(&JsValue::from_str("ready")));
    queue
}

/// The first run: of the settings, or, when it cannot start (a missing asset or snapshot, one that
/// does not fit), fc-tanh on MNIST-5k with the reason on the status line, so that the next pick
/// can work; when not even that starts, the reason, and the next reset is tried. Returns the
/// driver, whether its settings derive from a snapshot, the compute note and the fallback's
/// reason.
async fn first_run(
    scope: &web_sys::DedicatedWorkerGlobalScope,
    pop: &impl Fn() -> Option<Cmd>,
    handled: &mut u64,
    shared: &mut Shared,
    settings: &mut Settings,
    jspi: bool,
) -> (Driver, bool, Option<ComputeNote>, Option<String>) {
    loop {
        let plain = settings.model == AppModel::FcTanh
            && settings.snapshot.is_empty()
            && settings.scenario.is_empty()
            && settings.compute == Compute::Auto;
        let mut tries = vec![settings.clone()];
        if !plain {
            let mut f = settings.with_model(AppModel::FcTanh);
            f.scenario.clear();
            f.compute = Compute::Auto;
            tries.push(f);
        }
        let mut errors: Vec<String> = Vec::new();
        let mut first = None;
        for s in tries {
            let mut sets = DataSets::default();
            let mut user = None;
            let started = match prepare(scope, s, false, &mut sets, &mut user).await {
                Ok((s, derived)) => {
                    let note = ensure_gpu(s.compute, jspi).await;
                    Driver::new(sets, user, &s, web_run)
                        .map(|d| (d, derived, note))
                        .map_err(|e| format!("cannot start the run: {e}"))
                }
                Err(e) => Err(e),
            };
            match started {
                Ok(x) => {
                    first = Some(x);
                    break;
                }
                Err(e) => errors.push(e),
            }
        }
        if let Some((d, derived, note)) = first {
            let reason = errors
                .first()
                .map(|e| format!("{e} — running fc-tanh / MNIST-5k instead"));
            return (d, derived, note, reason);
        }
        shared.running = false;
        shared.message = Some(errors.join("; and fc-tanh / MNIST-5k: "));
        post_snapshot(scope, shared);
        *settings = next_reset(scope, pop, handled).await;
        shared.running = true;
        shared.message = Some("loading…".into());
        post_snapshot(scope, shared);
    }
}

/// The error of a compute note, for the status line's message.
fn note_error(note: &Option<ComputeNote>) -> Option<String> {
    note.as_ref().and_then(|n| n.error()).map(str::to_string)
}

/// The info line of a compute note.
fn note_info(note: &Option<ComputeNote>) -> Option<String> {
    note.as_ref().and_then(|n| n.info()).map(str::to_string)
}

/// The info line while the first spectrum is computed (a cold Lanczos solve), with where the run
/// computes (`note`).
fn first_spectrum_note(d: &Driver, note: Option<&str>) -> String {
    let gpu = matches!(d.run, AnyRun::Gpu(_));
    format!(
        "computing the first spectrum ({}: top-{} Hessian eigenpairs on {} samples, {}){}",
        d.run.spec().describe(),
        2 * d.run.history().k,
        d.samples(),
        if gpu {
            "WebGPU"
        } else {
            "single-threaded wasm: the cold first solve is the run's slowest, its time proportional to n (a smaller n in the panel or #n= in the URL is faster)"
        },
        note.map(|n| format!(". {n}")).unwrap_or_default()
    )
}

/// The running worker's state a command acts on.
struct Run<'a> {
    scope: &'a web_sys::DedicatedWorkerGlobalScope,
    d: &'a mut Driver,
    shared: &'a mut Shared,
    /// Why the run computes where it does (the first spectrum's status line, or the info line).
    note: &'a mut Option<ComputeNote>,
    /// Why a fallback runs instead of the settings' run (cleared by a reset).
    reason: &'a mut Option<String>,
    jspi: bool,
}

impl Run<'_> {
    /// One command from the page; the status line's message, if any.
    async fn command(&mut self, c: Cmd) -> Option<String> {
        match c {
            Cmd::Export(_) => Some(match export_files(self.d) {
                Ok(files) => {
                    let names: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
                    for (name, bytes) in files {
                        let arr = js_sys::Array::of3(
                            &JsValue::from_str("file"),
                            &JsValue::from_str(&name),
                            &js_sys::Uint8Array::from(bytes.as_slice()),
                        );
                        let _ = self.scope.post_message(&arr);
                    }
                    format!("downloaded {}", names.join(", "))
                }
                Err(e) => format!("export failed: {e}"),
            }),
            Cmd::Reset(s) => {
                *self.reason = None;
                self.reset(s, false).await
            }
            Cmd::LoadSnapshot(s) => {
                *self.reason = None;
                self.reset(s, true).await
            }
            c => self.d.handle(c),
        }
    }

    /// A reset (or, with `force`, a snapshot load): [`reset`] on this run.
    async fn reset(&mut self, s: Settings, force: bool) -> Option<String> {
        reset(
            self.scope,
            self.d,
            self.shared,
            self.note,
            s,
            force,
            self.jspi,
        )
        .await
    }
}
