//! The Transformer of the paper's SST-2 experiments: Damian et al.'s Flax `models/transformer.py`
//! (Self-stabilization, ICLR 2023) with the paper's sizes — width 64, 8 heads of 8, 2 post-LN
//! layers, SiLU — on SST2-1k:
//!
//! ```text
//! x = tok_emb[ids] + pos_emb                         [T, D]
//! for each layer l:
//!     x = LN1(x + out(MHA(q(x), k(x), v(x))))        scores / √dh, softmax over the keys
//!     x = LN2(x + fc2(act(fc1(x))))                  fc1, fc2: D × D (no 4× expansion)
//! logits = head(mean over positions of x)            head initialised to zero
//! ```
//!
//! Choices where the paper is silent (README, "The Transformer"): padding keys are masked and the
//! mean is over the real positions (`masked = true`; Damian's code masks nothing and averages over
//! the padding too: `masked = false`); LayerNorm ε = 1e-6 (Flax's default); the MLP block is 64 wide.
//!
//! Parameter names and shapes are those of the PyTorch module a user would write
//! (`scripts/torch_transformer_reference.py`): `tok_emb.weight [V,D]`, `pos_emb.weight [T,D]`,
//! `layers.{l}.attn.{q,k,v}.weight [D,D]`, `layers.{l}.attn.{q,k,v}.bias [D]`,
//! `layers.{l}.attn.out.weight [D,D]`, `.bias`, `layers.{l}.ln1.weight [D]`, `.bias`,
//! `layers.{l}.mlp.fc1.weight [D,D]`, `.bias`, `layers.{l}.mlp.fc2.weight`, `.bias`,
//! `layers.{l}.ln2.weight`, `.bias`, `head.weight [C,D]`, `head.bias [C]`. In θ the q, k and v
//! weights are adjacent (one [3D, D] GEMM), followed by their three biases.

use super::graph::{Builder, Graph};
use crate::backend::Activation;
use crate::error::{Error, Result};

/// LayerNorm's ε (Flax's default, which Damian et al.'s model uses).
pub const LN_EPS: f64 = 1e-6;

/// Architecture of the Transformer classifier.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransformerSpec {
    /// Vocabulary size (ids 0 = padding, 1 = unknown word).
    pub vocab: usize,
    /// Sequence length T (the longest training sentence; shorter ones are padded with id 0).
    pub seq: usize,
    /// Model width D.
    pub width: usize,
    pub heads: usize,
    pub layers: usize,
    /// Activation of the MLP blocks (SiLU as Damian et al.; GELU as an option).
    pub activation: Activation,
    /// Mask padding keys in attention and average over real positions only.
    pub masked: bool,
    pub classes: usize,
}

impl TransformerSpec {
    /// The paper's Transformer on SST2-1k: D = 64, 8 heads, 2 layers, SiLU, masked, 2 classes,
    /// the vocabulary (2970 ids) and length (51) of SST2-1k ([`crate::data::sst2`]).
    pub fn sst2() -> Self {
        TransformerSpec {
            vocab: crate::data::sst2::VOCAB_1K,
            seq: crate::data::sst2::SEQ_1K,
            width: 64,
            heads: 8,
            layers: 2,
            activation: Activation::Silu,
            masked: true,
            classes: 2,
        }
    }

    /// A Transformer with checked sizes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vocab: usize,
        seq: usize,
        width: usize,
        heads: usize,
        layers: usize,
        activation: Activation,
        masked: bool,
        classes: usize,
    ) -> Result<Self> {
        if vocab < 2 || seq == 0 || width == 0 || heads == 0 || layers == 0 || classes == 0 {
            return Err(Error::InvalidArgument(format!(
                "transformer: vocabulary {vocab} (at least 2: padding and unknown), length {seq}, width {width}, {heads} heads, {layers} layers, {classes} classes: all must be positive"
            )));
        }
        if !width.is_multiple_of(heads) {
            return Err(Error::InvalidArgument(format!(
                "transformer: width {width} is not divisible by {heads} heads"
            )));
        }
        if vocab > 1 << 24 || seq > 4096 || width > 4096 {
            return Err(Error::InvalidArgument(format!(
                "transformer: vocabulary {vocab} (≤ 2^24, ids must be exact in f32), length {seq} and width {width} (≤ 4096) are beyond what is supported"
            )));
        }
        Ok(TransformerSpec {
            vocab,
            seq,
            width,
            heads,
            layers,
            activation,
            masked,
            classes,
        })
    }

    /// Token ids per sample (the engine's input width).
    pub fn input_dim(&self) -> usize {
        self.seq
    }

    /// The network as ops.
    pub fn graph(&self) -> Graph {
        let (t, d) = (self.seq, self.width);
        let mut b = Builder::new(t).embed("tok_emb", "pos_emb", self.vocab, d);
        for l in 0..self.layers {
            let p = format!("layers.{l}");
            let x = b.mark();
            b = b
                .qkv(&format!("{p}.attn"), t)
                .attention(t, self.heads, self.masked)
                .linear_seq(&format!("{p}.attn.out"), t, d)
                .residual(x)
                .layer_norm(&format!("{p}.ln1"), t, LN_EPS);
            let x = b.mark();
            b = b
                .linear_seq(&format!("{p}.mlp.fc1"), t, d)
                .act(self.activation)
                .linear_seq(&format!("{p}.mlp.fc2"), t, d)
                .residual(x)
                .layer_norm(&format!("{p}.ln2"), t, LN_EPS);
        }
        b.mean_pool(t, self.masked)
            .linear("head", self.classes)
            .build()
    }

    /// Damian et al.'s (Flax) initialisation, drawn from ChaCha20 seeded with `seed` tensor by
    /// tensor in θ's order: embeddings N(0, 1/D) (Flax `Embed`'s default, variance scaling over
    /// the width); the q, k, v, out, fc1 and fc2 weights LeCun normal (Flax's `lecun_normal`: a
    /// normal truncated at ±2 standard deviations, rescaled to variance 1/fan_in); biases 0;
    /// LayerNorm scales 1 and shifts 0; the head 0 (Damian's `kernel_init=zeros`). With a zero
    /// head only the head's gradient is non-zero at initialisation.
    pub fn init(&self, seed: u64) -> Vec<f64> {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let g = self.graph();
        let mut theta = Vec::with_capacity(g.num_params());
        // Standard deviation of N(0,1) truncated to [−2, 2].
        const TRUNC_STD: f64 = 0.879_625_661_034_239_8;
        for t in &g.params {
            let n = &t.name;
            if n == "tok_emb.weight" || n == "pos_emb.weight" {
                let std = 1.0 / (self.width as f64).sqrt();
                theta.extend((0..t.len()).map(|_| std * normal(&mut rng)));
            } else if n.starts_with("head.") || n.ends_with(".bias") {
                theta.extend(std::iter::repeat_n(0.0, t.len()));
            } else if n.contains(".ln") {
                theta.extend(std::iter::repeat_n(1.0, t.len()));
            } else {
                let std = (1.0 / t.shape[1] as f64).sqrt() / TRUNC_STD;
                theta.extend((0..t.len()).map(|_| std * truncated_normal(&mut rng)));
            }
        }
        theta
    }
}

/// A standard normal draw (Box–Muller on two uniforms).
pub(crate) fn normal(rng: &mut impl rand::Rng) -> f64 {
    use rand::RngExt;
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A standard normal draw conditioned on |z| ≤ 2 (rejection).
fn truncated_normal(rng: &mut impl rand::Rng) -> f64 {
    loop {
        let z = normal(rng);
        if z.abs() <= 2.0 {
            return z;
        }
    }
}
