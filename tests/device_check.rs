//! The device check's dry run (`scripts/device-check.sh --dry`, issue 33): the script a lent GPU
//! machine runs, here in its small mode on lavapipe with the test's own binary. Without an adapter
//! the script says so and the test passes, unless `SUBSPACE_LAB_REQUIRE_GPU=1` (CI): then it fails.
//! Needs the data caches (MNIST-5k, CIFAR10-5k, SST2-1k) where the other data tests find them.
//! About a minute on lavapipe (slow).

use std::process::Command;

#[test]
fn device_check_dry_run_writes_its_table_slow() {
    let out = tempfile::tempdir().expect("tempdir");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/device-check.sh");
    let o = Command::new("bash")
        .arg(script)
        .arg("--dry")
        .env("SUBSPACE_LAB_BIN", env!("CARGO_BIN_EXE_subspace-lab"))
        .env("OUT", out.path())
        .output()
        .expect("bash runs the script");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let require = std::env::var("SUBSPACE_LAB_REQUIRE_GPU").is_ok_and(|v| v == "1");
    if out.path().join("skipped.txt").exists() {
        assert!(!require, "SUBSPACE_LAB_REQUIRE_GPU=1 but: {stdout}{stderr}");
        assert!(o.status.success(), "a skip exits 0: {stdout}{stderr}");
        eprintln!("SKIP: {stdout}");
        return;
    }
    assert!(o.status.success(), "{stdout}{stderr}");
    let summary = std::fs::read_to_string(out.path().join("summary.md")).expect("summary.md");
    for model in ["fc-tanh", "cnn-relu", "transformer"] {
        let row = summary
            .lines()
            .find(|l| l.starts_with(&format!("| {model} |")))
            .unwrap_or_else(|| panic!("no row for {model}: {summary}"));
        assert!(!row.contains("failed"), "{row}\n{summary}");
        let json = std::fs::read_to_string(out.path().join(format!("bench-{model}.json")))
            .expect("bench JSON");
        let v: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
        let hvp = v["hvp_ms"].as_f64().expect("hvp_ms");
        let flops = v["hvp_flops"].as_f64().expect("hvp_flops");
        let ratio = v["hvp_vs_limit"].as_f64().expect("hvp_vs_limit");
        assert!(hvp > 0.0 && flops > 0.0 && ratio > 0.0, "{json}");
        assert!(
            v["backend"].as_str().is_some_and(|b| b.starts_with("gpu")),
            "{json}"
        );
    }
    assert!(
        summary.contains("fig1 --quick: skipped (dry run)"),
        "{summary}"
    );
}
