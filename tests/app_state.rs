//! The app's state logic without a window: settings in the URL hash, the toy paths and their
//! switches, and the live MNIST run's actions (projection, GD, auto-switch) with branch markers.

mod common;
use common::*;
use subspace_lab::app::live::{Action, LiveRun};
use subspace_lab::app::settings::Settings;
use subspace_lab::app::toysim::ToySim;
use subspace_lab::backend::Activation;
use subspace_lab::experiment::spec::{OptKind, OptimizerSpec, Projection};
use subspace_lab::experiment::toy::{self, ToyMethod};

#[test]
fn settings_round_trip_through_the_url_hash() {
    let d = Settings::default();
    assert_eq!(d.to_hash(), "");
    let s = Settings {
        toy_lr: 2e-4,
        toy_coupling: 50.0,
        toy_b: ToyMethod::BulkSgd,
        lr: 0.05,
        batch: 128,
        k: 5,
        optimizer: OptKind::Adam,
        eigen_every: 3,
        seed: 7,
        samples: 1000,
        rho: 0.05,
        ..d.clone()
    };
    let h = s.to_hash();
    let (back, warnings) = Settings::from_hash(&format!("#{h}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(back, s);
    // Bad values and unknown keys are skipped with a warning, the rest kept.
    let (b, w) = Settings::from_hash("lr=-1&k=0&opt=lbfgs&foo=1&batch=64&n=200&junk");
    assert_eq!((b.lr, b.k, b.optimizer), (d.lr, d.k, d.optimizer));
    assert_eq!((b.batch, b.samples), (64, 200));
    assert_eq!(w.len(), 5, "{w:?}");
    // The batch never exceeds the data.
    let (b, _) = Settings::from_hash("batch=500&n=100");
    assert_eq!(b.batch, 100);
}

#[test]
fn toy_paths_follow_the_exact_toy_and_mark_switches() {
    let mut sim = ToySim::new(ToyMethod::Gd, ToyMethod::Sgd, 1.0, 1.0, 3);
    sim.advance(500, 1e-4, 100.0);
    let gd = toy::run(ToyMethod::Gd, 1.0, 1.0, 1e-4, 500, 3);
    let sgd = toy::run(ToyMethod::Sgd, 1.0, 1.0, 1e-4, 500, 3);
    assert_eq!((sim.a.x, sim.a.y), (gd[500].x, gd[500].y));
    assert_eq!((sim.b.x, sim.b.y), (sgd[500].x, sgd[500].y));
    // Switch B to Dom-SGD: y freezes from here on, and the switch is marked once.
    sim.b.switch_to(ToyMethod::DomSgd);
    sim.b.switch_to(ToyMethod::DomSgd);
    let y = sim.b.y;
    sim.advance(300, 1e-4, 100.0);
    assert_eq!(sim.b.y, y);
    assert_eq!(sim.b.switches, vec![500]);
    // A divergent step size stops the path instead of filling it with NaN.
    let mut wild = ToySim::new(ToyMethod::Gd, ToyMethod::Sgd, 1.0, 1.0, 0);
    wild.advance(1000, 0.01, 100.0);
    assert!(wild.a.diverged && wild.a.path.iter().all(|p| p[0].is_finite()));
}

#[test]
fn live_run_actions_branch_and_mark() {
    let (spec, _, data) = tiny(&[12, 10, 4], Activation::Tanh, 200, 5);
    let mut run = LiveRun::new(
        F64::new(),
        &spec,
        &data,
        OptimizerSpec::sgd(0.05, 20),
        3,
        2,
        0,
    )
    .unwrap();
    for _ in 0..4 {
        run.step().unwrap();
    }
    assert_eq!(run.history.step, 4);
    assert_eq!(run.history.points.len(), 2, "a spectrum every 2 steps");
    assert_eq!(run.history.points[0].eigenvalues.len(), 6, "top-2k");
    // Dom-: from now on θ moves only inside S_k of the current point.
    run.apply(Action::Project(Projection::Dominant)).unwrap();
    assert_eq!(run.history.run_name, "Dom-SGD");
    assert_eq!(run.history.markers.len(), 1);
    assert_eq!(run.history.markers[0].step, 4);
    run.step().unwrap();
    // → GD and back to unprojected: each marks the plots.
    run.apply(Action::ToGd).unwrap();
    assert_eq!(run.optimizer().name, OptKind::Gd);
    run.apply(Action::Project(Projection::None)).unwrap();
    assert_eq!(run.history.run_name, "GD");
    assert_eq!(run.history.markers.len(), 3);
    // The auto-switch fires when the EMA passes the threshold, and disarms itself.
    run.auto_threshold = 0.0;
    run.apply(Action::ArmAuto(Projection::Bulk)).unwrap();
    run.step().unwrap();
    assert_eq!(run.projection(), Projection::Bulk);
    assert!(run.history.armed.is_none());
    assert!(
        run.history
            .markers
            .last()
            .unwrap()
            .label
            .contains("Bulk-GD")
    );
    // Invalid optimiser settings are refused without changing the run.
    assert!(
        run.apply(Action::SetOptimizer(OptimizerSpec::sgd(-1.0, 20)))
            .is_err()
    );
    assert_eq!(run.optimizer().name, OptKind::Gd);
}
