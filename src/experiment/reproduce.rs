//! `reproduce`: the paper's figures as presets. Each is one or more run specs; each writes its own
//! directory with the specs as run (`spec*.toml`), `metrics.csv`, `summary.json` and `metrics.png`,
//! and returns verdicts computed from the numbers.

use super::output::{CHECKPOINT_JSON, CsvSink, clear_checkpoint, load_checkpoint, write_atomic};
use super::plot;
use super::run::{self, RunOutcome};
use super::spec::{OptKind, OptimizerSpec, Projection, RunSpec, SwitchRule};
use super::toy::{self, ToyMethod};
use super::verdict::Verdict;
use crate::backend::{Backend, LossKind};
use crate::data::dataset::Dataset;
use crate::data::mnist::Mnist5k;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Every preset, in the order `all` runs them.
pub const PRESETS: &[&str] = &[
    "fig6-7", "fig1", "fig22", "fig1-ce", "fig2-3", "fig4", "fig5", "fig9", "fig10", "table2",
    "fig18-19",
];

/// χ_k along SGD: its EMA must exceed this somewhere (the paper's switch threshold).
pub const SGD_CHI_EMA_MIN: f64 = 0.95;
/// χ_k along full-batch GD must average below this over the second half.
pub const GD_CHI_MAX: f64 = 0.2;
/// After SGD → GD, GD's mean χ_k must fall below this fraction of SGD's before the switch
/// (fig. 4); after GD → SGD, SGD's must exceed GD's by the inverse factor (fig. 5).
pub const SWITCH_CHI_FACTOR: f64 = 0.5;
/// At the edge of stability the sharpness must lie within this fraction of 2/η (GD) or of the
/// SAM edge (SAM).
pub const EOS_BAND: f64 = 0.10;
/// Bulk-SGD's distance from the switch point must be within this fraction of SGD's (fig. 22).
pub const DIST_BAND: f64 = 0.25;
/// χ₁ under GD must end below this.
pub const TOY_GD_CHI_MAX: f64 = 0.2;
/// χ₁ under SGD must average above this over the second half of the run.
pub const TOY_SGD_CHI_MIN: f64 = 0.95;

/// Checkpoint interval (steps) of the full variants.
pub const FULL_CHECKPOINT_EVERY: usize = 100;

/// What a preset produced.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PresetResult {
    pub preset: String,
    pub quick: bool,
    pub verdicts: Vec<Verdict>,
    pub wall_seconds: f64,
    pub dir: PathBuf,
    /// The step a `--resume` continued from (None: the preset ran from the start).
    pub resumed_at: Option<usize>,
}

/// Where presets write and how they report.
pub struct Ctx<'a> {
    pub out: PathBuf,
    pub quick: bool,
    pub stop: Arc<AtomicBool>,
    pub progress: &'a mut dyn FnMut(&str, usize, usize),
    /// Continue a single-run preset from the checkpoint in its directory (`--resume`).
    pub resume: bool,
    /// fig1's outcome, reused by fig22 within one invocation.
    fig1: Option<(bool, RunSpec, RunOutcome)>,
    /// Seconds the resumed run had computed in earlier invocations; the step it resumed at.
    earlier: Option<(f64, usize)>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        out: &Path,
        quick: bool,
        stop: Arc<AtomicBool>,
        progress: &'a mut dyn FnMut(&str, usize, usize),
    ) -> Self {
        Ctx {
            out: out.to_path_buf(),
            quick,
            stop,
            progress,
            resume: false,
            fig1: None,
            earlier: None,
        }
    }

    /// The preset's wall time — since `start`, plus what a resumed run had computed before —
    /// and the step it resumed at.
    fn wall_since(&mut self, start: Instant) -> (f64, Option<usize>) {
        let earlier = self.earlier.take();
        (
            start.elapsed().as_secs_f64() + earlier.map_or(0.0, |e| e.0),
            earlier.map(|e| e.1),
        )
    }
}

fn summary(dir: &Path, value: serde_json::Value) -> Result<()> {
    let text =
        serde_json::to_string_pretty(&value).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    write_atomic(&dir.join("summary.json"), text.as_bytes())
}

