//! The table of kernels: every WGSL entry point the backend dispatches ([`Kernel`]) and the
//! module (`shaders/*.wgsl`) it lives in, each module with its own bind-group layout and
//! parameter block ([`layouts`]), and the bind-group layouts and pipelines built from them when a
//! device opens.

mod layouts;

pub(super) use layouts::*;
use std::borrow::Cow;
use std::collections::HashMap;

/// A dispatchable entry point.
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
    Im2colGeneral,
    Col2imGeneral,
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

/// Each kernel's module and entry point.
pub(super) const KERNELS: &[(Kernel, &Layout, &str)] = &[
    (Kernel::Matmul, MATMUL, "matmul"),
    (Kernel::GemvRows, MATMUL, "gemv_rows"),
    (Kernel::GemvCols, MATMUL, "gemv_cols"),
    (Kernel::GemmReduce, MATMUL, "gemm_reduce"),
    (Kernel::BiasAct, ACT, "bias_act"),
    (Kernel::ActD1, ACT, "act_d1_mul"),
    (Kernel::ActD2, ACT, "act_d2_r"),
    (Kernel::Axpy, VECTOR, "axpy"),
    (Kernel::Scale, VECTOR, "scale"),
    (Kernel::Rsqrt, VECTOR, "rsqrt"),
    (Kernel::AdamMoments, ADAM, "adam_moments"),
    (Kernel::AdamUpdate, ADAM, "adam_update"),
    (Kernel::Fill, VECTOR, "fill"),
    (Kernel::ColSum, VECTOR, "col_sum"),
    (Kernel::LossGrad, LOSS, "loss_grad"),
    (Kernel::LossHess, LOSS, "loss_hess_mul"),
    (Kernel::ReducePartial, REDUCE, "reduce_partial"),
    (Kernel::ReduceFinal, REDUCE, "reduce_final"),
    (Kernel::ActInplace, ACT, "act_inplace"),
    (Kernel::Im2col, CONV, "im2col3x3"),
    (Kernel::Col2im, CONV, "col2im3x3"),
    (Kernel::Im2colGeneral, CONV, "im2col"),
    (Kernel::Col2imGeneral, CONV, "col2im"),
    (Kernel::MaxPool2, POOL, "maxpool2"),
    (Kernel::PoolGather, POOL, "pool2_gather"),
    (Kernel::PoolScatter, POOL, "pool2_scatter"),
    (Kernel::TransposeBatch, VECTOR, "transpose_batch"),
    (Kernel::Embed, EMBED, "embed"),
    (Kernel::EmbedGrad, EMBED, "embed_grad"),
    (Kernel::SeqMean, EMBED, "seq_mean"),
    (Kernel::SeqMeanAdjoint, EMBED, "seq_mean_adjoint"),
    (Kernel::LayerNorm, LAYER_NORM, "layer_norm"),
    (Kernel::LayerNormVjp, LAYER_NORM, "layer_norm_vjp"),
    (Kernel::LayerNormJvp, LAYER_NORM, "layer_norm_jvp"),
    (Kernel::LayerNormRvjp, LAYER_NORM, "layer_norm_rvjp"),
    (Kernel::Attention, ATTENTION, "attention"),
    (Kernel::AttentionVjpRows, ATTENTION, "attention_vjp_rows"),
    (Kernel::AttentionVjpCols, ATTENTION, "attention_vjp_cols"),
    (Kernel::AttentionJvp, ATTENTION, "attention_jvp"),
    (Kernel::AttentionRvjpRows, ATTENTION, "attention_rvjp_rows"),
    (Kernel::AttentionRvjpCols, ATTENTION, "attention_rvjp_cols"),
];

/// A module's source: `common.wgsl` (helpers, no bindings) prepended to its own.
pub(super) fn shader_source(body: &str) -> String {
    format!("{}\n{}", include_str!("../../../shaders/common.wgsl"), body)
}

/// The built kernels: a bind-group layout per module (in the order of [`LAYOUTS`]), and each
/// kernel's pipeline with its module's index there.
pub(super) struct Built {
    pub(super) layouts: Vec<wgpu::BindGroupLayout>,
    pub(super) pipelines: HashMap<Kernel, (wgpu::ComputePipeline, usize)>,
}

/// Per module of [`LAYOUTS`]: its bind-group layout — the storage buffers at bindings 0..n as
/// declared (read-only or read-write), the uniform parameter block at binding n with a dynamic
/// offset — its pipeline layout and shader module; then a pipeline for each entry of [`KERNELS`].
pub(super) fn build_kernels(device: &wgpu::Device) -> Built {
    let entry = |binding: usize, ty: wgpu::BindingType| wgpu::BindGroupLayoutEntry {
        binding: binding as u32,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty,
        count: None,
    };
    let mut layouts = Vec::new();
    let mut modules = Vec::new();
    for l in LAYOUTS {
        let entries: Vec<_> = l
            .bindings
            .iter()
            .enumerate()
            .map(|(i, &(_, access))| {
                let ty = wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                };
                entry(i, ty)
            })
            .chain(std::iter::once(entry(
                l.bindings.len(),
                wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: wgpu::BufferSize::new(l.params as u64),
                },
            )))
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(l.name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(l.name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(l.name),
            source: wgpu::ShaderSource::Wgsl(Cow::Owned(shader_source(l.source))),
        });
        layouts.push(layout);
        modules.push((pipeline_layout, module));
    }
    let mut pipelines = HashMap::new();
    for &(k, layout, entry_point) in KERNELS {
        let Some(i) = LAYOUTS.iter().position(|l| l.name == layout.name) else {
            continue; // every layout is in LAYOUTS (the test below)
        };
        let (pipeline_layout, module) = &modules[i];
        let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry_point),
            layout: Some(pipeline_layout),
            module,
            entry_point: Some(entry_point),
            compilation_options: Default::default(),
            cache: None,
        });
        pipelines.insert(k, (p, i));
    }
    Built { layouts, pipelines }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel's module is built, and holds its entry point.
    #[test]
    fn every_kernel_is_in_its_module() {
        for &(k, layout, entry_point) in KERNELS {
            assert!(LAYOUTS.iter().any(|l| l.name == layout.name), "{k:?}");
            assert!(
                layout.source.contains(&format!("fn {entry_point}(")),
                "{k:?}: no {entry_point} in {}",
                layout.name
            );
        }
    }
}
