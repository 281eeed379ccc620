//! The engine: any [`Graph`] bound to a data set on a backend, with loss, accuracy, gradient and
//! the exact Hessian-vector product by forward-over-reverse differentiation (Pearlmutter's
//! R-operator pushed through every op's forward and backward pass, [`crate::nn::ops`]).
//!
//! [`Engine::set_params`] runs the forward and backward pass over all samples in chunks. When the
//! activations and gradients of all n samples fit the cache budget ([`cache_budget`]; fc-tanh on
//! MNIST-5k: 49 MB in f64) they are kept, and every [`Engine::hvp`] at those parameters needs only the R-forward and
//! R-backward passes; otherwise (cnn-relu on CIFAR10-5k in f64: 5 GB) each HVP recomputes the forward and
//! backward pass of a chunk before its R-passes, so memory stays bounded by the chunk whatever n is.

//!
//! Layout: this file holds the engine's state, construction, accessors and entry points;
//! `input.rs` the data in the form the first op reads; `passes.rs` the forward, backward and
//! R-passes, loops over the graph through each op's [`crate::nn::ops::OpRule`]. The memory
//! layout ([`Plan`]: cache or recompute, the chunk) is decided by [`crate::mem`] before anything
//! is allocated.

mod input;
mod passes;
mod tokens;

use super::graph::Graph;
use super::model::ModelSpec;
use super::ops::loss::Loss;
use super::ops::{Kinks, Ten, TenMut, need};
use crate::backend::{Backend, LossKind};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use input::{DataInput, data_input, write_input};
use tokens::TokenPlan;

pub use crate::mem::{Cache, Plan, SCRATCH_BUDGET, cache_budget};

/// Loss and accuracy at the current parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Eval {
    pub loss: f64,
    pub accuracy: f64,
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
    /// Kinks counted by the forward pass while [`Engine::count_kinks`] runs (None otherwise).
    probe: Option<Kinks>,
    /// How the ops run on packed live tokens (a masked sequence model on a backend that packs,
    /// [`tokens`]); None: every op on padded rows.
    tokens: Option<TokenPlan>,
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
        // The first op reads the data set; the passes give no R{x} or ∂L/∂x to it.
        need(graph.data_form())?;
        if backend.adapter().is_some() {
            refuse_without_wgsl(&spec, &graph)?;
        }
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
            if graph.shares_slot(t) {
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
        let tokens = if b.packs_tokens() {
            TokenPlan::new(&graph)
        } else {
            None
        };
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
                scale: 1.0 / n as f64,
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
            probe: None,
            tokens,
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

    /// Whether the passes run on packed live tokens (a masked sequence model on a backend that
    /// packs them, [`Backend::packs_tokens`]; issue 33).
    pub fn packs_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Run a masked sequence model on its packed live tokens (`true`, the default where the
    /// backend packs) or in the padded form (`false`: every op at all T positions, as before
    /// issue 33; the two agree to round-off, and the tests compare them). The parameters must
    /// be set again afterwards.
    pub fn set_packing(&mut self, on: bool) {
        self.tokens = if on && self.backend.packs_tokens() && self.input.packed() {
            TokenPlan::new(&self.graph)
        } else {
            None
        };
        self.eval = None;
        self.deferred = false;
    }

    /// Parameters set: settled, or deferred (∇L and HVPs are ready either way).
    pub(super) fn ready(&self) -> Result<()> {
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
        self.hvp_rows(Ten(v, v_off), rows, TenMut(out, out_off))?;
        self.hvps += rows;
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

fn not_ready() -> Error {
    Error::InvalidArgument("the engine has no parameters yet: call set_params first".into())
}

/// An engine on a GPU refuses, before it allocates anything, a graph with an op that has no WGSL
/// kernel ([`crate::nn::ops::Layer::wgsl_missing`]): the error names the op and the way out.
fn refuse_without_wgsl(spec: &ModelSpec, graph: &Graph) -> Result<()> {
    for (t, op) in graph.ops.iter().enumerate() {
        if let Some(what) = op.layer().wgsl_missing() {
            return Err(Error::InvalidArgument(format!(
                "{}: op {t} ({what}) has no WGSL kernel yet; run this model with `--backend cpu`",
                spec.name()
            )));
        }
    }
    Ok(())
}
