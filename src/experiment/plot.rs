//! PNG plots drawn like the paper's and fit for a slide: log-scale loss, χ_k with the 0.95 line,
//! the top-k eigenvalues in one colour and the next k in another, sharpness against 2/η (or the
//! SAM edge), distance from the switch point; the switch ("fork") marked on every panel. A run
//! that forks gets a panel of its own with the loss after the fork enlarged (Figure 1's result is
//! in the last sixth of the steps and a few per cent of the loss), and the verdicts as a caption
//! under the title. Legends sit in a strip above each panel's data, ticks read like numbers, log
//! axes say so, and χ is set in a font that has it ([`style`]).

pub(crate) mod style;
mod toy_png;

use super::record::Record;
use super::ticks::{log_ticks, nice_step};
use super::verdict::Verdict;
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
pub use toy_png::toy_png;

use style::{COLORS, Entry, fonts};

/// `k` in Unicode subscript digits (χ₁₀).
fn subscript(k: usize) -> String {
    k.to_string()
        .chars()
        .map(|c| char::from_u32(0x2080 + c.to_digit(10).unwrap_or(0)).unwrap_or(c))
        .collect()
}

fn err<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::data(path, format!("plot: {e}"))
}

/// One line of a panel: its legend label (empty: none), colour, points (x, y), dash.
struct Series {
    name: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

fn finite_range(series: &[Series], log: bool) -> Option<(f64, f64)> {
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite() && (!log || *y > 0.0));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    if !lo.is_finite() {
        return None;
    }
    if log {
        Some((lo / 1.2, hi * 1.2))
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-12 + hi.abs() * 1e-6);
        Some((lo - pad, hi + pad))
    }
}

/// Title and legend of a panel drawn; the area left for the data.
fn panel_frame<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[Series],
) -> std::result::Result<DrawingArea<DB, Shift>, String> {
    style::draw_centered(area, title, 4, 18.0, &BLACK)?;
    let entries: Vec<Entry> = series
        .iter()
        .filter(|s| !s.name.is_empty())
        .map(|s| Entry {
            label: s.name.clone(),
            color: s.color,
            dashed: s.dashed,
        })
        .collect();
    let w = area.dim_in_pixel().0 as i32;
    let legend_h = style::legend_height(area, &entries, w - 70, 13.0);
    let body = area.margin(28, 0, 0, 0);
    let (legend, body) = body.split_vertically(legend_h.max(0) as u32);
    style::draw_legend(&legend.margin(0, 0, 66, 0), &entries, 13.0)?;
    Ok(body)
}

