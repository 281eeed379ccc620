//! Fuzzing every parser of user input on stable Rust (no nightly, so no cargo-fuzz): seeded
//! mutations of valid inputs — bit flips, byte edits, inserts, deletes, duplicated and spliced
//! ranges, interesting integers (little and big endian) and, for the text formats, interesting
//! number tokens and duplicated or dropped lines. For every input: no panic (caught and the input
//! saved), no abort, and no single allocation above the target's stated bound (a counting global
//! allocator; a request above 1 GiB is refused, which aborts and names the target).
//!
//! Targets: IDX (and gzip), safetensors weights, TOML run specs, checkpoint JSON + tensors,
//! `metrics.csv` read-back (runs and the toy), the app's URL hash and its saved native settings
//! (RON, as eframe stores them).
//!
//! The short run is part of `cargo test` (100,000 inputs per target, about 2 s in all). The long run:
//! `SUBSPACE_LAB_FUZZ_ITERS=1000000 cargo test --release --test fuzz -- --nocapture` (each target
//! prints its inputs, errors, largest allocation and seconds). `SUBSPACE_LAB_FUZZ_SEED` changes
//! the stream; `SUBSPACE_LAB_FUZZ_TRACE=1` prints every input's target and index before parsing
//! it (to find the one that aborted).

