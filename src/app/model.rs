//! The live run's networks: the paper's three architectures, each on its own data set, with the
//! paper's settings for it. (Below the settings and the scenarios, which both name a model.)

use crate::data::load::DatasetKind;
use crate::nn::model::ModelSpec;
use crate::paper::models::{self, Model};

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

pub use crate::paper::models::PaperSettings;

impl AppModel {
    pub const ALL: [AppModel; 3] = [AppModel::FcTanh, AppModel::CnnRelu, AppModel::Transformer];
    /// Its row of the models table (network, data set, the paper's settings).
    pub fn row(self) -> &'static Model {
        match self {
            AppModel::FcTanh => &models::FC_TANH,
            AppModel::CnnRelu => &models::CNN_RELU,
            AppModel::Transformer => &models::TRANSFORMER,
        }
    }
    /// The name in the URL hash and `app --model`.
    pub fn name(self) -> &'static str {
        self.row().name
    }
    /// "fc-tanh / MNIST-5k", as the paper's figures name the pairs.
    pub fn label(self) -> &'static str {
        self.row().label
    }
    /// The network (its graph and initialisation).
    pub fn spec(self) -> ModelSpec {
        (self.row().build)()
    }
    /// The data set it trains on.
    pub fn dataset(self) -> DatasetKind {
        self.row().dataset
    }
    /// The paper's SGD settings for this model (the presets fig1, fig1-cnn, fig1-transformer).
    pub fn paper(self) -> PaperSettings {
        self.row().paper
    }
    pub fn parse(s: &str) -> Option<AppModel> {
        AppModel::ALL.into_iter().find(|m| m.name() == s)
    }
    /// The app's model that is `spec` (its exact architecture), if any.
    pub fn of(spec: &ModelSpec) -> Option<AppModel> {
        AppModel::ALL.into_iter().find(|m| m.spec() == *spec)
    }
}
