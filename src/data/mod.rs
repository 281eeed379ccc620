//! Data: the IDX format, MNIST-5k (fetch, verify, cache, preprocess), CIFAR10-5k (the same for
//! CIFAR-10's binary format), SST2-1k (GLUE's TSV, a word vocabulary), in-memory data sets and
//! their export to safetensors. Every input file is opened once and read with a cap
//! (`read`); every cache is written atomically and checked in every byte on load (`cache`).
mod cache;
pub mod cifar10;
pub mod dataset;
pub mod export;
pub mod idx;
pub mod load;
pub mod mnist;
pub(crate) mod read;
pub mod sets;
pub mod sst2;

/// The existing files `shared/REL` and `../shared/REL` under the current directory, then under the
/// source checkout this binary was built from (`CARGO_MANIFEST_DIR`), canonicalised, without
/// repeats: where the data subsets kept beside the repository are looked for.
pub fn shared_files(rel: &str) -> Vec<std::path::PathBuf> {
    let mut bases = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        bases.push(cwd);
    }
    bases.push(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let mut out: Vec<std::path::PathBuf> = Vec::new();
    for b in bases {
        for shared in [b.join("shared"), b.join("..").join("shared")] {
            let p = shared.join(rel);
            if p.is_file() {
                let canon = p.canonicalize().unwrap_or(p);
                if !out.contains(&canon) {
                    out.push(canon);
                }
            }
        }
    }
    out
}

/// A data set from what is on this machine only, never the network: `cached` (the verified cache)
/// if there is one, else the file the environment variable `env` names, else the `shared` files
/// (see [`shared_files`]), each through `fetch` (which verifies it and writes the cache); a file
/// that fails is logged and the next tried. `Ok(None)` when none is there.
pub(crate) fn load_local_with<T, S>(
    cached: Option<T>,
    env: &str,
    shared: Vec<std::path::PathBuf>,
    mut fetch: impl FnMut(&std::path::Path, &mut dyn FnMut(&str)) -> crate::error::Result<(T, S)>,
    log: &mut dyn FnMut(&str),
) -> crate::error::Result<Option<T>> {
    if cached.is_some() {
        return Ok(cached);
    }
    let from_env = std::env::var_os(env)
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    for p in from_env.into_iter().chain(shared) {
        match fetch(&p, log) {
            Ok((t, _)) => return Ok(Some(t)),
            Err(e) => log(&format!("{e}")),
        }
    }
    Ok(None)
}
