//! The old home of the runner, kept as the paths the rest of the crate (and the tests) name:
//! `experiment::run::{run, Stepper, Record, RunOutcome, …}` re-export the items that now live in
//! [`super::runner`] (legs, switch rules, checkpoints, the observer), [`super::stepper`] and
//! [`super::spectrum`] (the device-resident step and its spectrum), [`super::record`] (rows,
//! summaries, checkpoints), [`super::stream`] and [`crate::optim`]. What stays here is the
//! paper's claim on a finished run (its thresholds and rule are [`crate::paper::claims`]).

use super::spec::{Projection, RunSpec, SwitchRule};
use super::verdict::Verdict;

pub(crate) use super::record::nan_null;
pub use super::record::{
    Checkpoint, LegSummary, Record, RunOutcome, Stats, Vectors, data_fingerprint,
};
pub use super::runner::{Observer, Progress, run};
pub use super::spectrum::Spectrum;
pub use super::stepper::{StepInfo, Stepper, THETA_NOT_FINITE};
pub use super::stream::{Stream, StreamState};
pub use crate::hessian::WarmSolver;
pub use crate::optim::{
    OptState, dist, dot, norm, sam_edge, sam_edge_as_printed, sam_multiplier, sam_update,
};

/// The thresholds of the claim, from the one place they are stated.
pub use crate::paper::claims::{BULK_MIN_FRACTION, DOM_MAX_FRACTION, GD_CHI_MAX};

/// The paper's claim for a run with the three variants after the switch: the dominant one stalls,
/// the bulk one trains like the plain optimiser. None when the run has not all three.
pub fn projection_verdict(spec: &RunSpec, o: &RunOutcome) -> Option<Verdict> {
    let base = spec.after_optimizer().display();
    let after = spec.after_optimizer();
    let plain = o.leg(&spec.leg_name(Projection::None, after))?;
    let dom = o.leg(&spec.leg_name(Projection::Dominant, after))?;
    let bulk = o.leg(&spec.leg_name(Projection::Bulk, after))?;
    let (d_p, d_d, d_b) = (
        plain.rel_decrease(),
        dom.rel_decrease(),
        bulk.rel_decrease(),
    );
    let holds = crate::paper::claims::dom_stalls_bulk_trains(d_p, d_d, d_b);
    let pct = |l: &LegSummary| {
        format!(
            "{} {:.4} → {:.4} ({:+.1} %)",
            l.run,
            l.start_loss,
            l.end_loss,
            -100.0 * l.rel_decrease()
        )
    };
    let switch = o.switch_step.unwrap_or(0);
    let rule = if spec.switch == SwitchRule::ChiEma {
        if o.switch_rule_fired {
            format!(" (EMA of χ_k passed {})", spec.chi_threshold)
        } else {
            format!(
                " (EMA of χ_k never passed {} in {} steps)",
                spec.chi_threshold, spec.steps
            )
        }
    } else {
        String::new()
    };
    Some(Verdict::new(
        &format!("Dom-{base} stalls while Bulk-{base} trains like {base}"),
        holds,
        format!(
            "over {} steps after the switch at step {switch}{rule}: {}; {}; {} (thresholds: Dom < {DOM_MAX_FRACTION}·{base}, Bulk > {BULK_MIN_FRACTION}·{base})",
            spec.steps_after,
            pct(plain),
            pct(dom),
            pct(bulk)
        ),
        &[
            ("switch_step", switch as f64),
            ("plain_rel_decrease", d_p),
            ("dom_rel_decrease", d_d),
            ("bulk_rel_decrease", d_b),
        ],
    ))
}
