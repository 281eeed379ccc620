//! The convolutional network of Cohen et al. (2021), `convnet(widths, activation, 'max')` in their
//! `archs.py`: blocks of Conv2d(3×3, padding 1) – activation – MaxPool2d(2), then Flatten and a
//! Linear layer to the classes. cnn-relu on CIFAR-10 is widths [32, 32], ReLU: 30,634 parameters.
//!
//! Parameter names are those of the equivalent `nn.Sequential` state dict (each block is three
//! modules, then Flatten): `0.weight [32,3,3,3]`, `0.bias`, `3.weight [32,32,3,3]`, `3.bias`,
//! `7.weight [10,2048]`, `7.bias`, so a model trained in PyTorch loads here and back.

use super::graph::{Builder, Graph};
use crate::backend::{Activation, ConvGeom};
use crate::error::{Error, Result};

/// The convolution of every block: 3×3, stride 1, padding 1 (Cohen et al.'s `Conv2d(c, c', 3,
/// padding=1)`), so a block's convolution keeps H×W and only its pooling halves them.
pub const CONV: ConvGeom = ConvGeom::SAME_3X3;

/// Architecture of a convolutional network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CnnSpec {
    /// Input channels, height, width (PyTorch's C, H, W).
    pub input: [usize; 3],
    /// Output channels of each conv block.
    pub channels: Vec<usize>,
    pub activation: Activation,
    pub classes: usize,
}

impl CnnSpec {
    /// cnn-relu of Cohen et al. on CIFAR-10: 3×32×32 → [32, 32] → 10, ReLU, p = 30,634.
    pub fn cnn_relu() -> Self {
        CnnSpec {
            input: [3, 32, 32],
            channels: vec![32, 32],
            activation: Activation::Relu,
            classes: 10,
        }
    }

    /// A network with checked sizes: H and W divisible by 2^blocks, everything positive.
    pub fn new(
        input: [usize; 3],
        channels: Vec<usize>,
        activation: Activation,
        classes: usize,
    ) -> Result<Self> {
        let div = 1usize << channels.len().min(16);
        if input.contains(&0) || channels.contains(&0) || classes == 0 || channels.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "cnn: input {input:?}, channels {channels:?}, {classes} classes: all must be positive, with at least one block"
            )));
        }
        if !input[1].is_multiple_of(div) || !input[2].is_multiple_of(div) {
            return Err(Error::InvalidArgument(format!(
                "cnn: {}×{} images cannot be pooled {} times by 2 (each block halves H and W)",
                input[1],
                input[2],
                channels.len()
            )));
        }
        if channels.iter().chain(&input).any(|&c| c > 4096) {
            return Err(Error::InvalidArgument(format!(
                "cnn: input {input:?}, channels {channels:?}: sizes above 4096 are not supported"
            )));
        }
        Ok(CnnSpec {
            input,
            channels,
            activation,
            classes,
        })
    }

    pub fn input_dim(&self) -> usize {
        self.input.iter().product()
    }

    /// The network as ops.
    pub fn graph(&self) -> Graph {
        let [mut c, mut h, mut w] = self.input;
        let mut b = Builder::new(c * h * w);
        for (j, &co) in self.channels.iter().enumerate() {
            b = b.conv(&(3 * j).to_string(), (c, co), (h, w), CONV);
            (h, w) = (CONV.out_size(h), CONV.out_size(w));
            b = b.act(self.activation).maxpool2(h, w, co);
            c = co;
            h /= 2;
            w /= 2;
        }
        let l = self.channels.len();
        b.flatten(h * w, c)
            .linear(&(3 * l + 1).to_string(), self.classes)
            .build()
    }
}
