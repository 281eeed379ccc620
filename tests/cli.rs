//! The command line end to end: `spectrum --json` on a reduced case, `init` → `--weights`, and
//! failures that must end in a clear message and a non-zero exit.

mod common;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_subspace-lab"))
}

/// The shared data directory, or None when MNIST-5k cannot be had here (no registry access).
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

#[test]
fn spectrum_json_end_to_end_reduced() {
    if !data_available() {
        return;
    }
    let common = [
        "spectrum",
        "--samples",
        "300",
        "--widths",
        "784,24,16,10",
        "--k",
        "4",
        "--seed",
        "3",
        "--json",
    ];
    let j = run_json(&[&common[..], &["--precision", "f64"]].concat());
    for key in [
        "loss",
        "grad_norm",
        "eigenvalues",
        "residuals",
        "chi_k",
        "k",
        "hvps",
        "seconds",
        "backend",
        "precision",
        "params",
    ] {
        assert!(j.get(key).is_some(), "missing key {key}");
    }
    assert_eq!(j["k"], 4);
    assert_eq!(j["params"], 784 * 24 + 24 + 24 * 16 + 16 + 16 * 10 + 10);
    assert_eq!(j["backend"], "cpu-f64");
    let ev: Vec<f64> = serde_json::from_value(j["eigenvalues"].clone()).unwrap();
    let res: Vec<f64> = serde_json::from_value(j["residuals"].clone()).unwrap();
    assert!(ev.windows(2).all(|w| w[0] >= w[1]) && ev[0] > 0.0);
    assert!(res.iter().all(|&r| r <= 1e-7 * ev[0]));
    let chi = j["chi_k"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&chi));
    // f32 agrees with f64.
    let j32 = run_json(&[&common[..], &["--precision", "f32"]].concat());
    let ev32: Vec<f64> = serde_json::from_value(j32["eigenvalues"].clone()).unwrap();
    for (a, b) in ev32.iter().zip(&ev) {
        assert!((a - b).abs() < 1e-4 * ev[0], "f32 {a} vs f64 {b}");
    }
    assert!((j32["chi_k"].as_f64().unwrap() - chi).abs() < 1e-3);
}

/// `bench --json` on a reduced case reports the chunk it was given (and the CPU's default 1000,
/// capped at n, without one), with sane timings and the solve's HVP count.
#[test]
fn bench_json_reports_its_chunk() {
    if !data_available() {
        return;
    }
    let common = [
        "bench",
        "--backend",
        "cpu",
        "--samples",
        "300",
        "--widths",
        "784,24,16,10",
        "--runs",
        "1",
        "--json",
    ];
    for (extra, chunk) in [(&["--chunk", "70"][..], 70), (&[][..], 300)] {
        let j = run_json(&[&common[..], extra].concat());
        assert_eq!(j["chunk"], chunk, "{j}");
        assert_eq!(j["samples"], 300);
        assert_eq!(j["backend"], "cpu-f32");
        assert!(j["top10_hvps"].as_u64().unwrap() >= 10, "{j}");
        for key in ["grad_ms", "hvp_ms", "top10_ms"] {
            let t = j[key].as_f64().unwrap();
            assert!(t.is_finite() && t > 0.0, "{key}: {j}");
        }
        assert_eq!(j["kernels"][0]["name"], format!("X·W1ᵀ {chunk}×24×784"));
        // One warm Dom-SGD step: timed, with its HVP count; no device, no transfer counts.
        assert!(j["step_ms"].as_f64().unwrap() > 0.0, "{j}");
        assert!(j["step_hvps"].as_f64().unwrap() >= 1.0, "{j}");
        assert_eq!(j["step_k"], 10);
        assert!(j["step_transfers"].is_null(), "{j}");
    }
}

#[test]
fn init_then_spectrum_with_weights() {
    if !data_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w.safetensors");
    let out = bin()
        .args([
            "init",
            "--seed",
            "5",
            "--widths",
            "784,12,10",
            "--dtype",
            "f64",
            "--out",
        ])
        .arg(&w)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ws = w.to_str().unwrap();
    let a = run_json(&[
        "spectrum",
        "--weights",
        ws,
        "--samples",
        "200",
        "--k",
        "3",
        "--json",
    ]);
    let b = run_json(&[
        "spectrum",
        "--seed",
        "5",
        "--widths",
        "784,12,10",
        "--samples",
        "200",
        "--k",
        "3",
        "--json",
    ]);
    assert_eq!(
        a["eigenvalues"], b["eigenvalues"],
        "weights file and seed give the same network"
    );
    assert_eq!(a["loss"], b["loss"]);
}

#[test]
fn bad_inputs_exit_nonzero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not weights").unwrap();
    let check = |cmd: &mut Command, want: &str| {
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "should fail: {want}");
        assert!(err.contains(want), "wanted '{want}' in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    check(
        bin().args(["spectrum", "--weights"]).arg(&bad),
        "bad.safetensors",
    );
    check(
        bin()
            .args(["spectrum", "--weights"])
            .arg(dir.path().join("absent.safetensors")),
        "absent.safetensors",
    );
    check(bin().args(["spectrum", "--loss", "hinge"]), "unknown loss");
    check(
        bin().args(["spectrum", "--precision", "f16"]),
        "unknown precision",
    );
    check(
        bin()
            .args(["init", "--widths", "784,0,10", "--out"])
            .arg(dir.path().join("x")),
        "positive",
    );
    // No source of data at all: npm missing, HTTPS disabled, empty data directory.
    let empty = tempfile::tempdir().unwrap();
    check(
        bin()
            .args(["data", "fetch"])
            .env("SUBSPACE_LAB_DATA", empty.path())
            .env("SUBSPACE_LAB_NPM", "/nonexistent/npm")
            .env("SUBSPACE_LAB_MNIST_URLS", ""),
        "What to do",
    );
    check(
        bin()
            .args(["spectrum", "--samples", "10"])
            .env("SUBSPACE_LAB_DATA", empty.path())
            .env("SUBSPACE_LAB_NPM", "/nonexistent/npm")
            .env("SUBSPACE_LAB_MNIST_URLS", ""),
        "--from-idx",
    );
    assert!(
        !subspace_lab::data::mnist::cache_path(empty.path()).exists(),
        "no cache written on failure"
    );
    check(
        bin()
            .args(["data", "fetch", "--from-idx"])
            .arg(dir.path().join("nowhere")),
        "not a directory",
    );
    if data_available() {
        check(
            bin().args(["spectrum", "--samples", "6000"]),
            "MNIST-5k has 1..=5000",
        );
        check(
            bin().args(["spectrum", "--widths", "100,10"]),
            "takes 100 inputs",
        );
        check(
            bin().args(["spectrum", "--samples", "50", "--k", "0"]),
            "k = 0",
        );
        check(
            bin().args(["spectrum", "--samples", "50", "--tol=-1"]),
            "tol",
        );
    }
}