/// Rows of a serialisable struct as CSV (header from the first row's fields).
fn to_csv<T: serde::Serialize>(rows: &[T]) -> Result<String> {
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let v = serde_json::to_value(r).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::InvalidArgument("CSV rows must be structs".into()))?;
        if i == 0 {
            out.push_str(&obj.keys().cloned().collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        let cells: Vec<String> = obj
            .values()
            .map(|x| match x {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "nan".into(),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// The dataset a spec asks for.
pub fn dataset_for(m: &Mnist5k, spec: &RunSpec) -> Result<Dataset> {
    if spec.data.samples == 0 || spec.data.samples > crate::data::mnist::N {
        return Err(Error::InvalidArgument(format!(
            "data.samples = {}: need 1..={}",
            spec.data.samples,
            crate::data::mnist::N
        )));
    }
    m.dataset(spec.data.preprocess, spec.data.samples)
}

/// A finished run of a preset of several runs, kept in `resume/<run>/done.json` so that
/// `--resume` skips it.
#[derive(serde::Serialize, serde::Deserialize)]
struct DoneRun {
    spec: RunSpec,
    switch_step: Option<usize>,
    switch_rule_fired: bool,
    legs: Vec<run::LegSummary>,
    records: Vec<run::Record>,
    /// Seconds the run computed, over all its sessions.
    elapsed_s: f64,
}

const DONE_JSON: &str = "done.json";

/// Run specs one after another into one directory: `spec.toml` (or `spec-<name>.toml` when there
/// are several), one `metrics.csv` for all, and the outcomes. With `ctx.resume` a stopped preset
/// continues: a single run from `checkpoint.json`; several runs (not keeping θ) skip the ones
/// that finished (`resume/<run>/done.json`) and continue the one that was stopped
/// (`resume/<run>/checkpoint.json`), so `metrics.csv` ends as an uninterrupted invocation's.
pub fn run_specs<B: Backend + Clone>(
    backend: &B,
    m: &Mnist5k,
    dir: &Path,
    specs: &[RunSpec],
    keep_theta: bool,
    ctx: &mut Ctx,
) -> Result<Vec<RunOutcome>> {
    let top = specs.iter().map(|s| s.top()).max().unwrap_or(0);
    let mut outs = Vec::new();
    let single = specs.len() == 1;
    // A preset of several runs checkpoints each run in `resume/<run>/` and leaves `done.json`
    // there when it finishes (not where θ is kept along the run: fig18-19's pairing).
    let multi_resumable = !single && !keep_theta;
    let resume_root = dir.join("resume");
    // `--resume`: continue from the checkpoints, if the preset left any.
    let mut resume = None;
    if ctx.resume && single && dir.join(CHECKPOINT_JSON).exists() {
        resume = Some(load_checkpoint(dir)?);
    } else {
        clear_checkpoint(dir)?;
    }
    if !(ctx.resume && multi_resumable) && resume_root.exists() {
        std::fs::remove_dir_all(&resume_root).map_err(|e| Error::io(&resume_root, e))?;
    }
    let mut earlier_s = 0.0;
    let mut resumed_at = None;
    for (i, spec) in specs.iter().enumerate() {
        // Full variants run for an hour or more: checkpoint them (Ctrl-C writes one too), so
        // `reproduce --resume` can continue a stopped preset.
        let mut spec = spec.clone();
        if (single || multi_resumable) && !ctx.quick && spec.checkpoint_every == 0 {
            spec.checkpoint_every = FULL_CHECKPOINT_EVERY;
        }
        let spec = &spec;
        let file = if single {
            "spec.toml".to_string()
        } else {
            format!("spec-{}.toml", spec.name)
        };
        write_atomic(&dir.join(file), spec.to_toml()?.as_bytes())?;
        let run_dir = resume_root.join(&spec.name);
        let mut resume = resume.take();
        if ctx.resume && multi_resumable {
            let done = run_dir.join(DONE_JSON);
            if done.exists() {
                let text = std::fs::read_to_string(&done).map_err(|e| Error::io(&done, e))?;
                let d: DoneRun = serde_json::from_str(&text)
                    .map_err(|e| Error::data(&done, format!("not a finished run: {e}")))?;
                if d.spec != *spec {
                    return Err(stale(&done));
                }
                // Its rows go back into metrics.csv, in the order of an uninterrupted run.
                CsvSink::create(dir, top, &d.records, i > 0, ctx.stop.clone(), ctx.progress)?;
                earlier_s += d.elapsed_s;
                resumed_at = Some(0);
                outs.push(RunOutcome {
                    switch_step: d.switch_step,
                    switch_rule_fired: d.switch_rule_fired,
                    legs: d.legs,
                    records: d.records,
                    thetas: Vec::new(),
                });
                continue;
            }
            if run_dir.join(CHECKPOINT_JSON).exists() {
                resume = Some(load_checkpoint(&run_dir)?);
            }
        }
        let data = dataset_for(m, spec)?;
        let mut run_earlier = 0.0;
        if let Some((c, _)) = &resume {
            if c.spec != *spec {
                return Err(stale(if single { dir } else { &run_dir }));
            }
            run_earlier = c.elapsed_s;
            earlier_s += c.elapsed_s;
            resumed_at = Some(c.step);
        }
        let existing = resume.as_ref().map(|(c, _)| c.records.clone());
        let mut sink = CsvSink::create(
            dir,
            top,
            existing.as_deref().unwrap_or(&[]),
            i > 0,
            ctx.stop.clone(),
            ctx.progress,
        )?;
        sink.checkpoints = single || multi_resumable;
        if !single {
            sink.ckpt_dir = run_dir.clone();
        }
        let started = Instant::now();
        let out = run::run(backend.clone(), spec, &data, keep_theta, resume, &mut sink)?;
        if multi_resumable {
            let d = DoneRun {
                spec: spec.clone(),
                switch_step: out.switch_step,
                switch_rule_fired: out.switch_rule_fired,
                legs: out.legs.clone(),
                records: out.records.clone(),
                elapsed_s: run_earlier + started.elapsed().as_secs_f64(),
            };
            let json =
                serde_json::to_string(&d).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            std::fs::create_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
            write_atomic(&run_dir.join(DONE_JSON), json.as_bytes())?;
            clear_checkpoint(&run_dir)?;
        }
        outs.push(out);
    }
    if let Some(step) = resumed_at {
        ctx.earlier = Some((earlier_s, step));
    }
    Ok(outs)
}

fn stale(dir: &Path) -> Error {
    Error::InvalidArgument(format!(
        "the checkpoint in {} was written for another spec of this preset (another version, or --quick); \
         remove it to start over",
        dir.display()
    ))
}

#[allow(clippy::too_many_arguments)]
fn finish<B: Backend>(
    backend: &B,
    name: &str,
    dir: &Path,
    specs: &[RunSpec],
    outs: &[RunOutcome],
    verdicts: Vec<Verdict>,
    (wall, resumed_at): (f64, Option<usize>),
    quick: bool,
    extra: serde_json::Value,
) -> Result<PresetResult> {
    let records: Vec<run::Record> = outs.iter().flat_map(|o| o.records.clone()).collect();
    let switch = outs.first().and_then(|o| o.switch_step);
    let k = specs.first().map_or(10, |s| s.k);
    plot::metrics_png(&dir.join("metrics.png"), name, &records, k, switch)?;
    summary(
        dir,
        serde_json::json!({
            "preset": name, "quick": quick, "version": env!("CARGO_PKG_VERSION"),
            "specs": specs, "backend": backend.name(), "adapter": backend.adapter(),
            "runs": outs, "extra": extra,
            "wall_seconds": wall, "resumed_at_step": resumed_at, "verdicts": verdicts,
        }),
    )?;
    Ok(PresetResult {
        preset: name.into(),
        quick,
        verdicts,
        wall_seconds: wall,
        dir: dir.to_path_buf(),
        resumed_at,
    })
}

/// Run one preset by name (everything but fig6-7, which needs no data: see `toy`).
pub fn preset<B: Backend + Clone>(
    backend: B,
    name: &str,
    m: &Mnist5k,
    ctx: &mut Ctx,
) -> Result<PresetResult> {
    match name {
        "fig1" => fig1(backend, m, ctx, LossKind::Mse),
        "fig1-ce" => fig1(backend, m, ctx, LossKind::Ce),
        "fig22" => fig22(backend, m, ctx),
        "fig2-3" => fig2_3(backend, m, ctx),
        "fig4" => fig4(backend, m, ctx),
        "fig5" => fig5(backend, m, ctx),
        "fig9" => fig9(backend, m, ctx),
        "fig10" => fig10(backend, m, ctx),
        "table2" => table2(backend, m, ctx),
        "fig18-19" => fig18_19(backend, m, ctx),
        "fig6-7" => toy(&ctx.out, ctx.quick),
        other => Err(Error::InvalidArgument(format!(
            "unknown preset '{other}': one of {} or all",
            PRESETS.join(", ")
        ))),
    }
}

/// fig. 6–7: the 2-D toy under GD, SGD, Dom-SGD and Bulk-SGD from (1, 1), η = 1e-4.
pub fn toy(out: &Path, quick: bool) -> Result<PresetResult> {
    let start = Instant::now();
    let steps = if quick { 2000 } else { 20000 };
    let (lr, seed) = (1e-4, 0);
    let dir = out.join("fig6-7");
    let mut runs = Vec::new();
    for m in ToyMethod::ALL {
        runs.push((m, toy::run(m, 1.0, 1.0, lr, steps, seed)));
    }
    #[derive(serde::Serialize)]
    struct R<'a> {
        method: &'a str,
        step: usize,
        x: f64,
        y: f64,
        loss: f64,
        chi_1: f64,
    }
    let csv_rows: Vec<R> = runs
        .iter()
        .flat_map(|(m, pts)| {
            pts.iter().map(|p| R {
                method: m.name(),
                step: p.step,
                x: p.x,
                y: p.y,
                loss: p.loss,
                chi_1: p.chi,
            })
        })
        .collect();
    write_atomic(&dir.join("metrics.csv"), to_csv(&csv_rows)?.as_bytes())?;
    let named: Vec<(&str, &[toy::ToyPoint])> =
        runs.iter().map(|(m, p)| (m.name(), p.as_slice())).collect();
    plot::toy_png(&dir.join("toy.png"), &named)?;
    let get = |m: ToyMethod| {
        runs.iter()
            .find(|(r, _)| *r == m)
            .map(|(_, p)| p.as_slice())
            .unwrap_or(&[])
    };
    let gd = get(ToyMethod::Gd);
    let sgd_run = get(ToyMethod::Sgd);
    let dom = get(ToyMethod::DomSgd);
    let gd_chi = gd.last().map_or(f64::NAN, |p| p.chi);
    let half = &sgd_run[sgd_run.len() / 2..];
    let sgd_chi = half.iter().map(|p| p.chi).sum::<f64>() / half.len().max(1) as f64;
    let dom_y = dom.last().map_or(f64::NAN, |p| p.y);
    let sgd_y = sgd_run.last().map_or(f64::NAN, |p| p.y);
    let verdicts = vec![
        Verdict::new(
            "fig6-7: under GD χ₁(∇L) → 0",
            gd_chi < TOY_GD_CHI_MAX,
            format!("χ₁ after {steps} GD steps = {gd_chi:.2e} (threshold < {TOY_GD_CHI_MAX})"),
            &[("gd_final_chi", gd_chi)],
        ),
        Verdict::new(
            "fig6-7: under SGD χ₁(∇L) stays ≈ 1",
            sgd_chi > TOY_SGD_CHI_MIN,
            format!(
                "mean χ₁ over SGD steps {}..{steps} = {sgd_chi:.4} (threshold > {TOY_SGD_CHI_MIN})",
                steps / 2
            ),
            &[("sgd_mean_chi_second_half", sgd_chi)],
        ),
        Verdict::new(
            "fig6-7: Dom-SGD cannot move y while SGD does",
            dom_y == 1.0 && (1.0 - sgd_y).abs() > 0.01,
            format!("y after {steps} steps: Dom-SGD {dom_y}, SGD {sgd_y:.4} (from 1)"),
            &[("dom_final_y", dom_y), ("sgd_final_y", sgd_y)],
        ),
    ];
    let wall = start.elapsed().as_secs_f64();
    summary(
        &dir,
        serde_json::json!({
            "preset": "fig6-7", "quick": quick, "version": env!("CARGO_PKG_VERSION"),
            "spec": {"loss": "½(1000x² + y²) ± 100xy", "start": [1.0, 1.0], "lr": lr, "steps": steps, "seed": seed},
            "wall_seconds": wall, "verdicts": verdicts,
        }),
    )?;
    Ok(PresetResult {
        preset: "fig6-7".into(),
        quick,
        verdicts,
        wall_seconds: wall,
        dir,
        resumed_at: None,
    })
}

/// fig. 1's spec: SGD η 0.01, batch 50, then SGD / Dom-SGD / Bulk-SGD.
pub fn fig1_spec(quick: bool, loss: LossKind) -> RunSpec {
    let mut s = RunSpec::new(
        if loss == LossKind::Ce {
            "fig1-ce"
        } else {
            "fig1"
        },
        OptimizerSpec::sgd(0.01, 50),
        if quick { 300 } else { 3000 },
    );
    s.loss = loss;
    // Quick: a fixed switch step instead of the χ-EMA rule (which needs a spectrum every step).
    s.switch = if quick {
        SwitchRule::AfterSteps
    } else {
        SwitchRule::ChiEma
    };
    s.variants = vec![Projection::None, Projection::Dominant, Projection::Bulk];
    s.steps_after = if quick { 60 } else { 1000 };
    s.record_every = if quick { 10 } else { 20 };
    s.top = Some(10);
    s
}

fn fig1<B: Backend + Clone>(
    backend: B,
    m: &Mnist5k,
    ctx: &mut Ctx,
    loss: LossKind,
) -> Result<PresetResult> {
    let start = Instant::now();
    let spec = fig1_spec(ctx.quick, loss);
    let dir = ctx.out.join(&spec.name);
    let outs = run_specs(&backend, m, &dir, std::slice::from_ref(&spec), false, ctx)?;
    let verdicts: Vec<Verdict> = run::projection_verdict(&spec, &outs[0])
        .into_iter()
        .map(|mut v| {
            v.claim = format!("{}: {}", spec.name, v.claim);
            v.text = format!("{}: {}", spec.name, v.text);
            v
        })
        .collect();
    if loss == LossKind::Mse {
        ctx.fig1 = Some((ctx.quick, spec.clone(), outs[0].clone()));
    }
    let name = spec.name.clone();
    finish(
        &backend,
        &name,
        &dir,
        &[spec],
        &outs,
        verdicts,
        ctx.wall_since(start),
        ctx.quick,
        serde_json::Value::Null,
    )
}

/// fig. 22: distance from the switch point along fig. 1's three variants. It reuses fig1's run
/// when fig1 ran in the same invocation, or when `OUT/fig1` holds a finished fig1 run of the same
/// protocol ([`finished_fig1`]); otherwise it runs fig1's protocol itself.
fn fig22<B: Backend + Clone>(backend: B, m: &Mnist5k, ctx: &mut Ctx) -> Result<PresetResult> {
    let start = Instant::now();
    let dir = ctx.out.join("fig22");
    let protocol = fig1_spec(ctx.quick, LossKind::Mse);
    let earlier = match ctx.fig1.clone() {
        Some((q, s, o)) if q == ctx.quick => Some((s, o, None)),
        _ => finished_fig1(&ctx.out, &protocol, ctx.quick)
            .map(|(o, done)| (protocol.clone(), o, Some(done))),
    };
    let (spec, out, from_disk) = match earlier {
        Some((s, o, wall)) => {
            write_atomic(&dir.join("spec.toml"), s.to_toml()?.as_bytes())?;
            let top = s.top();
            write_atomic(
                &dir.join("metrics.csv"),
                run::Record::csv(&o.records, top).as_bytes(),
            )?;
            (s, o, wall)
        }
        None => {
            let o = run_specs(
                &backend,
                m,
                &dir,
                std::slice::from_ref(&protocol),
                false,
                ctx,
            )?;
            (
                protocol,
                o.into_iter()
                    .next()
                    .ok_or_else(|| Error::Shape("no run".into()))?,
                None,
            )
        }
    };
    let end_dist = |run: &str| {
        out.records_of(run, "after")
            .last()
            .map_or(f64::NAN, |r| r.dist_switch)
    };
    let (d_sgd, d_dom, d_bulk) = (end_dist("SGD"), end_dist("Dom-SGD"), end_dist("Bulk-SGD"));
    let verdicts = vec![Verdict::new(
        "fig22: Bulk-SGD moves away from the switch point like SGD (distance within ±25 %)",
        ((d_bulk - d_sgd) / d_sgd).abs() <= DIST_BAND,
        format!(
            "‖θ − θ_switch‖ after {} steps{}: SGD {d_sgd:.4}, Bulk-SGD {d_bulk:.4}, Dom-SGD {d_dom:.4}",
            spec.steps_after,
            if from_disk.is_some() {
                format!(
                    " (fig1's finished run in {})",
                    ctx.out.join("fig1").display()
                )
            } else {
                String::new()
            }
        ),
        &[
            ("dist_sgd", d_sgd),
            ("dist_bulk", d_bulk),
            ("dist_dom", d_dom),
        ],
    )];
    finish(
        &backend,
        "fig22",
        &dir,
        &[spec],
        &[out],
        verdicts,
        ctx.wall_since(start),
        ctx.quick,
        match from_disk {
            Some((wall, fig1_backend)) => serde_json::json!({
                "fig1_run": ctx.out.join("fig1"),
                "fig1_wall_seconds": wall,
                "fig1_backend": fig1_backend,
            }),
            None => serde_json::Value::Null,
        },
    )
}

/// A finished fig1 run in `out/fig1` made with `spec` (and the same `quick`): its outcome, rebuilt
/// from `summary.json` (switch and legs) and `metrics.csv` (the records), the seconds it computed
/// and the backend it ran on. None when there is none, when it was made with another protocol, or
/// when the two files disagree (a later fig1 invocation rewrote `metrics.csv` and stopped): each
/// leg's last record must sit at the leg's last step with the leg's end loss.
pub fn finished_fig1(
    out: &Path,
    spec: &RunSpec,
    quick: bool,
) -> Option<(RunOutcome, (f64, String))> {
    let dir = out.join("fig1");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).ok()?).ok()?;
    let same = summary["preset"] == "fig1"
        && summary["quick"] == quick
        && summary["specs"].as_array().map(Vec::len) == Some(1)
        && serde_json::to_value(spec).ok()? == summary["specs"][0];
    if !same {
        return None;
    }
    let mut outcome: RunOutcome = serde_json::from_value(summary["runs"][0].clone()).ok()?;
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).ok()?;
    let (records, _) = run::Record::parse_csv(&csv).ok()?;
    let consistent = outcome.legs.iter().all(|leg| {
        records
            .iter()
            .rfind(|r| r.run == leg.run && r.phase == leg.phase)
            .is_some_and(|r| r.step == leg.last_step && r.loss.to_bits() == leg.end_loss.to_bits())
    });
    if !consistent || outcome.legs.is_empty() {
        return None;
    }
    outcome.records = records;
    let wall = summary["wall_seconds"].as_f64().unwrap_or(f64::NAN);
    let backend = summary["backend"].as_str().unwrap_or("unknown").to_string();
    Some((outcome, (wall, backend)))
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.filter(|x| x.is_finite()).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn second_half<'a>(rs: &[&'a run::Record]) -> Vec<&'a run::Record> {
    rs[rs.len() / 2..].to_vec()
}

