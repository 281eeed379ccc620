//! Data: the IDX format, MNIST-5k (fetch, verify, cache, preprocess), CIFAR10-5k (the same for
//! CIFAR-10's binary format), SST2-1k (GLUE's TSV, a word vocabulary), in-memory data sets and their export to safetensors.
pub mod cifar10;
pub mod dataset;
pub mod export;
pub mod idx;
pub mod load;
pub mod mnist;
pub mod sst2;
