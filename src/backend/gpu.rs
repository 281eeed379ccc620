//! The wgpu backend: every primitive of [`Backend`] as a WGSL compute kernel (`shaders/*.wgsl`),
//! f32 throughout, portable to browser WebGPU (≤ 256 invocations per workgroup, no f64, no atomics
//! or subgroups, storage bindings within the default 128 MiB, 8 storage buffers per bind group:
//! WebGPU's default per-stage limit).
//!
//! Work is *recorded*, not run: each call appends a dispatch to one command encoder and its
//! parameters to a staging block; nothing is submitted until a value is read back (a dot product,
//! a download) or the parameter ring fills. A whole HVP — forward caches are reused; R-forward and
//! R-backward over all chunks — is therefore one submit, and Lanczos reads back only scalars per
//! step. Pipelines are created once; one bind-group layout serves every kernel, so bind groups are
//! cached by the identity of their buffers and reused across steps.
//!
//! Waiting on the GPU (a read-back, an error scope) blocks natively (pollster). In a browser a
//! wasm stack cannot block: there the wait suspends it with JSPI (WebAssembly JS Promise
//! Integration) until the GPU's promise settles, which only works inside a JSPI context — the
//! compute worker of the web app enters one (`src/app/web.rs`). Elsewhere a wait fails with an
//! error that says so.

use super::{Activation, Attn, Backend, Ln, LossKind, Nhwc, Precision, Seq, check_range};
use crate::error::{Error, Result};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Bytes per parameter slot: the minimum uniform-buffer offset alignment WebGPU guarantees.
const SLOT: usize = 256;
/// Dispatches recorded before a forced submit.
const SLOTS: usize = 4096;
/// Scalars that one read-back can collect (row norms of a block, …).
const RESULTS: usize = 1024;
/// Workgroups of the first reduction pass.
const PARTIALS: u32 = 256;
/// Bind groups kept before the cache is cleared (it only grows when new buffers appear).
const BIND_GROUP_CACHE: usize = 512;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    off_a: u32,
    off_b: u32,
    off_c: u32,
    off_d: u32,
    off_out: u32,
    len: u32,
    aux: u32,
    aux2: u32,
    alpha: f32,
    beta: f32,
    scale: f32,
    pad: f32,
    off_e: u32,
    off_f: u32,
    off_out2: u32,
    pad2: u32,
}

/// Split-K for a matmul: (slices, slice length), or None. Any K longer than GEMM_K_SLICE is
/// split (lavapipe); a product with few output tiles and a long K is split for parallelism too,
/// aiming at ≥ 256 workgroups (an H200 has 132 SMs) with slices of ≥ 512 (a multiple of 16,
/// ≤ GEMM_K_SLICE); e.g. a 20×10 Gram matrix over p = 199,210 → 390 slices of 512, Gᵀ·X of
/// 200×784 over 5,000 samples (52 tiles) → 5 slices of 1,008.
fn split_k(tiles: usize, k: usize) -> Option<(usize, usize)> {
    const MIN_SLICE: usize = 512;
    if tiles == 0 {
        return None;
    }
    let parallel = if tiles < 128 && k >= 2 * MIN_SLICE {
        256usize.div_ceil(tiles).min(k / MIN_SLICE)
    } else {
        1
    };
    let want = parallel.max(k.div_ceil(GEMM_K_SLICE));
    if want <= 1 {
        return None;
    }
    let len = k.div_ceil(want).next_multiple_of(16);
    let slices = k.div_ceil(len);
    (slices > 1 && slices <= 65535).then_some((slices, len))
}

/// The longest K one matmul dispatch runs: lavapipe (llvmpipe) stops a shader loop after about
/// 3,640 iterations (a 3×60,000 · 60,000×2 product of ones came back as 58,255 everywhere), and
/// the matmul's K loop advances 16 per iteration. Longer products are split (see `split_k`).
const GEMM_K_SLICE: usize = 16384;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kernel {
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

const KERNELS: &[(Kernel, &str, &str)] = &[
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
const MODULES: &[(&str, &str)] = &[
    ("matmul", include_str!("../../shaders/matmul.wgsl")),
    (
        "elementwise",
        include_str!("../../shaders/elementwise.wgsl"),
    ),
    ("loss", include_str!("../../shaders/loss.wgsl")),
    ("reduce", include_str!("../../shaders/reduce.wgsl")),
    ("conv", include_str!("../../shaders/conv.wgsl")),
    ("seq", include_str!("../../shaders/seq.wgsl")),
];

fn shader_source(body: &str) -> String {
    format!("{}\n{}", include_str!("../../shaders/common.wgsl"), body)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A device buffer of f32.
pub struct GpuBuf {
    buf: wgpu::Buffer,
    len: usize,
    id: u64,
}

/// The network's input on the GPU: a dense buffer (rows×cols, row-major).
#[derive(Debug)]
pub struct GpuInput {
    buf: GpuBuf,
    cols: usize,
}

impl std::fmt::Debug for GpuBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuf({} × f32)", self.len)
    }
}

struct State {
    encoder: Option<wgpu::CommandEncoder>,
    params: Vec<u8>,
    slots: usize,
    bind_groups: HashMap<[u64; 8], wgpu::BindGroup>,
    submits: u64,
    /// Read-backs, bytes read back, buffers made from host data and their bytes.
    readbacks: u64,
    bytes_read: u64,
    uploads: u64,
    bytes_uploaded: u64,
    allocations: u64,
    bytes_allocated: u64,
    dispatches: u64,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    layout: wgpu::BindGroupLayout,
    pipelines: HashMap<Kernel, wgpu::ComputePipeline>,
    params: wgpu::Buffer,
    dummy: [GpuBuf; 3],
    partials: GpuBuf,
    results: GpuBuf,
    /// The attention backward kernels' per-(sequence, head, query) scalars (3 each), grown to
    /// the largest pass seen; locked from the first kernel of a pass to the second, so two
    /// threads' passes do not interleave on it.
    attn_scratch: Mutex<Option<GpuBuf>>,
    /// The partial products of the parallel split-K matmul (see `split_k`).
    gemm_scratch: Mutex<Option<GpuBuf>>,
    readback: wgpu::Buffer,
    max_binding: u64,
    error: Arc<Mutex<Option<String>>>,
    state: Mutex<State>,
    /// Held from recording a reduction to reading its result: `partials` and `results` are
    /// shared, so two threads' reductions must not interleave.
    reduce_lock: Mutex<()>,
    /// Held for a whole read-back: `readback` is shared and must not be mapped while another
    /// thread submits a copy into it.
    read_lock: Mutex<()>,
}

/// What [`GpuBackend::new`] may pick.
#[derive(Clone, Copy, Debug)]
pub struct GpuOptions {
    /// Accept a software adapter (lavapipe/llvmpipe, WARP, SwiftShader).
    pub allow_software: bool,
}

/// The wgpu backend (cheap to clone: the device is shared).
#[derive(Clone)]
pub struct GpuBackend {
    inner: Arc<Inner>,
}

fn gpu_err(msg: impl Into<String>) -> Error {
    Error::Backend(msg.into())
}

/// Wait for a GPU future: block the thread (native).
#[cfg(not(target_arch = "wasm32"))]
fn wait<F: std::future::Future>(f: F) -> Result<F::Output> {
    Ok(pollster::block_on(f))
}

/// Wait for a GPU future in a browser: suspend this wasm stack (JSPI) until it completes, while
/// the event loop runs on (that is where WebGPU's promises settle).
#[cfg(target_arch = "wasm32")]
#[allow(deprecated)] // wasm-bindgen marks its JSPI support experimental.
fn wait<F>(f: F) -> Result<F::Output>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    use std::cell::RefCell;
    use std::rc::Rc;
    let slot = Rc::new(RefCell::new(None));
    let s = slot.clone();
    let promise = wasm_bindgen_futures::future_to_promise(async move {
        let out = f.await;
        *s.borrow_mut() = Some(out);
        Ok(wasm_bindgen::JsValue::UNDEFINED)
    });
    wasm_bindgen_futures::jspi_block_on_promise(&promise).map_err(|e| {
        gpu_err(format!(
            "waiting for WebGPU needs a JSPI context (WebAssembly JS Promise Integration), which this call is not in: {e:?}"
        ))
    })?;
    slot.borrow_mut()
        .take()
        .ok_or_else(|| gpu_err("a WebGPU promise settled without a value"))
}

/// The result of a buffer mapping; in a browser also a future (the map callback fills it and
/// wakes the waiter).
type MapSlot = Arc<
    Mutex<(
        Option<std::result::Result<(), wgpu::BufferAsyncError>>,
        Option<std::task::Waker>,
    )>,
>;

#[cfg(target_arch = "wasm32")]
struct MapDone(MapSlot);

#[cfg(target_arch = "wasm32")]
impl std::future::Future for MapDone {
    type Output = std::result::Result<(), String>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let Ok(mut g) = self.0.lock() else {
            return std::task::Poll::Ready(Err("map slot poisoned".into()));
        };
        match g.0.take() {
            Some(r) => std::task::Poll::Ready(r.map_err(|e| e.to_string())),
            None => {
                g.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}

fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "software (CPU)",
        wgpu::DeviceType::Other => "other",
    }
}

