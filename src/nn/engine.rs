//! The engine: any [`Graph`] bound to a data set on a backend, with loss, accuracy, gradient and
//! the exact Hessian-vector product by forward-over-reverse differentiation (Pearlmutter's
//! R-operator pushed through every op's forward and backward pass, [`crate::nn::ops`]).
//!
//! [`Engine::set_params`] runs the forward and backward pass over all samples in chunks. When the
//! activations and gradients of all n samples fit the cache budget ([`cache_budget`]; fc-tanh on
//! MNIST-5k: 49 MB in f64) they are kept, and every [`Engine::hvp`] at those parameters needs only the R-forward and
//! R-backward passes; otherwise (cnn-relu on CIFAR10-5k in f64: 5 GB) each HVP recomputes the forward and
//! backward pass of a chunk before its R-passes, so memory stays bounded by the chunk whatever n is.

use super::graph::{Graph, Op};
use super::model::ModelSpec;
use super::ops::loss::Loss;
use super::ops::{Input, Ten, TenMut};
use crate::backend::{Backend, LossKind};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};

/// Loss and accuracy at the current parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Eval {
    pub loss: f64,
    pub accuracy: f64,
}

/// Whether the engine keeps every sample's activations between HVPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Cache {
    /// Keep them when they fit [`cache_budget`] and the backend's buffer limit.
    #[default]
    Auto,
    /// Keep them (fastest HVP; n × the per-sample activations and gradients).
    All,
    /// Recompute a chunk's forward and backward pass inside every HVP (bounded memory).
    PerChunk,
}

/// Bytes the cached activations and gradients may take under [`Cache::Auto`]: a quarter of the
/// memory available, at most 4 GiB (1 GiB where the available memory is unknown). cnn-relu on
/// 4000 CIFAR-10 images needs 2.5 GB in f32 (cached on a machine with 10 GB free) and 5 GB in f64
/// (recomputed per chunk).
pub fn cache_budget() -> f64 {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    crate::mem::available().map_or(GIB, |a| (0.25 * a).min(4.0 * GIB))
}
/// Bytes the per-chunk scratch may take when the chunk is chosen automatically.
pub const SCRATCH_BUDGET: f64 = 256.0 * 1024.0 * 1024.0;

/// How an engine lays out its memory for `n` samples: decided before anything is allocated, so
/// a memory check ([`crate::mem`]) can say what a run needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub cached: bool,
    /// Samples per chunk of the passes.
    pub chunk: usize,
    /// Scalars the engine allocates (data, targets, θ, gradient, caches, scratch).
    pub scalars: usize,
}

/// True if op t writes its output over its input's slot: an in-place activation whose input no
/// residual add reads later.
fn shares_slot(g: &Graph, t: usize) -> bool {
    t > 0 && g.ops[t].in_place() && !g.is_skip_source(t - 1)
}

/// Scalars per sample of the graph's values (in-place ops share), gradients and what the ops
/// keep besides (arg-max indices, attention probabilities).
fn per_sample_cache(g: &Graph) -> usize {
    let mut s = 0;
    for (t, op) in g.ops.iter().enumerate() {
        if !shares_slot(g, t) {
            s += op.out_width();
        }
        s += op.out_width() + op.aux_width();
    }
    s
}

/// Scalars per sample of the R-passes' scratch.
fn per_sample_scratch(g: &Graph) -> usize {
    2 * g.ops.iter().map(|o| o.out_width()).sum::<usize>()
        + g.ops.iter().map(|o| o.scratch_width()).max().unwrap_or(0)
}

impl Plan {
    /// The layout for `n` samples of `graph` with a scalar of `elem` bytes. `chunk` 0 leaves the
    /// chunk to the backend (`default_chunk`, shrunk to fit [`SCRATCH_BUDGET`] and `max_buffer`).
    pub fn new(
        graph: &Graph,
        n: usize,
        chunk: usize,
        cache: Cache,
        elem: usize,
        default_chunk: usize,
        max_buffer: usize,
    ) -> Plan {
        let n = n.max(1);
        let cache_s = per_sample_cache(graph);
        let scratch_s = per_sample_scratch(graph);
        let widest = graph
            .ops
            .iter()
            .map(|o| o.out_width().max(o.scratch_width()).max(o.aux_width()))
            .max()
            .unwrap_or(1)
            .max(1);
        let fits_cache =
            (n * cache_s * elem) as f64 <= cache_budget() && n.saturating_mul(widest) <= max_buffer;
        let cached = match cache {
            Cache::All => true,
            Cache::PerChunk => false,
            Cache::Auto => fits_cache,
        };
        let chunk = if chunk == 0 {
            let per = (scratch_s + if cached { 0 } else { cache_s }).max(1) * elem;
            let by_budget = ((SCRATCH_BUDGET / per as f64) as usize).max(1);
            default_chunk
                .min(by_budget)
                .min((max_buffer / widest).max(1))
        } else {
            chunk
        }
        .clamp(1, n);
        let rows = if cached { n } else { chunk };
        let p = graph.num_params();
        let scalars =
            n * (graph.input + graph.output()) + 2 * p + rows * cache_s + chunk * scratch_s + 4;
        Plan {
            cached,
            chunk,
            scalars,
        }
    }
}

