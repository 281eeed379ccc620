//! A network as a list of ops over slices of θ: tensor t is the output of op t (tensor −1 is the
//! data), each op reads the tensor before it; a residual [`Add`] also reads an earlier tensor. The models ([`crate::nn::model`]) are short builders of
//! a [`Graph`]; the [`crate::nn::engine::Engine`] runs any graph's four passes.

use super::ops::{
    Act, Add, Attention, Conv3x3, DataForm, Embed, Flatten, GlobalAvgPool, Layer, LayerNorm,
    Linear, MaxPool2, MeanPool, OpRule, ProjAdd,
};
use crate::backend::{Activation, Backend, ConvGeom};

/// The op enum and its two accessors from one list of layer kinds (variant = type name): adding a
/// layer kind is one name here.
macro_rules! ops {
    ($($kind:ident),* $(,)?) => {
        /// One op of a graph: a layer kind of [`crate::nn::ops`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Op {
            $(
                #[doc = concat!("[`", stringify!($kind), "`]")]
                $kind($kind),
            )*
        }

        impl Op {
            /// The op's sizes and place in a graph.
            pub fn layer(&self) -> &dyn Layer {
                match self {
                    $(Op::$kind(o) => o,)*
                }
            }
            /// The op's passes on backend `B`.
            pub fn rule<B: Backend>(&self) -> &dyn OpRule<B> {
                match self {
                    $(Op::$kind(o) => o,)*
                }
            }
        }
    };
}

ops!(
    Linear,
    Conv3x3,
    Act,
    MaxPool2,
    Flatten,
    Embed,
    LayerNorm,
    Attention,
    MeanPool,
    Add,
    GlobalAvgPool,
    ProjAdd,
);

