//! The eframe app's state and its frame: the toy panel (left) and the model panel (right) side by
//! side, keyboard shortcuts, frame statistics and the test hook's trigger. The panels are in
//! `super::panels`; what the platform does around a frame (the web page's hash and state, the
//! native report) comes in as [`Hooks`].

use super::panels::toy::ToyPanel;
use super::scenario;
use super::settings::Settings;
use super::worker::{Cmd, Shared, Worker};
use crate::experiment::spec::OptimizerSpec;
use egui::{Color32, RichText};

pub use super::panels::plots::decimate;

/// Frame-time statistics (ms) over the frames since the start.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FrameStats {
    pub frames: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// Frames while the model's run was training.
    pub training_frames: usize,
    pub training_p95_ms: f64,
    pub training_max_ms: f64,
    /// Time between consecutive frames (ms): the app's work plus painting and presenting, which
    /// under Xvfb with a software rasteriser dominates.
    pub interval_p50_ms: f64,
    pub interval_p95_ms: f64,
}

fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[((s.len() - 1) as f64 * q).round() as usize]
}

/// The renderer the app draws with (shown in the status line and the web page's state).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RendererInfo {
    /// "WebGPU", "WebGL2", "Vulkan", …
    pub api: String,
    pub adapter: String,
}

impl RendererInfo {
    pub fn of(cc: &eframe::CreationContext<'_>) -> RendererInfo {
        match &cc.wgpu_render_state {
            Some(rs) => {
                let i = rs.adapter.get_info();
                let api = match i.backend {
                    wgpu::Backend::BrowserWebGpu => "WebGPU".to_string(),
                    wgpu::Backend::Gl if cfg!(target_arch = "wasm32") => "WebGL2".to_string(),
                    b => format!("{b:?}"),
                };
                // Browsers may hide the adapter's name: say what is known.
                let adapter = [&i.name, &i.driver, &i.driver_info]
                    .into_iter()
                    .find(|x| !x.is_empty())
                    .cloned()
                    .unwrap_or_else(|| match (i.vendor, i.device) {
                        (0, 0) => "adapter name hidden by the browser".into(),
                        (v, d) => format!("vendor {v:#x} device {d:#x}"),
                    });
                RendererInfo { api, adapter }
            }
            None => RendererInfo::default(),
        }
    }
}

/// What the platform does around a frame: after drawing (the web page keeps its URL hash and
/// publishes its state) and when the test hook fires (natively: report, screenshot, close).
pub struct Hooks {
    /// Called after the panels are drawn, every frame.
    pub after_frame: fn(&mut SandboxApp, &egui::Context),
    /// Called once, when the test hook's condition is met.
    pub finish: fn(&mut SandboxApp, &egui::Context),
}

/// The app: the settings, both panels' state, the worker's handle, frame statistics, the test
/// hook.
pub struct SandboxApp {
    pub settings: Settings,
    /// The toy panel (its two paths).
    pub toy: ToyPanel,
    pub worker: Worker,
    /// Time each `ui` call took (ms), and whether training was on.
    pub(crate) frame_ms: Vec<(f64, bool)>,
    /// Time between the starts of consecutive `ui` calls (ms).
    pub(crate) interval_ms: Vec<f64>,
    pub(crate) last_frame: Option<web_time::Instant>,
    pub warnings: Vec<String>,
    pub(crate) export_dir: String,
    /// Test hooks: exit after this many seconds, writing a report and a screenshot.
    pub(crate) auto: Option<super::AutoExit>,
    pub(crate) started: web_time::Instant,
    pub(crate) screenshot_requested: bool,
    pub renderer: RendererInfo,
    /// The URL hash last written (web).
    pub last_hash: Option<String>,
    /// When the run was first seen with this many steps per branch (the report's time to
    /// insight): (steps, seconds since the app started), for the fork at `progress_fork`.
    pub branch_progress: Vec<(usize, f64)>,
    pub(crate) progress_fork: Option<usize>,
    /// The snapshot field (a directory natively, a URL on the web).
    pub(crate) snapshot_field: String,
    /// The last [`Shared::settings_gen`] whose settings were taken over.
    pub(crate) adopted_gen: u64,
    /// The worker's command count once the last "branch" sent is taken ([`SandboxApp::can_branch`]).
    pub(crate) branch_sent: Option<u64>,
    /// Show the diagnostics (frame time, residuals, HVPs, backend): the lesson's "details".
    pub details: bool,
}

impl SandboxApp {
    /// egui's proportional font (Ubuntu Light) draws χ exactly like a Latin x and lacks ∇ and ‖.
    /// χ comes from a one-glyph font put first in the family ([`CHI_FONT`]: egui takes each glyph
    /// from the first font that has it, so only χ comes from there; its line metrics are Ubuntu
    /// Light's, since egui takes a family's row height from its first font); ∇ and ‖ fall back
    /// to the monospace font (Hack), which has them.
    pub fn install_fonts(ctx: &egui::Context) {
        ctx.set_fonts(font_definitions());
    }