/// figs. 2–3: top-2k eigenvalues and χ_k(∇L) along SGD (η 0.01, batch 50, k 10).
fn fig2_3<B: Backend + Clone>(backend: B, m: &Mnist5k, ctx: &mut Ctx) -> Result<PresetResult> {
    let start = Instant::now();
    let mut spec = RunSpec::new(
        "fig2-3",
        OptimizerSpec::sgd(0.01, 50),
        if ctx.quick { 300 } else { 3000 },
    );
    spec.record_every = if ctx.quick { 25 } else { 50 };
    let dir = ctx.out.join("fig2-3");
    let outs = run_specs(&backend, m, &dir, std::slice::from_ref(&spec), false, ctx)?;
    let rs: Vec<&run::Record> = outs[0].records.iter().collect();
    let max_ema = rs
        .iter()
        .map(|r| r.chi_ema)
        .fold(f64::NEG_INFINITY, f64::max);
    let m2 = mean(second_half(&rs).iter().map(|r| r.chi_k));
    let last = rs.last().ok_or_else(|| Error::Shape("no records".into()))?;
    let gap = last.eigenvalues[spec.k - 1] / last.eigenvalues[spec.k];
    let verdicts = vec![Verdict::new(
        "fig2-3: along SGD the gradient aligns with the top-k subspace (EMA of χ_k exceeds 0.95)",
        max_ema > SGD_CHI_EMA_MIN,
        format!(
            "max EMA(χ₁₀) over {} records to step {} = {max_ema:.3}, mean χ₁₀ over the second half = {m2:.3}; λ₁ {:.2}, λ₁₀/λ₁₁ = {gap:.3} at the end",
            rs.len(),
            spec.steps,
            last.eigenvalues[0]
        ),
        &[
            ("max_chi_ema", max_ema),
            ("mean_chi_second_half", m2),
            ("lambda_1_end", last.eigenvalues[0]),
            ("lambda_k_over_k1_end", gap),
        ],
    )];
    finish(
        &backend,
        "fig2-3",
        &dir,
        &[spec],
        &outs,
        verdicts,
        ctx.wall_since(start),
        ctx.quick,
        serde_json::Value::Null,
    )
}

