//! Output directories: `metrics.csv` appended row by row (a run that diverges or is stopped keeps
//! every row so far), checkpoints (`checkpoint.json` + `checkpoint.safetensors`, written
//! atomically), each leg's final θ handed to a [`LegSink`], the spec as run, and the densities of
//! `density_every` ([`write_densities`]).

use super::density::{DensityRecord, density_csv, trace_csv};
pub use super::files::{read_pair, tensors_bytes, tensors_parse, write_atomic};
use super::record::{Checkpoint, LegSummary, Record, Vectors};
use super::runner::Observer;
use super::snapshot::{Snapshot, save_snapshot};
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub const CHECKPOINT_JSON: &str = "checkpoint.json";
pub const CHECKPOINT_TENSORS: &str = "checkpoint.safetensors";

/// Appends records to `metrics.csv`, writes checkpoints and forwards progress; stops when the
/// shared flag is raised (Ctrl-C).
pub struct CsvSink<'a> {
    dir: PathBuf,
    /// None until the first new row of a resumed run: `metrics.csv` stays as it was until then.
    file: Option<std::fs::File>,
    /// A resumed run's rows up to its checkpoint, written with the first new row.
    pending: Vec<Record>,
    top: usize,
    pub stop: Arc<AtomicBool>,
    pub progress: &'a mut dyn FnMut(&str, usize, usize),
    /// Write checkpoints.
    pub checkpoints: bool,
    /// Where checkpoints go: the output directory for a single run; `resume/<run>/` in it when
    /// several runs share the directory.
    pub ckpt_dir: PathBuf,
    /// Write the run's state at its switch here (`reproduce --snapshot-at-switch`).
    pub snapshot: Option<SnapshotTo>,
    /// Given each leg's final θ (`run` and `reproduce` save it there).
    pub weights: Option<LegSink<'a>>,
}

/// What [`CsvSink`] does with each leg's final θ (`run` and `reproduce` save it:
/// [`super::final_weights::WeightsTo`]): called with the leg's summary and θ at its last step.
pub type LegSink<'a> = Box<dyn FnMut(&LegSummary, &[f64]) -> Result<()> + 'a>;

/// Where and how [`CsvSink`] writes a snapshot at the switch.
#[derive(Clone, Debug)]
pub struct SnapshotTo {
    pub dir: PathBuf,
    /// The command line and commit recorded in the snapshot.
    pub command: String,
    pub commit: Option<String>,
    /// Stop the run after the snapshot (raises the stop flag: the first step after the switch
    /// writes a checkpoint and the run ends as `Interrupted`, to be continued with `--resume`).
    pub stop_after: bool,
    /// Set once the snapshot is written (the caller tells a stop at the switch from Ctrl-C).
    pub written: Arc<AtomicBool>,
}

impl<'a> CsvSink<'a> {
    /// Start `dir/metrics.csv` with the header and `existing` rows (a resumed run's rows so far);
    /// `append` keeps what the file already holds (a second run of the same preset) and adds
    /// `existing` after it. Without `append`, non-empty `existing` (a resume) leaves the file as
    /// it is until the first new row arrives, which replaces it atomically with `existing` and
    /// that row: a resume refused or failing before its first step loses no row.
    pub fn create(
        dir: &Path,
        top: usize,
        existing: &[Record],
        append: bool,
        stop: Arc<AtomicBool>,
        progress: &'a mut dyn FnMut(&str, usize, usize),
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join("metrics.csv");
        let mut pending = Vec::new();
        let file = if append {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            for r in existing {
                writeln!(f, "{}", r.csv_line(top)).map_err(|e| Error::io(&path, e))?;
            }
            f.flush().map_err(|e| Error::io(&path, e))?;
            Some(f)
        } else if !existing.is_empty() {
            pending = existing.to_vec();
            None
        } else {
            write_atomic(&path, Record::csv(existing, top).as_bytes())?;
            Some(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?,
            )
        };
        Ok(CsvSink {
            dir: dir.to_path_buf(),
            file,
            pending,
            top,
            stop,
            progress,
            checkpoints: true,
            ckpt_dir: dir.to_path_buf(),
            snapshot: None,
            weights: None,
        })
    }
}

impl CsvSink<'_> {
    /// Write a resume's pending rows now (atomically replacing `metrics.csv`), if not yet done.
    pub fn materialize(&mut self) -> Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let path = self.dir.join("metrics.csv");
        let rows = std::mem::take(&mut self.pending);
        write_atomic(&path, Record::csv(&rows, self.top).as_bytes())?;
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        self.file = Some(f);
        Ok(())
    }
}

