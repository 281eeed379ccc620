//! The paper's models as one table: each network by name with its builder, the data set it trains
//! on (and how that is preprocessed), k (the number of classes) and the paper's SGD settings for it.
//! The CLI's `--model`, run specs' `model.name`, the app's model panel and the presets read it.
//!
//! Adding a model: write its network in `src/nn/` (a spec that builds a [`Graph`](crate::nn::graph::Graph)
//! as a [`ModelSpec`] variant), then add one [`Model`] row to [`MODELS`].

use crate::data::load::DatasetKind;
use crate::error::{Error, Result};
use crate::nn::model::ModelSpec;

/// A model's settings in the paper (Song, Ahn, Yun 2024, Appendix; `../shared/PAPER.md`) and the
/// app's default training-set size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaperSettings {
    /// SGD's learning rate η.
    pub lr: f64,
    pub batch: usize,
    /// The dimension of the dominant subspace: the number of classes.
    pub k: usize,
    /// The training set the paper uses (5000 images, 1000 sentences).
    pub samples: usize,
    /// The app's default: the paper's where a top-2k spectrum takes seconds on a 2-core CPU (fc-tanh,
    /// the Transformer), fewer for cnn-relu (a CIFAR HVP costs ≈ 0.6 ms per image on the CPU:
    /// at 500 images a branched step took 28–29 s here, README "Every model"; the field takes up
    /// to the paper's 5000).
    pub app_samples: usize,
}

/// One row of the table: a named network of the paper and everything paired with it.
pub struct Model {
    /// The name in `--model`, `model.name` and the app's URL hash.
    pub name: &'static str,
    /// "fc-tanh / MNIST-5k", as the paper's figures name the pairs.
    pub label: &'static str,
    /// The network (its graph and initialisation).
    pub build: fn() -> ModelSpec,
    /// Whether a network is of this row's family (e.g. any fully connected one for fc-tanh).
    pub is: fn(&ModelSpec) -> bool,
    /// Other `model.name`s of run specs that mean this family: exact names, and a prefix that
    /// pairs any name starting with it with this row's data set.
    pub aliases: &'static [&'static str],
    pub prefix: Option<&'static str>,
    /// The data set it trains on.
    pub dataset: DatasetKind,
    /// The preprocessing a preset's spec names (`data.preprocess`; None: the data set's default).
    pub preprocess: Option<&'static str>,
    /// The paper's SGD setting (the presets fig1, fig1-cnn, fig1-transformer) and k.
    pub paper: PaperSettings,
    /// What every preset on this model shares with the paper and where it differs (`reproduce
    /// --list`).
    pub notes: &'static [&'static str],
}

/// The eigensolver note every network preset carries.
const LANCZOS_NOTE: &str = "eigensolver: Lanczos to a residual ≤ 1e-3·|λ₁| for every pair, warm-started from the previous step";

/// Cohen et al.'s fc-tanh 784-200-200-10 on MNIST-5k.
pub const FC_TANH: Model = Model {
    name: "fc-tanh",
    label: "fc-tanh / MNIST-5k",
    build: ModelSpec::fc_tanh,
    is: |m| matches!(m, ModelSpec::Mlp(_)),
    aliases: &["fc"],
    prefix: None,
    dataset: DatasetKind::Mnist,
    preprocess: None,
    paper: PaperSettings {
        lr: 0.01,
        batch: 50,
        k: 10,
        samples: 5000,
        app_samples: 5000,
    },
    notes: &[
        "data: the first 5000 MNIST training images, (x/255 − 0.1307)/0.3081 (torchvision's; the paper names none, and its alignment appears under this normalisation: measured)",
        "eigensolver: Lanczos to a residual ≤ 1e-3·|λ₁| for every pair, warm-started from the previous step (the paper uses Cohen's Lanczos/eigsh; the tolerance is ours, stated in summary.json)",
    ],
};