/// fig. 4 (SGD → GD) and fig. 5 (GD → SGD): the alignment follows the noise.
fn switch_opt_preset<B: Backend + Clone>(
    backend: B,
    m: &Mnist5k,
    ctx: &mut Ctx,
    name: &str,
    first: OptimizerSpec,
    after: OptimizerSpec,
) -> Result<PresetResult> {
    let start = Instant::now();
    let q = ctx.quick;
    let mut spec = RunSpec::new(name, first, if q { 300 } else { 2000 });
    spec.after = Some(after);
    spec.steps_after = if q { 60 } else { 1000 };
    spec.record_every = if q { 10 } else { 20 };
    spec.top = Some(10);
    let dir = ctx.out.join(name);
    let outs = run_specs(&backend, m, &dir, std::slice::from_ref(&spec), false, ctx)?;
    let o = &outs[0];
    let before: Vec<&run::Record> = o.records.iter().filter(|r| r.phase == "before").collect();
    let after: Vec<&run::Record> = o.records.iter().filter(|r| r.phase == "after").collect();
    // Compare equal spans: the last `steps_after` steps before the switch against the second
    // half after it.
    let s = o.switch_step.unwrap_or(spec.steps);
    let pre = mean(
        before
            .iter()
            .filter(|r| r.step + spec.steps_after >= s)
            .map(|r| r.chi_k),
    );
    let post = mean(second_half(&after).iter().map(|r| r.chi_k));
    let (a, b) = (spec.optimizer.display(), spec.after_optimizer().display());
    let to_gd = spec.after_optimizer().batch.is_none();
    let (claim, holds, thr) = if to_gd {
        (
            format!(
                "{name}: switching {a} → {b} makes the alignment disappear (χ_k under {b} < {SWITCH_CHI_FACTOR}× its level under {a})"
            ),
            post < SWITCH_CHI_FACTOR * pre,
            format!("< {SWITCH_CHI_FACTOR}×"),
        )
    } else {
        (
            format!(
                "{name}: switching {a} → {b} makes the alignment appear (χ_k under {b} > {}× its level under {a})",
                1.0 / SWITCH_CHI_FACTOR
            ),
            post > pre / SWITCH_CHI_FACTOR,
            format!("> {}×", 1.0 / SWITCH_CHI_FACTOR),
        )
    };
    let verdicts = vec![Verdict::new(
        &claim,
        holds,
        format!(
            "mean χ₁₀: {a} over steps {}..{s} = {pre:.3}; {b} over steps {}..{} = {post:.3} (threshold {thr})",
            s.saturating_sub(spec.steps_after),
            s + spec.steps_after / 2,
            s + spec.steps_after
        ),
        &[("chi_before", pre), ("chi_after", post)],
    )];
    finish(
        &backend,
        name,
        &dir,
        &[spec],
        &outs,
        verdicts,
        ctx.wall_since(start),
        ctx.quick,
        serde_json::Value::Null,
    )
}

