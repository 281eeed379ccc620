//! The paper's claims as rules on numbers: every threshold a verdict uses, and the judges that
//! compare measured numbers against them. The presets' verdicts ([`super::judges`]), the runner's
//! and the app's live branches all decide a claim here, so the same numbers give the same answer
//! everywhere. A leaf: it imports nothing of the crate.

/// χ_k along SGD: its EMA must exceed this somewhere (the paper's switch threshold).
pub const SGD_CHI_EMA_MIN: f64 = 0.95;
/// χ_k along full-batch GD must average below this over the second half (fig18-19's rule; the
/// app's GD-vs-SGD branches are judged by it too).
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
/// The dominant variant's relative loss decrease must stay below this fraction of the plain
/// optimiser's ("stalls").
pub const DOM_MAX_FRACTION: f64 = 0.25;
/// The bulk variant's relative loss decrease must reach at least this fraction of the plain
/// optimiser's ("trains as well").
pub const BULK_MIN_FRACTION: f64 = 0.75;
/// GD's effective learning rates must equal η to this relative round-off (the f32 basis).
pub const GD_LR_TOL: f64 = 1e-6;

/// "Dom stalls, Bulk trains" (figs. 1, 9, 10 and the app's projection branches): from the
/// relative loss decreases of the plain, dominant and bulk variants since the switch (or fork).
pub fn dom_stalls_bulk_trains(plain: f64, dom: f64, bulk: f64) -> bool {
    plain > 0.0 && dom < DOM_MAX_FRACTION * plain && bulk > BULK_MIN_FRACTION * plain
}

/// "χ_k under GD is near 0" against SGD's (fig18-19's rule, the app's GD-vs-SGD branches): GD's
/// mean χ_k below [`GD_CHI_MAX`] and below SGD's.
pub fn gd_chi_near_zero(gd: f64, sgd: f64) -> bool {
    gd_chi_small(gd) && gd < sgd
}

/// χ_k under full-batch GD averages below [`GD_CHI_MAX`] (fig18-19).
pub fn gd_chi_small(mean: f64) -> bool {
    mean < GD_CHI_MAX
}

/// χ_k along SGD aligns (figs. 2–3): the largest EMA over the judged span exceeds
/// [`SGD_CHI_EMA_MIN`].
pub fn sgd_aligns(max_chi_ema: f64) -> bool {
    max_chi_ema > SGD_CHI_EMA_MIN
}

/// Figs. 4 / 5: the mean χ_k after the switch against before it; `to_gd`: SGD → GD (the alignment
/// must disappear), else GD → SGD (it must appear).
pub fn switch_follows_noise(pre: f64, post: f64, to_gd: bool) -> bool {
    if to_gd {
        post < SWITCH_CHI_FACTOR * pre
    } else {
        post > pre / SWITCH_CHI_FACTOR
    }
}

/// The sharpness at its edge (figs. 9, 10): `rel` = (λ₁ − edge)/edge within ±[`EOS_BAND`].
pub fn in_eos_band(rel: f64) -> bool {
    rel.abs() <= EOS_BAND
}

/// Fig. 22: Bulk-SGD's distance from the switch point within ±[`DIST_BAND`] of SGD's.
pub fn bulk_moves_like_sgd(d_sgd: f64, d_bulk: f64) -> bool {
    ((d_bulk - d_sgd) / d_sgd).abs() <= DIST_BAND
}

/// Tables 1–3, GD: Dom-LR = Bulk-LR = η (the ratio 1 and the mean η, to [`GD_LR_TOL`]).
pub fn gd_lr_is_eta(ratio: f64, dom_lr_mean: f64, lr: f64) -> bool {
    (ratio - 1.0).abs() < GD_LR_TOL && (dom_lr_mean - lr).abs() < GD_LR_TOL * lr
}

/// Tables 1–3, Adam with and without momentum: Bulk-LR / Dom-LR > 1 for both.
pub fn adam_favours_bulk(ratio_adam: f64, ratio_adam_no_m: f64) -> bool {
    ratio_adam > 1.0 && ratio_adam_no_m > 1.0
}

/// The toy (figs. 6–7): χ₁ under GD ends below [`TOY_GD_CHI_MAX`].
pub fn toy_gd_chi_vanishes(final_chi: f64) -> bool {
    final_chi < TOY_GD_CHI_MAX
}

/// The toy: χ₁ under SGD averages above [`TOY_SGD_CHI_MIN`] over the second half.
pub fn toy_sgd_chi_stays(mean_chi: f64) -> bool {
    mean_chi > TOY_SGD_CHI_MIN
}

/// The toy: Dom-SGD cannot move y (it ends at 1 exactly) while SGD does (by more than 0.01).
pub fn toy_dom_cannot_move_y(dom_y: f64, sgd_y: f64) -> bool {
    dom_y == 1.0 && (1.0 - sgd_y).abs() > 0.01
}

/// Revision of the rules that turn numbers into verdicts, recorded in `summary.json` as
/// `verdict_rules` (absent: 1). 2: the corrected SAM edge (recomputed from ‖∇L‖), fig2-3 judged on
/// fig1's run with its per-step χ-EMA, fig9 / fig10 at the paper's switch steps, fig1-ce at η 0.1.
/// 3: fig2-3's EMA is judged over the second half of the SGD phase (the EMA starts at χ_k of the
/// initialisation, 0.98 for cnn-relu on CIFAR-10, so a maximum over the whole phase held at step 0).
pub const VERDICT_RULES: u64 = 3;
