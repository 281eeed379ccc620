//! The sandbox app (eframe/egui): the 2-D toy and a live network run (fc-tanh / MNIST-5k, cnn-relu /
//! CIFAR10-5k or the Transformer / SST2-1k) side by side, natively and in the browser. The state
//! logic has no window and is unit-tested.
//!
//! Layers, each using only those below it:
//! - `model` (the networks and the paper's settings), `toysim`, `live` (a run and its branches);
//! - `scenario` (the paper's states), `settings` (the key table: hash, saved settings, ranges);
//! - `worker` (the run's driver; `worker::native` a thread, `worker::web` the Web Worker);
//! - `panels` (toy, model, scenario rows, plots) and `ui` (the app's state and frame);
//! - `platform` (`native`: the window, the test hook's report; `web`: the page), which alone
//!   knows eframe's `App` trait.

pub mod live;
pub mod model;
pub mod panels;
pub mod platform;
pub mod scenario;
pub mod settings;
pub mod toysim;
pub mod ui;
pub mod worker;

#[cfg(not(target_arch = "wasm32"))]
pub use platform::native::{BranchReport, Report, report, run_native};
/// The page's entry (`web::main`) where it always was.
#[cfg(target_arch = "wasm32")]
pub use platform::web;

/// Test hook: after `after_s` seconds (and at least `min_steps` steps of the model's run, or after
/// `timeout_s` regardless) write a JSON report and a screenshot and close the app.
#[derive(Clone, Debug)]
pub struct AutoExit {
    pub after_s: f64,
    pub timeout_s: f64,
    pub min_steps: usize,
    pub report: std::path::PathBuf,
    pub screenshot: std::path::PathBuf,
    /// Close after this many steps per branch (after a fork; else steps since the run started)
    /// instead of after `after_s` seconds (`app --exit-after-steps`).
    pub exit_after_steps: Option<usize>,
    /// The app was asked to branch at start (`--branch`): the steps count after the fork.
    pub branch: bool,
}

/// How the desktop app starts: the test hook, a scenario, where to compute, branching at once.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub auto: Option<AutoExit>,
    /// A scenario's name (`--scenario`), instead of the saved settings' run.
    pub scenario: Option<String>,
    pub compute: Option<settings::Compute>,
    /// Fork as soon as the run is loaded (`--branch`).
    pub branch: bool,
    /// The model panel's network (`--model`), with the paper's settings for it.
    pub model: Option<settings::AppModel>,
    /// Training samples (`--samples`), instead of the model's default.
    pub samples: Option<usize>,
    /// A snapshot directory to start from (`--snapshot`), with its settings.
    pub snapshot: Option<std::path::PathBuf>,
}

#[cfg(not(target_arch = "wasm32"))]
impl AutoExit {
    /// Refuse, before anything starts, a report or screenshot path the app could not write at
    /// the end (a missing directory, no permission, a directory in its place).
    pub fn check_outputs(&self) -> crate::Result<()> {
        check_writable(&self.report, "--report")?;
        check_writable(&self.screenshot, "--screenshot")
    }
}

/// Whether `path` can be written: created (and removed again) when absent, opened for appending
/// (nothing changed) when present.
#[cfg(not(target_arch = "wasm32"))]
fn check_writable(path: &std::path::Path, what: &str) -> crate::Result<()> {
    let refuse = |why: String| {
        Err(crate::Error::InvalidArgument(format!(
            "{what} {}: {why}; nothing was run",
            path.display()
        )))
    };
    if path.is_dir() {
        return refuse("is a directory; give a file name".into());
    }
    let existed = path.exists();
    match std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        Ok(_) => {
            if !existed {
                let _ = std::fs::remove_file(path);
            }
            Ok(())
        }
        Err(e) => refuse(format!("cannot be written ({e})")),
    }
}
