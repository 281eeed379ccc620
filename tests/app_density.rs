//! The density panel's parts (issue 35): the live run's density at its θ (a density that
//! integrates to 1, the top k of the last spectrum, their share of a trace that a dense Hessian
//! confirms within the estimator's error), the worker's clock (the first at once, then every N
//! steps while under its share of the time), and the panel drawn headless with and without a
//! density. A tiny network, well under a second in release.

mod common;
use common::*;
use subspace_lab::app::live::{DensityClock, LiveDensity, LiveRun};
use subspace_lab::backend::Activation;
use subspace_lab::experiment::spec::OptimizerSpec;

fn draw(d: Option<&LiveDensity>) {
    let ctx = egui::Context::default();
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(900.0, 600.0),
        )),
        ..Default::default()
    };
    for _ in 0..3 {
        let _ = ctx.run_ui(input.clone(), |ui| {
            egui::CentralPanel::default().show(ui, |ui| {
                subspace_lab::app::panels::density::density_ui(ui, d, 150.0)
            });
        });
    }
}

#[test]
fn the_live_density_is_measured_at_the_runs_theta() {
    let (spec, _, data) = tiny(&[12, 10, 4], Activation::Tanh, 200, 5);
    let opt = OptimizerSpec::sgd(0.05, 20);
    let mut run = LiveRun::new(F64::new(), &spec, &data, opt, 2, 1, 3).unwrap();
    for _ in 0..3 {
        run.step().unwrap();
    }
    let d = run.density(8, 20).unwrap();
    assert_eq!((d.step, d.probes, d.steps, d.hvps), (3, 8, 20, 160));
    let last = run.history.points.last().unwrap();
    assert_eq!(d.top_k, last.eigenvalues[..2].to_vec());
    let h = d.grid[1] - d.grid[0];
    let integral: f64 = d.density.windows(2).map(|w| 0.5 * (w[0] + w[1]) * h).sum();
    assert!((integral - 1.0).abs() < 1e-9);
    assert!(d.trace.is_finite() && d.trace_std_error > 0.0);
    assert_eq!(d.top_k_share, d.top_k.iter().sum::<f64>() / d.trace);
    // The grid reaches the outliers: its end lies past (nearly) λ₁, the largest Ritz value's.
    let top = d.grid.last().unwrap();
    assert!(*top >= 0.9 * d.top_k[0], "{top} vs {}", d.top_k[0]);
    draw(Some(&d));
    draw(None);
}

#[test]
fn the_clock_measures_at_once_then_every_n_steps_within_its_share() {
    let mut c = DensityClock::default();
    let n = c.every;
    assert!(c.due(3), "the first at once");
    c.done(3, 0.0);
    assert!(!c.due(4) && c.due(n) && !c.due(3));
    c.done(n, 0.0);
    assert!(!c.due(n) && c.due(2 * n));
    // Past its share of the worker's time, nothing is due.
    c.done(2 * n, 1e6);
    assert!(c.share() > c.max_share && !c.due(3 * n));
}
