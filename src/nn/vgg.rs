//! VGG11 of Cohen et al. (2021), `vgg11_nodropout` in their `src/vgg.py` (no dropout, so the loss
//! is deterministic; no BatchNorm): `features` = cfg A = [64, M, 128, M, 256, 256, M, 512, 512, M,
//! 512, 512, M] of Conv2d(3×3, padding 1, bias) + ReLU per number and MaxPool2d(2, 2) per M;
//! `classifier` = Linear(512, 512) – ReLU – Linear(512, 512) – ReLU – Linear(512, 10). On CIFAR-10
//! (3×32×32) the features end at 1×1×512: 9,750,922 parameters.
//!
//! Parameter names are those of the PyTorch module's state dict: `features.{i}.weight
//! [cout, cin, 3, 3]` / `.bias` with i the module index in `features` (0, 3, 6, 8, 11, 13, 16, 18
//! for cfg A), `classifier.{0,2,4}.weight` / `.bias`, so a PyTorch user's file loads as it is.
//! Initialisation as Cohen's: conv weights N(0, √(2/(k·k·out_channels))), conv biases 0, linear
//! layers PyTorch's default U(±1/√fan_in).

use super::graph::{Builder, Graph};
use crate::backend::{Activation, ConvGeom};
use crate::error::{Error, Result};

/// The convolution of every feature layer: 3×3, stride 1, padding 1.
pub const CONV: ConvGeom = ConvGeom::SAME_3X3;

/// cfg A of VGG11; 0 stands for a max-pool (Cohen's "M").
pub const CFG_A: [usize; 13] = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];

/// Architecture of a VGG network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VggSpec {
    /// Input channels, height, width (PyTorch's C, H, W).
    pub input: [usize; 3],
    /// The feature layers: a number is a Conv2d(3×3, padding 1) to that many channels + ReLU, 0
    /// a MaxPool2d(2, 2).
    pub cfg: Vec<usize>,
    /// Widths of the classifier's hidden layers (each Linear + ReLU), then Linear to the classes.
    pub hidden: Vec<usize>,
    pub classes: usize,
}

impl VggSpec {
    /// VGG11 (`vgg11_nodropout`) on CIFAR-10: 9,750,922 parameters.
    pub fn vgg11() -> Self {
        VggSpec {
            input: [3, 32, 32],
            cfg: CFG_A.to_vec(),
            hidden: vec![512, 512],
            classes: 10,
        }
    }

    /// VGG11 at 1/8 of its widths (cfg A with 8, 16, 32, 64 channels; classifier 64–64–10) on
    /// CIFAR-10: 153,530 parameters, every op of VGG11 (the quick presets' stand-in).
    pub fn vgg11_narrow() -> Self {
        VggSpec {
            cfg: CFG_A.iter().map(|c| c / 8).collect(),
            hidden: vec![64, 64],
            ..Self::vgg11()
        }
    }

    /// A network with checked sizes: H and W divisible by 2 at every pool, at least one
    /// convolution first, everything positive and ≤ 4096.
    pub fn new(
        input: [usize; 3],
        cfg: Vec<usize>,
        hidden: Vec<usize>,
        classes: usize,
    ) -> Result<Self> {
        let bad = |why: &str| {
            Err(Error::InvalidArgument(format!(
                "vgg: input {input:?}, cfg {cfg:?}, hidden {hidden:?}, {classes} classes: {why}"
            )))
        };
        if input.contains(&0) || hidden.contains(&0) || classes == 0 {
            return bad("all sizes must be positive");
        }
        if cfg.first().is_none_or(|&c| c == 0) {
            return bad("the features must start with a convolution");
        }
        if cfg.iter().chain(&input).chain(&hidden).any(|&c| c > 4096) {
            return bad("sizes above 4096 are not supported");
        }
        let (mut h, mut w) = (input[1], input[2]);
        for &c in &cfg {
            if c == 0 {
                if !h.is_multiple_of(2) || !w.is_multiple_of(2) {
                    return bad("a max-pool meets an odd height or width");
                }
                (h, w) = (h / 2, w / 2);
            }
        }
        Ok(VggSpec {
            input,
            cfg,
            hidden,
            classes,
        })
    }

    /// Scalars per sample (the product of the input shape: 3072 for CIFAR-10).
    pub fn input_dim(&self) -> usize {
        self.input.iter().product()
    }

    /// `vgg11` for cfg A on CIFAR-10's shape with the paper's classifier, `vgg11-narrow` for
    /// [`VggSpec::vgg11_narrow`], `vgg` otherwise.
    pub fn name(&self) -> &'static str {
        if *self == Self::vgg11() {
            "vgg11"
        } else if *self == Self::vgg11_narrow() {
            "vgg11-narrow"
        } else {
            "vgg"
        }
    }

    /// The network as ops: the features in NHWC, then flatten (PyTorch's NCHW order) and the
    /// classifier.
    pub fn graph(&self) -> Graph {
        let [mut c, mut h, mut w] = self.input;
        let mut b = Builder::new(c * h * w);
        let mut i = 0;
        for &co in &self.cfg {
            if co == 0 {
                b = b.maxpool2(h, w, c);
                (h, w) = (h / 2, w / 2);
                i += 1;
            } else {
                b = b.conv(&format!("features.{i}"), (c, co), (h, w), CONV);
                b = b.act(Activation::Relu);
                c = co;
                i += 2;
            }
        }
        b = b.flatten(h * w, c);
        let mut j = 0;
        for &hd in &self.hidden {
            b = b
                .linear(&format!("classifier.{j}"), hd)
                .act(Activation::Relu);
            j += 2;
        }
        b.linear(&format!("classifier.{j}"), self.classes).build()
    }

    /// Cohen et al.'s initialisation (`vgg.py`): every conv weight N(0, √(2/(k·k·out_channels))),
    /// conv biases 0, the linear layers PyTorch's default U(±1/√fan_in) for weight and bias.
    /// Draws from ChaCha20 seeded with `seed`, tensor by tensor in θ's order (normals by
    /// Box–Muller).
    pub fn init(&self, seed: u64) -> Vec<f64> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let g = self.graph();
        let mut theta = Vec::with_capacity(g.num_params());
        let mut fan_in = 1usize;
        for t in &g.params {
            let conv = t.name.starts_with("features.");
            if t.shape.len() >= 2 {
                fan_in = t.shape[1..].iter().product();
            }
            if conv && t.shape.len() == 4 {
                let std = (2.0 / (t.shape[2] * t.shape[3] * t.shape[0]) as f64).sqrt();
                for _ in 0..t.len() {
                    let (u1, u2): (f64, f64) = (rng.random(), rng.random());
                    let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    theta.push(std * z);
                }
            } else if conv {
                theta.extend(std::iter::repeat_n(0.0, t.len()));
            } else {
                let bound = 1.0 / (fan_in as f64).sqrt();
                for _ in 0..t.len() {
                    theta.push((2.0 * rng.random::<f64>() - 1.0) * bound);
                }
            }
        }
        theta
    }
}
