//! Weights in safetensors with PyTorch's names, the tensors of the model's graph
//! ([`crate::nn::graph::ParamTensor`]): fully connected networks as `fc1.weight [out, in]`,
//! `fc1.bias [out]`, … (a state dict of `nn.Sequential(Linear, Tanh, Linear, …)` with keys
//! `0.weight`, `2.weight`, … is also accepted: its Linear layers are taken in index order);
//! convolutional networks as their `nn.Sequential` state dict (`0.weight [32,3,3,3]`, `0.bias`,
//! `3.weight`, …, `7.weight [10,2048]`, `7.bias` for cnn-relu: a file with 4-D weights is read as
//! one). The activation is kept in the file's metadata (`activation`; tanh when absent for a
//! fully connected network, relu for a convolutional one), and the model's name in `model`.
//! The Transformer's tensors are named as [`crate::nn::transformer`] lists (`tok_emb.weight`,
//! `layers.0.attn.q.weight`, …, `head.bias`); its metadata holds `model = transformer`, `heads`,
//! `mask` and, when the saver knows it, `vocab` (a JSON list of the words in id order), so that a
//! saved model is complete.

use super::cnn::CnnSpec;
use super::mlp::MlpSpec;
use super::model::ModelSpec;
use crate::backend::Activation;
use crate::error::{Error, Result};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Storage type of saved weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    F64,
}

/// Save θ of `spec` to `path` (atomically: a temporary file, then a rename).
pub fn save(
    path: &Path,
    spec: impl Into<ModelSpec>,
    theta: &[f64],
    dtype: SaveDtype,
) -> Result<()> {
    save_with(path, spec, theta, dtype, &[])
}

/// [`save`] with more metadata (the Transformer's `vocab`).
pub fn save_with(
    path: &Path,
    spec: impl Into<ModelSpec>,
    theta: &[f64],
    dtype: SaveDtype,
    meta: &[(String, String)],
) -> Result<()> {
    let bytes = serialize_with(path, spec, theta, dtype, meta)?;
    crate::experiment::output::write_atomic(path, &bytes)
}

