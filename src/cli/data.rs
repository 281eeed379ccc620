//! `data`: fetch, verify and cache a data set; write the web page's assets; show the caches.

use super::progress::Phases;
use super::{DataCommand, DataDirArg, DatasetName};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use subspace_lab::data::cifar10;
use subspace_lab::data::mnist;
use subspace_lab::data::sst2;

/// `data …`: one function per subcommand.
pub(super) fn data_cmd(c: DataCommand) -> Result<()> {
    match c {
        DataCommand::Fetch {
            dataset,
            from,
            from_idx,
            dir,
        } => match dataset {
            DatasetName::Cifar10 => fetch_cifar10(from, from_idx, dir),
            DatasetName::Sst2 => fetch_sst2(from, from_idx, dir),
            DatasetName::Mnist => fetch_mnist(from, from_idx, dir),
        },
        DataCommand::Export {
            dataset,
            samples,
            preprocess,
            out,
            dir,
        } => super::export::export_cmd(dataset, samples, preprocess.as_deref(), &out, &dir),
        DataCommand::WebAsset { out, dir } => web_asset(out, dir),
        DataCommand::Info { dir } => info(dir),
    }
}

/// `data fetch --dataset cifar10`.
fn fetch_cifar10(from: Option<PathBuf>, from_idx: Option<PathBuf>, dir: DataDirArg) -> Result<()> {
    if from_idx.is_some() {
        bail!(
            "--from-idx is for MNIST's IDX files; for CIFAR-10 pass the file with --from (cifar-10-binary.tar.gz, data_batch_1.bin or a .bin.gz of records)"
        );
    }
    let dir = dir.resolve()?;
    let phases = Phases::new("data fetch --dataset cifar10", true);
    let (c, src) = cifar10::fetch(&dir, from.as_deref(), &mut |m| phases.say(m))?;
    phases.finish();
    let check = if c.n() >= cifar10::CHECKED_RECORDS {
        format!(
            "sha256 of the first {} records {}…",
            cifar10::CHECKED_RECORDS,
            &cifar10::FIRST4000_SHA256[..12]
        )
    } else {
        format!(
            "fewer than {} records: only their format and labels could be checked, not that they are CIFAR-10's",
            cifar10::CHECKED_RECORDS
        )
    };
    let verb = if c.n() >= cifar10::CHECKED_RECORDS {
        "verified"
    } else {
        "read, NOT verified"
    };
    println!(
        "{}: {} records {verb} ({check}) from {src}",
        c.describe(),
        c.n()
    );
    println!("cached at {}", cifar10::cache_path(&dir).display());
    Ok(())
}

/// `data fetch --dataset sst2`.
fn fetch_sst2(from: Option<PathBuf>, from_idx: Option<PathBuf>, dir: DataDirArg) -> Result<()> {
    if from_idx.is_some() {
        bail!(
            "--from-idx is for MNIST's IDX files; for SST-2 pass GLUE's SST-2.zip or train.tsv with --from"
        );
    }
    let dir = dir.resolve()?;
    let phases = Phases::new("data fetch --dataset sst2", true);
    let (s, src) = sst2::fetch(&dir, from.as_deref(), &mut |m| phases.say(m))?;
    phases.finish();
    println!(
        "SST2-1k: {} sentences verified (sha256 of the header and first 1000 rows {}…) from {src}; vocabulary {} ids, longest sentence {} words",
        s.sentences.len(),
        &sst2::FIRST1000_SHA256[..12],
        s.vocab().len(),
        s.max_len()
    );
    println!("cached at {}", sst2::cache_path(&dir).display());
    Ok(())
}

/// `data fetch` (MNIST).
fn fetch_mnist(from: Option<PathBuf>, from_idx: Option<PathBuf>, dir: DataDirArg) -> Result<()> {
    let dir = dir.resolve()?;
    let idx = from.or(from_idx);
    let phases = Phases::new("data fetch", true);
    let (_, src) = mnist::fetch(&dir, idx.as_deref(), &mut |m| phases.say(m))?;
    phases.finish();
    println!(
        "MNIST-5k verified (sha256 images {}…, labels {}…) from {src}",
        &mnist::IMAGES_SHA256[..12],
        &mnist::LABELS_SHA256[..12]
    );
    println!("cached at {}", mnist::cache_path(&dir).display());
    Ok(())
}

