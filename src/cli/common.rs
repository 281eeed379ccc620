//! What several commands share: loading a model and its data (`load_model`), choosing the
//! backend (`choose`, `on_backend!`), spinners, progress bars, Ctrl-C, the commit, traffic lines.

use super::ModelArgs;
use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use subspace_lab::backend::gpu::{GpuBackend, GpuOptions};
use subspace_lab::backend::{BackendChoice, LossKind, Precision};
use subspace_lab::data::dataset::Dataset;
use subspace_lab::data::load;
use subspace_lab::data::sst2;
use subspace_lab::nn::model::ModelSpec;
use subspace_lab::nn::weights;

pub(super) fn log(msg: &str) {
    eprintln!("{msg}");
}

impl ModelArgs {
    fn loss(&self) -> LossKind {
        self.loss.unwrap_or(LossKind::Mse)
    }
}

/// The network, its parameters, the data and the loss (an explicit --loss, else the one a
/// weights file names, else MSE).
/// The network, θ, the data (and what they are, e.g. "MNIST-5k, normalize") and the loss.
/// A network, its weights and the data it is evaluated on, as the options name them.
pub(super) struct Loaded {
    pub spec: ModelSpec,
    pub theta: Vec<f64>,
    pub data: Dataset,
    /// The data set and its preprocessing, for the output's data line.
    pub described: String,
    pub loss: LossKind,
    /// Settings a weights file did not state, taken at their defaults (each with the option that
    /// sets it): announced on the network line and in the JSON.
    pub assumed: Vec<weights::Assumed>,
}

/// Load (or initialise) the network and its data from the model options; a weights file's unknown
/// metadata keys are logged as warnings.
pub(super) fn load_model(m: &ModelArgs) -> Result<Loaded> {
    let mut loss = m.loss();
    let mut assumed = Vec::new();
    let (spec, theta) = match &m.weights {
        Some(w) => {
            let l = weights::load_checked(
                w,
                &weights::Expect {
                    widths: m.arch.widths.clone(),
                    activation: m.arch.activation,
                    loss: m.loss,
                    mask: m.arch.mask,
                },
                &weights::Overrides {
                    heads: m.arch.heads,
                    ln_eps: m.arch.ln_eps,
                    data_shape: None,
                },
            )?;
            for warning in &l.warnings {
                log(&format!("warning: {}: {warning}", w.display()));
            }
            assumed = l.assumed;
            let (spec, theta, file_loss) = (l.spec, l.theta, l.loss);
            if let Some(name) = &m.arch.model
                && *name != spec.name()
            {
                bail!(
                    "--model {name}, but {} holds a {}: drop --model (the file decides) or give the matching file",
                    w.display(),
                    spec.describe()
                );
            }
            loss = m.loss.or(file_loss).unwrap_or(LossKind::Mse);
            (spec, theta)
        }
        None => {
            let spec = m.arch.spec()?;
            let n = m.samples.unwrap_or(5000);
            subspace_lab::mem::check(
                &format!("the network {} on {n} samples", spec.describe()),
                subspace_lab::mem::engine_bytes(&spec, n, 8),
                "use fewer or narrower layers (--widths) or fewer --samples",
            )?;
            let theta = spec.init(m.seed.unwrap_or(0));
            (spec, theta)
        }
    };
    // Without --dataset: the one whose inputs the network takes (a 3072-input network reads
    // CIFAR-10), else the model's pairing.
    let kind = match m.dataset {
        Some(d) => d.kind(),
        None if spec.input_dim() == load::DatasetKind::Cifar10.shape().0 => {
            load::DatasetKind::Cifar10
        }
        None if spec.input_dim() == load::DatasetKind::Mnist.shape().0 => load::DatasetKind::Mnist,
        None => spec
            .default_dataset()
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?,
    };
    let dir = m.dir.resolve()?;
    let l = load::load(
        kind,
        &dir,
        m.preprocess.as_deref(),
        m.samples,
        false,
        &mut |s| log(s),
    )?;
    let data = l.data;
    if spec.input_dim() != data.d || spec.output_dim() != data.classes {
        bail!(
            "the network {} takes {} inputs and gives {} outputs; {} has {} features and {} classes (pair fc-tanh with --dataset mnist, cnn-relu with --dataset cifar10, transformer with --dataset sst2)",
            spec.describe(),
            spec.input_dim(),
            spec.output_dim(),
            l.description,
            data.d,
            data.classes
        );
    }
    // A Transformer's ids must mean the same words as when it was trained: a file that carries its
    // vocabulary must carry SST2-1k's.
    if let (ModelSpec::Transformer(_), Some(w)) = (&spec, &m.weights)
        && let Some(theirs) = weights::vocab_of(w)?
    {
        let ours = sst2::load_or_fetch(&dir, &mut |s| log(s))?.vocab().words;
        if theirs != ours {
            let at = theirs
                .iter()
                .zip(&ours)
                .position(|(a, b)| a != b)
                .unwrap_or(theirs.len().min(ours.len()));
            bail!(
                "{}: its vocabulary differs from SST2-1k's at id {at} ({:?} in the file, {:?} here; {} and {} ids): the token ids would mean other words; use weights trained on SST2-1k's vocabulary",
                w.display(),
                theirs.get(at).map_or("(none)", |s| s.as_str()),
                ours.get(at).map_or("(none)", |s| s.as_str()),
                theirs.len(),
                ours.len()
            );
        }
    }
    let described = format!("{}, {}", l.description, l.preprocess);
    Ok(Loaded {
        spec,
        theta,
        data,
        described,
        loss,
        assumed,
    })
}

