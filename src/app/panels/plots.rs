//! The model panel's plots: loss, accuracy, eigenvalues and χ_k over the run, each branch in the
//! paper's colours after a fork, the branches' table beside them.

use crate::app::live::{BranchSet, BranchView, History, Point};
use crate::experiment::spec::Projection;
use crate::experiment::ticks::{log_gaps, log_ticks};
use egui::{Color32, RichText};
use egui_plot::{GridInput, GridMark, HLine, Line, LineStyle, Plot, PlotPoints, VLine};

const TOP_K: Color32 = Color32::from_rgb(31, 119, 180);
const NEXT_K: Color32 = Color32::from_rgb(255, 127, 14);

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
pub(crate) const DRAW_POINTS: usize = 2000;

/// The run's events as dashed vertical lines (those from `from` on); unnamed, so that they stay
/// out of the legends (the status line, the lesson and the branch table name them).
fn markers_ui(p: &mut egui_plot::PlotUi, h: &History, from: f64) {
    for m in h.markers.iter().filter(|m| m.step as f64 >= from) {
        p.vline(
            VLine::new("", m.step as f64)
                .style(LineStyle::dashed_loose())
                .color(Color32::GRAY),
        );
    }
}

/// Text with χ in it. The proportional family draws χ from its own font
/// ([`crate::app::ui::font_definitions`]: Ubuntu Light's χ reads as a Latin x beside the
/// coordinate x), so this is plain text now; kept so that callers need not change.
pub fn chi_text(t: &str) -> RichText {
    RichText::new(t)
}

/// The label of a mark of [`log10_grid`]: its value with the decimals its spacing needs (0.05, 0.2,
/// 2 at 1-2-5; 0.1045, 0.105 on a narrow range, where three significant digits would print two
/// ticks alike), [`readable`]'s scientific form outside 0.001 … 100,000.
pub fn log10_label(m: GridMark) -> String {
    let v = 10f64.powf(m.value);
    let spacing = v * (10f64.powf(m.step_size) - 1.0);
    let plain = (1e-3..1e5).contains(&v) && spacing.is_finite() && spacing > 0.0;
    if !plain {
        return readable(v);
    }
    let d = (-(spacing * 1.0001).log10().floor()).clamp(0.0, 8.0) as usize;
    let t = format!("{v:.d$}");
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}

/// egui_plot's grid marks for an axis that shows log10 of its values (the loss): at the ticks of
/// [`log_ticks`] (1-2-5 per decade; denser on a narrow range), each mark's `step_size` its
/// distance to its nearest neighbour, so that egui_plot fades labels that would collide.
pub fn log10_grid(input: GridInput) -> Vec<GridMark> {
    let (a, b) = input.bounds;
    let ticks = log_ticks(10f64.powf(a), 10f64.powf(b), 7);
    let gaps = log_gaps(&ticks, b - a);
    ticks
        .iter()
        .zip(gaps)
        .map(|(t, g)| GridMark {
            value: t.log10(),
            step_size: g,
        })
        .collect()
}

/// A tick's label a reader takes in at a glance: three significant digits in plain notation
/// from 0.001 to 100,000 ("0.105", "2322", "12.5"), scientific beyond ("1.5e-5").
pub fn readable(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    // Digits after the point for three significant ones.
    let d = (2 - a.log10().floor() as i32).max(0) as usize;
    let t = format!("{v:.d$}");
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}

/// A plot of the model panel: its size, ticks close enough that every axis has several (the
/// default spacing leaves a narrow plot one x tick), readable labels, no legend inside the data
/// (the legend row above the plots names the lines).
fn model_plot<'a>(id: &'a str, area: &PlotArea<'_>) -> Plot<'a> {
    Plot::new(id)
        .width(area.width)
        .height(area.height)
        .grid_spacing(egui::Rangef::new(6.0, 60.0))
        // Step labels ("2300") are narrow: egui_plot's default 60 px between x labels left the
        // branches' plots (70 steps wide) one tick.
        .custom_x_axes(vec![
            egui_plot::AxisHints::new_x()
                .label("step")
                .formatter(|m, _| readable(m.value))
                .label_spacing(36.0..=60.0),
        ])
        .y_axis_formatter(|m, _| readable(m.value))
}