mod common;
use common::*;
use rand::{RngExt, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::Path;
use subspace_lab::app::settings::Settings;
use subspace_lab::backend::Activation;
use subspace_lab::experiment::output;
use subspace_lab::experiment::reproduce;
use subspace_lab::experiment::run::{self, Checkpoint, Observer, Record, Vectors};
use subspace_lab::experiment::spec::{OptimizerSpec, Projection, RunSpec};
use subspace_lab::nn::mlp::MlpSpec;
use subspace_lab::nn::weights::{self, SaveDtype};

/// Allocations above this are refused (the process aborts with a message naming the cause).
const HARD_LIMIT: usize = 1 << 30;

thread_local! {
    /// Largest single allocation (bytes) since the last reset, on this thread.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

fn note(size: usize) -> bool {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    if size > HARD_LIMIT {
        let _ = std::io::stderr().write_all(
            b"fuzz: an input asked for more than 1 GiB in one allocation; rerun with SUBSPACE_LAB_FUZZ_TRACE=1 to see which\n",
        );
        return false;
    }
    true
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn iterations() -> usize {
    std::env::var("SUBSPACE_LAB_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

const INTERESTING_INTS: [u64; 14] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

const INTERESTING_TOKENS: [&str; 20] = [
    "0",
    "-1",
    "-0",
    "1e308",
    "1e400",
    "-1e308",
    "1e-320",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "1048577",
    "199210",
    "0.5",
    "\"\"",
    "[]",
];

/// One mutated input from the seeds.
fn mutate(rng: &mut rand_chacha::ChaCha8Rng, seeds: &[Vec<u8>], text: bool) -> Vec<u8> {
    let mut x = seeds[rng.random_range(0..seeds.len())].clone();
    let n = 1 + rng.random_range(0..6usize);
    for _ in 0..n {
        let len = x.len();
        let pos = if len == 0 {
            0
        } else {
            rng.random_range(0..len)
        };
        match rng.random_range(0..12u32) {
            0 if len > 0 => x[pos] ^= 1 << rng.random_range(0..8u32),
            1 if len > 0 => x[pos] = rng.random(),
            2 => {
                let k = rng.random_range(1..9usize);
                for _ in 0..k {
                    x.insert(pos.min(x.len()), rng.random());
                }
            }
            3 if len > 0 => {
                let end = (pos + rng.random_range(1..65usize)).min(len);
                x.drain(pos..end);
            }
            4 if len > 0 => {
                let end = (pos + rng.random_range(1..65usize)).min(len);
                let chunk = x[pos..end].to_vec();
                let at = rng.random_range(0..=x.len());
                x.splice(at..at, chunk);
            }
            5 => x.truncate(rng.random_range(0..=len)),
            6 => {
                // Splice a piece of another seed in.
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let b = (a + rng.random_range(1..129usize)).min(other.len());
                    let at = pos.min(x.len());
                    x.splice(at..at, other[a..b].iter().copied());
                }
            }
            7 | 8 if len >= 8 => {
                let v = INTERESTING_INTS[rng.random_range(0..INTERESTING_INTS.len())];
                let at = rng.random_range(0..=len - 8);
                let bytes = match rng.random_range(0..4u32) {
                    0 => v.to_le_bytes().to_vec(),
                    1 => v.to_be_bytes().to_vec(),
                    2 => (v as u32).to_le_bytes().to_vec(),
                    _ => (v as u32).to_be_bytes().to_vec(),
                };
                x[at..at + bytes.len()].copy_from_slice(&bytes);
            }
            9 | 10 if text => {
                // Replace a number (or insert a token) with an interesting token.
                let tok = INTERESTING_TOKENS[rng.random_range(0..INTERESTING_TOKENS.len())];
                let start = (pos..len).find(|&i| x[i].is_ascii_digit());
                match start {
                    Some(s) => {
                        let mut e = s;
                        while e < len && (x[e].is_ascii_digit() || x[e] == b'.' || x[e] == b'e') {
                            e += 1;
                        }
                        x.splice(s..e, tok.bytes());
                    }
                    None => {
                        x.splice(pos..pos, tok.bytes());
                    }
                }
            }
            11 if text => {
                // Duplicate or drop a line.
                let s = String::from_utf8_lossy(&x).to_string();
                let mut lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let i = rng.random_range(0..lines.len());
                    if rng.random() {
                        lines.insert(i, lines[i]);
                    } else {
                        lines.remove(i);
                    }
                }
                x = lines.join("\n").into_bytes();
            }
            _ => {}
        }
    }
    x
}

/// Run `parse` on `iterations()` mutations of `seeds`: no panic, and no single allocation above
/// `bound` bytes. `parse` returns whether the input was accepted.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, text: bool, bound: usize, parse: impl Fn(&[u8]) -> bool) {
    // The seeds themselves must be accepted (else the target is not exercised).
    for (i, s) in seeds.iter().enumerate() {
        assert!(parse(s), "{name}: seed {i} is rejected");
    }
    let seed: u64 = std::env::var("SUBSPACE_LAB_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let trace = std::env::var_os("SUBSPACE_LAB_FUZZ_TRACE").is_some();
    // Each target its own stream: FNV-1a of its name, mixed with the seed.
    let fnv = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ fnv);
    let n = iterations();
    let start = std::time::Instant::now();
    let (mut accepted, mut largest) = (0usize, 0usize);
    for i in 0..n {
        let input = mutate(&mut rng, &seeds, text);
        if trace {
            eprintln!("fuzz {name} input {i}");
        }
        LARGEST.with(|l| l.set(0));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&input)));
        let big = LARGEST.with(|l| l.get());
        largest = largest.max(big);
        match r {
            Ok(ok) => accepted += ok as usize,
            Err(_) => {
                let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
                std::fs::create_dir_all(&dir).unwrap();
                let f = dir.join(format!("{name}-{seed}-{i}.bin"));
                std::fs::write(&f, &input).unwrap();
                panic!("fuzz {name}: input {i} panicked (saved to {})", f.display());
            }
        }
        assert!(
            big <= bound,
            "fuzz {name}: input {i} allocated {big} bytes at once (bound {bound})"
        );
    }
    eprintln!(
        "fuzz {name}: {n} inputs, {accepted} accepted, {} refused with an error, largest single allocation {largest} bytes (bound {bound}), {:.1} s",
        n - accepted,
        start.elapsed().as_secs_f64()
    );
}

const MIB: usize = 1 << 20;

#[test]
fn fuzz_idx_and_gzip() {
    use subspace_lab::data::idx::{encode_idx, inflate_maybe_gz, parse_idx};
    let images = encode_idx(&[3, 4, 4], &(0..48).map(|i| i as u8).collect::<Vec<_>>());
    let labels = encode_idx(&[3], &[7, 2, 1]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&images).unwrap();
    let gz = gz.finish().unwrap();
    let path = Path::new("fuzz.idx");
    fuzz("idx", vec![images, labels, gz], false, 4 * MIB, |b| {
        inflate_maybe_gz(b.to_vec(), path)
            .and_then(|x| parse_idx(&x, path))
            .is_ok()
    });
}

