//! The experiments: the exact toy and its verdicts, the SGD protocol's invariants on a tiny net,
//! and `reproduce` writing its files.

mod common;
use common::*;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use subspace_lab::backend::{Activation, LossKind};
use subspace_lab::experiment::output;
use subspace_lab::experiment::reproduce;
use subspace_lab::experiment::run::{self, Checkpoint, Observer, Record, Vectors};
use subspace_lab::experiment::spec::{OptKind, OptimizerSpec, Projection, RunSpec, SwitchRule};
use subspace_lab::experiment::toy::{self, ToyMethod};

#[test]
fn toy_dynamics_are_exact() {
    // GD on the quadratic: x_t = (1 − 1000η)^t, y_t = (1 − η)^t.
    let pts = toy::run(ToyMethod::Gd, 1.0, 1.0, 1e-4, 50, 0);
    let last = pts.last().unwrap();
    assert!((last.x - 0.9f64.powi(50)).abs() < 1e-15);
    assert!((last.y - (1.0 - 1e-4f64).powi(50)).abs() < 1e-15);
    // Dom-SGD never changes y; Bulk-SGD never changes x.
    let dom = toy::run(ToyMethod::DomSgd, 1.0, 1.0, 1e-4, 500, 3);
    assert!(dom.iter().all(|p| p.y == 1.0));
    let bulk = toy::run(ToyMethod::BulkSgd, 1.0, 1.0, 1e-4, 500, 3);
    assert!(bulk.iter().all(|p| p.x == 1.0));
    // SGD variants share one minibatch stream: same seed, same first steps for SGD.
    assert_eq!(
        toy::run(ToyMethod::Sgd, 1.0, 1.0, 1e-4, 100, 9),
        toy::run(ToyMethod::Sgd, 1.0, 1.0, 1e-4, 100, 9)
    );
    assert_eq!(toy::chi1(0.0, 0.0), 0.0);
    assert_eq!(toy::chi1(1.0, 0.0), 1.0);
}

#[test]
fn quick_toy_verdicts_hold_and_files_are_written() {
    let out = tempfile::tempdir().unwrap();
    let r = reproduce::toy(out.path(), true).unwrap();
    assert_eq!(r.verdicts.len(), 3);
    for v in &r.verdicts {
        assert!(v.holds, "{}", v.text);
    }
    let csv = std::fs::read_to_string(out.path().join("fig6-7/metrics.csv")).unwrap();
    assert!(csv.starts_with("method,step,x,y,loss,chi_1\n"));
    assert_eq!(csv.lines().count(), 1 + 4 * 2001);
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("fig6-7/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["verdicts"].as_array().unwrap().len(), 3);
    assert_eq!(s["verdicts"][0]["holds"], true);
}

/// A spec for a tiny net on synthetic data (12 inputs, 4 classes, 200 samples).
fn tiny_spec(opt: OptimizerSpec) -> RunSpec {
    let mut s = RunSpec::new("tiny", opt, 30);
    s.model.widths = vec![12, 10, 4];
    s.data.samples = 200;
    s.variants = vec![Projection::None, Projection::Dominant, Projection::Bulk];
    s.steps_after = 20;
    s.record_every = 5;
    s.k = 4;
    s.top = Some(6);
    s.tol = 1e-8;
    s.seed = 1;
    s
}

/// Run a spec from scratch on the f64 CPU backend without an observer.
fn quiet_run(
    spec: &RunSpec,
    data: &subspace_lab::data::dataset::Dataset,
) -> subspace_lab::Result<run::RunOutcome> {
    run::run(
        F64::new(),
        spec,
        data,
        false,
        None,
        &mut run::Progress(&mut |_, _, _| {}),
    )
}

fn tiny_data() -> subspace_lab::data::dataset::Dataset {
    tiny(&[12, 10, 4], Activation::Tanh, 200, 5).2
}

/// The variants start from the same θ (same loss at the switch), Dom-SGD moves only inside S_k,
/// and the rows carry what the spec asks for.
#[test]
fn variants_branch_from_the_same_point() {
    let spec = tiny_spec(OptimizerSpec::sgd(0.05, 20));
    let o = quiet_run(&spec, &tiny_data()).unwrap();
    assert_eq!(o.switch_step, Some(30));
    let after: Vec<_> = o.legs.iter().filter(|l| l.phase == "after").collect();
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|l| l.start_loss == after[0].start_loss));
    assert_eq!(
        after.iter().map(|l| l.run.as_str()).collect::<Vec<_>>(),
        ["SGD", "Dom-SGD", "Bulk-SGD"]
    );
    let first = o.records_of("SGD", "after").next().unwrap();
    assert_eq!((first.step, first.dist_switch), (30, 0.0));
    assert!(o.records.iter().all(|r| r.eigenvalues.len() == 6));
    assert!(o.records.iter().all(|r| (0.0..=1.0).contains(&r.chi_k)));
    // Rows every 5 steps: 0..=30 before (7), then 0..=20 after in each of 3 variants (5 each).
    assert_eq!(o.records.len(), 7 + 3 * 5);
}

