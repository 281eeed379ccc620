//! CIFAR10-5k: the first 5000 records of CIFAR-10's `data_batch_1.bin` (the binary version of the
//! data set), parsed from the canonical formats, verified, cached in the per-user data directory
//! beside MNIST-5k, and preprocessed.
//!
//! A record is 1 label byte (0..=9) and 3072 bytes of image: the red, green and blue planes, each
//! 32×32 row-major, i.e. PyTorch's CHW order. Accepted inputs (see [`Cifar10::from_path`]):
//! `cifar-10-binary.tar.gz` (its member `cifar-10-batches-bin/data_batch_1.bin`), a
//! `data_batch_1.bin`, or any file of whole records, raw or gzip (such as the 4000-record
//! `data_batch_1.first4000.bin.gz` kept in the shared data folder).
//!
//! Fewer than 5000 records are accepted: the struct keeps how many it holds ([`Cifar10::n`]) and
//! [`Cifar10::describe`] says so in every output ("CIFAR10-4k (first 4000 of the 5000 the paper
//! uses)"). More are cut to the first 5000.
//!
//! Verification: the length is a whole number of records, every label is below 10, and — when
//! there are at least 4000 records — the sha256 of the first 4000 records' bytes is the canonical
//! one ([`FIRST4000_SHA256`]). Records 4000..5000 are checked for format only (no published
//! checksum of them is known here); fewer than 4000 records cannot be checked against it at all,
//! and [`Cifar10::describe`] says that too. The cache is sealed at fetch time with the sha256 of
//! everything written (`data::cache`), so that no record of it — past 4000, or of a short
//! cache — is used unchecked after it was written.

use super::dataset::Dataset;
use super::read::{GZIP_MAGIC, Inflated, peek, read_capped};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Records in CIFAR10-5k (the paper's subset).
pub const N: usize = 5000;
pub const SIDE: usize = 32;
pub const CHANNELS: usize = 3;
/// Features per image: 3 × 32 × 32, CHW.
pub const D: usize = CHANNELS * SIDE * SIDE;
/// Bytes per record: the label, then the image.
pub const RECORD: usize = 1 + D;
pub const CLASSES: usize = 10;
/// The class names, by label.
pub const CLASS_NAMES: [&str; CLASSES] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// How many leading records the checksum covers.
pub const CHECKED_RECORDS: usize = 4000;
/// sha256 of the first 4000 records of `data_batch_1.bin` (4000 × 3073 bytes, as in the file).
pub const FIRST4000_SHA256: &str =
    "0993cf8b8e43bc207603aef9787006995746513f5e3fa5a52e06d1b069926330";
/// The canonical archive (binary version). Overridable with `SUBSPACE_LAB_CIFAR10_URL` (empty
/// disables the download).
pub const URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// The member of the archive that holds the first batch.
pub const TAR_MEMBER: &str = "cifar-10-batches-bin/data_batch_1.bin";
/// The 4000-record file, relative to a `shared/` folder (see [`local_candidates`]).
pub const SHARED_FILE: &str = "data/cifar10/data_batch_1.first4000.bin.gz";
const CACHE_FILE: &str = "cifar10-5k-v1.bin";
/// The web page's copy of the cache (`data web-asset`): the same bytes.
pub const ASSET_NAME: &str = CACHE_FILE;
/// The cache's magic: the records are followed by their seal (see `data::cache`).
const CACHE_MAGIC: &[u8; 16] = b"SSLAB-CIFAR10-v2";
/// The magic of caches written before the seal.
const CACHE_MAGIC_V1: &[u8; 16] = b"SSLAB-CIFAR10-v1";
/// The largest cache: header, 5000 records, seal.
const MAX_CACHE_BYTES: u64 = (20 + N * RECORD + super::cache::SEAL_BYTES) as u64;
/// What to do about a cache that fails a check.
const CACHE_FIX: &str = "run `subspace-lab data fetch --dataset cifar10` again (with `--from FILE` for a file you have) to write the cache anew";
/// The largest archive member or file of records read (data_batch_1.bin is 30,730,000 bytes).
pub const MAX_MEMBER_BYTES: u64 = 64 << 20;

/// Input scaling of CIFAR-10.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cifar10Preprocess {
    /// x/255, then per feature (pixel × channel) minus the mean and divided by the standard
    /// deviation, n in the denominator (numpy's `std(0)`), over the loaded records: Cohen et
    /// al.'s convention (the default).
    #[default]
    Standardize,
    /// x/255 only.
    Scale,
}

