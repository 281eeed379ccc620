//! The bind-group layout of each WGSL module as the Rust side sees it: the named storage buffers
//! of `@group(0)` in binding order (read-only or read-write) and the module's parameter block,
//! the uniform bound after them. [`layout!`] states each once — a struct of named buffer slots
//! (`MatmulBufs { a, b, c }`), the [`Layout`] the pipelines are built from, and the `#[repr(C)]`
//! twin of the WGSL `Params` struct is written beside it; the test at the end checks every
//! module's WGSL declarations against them.

use super::super::GpuBuf;

/// Bytes per parameter slot of the ring (one per dispatch): the minimum uniform-buffer offset
/// alignment WebGPU guarantees; every module's parameter block fits one (checked where each is
/// declared).
pub(in crate::backend::gpu) const SLOT: usize = 256;

/// The most storage buffers a module binds: WebGPU's default `maxStorageBuffersPerShaderStage`.
pub(in crate::backend::gpu) const MAX_STORAGE: usize = 8;

/// How a kernel may touch a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::backend::gpu) enum Access {
    Read,
    ReadWrite,
}

/// One WGSL module's bind group 0: its storage buffers (bindings 0..n) and its parameter block
/// (binding n, a uniform at a dynamic offset, `params` bytes).
#[derive(Debug)]
pub(in crate::backend::gpu) struct Layout {
    /// The file `shaders/<name>.wgsl`.
    pub(in crate::backend::gpu) name: &'static str,
    pub(in crate::backend::gpu) source: &'static str,
    pub(in crate::backend::gpu) bindings: &'static [(&'static str, Access)],
    pub(in crate::backend::gpu) params: usize,
}

/// The buffers of one dispatch, by name, for the module whose layout is `LAYOUT`; a slot left
/// `None` is bound to a dummy buffer (the kernel does not touch it).
pub(in crate::backend::gpu) trait Bindings {
    /// The module's parameter block (the WGSL struct `P`).
    type Params: bytemuck::Pod;
    const LAYOUT: &'static Layout;
    /// The buffers in binding order (the first `LAYOUT.bindings.len()` entries).
    fn slots(&self) -> [Option<&GpuBuf>; MAX_STORAGE];
}

/// `layout!(CONST, Bufs, Params, "module", [name: Read | ReadWrite, …])`: the named slots
/// `Bufs`, the layout `CONST` of `shaders/module.wgsl`, and their [`Bindings`] impl.
macro_rules! layout {
    ($(#[$m:meta])* $konst:ident, $bufs:ident, $params:ident, $name:literal,
     [$($b:ident: $acc:ident),* $(,)?]) => {
        $(#[$m])*
        #[derive(Clone, Copy, Default)]
        pub(in crate::backend::gpu) struct $bufs<'a> {
            $(pub(in crate::backend::gpu) $b: Option<&'a GpuBuf>,)*
        }

        pub(in crate::backend::gpu) const $konst: &Layout = &Layout {
            name: $name,
            source: include_str!(concat!("../../../../shaders/", $name, ".wgsl")),
            bindings: &[$((stringify!($b), Access::$acc)),*],
            params: std::mem::size_of::<$params>(),
        };

        // A parameter block fits its 256-byte slot of the ring, in whole 16-byte rows.
        const _: () = assert!(
            std::mem::size_of::<$params>() <= SLOT && std::mem::size_of::<$params>() % 16 == 0
        );

        impl Bindings for $bufs<'_> {
            type Params = $params;
            const LAYOUT: &'static Layout = $konst;
            fn slots(&self) -> [Option<&GpuBuf>; MAX_STORAGE] {
                let mut s = [None; MAX_STORAGE];
                for (slot, b) in s.iter_mut().zip([$(self.$b),*]) {
                    *slot = b;
                }
                s
            }
        }
    };
}

/// `matmul.wgsl`: C = α·op(A)·op(B) + β·C (tiled, batched, split-K), the matrix–vector products
/// (x in b, y in c) and the split-K sum (partials in a).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct MatmulParams {
    pub(in crate::backend::gpu) m: u32,
    pub(in crate::backend::gpu) n: u32,
    pub(in crate::backend::gpu) k: u32,
    /// Bit 0: A transposed, 1: B transposed, 2: split-K, 3: batched.
    pub(in crate::backend::gpu) flags: u32,
    pub(in crate::backend::gpu) off_a: u32,
    pub(in crate::backend::gpu) off_b: u32,
    pub(in crate::backend::gpu) off_c: u32,
    /// Split-K: one workgroup's K slice; the number of slices (gemm_reduce).
    pub(in crate::backend::gpu) slice: u32,
    pub(in crate::backend::gpu) slices: u32,
    /// Batched: the step between products.
    pub(in crate::backend::gpu) stride_a: u32,
    pub(in crate::backend::gpu) stride_b: u32,
    pub(in crate::backend::gpu) stride_c: u32,
    pub(in crate::backend::gpu) alpha: f32,
    pub(in crate::backend::gpu) beta: f32,
    pub(in crate::backend::gpu) pad: [u32; 2],
}
layout!(MATMUL, MatmulBufs, MatmulParams, "matmul", [a: Read, b: Read, c: ReadWrite]);

