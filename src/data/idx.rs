//! The IDX format of the MNIST files: a 4-byte magic (0, 0, type, number of dimensions), the
//! dimensions as big-endian u32, then the data. Only unsigned bytes (type 0x08) are accepted.
//! Gzip files (`.gz`, or any file starting with the gzip magic) are inflated first, every member of
//! a multi-member file, with a cap on the inflated size so a corrupt or hostile file cannot exhaust
//! memory.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The largest file accepted (inflated): the full 60,000-image training set is 47 MB.
pub const MAX_IDX_BYTES: u64 = 256 << 20;

/// A parsed IDX array of bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Read a file, inflating it if it is gzip (every member of a multi-member file); the file is
/// opened once and at most [`MAX_IDX_BYTES`] are read or inflated.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    const WHAT: &str = "an MNIST or CIFAR-10 file";
    let r = super::read::open_maybe_gz(path, MAX_IDX_BYTES, WHAT)?;
    super::read::read_capped(r, MAX_IDX_BYTES, path, WHAT)
}

/// The bytes of a file as read: inflated if they are gzip (every member; at most
/// [`MAX_IDX_BYTES`]), else unchanged; `path` only names the file in errors.
pub fn inflate_maybe_gz(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if raw.starts_with(&super::read::GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, format!("corrupt gzip stream: {e}")))?;
        if out.len() as u64 > MAX_IDX_BYTES {
            return Err(Error::data(
                path,
                format!("inflates beyond {MAX_IDX_BYTES} bytes: not an MNIST or CIFAR-10 file"),
            ));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse IDX bytes; `path` only names the file in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<Idx> {
    if bytes.len() < 4 {
        return Err(Error::data(
            path,
            format!("{} bytes: too short for an IDX header", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::data(
            path,
            format!(
                "bad magic {:02x}{:02x}{:02x}{:02x}: not an IDX file",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(Error::data(
            path,
            format!(
                "IDX element type 0x{:02x}; only unsigned bytes (0x08) are supported",
                bytes[2]
            ),
        ));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(Error::data(
            path,
            format!("IDX with {ndim} dimensions; expected 1 to 4"),
        ));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::data(
            path,
            format!(
                "truncated header: {} bytes for {ndim} dimensions",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    // Checked before any allocation: the header's claim must match the bytes present.
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let body = bytes.len() - header;
    match count {
        Some(c) if c == body => {}
        Some(c) if c > body => {
            return Err(Error::data(
                path,
                format!("truncated: header {dims:?} promises {c} bytes, file holds {body}"),
            ));
        }
        Some(c) => {
            return Err(Error::data(
                path,
                format!(
                    "{} trailing bytes after the {c} of header {dims:?}",
                    body - c
                ),
            ));
        }
        None => return Err(Error::data(path, format!("absurd dimensions {dims:?}"))),
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Write an IDX file of bytes (for tests and for exporting).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
