//! The desktop app: the window ([`run_native`]), the saved settings (the URL hash's text, read
//! key by key through the settings' key table), and the test hook's report and screenshot, whose
//! paths are checked before the window opens and whose absence at the end is an error.

use crate::app::settings::Settings;
use crate::app::ui::{FrameStats, Hooks, RendererInfo, SandboxApp};
use crate::app::{Launch, scenario, worker};
use std::path::PathBuf;
use std::sync::Mutex;

/// The platform's part of a frame: nothing after it; the test hook's report when it fires.
pub(crate) const HOOKS: Hooks = Hooks {
    after_frame: |_, _| {},
    finish,
};

/// The key under which the app saves its settings: the URL hash's text (`lr=0.05&k=5`), so that
/// a bad value costs only itself. Older apps saved a RON record under `eframe::APP_KEY`.
pub const SAVED_KEY: &str = "settings";

/// What the test hook wrote: `None` until it tried; `Err` names a promised file not written.
static WRITTEN: Mutex<Option<Result<(), (PathBuf, String)>>> = Mutex::new(None);

/// One branch in the report.
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
    pub frames: FrameStats,
    /// The scenario ("" for a fresh run) and where its run started.
    pub scenario: String,
    pub origin: String,
    pub start_step: usize,
    /// The fork's step, if the run branched.
    pub fork_step: Option<usize>,
    pub branches: Vec<BranchReport>,
    /// The paper's claim on the branches' smoothed numbers (the live verdict,
    /// [`crate::app::live::judge`]), if there are any.
    pub verdict_holds: Option<bool>,
    pub verdict: Option<String>,
    /// Whether that verdict is still provisional (the branches short of the horizon).
    pub verdict_provisional: Option<bool>,
    /// The horizon (steps per branch) the verdict is judged at.
    pub horizon: usize,
    /// Seconds from the app's start until the verdict was final (the branches at the horizon).
    pub seconds_to_verdict: Option<f64>,
    /// The verdict's numbers per branch (smoothed relative loss decrease or late mean χ_k, and
    /// its noise).
    pub verdict_numbers: Vec<crate::app::live::Judged>,
    /// Seconds from the app's start until every branch had made 1, 5, 10, 20, … steps (time to
    /// insight).
    pub seconds_to_branch_steps: Vec<(usize, f64)>,
}

/// The test hook's report of the app as it is.
pub fn report(app: &SandboxApp) -> Report {
    let s = app.worker.snapshot();
    let h = &s.history;
    let run_settings = s.settings.clone().unwrap_or_else(|| app.settings.clone());
    let fork = h.fork.as_ref();
    let verdict = crate::app::live::judge(h);
    let horizon = verdict.as_ref().map_or(h.horizon, |v| v.horizon);
    let marks = [1, 5, 10, 20, 50, 100, 200, 500, 1000];
    Report {
        toy_steps: app.toy.sim.a.step.min(app.toy.sim.b.step),
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
        verdict_holds: verdict.as_ref().map(|v| v.holds),
        verdict_provisional: verdict.as_ref().map(|v| v.provisional),
        horizon,
        seconds_to_verdict: app
            .branch_progress
            .iter()
            .find(|(n, _)| *n >= horizon)
            .map(|&(_, t)| t),
        verdict_numbers: verdict.as_ref().map_or(Vec::new(), |v| v.numbers.clone()),
        verdict: verdict.map(|v| v.text),
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

/// Write the report, take a screenshot of the next frame, save it, and close.
fn finish(app: &mut SandboxApp, ctx: &egui::Context) {
    let Some(auto) = app.auto_exit() else { return };
    let rep = report(app);
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
            o.insert("screenshot_error".into(), saved.clone().err().into());
            o.insert("screenshot_size".into(), serde_json::json!([w, h]));
        }
        let text = serde_json::to_string_pretty(&v).unwrap_or_default();
        let written = match (std::fs::write(&auto.report, text), saved) {
            (Err(e), _) => {
                eprintln!("cannot write {}: {e}", auto.report.display());
                Err((auto.report.clone(), format!("cannot write the report: {e}")))
            }
            (Ok(()), Err(e)) => Err((
                auto.screenshot.clone(),
                format!("cannot write the screenshot: {e}"),
            )),
            (Ok(()), Ok(())) => Ok(()),
        };
        *WRITTEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(written);
        c.send_viewport_cmd(egui::ViewportCommand::Close);
    });
    ctx.request_repaint();
}

