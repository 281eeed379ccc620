#!/usr/bin/env python3
"""Independent PyTorch reference for a 2-layer post-LN Transformer classifier on SST-2 (the twin of
the Rust Transformer; after Damian et al.'s Flax models/transformer.py).

Model (hyper-parameters read off a weights file): width D (64), heads H (8; head width dh = D/H),
layers L (2), 2 classes, vocabulary V, sequence length T (the longest training sentence, 51 for
SST2-1k). D, V, T come from the shapes tok_emb.weight [V,D], pos_emb.weight [T,D], L from the number
of distinct `layers.N.` prefixes (N = 0..L-1), H from the safetensors metadata key `heads` (8 if
absent), the activation from `activation` (`silu`, the default, or `gelu`; files written before
read as `act`), the mask from `mask` (`true`, the default, or `false`); --heads / --act / --mask
true|false override the metadata. The key names are subspace-lab's (twin_metadata.py holds the one
table both sides use); a key neither knows is named in a warning. Linear layers
are PyTorch's: weight [out,in], y = x Wᵀ + b. θ is the concatenation of these tensors, each flattened
row-major, in THIS order (q, k, v weights first, then their three biases):
  tok_emb.weight [V,D], pos_emb.weight [T,D], then for l = 0..L-1:
    layers.l.attn.q.weight [D,D], layers.l.attn.k.weight [D,D], layers.l.attn.v.weight [D,D],
    layers.l.attn.q.bias [D], layers.l.attn.k.bias [D], layers.l.attn.v.bias [D],
    layers.l.attn.out.weight [D,D], layers.l.attn.out.bias [D],
    layers.l.ln1.weight [D], layers.l.ln1.bias [D],
    layers.l.mlp.fc1.weight [D,D], layers.l.mlp.fc1.bias [D],
    layers.l.mlp.fc2.weight [D,D], layers.l.mlp.fc2.bias [D],
    layers.l.ln2.weight [D], layers.l.ln2.bias [D],
  then head.weight [2,D], head.bias [2].
(p = 243,906 at D = 64, L = 2, V = 2970, T = 51.) A weights file must hold exactly these names.

Forward for one sentence of token ids t[0..T) (0 = padding, on the right):
  x = tok_emb[t] + pos_emb[0..T)                                               [T,D]
  per layer:  q = x Wqᵀ + bq, k = x Wkᵀ + bk, v = x Wvᵀ + bv                     [T,D]
              head h uses columns h·dh..(h+1)·dh:  S_h = q_h k_hᵀ / √dh          [T,T]
              mask = true: S_h[i,j] = -inf for every key j with t[j] = 0 (queries are not masked)
              P_h = softmax over keys j;  o_h = P_h v_h;  o = concat_h o_h (head h in columns
              h·dh..);  a = o Woᵀ + bo
              x = LN1(x + a);  m = fc2(act(fc1(x)));  x = LN2(x + m)
  LN = torch.nn.functional.layer_norm over the last dim, eps 1e-6, biased variance, weight/bias =
  lnX.weight / lnX.bias. act: silu(z) = z·sigmoid(z); gelu = the tanh approximation
  0.5·z·(1 + tanh(√(2/π)·(z + 0.044715·z³))).
  pooled = Σ_j w_j x_j, w_j = [t_j ≠ 0] / Σ_j [t_j ≠ 0] with mask = true, else w_j = 1/T (the mean
  over all T positions, padding included, as Damian's code);  logits = pooled head.weightᵀ + head.bias.
Attention is written out (matmuls + softmax, no scaled_dot_product_attention) so torch.func's
forward-mode AD applies. Consequences worth knowing when comparing Hessians: softmax is invariant to
a per-query shift, so ∂L/∂bk ≡ 0 and the rows/columns of every attn.k.bias are zero (to rounding);
every tok_emb row of a word no sentence at hand uses has exactly zero gradient/Hessian rows; with
mask = true so do the pad row tok_emb[0] and the pos_emb rows past the longest sentence at hand.

Data: SST-2 in GLUE's train.tsv format, from --data (default: shared/data/sst2/train.first1000.tsv
beside the repository, or $SUBSPACE_LAB_SST2). The file is read as UTF-8 and split on '\n' (a
trailing '\r' is dropped, empty lines are skipped); the first line must be `sentence<TAB>label`;
each row is `sentence<TAB>label` (split at the last tab; label 0 or 1). Sentences are already
lower-cased and space-tokenised: the words of a sentence = Python's sentence.split() (whitespace
runs separate, empty strings dropped; the shared file's only whitespace inside sentences is ' ').
The training set is the first 1000 rows (SST2-1k); --samples N uses its first N (default: all).
Vocabulary, built from ALL those (≤ 1000) rows whatever --samples is: count every word's occurrences,
sort by descending count, ties by the word as a Python string (code-point order); ids 0 = "<pad>",
1 = "<unk>", the sorted words from 2 (V = 2970 for the shared file). T = the longest of those rows in
words (51). Token ids: [n,T], each row its words' ids, padded with 0 on the right; a word outside the
vocabulary is 1. If the weights' metadata has `vocab` (a JSON array of strings in id order, "<pad>"
and "<unk>" included) it must equal this vocabulary (else: an error naming the first differing id,
exit 1; this is the test of the Rust tokenizer); V and T must equal the tensors' in any case.

Loss (Cohen's convention): mse  L(θ) = (1/n) Σ_i ½‖f(x_i) − onehot(y_i)‖²;
                           ce   L(θ) = (1/n) Σ_i CE(softmax(f(x_i)), y_i).
--loss overrides the metadata's `loss`; without either, mse. Accuracy = fraction of i with
argmax f(x_i) = y_i (ties: the first index, torch.argmax).

  spectrum: loss, accuracy, ‖∇L‖ and the top-k eigenvalues of ∇²L over the n sentences in float64.
            Hessian-vector products by torch.func forward-over-reverse (jvp of grad) over the flat θ,
            summed over chunks of --chunk sentences (each chunk's loss already divided by the full n);
            eigenvalues by scipy's eigsh (ARPACK, which='LA', start vector N(0,1) from --seed, tol
            --tol, default 1e-12). Weights may be f32 or f64 tensors; they are cast to float64.
            Prints one JSON object (eigenvalues descending).
  hvp:      H·v for v from a safetensors file (one tensor of p entries, or tensors named like the
            weights, concatenated in θ's order): prints ‖Hv‖, vᵀHv and Hv's first entries (--out
            saves Hv as tensor `hv`).
  bench:    float32 timings (weights cast to f32; median ms over --repeats after one warm-up) of the
            full-data gradient and one HVP, both torch.func, threads = the machine's core count;
            --top10 also times eigsh's top 10 at --tol (0 = eigsh's default, machine precision).
  init:     writes a seeded random model (torch.manual_seed(--seed), tensors drawn in θ's order) of
            width --width (64), --heads (8), --layers (2), V and T from the data's vocabulary:
            tok_emb, pos_emb ~ N(0, 1/D) (variance; 1/64 at D = 64); q/k/v/out/fc1/fc2 weights Flax
            lecun_normal (normal truncated at ±2σ, σ = √(1/D)/0.87962566103423978, so std √(1/D));
            all biases 0; LN weights 1, LN biases 0; head zero as Damian's, or with --random-head
            head.weight ~ N(0, 1/D) (a zero head makes every gradient but the head's vanish). f32,
            or --f64. Metadata: model "transformer", heads, activation, mask, ln_eps, seed, random_head,
            vocab (JSON list).
  selftest: (a) on the first --samples (6) sentences of the real data, a --random-head init model
            (full size): HVP against a central difference of gradients (step 1e-5) and against
            reverse-over-reverse autograd, chunked sums (chunk 4) against one chunk, the gradient
            against autograd's, the logits against the same model assembled from
            torch.nn.TransformerEncoderLayer (post-LN, key_padding_mask), for mask true/false ×
            mse/ce × silu/gelu (tolerances: 1e-6 for the difference, 1e-12 else); init → read back →
            vocab check round trip, and the vocab check catching a swapped pair.
            (b) tiny Transformers (V = 7, ids 0..6, 0 = pad; D = 8, H = 2, T = 5; 1 and 2 layers; the
            6 fixed sentences of TINY_TOKENS, with padding; random weights incl. head and LN weights/
            biases, see tiny_params; seed --seed + L): the logits against the
            nn.TransformerEncoderLayer model, the dense Hessian by torch.autograd.functional.hessian
            against all HVP columns (vmap), its symmetry, eigsh's top 3 against numpy's eigvalsh,
            for all 8 mask × loss × act combinations (tolerances 1e-12; eigenvalues 1e-9).
            With --write-tiny-fixture PREFIX it also writes
            PREFIX_mse_silu_mask_2layer.json (mask true, silu, mse, 2 layers) and
            PREFIX_ce_gelu_nomask_1layer.json (mask false, gelu, ce, 1 layer): config, names and
            shapes, token ids, labels, θ (flat, θ's order), logits, loss, accuracy, gradient, the dense
            Hessian as its upper triangle (`hessian_upper`: H[i][j] for i = 0..p-1, j = i..p-1,
            row-major, p(p+1)/2 entries) and its top 3 eigenvalues, all float64 (shortest repr, so
            exact; weights from tiny_params with seed --seed + 10 + L, the committed ones from --seed 0).
            To keep each JSON under 2 MB these fixtures use D = 4, H = 2 (dh = 2) instead of 8
            (p = 330 and 194; p = 1042 at D = 8, 2 layers, would be ~23 MB as a p×p list) and
            store a triangle (the full 330×330 list is 2.27 MB); the same checks are run on them.
            Exits 1 on a failure.

Cost, measured on 2 cores shared with other work (load 2.5–3.5): float64 gradient / HVP on 200
sentences ≈ 0.17 s / 0.55–0.7 s (f32 bench, n = 100: 44 / 136 ms); spectrum n = 200, k = 5, tol 1e-12
from `init --random-head --seed 0 --f64`: 95 HVPs, 160 s (215 s under heavier load); selftest
50–105 s.
Setup: python3 -m venv /work/venv && /work/venv/bin/pip install torch numpy scipy safetensors
Written against torch 2.15, numpy 2.4, scipy 1.17, safetensors 0.8 (the versions are printed).
"""
import argparse, json, math, os, statistics, sys, tempfile, time, warnings
from collections import Counter
from dataclasses import dataclass, asdict
from pathlib import Path

