//! `data export`: a data set, preprocessed, to safetensors.

use super::progress::Phases;
use super::{DataDirArg, DatasetName};
use anyhow::{Context, Result, bail};
use subspace_lab::data::load;
use subspace_lab::data::sst2;

/// `data export`: the data set, preprocessed, as safetensors `x` (f32) and `y` (i64).
pub(super) fn export_cmd(
    dataset: DatasetName,
    samples: Option<usize>,
    preprocess: Option<&str>,
    out: &std::path::Path,
    dir: &DataDirArg,
) -> Result<()> {
    use subspace_lab::data::export;
    if samples == Some(0) {
        bail!("--samples 0: export at least one sample");
    }
    if out.is_dir() {
        bail!(
            "--out {}: is a directory; give a file name such as {}",
            out.display(),
            out.join("data.safetensors").display()
        );
    }
    let dir = dir.resolve()?;
    let kind = dataset.kind();
    // Progress: loading (fetching, verifying) and preprocessing the set takes a while.
    let phases = Phases::new(&format!("data export {}", kind.name()), true);
    let l = load::load(kind, &dir, preprocess, samples, false, &mut |s| {
        phases.say(s)
    })?;
    let (data, shape, description, pre_name, stats) =
        (l.data, l.x_shape, l.description, l.preprocess, l.statistics);
    let name = kind.name();
    let mut meta = vec![
        ("dataset", name.to_string()),
        ("description", description.clone()),
        ("preprocess", pre_name.to_string()),
        ("statistics", stats),
        ("n", data.n.to_string()),
        ("x_shape", format!("{shape:?}")),
        (
            "y",
            format!("int64 class labels 0..={}", data.classes.saturating_sub(1)),
        ),
    ];
    let mut extra = Vec::new();
    if kind == load::DatasetKind::Sst2 {
        let s = sst2::load_or_fetch(&dir, &mut |s| phases.say(s))?;
        meta.push((
            "x",
            "token ids (exact integers in f32), 0 = padding, 1 = unknown word".into(),
        ));
        meta.push((
            "mask",
            "1 where x is a word, 0 at padding (the positions the masked Transformer attends to and averages)".into(),
        ));
        meta.push(("vocab", serde_json::to_string(&s.vocab().words)?));
        let mask: Vec<f64> = data.x.iter().map(|&i| f64::from(i != 0.0)).collect();
        extra.push(("mask", mask, shape.clone()));
    }
    export::write_safetensors_with(out, &data, &shape, &meta, &extra)
        .with_context(|| format!("cannot write --out {}", out.display()))?;
    phases.finish();
    println!(
        "wrote {}: x {shape:?} f32, y [{}] i64; {description}, first {} samples, {pre_name}",
        out.display(),
        data.n,
        data.n
    );
    Ok(())
}
