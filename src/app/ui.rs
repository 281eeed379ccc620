//! The eframe app: the toy (left) and a live run of one of the paper's networks (right), side by
//! side.

use super::live::{Action, BranchSet, BranchView, History};
use super::scenario::{self, SCENARIOS};
use super::settings::{AppModel, Compute, OPTIMIZERS, Settings, opt_name};
use super::toysim::ToySim;
use super::worker::{Cmd, Shared, Worker};
use crate::experiment::spec::{OptKind, OptimizerSpec, Projection};
use crate::experiment::toy::ToyMethod;
use egui::{Color32, RichText};
use egui_plot::{HLine, Legend, Line, LineStyle, Plot, PlotPoints, VLine};

const TOP_K: Color32 = Color32::from_rgb(31, 119, 180);
const NEXT_K: Color32 = Color32::from_rgb(255, 127, 14);
const PATH_A: Color32 = Color32::from_rgb(31, 119, 180);
const PATH_B: Color32 = Color32::from_rgb(214, 39, 40);

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

/// At most `max` points of a series for drawing (every n-th, the last one kept): tessellating
/// tens of thousands of segments per frame would cost more than the rest of the frame.
pub fn decimate(v: &[[f64; 2]], max: usize) -> Vec<[f64; 2]> {
    if v.len() <= max || max < 2 {
        return v.to_vec();
    }
    let stride = v.len().div_ceil(max - 1);
    let mut out: Vec<[f64; 2]> = v.iter().step_by(stride).copied().collect();
    if let Some(l) = v.last()
        && out.last() != Some(l)
    {
        out.push(*l);
    }
    out
}

/// Points drawn per series.
const DRAW_POINTS: usize = 2000;

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

pub struct SandboxApp {
    pub settings: Settings,
    pub toy: ToySim,
    pub toy_running: bool,
    toy_follow: bool,
    pub worker: Worker,
    /// Time each `ui` call took (ms), and whether training was on.
    frame_ms: Vec<(f64, bool)>,
    /// Time between the starts of consecutive `ui` calls (ms).
    interval_ms: Vec<f64>,
    last_frame: Option<web_time::Instant>,
    pub warnings: Vec<String>,
    export_dir: String,
    /// Test hooks: exit after this many seconds, writing a report and a screenshot.
    auto: Option<super::AutoExit>,
    started: web_time::Instant,
    screenshot_requested: bool,
    pub renderer: RendererInfo,
    /// The URL hash last written (web).
    pub last_hash: Option<String>,
    /// When the run was first seen with this many steps per branch (the report's time to
    /// insight): (steps, seconds since the app started), for the fork at `progress_fork`.
    pub branch_progress: Vec<(usize, f64)>,
    progress_fork: Option<usize>,
    /// The snapshot field (a directory natively, a URL on the web).
    snapshot_field: String,
    /// The last [`Shared::settings_gen`] whose settings were taken over.
    adopted_gen: u64,
}

impl SandboxApp {
    /// egui's proportional font (Ubuntu Light) lacks ∇ and ‖: fall back to its monospace font
    /// (Hack), which has them.
    pub fn install_fonts(ctx: &egui::Context) {
        let mut f = egui::FontDefinitions::default();
        if let Some(p) = f.families.get_mut(&egui::FontFamily::Proportional) {
            p.push("Hack".into());
        }
        ctx.set_fonts(f);
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
        let toy = ToySim::new(
            settings.toy_a,
            settings.toy_b,
            settings.toy_x0,
            settings.toy_y0,
            settings.toy_seed,
        );
        let worker = Worker::spawn(settings.clone());
        let snapshot_field = settings.snapshot.clone();
        SandboxApp {
            settings,
            toy,
            toy_running: true,
            toy_follow: true,
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
        }
    }

