//! The desktop app under a display (Xvfb with lavapipe in CI): it starts, both panels advance, and
//! its own screenshot is not blank. Skips without a display unless SUBSPACE_LAB_REQUIRE_DISPLAY is
//! set (CI sets it and starts Xvfb).

mod common;
use common::{assert_not_blank, display_or_skip, read_app_report};
use std::process::Command;

#[test]
fn desktop_app_runs_both_panels_and_draws() {
    if !display_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let shot = dir.path().join("shot.png");
    let out = Command::new(env!("CARGO_BIN_EXE_subspace-lab"))
        .env("SUBSPACE_LAB_APP_EXIT_AFTER", "10")
        .env("SUBSPACE_LAB_APP_MIN_STEPS", "3")
        .env("SUBSPACE_LAB_APP_TIMEOUT", "240")
        .env("SUBSPACE_LAB_APP_REPORT", &report)
        .env("SUBSPACE_LAB_APP_SCREENSHOT", &shot)
        // The worker computes on the CPU even where a GPU exists: the test is about the app.
        .env("SUBSPACE_LAB_APP_BACKEND", "cpu")
        .output()
        .unwrap();
    let (r, text) = read_app_report(&out, &report);
    assert!(r["toy_steps"].as_u64().unwrap() > 100, "{text}");
    assert!(r["steps"].as_u64().unwrap() >= 3, "{text}");
    assert!(r["screenshot_error"].is_null(), "{text}");
    assert_not_blank(&shot);
}
