//! Counting an HVP's floating-point work from the graph (issue 33, "count, don't guess"): each
//! op's products per pass, the time that work takes at the machine's measured dense-GEMM rate,
//! and how far a measured HVP is from it.
//!
//! Only products are counted, at 2 flops per multiply-add: the GEMMs of [`Linear`] and
//! [`Conv3x3`] (an im2col GEMM of samples·oh·ow × taps·c_in × c_out, any kernel, stride and
//! padding: oh·ow are the strided output's), the projection shortcut of [`ProjAdd`] (a conv that
//! reads a hidden tensor) and attention's Q·Kᵀ and P·V
//! products (per sentence L × L × d per head). Elementwise work (activations, pooling, LayerNorm,
//! softmax, biases, im2col, max/average/global-average pooling, residual adds) is not counted: it is what the limit leaves out. With the padding
//! masked a position-wise op acts on the live tokens only and attention on L² pairs per sentence,
//! L the sentence's live tokens (token id ≠ 0), as the varlen form of FlashAttention does.
//!
//! Per pass, in units of one product (u = 2·m·k·o for a layer's GEMM, 2·H·d·Σ L² for attention):
//!
//! | op | forward | ∂x | ∂θ | R-forward | R-backward |
//! |---|---|---|---|---|---|
//! | Linear / conv, first op (reads the data) | 1 | 0 | 1 | 1 (x·Vᵀ) | 1 (R{g}ᵀ x) |
//! | Linear / conv, other | 1 | 1 | 1 | 2 | 4 (R{∂W}: 2, R{∂x}: 2) |
//! | attention | 2 (S, Y) | 4 (dP, dV, dQ, dK) | 0 | 4 (RS: 2, RY: 2) | 11 (RS: 2, dP: 1, R{dP}, R{dQ}, R{dK}, R{dV}: 2 each) |
//!
//! An HVP with cached activations ([`crate::mem::Cache`]) runs the R-passes; one that recomputes
//! each chunk adds the forward and the ∂x pass (the backward of an HVP does not sum ∂θ).

use crate::backend::{Backend, Mat, MatMut};
use crate::data::dataset::Dataset;
use crate::error::Result;
use crate::nn::graph::Op;
use crate::nn::model::ModelSpec;
use std::time::Instant;

/// The rows the ops of a graph see on a data set: samples, and for sequence models the live
/// tokens (Σ L) and Σ L² over the sentences (None: every position of every sequence is live).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rows {
    pub samples: usize,
    /// (Σ L, Σ L²) over the samples' sentences when the padding is masked.
    pub live: Option<(usize, usize)>,
}

impl Rows {
    /// Every position live (an unmasked model, or a count per sample).
    pub fn dense(samples: usize) -> Rows {
        Rows {
            samples,
            live: None,
        }
    }

    /// The rows of `spec` on `data`: the live tokens (id ≠ 0 in each sample's row of token ids)
    /// when the graph masks its padding, else [`Rows::dense`].
    pub fn of(spec: &ModelSpec, data: &Dataset) -> Rows {
        let masked = spec.graph().ops.iter().any(|op| match op {
            Op::Attention(a) => a.masked,
            Op::MeanPool(m) => m.masked,
            _ => false,
        });
        if !masked || data.d == 0 {
            return Rows::dense(data.n);
        }
        let (mut sum, mut sq) = (0usize, 0usize);
        for row in data.x.chunks(data.d).take(data.n) {
            let l = row.iter().filter(|&&id| id != 0.0).count();
            sum += l;
            sq += l * l;
        }
        Rows {
            samples: data.n,
            live: Some((sum, sq)),
        }
    }

    /// Rows of a position-wise op over sequences of `seq` positions.
    fn positions(&self, seq: usize) -> usize {
        match (seq, self.live) {
            (1, _) | (_, None) => self.samples * seq,
            (_, Some((sum, _))) => sum,
        }
    }

    /// Σ L² over the sentences of `seq` positions.
    fn pairs(&self, seq: usize) -> usize {
        match self.live {
            None => self.samples * seq * seq,
            Some((_, sq)) => sq,
        }
    }
}