impl GpuBackend {
    /// Open the browser's WebGPU adapter (high-performance preference) from a page or a worker.
    /// A fallback (software) adapter only with `allow_software`. Building the kernels waits on
    /// WebGPU, so this must run inside a JSPI context (see the module's note).
    #[cfg(target_arch = "wasm32")]
    pub async fn new_web(opts: GpuOptions) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::BROWSER_WEBGPU;
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| gpu_err(format!("this browser offers no WebGPU adapter: {e}")))?;
        let info = adapter.get_info();
        if info.device_type == wgpu::DeviceType::Cpu && !opts.allow_software {
            return Err(gpu_err(
                "the browser's WebGPU adapter is a software fallback, slower than computing on the CPU in wasm",
            ));
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("subspace-lab"),
                required_limits: wgpu::Limits::default(),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                gpu_err(format!(
                    "the WebGPU adapter refused a device with the default limits: {e}"
                ))
            })?;
        Self::on_device(device, queue, info)
    }

    /// Open the best adapter: a discrete GPU before an integrated, virtual or other one; a
    /// software adapter only with `allow_software`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(opts: GpuOptions) -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let rank = |t: wgpu::DeviceType| match t {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        let mut candidates: Vec<_> = adapters
            .into_iter()
            .filter(|a| {
                a.get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
            })
            .collect();
        candidates.sort_by_key(|a| rank(a.get_info().device_type));
        let software_only = candidates
            .first()
            .is_some_and(|a| a.get_info().device_type == wgpu::DeviceType::Cpu);
        let adapter = match candidates.into_iter().next() {
            None => {
                return Err(gpu_err(
                    "no GPU adapter with compute shaders found (install a Vulkan/Metal/DX12 driver; on Debian \
                     `apt-get install mesa-vulkan-drivers` gives the software one), or use --backend cpu",
                ));
            }
            Some(a) if software_only && !opts.allow_software => {
                return Err(gpu_err(format!(
                    "only a software adapter ({}) is available; it is over 100× slower than the CPU backend here: \
                     use --backend gpu to use it anyway, or --backend cpu",
                    a.get_info().name
                )));
            }
            Some(a) => a,
        };
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("subspace-lab"),
            required_limits: wgpu::Limits::default(),
            ..Default::default()
        }))
        .map_err(|e| {
            gpu_err(format!(
                "adapter {} refused a device with WebGPU's default limits: {e}",
                info.name
            ))
        })?;
        Self::on_device(device, queue, info)
    }

    /// Compute on a device opened elsewhere: the desktop app's renderer shares its device this
    /// way. The device's uncaptured errors and loss are recorded here (and reported by the next
    /// call) instead of wgpu's default panic.
    pub fn on_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
    ) -> Result<Self> {
        let error = Arc::new(Mutex::new(None::<String>));
        {
            let e = error.clone();
            device.on_uncaptured_error(Arc::new(move |err: wgpu::Error| {
                if let Ok(mut slot) = e.lock() {
                    slot.get_or_insert_with(|| err.to_string());
                }
            }));
            let e = error.clone();
            device.set_device_lost_callback(move |reason, msg| {
                if let Ok(mut slot) = e.lock() {
                    slot.get_or_insert_with(|| format!("device lost ({reason:?}): {msg}"));
                }
            });
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
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
                        min_binding_size: wgpu::BufferSize::new(
                            std::mem::size_of::<Params>() as u64
                        ),
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
        if let Some(e) = wait(scope.pop())? {
            return Err(gpu_err(format!(
                "the WGSL kernels do not compile on {}: {e}",
                info.name
            )));
        }
        let mk = |len: usize| -> GpuBuf {
            GpuBuf {
                buf: device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: (len.max(1) * 4) as u64,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                len,
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            }
        };
        let inner = Inner {
            params: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: (SLOTS * SLOT) as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            dummy: [mk(1), mk(1), mk(1)],
            partials: mk(PARTIALS as usize),
            results: mk(RESULTS),
            attn_scratch: Mutex::new(None),
            gemm_scratch: Mutex::new(None),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: (RESULTS * 4) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            max_binding: device.limits().max_storage_buffer_binding_size,
            device,
            queue,
            info,
            layout,
            pipelines,
            error,
            state: Mutex::new(State {
                encoder: None,
                params: vec![0; SLOTS * SLOT],
                slots: 0,
                bind_groups: HashMap::new(),
                submits: 0,
                readbacks: 0,
                bytes_read: 0,
                uploads: 0,
                allocations: 0,
                bytes_allocated: 0,
                dispatches: 0,
                bytes_uploaded: 0,
            }),
            reduce_lock: Mutex::new(()),
            read_lock: Mutex::new(()),
        };
        Ok(GpuBackend {
            inner: Arc::new(inner),
        })
    }

    /// Adapter name, type and graphics API, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) — software (CPU), Vulkan`.
    pub fn adapter_description(&self) -> String {
        let i = &self.inner.info;
        let name = if i.name.is_empty() {
            "name hidden by the browser"
        } else {
            &i.name
        };
        let kind = match (i.backend, i.device_type) {
            // A browser only says whether its adapter is a software fallback.
            (wgpu::Backend::BrowserWebGpu, wgpu::DeviceType::Other) => "GPU",
            (_, t) => device_type_name(t),
        };
        format!("{name} — {kind}, {:?}", i.backend)
    }

    pub fn is_software(&self) -> bool {
        self.inner.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Command buffers submitted so far (the HVP test counts them).
    pub fn submits(&self) -> u64 {
        self.state().map(|s| s.submits).unwrap_or(0)
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.inner
            .state
            .lock()
            .map_err(|_| gpu_err("GPU state poisoned by an earlier panic"))
    }

    fn reduce_guard(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.inner
            .reduce_lock
            .lock()
            .map_err(|_| gpu_err("GPU reduction lock poisoned"))
    }

    fn check_error(&self) -> Result<()> {
        let e = self
            .inner
            .error
            .lock()
            .map_err(|_| gpu_err("GPU error slot poisoned"))?;
        match &*e {
            Some(msg) => Err(gpu_err(format!("GPU error: {msg}"))),
            None => Ok(()),
        }
    }

    fn make_buffer(&self, len: usize, data: Option<&[f32]>) -> Result<GpuBuf> {
        let bytes = (len.max(1) * 4) as u64;
        if bytes > self.inner.max_binding {
            return Err(gpu_err(format!(
                "a buffer of {:.1} MiB exceeds this adapter's storage binding limit of {:.0} MiB: use fewer --samples, \
                 a smaller --k, or --backend cpu",
                bytes as f64 / 1048576.0,
                self.inner.max_binding as f64 / 1048576.0
            )));
        }
        let d = &self.inner.device;
        // In a browser a scope costs a round trip to the GPU process per buffer: there an
        // out-of-memory error goes to the device's uncaptured-error handler instead, and the next
        // read-back reports it.
        #[cfg(not(target_arch = "wasm32"))]
        let scope = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let buf = match data {
            Some(data) if !data.is_empty() => {
                d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: None,
                    contents: bytemuck::cast_slice(data),
                    usage,
                })
            }
            _ => d.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: bytes,
                usage,
                mapped_at_creation: false,
            }),
        };
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = wait(scope.pop())? {
            return Err(gpu_err(format!(
                "out of GPU memory allocating {:.1} MiB: {e}",
                bytes as f64 / 1048576.0
            )));
        }
        {
            let mut st = self.state()?;
            st.allocations += 1;
            st.bytes_allocated += bytes;
        }
        Ok(GpuBuf {
            buf,
            len,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Record one dispatch. `bufs`: slots a, b, c, d (read-only) and out, out2 (read-write).
    fn dispatch(
        &self,
        k: Kernel,
        bufs: [Option<&GpuBuf>; 6],
        p: Params,
        groups: [u32; 3],
    ) -> Result<()> {
        let [a, b, c, d, o, o2] = bufs;
        self.dispatch8(k, [a, b, c, d, o, o2, None, None], p, groups)
    }

    /// Record one dispatch with all eight storage slots: a, b, c, d (read-only), out, out2
    /// (read-write), then e, f (read-only).
    fn dispatch8(
        &self,
        k: Kernel,
        bufs: [Option<&GpuBuf>; 8],
        p: Params,
        groups: [u32; 3],
    ) -> Result<()> {
        if groups.contains(&0) {
            return Ok(());
        }
        let inner = &*self.inner;
        let mut st = self.state()?;
        if st.slots == SLOTS {
            self.submit(&mut st)?;
        }
        let slot = st.slots;
        st.params[slot * SLOT..slot * SLOT + std::mem::size_of::<Params>()]
            .copy_from_slice(bytemuck::bytes_of(&p));
        st.slots += 1;
        st.dispatches += 1;
        let pick = |i: usize| -> &GpuBuf {
            match bufs[i] {
                Some(b) => b,
                None if i == 4 || i == 5 => &inner.dummy[i - 3],
                None => &inner.dummy[0],
            }
        };
        let key: [u64; 8] = std::array::from_fn(|i| pick(i).id);
        if st.bind_groups.len() >= BIND_GROUP_CACHE && !st.bind_groups.contains_key(&key) {
            st.bind_groups.clear();
        }
        let State {
            encoder,
            bind_groups,
            ..
        } = &mut *st;
        let bg = bind_groups.entry(key).or_insert_with(|| {
            // Slots 0..6 are bindings 0..6; e and f are bindings 7 and 8 (6 is the uniform).
            let entries: Vec<wgpu::BindGroupEntry> = (0..8)
                .map(|i| wgpu::BindGroupEntry {
                    binding: if i < 6 { i as u32 } else { i as u32 + 1 },
                    resource: pick(i).buf.as_entire_binding(),
                })
                .chain(std::iter::once(wgpu::BindGroupEntry {
                    binding: 6,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &inner.params,
                        offset: 0,
                        size: wgpu::BufferSize::new(std::mem::size_of::<Params>() as u64),
                    }),
                }))
                .collect();
            inner.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &inner.layout,
                entries: &entries,
            })
        });
        let enc =
            encoder.get_or_insert_with(|| inner.device.create_command_encoder(&Default::default()));
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&inner.pipelines[&k]);
        pass.set_bind_group(0, &*bg, &[(slot * SLOT) as u32]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        Ok(())
    }

    /// Submit what is recorded: the parameter block first (queue writes land before the
    /// command buffer they precede), then the encoder.
    fn submit(&self, st: &mut State) -> Result<()> {
        let inner = &*self.inner;
        if st.slots > 0 {
            inner
                .queue
                .write_buffer(&inner.params, 0, &st.params[..st.slots * SLOT]);
        }
        if let Some(enc) = st.encoder.take() {
            inner.queue.submit(Some(enc.finish()));
            st.submits += 1;
        }
        st.slots = 0;
        self.check_error()
    }

    /// Copy `len` floats of `buf` from `off` to the host (submits everything recorded).
    fn read(&self, buf: &GpuBuf, off: usize, len: usize) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        let _g = inner
            .read_lock
            .lock()
            .map_err(|_| gpu_err("GPU read lock poisoned"))?;
        let bytes = (len * 4) as u64;
        let small = len <= RESULTS;
        let staging_owned;
        let staging = if small {
            &inner.readback
        } else {
            staging_owned = inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("download"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            {
                let mut st = self.state()?;
                st.allocations += 1;
                st.bytes_allocated += bytes;
            }
            &staging_owned
        };
        {
            let mut st = self.state()?;
            let enc = st
                .encoder
                .get_or_insert_with(|| inner.device.create_command_encoder(&Default::default()));
            enc.copy_buffer_to_buffer(&buf.buf, (off * 4) as u64, staging, 0, bytes);
            st.readbacks += 1;
            st.bytes_read += bytes;
            self.submit(&mut st)?;
        }
        let slot: MapSlot = Arc::new(Mutex::new((None, None)));
        let cb = slot.clone();
        staging.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            if let Ok(mut g) = cb.lock() {
                g.0 = Some(r);
                if let Some(w) = g.1.take() {
                    w.wake();
                }
            }
        });
        // Natively this runs the callback; in a browser it does nothing and the wait below
        // yields to the event loop until the mapping settles.
        inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_err(format!("waiting for the GPU: {e}")))?;
        #[cfg(not(target_arch = "wasm32"))]
        let mapped = match slot.lock().map(|mut g| g.0.take()) {
            Ok(Some(r)) => r.map_err(|e| e.to_string()),
            Ok(None) => Err("the GPU never answered a read-back (device lost?)".to_string()),
            Err(_) => Err("map slot poisoned".to_string()),
        };
        #[cfg(target_arch = "wasm32")]
        let mapped = wait(MapDone(slot))?;
        self.check_error()?;
        if let Err(e) = mapped {
            return Err(gpu_err(format!("mapping a read-back buffer: {e}")));
        }
        let out = {
            let view = staging
                .get_mapped_range(0..bytes)
                .map_err(|e| gpu_err(format!("reading back: {e:?}")))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// Run `f` with the attention scratch grown to at least `len` scalars, holding its lock
    /// (recording both kernels of a backward pass under it keeps another thread's pass from
    /// overwriting the scalars in between).
    fn with_attn_scratch<R>(&self, len: usize, f: impl FnOnce(&GpuBuf) -> Result<R>) -> Result<R> {
        let mut g = self
            .inner
            .attn_scratch
            .lock()
            .map_err(|_| gpu_err("GPU attention scratch poisoned"))?;
        if g.as_ref().is_none_or(|b| b.len < len) {
            // A smaller one still used by recorded work stays alive until that work is done.
            *g = Some(self.make_buffer(len, None)?);
        }
        match g.as_ref() {
            Some(b) => f(b),
            None => Err(gpu_err("GPU attention scratch missing")),
        }
    }

    /// Run `f` with the split-K scratch grown to at least `len` scalars, holding its lock.
    fn with_gemm_scratch<R>(&self, len: usize, f: impl FnOnce(&GpuBuf) -> Result<R>) -> Result<R> {
        let mut g = self
            .inner
            .gemm_scratch
            .lock()
            .map_err(|_| gpu_err("GPU matmul scratch poisoned"))?;
        if g.as_ref().is_none_or(|b| b.len < len) {
            *g = Some(self.make_buffer(len, None)?);
        }
        match g.as_ref() {
            Some(b) => f(b),
            None => Err(gpu_err("GPU matmul scratch missing")),
        }
    }

    fn groups_1d(n: usize) -> [u32; 3] {
        let g = n.div_ceil(256).max(1);
        let x = g.min(65535);
        [x as u32, g.div_ceil(x) as u32, 1]
    }

    /// Record reductions of `x[off..off+len]` (· `y` when given; else a count of non-finite
    /// values) into `results[slot]`.
    fn reduce_into(
        &self,
        x: &GpuBuf,
        x_off: usize,
        y: Option<(&GpuBuf, usize)>,
        len: usize,
        slot: usize,
    ) -> Result<()> {
        self.reduce_to(x, x_off, y, len, &self.inner.results, slot)
    }

    /// As `reduce_into`, the result written to `out[out_off]`.
    fn reduce_to(
        &self,
        x: &GpuBuf,
        x_off: usize,
        y: Option<(&GpuBuf, usize)>,
        len: usize,
        out: &GpuBuf,
        out_off: usize,
    ) -> Result<()> {
        let groups = (len.div_ceil(256) as u32).clamp(1, PARTIALS);
        let p = Params {
            off_a: x_off as u32,
            off_b: y.map_or(0, |(_, o)| o as u32),
            len: len as u32,
            flags: if y.is_some() { 0 } else { 1 },
            ..Default::default()
        };
        self.dispatch(
            Kernel::ReducePartial,
            [
                Some(x),
                y.map(|(b, _)| b),
                None,
                None,
                Some(&self.inner.partials),
                None,
            ],
            p,
            [groups, 1, 1],
        )?;
        let p2 = Params {
            len: groups,
            off_out: out_off as u32,
            ..Default::default()
        };
        self.dispatch(
            Kernel::ReduceFinal,
            [
                Some(&self.inner.partials),
                None,
                None,
                None,
                Some(out),
                None,
            ],
            p2,
            [1, 1, 1],
        )
    }
}

