//! The per-buffer limit of a GPU: WebGPU binds a storage buffer of at most
//! `maxStorageBufferBindingSize` bytes (128 MiB by default, the limit a browser grants and the
//! one this crate asks of every adapter), so besides the total memory ([`super::check_spectrum`])
//! each single buffer of a job must fit. The big ones of a top-k spectrum are the data set
//! (n × input), the Lanczos basis, its products and the restart scratch (each one buffer of
//! `basis_cap(k) × p` scalars: ≈ 60 rows × 39 MB for VGG11 in f32) and the eigenvectors
//! (k × p); the engine's activations are chunked to the limit by [`super::Plan`] already, down to
//! one sample. This check runs before anything is allocated and names what to lower.

use crate::error::{Error, Result};
use crate::hessian::lanczos::basis_cap;
use crate::nn::model::ModelSpec;

/// What one job asks of a backend whose buffers hold at most `max_len` scalars of `elem` bytes
/// (a GPU's binding limit / 4): the network `spec` on `n` samples, a top-`k` solve with basis
/// cap `max_basis` (0: max(3k, k + 50)); `k_option` names the option that sets k.
#[derive(Clone, Copy, Debug)]
pub struct BufferLimit<'a> {
    /// Scalars one buffer may hold ([`crate::backend::Buffers::max_buffer_len`]).
    pub max_len: usize,
    /// Bytes per scalar.
    pub elem: usize,
    /// The option that sets k, named in the refusal ("--k", "top (and k) in the spec").
    pub k_option: &'a str,
}

/// Refuse a top-`k` spectrum of `spec` on `n` samples whose single buffers exceed `lim.max_len`
/// scalars. Errors: `InvalidArgument` naming the buffer, its size, the limit and what to lower
/// (the samples; k, with the largest k that fits; or, where even k = 1 does not fit, a network
/// with at most so many parameters or `--backend cpu`).
pub fn check_buffers(
    spec: impl Into<ModelSpec>,
    n: usize,
    k: usize,
    max_basis: usize,
    lim: BufferLimit<'_>,
) -> Result<()> {
    let spec = spec.into();
    let g = spec.graph();
    let p = g.num_params();
    let mib = |len: usize| (len * lim.elem) as f64 / 1048576.0;
    let refuse = |what: String, len: usize, hint: String| {
        Err(Error::InvalidArgument(format!(
            "{what} is one buffer of {:.1} MiB, over this GPU's {:.0} MiB per storage binding (WebGPU's default, a browser's limit): {hint}",
            mib(len),
            mib(lim.max_len)
        )))
    };
    let data = n.saturating_mul(g.input);
    if data > lim.max_len {
        let fit = lim.max_len / g.input.max(1);
        return refuse(
            format!("the data set ({n} samples × {} inputs)", g.input),
            data,
            format!("use fewer samples (--samples / data.samples; at most {fit} fit)"),
        );
    }
    let widest = g
        .ops
        .iter()
        .map(|o| o.out_width().max(o.scratch_width()).max(o.aux_width()))
        .max()
        .unwrap_or(0)
        .max(p);
    if widest > lim.max_len {
        return refuse(
            format!("one sample's widest tensor of {}", spec.describe()),
            widest,
            "use a narrower network or --backend cpu".into(),
        );
    }
    let rows = basis_cap(k, max_basis, 0, p).max(k);
    if rows.saturating_mul(p) <= lim.max_len {
        return Ok(());
    }
    let what = format!("the Lanczos basis of a top-{k} solve ({rows} rows × {p} parameters)");
    let fits = |kk: usize| basis_cap(kk, max_basis, 0, p).max(kk).saturating_mul(p) <= lim.max_len;
    let hint = match (1..k).rev().find(|&kk| fits(kk)) {
        Some(kk) => format!("lower {} (k ≤ {kk} fits here)", lim.k_option),
        None => {
            let rows1 = basis_cap(1, max_basis, 0, p).max(1);
            format!(
                "even k = 1 keeps {rows1} basis rows: a network of at most {} parameters fits one binding; use a narrower network (e.g. vgg11-narrow) or --backend cpu",
                lim.max_len / rows1
            )
        }
    };
    refuse(what, rows * p, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::vgg::VggSpec;

    /// WebGPU's default binding limit in f32 scalars.
    const WEB: BufferLimit<'static> = BufferLimit {
        max_len: (128 << 20) / 4,
        elem: 4,
        k_option: "--k",
    };

    #[test]
    fn vgg11_on_a_browser_sized_binding_is_refused_naming_the_way_out() {
        // 9.75 M parameters: the basis (60 rows at k = 10) is 2.2 GiB; even k = 1 keeps 51 rows.
        let e = check_buffers(VggSpec::vgg11(), 100, 10, 0, WEB)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Lanczos basis")
                && e.contains("128 MiB")
                && e.contains("vgg11-narrow")
                && e.contains("--backend cpu"),
            "{e}"
        );
        // vgg11-narrow (153,530 parameters) fits at the paper's k = 10 on 5000 images.
        assert!(check_buffers(VggSpec::vgg11_narrow(), 5000, 10, 0, WEB).is_ok());
        // Its k = 200 does not (600 rows × 153,530 > 32 Mi scalars): lower --k, with the k that fits.
        let e = check_buffers(VggSpec::vgg11_narrow(), 100, 200, 0, WEB)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lower --k (k ≤ 72 fits here)"), "{e}");
        // 20,000 CIFAR images are 234 MiB of data: fewer samples.
        let e = check_buffers(VggSpec::vgg11_narrow(), 20_000, 10, 0, WEB)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fewer samples") && e.contains("at most 10922 fit"),
            "{e}"
        );
    }
}