fn fig4<B: Backend + Clone>(backend: B, m: &Mnist5k, ctx: &mut Ctx) -> Result<PresetResult> {
    switch_opt_preset(
        backend,
        m,
        ctx,
        "fig4",
        OptimizerSpec::sgd(0.01, 50),
        OptimizerSpec::gd(0.01),
    )
}

fn fig5<B: Backend + Clone>(backend: B, m: &Mnist5k, ctx: &mut Ctx) -> Result<PresetResult> {
    switch_opt_preset(
        backend,
        m,
        ctx,
        "fig5",
        OptimizerSpec::gd(0.01),
        OptimizerSpec::sgd(0.01, 50),
    )
}

/// The sharpness of the plain branch after the switch against an edge (2/η or the SAM edge).
fn edge_verdict(claim: &str, o: &RunOutcome, run: &str, edge_name: &str, sam: bool) -> Verdict {
    let rs: Vec<&run::Record> = o.records_of(run, "after").collect();
    let l1 = mean(rs.iter().map(|r| r.eigenvalues[0]));
    let edge = mean(
        rs.iter()
            .map(|r| if sam { r.sam_edge } else { r.two_over_lr }),
    );
    let rel = (l1 - edge) / edge;
    Verdict::new(
        claim,
        rel.abs() <= EOS_BAND,
        format!(
            "mean λ₁ over {run} steps {}..{} = {l1:.2} vs {edge_name} = {edge:.2} ({:+.1} %, band ±{:.0} %)",
            rs.first().map_or(0, |r| r.step),
            rs.last().map_or(0, |r| r.step),
            100.0 * rel,
            100.0 * EOS_BAND
        ),
        &[("mean_sharpness", l1), ("edge", edge)],
    )
}

