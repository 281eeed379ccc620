//! Networks over the backend trait, and their weights on disk.
pub mod mlp;
pub mod weights;
