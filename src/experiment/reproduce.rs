//! `reproduce`: the paper's figures as presets, each writing `metrics.csv` and `summary.json` to
//! its own directory and returning its verdicts.

use super::sgd::{self, SgdProtocol, Switch};
use super::toy::{self, ToyMethod};
use super::verdict::Verdict;
use crate::backend::{Backend, LossKind};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::nn::mlp::MlpSpec;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The presets implemented so far.
pub const PRESETS: &[&str] = &["fig1", "fig1-ce", "fig2-3", "fig6-7", "fig9", "fig18-19"];

/// What a preset produced.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PresetResult {
    pub preset: String,
    pub quick: bool,
    pub verdicts: Vec<Verdict>,
    pub wall_seconds: f64,
    pub dir: PathBuf,
}

/// χ_k along SGD: its EMA must exceed this somewhere (the paper's switch threshold).
pub const SGD_CHI_EMA_MIN: f64 = 0.95;
/// χ_k along full-batch GD must average below this over the second half.
pub const GD_CHI_MAX: f64 = 0.2;

/// At the edge of stability the sharpness λ₁ must lie within this fraction of 2/η.
pub const EOS_BAND: f64 = 0.10;

/// χ₁ under GD must end below this.
pub const TOY_GD_CHI_MAX: f64 = 0.2;
/// χ₁ under SGD must average above this over the second half of the run.
pub const TOY_SGD_CHI_MIN: f64 = 0.95;

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
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

fn summary(dir: &Path, value: serde_json::Value) -> Result<()> {
    let text =
        serde_json::to_string_pretty(&value).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    write_atomic(&dir.join("summary.json"), text.as_bytes())
}

/// fig. 6–7: the 2-D toy under GD, SGD, Dom-SGD and Bulk-SGD from (1, 1), η = 1e-4.
pub fn toy(out: &Path, quick: bool) -> Result<PresetResult> {
    let start = Instant::now();
    let steps = if quick { 2000 } else { 20000 };
    let (lr, seed) = (1e-4, 0);
    let dir = out.join("fig6-7");
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for m in ToyMethod::ALL {
        let pts = toy::run(m, 1.0, 1.0, lr, steps, seed);
        for p in &pts {
            rows.push((m.name(), *p));
        }
        runs.push((m, pts));
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
    let csv_rows: Vec<R> = rows
        .iter()
        .map(|(m, p)| R {
            method: m,
            step: p.step,
            x: p.x,
            y: p.y,
            loss: p.loss,
            chi_1: p.chi,
        })
        .collect();
    write_atomic(&dir.join("metrics.csv"), to_csv(&csv_rows)?.as_bytes())?;
    let get = |m: ToyMethod| {
        &runs
            .iter()
            .find(|(r, _)| *r == m)
            .expect("every method ran")
            .1
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
    })
}

/// fig. 1 (and its CE variant): SGD, then SGD / Dom-SGD / Bulk-SGD from the switch point.
pub fn fig1<B: Backend + Clone>(
    backend: B,
    data: &Dataset,
    out: &Path,
    quick: bool,
    loss: LossKind,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<PresetResult> {
    let name = if loss == LossKind::Ce {
        "fig1-ce"
    } else {
        "fig1"
    };
    let spec = MlpSpec::fc_tanh();
    let proto = SgdProtocol {
        lr: 0.01,
        batch: Some(50),
        k: 10,
        // Quick: a fixed switch step instead of the χ-EMA rule (which needs a spectrum every step).
        switch: if quick {
            Switch::AtStep(300)
        } else {
            Switch::ChiEma {
                threshold: 0.95,
                max_steps: 3000,
            }
        },
        steps_after: if quick { 60 } else { 1000 },
        record_every: if quick { 10 } else { 20 },
        tol: 1e-3,
        seed: 0,
        loss,
    };
    switch_preset(
        backend,
        name,
        &spec,
        data,
        out,
        quick,
        &proto,
        |_| Vec::new(),
        progress,
    )
}

/// Run a switch protocol (fig1, fig9), write its files, and return the protocol's verdict after
/// those `extra` derives from the outcome.
#[allow(clippy::too_many_arguments)]
fn switch_preset<B: Backend + Clone>(
    backend: B,
    name: &str,
    spec: &MlpSpec,
    data: &Dataset,
    out: &Path,
    quick: bool,
    proto: &SgdProtocol,
    extra: impl FnOnce(&sgd::SgdOutcome) -> Vec<Verdict>,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<PresetResult> {
    let start = Instant::now();
    let o = sgd::run(backend.clone(), spec, data, proto, progress)?;
    let dir = out.join(name);
    write_atomic(&dir.join("metrics.csv"), to_csv(&o.rows)?.as_bytes())?;
    let mut verdicts = extra(&o);
    verdicts.extend(o.verdicts.iter().cloned());
    let wall = start.elapsed().as_secs_f64();
    summary(
        &dir,
        serde_json::json!({
            "preset": name, "quick": quick, "version": env!("CARGO_PKG_VERSION"),
            "spec": {"model": format!("fc-{} {:?}", spec.activation.name(), spec.widths),
                     "data": format!("MNIST-5k first {} samples, normalize", data.n), "protocol": proto},
            "backend": backend.name(), "adapter": backend.adapter(),
            "switch_step": o.switch_step, "final_loss": o.final_loss,
            "wall_seconds": wall, "verdicts": verdicts,
        }),
    )?;
    Ok(PresetResult {
        preset: name.into(),
        quick,
        verdicts,
        wall_seconds: wall,
        dir,
    })
}

fn trajectory_rows(run: &str, rows: &[sgd::TrajectoryRow]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            m.insert("run".into(), run.into());
            m.insert("step".into(), r.step.into());
            m.insert("loss".into(), r.loss.into());
            m.insert("accuracy".into(), r.accuracy.into());
            m.insert("chi_k".into(), r.chi_k.into());
            m.insert("chi_ema".into(), r.chi_ema.into());
            m.insert("dist_init".into(), r.dist_init.into());
            for (i, v) in r.values.iter().enumerate() {
                m.insert(format!("lambda_{}", i + 1), (*v).into());
            }
            serde_json::Value::Object(m)
        })
        .collect()
}

