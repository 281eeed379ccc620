//! The toy panel: two paths on the paper's 2-D toy L = ½(1000x² + y²) with minibatch losses
//! ℓ± = L ± c·xy, each with its own method ("switch now" changes it mid-run), and χ₁ along them.

use super::plots::{DRAW_POINTS, decimate};
use crate::app::settings::Settings;
use crate::app::toysim::{ToyPath, ToySim};
use crate::experiment::toy::ToyMethod;
use egui::{Color32, RichText};
use egui_plot::{Legend, Line, LineStyle, Plot, PlotPoints, VLine};

const PATH_A: Color32 = Color32::from_rgb(31, 119, 180);
const PATH_B: Color32 = Color32::from_rgb(214, 39, 40);

/// A toy path's colour by its method, as the networks' branches: GD purple, SGD blue, Dom-SGD
/// red, Bulk-SGD green.
pub fn method_color(m: ToyMethod) -> Color32 {
    match m {
        ToyMethod::Gd => Color32::from_rgb(148, 103, 189),
        ToyMethod::Sgd => PATH_A,
        ToyMethod::DomSgd => PATH_B,
        ToyMethod::BulkSgd => Color32::from_rgb(44, 160, 44),
    }
}

/// The fixed view of the valley for a start (x0, y0): the floor x = 0 from y0 down to 0, and
/// across it ±0.1·|y0| (SGD's zig-zag spans about ±0.05·|y), so GD's path down the floor and
/// SGD's across it are both visible. ([x_min, y_min], [x_max, y_max])
pub fn valley_view(y0: f64) -> ([f64; 2], [f64; 2]) {
    let h = if y0.abs() > 1e-9 { y0.abs() } else { 1.0 };
    let xe = 0.1 * h;
    ([-xe, y0.min(0.0) - 0.05 * h], [xe, y0.max(0.0) + 0.1 * h])
}
/// While held, the toy moves once every this long (4 frames a second).
pub const HELD_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// While held, each of its frames makes this many frames' steps (so the lesson's
/// [`crate::app::toysim::LESSON_STEPS`] take 12.5 s at 200 steps a frame, 50 frames).
pub const HELD_STEPS_FACTOR: usize = 2;

/// The toy panel's state: the two paths, whether they advance, whether the plot follows them.
pub struct ToyPanel {
    /// Paths A and B.
    pub sim: ToySim,
    /// Whether the paths advance each frame ("run" / "pause").
    pub running: bool,
    /// Slowed by the app while a scenario's branches compute (the cores are theirs): the toy then
    /// advances every [`HELD_INTERVAL`] only, [`HELD_STEPS_FACTOR`] frames' steps at a time.
    pub held: bool,
    /// When the held toy last advanced.
    last_held_step: Option<web_time::Instant>,
    follow: bool,
    /// The lesson's end stopped the animation once (a later "run" goes on past it).
    lesson_stopped: bool,
}

impl ToyPanel {
    /// Both paths at the settings' start.
    pub fn new(s: &Settings) -> ToyPanel {
        ToyPanel {
            sim: ToySim::new(s.toy_a, s.toy_b, s.toy_x0, s.toy_y0, s.toy_seed),
            running: true,
            held: false,
            last_held_step: None,
            follow: false,
            lesson_stopped: false,
        }
    }

    /// Whether the paths move (so the window must redraw: at once, or after [`Self::next_frame`]).
    pub fn animating(&self) -> bool {
        self.running
    }

    /// How long the window may wait before the toy's next frame: none while it runs freely,
    /// [`HELD_INTERVAL`] while held (the page's first frames would otherwise show an empty toy,
    /// issue 30: the toy tells Figures 6–8 while the network computes, a few frames a second).
    pub fn next_frame(&self) -> std::time::Duration {
        if self.held {
            HELD_INTERVAL
        } else {
            std::time::Duration::ZERO
        }
    }

    /// Back to the settings' start.
    pub fn reset(&mut self, s: &Settings) {
        self.sim = ToySim::new(s.toy_a, s.toy_b, s.toy_x0, s.toy_y0, s.toy_seed);
        self.lesson_stopped = false;
        self.running = true;
    }

    /// One frame's steps (the settings' steps per frame), if running.
    pub fn advance(&mut self, s: &Settings) {
        self.advance_at(s, web_time::Instant::now());
    }

    /// [`Self::advance`] at the time `now`: while held, only when [`HELD_INTERVAL`] has passed
    /// since the held toy last moved, then [`HELD_STEPS_FACTOR`] frames' steps (the frames the
    /// worker's news draw in between do not move it).
    pub fn advance_at(&mut self, s: &Settings, now: web_time::Instant) {
        if !self.animating() {
            return;
        }
        let mut n = s.toy_steps_per_frame;
        if self.held {
            if self
                .last_held_step
                .is_some_and(|t| now.saturating_duration_since(t) < HELD_INTERVAL)
            {
                return;
            }
            self.last_held_step = Some(now);
            n = n.saturating_mul(HELD_STEPS_FACTOR);
        } else {
            self.last_held_step = None;
        }
        self.sim.advance(n, s.toy_lr, s.toy_coupling);
        if !self.lesson_stopped && self.sim.lesson_done() {
            self.lesson_stopped = true;
            self.running = false;
        }
    }

