//! `spectrum --density / --trace / --per-layer`: the whole spectrum at given weights, not only its
//! top — the spectral density by stochastic Lanczos quadrature ([`crate::hessian::slq`]), the
//! trace ([`crate::hessian::trace`]), the top eigenvalues of each layer's diagonal block
//! ([`crate::hessian::layers`]) — on the engine and with the top-k eigenpairs that the top-k
//! solve of [`super::spectrum_parts`] leaves.

use super::{At, SpectrumOptions, SpectrumReport, spectrum_parts};
use crate::backend::{Backend, LossKind};
use crate::error::Result;
use crate::hessian::lanczos::{LanczosOptions, Progress};
use crate::hessian::layers::{
    LayerDensity, LayerSpectrum, layer_densities, layer_spectra, param_blocks,
};
use crate::hessian::slq::{Density, DensityOptions, Quadrature, SlqOptions, slq};
use crate::hessian::trace::{TraceEstimate, TraceMethod, deflated, hutch_plus_plus, hutchinson};
use std::time::Instant;

/// What to compute beyond the top-k spectrum (each part only when asked).
#[derive(Clone, Debug, Default)]
pub struct WholeOptions {
    /// The density: SLQ's probes, steps and seed, and the grid.
    pub density: Option<(SlqOptions, DensityOptions)>,
    /// The trace: the method and its probes (Hutch++: its products) and seed.
    pub trace: Option<(TraceMethod, usize, u64)>,
    /// Per-layer spectra: the top this many eigenvalues of each block (at most its length).
    pub per_layer: Option<usize>,
}

/// The density part of a [`WholeReport`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct DensityReport {
    pub probes: usize,
    pub steps: usize,
    /// HVPs the quadrature spent.
    pub hvps: usize,
    /// Its wall time, seconds.
    pub seconds: f64,
    /// tr H from the quadrature's first moment (Hutchinson with the same probes) and its
    /// standard error.
    pub trace: f64,
    pub trace_std_error: f64,
    /// Σ_{i≤k} λ_i / tr H: the share of the trace in S_k, with the best trace estimate at hand
    /// (the `trace` part's when asked, else the quadrature's).
    pub top_k_share: f64,
    /// The broadened density on its grid.
    pub density: Density,
    /// Each probe's nodes and weights (the raw quadrature).
    pub quadrature: Vec<Quadrature>,
}

/// What `spectrum` reports with the whole-spectrum options: the top-k report's fields, then
/// `trace`, `density` and `per_layer` where asked (its `--json` object).
#[derive(Clone, Debug, serde::Serialize)]
pub struct WholeReport {
    #[serde(flatten)]
    pub spectrum: SpectrumReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceEstimate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub density: Option<DensityReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_layer: Option<Vec<LayerSpectrum>>,
    /// With both `per_layer` and `density` asked: each block's H_ll density by SLQ with the
    /// density's probes and steps (steps capped at the block's length).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_layer_density: Option<Vec<LayerDensity>>,
    /// Wall time of the parts beyond the top-k spectrum, seconds.
    pub whole_seconds: f64,
}

/// The top-k spectrum ([`super::spectrum_with`]), then the parts `whole` asks for on the same
/// engine: the trace (deflated by the top-k pairs when its method says so), the density (the
/// top k marked by the report's eigenvalues; their share of the trace) and per-layer spectra
/// (tolerance and budget from `opts.lanczos`). `log` sees a line before each part.
/// Errors: the top-k solve's, the estimators' (no probes), the backend's.
pub fn whole_spectrum<B: Backend + Clone>(
    backend: B,
    at: At<'_>,
    loss: (LossKind, bool),
    opts: &SpectrumOptions,
    whole: &WholeOptions,
    progress: &mut dyn FnMut(&Progress),
    log: &mut dyn FnMut(&str),
) -> Result<WholeReport> {
    let parts = spectrum_parts(backend.clone(), at, loss, opts, progress)?;
    let (report, mut engine, vectors) = (parts.report, parts.engine, parts.vectors);
    let start = Instant::now();
    let p = report.params;
    let trace = match whole.trace {
        None => None,
        Some((method, probes, seed)) => {
            log(&format!("trace ({}, {probes} probes)…", method.name()));
            Some(match method {
                TraceMethod::Hutchinson => hutchinson(&backend, &mut engine, probes, seed, 0)?,
                TraceMethod::Hutchpp => hutch_plus_plus(&backend, &mut engine, probes, seed, 0)?,
                TraceMethod::Deflated => {
                    let k = report.eigenvalues.len();
                    let u = backend.download_range(&vectors, 0, k * p)?;
                    let pairs = (report.eigenvalues.as_slice(), u.as_slice());
                    deflated(&backend, &mut engine, pairs, probes, seed, 0)?
                }
            })
        }
    };
    let density = match &whole.density {
        None => None,
        Some((s, d)) => {
            let t = Instant::now();
            let mut last = 0;
            let mut tick = |done: usize, total: usize| {
                if done >= last + 50 || done == total {
                    last = done;
                    log(&format!("density: {done}/{total} HVPs"));
                }
            };
            let r = slq(&backend, &mut engine, s, &mut tick)?;
            let (tr, tr_se) = r.trace();
            let best = trace.as_ref().map_or(tr, |t| t.estimate);
            Some(DensityReport {
                probes: s.probes,
                steps: r.steps,
                hvps: r.hvps,
                seconds: t.elapsed().as_secs_f64(),
                trace: tr,
                trace_std_error: tr_se,
                top_k_share: report.eigenvalues.iter().sum::<f64>() / best,
                density: r.density(d),
                quadrature: r.probes,
            })
        }
    };
    let per_layer = match whole.per_layer {
        None => None,
        Some(k) => {
            let blocks = param_blocks(&at.spec.graph().params);
            let o = LanczosOptions {
                k,
                ..opts.lanczos.clone()
            };
            let mut named = |n: &str| log(&format!("per-layer: {n}…"));
            Some(layer_spectra(
                &backend,
                &mut engine,
                &blocks,
                &o,
                &mut named,
            )?)
        }
    };
    let per_layer_density = match (&whole.density, whole.per_layer) {
        (Some((s, d)), Some(_)) => {
            let blocks = param_blocks(&at.spec.graph().params);
            let mut named = |n: &str| log(&format!("per-layer density: {n}…"));
            Some(layer_densities(
                &backend,
                &mut engine,
                &blocks,
                s,
                d,
                &mut named,
            )?)
        }
        _ => None,
    };
    Ok(WholeReport {
        spectrum: report,
        trace,
        density,
        per_layer,
        per_layer_density,
        whole_seconds: start.elapsed().as_secs_f64(),
    })
}
