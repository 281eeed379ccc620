//! The model panel: the network and its data, the scenario and its lesson, the optimiser's
//! controls, the run's buttons, export, the status line and the plots.

use super::plots::run_plots_ui;
use crate::app::live::Action;
use crate::app::settings::{AppModel, Compute, OPTIMIZERS, Settings, opt_name};
use crate::app::ui::SandboxApp;
use crate::app::worker::{Cmd, Shared};
use crate::experiment::spec::{OptKind, Projection};
use egui::{Color32, RichText};

impl SandboxApp {
    /// The panel, top to bottom.
    pub(crate) fn model_panel_ui(&mut self, ui: &mut egui::Ui, shared: &Shared) {
        ui.heading(format!("{}, MSE", self.settings.model.label()))
            .on_hover_text(self.settings.model.spec().describe());
        self.adopt(shared);
        // Teacher mode: the lesson's scenario, start/pause and the plots; nothing to get lost in.
        let advanced = !self.settings.teacher;
        if advanced {
            self.model_rows_ui(ui);
        }
        self.scenario_rows_ui(ui, shared);
        if advanced {
            self.optimizer_rows_ui(ui, shared);
        }
        self.run_buttons_ui(ui, shared);
        if advanced {
            self.export_ui(ui);
        }
        self.status_ui(ui, shared);
        super::density::density_ui(ui, shared.density.as_ref(), 150.0);
        run_plots_ui(ui, &shared.history);
    }

    /// The model picker and the training-set size: a pick loads the paper's settings for the
    /// model and restarts the run (its data set is loaded on first use).
    fn model_rows_ui(&mut self, ui: &mut egui::Ui) {
        let mut pick = None;
        ui.horizontal_wrapped(|ui| {
            let now = self.settings.model;
            ui.label("model");
            egui::ComboBox::from_id_salt("model")
                .selected_text(now.label())
                .show_ui(ui, |ui| {
                    for m in AppModel::ALL {
                        let p = m.paper();
                        if ui
                            .selectable_label(m == now, m.label())
                            .on_hover_text(format!(
                                "{}, MSE; the paper's SGD η {}, batch {}, k = {} (the classes), n = {}",
                                m.spec().describe(),
                                p.lr,
                                p.batch,
                                p.k,
                                p.samples
                            ))
                            .clicked()
                        {
                            pick = Some(m);
                        }
                    }
                })
                .response
                .on_hover_text("the network and its data, with the paper's settings (restarts the run)");
            let n_range = self.settings.range_of("n");
            let paper = now.paper().samples;
            ui.label("n");
            let r = ui
                .add(egui::DragValue::new(&mut self.settings.samples).range(n_range))
                .on_hover_text(format!(
                    "training samples, the first n of the data set (the paper: {paper}); applies on \
                     reset. A spectrum's cost grows with n"
                ));
            if r.changed() {
                self.settings.batch = self.settings.batch.min(self.settings.samples);
            }
            if self.settings.samples != paper {
                ui.label(RichText::new(format!("(the paper: n = {paper})")).small());
            }
        });
        if let Some(m) = pick.filter(|m| *m != self.settings.model) {
            self.settings = self.settings.with_model(m);
            self.warnings.clear();
            self.worker.send(Cmd::Reset(self.settings.clone()));
        }
    }

