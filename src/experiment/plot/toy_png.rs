//! `toy.png`: the toy's paths on the contours of L, and χ₁ along each. The valley is 1000×
//! steeper in x than in y, so the x axis is scaled to the paths' extent once they are in it; the
//! start (1, 1) lies far outside that window and is marked at its edge. GD runs down the valley
//! floor (x = 0), where SGD's zigzag would cover it: it is drawn last, dashed and black.

use super::style::{self, COLORS, Entry};
use super::{Series, err, panel};
use crate::error::Result;
use crate::experiment::toy::ToyPoint;
use plotters::prelude::*;
use std::path::Path;

/// The half-width of the x window: 1.2 × the largest |x| past the first tenth of the run (by
/// then x has collapsed into the valley), at least 1e-3.
fn x_window(runs: &[(&str, &[ToyPoint])]) -> f64 {
    let last = runs
        .iter()
        .flat_map(|(_, p)| p.last().map(|q| q.step))
        .max()
        .unwrap_or(0);
    1.2 * runs
        .iter()
        .flat_map(|(_, p)| p.iter().filter(|q| q.step >= last / 10).map(|q| q.x.abs()))
        .filter(|x| *x < 0.5)
        .fold(0.0f64, f64::max)
        .max(1e-3)
}

/// The colour and line of a path: GD black, dashed, thick; the others by their index.
fn look(name: &str, i: usize) -> (RGBColor, bool) {
    if name == "GD" {
        (BLACK, true)
    } else {
        (COLORS[i % COLORS.len()], false)
    }
}

/// The left panel: contours, the paths (GD last) and the start.
fn paths_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    runs: &[(&str, &[ToyPoint])],
) -> std::result::Result<(), String> {
    let xs = x_window(runs);
    let entries: Vec<Entry> = runs
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let (color, dashed) = look(name, i);
            Entry {
                label: name.to_string(),
                color,
                dashed,
            }
        })
        .chain(std::iter::once(Entry {
            label: "start (1, 1), off the window →".into(),
            color: RGBColor(120, 120, 120),
            dashed: false,
        }))
        .collect();
    style::draw_centered(
        area,
        "L = ½(1000x² + y²): the paths from (1, 1)",
        4,
        18.0,
        &BLACK,
    )?;
    let w = area.dim_in_pixel().0 as i32;
    let legend_h = style::legend_height(area, &entries, w - 60, 13.0);
    let (legend, body) = area.margin(28, 0, 0, 0).split_vertically(legend_h as u32);
    style::draw_legend(&legend.margin(0, 0, 56, 0), &entries, 13.0)?;
    let x_step = super::nice_step(2.0 * xs, 6);
    let mut c = ChartBuilder::on(&body)
        .margin(8)
        .margin_right(20)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(-xs..xs, 0.0..1.05)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("x (the steep direction, enlarged)")
        .y_desc("y (along the valley)")
        .label_style((style::SANS, 14))
        .axis_desc_style((style::SANS, 14))
        .x_labels(7)
        .x_label_formatter(&|v: &f64| style::tick_label(*v, x_step))
        .y_label_formatter(&|v: &f64| style::tick_label(*v, 0.2))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
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
        c.draw_series(LineSeries::new(pts, RGBColor(210, 210, 210)))
            .map_err(|e| e.to_string())?;
    }
    // GD last: on top of SGD's zigzag, which covers the valley floor it runs down.
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| runs[i].0 == "GD");
    for i in order {
        let (name, p) = runs[i];
        let (col, dashed) = look(name, i);
        let pts = p.iter().map(|q| (q.x.clamp(-xs, xs), q.y));
        if dashed {
            c.draw_series(DashedLineSeries::new(pts, 8, 5, col.stroke_width(3)))
                .map_err(|e| e.to_string())?;
        } else {
            c.draw_series(LineSeries::new(pts, col.stroke_width(1)))
                .map_err(|e| e.to_string())?;
        }
    }
    let start = runs
        .iter()
        .find_map(|(_, p)| p.first())
        .map_or((1.0, 1.0), |q| (q.x, q.y));
    let at = (start.0.clamp(-xs, xs), start.1.min(1.05));
    c.draw_series(std::iter::once(TriangleMarker::new(
        at,
        9,
        RGBColor(120, 120, 120).filled(),
    )))
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// `toy.png`: the paths on the contour plot of L (GD dashed black, the start marked) and χ₁
/// along each. Errors: the file cannot be written (named).
pub fn toy_png(path: &Path, runs: &[(&str, &[ToyPoint])]) -> Result<()> {
    style::fonts();
    let root = BitMapBackend::new(path, (1500, 650)).into_drawing_area();
    let draw = || -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (l, r) = root.split_horizontally(750);
        paths_panel(&l, runs)?;
        let steps = runs
            .iter()
            .flat_map(|(_, p)| p.last().map(|q| q.step))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let series: Vec<Series> = runs
            .iter()
            .enumerate()
            .map(|(i, (name, p))| {
                let (color, dashed) = look(name, i);
                Series {
                    name: name.to_string(),
                    color,
                    points: p.iter().map(|q| (q.step as f64, q.chi)).collect(),
                    dashed,
                }
            })
            .collect();
        panel(
            &r,
            "χ₁(∇L) along each path",
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
