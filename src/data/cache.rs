//! The verified caches every data set keeps in the per-user data directory: read with a cap
//! (absent is `Ok(None)`), written atomically (a temporary file in the same directory, synced,
//! renamed), and — where the published checksums do not cover every byte (CIFAR-10's records
//! past the first 4000, or fewer than 4000) — sealed with the sha256 of everything written,
//! appended at fetch time and checked on every load, so that no byte of a cache is used unchecked.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Bytes of the seal: a sha256.
pub(crate) const SEAL_BYTES: usize = 32;

/// The cache at `path`: `Ok(None)` when absent; its bytes (at most `max`, the size of the
/// format's largest cache) when present.
pub(crate) fn read(path: &Path, max: u64, what: &str) -> Result<Option<Vec<u8>>> {
    let f = match super::read::open_capped(path, max, what) {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    super::read::read_capped(f, max, path, what).map(Some)
}

/// Write `parts` one after another to `path` atomically: a temporary file in the same directory,
/// synced, then renamed over `path`.
pub(crate) fn write_atomic(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    let f = tmp.as_file_mut();
    parts
        .iter()
        .try_for_each(|p| f.write_all(p))
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// The seal of `parts` written one after another: their sha256.
pub(crate) fn seal(parts: &[&[u8]]) -> [u8; SEAL_BYTES] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The bytes before the seal when the last [`SEAL_BYTES`] bytes are the sha256 of the rest;
/// `None` when they are not (the cache was altered or damaged after it was written).
pub(crate) fn unseal(bytes: &[u8]) -> Option<&[u8]> {
    let body = bytes.len().checked_sub(SEAL_BYTES)?;
    let (body, tail) = bytes.split_at(body);
    (seal(&[body])[..] == *tail).then_some(body)
}
