//! The toy panel: two paths on the paper's 2-D toy L = ½(1000x² + y²) with minibatch losses
//! ℓ± = L ± c·xy, each with its own method ("switch now" changes it mid-run), and χ₁ along them.

use super::plots::{DRAW_POINTS, decimate};
use crate::app::settings::Settings;
use crate::app::toysim::ToySim;
use crate::experiment::toy::ToyMethod;
use egui::{Color32, RichText};
use egui_plot::{Legend, Line, LineStyle, Plot, PlotPoints, VLine};

const PATH_A: Color32 = Color32::from_rgb(31, 119, 180);
const PATH_B: Color32 = Color32::from_rgb(214, 39, 40);

/// The toy panel's state: the two paths, whether they advance, whether the plot follows them.
pub struct ToyPanel {
    /// Paths A and B.
    pub sim: ToySim,
    /// Whether the paths advance each frame ("run" / "pause").
    pub running: bool,
    follow: bool,
}

impl ToyPanel {
    /// Both paths at the settings' start.
    pub fn new(s: &Settings) -> ToyPanel {
        ToyPanel {
            sim: ToySim::new(s.toy_a, s.toy_b, s.toy_x0, s.toy_y0, s.toy_seed),
            running: true,
            follow: true,
        }
    }

    /// Back to the settings' start.
    pub fn reset(&mut self, s: &Settings) {
        self.sim = ToySim::new(s.toy_a, s.toy_b, s.toy_x0, s.toy_y0, s.toy_seed);
    }

    /// One frame's steps (the settings' steps per frame), if running.
    pub fn advance(&mut self, s: &Settings) {
        if self.running {
            self.sim
                .advance(s.toy_steps_per_frame, s.toy_lr, s.toy_coupling);
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
        let (a, b) = (&self.sim.a, &self.sim.b);
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
        self.path_plot_ui(ui, h);
        self.chi_plot_ui(ui, h);
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
            ui.checkbox(&mut self.follow, "follow");
        });
        (reset, switch_now)
    }

    /// Both paths over the valley's contours, with the points where a path switched method.
    fn path_plot_ui(&self, ui: &mut egui::Ui, h: f32) {
        let (a, b) = (&self.sim.a, &self.sim.b);
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
        let follow = self.follow;
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
    }

    /// χ₁(∇L) along both paths, with the switches.
    fn chi_plot_ui(&self, ui: &mut egui::Ui, h: f32) {
        let (a, b) = (&self.sim.a, &self.sim.b);
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
}