    /// Take over the running run's settings when the worker says so ([`Shared::settings_gen`]:
    /// derived from a user's snapshot, n cut to the data at hand, or a failed reset whose old run
    /// goes on); the toy's settings stay the user's.
    fn adopt(&mut self, shared: &Shared) {
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

    /// Start from the snapshot in the field (a directory natively, a URL on the web): the worker
    /// reads it and the run's settings become the snapshot's.
    fn load_snapshot(&mut self) {
        let src = self.snapshot_field.trim().to_string();
        if src.is_empty() {
            return;
        }
        self.settings.scenario.clear();
        self.settings.snapshot = src;
        self.worker.send(Cmd::LoadSnapshot(self.settings.clone()));
    }

    /// Fork the run as soon as it is loaded, before its first step (the `--branch` of `app`):
    /// the worker applies the commands queued while it loads before it steps.
    pub fn branch_on_start(&mut self) {
        self.branch();
    }

    /// What "branch" forks into: the scenario's set, or SGD / Dom- / Bulk- on a fresh run.
    fn branch_set(&self) -> BranchSet {
        scenario::find(&self.settings.scenario).map_or(BranchSet::Projections, |s| s.branch)
    }

    fn branch(&mut self) {
        let set = self.branch_set();
        self.worker.send(Cmd::Act(Action::Branch(set)));
    }

    /// Start the scenario `name` (empty: a fresh run from the settings): its settings replace the
    /// optimiser's, and the run reloads.
    fn load_scenario(&mut self, name: &str) {
        self.settings.snapshot.clear();
        if name.is_empty() {
            self.settings.scenario.clear();
        } else {
            match scenario::find(name).and_then(|sc| sc.settings(&self.settings)) {
                Ok(s) => self.settings = s,
                Err(e) => {
                    self.warnings.push(e.to_string());
                    return;
                }
            }
        }
        self.worker.send(Cmd::Reset(self.settings.clone()));
    }

    fn scenario_rows(&mut self, ui: &mut egui::Ui, shared: &Shared) {
        let current = self.settings.scenario.clone();
        let title = |name: &str| {
            if name.is_empty() {
                "fresh run (the settings below)".to_string()
            } else {
                scenario::find(name).map_or(name.to_string(), |s| {
                    format!("{} — {} ({})", s.title, s.model.label(), s.figure)
                })
            }
        };
        let mut pick = None;
        let mut branch = false;
        ui.horizontal_wrapped(|ui| {
            ui.label("scenario");
            // A loaded snapshot shows as such; the list's first entry stays "fresh run".
            let shown = if current.is_empty() && !self.settings.snapshot.is_empty() {
                format!("snapshot {}", self.settings.snapshot)
            } else {
                title(&current)
            };
            egui::ComboBox::from_id_salt("scenario")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    if ui.selectable_label(current.is_empty(), title("")).clicked() {
                        pick = Some(String::new());
                    }
                    for sc in SCENARIOS {
                        if ui
                            .selectable_label(current == sc.name, title(sc.name))
                            .on_hover_text(sc.lesson)
                            .clicked()
                        {
                            pick = Some(sc.name.to_string());
                        }
                    }
                })
                .response
                .on_hover_text("start at one of the paper's states (reloads the run)");
            let branched = shared.history.fork.is_some();
            let what = match self.branch_set() {
                BranchSet::Projections => {
                    "fork the run here into the optimiser, its Dom- (P_k g) and its Bulk- ((I − P_k) g) variant, \
                     same θ, same optimiser state, same minibatches; they advance in lockstep"
                }
                BranchSet::GdVsSgd => {
                    "fork the run here into SGD and full-batch GD at the same η, same θ; they advance in lockstep"
                }
            };
            if ui
                .add_enabled(!branched, egui::Button::new("branch (B)"))
                .on_hover_text(what)
                .on_disabled_hover_text("branched: reset (R) or pick a scenario to start again")
                .clicked()
            {
                branch = true;
            }
        });
        ui.horizontal_wrapped(|ui| {
            let (what, hint) = if cfg!(target_arch = "wasm32") {
                ("snapshot URL", "https://…/fig1-cnn/snapshot")
            } else {
                ("snapshot dir", "out/fig1-cnn/snapshot")
            };
            ui.label(what);
            let r = ui.add(
                egui::TextEdit::singleline(&mut self.snapshot_field)
                    .hint_text(hint)
                    .desired_width(260.0),
            );
            let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui
                .button("load")
                .on_hover_text(
                    "continue from a snapshot that `subspace-lab reproduce PRESET --snapshot-at-switch` \
                     wrote (snapshot.json + snapshot.safetensors): its model, θ, optimiser state and \
                     settings; then branch (B)",
                )
                .clicked()
                || enter
            {
                self.load_snapshot();
            }
        });
        if let Some(name) = pick {
            self.load_scenario(&name);
        }
        if branch {
            self.branch();
        }
        if let Ok(sc) = scenario::find(&current) {
            egui::CollapsingHeader::new(format!("lesson: {} ({})", sc.title, sc.figure))
                .default_open(true)
                .show(ui, |ui| {
                    ui.label(sc.lesson_now(&shared.history));
                });
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

    fn reset_toy(&mut self) {
        let s = &self.settings;
        self.toy = ToySim::new(s.toy_a, s.toy_b, s.toy_x0, s.toy_y0, s.toy_seed);
    }

    fn optimizer(&self) -> OptimizerSpec {
        super::worker::optimizer_of(&self.settings)
    }

    fn toy_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("2-D toy: L = ½(1000x² + y²), minibatch ℓ± = L ± c·xy");
        let s = &mut self.settings;
        ui.horizontal_wrapped(|ui| {
            ui.label("η");
            ui.add(
                egui::DragValue::new(&mut s.toy_lr)
                    .speed(1e-6)
                    .range(1e-7..=2e-3),
            );
            ui.label("c");
            ui.add(
                egui::DragValue::new(&mut s.toy_coupling)
                    .speed(1.0)
                    .range(0.0..=1000.0),
            );
            ui.label("start");
            ui.add(egui::DragValue::new(&mut s.toy_x0).speed(0.01));
            ui.add(egui::DragValue::new(&mut s.toy_y0).speed(0.01));
            ui.label("steps/frame");
            ui.add(egui::DragValue::new(&mut s.toy_steps_per_frame).range(1..=5000));
        });
        let mut reset = false;
        let mut switch_now = false;
        ui.horizontal_wrapped(|ui| {
            for (label, m, col) in [("A", &mut s.toy_a, PATH_A), ("B", &mut s.toy_b, PATH_B)] {
                ui.label(RichText::new(format!("path {label}")).color(col));
                egui::ComboBox::from_id_salt(format!("toy-{label}"))
                    .selected_text(m.name())
                    .show_ui(ui, |ui| {
                        for opt in ToyMethod::ALL {
                            ui.selectable_value(m, opt, opt.name());
                        }
                    });
            }
            if ui
                .button("switch now")
                .on_hover_text("continue both paths from where they are with the methods above")
                .clicked()
            {
                switch_now = true;
            }
            let label = if self.toy_running { "pause" } else { "run" };
            if ui.button(label).clicked() {
                self.toy_running = !self.toy_running;
            }
            if ui.button("reset").clicked() {
                reset = true;
            }
            ui.checkbox(&mut self.toy_follow, "follow");
        });
        if reset {
            self.reset_toy();
        }
        if switch_now {
            self.toy.a.switch_to(self.settings.toy_a);
            self.toy.b.switch_to(self.settings.toy_b);
        }
        let (a, b) = (&self.toy.a, &self.toy.b);
        ui.label(format!(
            "step {} · A {}: loss {:.3e}, χ₁ {:.3}{} · B {}: loss {:.3e}, χ₁ {:.3}{}",
            a.step,
            a.method.name(),
            a.loss(),
            a.chi.last().map_or(0.0, |c| c[1]),
            if a.diverged { " (diverged)" } else { "" },
            b.method.name(),
            b.loss(),
            b.chi.last().map_or(0.0, |c| c[1]),
            if b.diverged { " (diverged)" } else { "" },
        ));
        let h = (ui.available_height() - 30.0).max(200.0);
        // The valley is 1000× narrower in x: let the axes scale independently so the zig-zag
        // across it is visible.
        // Bounds from the second half of both paths (after x has fallen into the valley), so
        // the zig-zag across it fills the plot; "follow" off lets the user zoom.
        let tail = |v: &[[f64; 2]]| v[v.len() / 2..].to_vec();
        let recent: Vec<[f64; 2]> = tail(&a.path).into_iter().chain(tail(&b.path)).collect();
        let xe = recent
            .iter()
            .map(|q| q[0].abs())
            .fold(0.0f64, f64::max)
            .max(1e-4)
            * 1.2;
        let (y0, y1) = recent
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), q| {
                (lo.min(q[1]), hi.max(q[1]))
            });
        let pad = ((y1 - y0) * 0.1).max(1e-3);
        let follow = self.toy_follow;
        Plot::new("toy-path")
            .height(h * 0.6)
            .legend(Legend::default())
            .x_axis_label("x")
            .y_axis_label("y")
            .show(ui, |p| {
                if follow && y0.is_finite() {
                    p.set_plot_bounds(egui_plot::PlotBounds::from_min_max(
                        [-xe, y0 - pad],
                        [xe, y1 + pad],
                    ));
                }
                let x_ext = 2.0 * xe;
                for lvl in [0.02, 0.05, 0.1, 0.2, 0.35, 0.5] {
                    let pts: Vec<[f64; 2]> = (0..=200)
                        .map(|i| {
                            let t = std::f64::consts::TAU * i as f64 / 200.0;
                            [
                                (2.0 * lvl / 1000.0f64).sqrt() * t.cos(),
                                (2.0 * lvl).sqrt() * t.sin(),
                            ]
                        })
                        .filter(|q| q[0].abs() <= x_ext)
                        .collect();
                    p.line(
                        Line::new("", PlotPoints::from(pts))
                            .color(Color32::from_gray(170))
                            .width(0.5),
                    );
                }
                p.line(
                    Line::new(
                        format!("A: {}", a.method.name()),
                        PlotPoints::from(decimate(&a.path, DRAW_POINTS)),
                    )
                    .color(PATH_A),
                );
                p.line(
                    Line::new(
                        format!("B: {}", b.method.name()),
                        PlotPoints::from(decimate(&b.path, DRAW_POINTS)),
                    )
                    .color(PATH_B),
                );
                // Where each path switched method ("switch now").
                for (path, c) in [(a, PATH_A), (b, PATH_B)] {
                    if !path.switch_points.is_empty() {
                        p.points(
                            egui_plot::Points::new(
                                "switch",
                                PlotPoints::from(path.switch_points.clone()),
                            )
                            .shape(egui_plot::MarkerShape::Diamond)
                            .radius(6.0)
                            .filled(false)
                            .color(c),
                        );
                    }
                }
            });
        Plot::new("toy-chi")
            .height(h * 0.4)
            .legend(Legend::default())
            .x_axis_label("step")
            .y_axis_label("χ₁(∇L)")
            .include_y(0.0)
            .include_y(1.0)
            .show(ui, |p| {
                p.line(
                    Line::new("A", PlotPoints::from(decimate(&a.chi, DRAW_POINTS))).color(PATH_A),
                );
                p.line(
                    Line::new("B", PlotPoints::from(decimate(&b.chi, DRAW_POINTS))).color(PATH_B),
                );
                for s in a.switches.iter().chain(&b.switches) {
                    p.vline(VLine::new("switch", *s as f64).style(LineStyle::dashed_dense()));
                }
            });
    }

    /// The model picker and the training-set size: a pick loads the paper's settings for the
    /// model and restarts the run (its data set is loaded on first use).
    fn model_rows(&mut self, ui: &mut egui::Ui) {
        let mut pick = None;
        ui.horizontal_wrapped(|ui| {
            let now = self.settings.model;
            ui.label("model");
            egui::ComboBox::from_id_salt("model")
                .selected_text(now.label())
                .show_ui(ui, |ui| {
                    for m in AppModel::ALL {
                        let p = m.paper();
                        if ui
                            .selectable_label(m == now, m.label())
                            .on_hover_text(format!(
                                "{}, MSE; the paper's SGD η {}, batch {}, k = {} (the classes), n = {}",
                                m.spec().describe(),
                                p.lr,
                                p.batch,
                                p.k,
                                p.samples
                            ))
                            .clicked()
                        {
                            pick = Some(m);
                        }
                    }
                })
                .response
                .on_hover_text("the network and its data, with the paper's settings (restarts the run)");
            let max = now.dataset().max_samples();
            let paper = now.paper().samples;
            ui.label("n");
            let r = ui
                .add(egui::DragValue::new(&mut self.settings.samples).range(1..=max))
                .on_hover_text(format!(
                    "training samples, the first n of the data set (the paper: {paper}); applies on \
                     reset. A spectrum's cost grows with n"
                ));
            if r.changed() {
                self.settings.batch = self.settings.batch.min(self.settings.samples);
            }
            if self.settings.samples != paper {
                ui.label(RichText::new(format!("(the paper: n = {paper})")).small());
            }
        });
        if let Some(m) = pick.filter(|m| *m != self.settings.model) {
            self.settings = self.settings.with_model(m);
            self.warnings.clear();
            self.worker.send(Cmd::Reset(self.settings.clone()));
        }
    }

    fn model_panel(&mut self, ui: &mut egui::Ui, shared: &Shared) {
        ui.heading(format!("{}, MSE", self.settings.model.label()))
            .on_hover_text(self.settings.model.spec().describe());
        self.adopt(shared);
        self.model_rows(ui);
        self.scenario_rows(ui, shared);
        let mut changed_opt = false;
        // A branched run refuses changes of its optimiser: the controls say so by being off.
        let branched = shared.history.fork.is_some();
        {
            let s = &mut self.settings;
            ui.add_enabled_ui(!branched, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.label("optimizer");
                    egui::ComboBox::from_id_salt("opt")
                        .selected_text(opt_name(s.optimizer))
                        .show_ui(ui, |ui| {
                            for o in OPTIMIZERS {
                                changed_opt |= ui
                                    .selectable_value(&mut s.optimizer, o, opt_name(o))
                                    .changed();
                            }
                        });
                    ui.label("η");
                    changed_opt |= ui
                        .add(
                            egui::DragValue::new(&mut s.lr)
                                .speed(1e-4)
                                .range(1e-5..=1.0),
                        )
                        .changed();
                    ui.label("batch");
                    changed_opt |= ui
                        .add(egui::DragValue::new(&mut s.batch).range(1..=s.samples.max(1)))
                        .changed();
                    if s.optimizer == OptKind::Sam {
                        ui.label("ρ");
                        changed_opt |= ui
                            .add(
                                egui::DragValue::new(&mut s.rho)
                                    .speed(1e-3)
                                    .range(0.0..=1.0),
                            )
                            .changed();
                    }
                    ui.label("k");
                    ui.add(egui::DragValue::new(&mut s.k).range(1..=50))
                        .on_hover_text("applies on reset");
                    ui.label("eigen every");
                    if ui
                        .add(egui::DragValue::new(&mut s.eigen_every).range(1..=1000))
                        .changed()
                    {
                        self.worker
                            .send(Cmd::Act(Action::SetEigenEvery(s.eigen_every)));
                    }
                    ui.label("seed");
                    ui.add(egui::DragValue::new(&mut s.seed))
                        .on_hover_text("applies on reset");
                    ui.label("compute");
                    egui::ComboBox::from_id_salt("compute")
                        .selected_text(s.compute.name())
                        .show_ui(ui, |ui| {
                            for c in Compute::ALL {
                                ui.selectable_value(&mut s.compute, c, c.name());
                            }
                        })
                        .response
                        .on_hover_text(
                            "applies on reset. auto: a hardware GPU if there is one, else the CPU; \
                         gpu: also a software adapter; cpu: the CPU backend",
                        );
                })
            })
            .response
            .on_disabled_hover_text(
                "branched: reset (R) or pick a scenario to change the optimiser",
            );
        }
        if changed_opt {
            let o = self.optimizer();
            self.worker.send(Cmd::Act(Action::SetOptimizer(o)));
        }
        ui.horizontal_wrapped(|ui| {
            let label = if shared.running { "pause" } else { "start" };
            if ui.button(label).clicked() {
                self.worker.send(if shared.running {
                    Cmd::Pause
                } else {
                    Cmd::Start
                });
            }
            if ui.button("reset").clicked() {
                self.worker.send(Cmd::Reset(self.settings.clone()));
            }
            if ui
                .button("defaults")
                .on_hover_text("every setting back to its default, then reset the run")
                .clicked()
            {
                self.settings = Settings::default();
                self.warnings.clear();
                self.worker.send(Cmd::Reset(self.settings.clone()));
            }
            ui.separator();
            if ui
                .button("Dom-")
                .on_hover_text("project every update on S_k from now on")
                .clicked()
            {
                self.worker
                    .send(Cmd::Act(Action::Project(Projection::Dominant)));
            }
            if ui
                .button("Bulk-")
                .on_hover_text(
                    "project every update on the complement of S_k, (I − P_k) g, from now on",
                )
                .clicked()
            {
                self.worker
                    .send(Cmd::Act(Action::Project(Projection::Bulk)));
            }
            if ui.button("unprojected").clicked() {
                self.worker
                    .send(Cmd::Act(Action::Project(Projection::None)));
            }
            if ui
                .add_enabled(shared.history.fork.is_none(), egui::Button::new("to GD"))
                .on_disabled_hover_text("branched: the branches keep their optimisers")
                .clicked()
            {
                self.settings.optimizer = OptKind::Gd;
                self.worker.send(Cmd::Act(Action::ToGd));
            }
            let armed = shared.history.armed.is_some();
            let auto = if armed {
                "disarm auto-switch"
            } else {
                "arm auto-switch (EMA of χ_k > 0.95: Dom-)"
            };
            if ui.button(auto).clicked() {
                self.worker.send(Cmd::Act(if armed {
                    Action::Disarm
                } else {
                    Action::ArmAuto(Projection::Dominant)
                }));
            }
        });
        ui.horizontal_wrapped(|ui| {
            if cfg!(target_arch = "wasm32") {
                if ui.button("download CSV/JSON + weights").clicked() {
                    self.worker.send(Cmd::Export(String::new()));
                }
            } else {
                ui.label("export to");
                ui.text_edit_singleline(&mut self.export_dir);
                if ui.button("export CSV/JSON/PNG + weights").clicked() {
                    self.worker.send(Cmd::Export(self.export_dir.clone()));
                }
            }
        });
        let h = &shared.history;
        // A CNN's branched step takes half a minute on a CPU: "0.0 steps/s" would say nothing.
        let rate = match shared.steps_per_sec {
            r if r >= 0.95 => format!("{r:.1} steps/s"),
            r if r > 0.0 => format!("{:.1} s/step", 1.0 / r),
            _ => "– steps/s".to_string(),
        };
        ui.label(
            RichText::new(format!(
                "compute {} · drawing {} ({}) · {} · step {} · {rate}{} · {} HVPs last solve · worst Ritz residual {:.1e}{}",
                shared.backend,
                self.renderer.api,
                self.renderer.adapter,
                h.fork.as_ref().map_or(h.run_name.clone(), |f| f
                    .branches
                    .iter()
                    .map(|b| b.name.clone())
                    .collect::<Vec<_>>()
                    .join(" / ")),
                h.step,
                if h.fork.is_some() {
                    " (of every branch; each solves its own spectrum)"
                } else {
                    ""
                },
                h.hvps_last,
                h.worst_residual,
                if h.armed.is_some() { " · auto-switch armed" } else { "" }
            ))
            .small(),
        );
        if let Some(msg) = &shared.message {
            ui.colored_label(Color32::from_rgb(200, 120, 0), msg);
        }
        run_plots(ui, h);
    }
}

