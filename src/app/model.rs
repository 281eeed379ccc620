//! The live run's networks: the paper's three architectures, each on its own data set, with the
//! paper's settings for it. (Below the settings and the scenarios, which both name a model.)

use crate::data::load::DatasetKind;
use crate::nn::model::ModelSpec;

/// The network and data set of the live run (the model panel): the paper's three architectures,
/// each on its own data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppModel {
    /// Cohen et al.'s fc-tanh 784-200-200-10 on MNIST-5k.
    #[default]
    FcTanh,
    /// Cohen et al.'s cnn-relu (convnet([32, 32], 'relu', 'max')) on CIFAR10-5k.
    CnnRelu,
    /// Damian et al.'s 2-layer Transformer (width 64, 8 heads) on SST2-1k.
    Transformer,
}

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

impl AppModel {
    pub const ALL: [AppModel; 3] = [AppModel::FcTanh, AppModel::CnnRelu, AppModel::Transformer];
    /// The name in the URL hash and `app --model`.
    pub fn name(self) -> &'static str {
        match self {
            AppModel::FcTanh => "fc-tanh",
            AppModel::CnnRelu => "cnn-relu",
            AppModel::Transformer => "transformer",
        }
    }
    /// "fc-tanh / MNIST-5k", as the paper's figures name the pairs.
    pub fn label(self) -> &'static str {
        match self {
            AppModel::FcTanh => "fc-tanh / MNIST-5k",
            AppModel::CnnRelu => "cnn-relu / CIFAR10-5k",
            AppModel::Transformer => "Transformer / SST2-1k",
        }
    }
    /// The network (its graph and initialisation).
    pub fn spec(self) -> ModelSpec {
        match self {
            AppModel::FcTanh => ModelSpec::fc_tanh(),
            AppModel::CnnRelu => ModelSpec::cnn_relu(),
            AppModel::Transformer => {
                ModelSpec::Transformer(crate::nn::transformer::TransformerSpec::sst2())
            }
        }
    }
    /// The data set it trains on.
    pub fn dataset(self) -> DatasetKind {
        match self {
            AppModel::FcTanh => DatasetKind::Mnist,
            AppModel::CnnRelu => DatasetKind::Cifar10,
            AppModel::Transformer => DatasetKind::Sst2,
        }
    }
    /// The paper's SGD settings for this model (the presets fig1, fig1-cnn, fig1-transformer).
    pub fn paper(self) -> PaperSettings {
        match self {
            AppModel::FcTanh => PaperSettings {
                lr: 0.01,
                batch: 50,
                k: 10,
                samples: 5000,
                app_samples: 5000,
            },
            AppModel::CnnRelu => PaperSettings {
                lr: 0.001,
                batch: 50,
                k: 10,
                samples: 5000,
                app_samples: 500,
            },
            AppModel::Transformer => PaperSettings {
                lr: 0.001,
                batch: 50,
                k: 2,
                samples: 1000,
                app_samples: 1000,
            },
        }
    }
    pub fn parse(s: &str) -> Option<AppModel> {
        AppModel::ALL.into_iter().find(|m| m.name() == s)
    }
    /// The app's model that is `spec` (its exact architecture), if any.
    pub fn of(spec: &ModelSpec) -> Option<AppModel> {
        AppModel::ALL.into_iter().find(|m| m.spec() == *spec)
    }
}