    /// The app with these settings (a scenario named in them starts from its snapshot with these
    /// settings' optimiser).
    pub fn new(
        mut settings: Settings,
        mut warnings: Vec<String>,
        auto: Option<super::AutoExit>,
    ) -> Self {
        // A scenario in saved settings or a URL hash starts with the settings as they are (the
        // hash carries its η, batch, …); picking one, or `--scenario`, applies its own.
        if !settings.scenario.is_empty()
            && let Err(e) = scenario::find(&settings.scenario)
        {
            warnings.push(format!("{e}; starting a fresh run"));
            settings.scenario.clear();
        }
        let toy = ToyPanel::new(&settings);
        let worker = Worker::spawn(settings.clone());
        let snapshot_field = settings.snapshot.clone();
        SandboxApp {
            settings,
            toy,
            worker,
            frame_ms: Vec::new(),
            interval_ms: Vec::new(),
            last_frame: None,
            warnings,
            export_dir: "out/app".into(),
            auto,
            started: web_time::Instant::now(),
            screenshot_requested: false,
            renderer: RendererInfo::default(),
            last_hash: None,
            branch_progress: Vec::new(),
            progress_fork: None,
            snapshot_field,
            adopted_gen: 0,
            branch_sent: None,
            details: false,
        }
    }

    /// Take over the running run's settings when the worker says so ([`Shared::settings_gen`]:
    /// derived from a user's snapshot, n cut to the data at hand, or a failed reset whose old run
    /// goes on); the toy's settings stay the user's.
    pub(crate) fn adopt(&mut self, shared: &Shared) {
        // Only with no command in flight: a queued reset or change would be undone.
        if shared.settings_gen != self.adopted_gen && shared.handled == self.worker.sent() {
            if let Some(s) = &shared.settings {
                self.settings.take_run_settings(s);
                if !s.snapshot.is_empty() {
                    self.snapshot_field = s.snapshot.clone();
                }
            }
            self.adopted_gen = shared.settings_gen;
        }
    }

    pub fn auto_exit(&self) -> Option<super::AutoExit> {
        self.auto.clone()
    }

    /// Frames drawn so far (of the last 100,000).
    pub fn frames(&self) -> usize {
        self.frame_ms.len()
    }

    pub fn frame_stats(&self) -> FrameStats {
        let all: Vec<f64> = self.frame_ms.iter().map(|f| f.0).collect();
        let tr: Vec<f64> = self.frame_ms.iter().filter(|f| f.1).map(|f| f.0).collect();
        FrameStats {
            frames: all.len(),
            p50_ms: pct(&all, 0.5),
            p95_ms: pct(&all, 0.95),
            max_ms: all.iter().cloned().fold(0.0, f64::max),
            training_frames: tr.len(),
            training_p95_ms: pct(&tr, 0.95),
            training_max_ms: tr.iter().cloned().fold(0.0, f64::max),
            interval_p50_ms: pct(&self.interval_ms, 0.5),
            interval_p95_ms: pct(&self.interval_ms, 0.95),
        }
    }

    pub(crate) fn optimizer(&self) -> OptimizerSpec {
        super::worker::optimizer_of(&self.settings)
    }

