//! The sandbox app (eframe/egui): the 2-D toy and a live MNIST-5k run side by side, natively and
//! in the browser (`web`). The state logic (`settings`, `toysim`, `live`) has no window and is unit-tested.

pub mod live;
pub mod settings;
pub mod toysim;
pub mod ui;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod worker;

/// Test hook: after `after_s` seconds (and at least `min_mnist_steps` MNIST steps, or after
/// `timeout_s` regardless) write a JSON report and a screenshot and close the app.
#[derive(Clone, Debug)]
pub struct AutoExit {
    pub after_s: f64,
    pub timeout_s: f64,
    pub min_mnist_steps: usize,
    pub report: std::path::PathBuf,
    pub screenshot: std::path::PathBuf,
}

/// What the test hook writes.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub toy_steps: usize,
    pub mnist_steps: usize,
    pub backend: String,
    pub mnist_steps_per_sec: f64,
    pub message: Option<String>,
    pub frames: ui::FrameStats,
}

#[cfg(not(target_arch = "wasm32"))]
pub fn report(app: &ui::SandboxApp) -> Report {
    let s = app.worker.snapshot();
    Report {
        toy_steps: app.toy.a.step.min(app.toy.b.step),
        mnist_steps: s.history.step,
        backend: s.backend,
        mnist_steps_per_sec: s.steps_per_sec,
        message: s.message,
        frames: app.frame_stats(),
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
pub fn run_native(auto: Option<AutoExit>) -> crate::Result<()> {
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
            let warnings = settings
                .sanitize()
                .into_iter()
                .map(|w| format!("saved settings: {w}"))
                .collect();
            // Compute on the renderer's device where it is a real GPU (one device, no copies
            // between two); the worker falls back to its own adapter or the CPU otherwise.
            if let Some(rs) = &cc.wgpu_render_state {
                worker::share_render_device(
                    rs.device.clone(),
                    rs.queue.clone(),
                    rs.adapter.get_info(),
                );
            }
            let mut app = ui::SandboxApp::new(settings, warnings, auto);
            app.renderer = ui::RendererInfo::of(cc);
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| {
        crate::Error::Backend(format!(
            "cannot open a window: {e}. The desktop app needs a display (X11 or Wayland) and a GPU driver or Mesa's lavapipe (apt install mesa-vulkan-drivers); the CLI commands work without."
        ))
    })
}
