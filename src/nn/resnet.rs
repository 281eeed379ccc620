//! ResNet8: He et al.'s (2016) CIFAR ResNet with one BasicBlock per stage. conv1 (3×3, 3→16) –
//! norm – ReLU; three stages of one BasicBlock each (16, 32, 64 channels; strides 1, 2, 2): conv
//! 3×3 (stride s) – norm – ReLU – conv 3×3 – norm, plus the shortcut (identity, or a 1×1 stride-2
//! projection conv where the shape changes: He et al.'s option B), then ReLU; global average pool;
//! Linear(64, 10).
//!
//! Normalisation ([`Norm`]): the paper does not say. BatchNorm in training mode makes a sample's
//! loss depend on the rest of its minibatch, so "the Hessian of the training loss" would depend on
//! a batching and the full-data HVP would not be the Hessian of the full-data loss the optimiser
//! descends. `none` (the default) keeps every sample's loss a function of θ and that sample alone:
//! the full-data Hessian is exact and well defined. With no normalisation each conv keeps its
//! bias: 77,706 parameters (the BatchNorm ResNet8 has 75,290 with bias-free convs).
//!
//! Parameter names are those of the PyTorch twin (`scripts/torch_resnet_reference.py`):
//! `conv1.{weight,bias}`, `layer{1,2,3}.0.conv{1,2}.{weight,bias}`,
//! `layer{2,3}.0.shortcut.0.{weight,bias}`, `linear.{weight,bias}`. Initialisation: PyTorch's
//! default for `nn.Conv2d` and `nn.Linear` ([`crate::nn::model::ModelSpec::init`]).

use super::graph::{Builder, Graph};
use crate::backend::{Activation, ConvGeom};
use crate::error::{Error, Result};

/// The per-sample normalisation after each convolution of the main path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// No normalisation (convs with bias): the simplest exact choice.
    #[default]
    None,
}

impl Norm {
    /// The option's name in specs and listings (`none`).
    pub fn name(&self) -> &'static str {
        match self {
            Norm::None => "none",
        }
    }
    /// `none`; `group` (GroupNorm, per sample, hence exact too) is named as not built yet.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Norm::None),
            "group" => Err(Error::InvalidArgument(
                "norm = group (GroupNorm) is not built yet: use norm = none".into(),
            )),
            o => Err(Error::InvalidArgument(format!(
                "norm = {o}: expected none (BatchNorm in training mode makes the Hessian depend on the batching, so it is not offered)"
            ))),
        }
    }
}

/// The 3×3, stride-2, padding-1 convolution that opens a downsampling block.
pub const DOWN_3X3: ConvGeom = ConvGeom {
    kernel: 3,
    stride: 2,
    pad: 1,
};
/// The 1×1, stride-2, padding-0 projection shortcut.
pub const PROJ_1X1: ConvGeom = ConvGeom {
    kernel: 1,
    stride: 2,
    pad: 0,
};

/// Architecture of a CIFAR ResNet with one BasicBlock per stage.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResNetSpec {
    /// Input channels, height, width (PyTorch's C, H, W).
    pub input: [usize; 3],
    /// Channels of the stem and of each stage (the first stage keeps the stem's width and stride
    /// 1; every later stage has stride 2 and a projection shortcut).
    pub channels: Vec<usize>,
    pub norm: Norm,
    pub classes: usize,
}

impl ResNetSpec {
    /// ResNet8 on CIFAR-10: stages 16, 32, 64, no normalisation: 77,706 parameters.
    pub fn resnet8() -> Self {
        ResNetSpec {
            input: [3, 32, 32],
            channels: vec![16, 32, 64],
            norm: Norm::None,
            classes: 10,
        }
    }

    /// A network with checked sizes: H and W divisible by 2 at every later stage, at least one
    /// stage, everything positive and ≤ 4096.
    pub fn new(
        input: [usize; 3],
        channels: Vec<usize>,
        norm: Norm,
        classes: usize,
    ) -> Result<Self> {
        let div = 1usize << (channels.len().saturating_sub(1)).min(16);
        let bad = |why: &str| {
            Err(Error::InvalidArgument(format!(
                "resnet: input {input:?}, channels {channels:?}, {classes} classes: {why}"
            )))
        };
        if input.contains(&0) || channels.contains(&0) || classes == 0 || channels.is_empty() {
            return bad("all sizes must be positive, with at least one stage");
        }
        if !input[1].is_multiple_of(div) || !input[2].is_multiple_of(div) {
            return bad("every stage after the first halves H and W");
        }
        if channels.iter().chain(&input).any(|&c| c > 4096) {
            return bad("sizes above 4096 are not supported");
        }
        Ok(ResNetSpec {
            input,
            channels,
            norm,
            classes,
        })
    }

    /// Scalars per sample (the product of the input shape: 3072 for CIFAR-10).
    pub fn input_dim(&self) -> usize {
        self.input.iter().product()
    }

    /// `resnet8` for the paper's network, `resnet` otherwise.
    pub fn name(&self) -> &'static str {
        if *self == Self::resnet8() {
            "resnet8"
        } else {
            "resnet"
        }
    }

    /// The network as ops (NHWC activations).
    pub fn graph(&self) -> Graph {
        let [c0, mut h, mut w] = self.input;
        let mut c = self.channels[0];
        let mut b = Builder::new(c0 * h * w)
            .conv("conv1", (c0, c), (h, w), ConvGeom::SAME_3X3)
            .act(Activation::Relu);
        for (s, &co) in self.channels.iter().enumerate() {
            let from = b.mark();
            let p = format!("layer{}.0", s + 1);
            let geom = if s == 0 { ConvGeom::SAME_3X3 } else { DOWN_3X3 };
            let (oh, ow) = (geom.out_size(h), geom.out_size(w));
            b = b
                .conv(&format!("{p}.conv1"), (c, co), (h, w), geom)
                .act(Activation::Relu)
                .conv(
                    &format!("{p}.conv2"),
                    (co, co),
                    (oh, ow),
                    ConvGeom::SAME_3X3,
                );
            b = if s == 0 && co == c {
                b.residual(from)
            } else {
                let sc = ConvGeom {
                    stride: geom.stride,
                    ..PROJ_1X1
                };
                b.residual_proj(from, &format!("{p}.shortcut.0"), (c, co), (h, w), sc)
            };
            b = b.act(Activation::Relu);
            (c, h, w) = (co, oh, ow);
        }
        b.global_avg_pool(h * w, c)
            .linear("linear", self.classes)
            .build()
    }
}