impl Cifar10Preprocess {
    pub fn name(self) -> &'static str {
        match self {
            Cifar10Preprocess::Standardize => "standardize",
            Cifar10Preprocess::Scale => "scale",
        }
    }
}

impl std::fmt::Display for Cifar10Preprocess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Cifar10Preprocess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "standardize" => Ok(Cifar10Preprocess::Standardize),
            "scale" => Ok(Cifar10Preprocess::Scale),
            o => Err(format!(
                "unknown CIFAR-10 preprocessing '{o}' (standardize or scale)"
            )),
        }
    }
}

/// The raw bytes of the first n ≤ 5000 records of `data_batch_1.bin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cifar10 {
    /// n × 3072 pixels, each image CHW (R, G, B planes of 32×32, row-major).
    pub images: Vec<u8>,
    /// n labels 0..=9.
    pub labels: Vec<u8>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// "4k" for 4000, "4500" otherwise.
fn count_name(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

impl Cifar10 {
    /// How many records this holds (1..=5000).
    pub fn n(&self) -> usize {
        self.labels.len()
    }

    /// What this is, for every output: "CIFAR10-5k", or e.g. "CIFAR10-4k (first 4000 of the 5000
    /// the paper uses)"; below 4000 records it adds that the checksum could not be checked.
    pub fn describe(&self) -> String {
        let n = self.n();
        if n == N {
            return "CIFAR10-5k".into();
        }
        let unchecked = if n < CHECKED_RECORDS {
            format!(
                "; fewer than {CHECKED_RECORDS} records, so not checked against the canonical checksum"
            )
        } else {
            String::new()
        };
        format!(
            "CIFAR10-{} (first {n} of the {N} the paper uses{unchecked})",
            count_name(n)
        )
    }

    /// The records as in `data_batch_1.bin`: label byte, then the image, for each.
    pub fn to_records(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.n() * RECORD);
        for (l, img) in self.labels.iter().zip(self.images.chunks_exact(D)) {
            out.push(*l);
            out.extend_from_slice(img);
        }
        out
    }

    /// Check sizes, labels and (with ≥ 4000 records) the checksum; `origin` names the data in
    /// errors.
    pub fn verify(&self, origin: &Path) -> Result<()> {
        let n = self.n();
        if n == 0 || n > N || self.images.len() != n * D {
            return Err(Error::data(
                origin,
                format!(
                    "{} labels and {} image bytes; CIFAR10-5k holds 1..={N} records of {D} bytes",
                    n,
                    self.images.len()
                ),
            ));
        }
        if let Some(i) = self.labels.iter().position(|&l| l as usize >= CLASSES) {
            return Err(Error::data(
                origin,
                format!(
                    "record {i} has label {}; CIFAR-10 labels are 0..=9",
                    self.labels[i]
                ),
            ));
        }
        if n >= CHECKED_RECORDS {
            let head = Cifar10 {
                images: self.images[..CHECKED_RECORDS * D].to_vec(),
                labels: self.labels[..CHECKED_RECORDS].to_vec(),
            };
            check_sha(&head.to_records(), origin)?;
        }
        Ok(())
    }

    /// Parse records (`data_batch_1.bin`'s format, already inflated) and verify them: a whole
    /// number of 3073-byte records, at least one, labels below 10, and the checksum of the first
    /// 4000 when there are that many. Keeps the first 5000. `origin` names the file in errors.
    pub fn from_records(bytes: &[u8], origin: &Path) -> Result<Self> {
        if bytes.is_empty() {
            return Err(Error::data(origin, "empty: no CIFAR-10 records"));
        }
        let rem = bytes.len() % RECORD;
        if rem != 0 {
            return Err(Error::data(
                origin,
                format!(
                    "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records ({} records and {rem} bytes left over): truncated, or not CIFAR-10's binary format",
                    bytes.len(),
                    bytes.len() / RECORD
                ),
            ));
        }
        let count = bytes.len() / RECORD;
        for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
            if rec[0] as usize >= CLASSES {
                return Err(Error::data(
                    origin,
                    format!(
                        "record {i} has label {}; CIFAR-10 labels are 0..=9 (not CIFAR-10's binary format, or CIFAR-100's)",
                        rec[0]
                    ),
                ));
            }
        }
        if count >= CHECKED_RECORDS {
            check_sha(&bytes[..CHECKED_RECORDS * RECORD], origin)?;
        }
        let keep = count.min(N);
        let mut images = Vec::with_capacity(keep * D);
        let mut labels = Vec::with_capacity(keep);
        for rec in bytes.chunks_exact(RECORD).take(keep) {
            labels.push(rec[0]);
            images.extend_from_slice(&rec[1..]);
        }
        Ok(Cifar10 { images, labels })
    }

    /// From a file: `cifar-10-binary.tar.gz` (or its `.tar`), `data_batch_1.bin`, or any file of
    /// records, raw or gzip (every member of a multi-member gzip). The format is recognised by
    /// content, not by name; the file is opened and read once (a pipe works), at most
    /// [`MAX_MEMBER_BYTES`] of records.
    pub fn from_path(path: &Path) -> Result<Self> {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let head = peek(&mut f, 512).map_err(|e| Error::io(path, e))?;
        let raw = std::io::Cursor::new(head.clone()).chain(f);
        if head.starts_with(&GZIP_MAGIC) {
            let mut inflated = Inflated(flate2::read::MultiGzDecoder::new(raw));
            let block = peek(&mut inflated, 512).map_err(|e| Error::io(path, e))?;
            let stream = std::io::Cursor::new(block.clone()).chain(inflated);
            Self::from_stream(stream, &block, path)
        } else {
            Self::from_stream(raw, &head, path)
        }
    }

    /// From `cifar-10-binary.tar.gz` (gzip or plain tar): its member
    /// `cifar-10-batches-bin/data_batch_1.bin`, streamed (the archive is not inflated whole).
    pub fn from_tar(path: &Path) -> Result<Self> {
        Self::from_path(path)
    }

    /// Records or a tar archive from `r`, whose first (inflated) bytes are `block`.
    fn from_stream(r: impl Read, block: &[u8], path: &Path) -> Result<Self> {
        if block.len() >= 262 && &block[257..262] == b"ustar" {
            return read_tar(tar::Archive::new(r), path);
        }
        let what = "a file of CIFAR-10 records (data_batch_1.bin is 30,730,000 bytes)";
        let bytes = read_capped(r, MAX_MEMBER_BYTES, path, what)?;
        Self::from_records(&bytes, path)
    }

    /// Features and one-hot targets of the first `n` records, preprocessed; features in CHW
    /// order per sample (d = 3072), 10 classes.
    ///
    /// [`Cifar10Preprocess::Standardize`] takes each feature's mean and standard deviation (n in
    /// the denominator, as numpy's `std(0)`) over **all the records loaded** ([`Cifar10::n`], 5000
    /// for CIFAR10-5k, 4000 for the shared subset), then keeps the first `n`. Cohen et al. took
    /// the statistics over the 50,000-image training set before taking the first 5000; those
    /// records are not at hand here, so the statistics are those of the loaded records. A
    /// feature with zero standard deviation (constant over the records) is left centred
    /// (x − mean, which is 0), not divided.
    pub fn dataset(&self, pre: Cifar10Preprocess, n: usize) -> Result<Dataset> {
        let total = self.n();
        if n == 0 || n > total {
            return Err(Error::InvalidArgument(format!(
                "--samples {n}: {} has 1..={total}",
                self.describe()
            )));
        }
        let mut x = Vec::with_capacity(n * D);
        match pre {
            Cifar10Preprocess::Scale => {
                for row in self.images.chunks_exact(D).take(n) {
                    x.extend(row.iter().map(|&v| v as f64 / 255.0));
                }
            }
            Cifar10Preprocess::Standardize => {
                // In integers, exactly: with S1 = Σv and S2 = Σv² over the records (v the byte),
                // (v/255 − mean)/std = (N·v − S1)/√(N·S2 − S1²), so a constant feature is
                // recognised exactly (N·S2 = S1²) and every value is rounded once.
                let mut s1 = vec![0i64; D];
                let mut s2 = vec![0i64; D];
                for row in self.images.chunks_exact(D) {
                    for ((a, b), &v) in s1.iter_mut().zip(s2.iter_mut()).zip(row) {
                        *a += v as i64;
                        *b += (v as i64) * (v as i64);
                    }
                }
                let t = total as i64;
                let scale: Vec<f64> = s1
                    .iter()
                    .zip(&s2)
                    .map(|(&a, &b)| {
                        let q = t * b - a * a;
                        if q > 0 {
                            (q as f64).sqrt()
                        } else {
                            // Constant feature: centred only, (v/255 − mean) = (N·v − S1)/(255·N).
                            255.0 * total as f64
                        }
                    })
                    .collect();
                for row in self.images.chunks_exact(D).take(n) {
                    for ((&v, &a), sc) in row.iter().zip(&s1).zip(&scale) {
                        x.push((t * v as i64 - a) as f64 / sc);
                    }
                }
            }
        }
        Dataset::new(D, CLASSES, x, self.labels[..n].to_vec())
    }

    /// Parse and verify the cache format (magic, record count as u32 little-endian, the
    /// records, the seal: the sha256 of everything before it); `path` only names the origin in
    /// errors. Every byte is checked: the records by their format and the canonical checksum of
    /// the first 4000, the whole by the seal written at fetch time. A cache written before the
    /// seal (`SSLAB-CIFAR10-v1`) is accepted only when the canonical checksum covers all of it
    /// (exactly 4000 records). Errors say what to do.
    pub fn from_cache_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let h = CACHE_MAGIC.len() + 4;
        let bad = |why: String| Error::data(path, format!("{why}; {CACHE_FIX}"));
        let sealed = bytes.starts_with(CACHE_MAGIC);
        if bytes.len() < h || !(sealed || bytes.starts_with(CACHE_MAGIC_V1)) {
            return Err(bad(format!(
                "{} bytes without the header: not a subspace-lab CIFAR-10 cache",
                bytes.len()
            )));
        }
        let count = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) as usize;
        let seal = if sealed { super::cache::SEAL_BYTES } else { 0 };
        if count == 0 || count > N || bytes.len() != h + count * RECORD + seal {
            return Err(bad(format!(
                "{} bytes for a header of {count} records: not a subspace-lab CIFAR-10 cache (truncated or extended)",
                bytes.len()
            )));
        }
        let c = Self::from_records(&bytes[h..h + count * RECORD], path).map_err(|e| match e {
            Error::Data { msg, .. } => bad(msg),
            other => other,
        })?;
        if sealed && super::cache::unseal(bytes).is_none() {
            return Err(bad(format!(
                "the sha256 of its {count} records, stored beside them when the cache was written, does not match them: the cache was altered or damaged after it was written"
            )));
        }
        if !sealed && count != CHECKED_RECORDS {
            return Err(bad(format!(
                "a cache of {count} records written by an older subspace-lab without a checksum of all of them (the canonical checksum covers exactly the first {CHECKED_RECORDS}), so it cannot be checked"
            )));
        }
        Ok(c)
    }
}

