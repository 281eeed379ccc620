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