# Some torch builds warn at import that torch.jit.script is deprecated; not ours to act on.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

import numpy as np
import scipy
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, eigsh
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twin_metadata  # noqa: E402  (the metadata keys both sides use)

TRAIN_ROWS = 1000
LN_EPS = 1e-6
CLASSES = 2
LECUN_TRUNC = 0.87962566103423978  # std of a unit normal truncated at ±2

# Tiny selftest data: 6 sentences over ids 1..6 (0 = pad, on the right), every position used by one.
TINY_TOKENS = [[3, 1, 4, 1, 5], [2, 6, 5, 0, 0], [4, 0, 0, 0, 0], [6, 2, 3, 5, 0], [1, 1, 2, 0, 0], [5, 3, 6, 2, 4]]
TINY_LABELS = [1, 0, 1, 1, 0, 0]


@dataclass
class Config:
    vocab: int
    seq_len: int
    width: int
    heads: int
    layers: int
    act: str = "silu"
    mask: bool = True


def param_specs(c):
    """(name, shape) in θ's order."""
    D = c.width
    out = [("tok_emb.weight", (c.vocab, D)), ("pos_emb.weight", (c.seq_len, D))]
    for l in range(c.layers):
        p = f"layers.{l}."
        out += [(p + "attn.q.weight", (D, D)), (p + "attn.k.weight", (D, D)), (p + "attn.v.weight", (D, D)),
                (p + "attn.q.bias", (D,)), (p + "attn.k.bias", (D,)), (p + "attn.v.bias", (D,)),
                (p + "attn.out.weight", (D, D)), (p + "attn.out.bias", (D,)),
                (p + "ln1.weight", (D,)), (p + "ln1.bias", (D,)),
                (p + "mlp.fc1.weight", (D, D)), (p + "mlp.fc1.bias", (D,)),
                (p + "mlp.fc2.weight", (D, D)), (p + "mlp.fc2.bias", (D,)),
                (p + "ln2.weight", (D,)), (p + "ln2.bias", (D,))]
    return out + [("head.weight", (CLASSES, D)), ("head.bias", (CLASSES,))]