fn check_sha(first4000: &[u8], origin: &Path) -> Result<()> {
    let got = sha256_hex(first4000);
    if got != FIRST4000_SHA256 {
        return Err(Error::data(
            origin,
            format!(
                "sha256 of the first {CHECKED_RECORDS} records is {got}, expected {FIRST4000_SHA256}: not the canonical CIFAR-10 data_batch_1 (the first batch of the binary version, cifar-10-binary.tar.gz), or corrupt: give that archive or its data_batch_1.bin as downloaded"
            ),
        ));
    }
    Ok(())
}

fn read_tar<R: Read>(mut ar: tar::Archive<R>, path: &Path) -> Result<Cifar10> {
    let entries = ar
        .entries()
        .map_err(|e| Error::data(path, format!("not a tar archive: {e}")))?;
    let mut other_version = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::data(path, format!("corrupt archive: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| Error::data(path, format!("bad entry name: {e}")))?
            .into_owned();
        let name = name.strip_prefix("./").unwrap_or(&name).to_path_buf();
        if name == Path::new(TAR_MEMBER) {
            let size = entry.size();
            if size > MAX_MEMBER_BYTES {
                return Err(Error::data(
                    path,
                    format!("{TAR_MEMBER} is {size} bytes: not CIFAR-10's (30,730,000)"),
                ));
            }
            let mut buf = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut buf).map_err(|e| {
                Error::data(
                    path,
                    format!("corrupt archive while reading {TAR_MEMBER}: {e}"),
                )
            })?;
            return Cifar10::from_records(&buf, &path.join(TAR_MEMBER));
        }
        let top = name.components().next().map(|c| c.as_os_str().to_owned());
        if let Some(top) = top.as_ref().and_then(|t| t.to_str())
            && (top == "cifar-10-batches-py" || top == "cifar-10-batches-mat")
        {
            other_version = Some(top.to_string());
        }
    }
    Err(Error::data(
        path,
        match other_version {
            Some(v) => format!(
                "no {TAR_MEMBER} in the archive: it holds {v}/, another version of CIFAR-10; the binary version (cifar-10-binary.tar.gz) is needed"
            ),
            None => format!("no {TAR_MEMBER} in the archive"),
        },
    ))
}

