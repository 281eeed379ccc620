//! Recording work: the command encoder, the ring of parameter slots, the bind-group cache, the
//! scratch buffers, reductions, read-backs, and the counts of what crossed between host and device
//! ([`crate::backend::Transfers`]).

use super::kernels::{
    Access, Bindings, Kernel, MAX_STORAGE, ReduceBufs, ReduceParams, SLOT, VectorBufs, VectorParams,
};
use super::{GpuBackend, GpuBuf, GpuInput, NEXT_ID, gpu_err, u};
use crate::backend::{Blas, Buffers, Transfers, check_range};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Wait for a GPU future: block the thread (native).
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn wait<F: std::future::Future>(f: F) -> Result<F::Output> {
    Ok(pollster::block_on(f))
}

/// Wait for a GPU future in a browser: suspend this wasm stack (JSPI) until it completes, while
/// the event loop runs on (that is where WebGPU's promises settle).
#[cfg(target_arch = "wasm32")]
#[allow(deprecated)] // wasm-bindgen marks its JSPI support experimental.
pub(super) fn wait<F>(f: F) -> Result<F::Output>
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

/// The most read-write storage buffers of one module (Adam's m, v, d).
pub(super) const MAX_RW: usize = 3;
/// Dispatches recorded before a forced submit.
pub(super) const SLOTS: usize = 4096;
/// Scalars that one read-back can collect (row norms of a block, …).
pub(super) const RESULTS: usize = 1024;
/// Workgroups of the first reduction pass.
pub(super) const PARTIALS: u32 = 256;
/// Bind groups kept before the cache is cleared (it only grows when new buffers appear).
pub(super) const BIND_GROUP_CACHE: usize = 512;

/// What is recorded and not yet submitted, the bind-group cache, and the traffic counts.
pub(super) struct State {
    pub(super) encoder: Option<wgpu::CommandEncoder>,
    pub(super) params: Vec<u8>,
    pub(super) slots: usize,
    /// By module (its index in `LAYOUTS`) and buffers.
    pub(super) bind_groups: HashMap<[u64; MAX_STORAGE + 1], wgpu::BindGroup>,
    pub(super) submits: u64,
    /// Read-backs, bytes read back, buffers made from host data and their bytes.
    pub(super) readbacks: u64,
    pub(super) bytes_read: u64,
    pub(super) uploads: u64,
    pub(super) bytes_uploaded: u64,
    pub(super) allocations: u64,
    pub(super) bytes_allocated: u64,
    pub(super) dispatches: u64,
}

/// The device and everything the backend keeps on it, shared by its clones.
pub(super) struct Inner {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    pub(super) info: wgpu::AdapterInfo,
    /// A bind-group layout per module, in the order of `kernels::LAYOUTS`.
    pub(super) layouts: Vec<wgpu::BindGroupLayout>,
    /// Each kernel's pipeline and its module's index.
    pub(super) pipelines: HashMap<Kernel, (wgpu::ComputePipeline, usize)>,
    pub(super) params: wgpu::Buffer,
    /// What a slot a kernel does not touch is bound to: `dummy[0]` for every read-only slot,
    /// `dummy[1 + i]` for the i-th read-write one (a buffer may be bound read-write once per
    /// dispatch next to read-only uses of others only).
    pub(super) dummy: [GpuBuf; 1 + MAX_RW],
    pub(super) partials: GpuBuf,
    pub(super) results: GpuBuf,
    /// The attention backward kernels' per-(sequence, head, query) scalars (3 each), grown to
    /// the largest pass seen; locked from the first kernel of a pass to the second, so two
    /// threads' passes do not interleave on it.
    pub(super) attn_scratch: Mutex<Option<GpuBuf>>,
    /// The partial products of the parallel split-K matmul (see `split_k`).
    pub(super) gemm_scratch: Mutex<Option<GpuBuf>>,
    pub(super) readback: wgpu::Buffer,
    pub(super) max_binding: u64,
    pub(super) error: Arc<Mutex<Option<String>>>,
    pub(super) state: Mutex<State>,
    /// Held from recording a reduction to reading its result: `partials` and `results` are
    /// shared, so two threads' reductions must not interleave.
    pub(super) reduce_lock: Mutex<()>,
    /// Held for a whole read-back: `readback` is shared and must not be mapped while another
    /// thread submits a copy into it.
    pub(super) read_lock: Mutex<()>,
}

impl GpuBackend {
    /// Command buffers submitted so far (the HVP test counts them).
    pub fn submits(&self) -> u64 {
        self.state().map(|s| s.submits).unwrap_or(0)
    }

    pub(super) fn state(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.inner
            .state
            .lock()
            .map_err(|_| gpu_err("GPU state poisoned by an earlier panic"))
    }