fn with_projection(spec: &RunSpec, o: &RunOutcome, prefix: &str) -> Vec<Verdict> {
    run::projection_verdict(spec, o)
        .into_iter()
        .map(|mut v| {
            v.claim = format!("{prefix}: {}", v.claim);
            v.text = format!("{prefix}: {}", v.text);
            v
        })
        .collect()
}

/// An edge-of-stability preset: `opt` (full batch) to step `steps_full` (quick 300), then the plain,
/// Dom- and Bulk- variants from the same point; the plain branch's sharpness against its edge.
fn edge_preset<B: Backend + Clone>(
    backend: B,
    m: &Mnist5k,
    ctx: &mut Ctx,
    name: &str,
    opt: OptimizerSpec,
    steps_full: usize,
    claim: &str,
) -> Result<PresetResult> {
    let start = Instant::now();
    let q = ctx.quick;
    let sam = opt.name == OptKind::Sam;
    let plain = opt.display();
    let mut spec = RunSpec::new(name, opt, if q { 300 } else { steps_full });
    spec.variants = vec![Projection::None, Projection::Dominant, Projection::Bulk];
    spec.steps_after = if q { 60 } else { 1000 };
    spec.record_every = if q { 10 } else { 20 };
    spec.top = Some(10);
    let dir = ctx.out.join(name);
    let outs = run_specs(&backend, m, &dir, std::slice::from_ref(&spec), false, ctx)?;
    let edge_name = if sam { "SAM edge" } else { "2/η" };
    let mut verdicts = vec![edge_verdict(claim, &outs[0], &plain, edge_name, sam)];
    verdicts.extend(with_projection(&spec, &outs[0], name));
    finish(
        &backend,
        name,
        &dir,
        &[spec],
        &outs,
        verdicts,
        ctx.wall_since(start),
        q,
        serde_json::Value::Null,
    )
}