/// `reduce.wgsl`: dot products and non-finite counts in two passes.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct ReduceParams {
    pub(in crate::backend::gpu) len: u32,
    /// 0: x·y, 1: count of non-finite x.
    pub(in crate::backend::gpu) flags: u32,
    pub(in crate::backend::gpu) off_x: u32,
    pub(in crate::backend::gpu) off_y: u32,
    pub(in crate::backend::gpu) off_out: u32,
    pub(in crate::backend::gpu) pad: [u32; 3],
}
layout!(REDUCE, ReduceBufs, ReduceParams, "reduce", [x: Read, y: Read, out: ReadWrite]);

/// `vector.wgsl`: axpy, scale, rsqrt, fill, column sums, batched transposes (x → y).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct VectorParams {
    pub(in crate::backend::gpu) len: u32,
    pub(in crate::backend::gpu) rows: u32,
    pub(in crate::backend::gpu) cols: u32,
    pub(in crate::backend::gpu) off_x: u32,
    pub(in crate::backend::gpu) off_y: u32,
    pub(in crate::backend::gpu) alpha: f32,
    pub(in crate::backend::gpu) beta: f32,
    pub(in crate::backend::gpu) pad: u32,
}
layout!(VECTOR, VectorBufs, VectorParams, "vector", [x: Read, y: ReadWrite]);

/// `adam.wgsl`: Adam's moments and update.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct AdamParams {
    pub(in crate::backend::gpu) len: u32,
    pub(in crate::backend::gpu) beta1: f32,
    pub(in crate::backend::gpu) beta2: f32,
    pub(in crate::backend::gpu) lr: f32,
    pub(in crate::backend::gpu) c1: f32,
    pub(in crate::backend::gpu) c2: f32,
    pub(in crate::backend::gpu) eps: f32,
    pub(in crate::backend::gpu) pad: u32,
}
layout!(ADAM, AdamBufs, AdamParams, "adam", [g: Read, m: ReadWrite, v: ReadWrite, d: ReadWrite]);

/// `act.wgsl`: bias and activation, its first and second derivatives, the activation in place.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct ActParams {
    pub(in crate::backend::gpu) len: u32,
    pub(in crate::backend::gpu) cols: u32,
    /// 0 none, 1 tanh, 2 relu, 3 silu, 4 gelu.
    pub(in crate::backend::gpu) act: u32,
    pub(in crate::backend::gpu) off_a: u32,
    pub(in crate::backend::gpu) off_g: u32,
    pub(in crate::backend::gpu) off_rg: u32,
    pub(in crate::backend::gpu) off_rz: u32,
    pub(in crate::backend::gpu) off_bias: u32,
    pub(in crate::backend::gpu) off_out: u32,
    pub(in crate::backend::gpu) pad: [u32; 3],
}
layout!(ACT, ActBufs, ActParams, "act", [
    a: Read, g: Read, rg: Read, rz: Read, bias: Read, out: ReadWrite,
]);

