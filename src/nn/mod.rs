pub mod cnn;
pub mod engine;
pub mod graph;
pub mod mlp;
pub mod model;
pub mod ops;
pub mod transformer;
pub mod weights;