/// fig. 9: full-batch GD at the edge of stability (η 0.1: λ₁ hovers at 2/η = 20), then GD,
/// Dom-GD and Bulk-GD from the same point.
fn fig9<B: Backend + Clone>(backend: B, m: &Mnist5k, ctx: &mut Ctx) -> Result<PresetResult> {
    edge_preset(
        backend,
        m,
        ctx,
        "fig9",
        OptimizerSpec::gd(0.1),
        2000,
        "fig9: GD at η = 0.1 trains at the edge of stability (λ₁ within ±10 % of 2/η)",
    )
}

/// fig. 10: full-batch SAM (η 0.01, ρ 0.1) at its edge of stability, then SAM, Dom-SAM and
/// Bulk-SAM from the same point.
fn fig10<B: Backend + Clone>(backend: B, m: &Mnist5k, ctx: &mut Ctx) -> Result<PresetResult> {
    let mut opt = OptimizerSpec::new(OptKind::Sam, 0.01, None);
    opt.rho = 0.1;
    edge_preset(
        backend,
        m,
        ctx,
        "fig10",
        opt,
        3000,
        "fig10: SAM (η 0.01, ρ 0.1) trains at its edge of stability (λ₁ within ±10 % of the SAM edge)",
    )
}

/// Table 2: Dom-LR and Bulk-LR (the effective step size along P_k∇L and P_k⊥∇L) of GD, GD with
/// momentum, Adam and Adam without momentum, full batch, mean and std over the first steps.
fn table2<B: Backend + Clone>(backend: B, m: &Mnist5k, ctx: &mut Ctx) -> Result<PresetResult> {
    let start = Instant::now();
    let q = ctx.quick;
    let steps = if q { 30 } else { 1000 };
    let mut adam = OptimizerSpec::new(OptKind::Adam, 1e-3, None);
    let mut adam_m = adam.clone();
    adam_m.beta1 = 0.0;
    adam.beta1 = 0.9;
    let opts = [
        ("gd", OptimizerSpec::gd(0.01)),
        ("gd-m", OptimizerSpec::new(OptKind::Momentum, 0.01, None)),
        ("adam", adam),
        ("adam-no-m", adam_m),
    ];
    let specs: Vec<RunSpec> = opts
        .iter()
        .map(|(n, o)| {
            let mut s = RunSpec::new(n, o.clone(), steps);
            s.effective_lr = true;
            s.record_every = if q { 5 } else { 50 };
            s.top = Some(10);
            s
        })
        .collect();
    let dir = ctx.out.join("table2");
    let outs = run_specs(&backend, m, &dir, &specs, false, ctx)?;
    let mut table = Vec::new();
    let mut ratio = Vec::new();
    for (s, o) in specs.iter().zip(&outs) {
        let leg = &o.legs[0];
        let r = leg.bulk_lr.mean / leg.dom_lr.mean;
        ratio.push((s.optimizer.display(), r, leg.dom_lr, leg.bulk_lr));
        table.push(serde_json::json!({
            "optimizer": s.optimizer.display(), "lr": s.optimizer.lr,
            "dom_lr_mean": leg.dom_lr.mean, "dom_lr_std": leg.dom_lr.std,
            "bulk_lr_mean": leg.bulk_lr.mean, "bulk_lr_std": leg.bulk_lr.std,
            "steps": leg.dom_lr.n,
        }));
    }
    let fmt = |(n, r, d, b): &(String, f64, run::Stats, run::Stats)| {
        format!(
            "{n}: Dom-LR {:.3e} ± {:.1e}, Bulk-LR {:.3e} ± {:.1e} (ratio {r:.2})",
            d.mean, d.std, b.mean, b.std
        )
    };
    // Exact up to the f32 round-off of the basis: 1e-6 relative.
    let gd_ok = (ratio[0].1 - 1.0).abs() < 1e-6 && (ratio[0].2.mean - 0.01).abs() < 1e-6 * 0.01;
    let adam_ok = ratio[2].1 > 1.0 && ratio[3].1 > 1.0;
    let verdicts = vec![
        Verdict::new(
            "table2: GD's effective learning rate is η in both subspaces (Dom-LR = Bulk-LR = η)",
            gd_ok,
            fmt(&ratio[0]),
            &[
                ("gd_dom_lr", ratio[0].2.mean),
                ("gd_bulk_lr", ratio[0].3.mean),
            ],
        ),
        Verdict::new(
            "table2: Adam (with and without momentum) steps further along the bulk than along the dominant subspace (Bulk-LR > Dom-LR)",
            adam_ok,
            format!("{}; {}; {}", fmt(&ratio[1]), fmt(&ratio[2]), fmt(&ratio[3])),
            &[
                ("gdm_ratio", ratio[1].1),
                ("adam_ratio", ratio[2].1),
                ("adam_no_m_ratio", ratio[3].1),
            ],
        ),
    ];
    finish(
        &backend,
        "table2",
        &dir,
        &specs,
        &outs,
        verdicts,
        ctx.wall_since(start),
        q,
        serde_json::json!({ "table": table }),
    )
}