/// The run's events as dashed vertical lines (those from `from` on); unnamed, so that they stay
/// out of the legends (the status line, the lesson and the branch table name them).
fn markers(p: &mut egui_plot::PlotUi, h: &History, from: f64) {
    for m in h.markers.iter().filter(|m| m.step as f64 >= from) {
        p.vline(
            VLine::new("", m.step as f64)
                .style(LineStyle::dashed_loose())
                .color(Color32::GRAY),
        );
    }
}

/// A legend in small type on a translucent background, so that it hides little of a small plot.
fn small_legend() -> Legend {
    Legend::default()
        .text_style(egui::TextStyle::Small)
        .background_alpha(0.6)
}

/// The paper's colours as the CLI's PNGs use them: the plain optimiser blue, Dom- red, Bulk-
/// green; GD beside SGD (the GD-vs-SGD fork) purple.
fn branch_color(b: &BranchView, set: Option<BranchSet>) -> Color32 {
    match b.projection {
        Projection::Dominant => Color32::from_rgb(214, 39, 40),
        Projection::Bulk => Color32::from_rgb(44, 160, 44),
        Projection::None if b.name == "GD" && set == Some(BranchSet::GdVsSgd) => {
            Color32::from_rgb(148, 103, 189)
        }
        Projection::None => Color32::from_rgb(31, 119, 180),
    }
}

