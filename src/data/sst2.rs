//! SST2-1k: the first 1000 sentences of GLUE SST-2's `train.tsv` (binary sentiment), the data of
//! the paper's Transformer. (Damian et al.'s code took 500 sentences of each class and
//! bert-base-uncased WordPiece instead; the paper says "SST2-1k" and nothing of the tokeniser.)
//!
//! Format: a header `sentence\tlabel`, then `sentence<TAB>label` rows with label 0 or 1; GLUE's
//! sentences are lower-cased with spaces around punctuation. A word is an element of the
//! sentence split on whitespace.
//!
//! Vocabulary (built from the 1000 training sentences, whatever `--samples` is): words by
//! descending count, ties in code-point order; id 0 is padding (`<pad>`), id 1 an unknown word
//! (`<unk>`), words from 2: 2970 ids. Sentences are padded on the right with 0 to the longest
//! training sentence, T = 51 words. Embedding rows of ids that no sentence in use contains (the
//! padding row when masked, words beyond `--samples`) get no gradient: each adds exact zero
//! eigenvalues to the Hessian.

use super::dataset::Dataset;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Sentences of SST2-1k.
pub const N: usize = 1000;
/// Vocabulary size of SST2-1k (2968 words, padding and unknown).
pub const VOCAB_1K: usize = 2970;
/// The longest sentence of SST2-1k, in words.
pub const SEQ_1K: usize = 51;
/// sha256 of the header line and the first 1000 rows of GLUE's `train.tsv`, byte for byte.
pub const FIRST1000_SHA256: &str =
    "87b9d93b7ce04ef72f94931f8ffe7017c1d1976bf3365bb9931b4149a3b20e5c";
/// GLUE's SST-2 archive.
pub const URL: &str = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip";
/// The training file inside the archive.
pub const ZIP_MEMBER: &str = "SST-2/train.tsv";
/// The first 1000 rows kept beside the repository (`shared/`).
pub const SHARED_FILE: &str = "data/sst2/train.first1000.tsv";
const CACHE_FILE: &str = "sst2-train-first1000.tsv";
/// The web page's copy of the cache (`data web-asset`): the same bytes.
pub const ASSET_NAME: &str = CACHE_FILE;
const HEADER: &str = "sentence\tlabel";
/// The largest file read as SST-2 (GLUE's SST-2.zip is 7 MB, its train.tsv 4.8 MB), and the
/// largest member read from a zip.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;
/// What to do when a file the user gave is not SST-2's.
const INPUT_FIX: &str = "give GLUE's SST-2.zip or its SST-2/train.tsv as downloaded (or a file of its header and first 1000 rows, unchanged)";
/// What to do when the cache is damaged.
const CACHE_FIX: &str = "run `subspace-lab data fetch --dataset sst2` again (with `--from FILE` for a file you have) to write the cache anew";
/// Id of padding.
pub const PAD: usize = 0;
/// Id of a word not in the vocabulary.
pub const UNK: usize = 1;

