//! Branches (the paper's Figure 1, live) and scenarios without a window: a fork copies θ, the
//! optimiser state and the minibatch stream exactly; the branches advance in lockstep; the plain
//! branch continues the unbranched run bit for bit; snapshots round-trip and refuse what does not
//! fit; the live verdict's numbers are the branches' own; the shipped scenario is fig1's switch.

mod common;
use common::*;
use subspace_lab::app::live::{Action, BranchSet, LiveRun};
use subspace_lab::app::scenario::{self, SCENARIOS, Source};
use subspace_lab::app::settings::{AppModel, Settings};
use subspace_lab::backend::Activation;
use subspace_lab::experiment::output::tensors_bytes;
use subspace_lab::experiment::run::{DOM_MAX_FRACTION, OptState, Stream, data_fingerprint};
use subspace_lab::experiment::snapshot::{
    Provenance, SNAPSHOT_TENSORS, Snapshot, load_snapshot, parse_snapshot, save_snapshot,
};
use subspace_lab::experiment::spec::{OptKind, OptimizerSpec, Projection, RunSpec};

fn small_run(opt: OptimizerSpec) -> (LiveRun<F64>, subspace_lab::data::dataset::Dataset) {
    let (spec, _, data) = tiny(&[12, 10, 4], Activation::Tanh, 120, 9);
    let run = LiveRun::new(F64::new(), &spec, &data, opt, 2, 1, 3).unwrap();
    (run, data)
}

#[test]
fn a_fork_copies_the_state_and_the_branches_advance_in_lockstep() {
    // Momentum, so that the optimiser state matters.
    let opt = OptimizerSpec::new(OptKind::Momentum, 0.05, Some(20));
    let (mut run, _) = small_run(opt.clone());
    let (mut twin, _) = small_run(opt);
    for _ in 0..5 {
        run.step().unwrap();
        twin.step().unwrap();
    }
    run.apply(Action::Branch(BranchSet::Projections)).unwrap();
    assert_eq!(run.lanes(), 3);
    let f = run.history.fork.clone().unwrap();
    assert_eq!(f.step, 5);
    let names: Vec<&str> = f.branches.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["SGD+m", "Dom-SGD+m", "Bulk-SGD+m"]);
    // Same θ in every branch at the fork, bit for bit.
    let t0 = run.branch_theta(0).unwrap();
    for i in 1..3 {
        assert_eq!(run.branch_theta(i).unwrap(), t0);
    }
    assert!(run.branch_theta(3).is_err());
    for _ in 0..4 {
        run.step().unwrap();
        twin.step().unwrap();
    }
    let f = run.history.fork.clone().unwrap();
    assert_eq!(f.steps(), 4);
    for b in &f.branches {
        assert_eq!(b.steps, 4, "{}", b.name);
        assert_eq!(b.loss.len(), 5, "the fork's loss and one per step");
        assert!(b.dist_fork > 0.0 && b.stopped.is_none(), "{b:?}");
        assert_eq!(b.loss[0][1], f.loss);
        // Accuracy after every step, the fork's first; λ₁ of each of the branch's spectra
        // (eigen_every 1: every step, the fork's shared one first).
        assert_eq!(b.accuracy.len(), 5, "{}", b.name);
        assert_eq!(b.accuracy[0][0], 5.0);
        assert!(b.accuracy.iter().all(|a| (0.0..=1.0).contains(&a[1])));
        assert_eq!(b.lambda1.len(), 4, "{}", b.name);
        assert_eq!(b.lambda1[0], f.branches[0].lambda1[0], "{}", b.name);
    }
    // The plain branch's λ₁ are the run's own spectra (the eigenvalue plot's top-k line);
    // the projected branches solve their own after the first step.
    for l in &f.branches[0].lambda1 {
        let p = run
            .history
            .points
            .iter()
            .find(|p| p.step as f64 == l[0])
            .unwrap();
        assert_eq!(p.eigenvalues[0], l[1]);
    }
    assert_ne!(f.branches[1].lambda1[3][1], f.branches[2].lambda1[3][1]);
    // One spectrum at θ_fork served every branch: the same χ_k at the fork's step.
    let chi0: Vec<f64> = f.branches.iter().map(|b| b.chi[0][1]).collect();
    assert!(chi0.iter().all(|c| *c == chi0[0]), "{chi0:?}");
    // The plain branch is the unbranched run continued: same minibatches, same momentum buffer.
    assert_eq!(run.branch_theta(0).unwrap(), twin.theta().unwrap());
    assert_eq!(run.history.step, 9);
    // The projected branches moved elsewhere.
    assert_ne!(run.branch_theta(1).unwrap(), run.branch_theta(2).unwrap());
    // A branched run refuses controls that would change one branch behind the others' back.
    assert!(run.apply(Action::Project(Projection::Bulk)).is_err());
    assert!(run.apply(Action::Branch(BranchSet::Projections)).is_err());
    run.apply(Action::SetEigenEvery(3)).unwrap();
}

