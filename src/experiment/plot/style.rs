//! The look of every PNG, fit for a slide: the fonts (Ubuntu Light, whose χ is drawn like a Latin
//! x and which has no ∇, ‖ or arrows: χ is set in the app's χ font, the others in Hack, which has
//! them), text in runs of either font, tick labels that
//! read like numbers (0.105, 300, 1e-5; never 1.047e-1), and legends in a strip of their own
//! above the data, never over it.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::Once;

/// The text font (egui's Ubuntu Light) and the symbol font (Hack, for χ, ∇ and ‖).
pub(crate) const SANS: &str = "sans-serif";
pub(crate) const SYMBOL: &str = "subspace-lab-symbols";
/// The font of χ: the app's one-glyph font (`assets/fonts/subspace-lab-chi.ttf`, χ of DejaVu
/// Sans ExtraLight; the app's `CHI_FONT`), a lighter χ than Hack's, matching Ubuntu Light.
pub(crate) const CHI: &str = "subspace-lab-chi";
const CHI_FONT: &[u8] = include_bytes!("../../../assets/fonts/subspace-lab-chi.ttf");

static FONT: Once = Once::new();

/// Register the two fonts with plotters (once).
pub(crate) fn fonts() {
    FONT.call_once(|| {
        // The fonts are compiled-in constants; a failure here would be a broken build of
        // epaint_default_fonts, and plotting would then draw without text.
        let _ = plotters::style::register_font(
            SANS,
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
        let _ = plotters::style::register_font(
            SYMBOL,
            FontStyle::Normal,
            epaint_default_fonts::HACK_REGULAR,
        );
        let _ = plotters::style::register_font(CHI, FontStyle::Normal, CHI_FONT);
    });
}

/// The characters set in the symbol font: Ubuntu Light draws χ exactly as x and has no ∇, ‖,
/// arrows or ⊥ (Hack has them all).
fn is_symbol(c: char) -> bool {
    matches!(c, 'χ' | '∇' | '‖' | '⊥' | '∈') || ('\u{2190}'..='\u{21ff}').contains(&c)
}

/// The font of a run of [`runs`]: Ubuntu Light for text, the χ font for a run of χs, Hack for
/// the other symbols.
fn run_font(s: &str, sym: bool) -> &'static str {
    match sym {
        false => SANS,
        true if s.chars().all(|c| c == 'χ') => CHI,
        true => SYMBOL,
    }
}

/// `text` cut into runs of one font each: (the run, whether it is set in the symbol font).
pub(crate) fn runs(text: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for c in text.chars() {
        let sym = is_symbol(c);
        match out.last_mut() {
            Some((s, f)) if *f == sym => s.push(c),
            _ => out.push((c.to_string(), sym)),
        }
    }
    out
}

/// The width and height in pixels of `text` at `size` (runs measured in their fonts).
pub(crate) fn text_size<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    size: f64,
) -> (i32, i32) {
    runs(text).iter().fold((0, 0), |(w, h), (s, sym)| {
        let font = run_font(s, *sym);
        let (rw, rh) = area
            .estimate_text_size(s, &(font, size).into_font().into())
            .unwrap_or((0, 0));
        (w + rw as i32, h.max(rh as i32))
    })
}

/// Draw `text` with its left edge at `x` and its top at `y`, each run in its font.
pub(crate) fn draw_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    (x, y): (i32, i32),
    size: f64,
    color: &RGBColor,
) -> Result<(), String> {
    let mut x = x;
    for (s, sym) in runs(text) {
        let font = run_font(&s, sym);
        // Anchored at the top left, so that `y` is the top of the text (plotters' default
        // anchor puts a text at the top of an area half above it).
        let style = (font, size)
            .into_font()
            .color(color)
            .pos(Pos::new(HPos::Left, VPos::Top));
        area.draw_text(&s, &style, (x, y))
            .map_err(|e| e.to_string())?;
        x += area.estimate_text_size(&s, &style).unwrap_or((0, 0)).0 as i32;
    }
    Ok(())
}

/// Draw `text` centred in the width of `area`, its top at `y`.
pub(crate) fn draw_centered<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    y: i32,
    size: f64,
    color: &RGBColor,
) -> Result<(), String> {
    let w = area.dim_in_pixel().0 as i32;
    let (tw, _) = text_size(area, text, size);
    draw_text(area, text, ((w - tw).max(0) / 2, y), size, color)
}

/// A tick label for `v` on an axis whose ticks are about `spacing` apart: as many decimals as
/// the spacing needs (0.105, 0.20, 34.5, 300), trailing zeros kept to that count; exponent form
/// only below 1e-4 or from 1e6 (1e-5, 2.5e6).
pub(crate) fn tick_label(v: f64, spacing: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { format!("{v}") };
    }
    let a = v.abs();
    if !(1e-4..1e6).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let spacing = if spacing.is_finite() && spacing > 0.0 {
        spacing
    } else {
        a
    };
    let decimals = (-spacing.log10().floor()).clamp(0.0, 6.0) as usize;
    // A spacing like 0.25 needs one decimal more than its power of ten says.
    let decimals = if ((spacing * 10f64.powi(decimals as i32)).round()
        - spacing * 10f64.powi(decimals as i32))
    .abs()
        > 1e-6
    {
        (decimals + 1).min(7)
    } else {
        decimals
    };
    format!("{v:.decimals$}")
}