/// The data as the first op reads it.
enum DataInput<B: Backend> {
    /// Features for a fully connected first layer (the CPU's sparse form where it applies).
    Features(B::Input),
    /// Images in NHWC for a convolution.
    Images(B::Buf),
    /// Token ids (one scalar per position) for an embedding, with each chunk's positions grouped
    /// by id for the embedding's gradient ([`crate::backend::TokenIndex`]), chunk i at rows
    /// i·chunk...
    Tokens {
        ids: B::Buf,
        seq: usize,
        index: Vec<(B::Buf, B::Buf)>,
    },
}

/// The model bound to a data set on a backend, with the caches the HVP needs.
pub struct Engine<B: Backend> {
    backend: B,
    spec: ModelSpec,
    graph: Graph,
    loss: Loss,
    n: usize,
    plan: Plan,
    input: DataInput<B>,
    t: B::Buf,
    theta: B::Buf,
    grad: B::Buf,
    /// Value slots (an in-place op's output shares its input's slot) and tensor → slot.
    val: Vec<B::Buf>,
    vslot: Vec<usize>,
    /// ∂L/∂(tensor t), per tensor.
    grd: Vec<B::Buf>,
    /// What each op keeps besides its output (a pooling's arg-max, attention's P; empty elsewhere).
    aux: Vec<B::Buf>,
    /// For each tensor, the residual adds that read it.
    skips: Vec<Vec<usize>>,
    /// R{tensor t} and R{∂L/∂ tensor t}, per tensor, one chunk of rows.
    rval: Vec<B::Buf>,
    rgrd: Vec<B::Buf>,
    col: B::Buf,
    stats: B::Buf,
    scratch_stats: B::Buf,
    eval: Option<Eval>,
    /// Parameters set by [`Engine::set_params_deferred`], statistics not read yet.
    deferred: bool,
    /// The most directions stacked into one R-pass (the backend's preference by default).
    max_block: usize,
    hvps: usize,
}

/// `(&v[r], &mut v[w])` for r ≠ w.
fn two<T>(v: &mut [T], r: usize, w: usize) -> (&T, &mut T) {
    debug_assert_ne!(r, w);
    if r < w {
        let (a, b) = v.split_at_mut(w);
        (&a[r], &mut b[0])
    } else {
        let (a, b) = v.split_at_mut(r);
        (&b[0], &mut a[w])
    }
}

/// [`DataInput`] on the host, before it is uploaded.
enum HostInput {
    Features,
    Images(Vec<f64>),
    Tokens {
        seq: usize,
        index: Vec<(Vec<f64>, Vec<f64>)>,
    },
}

/// The data set in the layout the graph's first op reads: CHW features become NHWC images for a
/// convolution; token ids are checked and indexed per chunk of `chunk` rows.
fn data_input<B: Backend>(
    backend: &B,
    graph: &Graph,
    data: &Dataset,
    chunk: usize,
) -> Result<DataInput<B>> {
    Ok(match host_input(graph, data, chunk)? {
        HostInput::Features => DataInput::Features(backend.input(&data.x, data.n, data.d)?),
        HostInput::Images(x) => DataInput::Images(backend.upload(&x)?),
        HostInput::Tokens { seq, index } => DataInput::Tokens {
            ids: backend.upload(&data.x)?,
            seq,
            index: index
                .iter()
                .map(|(s, o)| Ok((backend.upload(s)?, backend.upload(o)?)))
                .collect::<Result<_>>()?,
        },
    })
}

/// Another data set of the same shape into `into`'s buffers ([`Backend::write`], no allocation
/// on a device), or uploaded afresh where a size differs.
fn write_input<B: Backend>(
    backend: &B,
    into: &mut DataInput<B>,
    graph: &Graph,
    data: &Dataset,
    chunk: usize,
) -> Result<()> {
    let host = host_input(graph, data, chunk)?;
    let fits = match (&*into, &host) {
        (DataInput::Features(_), HostInput::Features) => true,
        (DataInput::Images(b), HostInput::Images(x)) => backend.len(b) == x.len(),
        (DataInput::Tokens { ids, index, .. }, HostInput::Tokens { index: hi, .. }) => {
            backend.len(ids) == data.x.len()
                && index.len() == hi.len()
                && index.iter().zip(hi).all(|((s, o), (hs, ho))| {
                    backend.len(s) == hs.len() && backend.len(o) == ho.len()
                })
        }
        _ => false,
    };
    if !fits {
        *into = data_input(backend, graph, data, chunk)?;
        return Ok(());
    }
    match (into, host) {
        (DataInput::Features(x), _) => backend.input_write(x, &data.x, data.n, data.d),
        (DataInput::Images(b), HostInput::Images(x)) => backend.write(b, 0, &x),
        (DataInput::Tokens { ids, index, .. }, HostInput::Tokens { index: hi, .. }) => {
            backend.write(ids, 0, &data.x)?;
            for ((s, o), (hs, ho)) in index.iter_mut().zip(&hi) {
                backend.write(s, 0, hs)?;
                backend.write(o, 0, ho)?;
            }
            Ok(())
        }
        _ => Err(Error::Shape("write_input: the input's kind changed".into())),
    }
}