pub fn cache_path(dir: &Path) -> PathBuf {
    dir.join(CACHE_FILE)
}

/// The cache: `Ok(None)` when absent; an error when present but wrong in any way (truncated,
/// altered, in any byte), so a half-written or edited file is never used.
pub fn load_cache(path: &Path) -> Result<Option<Cifar10>> {
    match super::cache::read(path, MAX_CACHE_BYTES, "a CIFAR10-5k cache")? {
        Some(bytes) => Cifar10::from_cache_bytes(&bytes, path).map(Some),
        None => Ok(None),
    }
}

/// Write the cache atomically (a temporary file in the same directory, synced, then renamed),
/// sealed with the sha256 of everything written.
pub fn write_cache(path: &Path, c: &Cifar10) -> Result<()> {
    c.verify(path)?;
    let count = (c.n() as u32).to_le_bytes();
    let records = c.to_records();
    let seal = super::cache::seal(&[CACHE_MAGIC, &count, &records]);
    super::cache::write_atomic(path, &[CACHE_MAGIC, &count, &records, &seal])
}

/// Where the data came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Cache(PathBuf),
    File(PathBuf),
    Https(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Cache(p) => write!(f, "cache {}", p.display()),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Https(u) => write!(f, "{u}"),
        }
    }
}

/// Where the 4000-record file is looked for, in order: `shared/` and `../shared/` under the
/// current directory, then under the source checkout this binary was built from
/// (`CARGO_MANIFEST_DIR`), each followed by [`SHARED_FILE`]. Only existing files are returned.
pub fn local_candidates() -> Vec<PathBuf> {
    super::shared_files(SHARED_FILE)
}

