//! Reading a safetensors file's network: which kind it is (the metadata's `model`, else the
//! tensors' names and ranks), then the fully connected, convolutional or Transformer layout from
//! the tensors' shapes, the settings the shapes cannot tell from the metadata, the caller's
//! options ([`Expect`], [`Overrides`]) or — said in [`Assumed`] — a default.

use super::fields::{Werr, file_loss, finite_floats, read_floats};
use super::meta::Meta;
use super::{Assumed, Expect, LoadedWeights, Overrides};
use crate::backend::{Activation, LossKind};
use crate::data::cifar10;
use crate::error::{Error, Result};
use crate::nn::cnn::CnnSpec;
use crate::nn::mlp::MlpSpec;
use crate::nn::model::ModelSpec;
use crate::nn::transformer::{LN_EPS, TransformerSpec};
use safetensors::{SafeTensors, tensor::TensorView};
use std::collections::BTreeMap;
use std::path::Path;

/// The network, θ, the loss the metadata names, what was assumed and the metadata's warnings,
/// checked against [`Expect`] and [`Overrides`]; `path` only names the file in errors.
pub(super) fn parse(
    bytes: &[u8],
    path: &Path,
    expect: &Expect,
    over: &Overrides,
) -> Result<LoadedWeights> {
    let werr = |msg: String| Error::Weights {
        path: path.into(),
        msg,
    };
    if let Some(what) = super::foreign_format(bytes) {
        return Err(werr(format!("this is {what}")));
    }
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| werr(format!("not a safetensors file: {e}")))?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| werr(format!("bad header: {e}")))?;
    let meta = Meta::read(header.metadata().as_ref()).map_err(&werr)?;
    let from_file = match meta.get("activation") {
        Some(a) => Some(a.parse::<Activation>().map_err(&werr)?),
        None => None,
    };
    let mut assumed = Vec::new();
    let transformer = meta.get("model").as_deref() == Some("transformer")
        || st.tensors().iter().any(|(n, _)| n == "tok_emb.weight");
    let deep = super::deep::family(&st, &meta);
    let (spec, theta, loss) = if let Some(fam) = deep {
        super::deep::parse_deep(&st, &meta, fam, expect, over, &werr)?
    } else if transformer {
        let (spec, theta) =
            transformer_file(&st, &meta, from_file, expect, over, &werr, &mut assumed)?;
        let loss = file_loss(&meta, expect, &werr)?;
        (spec, theta, loss.or(expect.loss))
    } else {
        let (spec, theta, loss) =
            other_file(&st, &meta, from_file, expect, over, &werr, &mut assumed)?;
        (spec, theta, loss)
    };
    Ok(LoadedWeights {
        spec,
        theta,
        loss,
        assumed,
        warnings: meta.warnings,
    })
}

/// The activation: the option's, else the file's (they must agree when both are there), else
/// `default`, said in `assumed`.
fn activation_of(
    file: Option<Activation>,
    option: Option<Activation>,
    default: Activation,
    werr: Werr,
    assumed: &mut Vec<Assumed>,
) -> Result<Activation> {
    match (file, option) {
        (Some(f), Some(o)) if f != o => Err(werr(format!(
            "the file's metadata says activation = {}, --activation says {}: drop the option (the file decides) or fix the file",
            f.name(),
            o.name()
        ))),
        (None, None) => {
            assumed.push(Assumed::new("activation", default.name(), "--activation"));
            Ok(default)
        }
        (f, o) => Ok(o.or(f).unwrap_or(default)),
    }
}

