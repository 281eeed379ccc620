//! What `reproduce --list` and `--print-spec` say of the presets, from the registry: each
//! preset's setting against the paper's and every difference with its reason, and its specs as
//! the TOML `subspace-lab run` accepts.

use super::{REGISTRY, Runs, fig6_7, get, preset_specs, with_samples};
use crate::backend::LossKind;
use crate::error::Result;
use crate::experiment::spec::{EmaStart, OptKind, OptimizerSpec, RunSpec, SwitchRule};
use crate::paper::models;

/// `reproduce <preset> --print-spec`: the preset's run specs as TOML that `subspace-lab run`
/// accepts (with `--samples` applied where given), one document per run after a comment line
/// naming it.
pub fn print_spec(name: &str, quick: bool, samples: Option<usize>) -> Result<String> {
    let p = get(name)?;
    let specs: Vec<RunSpec> = preset_specs(name, quick)?
        .iter()
        .map(|s| with_samples(s, samples))
        .collect();
    let mut out = String::new();
    if p.is_toy() {
        out.push_str(&fig6_7::spec_text(quick));
        return Ok(out);
    }
    match p.derives_from() {
        Some("fig1") => out.push_str(&format!(
            "# {name} is computed from fig1's run (the paper's Figures 1–3 and 22 share one SGD run):\n\
             # it reuses OUT/fig1 when that holds a finished run of this spec, else runs it.\n"
        )),
        Some(base) => out.push_str(&format!(
            "# {name} is computed from {base}'s run (one SGD run, as in the paper):\n\
             # it reuses OUT/{base} when that holds a finished run of this spec, else runs it.\n",
        )),
        None => {}
    }
    for s in &specs {
        if specs.len() > 1 {
            out.push_str(&format!("# ---- run: {} ----\n", s.name));
        }
        out.push_str(&s.to_toml()?);
    }
    Ok(out)
}

/// One row of `reproduce --list`: the paper's figure, its setting there (Appendix E and
/// `shared/PAPER.md`), this preset's setting (from its specs) and every difference with its reason.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PresetInfo {
    pub preset: String,
    pub paper: String,
    pub paper_setting: String,
    pub setting: String,
    pub differences: Vec<String>,
}

/// A spec's setting in words, as `--list` shows it.
fn describe(spec: &RunSpec) -> String {
    let o = &spec.optimizer;
    let opt = |o: &OptimizerSpec| {
        let mut t = format!("{} η {}", o.display(), o.lr);
        if let Some(b) = o.batch {
            t.push_str(&format!(" batch {b}"));
        }
        if o.name == OptKind::Sam {
            t.push_str(&format!(" ρ {}", o.rho));
        }
        t
    };
    let loss = match spec.loss {
        LossKind::Mse => "MSE",
        LossKind::Ce => "CE",
    };
    let net = match &spec.model.name {
        Some(n) => format!(
            "{n} on {} ({} samples), ",
            spec.dataset().name(),
            spec.data.samples
        ),
        None => String::new(),
    };
    let mut t = format!(
        "{net}{}, {loss}, k {}, top {}, seed {}",
        opt(o),
        spec.k,
        spec.top(),
        spec.seed
    );
    match (spec.switch, spec.steps_after) {
        (_, 0) => t.push_str(&format!(", {} steps", spec.steps)),
        (SwitchRule::ChiEma, _) => t.push_str(&format!(
            ", switch when the per-step EMA of χ_k > {} (EMA from {}{}; by step {} at the latest)",
            spec.chi_threshold,
            match spec.ema_start {
                EmaStart::First => "its first value",
                EmaStart::Zero => "0",
                EmaStart::Debiased => "0, bias-corrected",
            },
            if spec.switch_min_steps > 0 {
                format!(", not before step {}", spec.switch_min_steps)
            } else {
                String::new()
            },
            spec.steps
        )),
        (SwitchRule::AfterSteps, _) => t.push_str(&format!(", switch at step {}", spec.steps)),
    }
    if spec.steps_after > 0 {
        let after = spec.after_optimizer().display();
        let names: Vec<String> = spec
            .variants
            .iter()
            .map(|v| format!("{}{after}", v.prefix()))
            .collect();
        t.push_str(&format!(
            ", then {} for {} steps",
            names.join(" / "),
            spec.steps_after
        ));
        if spec.after.is_some() {
            t.push_str(&format!(" ({})", opt(spec.after_optimizer())));
        }
    }
    if spec.effective_lr {
        t.push_str(", Dom-LR / Bulk-LR every step");
    }
    t.push_str(&format!(", records every {}", spec.record_every));
    t
}

/// The --quick protocol's own note, after each preset's.
const QUICK_NOTE: &str = "--quick: shorter horizons with the same optimisers: its verdicts check the code, not the paper's claims (the full preset's do)";

/// `reproduce --list`: every preset against the paper.
pub fn list(quick: bool) -> Result<Vec<PresetInfo>> {
    let mut out = Vec::new();
    for p in REGISTRY {
        let specs = preset_specs(p.name, quick)?;
        let mut differences: Vec<String> = p.always.iter().map(|s| s.to_string()).collect();
        // `full`: the full protocol's own differences (horizons, caps); --quick's replace them.
        if quick {
            differences.extend(p.quick.iter().map(|s| s.to_string()));
            differences.push(QUICK_NOTE.into());
        } else {
            differences.extend(p.full.iter().map(|s| s.to_string()));
        }
        // What every preset on the model shares with the paper, and where it differs.
        if let Some(s) = specs.first() {
            let m = models::for_spec_name(s.model.name.as_deref());
            differences.extend(m.notes.iter().map(|s| s.to_string()));
        }
        let this = match p.runs {
            Runs::Toy => fig6_7::setting(quick),
            _ => specs
                .iter()
                .map(|s| {
                    if specs.len() > 1 {
                        format!("{}: {}", s.name, describe(s))
                    } else {
                        describe(s)
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        out.push(PresetInfo {
            preset: p.name.into(),
            paper: p.figure.into(),
            paper_setting: p.paper_setting.into(),
            setting: this,
            differences,
        });
    }
    Ok(out)
}
