//! The landing lesson above both panels: the paper's claim in one paragraph, one obvious action
//! (branch at the fork), a visible "computing …" state with an estimate of the time left, and the
//! verdict once it is judged; the "details" toggle (frame time, solver residuals, HVPs) and the
//! teacher mode's switch sit at its end.

use crate::app::live::{LiveVerdict, judge};
use crate::app::scenario;
use crate::app::ui::SandboxApp;
use crate::app::worker::Shared;
use egui::{Color32, RichText};

/// The claim in words, for a student (the lesson's first paragraph).
pub const CLAIM: &str = "While a network trains, the gradient lies almost entirely in a tiny \
subspace: the span S_k of the top k eigenvectors of the loss's Hessian (k = the number of classes). \
It is tempting to conclude that training happens there. Song, Ahn and Yun (2024) show that it does \
not: keep only the part of each SGD step that lies in S_k (Dom-SGD) and the loss stalls; drop that \
part (Bulk-SGD) and the network trains as well as with SGD. The alignment is spurious: SGD bounces \
across the sharp walls of a valley (the toy on the left) while the progress is made along its floor.";

/// What the lesson's status row says (a pure function of the state, for the tests).
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// The run is loading (data, snapshot): the message.
    Loading(String),
    /// Waiting at the fork for "branch" (step).
    AtFork(usize),
    /// The branches compute: steps done, the horizon, seconds left if the rate is known.
    Computing {
        steps: usize,
        horizon: usize,
        seconds_left: Option<f64>,
    },
    /// The verdict is final.
    Judged(LiveVerdict),
}

/// The stage of `shared`'s run.
pub fn stage(shared: &Shared) -> Stage {
    let h = &shared.history;
    match &h.fork {
        None if h.points.is_empty() && h.step == 0 && shared.backend.is_empty() => {
            Stage::Loading(shared.message.clone().unwrap_or_else(|| "loading…".into()))
        }
        None => Stage::AtFork(h.step),
        Some(f) => match judge(h) {
            Some(v) if !v.provisional => Stage::Judged(v),
            _ => {
                let horizon = if h.horizon == 0 {
                    crate::app::live::DEFAULT_HORIZON
                } else {
                    h.horizon
                };
                let steps = f.steps();
                let left = horizon.saturating_sub(steps) as f64;
                let seconds_left =
                    (shared.steps_per_sec > 0.0).then(|| left / shared.steps_per_sec);
                Stage::Computing {
                    steps,
                    horizon,
                    seconds_left,
                }
            }
        },
    }
}

/// "4 min 10 s", "35 s".
pub fn duration_words(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

impl SandboxApp {
    /// The lesson: the claim, the stage and its one action, the details and teacher toggles.
    pub(crate) fn lesson_ui(&mut self, ui: &mut egui::Ui, shared: &Shared) {
        let sc = scenario::find(&self.settings.scenario).ok();
        egui::CollapsingHeader::new(
            RichText::new("The paper's claim, in words")
                .strong()
                .size(15.0),
        )
        .default_open(true)
        .show(ui, |ui| {
            ui.label(CLAIM);
        });
        ui.horizontal_wrapped(|ui| {
            match stage(shared) {
                Stage::Loading(m) => {
                    // No egui spinner: a spinner repaints every frame, and under a software
                    // rasteriser drawing then takes the cores the run needs.
                    ui.label(RichText::new(m).strong().size(15.0));
                }
                Stage::AtFork(step) => {
                    let what = sc.map_or("the optimiser, Dom- and Bulk-".to_string(), |s| {
                        format!("{} ({}) — {}", s.title, s.figure, s.model.label())
                    });
                    let b = egui::Button::new(
                        RichText::new(format!(
                            "▶ branch at step {step}: run SGD, Dom-SGD and Bulk-SGD from here"
                        ))
                        .size(16.0)
                        .strong(),
                    )
                    .fill(Color32::from_rgb(40, 90, 160));
                    if ui
                        .add_enabled(self.can_branch(shared), b)
                        .on_hover_text(format!("{what}; key B"))
                        .clicked()
                    {
                        self.branch();
                    }
                    if sc.is_some() {
                        ui.label(format!(
                            "The run waits at its fork ({what}); the verdict comes after {} steps per branch.",
                            sc.map_or(0, |s| s.horizon)
                        ));
                    }
                }
                Stage::Computing {
                    steps,
                    horizon,
                    seconds_left,
                } => {
                    let left = seconds_left.map_or("estimating the time left…".into(), |s| {
                        format!("about {} left", duration_words(s))
                    });
                    ui.label(
                        RichText::new(format!(
                            "computing … {steps} of {horizon} steps per branch, {left}"
                        ))
                        .strong()
                        .size(15.0),
                    );
                    if !shared.running {
                        ui.label("(paused: press start or Space)");
                    }
                }
                Stage::Judged(v) => {
                    let col = if v.holds {
                        Color32::from_rgb(44, 160, 44)
                    } else {
                        Color32::from_rgb(200, 120, 0)
                    };
                    ui.label(
                        RichText::new(if v.holds {
                            "verdict: the claim HOLDS here"
                        } else {
                            "verdict: the claim does NOT hold here"
                        })
                        .color(col)
                        .size(16.0)
                        .strong(),
                    );
                }
            }
            ui.separator();
            ui.checkbox(&mut self.details, "details")
                .on_hover_text("frame time, the solver's residuals and HVPs, the backend");
            ui.checkbox(&mut self.settings.teacher, "teacher mode")
                .on_hover_text("hide the advanced controls (also #teacher=1 in the page's URL)");
        });
    }
}