    /// The panel: its controls (which edit `s`), the status line, the path and χ₁ plots.
    pub fn toy_panel_ui(&mut self, ui: &mut egui::Ui, s: &mut Settings) {
        ui.heading("2-D toy: L = ½(1000x² + y²), minibatch ℓ± = L ± c·xy");
        let (reset, switch_now) = self.controls_ui(ui, s);
        if reset {
            self.reset(s);
        }
        if switch_now {
            self.sim.a.switch_to(s.toy_a);
            self.sim.b.switch_to(s.toy_b);
        }
        // Monospace, so that the numbers do not jitter as they change (Hack's χ is clear too).
        ui.label(
            RichText::new(self.status_text())
                .family(egui::FontFamily::Monospace)
                .small(),
        );
        if self.held && self.running {
            ui.label(RichText::new("(a few frames a second while the branches compute)").small());
        }
        let h = (ui.available_height() - 30.0).max(200.0);
        self.path_plot_ui(ui, h);
        self.chi_plot_ui(ui, h);
    }

    /// The status line: each path's step, loss and χ₁; after the fork where Dom-SGD and
    /// Bulk-SGD stand along the valley (y) since it.
    pub fn status_text(&self) -> String {
        let (a, b) = (&self.sim.a, &self.sim.b);
        let one = |p: &ToyPath| {
            format!(
                "{} loss {:.3}, χ₁ {:.3}{}",
                p.method.name(),
                p.loss(),
                p.chi.last().map_or(0.0, |c| c[1]),
                if p.diverged { " (diverged)" } else { "" }
            )
        };
        let mut t = format!("step {} · {} · {}", a.step, one(a), one(b));
        if let Some(fs) = self.sim.fork_step {
            let y0 = self.sim.forks.first().map_or(f64::NAN, |f| f.path[0][1]);
            t.push_str(&format!(
                "\nforked at step {fs} (SGD aligned on the floor), y {y0:.3} →"
            ));
            for f in &self.sim.forks {
                t.push_str(&format!(
                    " {} y {:.3} (loss {:.3})",
                    f.method.name(),
                    f.y,
                    f.loss()
                ));
            }
        } else if self.sim.a.method != self.sim.b.method {
            t.push_str("\nDom-SGD and Bulk-SGD fork from SGD once GD's χ₁-EMA falls below 0.95 and SGD's stays above");
        }
        t
    }