/// The legend of the plots, above them (outside the data): one coloured swatch per line.
fn legend_row_ui(ui: &mut egui::Ui, h: &History) {
    let mut items: Vec<(String, Color32)> = Vec::new();
    match &h.fork {
        None => items.push((h.run_name.clone(), TOP_K)),
        Some(f) => {
            items.push(("before the fork".into(), Color32::GRAY));
            for b in &f.branches {
                items.push((b.name.clone(), branch_color(b, f.set)));
            }
        }
    }
    items.push((format!("eigenvalues: top-{}", h.k), TOP_K));
    items.push((format!("next-{}", h.k), NEXT_K));
    ui.horizontal_wrapped(|ui| {
        for (name, col) in items {
            ui.label(RichText::new("━━").color(col).strong());
            ui.label(RichText::new(name).small());
        }
        ui.label(RichText::new("┆ dashed: events (fork, switch)").small());
    });
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
fn branch_table_ui(ui: &mut egui::Ui, h: &History) {
    let Some(f) = &h.fork else { return };
    if let Some(v) = crate::app::live::judge(h) {
        let col = match (v.provisional, v.holds) {
            (true, _) => Color32::GRAY,
            (false, true) => Color32::from_rgb(44, 160, 44),
            (false, false) => Color32::from_rgb(200, 120, 0),
        };
        ui.colored_label(col, v.text);
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
            ui.label(chi_text(t).small().strong());
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

/// What the four plots share: the history, the first step shown, the size of each plot.
struct PlotArea<'a> {
    h: &'a History,
    from: f64,
    width: f32,
    height: f32,
}

impl PlotArea<'_> {
    /// (step, f(point)) of the run's points from `from` on, where finite.
    fn series(&self, f: &dyn Fn(&Point) -> f64) -> Vec<[f64; 2]> {
        self.h
            .points
            .iter()
            .map(|p| [p.step as f64, f(p)])
            .filter(|q| q[1].is_finite() && q[0] >= self.from)
            .collect()
    }
}

/// Whether the run has anything to plot (no empty axes before the first measurement).
pub fn has_data(h: &History) -> bool {
    h.fork.is_some() || h.points.iter().any(|p| p.loss.is_finite())
}

/// The branches' table and the four plots of the run, two by two; before the first measurement
/// a line that says what is being computed instead of empty axes.
pub fn run_plots_ui(ui: &mut egui::Ui, h: &History) {
    branch_table_ui(ui, h);
    if !has_data(h) {
        ui.horizontal(|ui| {
            ui.label(
                "computing the first measurement (the loss over all samples and the top Hessian eigenvalues: a cold eigensolve takes seconds); the plots appear with it",
            );
        });
        return;
    }
    legend_row_ui(ui, h);
    let height = ((ui.available_height() - 20.0) / 2.0).max(120.0);
    let width = (ui.available_width() / 2.0 - 8.0).max(150.0);
    // After a fork the plots zoom to it: from a little before the fork (as many steps as the
    // branches have made, at least 50) to now, so the branches' first steps are visible beside a
    // history of thousands of steps.
    let from = h.fork.as_ref().map_or(0.0, |f| {
        f.step.saturating_sub((2 * f.steps()).max(50)) as f64
    });
    let area = PlotArea {
        h,
        from,
        width,
        height,
    };
    ui.horizontal(|ui| {
        loss_plot_ui(ui, &area);
        accuracy_plot_ui(ui, &area);
    });
    ui.horizontal(|ui| {
        eigen_plot_ui(ui, &area);
        chi_plot_ui(ui, &area);
    });
}

/// The full-data loss (log scale): the run before the fork, then each branch.
fn loss_plot_ui(ui: &mut egui::Ui, area: &PlotArea<'_>) {
    let (h, from) = (area.h, area.from);
    let series = |f: &dyn Fn(&Point) -> f64| area.series(f);
    model_plot("loss", area)
        .y_axis_label("loss (log scale)")
        .y_axis_formatter(|m, _| log10_label(m))
        .y_grid_spacer(log10_grid)
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
            markers_ui(p, h, from);
        });
}

/// The full-data accuracy: the run before the fork, then each branch.
fn accuracy_plot_ui(ui: &mut egui::Ui, area: &PlotArea<'_>) {
    let (h, from) = (area.h, area.from);
    let series = |f: &dyn Fn(&Point) -> f64| area.series(f);
    model_plot("acc", area)
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
                        Line::new("before the fork", PlotPoints::from(before)).color(Color32::GRAY),
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
            markers_ui(p, h, from);
        });
}

/// The top-k and next-k Hessian eigenvalues, the edge 2/η where in reach, each branch's λ₁.
fn eigen_plot_ui(ui: &mut egui::Ui, area: &PlotArea<'_>) {
    let (h, from) = (area.h, area.from);
    let series = |f: &dyn Fn(&Point) -> f64| area.series(f);
    model_plot("eig", area)
        .y_axis_label("eigenvalues")
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
            markers_ui(p, h, from);
        });
}

/// χ_k(∇L), its EMA and the 0.95 switch line, each branch's χ_k.
fn chi_plot_ui(ui: &mut egui::Ui, area: &PlotArea<'_>) {
    let (h, from) = (area.h, area.from);
    let series = |f: &dyn Fn(&Point) -> f64| area.series(f);
    model_plot("chi", area)
        .y_axis_label(chi_text("χ_k(∇L), EMA dashed"))
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
            markers_ui(p, h, from);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labels of `log10_grid`'s marks over loss from `lo` to `hi`.
    fn labels(lo: f64, hi: f64) -> Vec<String> {
        log10_grid(GridInput {
            bounds: (lo.log10(), hi.log10()),
            base_step_size: 0.001,
        })
        .into_iter()
        .map(log10_label)
        .collect()
    }

    /// The loss axis (log10 of the loss) gets its marks at 1-2-5, labelled as numbers.
    #[test]
    fn the_loss_axis_ticks_at_one_two_five() {
        assert_eq!(labels(0.05, 3.0), ["0.05", "0.1", "0.2", "0.5", "1", "2"]);
        let marks = log10_grid(GridInput {
            bounds: (0.05f64.log10(), 3f64.log10()),
            base_step_size: 0.01,
        });
        assert!(
            marks
                .iter()
                .all(|m| (m.step_size - 2f64.log10()).abs() < 0.1)
        );
        // A loss that moves by a few per cent: evenly spaced, three digits.
        assert_eq!(
            labels(0.101, 0.113),
            ["0.102", "0.104", "0.106", "0.108", "0.11", "0.112"]
        );
        // Ticks 0.0005 apart: four decimals where needed, never two labels alike (three
        // significant digits printed 0.1045 and 0.105 both as "0.105").
        assert_eq!(
            labels(0.1044, 0.1076),
            [
                "0.1045", "0.105", "0.1055", "0.106", "0.1065", "0.107", "0.1075"
            ]
        );
    }
}