fn second_half_mean(rows: &[sgd::TrajectoryRow]) -> f64 {
    let h = &rows[rows.len() / 2..];
    h.iter().map(|r| r.chi_k).sum::<f64>() / h.len().max(1) as f64
}

/// figs. 2–3: top-2k eigenvalues and χ_k(∇L) along SGD (η 0.01, batch 50, k 10).
pub fn fig2_3<B: Backend + Clone>(
    backend: B,
    data: &Dataset,
    out: &Path,
    quick: bool,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<PresetResult> {
    let start = Instant::now();
    let cfg = sgd::TrajectoryConfig {
        lr: 0.01,
        batch: Some(50),
        steps: if quick { 300 } else { 3000 },
        record_every: if quick { 25 } else { 50 },
        k: 10,
        top: 20,
        tol: 1e-3,
        seed: 0,
        loss: LossKind::Mse,
    };
    let rows = sgd::trajectory(backend.clone(), &MlpSpec::fc_tanh(), data, &cfg, progress)?;
    let dir = out.join("fig2-3");
    write_atomic(
        &dir.join("metrics.csv"),
        to_csv(&trajectory_rows("SGD", &rows))?.as_bytes(),
    )?;
    let max_ema = rows
        .iter()
        .map(|r| r.chi_ema)
        .fold(f64::NEG_INFINITY, f64::max);
    let mean = second_half_mean(&rows);
    let last = rows
        .last()
        .ok_or_else(|| Error::InvalidArgument("no records".into()))?;
    let gap = last.values[cfg.k - 1] / last.values[cfg.k];
    let verdicts = vec![Verdict::new(
        "fig2-3: along SGD the gradient aligns with the top-k subspace (EMA of χ_k exceeds 0.95)",
        max_ema > SGD_CHI_EMA_MIN,
        format!(
            "max EMA(χ₁₀) over {} records to step {} = {max_ema:.3}, mean χ₁₀ over the second half = {mean:.3}; λ₁ {:.2}, λ₁₀/λ₁₁ = {gap:.3} at the end",
            rows.len(),
            cfg.steps,
            last.values[0]
        ),
        &[
            ("max_chi_ema", max_ema),
            ("mean_chi_second_half", mean),
            ("lambda_1_end", last.values[0]),
            ("lambda_k_over_k1_end", gap),
        ],
    )];
    let wall = start.elapsed().as_secs_f64();
    summary(
        &dir,
        serde_json::json!({
            "preset": "fig2-3", "quick": quick, "version": env!("CARGO_PKG_VERSION"),
            "spec": {"model": "fc-tanh 784-200-200-10", "data": "MNIST-5k, normalize", "trajectory": cfg},
            "backend": backend.name(), "adapter": backend.adapter(),
            "wall_seconds": wall, "verdicts": verdicts,
        }),
    )?;
    Ok(PresetResult {
        preset: "fig2-3".into(),
        quick,
        verdicts,
        wall_seconds: wall,
        dir,
    })
}

/// figs. 18–19: under full-batch GD (η 0.01) χ_k stays ≈ 0, and GD and SGD from the same
/// initialisation stay close.
pub fn fig18_19<B: Backend + Clone>(
    backend: B,
    data: &Dataset,
    out: &Path,
    quick: bool,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<PresetResult> {
    let start = Instant::now();
    let base = sgd::TrajectoryConfig {
        lr: 0.01,
        batch: None,
        steps: if quick { 300 } else { 3000 },
        record_every: if quick { 25 } else { 50 },
        k: 10,
        top: 10,
        tol: 1e-3,
        seed: 0,
        loss: LossKind::Mse,
    };
    let spec = MlpSpec::fc_tanh();
    let gd = sgd::trajectory(backend.clone(), &spec, data, &base, progress)?;
    let sgd_cfg = sgd::TrajectoryConfig {
        batch: Some(50),
        ..base.clone()
    };
    let sg = sgd::trajectory(backend.clone(), &spec, data, &sgd_cfg, progress)?;
    let dir = out.join("fig18-19");
    let mut rows = trajectory_rows("GD", &gd);
    rows.extend(trajectory_rows("SGD", &sg));
    for (r, (a, b)) in rows
        .iter_mut()
        .zip(gd.iter().zip(&sg).chain(gd.iter().zip(&sg)))
    {
        let d: f64 = a
            .theta
            .iter()
            .zip(&b.theta)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt();
        if let Some(m) = r.as_object_mut() {
            m.insert("dist_gd_sgd".into(), d.into());
        }
    }
    write_atomic(&dir.join("metrics.csv"), to_csv(&rows)?.as_bytes())?;
    let gd_mean = second_half_mean(&gd);
    let sgd_mean = second_half_mean(&sg);
    let (lg, ls) = (gd.last(), sg.last());
    let (d_pair, d_travel) = match (lg, ls) {
        (Some(a), Some(b)) => (
            a.theta
                .iter()
                .zip(&b.theta)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f64>()
                .sqrt(),
            b.dist_init,
        ),
        _ => (f64::NAN, f64::NAN),
    };
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
                base.steps
            ),
            &[("dist_gd_sgd", d_pair), ("dist_sgd_init", d_travel)],
        ),
    ];
    let wall = start.elapsed().as_secs_f64();
    summary(
        &dir,
        serde_json::json!({
            "preset": "fig18-19", "quick": quick, "version": env!("CARGO_PKG_VERSION"),
            "spec": {"model": "fc-tanh 784-200-200-10", "data": "MNIST-5k, normalize", "gd": base, "sgd": sgd_cfg},
            "backend": backend.name(), "adapter": backend.adapter(),
            "wall_seconds": wall, "verdicts": verdicts,
        }),
    )?;
    Ok(PresetResult {
        preset: "fig18-19".into(),
        quick,
        verdicts,
        wall_seconds: wall,
        dir,
    })
}