/// Labelled sentences (the first 1000 of SST-2's training set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sst2 {
    pub sentences: Vec<String>,
    pub labels: Vec<u8>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Sst2 {
    /// Parse GLUE's TSV (header, then rows), keeping the first [`N`] rows, and check them against
    /// [`FIRST1000_SHA256`]. Errors name the file and line.
    pub fn from_tsv(bytes: &[u8], origin: &Path) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::data(
                origin,
                format!("not UTF-8 text ({e}): not GLUE's SST-2 train.tsv"),
            )
        })?;
        let mut lines = text.split_inclusive('\n');
        let header = lines.next().unwrap_or("");
        if header.trim_end_matches(['\n', '\r']) != HEADER {
            return Err(Error::data(
                origin,
                format!(
                    "the first line is {:?}, not the header {HEADER:?} of GLUE's SST-2 train.tsv",
                    header.chars().take(60).collect::<String>()
                ),
            ));
        }
        let mut kept = header.len();
        let (mut sentences, mut labels) = (Vec::new(), Vec::new());
        for (i, line) in lines.take(N).enumerate() {
            let row = line.trim_end_matches(['\n', '\r']);
            let (s, l) = row.rsplit_once('\t').ok_or_else(|| {
                Error::data(
                    origin,
                    format!("line {}: no tab between sentence and label", i + 2),
                )
            })?;
            let label = match l {
                "0" => 0,
                "1" => 1,
                o => {
                    return Err(Error::data(
                        origin,
                        format!("line {}: label {o:?} is not 0 or 1", i + 2),
                    ));
                }
            };
            sentences.push(s.to_string());
            labels.push(label);
            kept += line.len();
        }
        if sentences.len() < N {
            return Err(Error::data(
                origin,
                format!(
                    "{} rows; SST2-1k needs the first {N} rows of GLUE's train.tsv",
                    sentences.len()
                ),
            ));
        }
        let got = sha256_hex(&bytes[..kept]);
        if got != FIRST1000_SHA256 {
            return Err(Error::Checksum {
                what: format!(
                    "{} (header and first {N} rows of SST-2 train.tsv)",
                    origin.display()
                ),
                expected: FIRST1000_SHA256.into(),
                got,
                data: "the header and first 1000 rows of GLUE's SST-2 train.tsv".into(),
                fix: INPUT_FIX.into(),
            });
        }
        Ok(Sst2 { sentences, labels })
    }

    /// Parse and verify the cache (the web page's asset is the same file): GLUE's header and
    /// first 1000 rows, byte for byte what [`Sst2::to_tsv`] writes, nothing before or after, so
    /// that every byte is covered by the checksum; `path` only names the origin in errors.
    pub fn from_cache_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let s = Self::from_tsv(bytes, path).map_err(|e| match e {
            Error::Checksum {
                what,
                expected,
                got,
                data,
                ..
            } => Error::Checksum {
                what,
                expected,
                got,
                data,
                fix: CACHE_FIX.into(),
            },
            Error::Data { msg, .. } => Error::data(path, format!("{msg}; {CACHE_FIX}")),
            other => other,
        })?;
        if s.to_tsv() != bytes {
            return Err(Error::data(
                path,
                format!(
                    "{} bytes where the cache of SST2-1k holds {}: more than its header and {N} rows; {CACHE_FIX}",
                    bytes.len(),
                    s.to_tsv().len()
                ),
            ));
        }
        Ok(s)
    }

    /// Read a TSV file or GLUE's `SST-2.zip` (its `SST-2/train.tsv`): the file is opened and
    /// read once (a pipe works), at most [`MAX_INPUT_BYTES`].
    pub fn from_path(path: &Path) -> Result<Self> {
        const WHAT: &str = "GLUE's SST-2.zip (7 MB) or its train.tsv (4.8 MB)";
        let f = super::read::open_capped(path, MAX_INPUT_BYTES, WHAT)?;
        let bytes = super::read::read_capped(f, MAX_INPUT_BYTES, path, WHAT)?;
        if bytes.starts_with(b"PK\x03\x04") {
            return Self::from_zip(&bytes, path);
        }
        Self::from_tsv(&bytes, path)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn from_zip(bytes: &[u8], path: &Path) -> Result<Self> {
        let mut ar = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| Error::data(path, format!("not a readable zip archive ({e})")))?;
        let mut f = ar.by_name(ZIP_MEMBER).map_err(|_| {
            Error::data(
                path,
                format!("no {ZIP_MEMBER} in the archive: not GLUE's SST-2.zip"),
            )
        })?;
        // GLUE's train.tsv is 4.8 MB; read at most MAX_INPUT_BYTES of whatever claims to be it.
        let member = path.join(ZIP_MEMBER);
        let what = "GLUE's SST-2 train.tsv (4.8 MB)";
        let out = super::read::read_capped(&mut f, MAX_INPUT_BYTES, &member, what)?;
        Self::from_tsv(&out, &member)
    }

    #[cfg(target_arch = "wasm32")]
    fn from_zip(_bytes: &[u8], path: &Path) -> Result<Self> {
        Err(Error::data(
            path,
            "zip archives are read by the native build; give train.tsv",
        ))
    }

    /// The rows in GLUE's format (header and the 1000 rows), as cached.
    pub fn to_tsv(&self) -> Vec<u8> {
        let mut s = format!("{HEADER}\n");
        for (t, l) in self.sentences.iter().zip(&self.labels) {
            s.push_str(&format!("{t}\t{l}\n"));
        }
        s.into_bytes()
    }

    /// The vocabulary of these sentences.
    pub fn vocab(&self) -> Vocab {
        Vocab::build(&self.sentences)
    }

    /// The first `n` sentences as token ids [n, T] (T = the longest of the 1000) with their
    /// labels; `vocab` from [`Sst2::vocab`] or a saved model.
    pub fn dataset(&self, vocab: &Vocab, seq: usize, n: usize) -> Result<Dataset> {
        if n == 0 || n > self.sentences.len() {
            return Err(Error::InvalidArgument(format!(
                "--samples {n}: SST2-1k has 1..={}",
                self.sentences.len()
            )));
        }
        let mut x = Vec::with_capacity(n * seq);
        for s in &self.sentences[..n] {
            x.extend(vocab.encode(s, seq));
        }
        Dataset::new(seq, 2, x, self.labels[..n].to_vec())
    }

    /// The longest sentence in words.
    pub fn max_len(&self) -> usize {
        self.sentences
            .iter()
            .map(|s| words(s).count())
            .max()
            .unwrap_or(0)
    }
}