/// A panel: its title on top, the legend in a strip under it, then the data (`log`: a log y axis,
/// said in the title), with the fork `marker` dashed and named.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    xlabel: &str,
    series: &[Series],
    log: bool,
    marker: Option<f64>,
    x_range: (f64, f64),
) -> std::result::Result<(), String> {
    let Some((lo, hi)) = finite_range(series, log) else {
        style::draw_centered(area, &format!("{title} (no data)"), 4, 18.0, &BLACK)?;
        return Ok(());
    };
    // Less than a fifth of a decade (a loss that moves by a few per cent, as on the fork's
    // enlarged panel) reads better linear; above, the ticks sit at 1-2-5 ([`log_ticks`]).
    let log = log && hi / lo >= 1.6;
    let title = if log {
        format!("{title} (log scale)")
    } else {
        title.to_string()
    };
    let body = panel_frame(area, &title, series)?;
    let mut b = ChartBuilder::on(&body);
    b.margin(8)
        .margin_right(16)
        .x_label_area_size(36)
        .y_label_area_size(62);
    let (x0, x1) = x_range;
    let x_step = nice_step(x1 - x0, 6);
    let y_step = nice_step(hi - lo, 6);
    macro_rules! draw {
        ($chart:expr, $ylab:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(xlabel)
                .label_style((style::SANS, 14))
                .axis_desc_style((style::SANS, 14))
                .x_labels(7)
                .y_labels(7)
                .x_label_formatter(&|v: &f64| style::tick_label(*v, x_step))
                .y_label_formatter(&$ylab)
                .light_line_style(WHITE.mix(0.0))
                .bold_line_style(BLACK.mix(0.08))
                .draw()
                .map_err(|e| e.to_string())?;
            for s in series {
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .cloned()
                    .filter(|p| p.1.is_finite() && (!log || p.1 > 0.0))
                    .collect();
                // Thick lines join with unlimited miters: on a jagged series of many points
                // (the toy's χ₁) the joins would shoot far past the data, so those are thin.
                let style = s.color.stroke_width(if pts.len() > 400 { 1 } else { 2 });
                if s.dashed {
                    chart
                        .draw_series(DashedLineSeries::new(pts, 6, 4, style))
                        .map_err(|e| e.to_string())?;
                } else {
                    chart
                        .draw_series(LineSeries::new(pts, style))
                        .map_err(|e| e.to_string())?;
                }
            }
            if let Some(m) = marker.filter(|m| (x0..=x1).contains(m)) {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(m, lo), (m, hi)],
                        4,
                        4,
                        BLACK.mix(0.5).stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
                // Pixels of the whole image, made relative to this panel's body.
                let (px, py) = chart.backend_coord(&(m, hi));
                let (bx, by) = body.get_base_pixel();
                let (px, py) = (px - bx, py - by);
                body.draw_text(
                    "fork",
                    &(style::SANS, 13).into_font().color(&BLACK.mix(0.6)),
                    (px + 4, py + 2),
                )
                .map_err(|e| e.to_string())?;
            }
        }};
    }
    if log {
        draw!(
            b.build_cartesian_2d(
                x0..x1,
                (lo..hi).log_scale().with_key_points(log_ticks(lo, hi, 8))
            )
            .map_err(|e| e.to_string())?,
            |v: &f64| style::log_tick_label(*v)
        );
    } else {
        draw!(
            b.build_cartesian_2d(x0..x1, lo..hi)
                .map_err(|e| e.to_string())?,
            |v: &f64| style::tick_label(*v, y_step)
        );
    }
    Ok(())
}

/// The caption under a figure's title, from `y` down: each verdict's line (green when it holds,
/// red when not), wrapped to the width; returns the rows it takes (drawn only with `draw`).
fn caption<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    verdicts: &[Verdict],
    y: i32,
) -> std::result::Result<i32, String> {
    let width = area.dim_in_pixel().0 as i32 - 60;
    let mut rows = 0;
    for v in verdicts {
        let color = if v.holds {
            RGBColor(0, 110, 40)
        } else {
            RGBColor(180, 20, 20)
        };
        let mut line = String::new();
        let mut lines = Vec::new();
        for word in v.text.split(' ') {
            let next = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && style::text_size(area, &next, 15.0).0 > width {
                lines.push(std::mem::replace(&mut line, word.to_string()));
            } else {
                line = next;
            }
        }
        lines.push(line);
        for l in lines {
            style::draw_centered(area, &l, y + rows * 20, 15.0, &color)?;
            rows += 1;
        }
    }
    Ok(rows)
}

/// `metrics.png`: the panels of a run's (or several runs') records; see [`metrics_png_with`].
pub fn metrics_png(
    path: &Path,
    title: &str,
    records: &[Record],
    k: usize,
    switch: Option<usize>,
) -> Result<()> {
    metrics_png_with(path, title, records, k, switch, &[])
}

