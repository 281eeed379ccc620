//! The spectral density PNG of `spectrum --density --png`: the Gaussian-broadened SLQ density on
//! a linear and a log scale side by side (as Ghorbani et al.'s and PyHessian's figures: on the log
//! scale the k outliers stand apart from the bulk), the top-k eigenvalues of the Lanczos solve
//! marked, λ_k labelled, and the share of the trace in S_k in the title.

use crate::error::{Error, Result};
use crate::hessian::slq::Density;
use plotters::prelude::*;
use std::path::Path;

/// The plots' fonts, registered once for all of them ([`super::plot::style::fonts`]).
fn fonts() {
    super::plot::style::fonts();
}

/// Line colours of [`densities_png`] (matplotlib's tab10).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];

/// Values below this are drawn at it on the log scale (PyHessian's plots start at 1e-10).
const LOG_FLOOR: f64 = 1e-8;

/// What one density plot shows.
pub struct DensityPlot<'a> {
    pub density: &'a Density,
    /// The top-k eigenvalues to mark (largest first).
    pub top_k: &'a [f64],
    /// The title's first line (network, data, θ).
    pub title: &'a str,
    /// Σ_{i≤k} λ_i / tr H, shown in the title when known.
    pub top_k_share: Option<f64>,
}

/// Draw the density (linear and log scale) into a 1400 × 520 PNG at `path`.
/// Errors: the file cannot be written.
pub fn density_png(path: &Path, plot: &DensityPlot<'_>) -> Result<()> {
    fonts();
    let err = |e: String| Error::data(path, format!("plot: {e}"));
    let root = BitMapBackend::new(path, (1400, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let k = plot.top_k.len();
    let share = plot
        .top_k_share
        .map(|s| format!(", top {k} hold {:.1}% of tr H", 100.0 * s))
        .unwrap_or_default();
    let title = format!("{}{share}", plot.title);
    let root = root
        .titled(&title, ("sans-serif", 20))
        .map_err(|e| err(e.to_string()))?;
    let halves = root.split_evenly((1, 2));
    panel(&halves[0], plot, false).map_err(err)?;
    panel(&halves[1], plot, true).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    plot: &DensityPlot<'_>,
    log: bool,
) -> std::result::Result<(), String> {
    let d = plot.density;
    let (x0, x1) = match (d.grid.first(), d.grid.last()) {
        (Some(a), Some(b)) if b > a => (*a, *b),
        _ => return Ok(()),
    };
    let pts: Vec<(f64, f64)> = d
        .grid
        .iter()
        .zip(&d.density)
        .map(|(x, y)| (*x, if log { y.max(LOG_FLOOR) } else { *y }))
        .collect();
    let hi = pts.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-300);
    let caption = if log {
        "density (log scale)"
    } else {
        "density"
    };
    let mut b = ChartBuilder::on(area);
    b.caption(caption, ("sans-serif", 17))
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(64);
    macro_rules! draw {
        ($chart:expr, $lo:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("eigenvalue λ")
                .label_style(("sans-serif", 13))
                .light_line_style(WHITE.mix(0.0))
                .y_label_formatter(&|v: &f64| format!("{v:.0e}"))
                .draw()
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(LineSeries::new(
                    pts.clone(),
                    RGBColor(31, 119, 180).stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label("SLQ density")
                .legend(|(x, y)| {
                    PathElement::new(
                        vec![(x, y), (x + 16, y)],
                        RGBColor(31, 119, 180).stroke_width(2),
                    )
                });
            let red = RGBColor(214, 39, 40);
            for (i, &l) in plot.top_k.iter().enumerate() {
                let s = chart
                    .draw_series(DashedLineSeries::new(
                        vec![(l, $lo), (l, hi)],
                        4,
                        3,
                        red.mix(0.7).stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
                if i == 0 {
                    s.label(format!("top {} (Lanczos)", plot.top_k.len()))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 16, y)], red.stroke_width(1))
                        });
                }
            }
            if let Some(&lk) = plot.top_k.last() {
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("λ{} = {lk:.3}", subscript(plot.top_k.len())),
                        (lk, if log { hi / 30.0 } else { 0.6 * hi }),
                        ("sans-serif", 13).into_font().color(&red),
                    )))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| e.to_string())?;
        }};
    }
    if log {
        let lo = LOG_FLOOR;
        draw!(
            b.build_cartesian_2d(
                x0..x1,
                (lo..hi * 2.0)
                    .log_scale()
                    .with_key_points(super::ticks::log_ticks(lo, hi * 2.0, 7))
            )
            .map_err(|e| e.to_string())?,
            lo
        );
    } else {
        draw!(
            b.build_cartesian_2d(x0..x1, 0.0..hi * 1.05)
                .map_err(|e| e.to_string())?,
            0.0
        );
    }
    Ok(())
}

