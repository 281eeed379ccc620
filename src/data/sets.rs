//! The data sets a command's or the app's runs read, each loaded (verified, from the cache or from
//! the bytes of the web page's asset) once, and the training sets cut from them.

use super::dataset::Dataset;
use super::load::DatasetKind;
use crate::error::{Error, Result};

/// The data sets a command's runs read, each loaded (verified, from the cache) once.
#[derive(Default)]
pub struct DataSets {
    pub mnist: Option<super::mnist::Mnist5k>,
    pub cifar10: Option<super::cifar10::Cifar10>,
    pub sst2: Option<super::sst2::Sst2>,
}

impl From<super::mnist::Mnist5k> for DataSets {
    fn from(m: super::mnist::Mnist5k) -> Self {
        DataSets {
            mnist: Some(m),
            cifar10: None,
            sst2: None,
        }
    }
}

impl DataSets {
    /// Whether `kind` is loaded.
    pub fn has(&self, kind: DatasetKind) -> bool {
        match kind {
            DatasetKind::Mnist => self.mnist.is_some(),
            DatasetKind::Cifar10 => self.cifar10.is_some(),
            DatasetKind::Sst2 => self.sst2.is_some(),
        }
    }
    /// Load `kind` from the cache in `dir` (fetching it where needed) unless it is loaded.
    /// Errors: the data set's own (unavailable: what to do; a damaged file: which).
    pub fn ensure(
        &mut self,
        kind: DatasetKind,
        dir: &std::path::Path,
        log: &mut dyn FnMut(&str),
    ) -> Result<()> {
        if self.has(kind) {
            return Ok(());
        }
        match kind {
            DatasetKind::Mnist => self.mnist = Some(super::mnist::load_or_fetch(dir, log)?.0),
            DatasetKind::Cifar10 => {
                let c = super::cifar10::load_or_fetch(dir, log)?.0;
                log(&format!("data: {}", c.describe()));
                self.cifar10 = Some(c)
            }
            DatasetKind::Sst2 => self.sst2 = Some(super::sst2::load_or_fetch(dir, log)?),
        }
        Ok(())
    }
    /// Add `kind` from the bytes of its cache file (the web page's asset), verified as the cache
    /// is; `origin` names it in errors. Errors: bytes that are not that cache (truncated, altered).
    pub fn insert_cache_bytes(
        &mut self,
        kind: DatasetKind,
        bytes: &[u8],
        origin: &std::path::Path,
    ) -> Result<()> {
        match kind {
            DatasetKind::Mnist => {
                self.mnist = Some(super::mnist::Mnist5k::from_cache_bytes(bytes, origin)?)
            }
            DatasetKind::Cifar10 => {
                self.cifar10 = Some(super::cifar10::Cifar10::from_cache_bytes(bytes, origin)?)
            }
            DatasetKind::Sst2 => {
                self.sst2 = Some(super::sst2::Sst2::from_cache_bytes(bytes, origin)?)
            }
        }
        Ok(())
    }
    /// The first `n` samples of `kind`, preprocessed by `pre` (a name `DatasetKind::check_preprocess`
    /// takes; SST-2 has one). CIFAR-10 asked for more records than are at hand gives those at hand.
    /// Errors: `kind` not loaded, n out of range, an unknown preprocessing.
    pub fn dataset(&self, kind: DatasetKind, pre: &str, n: usize) -> Result<Dataset> {
        let not_loaded = |what: &str| Error::InvalidArgument(format!("{what} was not loaded"));
        if n == 0 || n > kind.max_samples() {
            return Err(Error::InvalidArgument(format!(
                "data.samples = {n}: need 1..={} for {}",
                kind.max_samples(),
                kind.name()
            )));
        }
        let parse_err = |e: String| Error::InvalidArgument(format!("data.preprocess: {e}"));
        match kind {
            DatasetKind::Mnist => {
                let mn = self.mnist.as_ref().ok_or_else(|| not_loaded("MNIST-5k"))?;
                mn.dataset(pre.parse().map_err(parse_err)?, n)
            }
            DatasetKind::Cifar10 => {
                let c = self
                    .cifar10
                    .as_ref()
                    .ok_or_else(|| not_loaded("CIFAR-10"))?;
                c.dataset(pre.parse().map_err(parse_err)?, n.min(c.n()))
            }
            DatasetKind::Sst2 => {
                let s = self.sst2.as_ref().ok_or_else(|| not_loaded("SST2-1k"))?;
                kind.check_preprocess(pre).map_err(parse_err)?;
                s.dataset(&s.vocab(), super::sst2::SEQ_1K, n)
            }
        }
    }
}