/// `data web-asset`: the caches the web page loads, beside it.
fn web_asset(out: PathBuf, dir: DataDirArg) -> Result<()> {
    let dir = dir.resolve()?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // Readable by whatever user a static server runs as (the temporary file was 0600).
    let readable = |dest: &std::path::Path| -> Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o644))
                .with_context(|| format!("making {} readable", dest.display()))?;
        }
        Ok(())
    };
    // Progress: reading and verifying the caches (and fetching MNIST if needed) takes a while.
    let phases = Phases::new("data web-asset", true);
    let say = &mut |m: &str| phases.say(m);
    // The same bytes as the caches; the page verifies the checksums.
    let (m, src) = mnist::load_or_fetch(&dir, say)?;
    let dest = out.join(mnist::ASSET_NAME);
    mnist::write_cache(&dest, &m)?;
    readable(&dest)?;
    phases.println(&format!(
        "wrote {} (MNIST-5k from {src}, checksums verified)",
        dest.display()
    ));
    // The other models' data sets where this machine has them (never downloaded here:
    // `data fetch --dataset …` does that); the page says what is missing when picked.
    match cifar10::load_local(&dir, say)? {
        Some(c) => {
            let dest = out.join(cifar10::ASSET_NAME);
            cifar10::write_cache(&dest, &c)?;
            readable(&dest)?;
            phases.println(&format!("wrote {} ({})", dest.display(), c.describe()));
        }
        None => phases.println(
            "CIFAR-10 is not on this machine: the page's cnn-relu model will say so. `subspace-lab data fetch --dataset cifar10` first, then run this again"
        ),
    }
    match sst2::load_local(&dir, say)? {
        Some(t) => {
            let dest = out.join(sst2::ASSET_NAME);
            sst2::write_cache(&dest, &t)?;
            readable(&dest)?;
            phases.println(&format!(
                "wrote {} (SST2-1k, checksum verified)",
                dest.display()
            ));
        }
        None => phases.println(
            "SST-2 is not on this machine: the page's Transformer model will say so. `subspace-lab data fetch --dataset sst2` first, then run this again"
        ),
    }
    phases.finish();
    println!("rebuild the page (trunk build)");
    Ok(())
}

/// `data info`: each cache, verified, absent or damaged.
fn info(dir: DataDirArg) -> Result<()> {
    let dir = dir.resolve()?;
    let mut damaged = Vec::new();
    let path = mnist::cache_path(&dir);
    match mnist::load_cache(&path) {
        Ok(Some(_)) => println!("{}: MNIST-5k, checksums verified", path.display()),
        Ok(None) => println!("{}: absent (run `subspace-lab data fetch`)", path.display()),
        Err(e) => {
            println!("{}: damaged", path.display());
            damaged.push(e.to_string());
        }
    }
    let path = cifar10::cache_path(&dir);
    match cifar10::load_cache(&path) {
        Ok(Some(c)) => println!(
            "{}: {}, {} records, {}",
            path.display(),
            c.describe(),
            c.n(),
            if c.n() >= cifar10::CHECKED_RECORDS {
                "checksum of the first 4000 verified"
            } else {
                "format and labels verified"
            }
        ),
        Ok(None) => println!(
            "{}: absent (run `subspace-lab data fetch --dataset cifar10 [--from FILE]`)",
            path.display()
        ),
        Err(e) => {
            println!("{}: damaged", path.display());
            damaged.push(e.to_string());
        }
    }
    let path = sst2::cache_path(&dir);
    match sst2::load_cache(&path) {
        Ok(Some(_)) => println!("{}: SST2-1k, checksum verified", path.display()),
        Ok(None) => println!(
            "{}: absent (run `subspace-lab data fetch --dataset sst2 [--from FILE]`)",
            path.display()
        ),
        Err(e) => {
            println!("{}: damaged", path.display());
            damaged.push(e.to_string());
        }
    }
    if !damaged.is_empty() {
        bail!("{}", damaged.join("\n"));
    }
    Ok(())
}