/// Cohen et al.'s cnn-relu (convnet([32, 32], 'relu', 'max')) on CIFAR10-5k.
pub const CNN_RELU: Model = Model {
    name: "cnn-relu",
    label: "cnn-relu / CIFAR10-5k",
    build: ModelSpec::cnn_relu,
    is: |m| matches!(m, ModelSpec::Cnn(_)),
    aliases: &[],
    prefix: Some("cnn"),
    dataset: DatasetKind::Cifar10,
    preprocess: Some("standardize"),
    paper: PaperSettings {
        lr: 0.001,
        batch: 50,
        k: 10,
        samples: 5000,
        app_samples: 500,
    },
    notes: &[
        "data: the first 5000 records of data_batch_1 where they are at hand; the shared copy on these machines holds 4000 (CIFAR10-4k), and every summary.json names what was used (`data`)",
        "preprocessing: Cohen's x/255 then per-feature standardisation, with statistics over the records loaded (Cohen took them over the 50,000 training images)",
        LANCZOS_NOTE,
    ],
};

/// Damian et al.'s 2-layer Transformer (width 64, 8 heads) on SST2-1k.
pub const TRANSFORMER: Model = Model {
    name: "transformer",
    label: "Transformer / SST2-1k",
    build: ModelSpec::transformer,
    is: |m| matches!(m, ModelSpec::Transformer(_)),
    aliases: &[],
    prefix: None,
    dataset: DatasetKind::Sst2,
    preprocess: None,
    paper: PaperSettings {
        lr: 0.001,
        batch: 50,
        k: 2,
        samples: 1000,
        app_samples: 1000,
    },
    notes: &[
        "data: SST2-1k = the first 1000 rows of GLUE SST-2 train.tsv (Damian et al.'s code took 500 per class); words split on spaces, a vocabulary of the 1000 sentences (2970 ids) instead of Damian's bert-base-uncased WordPiece",
        "model: padding keys masked in attention and the mean over real positions only (Damian's code masks nothing; `model.mask = false` runs his choice); LayerNorm ε 1e-6 (Flax's default); MLP blocks 64 wide; SiLU; zero-initialised head",
        "loss: Cohen's MSE ½‖f − onehot‖² against 2 outputs (Damian's loss has no ½ and ±1 labels)",
        LANCZOS_NOTE,
    ],
};

/// Cohen et al.'s VGG11 (`vgg11_nodropout`) on CIFAR10-5k (the paper's Figures 15–17).
pub const VGG11: Model = Model {
    name: "vgg11",
    label: "VGG11 / CIFAR10-5k",
    build: || crate::nn::vgg::VggSpec::vgg11().into(),
    is: |m| matches!(m, ModelSpec::Vgg(_)),
    aliases: &[],
    prefix: Some("vgg"),
    dataset: DatasetKind::Cifar10,
    preprocess: Some("standardize"),
    paper: PaperSettings {
        lr: 0.01,
        batch: 50,
        k: 10,
        samples: 5000,
        app_samples: 100,
    },
    notes: &[
        "model: Cohen et al.'s vgg11_nodropout (cfg A, 3×3 convs with bias + ReLU, max-pools, classifier 512–512–10, no BatchNorm, no dropout): 9,750,922 parameters; init: conv weights N(0, √(2/(9·out))), conv biases 0, linear layers PyTorch's default",
        "data: the first 5000 records of data_batch_1 where they are at hand (4000 on these machines); Cohen's per-feature standardisation over the records loaded",
        "memory: the Lanczos basis is the big item (9.75 M parameters: 39 MB per vector in f32, 3·max(3k, k + 50) vectors for a top-k solve); `mem` estimates refuse what cannot fit",
        LANCZOS_NOTE,
    ],
};

/// He et al.'s CIFAR ResNet with one BasicBlock per stage (ResNet8) on CIFAR10-5k (the paper's
/// Figures 15–17), without normalisation ([`crate::nn::resnet::Norm`]).
pub const RESNET8: Model = Model {
    name: "resnet8",
    label: "ResNet8 / CIFAR10-5k",
    build: || crate::nn::resnet::ResNetSpec::resnet8().into(),
    is: |m| matches!(m, ModelSpec::ResNet(_)),
    aliases: &[],
    prefix: Some("resnet"),
    dataset: DatasetKind::Cifar10,
    preprocess: Some("standardize"),
    paper: PaperSettings {
        lr: 0.01,
        batch: 50,
        k: 10,
        samples: 5000,
        app_samples: 500,
    },
    notes: &[
        "model: He et al.'s CIFAR ResNet, one BasicBlock per stage (16, 32, 64 channels; strides 1, 2, 2; 1×1 stride-2 projection shortcuts), global average pool, Linear(64, 10); norm = none (convs with bias): 77,706 parameters (75,290 with BatchNorm)",
        "normalisation: the paper names none; BatchNorm in training mode makes a sample's loss depend on its minibatch, so the full-data Hessian would depend on a batching: none keeps each sample's loss a function of θ and that sample alone, so every HVP is the exact full-data Hessian's",
        "CPU or GPU: the strided 3×3 and 1×1 projection convolutions run on the general im2col kernels (WGSL as on the CPU)",
        LANCZOS_NOTE,
    ],
};