/// The branches' numbers beside the plots: the live verdict and one line per branch.
fn branch_table(ui: &mut egui::Ui, h: &History) {
    let Some(f) = &h.fork else { return };
    if let Some((holds, text)) = f.verdict() {
        let col = if holds {
            Color32::from_rgb(44, 160, 44)
        } else {
            Color32::from_rgb(200, 120, 0)
        };
        ui.colored_label(col, text);
    }
    egui::Grid::new("branches").striped(true).show(ui, |ui| {
        for t in [
            "branch",
            "steps",
            "loss now",
            "since the fork",
            "‖θ − θ_fork‖",
            "mean χ_k",
        ] {
            ui.label(RichText::new(t).small().strong());
        }
        ui.end_row();
        for b in &f.branches {
            ui.label(RichText::new(&b.name).color(branch_color(b, f.set)));
            ui.label(b.steps.to_string());
            ui.label(format!("{:.5}", b.loss_now()));
            ui.label(format!("{:+.2} %", -100.0 * b.rel_decrease(f.loss)));
            ui.label(format!("{:.4}", b.dist_fork));
            ui.label(match b.mean_chi() {
                c if c.is_finite() => format!("{c:.3}"),
                _ => "–".into(),
            });
            if let Some(why) = &b.stopped {
                ui.colored_label(Color32::from_rgb(200, 120, 0), why);
            }
            ui.end_row();
        }
    });
}

