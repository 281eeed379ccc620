//! The χ-EMA switch rule made explicit (issue 34): where its EMA starts (`ema_start`: first,
//! zero, debiased) and the SGD steps it waits (`switch_min_steps`), recorded in the spec and
//! carried through checkpoints.

mod common;
use common::*;
use subspace_lab::backend::Activation;
use subspace_lab::experiment::output;
use subspace_lab::experiment::run::{self, Checkpoint, Observer, Record, Vectors};
use subspace_lab::experiment::spec::{EmaStart, OptimizerSpec, Projection, RunSpec, SwitchRule};

fn tiny_data() -> subspace_lab::data::dataset::Dataset {
    tiny(&[12, 10, 4], Activation::Tanh, 200, 5).2
}

/// SGD with the χ-EMA rule on a tiny net, recorded every step.
fn spec(start: EmaStart, threshold: f64) -> RunSpec {
    let mut s = RunSpec::new("tiny", OptimizerSpec::sgd(0.05, 20), 30);
    s.model.widths = vec![12, 10, 4];
    s.data.samples = 200;
    s.variants = vec![Projection::None, Projection::Bulk];
    s.steps_after = 6;
    s.record_every = 1;
    s.k = 4;
    s.top = Some(4);
    s.tol = 1e-8;
    s.seed = 1;
    s.switch = SwitchRule::ChiEma;
    s.chi_threshold = threshold;
    s.ema_start = start;
    s
}

fn quiet(spec: &RunSpec, data: &subspace_lab::data::dataset::Dataset) -> run::RunOutcome {
    run::run(
        F64::new(),
        spec,
        data,
        false,
        None,
        &mut run::Progress(&mut |_, _, _| {}),
    )
    .unwrap()
}

#[test]
fn each_start_needs_its_number_of_observations_of_chi_one() {
    // χ = 1 at every step: `first` passes 0.95 at once, `debiased` too (m/w = 1), `zero` needs
    // 1 − 0.9ⁿ > 0.95, n = 29.
    for (start, want) in [
        (EmaStart::First, 1),
        (EmaStart::Debiased, 1),
        (EmaStart::Zero, 29),
    ] {
        let (mut m, mut w) = (f64::NAN, 1.0);
        let mut n = 0;
        while start.value(m, w).partial_cmp(&0.95) != Some(std::cmp::Ordering::Greater) {
            (m, w) = start.update(m, w, 1.0);
            n += 1;
            assert!(n < 1000);
        }
        assert_eq!(n, want, "{start:?}");
    }
    // `first` is bit for bit the rule of runs before the choice existed.
    let (m, _) = EmaStart::First.update(0.3, 1.0, 0.7);
    assert_eq!(m.to_bits(), (0.9 * 0.3 + 0.1 * 0.7f64).to_bits());
}

#[test]
fn the_recorded_ema_follows_its_recursion_from_its_start() {
    let data = tiny_data();
    for start in [EmaStart::First, EmaStart::Zero, EmaStart::Debiased] {
        // Threshold 1: the rule never fires, every step of leg 0 is recorded.
        let o = quiet(&spec(start, 1.0), &data);
        let rows: Vec<&Record> = o.records.iter().filter(|r| r.phase == "before").collect();
        assert_eq!(rows.len(), 31);
        let (mut m, mut w) = (f64::NAN, 1.0);
        for r in &rows {
            (m, w) = start.update(m, w, r.chi_k);
            assert_eq!(
                r.chi_ema.to_bits(),
                start.value(m, w).to_bits(),
                "{start:?}"
            );
        }
        // By hand for the first step: m₁ = χ₁ (first), 0.1 χ₁ (zero), χ₁ (debiased).
        let c = rows[0].chi_k;
        let want = match start {
            EmaStart::Zero => 0.1 * c,
            _ => c,
        };
        assert!((rows[0].chi_ema - want).abs() < 1e-15, "{start:?}");
    }
}

#[test]
fn the_rule_waits_its_minimum_steps() {
    let data = tiny_data();
    // Threshold 0 passes at the first observation under every start…
    for start in [EmaStart::First, EmaStart::Zero, EmaStart::Debiased] {
        let o = quiet(&spec(start, 0.0), &data);
        assert_eq!(o.switch_step, Some(0), "{start:?}");
        assert!(o.switch_rule_fired);
    }
    // …and not before `switch_min_steps`.
    let mut s = spec(EmaStart::First, 0.0);
    s.switch_min_steps = 7;
    let o = quiet(&s, &data);
    assert_eq!(o.switch_step, Some(7));
    assert!(o.switch_rule_fired);
    // More than `steps` is refused, naming the field.
    s.switch_min_steps = 31;
    let e = s.validate(12, 4, 200).unwrap_err().to_string();
    assert!(e.contains("switch_min_steps"), "{e}");
}

