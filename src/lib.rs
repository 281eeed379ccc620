//! subspace-lab: watch "Does SGD really happen in tiny subspaces?" (Song, Ahn, Yun 2024) happen.
//!
//! The engine: a backend trait of primitives ([`backend`]) with a CPU implementation in f64 (the
//! oracle) and f32 (fast); fully connected networks written once over it with exact
//! Hessian-vector products by forward-over-reverse ([`nn`]); Lanczos and power iteration for the
//! top Hessian eigenpairs and the dominant-subspace helpers ([`hessian`]); MNIST-5k fetched,
//! verified and cached ([`data`]); and the `spectrum` and `bench` jobs the CLI runs ([`jobs`]).

pub mod backend;
pub mod data;
pub mod error;
pub mod experiment;
pub mod hessian;
pub mod jobs;
pub mod mem;
pub mod nn;
pub mod optim;
pub mod paper;

/// The sandbox app: its state logic builds everywhere, its window natively (the browser build is
/// not there yet: see web/README.md).
pub mod app;

pub use error::{Error, Result};
