//! PNG plots drawn like the paper's: log-scale loss, χ_k with the 0.95 line, the top-k eigenvalues
//! in one colour and the next k in another, sharpness against 2/η (or the SAM edge), distance from
//! the switch point; the switch step marked on every panel. Text uses the Ubuntu font egui ships.

use super::record::Record;
use super::toy::ToyPoint;
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

fn fonts() {
    FONT.call_once(|| {
        // The font is a compiled-in constant; a failure here would be a broken build of
        // epaint_default_fonts, and plotting would then draw without text.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

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

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

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

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    xlabel: &str,
    series: &[Series],
    log: bool,
    marker: Option<f64>,
    x_range: (f64, f64),
) -> std::result::Result<(), String> {
    let Some((lo, hi)) = finite_range(series, log) else {
        area.titled(&format!("{title} (no data)"), ("sans-serif", 18))
            .map_err(|e| e.to_string())?;
        return Ok(());
    };
    // Less than a decade: plotters' log axis has no ticks there, so draw it linear.
    let log = log && hi / lo >= 10.0;
    let title = if log {
        title.to_string()
    } else {
        title.replace(" (log)", "")
    };
    let mut b = ChartBuilder::on(area);
    b.caption(&title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(64);
    let (x0, x1) = x_range;
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(xlabel)
                .label_style(("sans-serif", 13))
                .y_labels(8)
                .y_label_formatter(&|v: &f64| {
                    let a = v.abs();
                    if a != 0.0 && !(1e-3..1e4).contains(&a) {
                        format!("{v:.1e}")
                    } else if a < 1.0 {
                        format!("{v:.3}")
                    } else {
                        format!("{v:.1}")
                    }
                })
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| e.to_string())?;
            for s in series {
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .cloned()
                    .filter(|p| p.1.is_finite() && (!log || p.1 > 0.0))
                    .collect();
                let style = s.color.stroke_width(2);
                let anno = if s.dashed {
                    chart
                        .draw_series(DashedLineSeries::new(pts, 6, 4, style))
                        .map_err(|e| e.to_string())?
                } else {
                    chart
                        .draw_series(LineSeries::new(pts, style))
                        .map_err(|e| e.to_string())?
                };
                if !s.name.is_empty() {
                    let c = s.color;
                    anno.label(s.name.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                    });
                }
            }
            if let Some(m) = marker {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(m, lo), (m, hi)],
                        4,
                        4,
                        BLACK.mix(0.5).stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
            }
            if series.iter().any(|s| !s.name.is_empty()) {
                chart
                    .configure_series_labels()
                    .label_font(("sans-serif", 13))
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK.mix(0.3))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }};
    }
    if log {
        draw!(
            b.build_cartesian_2d(x0..x1, (lo..hi).log_scale())
                .map_err(|e| e.to_string())?
        );
    } else {
        draw!(
            b.build_cartesian_2d(x0..x1, lo..hi)
                .map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

/// `metrics.png`: six panels from a run's (or several runs') records.
pub fn metrics_png(
    path: &Path,
    title: &str,
    records: &[Record],
    k: usize,
    switch: Option<usize>,
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
    let root = BitMapBackend::new(path, (1500, 900)).into_drawing_area();
    let draw = || -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| e.to_string())?;
        let areas = root.split_evenly((2, 3));
        let xr = (0.0, m.x_max);
        let draw_panel = |i: usize, title: &str, series: &[Series], log: bool| {
            panel(&areas[i], title, "step", series, log, m.marker, xr)
        };
        draw_panel(0, "training loss (log)", &m.by(&|r| r.loss), true)?;
        draw_panel(1, "training accuracy", &m.by(&|r| r.accuracy), false)?;
        // The plot font (Ubuntu Light) has χ and subscript digits but not ∇.
        let chi_title = format!("χ{0}(grad L) = |P{0} grad L| / |grad L|", subscript(k));
        draw_panel(2, &chi_title, &m.chi(), false)?;
        draw_panel(3, "Hessian eigenvalues", &m.eigenvalues(), false)?;
        let (sharp_title, sharp) = m.sharpness();
        draw_panel(4, &sharp_title, &sharp, false)?;
        if m.records.iter().any(|r| r.dom_lr.is_finite()) {
            draw_panel(5, "effective learning rates", &m.rates(), true)?;
        } else {
            draw_panel(5, "|θ − θ_switch|", &m.by(&|r| r.dist_switch), false)?;
        }
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

/// `toy.png`: the paths on the contour plot of L and χ₁ along each.
pub fn toy_png(path: &Path, runs: &[(&str, &[ToyPoint])]) -> Result<()> {
    fonts();
    let root = BitMapBackend::new(path, (1400, 600)).into_drawing_area();
    let draw = || -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (l, r) = root.split_horizontally(700);
        // The valley is 1000× steeper in x: scale the x axis to the paths' extent.
        // Past the first tenth of the run x has collapsed into the valley; points outside the
        // window are clamped to its edge.
        let last = runs
            .iter()
            .flat_map(|(_, p)| p.last().map(|q| q.step))
            .max()
            .unwrap_or(0);
        let xs = 1.2
            * runs
                .iter()
                .flat_map(|(_, p)| p.iter().filter(|q| q.step >= last / 10).map(|q| q.x.abs()))
                .filter(|x| *x < 0.5)
                .fold(0.0f64, f64::max)
                .max(1e-3);
        let mut c = ChartBuilder::on(&l)
            .caption("L = ½(1000x² + y²): paths from (1, 1)", ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(-xs..xs, 0.0..1.05)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc("x")
            .y_desc("y")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        for lvl in [0.05, 0.1, 0.2, 0.3, 0.4, 0.5] {
            // Ellipse 1000x² + y² = 2·lvl.
            let pts: Vec<(f64, f64)> = (0..=400)
                .map(|i| {
                    let t = std::f64::consts::PI * i as f64 / 400.0;
                    (
                        (2.0 * lvl / 1000.0f64).sqrt() * t.cos(),
                        (2.0 * lvl).sqrt() * t.sin(),
                    )
                })
                .collect();
            c.draw_series(LineSeries::new(pts, RGBColor(200, 200, 200)))
                .map_err(|e| e.to_string())?;
        }
        for (i, (name, p)) in runs.iter().enumerate() {
            let col = COLORS[i % COLORS.len()];
            c.draw_series(LineSeries::new(
                p.iter().map(|q| (q.x.clamp(-xs, xs), q.y)),
                col.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(name.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2)));
        }
        c.configure_series_labels()
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())?;
        let steps = runs
            .iter()
            .flat_map(|(_, p)| p.last().map(|q| q.step))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let series: Vec<Series> = runs
            .iter()
            .enumerate()
            .map(|(i, (name, p))| Series {
                name: name.to_string(),
                color: COLORS[i % COLORS.len()],
                points: p.iter().map(|q| (q.step as f64, q.chi)).collect(),
                dashed: false,
            })
            .collect();
        panel(
            &r,
            "chi_1(grad L)",
            "step",
            &series,
            false,
            None,
            (0.0, steps),
        )?;
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(err(path))
}
