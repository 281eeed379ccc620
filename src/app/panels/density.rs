//! The density panel (issue 35): the Hessian's spectral density at the live run's θ by
//! stochastic Lanczos quadrature, on a log scale — the bulk near 0 and the k outliers standing
//! apart (Ghorbani et al. 2019; the paper's Figure 2: the Hessian is approximately low-rank) —
//! the top k eigenvalues of the last spectrum marked, λ_k named, and the share of the trace in
//! S_k. The worker measures it every few steps ([`crate::app::live::DensityClock`]); the panel
//! only draws what [`crate::app::worker::Shared::density`] holds.

use crate::app::live::LiveDensity;
use egui::{Color32, RichText};
use egui_plot::{Line, Plot, PlotPoints, VLine};

/// Densities below this are drawn at it (log₁₀ scale).
const FLOOR: f64 = 1e-8;
/// The outliers' colour (the eigenvalue plot's top-k).
const OUTLIER: Color32 = Color32::from_rgb(214, 39, 40);

/// The one-line summary under the plot: the trace, the share of the top k, the cost.
pub fn density_summary(d: &LiveDensity) -> String {
    let k = d.top_k.len();
    let lk = d.top_k.last().copied().unwrap_or(f64::NAN);
    format!(
        "step {}: tr H ≈ {:.1} ± {:.1}; the top {k} (λ_{k} = {lk:.3}) hold {:.0}% of it, the \
         bulk the rest · {} probes × {} Lanczos steps = {} HVPs in {:.2} s ({:.0}% of the \
         worker's time)",
        d.step,
        d.trace,
        d.trace_std_error,
        100.0 * d.top_k_share,
        d.probes,
        d.steps,
        d.hvps,
        d.seconds,
        100.0 * d.time_share
    )
}

/// The density plot (log₁₀ of the density over λ) with the top k marked, `height` points tall;
/// a line saying it is coming when there is none yet.
pub fn density_ui(ui: &mut egui::Ui, d: Option<&LiveDensity>, height: f32) {
    let Some(d) = d else {
        ui.label(
            RichText::new("spectral density: measured in the background every 25 steps").weak(),
        );
        return;
    };
    let pts: Vec<[f64; 2]> = d
        .grid
        .iter()
        .zip(&d.density)
        .map(|(x, y)| [*x, y.max(FLOOR).log10()])
        .collect();
    Plot::new("density")
        .height(height)
        .x_axis_label("eigenvalue λ")
        .y_axis_label("log₁₀ density")
        .allow_scroll(false)
        .legend(egui_plot::Legend::default())
        .show(ui, |p| {
            p.line(
                Line::new("SLQ density (bulk + outliers)", PlotPoints::from(pts))
                    .color(Color32::from_rgb(31, 119, 180))
                    .width(2.0),
            );
            let k = d.top_k.len();
            for (i, &l) in d.top_k.iter().enumerate() {
                let name = if i + 1 == k {
                    format!("λ_{k} = {l:.3}")
                } else {
                    format!("top {k}")
                };
                p.vline(
                    VLine::new(name, l).color(OUTLIER.gamma_multiply(if i + 1 == k {
                        1.0
                    } else {
                        0.5
                    })),
                );
            }
        });
    ui.label(RichText::new(density_summary(d)).small());
}
