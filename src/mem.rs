//! Memory a command will need, estimated *before* allocating, so that an impossible size (a
//! k as large as the parameter count, a layer of a million units) ends in a message naming the
//! figure and the option to change instead of an abort in the allocator.
//!
//! The estimates mirror the allocations of [`crate::hessian::lanczos::lanczos`] and
//! [`crate::nn::engine::Engine::new`], whose layout ([`Plan`]: cache the activations or recompute
//! them per chunk, and the chunk) is decided here, before anything is allocated; they are upper
//! bounds up to small constant vectors. On a GPU each single buffer must also fit one storage
//! binding ([`check_buffers`]).

mod buffers;

pub use buffers::{BufferLimit, check_buffers};

use crate::error::{Error, Result};
use crate::nn::graph::Graph;
use crate::nn::model::ModelSpec;

/// Bytes of memory available to this process: Linux's `MemAvailable`; 4 GiB in wasm32 (its
/// address space); None where unknown (then only absurd sizes, over 2^50 bytes, are refused).
pub fn available() -> Option<f64> {
    #[cfg(target_arch = "wasm32")]
    {
        Some(4.0 * (1u64 << 30) as f64)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024.0)
    }
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
    available().map_or(GIB, |a| (0.25 * a).min(4.0 * GIB))
}
/// Bytes the per-chunk scratch may take when the chunk is chosen automatically.
pub const SCRATCH_BUDGET: f64 = 256.0 * 1024.0 * 1024.0;

/// How an engine lays out its memory for `n` samples: decided before anything is allocated, so
/// a memory check can say what a run needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub cached: bool,
    /// Samples per chunk of the passes.
    pub chunk: usize,
    /// Scalars the engine allocates (data, targets, θ, gradient, caches, scratch).
    pub scalars: usize,
}