/// `k` in Unicode subscript digits (λ₁₀).
fn subscript(k: usize) -> String {
    k.to_string()
        .chars()
        .map(|c| char::from_u32(0x2080 + c.to_digit(10).unwrap_or(0)).unwrap_or(c))
        .collect()
}

/// The densities a run recorded (`density_every`), on a log scale, one line per chosen record:
/// the first leg's (up to six, evenly spread, the switch last) and each variant's last. The top-k
/// eigenvalues of the last chosen record are marked. Drawn into a 1000 × 560 PNG at `path`.
/// Errors: no records, the file cannot be written.
pub fn densities_png(
    path: &Path,
    title: &str,
    records: &[crate::experiment::density::DensityRecord],
) -> Result<()> {
    fonts();
    let err = |e: String| Error::data(path, format!("plot: {e}"));
    let chosen = choose(records);
    if chosen.is_empty() {
        return Err(err("no density records".into()));
    }
    let curves: Vec<(String, Vec<(f64, f64)>)> = chosen
        .iter()
        .map(|r| {
            let d = r.density(800);
            let name = format!(
                "{} step {} (tr {:.0}, top {} {:.0}%)",
                r.run,
                r.step,
                r.trace,
                r.eigenvalues.len(),
                100.0 * r.top_k_share
            );
            let pts = d.grid.iter().zip(&d.density);
            (name, pts.map(|(x, y)| (*x, y.max(LOG_FLOOR))).collect())
        })
        .collect();
    let all = curves.iter().flat_map(|c| c.1.iter());
    let (x0, x1, hi) = all.fold((f64::MAX, f64::MIN, 0.0f64), |(a, b, h), p| {
        (a.min(p.0), b.max(p.0), h.max(p.1))
    });
    let root = BitMapBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 19))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, (LOG_FLOOR..hi * 2.0).log_scale())
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("eigenvalue λ")
        .y_desc("SLQ density (log scale)")
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .y_label_formatter(&|v: &f64| format!("{v:.0e}"))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (i, (name, pts)) in curves.into_iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    let red = RGBColor(214, 39, 40);
    if let Some(last) = chosen.last() {
        for &l in &last.eigenvalues {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(l, LOG_FLOOR), (l, hi)],
                    4,
                    3,
                    red.mix(0.6).stroke_width(1),
                ))
                .map_err(|e| err(e.to_string()))?;
        }
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// The records [`densities_png`] draws: up to six of the first leg's, evenly spread with its
/// last (the switch) kept, then each later leg's last.
fn choose(
    records: &[crate::experiment::density::DensityRecord],
) -> Vec<&crate::experiment::density::DensityRecord> {
    let first: Vec<_> = records.iter().filter(|r| r.phase == "before").collect();
    let mut out = Vec::new();
    let n = first.len();
    let want = n.min(6);
    for i in 0..want {
        let j = if want == 1 {
            n - 1
        } else {
            i * (n - 1) / (want - 1)
        };
        out.push(first[j]);
    }
    let mut legs: Vec<&str> = Vec::new();
    for r in records.iter().filter(|r| r.phase != "before") {
        if !legs.contains(&r.run.as_str()) {
            legs.push(&r.run);
        }
    }
    for leg in legs {
        if let Some(r) = records
            .iter()
            .rfind(|r| r.run == leg && r.phase != "before")
        {
            out.push(r);
        }
    }
    out
}
