//! Issue 30, the first five minutes, headless: a scenario waits at its fork and a second branch
//! is refused in words; the rate is not claimed before a whole spectrum cycle; the live verdict is
//! judged on smoothed losses at the horizon (provisional before, fixed after, not flipped by one
//! step's noise); the landing lesson's stages; the teacher key; the toy forks Dom-SGD and
//! Bulk-SGD on the valley's floor, where Dom stalls and Bulk moves along the valley.

use subspace_lab::app::live::{
    Action, BranchSet, BranchView, Fork, History, judge, smoothing_steps,
};
use subspace_lab::app::panels::lesson::{Stage, duration_words, stage};
use subspace_lab::app::scenario;
use subspace_lab::app::settings::Settings;
use subspace_lab::app::toysim::{LESSON_STEPS, ToySim};
use subspace_lab::app::worker::{Cmd, Driver, Shared, new_run_cpu};
use subspace_lab::data::mnist::Mnist5k;
use subspace_lab::experiment::spec::Projection;
use subspace_lab::experiment::toy::ToyMethod;

fn synthetic_mnist() -> Mnist5k {
    Mnist5k {
        images: (0..5000 * 784).map(|i| ((i * 37) % 251) as u8).collect(),
        labels: (0..5000).map(|i| (i % 10) as u8).collect(),
    }
}

/// gd-vs-sgd (θ₀, no snapshot) on 100 synthetic samples, k = 2.
fn scenario_settings() -> Settings {
    let sc = scenario::find("gd-vs-sgd").unwrap();
    let mut s = sc.settings(&Settings::default()).unwrap();
    s.samples = 100;
    s.batch = 20;
    s.k = 2;
    s
}

#[test]
fn a_scenario_waits_at_its_fork_and_a_second_branch_is_refused_in_words() {
    let s = scenario_settings();
    let mut d = Driver::new(synthetic_mnist().into(), None, &s, new_run_cpu).unwrap();
    assert!(!d.running, "a scenario's run waits at its fork");
    assert!(d.tick().is_none());
    assert_eq!(d.run.history().step, 0, "no step before branch");
    assert_eq!(d.run.history().horizon, 100, "the scenario's horizon");
    assert!(
        d.handle(Cmd::Act(Action::Branch(BranchSet::GdVsSgd)))
            .is_none()
    );
    assert!(d.running, "branch starts the branches");
    d.tick();
    assert_eq!(
        d.run.history().fork.as_ref().unwrap().step,
        0,
        "forked at the fork"
    );
    let m = d
        .handle(Cmd::Act(Action::Branch(BranchSet::GdVsSgd)))
        .unwrap();
    assert!(m.contains("already branched at step 0"), "{m}");
    assert!(!m.contains("invalid argument"), "{m}");
    // A refused action is said without the error kind's prefix.
    let m = d
        .handle(Cmd::Act(Action::Project(Projection::Dominant)))
        .unwrap();
    assert!(!m.starts_with("invalid argument"), "{m}");
    // A reset to the scenario waits at its fork again.
    d.handle(Cmd::Reset(s.clone()));
    assert!(!d.running);
    assert!(d.run.history().fork.is_none());
}

#[test]
fn the_rate_waits_for_a_whole_spectrum_cycle() {
    let s = Settings {
        samples: 100,
        batch: 20,
        k: 2,
        eigen_every: 10,
        ..Settings::default()
    };
    let mut d = Driver::new(synthetic_mnist().into(), None, &s, new_run_cpu).unwrap();
    assert!(d.running, "a fresh run trains at once");
    for _ in 0..5 {
        d.tick();
    }
    assert_eq!(d.steps_per_sec(), 0.0, "5 cheap steps say nothing");
    for _ in 0..8 {
        d.tick();
    }
    assert!(d.steps_per_sec() > 0.0);
}

fn view(name: &str, p: Projection, losses: &[f64]) -> BranchView {
    BranchView {
        name: name.into(),
        projection: p,
        steps: losses.len() - 1,
        loss: losses
            .iter()
            .enumerate()
            .map(|(i, l)| [100.0 + i as f64, *l])
            .collect(),
        chi: Vec::new(),
        accuracy: Vec::new(),
        lambda1: Vec::new(),
        dist_fork: 0.1,
        stopped: None,
    }
}