/// The `vocab` a weights file's metadata holds (the Transformer's words in id order), if any.
pub fn vocab_of(path: &Path) -> Result<Option<Vec<String>>> {
    let werr = |msg: String| Error::Weights {
        path: path.into(),
        msg,
    };
    let bytes = std::fs::read(path).map_err(|e| werr(format!("cannot read: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| werr(format!("bad header: {e}")))?;
    match meta.metadata().as_ref().and_then(|m| m.get("vocab")) {
        Some(v) => serde_json::from_str(v)
            .map(Some)
            .map_err(|e| werr(format!("metadata vocab is not a JSON list of words: {e}"))),
        None => Ok(None),
    }
}

/// θ of `spec` as safetensors bytes (PyTorch names); `path` only names the file in errors.
pub fn serialize(
    path: &Path,
    spec: impl Into<ModelSpec>,
    theta: &[f64],
    dtype: SaveDtype,
) -> Result<Vec<u8>> {
    serialize_with(path, spec, theta, dtype, &[])
}

/// [`serialize`] with more metadata.
pub fn serialize_with(
    path: &Path,
    spec: impl Into<ModelSpec>,
    theta: &[f64],
    dtype: SaveDtype,
    extra: &[(String, String)],
) -> Result<Vec<u8>> {
    let spec = spec.into();
    let graph = spec.graph();
    if theta.len() != graph.num_params() {
        return Err(Error::Shape(format!(
            "θ has {} entries, network has {}",
            theta.len(),
            graph.num_params()
        )));
    }
    let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = graph
        .params
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.shape.clone(),
                to_bytes(&theta[t.off..t.off + t.len()], dtype),
            )
        })
        .collect();
    let st_dtype = match dtype {
        SaveDtype::F32 => Dtype::F32,
        SaveDtype::F64 => Dtype::F64,
    };
    let views = bufs
        .iter()
        .map(|(n, s, d)| {
            Ok((
                n.clone(),
                TensorView::new(st_dtype, s.clone(), d).map_err(|e| Error::Weights {
                    path: path.into(),
                    msg: e.to_string(),
                })?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = HashMap::from([
        (
            "activation".to_string(),
            spec.activation().name().to_string(),
        ),
        ("format".to_string(), "pt".to_string()),
    ]);
    if let ModelSpec::Cnn(c) = &spec {
        meta.insert("model".to_string(), spec.name());
        meta.insert(
            "input".to_string(),
            format!("{},{},{}", c.input[0], c.input[1], c.input[2]),
        );
    }
    if let ModelSpec::Transformer(t) = &spec {
        meta.insert("model".to_string(), spec.name());
        meta.insert("heads".to_string(), t.heads.to_string());
        meta.insert("mask".to_string(), t.masked.to_string());
        meta.insert("ln_eps".to_string(), super::transformer::LN_EPS.to_string());
    }
    for (k, v) in extra {
        meta.insert(k.clone(), v.clone());
    }
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::Weights {
        path: path.into(),
        msg: e.to_string(),
    })
}

fn to_bytes(x: &[f64], dtype: SaveDtype) -> Vec<u8> {
    match dtype {
        SaveDtype::F32 => x.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
        SaveDtype::F64 => x.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    }
}

/// What the user said explicitly about a weights file's network (command-line options). An
/// explicit value wins over a default; one that contradicts what the file says (its shapes, its
/// metadata) is an error naming both.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// `--widths`: must equal the widths the tensors' shapes give.
    pub widths: Option<Vec<usize>>,
    /// `--activation`: used when the file's metadata has none (PyTorch's
    /// `save_file(model.state_dict(), f)` writes none); must equal it when it has one.
    pub activation: Option<Activation>,
    /// `--loss`: must equal the metadata's `loss` when the file has one.
    pub loss: Option<crate::backend::LossKind>,
    /// `--mask` (the Transformer only): must equal the metadata's `mask` when the file has one.
    pub mask: Option<bool>,
}

/// Load weights: the architecture is read from the tensors' shapes, the activation from the
/// metadata (tanh when absent).
pub fn load(path: &Path) -> Result<(ModelSpec, Vec<f64>)> {
    load_expecting(path, &Expect::default())
}

/// [`load`], checked against what the user said explicitly ([`Expect`]).
pub fn load_expecting(path: &Path, expect: &Expect) -> Result<(ModelSpec, Vec<f64>)> {
    load_full(path, expect).map(|(s, t, _)| (s, t))
}

/// [`load_expecting`], with the loss the file's metadata names (`loss`), if any.
pub fn load_full(
    path: &Path,
    expect: &Expect,
) -> Result<(ModelSpec, Vec<f64>, Option<crate::backend::LossKind>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::Weights {
        path: path.into(),
        msg: format!("cannot read the weights file: {e}"),
    })?;
    parse(&bytes, path, expect)
}

pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<(ModelSpec, Vec<f64>)> {
    load_bytes_expecting(bytes, path, &Expect::default())
}

/// What a file that is not safetensors most likely is, with how to convert it. A file shaped like
/// safetensors (an 8-byte header length that fits, then `{`) is never called foreign, whatever its
/// first bytes (a 640-byte header starts 0x80 0x02, like a pickle).
fn foreign_format(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() >= 9 && bytes[8] == b'{' {
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[..8]);
        if u64::from_le_bytes(len) <= (bytes.len() - 8) as u64 {
            return None;
        }
    }
    if bytes.starts_with(b"PK\x03\x04") {
        Some(
            "a zip archive — what torch.save writes (PyTorch ≥ 1.6), or NumPy's .npz — not safetensors: convert it in Python: `from safetensors.torch import save_file; save_file(torch.load(f, map_location=\"cpu\"), \"w.safetensors\")` (or save_file(model.state_dict(), …))",
        )
    } else if bytes.first() == Some(&0x80) && bytes.get(1).is_some_and(|&v| (2..=5).contains(&v)) {
        Some(
            "a Python pickle — what torch.save wrote before PyTorch 1.6 — not safetensors: convert it in Python: `from safetensors.torch import save_file; save_file(torch.load(f, map_location=\"cpu\"), \"w.safetensors\")` (or save_file(model.state_dict(), …))",
        )
    } else if bytes.starts_with(b"\x89HDF") {
        Some(
            "an HDF5 file (Keras .h5), not safetensors: export the kernels transposed to PyTorch's [out, in] and save them with safetensors",
        )
    } else if bytes.first().is_some_and(|&b| b == b'{' || b == b'[') {
        Some(
            "a JSON file, not safetensors: weights are safetensors with PyTorch's names (fc1.weight [out, in], fc1.bias, …), e.g. `safetensors.torch.save_file(model.state_dict(), \"w.safetensors\")`",
        )
    } else if bytes.starts_with(b"\x93NUMPY") {
        Some(
            "a NumPy .npy array, not safetensors: save the named tensors with safetensors.numpy.save_file",
        )
    } else {
        None
    }
}