#[test]
fn fuzz_safetensors_weights() {
    let spec = MlpSpec::new(vec![6, 5, 3], Activation::Relu).unwrap();
    let theta = spec.init(3);
    let path = Path::new("fuzz.safetensors");
    let seeds = vec![
        weights::serialize(path, &spec, &theta, SaveDtype::F32).unwrap(),
        weights::serialize(path, &spec, &theta, SaveDtype::F64).unwrap(),
    ];
    let expect = weights::Expect {
        widths: Some(vec![6, 5, 3]),
        activation: Some(Activation::Relu),
        loss: None,
        mask: None,
    };
    fuzz("safetensors", seeds, false, 4 * MIB, |b| {
        let a = weights::load_bytes(b, path).is_ok();
        let _ = weights::load_bytes_expecting(b, path, &expect);
        a
    });
}

#[test]
fn fuzz_toml_specs() {
    let mut seeds: Vec<Vec<u8>> = ["fig1", "fig10", "fig4"]
        .iter()
        .map(|p| reproduce::print_spec(p, true, None).unwrap().into_bytes())
        .collect();
    seeds.push(include_bytes!("../examples/quick-dom-bulk.toml").to_vec());
    seeds.push(b"steps = 10\n[optimizer]\nname = \"gd\"\nlr = 0.1\n".to_vec());
    fuzz("spec-toml", seeds, true, MIB, |b| {
        let text = String::from_utf8_lossy(b);
        match RunSpec::parse_toml(&text) {
            Ok(s) => {
                let ok = s.validate(784, 10, 5000).is_ok();
                if ok {
                    // What is accepted round-trips.
                    let back = RunSpec::parse_toml(&s.to_toml().unwrap()).unwrap();
                    assert!(back.differences(&s).is_empty());
                }
                ok
            }
            Err(_) => false,
        }
    });
}

/// A tiny run's checkpoint (JSON + tensors) and rows, as written to disk (run once, shared by
/// the targets that need them).
fn tiny_run_files() -> (String, Vec<u8>, String) {
    static FILES: std::sync::OnceLock<(String, Vec<u8>, String)> = std::sync::OnceLock::new();
    FILES.get_or_init(write_tiny_run_files).clone()
}

fn write_tiny_run_files() -> (String, Vec<u8>, String) {
    struct Grab(Option<(Checkpoint, Vectors)>, Vec<Record>);
    impl Observer for Grab {
        fn record(&mut self, r: &Record) -> subspace_lab::Result<()> {
            self.1.push(r.clone());
            Ok(())
        }
        fn checkpoint(&mut self, c: &Checkpoint, v: &Vectors) -> subspace_lab::Result<()> {
            if self.0.is_none() {
                self.0 = Some((c.clone(), v.clone()));
            }
            Ok(())
        }
    }
    let data = tiny(&[6, 5, 3], Activation::Tanh, 40, 2).2;
    let mut spec = RunSpec::new("tiny", OptimizerSpec::sgd(0.05, 8), 6);
    spec.model.widths = vec![6, 5, 3];
    spec.data.samples = 40;
    spec.variants = vec![Projection::None, Projection::Dominant];
    spec.steps_after = 4;
    spec.record_every = 2;
    spec.k = 2;
    spec.top = Some(3);
    spec.checkpoint_every = 8;
    let mut g = Grab(None, Vec::new());
    run::run(F64::new(), &spec, &data, false, None, &mut g).unwrap();
    let (c, v) = g.0.unwrap();
    let dir = tempfile::tempdir().unwrap();
    output::save_checkpoint(dir.path(), &c, &v).unwrap();
    let json = std::fs::read_to_string(dir.path().join(output::CHECKPOINT_JSON)).unwrap();
    let tensors = std::fs::read(dir.path().join(output::CHECKPOINT_TENSORS)).unwrap();
    (json, tensors, Record::csv(&g.1, 3))
}

#[test]
fn fuzz_checkpoints() {
    let (json, tensors, _) = tiny_run_files();
    let (jp, tp) = (
        Path::new("checkpoint.json"),
        Path::new("checkpoint.safetensors"),
    );
    assert!(output::parse_checkpoint(&json, jp, &tensors, tp).is_ok());
    // Mutate one of the two files at a time.
    let json_for_t = json.clone();
    fuzz(
        "checkpoint-json",
        vec![json.into_bytes()],
        true,
        4 * MIB,
        |b| output::parse_checkpoint(&String::from_utf8_lossy(b), jp, &tensors, tp).is_ok(),
    );
    let seed_tensors = tensors.clone();
    fuzz(
        "checkpoint-tensors",
        vec![seed_tensors],
        false,
        4 * MIB,
        |b| output::parse_checkpoint(&json_for_t, jp, b, tp).is_ok(),
    );
}