#[test]
fn the_gd_branch_is_the_run_switched_to_gd_with_the_same_minibatches_before() {
    let (mut run, _) = small_run(OptimizerSpec::sgd(0.05, 20));
    let (mut twin, _) = small_run(OptimizerSpec::sgd(0.05, 20));
    let (mut sgd, _) = small_run(OptimizerSpec::sgd(0.05, 20));
    for _ in 0..3 {
        run.step().unwrap();
        twin.step().unwrap();
        sgd.step().unwrap();
    }
    run.apply(Action::Branch(BranchSet::GdVsSgd)).unwrap();
    twin.apply(Action::ToGd).unwrap();
    for _ in 0..3 {
        run.step().unwrap();
        twin.step().unwrap();
        sgd.step().unwrap();
    }
    let f = run.history.fork.clone().unwrap();
    assert_eq!(f.branches[0].name, "SGD");
    assert_eq!(f.branches[1].name, "GD");
    assert_eq!(run.branch_theta(0).unwrap(), sgd.theta().unwrap());
    assert_eq!(run.branch_theta(1).unwrap(), twin.theta().unwrap());
    // A spectrum every step (eigen_every 1): χ_k per branch per step, and the verdict is on them.
    assert_eq!(f.branches[0].chi.len(), 3);
    let (_, text) = f.verdict().unwrap();
    // Over the second half since the fork (steps 5 on; never the shared fork sample).
    let late = f.branches[1].late_mean_chi();
    assert_eq!(late, f.branches[1].chi[2][1]);
    let want = format!("{late:.3}");
    assert!(text.contains(&want), "{text} lacks GD's late mean χ {want}");
    // GD from GD makes no sense: refused.
    let (mut gd, _) = small_run(OptimizerSpec::gd(0.05));
    assert!(gd.apply(Action::Branch(BranchSet::GdVsSgd)).is_err());
}

#[test]
fn the_live_verdict_is_computed_from_the_branches_losses() {
    let (mut run, _) = small_run(OptimizerSpec::sgd(0.05, 20));
    run.step().unwrap();
    run.apply(Action::Branch(BranchSet::Projections)).unwrap();
    assert!(
        run.history.fork.as_ref().unwrap().verdict().is_none(),
        "no numbers before the first step"
    );
    for _ in 0..3 {
        run.step().unwrap();
    }
    let f = run.history.fork.clone().unwrap();
    let (holds, text) = f.verdict().unwrap();
    let d: Vec<f64> = f.branches.iter().map(|b| b.rel_decrease(f.loss)).collect();
    for (b, x) in f.branches.iter().zip(&d) {
        // rel_decrease is (L_fork − L_now)/L_fork of the branch's own last loss.
        let l = b.loss.last().unwrap()[1];
        assert_eq!(*x, (f.loss - l) / f.loss);
        assert!(text.contains(&format!("{:+.2} %", -100.0 * x)), "{text}");
    }
    assert_eq!(
        holds,
        d[0] > 0.0 && d[1] < DOM_MAX_FRACTION * d[0] && d[2] > 0.75 * d[0]
    );
    // The lesson carries the same text.
    let sc = scenario::find("fig1-switch").unwrap();
    assert!(sc.lesson_now(&run.history).contains(&text));
}

fn snapshot_of(data: &subspace_lab::data::dataset::Dataset) -> Snapshot {
    let mut spec = RunSpec::new("t", OptimizerSpec::sgd(0.05, 20), 5);
    spec.model.widths = vec![12, 10, 4];
    spec.model.activation = Some(Activation::Tanh);
    spec.data.samples = data.n;
    spec.k = 2;
    Snapshot {
        spec,
        step: 5,
        rule_fired: true,
        ema: 0.97,
        ema_weight: 1.0,
        opt: OptState::default(),
        stream: Stream::new(data.n, 3).state(3),
        records: Vec::new(),
        data: data_fingerprint(data),
        made_by: Provenance {
            command: "test".into(),
            ..Provenance::default()
        },
    }
}

