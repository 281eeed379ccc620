//! The app's state logic without a window: settings in the URL hash, the toy paths and their
//! switches, and the live MNIST run's actions (projection, GD, auto-switch) with branch markers.

mod common;
use common::*;
use subspace_lab::app::live::{Action, LiveRun};
use subspace_lab::app::settings::{Compute, Settings};
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
        compute: Compute::Gpu,
        ..d.clone()
    };
    let h = s.to_hash();
    assert!(h.contains("compute=gpu"), "{h}");
    let (back, warnings) = Settings::from_hash(&format!("#{h}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(back, s);
    // Bad values and unknown keys are skipped with a warning, the rest kept.
    let (b, w) = Settings::from_hash("lr=-1&k=0&opt=lbfgs&foo=1&batch=64&n=200&junk&compute=tpu");
    assert_eq!((b.lr, b.k, b.optimizer), (d.lr, d.k, d.optimizer));
    assert_eq!((b.batch, b.samples, b.compute), (64, 200, Compute::Auto));
    assert_eq!(w.len(), 6, "{w:?}");
    assert_eq!(Settings::from_hash("compute=cpu").0.compute, Compute::Cpu);
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
    // The path plot marks the switch where it happened.
    assert_eq!(sim.b.switch_points, vec![[sgd[500].x, sgd[500].y]]);
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

/// The MNIST run's driver (the same on the native thread and in the web page's worker): commands
/// between steps, a reset to another sample count, and the page↔worker JSON boundary, NaN
/// ("not measured") included.
#[test]
fn driver_commands_and_the_worker_message_boundary() {
    use subspace_lab::app::worker::{Cmd, Driver, Shared, export_files, new_run_cpu};
    use subspace_lab::data::mnist::Mnist5k;
    // Synthetic pixels and labels in the cache layout (the driver does not care where they came from).
    let mnist = Mnist5k {
        images: (0..5000 * 784).map(|i| ((i * 37) % 251) as u8).collect(),
        labels: (0..5000).map(|i| (i % 10) as u8).collect(),
    };
    let s = Settings {
        samples: 100,
        batch: 20,
        k: 2,
        eigen_every: 2,
        ..Settings::default()
    };
    let mut d = Driver::new(mnist.into(), None, &s, new_run_cpu).unwrap();
    for _ in 0..3 {
        assert!(d.tick().is_none());
    }
    assert_eq!(d.run.history().step, 3);
    assert_eq!(d.run.history().points.len(), 2, "spectra at steps 0 and 2");
    d.handle(Cmd::Pause);
    d.tick();
    assert_eq!(d.run.history().step, 3, "paused: no step");
    d.handle(Cmd::Start);
    d.handle(Cmd::Act(Action::Project(Projection::Dominant)));
    d.tick();
    assert_eq!(d.run.history().run_name, "Dom-SGD");
    assert_eq!(d.run.history().markers.len(), 1);

    // Every command crosses the boundary as JSON and comes back equal.
    let cmds = vec![
        Cmd::Start,
        Cmd::Pause,
        Cmd::Reset(s.clone()),
        Cmd::Act(Action::SetOptimizer(OptimizerSpec::sgd(0.02, 10))),
        Cmd::Act(Action::ArmAuto(Projection::Bulk)),
        Cmd::Export(String::new()),
        Cmd::LoadSnapshot(Settings {
            snapshot: "out/fig1/snapshot".into(),
            ..s.clone()
        }),
    ];
    for c in cmds {
        let t = serde_json::to_string(&c).unwrap();
        let back: Cmd = serde_json::from_str(&t).unwrap();
        assert_eq!(format!("{back:?}"), format!("{c:?}"), "{t}");
    }
    // The snapshot too, with NaN travelling as null and coming back as NaN.
    let mut sh = Shared::default();
    d.publish(&mut sh, Some("hello".into()));
    sh.history.points[0].edge = f64::NAN;
    let t = serde_json::to_string(&sh).unwrap();
    let back: Shared = serde_json::from_str(&t).unwrap();
    assert_eq!(back.message.as_deref(), Some("hello"));
    assert_eq!(back.history.step, 4);
    assert_eq!(back.history.markers, sh.history.markers);
    assert!(back.history.points[0].edge.is_nan());
    for (a, b) in back.history.points.iter().zip(&sh.history.points) {
        assert_eq!(a.loss.to_bits(), b.loss.to_bits());
        assert_eq!(a.eigenvalues, b.eigenvalues);
    }

    // The web page's export: the CLI's CSV, the summary, and weights that load back.
    let files = export_files(&d).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        ["metrics.csv", "summary.json", "weights.safetensors"]
    );
    let csv = String::from_utf8(files[0].1.clone()).unwrap();
    assert_eq!(csv.lines().count(), 1 + d.run.history().points.len());
    let (spec, theta) = subspace_lab::nn::weights::load_bytes(
        &files[2].1,
        std::path::Path::new("weights.safetensors"),
    )
    .unwrap();
    let run_theta = d.run.theta().unwrap();
    assert_eq!(spec.num_params(), run_theta.len());
    for (a, b) in theta.iter().zip(&run_theta) {
        assert_eq!(*a as f32, *b as f32);
    }

    // A reset to another sample count starts over on the new data.
    assert!(
        d.handle(Cmd::Reset(Settings {
            samples: 50,
            ..s.clone()
        }))
        .is_none()
    );
    assert_eq!(d.samples(), 50);
    assert_eq!(d.run.history().step, 0);
    d.tick();
    assert_eq!(d.run.history().step, 1);
    // A bad reset keeps the current run and says why.
    let msg = d.handle(Cmd::Reset(Settings { k: 0, ..s.clone() }));
    assert!(msg.is_some_and(|m| m.contains("reset failed")));
    assert_eq!(d.samples(), 50);

    // Every model: a reset to cnn-relu before its data set is loaded keeps the run and names
    // what is missing; once CIFAR-10 is there (synthetic records here) the run is the CNN's.
    use subspace_lab::app::settings::AppModel;
    use subspace_lab::data::load::DatasetKind;
    let cnn = Settings {
        samples: 20,
        batch: 10,
        k: 2,
        eigen_every: 1,
        ..s.with_model(AppModel::CnnRelu)
    };
    assert!(!d.has(DatasetKind::Cifar10));
    let msg = d.handle(Cmd::Reset(cnn.clone())).unwrap_or_default();
    assert!(msg.contains("CIFAR-10 was not loaded"), "{msg}");
    assert_eq!(d.run.spec().name(), "fc-tanh");
    d.sets_mut().cifar10 = Some(subspace_lab::data::cifar10::Cifar10 {
        images: (0..40 * 3072).map(|i| ((i * 29) % 253) as u8).collect(),
        labels: (0..40).map(|i| (i % 10) as u8).collect(),
    });
    // The UI is told to take the run's settings over when a reset fails (the old run goes on)
    // and not after one that ran as asked.
    let published = |d: &Driver| {
        let mut sh = Shared::default();
        d.publish(&mut sh, None);
        (sh.settings_gen, sh.settings.unwrap())
    };
    let (g0, before) = published(&d);
    assert!(d.handle(Cmd::Reset(cnn.clone())).is_none());
    let (g1, now) = published(&d);
    assert_eq!((g1, now.model, now.samples), (g0, AppModel::CnnRelu, 20));
    assert_ne!(before.model, now.model);
    assert!(
        d.handle(Cmd::Reset(Settings {
            k: 0,
            ..cnn.clone()
        }))
        .is_some()
    );
    let (g2, still) = published(&d);
    assert_eq!((g2, still), (g1 + 1, now.clone()));
    // 50 images asked for, 40 at hand: the run has 40 and the UI is told.
    assert!(
        d.handle(Cmd::Reset(Settings {
            samples: 50,
            ..cnn.clone()
        }))
        .is_none()
    );
    let (g3, cut) = published(&d);
    assert_eq!((g3, cut.samples, d.samples()), (g2 + 1, 40, 40));
    // The run's settings follow the optimiser changes it took.
    assert!(
        d.handle(Cmd::Act(Action::SetOptimizer(OptimizerSpec::sgd(
            0.003, 500
        ))))
        .is_none()
    );
    let (g4, o) = published(&d);
    assert_eq!((g4, o.lr, o.batch), (g3, 0.003, 40));
    assert!(d.handle(Cmd::Reset(cnn)).is_none());
    assert_eq!(d.run.spec().name(), "cnn-relu");
    assert_eq!((d.samples(), d.run.history().step), (20, 0));
    assert!(d.tick().is_none() && d.tick().is_none());
    let h = d.run.history();
    assert_eq!((h.step, h.points.len()), (2, 2));
    assert!(
        h.points
            .iter()
            .all(|p| p.loss.is_finite() && p.chi.is_finite())
    );
    // The Transformer on sentences (synthetic: two words per class).
    d.sets_mut().sst2 = Some(subspace_lab::data::sst2::Sst2 {
        sentences: (0..1000)
            .map(|i| ["a fine film", "a dull film"][i % 2].to_string())
            .collect(),
        labels: (0..1000).map(|i| (i % 2) as u8).collect(),
    });
    let tr = Settings {
        samples: 16,
        batch: 8,
        eigen_every: 1,
        ..s.with_model(AppModel::Transformer)
    };
    assert_eq!(tr.k, 2, "the Transformer's k is its 2 classes");
    assert!(d.handle(Cmd::Reset(tr)).is_none());
    assert_eq!(d.run.spec().name(), "transformer");
    assert!(d.tick().is_none());
    let h = d.run.history();
    assert_eq!((h.step, h.k), (1, 2));
    assert_eq!(h.points[0].eigenvalues.len(), 4, "top-2k");
    // Its export names the Transformer's tensors and carries the vocabulary.
    let files = export_files(&d).unwrap();
    let (spec, _) = subspace_lab::nn::weights::load_bytes(
        &files[2].1,
        std::path::Path::new("weights.safetensors"),
    )
    .unwrap();
    assert_eq!(spec.name(), "transformer");
    let text = String::from_utf8_lossy(&files[2].1);
    assert!(
        text.contains("\"vocab\"") && text.contains("dull"),
        "no vocabulary"
    );
}

/// The model in the URL hash: its name round-trips, n is checked against its data set, a
/// scenario of another model is dropped with a warning, and picking a model brings the paper's
/// settings for it.
#[test]
fn the_model_travels_in_the_hash_with_the_paper_settings() {
    use subspace_lab::app::settings::AppModel;
    let d = Settings::default();
    for m in AppModel::ALL {
        let s = d.with_model(m);
        let p = m.paper();
        assert_eq!(
            (s.model, s.lr, s.batch, s.k, s.samples, s.optimizer),
            (m, p.lr, p.batch, p.k, p.app_samples, OptKind::Sgd)
        );
        let (back, w) = Settings::from_hash(&s.to_hash());
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(back, s);
    }
    // A link that names only the model gets the paper's settings for it.
    assert_eq!(d.with_model(AppModel::CnnRelu).to_hash(), "model=cnn-relu");
    for m in AppModel::ALL {
        let (s, w) = Settings::from_hash(&format!("model={}", m.name()));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s, d.with_model(m));
    }
    let (s, _) = Settings::from_hash("lr=0.05&model=transformer");
    assert_eq!((s.lr, s.k, s.samples), (0.05, 2, 1000));
    // A scenario without a model runs on the scenario's model (a hand-written link); with
    // another model named, the scenario is dropped, saying why.
    for (name, m) in [
        ("fig1-switch-transformer", AppModel::Transformer),
        ("fig1-switch-cnn", AppModel::CnnRelu),
        ("fig1-switch", AppModel::FcTanh),
    ] {
        let (s, w) = Settings::from_hash(&format!("scenario={name}"));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((s.model, s.scenario.as_str()), (m, name));
        assert_eq!(s.k, m.paper().k);
    }
    let (s, w) = Settings::from_hash("model=fc-tanh&scenario=fig1-switch-transformer");
    assert!(
        s.scenario.is_empty() && w.iter().any(|w| w.contains("not of")),
        "{w:?}"
    );
    assert_eq!(
        (
            AppModel::CnnRelu.paper().lr,
            AppModel::Transformer.paper().k
        ),
        (0.001, 2)
    );
    // SST2-1k has 1000 sentences: n = 3000 is reset to the model's default, with a warning.
    let (s, w) = Settings::from_hash("model=transformer&n=3000");
    assert_eq!(s.samples, AppModel::Transformer.paper().app_samples);
    assert!(w.iter().any(|x| x.contains("samples = 3000")), "{w:?}");
    // fig1-switch is fc-tanh's: with the Transformer it is dropped, saying so.
    let (s, w) = Settings::from_hash("model=transformer&scenario=fig1-switch");
    assert!(s.scenario.is_empty());
    assert!(w.iter().any(|x| x.contains("fig1-switch")), "{w:?}");
    let (_, w) = Settings::from_hash("model=resnet");
    assert!(w.iter().any(|x| x.contains("model=resnet")), "{w:?}");
    // A scenario brings its model.
    let sc = subspace_lab::app::scenario::find("gd-vs-sgd-cnn").unwrap();
    let s = sc.settings(&d).unwrap();
    assert_eq!((s.model, s.lr, s.k), (AppModel::CnnRelu, 0.001, 10));
    assert_eq!(s.scenario, "gd-vs-sgd-cnn");
    let s = subspace_lab::app::scenario::find("fig1-switch")
        .unwrap()
        .settings(&d.with_model(AppModel::Transformer))
        .unwrap();
    assert_eq!((s.model, s.lr, s.k), (AppModel::FcTanh, 0.01, 10));
}