/// A Transformer's file: the settings its shapes cannot tell (heads, ε, mask, activation), then
/// its tensors ([`parse_transformer`]).
fn transformer_file(
    st: &SafeTensors,
    meta: &Meta,
    from_file: Option<Activation>,
    expect: &Expect,
    over: &Overrides,
    werr: Werr,
    assumed: &mut Vec<Assumed>,
) -> Result<(ModelSpec, Vec<f64>)> {
    if expect.widths.is_some() {
        return Err(werr(
            "this is a Transformer's file: --widths applies to fully connected networks (drop it)"
                .into(),
        ));
    }
    let act = activation_of(
        from_file,
        expect.activation,
        Activation::Silu,
        werr,
        assumed,
    )?;
    if !matches!(act, Activation::Silu | Activation::Gelu) {
        return Err(werr(format!(
            "activation = {}: the Transformer's MLP blocks take silu or gelu",
            act.name()
        )));
    }
    ln_eps_of(meta, over.ln_eps, werr, assumed)?;
    let heads = heads_of(meta, over.heads, werr, assumed)?;
    let masked = mask_of(meta, expect.mask, werr, assumed)?;
    let (spec, theta) = parse_transformer(st, heads, act, masked, werr)?;
    Ok((ModelSpec::Transformer(spec), theta))
}

/// LayerNorm's ε: the file's and the option's must be this Transformer's [`LN_EPS`]; neither
/// given, it is assumed.
fn ln_eps_of(
    meta: &Meta,
    option: Option<f64>,
    werr: Werr,
    assumed: &mut Vec<Assumed>,
) -> Result<()> {
    let other = |what: String| {
        werr(format!(
            "{what}: this Transformer's LayerNorm has ε = {LN_EPS} (Flax's default, Damian et al.'s); a model trained with another ε would compute other numbers"
        ))
    };
    if let Some(eps) = meta.get("ln_eps")
        && !eps.parse::<f64>().is_ok_and(|e| e == LN_EPS)
    {
        return Err(other(format!("metadata ln_eps = {eps}")));
    }
    match option {
        Some(o) if o != LN_EPS => Err(other(format!("--ln-eps {o}"))),
        Some(_) => Ok(()),
        None if meta.get("ln_eps").is_none() => {
            assumed.push(Assumed::new("ln_eps", &LN_EPS.to_string(), "--ln-eps"));
            Ok(())
        }
        None => Ok(()),
    }
}

/// Attention heads: the file's, else the option's (they must agree when both are there), else 8,
/// said in `assumed`.
fn heads_of(
    meta: &Meta,
    option: Option<usize>,
    werr: Werr,
    assumed: &mut Vec<Assumed>,
) -> Result<usize> {
    let file = match meta.get("heads") {
        Some(h) => Some(
            h.parse::<usize>()
                .map_err(|_| werr(format!("metadata heads = {h}: not a number")))?,
        ),
        None => None,
    };
    match (file, option) {
        (Some(f), Some(o)) if f != o => Err(werr(format!(
            "the file's metadata says heads = {f}, --heads says {o}: drop the option (the file decides) or fix the file"
        ))),
        (None, None) => {
            assumed.push(Assumed::new("heads", "8", "--heads"));
            Ok(8)
        }
        (f, o) => Ok(o.or(f).unwrap_or(8)),
    }
}

/// The padding mask: the file's (`true`/`false`), else `--mask`'s (they must agree when both are
/// there), else true, said in `assumed`.
fn mask_of(
    meta: &Meta,
    option: Option<bool>,
    werr: Werr,
    assumed: &mut Vec<Assumed>,
) -> Result<bool> {
    match (meta.get("mask").as_deref(), option) {
        (None, Some(m)) => Ok(m),
        (None, None) => {
            assumed.push(Assumed::new("mask", "true", "--mask"));
            Ok(true)
        }
        (Some(f @ ("true" | "false")), m) => {
            let f = f == "true";
            if let Some(m) = m.filter(|m| *m != f) {
                return Err(werr(format!(
                    "the file's metadata says mask = {f}, --mask says {m}: drop the option (the file decides) or use weights trained the other way"
                )));
            }
            Ok(f)
        }
        (Some(o), _) => Err(werr(format!("metadata mask = {o}: true or false"))),
    }
}

