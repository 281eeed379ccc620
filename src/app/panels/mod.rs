//! The app's panels, one file each. A panel is a `…_ui` function over exactly the state it
//! draws and edits, not a `Panel` trait: the toy panel needs the settings and its own paths
//! ([`toy::ToyPanel::toy_panel_ui`]), the plots only the run's history
//! ([`plots::run_plots_ui`]), while the model panel and its scenario rows edit the settings, send
//! commands to the worker and adopt its state ([`crate::app::ui::SandboxApp`]'s `model_panel_ui`,
//! `scenario_rows_ui`). One trait signature would hand every panel the widest context (a worker
//! to draw the toy, which a test could then not do without starting one).
//!
//! - `toy`: the 2-D toy's two paths and χ₁.
//! - `model`: the network, the optimiser's controls, the run's buttons, export, the status line.
//! - `scenario`: the paper's states, "branch", a user's snapshot, the lesson (lessons, branches).
//! - `plots`: loss, accuracy, eigenvalues, χ_k, the branches' table.
//! - `density`: the Hessian's spectral density (SLQ), its outliers and the trace's share in S_k.
//! - `lesson`: the landing lesson above both panels (the claim, the one action, computing …).

pub mod density;
pub mod lesson;
pub mod model;
pub mod plots;
pub mod scenario;
pub mod toy;

/// Whether the app holds the toy (slows it, [`toy::ToyPanel::held`]): while a scenario's run computes
/// and its verdict is not final yet (issue 30: after the horizon nothing waits on the branches).
pub fn toy_held(shared: &crate::app::worker::Shared, scenario: &str) -> bool {
    shared.running
        && !scenario.is_empty()
        && !matches!(lesson::stage(shared), lesson::Stage::Judged(_))
}