    /// One frame: the toy's steps, the keyboard, both panels, the statistics, the test hook.
    pub fn frame_ui(&mut self, ui: &mut egui::Ui, hooks: &Hooks) {
        let Hooks {
            after_frame,
            finish,
        } = *hooks;
        let t0 = web_time::Instant::now();
        if let Some(prev) = self.last_frame.replace(t0) {
            self.interval_ms
                .push(t0.duration_since(prev).as_secs_f64() * 1e3);
            if self.interval_ms.len() > 100_000 {
                self.interval_ms.drain(..50_000);
            }
        }
        let ctx = ui.ctx().clone();
        // The worker asks for a repaint when it has news: no redraw while nothing changed.
        self.worker.set_repaint(&ctx);
        // One copy of the worker's state per frame (it holds the whole history).
        let shared = self.worker.snapshot();
        let training = shared.running;
        // The toy slows while a scenario's run computes (the cores are the branches'), until its
        // verdict is final.
        self.toy.held = super::panels::toy_held(&shared, &self.settings.scenario);
        self.toy.advance(&self.settings);
        // Keyboard: Space pauses or starts the run, B branches, R resets (not while typing).
        if !ctx.egui_wants_keyboard_input() {
            let (space, b, r) = ctx.input(|i| {
                (
                    i.key_pressed(egui::Key::Space),
                    i.key_pressed(egui::Key::B),
                    i.key_pressed(egui::Key::R),
                )
            });
            if space {
                self.worker.send(if shared.running {
                    Cmd::Pause
                } else {
                    Cmd::Start
                });
            }
            if b && self.can_branch(&shared) {
                self.branch();
            }
            if r {
                self.worker.send(Cmd::Reset(self.settings.clone()));
            }
        }
        // A new fork (after a reset) starts the count again.
        let fork_step = shared.history.fork.as_ref().map(|f| f.step);
        if fork_step != self.progress_fork {
            self.progress_fork = fork_step;
            self.branch_progress.clear();
        }
        if let Some(f) = &shared.history.fork {
            let n = f.steps();
            if self.branch_progress.last().is_none_or(|l| l.0 < n) {
                self.branch_progress
                    .push((n, self.started.elapsed().as_secs_f64()));
            }
        }
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("subspace-lab");
                ui.label("— does SGD really happen in tiny subspaces? (Song, Ahn, Yun 2024)");
                if self.details {
                    let fs = self.frame_stats();
                    ui.label(RichText::new(format!("frame p95 {:.1} ms", fs.p95_ms)).small());
                }
            });
            for w in &self.warnings {
                ui.colored_label(Color32::from_rgb(200, 120, 0), w);
            }
            self.lesson_ui(ui, &shared);
            ui.columns(2, |cols| {
                self.toy.toy_panel_ui(&mut cols[0], &mut self.settings);
                self.model_panel_ui(&mut cols[1], &shared);
            });
        });
        after_frame(self, &ctx);
        self.frame_ms
            .push((t0.elapsed().as_secs_f64() * 1e3, training));
        if self.frame_ms.len() > 100_000 {
            self.frame_ms.drain(..50_000);
        }
        if let Some(auto) = &self.auto {
            let elapsed = self.started.elapsed().as_secs_f64();
            let steps = shared.history.step;
            let ready = match auto.exit_after_steps {
                // Steps per branch after a fork, else steps since the run started.
                Some(n) => match &shared.history.fork {
                    Some(f) => f.steps() >= n,
                    None => !auto.branch && steps >= shared.history.start_step + n,
                },
                None => elapsed > auto.after_s && steps >= auto.min_steps,
            };
            if (ready || elapsed > auto.timeout_s) && !self.screenshot_requested {
                self.screenshot_requested = true;
                finish(self, &ctx);
            }
        }
        // Redraw by itself only while something moves: the toy animating, or the test hook
        // waiting for its condition; the worker's news ask for the rest.
        if self.toy.animating() {
            ctx.request_repaint_after(self.toy.next_frame());
        } else if self.auto.is_some() {
            ctx.request_repaint_after(std::time::Duration::from_millis(500));
        }
    }

    /// Whether "branch" can fork now: not branched, and no fork asked for that the worker has
    /// not taken yet (a second click must not reach a branched run).
    pub fn can_branch(&self, shared: &Shared) -> bool {
        shared.history.fork.is_none() && self.branch_sent.is_none_or(|n| shared.handled >= n)
    }
}

/// The font of χ: the glyph U+03C7 of DejaVu Sans ExtraLight, renamed "Subspace Lab Chi"
/// (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`; made by
/// `scripts/make_chi_font.py`), 6.5 kB.
pub const CHI_FONT: &[u8] = include_bytes!("../../assets/fonts/subspace-lab-chi.ttf");

/// The name under which [`CHI_FONT`] is registered with egui.
pub const CHI_FONT_NAME: &str = "subspace-lab-chi";

/// egui's default fonts with [`CHI_FONT`] first in the proportional family and Hack last.
pub fn font_definitions() -> egui::FontDefinitions {
    let mut f = egui::FontDefinitions::default();
    f.font_data.insert(
        CHI_FONT_NAME.into(),
        std::sync::Arc::new(egui::FontData::from_static(CHI_FONT)),
    );
    if let Some(p) = f.families.get_mut(&egui::FontFamily::Proportional) {
        p.insert(0, CHI_FONT_NAME.into());
        p.push("Hack".into());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fonts a family's characters come from, in the order egui tries them, after a pass.
    fn owners(defs: egui::FontDefinitions, c: char) -> (Vec<String>, f32) {
        let ctx = egui::Context::default();
        ctx.set_fonts(defs);
        let _ = ctx.run_ui(egui::RawInput::default(), |_| {});
        ctx.fonts_mut(|f| {
            let fam = egui::FontFamily::Proportional;
            let names = f.characters(&fam).get(&c).cloned().unwrap_or_default();
            (names, f.row_height(&egui::FontId::new(14.0, fam)))
        })
    }

    /// χ is drawn from the χ font (issue 30: Ubuntu Light's χ reads as a Latin x), every other
    /// letter still from Ubuntu Light, and rows are as tall as with egui's default fonts.
    #[test]
    fn chi_comes_from_its_own_font_and_rows_keep_their_height() {
        let (chi, h) = owners(font_definitions(), 'χ');
        assert_eq!(chi.first().map(String::as_str), Some(CHI_FONT_NAME));
        let (x, _) = owners(font_definitions(), 'x');
        assert!(!x.iter().any(|n| n == CHI_FONT_NAME), "{x:?}");
        let (_, h0) = owners(egui::FontDefinitions::default(), 'x');
        assert!(
            (h - h0).abs() < 0.5,
            "row height {h} with the χ font, {h0} without"
        );
        // The symbols of the labels are still there (from Hack).
        let (nabla, _) = owners(font_definitions(), '∇');
        assert!(!nabla.is_empty());
    }
}
