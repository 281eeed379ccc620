//! The paper's experiments: run specs (TOML), the runner with its projections and switch rules,
//! the exact 2-D toy, output directories and plots, and the presets of `reproduce` with the
//! verdicts that check the paper's claims on the measured numbers.
//!
//! Layout: [`stepper`] (the one device-resident step; it owns the projection of the update) and
//! [`spectrum`] (its measurement of S_k and χ_k); [`runner`] (legs, switch rules, checkpoints,
//! resume, the [`runner::Observer`]); [`record`] (metrics rows, summaries, checkpoints);
//! [`stream`] (the minibatch stream); [`files`], [`output`] and [`snapshot`] (what goes to disk);
//! [`spec`], [`plot`], [`toy`]. [`run`] keeps the old paths (`experiment::run::{run, Stepper,
//! Record, …}`). The optimisers' updates live in [`crate::optim`].

#[cfg(not(target_arch = "wasm32"))]
pub mod consistency;
pub mod density;
pub mod density_spec;
pub mod ema;
pub mod files;
pub mod final_weights;
pub mod output;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot_density;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot_sweep;
#[cfg(not(target_arch = "wasm32"))]
pub mod presets_run;
pub mod record;
#[cfg(not(target_arch = "wasm32"))]
pub mod rejudge;
#[cfg(not(target_arch = "wasm32"))]
pub mod reproduce;
pub mod run;
pub mod runner;
pub mod snapshot;
pub mod spec;
pub mod spectrum;
pub mod stepper;
pub mod stream;
pub mod ticks;
pub mod toy;
pub mod verdict;