/// Branch losses over `n` steps: SGD and Bulk fall by `rate` per step, Dom by a tenth of it,
/// SGD with ±`noise` alternating.
fn history(n: usize, horizon: usize, noise: f64) -> History {
    let series = |r: f64, z: f64| -> Vec<f64> {
        (0..=n)
            .map(|i| {
                let wiggle = if i == 0 {
                    0.0
                } else if i % 2 == 0 {
                    z
                } else {
                    -z
                };
                1.0 - r * i as f64 + wiggle
            })
            .collect()
    };
    let rate = 2e-4;
    History {
        horizon,
        fork: Some(Fork {
            step: 100,
            set: Some(BranchSet::Projections),
            loss: 1.0,
            branches: vec![
                view("SGD", Projection::None, &series(rate, noise)),
                view("Dom-SGD", Projection::Dominant, &series(0.1 * rate, 0.0)),
                view("Bulk-SGD", Projection::Bulk, &series(0.9 * rate, 0.0)),
            ],
        }),
        ..History::default()
    }
}

#[test]
fn the_verdict_is_provisional_before_the_horizon_and_fixed_after() {
    let h = history(40, 150, 0.0);
    let v = judge(&h).unwrap();
    assert!(v.provisional && v.holds, "{}", v.text);
    assert!(
        v.text.contains("provisional, 40 of 150 steps"),
        "{}",
        v.text
    );
    let at = judge(&history(150, 150, 0.0)).unwrap();
    assert!(!at.provisional && at.holds, "{}", at.text);
    assert!(at.text.contains("HOLDS"), "{}", at.text);
    // Judged on the mean of the last 15 losses before the horizon: SGD at steps 136..=150.
    assert_eq!(smoothing_steps(150), 15);
    let want = (1.0 - (136..=150).map(|i| 1.0 - 2e-4 * i as f64).sum::<f64>() / 15.0) / 1.0;
    assert!((at.numbers[0].value - want).abs() < 1e-12);
    // Later steps do not change it, whatever they are.
    let mut later = history(150, 150, 0.0);
    for b in &mut later.fork.as_mut().unwrap().branches {
        for i in 151..=200 {
            b.loss.push([100.0 + i as f64, 5.0]);
        }
        b.steps = 200;
    }
    assert_eq!(judge(&later).unwrap(), at);
}

#[test]
fn one_steps_noise_does_not_flip_the_verdict() {
    // SGD's loss jumps by ±0.6 % every step, more than the 10-step differences judged.
    let noisy = history(60, 100, 6e-3);
    let raw_flips = (30..60)
        .filter(|&n| {
            let h = history(n, 100, 6e-3);
            let a = h.fork.as_ref().unwrap().verdict().unwrap().0;
            let b = history(n + 1, 100, 6e-3).fork.unwrap().verdict().unwrap().0;
            a != b
        })
        .count();
    assert!(
        raw_flips > 5,
        "the raw verdict flips on the noise ({raw_flips})"
    );
    let judged_flips = (30..60)
        .filter(|&n| {
            judge(&history(n, 100, 6e-3)).unwrap().holds
                != judge(&history(n + 1, 100, 6e-3)).unwrap().holds
        })
        .count();
    assert_eq!(judged_flips, 0);
    // And the noise is shown.
    let v = judge(&noisy).unwrap();
    assert!(v.numbers[0].noise > 0.0);
    assert!(v.text.contains("±"), "{}", v.text);
}

#[test]
fn the_lesson_says_loading_at_fork_computing_and_judged() {
    let mut sh = Shared::default();
    assert!(matches!(stage(&sh), Stage::Loading(_)));
    sh.backend = "cpu-f32".into();
    sh.history.step = 2322;
    assert_eq!(stage(&sh), Stage::AtFork(2322));
    sh.history = history(30, 150, 0.0);
    sh.steps_per_sec = 0.5;
    assert_eq!(
        stage(&sh),
        Stage::Computing {
            steps: 30,
            horizon: 150,
            seconds_left: Some(240.0)
        }
    );
    assert_eq!(duration_words(240.0), "4 min 00 s");
    sh.history = history(150, 150, 0.0);
    assert!(matches!(stage(&sh), Stage::Judged(v) if v.holds));
}

#[test]
fn teacher_mode_is_a_key_and_the_landing_is_fig1s_fork() {
    let (s, w) = Settings::from_hash("teacher=1");
    assert!(s.teacher && w.is_empty(), "{w:?}");
    assert!(s.to_hash().contains("teacher=1"));
    assert!(!Settings::default().to_hash().contains("teacher"));
    let l = Settings::landing();
    assert_eq!(l.scenario, "fig1-switch");
    assert_eq!(scenario::find(&l.scenario).unwrap().horizon, 150);
}

