//! `spectrum --density --trace --per-layer` end to end on a reduced network: the JSON carries the
//! three parts with consistent numbers, the PNG is drawn, and without the options the object has
//! none of the new keys. A few seconds in release.

mod common;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_subspace-lab"))
}

fn data_available() -> bool {
    let ok = subspace_lab::data::mnist::data_dir()
        .and_then(|d| subspace_lab::data::mnist::load_or_fetch(&d, &mut |_| {}))
        .is_ok();
    if !ok {
        eprintln!("SKIP: MNIST-5k cannot be fetched on this machine");
    }
    ok
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

const BASE: [&str; 11] = [
    "spectrum",
    "--samples",
    "200",
    "--widths",
    "784,16,12,10",
    "--k",
    "3",
    "--seed",
    "1",
    "--backend",
    "cpu",
];

#[test]
fn density_trace_and_per_layer_end_to_end() {
    if !data_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("density.png");
    let png_s = png.to_str().unwrap();
    let extra = [
        "--density",
        "--probes",
        "4",
        "--steps",
        "20",
        "--trace",
        "--per-layer",
        "--no-lambda-min",
        "--json",
        "--png",
        png_s,
    ];
    let j = run_json(&[&BASE[..], &extra[..]].concat());
    let p = j["params"].as_f64().unwrap();
    let top: Vec<f64> = j["eigenvalues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // The trace: deflated by the top 3, 4 probes.
    let t = &j["trace"];
    assert_eq!(t["method"], "deflated");
    assert_eq!(t["hvps"], 4);
    assert_eq!(t["exact_rank"], 3);
    let exact: f64 = top.iter().sum();
    assert!((t["exact_part"].as_f64().unwrap() - exact).abs() < 1e-9 * exact.abs());
    // The density: 4 × 20 products, the weights of each probe sum to 1, the largest node does not
    // exceed λ₁ (a Ritz value is at most the largest eigenvalue), up to the solver's tolerance.
    let d = &j["density"];
    assert_eq!(d["hvps"], 80);
    let quad = d["quadrature"].as_array().unwrap();
    assert_eq!(quad.len(), 4);
    for q in quad {
        let w: f64 = q["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((w - 1.0).abs() < 1e-9, "weights sum {w}");
        for x in q["nodes"].as_array().unwrap() {
            assert!(x.as_f64().unwrap() <= top[0] * (1.0 + 1e-6));
        }
    }
    // The quadrature's trace and the deflated one estimate the same number: within 5 standard
    // errors of their difference.
    let (a, sa) = (
        d["trace"].as_f64().unwrap(),
        d["trace_std_error"].as_f64().unwrap(),
    );
    let (b, sb) = (
        t["estimate"].as_f64().unwrap(),
        t["std_error"].as_f64().unwrap(),
    );
    assert!(
        (a - b).abs() <= 5.0 * (sa * sa + sb * sb).sqrt(),
        "SLQ trace {a} ± {sa} vs deflated {b} ± {sb}"
    );
    let share = d["top_k_share"].as_f64().unwrap();
    assert!((share - exact / b).abs() < 1e-9 * share.abs());
    // Per layer: fc1, fc2, fc3 covering θ, 3 values each.
    let layers = j["per_layer"].as_array().unwrap();
    let names: Vec<&str> = layers
        .iter()
        .map(|l| l["block"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fc1", "fc2", "fc3"]);
    let covered: f64 = layers
        .iter()
        .map(|l| l["block"]["len"].as_f64().unwrap())
        .sum();
    assert_eq!(covered, p);
    for l in layers {
        assert_eq!(l["eigenvalues"].as_array().unwrap().len(), 3);
        assert_eq!(l["converged"], true);
    }
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000);
    common::assert_not_blank(&png);
    // Without the options: the top-k report as before, none of the new keys.
    let plain = run_json(&[&BASE[..], &["--no-lambda-min", "--json"][..]].concat());
    for key in ["trace", "density", "per_layer", "whole_seconds"] {
        assert!(plain.get(key).is_none(), "{key} in the plain report");
    }
    assert_eq!(plain["eigenvalues"], j["eigenvalues"]);
}

#[test]
fn bad_whole_options_are_refused() {
    for (args, msg) in [
        (&["--density", "--probes", "0"][..], "--probes"),
        (
            &["--trace", "--trace-method", "hutchpp", "--probes", "2"][..],
            "hutchpp",
        ),
        (&["--png", "x.png"][..], "--density"),
    ] {
        let out = bin().args([&BASE[..], args].concat()).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

/// The trace of fc-tanh at θ₀ (seed 0) on MNIST-5k against the PyTorch twin's
/// (`scripts/trace_twin.py trace --probes 100`, PyHessian's Hutchinson with torch.func HVPs in
/// float64; its numbers in `fixtures/torch_fc_tanh_trace_seed0_f64.json`, no torch at test time):
/// the two independent 100-probe estimates agree within 3 standard errors of their difference,
/// and the loss shows both sides computed at the same θ₀. About 15 s in release (100 HVPs in f64
/// on the full data).
#[test]
fn trace_matches_the_pytorch_twin_within_its_standard_error() {
    if !data_available() {
        return;
    }
    let fx: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/torch_fc_tanh_trace_seed0_f64.json")).unwrap();
    let ours = run_json(&[
        "spectrum",
        "--seed",
        "0",
        "--backend",
        "cpu",
        "--precision",
        "f64",
        "--no-lambda-min",
        "--trace",
        "--trace-method",
        "hutchinson",
        "--probes",
        "100",
        "--json",
    ]);
    let (l_ours, l_torch) = (ours["loss"].as_f64().unwrap(), fx["loss"].as_f64().unwrap());
    assert!(
        (l_ours - l_torch).abs() <= 1e-10 * l_torch,
        "{l_ours} vs {l_torch}"
    );
    let t = &ours["trace"];
    let (a, se_a) = (
        t["estimate"].as_f64().unwrap(),
        t["std_error"].as_f64().unwrap(),
    );
    let (b, se_b) = (
        fx["trace"].as_f64().unwrap(),
        fx["std_error"].as_f64().unwrap(),
    );
    assert_eq!(t["probes"].as_u64(), Some(100));
    let bound = 3.0 * (se_a * se_a + se_b * se_b).sqrt();
    assert!(
        (a - b).abs() <= bound,
        "trace {a} ± {se_a} vs PyTorch {b} ± {se_b}: |Δ| {} > {bound}",
        (a - b).abs()
    );
    // Both standard errors are a few percent of the trace (100 probes), not vacuous.
    assert!(se_a < 0.06 * a && se_b < 0.06 * b, "{se_a} {se_b}");
}