/// The words of a sentence (split on whitespace).
pub fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split_whitespace()
}

/// A word-level vocabulary: `words[id]`, with `<pad>` = 0 and `<unk>` = 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    pub words: Vec<String>,
    index: HashMap<String, usize>,
}

impl Vocab {
    /// Words of `sentences` by descending count, ties in code-point order, after `<pad>`, `<unk>`.
    pub fn build(sentences: &[String]) -> Self {
        let mut count: HashMap<&str, usize> = HashMap::new();
        for s in sentences {
            for w in words(s) {
                *count.entry(w).or_default() += 1;
            }
        }
        let mut ws: Vec<(&str, usize)> = count.into_iter().collect();
        ws.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut all = vec!["<pad>".to_string(), "<unk>".to_string()];
        all.extend(ws.into_iter().map(|(w, _)| w.to_string()));
        Self::from_words(all).expect("a built vocabulary starts with <pad>, <unk>")
    }

    /// A vocabulary from its words in id order (a saved model's). Errors: missing `<pad>`/`<unk>`
    /// at ids 0 and 1, or a word twice.
    pub fn from_words(words: Vec<String>) -> std::result::Result<Self, String> {
        if words.len() < 2 || words[PAD] != "<pad>" || words[UNK] != "<unk>" {
            return Err("a vocabulary starts with \"<pad>\", \"<unk>\"".into());
        }
        let mut index = HashMap::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            if index.insert(w.clone(), i).is_some() {
                return Err(format!("the word {w:?} appears twice in the vocabulary"));
            }
        }
        Ok(Vocab { words, index })
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Token ids of a sentence padded (or cut) to `seq` positions.
    pub fn encode(&self, s: &str, seq: usize) -> Vec<f64> {
        let mut ids: Vec<f64> = words(s)
            .take(seq)
            .map(|w| *self.index.get(w).unwrap_or(&UNK) as f64)
            .collect();
        ids.resize(seq, PAD as f64);
        ids
    }
}

pub fn cache_path(dir: &Path) -> PathBuf {
    dir.join(CACHE_FILE)
}

/// The cache: `Ok(None)` when absent; an error when present but wrong in any byte
/// ([`Sst2::from_cache_bytes`]).
pub fn load_cache(path: &Path) -> Result<Option<Sst2>> {
    match super::cache::read(path, MAX_INPUT_BYTES, "an SST2-1k cache")? {
        Some(b) => Sst2::from_cache_bytes(&b, path).map(Some),
        None => Ok(None),
    }
}

/// Write the cache atomically (temporary file, synced, renamed).
pub fn write_cache(path: &Path, s: &Sst2) -> Result<()> {
    super::cache::write_atomic(path, &[&s.to_tsv()])
}

/// `shared/` and `../shared/` under the current directory and the source checkout, each with
/// [`SHARED_FILE`]; existing files only.
pub fn local_candidates() -> Vec<PathBuf> {
    super::shared_files(SHARED_FILE)
}

fn what_to_do() -> String {
    format!(
        "What to do: download {URL} (7 MB) on a machine with internet access, copy it here and run `subspace-lab data fetch --dataset sst2 --from SST-2.zip` (its train.tsv, or a file of its header and first 1000 rows, works too; loaded automatically from shared/{SHARED_FILE} or ../shared/{SHARED_FILE}, or from $SUBSPACE_LAB_SST2_FROM)."
    )
}