/// Scalars per sample of the graph's values (in-place ops share), gradients and what the ops
/// keep besides (arg-max indices, attention probabilities).
fn per_sample_cache(g: &Graph) -> usize {
    let mut s = 0;
    for (t, op) in g.ops.iter().enumerate() {
        if !g.shares_slot(t) {
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

/// Bytes of a top-`k` Lanczos solve on a `p`-dimensional operator with `elem`-byte scalars: the
/// basis Q, its products W and the restart scratch (`max_basis` rows each, 0: max(3k, k + 50),
/// at most p) and the residual block and the eigenvectors (k rows each).
pub fn lanczos_bytes(k: usize, p: usize, max_basis: usize, elem: usize) -> f64 {
    let cap = crate::hessian::lanczos::basis_cap(k, max_basis, 0, p);
    (3.0 * cap as f64 + 2.0 * k as f64) * p as f64 * elem as f64
}

/// Bytes of a network bound to `n` samples: θ and ∇L on the host (f64, a few p-vectors) and
/// what the engine allocates on the backend under its automatic layout ([`Plan`]: data, targets,
/// θ, gradient, the cached or per-chunk activations and gradients, the R-passes' scratch).
pub fn engine_bytes(spec: impl Into<ModelSpec>, n: usize, elem: usize) -> f64 {
    let spec = spec.into();
    let g = spec.graph();
    let plan = Plan::new(&g, n, 0, Cache::Auto, elem, 1000, usize::MAX);
    8.0 * 6.0 * g.num_params() as f64 + elem as f64 * plan.scalars as f64
}

/// A human size: "3.2 GB".
pub fn human(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut x = bytes;
    let mut u = 0;
    while x >= 1000.0 && u + 1 < UNITS.len() {
        x /= 1000.0;
        u += 1;
    }
    format!("{x:.1} {}", UNITS[u])
}

/// Refuse a job that needs more than 90 % of the available memory: `what` needs `bytes`; `hint`
/// says which option to change. Errors: `InvalidArgument` with both figures.
pub fn check(what: &str, bytes: f64, hint: &str) -> Result<()> {
    let limit = available().map_or((1u64 << 50) as f64, |a| 0.9 * a);
    if bytes.is_finite() && bytes <= limit {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{what} needs about {} of memory, more than the {} this machine can give (90 % of what is available): {hint}",
        human(bytes),
        human(limit)
    )))
}

/// The check for a top-`k` spectrum of `spec` on `n` samples with `elem`-byte scalars, naming
/// the option to lower (`k_option`, e.g. "--k" or "top / k in the spec").
pub fn check_spectrum(
    spec: impl Into<ModelSpec>,
    n: usize,
    k: usize,
    max_basis: usize,
    elem: usize,
    k_option: &str,
) -> Result<()> {
    let spec = spec.into();
    let p = spec.num_params();
    let model = engine_bytes(&spec, n, elem);
    check(
        &format!("the network {} on {n} samples", spec.describe()),
        model,
        "use fewer or narrower layers, or fewer samples (--samples / data.samples)",
    )?;
    let solve = lanczos_bytes(k, p, max_basis, elem);
    let limit = available().map_or(f64::INFINITY, |a| 0.9 * a) - model;
    // Largest k that fits: 11·k·p·elem once k ≥ 25 (3·3k basis rows + 2k).
    let fits = (limit / (11.0 * p as f64 * elem as f64)).floor().max(0.0);
    check(
        &format!(
            "a top-{k} eigen-solve over {p} parameters (Lanczos basis, its products and the eigenvectors)"
        ),
        model + solve,
        &format!("lower {k_option} (about {fits:.0} eigenpairs fit here)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Activation;
    use crate::nn::mlp::MlpSpec;

    #[test]
    fn the_cnn_on_cifar_recomputes_per_chunk_within_the_budgets() {
        let g = ModelSpec::cnn_relu().graph();
        let plan = Plan::new(&g, 4000, 0, Cache::Auto, 8, 1000, usize::MAX);
        assert!(!plan.cached, "5 GB of caches must not be kept");
        assert!(
            plan.chunk >= 16 && plan.chunk < 1000,
            "chunk {}",
            plan.chunk
        );
        let bytes = engine_bytes(ModelSpec::cnn_relu(), 4000, 8);
        assert!(bytes < 0.5e9, "{}", human(bytes));
        // fc-tanh keeps its caches (today's fast path).
        let fc = Plan::new(
            &ModelSpec::fc_tanh().graph(),
            5000,
            0,
            Cache::Auto,
            8,
            1000,
            usize::MAX,
        );
        assert!(fc.cached && fc.chunk == 1000);
    }

    #[test]
    fn estimates_match_the_allocations_and_refuse_the_absurd() {
        let spec = MlpSpec::new(vec![784, 200, 200, 10], Activation::Tanh).unwrap();
        let p = spec.num_params();
        // k = 10: basis max(30, 60) = 60 rows, three of them, plus 2k rows.
        assert_eq!(
            lanczos_bytes(10, p, 0, 8),
            (3.0 * 60.0 + 20.0) * p as f64 * 8.0
        );
        assert_eq!(lanczos_bytes(p, p, 0, 8), 5.0 * (p as f64).powi(2) * 8.0);
        assert!(check_spectrum(&spec, 5000, 10, 0, 8, "--k").is_ok());
        let e = check_spectrum(&spec, 10, p, 0, 8, "--k")
            .unwrap_err()
            .to_string();
        assert!(e.contains("1.6 TB") && e.contains("lower --k"), "{e}");
        let huge = MlpSpec::new(vec![784, 1 << 20, 1 << 20, 10], Activation::Tanh).unwrap();
        let e = check_spectrum(&huge, 10, 10, 0, 8, "--k")
            .unwrap_err()
            .to_string();
        assert!(e.contains("TB") && e.contains("narrower layers"), "{e}");
        assert_eq!(human(1.6e12), "1.6 TB");
    }
}
