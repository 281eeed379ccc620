//! The Transformer whole: a tiny one's gradient, HVP columns and dense Hessian against central
//! differences and against an independent PyTorch float64 computation
//! (`scripts/torch_transformer_reference.py selftest --write-tiny-fixture`); residuals, masks,
//! cached and per-chunk layouts; WGSL against CPU f64; the paper's model's shape and SST2-1k's
//! vocabulary.

mod common;
use common::*;
use subspace_lab::backend::prelude::*;
use subspace_lab::backend::{Activation, Backend, LossKind};
use subspace_lab::data::dataset::Dataset;
use subspace_lab::data::sst2;
use subspace_lab::hessian::lanczos::random_vector;
use subspace_lab::nn::engine::{Cache, Engine};
use subspace_lab::nn::model::ModelSpec;
use subspace_lab::nn::transformer::TransformerSpec;

/// A tiny Transformer with random (non-degenerate) weights: every tensor drawn, the head and the
/// LayerNorm scales included.
fn tiny(
    width: usize,
    layers: usize,
    act: Activation,
    masked: bool,
) -> (ModelSpec, Vec<f64>, Dataset) {
    let spec: ModelSpec = TransformerSpec::new(7, 5, width, 2, layers, act, masked, 2)
        .unwrap()
        .into();
    let p = spec.num_params();
    let theta: Vec<f64> = random_vector(p, 5).iter().map(|x| 0.7 * x).collect();
    // Six sentences, some padded (id 0 at the end), every word id 1..6 used.
    let ids: Vec<f64> = [
        [3, 1, 4, 1, 5],
        [2, 6, 5, 0, 0],
        [5, 3, 0, 0, 0],
        [6, 0, 0, 0, 0],
        [2, 4, 6, 3, 1],
        [1, 1, 2, 0, 0],
    ]
    .iter()
    .flatten()
    .map(|&i| i as f64)
    .collect();
    let data = Dataset::new(5, 2, ids, vec![0, 1, 1, 0, 1, 0]).unwrap();
    (spec, theta, data)
}

fn engine<B: Backend + Clone>(
    b: B,
    spec: &ModelSpec,
    data: &Dataset,
    theta: &[f64],
    loss: LossKind,
    chunk: usize,
    cache: Cache,
) -> Engine<B> {
    let mut e = Engine::with_cache(b, spec, loss, data, chunk, cache).unwrap();
    e.set_params_host(theta).unwrap();
    e
}

fn hvp_host<B: Backend + Clone>(e: &mut Engine<B>, v: &[f64]) -> Vec<f64> {
    let b = e.backend().clone();
    let vb = b.upload(v).unwrap();
    let mut out = b.zeros(v.len()).unwrap();
    e.hvp(&vb, 0, &mut out, 0).unwrap();
    b.download(&out).unwrap()
}

fn grad_host<B: Backend + Clone>(e: &Engine<B>) -> Vec<f64> {
    e.backend().download(e.grad().unwrap()).unwrap()
}

#[test]
fn tiny_transformer_gradient_and_dense_hessian_match_differences() {
    // The tiny model: vocabulary 7, width 8, 2 heads; both layer counts, masks,
    // activations and losses.
    for (layers, act, masked, loss) in [
        (2, Activation::Silu, true, LossKind::Mse),
        (1, Activation::Gelu, false, LossKind::Ce),
    ] {
        let (spec, theta, data) = tiny(8, layers, act, masked);
        let p = spec.num_params();
        let mut e = engine(F64::new(), &spec, &data, &theta, loss, 0, Cache::Auto);
        let g = grad_host(&e);
        let cols: Vec<Vec<f64>> = (0..p)
            .map(|i| {
                let mut ei = vec![0.0; p];
                ei[i] = 1.0;
                hvp_host(&mut e, &ei)
            })
            .collect();
        let h = 1e-6;
        let mut at = |th: &[f64]| {
            let ev = e.set_params_host(th).unwrap();
            (ev.loss, grad_host(&e))
        };
        let (mut fd_g, mut fd_h, mut asym) = (vec![0.0; p], Vec::with_capacity(p * p), 0.0f64);
        for i in 0..p {
            let mut tp = theta.clone();
            tp[i] += h;
            let (lp, gp) = at(&tp);
            tp[i] -= 2.0 * h;
            let (lm, gm) = at(&tp);
            fd_g[i] = (lp - lm) / (2.0 * h);
            fd_h.extend(gp.iter().zip(&gm).map(|(a, b)| (a - b) / (2.0 * h)));
            for (j, cj) in cols.iter().enumerate().take(i) {
                let s = (cols[i][j] - cj[i]).abs() / cols[i][j].abs().max(1e-3);
                asym = asym.max(s);
            }
        }
        let eg = rel_err(&g, &fd_g);
        assert!(
            eg < 1e-7,
            "{layers} layers {act:?}: gradient vs differences {eg:e}"
        );
        let dense: Vec<f64> = cols.concat();
        let eh = rel_err(&dense, &fd_h);
        assert!(
            eh < 1e-6,
            "{layers} layers {act:?}: dense Hessian (HVP columns) vs differences of the gradient {eh:e}"
        );
        assert!(
            asym < 1e-10,
            "{layers} layers {act:?}: Hessian asymmetry {asym:e}"
        );
        // Rows of unused vocabulary ids: id 0 with a mask (padding) gets no gradient and a zero
        // Hessian row; without the mask padding is a word like any other.
        let pad_row = &g[0..8];
        if masked {
            assert!(
                pad_row.iter().all(|x| *x == 0.0),
                "masked padding row has gradient"
            );
        } else {
            assert!(
                pad_row.iter().any(|x| *x != 0.0),
                "unmasked padding row has no gradient"
            );
        }
    }
}