/// The backend a command computes on.
pub(super) enum Chosen {
    CpuF64,
    CpuF32,
    Gpu(GpuBackend),
}

/// Resolve `--backend` and `--precision`. `default_cpu` is the CPU precision when none is given.
pub(super) fn choose(
    choice: BackendChoice,
    precision: Option<Precision>,
    default_cpu: Precision,
) -> Result<Chosen> {
    let cpu = |p: Precision| match p {
        Precision::F64 => Chosen::CpuF64,
        Precision::F32 => Chosen::CpuF32,
    };
    match choice {
        BackendChoice::Cpu => Ok(cpu(precision.unwrap_or(default_cpu))),
        BackendChoice::Gpu => {
            if precision == Some(Precision::F64) {
                bail!(
                    "the GPU backend computes in f32 (WebGPU has no f64): drop --precision f64 or use --backend cpu"
                );
            }
            let g = GpuBackend::new(GpuOptions {
                allow_software: true,
            })?;
            log(&format!("GPU adapter: {}", g.adapter_description()));
            Ok(Chosen::Gpu(g))
        }
        BackendChoice::Auto => {
            if precision == Some(Precision::F64) {
                return Ok(Chosen::CpuF64);
            }
            match GpuBackend::new(GpuOptions {
                allow_software: false,
            }) {
                Ok(g) => {
                    log(&format!("GPU adapter: {}", g.adapter_description()));
                    Ok(Chosen::Gpu(g))
                }
                Err(e) => {
                    // Not an error: `auto` found no hardware GPU and falls back, as documented.
                    let why = e.to_string();
                    let why = why.strip_prefix("backend error: ").unwrap_or(&why);
                    log(&format!("computing on the CPU backend ({why})"));
                    Ok(cpu(precision.unwrap_or(default_cpu)))
                }
            }
        }
    }
}

/// Run a generic job on the chosen backend.
macro_rules! on_backend {
    ($chosen:expr, |$b:ident| $body:expr) => {
        match $chosen {
            $crate::cli::common::Chosen::CpuF64 => {
                let $b = subspace_lab::backend::cpu::CpuBackend::<f64>::new();
                $body
            }
            $crate::cli::common::Chosen::CpuF32 => {
                let $b = subspace_lab::backend::cpu::CpuBackend::<f32>::new();
                $body
            }
            $crate::cli::common::Chosen::Gpu(g) => {
                let $b = g;
                $body
            }
        }
    };
}
pub(super) use on_backend;

pub(super) fn spinner(hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A flag raised by Ctrl-C: runs stop after the current step, write a checkpoint and keep every
/// row written so far. A second Ctrl-C exits at once.
pub(super) fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let res = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting now");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping after this step (press again to exit now)");
    });
    if let Err(e) = res {
        log(&format!("Ctrl-C handling unavailable: {e}"));
    }
    flag
}

/// The commit the program runs from (`git rev-parse --short HEAD` in the current directory), when
/// there is one: recorded in snapshots.
pub(super) fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let c = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !c.is_empty()).then_some(c)
}

/// "; per step … submits, … read-backs (… bytes), … uploads (… bytes), … buffers created (… bytes)"
/// for `bench`'s text output.
pub(super) fn per_step_traffic(t: subspace_lab::backend::Transfers) -> String {
    format!(
        "; per step {} submits, {} read-backs ({} bytes), {} uploads ({} bytes), {} buffers created ({} bytes)",
        t.submits,
        t.readbacks,
        t.bytes_read,
        t.uploads,
        t.bytes_uploaded,
        t.allocations,
        t.bytes_allocated
    )
}