/// The settings the app saved: the hash text under [`SAVED_KEY`], read key by key (a bad value
/// is reset alone, with a message); else an older app's RON record (all or nothing: said when
/// unreadable); else the defaults.
pub fn saved_settings(storage: Option<&dyn eframe::Storage>) -> (Settings, Vec<String>) {
    let said = |w: Vec<String>| w.into_iter().map(|w| format!("saved settings: {w}"));
    let Some(st) = storage else {
        return (Settings::default(), Vec::new());
    };
    if let Some(text) = st.get_string(SAVED_KEY) {
        let (s, w) = Settings::from_hash(&text);
        return (s, said(w).collect());
    }
    if st.get_string(eframe::APP_KEY).is_none() {
        return (Settings::default(), Vec::new());
    }
    match eframe::get_value::<Settings>(st, eframe::APP_KEY) {
        // Saved settings pass the same checks as a URL hash (a hand-edited or older file).
        Some(mut s) => {
            let w = s.sanitize();
            (s, said(w).collect())
        }
        None => (
            Settings::default(),
            vec!["saved settings: unreadable (an older app's file): every setting is back to its default".into()],
        ),
    }
}

/// The settings the app starts with: the saved ones (none under the test hook), then the command
/// line's (`--compute`, `--model`, `--samples`, `--snapshot`, `--scenario`), each checked.
fn start_settings(
    storage: Option<&dyn eframe::Storage>,
    launch: &Launch,
    headless: bool,
) -> Result<(Settings, Vec<String>), String> {
    let (mut settings, mut warnings) = if headless {
        (Settings::default(), Vec::new())
    } else {
        saved_settings(storage)
    };
    // The first opening (nothing saved, nothing asked): the landing lesson.
    let nothing_saved = storage.is_none_or(|st| {
        st.get_string(SAVED_KEY).is_none() && st.get_string(eframe::APP_KEY).is_none()
    });
    let nothing_asked = launch.scenario.is_none()
        && launch.model.is_none()
        && launch.samples.is_none()
        && launch.snapshot.is_none();
    if !headless && nothing_saved && nothing_asked {
        let compute = settings.compute;
        settings = Settings::landing();
        settings.compute = compute;
    }
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
    Ok((settings, warnings))
}

/// Open the desktop app. `launch.auto` is the test hook: its files are checked before the window
/// opens, and an app that closes without having written them is an error.
pub fn run_native(launch: Launch) -> crate::Result<()> {
    let auto = launch.auto.clone();
    if let Some(a) = &auto {
        a.check_outputs()?;
    }
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("subspace-lab")
            .with_inner_size([1500.0, 900.0]),
        renderer: eframe::Renderer::Wgpu,
        persist_window: auto.is_none(),
        ..Default::default()
    };
    let hook = auto.clone();
    eframe::run_native(
        "subspace-lab",
        options,
        Box::new(move |cc| {
            let (settings, warnings) = start_settings(cc.storage, &launch, hook.is_some())?;
            // Compute on the renderer's device where it is a real GPU (one device, no copies
            // between two); the worker falls back to its own adapter or the CPU otherwise.
            if let Some(rs) = &cc.wgpu_render_state {
                worker::share_render_device(
                    rs.device.clone(),
                    rs.queue.clone(),
                    rs.adapter.get_info(),
                );
            }
            SandboxApp::install_fonts(&cc.egui_ctx);
            let mut app = SandboxApp::new(settings, warnings, hook);
            app.renderer = RendererInfo::of(cc);
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
    })?;
    match (
        auto,
        WRITTEN.lock().unwrap_or_else(|e| e.into_inner()).take(),
    ) {
        (None, _) | (Some(_), Some(Ok(()))) => Ok(()),
        (Some(_), Some(Err((path, msg)))) => Err(crate::Error::Data { path, msg }),
        (Some(a), None) => Err(crate::Error::Data {
            path: a.report,
            msg: "the app closed before the test hook wrote its report and screenshot".into(),
        }),
    }
}
