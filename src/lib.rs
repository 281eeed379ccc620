//! subspace-lab: watch "Does SGD really happen in tiny subspaces?" (Song, Ahn, Yun 2024) happen.
//!
//! The engine: a backend trait of primitives ([`backend`]) with a CPU implementation in f64 (the
//! oracle) and f32 (fast) and a WebGPU one (wgpu: natively, and in the browser through JSPI); the
//! paper's networks — fully connected (fc-tanh), convolutional (cnn-relu) and a 2-layer
//! Transformer — written once over it as graphs of ops with exact Hessian-vector products by
//! forward-over-reverse ([`nn`]); Lanczos, block Davidson and power iteration for the top Hessian
//! eigenpairs and the dominant-subspace helpers ([`hessian`]); MNIST-5k, CIFAR10-5k and SST2-1k
//! fetched, verified and cached ([`data`]); the experiments and the paper's presets
//! ([`experiment`]); the `spectrum` and `bench` jobs the CLI runs ([`jobs`]); and the sandbox app
//! ([`app`]).

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

/// The sandbox app: its state logic builds everywhere; it runs natively in a window and in the
/// browser (the page and its compute Web Worker: see web/README.md).
pub mod app;

pub use error::{Error, Result};
