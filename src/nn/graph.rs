//! A network as a list of ops over slices of θ: tensor t is the output of op t (tensor −1 is the
//! data), each op reads the tensor before it. The models ([`crate::nn::model`]) are short builders of
//! a [`Graph`]; the [`crate::nn::engine::Engine`] runs any graph's four passes.

use super::ops::{Act, Conv3x3, Flatten, Linear, MaxPool2};
use crate::backend::Activation;

/// One op of a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Linear(Linear),
    Conv3x3(Conv3x3),
    Act(Act),
    MaxPool2(MaxPool2),
    Flatten(Flatten),
}

impl Op {
    /// Elements per sample of the op's output.
    pub fn out_width(&self) -> usize {
        match self {
            Op::Linear(l) => l.fan_out,
            Op::Conv3x3(c) => c.out_width(),
            Op::Act(a) => a.width,
            Op::MaxPool2(p) => p.out_width(),
            Op::Flatten(f) => f.width(),
        }
    }
    /// Elements per sample of the op's input.
    pub fn in_width(&self) -> usize {
        match self {
            Op::Linear(l) => l.fan_in,
            Op::Conv3x3(c) => c.in_width(),
            Op::Act(a) => a.width,
            Op::MaxPool2(p) => p.in_width(),
            Op::Flatten(f) => f.width(),
        }
    }
    /// Scratch elements per sample the op's passes need (im2col).
    pub fn scratch_width(&self) -> usize {
        match self {
            Op::Conv3x3(c) => c.col_width(),
            _ => 0,
        }
    }
    /// True if the op writes its output over its input (tanh and ReLU).
    pub fn in_place(&self) -> bool {
        matches!(self, Op::Act(a) if a.cached_is_output())
    }
}

/// A named parameter tensor of θ (PyTorch's `state_dict` name and shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamTensor {
    pub name: String,
    pub shape: Vec<usize>,
    /// Offset in θ (elements).
    pub off: usize,
}

impl ParamTensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A sequential network over θ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    /// Elements per sample of the input.
    pub input: usize,
    pub ops: Vec<Op>,
    /// θ's tensors in order (PyTorch's parameter order), covering θ without gaps.
    pub params: Vec<ParamTensor>,
}

impl Graph {
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|t| t.len()).sum()
    }
    /// Outputs per sample (classes).
    pub fn output(&self) -> usize {
        self.ops.last().map_or(self.input, |o| o.out_width())
    }
    /// The input geometry of the first op when it is a convolution (C, H, W); None for a
    /// fully connected first layer.
    pub fn image_input(&self) -> Option<(usize, usize, usize)> {
        match self.ops.first() {
            Some(Op::Conv3x3(c)) => Some((c.cin, c.h, c.w)),
            _ => None,
        }
    }
}

/// Builds a graph, laying parameters out in θ in the order layers are added.
pub struct Builder {
    g: Graph,
    off: usize,
    width: usize,
}

impl Builder {
    pub fn new(input: usize) -> Self {
        Builder {
            g: Graph {
                input,
                ops: Vec::new(),
                params: Vec::new(),
            },
            off: 0,
            width: input,
        }
    }
    fn param(&mut self, name: String, shape: Vec<usize>) -> usize {
        let off = self.off;
        self.off += shape.iter().product::<usize>();
        self.g.params.push(ParamTensor { name, shape, off });
        off
    }
    /// `nn.Linear(width, fan_out)` named `prefix.weight` / `prefix.bias`.
    pub fn linear(mut self, prefix: &str, fan_out: usize) -> Self {
        let fan_in = self.width;
        let w_off = self.param(format!("{prefix}.weight"), vec![fan_out, fan_in]);
        let b_off = self.param(format!("{prefix}.bias"), vec![fan_out]);
        self.g.ops.push(Op::Linear(Linear {
            fan_in,
            fan_out,
            w_off,
            b_off,
        }));
        self.width = fan_out;
        self
    }
    /// `nn.Conv2d(cin, cout, 3, padding=1)` on h×w images.
    pub fn conv3x3(mut self, prefix: &str, cin: usize, cout: usize, h: usize, w: usize) -> Self {
        let w_off = self.param(format!("{prefix}.weight"), vec![cout, cin, 3, 3]);
        let b_off = self.param(format!("{prefix}.bias"), vec![cout]);
        let c = Conv3x3 {
            cin,
            cout,
            h,
            w,
            w_off,
            b_off,
        };
        debug_assert_eq!(c.in_width(), self.width);
        self.width = c.out_width();
        self.g.ops.push(Op::Conv3x3(c));
        self
    }
    pub fn act(mut self, act: Activation) -> Self {
        self.g.ops.push(Op::Act(Act {
            act,
            width: self.width,
        }));
        self
    }
    pub fn maxpool2(mut self, h: usize, w: usize, c: usize) -> Self {
        let p = MaxPool2 { h, w, c };
        self.width = p.out_width();
        self.g.ops.push(Op::MaxPool2(p));
        self
    }
    pub fn flatten(mut self, hw: usize, c: usize) -> Self {
        self.g.ops.push(Op::Flatten(Flatten { hw, c }));
        self
    }
    pub fn build(self) -> Graph {
        self.g
    }
}