    pub(super) fn reduce_guard(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.inner
            .reduce_lock
            .lock()
            .map_err(|_| gpu_err("GPU reduction lock poisoned"))
    }

    pub(super) fn check_error(&self) -> Result<()> {
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

    pub(super) fn make_buffer(&self, len: usize, data: Option<&[f32]>) -> Result<GpuBuf> {
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

    /// Record one dispatch of `k` with the parameter block `p` and the buffers `bufs` of its
    /// module's layout (a slot left `None` gets a dummy). Errors: `k` is not of that module (a
    /// bug), or what an earlier submit left.
    pub(super) fn run<B: Bindings>(
        &self,
        k: Kernel,
        p: &B::Params,
        bufs: B,
        groups: [u32; 3],
    ) -> Result<()> {
        if groups.contains(&0) {
            return Ok(());
        }
        let inner = &*self.inner;
        let layout = B::LAYOUT;
        let (pipeline, module) = match inner.pipelines.get(&k) {
            Some((pl, m)) if super::kernels::LAYOUTS[*m].name == layout.name => (pl, *m),
            _ => {
                return Err(gpu_err(format!(
                    "kernel {k:?} dispatched with the bindings of {}",
                    layout.name
                )));
            }
        };
        let slots = bufs.slots();
        let mut st = self.state()?;
        if st.slots == SLOTS {
            self.submit(&mut st)?;
        }
        let slot = st.slots;
        let bytes = bytemuck::bytes_of(p);
        st.params[slot * SLOT..slot * SLOT + bytes.len()].copy_from_slice(bytes);
        st.slots += 1;
        st.dispatches += 1;
        // The buffer of each binding: the caller's, else a dummy (read-write ones distinct).
        let mut rw = 0;
        let picked: Vec<&GpuBuf> = layout
            .bindings
            .iter()
            .zip(slots)
            .map(|(&(_, access), b)| {
                let d = match access {
                    Access::Read => &inner.dummy[0],
                    Access::ReadWrite => {
                        rw += 1;
                        &inner.dummy[rw.min(MAX_RW)]
                    }
                };
                b.unwrap_or(d)
            })
            .collect();
        let mut key = [0u64; MAX_STORAGE + 1];
        key[0] = module as u64;
        for (k, b) in key[1..].iter_mut().zip(&picked) {
            *k = b.id;
        }
        if st.bind_groups.len() >= BIND_GROUP_CACHE && !st.bind_groups.contains_key(&key) {
            st.bind_groups.clear();
        }
        let State {
            encoder,
            bind_groups,
            ..
        } = &mut *st;
        let bg = bind_groups.entry(key).or_insert_with(|| {
            let entries: Vec<wgpu::BindGroupEntry> = picked
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.buf.as_entire_binding(),
                })
                .chain(std::iter::once(wgpu::BindGroupEntry {
                    binding: picked.len() as u32,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &inner.params,
                        offset: 0,
                        size: wgpu::BufferSize::new(layout.params as u64),
                    }),
                }))
                .collect();
            inner.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(layout.name),
                layout: &inner.layouts[module],
                entries: &entries,
            })
        });
        let enc =
            encoder.get_or_insert_with(|| inner.device.create_command_encoder(&Default::default()));
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &*bg, &[(slot * SLOT) as u32]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        Ok(())
    }

    /// One kernel of `vector.wgsl` over `len` elements of y (at its offset), reading x (axpy) or y
    /// alone (scale, rsqrt, fill), with the scalar `alpha`. The ranges are the caller's to check.
    pub(super) fn vector_op(
        &self,
        k: Kernel,
        x: Option<(&GpuBuf, usize)>,
        y: (&GpuBuf, usize),
        len: usize,
        alpha: f64,
    ) -> Result<()> {
        let p = VectorParams {
            off_x: u(x.map_or(0, |(_, o)| o), "offset")?,
            off_y: u(y.1, "offset")?,
            len: u(len, "length")?,
            alpha: alpha as f32,
            ..Default::default()
        };
        let bufs = VectorBufs {
            x: x.map(|(b, _)| b),
            y: Some(y.0),
        };
        self.run(k, &p, bufs, GpuBackend::groups_1d(len))
    }

    /// Submit what is recorded: the parameter block first (queue writes land before the
    /// command buffer they precede), then the encoder.
    pub(super) fn submit(&self, st: &mut State) -> Result<()> {
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
    pub(super) fn read(&self, buf: &GpuBuf, off: usize, len: usize) -> Result<Vec<f32>> {
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
    pub(super) fn with_attn_scratch<R>(
        &self,
        len: usize,
        f: impl FnOnce(&GpuBuf) -> Result<R>,
    ) -> Result<R> {
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
    pub(super) fn with_gemm_scratch<R>(
        &self,
        len: usize,
        f: impl FnOnce(&GpuBuf) -> Result<R>,
    ) -> Result<R> {
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

    pub(super) fn groups_1d(n: usize) -> [u32; 3] {
        let g = n.div_ceil(256).max(1);
        let x = g.min(65535);
        [x as u32, g.div_ceil(x) as u32, 1]
    }

    /// Record reductions of `x[off..off+len]` (· `y` when given; else a count of non-finite
    /// values) into `results[slot]`.
    pub(super) fn reduce_into(
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
    pub(super) fn reduce_to(
        &self,
        x: &GpuBuf,
        x_off: usize,
        y: Option<(&GpuBuf, usize)>,
        len: usize,
        out: &GpuBuf,
        out_off: usize,
    ) -> Result<()> {
        let groups = (len.div_ceil(256) as u32).clamp(1, PARTIALS);
        let p = ReduceParams {
            off_x: x_off as u32,
            off_y: y.map_or(0, |(_, o)| o as u32),
            len: len as u32,
            flags: if y.is_some() { 0 } else { 1 },
            ..Default::default()
        };
        let partials = Some(&self.inner.partials);
        let bufs = ReduceBufs {
            x: Some(x),
            y: y.map(|(b, _)| b),
            out: partials,
        };
        self.run(Kernel::ReducePartial, &p, bufs, [groups, 1, 1])?;
        let p2 = ReduceParams {
            len: groups,
            off_out: out_off as u32,
            ..Default::default()
        };
        let bufs = ReduceBufs {
            x: partials,
            y: None,
            out: Some(out),
        };
        self.run(Kernel::ReduceFinal, &p2, bufs, [1, 1, 1])
    }
}

/// A kernel's operand: `len` scalars of `buf` from `off`, checked (the error names `what`), and
/// the offset as the kernels read it. Errors: out of range, or an offset past u32.
pub(super) fn operand(what: &str, buf: &GpuBuf, off: usize, len: usize) -> Result<u32> {
    check_range(what, buf.len, off, len)?;
    u(off, "offset")
}

/// [`Backend::write`](crate::backend::Backend::write) on this backend.
pub(super) fn write(be: &GpuBackend, buf: &mut GpuBuf, off: usize, data: &[f64]) -> Result<()> {
    check_range("write", buf.len, off, data.len())?;
    if data.is_empty() {
        return Ok(());
    }
    let f: Vec<f32> = data.iter().map(|&x| x as f32).collect();
    let mut st = be.state()?;
    // A queue write runs before the commands of the next submit: submit what is recorded
    // first, so that work recorded before this write sees the old values.
    be.submit(&mut st)?;
    be.inner
        .queue
        .write_buffer(&buf.buf, (off * 4) as u64, bytemuck::cast_slice(&f));
    st.uploads += 1;
    st.bytes_uploaded += 4 * data.len() as u64;
    Ok(())
}

/// [`Backend::input_write`](crate::backend::Backend::input_write) on this backend.
pub(super) fn input_write(
    be: &GpuBackend,
    x: &mut GpuInput,
    data: &[f64],
    rows: usize,
    cols: usize,
) -> Result<()> {
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(Error::Shape(format!(
            "input of {} values is not {rows}×{cols}",
            data.len()
        )));
    }
    if x.cols == cols && x.buf.len == data.len() {
        be.write(&mut x.buf, 0, data)
    } else {
        *x = be.input(data, rows, cols)?;
        Ok(())
    }
}

/// [`Backend::transfers`](crate::backend::Backend::transfers) on this backend.
pub(super) fn transfers(be: &GpuBackend) -> Option<Transfers> {
    be.state().ok().map(|s| crate::backend::Transfers {
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

/// [`Backend::copy`](crate::backend::Backend::copy) on this backend.
pub(super) fn copy(
    be: &GpuBackend,
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
    let inner = &*be.inner;
    let mut st = be.state()?;
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

/// [`Backend::fill`](crate::backend::Backend::fill) on this backend.
pub(super) fn fill(
    be: &GpuBackend,
    x: &mut GpuBuf,
    off: usize,
    len: usize,
    value: f64,
) -> Result<()> {
    check_range("fill", x.len, off, len)?;
    be.vector_op(Kernel::Fill, None, (x, off), len, value)
}

/// [`Backend::sync`](crate::backend::Backend::sync) on this backend.
pub(super) fn sync(be: &GpuBackend) -> Result<()> {
    {
        let mut st = be.state()?;
        be.submit(&mut st)?;
    }
    be.inner
        .device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| gpu_err(format!("waiting for the GPU: {e}")))?;
    be.check_error()
}
