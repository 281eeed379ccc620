//! The fully connected network (fc-tanh of Cohen et al. and its relatives) as a [`Graph`].
//!
//! Layer i maps widths[i] → widths[i+1]: z_i = a_{i-1} W_iᵀ + b_i, a_i = σ(z_i) for hidden
//! layers, f = z_{L-1}. Parameters are laid out exactly as PyTorch's `state_dict` of
//! `fc1.weight [d1, d0]`, `fc1.bias [d1]`, `fc2.weight`, … concatenated.

use super::graph::{Builder, Graph};
use crate::backend::Activation;
use crate::error::{Error, Result};

/// Architecture of a fully connected network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MlpSpec {
    /// Input width, hidden widths…, output width.
    pub widths: Vec<usize>,
    pub activation: Activation,
}

/// Where one layer's parameters live in the flat θ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerLayout {
    pub fan_in: usize,
    pub fan_out: usize,
    /// Offset of the fan_out × fan_in weight matrix (row-major).
    pub w_off: usize,
    /// Offset of the fan_out bias.
    pub b_off: usize,
}

impl MlpSpec {
    /// fc-tanh of Cohen et al.: 784 – 200 – 200 – 10, tanh, p = 199,210.
    pub fn fc_tanh() -> Self {
        MlpSpec {
            widths: vec![784, 200, 200, 10],
            activation: Activation::Tanh,
        }
    }

    pub fn new(widths: Vec<usize>, activation: Activation) -> Result<Self> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(Error::InvalidArgument(format!(
                "widths {widths:?}: need an input and an output width, all positive (e.g. 784,200,200,10)"
            )));
        }
        if widths.iter().any(|&w| w > 1 << 20) {
            return Err(Error::InvalidArgument(format!(
                "widths {widths:?}: a layer wider than 2^20 is not supported"
            )));
        }
        Ok(MlpSpec { widths, activation })
    }

    pub fn input_dim(&self) -> usize {
        self.widths[0]
    }
    pub fn output_dim(&self) -> usize {
        self.widths[self.widths.len() - 1]
    }
    pub fn num_layers(&self) -> usize {
        self.widths.len() - 1
    }

    pub fn layers(&self) -> Vec<LayerLayout> {
        let mut off = 0;
        self.widths
            .windows(2)
            .map(|w| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let l = LayerLayout {
                    fan_in,
                    fan_out,
                    w_off: off,
                    b_off: off + fan_in * fan_out,
                };
                off += fan_in * fan_out + fan_out;
                l
            })
            .collect()
    }

    pub fn num_params(&self) -> usize {
        self.widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// The network as ops: `fcI` linear layers with the activation between them.
    pub fn graph(&self) -> Graph {
        let nl = self.num_layers();
        let mut b = Builder::new(self.input_dim());
        for (i, &w) in self.widths[1..].iter().enumerate() {
            b = b.linear(&format!("fc{}", i + 1), w);
            if i + 1 < nl {
                b = b.act(self.activation);
            }
        }
        b.build()
    }

    /// PyTorch's default `nn.Linear` initialisation: every weight and bias of a layer drawn from
    /// U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5 gives this bound for the weights).
    /// Draws come from ChaCha20 seeded with `seed`, layer by layer, weights (row-major) then bias.
    pub fn init(&self, seed: u64) -> Vec<f64> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let mut theta = Vec::with_capacity(self.num_params());
        for l in self.layers() {
            let bound = 1.0 / (l.fan_in as f64).sqrt();
            for _ in 0..(l.fan_in * l.fan_out + l.fan_out) {
                theta.push((2.0 * rng.random::<f64>() - 1.0) * bound);
            }
        }
        theta
    }
}

/// The engine at the path the tests and benches name it by (`nn::mlp::Engine`); it lives in
/// [`crate::nn::engine`] and runs any graph.
pub use super::{Engine, Eval};