#[test]
fn the_toy_forks_on_the_valley_floor_where_dom_stalls_and_bulk_moves() {
    let mut t = ToySim::new(ToyMethod::Gd, ToyMethod::Sgd, 1.0, 1.0, 0);
    t.advance(LESSON_STEPS, 1e-4, 100.0);
    assert!(t.lesson_done());
    let fs = t.fork_step.expect("SGD aligned on the floor");
    // Not at the start (where the wall's slope aligns both), once GD has reached the floor.
    assert!((30..500).contains(&fs), "forked at {fs}");
    let (dom, bulk) = (&t.forks[0], &t.forks[1]);
    assert_eq!(
        (dom.method, bulk.method),
        (ToyMethod::DomSgd, ToyMethod::BulkSgd)
    );
    let y_fork = dom.path[0][1];
    assert!(
        dom.path[0][0].abs() < 0.1,
        "in the valley: x {}",
        dom.path[0][0]
    );
    // Dom-SGD cannot move along the floor; Bulk-SGD moves along it as SGD does.
    assert_eq!(dom.y, y_fork);
    assert!(bulk.y < 0.5 * y_fork, "Bulk y {} from {y_fork}", bulk.y);
    assert!(t.b.y < 0.5 * y_fork);
    // The loss along the floor, ½y² (Bulk keeps the x it had at the fork: its part of the loss
    // across the valley stays, as the status line says).
    assert!(0.5 * bulk.y * bulk.y < 0.25 * 0.5 * dom.y * dom.y);
}

#[test]
fn ticks_are_readable_and_no_plot_is_drawn_without_data() {
    use subspace_lab::app::panels::plots::{has_data, readable};
    assert_eq!(readable(0.10473), "0.105");
    assert_eq!(readable(2322.0), "2322");
    assert_eq!(readable(12.5), "12.5");
    assert_eq!(readable(0.5), "0.5");
    assert_eq!(readable(-0.4), "-0.4");
    assert_eq!(readable(0.0), "0");
    assert_eq!(readable(1.5e-5), "1.5e-5");
    assert!(!has_data(&History::default()));
    assert!(has_data(&history(3, 150, 0.0)));
}

#[test]
fn a_branched_export_carries_every_branch_and_the_verdict() {
    let s = scenario_settings();
    let mut d = Driver::new(synthetic_mnist().into(), None, &s, new_run_cpu).unwrap();
    d.handle(Cmd::Act(Action::Branch(BranchSet::GdVsSgd)));
    for _ in 0..4 {
        assert!(d.tick().is_none());
    }
    let files = subspace_lab::app::worker::export_files(&d).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "metrics.csv",
            "summary.json",
            "weights.safetensors",
            "weights-SGD.safetensors",
            "weights-GD.safetensors"
        ]
    );
    let csv = String::from_utf8(files[0].1.clone()).unwrap();
    for b in ["SGD", "GD"] {
        let rows = csv
            .lines()
            .filter(|l| l.starts_with(&format!("{b},branch,")))
            .count();
        assert_eq!(rows, 5, "{b}: the fork's loss and one per step\n{csv}");
    }
    let sum: serde_json::Value = serde_json::from_slice(&files[1].1).unwrap();
    assert_eq!(sum["fork"]["step"], 0);
    assert_eq!(sum["fork"]["horizon"], 100);
    assert_eq!(sum["fork"]["branches"].as_array().unwrap().len(), 2);
    assert_eq!(sum["settings"]["scenario"], "gd-vs-sgd");
    assert!(
        sum["settings_hash"]
            .as_str()
            .unwrap()
            .contains("scenario=gd-vs-sgd")
    );
    assert_eq!(sum["verdict"]["provisional"], true, "{sum}");
    assert_eq!(sum["verdict"]["horizon"], 100);
    // Each branch's weights: its own θ, with its step and loss in the metadata.
    let f = d.run.history().fork.clone().unwrap();
    for (i, b) in f.branches.iter().enumerate() {
        let bytes = &files[3 + i].1;
        let (_, theta) = subspace_lab::nn::weights::load_bytes(
            bytes,
            std::path::Path::new("weights.safetensors"),
        )
        .unwrap();
        let want = d.run.branch_theta(i).unwrap();
        assert!(theta.iter().zip(&want).all(|(a, w)| *a as f32 == *w as f32));
        let text = String::from_utf8_lossy(bytes);
        assert!(
            text.contains("\"step\":\"4\""),
            "{}",
            &text[..300.min(text.len())]
        );
        assert!(text.contains(&format!("\"train_loss\":\"{}\"", b.loss_now())));
    }
    // Natively the PNG too, of every branch.
    let dir = tempfile::tempdir().unwrap();
    let m = subspace_lab::app::worker::export(&d, dir.path()).unwrap();
    assert!(m.contains("exported"), "{m}");
    assert!(dir.path().join("metrics.png").is_file());
    assert!(dir.path().join("weights-GD.safetensors").is_file());
}