fn u(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| {
        gpu_err(format!(
            "{what} = {x} exceeds the GPU backend's 32-bit indexing"
        ))
    })
}

impl Backend for GpuBackend {
    type Buf = GpuBuf;
    type Input = GpuInput;

    fn name(&self) -> String {
        "gpu-f32".into()
    }
    fn precision(&self) -> Precision {
        Precision::F32
    }
    fn adapter(&self) -> Option<String> {
        Some(self.adapter_description())
    }
    /// The whole data set: the full-data activations are already this size, and a GPU runs a
    /// few large dispatches faster than many small ones (BENCHMARKS.md, H200: chunk 1000 against
    /// 5000).
    fn default_chunk(&self) -> usize {
        usize::MAX
    }
    fn preferred_block(&self) -> usize {
        usize::MAX
    }
    fn max_buffer_len(&self) -> usize {
        (self.inner.max_binding / 4) as usize
    }
    fn input(&self, x: &[f64], rows: usize, cols: usize) -> Result<GpuInput> {
        if rows.checked_mul(cols) != Some(x.len()) {
            return Err(Error::Shape(format!(
                "input of {} values is not {rows}×{cols}",
                x.len()
            )));
        }
        Ok(GpuInput {
            buf: self.upload(x)?,
            cols,
        })
    }

    fn input_gemm_nt(
        &self,
        x: &GpuInput,
        r0: usize,
        c: usize,
        n: usize,
        alpha: f64,
        b: &GpuBuf,
        b_off: usize,
        beta: f64,
        out: &mut GpuBuf,
        c_off: usize,
    ) -> Result<()> {
        let d = x.cols;
        self.gemm(
            false,
            true,
            c,
            n,
            d,
            alpha,
            &x.buf,
            r0 * d,
            b,
            b_off,
            beta,
            out,
            c_off,
        )
    }