/// `conv.wgsl`: the convolution's im2col and its adjoint (src → dst), NHWC geometry; the window
/// (`kernel`, `stride`, `padding`) and the output size (`oh`, `ow`) as values (the 3×3/1/1 entry
/// points ignore them).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct ConvParams {
    pub(in crate::backend::gpu) len: u32,
    pub(in crate::backend::gpu) h: u32,
    pub(in crate::backend::gpu) w: u32,
    pub(in crate::backend::gpu) c: u32,
    pub(in crate::backend::gpu) samples: u32,
    pub(in crate::backend::gpu) off_src: u32,
    pub(in crate::backend::gpu) off_dst: u32,
    pub(in crate::backend::gpu) beta: f32,
    pub(in crate::backend::gpu) kernel: u32,
    pub(in crate::backend::gpu) stride: u32,
    pub(in crate::backend::gpu) padding: u32,
    pub(in crate::backend::gpu) oh: u32,
    pub(in crate::backend::gpu) ow: u32,
    pub(in crate::backend::gpu) spare: [u32; 3],
}
layout!(CONV, ConvBufs, ConvParams, "conv", [src: Read, dst: ReadWrite]);

/// `pool.wgsl`: 2×2 max pooling, and the gather and scatter at its arg-max.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct PoolParams {
    pub(in crate::backend::gpu) len: u32,
    pub(in crate::backend::gpu) h: u32,
    pub(in crate::backend::gpu) w: u32,
    pub(in crate::backend::gpu) c: u32,
    pub(in crate::backend::gpu) off_idx: u32,
    pub(in crate::backend::gpu) off_src: u32,
    pub(in crate::backend::gpu) off_out: u32,
    pub(in crate::backend::gpu) off_idx_out: u32,
}
layout!(POOL, PoolBufs, PoolParams, "pool", [
    idx: Read, src: Read, out: ReadWrite, idx_out: ReadWrite,
]);

/// `loss.wgsl`: the loss's gradient and statistics, and its Hessian times R{y}.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct LossParams {
    pub(in crate::backend::gpu) rows: u32,
    pub(in crate::backend::gpu) cols: u32,
    /// 0 MSE, 1 CE.
    pub(in crate::backend::gpu) kind: u32,
    pub(in crate::backend::gpu) off_y: u32,
    pub(in crate::backend::gpu) off_w: u32,
    pub(in crate::backend::gpu) off_grad: u32,
    pub(in crate::backend::gpu) scale: f32,
    pub(in crate::backend::gpu) pad: u32,
}
layout!(LOSS, LossBufs, LossParams, "loss", [
    y: Read, w: Read, grad: ReadWrite, stats: ReadWrite,
]);

/// `embed.wgsl`: the embedding, its gradient, the mean over positions and its adjoint.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct EmbedParams {
    pub(in crate::backend::gpu) len: u32,
    pub(in crate::backend::gpu) seq: u32,
    pub(in crate::backend::gpu) width: u32,
    pub(in crate::backend::gpu) masked: u32,
    pub(in crate::backend::gpu) off_ids: u32,
    pub(in crate::backend::gpu) off_src: u32,
    pub(in crate::backend::gpu) off_pos: u32,
    pub(in crate::backend::gpu) off_out: u32,
}
layout!(EMBED, EmbedBufs, EmbedParams, "embed", [
    ids: Read, order: Read, src: Read, out: ReadWrite,
]);

/// `layer_norm.wgsl`: LayerNorm, its VJP, JVP and R-VJP.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct LnParams {
    pub(in crate::backend::gpu) rows: u32,
    pub(in crate::backend::gpu) width: u32,
    pub(in crate::backend::gpu) off_x: u32,
    pub(in crate::backend::gpu) off_rx: u32,
    pub(in crate::backend::gpu) off_gamma: u32,
    pub(in crate::backend::gpu) off_beta: u32,
    pub(in crate::backend::gpu) off_vgamma: u32,
    pub(in crate::backend::gpu) off_vbeta: u32,
    pub(in crate::backend::gpu) off_dy: u32,
    pub(in crate::backend::gpu) off_rdy: u32,
    pub(in crate::backend::gpu) off_out: u32,
    pub(in crate::backend::gpu) off_prod: u32,
    pub(in crate::backend::gpu) eps: f32,
    pub(in crate::backend::gpu) pad: [u32; 3],
}
layout!(LAYER_NORM, LnBufs, LnParams, "layer_norm", [
    x: Read, rx: Read, theta: Read, v: Read, dy: Read, rdy: Read, out: ReadWrite, prod: ReadWrite,
]);