#[test]
fn fuzz_metrics_csv() {
    let (_, _, csv) = tiny_run_files();
    fuzz("metrics-csv", vec![csv.into_bytes()], true, MIB, |b| {
        Record::parse_csv(&String::from_utf8_lossy(b)).is_ok()
    });
    let toy = "method,step,x,y,loss,chi_1\nGD,0,1,1,500.5,0.9999995\nGD,1,0.9,0.9999,405.4,0.99999\nSGD,0,1,1,500.5,0.9999995\n";
    fuzz("toy-csv", vec![toy.as_bytes().to_vec()], true, MIB, |b| {
        reproduce::parse_toy_csv_text(&String::from_utf8_lossy(b), Path::new("metrics.csv")).is_ok()
    });
}

#[test]
fn fuzz_url_hash_and_native_settings() {
    let custom = Settings {
        lr: 0.05,
        batch: 20,
        samples: 300,
        k: 3,
        rho: 0.05,
        ..Settings::default()
    };
    let hashes = vec![
        Settings::default().to_hash().into_bytes(),
        custom.to_hash().into_bytes(),
        b"#lr=0.1&batch=20&n=100&k=3&opt=sam&rho=0.05&compute=cpu&toy_a=dom-sgd&eig=5".to_vec(),
    ];
    // Whatever the hash, the settings that come out are runnable (sanitize has nothing left).
    fuzz("url-hash", hashes, true, MIB, |b| {
        let (mut s, _) = Settings::from_hash(&String::from_utf8_lossy(b));
        assert!(s.sanitize().is_empty(), "{s:?}");
        true
    });
    let ron_seeds = vec![
        ron::to_string(&Settings::default()).unwrap().into_bytes(),
        ron::to_string(&custom).unwrap().into_bytes(),
    ];
    fuzz(
        "native-settings",
        ron_seeds,
        true,
        MIB,
        |b| match ron::from_str::<Settings>(&String::from_utf8_lossy(b)) {
            Ok(mut s) => {
                s.sanitize();
                assert!(s.sanitize().is_empty(), "{s:?}");
                true
            }
            Err(_) => false,
        },
    );
}

/// Draw `f` for a few frames headless (no window, no GPU: egui's layout, where the plots compute
/// their grids).
fn draw_frames(mut f: impl FnMut(&mut egui::Ui)) {
    let ctx = egui::Context::default();
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(900.0, 900.0),
        )),
        ..Default::default()
    };
    for _ in 0..3 {
        let _ = ctx.run_ui(input.clone(), |ui| {
            egui::CentralPanel::default().show(ui, |ui| f(ui));
        });
    }
}

/// The toy panel with `s` after `frames` frames of steps, drawn.
fn draw_toy(s: &Settings, frames: usize) {
    use subspace_lab::app::panels::toy::ToyPanel;
    let mut s = s.clone();
    let mut p = ToyPanel::new(&s);
    for _ in 0..frames {
        p.advance(&s);
    }
    draw_frames(|ui| p.toy_panel_ui(ui, &mut s));
}

