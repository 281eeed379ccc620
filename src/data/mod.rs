//! Data: the IDX format, MNIST-5k (fetch, verify, cache, preprocess), CIFAR10-5k (the same for
//! CIFAR-10's binary format), SST2-1k (GLUE's TSV, a word vocabulary), in-memory data sets and their export to safetensors.
pub mod cifar10;
pub mod dataset;
pub mod export;
pub mod idx;
pub mod load;
pub mod mnist;
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