/// fig. 9: full-batch GD at the edge of stability (η 0.1: λ₁ hovers at 2/η = 20), then GD, Dom-GD
/// and Bulk-GD from the same point.
pub fn fig9<B: Backend + Clone>(
    backend: B,
    data: &Dataset,
    out: &Path,
    quick: bool,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<PresetResult> {
    let proto = SgdProtocol {
        lr: 0.1,
        batch: None,
        k: 10,
        switch: Switch::AtStep(if quick { 300 } else { 2000 }),
        steps_after: if quick { 60 } else { 1000 },
        record_every: if quick { 10 } else { 20 },
        tol: 1e-3,
        seed: 0,
        loss: LossKind::Mse,
    };
    let edge = 2.0 / proto.lr;
    let eos = |o: &sgd::SgdOutcome| {
        // Sharpness over the GD branch's records after the switch (still at the edge).
        let gd: Vec<f64> = o
            .rows
            .iter()
            .filter(|r| r.run == "GD")
            .map(|r| r.lambda_1)
            .collect();
        let mean_l1 = gd.iter().sum::<f64>() / gd.len().max(1) as f64;
        vec![Verdict::new(
            "fig9: GD at η = 0.1 trains at the edge of stability (λ₁ within ±10 % of 2/η)",
            (mean_l1 - edge).abs() <= EOS_BAND * edge,
            format!(
                "mean λ₁ over GD steps {}..{} = {mean_l1:.2} vs 2/η = {edge:.1} ({:+.1} %)",
                o.switch_step,
                o.switch_step + proto.steps_after,
                100.0 * (mean_l1 - edge) / edge
            ),
            &[("mean_sharpness", mean_l1), ("two_over_lr", edge)],
        )]
    };
    switch_preset(
        backend,
        "fig9",
        &MlpSpec::fc_tanh(),
        data,
        out,
        quick,
        &proto,
        eos,
        progress,
    )
}