/// `metrics.png` with the `verdicts` as its caption (1500×900 or 2000×1050 pixels): six panels
/// (loss, accuracy, χ_k, the spectrum, sharpness, the effective learning rates or the distance
/// from the switch); a run that forked (records after `switch`) gets eight — the loss after the
/// fork enlarged beside the whole loss, and both the rates and the distance. Errors: the file
/// cannot be written (named).
pub fn metrics_png_with(
    path: &Path,
    title: &str,
    records: &[Record],
    k: usize,
    switch: Option<usize>,
    verdicts: &[Verdict],
) -> Result<()> {
    fonts();
    let mut runs: Vec<&str> = Vec::new();
    for r in records {
        if !runs.contains(&r.run.as_str()) {
            runs.push(&r.run);
        }
    }
    let x_max = records.iter().map(|r| r.step).max().unwrap_or(1).max(1) as f64;
    let m = Metrics {
        records,
        runs,
        k,
        x_max,
        marker: switch.map(|s| s as f64),
    };
    let forked = switch.is_some_and(|s| records.iter().any(|r| r.step > s && r.phase == "after"));
    let (cols, size) = if forked {
        (4, (2000, 1050))
    } else {
        (3, (1500, 900))
    };
    let root = BitMapBackend::new(path, size).into_drawing_area();
    let draw = || -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        style::draw_centered(&root, title, 6, 24.0, &BLACK)?;
        let rows = caption(&root, verdicts, 38)?;
        let top = 40 + rows * 20 + 6;
        let body = root.margin(top as u32, 0, 0, 0);
        let areas = body.split_evenly((2, cols));
        m.draw_panels(&areas, forked)?;
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(err(path))
}

/// The records of `metrics.png` and the runs among them (in order of appearance), with what the
/// panels share: k, the last step and the switch step marked.
struct Metrics<'r> {
    records: &'r [Record],
    runs: Vec<&'r str>,
    k: usize,
    x_max: f64,
    marker: Option<f64>,
}

