//! The browser build: one wasm module serves both the page and its compute Web Worker.
//!
//! - The **page** (`index.html`, built by trunk) runs eframe's `WebRunner` on the canvas: WebGPU
//!   when the browser has it, WebGL2 otherwise. Settings come from and go to the URL's hash.
//!   A JSON state is published as `window.subspace_lab_state` for tests and curious users.
//! - The **worker** (`web/worker.js` imports the same module and calls one of its two entries)
//!   owns the model's run: a spectrum takes seconds, so it cannot run on the page's thread. It
//!   fetches the model's data set from `assets/` when the model is first picked
//!   (`assets/mnist5k-v1.bin`, `assets/cifar10-5k-v1.bin`, `assets/sst2-train-first1000.tsv`;
//!   see `web/README.md`), steps, and posts `Shared` snapshots (JSON) at most every 100 ms; the
//!   page only draws.
//! - **Where the worker computes.** The engine is synchronous: a Lanczos step reads a dot product
//!   back before it goes on. A browser cannot block on the GPU, so on WebGPU each read-back
//!   *suspends* the wasm stack with JSPI (WebAssembly JS Promise Integration, wasm-bindgen's
//!   `jspi` support) until WebGPU's promise settles, and the event loop runs on meanwhile.
//!   `worker.js` calls `subspace_lab_worker_jspi` where the browser has JSPI; that entry opens
//!   WebGPU for compute when the settings allow (`compute=auto`: a hardware adapter; `gpu`: a
//!   software one too). Otherwise — no JSPI, no WebGPU, a fallback adapter under `auto`, or
//!   `compute=cpu` — the run computes on the CPU backend compiled to wasm, and the status line says
//!   which and why.

use crate::app::settings::Settings;
use crate::app::ui::{Hooks, RendererInfo, SandboxApp};
use crate::app::worker::web::console;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// The module's entry: on the page, start the app. In the worker nothing: `worker.js` calls
/// [`crate::app::worker::web::subspace_lab_worker`] or its JSPI twin once the module is loaded.
pub fn main() {
    if web_sys::window().is_some() {
        page_main();
    }
}

// ----- the page -----

fn page_main() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let hash = window.location().hash().unwrap_or_default();
    // `branch` (or `branch=1`) in the hash forks the run as soon as it is loaded (a launch
    // option like `app --branch`, not a setting: the hash the page writes back drops it).
    let (mut branch, mut start) = (false, false);
    // `start` trains a scenario's run on from its fork without branching (it waits there).
    let rest: Vec<&str> = hash
        .trim_start_matches('#')
        .split('&')
        .filter(|p| {
            let b = *p == "branch" || *p == "branch=1";
            let s = *p == "start" || *p == "start=1";
            branch |= b;
            start |= s;
            !b && !s && !p.is_empty()
        })
        // `#teacher` alone is teacher mode, as `teacher=1`.
        .map(|p| if p == "teacher" { "teacher=1" } else { p })
        .collect();
    // The plain URL (no settings in the hash) opens the landing lesson.
    let (settings, warnings) = if rest.iter().all(|p| *p == "teacher=1") {
        let mut s = Settings::landing();
        s.teacher = !rest.is_empty();
        (s, Vec::new())
    } else {
        Settings::from_hash(&rest.join("&"))
    };
    wasm_bindgen_futures::spawn_local(async move {
        let Some(doc) = window.document() else {
            return console("subspace-lab: no document");
        };
        let status = doc.get_element_by_id("loading");
        let canvas = doc
            .get_element_by_id("subspace_lab_canvas")
            .and_then(|c| c.dyn_into::<web_sys::HtmlCanvasElement>().ok());
        let Some(canvas) = canvas else {
            return console("subspace-lab: no <canvas id=\"subspace_lab_canvas\"> in the page");
        };
        let started = eframe::WebRunner::new()
            .start(
                canvas,
                eframe::WebOptions::default(),
                Box::new(move |cc| {
                    SandboxApp::install_fonts(&cc.egui_ctx);
                    let mut app = SandboxApp::new(settings, warnings, None);
                    app.renderer = RendererInfo::of(cc);
                    if branch {
                        app.branch_on_start();
                    } else if start {
                        app.worker.send(crate::app::worker::Cmd::Start);
                    }
                    if app.renderer.api != "WebGPU" {
                        app.warnings.push(
                            "WebGPU is not available in this browser: drawing with WebGL2; the model's run computes on the CPU backend (wasm)."
                                .into(),
                        );
                    }
                    Ok(Box::new(app))
                }),
            )
            .await;
        match (started, status) {
            (Ok(()), Some(s)) => s.remove(),
            (Err(e), Some(s)) => s.set_text_content(Some(&format!(
                "subspace-lab could not start: {e:?}. It needs WebGPU or WebGL2."
            ))),
            (Err(e), None) => console(&format!("subspace-lab could not start: {e:?}")),
            (Ok(()), None) => {}
        }
    });
}

/// The platform's part of a frame: the hash and the published state after it; the test hook is
/// native only (the page publishes its state instead).
pub(crate) const HOOKS: Hooks = Hooks {
    after_frame,
    finish: |_, _| {},
};

/// After each frame: keep the URL's hash in step with the settings, publish the state.
pub fn after_frame(app: &mut SandboxApp, _ctx: &egui::Context) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let hash = app.settings.to_hash();
    if app.last_hash.as_deref() != Some(hash.as_str()) {
        if let Ok(h) = window.history() {
            let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&format!("#{hash}")));
        }
        app.last_hash = Some(hash);
    }
    // A few times a second is plenty for a test hook.
    if app.frames().is_multiple_of(10) {
        let s = app.worker.snapshot();
        let state = serde_json::json!({
            "renderer": app.renderer,
            "toy_steps": app.toy.sim.a.step.min(app.toy.sim.b.step),
            "model": app.settings.model.name(),
            "steps": s.history.step,
            "running": s.running,
            "backend": s.backend,
            "steps_per_sec": s.steps_per_sec,
            "message": s.message,
            "info": s.info,
            "frames": app.frame_stats(),
            // The first measured points (step, loss, λ₁): the end-to-end test compares the WebGPU
            // run with the CPU one on them.
            "first_points": s.history.points.iter().take(3)
                .map(|p| serde_json::json!([p.step, p.loss, p.eigenvalues.first()]))
                .collect::<Vec<_>>(),
            // The scenario and its branches, as the desktop app's report has them.
            "scenario": app.settings.scenario,
            "snapshot": app.settings.snapshot,
            "start_step": s.history.start_step,
            "fork_step": s.history.fork.as_ref().map(|f| f.step),
            "branch_steps": s.history.fork.as_ref().map(|f| f.steps()),
            "branches": s.history.fork.as_ref().map_or(Vec::new(), |f| f.branches.iter()
                .map(|b| serde_json::json!({"name": b.name, "steps": b.steps,
                    "rel_decrease": b.rel_decrease(f.loss), "dist_fork": b.dist_fork,
                    "accuracy_now": b.accuracy.last().map(|a| a[1]),
                    "lambda1_now": b.lambda1.last().map(|l| l[1]),
                    "stopped": b.stopped}))
                .collect::<Vec<_>>()),
            "verdict": crate::app::live::judge(&s.history).map(|v| v.text),
            "seconds_to_branch_steps": app.branch_progress,
        });
        let _ = js_sys::Reflect::set(
            &window,
            &JsValue::from_str("subspace_lab_state"),
            &JsValue::from_str(&state.to_string()),
        );
    }
}
