//! The generic preset runner: a preset's run specs one after another into its directory, with
//! resume (`checkpoint.json`, `resume/<run>/done.json`), the presets computed from another's run,
//! the toy, and the summary every preset writes. What a preset runs and how it is judged is the
//! registry's ([`crate::paper::presets`]).

use super::output::{CHECKPOINT_JSON, CsvSink, clear_checkpoint, load_checkpoint, write_atomic};
use super::plot;
use super::run::{self, RunOutcome};
use super::spec::RunSpec;
use super::toy::{self, ToyMethod};
use super::verdict::Verdict;
use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::data::load::DatasetKind;
use crate::error::{Error, Result};
use crate::paper::claims::VERDICT_RULES;
use crate::paper::judges::toy_verdicts;
use crate::paper::presets::{
    self, JudgeInputs, fig6_7, judge, preset_specs, with_checkpoints, with_samples,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

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
    /// Write a single-run preset's state at its switch to `OUT/<preset>/snapshot/`
    /// (`--snapshot-at-switch`; the `dir` given here is replaced by that).
    pub snapshot: Option<super::output::SnapshotTo>,
    /// Train on the first `samples` samples instead of the preset's (`reproduce --samples`; a
    /// change of protocol that the spec, and so `spec.toml` and the summary, records).
    pub samples: Option<usize>,
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
            snapshot: None,
            samples: None,
            fig1: None,
            earlier: None,
        }
    }

    /// The spec a preset runs: `spec` with `--samples` applied, then lowered to the CIFAR-10
    /// records at hand ([`DataSets::clamp`]).
    fn protocol(&self, m: &DataSets, spec: &RunSpec) -> RunSpec {
        m.clamp(&with_samples(spec, self.samples))
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

/// Write `summary.json` into `dir`.
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

pub use crate::data::sets::DataSets;

/// What the runs of a command need of the data sets.
impl DataSets {
    /// Load what `specs` read from `dir` (fetching where needed).
    pub fn for_specs(
        specs: &[RunSpec],
        dir: &std::path::Path,
        log: &mut dyn FnMut(&str),
    ) -> Result<Self> {
        let mut d = DataSets::default();
        for s in specs {
            d.ensure(s.dataset(), dir, log)?;
        }
        Ok(d)
    }
    /// Samples of `kind` at hand (the paper's 5000, fewer for CIFAR-10 where only those are).
    pub fn available(&self, kind: DatasetKind) -> usize {
        match kind {
            DatasetKind::Mnist => crate::data::mnist::N,
            DatasetKind::Cifar10 => self.cifar10.as_ref().map_or(0, |c| c.n()),
            DatasetKind::Sst2 => crate::data::sst2::N,
        }
    }
    /// `spec` with `data.samples` lowered to the CIFAR-10 records at hand (the paper's 5000 where
    /// only 4000 are here): the spec then says what was run.
    pub fn clamp(&self, spec: &RunSpec) -> RunSpec {
        let mut s = spec.clone();
        if s.dataset() == DatasetKind::Cifar10 {
            let have = self.available(DatasetKind::Cifar10);
            if have > 0 && s.data.samples > have {
                s.data.samples = have;
            }
        }
        s
    }
    /// What the data of `spec` are, e.g. "CIFAR10-4k (first 4000 of the 5000 the paper uses)", or
    /// "the first 500 samples of …" when the spec takes fewer than are at hand (`--samples`).
    pub fn describe(&self, spec: &RunSpec) -> String {
        let kind = spec.dataset();
        let all = match kind {
            DatasetKind::Mnist => "MNIST-5k".into(),
            DatasetKind::Cifar10 => self
                .cifar10
                .as_ref()
                .map_or("CIFAR-10 (not loaded)".into(), |c| c.describe()),
            DatasetKind::Sst2 => "SST2-1k".into(),
        };
        let n = spec.data.samples;
        if n < self.available(kind) {
            format!("the first {n} samples of {all}")
        } else {
            all
        }
    }
}

/// The dataset a spec asks for. CIFAR-10 asked for more records than are at hand uses those
/// at hand (the spec's `data.samples` is then lowered by the caller, and outputs say so).
pub fn dataset_for(m: &DataSets, spec: &RunSpec) -> Result<Dataset> {
    m.dataset(spec.dataset(), &spec.preprocess(), spec.data.samples)
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

/// What an earlier invocation left for one run of a preset of several runs.
enum Earlier {
    None,
    Done(Box<DoneRun>),
    Stopped(Box<(run::Checkpoint, run::Vectors)>),
}

impl Earlier {
    /// What `run_dir` (`resume/<run>/`) holds for `spec`. Errors: a corrupt file, or one written
    /// for another spec (named).
    fn read(run_dir: &Path, spec: &RunSpec) -> Result<Self> {
        let done = run_dir.join(DONE_JSON);
        Ok(if done.exists() {
            let text = std::fs::read_to_string(&done).map_err(|e| Error::io(&done, e))?;
            let d: DoneRun = serde_json::from_str(&text)
                .map_err(|e| Error::data(&done, format!("not a finished run: {e}")))?;
            if !d.spec.differences(spec).is_empty() {
                return Err(stale(&done, &d.spec, spec));
            }
            Earlier::Done(Box::new(d))
        } else if run_dir.join(CHECKPOINT_JSON).exists() {
            let (c, v) = load_checkpoint(run_dir)?;
            if !c.spec.differences(spec).is_empty() {
                return Err(stale(run_dir, &c.spec, spec));
            }
            Earlier::Stopped(Box::new((c, v)))
        } else {
            Earlier::None
        })
    }
}

impl DoneRun {
    /// Keep a finished run of `spec` in `run_dir/done.json` (and drop its checkpoint).
    fn write(run_dir: &Path, spec: &RunSpec, out: &RunOutcome, elapsed_s: f64) -> Result<()> {
        let d = DoneRun {
            spec: spec.clone(),
            switch_step: out.switch_step,
            switch_rule_fired: out.switch_rule_fired,
            legs: out.legs.clone(),
            records: out.records.clone(),
            elapsed_s,
        };
        let json = serde_json::to_string(&d).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        write_atomic(&run_dir.join(DONE_JSON), json.as_bytes())?;
        clear_checkpoint(run_dir)
    }
}

/// Run specs one after another into one directory: `spec.toml` (or `spec-<name>.toml` when there
/// are several), one `metrics.csv` for all, and the outcomes. With `ctx.resume` a stopped preset
/// continues: a single run from `checkpoint.json`; several runs (not keeping θ) skip the ones
/// that finished (`resume/<run>/done.json`) and continue the one that was stopped
/// (`resume/<run>/checkpoint.json`), so `metrics.csv` ends as an uninterrupted invocation's.
pub fn run_specs<B: Backend + Clone>(
    backend: &B,
    m: &DataSets,
    dir: &Path,
    specs: &[RunSpec],
    keep_theta: bool,
    ctx: &mut Ctx,
) -> Result<Vec<RunOutcome>> {
    let specs: &[RunSpec] = &specs.iter().map(|s| m.clamp(s)).collect::<Vec<_>>();
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
        let (c, v) = load_checkpoint(dir)?;
        if !c.spec.differences(&specs[0]).is_empty() {
            return Err(stale(dir, &c.spec, &specs[0]));
        }
        resume = Some((c, v));
    } else {
        clear_checkpoint(dir)?;
    }
    // A refused resume changes nothing: every finished or stopped run is read and checked
    // against this preset's spec before any file is touched, and kept for the loop below.
    let mut earlier_runs: Vec<Earlier> = Vec::new();
    if ctx.resume && multi_resumable {
        for spec in specs {
            earlier_runs.push(Earlier::read(&resume_root.join(&spec.name), spec)?);
        }
    }
    if !(ctx.resume && multi_resumable) && resume_root.exists() {
        std::fs::remove_dir_all(&resume_root).map_err(|e| Error::io(&resume_root, e))?;
    }
    let mut earlier_runs = earlier_runs.into_iter();
    let mut earlier_s = 0.0;
    let mut resumed_at = None;
    for (i, spec) in specs.iter().enumerate() {
        let spec = &with_checkpoints(spec.clone(), ctx.quick, single || multi_resumable);
        let file = if single {
            "spec.toml".to_string()
        } else {
            format!("spec-{}.toml", spec.name)
        };
        write_atomic(&dir.join(file), spec.to_toml()?.as_bytes())?;
        let run_dir = resume_root.join(&spec.name);
        let mut resume = resume.take();
        match earlier_runs.next().unwrap_or(Earlier::None) {
            Earlier::Done(d) => {
                let d = *d;
                // Its rows go back into metrics.csv, in the order of an uninterrupted run.
                CsvSink::create(dir, top, &d.records, i > 0, ctx.stop.clone(), ctx.progress)?
                    .materialize()?;
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
            Earlier::Stopped(c) => resume = Some(*c),
            Earlier::None => {}
        }
        let data = dataset_for(m, spec)?;
        let mut run_earlier = 0.0;
        if let Some((c, _)) = &resume {
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
        if single {
            sink.snapshot = ctx.snapshot.clone().map(|mut t| {
                t.dir = dir.join("snapshot");
                t
            });
        }
        if !single {
            sink.ckpt_dir = run_dir.clone();
        }
        sink.weights = Some(
            super::final_weights::WeightsTo {
                dir: dir.to_path_buf(),
                spec: spec.net()?,
                loss: spec.loss,
            }
            .sink(),
        );
        let started = Instant::now();
        let out = run::run(backend.clone(), spec, &data, keep_theta, resume, &mut sink)?;
        if multi_resumable {
            let elapsed = run_earlier + started.elapsed().as_secs_f64();
            DoneRun::write(&run_dir, spec, &out, elapsed)?;
        }
        outs.push(out);
    }
    if let Some(step) = resumed_at {
        ctx.earlier = Some((earlier_s, step));
    }
    Ok(outs)
}

fn stale(dir: &Path, was: &RunSpec, now: &RunSpec) -> Error {
    Error::InvalidArgument(format!(
        "the checkpoint in {} was written for another spec of this preset (another version, --quick, or --samples: {}); \
         nothing was changed: give the same flags, or remove it to start over",
        dir.display(),
        was.differences(now).join("; ")
    ))
}

/// A judged preset, for its summary.
struct Judged<'a> {
    name: &'a str,
    dir: &'a Path,
    specs: &'a [RunSpec],
    outs: &'a [RunOutcome],
    verdicts: Vec<Verdict>,
    extra: serde_json::Value,
}

/// Write a judged preset's plot and `summary.json`.
/// `density.png` from the run's `density.json` (absent: nothing to draw).
fn density_plot(dir: &Path, title: &str) -> Result<()> {
    let path = dir.join("density.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let recs: Vec<super::density::DensityRecord> =
        serde_json::from_str(&text).map_err(|e| Error::data(&path, e.to_string()))?;
    let t = format!("{title}: the Hessian's spectral density along the run (SLQ)");
    super::plot_density::densities_png(&dir.join("density.png"), &t, &recs)
}

fn finish<B: Backend>(
    backend: &B,
    j: Judged,
    (wall, resumed_at): (f64, Option<usize>),
    quick: bool,
) -> Result<PresetResult> {
    let Judged {
        name,
        dir,
        specs,
        outs,
        verdicts,
        extra,
    } = j;
    let records: Vec<run::Record> = outs.iter().flat_map(|o| o.records.clone()).collect();
    let switch = outs.first().and_then(|o| o.switch_step);
    let k = specs.first().map_or(10, |s| s.k);
    let title = match presets::find(name) {
        Some(p) => format!("{name}: {}{}", p.figure, if quick { ", quick" } else { "" }),
        None => name.to_string(),
    };
    plot::metrics_png_with(
        &dir.join("metrics.png"),
        &title,
        &records,
        k,
        switch,
        &verdicts,
    )?;
    // The Hessian's density along the run (`density_every`: fig1).
    if specs.iter().any(|s| s.density_every > 0) {
        density_plot(dir, &title)?;
    }
    // The switch-step study's table and plot (its judge's `extra.forks`).
    if let Some(forks) = extra.get("forks") {
        let rows: Vec<crate::paper::presets::switch_sweep::ForkRow> =
            serde_json::from_value(forks.clone())
                .map_err(|e| Error::data(dir.join("summary.json"), e.to_string()))?;
        write_atomic(
            &dir.join("sweep.csv"),
            super::plot_sweep::sweep_csv(&rows).as_bytes(),
        )?;
        super::plot_sweep::sweep_png(&dir.join("sweep.png"), name, &rows)?;
    }
    summary(
        dir,
        serde_json::json!({
            "preset": name, "quick": quick, "version": env!("CARGO_PKG_VERSION"),
            "specs": specs, "backend": backend.name(), "adapter": backend.adapter(),
            "runs": outs, "extra": extra, "fork_step": switch,
            "results": super::final_weights::leg_results(
                dir,
                &outs.iter().flat_map(|o| &o.legs).collect::<Vec<_>>(),
            ),
            "wall_seconds": wall, "resumed_at_step": resumed_at, "verdicts": verdicts,
            "verdict_rules": VERDICT_RULES,
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

/// Run one preset by name (the toy, fig6-7, needs no data: see [`toy`]). Errors: an unknown
/// preset, and whatever its runs meet.
pub fn preset<B: Backend + Clone>(
    backend: B,
    name: &str,
    m: &DataSets,
    ctx: &mut Ctx,
) -> Result<PresetResult> {
    if presets::get(name)?.is_toy() {
        toy(&ctx.out, ctx.quick)
    } else {
        network_preset(backend, name, m, ctx)
    }
}

/// fig. 6–7: the 2-D toy under GD, SGD, Dom-SGD and Bulk-SGD from (1, 1), η = 1e-4.
pub fn toy(out: &Path, quick: bool) -> Result<PresetResult> {
    let start = Instant::now();
    let steps = fig6_7::toy_steps(quick);
    let (lr, seed) = (fig6_7::TOY_LR, fig6_7::TOY_SEED);
    let dir = out.join(fig6_7::NAME);
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
    let verdicts = toy_verdicts(&named, steps);
    let wall = start.elapsed().as_secs_f64();
    summary(
        &dir,
        serde_json::json!({
            "preset": fig6_7::NAME, "quick": quick, "version": env!("CARGO_PKG_VERSION"),
            "spec": {"loss": "½(1000x² + y²) ± 100xy", "start": [1.0, 1.0], "lr": lr, "steps": steps, "seed": seed},
            "wall_seconds": wall, "verdicts": verdicts, "verdict_rules": VERDICT_RULES,
        }),
    )?;
    Ok(PresetResult {
        preset: fig6_7::NAME.into(),
        quick,
        verdicts,
        wall_seconds: wall,
        dir,
        resumed_at: None,
    })
}

/// fig. 1's run, for the presets computed from it (fig22, fig2-3): from this invocation, else
/// from a finished run of the same protocol in `OUT/fig1` ([`finished_fig1`]; its `metrics.csv` and
/// spec are copied into `dir`), else run here into `dir`. Also returns `extra` for the summary.
fn fig1_run<B: Backend + Clone>(
    backend: &B,
    m: &DataSets,
    ctx: &mut Ctx,
    dir: &Path,
    base: &str,
) -> Result<(RunSpec, RunOutcome, serde_json::Value)> {
    let protocol = ctx.protocol(m, &preset_specs(base, ctx.quick)?.remove(0));
    let earlier = match ctx.fig1.clone() {
        Some((q, s, o)) if q == ctx.quick && s.name == protocol.name => Some((s, o, None)),
        _ => finished_fig1(&ctx.out, &protocol, ctx.quick)
            .map(|(o, done)| (protocol.clone(), o, Some(done))),
    };
    match earlier {
        Some((s, o, from_disk)) => {
            write_atomic(&dir.join("spec.toml"), s.to_toml()?.as_bytes())?;
            write_atomic(
                &dir.join("metrics.csv"),
                run::Record::csv(&o.records, s.top()).as_bytes(),
            )?;
            let extra = match from_disk {
                Some((wall, fig1_backend)) => serde_json::json!({
                    "fig1_run": ctx.out.join(base),
                    "fig1_wall_seconds": wall,
                    "fig1_backend": fig1_backend,
                }),
                None => serde_json::json!({ "fig1_run": "this invocation" }),
            };
            Ok((s, o, extra))
        }
        None => {
            let o = run_specs(backend, m, dir, std::slice::from_ref(&protocol), false, ctx)?
                .into_iter()
                .next()
                .ok_or_else(|| Error::Shape("no run".into()))?;
            ctx.fig1 = Some((ctx.quick, protocol.clone(), o.clone()));
            Ok((protocol, o, serde_json::Value::Null))
        }
    }
}

/// `a`'s fields with `b`'s added (an object and an object), else whichever is not null.
pub(crate) fn merge_extra(a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    match (a, b) {
        (serde_json::Value::Object(mut x), serde_json::Value::Object(y)) => {
            x.extend(y);
            serde_json::Value::Object(x)
        }
        (serde_json::Value::Null, y) => y,
        (x, _) => x,
    }
}

/// A preset of one or more network runs: run its specs, judge, write the summary.
fn network_preset<B: Backend + Clone>(
    backend: B,
    name: &str,
    m: &DataSets,
    ctx: &mut Ctx,
) -> Result<PresetResult> {
    let start = Instant::now();
    let dir = ctx.out.join(name);
    let row = presets::get(name)?;
    let mut inputs = JudgeInputs::default();
    let (specs, outs, extra) = match row.derives_from() {
        Some(base) => {
            let (s, o, extra) = fig1_run(&backend, m, ctx, &dir, base)?;
            (vec![s], vec![o], extra)
        }
        None => {
            let specs: Vec<RunSpec> = preset_specs(name, ctx.quick)?
                .iter()
                .map(|s| ctx.protocol(m, s))
                .collect();
            let keep_theta = row.paired;
            let outs = run_specs(&backend, m, &dir, &specs, keep_theta, ctx)?;
            if row.is_base() {
                ctx.fig1 = Some((ctx.quick, specs[0].clone(), outs[0].clone()));
            }
            if keep_theta {
                inputs.pair_distance = Some(fig18_19_pair(&dir, &outs)?);
            }
            (specs, outs, serde_json::Value::Null)
        }
    };
    let (verdicts, judged_extra) = judge(name, &specs, &outs, &inputs)?;
    let data = serde_json::json!({ "data": m.describe(&specs[0]) });
    let extra = merge_extra(data, extra);
    let judged = Judged {
        name,
        dir: &dir,
        specs: &specs,
        outs: &outs,
        verdicts,
        extra: merge_extra(extra, judged_extra),
    };
    finish(&backend, judged, ctx.wall_since(start), ctx.quick)
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
    let dir = out.join(&spec.name);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).ok()?).ok()?;
    let same = summary["preset"] == spec.name.as_str()
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

/// fig18-19's pairing: `pair.csv` (‖θ_GD − θ_SGD‖ at every record) and the last distance.
fn fig18_19_pair(dir: &Path, outs: &[RunOutcome]) -> Result<f64> {
    let (gd, sg) = (&outs[0], &outs[1]);
    let pair: Vec<serde_json::Value> = gd
        .records
        .iter()
        .zip(&sg.records)
        .zip(gd.thetas.iter().zip(&sg.thetas))
        .map(|((a, _), (ta, tb))| serde_json::json!({"step": a.step, "dist_gd_sgd": run::dist(ta, tb)}))
        .collect();
    write_atomic(&dir.join("pair.csv"), to_csv(&pair)?.as_bytes())?;
    Ok(match (gd.thetas.last(), sg.thetas.last()) {
        (Some(a), Some(b)) => run::dist(a, b),
        _ => f64::NAN,
    })
}