def activation(name, z):
    if name == "silu":
        return z * torch.sigmoid(z)
    if name == "gelu":
        return 0.5 * z * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)))
    raise ValueError(f"act {name!r}: silu or gelu")


def forward(c, P, tok):
    """Logits [B,2] for token ids tok [B,T] and parameters P (name → tensor)."""
    B, T = tok.shape
    D, H = c.width, c.heads
    dh = D // H
    keep = tok != 0
    x = P["tok_emb.weight"][tok] + P["pos_emb.weight"][:T]
    for l in range(c.layers):
        pre = f"layers.{l}."

        def lin(z, name):
            return z @ P[pre + name + ".weight"].T + P[pre + name + ".bias"]

        q, k, v = (lin(x, "attn." + s).reshape(B, T, H, dh).transpose(1, 2) for s in "qkv")  # [B,H,T,dh]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(dh)  # [B,H,T(query),T(key)]
        if c.mask:
            s = s.masked_fill(~keep[:, None, None, :], float("-inf"))
        o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = F.layer_norm(x + lin(o, "attn.out"), (D,), P[pre + "ln1.weight"], P[pre + "ln1.bias"], eps=LN_EPS)
        m = lin(activation(c.act, lin(x, "mlp.fc1")), "mlp.fc2")
        x = F.layer_norm(x + m, (D,), P[pre + "ln2.weight"], P[pre + "ln2.bias"], eps=LN_EPS)
    if c.mask:
        w = keep.to(x.dtype)
        w = w / w.sum(1, keepdim=True)
    else:
        w = torch.full((B, T), 1.0 / T, dtype=x.dtype)
    pooled = (w[..., None] * x).sum(1)
    return pooled @ P["head.weight"].T + P["head.bias"]


# ----------------------------------------------------------------------------------------- data

def default_data():
    env = os.environ.get("SUBSPACE_LAB_SST2")
    if env:
        return env
    rel = Path("shared/data/sst2/train.first1000.tsv")
    repo = Path(__file__).resolve().parents[1]
    for base in (repo, repo.parent):
        if (base / rel).exists():
            return str(base / rel)
    return str(repo.parent / rel)


def read_rows(path):
    """The first ≤ 1000 (words, label) rows of a GLUE SST-2 tsv."""
    if not Path(path).is_file():
        sys.exit(f"{path}: no such file (SST-2 train.tsv format; --data or $SUBSPACE_LAB_SST2)")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in Path(path).read_bytes().decode("utf-8").split("\n")]
    lines = [ln for ln in lines if ln != ""]
    if not lines or lines[0] != "sentence\tlabel":
        sys.exit(f"{path}: the first line must be 'sentence<TAB>label', is {lines[0] if lines else ''!r}")
    rows = []
    for i, ln in enumerate(lines[1:TRAIN_ROWS + 1], start=2):
        if "\t" not in ln:
            sys.exit(f"{path}:{i}: no tab")
        sent, lab = ln.rsplit("\t", 1)
        if lab.strip() not in ("0", "1"):
            sys.exit(f"{path}:{i}: label {lab!r} is not 0 or 1")
        rows.append((sent.split(), int(lab)))
    if not rows:
        sys.exit(f"{path}: no rows")
    return rows


