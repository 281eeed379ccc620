//! One entry point for the data sets a network trains on: MNIST-5k, CIFAR10-5k and SST2-1k by name, fetched
//! or read from the verified cache, preprocessed, cut to the first n samples, and described (the
//! description names what was used, e.g. "CIFAR10-4k (first 4000 of the 5000 the paper uses)").

use super::cifar10::{self, Cifar10Preprocess};
use super::dataset::Dataset;
use super::mnist::{self, Preprocess};
use super::sst2;
use crate::error::{Error, Result};
use std::path::Path;

/// A data set by name (`--dataset`, `[data] dataset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    #[default]
    Mnist,
    Cifar10,
    Sst2,
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Sst2 => "sst2",
        }
    }
    /// The preprocessing the paper's code applies (Cohen et al.'s `mnist.py` / `cifar.py`).
    pub fn default_preprocess(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "normalize",
            DatasetKind::Cifar10 => "standardize",
            DatasetKind::Sst2 => "words",
        }
    }
    /// The most samples the data set offers (the paper's 5000; fewer may be at hand for CIFAR-10).
    pub fn max_samples(self) -> usize {
        match self {
            DatasetKind::Mnist => mnist::N,
            DatasetKind::Cifar10 => cifar10::N,
            DatasetKind::Sst2 => sst2::N,
        }
    }
    /// The file name of its cache, also the web page's asset (`data web-asset`).
    pub fn asset_name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => mnist::ASSET_NAME,
            DatasetKind::Cifar10 => cifar10::ASSET_NAME,
            DatasetKind::Sst2 => sst2::ASSET_NAME,
        }
    }
    /// Features and classes per sample.
    pub fn shape(self) -> (usize, usize) {
        match self {
            DatasetKind::Mnist => (mnist::D, 10),
            DatasetKind::Cifar10 => (cifar10::D, cifar10::CLASSES),
            DatasetKind::Sst2 => (sst2::SEQ_1K, 2),
        }
    }
    /// Check a preprocessing name for this data set. Errors: what the data set takes.
    pub fn check_preprocess(self, pre: &str) -> std::result::Result<(), String> {
        match self {
            DatasetKind::Mnist => pre.parse::<Preprocess>().map(|_| ()),
            DatasetKind::Cifar10 => pre.parse::<Cifar10Preprocess>().map(|_| ()),
            DatasetKind::Sst2 => match pre {
                "words" => Ok(()),
                o => Err(format!(
                    "unknown preprocessing '{o}' (SST-2 has one: words, ids of a word vocabulary)"
                )),
            },
        }
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mnist" => Ok(DatasetKind::Mnist),
            "cifar10" => Ok(DatasetKind::Cifar10),
            "sst2" => Ok(DatasetKind::Sst2),
            o => Err(format!("unknown dataset '{o}' (mnist, cifar10 or sst2)")),
        }
    }
}

/// A loaded, preprocessed data set and what it is.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub data: Dataset,
    pub kind: DatasetKind,
    /// What was loaded, e.g. "MNIST-5k" or "CIFAR10-4k (first 4000 of the 5000 the paper uses)".
    pub description: String,
    pub preprocess: String,
    /// Where the preprocessing's statistics come from.
    pub statistics: String,
    /// Shape of x in PyTorch's layout ([n, 784] or [n, 3, 32, 32]).
    pub x_shape: Vec<usize>,
    /// Set when fewer samples were at hand than asked for (CIFAR-10 beyond the records present).
    pub note: Option<String>,
}