common::gpu_test!(own spectrum_gpu_agrees_with_cpu);
/// The wgpu backend's "done when": `spectrum --backend gpu --samples 500` (full fc-tanh) agrees
/// with `--backend cpu` — eigenvalues to 1e-3 relative, χ_k to 1e-3.
fn spectrum_gpu_agrees_with_cpu(_g: common::GpuBackend) {
    if !data_available() {
        return;
    }
    let g = run_json(&["spectrum", "--backend", "gpu", "--samples", "500", "--json"]);
    let c = run_json(&["spectrum", "--backend", "cpu", "--samples", "500", "--json"]);
    assert_eq!(g["backend"], "gpu-f32");
    assert!(g["adapter"].as_str().is_some_and(|a| !a.is_empty()));
    assert_eq!(c["backend"], "cpu-f64");
    let eg: Vec<f64> = serde_json::from_value(g["eigenvalues"].clone()).unwrap();
    let ec: Vec<f64> = serde_json::from_value(c["eigenvalues"].clone()).unwrap();
    assert_eq!(eg.len(), 10);
    for (i, (a, b)) in eg.iter().zip(&ec).enumerate() {
        assert!(
            (a - b).abs() <= 1e-3 * ec[0],
            "λ{}: gpu {a} vs cpu {b}",
            i + 1
        );
    }
    let (xg, xc) = (g["chi_k"].as_f64().unwrap(), c["chi_k"].as_f64().unwrap());
    assert!((xg - xc).abs() <= 1e-3, "χ: gpu {xg} vs cpu {xc}");
    // f64 on the GPU is refused with advice.
    let out = bin()
        .args([
            "spectrum",
            "--backend",
            "gpu",
            "--precision",
            "f64",
            "--samples",
            "10",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("computes in f32"));
}

common::gpu_test!(own auto_falls_back_to_cpu_without_a_real_gpu);
/// `auto` never picks a software adapter: with only lavapipe it says so and uses the CPU.
fn auto_falls_back_to_cpu_without_a_real_gpu(g: common::GpuBackend) {
    if !data_available() || !g.is_software() {
        return;
    }
    let out = bin()
        .args([
            "spectrum",
            "--samples",
            "100",
            "--widths",
            "784,8,10",
            "--k",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("software adapter") && err.contains("CPU backend"),
        "{err}"
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["backend"], "cpu-f64");
}

/// `data web-asset`: the verified cache copied for the web page, readable by any server user, and
/// parsing back through the page's own reader.
#[test]
fn data_web_asset_writes_the_page_asset() {
    if !data_available() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("assets");
    let o = bin()
        .args(["data", "web-asset", "--out"])
        .arg(&dest)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = dest.join(subspace_lab::data::mnist::ASSET_NAME);
    let bytes = std::fs::read(&f).unwrap();
    let m = subspace_lab::data::mnist::Mnist5k::from_cache_bytes(&bytes, &f).unwrap();
    assert_eq!(&m.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o044, 0o044, "world-readable: {mode:o}");
    }
    // A truncated asset is refused with a message saying what to do.
    let e = subspace_lab::data::mnist::Mnist5k::from_cache_bytes(&bytes[..1000], &f).unwrap_err();
    assert!(e.to_string().contains("data fetch"), "{e}");
}

fn fails_with(cmd: &mut Command, want: &[&str]) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "should fail ({want:?}): {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    for w in want {
        assert!(err.contains(w), "wanted '{w}' in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Cases modelled on public bug reports (issue 15): each failed on the binary before it.
#[test]
fn option_and_spec_faults_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    // --tol above 1: the same rule as a spec's tol, checked before any data is read.
    fails_with(
        bin().args(["spectrum", "--tol", "1e300", "--samples", "10"]),
        &["--tol = 1e300", "tol < 1"],
    );
    fails_with(
        bin().args(["spectrum", "--tol", "1e-20", "--samples", "10"]),
        &["--tol = 1e-20", "round-off"],
    );
    // A spec whose name escapes the output directory, and duplicate variants.
    let spec = |extra: &str| {
        format!(
            "{extra}\nsteps = 3\n[optimizer]\nname = \"gd\"\nlr = 0.01\n[data]\nsamples = 10\n[model]\nwidths = [784, 4, 10]\n"
        )
    };
    let p = dir.path().join("s.toml");
    std::fs::write(&p, spec("name = \"../../escaped\"")).unwrap();
    fails_with(
        bin().current_dir(dir.path()).args(["run"]).arg(&p),
        &["name = \"../../escaped\"", "no '/'"],
    );
    assert!(!dir.path().join("escaped").exists());
    assert!(!dir.path().join("out").exists(), "nothing written");
    std::fs::write(&p, spec("variants = [\"none\", \"none\"]")).unwrap();
    fails_with(
        bin().current_dir(dir.path()).args(["run"]).arg(&p),
        &["variants", "none appears twice"],
    );
    if !data_available() {
        return;
    }
    // k as large as the parameter count: the memory is estimated before allocating.
    fails_with(
        bin().args([
            "spectrum",
            "--samples",
            "10",
            "--backend",
            "cpu",
            "--k",
            "199210",
        ]),
        &["top-199210", "of memory", "lower --k"],
    );
}

/// A run killed after its checkpoint at step 10 with rows to step 14 (a SIGKILL): a resume that
/// is refused (an edited spec.toml) leaves every file as it was; a resume with another checkpoint
/// cadence is accepted and ends byte-identical to an uninterrupted run.
#[test]
fn resume_after_a_kill_keeps_rows_and_accepts_a_new_checkpoint_cadence() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use subspace_lab::backend::cpu::CpuBackend;
    use subspace_lab::experiment::output::CsvSink;
    use subspace_lab::experiment::run::{self, Checkpoint, Observer, Record, Vectors};
    use subspace_lab::experiment::spec::RunSpec;
    if !data_available() {
        return;
    }
    let text = "name = \"killed\"\nsteps = 20\nswitch = \"after-steps\"\nvariants = [\"none\"]\nsteps_after = 0\nrecord_every = 1\nk = 2\ntop = 2\ncheckpoint_every = 10\n[optimizer]\nname = \"sgd\"\nlr = 0.05\nbatch = 10\n[data]\nsamples = 100\n[model]\nwidths = [784, 8, 10]\n";
    let spec = RunSpec::parse_toml(text).unwrap();
    let root = tempfile::tempdir().unwrap();
    let spec_path = root.path().join("killed.toml");
    std::fs::write(&spec_path, text).unwrap();
    // The uninterrupted run.
    let whole = root.path().join("whole");
    let out = bin()
        .args(["run", "--backend", "cpu", "--out"])
        .arg(&whole)
        .arg(&spec_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The killed one: the same run through the library, dying when it records step 15.
    struct Killer<'a>(CsvSink<'a>);
    impl Observer for Killer<'_> {
        fn record(&mut self, r: &Record) -> subspace_lab::Result<()> {
            if r.step == 15 {
                return Err(subspace_lab::Error::Backend("killed".into()));
            }
            self.0.record(r)
        }
        fn checkpoint(&mut self, c: &Checkpoint, v: &Vectors) -> subspace_lab::Result<()> {
            self.0.checkpoint(c, v)
        }
    }
    let killed = root.path().join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::write(killed.join("spec.toml"), spec.to_toml().unwrap()).unwrap();
    let m = subspace_lab::data::mnist::load_or_fetch(
        &subspace_lab::data::mnist::data_dir().unwrap(),
        &mut |_| {},
    )
    .unwrap()
    .0;
    let data = m
        .dataset(spec.preprocess().parse().unwrap(), spec.data.samples)
        .unwrap();
    let mut p = |_: &str, _: usize, _: usize| {};
    let sink = CsvSink::create(
        &killed,
        2,
        &[],
        false,
        Arc::new(AtomicBool::new(false)),
        &mut p,
    )
    .unwrap();
    let mut obs = Killer(sink);
    assert!(
        run::run(
            CpuBackend::<f32>::new(),
            &spec,
            &data,
            false,
            None,
            &mut obs
        )
        .is_err()
    );
    drop(obs);
    let rows = |d: &std::path::Path| {
        std::fs::read_to_string(d.join("metrics.csv"))
            .unwrap()
            .lines()
            .count()
            - 1
    };
    assert_eq!(
        rows(&killed),
        15,
        "rows 0..=14 were written before the kill"
    );
    // Every file under the run directory (the legs' final weights sit in `weights/`).
    fn walk(d: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let snapshot = |d: &std::path::Path| {
        let mut files = Vec::new();
        walk(d, &mut files);
        files.sort();
        files
    };
    // Refused: spec.toml edited after the start. Every file stays as it was.
    let before = snapshot(&killed);
    let edited = text.replace("lr = 0.05", "lr = 0.5");
    std::fs::write(killed.join("spec.toml"), &edited).unwrap();
    let before_edit = snapshot(&killed);
    let err = fails_with(
        bin()
            .args(["run", "--backend", "cpu", "--resume"])
            .arg(&killed),
        &[
            "spec.toml was edited",
            "optimizer.lr: 0.05 vs 0.5",
            "nothing was run or changed",
        ],
    );
    assert!(!err.contains("different spec"), "{err}");
    assert_eq!(
        snapshot(&killed),
        before_edit,
        "a refused resume changes nothing"
    );
    assert_eq!(rows(&killed), 15);
    // Restored spec.toml, another checkpoint cadence: accepted, and the rows end as the
    // uninterrupted run's.
    std::fs::write(killed.join("spec.toml"), spec.to_toml().unwrap()).unwrap();
    assert_eq!(snapshot(&killed).len(), before.len());
    let out = bin()
        .args([
            "run",
            "--backend",
            "cpu",
            "--checkpoint-every",
            "5",
            "--resume",
        ])
        .arg(&killed)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(killed.join("metrics.csv")).unwrap(),
        std::fs::read(whole.join("metrics.csv")).unwrap()
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(killed.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["resumed_at_step"], 10);
    // Finished: nothing left to resume, and a fresh run does not overwrite it by mistake.
    let before = snapshot(&killed);
    fails_with(
        bin()
            .args(["run", "--backend", "cpu", "--resume"])
            .arg(&killed),
        &["holds a finished run", "nothing to resume"],
    );
    fails_with(
        bin()
            .args(["run", "--backend", "cpu", "--out"])
            .arg(&killed)
            .arg(&spec_path),
        &["already holds", "--overwrite"],
    );
    assert_eq!(snapshot(&killed), before, "refusals change nothing");
    let out = bin()
        .args(["run", "--backend", "cpu", "--overwrite", "--out"])
        .arg(&killed)
        .arg(&spec_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A spec and --resume together: the spec would be ignored, so it is refused.
    let out = bin()
        .args(["run", "--resume"])
        .arg(&killed)
        .arg(&spec_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

/// The all-zero tanh net 784-4-4-10 on the first 200 samples (issue 15's first case): its Hessian
/// has 1.0 ten times, then 0.3211 twice. The default solve (block 1) must find every copy and say
/// it certified them; before, it returned three copies of 1.0 and "converged".
#[test]
fn repeated_eigenvalues_of_an_all_zero_net_are_all_found() {
    use subspace_lab::backend::Activation;
    use subspace_lab::nn::mlp::MlpSpec;
    use subspace_lab::nn::weights::{self, SaveDtype};
    if !data_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("zero.safetensors");
    let spec = MlpSpec::new(vec![784, 4, 4, 10], Activation::Tanh).unwrap();
    weights::save(&w, &spec, &vec![0.0; spec.num_params()], SaveDtype::F64).unwrap();
    let w = w.to_str().unwrap();
    let j = run_json(&[
        "spectrum",
        "--weights",
        w,
        "--samples",
        "200",
        "--backend",
        "cpu",
        "--k",
        "12",
        "--json",
    ]);
    let ev: Vec<f64> = j["eigenvalues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!(ev[..10].iter().all(|&x| (x - 1.0).abs() < 1e-9), "{ev:?}");
    assert!(
        (ev[10] - ev[11]).abs() < 1e-9 && (ev[10] - 0.3211).abs() < 1e-4,
        "{ev:?}"
    );
    assert_eq!(j["converged"], true);
    assert_eq!(j["certified"], true);
    assert!((j["chi_k"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{j}");
}

/// The 4000-record CIFAR-10 file kept beside the checkout, when this machine has it.
fn shared_cifar() -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(subspace_lab::data::cifar10::SHARED_FILE);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is not on this machine", p.display());
        None
    }
}

/// x (f32) and y (i64) of an exported file, with its shape and metadata.
fn read_export(
    path: &std::path::Path,
) -> (
    Vec<usize>,
    Vec<f32>,
    Vec<i64>,
    std::collections::HashMap<String, String>,
) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let x = st.tensor("x").unwrap();
    assert_eq!(x.dtype(), safetensors::Dtype::F32);
    let y = st.tensor("y").unwrap();
    assert_eq!(y.dtype(), safetensors::Dtype::I64);
    let xs = x
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let ys = y
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (x.shape().to_vec(), xs, ys, meta)
}

/// `data fetch --dataset cifar10 --from FILE` caches the records; `data info` lists both caches;
/// `data export` writes x [n, 3, 32, 32] and y [n] with the preprocessing asked for.
#[test]
fn data_fetch_and_export_cifar10() {
    let Some(shared) = shared_cifar() else { return };
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = bin()
            .args(args)
            .env("SUBSPACE_LAB_DATA", data.path())
            .env("SUBSPACE_LAB_CIFAR10_URL", "")
            .env_remove("SUBSPACE_LAB_CIFAR10_FROM")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{args:?}: {err}");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let out = run(&[
        "data",
        "fetch",
        "--dataset",
        "cifar10",
        "--from",
        shared.to_str().unwrap(),
    ]);
    assert!(
        out.contains("CIFAR10-4k (first 4000 of the 5000 the paper uses)"),
        "{out}"
    );
    let cache = subspace_lab::data::cifar10::cache_path(data.path());
    assert!(cache.is_file());
    let info = run(&["data", "info"]);
    assert!(info.contains("mnist5k-v1.bin: absent"), "{info}");
    assert!(
        info.contains("cifar10-5k-v1.bin: CIFAR10-4k") && info.contains("4000 records"),
        "{info}"
    );
    // Scale: x/255 of the records, CHW.
    let f = data.path().join("c.safetensors");
    let out = run(&[
        "data",
        "export",
        "--dataset",
        "cifar10",
        "--samples",
        "20",
        "--preprocess",
        "scale",
        "--out",
        f.to_str().unwrap(),
    ]);
    assert!(out.contains("[20, 3, 32, 32]"), "{out}");
    let (shape, x, y, meta) = read_export(&f);
    assert_eq!(shape, vec![20, 3, 32, 32]);
    assert_eq!(y[..10], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    assert_eq!(y.len(), 20);
    for (got, px) in x[..4].iter().zip([59.0f32, 43.0, 50.0, 68.0]) {
        assert_eq!(*got, ((px as f64) / 255.0) as f32);
    }
    assert_eq!(meta["dataset"], "cifar10");
    assert_eq!(meta["preprocess"], "scale");
    assert_eq!(meta["n"], "20");
    assert!(meta["description"].starts_with("CIFAR10-4k"));
    // Standardize (the default) over all 4000: each feature has mean 0 and std 1.
    let out = run(&[
        "data",
        "export",
        "--dataset",
        "cifar10",
        "--out",
        f.to_str().unwrap(),
    ]);
    assert!(out.contains("first 4000 samples, standardize"), "{out}");
    let (shape, x, _, meta) = read_export(&f);
    assert_eq!(shape, vec![4000, 3, 32, 32]);
    assert!(meta["statistics"].contains("4000 records"));
    for j in [0usize, 1500, 3071] {
        let col: Vec<f64> = (0..4000).map(|r| x[r * 3072 + j] as f64).collect();
        let mean = col.iter().sum::<f64>() / 4000.0;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4000.0;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-5,
            "{j}: {mean} {var}"
        );
    }
}

#[test]
fn data_export_mnist() {
    if !data_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.safetensors");
    let o = bin()
        .args([
            "data",
            "export",
            "--dataset",
            "mnist",
            "--samples",
            "30",
            "--out",
        ])
        .arg(&f)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (shape, x, y, meta) = read_export(&f);
    assert_eq!(shape, vec![30, 784]);
    assert_eq!(y[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(meta["dataset"], "mnist");
    assert_eq!(meta["preprocess"], "normalize");
    // The corner pixel is 0: normalised, (0 − 0.1307)/0.3081.
    assert!((x[0] as f64 - (-0.1307 / 0.3081)).abs() < 1e-6);
}

#[test]
fn data_export_and_fetch_faults_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    // No download, and no data file named by the environment unless a case sets one.
    let bin = || {
        let mut c = bin();
        c.env("SUBSPACE_LAB_CIFAR10_URL", "")
            .env_remove("SUBSPACE_LAB_CIFAR10_FROM");
        c
    };
    let check = |cmd: &mut Command, want: &[&str]| {
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "should fail: {want:?}");
        for w in want {
            assert!(err.contains(w), "wanted '{w}' in: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    };
    let out = dir.path().join("x.safetensors");
    check(
        bin()
            .args(["data", "export", "--dataset", "svhn", "--out"])
            .arg(&out),
        &["svhn", "mnist", "cifar10"],
    );
    check(
        bin()
            .args([
                "data",
                "export",
                "--dataset",
                "cifar10",
                "--samples",
                "0",
                "--out",
            ])
            .arg(&out),
        &["--samples 0"],
    );
    check(
        bin()
            .args([
                "data",
                "export",
                "--dataset",
                "mnist",
                "--samples",
                "5001",
                "--out",
            ])
            .arg(&out),
        &["--samples 5001", "1..=5000"],
    );
    check(
        bin()
            .args([
                "data",
                "export",
                "--dataset",
                "cifar10",
                "--preprocess",
                "normalize",
                "--out",
            ])
            .arg(&out),
        &["standardize or scale"],
    );
    // Without a cache, a file or a download: what to do, and no cache written.
    check(
        bin()
            .args(["data", "fetch", "--dataset", "cifar10"])
            .env("SUBSPACE_LAB_DATA", empty.path()),
        &["What to do", "cifar-10-binary.tar.gz", "--from"],
    );
    check(
        bin()
            .args(["data", "fetch", "--dataset", "cifar10", "--from"])
            .arg(dir.path().join("absent.bin"))
            .env("SUBSPACE_LAB_DATA", empty.path()),
        &["absent.bin"],
    );
    check(
        bin()
            .args(["data", "fetch", "--dataset", "cifar10", "--from-idx"])
            .arg(dir.path())
            .env("SUBSPACE_LAB_DATA", empty.path()),
        &["--from-idx is for MNIST"],
    );
    assert!(!subspace_lab::data::cifar10::cache_path(empty.path()).exists());
    let Some(shared) = shared_cifar() else { return };
    // $SUBSPACE_LAB_CIFAR10_FROM is used when set, and its failure is an error, not a fallback.
    check(
        bin()
            .args(["data", "export", "--dataset", "cifar10", "--out"])
            .arg(&out)
            .env("SUBSPACE_LAB_DATA", empty.path())
            .env("SUBSPACE_LAB_CIFAR10_FROM", dir.path().join("named.bin")),
        &["named.bin"],
    );
    assert!(!subspace_lab::data::cifar10::cache_path(empty.path()).exists());
    // Beyond the records loaded, and an --out that cannot be written (under a regular file).
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    for (samples, target, want) in [
        (
            "4001",
            out.clone(),
            vec!["--samples 4001", "CIFAR10-4k", "1..=4000"],
        ),
        ("6000", out.clone(), vec!["--samples 6000", "at most 5000"]),
        (
            "5",
            blocker.join("x.safetensors"),
            vec!["cannot write --out", "file"],
        ),
        ("5", dir.path().to_path_buf(), vec!["is a directory"]),
    ] {
        check(
            bin()
                .args([
                    "data",
                    "export",
                    "--dataset",
                    "cifar10",
                    "--samples",
                    samples,
                    "--out",
                ])
                .arg(&target)
                .env("SUBSPACE_LAB_DATA", empty.path())
                .env("SUBSPACE_LAB_CIFAR10_FROM", &shared),
            &want,
        );
    }
    // SUBSPACE_LAB_CIFAR10_FROM filled the cache on the way.
    assert!(subspace_lab::data::cifar10::cache_path(empty.path()).is_file());
}

#[test]
fn cnn_relu_from_the_command_line() {
    let Some(shared) = shared_cifar() else { return };
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        bin()
            .args(args)
            .env("SUBSPACE_LAB_DATA", data.path())
            .env("SUBSPACE_LAB_CIFAR10_URL", "")
            .env("SUBSPACE_LAB_CIFAR10_FROM", &shared)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    let w = data.path().join("cnn.safetensors");
    let o = run(&[
        "init",
        "--model",
        "cnn-relu",
        "--seed",
        "1",
        "--out",
        w.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("30634 parameters"));
    // The weights file decides the model; the data default to CIFAR-10.
    let o = run(&[
        "spectrum",
        "--weights",
        w.to_str().unwrap(),
        "--samples",
        "8",
        "--k",
        "2",
        "--tol",
        "1e-5",
        "--backend",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["params"], 30634);
    assert_eq!(rep["samples"], 8);
    assert!(rep["model"].as_str().unwrap().starts_with("cnn-relu"));
    let ev = rep["eigenvalues"].as_array().unwrap();
    assert!(ev.len() == 2 && ev[0].as_f64().unwrap() >= ev[1].as_f64().unwrap());
    // A model and data that do not fit are refused with the pairing named.
    let o = run(&[
        "spectrum",
        "--model",
        "cnn-relu",
        "--dataset",
        "mnist",
        "--samples",
        "8",
        "--backend",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("cnn-relu with --dataset cifar10"),
        "{err}"
    );
    let o = run(&[
        "spectrum",
        "--model",
        "cnn-relu",
        "--widths",
        "3072,10",
        "--backend",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("drop --widths"),
        "{err}"
    );
}

fn shared_sst2() -> Option<std::path::PathBuf> {
    let p = subspace_lab::data::sst2::local_candidates()
        .into_iter()
        .next();
    if p.is_none() {
        eprintln!(
            "SKIP: no shared/{} here",
            subspace_lab::data::sst2::SHARED_FILE
        );
    }
    p
}

/// The binary on `args` with the data directory `data` and no network source for SST-2.
fn sst2_cli(data: &std::path::Path, args: &[&str]) -> Command {
    let mut c = bin();
    c.args(args)
        .env("SUBSPACE_LAB_DATA", data)
        .env("SUBSPACE_LAB_SST2_URL", "")
        .env_remove("SUBSPACE_LAB_SST2_FROM")
        .env("RUST_BACKTRACE", "0");
    c
}

/// [`sst2_cli`], which must succeed: its stdout.
fn sst2_ok(data: &std::path::Path, args: &[&str]) -> String {
    let o = sst2_cli(data, args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{args:?}: {err}");
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// SST2-1k: `data fetch --dataset sst2 --from FILE` verifies and caches the 1000 rows, `data info`
/// lists the cache, `data export` writes the token ids, a mask and the vocabulary; a transformer
/// saved by `init` then loads with `spectrum` on the same data; faults are clear.
#[test]
fn sst2_fetch_export_and_transformer_end_to_end() {
    let Some(shared) = shared_sst2() else { return };
    let data = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| sst2_cli(data.path(), args);
    let run = |args: &[&str]| sst2_ok(data.path(), args);
    // A file that is not SST-2 is named with what is wrong, and the cache stays absent.
    let bad = data.path().join("bad.tsv");
    std::fs::write(&bad, "sentence\tlabel\ngood movie \t2\n").unwrap();
    let err = fails_with(
        &mut cmd(&[
            "data",
            "fetch",
            "--dataset",
            "sst2",
            "--from",
            bad.to_str().unwrap(),
        ]),
        &["bad.tsv", "line 2", "not 0 or 1"],
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!subspace_lab::data::sst2::cache_path(data.path()).exists());
    let out = run(&[
        "data",
        "fetch",
        "--dataset",
        "sst2",
        "--from",
        shared.to_str().unwrap(),
    ]);
    assert!(
        out.contains("1000 sentences verified") && out.contains("2970 ids"),
        "{out}"
    );
    let info = run(&["data", "info"]);
    assert!(info.contains("SST2-1k, checksum verified"), "{info}");
    let f = data.path().join("s.safetensors");
    let out = run(&[
        "data",
        "export",
        "--dataset",
        "sst2",
        "--samples",
        "30",
        "--out",
        f.to_str().unwrap(),
    ]);
    assert!(out.contains("[30, 51]"), "{out}");
    let bytes = std::fs::read(&f).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let vocab: Vec<String> = serde_json::from_str(&meta["vocab"]).unwrap();
    assert_eq!(vocab.len(), 2970);
    let f32s = |n: &str| -> Vec<f32> {
        st.tensor(n)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let (x, mask) = (f32s("x"), f32s("mask"));
    // Row 0: "hide new secretions from the parental units" — 7 words, then padding.
    let words: Vec<&str> = x[..7].iter().map(|&i| vocab[i as usize].as_str()).collect();
    assert_eq!(
        words,
        [
            "hide",
            "new",
            "secretions",
            "from",
            "the",
            "parental",
            "units"
        ]
    );
    assert_eq!(&mask[..8], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    // init → spectrum on 20 sentences, f64.
    let w = data.path().join("t.safetensors");
    run(&[
        "init",
        "--model",
        "transformer",
        "--seed",
        "1",
        "--dtype",
        "f64",
        "--out",
        w.to_str().unwrap(),
    ]);
    let v = weights_vocab(&w);
    assert_eq!(v, vocab, "init stores SST2-1k's vocabulary");
    let out = run(&[
        "spectrum",
        "--weights",
        w.to_str().unwrap(),
        "--samples",
        "20",
        "--k",
        "2",
        "--backend",
        "cpu",
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(
        j["loss"].as_f64().unwrap(),
        0.5,
        "a zero head gives ½ exactly"
    );
    assert_eq!(j["params"].as_u64().unwrap(), 243906);
    assert!(j["model"].as_str().unwrap().starts_with("transformer"));
    assert!(j["eigenvalues"][0].as_f64().unwrap() > 0.0);
    // Weights whose vocabulary is not SST2-1k's: refused, naming the first differing id.
    let (spec, theta) = subspace_lab::nn::weights::load(&w).unwrap();
    let mut swapped = vocab.clone();
    swapped.swap(100, 101);
    let bad_w = data.path().join("other-vocab.safetensors");
    subspace_lab::nn::weights::save_with(
        &bad_w,
        &spec,
        &theta,
        subspace_lab::nn::weights::SaveDtype::F32,
        &[("vocab".into(), serde_json::to_string(&swapped).unwrap())],
    )
    .unwrap();
    fails_with(
        &mut cmd(&[
            "spectrum",
            "--weights",
            bad_w.to_str().unwrap(),
            "--samples",
            "5",
        ]),
        &["other-vocab.safetensors", "vocabulary differs", "id 100"],
    );
    // A Transformer on MNIST, and --mask on another model, are refused with what to do.
    fails_with(
        &mut cmd(&[
            "spectrum",
            "--model",
            "transformer",
            "--dataset",
            "mnist",
            "--samples",
            "5",
        ]),
        &["transformer", "MNIST-5k"],
    );
    fails_with(
        &mut cmd(&["spectrum", "--model", "fc-tanh", "--mask", "false"]),
        &["--mask applies to --model transformer only"],
    );
}

fn weights_vocab(p: &std::path::Path) -> Vec<String> {
    subspace_lab::nn::weights::vocab_of(p).unwrap().unwrap()
}

/// The app's scenarios from the command line, without a window: the list names each with where
/// its θ comes from; an unknown scenario and a snapshot of a preset without a single switch are
/// refused with what to use instead.
#[test]
fn scenarios_are_listed_and_bad_ones_refused() {
    let out = bin().args(["app", "--list-scenarios"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fig1-switch") && text.contains("snapshot at step 2322"),
        "{text}"
    );
    assert!(text.contains("gd-vs-sgd") && text.contains("θ₀"), "{text}");
    fails_with(
        bin().args(["app", "--scenario", "fig2-switch"]),
        &["unknown scenario 'fig2-switch'", "fig1-switch"],
    );
    fails_with(
        bin().args(["reproduce", "table2", "--snapshot-at-switch", "--quick"]),
        &["--snapshot-at-switch", "table2", "single-run presets"],
    );
    assert!(text.contains("gd-vs-sgd-transformer"), "{text}");
    // A snapshot directory that is not one is refused before any window opens, naming it.
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        bin()
            .arg("app")
            .arg("--snapshot")
            .arg(dir.path().join("nowhere")),
        &["--snapshot", "nowhere", "--snapshot-at-switch"],
    );
    // A snapshot of a network the app does not run (fc-relu) is refused, naming both.
    let (mut snap, v) = subspace_lab::app::scenario::find("fig1-switch")
        .unwrap()
        .snapshot()
        .unwrap()
        .unwrap();
    snap.spec.model.activation = Some(subspace_lab::backend::Activation::Relu);
    subspace_lab::experiment::snapshot::save_snapshot(dir.path(), &snap, &v).unwrap();
    fails_with(
        bin().arg("app").arg("--snapshot").arg(dir.path()),
        &["fc-relu", "the app runs", "fc-tanh 784-200-200-10"],
    );
    // The new scenarios are listed; `reproduce --samples` is checked before anything runs.
    assert!(
        text.contains("fig1-switch-cnn") && text.contains("fig1-switch-transformer"),
        "{text}"
    );
    fails_with(
        bin().args(["reproduce", "fig1-cnn", "--samples", "0"]),
        &["--samples 0", "fig1-cnn", "data.samples"],
    );
    fails_with(
        bin().args(["reproduce", "fig1", "--samples", "20", "--quick"]),
        &["--samples 20", "fig1"],
    );
    fails_with(
        bin().args(["reproduce", "fig6-7", "--samples", "100"]),
        &["--samples", "fig6-7", "toy"],
    );
    let out = bin()
        .args([
            "reproduce",
            "fig1-transformer",
            "--samples",
            "300",
            "--print-spec",
        ])
        .output()
        .unwrap();
    let spec = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && spec.contains("samples = 300"),
        "{spec}"
    );
    // A usage error (clap's status 2): --stop-at-switch needs --snapshot-at-switch.
    let out = bin()
        .args(["reproduce", "fig1", "--stop-at-switch"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--snapshot-at-switch"),
        "{err}"
    );
}

/// `reproduce --samples N` with `--stop-at-switch` (how the Transformer's and the CNN's scenario
/// snapshots are made, at the scale of a test): the run on 60 sentences stops at its switch, and
/// every message that says how to go on repeats `--samples 60`; `verdict` judges the stopped run
/// as that preset's; a `--resume` without `--samples` is refused, naming the difference, and
/// changes nothing.
#[test]
fn a_preset_on_fewer_samples_stops_is_judged_and_resumes_with_them() {
    let Some(shared) = shared_sst2() else { return };
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| sst2_cli(data.path(), args);
    let run = |args: &[&str]| sst2_ok(data.path(), args);
    let from = shared.to_str().unwrap();
    run(&["data", "fetch", "--dataset", "sst2", "--from", from]);
    let o = out.path().to_str().unwrap();
    let text = run(&[
        "reproduce",
        "fig1-transformer",
        "--quick",
        "--samples",
        "60",
        "--snapshot-at-switch",
        "--stop-at-switch",
        "--backend",
        "cpu",
        "--out",
        o,
    ]);
    let again = format!("reproduce fig1-transformer --quick --samples 60 --resume --out {o}");
    assert!(text.contains(&again), "{text}");
    let dir = out.path().join("fig1-transformer");
    let spec = std::fs::read_to_string(dir.join("spec.toml")).unwrap();
    assert!(spec.contains("samples = 60"), "{spec}");
    let v = run(&["verdict", dir.to_str().unwrap()]);
    assert!(v.contains("stopped at step") && v.contains(&again), "{v}");
    let before = std::fs::read(dir.join("checkpoint.json")).unwrap();
    fails_with(
        &mut cmd(&[
            "reproduce",
            "fig1-transformer",
            "--quick",
            "--resume",
            "--backend",
            "cpu",
            "--out",
            o,
        ]),
        &["--samples", "data.samples"],
    );
    assert_eq!(std::fs::read(dir.join("checkpoint.json")).unwrap(), before);
}

/// Issue 31 case 7: the files the app's test hook promises are checked before anything starts
/// (a report or screenshot in a missing directory, or a directory in a file's place, is refused
/// at once, without a window, and nothing is left behind); a writable place is left as it was.
#[test]
fn app_output_paths_are_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("report.json");
    let shot = dir.path().join("shot.png");
    fails_with(
        bin()
            .args(["app", "--exit-after-steps", "1", "--report"])
            .arg(&missing)
            .arg("--screenshot")
            .arg(&shot),
        &["--report", "no-such-dir", "nothing was run"],
    );
    assert!(!shot.exists(), "the check leaves no file behind");
    fails_with(
        bin()
            .args(["app", "--exit-after-steps", "1", "--screenshot"])
            .arg(dir.path())
            .arg("--report")
            .arg(dir.path().join("r.json")),
        &["--screenshot", "is a directory", "nothing was run"],
    );
    assert!(!dir.path().join("r.json").exists());
    // The test hook's variables get the same check.
    fails_with(
        bin()
            .arg("app")
            .env("SUBSPACE_LAB_APP_EXIT_AFTER", "1")
            .env("SUBSPACE_LAB_APP_REPORT", dir.path().join("r.json"))
            .env("SUBSPACE_LAB_APP_SCREENSHOT", &missing),
        &["--screenshot", "no-such-dir", "nothing was run"],
    );
}

/// Issue 31 at the command line: a Transformer file without metadata (PyTorch's plain
/// `save_file(model.state_dict())`) is announced with every setting assumed, on the network line
/// and in the JSON, and `--heads` sets what the file cannot say (case 2); `spectrum`'s k defaults
/// to the data set's number of classes, 2 for SST-2, as the paper's k (case 12); λ_min is reported
/// with its own HVP count (case 13; its dominance warning is tested in tests/announce.rs and
/// `lambda_min_of_an_indefinite_operator` below).
#[test]
fn spectrum_announces_assumptions_takes_the_papers_k_and_reports_lambda_min() {
    use safetensors::tensor::TensorView;
    let Some(shared) = shared_sst2() else { return };
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| sst2_ok(data.path(), args);
    run(&[
        "data",
        "fetch",
        "--dataset",
        "sst2",
        "--from",
        shared.to_str().unwrap(),
    ]);
    // The paper's Transformer with 4 heads, saved without metadata.
    let mut t = subspace_lab::nn::transformer::TransformerSpec::sst2();
    t.heads = 4;
    let spec: subspace_lab::nn::model::ModelSpec = t.into();
    let theta = spec.init(5);
    let w = data.path().join("plain.safetensors");
    let bytes = subspace_lab::nn::weights::serialize(
        &w,
        &spec,
        &theta,
        subspace_lab::nn::weights::SaveDtype::F64,
    )
    .unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, TensorView)> = st.tensors().into_iter().collect();
    std::fs::write(&w, safetensors::serialize(views, None).unwrap()).unwrap();
    let w = w.to_str().unwrap();
    let base = [
        "spectrum",
        "--weights",
        w,
        "--samples",
        "20",
        "--backend",
        "cpu",
    ];
    let text = run(&base);
    assert!(
        text.contains("assumed (the file does not say):") && text.contains("heads = 8 (--heads)"),
        "{text}"
    );
    assert!(
        text.contains("χ_2(∇L)") && text.contains("λ_min "),
        "{text}"
    );
    let json = |extra: &[&str]| -> serde_json::Value {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        serde_json::from_str(&run(&args)).unwrap()
    };
    let assumed = json(&["--json"]);
    assert_eq!(assumed["k"], 2, "{assumed}");
    assert_eq!(assumed["eigenvalues"].as_array().unwrap().len(), 2);
    let keys: Vec<&str> = assumed["assumed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"heads"), "{assumed}");
    let lmin = assumed["lambda_min"].as_f64().unwrap();
    assert!(lmin <= assumed["eigenvalues"][1].as_f64().unwrap());
    assert!(assumed["lambda_min_hvps"].as_u64().unwrap() > 0);
    // --heads 4 builds the network that was saved: no longer assumed, and another Hessian (8
    // heads of 8 and 4 heads of 16 attend differently; the loss is the same 0.5 at the zero head).
    let set = json(&["--json", "--heads", "4", "--k", "3", "--no-lambda-min"]);
    assert_eq!(set["k"], 3, "{set}");
    assert!(set["lambda_min"].is_null(), "{set}");
    assert!(
        !set["assumed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "heads"),
        "{set}"
    );
    assert_ne!(set["eigenvalues"][0], assumed["eigenvalues"][0]);
    // Options that cannot work are refused, naming what to do.
    let mut c = sst2_cli(
        data.path(),
        &["spectrum", "--heads", "4", "--samples", "20"],
    );
    fails_with(&mut c, &["--heads applies to --model transformer only"]);
    let mut c = sst2_cli(
        data.path(),
        &["spectrum", "--model", "transformer", "--heads", "5"],
    );
    fails_with(&mut c, &["--heads 5", "heads of equal size"]);
    let mut c = sst2_cli(
        data.path(),
        &["spectrum", "--model", "transformer", "--ln-eps", "1e-5"],
    );
    fails_with(&mut c, &["--ln-eps 0.00001", "ε = 0.000001 only"]);
}

/// λ_min by a top-1 solve on −A (`jobs::lambda_min`) on a dense indefinite operator, and the
/// warning when it dominates λ_k in magnitude (issue 31 case 13).
#[test]
fn lambda_min_of_an_indefinite_operator() {
    use subspace_lab::backend::cpu::CpuBackend;
    use subspace_lab::hessian::DenseOperator;
    let n = 12;
    let diag: Vec<f64> = (0..n).map(|i| 9.0 - 1.5 * i as f64).collect(); // 9 … −7.5
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        a[i * n + i] = diag[i];
    }
    let be = CpuBackend::<f64>::new();
    let mut op = DenseOperator::new(be.clone(), n, &a).unwrap();
    let (l, converged, hvps) = subspace_lab::jobs::lambda_min(&be, &mut op, 1e-10, 1).unwrap();
    assert!(converged && hvps > 0);
    assert!((l + 7.5).abs() < 1e-8, "{l}");
    let w = subspace_lab::hessian::caveats::negative_dominance(&[9.0, 7.5, 6.0], l).unwrap();
    assert!(w.contains("λ_min = -7.500000"), "{w}");
    assert!(subspace_lab::hessian::caveats::negative_dominance(&[9.0, 7.5], l).is_none());
}