/// figs. 18–19: under full-batch GD (η 0.01) χ_k stays ≈ 0, and GD and SGD from the same
/// initialisation stay close.
fn fig18_19<B: Backend + Clone>(backend: B, m: &Mnist5k, ctx: &mut Ctx) -> Result<PresetResult> {
    let start = Instant::now();
    let q = ctx.quick;
    let mk = |name: &str, o: OptimizerSpec| {
        let mut s = RunSpec::new(name, o, if q { 300 } else { 3000 });
        s.record_every = if q { 25 } else { 50 };
        s.top = Some(10);
        s
    };
    let specs = [
        mk("gd", OptimizerSpec::gd(0.01)),
        mk("sgd", OptimizerSpec::sgd(0.01, 50)),
    ];
    let dir = ctx.out.join("fig18-19");
    let outs = run_specs(&backend, m, &dir, &specs, true, ctx)?;
    let (gd, sg) = (&outs[0], &outs[1]);
    let pair: Vec<serde_json::Value> = gd
        .records
        .iter()
        .zip(&sg.records)
        .zip(gd.thetas.iter().zip(&sg.thetas))
        .map(|((a, _), (ta, tb))| serde_json::json!({"step": a.step, "dist_gd_sgd": run::dist(ta, tb)}))
        .collect();
    write_atomic(&dir.join("pair.csv"), to_csv(&pair)?.as_bytes())?;
    let half = |o: &RunOutcome| {
        let rs: Vec<&run::Record> = o.records.iter().collect();
        mean(second_half(&rs).iter().map(|r| r.chi_k))
    };
    let (gd_mean, sgd_mean) = (half(gd), half(sg));
    let d_pair = match (gd.thetas.last(), sg.thetas.last()) {
        (Some(a), Some(b)) => run::dist(a, b),
        _ => f64::NAN,
    };
    let d_travel = sg.records.last().map_or(f64::NAN, |r| r.dist_init);
    let verdicts = vec![
        Verdict::new(
            "fig18-19: under full-batch GD (small η) the gradient is not aligned with the top-k subspace (χ_k < 0.2)",
            gd_mean < GD_CHI_MAX,
            format!(
                "mean χ₁₀ over the second half: GD {gd_mean:.2e}, SGD {sgd_mean:.3} (threshold GD < {GD_CHI_MAX})"
            ),
            &[
                ("gd_mean_chi_second_half", gd_mean),
                ("sgd_mean_chi_second_half", sgd_mean),
            ],
        ),
        Verdict::new(
            "fig18-19: GD and SGD from the same initialisation stay closer to each other than to where they started",
            d_pair < d_travel,
            format!(
                "after {} steps ‖θ_GD − θ_SGD‖ = {d_pair:.3}, ‖θ_SGD − θ_0‖ = {d_travel:.3}",
                specs[0].steps
            ),
            &[("dist_gd_sgd", d_pair), ("dist_sgd_init", d_travel)],
        ),
    ];
    finish(
        &backend,
        "fig18-19",
        &dir,
        &specs,
        &outs,
        verdicts,
        ctx.wall_since(start),
        q,
        serde_json::Value::Null,
    )
}
