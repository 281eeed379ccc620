//! The paper's experiments: run specs (TOML), the runner with its optimisers, projections and
//! switch rules, the exact 2-D toy, output directories and plots, and the presets of `reproduce`
//! with the verdicts that check the paper's claims on the measured numbers.

#[cfg(not(target_arch = "wasm32"))]
pub mod consistency;
pub mod output;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot;
#[cfg(not(target_arch = "wasm32"))]
pub mod presets_run;
#[cfg(not(target_arch = "wasm32"))]
pub mod rejudge;
#[cfg(not(target_arch = "wasm32"))]
pub mod reproduce;
pub mod run;
pub mod snapshot;
pub mod spec;
pub mod toy;
pub mod verdict;