/// The host form of [`data_input`] (checks the token ids).
fn host_input(graph: &Graph, data: &Dataset, chunk: usize) -> Result<HostInput> {
    if let Some((vocab, seq)) = graph.tokens() {
        if let Some((i, bad)) = data
            .x
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.fract() == 0.0 && **v >= 0.0 && (**v as usize) < vocab))
        {
            return Err(Error::Shape(format!(
                "token id {bad} at sample {}, position {} is not an integer in 0..{vocab} (the model's vocabulary): the data and the weights come from different vocabularies",
                i / seq,
                i % seq
            )));
        }
        if chunk.max(1) * seq > 1 << 24 {
            return Err(Error::Shape(format!(
                "{} positions per chunk ({} sequences of {seq}): the token index stores positions as scalars, exact in f32 below 2^24; use a smaller --chunk",
                chunk * seq,
                chunk
            )));
        }
        let mut index = Vec::new();
        for rows in data.x.chunks(chunk.max(1) * seq) {
            let ti = crate::backend::TokenIndex::new(rows, vocab);
            index.push((ti.start, ti.order));
        }
        return Ok(HostInput::Tokens { seq, index });
    }
    match graph.image_input() {
        Some((c, h, w)) => {
            let hw = h * w;
            let mut x = vec![0.0; data.x.len()];
            for (src, dst) in data.x.chunks_exact(c * hw).zip(x.chunks_exact_mut(c * hw)) {
                for ch in 0..c {
                    for p in 0..hw {
                        dst[p * c + ch] = src[ch * hw + p];
                    }
                }
            }
            Ok(HostInput::Images(x))
        }
        None => Ok(HostInput::Features),
    }
}

impl<B: Backend + Clone> Engine<B> {
    /// Bind `spec` to `data` on `backend`. `chunk` bounds the samples processed at once (0: the
    /// backend's choice, within [`SCRATCH_BUDGET`]); activations are cached under [`Cache::Auto`].
    pub fn new(
        backend: B,
        spec: impl Into<ModelSpec>,
        loss: LossKind,
        data: &Dataset,
        chunk: usize,
    ) -> Result<Self> {
        Self::with_cache(backend, spec, loss, data, chunk, Cache::Auto)
    }