/// The toy tells Figures 6–8 while a scenario's branches compute (issue 30: on the page the run
/// branches at once and the toy was held at step 0): slowed to a few frames a second, not held.
#[test]
fn the_held_toy_still_moves_a_few_frames_a_second() {
    use subspace_lab::app::panels::toy::{HELD_INTERVAL, HELD_STEPS_FACTOR, ToyPanel};
    let s = Settings::landing();
    let mut t = ToyPanel::new(&s);
    t.held = true;
    assert!(t.animating(), "a held toy still animates");
    assert_eq!(t.next_frame(), HELD_INTERVAL);
    let t0 = web_time::Instant::now();
    let n = s.toy_steps_per_frame * HELD_STEPS_FACTOR;
    t.advance_at(&s, t0);
    assert_eq!(t.sim.a.step, n, "the first held frame moves at once");
    // The frames the worker's news draw in between do not move it.
    t.advance_at(&s, t0 + HELD_INTERVAL / 2);
    assert_eq!(t.sim.a.step, n);
    for i in 1..=20 {
        t.advance_at(&s, t0 + HELD_INTERVAL * i);
    }
    assert_eq!(t.sim.a.step, 21 * n);
    assert!(
        t.sim.fork_step.is_some(),
        "Figure 8's fork is drawn while held"
    );
    t.held = false;
    assert_eq!(t.next_frame(), std::time::Duration::ZERO);
}

/// The toy is held only while a scenario's branches compute towards their verdict: once it is
/// final nothing says it waits (issue 30).
#[test]
fn the_toy_is_held_until_the_verdict_is_final() {
    use subspace_lab::app::panels::toy_held;
    let mut sh = Shared {
        running: true,
        backend: "cpu-f32".into(),
        ..Shared::default()
    };
    sh.history = history(30, 150, 0.0);
    assert!(toy_held(&sh, "fig1-switch"));
    assert!(!toy_held(&sh, ""), "no scenario, no hold");
    sh.history = history(150, 150, 0.0);
    assert!(!toy_held(&sh, "fig1-switch"), "the verdict is final");
    sh.history = history(30, 150, 0.0);
    sh.running = false;
    assert!(!toy_held(&sh, "fig1-switch"));
}

/// compute=auto refusing a software WebGPU adapter (SwiftShader on the page) is the normal
/// fallback: an info line, not the status line's error; other failures stay errors (issue 30).
#[test]
fn a_software_adapter_fallback_is_an_info_line() {
    use subspace_lab::app::worker::{ComputeNote, SOFTWARE_ADAPTER_NOTE};
    use subspace_lab::backend::gpu::SOFTWARE_ADAPTER_REFUSED;
    let n = ComputeNote::of_gpu_error(&subspace_lab::Error::Backend(
        SOFTWARE_ADAPTER_REFUSED.into(),
    ));
    assert_eq!(n, ComputeNote::Info(SOFTWARE_ADAPTER_NOTE.into()));
    assert_eq!(n.error(), None);
    assert!(!SOFTWARE_ADAPTER_NOTE.contains("error"));
    assert!(SOFTWARE_ADAPTER_NOTE.starts_with("computing on the CPU (wasm)"));
    let e = ComputeNote::of_gpu_error(&subspace_lab::Error::Backend(
        "the WebGPU adapter refused a device with the default limits: x".into(),
    ));
    assert!(e.error().unwrap().contains("refused a device"), "{e:?}");
    // The page's state carries the info apart from the message.
    let sh = Shared {
        info: n.info().map(str::to_string),
        ..Shared::default()
    };
    let back: Shared = serde_json::from_str(&serde_json::to_string(&sh).unwrap()).unwrap();
    assert_eq!(back.info.as_deref(), Some(SOFTWARE_ADAPTER_NOTE));
    assert_eq!(back.message, None);
}