#[test]
fn snapshots_round_trip_and_refuse_what_does_not_fit() {
    let (run, data) = small_run(OptimizerSpec::sgd(0.05, 20));
    let theta = run.theta().unwrap();
    let snap = snapshot_of(&data);
    let dir = tempfile::tempdir().unwrap();
    let v = vec![("theta".to_string(), theta.clone())];
    save_snapshot(dir.path(), &snap, &v).unwrap();
    let (back, bv) = load_snapshot(dir.path()).unwrap();
    assert_eq!(back.step, 5);
    assert_eq!(back.made_by, snap.made_by);
    assert_eq!(bv, v);
    let (t, opt) = back.state(&bv, theta.len()).unwrap();
    assert_eq!(t, theta);
    assert!(opt.m.is_empty());
    // A run started from it has its θ, step and origin.
    let (mut r2, _) = small_run(OptimizerSpec::sgd(0.05, 20));
    let mut moved = theta.clone();
    moved[0] += 0.5;
    r2.start_from(
        &back,
        &vec![("theta".to_string(), moved.clone())],
        &data,
        "here",
    )
    .unwrap();
    assert_eq!(r2.theta().unwrap(), moved);
    assert_eq!((r2.history.step, r2.history.start_step), (5, 5));
    assert!(r2.history.origin.contains("here"));
    r2.step().unwrap();
    assert_eq!(r2.history.step, 6);

    // Torn pair: tensors written for another step.
    let jp = dir.path().join("snapshot.json");
    let text = std::fs::read_to_string(&jp).unwrap();
    let other = tensors_bytes(&v, 6).unwrap();
    let e = parse_snapshot(&text, &jp, &other, &dir.path().join(SNAPSHOT_TENSORS))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("snapshot.safetensors") && e.contains("torn"),
        "{e}"
    );
    // Not JSON of a snapshot: the file is named.
    let e = parse_snapshot("{}", &jp, &other, &jp)
        .unwrap_err()
        .to_string();
    assert!(e.contains("snapshot.json"), "{e}");
    // θ of the wrong length, other data, another network: refused, naming what differs.
    let short = vec![("theta".to_string(), vec![0.0; 3])];
    assert!(back.state(&short, theta.len()).is_err());
    let (mut r3, _) = small_run(OptimizerSpec::sgd(0.05, 20));
    let mut wrong = back.clone();
    wrong.data = "other".into();
    let e = r3
        .start_from(&wrong, &bv, &data, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("other data"), "{e}");
    let mut wrong = back.clone();
    wrong.spec.model.widths = vec![12, 8, 4];
    let e = r3
        .start_from(&wrong, &bv, &data, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("12-8-4") || e.contains("it is of"), "{e}");
    // A JSON that is not a snapshot beside valid tensors: refused.
    let cdir = tempfile::tempdir().unwrap();
    std::fs::write(cdir.path().join("snapshot.json"), "[1,2]").unwrap();
    std::fs::write(cdir.path().join(SNAPSHOT_TENSORS), &other).unwrap();
    assert!(load_snapshot(cdir.path()).is_err());
}