    /// [`Engine::new`] with an explicit cache policy.
    pub fn with_cache(
        backend: B,
        spec: impl Into<ModelSpec>,
        loss: LossKind,
        data: &Dataset,
        chunk: usize,
        cache: Cache,
    ) -> Result<Self> {
        let spec = spec.into();
        if data.d != spec.input_dim() || data.classes != spec.output_dim() {
            return Err(Error::Shape(format!(
                "the network {} takes {} inputs and gives {} outputs; the data set has {} features and {} classes (pair fc-tanh with mnist, cnn-relu with cifar10, the transformer with sst2)",
                spec.describe(),
                spec.input_dim(),
                spec.output_dim(),
                data.d,
                data.classes
            )));
        }
        if data.n == 0 {
            return Err(Error::InvalidArgument("the data set is empty".into()));
        }
        let graph = spec.graph();
        let n = data.n;
        let b = &backend;
        let plan = Plan::new(
            &graph,
            n,
            chunk,
            cache,
            b.precision().bytes(),
            b.default_chunk(),
            b.max_buffer_len(),
        );
        let rows = if plan.cached { n } else { plan.chunk };
        let ch = plan.chunk;
        let mut val = Vec::new();
        let mut vslot = Vec::new();
        let mut grd = Vec::new();
        let mut aux = Vec::new();
        let mut rval = Vec::new();
        let mut rgrd = Vec::new();
        let mut skips = vec![Vec::new(); graph.ops.len()];
        for (t, op) in graph.ops.iter().enumerate() {
            let w = op.out_width();
            if shares_slot(&graph, t) {
                vslot.push(vslot[t - 1]);
            } else {
                vslot.push(val.len());
                val.push(b.zeros(rows * w)?);
            }
            grd.push(b.zeros(rows * w)?);
            aux.push(b.zeros(rows * op.aux_width())?);
            rval.push(b.zeros(ch * w)?);
            rgrd.push(b.zeros(ch * w)?);
            if let Some(from) = op.skip_from() {
                if from + 1 >= t {
                    return Err(Error::Shape(format!(
                        "op {t} adds tensor {from}: a residual must come from before the previous op"
                    )));
                }
                skips[from].push(t);
            }
        }
        let col_w = graph
            .ops
            .iter()
            .map(|o| o.scratch_width())
            .max()
            .unwrap_or(0);
        let p = graph.num_params();
        let max_block = b.preferred_block();
        Ok(Engine {
            input: data_input(b, &graph, data, ch)?,
            t: b.upload(&data.y)?,
            theta: b.zeros(p)?,
            grad: b.zeros(p)?,
            col: b.zeros(ch * col_w)?,
            stats: b.zeros(3)?,
            scratch_stats: b.zeros(2)?,
            loss: Loss {
                kind: loss,
                classes: graph.output(),
            },
            backend,
            spec,
            graph,
            n,
            plan,
            val,
            vslot,
            grd,
            aux,
            skips,
            rval,
            rgrd,
            eval: None,
            deferred: false,
            max_block,
            hvps: 0,
        })
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    pub fn loss_kind(&self) -> LossKind {
        self.loss.kind
    }
    pub fn num_params(&self) -> usize {
        self.graph.num_params()
    }
    /// Samples per chunk of the passes.
    pub fn chunk(&self) -> usize {
        self.plan.chunk
    }
    /// The memory layout chosen at construction.
    pub fn plan(&self) -> Plan {
        self.plan
    }
    pub fn num_samples(&self) -> usize {
        self.n
    }
    /// HVPs computed since the engine was made.
    pub fn hvp_count(&self) -> usize {
        self.hvps
    }
    /// The parameters of the last [`Engine::set_params`].
    pub fn theta(&self) -> &B::Buf {
        &self.theta
    }
    /// ∇L at the current parameters.
    pub fn grad(&self) -> Result<&B::Buf> {
        self.ready()?;
        Ok(&self.grad)
    }
    /// Loss and accuracy at the current parameters. Errors: no parameters set, or statistics
    /// deferred and not settled yet ([`Engine::settle`]).
    pub fn eval(&self) -> Result<Eval> {
        self.eval.ok_or_else(not_ready)
    }

    /// The most directions [`Engine::hvp_block`] stacks into one R-pass (default: the backend's
    /// [`Backend::preferred_block`]; at least 1). The results do not depend on it, bit for bit;
    /// the tests stack on the CPU too this way.
    pub fn set_max_block(&mut self, directions: usize) {
        self.max_block = directions.max(1);
    }

    /// Parameters set: settled, or deferred (∇L and HVPs are ready either way).
    fn ready(&self) -> Result<()> {
        if self.eval.is_some() || self.deferred {
            Ok(())
        } else {
            Err(not_ready())
        }
    }

    /// Swap in other samples of the same count and shape (a new minibatch); the parameters must
    /// be set again afterwards.
    pub fn replace_data(&mut self, data: &Dataset) -> Result<()> {
        if data.n != self.n
            || data.d != self.spec.input_dim()
            || data.classes != self.spec.output_dim()
        {
            return Err(Error::Shape(format!(
                "replace_data: {} samples of {}→{} for an engine of {} samples of {}→{}",
                data.n,
                data.d,
                data.classes,
                self.n,
                self.spec.input_dim(),
                self.spec.output_dim()
            )));
        }
        write_input(
            &self.backend,
            &mut self.input,
            &self.graph,
            data,
            self.plan.chunk,
        )?;
        self.backend.write(&mut self.t, 0, &data.y)?;
        self.eval = None;
        self.deferred = false;
        Ok(())
    }

    /// Move to parameters θ (host values): forward and backward over all samples.
    pub fn set_params_host(&mut self, theta: &[f64]) -> Result<Eval> {
        if theta.len() != self.num_params() {
            return Err(Error::Shape(format!(
                "θ has {} entries, the network {} has {}",
                theta.len(),
                self.spec.describe(),
                self.num_params()
            )));
        }
        let t = self.backend.upload(theta)?;
        self.set_params(&t)
    }

    /// Move to parameters θ: forward and backward over all samples, caching what the HVP needs.
    /// Returns the full-data loss and accuracy; ∇L is then in [`Engine::grad`]. A non-finite
    /// loss or gradient is an error (the run diverged).
    pub fn set_params(&mut self, theta: &B::Buf) -> Result<Eval> {
        self.set_params_deferred(theta)?;
        // Loss, accuracy and the gradient's non-finite count in one read-back.
        let stats = self.backend.download_range(&self.stats, 0, 3)?;
        self.settle(&stats)
    }

    /// [`Engine::set_params`] without its read-back: ∇L and the HVP's cache are ready, and the
    /// three statistics [Σ loss, Σ correct, non-finite count of ∇L] stay in [`Engine::stats`]
    /// for the caller to read together with other values and hand to [`Engine::settle`], which
    /// gives the loss or the divergence error. [`Engine::eval`] is not ready until then.
    pub fn set_params_deferred(&mut self, theta: &B::Buf) -> Result<()> {
        let p = self.num_params();
        self.eval = None;
        self.deferred = false;
        self.backend.copy(theta, 0, &mut self.theta, 0, p)?;
        self.backend.fill(&mut self.stats, 0, 2, 0.0)?;
        self.backend.fill(&mut self.grad, 0, p, 0.0)?;
        let mut r0 = 0;
        while r0 < self.n {
            let c = self.plan.chunk.min(self.n - r0);
            self.forward_backward_chunk(r0, c, true)?;
            r0 += c;
        }
        self.backend
            .count_nonfinite_into(&self.grad, 0, p, &mut self.stats, 2)?;
        self.deferred = true;
        Ok(())
    }

    /// The buffer whose first 3 elements hold the statistics of the last
    /// [`Engine::set_params_deferred`] (unchanged by HVPs).
    pub fn stats(&self) -> &B::Buf {
        &self.stats
    }

    /// Whether the statistics of the parameters set wait for [`Engine::settle`].
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// Settle deferred statistics with their 3 values read back: the full-data loss and
    /// accuracy, or [`Error::NonFinite`] when the loss or the gradient is not finite (the
    /// parameters are then unusable, as after a failed [`Engine::set_params`]). Errors also when
    /// nothing is deferred or `stats` is short.
    pub fn settle(&mut self, stats: &[f64]) -> Result<Eval> {
        if !self.deferred || stats.len() < 3 {
            return Err(Error::InvalidArgument(format!(
                "Engine::settle: {} statistics for {} deferred parameters",
                stats.len(),
                if self.deferred { "the" } else { "no" }
            )));
        }
        self.deferred = false;
        let eval = Eval {
            loss: stats[0] / self.n as f64,
            accuracy: stats[1] / self.n as f64,
        };
        if !eval.loss.is_finite() || stats[2] != 0.0 {
            return Err(Error::NonFinite(if eval.loss.is_finite() {
                "the gradient is not finite at these parameters".to_string()
            } else {
                format!("the loss is not finite ({}) at these parameters", eval.loss)
            }));
        }
        self.eval = Some(eval);
        Ok(eval)
    }

    /// Forward and backward pass of samples r0..r0+c. With `accumulate` the loss statistics and
    /// ∂L/∂θ are summed (set_params); without, only the per-sample tensors are refreshed (an HVP
    /// that recomputes its chunk).
    fn forward_backward_chunk(&mut self, r0: usize, c: usize, accumulate: bool) -> Result<()> {
        let Engine {
            backend: be,
            graph,
            loss,
            n,
            plan,
            input,
            t: target,
            theta,
            grad,
            val,
            vslot,
            grd,
            aux,
            skips,
            col,
            stats,
            scratch_stats,
            ..
        } = self;
        let ro = if plan.cached { r0 } else { 0 };
        let ci = r0 / plan.chunk;
        let nops = graph.ops.len();
        for (t, op) in graph.ops.iter().enumerate() {
            let (wx, wy) = (op.in_width(), op.out_width());
            if let Op::Act(a) = op {
                need((t > 0).then_some(()))?;
                if vslot[t] != vslot[t - 1] {
                    // SiLU/GELU keep their input (and so does an activation whose input a
                    // residual reads): y = copy of x, then σ in place.
                    let (x, y) = two(val, vslot[t - 1], vslot[t]);
                    be.copy(x, ro * wx, y, ro * wy, c * wy)?;
                }
                a.forward(be, c, TenMut(&mut val[vslot[t]], ro * wy))?;
                continue;
            }
            if let Op::Add(a) = op {
                need((t > 0).then_some(()))?;
                let (x, s, y) = three(val, vslot[t - 1], vslot[a.from], vslot[t]);
                a.forward(be, c, Ten(x, ro * wx), Ten(s, ro * wx), TenMut(y, ro * wy))?;
                continue;
            }
            let (x, y): (Input<B>, &mut B::Buf) = if t == 0 {
                (first_input(input, r0, wx), &mut val[vslot[0]])
            } else {
                let (x, y) = two(val, vslot[t - 1], vslot[t]);
                (Input::Buf(Ten(x, ro * wx)), y)
            };
            let y = TenMut(y, ro * wy);
            match op {
                Op::Linear(l) => l.forward(be, c, x, theta, y)?,
                Op::Conv3x3(cv) => cv.forward(be, c, buf_input(x)?, theta, col, y)?,
                Op::MaxPool2(p) => {
                    p.forward(be, c, buf_input(x)?, y, TenMut(&mut aux[t], ro * wy))?
                }
                Op::Flatten(f) => f.forward(be, c, buf_input(x)?, y)?,
                Op::Embed(e) => e.forward(be, c, buf_input(x)?, Ten(theta, 0), y)?,
                Op::LayerNorm(l) => l.forward(be, c, buf_input(x)?, theta, y)?,
                Op::Attention(a) => {
                    let p = TenMut(&mut aux[t], ro * op.aux_width());
                    a.forward(be, c, token_ids(input, r0)?, buf_input(x)?, y, p)?
                }
                Op::MeanPool(m) => m.forward(be, c, token_ids(input, r0)?, buf_input(x)?, y)?,
                Op::Act(_) | Op::Add(_) => unreachable!("handled above"),
            }
        }
        let last = nops - 1;
        let k = loss.classes;
        loss.forward_vjp(
            be,
            c,
            Ten(&val[vslot[last]], ro * k),
            Ten(target, r0 * k),
            1.0 / *n as f64,
            TenMut(&mut grd[last], ro * k),
            if accumulate { stats } else { scratch_stats },
        )?;
        for t in (0..nops).rev() {
            let op = graph.ops[t];
            let (wx, wy) = (op.in_width(), op.out_width());
            let (gy, gx) = if t > 0 {
                let (gy, gx) = two(grd, t, t - 1);
                (Ten(gy, ro * wy), Some(TenMut(gx, ro * wx)))
            } else {
                (Ten(&grd[0], ro * wy), None)
            };
            let x = op_input(t, input, val, vslot, r0, ro, wx);
            let g = accumulate.then_some(TenMut(&mut *grad, 0));
            match op {
                Op::Linear(l) => l.vjp(be, c, x, theta, gy, g, gx)?,
                Op::Conv3x3(cv) => cv.vjp(be, c, buf_input(x)?, theta, gy, col, g, gx)?,
                Op::Act(a) => {
                    if let Some(gx) = gx {
                        a.vjp(be, c, act_cached(&a, t, val, vslot, ro), gy, gx)?
                    }
                }
                Op::MaxPool2(p) => {
                    if let Some(gx) = gx {
                        p.vjp(be, c, Ten(&aux[t], ro * wy), gy, gx)?
                    }
                }
                Op::Flatten(f) => {
                    if let Some(gx) = gx {
                        f.vjp(be, c, gy, gx)?
                    }
                }
                Op::Embed(e) => {
                    if let Some(g) = g {
                        e.vjp(be, c, token_index(input, ci)?, gy, g)?
                    }
                }
                Op::LayerNorm(l) => l.vjp(be, c, buf_input(x)?, theta, gy, g, need(gx)?, col)?,
                Op::Attention(a) => {
                    let p = Ten(&aux[t], ro * op.aux_width());
                    a.vjp(be, c, buf_input(x)?, p, gy, need(gx)?)?
                }
                Op::MeanPool(m) => m.vjp(be, c, token_ids(input, r0)?, gy, need(gx)?)?,
                Op::Add(_) => {
                    let gx = need(gx)?;
                    be.copy(gy.0, gy.1, gx.0, gx.1, c * wy)?
                }
            }
            if t > 0 {
                add_skips(be, grd, &skips[t - 1], t - 1, ro * wx, c * wx)?;
            }
        }
        Ok(())
    }

    /// out = H v, the exact Hessian of the full-data loss at the current parameters times v
    /// (both in θ's layout, at element offsets `v_off` and `out_off`).
    pub fn hvp(
        &mut self,
        v: &B::Buf,
        v_off: usize,
        out: &mut B::Buf,
        out_off: usize,
    ) -> Result<()> {
        self.hvp_block(v, v_off, 1, out, out_off)
    }

    /// The block HVP: rows r = 0..`rows` of `out` (at `out_off + r·p`) = H times row r of `v`
    /// (at `v_off + r·p`), p = [`Engine::num_params`]. One pass over the data serves all rows:
    /// each chunk's forward and backward pass (recomputed when the activations are not cached)
    /// is done once, then the R-forward and R-backward run op by op for a block of directions at
    /// once, their R-tensors stacked: every fully connected layer's products are batched GEMMs
    /// over the block ([`Backend::gemm_batched`]: one dispatch for all directions on a GPU), the
    /// other ops run per direction. The block is as wide as [`SCRATCH_BUDGET`] allows for the
    /// stacked R-tensors (grown once, then reused). Each row equals [`Engine::hvp`] of that row
    /// bit for bit (the same operations on its data in the same order); the counter
    /// [`Engine::hvp_count`] grows by `rows`. Errors: no parameters set, a range outside a
    /// buffer, the backend's.
    pub fn hvp_block(
        &mut self,
        v: &B::Buf,
        v_off: usize,
        rows: usize,
        out: &mut B::Buf,
        out_off: usize,
    ) -> Result<()> {
        self.ready()?;
        let p = self.num_params();
        crate::backend::check_range("hvp v", self.backend.len(v), v_off, rows * p)?;
        crate::backend::check_range("hvp out", self.backend.len(out), out_off, rows * p)?;
        if rows == 0 {
            return Ok(());
        }
        let width = self.block_width(rows)?;
        self.backend.fill(out, out_off, rows * p, 0.0)?;
        let mut r0 = 0;
        while r0 < self.n {
            let c = self.plan.chunk.min(self.n - r0);
            if !self.plan.cached {
                self.forward_backward_chunk(r0, c, false)?;
            }
            let mut d = 0;
            while d < rows {
                let nb = width.min(rows - d);
                let (vo, oo) = (v_off + d * p, out_off + d * p);
                self.hvp_chunk(r0, c, nb, Ten(v, vo), TenMut(out, oo))?;
                d += nb;
            }
            r0 += c;
        }
        self.hvps += rows;
        Ok(())
    }

    /// Directions per R-pass for a block of `rows`: as many as the stacked R-tensors allow within
    /// [`SCRATCH_BUDGET`] and the backend's largest buffer (at least 1). Grows the R-buffers to
    /// that width (they keep their size afterwards).
    fn block_width(&mut self, rows: usize) -> Result<usize> {
        let ch = self.plan.chunk;
        let bytes = self.backend.precision().bytes();
        let per: usize = self.graph.ops.iter().map(|o| 2 * ch * o.out_width()).sum();
        let widest = self.graph.ops.iter().map(|o| ch * o.out_width()).max();
        let widest = widest.unwrap_or(1).max(1);
        let by_budget = (SCRATCH_BUDGET / (per.max(1) * bytes) as f64) as usize;
        let by_buffer = self.backend.max_buffer_len() / widest;
        let width = rows
            .min(self.max_block)
            .min(by_budget)
            .min(by_buffer)
            .max(1);
        // Directions every R-buffer holds now (the least of them).
        let have = self
            .graph
            .ops
            .iter()
            .enumerate()
            .map(|(t, op)| {
                let per = (ch * op.out_width()).max(1);
                let held = self
                    .backend
                    .len(&self.rval[t])
                    .min(self.backend.len(&self.rgrd[t]));
                held / per
            })
            .min()
            .unwrap_or(1);
        if width > have {
            // All new buffers first: a failed allocation (out of memory) leaves the engine as it
            // was.
            let mut new = Vec::with_capacity(2 * self.graph.ops.len());
            for op in &self.graph.ops {
                let len = width * ch * op.out_width();
                new.push((self.backend.zeros(len)?, self.backend.zeros(len)?));
            }
            for (t, (rv, rg)) in new.into_iter().enumerate() {
                self.rval[t] = rv;
                self.rgrd[t] = rg;
            }
            return Ok(width);
        }
        Ok(have.min(rows).max(1))
    }

    /// The R-forward and R-backward of chunk rows r0..r0+c for `nb` directions: direction i's v
    /// at `v.1 + i·p`, its H·v accumulated at `hv.1 + i·p`, its R-tensors stacked in the
    /// R-buffers at `i·c·width`.
    fn hvp_chunk(
        &mut self,
        r0: usize,
        c: usize,
        nb: usize,
        v: Ten<B>,
        mut hv: TenMut<B>,
    ) -> Result<()> {
        let Engine {
            backend: be,
            graph,
            loss,
            n,
            plan,
            input,
            theta,
            val,
            vslot,
            grd,
            aux,
            skips,
            rval,
            rgrd,
            col,
            ..
        } = self;
        let p = graph.num_params();
        let ro = if plan.cached { r0 } else { 0 };
        let ci = r0 / plan.chunk;
        let nops = graph.ops.len();
        // Direction i's v.
        let vi = |i: usize| Ten(v.0, v.1 + i * p);
        // R-forward.
        for (t, op) in graph.ops.iter().enumerate() {
            let (wx, wy) = (op.in_width(), op.out_width());
            let (sx, sy) = (c * wx, c * wy);
            if let Op::Add(a) = op {
                need((t > 0).then_some(()))?;
                let ss = c * graph.ops[a.from].out_width();
                let (rx, rs, ry) = three(rval, t - 1, a.from, t);
                for i in 0..nb {
                    a.forward(be, c, Ten(rx, i * sx), Ten(rs, i * ss), TenMut(ry, i * sy))?;
                }
                continue;
            }
            let (rx, ry) = if t > 0 {
                let (rx, ry) = two(rval, t - 1, t);
                (Some(rx), ry)
            } else {
                (None, &mut rval[0])
            };
            if let Op::Linear(l) = op {
                let x = op_input(t, input, val, vslot, r0, ro, wx);
                let rx = rx.map(|b| Ten(b, 0));
                l.jvp_block(be, c, nb, x, rx, theta, v, p, TenMut(ry, 0))?;
                continue;
            }
            for i in 0..nb {
                let x = op_input(t, input, val, vslot, r0, ro, wx);
                let rx = rx.map(|b| Ten(b, i * sx));
                let ry = TenMut(&mut *ry, i * sy);
                let v = vi(i);
                match op {
                    Op::Linear(_) | Op::Add(_) => unreachable!("handled above"),
                    Op::Conv3x3(cv) => cv.jvp(be, c, buf_input(x)?, rx, theta, v, col, ry)?,
                    Op::Act(a) => a.jvp(be, c, act_cached(a, t, val, vslot, ro), need(rx)?, ry)?,
                    Op::MaxPool2(mp) => mp.jvp(be, c, Ten(&aux[t], ro * wy), need(rx)?, ry)?,
                    Op::Flatten(f) => f.forward(be, c, need(rx)?, ry)?,
                    Op::Embed(e) => e.forward(be, c, buf_input(x)?, v, ry)?,
                    Op::LayerNorm(l) => l.jvp(be, c, buf_input(x)?, need(rx)?, theta, v, ry)?,
                    Op::Attention(a) => {
                        let pr = Ten(&aux[t], ro * op.aux_width());
                        a.jvp(be, c, buf_input(x)?, pr, need(rx)?, ry)?
                    }
                    Op::MeanPool(m) => m.forward(be, c, token_ids(input, r0)?, need(rx)?, ry)?,
                }
            }
        }
        let last = nops - 1;
        let k = loss.classes;
        for i in 0..nb {
            loss.r_vjp(
                be,
                c,
                Ten(&val[vslot[last]], ro * k),
                Ten(&rval[last], i * c * k),
                1.0 / *n as f64,
                TenMut(&mut rgrd[last], i * c * k),
            )?;
        }
        // R-backward.
        for t in (0..nops).rev() {
            let op = graph.ops[t];
            let (wx, wy) = (op.in_width(), op.out_width());
            let (sx, sy) = (c * wx, c * wy);
            let (rgy, mut rgx) = if t > 0 {
                let (rgy, rgx) = two(rgrd, t, t - 1);
                (rgy, Some(rgx))
            } else {
                (&rgrd[0], None)
            };
            let gy = Ten(&grd[t], ro * wy);
            let rx = (t > 0).then(|| &rval[t - 1]);
            if let Op::Linear(l) = op {
                let x = op_input(t, input, val, vslot, r0, ro, wx);
                let (rx, rgx) = (rx.map(|b| Ten(b, 0)), rgx.map(|b| TenMut(b, 0)));
                l.r_vjp_block(be, c, nb, x, rx, theta, v, p, gy, Ten(rgy, 0), hv.re(), rgx)?;
            } else {
                for i in 0..nb {
                    let x = op_input(t, input, val, vslot, r0, ro, wx);
                    let rgy = Ten(rgy, i * sy);
                    let rgx = rgx.as_mut().map(|b| TenMut(&mut **b, i * sx));
                    let rx = rx.map(|b| Ten(b, i * sx));
                    let v = vi(i);
                    let hv = TenMut(&mut *hv.0, hv.1 + i * p);
                    match op {
                        Op::Linear(_) => unreachable!("handled above"),
                        Op::Conv3x3(cv) => {
                            cv.r_vjp(be, c, buf_input(x)?, rx, theta, v, gy, rgy, col, hv, rgx)?
                        }
                        Op::Act(a) => {
                            if let Some(rgx) = rgx {
                                let cached = act_cached(&a, t, val, vslot, ro);
                                a.r_vjp(be, c, cached, gy, rgy, need(rx)?, rgx)?
                            }
                        }
                        Op::MaxPool2(mp) => {
                            if let Some(rgx) = rgx {
                                mp.vjp(be, c, Ten(&aux[t], ro * wy), rgy, rgx)?
                            }
                        }
                        Op::Flatten(f) => {
                            if let Some(rgx) = rgx {
                                f.vjp(be, c, rgy, rgx)?
                            }
                        }
                        Op::Embed(e) => e.vjp(be, c, token_index(input, ci)?, rgy, hv)?,
                        Op::LayerNorm(l) => {
                            let (x, rx) = (buf_input(x)?, need(rx)?);
                            l.r_vjp(be, c, x, rx, theta, v, gy, rgy, hv, need(rgx)?, col)?
                        }
                        Op::Attention(a) => {
                            let pr = Ten(&aux[t], ro * op.aux_width());
                            a.r_vjp(be, c, buf_input(x)?, pr, need(rx)?, gy, rgy, need(rgx)?)?
                        }
                        Op::MeanPool(m) => m.vjp(be, c, token_ids(input, r0)?, rgy, need(rgx)?)?,
                        Op::Add(_) => {
                            let rgx = need(rgx)?;
                            be.copy(rgy.0, rgy.1, rgx.0, rgx.1, c * wy)?
                        }
                    }
                }
            }
            if t > 0 {
                // The directions are stacked alike in every R-buffer: one add for all.
                add_skips(be, rgrd, &skips[t - 1], t - 1, 0, nb * c * wx)?;
            }
        }
        Ok(())
    }
}

/// The full-data Hessian of an engine at its current parameters.
impl<B: Backend + Clone> crate::hessian::Operator<B> for Engine<B> {
    fn dim(&self) -> usize {
        self.num_params()
    }
    fn apply(&mut self, x: &B::Buf, x_off: usize, y: &mut B::Buf, y_off: usize) -> Result<()> {
        self.hvp(x, x_off, y, y_off)
    }
    fn apply_block(
        &mut self,
        x: &B::Buf,
        x_off: usize,
        rows: usize,
        y: &mut B::Buf,
        y_off: usize,
    ) -> Result<()> {
        self.hvp_block(x, x_off, rows, y, y_off)
    }
}

/// The input of op `t` for the chunk at data row `r0` (row `ro` of the value buffers): the data for
/// the first op, else the value of tensor t − 1.
#[allow(clippy::too_many_arguments)]
fn op_input<'a, B: Backend>(
    t: usize,
    input: &'a DataInput<B>,
    val: &'a [B::Buf],
    vslot: &[usize],
    r0: usize,
    ro: usize,
    wx: usize,
) -> Input<'a, B> {
    if t == 0 {
        first_input(input, r0, wx)
    } else {
        Input::Buf(Ten(&val[vslot[t - 1]], ro * wx))
    }
}

