//! Opening a device: the adapter's choice (natively the best one; in a browser WebGPU's), the
//! device's error hooks, the kernels' compilation, and the blocking wait on GPU futures (pollster
//! natively, JSPI in a browser).

use super::kernels::{SLOT, build_kernels};
use super::recorder::{Inner, State, wait};
use super::recorder::{PARTIALS, RESULTS, SLOTS};
use super::{GpuBackend, GpuBuf, GpuOptions, NEXT_ID, gpu_err};
use crate::error::Result;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

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
            return Err(gpu_err(super::SOFTWARE_ADAPTER_REFUSED));
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
        let built = build_kernels(&device);
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
            dummy: std::array::from_fn(|_| mk(1)),
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
            layouts: built.layouts,
            pipelines: built.pipelines,
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
}