#[test]
fn the_shipped_scenarios_are_what_they_say() {
    let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
    assert!(names.contains(&"fig1-switch") && names.contains(&"gd-vs-sgd"));
    assert!(
        scenario::find("nope")
            .unwrap_err()
            .to_string()
            .contains("fig1-switch")
    );
    let sc = scenario::find("fig1-switch").unwrap();
    assert!(matches!(sc.source, Source::Embedded { .. }));
    let (snap, v) = sc.snapshot().unwrap().unwrap();
    // fig1's full protocol, stopped where its χ-EMA rule fired (the paper: step ≈ 2300).
    assert_eq!(snap.spec.name, "fig1");
    assert!(snap.rule_fired, "the χ-EMA rule fired");
    assert!(
        snap.ema > 0.95 && snap.step > 1000,
        "{} {}",
        snap.step,
        snap.ema
    );
    let last = snap.records.last().unwrap();
    assert_eq!(last.step, snap.step);
    assert_eq!(last.chi_ema, snap.ema);
    assert!(snap.made_by.command.contains("--snapshot-at-switch"));
    assert!(snap.made_by.commit.is_some());
    let (theta, _) = snap.state(&v, 199_210).unwrap();
    assert_eq!(theta.len(), 199_210);
    let s = sc.settings(&Settings::default()).unwrap();
    assert_eq!(
        (s.optimizer, s.lr, s.batch, s.k, s.samples),
        (OptKind::Sgd, 0.01, 50, 10, 5000)
    );
    assert_eq!(s.scenario, "fig1-switch");
    // The URL hash carries it.
    assert!(s.to_hash().contains("scenario=fig1-switch"));
    assert_eq!(Settings::from_hash(&s.to_hash()).0.scenario, "fig1-switch");
    // fig1-cnn's protocol on the app's 500 images: its χ-EMA rule fires at θ₀ (χ_10 is 0.98
    // at the initialisation), so the snapshot is step 0 with the rule fired.
    let sc = scenario::find("fig1-switch-cnn").unwrap();
    let (snap, v) = sc.snapshot().unwrap().unwrap();
    assert_eq!((snap.spec.name.as_str(), snap.step), ("fig1-cnn", 0));
    assert!(snap.rule_fired && snap.ema > 0.95, "{}", snap.ema);
    assert_eq!(snap.records.last().unwrap().chi_ema, snap.ema);
    assert!(snap.made_by.command.contains("--samples 500"));
    assert!(snap.made_by.commit.is_some());
    snap.state(&v, 30_634).unwrap();
    let s = sc.settings(&Settings::default()).unwrap();
    assert_eq!(
        (s.model, s.optimizer, s.lr, s.batch, s.k, s.samples),
        (AppModel::CnnRelu, OptKind::Sgd, 0.001, 50, 10, 500)
    );
    // fig1-transformer's protocol (SST2-1k, k = 2): the χ-EMA rule fired at step 72.
    let sc = scenario::find("fig1-switch-transformer").unwrap();
    let (snap, v) = sc.snapshot().unwrap().unwrap();
    assert_eq!(
        (snap.spec.name.as_str(), snap.step),
        ("fig1-transformer", 72)
    );
    assert!(snap.rule_fired && snap.ema > 0.95, "{}", snap.ema);
    let last = snap.records.last().unwrap();
    assert_eq!((last.step, last.chi_ema), (72, snap.ema));
    // Below the threshold at the record before (every 20 steps: step 60).
    let prev = &snap.records[snap.records.len() - 2];
    assert!(prev.step == 60 && prev.chi_ema <= 0.95, "{prev:?}");
    snap.state(&v, 243_906).unwrap();
    let s = sc.settings(&Settings::default()).unwrap();
    assert_eq!(
        (s.model, s.optimizer, s.lr, s.batch, s.k, s.samples),
        (AppModel::Transformer, OptKind::Sgd, 0.001, 50, 2, 1000)
    );
    // fig9's GD at its switch step, at the edge of stability: the mean λ₁ of the last ten
    // records within fig9's band (10 %) of 2/η = 20.
    let sc = scenario::find("fig9-eos").unwrap();
    let (snap, v) = sc.snapshot().unwrap().unwrap();
    assert_eq!((snap.spec.name.as_str(), snap.step), ("fig9", 2500));
    assert_eq!(snap.spec.optimizer.name, OptKind::Gd);
    assert_eq!(snap.records.last().unwrap().step, 2500);
    let tail = &snap.records[snap.records.len() - 10..];
    let l1 = tail.iter().map(|r| r.eigenvalues[0]).sum::<f64>() / 10.0;
    assert!((l1 - 20.0).abs() < 0.1 * 20.0, "mean λ₁ {l1}");
    snap.state(&v, 199_210).unwrap();
    let s = sc.settings(&Settings::default()).unwrap();
    assert_eq!((s.optimizer, s.lr, s.k), (OptKind::Gd, 0.1, 10));
    // fig10's SAM at its switch step, at SAM's edge: the mean λ₁ / edge of the last ten records
    // within fig10's band (10 %).
    let sc = scenario::find("fig10-sam-edge").unwrap();
    let (snap, v) = sc.snapshot().unwrap().unwrap();
    assert_eq!((snap.spec.name.as_str(), snap.step), ("fig10", 5000));
    assert_eq!(snap.spec.optimizer.name, OptKind::Sam);
    let tail = &snap.records[snap.records.len() - 10..];
    let ratio = tail
        .iter()
        .map(|r| r.eigenvalues[0] / r.sam_edge)
        .sum::<f64>()
        / 10.0;
    assert!((ratio - 1.0).abs() < 0.1, "mean λ₁ / SAM edge {ratio}");
    snap.state(&v, 199_210).unwrap();
    let s = sc.settings(&Settings::default()).unwrap();
    assert_eq!(
        (s.optimizer, s.lr, s.rho, s.k),
        (OptKind::Sam, 0.01, 0.1, 10)
    );
    // fig10's SAM is full batch: the run takes the full-data gradient (not a minibatch of all
    // 5000 rows gathered every step) and is named as the paper names it; SGD keeps a minibatch
    // of all samples (its full-batch form is GD).
    use subspace_lab::app::worker::optimizer_of;
    let o = optimizer_of(&s);
    assert_eq!((o.batch, o.display().as_str()), (None, "SAM"));
    let sgd = Settings {
        optimizer: OptKind::Sgd,
        batch: s.samples,
        ..s.clone()
    };
    assert_eq!(optimizer_of(&sgd).batch, Some(s.samples));
    let (bad, w) = Settings::from_hash("scenario=nope");
    assert!(
        bad.scenario.is_empty() && w.iter().any(|w| w.contains("nope")),
        "{w:?}"
    );
}