/// [`load_bytes`], checked against [`Expect`]; `path` only names the file in errors.
pub fn load_bytes_expecting(
    bytes: &[u8],
    path: &Path,
    expect: &Expect,
) -> Result<(ModelSpec, Vec<f64>)> {
    parse(bytes, path, expect).map(|(s, t, _)| (s, t))
}

/// The network, θ and the loss the metadata names, checked against [`Expect`].
fn parse(
    bytes: &[u8],
    path: &Path,
    expect: &Expect,
) -> Result<(ModelSpec, Vec<f64>, Option<crate::backend::LossKind>)> {
    let werr = |msg: String| Error::Weights {
        path: path.into(),
        msg,
    };
    if let Some(what) = foreign_format(bytes) {
        return Err(werr(format!("this is {what}")));
    }
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| werr(format!("not a safetensors file: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| werr(format!("bad header: {e}")))?;
    let from_file = match meta.metadata().as_ref().and_then(|m| m.get("activation")) {
        Some(a) => Some(a.parse::<Activation>().map_err(werr)?),
        None => None,
    };
    let named = |key: &str| meta.metadata().as_ref().and_then(|m| m.get(key)).cloned();
    if named("model").as_deref() == Some("transformer")
        || st.tensors().iter().any(|(n, _)| n == "tok_emb.weight")
    {
        if expect.widths.is_some() {
            return Err(werr(
                "this is a Transformer's file: --widths applies to fully connected networks (drop it)".into(),
            ));
        }
        let act = match (from_file, expect.activation) {
            (Some(f), Some(o)) if f != o => {
                return Err(werr(format!(
                    "the file's metadata says activation = {}, --activation says {}: drop the option (the file decides) or fix the file",
                    f.name(),
                    o.name()
                )));
            }
            (f, o) => o.or(f).unwrap_or(Activation::Silu),
        };
        if !matches!(act, Activation::Silu | Activation::Gelu) {
            return Err(werr(format!(
                "activation = {}: the Transformer's MLP blocks take silu or gelu",
                act.name()
            )));
        }
        let loss = match named("loss") {
            Some(l) => Some(
                l.parse::<crate::backend::LossKind>()
                    .map_err(|e| werr(format!("metadata loss = {l}: {e}")))?,
            ),
            None => None,
        };
        if let (Some(f), Some(o)) = (loss, expect.loss)
            && f != o
        {
            return Err(werr(format!(
                "the file's metadata says loss = {}, --loss says {}: drop the option or fix the file",
                f.name(),
                o.name()
            )));
        }
        if let Some(eps) = named("ln_eps") {
            let ok = eps
                .parse::<f64>()
                .is_ok_and(|e| e == super::transformer::LN_EPS);
            if !ok {
                return Err(werr(format!(
                    "metadata ln_eps = {eps}: this Transformer's LayerNorm has ε = {} (Flax's default, Damian et al.'s); a model trained with another ε would compute other numbers",
                    super::transformer::LN_EPS
                )));
            }
        }
        let (spec, theta) = parse_transformer(&st, &named, act, expect.mask, &werr)?;
        return Ok((ModelSpec::Transformer(spec), theta, loss.or(expect.loss)));
    }
    if expect.mask.is_some() {
        return Err(werr(
            "--mask applies to the Transformer; this file holds another network (drop --mask)"
                .into(),
        ));
    }
    // A convolutional network: the metadata says so, or a weight is 4-D ([cout, cin, kh, kw]).
    let conv = match named("model") {
        Some(m) if m.starts_with("cnn") || m.starts_with("convnet") => true,
        Some(m) if m == "mlp" || m.starts_with("fc") => false,
        Some(m) => {
            return Err(werr(format!(
                "the file's metadata says model = {m}; this engine runs fc-tanh/fc-relu and cnn-relu/cnn-tanh: use weights of one"
            )));
        }
        None => st.tensors().iter().any(|(_, v)| v.shape().len() == 4),
    };
    let activation = match (from_file, expect.activation) {
        (Some(f), Some(o)) if f != o => {
            return Err(werr(format!(
                "the file's metadata says activation = {}, --activation says {}: drop the option (the file decides) or fix the file",
                f.name(),
                o.name()
            )));
        }
        (f, o) => o.or(f).unwrap_or(if conv {
            Activation::Relu
        } else {
            Activation::Tanh
        }),
    };
    // A file that names the data it belongs to must name the model's: MNIST for the fully
    // connected network, CIFAR-10 for the convolutional one.
    let want_data = if conv { "cifar" } else { "mnist" };
    if let Some(d) = named("dataset")
        && !d.to_ascii_lowercase().replace('-', "").contains(want_data)
    {
        return Err(werr(format!(
            "the file's metadata says dataset = {d}; a {} network here runs on {}: use weights trained on it",
            if conv {
                "convolutional"
            } else {
                "fully connected"
            },
            if conv { "CIFAR10-5k" } else { "MNIST-5k" }
        )));
    }
    let loss = match named("loss") {
        Some(l) => Some(
            l.parse::<crate::backend::LossKind>()
                .map_err(|e| werr(format!("metadata loss = {l}: {e}")))?,
        ),
        None => None,
    };
    if let (Some(f), Some(o)) = (loss, expect.loss)
        && f != o
    {
        return Err(werr(format!(
            "the file's metadata says loss = {}, --loss says {}: drop the option or fix the file",
            f.name(),
            o.name()
        )));
    }
    // Group tensors by layer prefix: `fcN` (N from 1) or a Sequential index `N`.
    if conv && !st.tensors().iter().any(|(_, v)| v.shape().len() == 4) {
        return Err(werr(format!(
            "the file's metadata says model = {}, but no tensor is a 4-D conv weight [cout, cin, 3, 3]: fix the metadata or the file",
            named("model").unwrap_or_default()
        )));
    }
    if conv {
        let input = named("input");
        let (spec, theta) = parse_cnn(&st, input.as_deref(), activation, &werr)?;
        if expect.widths.is_some() {
            return Err(werr(
                "this is a convolutional network's file: --widths applies to fully connected ones (drop it)".into(),
            ));
        }
        return Ok((ModelSpec::Cnn(spec), theta, loss));
    }
    let mut layers: BTreeMap<usize, [Option<TensorView>; 2]> = BTreeMap::new();
    let mut fc_style = None;
    for (name, view) in st.tensors() {
        let (prefix, kind) = name.rsplit_once('.').ok_or_else(|| {
            werr(format!(
                "unexpected tensor '{name}' (expected fcN.weight / fcN.bias)"
            ))
        })?;
        let slot = match kind {
            "weight" => 0,
            "bias" => 1,
            _ => {
                return Err(werr(format!(
                    "unexpected tensor '{name}' (expected fcN.weight / fcN.bias)"
                )));
            }
        };
        let (is_fc, idx) = match prefix.strip_prefix("fc") {
            Some(n) => (true, n.parse::<usize>().ok().filter(|&n| n >= 1)),
            None => (false, prefix.parse::<usize>().ok()),
        };
        let idx = idx.ok_or_else(|| {
            werr(format!(
                "unexpected tensor '{name}' (expected fcN.weight / fcN.bias)"
            ))
        })?;
        if *fc_style.get_or_insert(is_fc) != is_fc {
            return Err(werr("mixes `fcN.*` and Sequential `N.*` names".into()));
        }
        layers.entry(idx).or_default()[slot] = Some(view);
    }
    if layers.is_empty() {
        return Err(werr("no tensors".into()));
    }
    if fc_style == Some(true) {
        let want: Vec<usize> = (1..=layers.len()).collect();
        let have: Vec<usize> = layers.keys().copied().collect();
        if have != want {
            return Err(werr(format!(
                "layers {have:?}; expected fc1..fc{} without gaps",
                layers.len()
            )));
        }
    }
    let mut widths = Vec::new();
    let mut theta = Vec::new();
    for (li, (idx, [w, b])) in layers.into_iter().enumerate() {
        let lname = if fc_style == Some(true) {
            format!("fc{idx}")
        } else {
            idx.to_string()
        };
        let w = w.ok_or_else(|| werr(format!("{lname}.weight is missing")))?;
        let b = b.ok_or_else(|| werr(format!("{lname}.bias is missing")))?;
        // The weight first: a transposed kernel ([in, out], as JAX/Keras store it) is the
        // weight's fault, not the bias's.
        let ws = w.shape();
        if ws.len() != 2 {
            return Err(werr(format!(
                "{lname}.weight has shape {ws:?}; expected [out, in]"
            )));
        }
        let transposed = || {
            werr(format!(
                "{lname}.weight has shape {ws:?}, which looks transposed: PyTorch stores [out, in] = [{}, {}] (JAX/Keras kernels are [in, out]; save kernel.T)",
                ws[1], ws[0]
            ))
        };
        let prev = widths.get(li).copied();
        if let Some(prev) = prev
            && ws[1] != prev
        {
            if ws[0] == prev {
                return Err(transposed());
            }
            return Err(werr(format!(
                "{lname}.weight takes {} inputs but the previous layer gives {prev}",
                ws[1]
            )));
        }
        if b.shape() != [ws[0]] {
            if b.shape() == [ws[1]] && ws[0] != ws[1] {
                return Err(transposed());
            }
            return Err(werr(format!(
                "{lname}.bias has shape {:?}; expected [{}] ({lname}.weight is {ws:?})",
                b.shape(),
                ws[0]
            )));
        }
        if li == 0 {
            widths.push(ws[1]);
        }
        widths.push(ws[0]);
        for (t, part) in [(&w, "weight"), (&b, "bias")] {
            let x = read_floats(t, &lname, &werr)?;
            if let Some(i) = x.iter().position(|v| !v.is_finite()) {
                return Err(werr(format!(
                    "{lname}.{part} entry {i} (flat, row-major) is {} (not finite); parameter {} of θ",
                    x[i],
                    theta.len() + i
                )));
            }
            theta.extend(x);
        }
    }
    if let Some(want) = &expect.widths
        && *want != widths
    {
        return Err(werr(format!(
            "the tensors' shapes give widths {widths:?}, --widths says {want:?}: drop the option (the file decides) or give the matching file"
        )));
    }
    let spec = MlpSpec::new(widths, activation).map_err(|e| werr(e.to_string()))?;
    Ok((ModelSpec::Mlp(spec), theta, loss))
}

/// The Transformer of a file: sizes from `tok_emb.weight` [V, D], `pos_emb.weight` [T, D],
/// `head.weight` [C, D] and the `layers.N.` prefixes (0..L each present, L ≤ 64); heads and mask
/// from the metadata (8 and true when absent; `mask` is `--mask` when the file says nothing and
/// must agree with it when it does); every tensor of the graph present with its shape, nothing else.
fn parse_transformer(
    st: &SafeTensors,
    named: &dyn Fn(&str) -> Option<String>,
    act: Activation,
    mask: Option<bool>,
    werr: &dyn Fn(String) -> Error,
) -> Result<(super::transformer::TransformerSpec, Vec<f64>)> {
    let shape = |n: &str| -> Result<Vec<usize>> {
        st.tensor(n)
            .map(|v| v.shape().to_vec())
            .map_err(|_| werr(format!("no tensor '{n}' (a Transformer's file has tok_emb.weight, pos_emb.weight, layers.N.…, head.weight)")))
    };
    let (tok, pos, head) = (
        shape("tok_emb.weight")?,
        shape("pos_emb.weight")?,
        shape("head.weight")?,
    );
    if tok.len() != 2 || pos.len() != 2 || head.len() != 2 || pos[1] != tok[1] || head[1] != tok[1]
    {
        return Err(werr(format!(
            "tok_emb.weight {tok:?}, pos_emb.weight {pos:?}, head.weight {head:?}: expected [V, D], [T, D], [C, D] with one D"
        )));
    }
    let mut indices: Vec<usize> = st
        .tensors()
        .iter()
        .filter_map(|(n, _)| {
            n.strip_prefix("layers.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .collect();
    indices.sort_unstable();
    indices.dedup();
    let layers = indices.len();
    if indices.iter().enumerate().any(|(i, &l)| i != l) || layers > 64 {
        return Err(werr(format!(
            "layer indices {:?}…: a Transformer's file has layers.0 … layers.L−1 (L ≤ 64), each index once",
            &indices[..indices.len().min(8)]
        )));
    }
    let heads = match named("heads") {
        Some(h) => h
            .parse::<usize>()
            .map_err(|_| werr(format!("metadata heads = {h}: not a number")))?,
        None => 8,
    };
    let masked = match (named("mask").as_deref(), mask) {
        (None, m) => m.unwrap_or(true),
        (Some(f @ ("true" | "false")), m) => {
            let f = f == "true";
            if let Some(m) = m.filter(|m| *m != f) {
                return Err(werr(format!(
                    "the file's metadata says mask = {f}, --mask says {m}: drop the option (the file decides) or use weights trained the other way"
                )));
            }
            f
        }
        (Some(o), _) => return Err(werr(format!("metadata mask = {o}: true or false"))),
    };
    let spec = super::transformer::TransformerSpec::new(
        tok[0], pos[0], tok[1], heads, layers, act, masked, head[0],
    )
    .map_err(|e| werr(e.to_string()))?;
    let g = spec.graph();
    let mut theta = vec![0.0; g.num_params()];
    for t in &g.params {
        let v = st
            .tensor(&t.name)
            .map_err(|_| werr(format!("no tensor '{}' {:?}", t.name, t.shape)))?;
        if v.shape() != t.shape.as_slice() {
            return Err(werr(format!(
                "'{}' has shape {:?}; a {} needs {:?}",
                t.name,
                v.shape(),
                ModelSpec::Transformer(spec.clone()).describe(),
                t.shape
            )));
        }
        let x = read_floats(&v, &t.name, werr)?;
        theta[t.off..t.off + t.len()].copy_from_slice(&x);
    }
    if let Some((n, _)) = st
        .tensors()
        .iter()
        .find(|(n, _)| !g.params.iter().any(|t| &t.name == n))
    {
        return Err(werr(format!(
            "unexpected tensor '{n}' in a Transformer's file (its tensors: tok_emb.weight, pos_emb.weight, layers.N.attn.{{q,k,v,out}}.…, layers.N.ln1/ln2.…, layers.N.mlp.fc1/fc2.…, head.…)"
        )));
    }
    Ok((spec, theta))
}

/// A convolutional network's file: conv weights `[cout, cin, 3, 3]` under Sequential indices,
/// then one linear layer. The input's C is the first conv's cin; H×W comes from the metadata
/// `input` ("C,H,W") or, when absent, from the linear layer's width assuming square images. Every
/// tensor of the resulting graph must be present under its name with its shape.
fn parse_cnn(
    st: &SafeTensors,
    input: Option<&str>,
    activation: Activation,
    werr: &dyn Fn(String) -> Error,
) -> Result<(CnnSpec, Vec<f64>)> {
    let mut weights: Vec<(usize, Vec<usize>)> = Vec::new();
    for (name, view) in st.tensors() {
        let idx = name
            .strip_suffix(".weight")
            .and_then(|p| p.parse::<usize>().ok());
        if let Some(i) = idx {
            weights.push((i, view.shape().to_vec()));
        } else if !name.ends_with(".bias") {
            return Err(werr(format!(
                "unexpected tensor '{name}' in a convolutional network's file (expected N.weight / N.bias, the names of an nn.Sequential state dict)"
            )));
        }
    }
    weights.sort();
    let convs: Vec<&Vec<usize>> = weights
        .iter()
        .map(|(_, s)| s)
        .take_while(|s| s.len() == 4)
        .collect();
    let Some(first) = convs.first() else {
        return Err(werr("no 4-D conv weight ([cout, cin, 3, 3]) found".into()));
    };
    let rest = &weights[convs.len()..];
    if rest.len() != 1 || rest[0].1.len() != 2 {
        return Err(werr(format!(
            "expected conv layers then exactly one linear layer; found weights {:?}",
            weights
                .iter()
                .map(|(i, s)| format!("{i}.weight {s:?}"))
                .collect::<Vec<_>>()
        )));
    }
    if let Some(s) = convs.iter().find(|s| s[2] != 3 || s[3] != 3) {
        if s[0] == 3 && s[1] == 3 {
            return Err(werr(format!(
                "a conv weight has shape {s:?}, which looks like a TensorFlow/JAX kernel [kh, kw, cin, cout]: PyTorch stores [cout, cin, kh, kw] = [{}, {}, 3, 3] (save kernel.transpose(3, 2, 0, 1))",
                s[3], s[2]
            )));
        }
        return Err(werr(format!(
            "a conv weight has shape {s:?}: only 3×3 kernels (padding 1) are supported"
        )));
    }
    let channels: Vec<usize> = convs.iter().map(|s| s[0]).collect();
    let [classes, feat] = [rest[0].1[0], rest[0].1[1]];
    let c_last = *channels.last().unwrap_or(&1);
    let shrink = 1usize << channels.len().min(16);
    let lin = format!("{}.weight", rest[0].0);
    if classes > feat && feat <= 100 {
        return Err(werr(format!(
            "{lin} has shape [{classes}, {feat}], which looks transposed: PyTorch's nn.Linear stores [out, in] = [{feat}, {classes}] (JAX/Keras kernels are [in, out]; save kernel.T)"
        )));
    }
    let dims = match input {
        Some(s) => {
            let v: Vec<usize> = s
                .split(',')
                .map(|x| x.trim().parse::<usize>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| werr(format!("metadata input = {s}: expected C,H,W")))?;
            match v[..] {
                [c, h, w] => [c, h, w],
                _ => return Err(werr(format!("metadata input = {s}: expected C,H,W"))),
            }
        }
        // Without metadata: square images whose pooled size gives the linear layer's width, else
        // CIFAR-10's 32×32 (the shape check below then names the tensor that does not fit).
        None => {
            let per = feat / c_last.max(1);
            let q = (per as f64).sqrt().round() as usize;
            let side = if q * q == per && per * c_last == feat && q > 0 {
                q * shrink
            } else {
                32
            };
            [first[1], side, side]
        }
    };
    let spec =
        CnnSpec::new(dims, channels, activation, classes).map_err(|e| werr(e.to_string()))?;
    let graph = spec.graph();
    let mut theta = Vec::with_capacity(graph.num_params());
    for t in &graph.params {
        let v = st.tensor(&t.name).map_err(|_| {
            werr(format!(
                "{} is missing (a {} expects {:?})",
                t.name,
                ModelSpec::Cnn(spec.clone()).describe(),
                graph
                    .params
                    .iter()
                    .map(|p| format!("{} {:?}", p.name, p.shape))
                    .collect::<Vec<_>>()
            ))
        })?;
        if v.shape() != t.shape.as_slice() {
            return Err(werr(format!(
                "{} has shape {:?}; expected {:?} for {}",
                t.name,
                v.shape(),
                t.shape,
                ModelSpec::Cnn(spec.clone()).describe()
            )));
        }
        let (lname, part) = t.name.rsplit_once('.').unwrap_or((&t.name, ""));
        let x = read_floats(&v, lname, werr)?;
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(werr(format!(
                "{lname}.{part} entry {i} (flat, row-major) is {} (not finite); parameter {} of θ",
                x[i],
                theta.len() + i
            )));
        }
        theta.extend(x);
    }
    if st.len() != graph.params.len() {
        return Err(werr(format!(
            "{} tensors; {} has {}",
            st.len(),
            ModelSpec::Cnn(spec.clone()).describe(),
            graph.params.len()
        )));
    }
    Ok((spec, theta))
}

fn read_floats(v: &TensorView, lname: &str, werr: &dyn Fn(String) -> Error) -> Result<Vec<f64>> {
    let d = v.data();
    match v.dtype() {
        Dtype::F32 => Ok(d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect()),
        Dtype::F64 => Ok(d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()),
        other => Err(werr(format!(
            "{lname}: dtype {other:?} is not supported (save as float32 or float64)"
        ))),
    }
}
