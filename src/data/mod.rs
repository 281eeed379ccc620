//! Data: the IDX format, MNIST-5k (fetch, verify, cache, preprocess) and in-memory data sets.
pub mod dataset;
pub mod idx;
pub mod mnist;