fn run_plots(ui: &mut egui::Ui, h: &History) {
    branch_table(ui, h);
    let height = ((ui.available_height() - 20.0) / 2.0).max(120.0);
    let width = (ui.available_width() / 2.0 - 8.0).max(150.0);
    // After a fork the plots zoom to it: from a little before the fork (as many steps as the
    // branches have made, at least 50) to now, so the branches' first steps are visible beside a
    // history of thousands of steps.
    let from = h.fork.as_ref().map_or(0.0, |f| {
        f.step.saturating_sub((2 * f.steps()).max(50)) as f64
    });
    let series = |f: &dyn Fn(&super::live::Point) -> f64| -> Vec<[f64; 2]> {
        h.points
            .iter()
            .map(|p| [p.step as f64, f(p)])
            .filter(|q| q[1].is_finite() && q[0] >= from)
            .collect()
    };
    ui.horizontal(|ui| {
        Plot::new("loss")
            .width(width)
            .height(height)
            .y_axis_label("loss (log₁₀)")
            .y_axis_formatter(|m, _| format!("{:.3e}", 10f64.powf(m.value)))
            .legend(small_legend())
            .show(ui, |p| {
                let before: Vec<[f64; 2]> = series(&|q| q.loss.max(1e-12).log10())
                    .into_iter()
                    .filter(|q| h.fork.as_ref().is_none_or(|f| q[0] <= f.step as f64))
                    .collect();
                let name = if h.fork.is_some() {
                    "before the fork".to_string()
                } else {
                    h.run_name.clone()
                };
                p.line(
                    Line::new(name, PlotPoints::from(decimate(&before, DRAW_POINTS))).color(
                        if h.fork.is_some() {
                            Color32::GRAY
                        } else {
                            TOP_K
                        },
                    ),
                );
                if let Some(f) = &h.fork {
                    for b in &f.branches {
                        let pts: Vec<[f64; 2]> = b
                            .loss
                            .iter()
                            .filter(|q| q[1] > 0.0 && q[1].is_finite())
                            .map(|q| [q[0], q[1].log10()])
                            .collect();
                        p.line(
                            Line::new(
                                b.name.clone(),
                                PlotPoints::from(decimate(&pts, DRAW_POINTS)),
                            )
                            .color(branch_color(b, f.set)),
                        );
                    }
                }
                markers(p, h, from);
            });
        Plot::new("acc")
            .width(width)
            .height(height)
            .legend(small_legend())
            .y_axis_label("accuracy")
            .show(ui, |p| {
                let before: Vec<[f64; 2]> = series(&|q| q.accuracy)
                    .into_iter()
                    .filter(|q| h.fork.as_ref().is_none_or(|f| q[0] <= f.step as f64))
                    .collect();
                match &h.fork {
                    None => p.line(Line::new("accuracy", PlotPoints::from(before))),
                    Some(f) => {
                        p.line(
                            Line::new("before the fork", PlotPoints::from(before))
                                .color(Color32::GRAY),
                        );
                        for b in &f.branches {
                            p.line(
                                Line::new(
                                    b.name.clone(),
                                    PlotPoints::from(decimate(&b.accuracy, DRAW_POINTS)),
                                )
                                .color(branch_color(b, f.set)),
                            );
                        }
                    }
                }
                markers(p, h, from);
            });
    });
    ui.horizontal(|ui| {
        Plot::new("eig")
            .width(width)
            .height(height)
            .legend(small_legend())
            .y_axis_label("eigenvalues, sharpness")
            .show(ui, |p| {
                let n = h
                    .points
                    .iter()
                    .map(|q| q.eigenvalues.len())
                    .max()
                    .unwrap_or(0);
                for i in 0..n {
                    let name = if i < h.k {
                        format!("top-{}", h.k)
                    } else {
                        format!("next-{}", h.k)
                    };
                    let col = if i < h.k { TOP_K } else { NEXT_K };
                    p.line(
                        Line::new(
                            name,
                            PlotPoints::from(series(&|q| {
                                q.eigenvalues.get(i).copied().unwrap_or(f64::NAN)
                            })),
                        )
                        .color(col),
                    );
                }
                // The edge only where it is in reach: 2/η = 200 would flatten the spectrum.
                let max_l1 = h
                    .points
                    .iter()
                    .filter_map(|q| q.eigenvalues.first().copied())
                    .fold(0.0f64, f64::max);
                let min_edge = h
                    .points
                    .iter()
                    .map(|q| q.edge)
                    .fold(f64::INFINITY, f64::min);
                if min_edge < 3.0 * max_l1 {
                    p.line(
                        Line::new("2/η (SAM: its edge)", PlotPoints::from(series(&|q| q.edge)))
                            .color(Color32::GRAY)
                            .style(LineStyle::dashed_dense()),
                    );
                }
                // Each branch's own sharpness after the fork (the top-k above are the first
                // branch's, as before the fork).
                if let Some(f) = &h.fork {
                    for b in &f.branches {
                        p.line(
                            Line::new(
                                format!("λ₁ {}", b.name),
                                PlotPoints::from(decimate(&b.lambda1, DRAW_POINTS)),
                            )
                            .color(branch_color(b, f.set))
                            .width(2.0),
                        );
                    }
                }
                markers(p, h, from);
            });
        Plot::new("chi")
            .width(width)
            .height(height)
            .legend(small_legend())
            .y_axis_label("χ_k(∇L)")
            .include_y(0.0)
            .include_y(1.0)
            .show(ui, |p| {
                p.line(Line::new("χ_k(∇L)", PlotPoints::from(series(&|q| q.chi))));
                p.line(
                    Line::new("EMA (0.9) of χ_k", PlotPoints::from(series(&|q| q.chi_ema)))
                        .style(LineStyle::dashed_dense()),
                );
                p.hline(HLine::new("0.95", 0.95).color(Color32::GRAY));
                if let Some(f) = &h.fork {
                    for b in &f.branches {
                        p.line(
                            Line::new(format!("χ_k {}", b.name), PlotPoints::from(b.chi.clone()))
                                .color(branch_color(b, f.set)),
                        );
                    }
                }
                markers(p, h, from);
            });
    });
}