#[test]
fn a_spectrum_is_shared_only_at_the_same_theta() {
    use subspace_lab::experiment::run::Stepper;
    let (spec, _, data) = tiny(&[12, 10, 4], Activation::Tanh, 120, 9);
    let mk = || {
        let mut st = Stepper::new(
            F64::new(),
            &spec,
            subspace_lab::backend::LossKind::Mse,
            &data,
            2,
            4,
            1e-6,
        )
        .unwrap();
        st.set_theta(&spec.init(1)).unwrap();
        st
    };
    let (mut a, mut b, mut c) = (mk(), mk(), mk());
    assert!(b.adopt_spectrum(&a).is_err(), "a has no spectrum yet");
    let sa = a.spectrum().unwrap();
    b.adopt_spectrum(&a).unwrap();
    let sc = c.spectrum().unwrap();
    assert_eq!(sa.values, sc.values);
    // b steps with the adopted basis exactly as c with its own.
    let opt = OptimizerSpec::sgd(0.05, 20);
    let (mut s1, mut s2) = (Stream::new(data.n, 4), Stream::new(data.n, 4));
    b.step(&opt, &mut s1, Projection::Dominant, false).unwrap();
    c.step(&opt, &mut s2, Projection::Dominant, false).unwrap();
    assert_eq!(b.theta_host().unwrap(), c.theta_host().unwrap());
    // After b moved, a's spectrum (at the old θ) is refused.
    let e = b.adopt_spectrum(&a).unwrap_err().to_string();
    assert!(e.contains("differs"), "{e}");
}

/// A branch that stopped (diverged) is named by the verdict instead of being compared on its last
/// numbers, and the history with it crosses the page↔worker JSON boundary (no NaN in its series).
#[test]
fn a_stopped_branch_is_named_and_its_history_crosses_json() {
    use subspace_lab::app::live::{BranchView, Fork, History};
    let view = |name: &str, p: Projection, losses: &[f64], stopped: Option<&str>| BranchView {
        name: name.into(),
        projection: p,
        steps: losses.len() - 1,
        loss: losses
            .iter()
            .enumerate()
            .map(|(i, l)| [100.0 + i as f64, *l])
            .collect(),
        chi: vec![[100.0, 0.9]],
        accuracy: vec![[100.0, 0.5]],
        lambda1: vec![[100.0, 20.0]],
        dist_fork: if stopped.is_some() { f64::NAN } else { 0.1 },
        stopped: stopped.map(str::to_string),
    };
    let mut f = Fork {
        step: 100,
        set: Some(BranchSet::Projections),
        loss: 1.0,
        branches: vec![
            view("SGD", Projection::None, &[1.0, 0.9, 0.8], None),
            view(
                "Dom-SGD",
                Projection::Dominant,
                &[1.0, 0.99],
                Some("diverged at step 102"),
            ),
            view("Bulk-SGD", Projection::Bulk, &[1.0, 0.9, 0.8], None),
        ],
    };
    let (holds, text) = f.verdict().unwrap();
    assert!(!holds);
    assert!(
        text.contains("Dom-SGD stopped") && text.contains("diverged"),
        "{text}"
    );
    // Without the stop the same numbers are compared (Dom −1 %: stalls; Bulk = SGD): holds.
    f.branches[1].stopped = None;
    assert!(f.verdict().unwrap().0);
    f.branches[1].stopped = Some("the loss is not finite (NaN) after step 102".into());
    let h = History {
        fork: Some(f),
        ..History::default()
    };
    let json = serde_json::to_string(&h).unwrap();
    let back: History = serde_json::from_str(&json).unwrap();
    let b = &back.fork.unwrap().branches[1];
    assert!(b.dist_fork.is_nan() && b.stopped.is_some(), "{json}");
}