impl Op {
    /// Elements per sample of the op's output.
    pub fn out_width(&self) -> usize {
        self.layer().shape().output
    }
    /// Elements per sample of the op's input.
    pub fn in_width(&self) -> usize {
        self.layer().shape().input
    }
    /// Scratch elements per sample the op's passes need (im2col; LayerNorm's products).
    pub fn scratch_width(&self) -> usize {
        self.layer().shape().scratch
    }
    /// Elements per sample the op keeps for its derivative passes besides its output (a pooling's
    /// arg-max, attention's P).
    pub fn aux_width(&self) -> usize {
        self.layer().shape().aux
    }
    /// The earlier tensor a residual add reads.
    pub fn skip_from(&self) -> Option<usize> {
        self.layer().skip_from()
    }
    /// True if the op writes its output over its input (tanh and ReLU).
    pub fn in_place(&self) -> bool {
        self.layer().in_place()
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
    /// How the first op reads the data set (None: the first op cannot read it).
    pub fn data_form(&self) -> Option<DataForm> {
        self.ops.first()?.layer().reads_data()
    }
    /// The input geometry of the first op when it is a convolution (C, H, W); None for a
    /// fully connected first layer.
    pub fn image_input(&self) -> Option<(usize, usize, usize)> {
        match self.data_form()? {
            DataForm::Images { c, h, w } => Some((c, h, w)),
            _ => None,
        }
    }
    /// (vocabulary, sequence length) when the graph reads token ids (its first op an embedding).
    pub fn tokens(&self) -> Option<(usize, usize)> {
        match self.data_form()? {
            DataForm::Tokens { vocab, seq } => Some((vocab, seq)),
            _ => None,
        }
    }
    /// True if tensor t is read by a residual add (so the op after it may not overwrite it).
    pub fn is_skip_source(&self, t: usize) -> bool {
        self.ops.iter().any(|o| o.skip_from() == Some(t))
    }
    /// True if op t writes its output over its input's slot: an in-place op whose input no
    /// residual add reads later.
    pub fn shares_slot(&self, t: usize) -> bool {
        t > 0 && self.ops[t].in_place() && !self.is_skip_source(t - 1)
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
            seq: 1,
        }));
        self.width = fan_out;
        self
    }
    /// `nn.Conv2d(cin, cout, 3, padding=1)` on h×w images ([`ConvGeom::SAME_3X3`]).
    pub fn conv3x3(self, prefix: &str, cin: usize, cout: usize, h: usize, w: usize) -> Self {
        self.conv(prefix, (cin, cout), (h, w), ConvGeom::SAME_3X3)
    }
    /// `nn.Conv2d(cin, cout, k, stride, padding)` of geometry `geom` on h×w images: weight
    /// `[cout, cin, k, k]`, bias `[cout]`; the output is oh×ow×cout ([`ConvGeom::out_size`]).
    pub fn conv(
        mut self,
        prefix: &str,
        (cin, cout): (usize, usize),
        (h, w): (usize, usize),
        geom: ConvGeom,
    ) -> Self {
        let k = geom.kernel;
        let w_off = self.param(format!("{prefix}.weight"), vec![cout, cin, k, k]);
        let b_off = self.param(format!("{prefix}.bias"), vec![cout]);
        let c = Conv3x3 {
            cin,
            cout,
            h,
            w,
            w_off,
            b_off,
            geom,
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
    /// `nn.Linear(D, fan_out)` applied at each of `seq` positions (input width seq·D).
    pub fn linear_seq(mut self, prefix: &str, seq: usize, fan_out: usize) -> Self {
        let fan_in = self.width / seq;
        let w_off = self.param(format!("{prefix}.weight"), vec![fan_out, fan_in]);
        let b_off = self.param(format!("{prefix}.bias"), vec![fan_out]);
        self.g.ops.push(Op::Linear(Linear {
            fan_in,
            fan_out,
            w_off,
            b_off,
            seq,
        }));
        self.width = seq * fan_out;
        self
    }
    /// The q, k, v projections of an attention layer as one op: `prefix.{q,k,v}.weight` [D, D]
    /// contiguous in θ (one [3D, D] matrix), then `prefix.{q,k,v}.bias` [D].
    pub fn qkv(mut self, prefix: &str, seq: usize) -> Self {
        let d = self.width / seq;
        let w_off = self.off;
        for n in ["q", "k", "v"] {
            self.param(format!("{prefix}.{n}.weight"), vec![d, d]);
        }
        let b_off = self.off;
        for n in ["q", "k", "v"] {
            self.param(format!("{prefix}.{n}.bias"), vec![d]);
        }
        self.g.ops.push(Op::Linear(Linear {
            fan_in: d,
            fan_out: 3 * d,
            w_off,
            b_off,
            seq,
        }));
        self.width = seq * 3 * d;
        self
    }
    /// Token and position embeddings `prefix_tok.weight` [vocab, D], `prefix_pos.weight` [T, D];
    /// the builder's input must be T token ids.
    pub fn embed(mut self, tok: &str, pos: &str, vocab: usize, width: usize) -> Self {
        let seq = self.width;
        let tok_off = self.param(format!("{tok}.weight"), vec![vocab, width]);
        let pos_off = self.param(format!("{pos}.weight"), vec![seq, width]);
        self.g.ops.push(Op::Embed(Embed {
            vocab,
            seq,
            width,
            tok_off,
            pos_off,
        }));
        self.width = seq * width;
        self
    }
    /// `nn.LayerNorm(D, eps)` at each of `seq` positions: `prefix.weight`, `prefix.bias` [D].
    pub fn layer_norm(mut self, prefix: &str, seq: usize, eps: f64) -> Self {
        let width = self.width / seq;
        let g_off = self.param(format!("{prefix}.weight"), vec![width]);
        let b_off = self.param(format!("{prefix}.bias"), vec![width]);
        self.g.ops.push(Op::LayerNorm(LayerNorm {
            seq,
            width,
            eps,
            g_off,
            b_off,
        }));
        self
    }
    /// Scaled dot-product attention of `heads` heads over a [T, 3D] input.
    pub fn attention(mut self, seq: usize, heads: usize, masked: bool) -> Self {
        let d = self.width / seq / 3;
        let a = Attention {
            seq,
            heads,
            head_dim: d / heads,
            masked,
        };
        self.width = a.out_width();
        self.g.ops.push(Op::Attention(a));
        self
    }
    /// Mean over positions ([T, D] → [D]).
    pub fn mean_pool(mut self, seq: usize, masked: bool) -> Self {
        let width = self.width / seq;
        self.g
            .ops
            .push(Op::MeanPool(MeanPool { seq, width, masked }));
        self.width = width;
        self
    }
    /// The tensor the next op will read (the last op's output): a residual's source.
    pub fn mark(&self) -> usize {
        self.g.ops.len() - 1
    }
    /// `y = previous + tensor from` (a residual connection; `from` comes from [`Builder::mark`]
    /// and is not the previous tensor).
    pub fn residual(mut self, from: usize) -> Self {
        debug_assert!(from + 1 < self.g.ops.len());
        self.g.ops.push(Op::Add(Add {
            from,
            width: self.width,
        }));
        self
    }
    /// Global average pooling of h·w×c images to c (`nn.AdaptiveAvgPool2d(1)` then flatten).
    pub fn global_avg_pool(mut self, hw: usize, c: usize) -> Self {
        let p = GlobalAvgPool { hw, c };
        self.width = p.shape().output;
        self.g.ops.push(Op::GlobalAvgPool(p));
        self
    }
    /// `y = previous + conv(tensor from)`: a residual with a projection shortcut,
    /// `nn.Conv2d(cin, cout, k, stride, padding)` of geometry `geom` named `prefix.weight`
    /// `[cout, cin, k, k]` / `prefix.bias`, reading tensor `from` (h×w×cin, from
    /// [`Builder::mark`]); its output must have the previous tensor's width.
    pub fn residual_proj(
        mut self,
        from: usize,
        prefix: &str,
        (cin, cout): (usize, usize),
        (h, w): (usize, usize),
        geom: ConvGeom,
    ) -> Self {
        let k = geom.kernel;
        let w_off = self.param(format!("{prefix}.weight"), vec![cout, cin, k, k]);
        let b_off = self.param(format!("{prefix}.bias"), vec![cout]);
        let proj = Conv3x3 {
            cin,
            cout,
            h,
            w,
            w_off,
            b_off,
            geom,
        };
        debug_assert!(from + 1 < self.g.ops.len());
        debug_assert_eq!(proj.out_width(), self.width);
        self.g.ops.push(Op::ProjAdd(ProjAdd { from, proj }));
        self
    }
    pub fn build(self) -> Graph {
        self.g
    }
}