/// Every optimiser runs; Dom-LR = Bulk-LR = η exactly for GD; SAM's edge is reported; momentum
/// and Adam follow their textbook updates on the first step.
#[test]
fn optimisers_and_effective_learning_rates() {
    let data = tiny_data();
    let mut gd = tiny_spec(OptimizerSpec::gd(0.05));
    gd.effective_lr = true;
    gd.steps_after = 0;
    gd.variants = vec![Projection::None];
    let o = quiet_run(&gd, &data).unwrap();
    let l = &o.legs[0];
    assert_eq!(l.dom_lr.n, 30);
    assert!(
        (l.dom_lr.mean - 0.05).abs() < 1e-12 && l.dom_lr.std < 1e-12,
        "{:?}",
        l.dom_lr
    );
    assert!((l.bulk_lr.mean - 0.05).abs() < 1e-12, "{:?}", l.bulk_lr);
    for kind in [OptKind::Momentum, OptKind::Adam, OptKind::Sam] {
        let mut s = gd.clone();
        s.optimizer = OptimizerSpec::new(kind, 0.01, Some(20));
        let o = quiet_run(&s, &data).unwrap();
        let l = &o.legs[0];
        assert!(
            l.end_loss < l.start_loss,
            "{kind:?}: {} → {}",
            l.start_loss,
            l.end_loss
        );
        assert!(l.dom_lr.mean.is_finite() && l.bulk_lr.mean.is_finite());
        if kind == OptKind::Sam {
            assert!(o.records.iter().all(|r| r.sam_edge > 0.0));
        }
    }
    // Adam's first step is lr·sign(g) (up to ε): Dom-LR·‖P g‖² = ⟨lr·sign(g), P g⟩.
    let mut st =
        run::Stepper::new(F64::new(), gd.mlp().unwrap(), gd.loss, &data, 4, 4, 1e-8).unwrap();
    let theta = gd.mlp().unwrap().init(0);
    let adam = OptimizerSpec::new(OptKind::Adam, 0.01, None);
    let mut stream = run::Stream::new(200, 0);
    st.set_theta(&theta).unwrap();
    let grad = st.grad_host().unwrap();
    st.step(&adam, &mut stream, Projection::None, false)
        .unwrap();
    let after = st.theta_host().unwrap();
    let d: Vec<f64> = theta.iter().zip(&after).map(|(a, b)| a - b).collect();
    for (di, gi) in d.iter().zip(&grad) {
        if gi.abs() > 1e-6 {
            assert!((di - 0.01 * gi.signum()).abs() < 1e-6, "{di} vs {gi}");
        }
    }
}

#[test]
fn the_chi_ema_rule_switches_when_the_ema_passes_the_threshold() {
    let mut spec = tiny_spec(OptimizerSpec::sgd(0.05, 20));
    spec.switch = SwitchRule::ChiEma;
    spec.chi_threshold = 0.0; // passes at the first step
    let o = quiet_run(&spec, &tiny_data()).unwrap();
    assert_eq!(o.switch_step, Some(0));
    assert!(o.switch_rule_fired);
    spec.chi_threshold = 1.0; // never passes: switches after `steps`
    let o = quiet_run(&spec, &tiny_data()).unwrap();
    assert_eq!(o.switch_step, Some(30));
    assert!(!o.switch_rule_fired);
}

/// Stops after `after` steps, keeping the rows and the last checkpoint.
struct StopAfter {
    steps: usize,
    after: usize,
    rows: Vec<Record>,
    ckpt: Option<(Checkpoint, Vectors)>,
}

impl Observer for StopAfter {
    fn record(&mut self, r: &Record) -> subspace_lab::Result<()> {
        self.rows.push(r.clone());
        Ok(())
    }
    fn progress(&mut self, _: &str, _: usize, _: usize) {
        self.steps += 1;
    }
    fn checkpoint(&mut self, c: &Checkpoint, v: &Vectors) -> subspace_lab::Result<()> {
        self.ckpt = Some((c.clone(), v.clone()));
        Ok(())
    }
    fn stop_requested(&self) -> bool {
        self.steps >= self.after
    }
}

/// A run stopped (before and after the switch, with momentum state) and resumed from its
/// checkpoint — through the files on disk — produces exactly the rows of an uninterrupted run.
#[test]
fn resume_reproduces_the_uninterrupted_run_exactly() {
    let data = tiny_data();
    let mut spec = tiny_spec(OptimizerSpec::new(OptKind::Momentum, 0.02, Some(20)));
    spec.checkpoint_every = 7;
    let full = quiet_run(&spec, &data).unwrap();
    for stop_at in [12, 41] {
        let mut obs = StopAfter {
            steps: 0,
            after: stop_at,
            rows: Vec::new(),
            ckpt: None,
        };
        let err = run::run(F64::new(), &spec, &data, false, None, &mut obs).unwrap_err();
        assert!(
            matches!(err, subspace_lab::Error::Interrupted { .. }),
            "{err}"
        );
        let (c, v) = obs.ckpt.unwrap();
        assert!(
            c.elapsed_s > 0.0,
            "the checkpoint carries the time computed so far"
        );
        let dir = tempfile::tempdir().unwrap();
        output::save_checkpoint(dir.path(), &c, &v).unwrap();
        let (mut c, v) = output::load_checkpoint(dir.path()).unwrap();
        // Time computed in earlier sessions carries over into the next checkpoints.
        c.elapsed_s = 1000.0;
        let mut again = StopAfter {
            steps: 0,
            after: usize::MAX,
            rows: Vec::new(),
            ckpt: None,
        };
        let resumed = run::run(F64::new(), &spec, &data, false, Some((c, v)), &mut again).unwrap();
        assert!(again.ckpt.is_some_and(|(c, _)| c.elapsed_s > 1000.0));
        assert_eq!(
            resumed.records.len(),
            full.records.len(),
            "stop at {stop_at}"
        );
        for (a, b) in resumed.records.iter().zip(&full.records) {
            assert_eq!(a.csv_line(6), b.csv_line(6), "stop at {stop_at}");
        }
        assert_eq!(resumed.switch_step, full.switch_step);
    }
    // A torn checkpoint (tensors of another step) is refused.
    let mut obs = StopAfter {
        steps: 0,
        after: 12,
        rows: Vec::new(),
        ckpt: None,
    };
    let _ = run::run(F64::new(), &spec, &data, false, None, &mut obs);
    let (mut c, v) = obs.ckpt.unwrap();
    let dir = tempfile::tempdir().unwrap();
    output::save_checkpoint(dir.path(), &c, &v).unwrap();
    c.step += 1;
    std::fs::write(
        dir.path().join(output::CHECKPOINT_JSON),
        serde_json::to_string(&c).unwrap(),
    )
    .unwrap();
    assert!(output::load_checkpoint(dir.path()).is_err());
}