impl Observer for CsvSink<'_> {
    fn record(&mut self, r: &Record) -> Result<()> {
        let Some(file) = &mut self.file else {
            // A resume's first new row: the checkpoint's rows and this one replace the file.
            self.pending.push(r.clone());
            return self.materialize();
        };
        let path = self.dir.join("metrics.csv");
        writeln!(file, "{}", r.csv_line(self.top)).map_err(|e| Error::io(&path, e))?;
        file.flush().map_err(|e| Error::io(&path, e))
    }
    fn progress(&mut self, run: &str, step: usize, total: usize) {
        (self.progress)(run, step, total)
    }
    fn wants_final_theta(&self) -> bool {
        self.weights.is_some()
    }
    fn leg_finished(&mut self, leg: &LegSummary, theta: &[f64]) -> Result<()> {
        match &mut self.weights {
            Some(w) => w(leg, theta),
            None => Ok(()),
        }
    }
    fn density(&mut self, all: &[DensityRecord]) -> Result<()> {
        write_densities(&self.dir, all)
    }
    fn checkpoint(&mut self, c: &Checkpoint, v: &Vectors) -> Result<()> {
        if self.checkpoints {
            std::fs::create_dir_all(&self.ckpt_dir).map_err(|e| Error::io(&self.ckpt_dir, e))?;
            save_checkpoint(&self.ckpt_dir, c, v)
        } else {
            Ok(())
        }
    }
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn wants_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }
    fn switched(&mut self, s: &Snapshot, v: &Vectors) -> Result<()> {
        let Some(to) = &self.snapshot else {
            return Ok(());
        };
        let mut s = s.clone();
        s.made_by.command = to.command.clone();
        s.made_by.commit = to.commit.clone();
        save_snapshot(&to.dir, &s, v)?;
        to.written.store(true, Ordering::Relaxed);
        if to.stop_after {
            self.stop.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// `density.csv`, `trace.csv` and `density.json` in `dir` from a run's density records
/// ([`super::density`]), each replaced atomically (a resumed run rewrites them from its
/// checkpoint's records on): one run per directory.
pub fn write_densities(dir: &Path, all: &[DensityRecord]) -> Result<()> {
    write_atomic(&dir.join("density.csv"), density_csv(all).as_bytes())?;
    write_atomic(&dir.join("trace.csv"), trace_csv(all).as_bytes())?;
    let json = serde_json::to_string(all).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    write_atomic(&dir.join("density.json"), json.as_bytes())
}

/// Write the vectors, then the JSON that names their step (the JSON is the commit point).
pub fn save_checkpoint(dir: &Path, c: &Checkpoint, v: &Vectors) -> Result<()> {
    write_atomic(&dir.join(CHECKPOINT_TENSORS), &tensors_bytes(v, c.step)?)?;
    let json = serde_json::to_string(c).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    write_atomic(&dir.join(CHECKPOINT_JSON), json.as_bytes())
}

/// Remove a previous run's checkpoint from `dir` (a fresh run starts there).
pub fn clear_checkpoint(dir: &Path) -> Result<()> {
    for f in [CHECKPOINT_JSON, CHECKPOINT_TENSORS] {
        let p = dir.join(f);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(())
}

/// Read a checkpoint written by `save_checkpoint`.
pub fn load_checkpoint(dir: &Path) -> Result<(Checkpoint, Vectors)> {
    let (text, jp, raw, tp) = read_pair(dir, CHECKPOINT_JSON, CHECKPOINT_TENSORS)?;
    parse_checkpoint(&text, &jp, &raw, &tp)
}

/// A checkpoint from the text of `checkpoint.json` and the bytes of `checkpoint.safetensors`
/// (the paths only name the files in errors): the JSON must parse, the tensors must be f64,
/// finite and written for the JSON's step.
pub fn parse_checkpoint(
    text: &str,
    jp: &Path,
    raw: &[u8],
    tp: &Path,
) -> Result<(Checkpoint, Vectors)> {
    let c: Checkpoint = serde_json::from_str(text)
        .map_err(|e| Error::data(jp, format!("not a checkpoint: {e}")))?;
    let v = tensors_parse(raw, tp, c.step)?;
    Ok((c, v))
}