/// Flops of one op, per pass, on all the rows (2 per multiply-add; see the module's table).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OpFlops {
    /// The op's index in the graph and kind, e.g. `3 Conv3x3 32→32`.
    pub op: String,
    pub forward: f64,
    /// The backward pass's ∂L/∂x.
    pub backward_x: f64,
    /// The backward pass's ∂L/∂θ.
    pub backward_theta: f64,
    pub r_forward: f64,
    pub r_backward: f64,
}

impl OpFlops {
    /// Flops of this op in one HVP (see the module's header).
    pub fn hvp(&self, cached: bool) -> f64 {
        let recompute = if cached {
            0.0
        } else {
            self.forward + self.backward_x
        };
        self.r_forward + self.r_backward + recompute
    }
    /// Flops of this op in one full gradient (forward and backward).
    pub fn gradient(&self) -> f64 {
        self.forward + self.backward_x + self.backward_theta
    }
}

/// The counted flops of each op of `spec`'s graph that does products, on `rows`.
pub fn op_flops(spec: &ModelSpec, rows: Rows) -> Vec<OpFlops> {
    let mut out = Vec::new();
    for (t, op) in spec.graph().ops.iter().enumerate() {
        let (name, (f, bx, bt, rf, rb)) = match op {
            Op::Linear(l) => {
                let m = rows.positions(l.seq);
                let u = 2.0 * (m * l.fan_in * l.fan_out) as f64;
                let name = format!("{t} Linear {}→{}", l.fan_in, l.fan_out);
                (name, gemm_units(u, t == 0))
            }
            Op::Conv3x3(c) => {
                let m = rows.samples * c.out_pixels();
                let u = 2.0 * (m * c.geom.taps() * c.cin * c.cout) as f64;
                let name = format!("{t} Conv {}→{} {}×{}", c.cin, c.cout, c.h, c.w);
                (name, gemm_units(u, t == 0))
            }
            Op::ProjAdd(pa) => {
                // The shortcut's conv reads a hidden tensor, never the data: a layer's GEMM.
                let c = &pa.proj;
                let m = rows.samples * c.out_pixels();
                let u = 2.0 * (m * c.geom.taps() * c.cin * c.cout) as f64;
                let name = format!(
                    "{t} ProjAdd {}→{} {}×{} stride {}",
                    c.cin, c.cout, c.h, c.w, c.geom.stride
                );
                (name, gemm_units(u, false))
            }
            Op::Attention(a) => {
                let u = 2.0 * (a.heads * a.head_dim * rows.pairs(a.seq)) as f64;
                let name = format!("{t} Attention {}×{}", a.heads, a.head_dim);
                (name, (2.0 * u, 4.0 * u, 0.0, 4.0 * u, 11.0 * u))
            }
            _ => continue,
        };
        out.push(OpFlops {
            op: name,
            forward: f,
            backward_x: bx,
            backward_theta: bt,
            r_forward: rf,
            r_backward: rb,
        });
    }
    out
}

/// (forward, ∂x, ∂θ, R-forward, R-backward) of a layer's GEMM of `u` flops.
fn gemm_units(u: f64, first: bool) -> (f64, f64, f64, f64, f64) {
    if first {
        (u, 0.0, u, u, u)
    } else {
        (u, u, u, 2.0 * u, 4.0 * u)
    }
}

/// Counted flops of one HVP of `spec` on `n` samples, every position live (see [`op_flops`];
/// [`hvp_flops_on`] counts a masked model's live tokens): the R-passes, plus the forward and ∂x
/// passes when each chunk is recomputed (`cached` false).
pub fn hvp_flops(spec: &ModelSpec, n: usize, cached: bool) -> f64 {
    total(&op_flops(spec, Rows::dense(n)), cached)
}

/// Counted flops of one HVP of `spec` on `rows` (live tokens where masked).
pub fn hvp_flops_on(spec: &ModelSpec, rows: Rows, cached: bool) -> f64 {
    total(&op_flops(spec, rows), cached)
}

fn total(ops: &[OpFlops], cached: bool) -> f64 {
    ops.iter().map(|o| o.hvp(cached)).sum()
}

