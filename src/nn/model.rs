//! The architectures the engine runs, by name: fully connected ([`MlpSpec`], fc-tanh),
//! convolutional ([`CnnSpec`], cnn-relu) and the Transformer ([`TransformerSpec`], on SST2-1k). A spec builds its [`Graph`], names θ's tensors as
//! PyTorch does and draws PyTorch's default initialisation.

use super::cnn::CnnSpec;
use super::graph::Graph;
use super::mlp::MlpSpec;
use super::resnet::ResNetSpec;
use super::transformer::TransformerSpec;
use super::vgg::VggSpec;
use crate::backend::Activation;

/// A network architecture.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModelSpec {
    Mlp(MlpSpec),
    Cnn(CnnSpec),
    Transformer(TransformerSpec),
    /// VGG (Cohen et al.'s `vgg11_nodropout`; [`VggSpec`]).
    Vgg(VggSpec),
    /// A CIFAR ResNet with one BasicBlock per stage ([`ResNetSpec`], ResNet8).
    ResNet(ResNetSpec),
}

impl From<VggSpec> for ModelSpec {
    fn from(s: VggSpec) -> Self {
        ModelSpec::Vgg(s)
    }
}
impl From<ResNetSpec> for ModelSpec {
    fn from(s: ResNetSpec) -> Self {
        ModelSpec::ResNet(s)
    }
}

impl From<MlpSpec> for ModelSpec {
    fn from(s: MlpSpec) -> Self {
        ModelSpec::Mlp(s)
    }
}
impl From<&MlpSpec> for ModelSpec {
    fn from(s: &MlpSpec) -> Self {
        ModelSpec::Mlp(s.clone())
    }
}
impl From<CnnSpec> for ModelSpec {
    fn from(s: CnnSpec) -> Self {
        ModelSpec::Cnn(s)
    }
}
impl From<TransformerSpec> for ModelSpec {
    fn from(s: TransformerSpec) -> Self {
        ModelSpec::Transformer(s)
    }
}
impl From<&ModelSpec> for ModelSpec {
    fn from(s: &ModelSpec) -> Self {
        s.clone()
    }
}

impl ModelSpec {
    pub fn fc_tanh() -> Self {
        ModelSpec::Mlp(MlpSpec::fc_tanh())
    }
    pub fn cnn_relu() -> Self {
        ModelSpec::Cnn(CnnSpec::cnn_relu())
    }
    /// The model's family name: `fc-tanh`/`fc-relu` for fully connected networks (whatever the
    /// widths), `cnn-relu`/`cnn-tanh` for convolutional ones.
    pub fn name(&self) -> String {
        match self {
            ModelSpec::Mlp(m) => format!("fc-{}", m.activation.name()),
            ModelSpec::Cnn(c) => format!("cnn-{}", c.activation.name()),
            ModelSpec::Transformer(_) => "transformer".to_string(),
            ModelSpec::Vgg(v) => v.name().to_string(),
            ModelSpec::ResNet(r) => r.name().to_string(),
        }
    }
    /// Name and sizes, e.g. `fc-tanh 784-200-200-10` or `cnn-relu 3x32x32 [32, 32] → 10`.
    pub fn describe(&self) -> String {
        match self {
            ModelSpec::Mlp(m) => format!(
                "{} {}",
                self.name(),
                m.widths
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            ),
            ModelSpec::Cnn(c) => format!(
                "{} {}x{}x{} {:?} → {}",
                self.name(),
                c.input[0],
                c.input[1],
                c.input[2],
                c.channels,
                c.classes
            ),
            ModelSpec::Transformer(t) => format!(
                "transformer {}×{} ({} heads, {}, {}) vocabulary {}, T = {} → {}",
                t.layers,
                t.width,
                t.heads,
                t.activation.name(),
                if t.masked {
                    "padding masked"
                } else {
                    "no mask"
                },
                t.vocab,
                t.seq,
                t.classes
            ),
            ModelSpec::Vgg(v) => format!(
                "{} {}x{}x{} features {:?} classifier {:?} → {}",
                self.name(),
                v.input[0],
                v.input[1],
                v.input[2],
                v.cfg,
                v.hidden,
                v.classes
            ),
            ModelSpec::ResNet(r) => format!(
                "{} {}x{}x{} stages {:?} norm {} → {}",
                self.name(),
                r.input[0],
                r.input[1],
                r.input[2],
                r.channels,
                r.norm.name(),
                r.classes
            ),
        }
    }
    pub fn graph(&self) -> Graph {
        match self {
            ModelSpec::Mlp(m) => m.graph(),
            ModelSpec::Cnn(c) => c.graph(),
            ModelSpec::Transformer(t) => t.graph(),
            ModelSpec::Vgg(v) => v.graph(),
            ModelSpec::ResNet(r) => r.graph(),
        }
    }
    pub fn activation(&self) -> Activation {
        match self {
            ModelSpec::Mlp(m) => m.activation,
            ModelSpec::Cnn(c) => c.activation,
            ModelSpec::Transformer(t) => t.activation,
            ModelSpec::Vgg(_) | ModelSpec::ResNet(_) => Activation::Relu,
        }
    }
    pub fn input_dim(&self) -> usize {
        match self {
            ModelSpec::Mlp(m) => m.input_dim(),
            ModelSpec::Cnn(c) => c.input_dim(),
            ModelSpec::Transformer(t) => t.input_dim(),
            ModelSpec::Vgg(v) => v.input_dim(),
            ModelSpec::ResNet(r) => r.input_dim(),
        }
    }
    pub fn output_dim(&self) -> usize {
        match self {
            ModelSpec::Mlp(m) => m.output_dim(),
            ModelSpec::Cnn(c) => c.classes,
            ModelSpec::Transformer(t) => t.classes,
            ModelSpec::Vgg(v) => v.classes,
            ModelSpec::ResNet(r) => r.classes,
        }
    }
    pub fn num_params(&self) -> usize {
        self.graph().num_params()
    }
    pub fn as_mlp(&self) -> Option<&MlpSpec> {
        match self {
            ModelSpec::Mlp(m) => Some(m),
            _ => None,
        }
    }

    /// The initialisation of the model's reference code: for the Transformer Damian et al.'s
    /// ([`TransformerSpec::init`]), for VGG Cohen et al.'s ([`VggSpec::init`]); otherwise PyTorch's default initialisation of `nn.Linear` and
    /// `nn.Conv2d`: every weight and bias of a
    /// layer drawn from U(−1/√fan_in, 1/√fan_in), fan_in = in_features or in_channels·kh·kw
    /// (kaiming_uniform with a = √5 gives this bound for the weights). Draws come from ChaCha20
    /// seeded with `seed`, tensor by tensor in θ's order (weights row-major, then the bias).
    pub fn init(&self, seed: u64) -> Vec<f64> {
        use rand::{RngExt, SeedableRng};
        if let ModelSpec::Transformer(t) = self {
            return t.init(seed);
        }
        if let ModelSpec::Vgg(v) = self {
            return v.init(seed);
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let g = self.graph();
        let mut theta = Vec::with_capacity(g.num_params());
        let mut fan_in = 1usize;
        for t in &g.params {
            if t.shape.len() >= 2 {
                fan_in = t.shape[1..].iter().product();
            }
            let bound = 1.0 / (fan_in as f64).sqrt();
            for _ in 0..t.len() {
                theta.push((2.0 * rng.random::<f64>() - 1.0) * bound);
            }
        }
        theta
    }
}
