//! The table of kernels: every WGSL entry point the backend dispatches ([`Kernel`]), the module
//! (`shaders/*.wgsl`) it lives in, the parameter block every kernel reads ([`Params`]), and the
//! one bind-group layout and the pipelines built from them when a device opens.

use std::borrow::Cow;
use std::collections::HashMap;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Params {
    pub(super) m: u32,
    pub(super) n: u32,
    pub(super) k: u32,
    pub(super) flags: u32,
    pub(super) off_a: u32,
    pub(super) off_b: u32,
    pub(super) off_c: u32,
    pub(super) off_d: u32,
    pub(super) off_out: u32,
    pub(super) len: u32,
    pub(super) aux: u32,
    pub(super) aux2: u32,
    pub(super) alpha: f32,
    pub(super) beta: f32,
    pub(super) scale: f32,
    pub(super) pad: f32,
    pub(super) off_e: u32,
    pub(super) off_f: u32,
    pub(super) off_out2: u32,
    pub(super) pad2: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Kernel {
    AdamMoments,
    AdamUpdate,
    Matmul,
    GemmReduce,
    GemvRows,
    GemvCols,
    BiasAct,
    ActD1,
    ActD2,
    Axpy,
    Scale,
    Rsqrt,
    Fill,
    ColSum,
    LossGrad,
    LossHess,
    ReducePartial,
    ReduceFinal,
    ActInplace,
    Im2col,
    Col2im,
    MaxPool2,
    PoolGather,
    PoolScatter,
    TransposeBatch,
    Embed,
    EmbedGrad,
    SeqMean,
    SeqMeanAdjoint,
    LayerNorm,
    LayerNormVjp,
    LayerNormJvp,
    LayerNormRvjp,
    Attention,
    AttentionVjpRows,
    AttentionVjpCols,
    AttentionJvp,
    AttentionRvjpRows,
    AttentionRvjpCols,
}

pub(super) const KERNELS: &[(Kernel, &str, &str)] = &[
    (Kernel::Matmul, "matmul", "matmul"),
    (Kernel::GemvRows, "matmul", "gemv_rows"),
    (Kernel::GemvCols, "matmul", "gemv_cols"),
    (Kernel::GemmReduce, "matmul", "gemm_reduce"),
    (Kernel::BiasAct, "elementwise", "bias_act"),
    (Kernel::ActD1, "elementwise", "act_d1_mul"),
    (Kernel::ActD2, "elementwise", "act_d2_r"),
    (Kernel::Axpy, "elementwise", "axpy"),
    (Kernel::Scale, "elementwise", "scale"),
    (Kernel::Rsqrt, "elementwise", "rsqrt"),
    (Kernel::AdamMoments, "elementwise", "adam_moments"),
    (Kernel::AdamUpdate, "elementwise", "adam_update"),
    (Kernel::Fill, "elementwise", "fill"),
    (Kernel::ColSum, "elementwise", "col_sum"),
    (Kernel::LossGrad, "loss", "loss_grad"),
    (Kernel::LossHess, "loss", "loss_hess_mul"),
    (Kernel::ReducePartial, "reduce", "reduce_partial"),
    (Kernel::ReduceFinal, "reduce", "reduce_final"),
    (Kernel::ActInplace, "conv", "act_inplace"),
    (Kernel::Im2col, "conv", "im2col3x3"),
    (Kernel::Col2im, "conv", "col2im3x3"),
    (Kernel::MaxPool2, "conv", "maxpool2"),
    (Kernel::PoolGather, "conv", "pool2_gather"),
    (Kernel::PoolScatter, "conv", "pool2_scatter"),
    (Kernel::TransposeBatch, "conv", "transpose_batch"),
    (Kernel::Embed, "seq", "embed"),
    (Kernel::EmbedGrad, "seq", "embed_grad"),
    (Kernel::SeqMean, "seq", "seq_mean"),
    (Kernel::SeqMeanAdjoint, "seq", "seq_mean_adjoint"),
    (Kernel::LayerNorm, "seq", "layer_norm"),
    (Kernel::LayerNormVjp, "seq", "layer_norm_vjp"),
    (Kernel::LayerNormJvp, "seq", "layer_norm_jvp"),
    (Kernel::LayerNormRvjp, "seq", "layer_norm_rvjp"),
    (Kernel::Attention, "seq", "attention"),
    (Kernel::AttentionVjpRows, "seq", "attention_vjp_rows"),
    (Kernel::AttentionVjpCols, "seq", "attention_vjp_cols"),
    (Kernel::AttentionJvp, "seq", "attention_jvp"),
    (Kernel::AttentionRvjpRows, "seq", "attention_rvjp_rows"),
    (Kernel::AttentionRvjpCols, "seq", "attention_rvjp_cols"),
];

/// The WGSL modules by name, each compiled with `common.wgsl` prepended.
pub(super) const MODULES: &[(&str, &str)] = &[
    ("matmul", include_str!("../../../shaders/matmul.wgsl")),
    (
        "elementwise",
        include_str!("../../../shaders/elementwise.wgsl"),
    ),
    ("loss", include_str!("../../../shaders/loss.wgsl")),
    ("reduce", include_str!("../../../shaders/reduce.wgsl")),
    ("conv", include_str!("../../../shaders/conv.wgsl")),
    ("seq", include_str!("../../../shaders/seq.wgsl")),
];

pub(super) fn shader_source(body: &str) -> String {
    format!("{}\n{}", include_str!("../../../shaders/common.wgsl"), body)
}

/// The one bind-group layout every kernel shares — storage slots a, b, c, d (bindings 0–3,
/// read-only), out and out2 (4, 5), e and f (7, 8, read-only), and the uniform parameter block at
/// a dynamic offset (6) — and a pipeline for each entry of [`KERNELS`].
pub(super) fn build_kernels(
    device: &wgpu::Device,
) -> (
    wgpu::BindGroupLayout,
    HashMap<Kernel, wgpu::ComputePipeline>,
) {
    let entry = |binding: u32, ty: wgpu::BindingType| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty,
        count: None,
    };
    let storage = |read_only| wgpu::BindingType::Buffer {
        ty: wgpu::BufferBindingType::Storage { read_only },
        has_dynamic_offset: false,
        min_binding_size: None,
    };
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("kernels"),
        entries: &[
            entry(0, storage(true)),
            entry(1, storage(true)),
            entry(2, storage(true)),
            entry(3, storage(true)),
            entry(4, storage(false)),
            entry(5, storage(false)),
            entry(7, storage(true)),
            entry(8, storage(true)),
            entry(
                6,
                wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: wgpu::BufferSize::new(std::mem::size_of::<Params>() as u64),
                },
            ),
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("kernels"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let mut modules = HashMap::new();
    for &(name, body) in MODULES {
        let m = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(Cow::Owned(shader_source(body))),
        });
        modules.insert(name, m);
    }
    let mut pipelines = HashMap::new();
    for &(k, module, entry_point) in KERNELS {
        let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry_point),
            layout: Some(&pipeline_layout),
            module: &modules[module],
            entry_point: Some(entry_point),
            compilation_options: Default::default(),
            cache: None,
        });
        pipelines.insert(k, p);
    }
    (layout, pipelines)
}
