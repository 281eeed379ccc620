//! The fully connected network, written once over [`Backend`]: loss, accuracy, gradient and the
//! exact Hessian-vector product by forward-over-reverse differentiation (Pearlmutter's
//! R-operator pushed through the forward and the backward pass).
//!
//! Layer i maps widths[i] → widths[i+1]: z_i = a_{i-1} W_iᵀ + b_i, a_i = σ(z_i) for hidden
//! layers, f = z_{L-1}. Parameters are laid out exactly as PyTorch's `state_dict` of
//! `fc1.weight [d1, d0]`, `fc1.bias [d1]`, `fc2.weight`, … concatenated.

use crate::backend::{Activation, Backend, LossKind};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};

/// Architecture of a fully connected network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MlpSpec {
    /// Input width, hidden widths…, output width.
    pub widths: Vec<usize>,
    pub activation: Activation,
}

/// Where one layer's parameters live in the flat θ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerLayout {
    pub fan_in: usize,
    pub fan_out: usize,
    /// Offset of the fan_out × fan_in weight matrix (row-major).
    pub w_off: usize,
    /// Offset of the fan_out bias.
    pub b_off: usize,
}

impl MlpSpec {
    /// fc-tanh of Cohen et al.: 784 – 200 – 200 – 10, tanh, p = 199,210.
    pub fn fc_tanh() -> Self {
        MlpSpec {
            widths: vec![784, 200, 200, 10],
            activation: Activation::Tanh,
        }
    }

    pub fn new(widths: Vec<usize>, activation: Activation) -> Result<Self> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(Error::InvalidArgument(format!(
                "widths {widths:?}: need an input and an output width, all positive (e.g. 784,200,200,10)"
            )));
        }
        if widths.iter().any(|&w| w > 1 << 20) {
            return Err(Error::InvalidArgument(format!(
                "widths {widths:?}: a layer wider than 2^20 is not supported"
            )));
        }
        Ok(MlpSpec { widths, activation })
    }

    pub fn input_dim(&self) -> usize {
        self.widths[0]
    }
    pub fn output_dim(&self) -> usize {
        self.widths[self.widths.len() - 1]
    }
    pub fn num_layers(&self) -> usize {
        self.widths.len() - 1
    }

    pub fn layers(&self) -> Vec<LayerLayout> {
        let mut off = 0;
        self.widths
            .windows(2)
            .map(|w| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let l = LayerLayout {
                    fan_in,
                    fan_out,
                    w_off: off,
                    b_off: off + fan_in * fan_out,
                };
                off += fan_in * fan_out + fan_out;
                l
            })
            .collect()
    }

    pub fn num_params(&self) -> usize {
        self.widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// PyTorch's default `nn.Linear` initialisation: every weight and bias of a layer drawn from
    /// U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5 gives this bound for the weights).
    /// Draws come from ChaCha20 seeded with `seed`, layer by layer, weights (row-major) then bias.
    pub fn init(&self, seed: u64) -> Vec<f64> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let mut theta = Vec::with_capacity(self.num_params());
        for l in self.layers() {
            let bound = 1.0 / (l.fan_in as f64).sqrt();
            for _ in 0..(l.fan_in * l.fan_out + l.fan_out) {
                theta.push((2.0 * rng.random::<f64>() - 1.0) * bound);
            }
        }
        theta
    }
}

/// Loss and accuracy at the current parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Eval {
    pub loss: f64,
    pub accuracy: f64,
}

/// The model bound to a data set on a backend, with the caches the HVP needs.
///
/// [`Engine::set_params`] runs the forward and backward pass over all samples once, keeping the
/// activations a, outputs f, ∂L/∂z and ∂L/∂a of every sample; every
/// [`Engine::hvp`] at those parameters then needs only the R-forward and R-backward passes. The
/// caches take n·(3·Σ hidden widths + 2·outputs) scalars (12 MB for fc-tanh on 5000 samples in
/// f32, less than the data); the R-passes work in chunks of `chunk` samples, so their scratch is
/// bounded whatever n is.
pub struct Engine<B: Backend> {
    backend: B,
    spec: MlpSpec,
    layers: Vec<LayerLayout>,
    loss: LossKind,
    n: usize,
    chunk: usize,
    x: B::Input,
    t: B::Buf,
    theta: B::Buf,
    grad: B::Buf,
    // Per-sample caches at θ (n rows each): hidden activations, outputs, ∂L/∂z, ∂L/∂a.
    a: Vec<B::Buf>,
    out: B::Buf,
    g: Vec<B::Buf>,
    da: Vec<B::Buf>,
    // Per-chunk scratch of the R-passes.
    rz: Vec<B::Buf>,
    ra: Vec<B::Buf>,
    rg: Vec<B::Buf>,
    rda: B::Buf,
    stats: B::Buf,
    eval: Option<Eval>,
    hvps: usize,
}

