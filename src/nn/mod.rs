//! Networks: the layer kinds and their rules ([`ops`]), a network as a list of ops ([`graph`]),
//! the models built from them ([`mlp`], [`cnn`], [`transformer`], [`vgg`], [`resnet`], one enum in [`model`]), their
//! weights on disk ([`weights`]), and the [`engine`] that runs any graph's passes for the loss,
//! the gradient and exact Hessian-vector products.

pub mod cnn;
pub mod engine;
pub mod graph;
pub mod mlp;
pub mod model;
pub mod ops;
pub mod resnet;
pub mod transformer;
pub mod vgg;
pub mod weights;

pub use engine::{Engine, Eval};