/// A fully connected or convolutional network's file.
fn other_file(
    st: &SafeTensors,
    meta: &Meta,
    from_file: Option<Activation>,
    expect: &Expect,
    over: &Overrides,
    werr: Werr,
    assumed: &mut Vec<Assumed>,
) -> Result<(ModelSpec, Vec<f64>, Option<LossKind>)> {
    if expect.mask.is_some() {
        return Err(werr(
            "--mask applies to the Transformer; this file holds another network (drop --mask)"
                .into(),
        ));
    }
    if over.heads.is_some() || over.ln_eps.is_some() {
        return Err(werr(
            "--heads and --ln-eps apply to the Transformer; this file holds another network (drop them)"
                .into(),
        ));
    }
    let conv = is_conv(st, meta, werr)?;
    let default = if conv {
        Activation::Relu
    } else {
        Activation::Tanh
    };
    let activation = activation_of(from_file, expect.activation, default, werr, assumed)?;
    check_dataset(meta, conv, werr)?;
    let loss = file_loss(meta, expect, werr)?;
    if conv && !st.tensors().iter().any(|(_, v)| v.shape().len() == 4) {
        return Err(werr(format!(
            "the file's metadata says model = {}, but no tensor is a 4-D conv weight [cout, cin, 3, 3]: fix the metadata or the file",
            meta.get("model").unwrap_or_default()
        )));
    }
    if conv {
        let input = cnn_input_meta(meta.get("input").as_deref(), werr)?;
        let (spec, theta) = parse_cnn(st, input, over.data_shape, activation, werr)?;
        if expect.widths.is_some() {
            return Err(werr(
                "this is a convolutional network's file: --widths applies to fully connected ones (drop it)".into(),
            ));
        }
        return Ok((ModelSpec::Cnn(spec), theta, loss));
    }
    let (widths, theta) = parse_mlp(st, werr)?;
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

/// Whether the file holds a convolutional network: the metadata says so, or a weight is 4-D
/// ([cout, cin, kh, kw]).
fn is_conv(st: &SafeTensors, meta: &Meta, werr: Werr) -> Result<bool> {
    match meta.get("model") {
        Some(m) if m.starts_with("cnn") || m.starts_with("convnet") => Ok(true),
        Some(m) if m == "mlp" || m.starts_with("fc") => Ok(false),
        Some(m) => Err(werr(format!(
            "the file's metadata says model = {m}; this engine runs fc-tanh/fc-relu and cnn-relu/cnn-tanh: use weights of one"
        ))),
        None => Ok(st.tensors().iter().any(|(_, v)| v.shape().len() == 4)),
    }
}

/// A file that names the data it belongs to must name the model's: MNIST for the fully
/// connected network, CIFAR-10 for the convolutional one.
fn check_dataset(meta: &Meta, conv: bool, werr: Werr) -> Result<()> {
    let want_data = if conv { "cifar" } else { "mnist" };
    if let Some(d) = meta.get("dataset")
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
    Ok(())
}

/// The tensors of a fully connected network grouped by layer: `fcN` (N from 1) or a Sequential
/// index `N`, weight and bias each; whether the names are `fcN`.
#[allow(clippy::type_complexity)]
fn mlp_layers<'a>(
    st: &'a SafeTensors,
    werr: Werr,
) -> Result<(BTreeMap<usize, [Option<TensorView<'a>>; 2]>, bool)> {
    let mut layers: BTreeMap<usize, [Option<TensorView>; 2]> = BTreeMap::new();
    let mut fc_style = None;
    let unexpected = |name: &str| {
        werr(format!(
            "unexpected tensor '{name}' (expected fcN.weight / fcN.bias)"
        ))
    };
    for (name, view) in st.tensors() {
        let (prefix, kind) = name.rsplit_once('.').ok_or_else(|| unexpected(&name))?;
        let slot = match kind {
            "weight" => 0,
            "bias" => 1,
            _ => return Err(unexpected(&name)),
        };
        let (is_fc, idx) = match prefix.strip_prefix("fc") {
            Some(n) => (true, n.parse::<usize>().ok().filter(|&n| n >= 1)),
            None => (false, prefix.parse::<usize>().ok()),
        };
        let idx = idx.ok_or_else(|| unexpected(&name))?;
        if *fc_style.get_or_insert(is_fc) != is_fc {
            return Err(werr("mixes `fcN.*` and Sequential `N.*` names".into()));
        }
        layers.entry(idx).or_default()[slot] = Some(view);
    }
    if layers.is_empty() {
        return Err(werr("no tensors".into()));
    }
    let fc_style = fc_style == Some(true);
    if fc_style {
        let want: Vec<usize> = (1..=layers.len()).collect();
        let have: Vec<usize> = layers.keys().copied().collect();
        if have != want {
            return Err(werr(format!(
                "layers {have:?}; expected fc1..fc{} without gaps",
                layers.len()
            )));
        }
    }
    Ok((layers, fc_style))
}

/// A fully connected network's widths and θ from its layers' shapes (PyTorch's [out, in]).
fn parse_mlp(st: &SafeTensors, werr: Werr) -> Result<(Vec<usize>, Vec<f64>)> {
    let (layers, fc_style) = mlp_layers(st, werr)?;
    let mut widths = Vec::new();
    let mut theta = Vec::new();
    for (li, (idx, [w, b])) in layers.into_iter().enumerate() {
        let lname = if fc_style {
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
            let x = finite_floats(t, &lname, part, theta.len(), werr)?;
            theta.extend(x);
        }
    }
    Ok((widths, theta))
}

/// The Transformer of a file: sizes from `tok_emb.weight` [V, D], `pos_emb.weight` [T, D],
/// `head.weight` [C, D] and the `layers.N.` prefixes (0..L each present, L ≤ 64); heads, mask
/// and activation as given; every tensor of the graph present with its shape, nothing else.
fn parse_transformer(
    st: &SafeTensors,
    heads: usize,
    act: Activation,
    masked: bool,
    werr: Werr,
) -> Result<(TransformerSpec, Vec<f64>)> {
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
    let spec = TransformerSpec::new(tok[0], pos[0], tok[1], heads, layers, act, masked, head[0])
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

/// The metadata `input` ("C,H,W") of a convolutional network's file, if any.
fn cnn_input_meta(input: Option<&str>, werr: Werr) -> Result<Option<[usize; 3]>> {
    let Some(s) = input else { return Ok(None) };
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| werr(format!("metadata input = {s}: expected C,H,W")))?;
    match v[..] {
        [c, h, w] => Ok(Some([c, h, w])),
        _ => Err(werr(format!("metadata input = {s}: expected C,H,W"))),
    }
}

/// The layers of a convolutional network's file: the conv weights' shapes `[cout, cin, 3, 3]`
/// in Sequential order, then the one linear layer's shape `[classes, features]`.
struct CnnLayout {
    convs: Vec<Vec<usize>>,
    classes: usize,
    features: usize,
}

/// Conv weights `[cout, cin, 3, 3]` under Sequential indices, then one linear layer; the
/// layouts of other frameworks are named with their fix.
fn cnn_layout(st: &SafeTensors, werr: Werr) -> Result<CnnLayout> {
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
    let n_conv = weights.iter().take_while(|(_, s)| s.len() == 4).count();
    if n_conv == 0 {
        return Err(werr("no 4-D conv weight ([cout, cin, 3, 3]) found".into()));
    }
    let rest = &weights[n_conv..];
    if rest.len() != 1 || rest[0].1.len() != 2 {
        return Err(werr(format!(
            "expected conv layers then exactly one linear layer; found weights {:?}",
            weights
                .iter()
                .map(|(i, s)| format!("{i}.weight {s:?}"))
                .collect::<Vec<_>>()
        )));
    }
    let convs: Vec<Vec<usize>> = weights[..n_conv].iter().map(|(_, s)| s.clone()).collect();
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
    let [classes, features] = [rest[0].1[0], rest[0].1[1]];
    let linear = format!("{}.weight", rest[0].0);
    if classes > features && features <= 100 {
        return Err(werr(format!(
            "{linear} has shape [{classes}, {features}], which looks transposed: PyTorch's nn.Linear stores [out, in] = [{features}, {classes}] (JAX/Keras kernels are [in, out]; save kernel.T)"
        )));
    }
    Ok(CnnLayout {
        convs,
        classes,
        features,
    })
}

/// The input shape C, H, W. The data set's shape decides: the caller's (`data`), else — for a
/// network of CIFAR-10's size, which runs on CIFAR-10 — CIFAR-10's 3×32×32; a metadata `input`
/// that contradicts it is an error naming both. Without either, the metadata's; without that,
/// square images whose pooled size gives the linear layer's width, else 32×32 (the shape check
/// that follows then names the tensor that does not fit).
fn cnn_input(
    l: &CnnLayout,
    file: Option<[usize; 3]>,
    data: Option<[usize; 3]>,
    werr: Werr,
) -> Result<[usize; 3]> {
    let cifar = [cifar10::CHANNELS, cifar10::SIDE, cifar10::SIDE];
    let (decides, whose) = match data {
        Some(d) => (Some(d), "the data set's"),
        None if file.is_some_and(|f| f.iter().product::<usize>() == cifar10::D) => (
            Some(cifar),
            "CIFAR-10's (the data set a network of 3072 inputs runs on)",
        ),
        None => (None, ""),
    };
    match (file, decides) {
        (Some(f), Some(d)) if f != d => Err(werr(format!(
            "the file's metadata says input = {},{},{} (C,H,W), but {whose} images are {}×{}×{}: the data set's shape decides; fix or drop the metadata input",
            f[0], f[1], f[2], d[0], d[1], d[2]
        ))),
        (_, Some(d)) => Ok(d),
        (Some(f), None) => Ok(f),
        (None, None) => {
            let c_last = l.convs.last().map_or(1, |s| s[0]);
            let shrink = 1usize << l.convs.len().min(16);
            let per = l.features / c_last.max(1);
            let q = (per as f64).sqrt().round() as usize;
            let side = if q * q == per && per * c_last == l.features && q > 0 {
                q * shrink
            } else {
                32
            };
            Ok([l.convs[0][1], side, side])
        }
    }
}

/// A convolutional network's file ([`cnn_layout`], [`cnn_input`]): every tensor of the resulting
/// graph present under its name with its shape, nothing else.
fn parse_cnn(
    st: &SafeTensors,
    input: Option<[usize; 3]>,
    data: Option<[usize; 3]>,
    activation: Activation,
    werr: Werr,
) -> Result<(CnnSpec, Vec<f64>)> {
    let l = cnn_layout(st, werr)?;
    let dims = cnn_input(&l, input, data, werr)?;
    let channels: Vec<usize> = l.convs.iter().map(|s| s[0]).collect();
    let spec =
        CnnSpec::new(dims, channels, activation, l.classes).map_err(|e| werr(e.to_string()))?;
    let graph = spec.graph();
    let describe = || ModelSpec::Cnn(spec.clone()).describe();
    let mut theta = Vec::with_capacity(graph.num_params());
    for t in &graph.params {
        let v = st.tensor(&t.name).map_err(|_| {
            werr(format!(
                "{} is missing (a {} expects {:?})",
                t.name,
                describe(),
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
                describe()
            )));
        }
        let (lname, part) = t.name.rsplit_once('.').unwrap_or((&t.name, ""));
        theta.extend(finite_floats(&v, lname, part, theta.len(), werr)?);
    }
    if st.len() != graph.params.len() {
        return Err(werr(format!(
            "{} tensors; {} has {}",
            st.len(),
            describe(),
            graph.params.len()
        )));
    }
    Ok((spec, theta))
}