#[test]
fn invalid_specs_are_rejected_naming_the_field() {
    let ok = tiny_spec(OptimizerSpec::sgd(0.05, 20));
    let data = tiny_data();
    type Edit = Box<dyn Fn(&mut RunSpec)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|s| s.optimizer.lr = 0.0), "optimizer.lr"),
        (Box::new(|s| s.optimizer.lr = f64::NAN), "optimizer.lr"),
        (
            Box::new(|s| s.optimizer.batch = Some(201)),
            "optimizer.batch",
        ),
        (Box::new(|s| s.optimizer.batch = None), "optimizer.batch"),
        (Box::new(|s| s.k = 0), "k ="),
        (Box::new(|s| s.k = 100_000), "k ="),
        (Box::new(|s| s.top = Some(2)), "top"),
        (
            Box::new(|s| s.model.widths = vec![13, 10, 4]),
            "model.widths",
        ),
        (
            Box::new(|s| s.after = Some(OptimizerSpec::new(OptKind::Gd, 0.1, Some(5)))),
            "after.batch",
        ),
        (Box::new(|s| s.record_every = 0), "record_every"),
        (Box::new(|s| s.variants.clear()), "variants"),
        (Box::new(|s| s.optimizer.beta2 = 1.0), "optimizer.beta2"),
    ];
    for (f, field) in cases {
        let mut s = ok.clone();
        f(&mut s);
        let e = quiet_run(&s, &data).unwrap_err().to_string();
        assert!(e.contains(field), "{field}: {e}");
    }
    // TOML: unknown fields and names are rejected; a round trip keeps the spec.
    assert!(
        RunSpec::parse_toml(
            "steps = 10\nlearning_rate = 1\n[optimizer]\nname = \"sgd\"\nlr = 0.1\nbatch = 5"
        )
        .is_err()
    );
    let e =
        RunSpec::parse_toml("steps = 10\n[optimizer]\nname = \"adagrad\"\nlr = 0.1").unwrap_err();
    assert!(e.to_string().contains("adagrad"), "{e}");
    let back = RunSpec::parse_toml(&ok.to_toml().unwrap()).unwrap();
    assert_eq!(back, ok);
    let ex = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quick-dom-bulk.toml"
    ))
    .unwrap();
    RunSpec::parse_toml(&ex)
        .unwrap()
        .validate(784, 10, 5000)
        .unwrap();
}

/// Divergence stops the run naming the step, and the rows written so far stay on disk.
#[test]
fn divergence_names_the_step_and_keeps_the_rows() {
    let data = tiny_data();
    let mut spec = tiny_spec(OptimizerSpec::gd(1e6));
    spec.steps_after = 0;
    spec.record_every = 1;
    let dir = tempfile::tempdir().unwrap();
    let mut p = |_: &str, _: usize, _: usize| {};
    let mut sink = output::CsvSink::create(
        dir.path(),
        6,
        &[],
        false,
        Arc::new(AtomicBool::new(false)),
        &mut p,
    )
    .unwrap();
    let e = run::run(F64::new(), &spec, &data, false, None, &mut sink).unwrap_err();
    let msg = e.to_string();
    // One sentence: what, at which step, what is kept, what to do — each said once.
    assert!(msg.contains("diverged at step"), "{msg}");
    assert!(
        msg.contains("are kept in metrics.csv") && msg.contains("lower the learning rate"),
        "{msg}"
    );
    assert_eq!(msg.matches("not finite").count(), 1, "{msg}");
    assert_eq!(msg.matches("learning rate").count(), 1, "{msg}");
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert!(csv.lines().count() >= 2, "{csv}");
}

fn mnist_or_skip() -> Option<subspace_lab::data::mnist::Mnist5k> {
    use subspace_lab::data::mnist;
    match mnist::data_dir().and_then(|d| mnist::load_or_fetch(&d, &mut |_| {})) {
        Ok((m, _)) => Some(m),
        Err(e) => {
            eprintln!("SKIP: MNIST-5k cannot be fetched on this machine: {e}");
            None
        }
    }
}