    /// The optimiser and its settings (each in its range from the key table), k, the spectrum's
    /// cadence, the seed and where to compute; off while branched.
    fn optimizer_rows_ui(&mut self, ui: &mut egui::Ui, shared: &Shared) {
        // The ranges are the settings' own (the key table), so a typed value stays runnable.
        let ranges = ["lr", "batch", "rho", "k", "eig"].map(|k| self.settings.range_of(k));
        let mut changed_opt = false;
        // A branched run refuses changes of its optimiser: the controls say so by being off.
        let branched = shared.history.fork.is_some();
        {
            let s = &mut self.settings;
            ui.add_enabled_ui(!branched, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.label("optimizer");
                    egui::ComboBox::from_id_salt("opt")
                        .selected_text(opt_name(s.optimizer))
                        .show_ui(ui, |ui| {
                            for o in OPTIMIZERS {
                                changed_opt |= ui
                                    .selectable_value(&mut s.optimizer, o, opt_name(o))
                                    .changed();
                            }
                        });
                    ui.label("η");
                    changed_opt |= ui
                        .add(
                            egui::DragValue::new(&mut s.lr)
                                .speed(1e-4)
                                .range(ranges[0].clone()),
                        )
                        .changed();
                    ui.label("batch");
                    changed_opt |= ui
                        .add(egui::DragValue::new(&mut s.batch).range(ranges[1].clone()))
                        .changed();
                    if s.optimizer == OptKind::Sam {
                        ui.label("ρ");
                        changed_opt |= ui
                            .add(
                                egui::DragValue::new(&mut s.rho)
                                    .speed(1e-3)
                                    .range(ranges[2].clone()),
                            )
                            .changed();
                    }
                    ui.label("k");
                    ui.add(egui::DragValue::new(&mut s.k).range(ranges[3].clone()))
                        .on_hover_text("applies on reset");
                    ui.label("eigen every");
                    if ui
                        .add(egui::DragValue::new(&mut s.eigen_every).range(ranges[4].clone()))
                        .changed()
                    {
                        self.worker
                            .send(Cmd::Act(Action::SetEigenEvery(s.eigen_every)));
                    }
                    ui.label("seed");
                    ui.add(egui::DragValue::new(&mut s.seed))
                        .on_hover_text("applies on reset");
                    ui.label("compute");
                    egui::ComboBox::from_id_salt("compute")
                        .selected_text(s.compute.name())
                        .show_ui(ui, |ui| {
                            for c in Compute::ALL {
                                ui.selectable_value(&mut s.compute, c, c.name());
                            }
                        })
                        .response
                        .on_hover_text(
                            "applies on reset. auto: a hardware GPU if there is one, else the CPU; \
                         gpu: also a software adapter; cpu: the CPU backend",
                        );
                })
            })
            .response
            .on_disabled_hover_text(
                "branched: reset (R) or pick a scenario to change the optimiser",
            );
        }
        if changed_opt {
            let o = self.optimizer();
            self.worker.send(Cmd::Act(Action::SetOptimizer(o)));
        }
    }

    /// Start/pause, reset, defaults, the projections, to GD, the auto-switch.
    fn run_buttons_ui(&mut self, ui: &mut egui::Ui, shared: &Shared) {
        ui.horizontal_wrapped(|ui| {
            let label = if shared.running { "pause" } else { "start" };
            if ui.button(label).clicked() {
                self.worker.send(if shared.running {
                    Cmd::Pause
                } else {
                    Cmd::Start
                });
            }
            if ui.button("reset").clicked() {
                self.worker.send(Cmd::Reset(self.settings.clone()));
            }
            if self.settings.teacher {
                return;
            }
            if ui
                .button("defaults")
                .on_hover_text("every setting back to its default, then reset the run")
                .clicked()
            {
                self.settings = Settings::default();
                self.warnings.clear();
                self.worker.send(Cmd::Reset(self.settings.clone()));
            }
            ui.separator();
            if ui
                .button("Dom-")
                .on_hover_text("project every update on S_k from now on")
                .clicked()
            {
                self.worker
                    .send(Cmd::Act(Action::Project(Projection::Dominant)));
            }
            if ui
                .button("Bulk-")
                .on_hover_text(
                    "project every update on the complement of S_k, (I − P_k) g, from now on",
                )
                .clicked()
            {
                self.worker
                    .send(Cmd::Act(Action::Project(Projection::Bulk)));
            }
            if ui.button("unprojected").clicked() {
                self.worker
                    .send(Cmd::Act(Action::Project(Projection::None)));
            }
            if ui
                .add_enabled(shared.history.fork.is_none(), egui::Button::new("to GD"))
                .on_disabled_hover_text("branched: the branches keep their optimisers")
                .clicked()
            {
                self.settings.optimizer = OptKind::Gd;
                self.worker.send(Cmd::Act(Action::ToGd));
            }
            let armed = shared.history.armed.is_some();
            let auto = if armed {
                "disarm auto-switch"
            } else {
                "arm auto-switch (EMA of χ_k > 0.95: Dom-)"
            };
            if ui.button(auto).clicked() {
                self.worker.send(Cmd::Act(if armed {
                    Action::Disarm
                } else {
                    Action::ArmAuto(Projection::Dominant)
                }));
            }
        });
    }

    /// Export the run (natively to a directory, on the web as downloads).
    fn export_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            if cfg!(target_arch = "wasm32") {
                if ui.button("download CSV/JSON + weights").clicked() {
                    self.worker.send(Cmd::Export(String::new()));
                }
            } else {
                ui.label("export to");
                ui.text_edit_singleline(&mut self.export_dir);
                if ui.button("export CSV/JSON/PNG + weights").clicked() {
                    self.worker.send(Cmd::Export(self.export_dir.clone()));
                }
            }
        });
    }

    /// Where it computes and draws, the run's step and rate, the last solve; the worker's message.
    fn status_ui(&self, ui: &mut egui::Ui, shared: &Shared) {
        let h = &shared.history;
        // A CNN's branched step takes half a minute on a CPU: "0.0 steps/s" would say nothing.
        let rate = match shared.steps_per_sec {
            _ if !shared.running => "waiting (start: Space; branch: B)".to_string(),
            r if r >= 0.95 => format!("{r:.1} steps/s"),
            r if r > 0.0 => format!("{:.1} s/step", 1.0 / r),
            _ => "measuring the rate…".to_string(),
        };
        if !self.details {
            ui.label(
                RichText::new(format!(
                    "step {} · {rate}{}",
                    h.step,
                    if h.armed.is_some() {
                        " · auto-switch armed"
                    } else {
                        ""
                    }
                ))
                .small(),
            );
        }
        if let Some(info) = &shared.info {
            ui.label(RichText::new(info).small());
        }
        if let Some(msg) = &shared.message {
            ui.colored_label(Color32::from_rgb(200, 120, 0), msg);
        }
        if !self.details {
            return;
        }
        ui.label(
            RichText::new(format!(
                "compute {} · drawing {} ({}) · {} · step {} · {rate}{} · {} HVPs last solve · worst Ritz residual {:.1e}{}",
                shared.backend,
                self.renderer.api,
                self.renderer.adapter,
                h.fork.as_ref().map_or(h.run_name.clone(), |f| f
                    .branches
                    .iter()
                    .map(|b| b.name.clone())
                    .collect::<Vec<_>>()
                    .join(" / ")),
                h.step,
                if h.fork.is_some() {
                    " (of every branch; each solves its own spectrum)"
                } else {
                    ""
                },
                h.hvps_last,
                h.worst_residual,
                if h.armed.is_some() { " · auto-switch armed" } else { "" }
            ))
            .small(),
        );
    }
}