/// SST-2 over HTTPS (GLUE's archive, with `curl`), `$SUBSPACE_LAB_SST2_URL` if set (empty: no
/// download).
pub fn from_https(log: &mut dyn FnMut(&str)) -> Result<(Sst2, String)> {
    let url = std::env::var("SUBSPACE_LAB_SST2_URL").unwrap_or_else(|_| URL.to_string());
    if url.trim().is_empty() {
        return Err(Error::data(
            "$SUBSPACE_LAB_SST2_URL",
            "empty: downloading is disabled",
        ));
    }
    let tmp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let dest = tmp.path().join("SST-2.zip");
    log(&format!("fetching {url} (7 MB)…"));
    let out = Command::new("curl")
        .args([
            "-fsSL",
            "--connect-timeout",
            "15",
            "--max-time",
            "600",
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
    let s = Sst2::from_path(&dest).map_err(|e| Error::data(&url, e.to_string()))?;
    Ok((s, url))
}

fn unavailable(attempts: &[String]) -> Error {
    Error::DataUnavailable {
        what: "SST2-1k (GLUE SST-2 train.tsv)".into(),
        msg: format!("{}\n{}", attempts.join("\n"), what_to_do()),
    }
}

/// Get SST2-1k and write the cache: from `from` (TSV or zip), else over HTTPS.
pub fn fetch(dir: &Path, from: Option<&Path>, log: &mut dyn FnMut(&str)) -> Result<(Sst2, String)> {
    let (s, source) = match from {
        Some(p) => (Sst2::from_path(p)?, p.display().to_string()),
        None => match from_https(log) {
            Ok(r) => r,
            Err(e) => return Err(unavailable(&[format!("  - https: {e}")])),
        },
    };
    write_cache(&cache_path(dir), &s)?;
    Ok((s, source))
}

/// SST2-1k from what is on this machine only (the cache, `$SUBSPACE_LAB_SST2_FROM`, the shared
/// file; never the network), writing the cache when it was absent; `Ok(None)` when none is there.
pub fn load_local(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<Option<Sst2>> {
    let cached = match load_cache(&cache_path(dir)) {
        Ok(c) => c,
        Err(e) => {
            log(&format!("ignoring a damaged cache ({e})"));
            None
        }
    };
    super::load_local_with(
        cached,
        "SUBSPACE_LAB_SST2_FROM",
        local_candidates(),
        |p, log| fetch(dir, Some(p), log),
        log,
    )
}

/// The cached sentences, else (writing the cache) `$SUBSPACE_LAB_SST2_FROM`, the shared file, or
/// HTTPS; on failure an error that says what to do.
pub fn load_or_fetch(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<Sst2> {
    let path = cache_path(dir);
    match load_cache(&path) {
        Ok(Some(s)) => return Ok(s),
        Ok(None) => log(&format!("SST-2 is not cached in {} yet", dir.display())),
        Err(e) => log(&format!("ignoring a damaged cache ({e}); fetching again")),
    }
    if let Some(p) = std::env::var_os("SUBSPACE_LAB_SST2_FROM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        log(&format!(
            "reading SST-2 from {} ($SUBSPACE_LAB_SST2_FROM)",
            p.display()
        ));
        return fetch(dir, Some(&p), log).map(|r| r.0);
    }
    let mut attempts = Vec::new();
    for p in local_candidates() {
        log(&format!("reading SST-2 from {}", p.display()));
        match fetch(dir, Some(&p), log) {
            Ok(r) => return Ok(r.0),
            Err(e) => attempts.push(format!("  - {e}")),
        }
    }
    match from_https(log) {
        Ok((s, _)) => {
            write_cache(&path, &s)?;
            Ok(s)
        }
        Err(e) => {
            attempts.push(format!("  - https: {e}"));
            Err(unavailable(&attempts))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_order_and_padding() {
        let s = vec!["b a a".to_string(), "c b a".to_string()];
        let v = Vocab::build(&s);
        assert_eq!(v.words, ["<pad>", "<unk>", "a", "b", "c"]);
        assert_eq!(v.encode("a zz c", 5), [2.0, 1.0, 4.0, 0.0, 0.0]);
        assert_eq!(v.encode("a a a", 2), [2.0, 2.0]);
    }

    /// GLUE's SST-2.zip holds SST-2/train.tsv; a zip without it is named.
    #[test]
    fn reads_glues_zip_and_names_a_wrong_one() {
        use std::io::Write as _;
        let Some(shared) = local_candidates().into_iter().next() else {
            eprintln!("SKIP: no shared/{SHARED_FILE} here");
            return;
        };
        let tsv = std::fs::read(&shared).unwrap();
        let zip_of = |member: &str| {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            w.start_file(member, opts).unwrap();
            w.write_all(&tsv).unwrap();
            w.finish().unwrap().into_inner()
        };
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("SST-2.zip");
        std::fs::write(&good, zip_of(ZIP_MEMBER)).unwrap();
        let s = Sst2::from_path(&good).unwrap();
        assert_eq!(s, Sst2::from_path(&shared).unwrap());
        let bad = dir.path().join("other.zip");
        std::fs::write(&bad, zip_of("SST-2/dev.tsv")).unwrap();
        let e = Sst2::from_path(&bad).unwrap_err().to_string();
        assert!(e.contains("other.zip") && e.contains(ZIP_MEMBER), "{e}");
    }
}