/// The paper's fig. 1 claim on the quick protocol (SGD 300 steps, then 60 steps of each variant
/// from the same point, S₁₀ recomputed every step): Dom-SGD stalls, Bulk-SGD trains like SGD.
/// Measured: SGD −2.7 %, Dom-SGD +0.2 %, Bulk-SGD −2.9 % (≈ 4 min on 2 cores, f32). fig22 reuses
/// the run; both write CSV, JSON and PNG.
#[test]
fn quick_fig1_verdict_holds() {
    let Some(m) = mnist_or_skip() else { return };
    let m: reproduce::DataSets = m.into();
    let out = tempfile::tempdir().unwrap();
    // Steps reported by the presets: fig22 reusing a run computes none.
    let steps = std::cell::Cell::new(0usize);
    let mut p = |_: &str, _: usize, _: usize| steps.set(steps.get() + 1);
    let mut ctx = reproduce::Ctx::new(out.path(), true, Arc::new(AtomicBool::new(false)), &mut p);
    let r = reproduce::preset(F32::new(), "fig1", &m, &mut ctx).unwrap();
    let fig1_steps = steps.get();
    assert!(fig1_steps >= 300 + 3 * 60, "{fig1_steps} steps reported");
    let v = &r.verdicts[0];
    assert!(v.holds, "{}", v.text);
    assert!(v.numbers["dom_rel_decrease"] < 0.25 * v.numbers["plain_rel_decrease"]);
    let r22 = reproduce::preset(F32::new(), "fig22", &m, &mut ctx).unwrap();
    assert_eq!(steps.get(), fig1_steps, "fig22 must reuse fig1's run");
    for d in ["fig1", "fig22"] {
        let csv = std::fs::read_to_string(out.path().join(d).join("metrics.csv")).unwrap();
        assert!(csv.lines().count() > 3 * 6);
        for f in ["summary.json", "metrics.png", "spec.toml"] {
            assert!(out.path().join(d).join(f).exists(), "{d}/{f}");
        }
    }
    drop(ctx);

    // A later invocation: fig22 reuses the finished run in OUT/fig1, with the same numbers.
    let csv22 = std::fs::read(out.path().join("fig22/metrics.csv")).unwrap();
    let mut later = reproduce::Ctx::new(out.path(), true, Arc::new(AtomicBool::new(false)), &mut p);
    let again = reproduce::preset(F32::new(), "fig22", &m, &mut later).unwrap();
    assert_eq!(steps.get(), fig1_steps, "fig22 must reuse OUT/fig1");
    assert_eq!(again.verdicts[0].numbers, r22.verdicts[0].numbers);
    // fig2-3 is judged on the same run (the paper's Figures 1–3 share one SGD run).
    let r23 = reproduce::preset(F32::new(), "fig2-3", &m, &mut later).unwrap();
    assert_eq!(steps.get(), fig1_steps, "fig2-3 must reuse OUT/fig1");
    assert_eq!(r23.verdicts.len(), 1);
    assert!(
        r23.verdicts[0]
            .text
            .contains("EMA over the records every 10 steps")
    );
    assert_eq!(r23.verdicts[0].numbers["ema_every_step"], 0.0);
    // `verdict DIR` recomputes exactly the verdicts the presets printed, from the files alone.
    for (d, verdicts) in [
        ("fig1", &r.verdicts),
        ("fig22", &again.verdicts),
        ("fig2-3", &r23.verdicts),
    ] {
        let before = std::fs::read_to_string(out.path().join(d).join("summary.json")).unwrap();
        let j = reproduce::rejudge(&out.path().join(d)).unwrap();
        let texts = |v: &[subspace_lab::experiment::verdict::Verdict]| {
            v.iter().map(|x| x.text.clone()).collect::<Vec<_>>()
        };
        assert_eq!(texts(&j.verdicts), texts(verdicts), "{d}");
        assert_eq!(j.previous_rules, reproduce::VERDICT_RULES);
        let after: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.path().join(d).join("summary.json")).unwrap(),
        )
        .unwrap();
        let before: serde_json::Value = serde_json::from_str(&before).unwrap();
        assert_eq!(
            after["previous_verdicts"][0]["verdicts"], before["verdicts"],
            "{d}"
        );
        assert_eq!(after["verdicts"], before["verdicts"], "{d}");
    }
    assert_eq!(
        std::fs::read(out.path().join("fig22/metrics.csv")).unwrap(),
        csv22
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("fig22/summary.json")).unwrap())
            .unwrap();
    assert!(summary["extra"]["fig1_wall_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(summary["extra"]["fig1_backend"], "cpu-f32");

    // Not reused: another protocol (the full one), or a metrics.csv a later fig1 cut short.
    let quick = reproduce::fig1_spec(true, LossKind::Mse);
    assert!(reproduce::finished_fig1(out.path(), &quick, true).is_some());
    let full = reproduce::fig1_spec(false, LossKind::Mse);
    assert!(reproduce::finished_fig1(out.path(), &full, false).is_none());
    assert!(reproduce::finished_fig1(out.path(), &quick, false).is_none());
    let csv1 = out.path().join("fig1/metrics.csv");
    let text = std::fs::read_to_string(&csv1).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&csv1, lines[..lines.len() - 1].join("\n")).unwrap();
    assert!(reproduce::finished_fig1(out.path(), &quick, true).is_none());
}

