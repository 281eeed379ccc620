//! The scenario rows of the model panel (lessons and branches): the picker of the paper's states,
//! "branch", a user's snapshot, and the scenario's lesson with the live numbers.

use crate::app::live::{Action, BranchSet};
use crate::app::scenario::{self, SCENARIOS};
use crate::app::ui::SandboxApp;
use crate::app::worker::{Cmd, Shared};

impl SandboxApp {
    /// Start from the snapshot in the field (a directory natively, a URL on the web): the worker
    /// reads it and the run's settings become the snapshot's.
    fn load_snapshot(&mut self) {
        let src = self.snapshot_field.trim().to_string();
        if src.is_empty() {
            return;
        }
        self.settings.scenario.clear();
        self.settings.snapshot = src;
        self.worker.send(Cmd::LoadSnapshot(self.settings.clone()));
    }

    /// Fork the run as soon as it is loaded, before its first step (the `--branch` of `app`):
    /// the worker applies the commands queued while it loads before it steps.
    pub fn branch_on_start(&mut self) {
        self.branch();
    }

    /// What "branch" forks into: the scenario's set, or SGD / Dom- / Bulk- on a fresh run.
    fn branch_set(&self) -> BranchSet {
        scenario::find(&self.settings.scenario).map_or(BranchSet::Projections, |s| s.branch)
    }

    pub(crate) fn branch(&mut self) {
        let set = self.branch_set();
        self.worker.send(Cmd::Act(Action::Branch(set)));
        self.branch_sent = Some(self.worker.sent());
    }

    /// Start the scenario `name` (empty: a fresh run from the settings): its settings replace the
    /// optimiser's, and the run reloads.
    fn load_scenario(&mut self, name: &str) {
        self.settings.snapshot.clear();
        if name.is_empty() {
            self.settings.scenario.clear();
        } else {
            match scenario::find(name).and_then(|sc| sc.settings(&self.settings)) {
                Ok(s) => self.settings = s,
                Err(e) => {
                    self.warnings.push(e.to_string());
                    return;
                }
            }
        }
        self.worker.send(Cmd::Reset(self.settings.clone()));
    }

    pub(crate) fn scenario_rows_ui(&mut self, ui: &mut egui::Ui, shared: &Shared) {
        let current = self.settings.scenario.clone();
        let title = |name: &str| {
            if name.is_empty() {
                "fresh run (the settings below)".to_string()
            } else {
                scenario::find(name).map_or(name.to_string(), |s| {
                    format!("{} — {} ({})", s.title, s.model.label(), s.figure)
                })
            }
        };
        let mut pick = None;
        let mut branch = false;
        ui.horizontal_wrapped(|ui| {
            ui.label("scenario");
            // A loaded snapshot shows as such; the list's first entry stays "fresh run".
            let shown = if current.is_empty() && !self.settings.snapshot.is_empty() {
                format!("snapshot {}", self.settings.snapshot)
            } else {
                title(&current)
            };
            egui::ComboBox::from_id_salt("scenario")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    if ui.selectable_label(current.is_empty(), title("")).clicked() {
                        pick = Some(String::new());
                    }
                    for sc in SCENARIOS {
                        if ui
                            .selectable_label(current == sc.name, title(sc.name))
                            .on_hover_text(sc.lesson)
                            .clicked()
                        {
                            pick = Some(sc.name.to_string());
                        }
                    }
                })
                .response
                .on_hover_text("start at one of the paper's states (reloads the run)");
            let branched = !self.can_branch(shared);
            let what = match self.branch_set() {
                BranchSet::Projections => {
                    "fork the run here into the optimiser, its Dom- (P_k g) and its Bulk- ((I − P_k) g) variant, \
                     same θ, same optimiser state, same minibatches; they advance in lockstep"
                }
                BranchSet::GdVsSgd => {
                    "fork the run here into SGD and full-batch GD at the same η, same θ; they advance in lockstep"
                }
            };
            if ui
                .add_enabled(!branched, egui::Button::new("branch (B)"))
                .on_hover_text(what)
                .on_disabled_hover_text("branched: reset (R) or pick a scenario to start again")
                .clicked()
            {
                branch = true;
            }
        });
        let advanced = !self.settings.teacher;
        ui.scope(|ui| if advanced { ui.horizontal_wrapped(|ui| {
            let (what, hint) = if cfg!(target_arch = "wasm32") {
                ("snapshot URL", "https://…/fig1-cnn/snapshot")
            } else {
                ("snapshot dir", "out/fig1-cnn/snapshot")
            };
            ui.label(what);
            let r = ui.add(
                egui::TextEdit::singleline(&mut self.snapshot_field)
                    .hint_text(hint)
                    .desired_width(260.0),
            );
            let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui
                .button("load")
                .on_hover_text(
                    "continue from a snapshot that `subspace-lab reproduce PRESET --snapshot-at-switch` \
                     wrote (snapshot.json + snapshot.safetensors): its model, θ, optimiser state and \
                     settings; then branch (B)",
                )
                .clicked()
                || enter
            {
                self.load_snapshot();
            }
        }); });
        if let Some(name) = pick {
            self.load_scenario(&name);
        }
        if branch {
            self.branch();
        }
        if let Ok(sc) = scenario::find(&current) {
            // Closed: the landing lesson above states the claim; this is the scenario's detail.
            // (Its own id: an app that saved this header open before still opens it closed.)
            egui::CollapsingHeader::new(format!("lesson: {} ({})", sc.title, sc.figure))
                .id_salt("scenario-lesson-closed")
                .default_open(false)
                .show(ui, |ui| {
                    ui.label(sc.lesson_now(&shared.history));
                });
        }
    }
}