#[test]
fn tiny_transformer_matches_the_pytorch_twin() {
    for (file, loss) in [
        (
            "torch_tiny_transformer_mse_silu_mask_2layer.json",
            LossKind::Mse,
        ),
        (
            "torch_tiny_transformer_ce_gelu_nomask_1layer.json",
            LossKind::Ce,
        ),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(file);
        let f: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let c = &f["config"];
        let n = |k: &str| c[k].as_u64().unwrap() as usize;
        let act = match c["act"].as_str().unwrap() {
            "silu" => Activation::Silu,
            _ => Activation::Gelu,
        };
        let spec: ModelSpec = TransformerSpec::new(
            n("vocab"),
            n("seq_len"),
            n("width"),
            n("heads"),
            n("layers"),
            act,
            c["mask"].as_bool().unwrap(),
            n("classes"),
        )
        .unwrap()
        .into();
        let g = spec.graph();
        let names: Vec<&str> = f["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let ours: Vec<&str> = g.params.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(ours, names, "{file}: parameter names and order");
        for (t, s) in g.params.iter().zip(f["shapes"].as_array().unwrap()) {
            let s: Vec<usize> = s
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(t.shape, s, "{file}: shape of {}", t.name);
        }
        let vecf = |k: &str| -> Vec<f64> {
            f[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        let theta = vecf("theta");
        let ids: Vec<f64> = f["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        let labels: Vec<u8> = f["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let data = Dataset::new(n("seq_len"), 2, ids, labels).unwrap();
        let mut e = engine(F64::new(), &spec, &data, &theta, loss, 0, Cache::Auto);
        let ev = e.eval().unwrap();
        let want_loss = f["loss"].as_f64().unwrap();
        assert!(
            (ev.loss - want_loss).abs() < 1e-12 * want_loss.abs().max(1.0),
            "{file}: loss {} vs PyTorch {want_loss}",
            ev.loss
        );
        assert!((ev.accuracy - f["accuracy"].as_f64().unwrap()).abs() < 1e-12);
        let eg = rel_err(&grad_host(&e), &vecf("gradient"));
        assert!(eg < 1e-10, "{file}: gradient vs PyTorch {eg:e}");
        let p = theta.len();
        let up = vecf("hessian_upper");
        let mut dense = vec![0.0; p * p];
        let mut k = 0;
        for i in 0..p {
            for j in i..p {
                dense[i * p + j] = up[k];
                dense[j * p + i] = up[k];
                k += 1;
            }
        }
        let mut mine = vec![0.0; p * p];
        for i in 0..p {
            let mut ei = vec![0.0; p];
            ei[i] = 1.0;
            mine[i * p..(i + 1) * p].copy_from_slice(&hvp_host(&mut e, &ei));
        }
        let eh = rel_err(&mine, &dense);
        assert!(eh < 1e-10, "{file}: dense Hessian vs PyTorch {eh:e}");
        let (eig, _) = dense_eigs(&mine, p);
        for (a, b) in eig.iter().zip(vecf("hessian_top3")) {
            assert!(
                (a - b).abs() < 1e-9 * b.abs().max(1.0),
                "{file}: eigenvalue {a} vs {b}"
            );
        }
    }
}

#[test]
fn cached_per_chunk_and_f32_layouts_agree() {
    let (spec, theta, data) = tiny(8, 2, Activation::Silu, true);
    let p = spec.num_params();
    let v = random_vector(p, 9);
    let mut all = engine(
        F64::new(),
        &spec,
        &data,
        &theta,
        LossKind::Mse,
        0,
        Cache::All,
    );
    let want = hvp_host(&mut all, &v);
    for (chunk, cache) in [(2, Cache::PerChunk), (4, Cache::All), (1, Cache::PerChunk)] {
        let mut e = engine(
            F64::new(),
            &spec,
            &data,
            &theta,
            LossKind::Mse,
            chunk,
            cache,
        );
        let err = rel_err(&hvp_host(&mut e, &v), &want);
        assert!(err < 1e-12, "chunk {chunk} {cache:?}: {err:e}");
        assert!(rel_err(&grad_host(&e), &grad_host(&all)) < 1e-12);
    }
    let mut e = engine(
        F32::new(),
        &spec,
        &data,
        &theta,
        LossKind::Mse,
        0,
        Cache::Auto,
    );
    let err = rel_err(&hvp_host(&mut e, &v), &want);
    assert!(err < 1e-4, "f32 HVP vs f64 {err:e}");
}

/// Issue 33: the packed live tokens (the CPU's default for a masked model) against the padded
/// form, with a sentence of padding only added: loss, gradient, H·v and a stacked block HVP, in
/// f64 and f32, cached and per chunk; the unmasked model is never packed.
#[test]
fn packed_tokens_match_the_padded_form() {
    let (spec, theta, data) = tiny(8, 2, Activation::Silu, true);
    let mut ids = data.x.clone();
    ids.extend([0.0; 5]);
    let data = Dataset::new(5, 2, ids, vec![0, 1, 1, 0, 1, 0, 1]).unwrap();
    let p = spec.num_params();
    let vs: Vec<f64> = (0..3).flat_map(|i| random_vector(p, 20 + i)).collect();
    let run = |e: &mut Engine<F64>, pack: bool| {
        e.set_packing(pack);
        assert_eq!(e.packs_tokens(), pack);
        let ev = e.set_params_host(&theta).unwrap();
        let v = e.backend().upload(&vs).unwrap();
        let mut out = e.backend().zeros(3 * p).unwrap();
        e.set_max_block(3);
        e.hvp_block(&v, 0, 3, &mut out, 0).unwrap();
        let block = e.backend().download(&out).unwrap();
        e.set_max_block(1);
        e.hvp(&v, p, &mut out, 0).unwrap();
        let one = e.backend().download_range(&out, 0, p).unwrap();
        (ev.loss, grad_host(e), block, one)
    };
    for (chunk, cache) in [(0, Cache::All), (3, Cache::PerChunk), (2, Cache::All)] {
        let mut e =
            Engine::with_cache(F64::new(), &spec, LossKind::Mse, &data, chunk, cache).unwrap();
        let padded = run(&mut e, false);
        let packed = run(&mut e, true);
        let what = format!("chunk {chunk} {cache:?}");
        assert!(
            (packed.0 - padded.0).abs() <= 1e-14 * padded.0.abs(),
            "{what} loss"
        );
        assert!(rel_err(&packed.1, &padded.1) < 1e-13, "{what} gradient");
        assert!(rel_err(&packed.2, &padded.2) < 1e-13, "{what} block HVP");
        assert_eq!(
            packed.3,
            packed.2[p..2 * p],
            "{what}: a block row is its HVP"
        );
        assert!(
            rel_err(&packed.3, &padded.2[p..2 * p]) < 1e-13,
            "{what} HVP"
        );
    }
    let mut e32 = Engine::new(F32::new(), &spec, LossKind::Mse, &data, 0).unwrap();
    assert!(e32.packs_tokens());
    e32.set_params_host(&theta).unwrap();
    let mut e64 = Engine::new(F64::new(), &spec, LossKind::Mse, &data, 0).unwrap();
    e64.set_packing(false);
    e64.set_params_host(&theta).unwrap();
    let v = &vs[..p];
    assert!(rel_err(&hvp_host(&mut e32, v), &hvp_host(&mut e64, v)) < 1e-4);
    let (spec, _, data) = tiny(8, 1, Activation::Gelu, false);
    let e = Engine::new(F64::new(), &spec, LossKind::Ce, &data, 0).unwrap();
    assert!(!e.packs_tokens(), "the unmasked model keeps every position");
}

gpu_test!(own tiny_transformer_in_wgsl_matches_cpu_f64);
fn tiny_transformer_in_wgsl_matches_cpu_f64(g: GpuBackend) {
    for (layers, act, masked) in [(2, Activation::Silu, true), (1, Activation::Gelu, false)] {
        let (spec, theta, data) = tiny(8, layers, act, masked);
        let v = random_vector(spec.num_params(), 3);
        let mut want = engine(
            F64::new(),
            &spec,
            &data,
            &theta,
            LossKind::Mse,
            0,
            Cache::Auto,
        );
        let mut got = engine(
            g.clone(),
            &spec,
            &data,
            &theta,
            LossKind::Mse,
            0,
            Cache::Auto,
        );
        let (lw, lg) = (want.eval().unwrap().loss, got.eval().unwrap().loss);
        assert!((lw - lg).abs() < 1e-5 * lw.abs(), "loss {lg} vs {lw}");
        assert!(rel_err(&grad_host(&got), &grad_host(&want)) < 1e-5);
        let e = rel_err(&hvp_host(&mut got, &v), &hvp_host(&mut want, &v));
        assert!(e < 1e-5, "WGSL HVP vs CPU f64: {e:e}");
    }
}

#[test]
fn the_papers_transformer_has_its_shape_and_pytorch_names() {
    let spec = TransformerSpec::sst2();
    let g = spec.graph();
    let (v, t, d) = (spec.vocab, spec.seq, 64);
    let per_layer = 3 * (d * d + d) + (d * d + d) + 2 * d + 2 * (d * d + d) + 2 * d;
    assert_eq!(g.num_params(), (v + t) * d + 2 * per_layer + 2 * d + 2);
    let names: Vec<&str> = g.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        &names[..10],
        [
            "tok_emb.weight",
            "pos_emb.weight",
            "layers.0.attn.q.weight",
            "layers.0.attn.k.weight",
            "layers.0.attn.v.weight",
            "layers.0.attn.q.bias",
            "layers.0.attn.k.bias",
            "layers.0.attn.v.bias",
            "layers.0.attn.out.weight",
            "layers.0.attn.out.bias",
        ]
    );
    assert_eq!(&names[names.len() - 2..], ["head.weight", "head.bias"]);
    // Damian's initialisation: zero head, unit LayerNorm scales, embeddings of std 1/8.
    let th = ModelSpec::Transformer(spec.clone()).init(0);
    let head = g.params.iter().find(|p| p.name == "head.weight").unwrap();
    assert!(
        th[head.off..head.off + head.len()]
            .iter()
            .all(|x| *x == 0.0)
    );
    let ln = g
        .params
        .iter()
        .find(|p| p.name == "layers.1.ln2.weight")
        .unwrap();
    assert!(th[ln.off..ln.off + ln.len()].iter().all(|x| *x == 1.0));
    let emb = &th[0..v * d];
    let sd = (emb.iter().map(|x| x * x).sum::<f64>() / emb.len() as f64).sqrt();
    assert!((sd - 0.125).abs() < 0.002, "embedding std {sd}");
    let q = g
        .params
        .iter()
        .find(|p| p.name == "layers.0.attn.q.weight")
        .unwrap();
    let w = &th[q.off..q.off + q.len()];
    let sd = (w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64).sqrt();
    assert!((sd - 0.125).abs() < 0.01, "LeCun-normal std {sd}");
    assert!(w.iter().all(|x| x.abs() <= 2.0 * 0.125 / 0.8796 + 1e-12));
}

#[test]
fn sst2_1k_vocabulary_and_length() {
    let Some(path) = sst2::local_candidates().into_iter().next() else {
        eprintln!("SKIP: no shared/{} here", sst2::SHARED_FILE);
        return;
    };
    let s = sst2::Sst2::from_path(&path).unwrap();
    assert_eq!(s.sentences.len(), 1000);
    assert_eq!(s.labels.iter().filter(|&&l| l == 0).count(), 458);
    let v = s.vocab();
    assert_eq!(v.len(), sst2::VOCAB_1K);
    assert_eq!(s.max_len(), sst2::SEQ_1K);
    assert_eq!(&v.words[..5], ["<pad>", "<unk>", "the", ",", "a"]);
    let d = s.dataset(&v, sst2::SEQ_1K, 3).unwrap();
    // "hide new secretions from the parental units" (7 words, then padding).
    assert_eq!(
        d.x[7..sst2::SEQ_1K].iter().filter(|x| **x != 0.0).count(),
        0
    );
    assert!(d.x[..7].iter().all(|x| *x >= 2.0));
    // A corrupted row is named with its line.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.iter().position(|&b| b == b'\t').unwrap();
    if let Some(b) = bytes[at + 1..].iter_mut().find(|b| **b == b'\t') {
        *b = b' ';
    }
    let err = sst2::Sst2::from_tsv(&bytes, &path).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
}
