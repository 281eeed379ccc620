//! The paper's Figure 1 live in the desktop app (Xvfb with lavapipe in CI): `app --scenario
//! fig1-switch --branch --exit-after-steps 50` loads fig1's θ at its χ-EMA switch, forks it into
//! SGD, Dom-SGD and Bulk-SGD, advances them 50 steps each and writes its JSON report; the three
//! branches advanced and Bulk-SGD's relative loss decrease exceeds Dom-SGD's. Skips without a
//! display unless SUBSPACE_LAB_REQUIRE_DISPLAY is set (CI sets it and starts Xvfb).
//!
//! Why 50 steps and not 20: measured here (cpu-f32), Dom-SGD's loss falls first — along the top
//! eigendirections, where the gradient lies — and then stalls: after 20 steps SGD −1.23 %,
//! Dom-SGD −0.84 %, Bulk-SGD −0.43 %; Bulk-SGD passes Dom-SGD after about 35 steps; after 50,
//! −1.62 / −0.55 / −1.08 %; after 150, −4.04 / −0.82 / −3.26 %, where the paper's claim with the
//! CLI's thresholds holds (Dom 0.20 × SGD < 0.25 ×, Bulk 0.81 × > 0.75 ×). ≈ 100 s on 2 cores.

mod common;
use common::{assert_not_blank, display_or_skip, read_app_report};
use std::process::Command;

/// `subspace-lab app ARGS… EXIT…` with its report and screenshot in `dir`, on the CPU backend even
/// where a GPU exists (the tests are about the app): the report, its text, the screenshot's path.
fn run_app(
    dir: &std::path::Path,
    args: &[&str],
    exit: &[&str],
) -> (serde_json::Value, String, std::path::PathBuf) {
    let report = dir.join("report.json");
    let shot = dir.join("shot.png");
    let out = Command::new(env!("CARGO_BIN_EXE_subspace-lab"))
        .arg("app")
        .args(args)
        .args(exit)
        .arg("--report")
        .arg(&report)
        .arg("--screenshot")
        .arg(&shot)
        .args(["--compute", "cpu"])
        .output()
        .unwrap();
    let (r, text) = read_app_report(&out, &report);
    (r, text, shot)
}

#[test]
fn the_fig1_scenario_branches_and_bulk_trains_while_dom_stalls() {
    if !display_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (r, text, shot) = run_app(
        dir.path(),
        &["--scenario", "fig1-switch", "--branch"],
        &["--exit-after-steps", "50", "--timeout", "900"],
    );
    assert_eq!(r["scenario"], "fig1-switch");
    let start = r["start_step"].as_u64().unwrap();
    assert!(start > 1000, "fig1's switch step: {text}");
    assert_eq!(
        r["fork_step"].as_u64(),
        Some(start),
        "forked before any step"
    );
    let b = r["branches"].as_array().unwrap();
    let names: Vec<&str> = b.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["SGD", "Dom-SGD", "Bulk-SGD"]);
    for x in b {
        assert!(x["steps"].as_u64().unwrap() >= 50, "{text}");
        assert!(x["stopped"].is_null(), "{text}");
        assert!(x["dist_fork"].as_f64().unwrap() > 0.0, "{text}");
    }
    let dec = |i: usize| b[i]["rel_decrease"].as_f64().unwrap();
    assert!(
        dec(2) > dec(1),
        "Bulk-SGD {} should beat Dom-SGD {}: {text}",
        dec(2),
        dec(1)
    );
    assert!(r["screenshot_error"].is_null(), "{text}");
    assert_not_blank(&shot);
}

/// A snapshot the user gives: the directory `reproduce fig1 --snapshot-at-switch` writes (here the
/// shipped fig1 snapshot, written out to a temporary directory), opened with `app --snapshot DIR
/// --branch`: the run continues from its step with its settings, and the three branches advance.
#[test]
fn a_snapshot_directory_starts_the_run_and_branches() {
    if !display_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snap_dir = dir.path().join("fig1/snapshot");
    let (mut snap, v) = subspace_lab::app::scenario::find("fig1-switch")
        .unwrap()
        .snapshot()
        .unwrap()
        .unwrap();
    // η 0.02 instead of fig1's 0.01: the run must take it from the snapshot.
    snap.spec.optimizer.lr = 0.02;
    subspace_lab::experiment::snapshot::save_snapshot(&snap_dir, &snap, &v).unwrap();
    let snap_arg = snap_dir.display().to_string();
    let (r, text, shot) = run_app(
        dir.path(),
        &["--snapshot", &snap_arg, "--branch"],
        &["--exit-after-steps", "3", "--timeout", "600"],
    );
    assert_eq!(r["model"], "fc-tanh", "{text}");
    assert_eq!(r["lr"].as_f64(), Some(0.02), "the snapshot's η: {text}");
    assert_eq!(r["start_step"].as_u64(), Some(snap.step as u64), "{text}");
    assert_eq!(r["fork_step"].as_u64(), Some(snap.step as u64), "{text}");
    assert!(
        r["origin"]
            .as_str()
            .is_some_and(|o| o.contains("snapshot") && o.contains("fig1")),
        "{text}"
    );
    let b = r["branches"].as_array().unwrap();
    assert_eq!(b.len(), 3, "{text}");
    for x in b {
        assert!(x["steps"].as_u64().unwrap() >= 3, "{text}");
    }
    assert_not_blank(&shot);
}