/// The machine's dense-GEMM rate as `bench` measures it: a square `size`³ f32/f64 GEMM through
/// the backend (C = A·B, both row-major, warm-up then the median of `runs`), in GFLOP/s.
pub fn dense_gemm_gflops<B: Backend>(b: &B, size: usize, runs: usize) -> Result<f64> {
    let n = size.max(1);
    let a = b.upload(&crate::hessian::lanczos::random_vector(n * n, 11))?;
    let bb = b.upload(&crate::hessian::lanczos::random_vector(n * n, 12))?;
    let mut c = b.zeros(n * n)?;
    let go = |c: &mut B::Buf| -> Result<f64> {
        let s = Instant::now();
        b.gemm(
            Mat::new(&a, 0, n, n),
            Mat::new(&bb, 0, n, n),
            MatMut::new(c, 0, n, n),
            1.0,
            0.0,
        )?;
        b.sync()?;
        Ok(s.elapsed().as_secs_f64())
    };
    go(&mut c)?;
    let mut t = Vec::new();
    for _ in 0..runs.max(1) {
        t.push(go(&mut c)?);
    }
    t.sort_by(f64::total_cmp);
    let secs = t[t.len() / 2];
    Ok(2.0 * (n * n * n) as f64 / (secs * 1e9))
}

/// One op's share of an HVP's counted flops.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OpFlopsRow {
    /// The op's index in the graph and kind.
    pub op: String,
    /// Its flops in one HVP.
    pub flops: f64,
}

/// An HVP's counted flops and the time they take at the measured dense-GEMM rate.
#[derive(Clone, Debug)]
pub struct HvpLimit {
    /// Counted flops of one HVP ([`hvp_flops_on`]).
    pub flops: f64,
    pub per_op: Vec<OpFlopsRow>,
    /// Σ L over the sentences when the padding is masked.
    pub live_tokens: Option<usize>,
    /// The dense-GEMM rate ([`dense_gemm_gflops`]), GFLOP/s, and the GEMM's side.
    pub dense_gflops: f64,
    pub size: usize,
    /// `flops` at `dense_gflops`, ms.
    pub limit_ms: f64,
}

impl HvpLimit {
    /// Count `spec`'s HVP on `data` (`cached`: the engine keeps the activations) and measure the
    /// backend's dense-GEMM rate with a `size`³ GEMM (0: 1024), median of `runs`.
    pub fn measure<B: Backend>(
        backend: &B,
        spec: &ModelSpec,
        data: &Dataset,
        cached: bool,
        size: usize,
        runs: usize,
    ) -> Result<HvpLimit> {
        let size = if size == 0 { 1024 } else { size };
        let dense = dense_gemm_gflops(backend, size, runs)?;
        let rows = Rows::of(spec, data);
        let ops = op_flops(spec, rows);
        let flops = total(&ops, cached);
        Ok(HvpLimit {
            flops,
            per_op: ops
                .iter()
                .map(|o| OpFlopsRow {
                    op: o.op.clone(),
                    flops: o.hvp(cached),
                })
                .collect(),
            live_tokens: rows.live.map(|(sum, _)| sum),
            dense_gflops: dense,
            size,
            limit_ms: flops / (dense * 1e6),
        })
    }

    /// One line for a measured HVP of `hvp_ms`.
    pub fn describe(&self, hvp_ms: f64) -> String {
        format!(
            "HVP: {hvp_ms:.1} ms; counted {:.2} GFLOP{}, {:.1} ms at the dense-GEMM rate ({}³: {:.1} GFLOP/s): {:.2}× the limit",
            self.flops / 1e9,
            self.live_tokens
                .map(|t| format!(" ({t} live tokens)"))
                .unwrap_or_default(),
            self.limit_ms,
            self.size,
            self.dense_gflops,
            hvp_ms / self.limit_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Activation;
    use crate::nn::cnn::CnnSpec;
    use crate::nn::mlp::MlpSpec;
    use crate::nn::transformer::TransformerSpec;

    fn tiny_transformer(masked: bool) -> ModelSpec {
        TransformerSpec::new(5, 4, 4, 2, 1, Activation::Silu, masked, 2)
            .expect("spec")
            .into()
    }

    /// Two sentences of T = 4: "2 3" (L = 2) and "1 4 2" (L = 3): Σ L = 5, Σ L² = 13.
    fn sentences() -> Dataset {
        let x = vec![2.0, 3.0, 0.0, 0.0, 1.0, 4.0, 2.0, 0.0];
        Dataset::new(4, 2, x, vec![0, 1]).expect("data")
    }

    #[test]
    fn fc_counts_match_the_hand_count() {
        // 4 → 3 → 2 on 5 samples: u₀ = 2·5·4·3 = 120 (first layer), u₁ = 2·5·3·2 = 60.
        let spec: ModelSpec = MlpSpec::new(vec![4, 3, 2], Activation::Tanh)
            .expect("spec")
            .into();
        assert_eq!(hvp_flops(&spec, 5, true), 2.0 * 120.0 + 6.0 * 60.0);
        // Recomputed chunks add both forwards and the second layer's ∂x.
        assert_eq!(hvp_flops(&spec, 5, false), 600.0 + 120.0 + 60.0 + 60.0);
        let ops = op_flops(&spec, Rows::dense(5));
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].gradient(), 2.0 * 120.0);
        assert_eq!(ops[1].gradient(), 3.0 * 60.0);
    }