/// Every model, in the order `--model` lists them.
pub static MODELS: &[Model] = &[FC_TANH, CNN_RELU, TRANSFORMER, VGG11, RESNET8];

/// The model named `name` (exactly, as `--model` takes it), if any.
pub fn find(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name)
}

/// The model named `name`. Errors: an unknown name, listing the known ones.
pub fn model(name: &str) -> Result<&'static Model> {
    find(name).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "unknown model '{name}' (expected one of: {})",
            names().join(", ")
        ))
    })
}

/// The networks of Section F by name: `vgg11`, `resnet8` (the table's) and `vgg11-narrow` (VGG11
/// at 1/8 width, the quick presets' stand-in). Errors: another name.
pub fn section_f_net(name: &str) -> Result<ModelSpec> {
    match name {
        "vgg11-narrow" => Ok(crate::nn::vgg::VggSpec::vgg11_narrow().into()),
        "vgg11" | "resnet8" => ModelSpec::by_name(name),
        o => Err(Error::InvalidArgument(format!(
            "'{o}' is not one of vgg11, vgg11-narrow, resnet8"
        ))),
    }
}

/// The names of every model, in the table's order.
pub fn names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

/// The row of `spec`'s family (fully connected → fc-tanh, convolutional → cnn-relu, …).
pub fn of(spec: &ModelSpec) -> &'static Model {
    MODELS.iter().find(|m| (m.is)(spec)).unwrap_or(&MODELS[0])
}

/// The row a run spec's `model.name` pairs with (absent or unknown: the first, fc-tanh).
pub fn for_spec_name(name: Option<&str>) -> &'static Model {
    name.and_then(|n| {
        MODELS.iter().find(|m| {
            m.name == n || m.aliases.contains(&n) || m.prefix.is_some_and(|p| n.starts_with(p))
        })
    })
    .unwrap_or(&MODELS[0])
}

/// The paper's k on a data set: the number of classes (the k of the model the table pairs with
/// it; else the data set's class count). `spectrum`'s default.
pub fn default_k(kind: DatasetKind) -> usize {
    MODELS
        .iter()
        .find(|m| m.dataset == kind)
        .map_or(kind.shape().1, |m| m.paper.k)
}

/// The named models of the paper through the network type.
impl ModelSpec {
    /// The paper's Transformer on SST2-1k (SiLU, padding masked).
    pub fn transformer() -> Self {
        ModelSpec::Transformer(crate::nn::transformer::TransformerSpec::sst2())
    }
    /// A model by its `--model` name (the [`MODELS`] table).
    pub fn by_name(name: &str) -> Result<Self> {
        model(name).map(|m| (m.build)())
    }
    /// The dataset the paper pairs with the model.
    pub fn default_dataset(&self) -> &'static str {
        of(self).dataset.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_the_models_the_network_type_knows() {
        for m in MODELS {
            let net = (m.build)();
            assert!((m.is)(&net), "{}", m.name);
            assert_eq!(of(&net).name, m.name);
            assert_eq!(net.output_dim(), m.dataset.shape().1, "{}", m.name);
            assert!(m.paper.k <= net.output_dim());
        }
        assert!(ModelSpec::by_name("vgg").is_err());
        // The paper's k is the number of classes: χ₂ on SST-2, χ₁₀ on MNIST and CIFAR-10.
        assert_eq!(default_k(DatasetKind::Sst2), 2);
        assert_eq!(default_k(DatasetKind::Mnist), 10);
        assert_eq!(default_k(DatasetKind::Cifar10), 10);
        for m in MODELS {
            assert_eq!(default_k(m.dataset), m.dataset.shape().1, "{}", m.name);
        }
    }
}