/// What an activation's derivative passes read: its output (tanh, ReLU; the slot it shares with
/// its input) or its input (SiLU, GELU), at row `ro`.
fn act_cached<'a, B: Backend>(
    a: &super::ops::Act,
    t: usize,
    val: &'a [B::Buf],
    vslot: &[usize],
    ro: usize,
) -> Ten<'a, B> {
    let slot = if a.cached_is_output() || t == 0 {
        vslot[t]
    } else {
        vslot[t - 1]
    };
    Ten(&val[slot], ro * a.width)
}

/// The first op's input: the data rows r0.. in the form the op reads.
fn first_input<B: Backend>(input: &DataInput<B>, r0: usize, width: usize) -> Input<'_, B> {
    match input {
        DataInput::Features(x) => Input::Data(x, r0),
        DataInput::Images(b) => Input::Buf(Ten(b, r0 * width)),
        DataInput::Tokens { ids, .. } => Input::Buf(Ten(ids, r0 * width)),
    }
}

/// The token ids of rows r0.. (for the ops that mask padding).
fn token_ids<B: Backend>(input: &DataInput<B>, r0: usize) -> Result<Ten<'_, B>> {
    match input {
        DataInput::Tokens { ids, seq, .. } => Ok(Ten(ids, r0 * seq)),
        _ => Err(no_tokens()),
    }
}