    #[test]
    fn cnn_counts_match_the_hand_count() {
        // 2×4×4 → conv 3×3 (2 → 3 channels, same size) → ReLU → pool → 12 → 2, 2 images:
        // the conv's GEMM is (2·16) × (9·2) × 3, u = 3456; the head's u = 2·2·12·2 = 96.
        let spec: ModelSpec = CnnSpec::new([2, 4, 4], vec![3], Activation::Relu, 2)
            .expect("spec")
            .into();
        let ops = op_flops(&spec, Rows::dense(2));
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert_eq!(ops[0].r_forward + ops[0].r_backward, 2.0 * 3456.0);
        assert_eq!(hvp_flops(&spec, 2, true), 2.0 * 3456.0 + 6.0 * 96.0);
    }

    #[test]
    fn resnet_counts_strided_convs_and_the_projection() {
        // 2×4×4 input, stages [2, 3], 1 image: stem conv 3×3 2→2 on 4×4: u = 2·16·18·2 = 1152
        // (first op); block 1: two 3×3 2→2 convs on 4×4 (1152 each); block 2: 3×3 stride 2 2→3
        // to 2×2: u = 2·4·18·3 = 432, then 3×3 3→3 on 2×2: u = 2·4·27·3 = 648, the 1×1
        // stride-2 projection 2→3: u = 2·4·2·3 = 48; head 3→3: u = 2·3·3 = 18.
        use crate::nn::resnet::{Norm, ResNetSpec};
        let spec: ModelSpec = ResNetSpec::new([2, 4, 4], vec![2, 3], Norm::None, 3)
            .expect("spec")
            .into();
        let ops = op_flops(&spec, Rows::dense(1));
        assert_eq!(ops.len(), 7, "{ops:?}");
        assert!(ops.iter().any(|o| o.op.contains("ProjAdd 2→3")), "{ops:?}");
        let later = 1152.0 + 1152.0 + 432.0 + 648.0 + 48.0 + 18.0;
        assert_eq!(hvp_flops(&spec, 1, true), 2.0 * 1152.0 + 6.0 * later);
    }

    #[test]
    fn transformer_counts_live_tokens_only_when_masked() {
        let data = sentences();
        let masked = tiny_transformer(true);
        let rows = Rows::of(&masked, &data);
        assert_eq!(rows.live, Some((5, 13)));
        // Σ L = 5 rows: qkv u = 2·5·4·12 = 480; out, fc1, fc2 u = 2·5·4·4 = 160 each; attention
        // u = 2·H·d·Σ L² = 2·2·2·13 = 104 (15 products in the R-passes); head u = 2·2·4·2 = 32.
        let want = 6.0 * 480.0 + 15.0 * 104.0 + 3.0 * 6.0 * 160.0 + 6.0 * 32.0;
        assert_eq!(hvp_flops_on(&masked, rows, true), want);
        // Unmasked: all 8 positions, Σ L² = 2·16.
        let dense = tiny_transformer(false);
        let rows = Rows::of(&dense, &data);
        assert_eq!(rows, Rows::dense(2));
        let want = 6.0 * 768.0 + 15.0 * 256.0 + 3.0 * 6.0 * 256.0 + 6.0 * 32.0;
        assert_eq!(hvp_flops_on(&dense, rows, true), want);
        assert_eq!(hvp_flops(&dense, 2, true), want);
    }

    #[test]
    fn the_dense_gemm_rate_is_positive() {
        let b = crate::backend::cpu::CpuBackend::<f64>::new();
        let r = dense_gemm_gflops(&b, 32, 1).expect("rate");
        assert!(r.is_finite() && r > 0.0, "{r}");
    }
}