    fn input_gemm_nt_batched(
        &self,
        x: &GpuInput,
        r0: usize,
        c: usize,
        n: usize,
        alpha: f64,
        b: &GpuBuf,
        b_off: usize,
        beta: f64,
        out: &mut GpuBuf,
        c_off: usize,
        batch: super::Batch,
    ) -> Result<()> {
        let d = x.cols;
        let each = super::Batch { a: 0, ..batch };
        self.gemm_batched(
            false,
            true,
            c,
            n,
            d,
            alpha,
            &x.buf,
            r0 * d,
            b,
            b_off,
            beta,
            out,
            c_off,
            each,
        )
    }

    fn input_gemm_tn_batched(
        &self,
        g: &GpuBuf,
        g_off: usize,
        x: &GpuInput,
        r0: usize,
        c: usize,
        n: usize,
        alpha: f64,
        beta: f64,
        out: &mut GpuBuf,
        c_off: usize,
        batch: super::Batch,
    ) -> Result<()> {
        let d = x.cols;
        let each = super::Batch { b: 0, ..batch };
        self.gemm_batched(
            true,
            false,
            n,
            d,
            c,
            alpha,
            g,
            g_off,
            &x.buf,
            r0 * d,
            beta,
            out,
            c_off,
            each,
        )
    }

    fn input_gemm_tn(
        &self,
        g: &GpuBuf,
        g_off: usize,
        x: &GpuInput,
        r0: usize,
        c: usize,
        n: usize,
        alpha: f64,
        beta: f64,
        out: &mut GpuBuf,
        c_off: usize,
    ) -> Result<()> {
        let d = x.cols;
        self.gemm(
            true,
            false,
            n,
            d,
            c,
            alpha,
            g,
            g_off,
            &x.buf,
            r0 * d,
            beta,
            out,
            c_off,
        )
    }

