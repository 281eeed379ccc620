//! Reading the files a user points to and the caches: every file opened once (a pipe such as
//! `<(zcat x.gz)` or `/dev/stdin` can be read only once), every read capped by what the format
//! can hold (so `/dev/zero` or a huge sparse file ends in an error naming the limit, not in an
//! allocation of all memory), and gzip read to its last member (`cat a.gz b.gz`, bgzip and
//! `pigz -i` write several).

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The gzip magic.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Open `path` for reading once. A regular file larger than `max` bytes is refused before any byte
/// is read, naming `what` (the format and its limit); other files (pipes, devices) are capped
/// while they are read ([`read_capped`]).
pub(crate) fn open_capped(path: &Path, max: u64, what: &str) -> Result<std::fs::File> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if let Ok(m) = f.metadata()
        && m.is_file()
        && m.len() > max
    {
        return Err(too_large(path, m.len().to_string().as_str(), max, what));
    }
    Ok(f)
}

fn too_large(path: &Path, size: &str, max: u64, what: &str) -> Error {
    Error::data(
        path,
        format!("{size} bytes, more than the {max} that {what} can hold: not that file"),
    )
}

/// Everything `r` yields, at most `max` bytes: one byte more is an error naming `what` (the
/// format whose limit it is) — the read stops there, so nothing larger is ever held.
pub(crate) fn read_capped(r: impl Read, max: u64, path: &Path, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > max {
        return Err(too_large(path, &format!("over {max}"), max, what));
    }
    Ok(out)
}

/// The first `n` bytes of `r` (fewer at its end), read in as many calls as a pipe needs.
pub(crate) fn peek(r: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// A reader of `path`'s content: its bytes, or — when they start with the gzip magic — the
/// inflated bytes of every gzip member in turn. The file is opened once (see [`open_capped`]).
pub(crate) fn open_maybe_gz(path: &Path, max: u64, what: &str) -> Result<Box<dyn Read>> {
    let mut f = open_capped(path, max, what)?;
    let head = peek(&mut f, 2).map_err(|e| Error::io(path, e))?;
    let gz = head == GZIP_MAGIC;
    let stream = std::io::Cursor::new(head).chain(f);
    Ok(if gz {
        Box::new(Inflated(flate2::read::MultiGzDecoder::new(stream)))
    } else {
        Box::new(stream)
    })
}

/// A gzip decoder whose errors say that the gzip stream is corrupt.
pub(crate) struct Inflated<R>(pub(crate) flate2::read::MultiGzDecoder<R>);

impl<R: Read> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| std::io::Error::new(e.kind(), format!("corrupt gzip stream: {e}")))
    }
}

/// Refuse to read `bytes` that would not fit in memory: more than 90 % of what this machine has
/// available (Linux's `MemAvailable`; where unknown, more than 2^50 bytes). `what` names the
/// reading, e.g. "the weights file w.safetensors".
pub(crate) fn check_fits(what: &str, bytes: u64) -> Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("MemAvailable:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    });
    #[cfg(not(target_arch = "wasm32"))]
    let limit = available.map_or(1u64 << 50, |kb| kb.saturating_mul(1024) / 10 * 9);
    #[cfg(target_arch = "wasm32")]
    let limit = 1u64 << 31;
    if bytes <= limit {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{what} would need {bytes} bytes of memory, more than the {limit} this machine can give (90 % of what is available)"
    )))
}