impl eframe::App for SandboxApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let t0 = web_time::Instant::now();
        if let Some(prev) = self.last_frame.replace(t0) {
            self.interval_ms
                .push(t0.duration_since(prev).as_secs_f64() * 1e3);
            if self.interval_ms.len() > 100_000 {
                self.interval_ms.drain(..50_000);
            }
        }
        let ctx = ui.ctx().clone();
        if self.toy_running {
            let s = &self.settings;
            self.toy
                .advance(s.toy_steps_per_frame, s.toy_lr, s.toy_coupling);
        }
        // One copy of the worker's state per frame (it holds the whole history).
        let shared = self.worker.snapshot();
        let training = shared.running;
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
            if b && shared.history.fork.is_none() {
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
                let fs = self.frame_stats();
                ui.label(RichText::new(format!("frame p95 {:.1} ms", fs.p95_ms)).small());
            });
            for w in &self.warnings {
                ui.colored_label(Color32::from_rgb(200, 120, 0), w);
            }
            ui.columns(2, |cols| {
                self.toy_panel(&mut cols[0]);
                self.model_panel(&mut cols[1], &shared);
            });
        });
        super::platform::after_frame(self, &ctx);
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
                super::platform::finish(self, &ctx);
            }
        }
        ctx.request_repaint();
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // A headless run (the test hook, `--exit-after-steps`) leaves the user's settings alone.
        if self.auto.is_none() {
            eframe::set_value(storage, eframe::APP_KEY, &self.settings);
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(&mut *self)
    }
}