/// Issue 31 case 8: every setting has a range in the key table; a hash or a saved file with a
/// value at, just inside or outside the edges of any range, or no number at all, comes back
/// runnable (out-of-range values reset one by one, each with a message naming it), and the app's
/// panels draw at every corner of the toy's ranges without a panic. `toy_x0 = 1e308,
/// toy_y0 = -1e308` crashed the toy panel's plot (capacity overflow) at every start.
#[test]
fn fuzz_settings_at_the_edges_of_every_range() {
    use subspace_lab::app::settings::{AppModel, KEYS, Range};
    let mut cases = 0;
    for model in AppModel::ALL {
        let base = Settings::default().with_model(model);
        assert!(base.clone().sanitize().is_empty(), "{model:?}'s defaults");
        for k in KEYS {
            let Range::Num(lo, hi) = (k.range)(&base) else {
                continue;
            };
            let edges = [
                lo,
                hi,
                lo.next_down(),
                hi.next_up(),
                lo - 1.0,
                hi + 1.0,
                -hi,
                0.0,
                -0.0,
                1e308,
                -1e308,
                f64::MAX,
                f64::MIN_POSITIVE,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                18446744073709551616.0,
            ];
            let mut texts: Vec<String> = edges.iter().map(|v| v.to_string()).collect();
            texts.extend(["-1", "1e400", "abc", "", "0x10", "5e-324"].map(String::from));
            for v in &texts {
                let hash = format!("model={}&{}={v}", model.name(), k.key);
                let (mut s, w) = Settings::from_hash(&hash);
                assert!(s.sanitize().is_empty(), "{hash}: {s:?}");
                let kept = (k.get)(&s);
                assert!((k.range)(&s).contains(&kept), "{hash}: {kept}");
                let same = kept == *v
                    || matches!((kept.parse::<f64>(), v.parse::<f64>()), (Ok(a), Ok(b)) if a == b);
                if !same && (k.get)(&base) != kept {
                    // Changed but not to the default: only the batch, following n down.
                    assert_eq!(k.key, "batch", "{hash}: {kept}");
                }
                // Out of range: said (a batch above n follows it down without a word).
                if k.key != "batch" && v.parse::<f64>().is_ok_and(|x| !(lo <= x && x <= hi)) {
                    assert!(
                        w.iter().any(|m| m.contains(k.field) || m.contains(k.key)),
                        "{hash}: {w:?}"
                    );
                }
                cases += 1;
            }
        }
    }
    // The case of the issue: saved (RON, an older app's file) and in a hash; reset each alone.
    let saved = "(toy_x0: 1e308, toy_y0: -1e308, k: 5)";
    let mut s: Settings = ron::from_str(saved).unwrap();
    let w = s.sanitize();
    assert_eq!((s.toy_x0, s.toy_y0, s.k), (1.0, 1.0, 5), "{w:?}");
    assert!(w.iter().any(|m| m.starts_with("toy_x0 = ")), "{w:?}");
    assert!(w.iter().any(|m| m.starts_with("toy_y0 = ")), "{w:?}");
    draw_toy(&s, 10);
    let (h, w) = Settings::from_hash("toy_x0=1e308&toy_y0=-1e308&k=5");
    assert_eq!(h, s, "{w:?}");
    // The panels at every corner of the toy's ranges (start, η, coupling, steps per frame).
    let r = |key: &str| Settings::default().range_of(key);
    let corners = |key: &str| {
        let r = r(key);
        [*r.start(), *r.end()]
    };
    for x0 in corners("toy_x0") {
        for y0 in corners("toy_y0") {
            for lr in corners("toy_lr") {
                for c in corners("toy_c") {
                    let s = Settings {
                        toy_x0: x0,
                        toy_y0: y0,
                        toy_lr: lr,
                        toy_coupling: c,
                        toy_steps_per_frame: *r("toy_spf").end() as usize,
                        toy_a: subspace_lab::experiment::toy::ToyMethod::Gd,
                        toy_b: subspace_lab::experiment::toy::ToyMethod::Sgd,
                        ..Settings::default()
                    };
                    assert!(s.clone().sanitize().is_empty(), "{s:?}");
                    draw_toy(&s, 3);
                    cases += 1;
                }
            }
        }
    }
    // The plots of a run with no points yet.
    let h = subspace_lab::app::live::History::default();
    draw_frames(|ui| subspace_lab::app::panels::plots::run_plots_ui(ui, &h));
    eprintln!("settings at the edges: {cases} cases");
}

/// The harness is not vacuous: a parser that panics on some inputs, or allocates beyond its
/// bound, is caught.
#[test]
#[should_panic(expected = "panicked (saved to")]
fn the_harness_catches_a_panic() {
    let seeds = vec![b"[section]\nkey = 12345\n".to_vec()];
    fuzz("canary-panic", seeds, true, MIB, |b| {
        assert!(!b.windows(3).any(|w| w == b"nan"), "canary");
        true
    });
}

#[test]
#[should_panic(expected = "at once (bound")]
fn the_harness_catches_a_large_allocation() {
    let seeds = vec![b"[section]\nkey = 12345\n".to_vec()];
    fuzz("canary-alloc", seeds, true, MIB, |b| {
        if b.windows(3).any(|w| w == b"nan") {
            std::hint::black_box(vec![0u8; 2 * MIB]);
        }
        true
    });
}