def build_vocab(rows):
    counts = Counter(w for words, _ in rows for w in words)
    return ["<pad>", "<unk>"] + [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def load_data(path, n):
    """(vocab, T, tokens [n,T] int64, labels [n] int64) from the first n rows; vocab/T from all ≤ 1000."""
    rows = read_rows(path)
    vocab = build_vocab(rows)
    T = max(len(words) for words, _ in rows)
    n = len(rows) if n is None else n
    if not 1 <= n <= len(rows):
        sys.exit(f"--samples {n}: {path} has {len(rows)} usable rows (at most {TRAIN_ROWS} are used)")
    ids = {w: i for i, w in enumerate(vocab)}
    tok = torch.zeros((n, T), dtype=torch.int64)
    for i, (words, _) in enumerate(rows[:n]):
        tok[i, :len(words)] = torch.tensor([ids.get(w, 1) for w in words], dtype=torch.int64)
    y = torch.tensor([lab for _, lab in rows[:n]], dtype=torch.int64)
    return vocab, T, tok, y


def check_vocab(meta_vocab, vocab):
    """None if equal, else a message naming the first differing id."""
    if meta_vocab == vocab:
        return None
    for i in range(max(len(meta_vocab), len(vocab))):
        a = meta_vocab[i] if i < len(meta_vocab) else "<absent>"
        b = vocab[i] if i < len(vocab) else "<absent>"
        if a != b:
            return (f"vocabulary mismatch at id {i}: weights' metadata has {a!r}, the data gives {b!r} "
                    f"(sizes {len(meta_vocab)} and {len(vocab)})")
    return "vocabulary mismatch"


def targets(y, loss, dtype):
    return F.one_hot(y, CLASSES).to(dtype) if loss == "mse" else y


# -------------------------------------------------------------------------------------- weights

def read_weights(path, a):
    """(Config, float64 params in θ's order, loss, metadata) of a safetensors file; CLI overrides."""
    sd = load_file(path)
    with safe_open(path, framework="pt") as f:
        meta = twin_metadata.read(f.metadata() or {}, path)
    for k in ("tok_emb.weight", "pos_emb.weight"):
        if k not in sd or sd[k].ndim != 2:
            sys.exit(f"{path}: no 2-d {k}; names: {sorted(sd)}")
    V, D = sd["tok_emb.weight"].shape
    T = sd["pos_emb.weight"].shape[0]
    idx = sorted({int(k.split(".")[1]) for k in sd if k.startswith("layers.")})
    if idx != list(range(len(idx))):
        sys.exit(f"{path}: layer indices {idx} are not 0..L-1")
    heads, act, mask = twin_metadata.transformer_settings(meta, a.heads, a.act, a.mask)
    if "ln_eps" in meta and float(meta["ln_eps"]) != LN_EPS:
        sys.exit(f"{path}: metadata ln_eps = {meta['ln_eps']}: this twin's LayerNorm has ε = {LN_EPS}")
    if mask is None or act not in ("silu", "gelu") or heads < 1 or D % heads:
        sys.exit(f"{path}: bad config: mask {a.mask or meta.get('mask')!r}, act {act!r}, heads {heads} (width {D})")
    c = Config(vocab=V, seq_len=T, width=D, heads=heads, layers=len(idx), act=act, mask=mask)
    specs = param_specs(c)
    if set(sd) != {n for n, _ in specs}:
        sys.exit(f"{path}: names differ from the layout: missing {sorted({n for n, _ in specs} - set(sd))}, "
                 f"extra {sorted(set(sd) - {n for n, _ in specs})}")
    P = {}
    for name, shape in specs:
        if tuple(sd[name].shape) != shape:
            sys.exit(f"{path}: {name} has shape {list(sd[name].shape)}, want {list(shape)}")
        if not torch.isfinite(sd[name]).all():
            sys.exit(f"{path}: {name} has a non-finite entry")
        P[name] = sd[name].to(torch.float64)
    loss = a.loss or meta.get("loss", "mse")
    if loss not in ("mse", "ce"):
        sys.exit(f"loss {loss!r}: mse or ce")
    return c, P, loss, meta


def checked_data(a, c, meta):
    """Load the data and check its vocabulary and T against the weights (exit 1 on a mismatch)."""
    vocab, T, tok, y = load_data(a.data, a.samples)
    if "vocab" in meta:
        msg = check_vocab(json.loads(meta["vocab"]), vocab)
        if msg:
            print(f"{a.weights}: {msg}", file=sys.stderr)
            sys.exit(1)
    if c.vocab != len(vocab) or c.seq_len != T:
        print(f"{a.weights}: tok_emb/pos_emb give V = {c.vocab}, T = {c.seq_len}; the data gives V = {len(vocab)}, "
              f"T = {T}", file=sys.stderr)
        sys.exit(1)
    return tok, y


class Objective:
    """L(θ) over the full data, evaluated as a sum over chunks; θ flat in the documented order."""

    def __init__(self, c, P, tok, t, loss, chunk):
        self.c = c
        specs = param_specs(c)
        self.names = [n for n, _ in specs]
        self.shapes = [s for _, s in specs]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.theta = torch.cat([P[n].detach().reshape(-1) for n in self.names])
        self.n = tok.shape[0]
        self.chunks = [(tok[i:i + chunk], t[i:i + chunk]) for i in range(0, self.n, chunk)]
        self.loss = loss
        self._grad = torch.func.grad(self.chunk_loss)

    def params(self, th):
        # torch.split, not one slice per tensor: its backward is one cat, not a zero-filled θ per slice.
        return {name: piece.reshape(s) for name, s, piece in zip(self.names, self.shapes, th.split(self.sizes))}

    def forward(self, th, tc):
        return forward(self.c, self.params(th), tc)

    def chunk_loss(self, th, tokc, tc):
        """This chunk's share of the full-data loss: its sum divided by the full n."""
        out = self.forward(th, tokc)
        if self.loss == "mse":
            return 0.5 * ((out - tc) ** 2).sum() / self.n
        return F.cross_entropy(out, tc, reduction="sum") / self.n

    def full_loss(self, th):
        return sum(self.chunk_loss(th, xc, tc) for xc, tc in self.chunks)

    def value(self, th, labels=None):
        loss, correct, off = 0.0, 0, 0
        with torch.no_grad():
            for xc, tc in self.chunks:
                loss = loss + self.chunk_loss(th, xc, tc)
                if labels is not None:
                    pred = self.forward(th, xc).argmax(1)
                    correct += (pred == labels[off:off + xc.shape[0]]).sum().item()
                off += xc.shape[0]
        return loss.item(), correct / self.n

    def grad(self, th):
        return sum(self._grad(th, xc, tc) for xc, tc in self.chunks)

    def hvp(self, th, v):
        return sum(torch.func.jvp(lambda p: self._grad(p, xc, tc), (th,), (v,))[1] for xc, tc in self.chunks)


def top_k(obj, k, tol, seed, verbose=False):
    theta = obj.theta
    p = theta.numel()
    count = [0]
    t0 = time.time()

    def mv(v):
        count[0] += 1
        if verbose and count[0] % 10 == 0:
            print(f"{count[0]} HVPs, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        vt = torch.from_numpy(np.array(v, dtype=np.float64).reshape(-1)).to(theta.dtype)
        return obj.hvp(theta, vt).detach().numpy().astype(np.float64)

    op = LinearOperator((p, p), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(p)
    vals = eigsh(op, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return sorted(vals.tolist(), reverse=True), count[0]


def versions():
    return {"torch": torch.__version__, "scipy": scipy.__version__, "numpy": np.__version__}


def config_json(c):
    return asdict(c)


# ------------------------------------------------------------------------------------- commands

def cmd_spectrum(a):
    c, P, loss, meta = read_weights(a.weights, a)
    tok, y = checked_data(a, c, meta)
    obj = Objective(c, P, tok, targets(y, loss, torch.float64), loss, a.chunk)
    tol = 1e-12 if a.tol is None else a.tol
    t0 = time.time()
    lval, acc = obj.value(obj.theta, y)
    g = obj.grad(obj.theta)
    vals, hvps = top_k(obj, a.k, tol, a.seed, a.verbose)
    p = obj.theta.numel()
    print(json.dumps({"loss": lval, "accuracy": acc, "grad_norm": g.norm().item(), "eigenvalues": vals,
                      "n": obj.n, "k": a.k, "tol": tol, **versions(), "seconds": time.time() - t0,
                      "hvps": hvps, "loss_kind": loss, "config": config_json(c), "p": p, "params": p,
                      "chunk": a.chunk, "threads": torch.get_num_threads(), "data": a.data}))


def cmd_hvp(a):
    c, P, loss, meta = read_weights(a.weights, a)
    tok, y = checked_data(a, c, meta)
    obj = Objective(c, P, tok, targets(y, loss, torch.float64), loss, a.chunk)
    p = obj.theta.numel()
    vs = load_file(a.vector)
    if len(vs) == 1 and next(iter(vs.values())).numel() == p:
        v = next(iter(vs.values())).reshape(-1)
    elif set(vs) == set(obj.names):
        v = torch.cat([vs[k].reshape(-1) for k in obj.names])
    else:
        sys.exit(f"{a.vector}: want one tensor of {p} entries or tensors named {obj.names}; has {sorted(vs)}")
    v = v.to(torch.float64)
    if v.numel() != p:
        sys.exit(f"{a.vector}: {v.numel()} entries, θ has {p}")
    t0 = time.time()
    hv = obj.hvp(obj.theta, v)
    if a.out:
        save_file({"hv": hv.contiguous()}, a.out)
    print(json.dumps({"hv_norm": hv.norm().item(), "v_norm": v.norm().item(), "vHv": torch.dot(v, hv).item(),
                      "hv_first": hv[:a.first].tolist(), "n": obj.n, "p": p, "params": p, "loss_kind": loss,
                      "config": config_json(c), "seconds": time.time() - t0, **versions()}))


def cmd_bench(a):
    c, P, loss, meta = read_weights(a.weights, a)
    tok, y = checked_data(a, c, meta)
    P = {k: v.to(torch.float32) for k, v in P.items()}
    obj = Objective(c, P, tok, targets(y, loss, torch.float32), loss, a.chunk)
    theta = obj.theta
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(a.seed), dtype=torch.float32)
    res = {}
    for name, f in [("grad_ms", lambda: obj.grad(theta)), ("hvp_ms", lambda: obj.hvp(theta, v))]:
        f()
        ts = []
        for _ in range(a.repeats):
            t0 = time.perf_counter(); f(); ts.append((time.perf_counter() - t0) * 1e3)
        res[name] = statistics.median(ts)
    if a.top10:
        tol = 0.0 if a.tol is None else a.tol
        ts = []
        for _ in range(min(a.repeats, 3)):
            t0 = time.perf_counter(); _, hvps = top_k(obj, 10, tol, a.seed); ts.append((time.perf_counter() - t0) * 1e3)
        res.update({"top10_ms": statistics.median(ts), "top10_hvps": hvps, "tol": tol})
    res.update({"backend": f"pytorch-{torch.__version__}-cpu-f32", "threads": torch.get_num_threads(), "n": obj.n,
                "chunk": a.chunk, "repeats": a.repeats, "loss_kind": loss, "config": config_json(c),
                "params": theta.numel()})
    print(json.dumps(res))


def init_params(c, seed, random_head):
    """The documented init, drawn in θ's order after torch.manual_seed(seed); float64."""
    torch.manual_seed(seed)
    D, P = c.width, {}
    sigma = math.sqrt(1.0 / D) / LECUN_TRUNC
    for name, shape in param_specs(c):
        t = torch.zeros(shape, dtype=torch.float64)
        if name in ("tok_emb.weight", "pos_emb.weight"):
            t.normal_(0.0, math.sqrt(1.0 / D))
        elif name == "head.weight":
            if random_head:
                t.normal_(0.0, math.sqrt(1.0 / D))
        elif name.endswith(".weight") and ".ln" not in name:
            torch.nn.init.trunc_normal_(t, 0.0, sigma, -2.0 * sigma, 2.0 * sigma)
        elif name.endswith(".weight"):
            t.fill_(1.0)  # LN weights; all biases stay 0
        P[name] = t
    return P


def write_init(path, c, vocab, seed, random_head, f64):
    P = init_params(c, seed, random_head)
    dtype = torch.float64 if f64 else torch.float32
    sd = {k: v.to(dtype).contiguous() for k, v in P.items()}
    meta = twin_metadata.transformer_meta(c.heads, c.act, c.mask, LN_EPS, seed=str(seed),
                                          random_head="true" if random_head else "false",
                                          vocab=json.dumps(vocab))
    save_file(sd, path, metadata=meta)
    return sd


def cmd_init(a):
    vocab, T, _, _ = load_data(a.data, None)
    c = Config(vocab=len(vocab), seq_len=T, width=a.width, heads=a.heads or 8, layers=a.layers,
               act=a.act or "silu", mask=(a.mask or "true") == "true")
    if c.width % c.heads:
        sys.exit(f"--width {c.width} is not a multiple of --heads {c.heads}")
    sd = write_init(a.out, c, vocab, a.seed, a.random_head, a.f64)
    print(json.dumps({"out": a.out, "params": sum(v.numel() for v in sd.values()), "config": config_json(c),
                      "random_head": a.random_head, "seed": a.seed, "dtype": str(sd["head.bias"].dtype)}))


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def forward_nn(c, P, tok):
    """The same forward built from torch.nn.TransformerEncoderLayer (post-LN, batch_first, dropout 0,
    key_padding_mask), as an independent check of forward()."""
    act = (lambda z: F.silu(z)) if c.act == "silu" else (lambda z: F.gelu(z, approximate="tanh"))
    x = P["tok_emb.weight"][tok] + P["pos_emb.weight"][:tok.shape[1]]
    for l in range(c.layers):
        pre = f"layers.{l}."
        layer = torch.nn.TransformerEncoderLayer(c.width, c.heads, dim_feedforward=c.width, dropout=0.0,
                                                 activation=act, layer_norm_eps=LN_EPS, batch_first=True,
                                                 norm_first=False, dtype=torch.float64)
        sd = {"self_attn.in_proj_weight": torch.cat([P[pre + f"attn.{s}.weight"] for s in "qkv"]),
              "self_attn.in_proj_bias": torch.cat([P[pre + f"attn.{s}.bias"] for s in "qkv"]),
              "self_attn.out_proj.weight": P[pre + "attn.out.weight"],
              "self_attn.out_proj.bias": P[pre + "attn.out.bias"],
              "linear1.weight": P[pre + "mlp.fc1.weight"], "linear1.bias": P[pre + "mlp.fc1.bias"],
              "linear2.weight": P[pre + "mlp.fc2.weight"], "linear2.bias": P[pre + "mlp.fc2.bias"],
              "norm1.weight": P[pre + "ln1.weight"], "norm1.bias": P[pre + "ln1.bias"],
              "norm2.weight": P[pre + "ln2.weight"], "norm2.bias": P[pre + "ln2.bias"]}
        layer.load_state_dict(sd, strict=True)
        layer.train()  # no inference fast path
        x = layer(x, src_key_padding_mask=(tok == 0) if c.mask else None)
    keep = (tok != 0).to(x.dtype) if c.mask else torch.ones(tok.shape, dtype=x.dtype)
    pooled = (x * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
    return F.linear(pooled, P["head.weight"], P["head.bias"])


def tiny_params(c, seed):
    """Random non-degenerate weights for the tiny checks (float64, drawn in θ's order)."""
    g = torch.Generator().manual_seed(seed)
    P = {}
    for name, shape in param_specs(c):
        z = torch.randn(shape, generator=g, dtype=torch.float64)
        if name in ("tok_emb.weight", "pos_emb.weight"):
            P[name] = z
        elif ".ln" in name:
            P[name] = (1.0 + 0.3 * z) if name.endswith(".weight") else 0.3 * z
        elif name.endswith(".weight"):
            P[name] = z / math.sqrt(shape[1])
        else:
            P[name] = 0.3 * z
    return P


def tiny_check(c, loss, seed):
    """Dense Hessian vs HVP columns vs eigsh on the tiny data; returns (results, ok, objective, H)."""
    tok = torch.tensor(TINY_TOKENS, dtype=torch.int64)
    y = torch.tensor(TINY_LABELS, dtype=torch.int64)
    P = tiny_params(c, seed)
    obj = Objective(c, P, tok, targets(y, loss, torch.float64), loss, chunk=4)
    th = obj.theta
    with torch.no_grad():
        fnn = rel(forward(c, P, tok), forward_nn(c, P, tok))
    t0 = time.time()
    H = torch.autograd.functional.hessian(obj.full_loss, th, vectorize=True)
    dense_s = time.time() - t0
    cols = torch.func.vmap(lambda e: obj.hvp(th, e))(torch.eye(th.numel(), dtype=torch.float64))  # row i = H e_i
    dense = np.sort(np.linalg.eigvalsh(H.numpy()))[::-1][:3]
    lanczos, _ = top_k(obj, 3, 1e-12, seed)
    r = {"p": th.numel(), "dense_top3": dense.tolist(), "eigsh_top3": lanczos,
         "top3_rel": float(np.max(np.abs(np.array(lanczos) - dense) / np.abs(dense))),
         "hessian_asym": ((H - H.T).norm() / H.norm()).item(), "hvp_columns_vs_dense": rel(cols.T, H),
         "forward_vs_nn_transformer": fnn, "dense_seconds": dense_s}
    ok = fnn < 1e-12 and r["top3_rel"] < 1e-9 and r["hvp_columns_vs_dense"] < 1e-12 and r["hessian_asym"] < 1e-12
    return r, ok, obj, H, y


def write_fixture(path, c, loss, obj, H, y):
    th = obj.theta
    lval, acc = obj.value(th, y)
    with torch.no_grad():
        logits = obj.forward(th, torch.tensor(TINY_TOKENS))
    fx = {"description": "tiny Transformer twin fixture from scripts/torch_transformer_reference.py selftest "
                         "(θ in the documented order; loss over all 6 sentences; float64)",
          "config": {**config_json(c), "classes": CLASSES, "ln_eps": LN_EPS, "loss": loss},
          "names": obj.names, "shapes": [list(s) for s in obj.shapes], "p": th.numel(),
          "tokens": TINY_TOKENS, "labels": TINY_LABELS, "theta": th.tolist(), "logits": logits.tolist(),
          "loss": lval, "accuracy": acc, "gradient": obj.grad(th).tolist(),
          "hessian_format": "upper triangle of the dense p×p Hessian (torch.autograd.functional.hessian), row-major: "
                            "H[i][j] for i = 0..p-1, j = i..p-1, p(p+1)/2 entries; H[j][i] = H[i][j]",
          "hessian_upper": H[torch.triu_indices(*H.shape)[0], torch.triu_indices(*H.shape)[1]].tolist(),
          "hessian_top3": np.sort(np.linalg.eigvalsh(H.numpy()))[::-1][:3].tolist(), **versions()}
    Path(path).write_text(json.dumps(fx, separators=(",", ":")) + "\n")
    return Path(path).stat().st_size


def cmd_selftest(a):
    res, ok = {"real": {}, "tiny": {}, "fixtures": {}}, True
    t_all = time.time()
    # (a) Real data, full-size model with a random head: HVP vs central differences and reverse-over-
    # reverse; chunked sums vs one chunk; all 8 mask × loss × act combinations.
    vocab, T, tok, y = load_data(a.data, a.samples)
    for mask in (True, False):
        for act in ("silu", "gelu"):
            c = Config(vocab=len(vocab), seq_len=T, width=64, heads=8, layers=2, act=act, mask=mask)
            P = init_params(c, a.seed, random_head=True)
            for loss in ("mse", "ce"):
                t0 = time.time()
                t = targets(y, loss, torch.float64)
                obj = Objective(c, P, tok, t, loss, chunk=tok.shape[0])
                objc = Objective(c, P, tok, t, loss, chunk=4)
                th = obj.theta
                v = torch.randn(th.shape, generator=torch.Generator().manual_seed(a.seed + 1), dtype=torch.float64)
                v /= v.norm()
                hv = obj.hvp(th, v)
                eps = 1e-5
                fd = (obj.grad(th + eps * v) - obj.grad(th - eps * v)) / (2 * eps)
                thr = th.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(obj.full_loss(thr), thr, create_graph=True)
                (ror,) = torch.autograd.grad(g, thr, grad_outputs=v)
                l1, lc = obj.value(th)[0], objc.value(th)[0]
                with torch.no_grad():
                    fnn = rel(forward(c, P, tok), forward_nn(c, P, tok))
                r = {"loss": l1, "forward_vs_nn_transformer": fnn, "grad_norm": g.norm().item(),
                     "vHv": torch.dot(v, hv).item(),
                     "hvp_vs_fd": rel(hv, fd), "hvp_vs_reverse_over_reverse": rel(hv, ror.detach()),
                     "chunked_loss": abs(lc - l1) / abs(l1), "chunked_grad": rel(objc.grad(th), obj.grad(th)),
                     "chunked_hvp": rel(objc.hvp(th, v), hv), "grad_vs_autograd": rel(obj.grad(th), g.detach()),
                     "seconds": time.time() - t0}
                good = r["hvp_vs_fd"] < 1e-6 and r["hvp_vs_reverse_over_reverse"] < 1e-12 \
                    and r["chunked_loss"] < 1e-12 and r["chunked_grad"] < 1e-12 and r["chunked_hvp"] < 1e-12 \
                    and r["grad_vs_autograd"] < 1e-12 and r["forward_vs_nn_transformer"] < 1e-12
                r["ok"] = bool(good)
                ok &= good
                res["real"][f"{'mask' if mask else 'nomask'}_{act}_{loss}"] = r
    res["real"].update({"n": tok.shape[0], "params": sum(math.prod(s) for _, s in param_specs(c)),
                        "vocab": len(vocab), "seq_len": T})

    # init → read back → vocab check; and the check catches a swapped pair of words.
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.safetensors")
        c0 = Config(vocab=len(vocab), seq_len=T, width=64, heads=8, layers=2)
        sd = write_init(path, c0, vocab, a.seed, True, True)
        ns = argparse.Namespace(heads=None, act=None, mask=None, loss=None)
        c1, P1, _, meta = read_weights(path, ns)
        swapped = list(vocab)
        swapped[5], swapped[6] = swapped[6], swapped[5]
        msg = check_vocab(swapped, vocab)
        r = {"config_roundtrip": c1 == c0, "tensors_roundtrip": all(torch.equal(P1[k], sd[k]) for k in sd),
             "vocab_roundtrip": check_vocab(json.loads(meta["vocab"]), vocab) is None,
             "swap_detected": msg is not None and "id 5" in msg, "swap_message": msg,
             "vocab_head": vocab[:12], "tokens_row0": tok[0].tolist()}
        good = r["config_roundtrip"] and r["tensors_roundtrip"] and r["vocab_roundtrip"] and r["swap_detected"]
        r["ok"] = bool(good)
        ok &= good
        res["init_vocab"] = r

    # (b) Tiny Transformers: dense Hessian vs HVP columns vs eigsh, all combinations, 1 and 2 layers.
    for layers in (1, 2):
        for mask in (True, False):
            for act in ("silu", "gelu"):
                for loss in ("mse", "ce"):
                    c = Config(vocab=7, seq_len=5, width=8, heads=2, layers=layers, act=act, mask=mask)
                    r, good, *_ = tiny_check(c, loss, a.seed + layers)
                    r["ok"] = bool(good)
                    ok &= good
                    res["tiny"][f"L{layers}_{'mask' if mask else 'nomask'}_{act}_{loss}"] = r
    # Fixtures (D = 4 so that the dense Hessian fits in < 2 MB of JSON).
    for suffix, layers, mask, act, loss in (("mse_silu_mask_2layer", 2, True, "silu", "mse"),
                                            ("ce_gelu_nomask_1layer", 1, False, "gelu", "ce")):
        c = Config(vocab=7, seq_len=5, width=4, heads=2, layers=layers, act=act, mask=mask)
        r, good, obj, H, y8 = tiny_check(c, loss, a.seed + 10 + layers)
        if a.write_tiny_fixture:
            path = f"{a.write_tiny_fixture}_{suffix}.json"
            r.update({"path": path, "bytes": write_fixture(path, c, loss, obj, H, y8)})
            good &= r["bytes"] < 2_000_000
        r["ok"] = bool(good)
        ok &= good
        res["fixtures"][suffix] = r
    res.update({"ok": bool(ok), **versions(), "threads": torch.get_num_threads(), "seconds": time.time() - t_all})
    print(json.dumps(res, indent=1))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description="PyTorch float64 reference for a post-LN Transformer classifier on SST-2")
    ap.add_argument("mode", choices=["spectrum", "hvp", "bench", "selftest", "init"])
    ap.add_argument("--weights")
    ap.add_argument("--vector", help="hvp: safetensors file holding v")
    ap.add_argument("--out", help="init: weights file to write; hvp: where to save Hv (optional)")
    ap.add_argument("--data", default=default_data())
    ap.add_argument("--samples", type=int, default=None, help="first N sentences (default: all, at most 1000)")
    ap.add_argument("--loss", choices=["mse", "ce"], default=None)
    ap.add_argument("--heads", type=int, default=None, help="override metadata 'heads' (init: 8)")
    ap.add_argument("--act", choices=["silu", "gelu"], default=None, help="override metadata 'act' (init: silu)")
    ap.add_argument("--mask", choices=["true", "false"], default=None, help="override metadata 'mask' (init: true)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tol", type=float, default=None, help="eigsh tol (spectrum: 1e-12; bench: 0)")
    ap.add_argument("--chunk", type=int, default=500, help="sentences per chunk of the summed loss/grad/HVP")
    ap.add_argument("--seed", type=int, default=0, help="eigsh start vector, bench's v, init's weights")
    ap.add_argument("--repeats", "--runs", type=int, default=5)
    ap.add_argument("--top10", action="store_true", help="bench: also time eigsh's top 10")
    ap.add_argument("--first", type=int, default=10, help="hvp: entries of Hv to print")
    ap.add_argument("--width", type=int, default=64, help="init: D")
    ap.add_argument("--layers", type=int, default=2, help="init: number of layers")
    ap.add_argument("--random-head", action="store_true", help="init: head.weight ~ N(0, 1/D) instead of 0")
    ap.add_argument("--f64", action="store_true", help="init: save f64 tensors")
    ap.add_argument("--write-tiny-fixture", metavar="PREFIX",
                    help="selftest: write PREFIX_mse_silu_mask_2layer.json and PREFIX_ce_gelu_nomask_1layer.json")
    ap.add_argument("-v", "--verbose", action="store_true", help="spectrum: HVP count to stderr every 10")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if a.mode in ("spectrum", "hvp", "bench") and not a.weights:
        ap.error(f"{a.mode} needs --weights")
    if a.mode == "hvp" and not a.vector:
        ap.error("hvp needs --vector")
    if a.mode == "init" and not a.out:
        ap.error("init needs --out")
    if a.mode == "selftest":
        a.samples = a.samples or 6
    if a.chunk < 1:
        ap.error("--chunk must be at least 1")
    return {"spectrum": cmd_spectrum, "hvp": cmd_hvp, "bench": cmd_bench, "selftest": cmd_selftest,
            "init": cmd_init}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