/// A tick label on a log axis: the value with the digits it needs (0.2, 0.05, 3, 0.102 — the
/// ticks of [`crate::experiment::ticks::log_ticks`] are round to 12 digits), exponent form only
/// below 1e-4 or from 1e6 (1e-5).
pub(crate) fn log_tick_label(v: f64) -> String {
    if v <= 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if !(1e-4..1e6).contains(&a) {
        return tick_label(v, 10f64.powf(v.log10().floor()));
    }
    // Three significant digits at most, trailing zeros dropped.
    let d = (2 - a.log10().floor() as i32).max(0) as usize;
    let t = format!("{v:.d$}");
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}

/// The colours of the runs (matplotlib's tab10).
pub(crate) const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One legend entry: its label, colour and whether its line is dashed.
pub(crate) struct Entry {
    pub label: String,
    pub color: RGBColor,
    pub dashed: bool,
}

/// The height in pixels the legend of `entries` needs in a strip `width` wide (rows of entries
/// laid left to right).
pub(crate) fn legend_height<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    width: i32,
    size: f64,
) -> i32 {
    legend_layout(area, entries, width, size).1
}

/// Where each entry goes (x, row) and the strip's height.
fn legend_layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    width: i32,
    size: f64,
) -> (Vec<(i32, i32)>, i32) {
    let row_h = (size * 1.5) as i32;
    let (mut x, mut row) = (8, 0);
    let mut at = Vec::new();
    for e in entries {
        let w = 28 + text_size(area, &e.label, size).0 + 14;
        if x > 8 && x + w > width {
            x = 8;
            row += 1;
        }
        at.push((x, row));
        x += w;
    }
    let rows = if entries.is_empty() { 0 } else { row + 1 };
    (at, rows * row_h + if rows > 0 { 4 } else { 0 })
}

/// Draw the legend of `entries` in `area` (a strip above the plot).
pub(crate) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    size: f64,
) -> Result<(), String> {
    let width = area.dim_in_pixel().0 as i32;
    let (at, _) = legend_layout(area, entries, width, size);
    let row_h = (size * 1.5) as i32;
    for (e, (x, row)) in entries.iter().zip(at) {
        let y = 2 + row * row_h + row_h / 2;
        let style = e.color.stroke_width(3);
        if e.dashed {
            for s in [0, 10, 20] {
                area.draw(&PathElement::new(vec![(x + s, y), (x + s + 6, y)], style))
                    .map_err(|e| e.to_string())?;
            }
        } else {
            area.draw(&PathElement::new(vec![(x, y), (x + 24, y)], style))
                .map_err(|e| e.to_string())?;
        }
        draw_text(
            area,
            &e.label,
            (x + 30, y - (size * 0.6) as i32),
            size,
            &BLACK,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_like_numbers() {
        assert_eq!(tick_label(0.105, 0.005), "0.105");
        assert_eq!(tick_label(0.2, 0.05), "0.20");
        assert_eq!(tick_label(300.0, 50.0), "300");
        assert_eq!(tick_label(34.5, 0.5), "34.5");
        assert_eq!(tick_label(0.25, 0.25), "0.25");
        assert_eq!(tick_label(1e-5, 1e-5), "1e-5");
        assert_eq!(tick_label(0.0, 0.1), "0");
        assert_eq!(log_tick_label(0.2), "0.2");
        assert_eq!(log_tick_label(0.05), "0.05");
        assert_eq!(log_tick_label(3.0), "3");
        assert!(!tick_label(0.1047, 0.01).contains('e'));
    }

    /// The labels of the log axes' 1-2-5 and narrow-range ticks.
    #[test]
    fn log_ticks_read_like_numbers() {
        let labels: Vec<String> = crate::experiment::ticks::log_ticks(0.05, 30.0, 12)
            .into_iter()
            .map(log_tick_label)
            .collect();
        assert_eq!(
            labels,
            ["0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10", "20"]
        );
        assert_eq!(log_tick_label(0.102), "0.102");
        assert_eq!(log_tick_label(1e-5), "1e-5");
        assert_eq!(log_tick_label(1e6), "1e6");
        assert_eq!(log_tick_label(20000.0), "20000");
    }

    /// χ gets the χ font, the other symbols Hack.
    #[test]
    fn chi_runs_get_the_chi_font() {
        assert_eq!(run_font("χ", true), CHI);
        assert_eq!(run_font("∇", true), SYMBOL);
        assert_eq!(run_font("χ∇", true), SYMBOL);
        assert_eq!(run_font("x", false), SANS);
    }

    #[test]
    fn chi_is_set_in_the_symbol_font() {
        assert_eq!(
            runs("χ₁₀(∇L) = x"),
            vec![
                ("χ".to_string(), true),
                ("₁₀(".to_string(), false),
                ("∇".to_string(), true),
                ("L) = x".to_string(), false)
            ]
        );
    }
}