#[test]
fn the_start_is_recorded_and_old_specs_keep_their_meaning() {
    let s = spec(EmaStart::Zero, 0.95);
    let t = s.to_toml().unwrap();
    assert!(t.contains("ema_start = \"zero\""), "{t}");
    assert_eq!(RunSpec::parse_toml(&t).unwrap(), s);
    // A spec written before the field: the first value, as those runs used.
    let old: String = t
        .lines()
        .filter(|l| !l.starts_with("ema_start") && !l.starts_with("switch_min_steps"))
        .map(|l| format!("{l}\n"))
        .collect();
    let o = RunSpec::parse_toml(&old).unwrap();
    assert_eq!(o.ema_start, EmaStart::First);
    assert_eq!(o.switch_min_steps, 0);
    assert!(
        RunSpec::parse_toml(
            "optimizer = { name = \"sgd\", lr = 0.1 }\nsteps = 3\nema_start = \"late\"\n"
        )
        .is_err()
    );
}

/// Stops after `after` steps, keeping the last checkpoint.
struct StopAfter {
    steps: usize,
    after: usize,
    ckpt: Option<(Checkpoint, Vectors)>,
}

impl Observer for StopAfter {
    fn record(&mut self, _: &Record) -> subspace_lab::Result<()> {
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

/// A debiased EMA's weight goes through the checkpoint: a run stopped before and after its
/// switch and resumed from the files gives the uninterrupted run's rows and switch step.
#[test]
fn a_resumed_run_keeps_its_ema_weight() {
    let data = tiny_data();
    // A threshold between χ's values, so where it fires depends on the EMA's whole history.
    let probe = quiet(&spec(EmaStart::Debiased, 1.0), &data);
    let mut chis: Vec<f64> = probe.records.iter().map(|r| r.chi_ema).collect();
    chis.sort_by(f64::total_cmp);
    let mut s = spec(EmaStart::Debiased, chis[chis.len() * 2 / 3]);
    s.checkpoint_every = 4;
    let full = quiet(&s, &data);
    for stop_at in [9, full.switch_step.unwrap() + 3] {
        let mut obs = StopAfter {
            steps: 0,
            after: stop_at,
            ckpt: None,
        };
        let _ = run::run(F64::new(), &s, &data, false, None, &mut obs);
        let (c, v) = obs.ckpt.unwrap();
        let dir = tempfile::tempdir().unwrap();
        output::save_checkpoint(dir.path(), &c, &v).unwrap();
        let (c, v) = output::load_checkpoint(dir.path()).unwrap();
        assert!(c.ema_weight > 0.0 && c.ema_weight < 1.0, "{}", c.ema_weight);
        let mut again = StopAfter {
            steps: 0,
            after: usize::MAX,
            ckpt: None,
        };
        let resumed = run::run(F64::new(), &s, &data, false, Some((c, v)), &mut again).unwrap();
        assert_eq!(resumed.switch_step, full.switch_step, "stop at {stop_at}");
        assert_eq!(resumed.records.len(), full.records.len());
        for (a, b) in resumed.records.iter().zip(&full.records) {
            assert_eq!(a.csv_line(6), b.csv_line(6), "stop at {stop_at}");
        }
    }
}

/// The switch-step study's specs: one run per fork, each leg name unique across the preset (so
/// `metrics.csv` keeps them apart and `verdict DIR` can re-judge them), every fork on the same
/// protocol.
#[test]
fn the_sweeps_forks_are_distinct_runs_of_one_protocol() {
    use subspace_lab::paper::presets::preset_specs;
    for name in [
        "switch-sweep",
        "switch-sweep-cnn",
        "switch-sweep-transformer",
    ] {
        for quick in [true, false] {
            let specs = preset_specs(name, quick).unwrap();
            assert_eq!(specs.len(), if quick { 6 } else { 9 }, "{name}");
            let mut legs = std::collections::BTreeSet::new();
            for s in &specs {
                for p in &s.variants {
                    assert!(legs.insert(s.leg_name(*p, s.after_optimizer())), "{name}");
                }
                assert_eq!(s.optimizer, specs[0].optimizer);
                assert_eq!(s.seed, specs[0].seed);
                assert_eq!(s.data, specs[0].data);
            }
            let starts: Vec<EmaStart> = specs
                .iter()
                .filter(|s| s.switch == SwitchRule::ChiEma)
                .map(|s| s.ema_start)
                .collect();
            assert_eq!(
                starts,
                [EmaStart::First, EmaStart::Zero, EmaStart::Debiased]
            );
        }
    }
}

/// The study's rows from real runs of a tiny net: the fork step, the state at the fork and the
/// ratios are the legs', and each fork's verdict is the shared judge's.
#[test]
fn the_sweeps_rows_are_the_legs_ratios() {
    use subspace_lab::paper::claims::dom_stalls_bulk_trains;
    use subspace_lab::paper::presets::switch_sweep::rows;
    let data = tiny_data();
    let mut specs = Vec::new();
    let mut outs = Vec::new();
    for fork in [0usize, 8] {
        let mut s = spec(EmaStart::First, 1.0);
        s.switch = SwitchRule::AfterSteps;
        s.steps = fork;
        s.variants = vec![Projection::None, Projection::Dominant, Projection::Bulk];
        s.tag = format!(" @{fork}");
        outs.push(quiet(&s, &data));
        specs.push(s);
    }
    let table = rows(&specs, &outs);
    assert_eq!(table.len(), 2);
    for ((r, s), o) in table.iter().zip(&specs).zip(&outs) {
        assert_eq!(r.step, s.steps);
        assert_eq!(r.fork, s.steps.to_string());
        let leg = |n: &str| o.leg(&format!("{n} @{}", s.steps)).unwrap().rel_decrease();
        let (p, d, b) = (leg("SGD"), leg("Dom-SGD"), leg("Bulk-SGD"));
        assert_eq!(r.sgd_decrease, p);
        assert_eq!(r.dom_ratio, d / p);
        assert_eq!(r.bulk_ratio, b / p);
        assert_eq!(r.holds, dom_stalls_bulk_trains(p, d, b));
        let at = o
            .records
            .iter()
            .find(|x| x.phase == "before" && x.step == s.steps)
            .unwrap();
        assert_eq!(r.loss, at.loss);
    }
}

/// `reproduce switch-sweep --quick` on 100 MNIST images end to end: its table and plot are
/// written, one verdict per fork, and `verdict DIR` re-judges it from its files alike.
#[test]
fn the_quick_sweep_runs_and_is_rejudged() {
    let ok = subspace_lab::data::mnist::data_dir()
        .and_then(|d| subspace_lab::data::mnist::load_or_fetch(&d, &mut |_| {}))
        .is_ok();
    if !ok {
        eprintln!("SKIP: MNIST-5k cannot be fetched on this machine");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_subspace-lab");
    let o = std::process::Command::new(bin)
        .args(["reproduce", "switch-sweep", "--quick", "--samples", "100"])
        .args(["--backend", "cpu", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(text.matches("switch-sweep fork at").count(), 6, "{text}");
    let dir = out.path().join("switch-sweep");
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with("0,0,false,"),
        "{csv}"
    );
    assert!(dir.join("sweep.png").exists());
    let v = std::process::Command::new(bin)
        .arg("verdict")
        .arg(&dir)
        .output()
        .unwrap();
    let again = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success(),
        "{again}{}",
        String::from_utf8_lossy(&v.stderr)
    );
    for line in text.lines().filter(|l| l.contains("switch-sweep fork at")) {
        let verdict = line.trim().rsplit(" — ").next().unwrap();
        assert!(verdict == "HOLDS" || verdict == "DOES NOT HOLD", "{line}");
    }
    assert_eq!(again.matches("fork at").count(), 6, "{again}");
}

/// The full study (nine forks) is judged, not only the quick one (six): its run count once
/// stopped a finished full `switch-sweep` at its end ("9 specs and 9 runs; the preset has 6").
/// The full specs' forks and rules on a tiny net, fork steps capped at 8.
#[test]
fn the_full_sweep_is_judged_with_its_nine_forks() {
    use subspace_lab::paper::presets::{JudgeInputs, judge, switch_sweep::sweep_specs};
    let data = tiny_data();
    let full = sweep_specs(false);
    assert_eq!(full.len(), 9);
    let mut specs = Vec::new();
    let mut outs = Vec::new();
    for f in &full {
        let mut s = spec(f.ema_start, f.chi_threshold);
        s.switch = f.switch;
        s.steps = f.steps.min(8);
        s.variants = f.variants.clone();
        s.tag = f.tag.clone();
        s.steps_after = 3;
        outs.push(quiet(&s, &data));
        specs.push(s);
    }
    let (verdicts, extra) = judge("switch-sweep", &specs, &outs, &JudgeInputs::default()).unwrap();
    assert_eq!(verdicts.len(), 9, "{verdicts:?}");
    assert!(extra.get("holds_from_step").is_some(), "{extra}");
    // A count that is neither the quick nor the full one is still refused.
    let e = judge(
        "switch-sweep",
        &specs[..7],
        &outs[..7],
        &JudgeInputs::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("6 (quick) or 9"), "{e}");
}