    fn zeros(&self, len: usize) -> Result<GpuBuf> {
        // New buffers are zero-initialised by wgpu.
        self.make_buffer(len, None)
    }
    fn upload(&self, data: &[f64]) -> Result<GpuBuf> {
        let f: Vec<f32> = data.iter().map(|&x| x as f32).collect();
        let b = self.make_buffer(data.len(), Some(&f))?;
        let mut st = self.state()?;
        st.uploads += 1;
        st.bytes_uploaded += 4 * data.len() as u64;
        Ok(b)
    }
    fn write(&self, buf: &mut GpuBuf, off: usize, data: &[f64]) -> Result<()> {
        check_range("write", buf.len, off, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        let f: Vec<f32> = data.iter().map(|&x| x as f32).collect();
        let mut st = self.state()?;
        // A queue write runs before the commands of the next submit: submit what is recorded
        // first, so that work recorded before this write sees the old values.
        self.submit(&mut st)?;
        self.inner
            .queue
            .write_buffer(&buf.buf, (off * 4) as u64, bytemuck::cast_slice(&f));
        st.uploads += 1;
        st.bytes_uploaded += 4 * data.len() as u64;
        Ok(())
    }
    fn input_write(&self, x: &mut GpuInput, data: &[f64], rows: usize, cols: usize) -> Result<()> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::Shape(format!(
                "input of {} values is not {rows}×{cols}",
                data.len()
            )));
        }
        if x.cols == cols && x.buf.len == data.len() {
            self.write(&mut x.buf, 0, data)
        } else {
            *x = self.input(data, rows, cols)?;
            Ok(())
        }
    }
    fn transfers(&self) -> Option<super::Transfers> {
        self.state().ok().map(|s| super::Transfers {
            submits: s.submits,
            readbacks: s.readbacks,
            bytes_read: s.bytes_read,
            uploads: s.uploads,
            bytes_uploaded: s.bytes_uploaded,
            allocations: s.allocations,
            bytes_allocated: s.bytes_allocated,
            dispatches: s.dispatches,
        })
    }
    fn download(&self, buf: &GpuBuf) -> Result<Vec<f64>> {
        Ok(self
            .read(buf, 0, buf.len)?
            .into_iter()
            .map(f64::from)
            .collect())
    }
    fn download_range(&self, buf: &GpuBuf, off: usize, len: usize) -> Result<Vec<f64>> {
        check_range("download", buf.len, off, len)?;
        Ok(self
            .read(buf, off, len)?
            .into_iter()
            .map(f64::from)
            .collect())
    }
    fn len(&self, buf: &GpuBuf) -> usize {
        buf.len
    }

    fn copy(
        &self,
        src: &GpuBuf,
        s_off: usize,
        dst: &mut GpuBuf,
        d_off: usize,
        len: usize,
    ) -> Result<()> {
        check_range("copy src", src.len, s_off, len)?;
        check_range("copy dst", dst.len, d_off, len)?;
        if len == 0 {
            return Ok(());
        }
        let inner = &*self.inner;
        let mut st = self.state()?;
        let enc = st
            .encoder
            .get_or_insert_with(|| inner.device.create_command_encoder(&Default::default()));
        enc.copy_buffer_to_buffer(
            &src.buf,
            (s_off * 4) as u64,
            &dst.buf,
            (d_off * 4) as u64,
            (len * 4) as u64,
        );
        Ok(())
    }

    fn fill(&self, x: &mut GpuBuf, off: usize, len: usize, value: f64) -> Result<()> {
        check_range("fill", x.len, off, len)?;
        let p = Params {
            off_out: u(off, "offset")?,
            len: u(len, "length")?,
            alpha: value as f32,
            ..Default::default()
        };
        self.dispatch(
            Kernel::Fill,
            [None, None, None, None, Some(x), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn gemm(
        &self,
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f64,
        a: &GpuBuf,
        a_off: usize,
        b: &GpuBuf,
        b_off: usize,
        beta: f64,
        c: &mut GpuBuf,
        c_off: usize,
    ) -> Result<()> {
        check_range("gemm A", a.len, a_off, m * k)?;
        check_range("gemm B", b.len, b_off, k * n)?;
        check_range("gemm C", c.len, c_off, m * n)?;
        let p = Params {
            m: u(m, "m")?,
            n: u(n, "n")?,
            k: u(k, "k")?,
            flags: ta as u32 | (tb as u32) << 1,
            off_a: u(a_off, "offset")?,
            off_b: u(b_off, "offset")?,
            off_out: u(c_off, "offset")?,
            alpha: alpha as f32,
            beta: beta as f32,
            ..Default::default()
        };
        let bufs = [Some(a), Some(b), None, None, Some(c), None];
        if n == 1 && !ta {
            let g = m.min(65535);
            self.dispatch(
                Kernel::GemvRows,
                bufs,
                p,
                [g as u32, m.div_ceil(g) as u32, 1],
            )
        } else if n == 1 {
            self.dispatch(Kernel::GemvCols, bufs, p, Self::groups_1d(m))
        } else {
            if m.div_ceil(64) > 65535 || n.div_ceil(64) > 65535 {
                return Err(gpu_err(format!(
                    "gemm {m}×{n}: more than 65,535 tiles in a dimension"
                )));
            }
            let groups = [n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1];
            let tiles = groups[0] as usize * groups[1] as usize;
            if let Some((slices, len)) = split_k(tiles, k) {
                // Parallel split-K: a few output tiles and a long K (the Gram matrices of p-long
                // rows, Gᵀ·X over the samples): slices in parallel into a scratch, then a sum.
                let mn = m * n;
                return self.with_gemm_scratch(slices * mn, |s| {
                    let q = Params {
                        flags: p.flags | 4,
                        len: u(len, "slice")?,
                        off_out: 0,
                        ..p
                    };
                    let bufs = [Some(a), Some(b), None, None, Some(s), None];
                    let g3 = [groups[0], groups[1], slices as u32];
                    self.dispatch(Kernel::Matmul, bufs, q, g3)?;
                    let r = Params {
                        m: p.m,
                        n: p.n,
                        aux: u(slices, "slices")?,
                        beta: p.beta,
                        off_out: p.off_out,
                        ..Default::default()
                    };
                    let bufs = [Some(s), None, None, None, Some(&*c), None];
                    self.dispatch(Kernel::GemmReduce, bufs, r, Self::groups_1d(mn))
                });
            }
            self.dispatch(Kernel::Matmul, bufs, p, groups)
        }
    }

    fn gemm_batched(
        &self,
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f64,
        a: &GpuBuf,
        a_off: usize,
        b: &GpuBuf,
        b_off: usize,
        beta: f64,
        c: &mut GpuBuf,
        c_off: usize,
        batch: super::Batch,
    ) -> Result<()> {
        super::check_batch(m, n, batch)?;
        let groups = [n.div_ceil(64), m.div_ceil(64)];
        // One dispatch holds them when the plain tiled kernel would run each (no matrix–vector
        // kernel, no split K) and the count fits a dispatch dimension.
        let one = batch.count > 1
            && n > 1
            && batch.count <= 65535
            && groups.iter().all(|&g| g <= 65535)
            && split_k(groups[0] * groups[1], k).is_none();
        if !one {
            return super::gemm_each(
                self, ta, tb, m, n, k, alpha, a, a_off, b, b_off, beta, c, c_off, batch,
            );
        }
        let last = batch.count - 1;
        check_range("gemm A", a.len, a_off + last * batch.a, m * k)?;
        check_range("gemm B", b.len, b_off + last * batch.b, k * n)?;
        check_range("gemm C", c.len, c_off + last * batch.c, m * n)?;
        let p = Params {
            m: u(m, "m")?,
            n: u(n, "n")?,
            k: u(k, "k")?,
            flags: ta as u32 | (tb as u32) << 1 | 8,
            off_a: u(a_off, "offset")?,
            off_b: u(b_off, "offset")?,
            off_out: u(c_off, "offset")?,
            off_c: u(batch.a, "stride")?,
            off_d: u(batch.b, "stride")?,
            off_e: u(batch.c, "stride")?,
            alpha: alpha as f32,
            beta: beta as f32,
            ..Default::default()
        };
        self.dispatch(
            Kernel::Matmul,
            [Some(a), Some(b), None, None, Some(c), None],
            p,
            [groups[0] as u32, groups[1] as u32, batch.count as u32],
        )
    }

    fn bias_act(
        &self,
        act: Option<Activation>,
        rows: usize,
        cols: usize,
        bias: &GpuBuf,
        b_off: usize,
        x: &mut GpuBuf,
        x_off: usize,
    ) -> Result<()> {
        check_range("bias", bias.len, b_off, cols)?;
        check_range("bias_act x", x.len, x_off, rows * cols)?;
        let p = Params {
            n: u(cols, "cols")?,
            flags: act_flag(act),
            off_a: u(b_off, "offset")?,
            off_out: u(x_off, "offset")?,
            len: u(rows * cols, "length")?,
            ..Default::default()
        };
        self.dispatch(
            Kernel::BiasAct,
            [Some(bias), None, None, None, Some(x), None],
            p,
            Self::groups_1d(rows * cols),
        )
    }

    fn act_d1_mul(
        &self,
        act: Activation,
        len: usize,
        a: &GpuBuf,
        a_off: usize,
        g: &GpuBuf,
        g_off: usize,
        out: &mut GpuBuf,
        o_off: usize,
    ) -> Result<()> {
        check_range("act_d1 a", a.len, a_off, len)?;
        check_range("act_d1 g", g.len, g_off, len)?;
        check_range("act_d1 out", out.len, o_off, len)?;
        let p = Params {
            flags: act_flag(Some(act)),
            off_a: u(a_off, "offset")?,
            off_b: u(g_off, "offset")?,
            off_out: u(o_off, "offset")?,
            len: u(len, "length")?,
            ..Default::default()
        };
        self.dispatch(
            Kernel::ActD1,
            [Some(a), Some(g), None, None, Some(out), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn act_d2_r(
        &self,
        act: Activation,
        len: usize,
        a: &GpuBuf,
        a_off: usize,
        rg: &GpuBuf,
        rg_off: usize,
        g: &GpuBuf,
        g_off: usize,
        rz: &GpuBuf,
        rz_off: usize,
        out: &mut GpuBuf,
        o_off: usize,
    ) -> Result<()> {
        for (name, b, o) in [
            ("a", a, a_off),
            ("rg", rg, rg_off),
            ("g", g, g_off),
            ("rz", rz, rz_off),
        ] {
            check_range(&format!("act_d2 {name}"), b.len, o, len)?;
        }
        check_range("act_d2 out", out.len, o_off, len)?;
        let p = Params {
            flags: act_flag(Some(act)),
            off_a: u(a_off, "offset")?,
            off_b: u(rg_off, "offset")?,
            off_c: u(g_off, "offset")?,
            off_d: u(rz_off, "offset")?,
            off_out: u(o_off, "offset")?,
            len: u(len, "length")?,
            ..Default::default()
        };
        self.dispatch(
            Kernel::ActD2,
            [Some(a), Some(rg), Some(g), Some(rz), Some(out), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn act(&self, act: Activation, len: usize, x: &mut GpuBuf, off: usize) -> Result<()> {
        check_range("act x", x.len, off, len)?;
        let p = Params {
            flags: act_flag(Some(act)),
            off_out: u(off, "offset")?,
            len: u(len, "length")?,
            ..Default::default()
        };
        self.dispatch(
            Kernel::ActInplace,
            [None, None, None, None, Some(x), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn im2col3x3(
        &self,
        g: Nhwc,
        x: &GpuBuf,
        x_off: usize,
        col: &mut GpuBuf,
        col_off: usize,
    ) -> Result<()> {
        let len = g.len() * 9;
        check_range("im2col x", x.len, x_off, g.len())?;
        check_range("im2col col", col.len, col_off, len)?;
        let p = Params {
            off_a: u(x_off, "offset")?,
            off_out: u(col_off, "offset")?,
            len: u(len, "length")?,
            ..nhwc_params(g)?
        };
        self.dispatch(
            Kernel::Im2col,
            [Some(x), None, None, None, Some(col), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn col2im3x3(
        &self,
        g: Nhwc,
        col: &GpuBuf,
        col_off: usize,
        beta: f64,
        dx: &mut GpuBuf,
        dx_off: usize,
    ) -> Result<()> {
        check_range("col2im col", col.len, col_off, g.len() * 9)?;
        check_range("col2im dx", dx.len, dx_off, g.len())?;
        let p = Params {
            off_a: u(col_off, "offset")?,
            off_out: u(dx_off, "offset")?,
            len: u(g.len(), "length")?,
            beta: beta as f32,
            ..nhwc_params(g)?
        };
        self.dispatch(
            Kernel::Col2im,
            [Some(col), None, None, None, Some(dx), None],
            p,
            Self::groups_1d(g.len()),
        )
    }

    fn maxpool2(
        &self,
        g: Nhwc,
        x: &GpuBuf,
        x_off: usize,
        out: &mut GpuBuf,
        o_off: usize,
        idx: &mut GpuBuf,
        i_off: usize,
    ) -> Result<()> {
        let q = g.pooled().len();
        check_range("maxpool x", x.len, x_off, g.len())?;
        check_range("maxpool out", out.len, o_off, q)?;
        check_range("maxpool idx", idx.len, i_off, q)?;
        let p = Params {
            off_a: u(x_off, "offset")?,
            off_out: u(o_off, "offset")?,
            off_d: u(i_off, "offset")?,
            len: u(q, "length")?,
            ..nhwc_params(g)?
        };
        self.dispatch(
            Kernel::MaxPool2,
            [Some(x), None, None, None, Some(out), Some(idx)],
            p,
            Self::groups_1d(q),
        )
    }

    fn pool2_gather(
        &self,
        g: Nhwc,
        idx: &GpuBuf,
        i_off: usize,
        src: &GpuBuf,
        s_off: usize,
        out: &mut GpuBuf,
        o_off: usize,
    ) -> Result<()> {
        let q = g.pooled().len();
        check_range("pool gather idx", idx.len, i_off, q)?;
        check_range("pool gather src", src.len, s_off, g.len())?;
        check_range("pool gather out", out.len, o_off, q)?;
        let p = Params {
            off_a: u(i_off, "offset")?,
            off_b: u(s_off, "offset")?,
            off_out: u(o_off, "offset")?,
            len: u(q, "length")?,
            ..nhwc_params(g)?
        };
        self.dispatch(
            Kernel::PoolGather,
            [Some(idx), Some(src), None, None, Some(out), None],
            p,
            Self::groups_1d(q),
        )
    }

    fn pool2_scatter(
        &self,
        g: Nhwc,
        idx: &GpuBuf,
        i_off: usize,
        gy: &GpuBuf,
        g_off: usize,
        dx: &mut GpuBuf,
        dx_off: usize,
    ) -> Result<()> {
        let q = g.pooled().len();
        check_range("pool scatter idx", idx.len, i_off, q)?;
        check_range("pool scatter gy", gy.len, g_off, q)?;
        check_range("pool scatter dx", dx.len, dx_off, g.len())?;
        let p = Params {
            off_a: u(i_off, "offset")?,
            off_b: u(g_off, "offset")?,
            off_out: u(dx_off, "offset")?,
            len: u(g.len(), "length")?,
            ..nhwc_params(g)?
        };
        self.dispatch(
            Kernel::PoolScatter,
            [Some(idx), Some(gy), None, None, Some(dx), None],
            p,
            Self::groups_1d(g.len()),
        )
    }

    fn transpose_batch(
        &self,
        batch: usize,
        rows: usize,
        cols: usize,
        src: &GpuBuf,
        s_off: usize,
        dst: &mut GpuBuf,
        d_off: usize,
    ) -> Result<()> {
        let len = batch * rows * cols;
        check_range("transpose src", src.len, s_off, len)?;
        check_range("transpose dst", dst.len, d_off, len)?;
        let p = Params {
            m: u(rows, "rows")?,
            n: u(cols, "cols")?,
            aux: u(batch, "batch")?,
            off_a: u(s_off, "offset")?,
            off_out: u(d_off, "offset")?,
            len: u(len, "length")?,
            ..Default::default()
        };
        self.dispatch(
            Kernel::TransposeBatch,
            [Some(src), None, None, None, Some(dst), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn col_sum(
        &self,
        rows: usize,
        cols: usize,
        alpha: f64,
        src: &GpuBuf,
        s_off: usize,
        beta: f64,
        dst: &mut GpuBuf,
        d_off: usize,
    ) -> Result<()> {
        check_range("col_sum src", src.len, s_off, rows * cols)?;
        check_range("col_sum dst", dst.len, d_off, cols)?;
        let p = Params {
            m: u(rows, "rows")?,
            n: u(cols, "cols")?,
            off_a: u(s_off, "offset")?,
            off_out: u(d_off, "offset")?,
            alpha: alpha as f32,
            beta: beta as f32,
            ..Default::default()
        };
        self.dispatch(
            Kernel::ColSum,
            [Some(src), None, None, None, Some(dst), None],
            p,
            Self::groups_1d(cols),
        )
    }

    fn loss_grad(
        &self,
        loss: LossKind,
        rows: usize,
        cols: usize,
        out: &GpuBuf,
        o_off: usize,
        target: &GpuBuf,
        t_off: usize,
        scale: f64,
        grad: &mut GpuBuf,
        g_off: usize,
        stats: &mut GpuBuf,
    ) -> Result<()> {
        check_range("loss out", out.len, o_off, rows * cols)?;
        check_range("loss target", target.len, t_off, rows * cols)?;
        check_range("loss grad", grad.len, g_off, rows * cols)?;
        check_range("loss stats", stats.len, 0, 2)?;
        let p = Params {
            m: u(rows, "rows")?,
            n: u(cols, "cols")?,
            flags: loss_flag(loss),
            off_a: u(o_off, "offset")?,
            off_b: u(t_off, "offset")?,
            off_out: u(g_off, "offset")?,
            scale: scale as f32,
            ..Default::default()
        };
        self.dispatch(
            Kernel::LossGrad,
            [Some(out), Some(target), None, None, Some(grad), Some(stats)],
            p,
            [1, 1, 1],
        )
    }

    fn loss_hess_mul(
        &self,
        loss: LossKind,
        rows: usize,
        cols: usize,
        out: &GpuBuf,
        o_off: usize,
        rout: &GpuBuf,
        r_off: usize,
        scale: f64,
        rgrad: &mut GpuBuf,
        g_off: usize,
    ) -> Result<()> {
        check_range("loss_hess out", out.len, o_off, rows * cols)?;
        check_range("loss_hess rout", rout.len, r_off, rows * cols)?;
        check_range("loss_hess rgrad", rgrad.len, g_off, rows * cols)?;
        let p = Params {
            m: u(rows, "rows")?,
            n: u(cols, "cols")?,
            flags: loss_flag(loss),
            off_a: u(o_off, "offset")?,
            off_b: u(r_off, "offset")?,
            off_out: u(g_off, "offset")?,
            scale: scale as f32,
            ..Default::default()
        };
        self.dispatch(
            Kernel::LossHess,
            [Some(out), Some(rout), None, None, Some(rgrad), None],
            p,
            Self::groups_1d(rows),
        )
    }

    fn embed(
        &self,
        g: Seq,
        ids: &GpuBuf,
        ids_off: usize,
        table: &GpuBuf,
        tok_off: usize,
        pos_off: usize,
        out: &mut GpuBuf,
        o_off: usize,
    ) -> Result<()> {
        let (t, d, len) = (g.len, g.width, g.numel());
        check_range("embed ids", ids.len, ids_off, g.rows * t)?;
        check_range("embed token rows", table.len, tok_off, d)?;
        check_range("embed positions", table.len, pos_off, t * d)?;
        check_range("embed out", out.len, o_off, len)?;
        let p = Params {
            m: u(t, "sequence length")?,
            n: u(d, "width")?,
            off_a: u(ids_off, "offset")?,
            off_b: u(tok_off, "offset")?,
            off_c: u(pos_off, "offset")?,
            off_out: u(o_off, "offset")?,
            len: u(len, "length")?,
            ..Default::default()
        };
        self.dispatch(
            Kernel::Embed,
            [Some(ids), Some(table), Some(table), None, Some(out), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn embed_grad(
        &self,
        g: Seq,
        vocab: usize,
        start: &GpuBuf,
        order: &GpuBuf,
        gy: &GpuBuf,
        g_off: usize,
        out: &mut GpuBuf,
        tok_off: usize,
    ) -> Result<()> {
        let (d, positions) = (g.width, g.rows * g.len);
        check_range("embed_grad start", start.len, 0, vocab + 1)?;
        check_range("embed_grad order", order.len, 0, positions)?;
        check_range("embed_grad gy", gy.len, g_off, g.numel())?;
        check_range("embed_grad out", out.len, tok_off, vocab * d)?;
        if positions > 1 << 24 {
            return Err(gpu_err(format!(
                "embed_grad: {positions} positions in a chunk; the GPU's token index holds them as f32, \
                 exact up to 2^24: use a smaller --chunk"
            )));
        }
        let p = Params {
            n: u(d, "width")?,
            off_c: u(g_off, "offset")?,
            off_out: u(tok_off, "offset")?,
            len: u(vocab * d, "length")?,
            ..Default::default()
        };
        self.dispatch(
            Kernel::EmbedGrad,
            [Some(start), Some(order), Some(gy), None, Some(out), None],
            p,
            Self::groups_1d(vocab * d),
        )
    }

    fn layer_norm(
        &self,
        l: Ln,
        x: &GpuBuf,
        x_off: usize,
        theta: &GpuBuf,
        y: &mut GpuBuf,
        y_off: usize,
    ) -> Result<()> {
        let len = l.rows * l.width;
        check_range("layer_norm x", x.len, x_off, len)?;
        ln_check(theta.len, 0, l)?;
        check_range("layer_norm y", y.len, y_off, len)?;
        let p = Params {
            off_a: u(x_off, "offset")?,
            off_b: u(l.gamma, "offset")?,
            off_c: u(l.beta, "offset")?,
            off_out: u(y_off, "offset")?,
            ..ln_params(l)?
        };
        self.dispatch(
            Kernel::LayerNorm,
            [Some(x), Some(theta), Some(theta), None, Some(y), None],
            p,
            Self::groups_1d(l.rows),
        )
    }

    fn layer_norm_vjp(
        &self,
        l: Ln,
        x: &GpuBuf,
        x_off: usize,
        theta: &GpuBuf,
        dy: &GpuBuf,
        dy_off: usize,
        dx: &mut GpuBuf,
        dx_off: usize,
        prod: &mut GpuBuf,
        p_off: usize,
    ) -> Result<()> {
        let len = l.rows * l.width;
        check_range("layer_norm_vjp x", x.len, x_off, len)?;
        check_range("layer_norm_vjp dy", dy.len, dy_off, len)?;
        ln_check(theta.len, 0, l)?;
        check_range("layer_norm_vjp dx", dx.len, dx_off, len)?;
        check_range("layer_norm_vjp prod", prod.len, p_off, len)?;
        let p = Params {
            off_a: u(x_off, "offset")?,
            off_b: u(l.gamma, "offset")?,
            off_c: u(dy_off, "offset")?,
            off_out: u(dx_off, "offset")?,
            off_out2: u(p_off, "offset")?,
            ..ln_params(l)?
        };
        self.dispatch(
            Kernel::LayerNormVjp,
            [Some(x), Some(theta), Some(dy), None, Some(dx), Some(prod)],
            p,
            Self::groups_1d(l.rows),
        )
    }

    fn layer_norm_jvp(
        &self,
        l: Ln,
        x: &GpuBuf,
        x_off: usize,
        rx: &GpuBuf,
        rx_off: usize,
        theta: &GpuBuf,
        v: &GpuBuf,
        v_off: usize,
        ry: &mut GpuBuf,
        ry_off: usize,
    ) -> Result<()> {
        let len = l.rows * l.width;
        check_range("layer_norm_jvp x", x.len, x_off, len)?;
        check_range("layer_norm_jvp rx", rx.len, rx_off, len)?;
        ln_check(theta.len, 0, l)?;
        ln_check(v.len, v_off, l)?;
        check_range("layer_norm_jvp ry", ry.len, ry_off, len)?;
        let p = Params {
            off_a: u(x_off, "offset")?,
            off_b: u(rx_off, "offset")?,
            off_c: u(l.gamma, "offset")?,
            off_d: u(v_off + l.gamma, "offset")?,
            off_e: u(v_off + l.beta, "offset")?,
            off_out: u(ry_off, "offset")?,
            ..ln_params(l)?
        };
        self.dispatch8(
            Kernel::LayerNormJvp,
            [
                Some(x),
                Some(rx),
                Some(theta),
                Some(v),
                Some(ry),
                None,
                Some(v),
                None,
            ],
            p,
            Self::groups_1d(l.rows),
        )
    }

    fn layer_norm_rvjp(
        &self,
        l: Ln,
        x: &GpuBuf,
        x_off: usize,
        rx: &GpuBuf,
        rx_off: usize,
        theta: &GpuBuf,
        v: &GpuBuf,
        v_off: usize,
        dy: &GpuBuf,
        dy_off: usize,
        rdy: &GpuBuf,
        rdy_off: usize,
        rdx: &mut GpuBuf,
        rdx_off: usize,
        prod: &mut GpuBuf,
        p_off: usize,
    ) -> Result<()> {
        let len = l.rows * l.width;
        check_range("layer_norm_rvjp x", x.len, x_off, len)?;
        check_range("layer_norm_rvjp rx", rx.len, rx_off, len)?;
        check_range("layer_norm_rvjp dy", dy.len, dy_off, len)?;
        check_range("layer_norm_rvjp rdy", rdy.len, rdy_off, len)?;
        ln_check(theta.len, 0, l)?;
        ln_check(v.len, v_off, l)?;
        check_range("layer_norm_rvjp rdx", rdx.len, rdx_off, len)?;
        check_range("layer_norm_rvjp prod", prod.len, p_off, len)?;
        let p = Params {
            off_a: u(x_off, "offset")?,
            off_b: u(rx_off, "offset")?,
            off_c: u(l.gamma, "offset")?,
            off_d: u(v_off + l.gamma, "offset")?,
            off_e: u(dy_off, "offset")?,
            off_f: u(rdy_off, "offset")?,
            off_out: u(rdx_off, "offset")?,
            off_out2: u(p_off, "offset")?,
            ..ln_params(l)?
        };
        self.dispatch8(
            Kernel::LayerNormRvjp,
            [
                Some(x),
                Some(rx),
                Some(theta),
                Some(v),
                Some(rdx),
                Some(prod),
                Some(dy),
                Some(rdy),
            ],
            p,
            Self::groups_1d(l.rows),
        )
    }

    fn attention(
        &self,
        a: Attn,
        ids: &GpuBuf,
        ids_off: usize,
        qkv: &GpuBuf,
        q_off: usize,
        out: &mut GpuBuf,
        o_off: usize,
        probs: &mut GpuBuf,
        p_off: usize,
    ) -> Result<()> {
        let (t, d) = (a.seq, a.width());
        check_range("attention ids", ids.len, ids_off, a.rows * t)?;
        check_range("attention qkv", qkv.len, q_off, a.rows * t * 3 * d)?;
        check_range("attention out", out.len, o_off, a.rows * t * d)?;
        check_range(
            "attention probs",
            probs.len,
            p_off,
            a.rows * a.probs_per_row(),
        )?;
        let p = Params {
            off_a: u(q_off, "offset")?,
            off_b: u(ids_off, "offset")?,
            off_out: u(o_off, "offset")?,
            off_out2: u(p_off, "offset")?,
            ..attn_params(a)?
        };
        self.dispatch(
            Kernel::Attention,
            [Some(qkv), Some(ids), None, None, Some(out), Some(probs)],
            p,
            Self::groups_1d(a.rows * a.heads * t),
        )
    }

    fn attention_vjp(
        &self,
        a: Attn,
        qkv: &GpuBuf,
        q_off: usize,
        probs: &GpuBuf,
        p_off: usize,
        dout: &GpuBuf,
        d_off: usize,
        dqkv: &mut GpuBuf,
        dq_off: usize,
    ) -> Result<()> {
        let (t, d) = (a.seq, a.width());
        check_range("attention_vjp qkv", qkv.len, q_off, a.rows * t * 3 * d)?;
        check_range(
            "attention_vjp probs",
            probs.len,
            p_off,
            a.rows * a.probs_per_row(),
        )?;
        check_range("attention_vjp dout", dout.len, d_off, a.rows * t * d)?;
        check_range("attention_vjp dqkv", dqkv.len, dq_off, a.rows * t * 3 * d)?;
        let p = Params {
            off_a: u(q_off, "offset")?,
            off_b: u(p_off, "offset")?,
            off_c: u(d_off, "offset")?,
            off_out: u(dq_off, "offset")?,
            ..attn_params(a)?
        };
        let n = a.rows * a.heads * t;
        self.with_attn_scratch(3 * n, |s| {
            self.dispatch(
                Kernel::AttentionVjpRows,
                [
                    Some(qkv),
                    Some(probs),
                    Some(dout),
                    None,
                    Some(dqkv),
                    Some(s),
                ],
                p,
                Self::groups_1d(n),
            )?;
            self.dispatch(
                Kernel::AttentionVjpCols,
                [
                    Some(qkv),
                    Some(probs),
                    Some(dout),
                    Some(s),
                    Some(dqkv),
                    None,
                ],
                p,
                Self::groups_1d(n),
            )
        })
    }

    fn attention_jvp(
        &self,
        a: Attn,
        qkv: &GpuBuf,
        q_off: usize,
        probs: &GpuBuf,
        p_off: usize,
        rqkv: &GpuBuf,
        rq_off: usize,
        rout: &mut GpuBuf,
        ro_off: usize,
    ) -> Result<()> {
        let (t, d) = (a.seq, a.width());
        check_range("attention_jvp qkv", qkv.len, q_off, a.rows * t * 3 * d)?;
        check_range(
            "attention_jvp probs",
            probs.len,
            p_off,
            a.rows * a.probs_per_row(),
        )?;
        check_range("attention_jvp rqkv", rqkv.len, rq_off, a.rows * t * 3 * d)?;
        check_range("attention_jvp rout", rout.len, ro_off, a.rows * t * d)?;
        let p = Params {
            off_a: u(q_off, "offset")?,
            off_b: u(p_off, "offset")?,
            off_c: u(rq_off, "offset")?,
            off_out: u(ro_off, "offset")?,
            ..attn_params(a)?
        };
        self.dispatch(
            Kernel::AttentionJvp,
            [Some(qkv), Some(probs), Some(rqkv), None, Some(rout), None],
            p,
            Self::groups_1d(a.rows * a.heads * t),
        )
    }

    fn attention_rvjp(
        &self,
        a: Attn,
        qkv: &GpuBuf,
        q_off: usize,
        probs: &GpuBuf,
        p_off: usize,
        rqkv: &GpuBuf,
        rq_off: usize,
        dout: &GpuBuf,
        d_off: usize,
        rdout: &GpuBuf,
        rd_off: usize,
        rdqkv: &mut GpuBuf,
        rdq_off: usize,
    ) -> Result<()> {
        let (t, d) = (a.seq, a.width());
        check_range("attention_rvjp qkv", qkv.len, q_off, a.rows * t * 3 * d)?;
        check_range(
            "attention_rvjp probs",
            probs.len,
            p_off,
            a.rows * a.probs_per_row(),
        )?;
        check_range("attention_rvjp rqkv", rqkv.len, rq_off, a.rows * t * 3 * d)?;
        check_range("attention_rvjp dout", dout.len, d_off, a.rows * t * d)?;
        check_range("attention_rvjp rdout", rdout.len, rd_off, a.rows * t * d)?;
        check_range(
            "attention_rvjp rdqkv",
            rdqkv.len,
            rdq_off,
            a.rows * t * 3 * d,
        )?;
        let p = Params {
            off_a: u(q_off, "offset")?,
            off_b: u(p_off, "offset")?,
            off_c: u(rq_off, "offset")?,
            off_d: u(d_off, "offset")?,
            off_e: u(rd_off, "offset")?,
            off_out: u(rdq_off, "offset")?,
            ..attn_params(a)?
        };
        let n = a.rows * a.heads * t;
        self.with_attn_scratch(3 * n, |s| {
            self.dispatch8(
                Kernel::AttentionRvjpRows,
                [
                    Some(qkv),
                    Some(probs),
                    Some(rqkv),
                    Some(dout),
                    Some(rdqkv),
                    Some(s),
                    Some(rdout),
                    None,
                ],
                p,
                Self::groups_1d(n),
            )?;
            self.dispatch8(
                Kernel::AttentionRvjpCols,
                [
                    Some(qkv),
                    Some(probs),
                    Some(rqkv),
                    Some(dout),
                    Some(rdqkv),
                    None,
                    Some(rdout),
                    Some(s),
                ],
                p,
                Self::groups_1d(n),
            )
        })
    }

    fn seq_mean(
        &self,
        g: Seq,
        masked: bool,
        ids: &GpuBuf,
        ids_off: usize,
        x: &GpuBuf,
        x_off: usize,
        out: &mut GpuBuf,
        o_off: usize,
    ) -> Result<()> {
        let len = g.rows * g.width;
        check_range("seq_mean ids", ids.len, ids_off, g.rows * g.len)?;
        check_range("seq_mean x", x.len, x_off, g.numel())?;
        check_range("seq_mean out", out.len, o_off, len)?;
        let p = Params {
            off_a: u(ids_off, "offset")?,
            off_b: u(x_off, "offset")?,
            off_out: u(o_off, "offset")?,
            len: u(len, "length")?,
            ..seq_params(g, masked)?
        };
        self.dispatch(
            Kernel::SeqMean,
            [Some(ids), Some(x), None, None, Some(out), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn seq_mean_adjoint(
        &self,
        g: Seq,
        masked: bool,
        ids: &GpuBuf,
        ids_off: usize,
        dy: &GpuBuf,
        dy_off: usize,
        dx: &mut GpuBuf,
        dx_off: usize,
    ) -> Result<()> {
        let len = g.numel();
        check_range("seq_mean_adjoint ids", ids.len, ids_off, g.rows * g.len)?;
        check_range("seq_mean_adjoint dy", dy.len, dy_off, g.rows * g.width)?;
        check_range("seq_mean_adjoint dx", dx.len, dx_off, len)?;
        let p = Params {
            off_a: u(ids_off, "offset")?,
            off_b: u(dy_off, "offset")?,
            off_out: u(dx_off, "offset")?,
            len: u(len, "length")?,
            ..seq_params(g, masked)?
        };
        self.dispatch(
            Kernel::SeqMeanAdjoint,
            [Some(ids), Some(dy), None, None, Some(dx), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn dot(&self, x: &GpuBuf, x_off: usize, y: &GpuBuf, y_off: usize, len: usize) -> Result<f64> {
        check_range("dot x", x.len, x_off, len)?;
        check_range("dot y", y.len, y_off, len)?;
        let _g = self.reduce_guard()?;
        self.reduce_into(x, x_off, Some((y, y_off)), len, 0)?;
        Ok(self.read(&self.inner.results, 0, 1)?[0] as f64)
    }

    fn dot_into(
        &self,
        x: &GpuBuf,
        x_off: usize,
        y: &GpuBuf,
        y_off: usize,
        len: usize,
        out: &mut GpuBuf,
        out_off: usize,
    ) -> Result<()> {
        check_range("dot x", x.len, x_off, len)?;
        check_range("dot y", y.len, y_off, len)?;
        check_range("dot out", out.len, out_off, 1)?;
        // Both passes recorded under the reduction lock (they share the partials).
        let _g = self.reduce_guard()?;
        self.reduce_to(x, x_off, Some((y, y_off)), len, out, out_off)
    }

    fn count_nonfinite_into(
        &self,
        x: &GpuBuf,
        off: usize,
        len: usize,
        out: &mut GpuBuf,
        out_off: usize,
    ) -> Result<()> {
        check_range("count x", x.len, off, len)?;
        check_range("count out", out.len, out_off, 1)?;
        let _g = self.reduce_guard()?;
        self.reduce_to(x, off, None, len, out, out_off)
    }

    fn row_norms(&self, x: &GpuBuf, off: usize, rows: usize, len: usize) -> Result<Vec<f64>> {
        check_range("row_norms", x.len, off, rows * len)?;
        let _g = self.reduce_guard()?;
        let mut out = Vec::with_capacity(rows);
        for first in (0..rows).step_by(RESULTS) {
            let count = (rows - first).min(RESULTS);
            for r in 0..count {
                let o = off + (first + r) * len;
                self.reduce_into(x, o, Some((x, o)), len, r)?;
            }
            out.extend(
                self.read(&self.inner.results, 0, count)?
                    .into_iter()
                    .map(|s| (s.max(0.0) as f64).sqrt()),
            );
        }
        Ok(out)
    }

    fn axpy(
        &self,
        alpha: f64,
        x: &GpuBuf,
        x_off: usize,
        y: &mut GpuBuf,
        y_off: usize,
        len: usize,
    ) -> Result<()> {
        check_range("axpy x", x.len, x_off, len)?;
        check_range("axpy y", y.len, y_off, len)?;
        let p = Params {
            off_a: u(x_off, "offset")?,
            off_out: u(y_off, "offset")?,
            len: u(len, "length")?,
            alpha: alpha as f32,
            ..Default::default()
        };
        self.dispatch(
            Kernel::Axpy,
            [Some(x), None, None, None, Some(y), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn scale(&self, alpha: f64, x: &mut GpuBuf, off: usize, len: usize) -> Result<()> {
        check_range("scale", x.len, off, len)?;
        let p = Params {
            off_out: u(off, "offset")?,
            len: u(len, "length")?,
            alpha: alpha as f32,
            ..Default::default()
        };
        self.dispatch(
            Kernel::Scale,
            [None, None, None, None, Some(x), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn rsqrt(&self, x: &mut GpuBuf, off: usize, len: usize) -> Result<()> {
        check_range("rsqrt", x.len, off, len)?;
        let p = Params {
            off_out: u(off, "offset")?,
            len: u(len, "length")?,
            ..Default::default()
        };
        self.dispatch(
            Kernel::Rsqrt,
            [None, None, None, None, Some(x), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn sync(&self) -> Result<()> {
        {
            let mut st = self.state()?;
            self.submit(&mut st)?;
        }
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_err(format!("waiting for the GPU: {e}")))?;
        self.check_error()
    }

    fn adam(
        &self,
        g: &GpuBuf,
        m: &mut GpuBuf,
        v: &mut GpuBuf,
        d: &mut GpuBuf,
        len: usize,
        h: super::AdamStep,
    ) -> Result<()> {
        check_range("adam g", g.len, 0, len)?;
        check_range("adam m", m.len, 0, len)?;
        check_range("adam v", v.len, 0, len)?;
        check_range("adam d", d.len, 0, len)?;
        let n = u(len, "length")?;
        // Two kernels: the moments (two read-write outputs), then the update from them.
        let p = Params {
            len: n,
            beta: h.beta1 as f32,
            scale: h.beta2 as f32,
            ..Default::default()
        };
        self.dispatch(
            Kernel::AdamMoments,
            [Some(g), None, None, None, Some(&*m), Some(&*v)],
            p,
            Self::groups_1d(len),
        )?;
        let p = Params {
            len: n,
            alpha: h.lr as f32,
            beta: h.c1 as f32,
            scale: h.c2 as f32,
            pad: h.eps as f32,
            ..Default::default()
        };
        self.dispatch(
            Kernel::AdamUpdate,
            [Some(&*m), Some(&*v), None, None, Some(d), None],
            p,
            Self::groups_1d(len),
        )
    }

    fn all_finite(&self, x: &GpuBuf, off: usize, len: usize) -> Result<bool> {
        check_range("all_finite", x.len, off, len)?;
        let _g = self.reduce_guard()?;
        self.reduce_into(x, off, None, len, 0)?;
        Ok(self.read(&self.inner.results, 0, 1)?[0] == 0.0)
    }
}

/// The image geometry in a kernel's parameter block (m = height, n = width, k = channels,
/// aux = samples).
fn nhwc_params(g: Nhwc) -> Result<Params> {
    Ok(Params {
        m: u(g.h, "height")?,
        n: u(g.w, "width")?,
        k: u(g.c, "channels")?,
        aux: u(g.n, "samples")?,
        ..Default::default()
    })
}

/// A batch of sequences in a kernel's parameter block (m = T, n = D, flags = masked).
fn seq_params(g: Seq, masked: bool) -> Result<Params> {
    Ok(Params {
        m: u(g.len, "sequence length")?,
        n: u(g.width, "width")?,
        flags: masked as u32,
        ..Default::default()
    })
}

/// A LayerNorm pass in a kernel's parameter block (m = len = rows, n = width, alpha = ε).
fn ln_params(l: Ln) -> Result<Params> {
    Ok(Params {
        m: u(l.rows, "rows")?,
        n: u(l.width, "width")?,
        len: u(l.rows, "rows")?,
        alpha: l.eps as f32,
        ..Default::default()
    })
}

/// γ and β of a LayerNorm within a buffer of `len` scalars, from `off`.
fn ln_check(len: usize, off: usize, l: Ln) -> Result<()> {
    check_range("layer_norm gamma", len, off + l.gamma, l.width)?;
    check_range("layer_norm beta", len, off + l.beta, l.width)
}

/// An attention pass in a kernel's parameter block (m = T, n = dh, k = H, flags = masked,
/// len = rows·H·T invocations, scale = 1/√dh).
fn attn_params(a: Attn) -> Result<Params> {
    Ok(Params {
        m: u(a.seq, "sequence length")?,
        n: u(a.head_dim, "head width")?,
        k: u(a.heads, "heads")?,
        flags: a.masked as u32,
        len: u(a.rows * a.heads * a.seq, "attention rows")?,
        scale: (1.0 / (a.head_dim as f64).sqrt()) as f32,
        ..Default::default()
    })
}

fn act_flag(act: Option<Activation>) -> u32 {
    match act {
        None => 0,
        Some(Activation::Tanh) => 1,
        Some(Activation::Relu) => 2,
        Some(Activation::Silu) => 3,
        Some(Activation::Gelu) => 4,
    }
}

fn loss_flag(loss: LossKind) -> u32 {
    match loss {
        LossKind::Mse => 0,
        LossKind::Ce => 1,
    }
}