impl<B: Backend + Clone> Engine<B> {
    /// Bind `spec` to `data` on `backend`. `chunk` bounds the samples processed at once by the
    /// HVP (0: the backend's [`Backend::default_chunk`]).
    pub fn new(
        backend: B,
        spec: MlpSpec,
        loss: LossKind,
        data: &Dataset,
        chunk: usize,
    ) -> Result<Self> {
        if data.d != spec.input_dim() || data.classes != spec.output_dim() {
            return Err(Error::Shape(format!(
                "network {:?} does not fit data of {} features and {} classes",
                spec.widths, data.d, data.classes
            )));
        }
        if data.n == 0 {
            return Err(Error::InvalidArgument("the data set is empty".into()));
        }
        let n = data.n;
        let chunk = if chunk == 0 {
            backend.default_chunk()
        } else {
            chunk
        }
        .min(n);
        let layers = spec.layers();
        let nl = layers.len();
        let p = spec.num_params();
        let b = &backend;
        let mut a = Vec::new();
        let mut g = Vec::new();
        let mut da = Vec::new();
        let mut rz = Vec::new();
        let mut ra = Vec::new();
        let mut rg = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            g.push(b.zeros(n * l.fan_out)?);
            rz.push(b.zeros(chunk * l.fan_out)?);
            rg.push(b.zeros(chunk * l.fan_out)?);
            if i + 1 < nl {
                a.push(b.zeros(n * l.fan_out)?);
                da.push(b.zeros(n * l.fan_out)?);
                ra.push(b.zeros(chunk * l.fan_out)?);
            }
        }
        let max_hidden = spec.widths[1..nl].iter().copied().max().unwrap_or(1);
        Ok(Engine {
            x: b.input(&data.x, n, data.d)?,
            t: b.upload(&data.y)?,
            theta: b.zeros(p)?,
            grad: b.zeros(p)?,
            rda: b.zeros(chunk * max_hidden)?,
            out: b.zeros(n * spec.output_dim())?,
            stats: b.zeros(2)?,
            backend,
            spec,
            layers,
            loss,
            n,
            chunk,
            a,
            g,
            da,
            rz,
            ra,
            rg,
            eval: None,
            hvps: 0,
        })
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }
    pub fn loss_kind(&self) -> LossKind {
        self.loss
    }
    pub fn num_params(&self) -> usize {
        self.spec.num_params()
    }
    /// Samples per chunk of the HVP's R-passes.
    pub fn chunk(&self) -> usize {
        self.chunk
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
        self.eval.ok_or_else(not_ready)?;
        Ok(&self.grad)
    }
    /// Loss and accuracy at the current parameters.
    pub fn eval(&self) -> Result<Eval> {
        self.eval.ok_or_else(not_ready)
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
        self.x = self.backend.input(&data.x, data.n, data.d)?;
        self.t = self.backend.upload(&data.y)?;
        self.eval = None;
        Ok(())
    }

    /// Move to parameters θ (host values): forward and backward over all samples.
    pub fn set_params_host(&mut self, theta: &[f64]) -> Result<Eval> {
        if theta.len() != self.num_params() {
            return Err(Error::Shape(format!(
                "θ has {} entries, the network {:?} has {}",
                theta.len(),
                self.spec.widths,
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
        let p = self.num_params();
        self.eval = None;
        self.backend.copy(theta, 0, &mut self.theta, 0, p)?;
        self.backend.fill(&mut self.stats, 0, 2, 0.0)?;
        self.backend.fill(&mut self.grad, 0, p, 0.0)?;
        let mut r0 = 0;
        while r0 < self.n {
            let c = self.chunk.min(self.n - r0);
            self.forward_backward_chunk(r0, c)?;
            r0 += c;
        }
        let stats = self.backend.download(&self.stats)?;
        let eval = Eval {
            loss: stats[0] / self.n as f64,
            accuracy: stats[1] / self.n as f64,
        };
        if !eval.loss.is_finite() || !self.backend.all_finite(&self.grad, 0, p)? {
            return Err(Error::NonFinite(if eval.loss.is_finite() {
                "the gradient is not finite at these parameters".to_string()
            } else {
                format!("the loss is not finite ({}) at these parameters", eval.loss)
            }));
        }
        self.eval = Some(eval);
        Ok(eval)
    }

    fn forward_backward_chunk(&mut self, r0: usize, c: usize) -> Result<()> {
        let b = &self.backend;
        let nl = self.layers.len();
        let act = self.spec.activation;
        for (i, l) in self.layers.iter().enumerate() {
            // z_i = a_{i-1} W_iᵀ, then σ(z_i + b_i) in place (the output layer keeps z + b).
            let hidden = i + 1 < nl;
            let (lo, hi) = self.a.split_at_mut(i);
            let dst = if hidden { &mut hi[0] } else { &mut self.out };
            let z_off = r0 * l.fan_out;
            if i == 0 {
                b.input_gemm_nt(
                    &self.x,
                    r0,
                    c,
                    l.fan_out,
                    1.0,
                    &self.theta,
                    l.w_off,
                    0.0,
                    dst,
                    z_off,
                )?;
            } else {
                b.gemm(
                    false,
                    true,
                    c,
                    l.fan_out,
                    l.fan_in,
                    1.0,
                    &lo[i - 1],
                    r0 * l.fan_in,
                    &self.theta,
                    l.w_off,
                    0.0,
                    dst,
                    z_off,
                )?;
            }
            b.bias_act(
                hidden.then_some(act),
                c,
                l.fan_out,
                &self.theta,
                l.b_off,
                dst,
                z_off,
            )?;
        }
        let out = nl - 1;
        let dout = self.spec.output_dim();
        b.loss_grad(
            self.loss,
            c,
            dout,
            &self.out,
            r0 * dout,
            &self.t,
            r0 * dout,
            1.0 / self.n as f64,
            &mut self.g[out],
            r0 * dout,
            &mut self.stats,
        )?;
        for i in (0..nl).rev() {
            let l = self.layers[i];
            let g_off = r0 * l.fan_out;
            // dW_i += g_iᵀ · a_{i-1}; db_i += Σ_rows g_i.
            if i == 0 {
                b.input_gemm_tn(
                    &self.g[i],
                    g_off,
                    &self.x,
                    r0,
                    c,
                    l.fan_out,
                    1.0,
                    1.0,
                    &mut self.grad,
                    l.w_off,
                )?;
            } else {
                b.gemm(
                    true,
                    false,
                    l.fan_out,
                    l.fan_in,
                    c,
                    1.0,
                    &self.g[i],
                    g_off,
                    &self.a[i - 1],
                    r0 * l.fan_in,
                    1.0,
                    &mut self.grad,
                    l.w_off,
                )?;
            }
            b.col_sum(
                c,
                l.fan_out,
                1.0,
                &self.g[i],
                g_off,
                1.0,
                &mut self.grad,
                l.b_off,
            )?;
            if i > 0 {
                // ∂L/∂a_{i-1} = g_i · W_i; g_{i-1} = ∂L/∂a_{i-1} ⊙ σ'(z_{i-1}).
                let da_off = r0 * l.fan_in;
                b.gemm(
                    false,
                    false,
                    c,
                    l.fan_in,
                    l.fan_out,
                    1.0,
                    &self.g[i],
                    g_off,
                    &self.theta,
                    l.w_off,
                    0.0,
                    &mut self.da[i - 1],
                    da_off,
                )?;
                let (g_lo, _) = self.g.split_at_mut(i);
                b.act_d1_mul(
                    act,
                    c * l.fan_in,
                    &self.a[i - 1],
                    da_off,
                    &self.da[i - 1],
                    da_off,
                    &mut g_lo[i - 1],
                    da_off,
                )?;
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
        self.eval.ok_or_else(not_ready)?;
        let p = self.num_params();
        crate::backend::check_range("hvp v", self.backend.len(v), v_off, p)?;
        self.backend.fill(out, out_off, p, 0.0)?;
        let mut r0 = 0;
        while r0 < self.n {
            let c = self.chunk.min(self.n - r0);
            self.hvp_chunk(r0, c, v, v_off, out, out_off)?;
            r0 += c;
        }
        self.hvps += 1;
        Ok(())
    }

    fn hvp_chunk(
        &mut self,
        r0: usize,
        c: usize,
        v: &B::Buf,
        v_off: usize,
        out: &mut B::Buf,
        out_off: usize,
    ) -> Result<()> {
        let b = &self.backend;
        let nl = self.layers.len();
        let act = self.spec.activation;
        // R-forward: R{z_i} = a_{i-1} Vᵢᵀ + R{a_{i-1}} W_iᵀ + v_b; R{a_i} = σ'(z_i) ⊙ R{z_i}.
        for (i, l) in self.layers.iter().enumerate() {
            if i == 0 {
                b.input_gemm_nt(
                    &self.x,
                    r0,
                    c,
                    l.fan_out,
                    1.0,
                    v,
                    v_off + l.w_off,
                    0.0,
                    &mut self.rz[i],
                    0,
                )?;
            } else {
                b.gemm(
                    false,
                    true,
                    c,
                    l.fan_out,
                    l.fan_in,
                    1.0,
                    &self.a[i - 1],
                    r0 * l.fan_in,
                    v,
                    v_off + l.w_off,
                    0.0,
                    &mut self.rz[i],
                    0,
                )?;
                b.gemm(
                    false,
                    true,
                    c,
                    l.fan_out,
                    l.fan_in,
                    1.0,
                    &self.ra[i - 1],
                    0,
                    &self.theta,
                    l.w_off,
                    1.0,
                    &mut self.rz[i],
                    0,
                )?;
            }
            b.bias_act(None, c, l.fan_out, v, v_off + l.b_off, &mut self.rz[i], 0)?;
            if i + 1 < nl {
                b.act_d1_mul(
                    act,
                    c * l.fan_out,
                    &self.a[i],
                    r0 * l.fan_out,
                    &self.rz[i],
                    0,
                    &mut self.ra[i],
                    0,
                )?;
            }
        }
        let o = nl - 1;
        let dout = self.spec.output_dim();
        b.loss_hess_mul(
            self.loss,
            c,
            dout,
            &self.out,
            r0 * dout,
            &self.rz[o],
            0,
            1.0 / self.n as f64,
            &mut self.rg[o],
            0,
        )?;
        // R-backward.
        for i in (0..nl).rev() {
            let l = self.layers[i];
            let g_off = r0 * l.fan_out;
            // R{dW_i} = R{g_i}ᵀ a_{i-1} + g_iᵀ R{a_{i-1}}; R{db_i} = Σ_rows R{g_i}.
            if i == 0 {
                b.input_gemm_tn(
                    &self.rg[i],
                    0,
                    &self.x,
                    r0,
                    c,
                    l.fan_out,
                    1.0,
                    1.0,
                    out,
                    out_off + l.w_off,
                )?;
            } else {
                b.gemm(
                    true,
                    false,
                    l.fan_out,
                    l.fan_in,
                    c,
                    1.0,
                    &self.rg[i],
                    0,
                    &self.a[i - 1],
                    r0 * l.fan_in,
                    1.0,
                    out,
                    out_off + l.w_off,
                )?;
                b.gemm(
                    true,
                    false,
                    l.fan_out,
                    l.fan_in,
                    c,
                    1.0,
                    &self.g[i],
                    g_off,
                    &self.ra[i - 1],
                    0,
                    1.0,
                    out,
                    out_off + l.w_off,
                )?;
            }
            b.col_sum(
                c,
                l.fan_out,
                1.0,
                &self.rg[i],
                0,
                1.0,
                out,
                out_off + l.b_off,
            )?;
            if i > 0 {
                // R{∂L/∂a_{i-1}} = R{g_i} W_i + g_i V_i;
                // R{g_{i-1}} = R{∂L/∂a} ⊙ σ'(z) + ∂L/∂a ⊙ σ''(z) ⊙ R{z}.
                b.gemm(
                    false,
                    false,
                    c,
                    l.fan_in,
                    l.fan_out,
                    1.0,
                    &self.rg[i],
                    0,
                    &self.theta,
                    l.w_off,
                    0.0,
                    &mut self.rda,
                    0,
                )?;
                b.gemm(
                    false,
                    false,
                    c,
                    l.fan_in,
                    l.fan_out,
                    1.0,
                    &self.g[i],
                    g_off,
                    v,
                    v_off + l.w_off,
                    1.0,
                    &mut self.rda,
                    0,
                )?;
                let (rg_lo, _) = self.rg.split_at_mut(i);
                b.act_d2_r(
                    act,
                    c * l.fan_in,
                    &self.a[i - 1],
                    r0 * l.fan_in,
                    &self.rda,
                    0,
                    &self.da[i - 1],
                    r0 * l.fan_in,
                    &self.rz[i - 1],
                    0,
                    &mut rg_lo[i - 1],
                    0,
                )?;
            }
        }
        Ok(())
    }
}

fn not_ready() -> Error {
    Error::InvalidArgument("the engine has no parameters yet: call set_params first".into())
}