/// A preset of several runs stopped in its second run continues with `--resume`: the finished
/// run is skipped (its rows come back from `resume/<run>/done.json`), the stopped one continues
/// from its checkpoint, and `metrics.csv` and the outcomes equal an uninterrupted invocation's.
#[test]
fn several_runs_resume_where_they_stopped() {
    let Some(m) = mnist_or_skip() else { return };
    let m: reproduce::DataSets = m.into();
    let specs: Vec<RunSpec> = [("gd", OptKind::Gd), ("gd-m", OptKind::Momentum)]
        .iter()
        .map(|&(name, kind)| {
            let mut s = RunSpec::new(name, OptimizerSpec::new(kind, 0.05, None), 24);
            s.model.widths = vec![784, 8, 10];
            s.data.samples = 60;
            s.record_every = 4;
            s.k = 2;
            s.top = Some(3);
            s.effective_lr = true;
            s.checkpoint_every = 5;
            s
        })
        .collect();
    let whole = tempfile::tempdir().unwrap();
    let mut p = |_: &str, _: usize, _: usize| {};
    let mut ctx = reproduce::Ctx::new(
        whole.path(),
        false,
        Arc::new(AtomicBool::new(false)),
        &mut p,
    );
    let full =
        reproduce::run_specs(&F64::new(), &m, whole.path(), &specs, false, &mut ctx).unwrap();

    let split = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // Stop 13 steps into the second run (progress comes once per step).
    let mut calls = 0;
    let mut p = move |_: &str, _: usize, _: usize| {
        calls += 1;
        if calls >= 24 + 13 {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let mut ctx = reproduce::Ctx::new(split.path(), false, stop, &mut p);
    let err =
        reproduce::run_specs(&F64::new(), &m, split.path(), &specs, false, &mut ctx).unwrap_err();
    assert!(
        matches!(err, subspace_lab::Error::Interrupted { .. }),
        "{err}"
    );
    assert!(split.path().join("resume/gd/done.json").exists());
    assert!(split.path().join("resume/gd-m/checkpoint.json").exists());

    // A resume with another spec for the stopped run is refused naming the field, and changes
    // no file (the finished run's rows are not rewritten first).
    let files = |d: &std::path::Path| {
        let mut v: Vec<(String, Vec<u8>)> = Vec::new();
        for e in walk(d) {
            v.push((e.display().to_string(), std::fs::read(&e).unwrap()));
        }
        v.sort();
        v
    };
    fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
    let before = files(split.path());
    let mut other = specs.clone();
    other[1].optimizer.lr = 0.07;
    let mut p = |_: &str, _: usize, _: usize| {};
    let mut ctx = reproduce::Ctx::new(
        split.path(),
        false,
        Arc::new(AtomicBool::new(false)),
        &mut p,
    );
    ctx.resume = true;
    let e = reproduce::run_specs(&F64::new(), &m, split.path(), &other, false, &mut ctx)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("optimizer.lr: 0.05 vs 0.07") && e.contains("nothing was changed"),
        "{e}"
    );
    drop(ctx);
    assert_eq!(
        files(split.path()),
        before,
        "a refused resume changes no file"
    );

    let mut p = |_: &str, _: usize, _: usize| {};
    let mut ctx = reproduce::Ctx::new(
        split.path(),
        false,
        Arc::new(AtomicBool::new(false)),
        &mut p,
    );
    ctx.resume = true;
    let resumed =
        reproduce::run_specs(&F64::new(), &m, split.path(), &specs, false, &mut ctx).unwrap();
    let csv = |d: &std::path::Path| std::fs::read_to_string(d.join("metrics.csv")).unwrap();
    assert_eq!(csv(split.path()), csv(whole.path()));
    for (a, b) in resumed.iter().zip(&full) {
        assert_eq!(
            serde_json::to_string(&a.legs).unwrap(),
            serde_json::to_string(&b.legs).unwrap()
        );
    }
    // A finished run's checkpoint is gone; its done.json stays for the next --resume.
    assert!(!split.path().join("resume/gd-m/checkpoint.json").exists());
    assert!(split.path().join("resume/gd-m/done.json").exists());
}

/// `verdict DIR` on a fig10 run written under the old rules (the paper's misprinted SAM edge):
/// the edge is recomputed from each record's ‖∇L‖ with the corrected formula, the verdict flips,
/// the old verdicts stay under `previous_verdicts`, and a run missing ‖∇L‖ is refused naming it.
#[test]
fn verdict_rejudges_fig10_with_the_corrected_sam_edge() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("fig10");
    std::fs::create_dir_all(&d).unwrap();
    let spec = reproduce::preset_specs("fig10", true).unwrap().remove(0);
    let (lr, rho, g) = (0.01, 0.1, 2.0);
    // Corrected: 10·(√41 − 1) = 54.03; as printed: 10·(√401 − 1) = 190.25.
    let edge = run::sam_edge(g, lr, rho);
    assert!((edge - 10.0 * (41f64.sqrt() - 1.0)).abs() < 1e-12);
    let printed = run::sam_edge_as_printed(g, lr, rho);
    let rec = |run: &str, phase: &str, step: usize, loss: f64, lambda: f64| Record {
        run: run.into(),
        phase: phase.into(),
        step,
        loss,
        accuracy: 0.5,
        grad_norm: g,
        chi_k: 0.5,
        chi_ema: 0.5,
        eigenvalues: vec![lambda; 10],
        two_over_lr: 200.0,
        sam_edge: printed,
        dom_lr: f64::NAN,
        bulk_lr: f64::NAN,
        dist_switch: 0.0,
        dist_init: 1.0,
        hvps: 3,
        worst_residual: 1e-6,
    };
    let mut records = vec![
        rec("SAM", "before", 0, 1.0, 10.0),
        rec("SAM", "before", 300, 0.5, 50.0),
    ];
    let legs = [("SAM", 0.40), ("Dom-SAM", 0.499), ("Bulk-SAM", 0.41)];
    for (name, end) in legs {
        records.push(rec(name, "after", 300, 0.5, 52.0));
        records.push(rec(name, "after", 360, end, 52.0));
    }
    std::fs::write(d.join("metrics.csv"), Record::csv(&records, 10)).unwrap();
    let stats = serde_json::json!({"n": 0, "mean": null, "std": null});
    let leg = |name: &str, phase: &str, proj: &str, first: usize, last: usize, a: f64, b: f64| {
        serde_json::json!({"run": name, "phase": phase, "projection": proj, "first_step": first,
            "last_step": last, "start_loss": a, "end_loss": b, "dom_lr": stats, "bulk_lr": stats})
    };
    let old = serde_json::json!([{"claim": "fig10: SAM (η 0.01, ρ 0.1) trains at its edge of stability (λ₁ within ±10 % of the SAM edge)",
        "holds": false, "numbers": {"edge": printed}, "text": "old"}]);
    let summary = serde_json::json!({
        "preset": "fig10", "quick": true, "version": "0.1.0", "specs": [spec],
        "runs": [{"switch_step": 300, "switch_rule_fired": false, "legs": [
            leg("SAM", "before", "none", 0, 300, 1.0, 0.5),
            leg("SAM", "after", "none", 300, 360, 0.5, 0.40),
            leg("Dom-SAM", "after", "dominant", 300, 360, 0.5, 0.499),
            leg("Bulk-SAM", "after", "bulk", 300, 360, 0.5, 0.41)]}],
        "extra": null, "verdicts": old,
    });
    std::fs::write(d.join("summary.json"), summary.to_string()).unwrap();
    let j = reproduce::rejudge(&d).unwrap();
    assert_eq!(j.previous_rules, 1);
    let v = &j.verdicts[0];
    assert!(v.holds, "{}", v.text);
    assert!((v.numbers["edge"] - edge).abs() < 1e-12);
    assert!((v.numbers["edge_as_printed"] - printed).abs() < 1e-12);
    assert!((v.numbers["mean_sharpness"] - 52.0).abs() < 1e-12);
    assert!(j.verdicts[1].holds, "{}", j.verdicts[1].text);
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
    assert_eq!(after["previous_verdicts"][0]["verdicts"], old);
    assert_eq!(after["previous_verdicts"][0]["verdict_rules"], 1);
    assert_eq!(after["verdict_rules"], reproduce::VERDICT_RULES);
    assert!(
        after["extra"]["sam_edge"]
            .as_str()
            .unwrap()
            .contains("typo")
    );

    // A column the SAM edge needs is missing: the error names it and the step.
    for r in records
        .iter_mut()
        .filter(|r| r.run == "SAM" && r.phase == "after")
    {
        r.grad_norm = f64::NAN;
    }
    std::fs::write(d.join("metrics.csv"), Record::csv(&records, 10)).unwrap();
    let e = reproduce::rejudge(&d).unwrap_err().to_string();
    assert!(e.contains("grad_norm") && e.contains("step 300"), "{e}");
    // Not a preset's directory, no directory, a summary naming an unknown preset, a plain run's.
    let e = reproduce::rejudge(dir.path()).unwrap_err().to_string();
    assert!(e.contains("no summary.json"), "{e}");
    let e = reproduce::rejudge(&dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such directory"), "{e}");
    let mut other = summary.clone();
    other["preset"] = "figXX".into();
    std::fs::write(d.join("summary.json"), other.to_string()).unwrap();
    let e = reproduce::rejudge(&d).unwrap_err().to_string();
    assert!(e.contains("'figXX', which is not one of"), "{e}");
    other["preset"] = "fig10".into();
    other["specs"] = serde_json::Value::Null;
    std::fs::write(d.join("summary.json"), other.to_string()).unwrap();
    let e = reproduce::rejudge(&d).unwrap_err().to_string();
    assert!(e.contains("does not hold a fig10 run"), "{e}");
    std::fs::write(d.join("summary.json"), r#"{"spec": {}, "verdicts": []}"#).unwrap();
    let e = reproduce::rejudge(&d).unwrap_err().to_string();
    assert!(e.contains("a `run` directory"), "{e}");
}

/// `--print-spec` prints exactly what a preset runs, as TOML that `run` accepts; `--list` covers
/// every preset and names each difference from the paper.
#[test]
fn presets_print_their_specs_and_list_their_differences() {
    for quick in [true, false] {
        for &p in reproduce::PRESETS {
            let text = reproduce::print_spec(p, quick, None).unwrap();
            let specs = reproduce::preset_specs(p, quick).unwrap();
            if p == "fig6-7" {
                assert!(specs.is_empty() && text.starts_with('#'));
                continue;
            }
            let docs: Vec<&str> = text.split("# ---- run: ").collect();
            let parsed: Vec<RunSpec> = if specs.len() == 1 {
                vec![RunSpec::parse_toml(&text).unwrap()]
            } else {
                docs[1..]
                    .iter()
                    .map(|d| RunSpec::parse_toml(d.split_once('\n').unwrap().1).unwrap())
                    .collect()
            };
            assert_eq!(parsed, specs, "{p}");
            for s in &parsed {
                let (d, c) = s.dataset().shape();
                s.validate(d, c, s.dataset().max_samples()).unwrap();
            }
        }
    }
    // `--samples N`: the same specs on the first N samples, nothing else changed.
    let text = reproduce::print_spec("fig1-cnn", false, Some(500)).unwrap();
    let mut want = reproduce::preset_specs("fig1-cnn", false)
        .unwrap()
        .remove(0);
    want.data.samples = 500;
    assert_eq!(RunSpec::parse_toml(&text).unwrap(), want);
    let full = |p: &str| reproduce::preset_specs(p, false).unwrap().remove(0);
    assert_eq!(full("fig9").steps, 2500);
    assert_eq!(full("fig10").steps, 5000);
    assert_eq!(full("fig1-ce").optimizer.lr, 0.1);
    assert_eq!(full("fig1-ce").loss, LossKind::Ce);
    assert_eq!(full("fig2-3"), full("fig1"));
    assert_eq!(full("fig1").switch, SwitchRule::ChiEma);
    // The CNN presets: the paper's Appendix E settings on cnn-relu / CIFAR10-5k.
    let cnn = full("fig1-cnn");
    assert_eq!(
        cnn.net().unwrap(),
        subspace_lab::nn::model::ModelSpec::cnn_relu()
    );
    assert_eq!((cnn.optimizer.lr, cnn.optimizer.batch), (0.001, Some(50)));
    assert_eq!(cnn.dataset().name(), "cifar10");
    assert_eq!(cnn.switch, SwitchRule::ChiEma);
    assert_eq!(full("fig2-3-cnn"), cnn);
    let t3 = reproduce::preset_specs("table3", false).unwrap();
    let lrs: Vec<f64> = t3.iter().map(|s| s.optimizer.lr).collect();
    assert_eq!(lrs, vec![1e-3, 1e-3, 1e-4, 1e-4]);
    assert!(t3.iter().all(|s| s.effective_lr && s.steps == 1000));
    // The Transformer presets: Appendix E on SST2-1k, k = 2 (the classes).
    let tr = full("fig1-transformer");
    assert_eq!(
        tr.net().unwrap(),
        subspace_lab::nn::model::ModelSpec::by_name("transformer").unwrap()
    );
    assert_eq!(
        (tr.optimizer.lr, tr.optimizer.batch, tr.k),
        (0.001, Some(50), 2)
    );
    assert_eq!((tr.dataset().name(), tr.data.samples), ("sst2", 1000));
    assert_eq!(tr.switch, SwitchRule::ChiEma);
    assert_eq!(full("fig2-3-transformer"), tr);
    let t1 = reproduce::preset_specs("table1", false).unwrap();
    let lrs: Vec<f64> = t1.iter().map(|s| s.optimizer.lr).collect();
    assert_eq!(lrs, vec![1e-2, 1e-2, 1e-3, 1e-3]);
    assert!(
        t1.iter()
            .all(|s| s.effective_lr && s.steps == 1000 && s.k == 2)
    );
    let rows = reproduce::list(false).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.preset.as_str()).collect();
    let mut want = reproduce::PRESETS.to_vec();
    want.sort();
    let mut got = names.clone();
    got.sort();
    assert_eq!(got, want);
    let fig10 = rows.iter().find(|r| r.preset == "fig10").unwrap();
    assert!(fig10.setting.contains("switch at step 5000") && fig10.setting.contains("ρ 0.1"));
    assert!(fig10.differences.iter().any(|d| d.contains("typo")));
    assert!(
        rows.iter()
            .all(|r| !r.paper.is_empty() && !r.setting.is_empty())
    );
}

/// Every spec field but `optimizer` and `steps` defaults to the paper's fig. 1 protocol (README).
#[test]
fn spec_defaults_are_the_papers_fig1_protocol() {
    let s =
        RunSpec::parse_toml("steps = 3000\n[optimizer]\nname = \"sgd\"\nlr = 0.01\nbatch = 50\n")
            .unwrap();
    let fig1 = reproduce::fig1_spec(false, LossKind::Mse);
    assert_eq!(s.switch, SwitchRule::ChiEma);
    assert_eq!(s.chi_threshold, 0.95);
    assert_eq!(s.variants, fig1.variants);
    assert_eq!(s.steps_after, fig1.steps_after);
    assert_eq!((s.k, s.loss, s.seed), (10, LossKind::Mse, 0));
    assert_eq!(s.model, fig1.model);
    assert_eq!(s.data, fig1.data);
    assert_eq!(s.optimizer, fig1.optimizer);
    // The constructor for single runs says what it is: no switch.
    let one = RunSpec::new("one", OptimizerSpec::gd(0.01), 10);
    assert_eq!(
        (one.variants.len(), one.steps_after, one.switch),
        (1, 0, SwitchRule::AfterSteps)
    );
}

/// A CNN spec written as the README shows: the data set follows the model, the preprocessing the
/// data set; an activation cnn-relu does not have is refused; the data fingerprint tells data apart.
#[test]
fn cnn_specs_default_sensibly_and_refuse_what_does_not_apply() {
    use subspace_lab::data::dataset::Dataset;
    let s = RunSpec::parse_toml(
        "name = \"c\"\nsteps = 2\n[model]\nname = \"cnn-relu\"\n[optimizer]\nname = \"gd\"\nlr = 0.001\n",
    )
    .unwrap();
    assert_eq!(s.dataset().name(), "cifar10");
    assert_eq!(s.preprocess(), "standardize");
    s.validate(3072, 10, 5000).unwrap();
    let t = RunSpec::parse_toml(&s.to_toml().unwrap()).unwrap();
    assert_eq!(t, s, "round trip");
    let mut bad = s.clone();
    bad.model.activation = Some(Activation::Tanh);
    let e = bad.validate(3072, 10, 5000).unwrap_err().to_string();
    assert!(e.contains("model.activation") && e.contains("relu"), "{e}");
    let mut bad = s.clone();
    bad.data.preprocess = Some("normalize".into());
    let e = bad.validate(3072, 10, 5000).unwrap_err().to_string();
    assert!(
        e.contains("data.preprocess = normalize: unknown CIFAR-10"),
        "{e}"
    );
    let a = Dataset::synthetic(10, 4, 3, 1).unwrap();
    let b = Dataset::synthetic(10, 4, 3, 2).unwrap();
    assert_eq!(run::data_fingerprint(&a), run::data_fingerprint(&a.clone()));
    assert_ne!(run::data_fingerprint(&a), run::data_fingerprint(&b));
}

/// A step whose update would make θ non-finite is refused with θ and the optimiser state (step
/// count, momentum buffer, Adam's moments) left as they were (the runner then reports the
/// divergence at the next step, its row kept) — for full-batch and minibatch steps, whose
/// gradient's loss statistics are read at the end of the step with the update's finiteness.
#[test]
fn a_diverging_step_leaves_theta_as_it_was() {
    let data = tiny_data();
    let spec = tiny_spec(OptimizerSpec::gd(1e300));
    let mlp = spec.mlp().unwrap();
    let theta = mlp.init(0);
    for big in [
        OptimizerSpec::gd(1e300),
        OptimizerSpec::sgd(1e300, 4),
        OptimizerSpec::new(OptKind::Momentum, 1e300, None),
        OptimizerSpec::new(OptKind::Momentum, 1e300, Some(4)),
        OptimizerSpec::new(OptKind::Adam, 1e300, Some(4)),
    ] {
        let mut st =
            run::Stepper::new(F64::new(), mlp.clone(), spec.loss, &data, 2, 2, 1e-6).unwrap();
        st.set_theta(&theta).unwrap();
        let mut stream = run::Stream::new(data.n, 0);
        // The first steps land at ~1e300, a later one overflows.
        let mut last = (theta.clone(), st.opt_state().unwrap());
        let mut steps = 0;
        let e = loop {
            match st.step(&big, &mut stream, Projection::None, false) {
                Ok(_) => last = (st.theta_host().unwrap(), st.opt_state().unwrap()),
                Err(e) => break e,
            }
            steps += 1;
            assert!(steps < 50, "{}: no divergence", big.display());
        };
        let name = big.display();
        assert!(steps >= 1, "{name}: diverged at once (nothing to keep)");
        assert!(e.to_string().contains("not finite"), "{name}: {e}");
        assert_eq!(st.theta_host().unwrap(), last.0, "{name}");
        assert!(last.0.iter().all(|x| x.is_finite()), "{name}");
        let now = st.opt_state().unwrap();
        assert_eq!(now.t, last.1.t, "{name}: the step count");
        assert_eq!(now.t, steps as u64, "{name}");
        assert_eq!(now.m, last.1.m, "{name}: m");
        assert_eq!(now.v, last.1.v, "{name}: v");
        assert!(now.m.iter().chain(&now.v).all(|x| x.is_finite()), "{name}");
    }
}

/// `warm_solver = "block"` in a spec runs every warm spectrum by block Davidson on block HVPs:
/// the same run as with Lanczos (both meet the spec's tolerance by their true residuals), so
/// the losses and eigenvalues agree to that tolerance; the field is written only when set.
#[test]
fn a_spec_can_take_block_davidson_as_its_warm_solver() {
    use subspace_lab::experiment::run::WarmSolver;
    let data = tiny_data();
    let lz = tiny_spec(OptimizerSpec::sgd(0.05, 20));
    let text = toml::to_string(&lz).unwrap();
    assert!(!text.contains("warm_solver"), "{text}");
    let mut block = lz.clone();
    block.warm_solver = WarmSolver::Block;
    let text = toml::to_string(&block).unwrap();
    assert!(text.contains("warm_solver = \"block\""), "{text}");
    let back: RunSpec = toml::from_str(&text).unwrap();
    assert_eq!(back.warm_solver, WarmSolver::Block);
    let (a, b) = (
        quiet_run(&lz, &data).unwrap(),
        quiet_run(&block, &data).unwrap(),
    );
    assert_eq!(a.records.len(), b.records.len());
    // The solvers did differ: their HVP counts over the warm spectra.
    let count = |o: &run::RunOutcome| o.records.iter().skip(1).map(|r| r.hvps).sum::<usize>();
    assert_ne!(count(&a), count(&b), "the block solver was not used");
    for (x, y) in a.records.iter().zip(&b.records) {
        assert_eq!((&x.run, x.step), (&y.run, y.step));
        assert!(
            (x.loss - y.loss).abs() <= 1e-6 * x.loss.abs(),
            "{} step {}: loss {} vs {}",
            x.run,
            x.step,
            x.loss,
            y.loss
        );
        let scale = x.eigenvalues[0].abs();
        for (l, m) in x.eigenvalues.iter().zip(&y.eigenvalues) {
            assert!(
                (l - m).abs() <= 1e-6 * scale,
                "{} step {}: λ {l} vs {m}",
                x.run,
                x.step
            );
        }
    }
}