/// Load `kind` from `dir` (the cache, fetching it first if needed), preprocessed with `pre` (None:
/// the data set's default) and cut to the first `samples` (None: all, the paper's 5000). With
/// `clamp`, asking CIFAR-10 for more records than are at hand uses those at hand and says so in
/// [`Loaded::note`]; without, it is an error.
pub fn load(
    kind: DatasetKind,
    dir: &Path,
    pre: Option<&str>,
    samples: Option<usize>,
    clamp: bool,
    log: &mut dyn FnMut(&str),
) -> Result<Loaded> {
    let pre_name = pre.unwrap_or(kind.default_preprocess());
    kind.check_preprocess(pre_name)
        .map_err(|e| Error::InvalidArgument(format!("--preprocess for {}: {e}", kind.name())))?;
    if samples == Some(0) {
        return Err(Error::InvalidArgument(
            "--samples 0: use at least one sample".into(),
        ));
    }
    match kind {
        DatasetKind::Mnist => {
            let p: Preprocess = pre_name.parse().map_err(Error::InvalidArgument)?;
            let n = samples.unwrap_or(mnist::N);
            if n > mnist::N {
                return Err(Error::InvalidArgument(format!(
                    "--samples {n}: MNIST-5k has 1..={}",
                    mnist::N
                )));
            }
            let (m, src) = mnist::load_or_fetch(dir, log)?;
            if !matches!(src, mnist::Source::Cache(_)) {
                log(&format!("MNIST-5k verified and cached from {src}"));
            }
            let statistics = match p {
                Preprocess::Center | Preprocess::Standardize => {
                    format!("per-pixel statistics over the {} images", mnist::N)
                }
                Preprocess::Normalize => "torchvision's mean 0.1307, std 0.3081".to_string(),
                Preprocess::None => "none: x/255".to_string(),
            };
            Ok(Loaded {
                data: m.dataset(p, n)?,
                kind,
                description: "MNIST-5k".into(),
                preprocess: pre_name.into(),
                statistics,
                x_shape: vec![n, mnist::D],
                note: None,
            })
        }
        DatasetKind::Cifar10 => {
            let p: Cifar10Preprocess = pre_name.parse().map_err(Error::InvalidArgument)?;
            if let Some(n) = samples.filter(|&n| n > cifar10::N) {
                return Err(Error::InvalidArgument(format!(
                    "--samples {n}: CIFAR10-5k has at most {} records",
                    cifar10::N
                )));
            }
            let (c, _) = cifar10::load_or_fetch(dir, log)?;
            let mut n = samples.unwrap_or(c.n());
            let mut note = None;
            if n > c.n() {
                if !clamp {
                    return Err(Error::InvalidArgument(format!(
                        "--samples {n}: {} has 1..={}; for more, fetch the full first batch (`subspace-lab data fetch --dataset cifar10 --from cifar-10-binary.tar.gz`)",
                        c.describe(),
                        c.n()
                    )));
                }
                let msg = format!(
                    "asked for {n} CIFAR-10 samples; {} — using {}",
                    c.describe(),
                    c.n()
                );
                log(&msg);
                note = Some(msg);
                n = c.n();
            }
            let statistics = match p {
                Cifar10Preprocess::Standardize => format!(
                    "per-feature mean and std (n denominator) over the {} records loaded (Cohen et al. took them over the 50,000 training images)",
                    c.n()
                ),
                Cifar10Preprocess::Scale => "none: x/255".to_string(),
            };
            Ok(Loaded {
                data: c.dataset(p, n)?,
                kind,
                description: c.describe(),
                preprocess: pre_name.into(),
                statistics,
                x_shape: vec![n, cifar10::CHANNELS, cifar10::SIDE, cifar10::SIDE],
                note,
            })
        }
        DatasetKind::Sst2 => {
            let s = sst2::load_or_fetch(dir, log)?;
            let n = samples.unwrap_or(sst2::N);
            let v = s.vocab();
            Ok(Loaded {
                data: s.dataset(&v, sst2::SEQ_1K, n)?,
                kind,
                description: "SST2-1k".into(),
                preprocess: pre_name.into(),
                statistics: format!(
                    "word ids of the vocabulary of the {} training sentences ({} ids, 0 = padding, 1 = unknown), padded to {} positions",
                    sst2::N,
                    v.len(),
                    sst2::SEQ_1K
                ),
                x_shape: vec![n, sst2::SEQ_1K],
                note: None,
            })
        }
    }
}
