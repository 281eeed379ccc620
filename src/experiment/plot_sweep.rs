//! The switch-step study's plot (`sweep.png`): Dom-SGD's and Bulk-SGD's loss decrease as
//! fractions of SGD's against the fork step, with the judge's bands (Dom < 0.25, Bulk > 0.75),
//! and the full-batch loss at each fork. The χ-EMA forks are drawn as triangles (the captions
//! spell χ out: the plotting font has no Greek).

use crate::error::{Error, Result};
use crate::paper::claims::{BULK_MIN_FRACTION, DOM_MAX_FRACTION};
use crate::paper::presets::switch_sweep::ForkRow;
use plotters::prelude::*;
use std::path::Path;

/// The plots' fonts, registered once for all of them ([`super::plot::style::fonts`]).
fn fonts() {
    super::plot::style::fonts();
}

/// Draw `rows` (one per fork) into `path` (PNG, 1400×560). Errors: the file cannot be written.
pub fn sweep_png(path: &Path, title: &str, rows: &[ForkRow]) -> Result<()> {
    fonts();
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    let draw = || -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (l, r) = root.split_horizontally(760);
        let max_step = rows.iter().map(|r| r.step).max().unwrap_or(1).max(1) as f64;
        let x_max = max_step * 1.05;
        let ys = rows
            .iter()
            .flat_map(|r| [r.dom_ratio, r.bulk_ratio])
            .filter(|y| y.is_finite());
        let (lo, hi) = ys.fold((0.0f64, 1.2f64), |(a, b), y| (a.min(y), b.max(y)));
        let mut c = ChartBuilder::on(&l)
            .caption(
                format!("{title}: decrease after each fork / SGD's"),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(-0.02 * x_max..x_max, (lo - 0.05)..(hi + 0.05))
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc("fork step (triangles: the forks of the EMA rule)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("fraction of SGD's decrease")
            .y_label_formatter(&|y| format!("{y:.2}"))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        let grey = RGBColor(150, 150, 150);
        for (y, name) in [
            (DOM_MAX_FRACTION, "Dom must stay below"),
            (BULK_MIN_FRACTION, "Bulk must reach"),
        ] {
            c.draw_series(LineSeries::new(
                [(-0.02 * x_max, y), (x_max, y)],
                grey.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("{name} {y}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], grey));
        }
        let dom_c = RGBColor(214, 39, 40);
        let bulk_c = RGBColor(44, 160, 44);
        let fixed: Vec<&ForkRow> = rows.iter().filter(|r| !r.fork.starts_with('χ')).collect();
        let rule: Vec<&ForkRow> = rows.iter().filter(|r| r.fork.starts_with('χ')).collect();
        for (name, col, get) in [
            (
                "Dom-SGD / SGD",
                dom_c,
                (|r: &ForkRow| r.dom_ratio) as fn(&ForkRow) -> f64,
            ),
            ("Bulk-SGD / SGD", bulk_c, |r: &ForkRow| r.bulk_ratio),
        ] {
            c.draw_series(LineSeries::new(
                fixed.iter().map(|r| (r.step as f64, get(r))),
                col.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2)));
            c.draw_series(
                fixed
                    .iter()
                    .map(|r| Circle::new((r.step as f64, get(r)), 4, col.filled())),
            )
            .map_err(|e| e.to_string())?;
            c.draw_series(
                rule.iter()
                    .map(|r| TriangleMarker::new((r.step as f64, get(r)), 7, col.filled())),
            )
            .map_err(|e| e.to_string())?;
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(grey)
            .draw()
            .map_err(|e| e.to_string())?;
        loss_panel(&r, x_max, &fixed, &rule)?;
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(|e| Error::data(path, format!("plot: {e}")))
}

/// `rows` as CSV (`sweep.csv`): fork, step, rule_fired, loss, accuracy, chi, chi_ema,
/// sgd_decrease, dom_ratio, bulk_ratio, holds.
pub fn sweep_csv(rows: &[ForkRow]) -> String {
    let mut s = String::from(
        "fork,step,rule_fired,loss,accuracy,chi,chi_ema,sgd_decrease,dom_ratio,bulk_ratio,holds\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            r.fork,
            r.step,
            r.rule_fired,
            r.loss,
            r.accuracy,
            r.chi,
            r.chi_ema,
            r.sgd_decrease,
            r.dom_ratio,
            r.bulk_ratio,
            r.holds
        ));
    }
    s
}

/// The right panel: the full-batch loss at each fork — where in training each sits.
fn loss_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    x_max: f64,
    fixed: &[&ForkRow],
    rule: &[&ForkRow],
) -> std::result::Result<(), String> {
    let losses: Vec<f64> = fixed
        .iter()
        .chain(rule)
        .map(|r| r.loss)
        .filter(|l| *l > 0.0 && l.is_finite())
        .collect();
    let (llo, lhi) = losses
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &y| (a.min(y), b.max(y)));
    if losses.is_empty() {
        return Ok(());
    }
    let mut c = ChartBuilder::on(area)
        .caption("full-batch loss at the fork", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.02 * x_max..x_max, llo * 0.95..lhi * 1.05)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("fork step (triangles: the forks of the EMA rule)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("loss")
        .y_label_formatter(&|y| format!("{y:.3}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    let blue = RGBColor(31, 119, 180);
    c.draw_series(LineSeries::new(
        fixed.iter().map(|r| (r.step as f64, r.loss)),
        blue.stroke_width(2),
    ))
    .map_err(|e| e.to_string())?;
    c.draw_series(
        rule.iter()
            .map(|r| TriangleMarker::new((r.step as f64, r.loss), 7, blue.filled())),
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}
