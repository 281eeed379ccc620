//! The paper's experiments: run specs (TOML), the runner with its optimisers, projections and
//! switch rules, the exact 2-D toy, output directories and plots, and the presets of `reproduce`
//! with the verdicts that check the paper's claims on the measured numbers.

pub mod files;
pub mod output;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot;
#[cfg(not(target_arch = "wasm32"))]
pub mod reproduce;
pub mod record;
pub mod run;
pub mod runner;
pub mod snapshot;
pub mod spec;
pub mod spectrum;
pub mod stepper;
pub mod stream;
pub mod toy;
pub mod verdict;
