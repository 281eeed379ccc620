//! `init`: freshly initialised weights (PyTorch's default init, seeded) to a safetensors file.

use super::ArchArgs;
use super::common::log;
use anyhow::{Context, Result};
use std::path::Path;
use subspace_lab::data::mnist;
use subspace_lab::data::sst2;
use subspace_lab::nn::model::ModelSpec;
use subspace_lab::nn::weights::{self, SaveDtype};

/// Write the network `arch` names, initialised with `seed`, to `out` in `dtype` ("f32"/"f64").
pub(super) fn init_cmd(seed: u64, out: &Path, arch: &ArchArgs, dtype: &str) -> Result<()> {
    let spec = arch.spec()?;
    subspace_lab::mem::check(
        &format!("the network {}", spec.describe()),
        16.0 * spec.num_params() as f64,
        "use fewer or narrower layers (--widths)",
    )?;
    let theta = spec.init(seed);
    let dtype = if dtype == "f64" {
        SaveDtype::F64
    } else {
        SaveDtype::F32
    };
    let mut meta = Vec::new();
    if matches!(spec, ModelSpec::Transformer(_)) {
        // The vocabulary makes the file complete (the PyTorch twin checks it).
        // From this machine only: `init` does not download.
        let dir = mnist::data_dir()?;
        match sst2::load_local(&dir, &mut |s| log(s)) {
            Ok(Some(s)) => meta.push((
                "vocab".to_string(),
                serde_json::to_string(&s.vocab().words)?,
            )),
            Ok(None) | Err(_) => log(
                "note: SST2-1k is not on this machine (`subspace-lab data fetch --dataset sst2`); the file is written without its vocabulary",
            ),
        }
    }
    weights::save_with(out, &spec, &theta, dtype, &meta)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} ({} parameters, {}, seed {seed})",
        out.display(),
        spec.num_params(),
        spec.describe()
    );
    Ok(())
}