/// Saved native settings pass the same checks as a URL hash: a file with `samples: 0` (the
/// model panel would be stuck on an error) comes back runnable, with a warning naming the field.
#[test]
fn saved_settings_are_sanitized_like_the_url_hash() {
    let d = Settings::default();
    let mut saved: Settings =
        serde_json::from_str(r#"{"samples": 0, "lr": -3.0, "k": 999, "batch": 0}"#).unwrap();
    let w = saved.sanitize();
    assert_eq!(
        (saved.samples, saved.lr, saved.k, saved.batch),
        (d.samples, d.lr, d.k, d.batch)
    );
    for field in ["samples = 0", "lr = -3", "k = 999", "batch = 0"] {
        assert!(w.iter().any(|x| x.contains(field)), "{field}: {w:?}");
    }
    assert!(Settings::default().sanitize().is_empty());
    // The hash path gives the same result for the same values.
    let (h, hw) = Settings::from_hash("n=0&lr=-3&k=999&batch=0");
    assert_eq!(h, saved);
    assert_eq!(hw.len(), 4, "{hw:?}");
}

/// A user's snapshot: the settings become the snapshot's (model, η, batch, k, n, seed) with the
/// toy's kept; a reset names a snapshot only once it was read; a snapshot of other data is
/// refused with the reason, and one of this data continues at its step.
#[test]
fn a_users_snapshot_sets_the_run_and_is_checked_against_the_data() {
    use subspace_lab::app::settings::AppModel;
    use subspace_lab::app::worker::{
        Cmd, Driver, UserSnapshot, adopt_snapshot, needs_snapshot, new_run_cpu,
    };
    use subspace_lab::data::mnist::{Mnist5k, Preprocess};
    use subspace_lab::experiment::run::data_fingerprint;
    let (snap, vectors) = subspace_lab::app::scenario::find("fig1-switch")
        .unwrap()
        .snapshot()
        .unwrap()
        .unwrap();
    let base = Settings {
        toy_lr: 3e-4,
        scenario: "gd-vs-sgd".into(),
        ..Settings::default().with_model(AppModel::Transformer)
    };
    let u = UserSnapshot {
        source: "out/fig1/snapshot".into(),
        snap: snap.clone(),
        vectors: vectors.clone(),
    };
    let s = adopt_snapshot(&base, &u).unwrap();
    assert_eq!(
        (s.model, s.lr, s.batch, s.k, s.samples, s.optimizer),
        (AppModel::FcTanh, 0.01, 50, 10, 5000, OptKind::Sgd)
    );
    assert_eq!((s.toy_lr, s.scenario.as_str()), (3e-4, ""));
    assert_eq!(s.snapshot, "out/fig1/snapshot");
    assert!(needs_snapshot(&s, None));
    assert!(!needs_snapshot(&s, Some(&u)));
    assert!(!needs_snapshot(&Settings::default(), None));
    // The snapshot in the URL hash, with characters that would end the hash escaped.
    let t = Settings {
        snapshot: "https://x.org/a&b#c%d/snapshot".into(),
        ..Settings::default()
    };
    assert_eq!(Settings::from_hash(&t.to_hash()).0, t);

    // Synthetic MNIST-5k: the shipped snapshot's data differ, so it is refused, saying why.
    let mnist = Mnist5k {
        images: (0..5000 * 784).map(|i| ((i * 37) % 251) as u8).collect(),
        labels: (0..5000).map(|i| (i % 10) as u8).collect(),
    };
    let small = Settings {
        samples: 100,
        ..s.clone()
    };
    let Err(e) = Driver::new(
        mnist.clone().into(),
        Some(UserSnapshot {
            snap: {
                let mut x = snap.clone();
                x.spec.data.samples = 100;
                x
            },
            ..u
        }),
        &small,
        new_run_cpu,
    ) else {
        panic!("a snapshot of other data was accepted")
    };
    assert!(e.to_string().contains("other data"), "{e}");
    // The same snapshot said to be of these 100 images continues at its step.
    let data = mnist.dataset(Preprocess::Normalize, 100).unwrap();
    let mut x = snap.clone();
    x.spec.data.samples = 100;
    x.data = data_fingerprint(&data);
    x.stream = subspace_lab::experiment::run::Stream::new(100, 0).state(0);
    let mut d = Driver::new(
        mnist.into(),
        Some(UserSnapshot {
            source: small.snapshot.clone(),
            snap: x,
            vectors,
        }),
        &small,
        new_run_cpu,
    )
    .unwrap();
    assert_eq!(d.run.history().step, snap.step);
    assert!(d.run.history().origin.contains("out/fig1/snapshot"));
    assert!(d.tick().is_none());
    assert_eq!(d.run.history().step, snap.step + 1);
    // "load" reads the snapshot again; when it no longer fits (its data changed) the reset
    // fails, the old run goes on, and the snapshot it started from comes back, not the one read.
    let kept = d.parts_mut().1.as_ref().unwrap().snap.data.clone();
    if let Some(u) = d.parts_mut().1.as_mut() {
        u.snap.data = "other".into();
    }
    let msg = d
        .handle(Cmd::LoadSnapshot(small.clone()))
        .unwrap_or_default();
    assert!(msg.contains("other data"), "{msg}");
    assert_eq!(d.run.history().step, snap.step + 1);
    assert_eq!(d.parts_mut().1.as_ref().unwrap().snap.data, kept);
    // A reset naming a snapshot that was not read says so and keeps the run.
    let msg = d
        .handle(Cmd::Reset(Settings {
            snapshot: "elsewhere".into(),
            ..small
        }))
        .unwrap_or_default();
    assert!(
        msg.contains("elsewhere") && msg.contains("not read"),
        "{msg}"
    );
    assert_eq!(d.run.history().step, snap.step + 1);

    // A hand-edited snapshot: settings out of the app's ranges, a stream past its data.
    let mut bad = snap.clone();
    bad.spec.k = 999;
    let u = |snap| UserSnapshot {
        source: "x".into(),
        snap,
        vectors: Vec::new(),
    };
    let e = adopt_snapshot(&base, &u(bad)).unwrap_err().to_string();
    assert!(e.contains("k = 999"), "{e}");
    let mut bad = snap.clone();
    bad.stream.pos = usize::MAX;
    let e = adopt_snapshot(&base, &u(bad)).unwrap_err().to_string();
    assert!(e.contains("stream"), "{e}");
}

/// What a reset reads first (`prepare_with`, the platforms' shared logic): the snapshot when
/// named and not read yet, or always on "load"; the settings then become the snapshot's; the
/// snapshot is kept only once the model's data set loaded.
#[test]
fn a_reset_reads_what_it_needs_and_keeps_a_snapshot_only_on_success() {
    use subspace_lab::app::settings::AppModel;
    use subspace_lab::app::worker::{UserSnapshot, prepare_with};
    use subspace_lab::data::sets::DataSets;
    let (snap, vectors) = subspace_lab::app::scenario::find("fig1-switch")
        .unwrap()
        .snapshot()
        .unwrap()
        .unwrap();
    let s = Settings {
        snapshot: "dir".into(),
        ..Settings::default().with_model(AppModel::Transformer)
    };
    let mut sets = DataSets::default();
    let mut user: Option<UserSnapshot> = None;
    let read = |_: &str| Ok((snap.clone(), vectors.clone()));
    // The data set fails to load: nothing is kept.
    let e = prepare_with(s.clone(), false, &mut sets, &mut user, read, |_, m| {
        Err(format!("no {}", m.name()))
    })
    .unwrap_err();
    assert_eq!(e, "no fc-tanh", "the snapshot's model is the one loaded");
    assert!(user.is_none());
    // It loads: the settings are the snapshot's, and the snapshot is kept.
    let (t, derived) =
        prepare_with(s.clone(), false, &mut sets, &mut user, read, |_, _| Ok(())).unwrap();
    assert!(derived);
    assert_eq!(
        (t.model, t.lr, t.k, t.snapshot.as_str()),
        (AppModel::FcTanh, 0.01, 10, "dir")
    );
    assert!(user.as_ref().is_some_and(|u| u.source == "dir"));
    // A reset to it again reads nothing and keeps the settings it is given; "load" reads again.
    let mine = Settings {
        lr: 0.5,
        ..t.clone()
    };
    let (t2, derived) = prepare_with(
        mine.clone(),
        false,
        &mut sets,
        &mut user,
        |_| Err("read".into()),
        |_, _| Ok(()),
    )
    .unwrap();
    assert!(!derived);
    assert_eq!(t2, mine);
    let (t3, derived) =
        prepare_with(mine, true, &mut sets, &mut user, read, |_, _| Ok(())).unwrap();
    assert!(derived);
    assert_eq!(t3.lr, 0.01);
    // A read that fails names what failed, and the snapshot read before stays.
    let e = prepare_with(
        Settings {
            snapshot: "other".into(),
            ..t3
        },
        false,
        &mut sets,
        &mut user,
        |src| Err(format!("cannot read {src}")),
        |_, _| Ok(()),
    )
    .unwrap_err();
    assert_eq!(e, "cannot read other");
    assert!(user.is_some_and(|u| u.source == "dir"));
}

/// The app's paper settings per model are the `reproduce` presets' (fig1, fig1-cnn,
/// fig1-transformer): written twice (the presets are native-only, the app also runs in wasm), so
/// checked here against each other.
#[test]
fn the_apps_paper_settings_are_the_presets() {
    use subspace_lab::app::settings::AppModel;
    use subspace_lab::backend::LossKind;
    use subspace_lab::experiment::reproduce::{fig1_cnn_spec, fig1_spec, fig1_transformer_spec};
    for (m, spec) in [
        (AppModel::FcTanh, fig1_spec(false, LossKind::Mse)),
        (AppModel::CnnRelu, fig1_cnn_spec(false)),
        (AppModel::Transformer, fig1_transformer_spec(false)),
    ] {
        let p = m.paper();
        assert_eq!(
            (p.lr, Some(p.batch), p.k, p.samples),
            (
                spec.optimizer.lr,
                spec.optimizer.batch,
                spec.k,
                spec.data.samples
            ),
            "{}",
            m.name()
        );
        assert_eq!(spec.net().unwrap(), m.spec(), "{}", m.name());
        assert_eq!(spec.loss, LossKind::Mse);
    }
}

/// An eframe storage in memory, for the native app's saved settings.
#[derive(Default)]
struct MemStorage(std::collections::HashMap<String, String>);

impl eframe::Storage for MemStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.into(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

/// Issue 31 case 8: the native app saves its settings as the URL hash's text and reads them key by
/// key through the key table, so one unparsable or out-of-range value is reset alone, with a
/// message, instead of every setting silently; an older app's unreadable RON record says so.
#[test]
fn saved_settings_are_read_key_by_key() {
    use eframe::Storage;
    use subspace_lab::app::platform::native::{SAVED_KEY, saved_settings};
    let mut st = MemStorage::default();
    let (s, w) = saved_settings(Some(&st));
    assert_eq!((s, w.len()), (Settings::default(), 0));
    let custom = Settings {
        lr: 0.05,
        k: 5,
        toy_x0: -3.0,
        compute: Compute::Cpu,
        ..Settings::default()
    };
    st.set_string(SAVED_KEY, custom.to_hash());
    let (s, w) = saved_settings(Some(&st));
    assert_eq!(s, custom, "{w:?}");
    assert!(w.is_empty(), "{w:?}");
    // One field unparsable, two out of range: each reset alone, each said; the rest kept.
    st.set_string(
        SAVED_KEY,
        format!("{}&eig=abc&toy_x0=1e308&toy_y0=-1e308", custom.to_hash()),
    );
    let (s, w) = saved_settings(Some(&st));
    assert_eq!((s.k, s.lr, s.compute), (5, 0.05, Compute::Cpu), "{w:?}");
    assert_eq!((s.eigen_every, s.toy_x0, s.toy_y0), (10, 1.0, 1.0), "{w:?}");
    assert_eq!(w.len(), 3, "{w:?}");
    for field in ["eig=abc", "toy_x0 = ", "toy_y0 = "] {
        assert!(
            w.iter()
                .any(|m| m.contains(field) && m.starts_with("saved settings: ")),
            "{field}: {w:?}"
        );
    }
    // An older app's RON record: read whole and sanitized; unreadable, said.
    let mut old = MemStorage::default();
    old.set_string(eframe::APP_KEY, "(k: 7, toy_x0: 1e308)".into());
    let (s, w) = saved_settings(Some(&old));
    assert_eq!((s.k, s.toy_x0), (7, 1.0), "{w:?}");
    assert_eq!(w.len(), 1, "{w:?}");
    old.set_string(eframe::APP_KEY, "(k: \"seven\")".into());
    let (s, w) = saved_settings(Some(&old));
    assert_eq!(s, Settings::default());
    assert!(w.iter().any(|m| m.contains("unreadable")), "{w:?}");
}
