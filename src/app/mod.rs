//! The sandbox app (eframe/egui): the 2-D toy and a live network run (fc-tanh / MNIST-5k, cnn-relu /
//! CIFAR10-5k or the Transformer / SST2-1k) side by side, natively and
//! in the browser (`web`). The state logic (`settings`, `toysim`, `live`) has no window and is unit-tested.

pub mod live;
pub mod scenario;
pub mod settings;
pub mod toysim;
pub mod ui;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod worker;

/// Test hook: after `after_s` seconds (and at least `min_steps` steps of the model's run, or after
/// `timeout_s` regardless) write a JSON report and a screenshot and close the app.
#[derive(Clone, Debug)]
pub struct AutoExit {
    pub after_s: f64,
    pub timeout_s: f64,
    pub min_steps: usize,
    pub report: std::path::PathBuf,
    pub screenshot: std::path::PathBuf,
    /// Close after this many steps per branch (after a fork; else steps since the run started)
    /// instead of after `after_s` seconds (`app --exit-after-steps`).
    pub exit_after_steps: Option<usize>,
    /// The app was asked to branch at start (`--branch`): the steps count after the fork.
    pub branch: bool,
}

/// How the desktop app starts: the test hook, a scenario, where to compute, branching at once.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub auto: Option<AutoExit>,
    /// A scenario's name (`--scenario`), instead of the saved settings' run.
    pub scenario: Option<String>,
    pub compute: Option<settings::Compute>,
    /// Fork as soon as the run is loaded (`--branch`).
    pub branch: bool,
    /// The model panel's network (`--model`), with the paper's settings for it.
    pub model: Option<settings::AppModel>,
    /// Training samples (`--samples`), instead of the model's default.
    pub samples: Option<usize>,
    /// A snapshot directory to start from (`--snapshot`), with its settings.
    pub snapshot: Option<std::path::PathBuf>,
}

/// One branch in the report.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Debug, serde::Serialize)]
pub struct BranchReport {
    pub name: String,
    pub steps: usize,
    pub loss_fork: f64,
    pub loss_now: f64,
    /// (loss_fork − loss_now) / loss_fork.
    pub rel_decrease: f64,
    /// ‖θ − θ_fork‖.
    pub dist_fork: f64,
    pub mean_chi: Option<f64>,
    pub stopped: Option<String>,
    /// (step, full-data loss) from the fork on.
    pub loss: Vec<[f64; 2]>,
    /// (step, full-data accuracy) from the fork on.
    pub accuracy: Vec<[f64; 2]>,
    /// (step, λ₁) of the branch's own spectra (where measured).
    pub lambda1: Vec<[f64; 2]>,
}

/// What the test hook writes.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub toy_steps: usize,
    /// The running run's network ("fc-tanh", "cnn-relu", "transformer"), training samples and η
    /// (as the worker started it: a snapshot's own).
    pub model: String,
    pub samples: usize,
    pub lr: f64,
    pub steps: usize,
    pub backend: String,
    pub steps_per_sec: f64,
    pub message: Option<String>,
    pub frames: ui::FrameStats,
    /// The scenario ("" for a fresh run) and where its run started.
    pub scenario: String,
    pub origin: String,
    pub start_step: usize,
    /// The fork's step, if the run branched.
    pub fork_step: Option<usize>,
    pub branches: Vec<BranchReport>,
    /// The paper's claim on the branches' numbers (live verdict), if there are any.
    pub verdict_holds: Option<bool>,
    pub verdict: Option<String>,
    /// Seconds from the app's start until every branch had made 1, 5, 10, 20, … steps (time to
    /// insight).
    pub seconds_to_branch_steps: Vec<(usize, f64)>,
}