/// `attention.wgsl`: multi-head self-attention, its VJP, JVP and R-VJP.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(in crate::backend::gpu) struct AttnParams {
    pub(in crate::backend::gpu) seq: u32,
    pub(in crate::backend::gpu) head_dim: u32,
    pub(in crate::backend::gpu) heads: u32,
    pub(in crate::backend::gpu) masked: u32,
    pub(in crate::backend::gpu) len: u32,
    pub(in crate::backend::gpu) off_qkv: u32,
    pub(in crate::backend::gpu) off_ids: u32,
    pub(in crate::backend::gpu) off_probs: u32,
    pub(in crate::backend::gpu) off_rqkv: u32,
    pub(in crate::backend::gpu) off_dout: u32,
    pub(in crate::backend::gpu) off_rdout: u32,
    pub(in crate::backend::gpu) off_out: u32,
    pub(in crate::backend::gpu) off_aux: u32,
    pub(in crate::backend::gpu) scale: f32,
    pub(in crate::backend::gpu) pad: [u32; 2],
}
layout!(ATTENTION, AttnBufs, AttnParams, "attention", [
    qkv: Read, ids: Read, probs: Read, rqkv: Read, dout: Read, rdout: Read,
    out: ReadWrite, aux: ReadWrite,
]);

/// Every module, in the order their bind-group layouts are built.
pub(in crate::backend::gpu) const LAYOUTS: &[&Layout] = &[
    MATMUL, REDUCE, VECTOR, ADAM, ACT, CONV, POOL, LOSS, EMBED, LAYER_NORM, ATTENTION,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Each module's WGSL declares exactly the bindings of its [`Layout`] (names, access, order),
    /// then its uniform, and a Params struct of `params` bytes (4 per field); at most 8 storage
    /// buffers each.
    #[test]
    fn wgsl_bindings_match_the_rust_layouts() {
        for l in LAYOUTS {
            assert!(l.bindings.len() <= MAX_STORAGE, "{}", l.name);
            let decl: Vec<(usize, String)> = l
                .source
                .lines()
                .filter_map(|s| s.strip_prefix("@group(0) @binding("))
                .map(|s| {
                    let (i, rest) = s.split_once(')').unwrap();
                    (i.parse().unwrap(), rest.trim().to_string())
                })
                .collect();
            assert_eq!(decl.len(), l.bindings.len() + 1, "{}: {decl:?}", l.name);
            for (i, (name, acc)) in l.bindings.iter().enumerate() {
                let mode = match acc {
                    Access::Read => "read",
                    Access::ReadWrite => "read_write",
                };
                let want = format!("var<storage, {mode}> {name}: array<f32>;");
                assert_eq!(decl[i], (i, want), "{}", l.name);
            }
            let n = l.bindings.len();
            let (i, uniform) = &decl[n];
            assert_eq!(*i, n, "{}", l.name);
            let ty = uniform
                .strip_prefix("var<uniform> P: ")
                .and_then(|s| s.strip_suffix(';'))
                .unwrap_or_else(|| panic!("{}: {uniform}", l.name));
            let body = l
                .source
                .split_once(&format!("struct {ty} {{"))
                .and_then(|(_, b)| b.split_once('}'))
                .unwrap_or_else(|| panic!("{}: no struct {ty}", l.name))
                .0;
            let fields = body
                .lines()
                .filter(|s| s.trim_end().ends_with("u32,") || s.trim_end().ends_with("f32,"))
                .count();
            assert_eq!(4 * fields, l.params, "{}: {ty}", l.name);
        }
    }
}