/// The token index of chunk `ci`.
fn token_index<B: Backend>(input: &DataInput<B>, ci: usize) -> Result<(&B::Buf, &B::Buf)> {
    match input {
        DataInput::Tokens { index, .. } => index
            .get(ci)
            .map(|(s, o)| (s, o))
            .ok_or_else(|| Error::Shape(format!("no token index for chunk {ci}"))),
        _ => Err(no_tokens()),
    }
}

fn no_tokens() -> Error {
    Error::InvalidArgument(
        "an embedding, attention or sequence-mean op needs token ids: the graph must start with an embedding".into(),
    )
}

/// `(&v[r1], &v[r2], &mut v[w])` for w different from r1 and r2.
fn three<T>(v: &mut [T], r1: usize, r2: usize, w: usize) -> (&T, &T, &mut T) {
    assert!(w != r1 && w != r2, "three: the written slot is also read");
    let (lo, hi) = v.split_at_mut(w);
    let (y, hi) = hi.split_first_mut().expect("w is in range");
    let a = if r1 < w { &lo[r1] } else { &hi[r1 - w - 1] };
    let b = if r2 < w { &lo[r2] } else { &hi[r2 - w - 1] };
    (a, b, y)
}

/// Add the gradients of the residual adds `adds` (their output gradients) into tensor s's.
fn add_skips<B: Backend>(
    be: &B,
    g: &mut [B::Buf],
    adds: &[usize],
    s: usize,
    off: usize,
    len: usize,
) -> Result<()> {
    for &a in adds {
        let (src, dst) = two(g, a, s);
        be.axpy(1.0, src, off, dst, off, len)?;
    }
    Ok(())
}

/// An op that reads an activation buffer (every op but a fully connected first layer).
fn buf_input<B: Backend>(x: Input<'_, B>) -> Result<Ten<'_, B>> {
    match x {
        Input::Buf(t) => Ok(t),
        Input::Data(..) => Err(Error::InvalidArgument(
            "this op cannot read the data directly: the graph must start with a linear or convolution layer"
                .into(),
        )),
    }
}

fn need<T>(x: Option<T>) -> Result<T> {
    x.ok_or_else(|| {
        Error::InvalidArgument(
            "only a linear, convolution or embedding op can be a graph's first op (it reads the data)".into(),
        )
    })
}

fn not_ready() -> Error {
    Error::InvalidArgument("the engine has no parameters yet: call set_params first".into())
}