fn what_to_do() -> String {
    let local = match local_candidates().first() {
        Some(p) => format!(
            "`subspace-lab data fetch --dataset cifar10 --from {}` (the first 4000 records, here on this machine)",
            p.display()
        ),
        None => format!(
            "a file of the first records such as data_batch_1.first4000.bin.gz: `subspace-lab data fetch --dataset cifar10 --from FILE` (loaded automatically from shared/{SHARED_FILE} or ../shared/{SHARED_FILE}, or from $SUBSPACE_LAB_CIFAR10_FROM)"
        ),
    };
    format!(
        "What to do: download {URL} (the binary version, 163 MB) on a machine with internet access, copy it here and run `subspace-lab data fetch --dataset cifar10 --from cifar-10-binary.tar.gz` (data_batch_1.bin alone works too); or use {local}."
    )
}

/// CIFAR10-5k over HTTPS: the canonical archive (with `curl`), `$SUBSPACE_LAB_CIFAR10_URL` if set
/// (empty: no download).
pub fn from_https(log: &mut dyn FnMut(&str)) -> Result<(Cifar10, String)> {
    let url = std::env::var("SUBSPACE_LAB_CIFAR10_URL").unwrap_or_else(|_| URL.to_string());
    if url.trim().is_empty() {
        return Err(Error::data(
            "$SUBSPACE_LAB_CIFAR10_URL",
            "empty: downloading is disabled",
        ));
    }
    let tmp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let dest = tmp.path().join("cifar-10-binary.tar.gz");
    log(&format!("fetching {url} (163 MB)…"));
    let out = Command::new("curl")
        .args([
            "-fsSL",
            "--connect-timeout",
            "15",
            "--max-time",
            "1800",
            "-o",
        ])
        .arg(&dest)
        .arg(&url)
        .output()
        .map_err(|e| Error::data("curl", format!("cannot run it ({e})")))?;
    if !out.status.success() {
        return Err(Error::data(
            &url,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let c = Cifar10::from_path(&dest).map_err(|e| Error::data(&url, e.to_string()))?;
    Ok((c, url))
}

fn unavailable(attempts: &[String]) -> Error {
    Error::DataUnavailable {
        what: "CIFAR-10 (data_batch_1)".into(),
        msg: format!("{}\n{}", attempts.join("\n"), what_to_do()),
    }
}

/// Get CIFAR10-5k and write the cache. With `from`, that file (see [`Cifar10::from_path`]);
/// without, the canonical archive over HTTPS; on failure an error that says what to do.
pub fn fetch(
    dir: &Path,
    from: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> Result<(Cifar10, Source)> {
    let (c, source) = match from {
        Some(p) => (Cifar10::from_path(p)?, Source::File(p.to_path_buf())),
        None => match from_https(log) {
            Ok((c, url)) => (c, Source::Https(url)),
            Err(e) => return Err(unavailable(&[format!("  - https: {e}")])),
        },
    };
    // Never replace a cache with fewer records (a checksum-verified 4000 by an unverifiable 100).
    let path = cache_path(dir);
    if let Ok(Some(old)) = load_cache(&path)
        && old.n() > c.n()
    {
        return Err(Error::InvalidArgument(format!(
            "{} holds {}; {} has only {} records, so it would replace more data with less: keep the cache, or delete {} first if you mean it",
            path.display(),
            old.describe(),
            source,
            c.n(),
            path.display()
        )));
    }
    write_cache(&path, &c)?;
    Ok((c, source))
}

/// CIFAR-10 from what is on this machine only (the cache, `$SUBSPACE_LAB_CIFAR10_FROM`, the
/// shared file; never the network), writing the cache when it was absent; `Ok(None)` when none is
/// there.
pub fn load_local(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<Option<Cifar10>> {
    let cached = match load_cache(&cache_path(dir)) {
        Ok(c) => c,
        Err(e) => {
            log(&format!("ignoring a damaged cache ({e})"));
            None
        }
    };
    super::load_local_with(
        cached,
        "SUBSPACE_LAB_CIFAR10_FROM",
        local_candidates(),
        |p, log| fetch(dir, Some(p), log),
        log,
    )
}

/// The cached CIFAR-10 records, else (writing the cache): the file `$SUBSPACE_LAB_CIFAR10_FROM`
/// names (an error if that fails: it was asked for), else the 4000-record file found by
/// [`local_candidates`], else the canonical archive over HTTPS. A cache of fewer than 5000
/// records is used as it is; `data fetch --dataset cifar10 --from ARCHIVE` replaces it.
pub fn load_or_fetch(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<(Cifar10, Source)> {
    let path = cache_path(dir);
    match load_cache(&path) {
        Ok(Some(c)) => return Ok((c, Source::Cache(path))),
        Ok(None) => log(&format!("CIFAR-10 is not cached in {} yet", dir.display())),
        Err(e) => log(&format!("ignoring a damaged cache ({e}); fetching again")),
    }
    if let Some(p) = std::env::var_os("SUBSPACE_LAB_CIFAR10_FROM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        log(&format!(
            "reading CIFAR-10 from {} ($SUBSPACE_LAB_CIFAR10_FROM)",
            p.display()
        ));
        return fetch(dir, Some(&p), log);
    }
    let mut attempts = Vec::new();
    for p in local_candidates() {
        log(&format!("reading CIFAR-10 from {}", p.display()));
        match fetch(dir, Some(&p), log) {
            Ok(r) => return Ok(r),
            Err(e) => {
                log(&format!("{e}"));
                attempts.push(format!("  - {e}"));
            }
        }
    }
    match from_https(log) {
        Ok((c, url)) => {
            write_cache(&path, &c)?;
            Ok((c, Source::Https(url)))
        }
        Err(e) => {
            attempts.push(format!("  - https: {e}"));
            Err(unavailable(&attempts))
        }
    }
}