    /// η, c, the start, steps per frame (each in its setting's range), the two methods, and the
    /// buttons; returns (reset, switch now).
    fn controls_ui(&mut self, ui: &mut egui::Ui, s: &mut Settings) -> (bool, bool) {
        // The ranges are the settings' own (the key table), so a typed value stays runnable.
        let r = |k: &str| s.range_of(k);
        let (lr, c, x0, y0, spf) = (
            r("toy_lr"),
            r("toy_c"),
            r("toy_x0"),
            r("toy_y0"),
            r("toy_spf"),
        );
        ui.horizontal_wrapped(|ui| {
            ui.label("η");
            ui.add(egui::DragValue::new(&mut s.toy_lr).speed(1e-6).range(lr));
            ui.label("c");
            ui.add(
                egui::DragValue::new(&mut s.toy_coupling)
                    .speed(1.0)
                    .range(c),
            );
            ui.label("start");
            ui.add(egui::DragValue::new(&mut s.toy_x0).speed(0.01).range(x0));
            ui.add(egui::DragValue::new(&mut s.toy_y0).speed(0.01).range(y0));
            ui.label("steps/frame");
            ui.add(egui::DragValue::new(&mut s.toy_steps_per_frame).range(spf));
        });
        let mut reset = false;
        let mut switch_now = false;
        ui.horizontal_wrapped(|ui| {
            for (label, m, col) in [("A", &mut s.toy_a, PATH_A), ("B", &mut s.toy_b, PATH_B)] {
                let col = if *m == ToyMethod::Gd || *m == ToyMethod::Sgd {
                    method_color(*m)
                } else {
                    col
                };
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
            let label = if self.running { "pause" } else { "run" };
            if ui.button(label).clicked() {
                self.running = !self.running;
            }
            if ui.button("reset").clicked() {
                reset = true;
            }
            ui.checkbox(&mut self.follow, "follow").on_hover_text(
                "zoom on the paths' last half instead of the fixed view of the valley",
            );
        });
        (reset, switch_now)
    }

    /// Every path over the valley's contours: a fixed view of the valley where GD's path down
    /// the floor and SGD's across it are both visible ("follow" zooms on the paths instead), the
    /// start and the fork marked.
    fn path_plot_ui(&self, ui: &mut egui::Ui, h: f32) {
        // SGD's zig-zag first, so that GD's path down the floor and the branches lie on top.
        let mut paths: Vec<&ToyPath> = [&self.sim.a, &self.sim.b]
            .into_iter()
            .chain(&self.sim.forks)
            .collect();
        paths.sort_by_key(|p| p.method != ToyMethod::Sgd);
        let start = self.sim.a.path[0];
        let (lo, hi) = if self.follow {
            let tail = |v: &[[f64; 2]]| v[v.len() / 2..].to_vec();
            let recent: Vec<[f64; 2]> = paths.iter().flat_map(|p| tail(&p.path)).collect();
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
            ([-xe, y0 - pad], [xe, y1 + pad])
        } else {
            valley_view(start[1])
        };
        Plot::new("toy-path")
            .height(h * 0.62)
            .legend(
                Legend::default()
                    .position(egui_plot::Corner::RightBottom)
                    .background_alpha(0.85),
            )
            .x_axis_label("x (across the valley: the sharp direction, S₁)")
            .y_axis_label("y (along the floor)")
            .allow_drag(self.follow)
            .allow_zoom(self.follow)
            .allow_scroll(false)
            .show(ui, |p| {
                if lo[1].is_finite() && hi[1].is_finite() {
                    p.set_plot_bounds(egui_plot::PlotBounds::from_min_max(lo, hi));
                }
                let x_ext = 2.0 * (hi[0] - lo[0]);
                for lvl in [0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0] {
                    let pts: Vec<[f64; 2]> = (0..=400)
                        .map(|i| {
                            let t = std::f64::consts::TAU * i as f64 / 400.0;
                            [
                                (2.0 * lvl / 1000.0f64).sqrt() * t.cos(),
                                (2.0 * lvl).sqrt() * t.sin(),
                            ]
                        })
                        .filter(|q| q[0].abs() <= x_ext)
                        .collect();
                    p.line(
                        Line::new("", PlotPoints::from(pts))
                            .color(Color32::from_gray(190))
                            .width(0.5),
                    );
                }
                for path in &paths {
                    p.line(
                        Line::new(
                            path.method.name(),
                            PlotPoints::from(decimate(&path.path, DRAW_POINTS)),
                        )
                        .color(method_color(path.method))
                        .width(if path.method == ToyMethod::Sgd {
                            1.0
                        } else {
                            2.0
                        }),
                    );
                }
                p.points(
                    egui_plot::Points::new("start", PlotPoints::from(vec![start]))
                        .shape(egui_plot::MarkerShape::Circle)
                        .radius(5.0)
                        .color(Color32::BLACK),
                );
                if let Some(f) = self.sim.forks.first() {
                    p.points(
                        egui_plot::Points::new("fork", PlotPoints::from(vec![f.path[0]]))
                            .shape(egui_plot::MarkerShape::Diamond)
                            .radius(6.0)
                            .color(Color32::from_rgb(255, 127, 14)),
                    );
                }
                // Where a path switched method ("switch now").
                for path in [&self.sim.a, &self.sim.b] {
                    if !path.switch_points.is_empty() {
                        p.points(
                            egui_plot::Points::new(
                                "",
                                PlotPoints::from(path.switch_points.clone()),
                            )
                            .shape(egui_plot::MarkerShape::Diamond)
                            .radius(6.0)
                            .filled(false)
                            .color(method_color(path.method)),
                        );
                    }
                }
            });
    }

    /// χ₁(∇L) along every path, with the switches and the fork.
    fn chi_plot_ui(&self, ui: &mut egui::Ui, h: f32) {
        let paths: Vec<&ToyPath> = [&self.sim.a, &self.sim.b]
            .into_iter()
            .chain(&self.sim.forks)
            .collect();
        Plot::new("toy-chi")
            .height(h * 0.38)
            .x_axis_label("step")
            .y_axis_label(super::plots::chi_text("χ₁(∇L), colours as above"))
            .include_y(0.0)
            .include_y(1.05)
            .show(ui, |p| {
                for path in &paths {
                    p.line(
                        Line::new(
                            path.method.name(),
                            PlotPoints::from(decimate(&path.chi, DRAW_POINTS)),
                        )
                        .color(method_color(path.method)),
                    );
                }
                for s in self.sim.a.switches.iter().chain(&self.sim.b.switches) {
                    p.vline(VLine::new("", *s as f64).style(LineStyle::dashed_dense()));
                }
                if let Some(s) = self.sim.fork_step {
                    p.vline(
                        VLine::new("", s as f64)
                            .style(LineStyle::dashed_dense())
                            .color(Color32::from_rgb(255, 127, 14)),
                    );
                }
            });
    }
}