#[cfg(not(target_arch = "wasm32"))]
pub fn report(app: &ui::SandboxApp) -> Report {
    let s = app.worker.snapshot();
    let h = &s.history;
    let run_settings = s.settings.clone().unwrap_or_else(|| app.settings.clone());
    let fork = h.fork.as_ref();
    let verdict = fork.and_then(|f| f.verdict());
    let marks = [1, 5, 10, 20, 50, 100, 200, 500, 1000];
    Report {
        toy_steps: app.toy.a.step.min(app.toy.b.step),
        model: run_settings.model.name().to_string(),
        samples: run_settings.samples,
        lr: run_settings.lr,
        steps: h.step,
        backend: s.backend.clone(),
        steps_per_sec: s.steps_per_sec,
        message: s.message.clone(),
        frames: app.frame_stats(),
        scenario: app.settings.scenario.clone(),
        origin: h.origin.clone(),
        start_step: h.start_step,
        fork_step: fork.map(|f| f.step),
        branches: fork.map_or(Vec::new(), |f| {
            f.branches
                .iter()
                .map(|b| BranchReport {
                    name: b.name.clone(),
                    steps: b.steps,
                    loss_fork: f.loss,
                    loss_now: b.loss_now(),
                    rel_decrease: b.rel_decrease(f.loss),
                    dist_fork: b.dist_fork,
                    mean_chi: Some(b.mean_chi()).filter(|c| c.is_finite()),
                    stopped: b.stopped.clone(),
                    loss: b.loss.clone(),
                    accuracy: b.accuracy.clone(),
                    lambda1: b.lambda1.clone(),
                })
                .collect()
        }),
        verdict_holds: verdict.as_ref().map(|v| v.0),
        verdict: verdict.map(|v| v.1),
        seconds_to_branch_steps: marks
            .iter()
            .filter_map(|&m| {
                app.branch_progress
                    .iter()
                    .find(|(n, _)| *n >= m)
                    .map(|&(_, t)| (m, t))
            })
            .collect(),
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod platform {
    use super::ui::SandboxApp;

    pub fn after_frame(_app: &mut SandboxApp, _ctx: &egui::Context) {}

    /// Write the report, take a screenshot of the next frame, save it, and close.
    pub fn finish(app: &mut SandboxApp, ctx: &egui::Context) {
        let Some(auto) = app.auto_exit() else { return };
        let rep = super::report(app);
        let c = ctx.clone();
        ctx.request_screenshot(move |img| {
            let (w, h) = (img.size[0] as u32, img.size[1] as u32);
            let bytes: Vec<u8> = img.pixels.iter().flat_map(|p| p.to_array()).collect();
            let saved = image::RgbaImage::from_raw(w, h, bytes)
                .map(|im| im.save(&auto.screenshot).map_err(|e| e.to_string()))
                .unwrap_or_else(|| Err("screenshot buffer has the wrong size".into()));
            let mut v = serde_json::to_value(&rep).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "screenshot".into(),
                    format!("{}", auto.screenshot.display()).into(),
                );
                o.insert("screenshot_error".into(), saved.err().into());
                o.insert("screenshot_size".into(), serde_json::json!([w, h]));
            }
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            if let Err(e) = std::fs::write(&auto.report, text) {
                eprintln!("cannot write {}: {e}", auto.report.display());
            }
            c.send_viewport_cmd(egui::ViewportCommand::Close);
        });
        ctx.request_repaint();
    }
}

#[cfg(target_arch = "wasm32")]
pub(crate) mod platform {
    use super::ui::SandboxApp;

    pub fn after_frame(app: &mut SandboxApp, ctx: &egui::Context) {
        super::web::after_frame(app, ctx);
    }

    /// The test hook is native only: the web page publishes its state instead.
    pub fn finish(_app: &mut SandboxApp, _ctx: &egui::Context) {}
}

/// Open the desktop app. `auto` is the test hook (from SUBSPACE_LAB_APP_* variables).
#[cfg(not(target_arch = "wasm32"))]
pub fn run_native(launch: Launch) -> crate::Result<()> {
    let auto = launch.auto.clone();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("subspace-lab")
            .with_inner_size([1500.0, 900.0]),
        renderer: eframe::Renderer::Wgpu,
        persist_window: auto.is_none(),
        ..Default::default()
    };
    eframe::run_native(
        "subspace-lab",
        options,
        Box::new(move |cc| {
            let mut settings: settings::Settings = if auto.is_some() {
                settings::Settings::default()
            } else {
                cc.storage
                    .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                    .unwrap_or_default()
            };
            // Saved settings pass the same checks as a URL hash (a hand-edited or older file).
            let mut warnings: Vec<String> = settings
                .sanitize()
                .into_iter()
                .map(|w| format!("saved settings: {w}"))
                .collect();
            if let Some(c) = launch.compute {
                settings.compute = c;
            }
            if let Some(m) = launch.model {
                settings = settings.with_model(m);
            }
            if let Some(n) = launch.samples {
                settings.samples = n;
                settings.batch = settings.batch.min(n);
                settings.scenario.clear();
                settings.snapshot.clear();
            }
            if let Some(dir) = &launch.snapshot {
                // The worker reads it and the run's settings become the snapshot's.
                settings.scenario.clear();
                settings.snapshot = dir.display().to_string();
            }
            if let Some(name) = &launch.scenario {
                // `--scenario`: its own settings (η, batch, k, …), as when picked in the app.
                settings = scenario::find(name)
                    .and_then(|sc| sc.settings(&settings))
                    .map_err(|e| e.to_string())?;
            }
            // `--samples` of a saved model it does not fit (checked against `--model` only).
            warnings.extend(
                settings
                    .sanitize()
                    .into_iter()
                    .map(|w| format!("command line: {w}")),
            );
                        // Compute on the renderer's device where it is a real GPU (one device, no copies
            // between two); the worker falls back to its own adapter or the CPU otherwise.
            if let Some(rs) = &cc.wgpu_render_state {
                worker::share_render_device(
                    rs.device.clone(),
                    rs.queue.clone(),
                    rs.adapter.get_info(),
                );
            }
            ui::SandboxApp::install_fonts(&cc.egui_ctx);
            let mut app = ui::SandboxApp::new(settings, warnings, auto);
            app.renderer = ui::RendererInfo::of(cc);
            if launch.branch {
                app.branch_on_start();
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| {
        crate::Error::Backend(format!(
            "cannot open a window: {e}. The desktop app needs a display (X11 or Wayland) and a GPU driver or Mesa's lavapipe (apt install mesa-vulkan-drivers); the CLI commands work without."
        ))
    })
}