impl Metrics<'_> {
    /// Draw the panels into `areas` (2×3; 2×4 for a run that `forked`: the loss after the fork
    /// enlarged in the second, the rates and the distance both shown).
    fn draw_panels<DB: DrawingBackend>(
        &self,
        areas: &[DrawingArea<DB, Shift>],
        forked: bool,
    ) -> std::result::Result<(), String> {
        let xr = (0.0, self.x_max);
        let mut slots = areas.iter();
        let mut next = |title: &str, series: &[Series], log: bool, x: (f64, f64)| match slots.next()
        {
            Some(a) => panel(a, title, "step", series, log, self.marker, x),
            None => Ok(()),
        };
        next("training loss", &self.by(&|r| r.loss), true, xr)?;
        if forked && let Some(s) = self.marker {
            // From a little before the fork to the end: the branches' few per cent, enlarged.
            let from = (s - ((self.x_max - s) / 4.0).max(1.0)).max(0.0);
            let mut zoom = self.by(&|r| r.loss);
            for z in zoom.iter_mut() {
                z.points.retain(|p| p.0 >= from);
            }
            next(
                "training loss after the fork (enlarged)",
                &zoom,
                false,
                (from, self.x_max),
            )?;
        }
        next("training accuracy", &self.by(&|r| r.accuracy), false, xr)?;
        let chi_title = format!("χ{0}(∇L) = ‖P{0} ∇L‖ / ‖∇L‖", subscript(self.k));
        next(&chi_title, &self.chi(), false, xr)?;
        next("Hessian eigenvalues", &self.eigenvalues(), false, xr)?;
        let (sharp_title, sharp) = self.sharpness();
        next(&sharp_title, &sharp, false, xr)?;
        let has_rates = self.records.iter().any(|r| r.dom_lr.is_finite());
        if has_rates {
            next("effective learning rates", &self.rates(), true, xr)?;
        }
        if !has_rates || forked {
            next("‖θ − θ_fork‖", &self.by(&|r| r.dist_switch), false, xr)?;
        }
        Ok(())
    }

    /// One series per run of `f` against the step.
    fn by(&self, f: &dyn Fn(&Record) -> f64) -> Vec<Series> {
        self.runs
            .iter()
            .enumerate()
            .map(|(i, name)| Series {
                name: name.to_string(),
                color: COLORS[i % COLORS.len()],
                points: self
                    .records
                    .iter()
                    .filter(|r| r.run == *name)
                    .map(|r| (r.step as f64, f(r)))
                    .collect(),
                dashed: false,
            })
            .collect()
    }

    /// χ_k per run, its EMA dashed where recorded, and the 0.95 line.
    fn chi(&self) -> Vec<Series> {
        let mut chi = self.by(&|r| r.chi_k);
        // The EMA (0.9) the χ-EMA switch rule reads, dashed, where the run recorded it.
        let mut ema = self.by(&|r| r.chi_ema);
        for e in ema.iter_mut() {
            e.name = format!("EMA ({})", e.name);
            e.dashed = true;
            e.points.retain(|p| p.1.is_finite());
        }
        chi.extend(ema.into_iter().filter(|e| !e.points.is_empty()));
        chi.push(Series {
            name: "0.95".into(),
            color: RGBColor(120, 120, 120),
            points: vec![(0.0, 0.95), (self.x_max, 0.95)],
            dashed: true,
        });
        chi
    }

    /// The spectrum of the first run: top-k in one colour, next-k in another.
    fn eigenvalues(&self) -> Vec<Series> {
        let k = self.k;
        let first = self.runs.first().copied().unwrap_or("");
        let mine: Vec<&Record> = self.records.iter().filter(|r| r.run == first).collect();
        let top = mine.iter().map(|r| r.eigenvalues.len()).max().unwrap_or(0);
        (0..top)
            .map(|i| Series {
                name: if i == 0 {
                    format!("top-{k} ({first})")
                } else if i == k {
                    format!("next-{k}")
                } else {
                    String::new()
                },
                color: if i < k { COLORS[0] } else { COLORS[3] },
                points: mine
                    .iter()
                    .map(|r| {
                        (
                            r.step as f64,
                            r.eigenvalues.get(i).copied().unwrap_or(f64::NAN),
                        )
                    })
                    .collect(),
                dashed: false,
            })
            .collect()
    }

    /// λ₁ per run against 2/η or the SAM edge (dashed): the panel's title and series.
    fn sharpness(&self) -> (String, Vec<Series>) {
        let records = self.records;
        let first = self.runs.first().copied().unwrap_or("");
        let mut sharp = self.by(&|r| r.eigenvalues.first().copied().unwrap_or(f64::NAN));
        let edge_name = if records.iter().any(|r| r.sam_edge.is_finite()) {
            "SAM edge"
        } else {
            "2/η"
        };
        let max_l1 = records
            .iter()
            .filter_map(|r| r.eigenvalues.first().copied())
            .fold(0.0f64, f64::max);
        let edge_pts: Vec<(f64, f64)> = records
            .iter()
            .filter(|r| r.run == first || r.phase == "after")
            .map(|r| {
                (
                    r.step as f64,
                    if r.sam_edge.is_finite() {
                        r.sam_edge
                    } else {
                        r.two_over_lr
                    },
                )
            })
            .collect();
        let min_edge = edge_pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        // An edge far above the sharpness would flatten the curve: name it instead of drawing it.
        let far = min_edge > 3.0 * max_l1;
        let title = if far {
            format!("sharpness λ₁ ({edge_name} ≥ {min_edge:.0}, off scale)")
        } else {
            format!("sharpness λ₁ vs {edge_name}")
        };
        sharp.push(Series {
            name: if far { String::new() } else { edge_name.into() },
            color: BLACK,
            points: if far { Vec::new() } else { edge_pts },
            dashed: true,
        });
        (title, sharp)
    }

    /// Dom-LR per run, and Bulk-LR dashed.
    fn rates(&self) -> Vec<Series> {
        let mut s = self.by(&|r| r.dom_lr);
        for x in s.iter_mut() {
            x.name = format!("{} Dom-LR", x.name);
        }
        let mut b = self.by(&|r| r.bulk_lr);
        for x in b.iter_mut() {
            x.name = format!("{} Bulk-LR", x.name);
            x.dashed = true;
        }
        s.extend(b);
        s
    }
}
