#!/usr/bin/env python3
"""Independent PyTorch reference for a CNN on CIFAR-10 (the twin of torch_reference.py's fc-tanh).

Model: Cohen et al.'s `convnet([32, 32], 'relu', 'max')` as a torch.nn.Sequential:
  0 Conv2d(3,32,3,padding=1), 1 ReLU, 2 MaxPool2d(2), 3 Conv2d(32,32,3,padding=1), 4 ReLU,
  5 MaxPool2d(2), 6 Flatten (C,H,W order), 7 Linear(2048,10)
so the state-dict (= safetensors) names are 0.weight [32,3,3,3], 0.bias [32], 3.weight [32,32,3,3],
3.bias [32], 7.weight [10,2048], 7.bias [10]: 30,634 parameters. θ is the concatenation of these six
tensors, each flattened row-major, in that order. Other widths are read off a weights file's shapes
(conv layers at 0, 3, 6, …, the Linear right after the Flatten).

Data: CIFAR-10 binary records (1 label byte, then 3072 bytes: the R, G, B 32×32 planes, row-major),
gzip or not, from --data (default: shared/data/cifar10/data_batch_1.first4000.bin.gz beside the
repository, or $SUBSPACE_LAB_CIFAR10). The first --samples records are used (default: all, at most
5000). Preprocessing as Cohen's cifar.py: x/255, then for each of the 3072 features subtract its mean
and divide by its std over all the records at hand (≤ 5000; population std, numpy's std(0); a zero
std divides by 1), then keep the first n. Images are [n,3,32,32] (channel planes as stored). (Cohen's
cifar.py takes these statistics over all 50,000 training images and then keeps the first 5000; here,
as in subspace-lab, over the records at hand.
Per-feature statistics do not depend on his HWC versus this file's CHW layout.)

Loss (Cohen's convention): mse  L(θ) = (1/n) Σ_i ½‖f(x_i) − onehot(y_i)‖²;
                           ce   L(θ) = (1/n) Σ_i CE(softmax(f(x_i)), y_i).
Without --loss a weights file whose safetensors metadata has `loss` decides; else mse.
Accuracy = fraction of i with argmax f(x_i) = y_i. ReLU and max-pool are piecewise linear: the
Hessian is autograd's, i.e. the one of the linear piece θ lies in (ReLU'(0) = 0; a max-pool tie
routes to one input), exact wherever no pre-activation is 0 and no pool window ties.

  spectrum: loss, accuracy, ‖∇L‖ and the top-k eigenvalues of ∇²L over the full data in float64.
            Hessian-vector products by torch.func forward-over-reverse (jvp of grad) over the flat θ,
            summed over chunks of --chunk samples (each chunk's loss already divided by the full n);
            eigenvalues by scipy's eigsh (ARPACK, which='LA', start vector from --seed). Weights may
            be f32 or f64 tensors; they are cast to float64. Prints one JSON object.
  hvp:      H·v for v from a safetensors file (one tensor of p entries, or tensors named like the
            weights, concatenated in θ's order): prints ‖Hv‖, vᵀHv and Hv's first entries.
  bench:    float32 timings (median ms over --repeats after one warm-up) of the full-data gradient and
            one HVP, both torch.func, threads = the machine's core count; --top10 also times eigsh's
            top 10 at --tol (0 = eigsh's default, machine precision).
  selftest: on a few samples, checks the HVP against a central difference of gradients (step 1e-5)
            and against reverse-over-reverse autograd, the chunked sums against one chunk, and, on a
            narrow convnet([4,4]) and 8 samples, eigsh's top 3 against numpy.linalg.eigvalsh of the
            dense Hessian from torch.autograd.functional.hessian; both losses. Exits 1 on a failure.
  init:     writes PyTorch's default-init convnet (seeded) to a safetensors file (f32, or --f64).

Cost: one float64 HVP is about 0.7 s per 200 samples on 2 free cores, ~15 s at n = 4000. At default
init, spectrum on all 4000 with k = 10, tol 1e-10 took 42 HVPs and 30 min on 2 cores shared with a
cargo build (about 11 min expected on free cores); selftest takes ~20 s.
Setup: python3 -m venv /work/venv && /work/venv/bin/pip install torch numpy scipy safetensors
Written against torch 2.15, numpy 2.4, scipy 1.17, safetensors 0.8 (the versions are printed).
"""
import argparse, gzip, json, os, statistics, sys, time, warnings
from pathlib import Path

# Some torch builds warn at import that torch.jit.script is deprecated; not ours to act on.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

import numpy as np
import scipy
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twin_metadata  # noqa: E402  (the metadata keys both sides use)

RECORD = 1 + 3 * 32 * 32
MAX_SAMPLES = 5000


def default_data():
    env = os.environ.get("SUBSPACE_LAB_CIFAR10")
    if env:
        return env
    rel = Path("shared/data/cifar10/data_batch_1.first4000.bin.gz")
    repo = Path(__file__).resolve().parents[1]
    for base in (repo, repo.parent):
        if (base / rel).exists():
            return str(base / rel)
    return str(repo.parent / rel)


def load_data(path, n, loss, dtype):
    if not Path(path).is_file():
        sys.exit(f"{path}: no such file (CIFAR-10 binary records; --data or $SUBSPACE_LAB_CIFAR10)")
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if not raw or len(raw) % RECORD:
        sys.exit(f"{path}: {len(raw)} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    avail = min(len(rec), MAX_SAMPLES)
    n = avail if n is None else n
    if not 1 <= n <= avail:
        sys.exit(f"--samples {n}: {path} has {len(rec)} records (at most {MAX_SAMPLES} are used)")
    labels = rec[:n, 0].astype(np.int64)
    if labels.max() > 9:
        sys.exit(f"{path}: label {labels.max()} is not a CIFAR-10 class")
    # Statistics over every record at hand (≤ 5000), then the first n, as subspace-lab does.
    x = rec[:avail, 1:].astype(np.float64) / 255.0
    x = x - x.mean(0)
    std = x.std(0)  # ddof=0, as numpy's default
    std[std == 0] = 1.0
    x = torch.from_numpy((x / std)[:n].reshape(n, 3, 32, 32)).to(dtype)
    y = torch.from_numpy(labels)
    t = torch.nn.functional.one_hot(y, 10).to(dtype) if loss == "mse" else y
    return x, t, y


def make_model(widths, dtype):
    mods, c, size = [], 3, 32
    for w in widths:
        mods += [torch.nn.Conv2d(c, w, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        c, size = w, size // 2
    mods += [torch.nn.Flatten(), torch.nn.Linear(c * size * size, 10)]
    return torch.nn.Sequential(*mods).to(dtype)


def read_weights(path, loss_opt):
    """The float64 convnet of a safetensors file, and the loss (option, else metadata, else mse)."""
    sd = load_file(path)
    with safe_open(path, framework="pt") as f:
        meta = twin_metadata.read(f.metadata() or {}, path)
    # This twin builds conv → ReLU → max-pool blocks on CIFAR-10's 3×32×32 only: a file that says
    # otherwise is refused, never run as something else.
    if meta.get("activation", "relu") != "relu":
        sys.exit(f"{path}: metadata activation = {meta['activation']}: this twin builds ReLU networks only")
    if meta.get("input", "3,32,32").replace(" ", "") != "3,32,32":
        sys.exit(f"{path}: metadata input = {meta['input']}: this twin reads CIFAR-10's 3,32,32 only")
    widths, i = [], 0
    while f"{i}.weight" in sd and sd[f"{i}.weight"].ndim == 4:
        widths.append(sd[f"{i}.weight"].shape[0])
        i += 3
    if not widths:
        sys.exit(f"{path}: no conv layer named 0.weight; names: {sorted(sd)}")
    net = make_model(widths, torch.float64)
    for k, v in sd.items():
        if not torch.isfinite(v).all():
            sys.exit(f"{path}: {k} has a non-finite entry")
    # Load after .to(float64) with f64 tensors: nothing is rounded through f32 on the way.
    net.load_state_dict({k: v.to(torch.float64) for k, v in sd.items()}, strict=True)
    loss = loss_opt or meta.get("loss", "mse")
    if loss_opt and "loss" in meta and meta["loss"] != loss_opt:
        sys.exit(f"{path}: metadata says loss = {meta['loss']}, --loss says {loss_opt}")
    if loss not in ("mse", "ce"):
        sys.exit(f"loss {loss!r}: mse or ce")
    return net, widths, loss


class Objective:
    """L(θ) over the full data, evaluated as a sum over chunks; θ flat in state-dict order."""

    def __init__(self, net, x, t, loss, chunk):
        self.net = net
        self.names = [k for k, _ in net.named_parameters()]
        self.shapes = [p.shape for _, p in net.named_parameters()]
        self.sizes = [p.numel() for _, p in net.named_parameters()]
        self.theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        self.n = x.shape[0]
        self.chunks = [(x[i:i + chunk], t[i:i + chunk]) for i in range(0, self.n, chunk)]
        self.loss = loss
        self._grad = torch.func.grad(self.chunk_loss)

    def params(self, th):
        out, off = {}, 0
        for name, s, k in zip(self.names, self.shapes, self.sizes):
            out[name] = th[off:off + k].reshape(s)
            off += k
        return out

    def forward(self, th, xc):
        return torch.func.functional_call(self.net, self.params(th), (xc,))

    def chunk_loss(self, th, xc, tc):
        """This chunk's share of the full-data loss: its sum divided by the full n."""
        out = self.forward(th, xc)
        if self.loss == "mse":
            return 0.5 * ((out - tc) ** 2).sum() / self.n
        return torch.nn.functional.cross_entropy(out, tc, reduction="sum") / self.n

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


def cmd_spectrum(a):
    net, widths, loss = read_weights(a.weights, a.loss)
    x, t, y = load_data(a.data, a.samples, loss, torch.float64)
    obj = Objective(net, x, t, loss, a.chunk)
    tol = 1e-12 if a.tol is None else a.tol
    t0 = time.time()
    lval, acc = obj.value(obj.theta, y)
    g = obj.grad(obj.theta)
    vals, hvps = top_k(obj, a.k, tol, a.seed, a.verbose)
    print(json.dumps({"loss": lval, "accuracy": acc, "grad_norm": g.norm().item(), "eigenvalues": vals,
                      "n": obj.n, "k": a.k, "tol": tol, **versions(), "seconds": time.time() - t0,
                      "hvps": hvps, "loss_kind": loss, "widths": widths, "params": obj.theta.numel(),
                      "chunk": a.chunk, "threads": torch.get_num_threads(), "data": a.data}))


def cmd_hvp(a):
    net, widths, loss = read_weights(a.weights, a.loss)
    x, t, _ = load_data(a.data, a.samples, loss, torch.float64)
    obj = Objective(net, x, t, loss, a.chunk)
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
    hv = obj.hvp(obj.theta, v)
    if a.out:
        save_file({"hv": hv.contiguous()}, a.out)
    print(json.dumps({"hv_norm": hv.norm().item(), "v_norm": v.norm().item(), "vHv": torch.dot(v, hv).item(),
                      "hv_first": hv[:a.first].tolist(), "n": obj.n, "params": p, "loss_kind": loss, **versions()}))


def cmd_bench(a):
    net, widths, loss = read_weights(a.weights, a.loss)
    net = net.to(torch.float32)
    x, t, _ = load_data(a.data, a.samples, loss, torch.float32)
    obj = Objective(net, x, t, loss, a.chunk)
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
                "chunk": a.chunk, "repeats": a.repeats, "loss_kind": loss, "widths": widths})
    print(json.dumps(res))


def cmd_init(a):
    torch.manual_seed(a.seed)
    net = make_model([int(w) for w in a.widths.split(",")], torch.float32)
    dtype = torch.float64 if a.f64 else torch.float32
    sd = {k: v.detach().to(dtype).contiguous() for k, v in net.state_dict().items()}
    save_file(sd, a.out, metadata={"model": "convnet-relu-max", "activation": "relu", "input": "3,32,32",
                                   "widths": a.widths, "seed": str(a.seed)})
    print(json.dumps({"out": a.out, "params": sum(v.numel() for v in sd.values()),
                      "names": {k: list(v.shape) for k, v in sd.items()}, "dtype": str(dtype)}))


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def cmd_selftest(a):
    res, ok = {}, True
    torch.manual_seed(a.seed)
    for loss in ("mse", "ce"):
        # Full width, a few samples: HVP against a central difference of gradients and against
        # reverse-over-reverse autograd; chunked sums against a single chunk.
        x, t, y = load_data(a.data, a.samples, loss, torch.float64)
        torch.manual_seed(a.seed)
        net = make_model([32, 32], torch.float64)
        obj = Objective(net, x, t, loss, chunk=x.shape[0])
        objc = Objective(net, x, t, loss, chunk=3)
        th = obj.theta
        v = torch.randn(th.shape, generator=torch.Generator().manual_seed(a.seed + 1), dtype=torch.float64)
        v /= v.norm()
        hv = obj.hvp(th, v)
        eps = 1e-5
        fd = (obj.grad(th + eps * v) - obj.grad(th - eps * v)) / (2 * eps)
        thr = th.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(sum(obj.chunk_loss(thr, xc, tc) for xc, tc in obj.chunks), thr, create_graph=True)
        (ror,) = torch.autograd.grad(g, thr, grad_outputs=v)
        r = {"hvp_vs_fd": rel(hv, fd), "hvp_vs_reverse_over_reverse": rel(hv, ror.detach()),
             "chunked_loss": abs(objc.value(th)[0] - obj.value(th)[0]) / abs(obj.value(th)[0]),
             "chunked_grad": rel(objc.grad(th), obj.grad(th)), "chunked_hvp": rel(objc.hvp(th, v), hv),
             "grad_vs_autograd": rel(obj.grad(th), g.detach()), "n": x.shape[0], "params": th.numel()}
        ok &= r["hvp_vs_fd"] < 1e-6 and r["hvp_vs_reverse_over_reverse"] < 1e-12 and r["chunked_loss"] < 1e-12 \
            and r["chunked_grad"] < 1e-12 and r["chunked_hvp"] < 1e-12 and r["grad_vs_autograd"] < 1e-12

        # Narrow convnet([4,4]) on 8 samples: the dense Hessian (reverse-over-reverse, all of it),
        # its top 3 by eigvalsh against eigsh's top 3 over our HVPs, and H·v against the HVP.
        x8, t8, _ = load_data(a.data, 8, loss, torch.float64)
        torch.manual_seed(a.seed)
        small = make_model([4, 4], torch.float64)
        so = Objective(small, x8, t8, loss, chunk=3)
        sth = so.theta
        t0 = time.time()
        H = torch.autograd.functional.hessian(lambda p: sum(so.chunk_loss(p, xc, tc) for xc, tc in so.chunks), sth,
                                              vectorize=True)
        dense_s = time.time() - t0
        dense = np.sort(np.linalg.eigvalsh(H.numpy()))[::-1][:3]
        lanczos, _ = top_k(so, 3, 1e-12, a.seed)
        sv = torch.randn(sth.shape, generator=torch.Generator().manual_seed(a.seed + 2), dtype=torch.float64)
        r.update({"small_params": sth.numel(), "small_dense_top3": dense.tolist(), "small_eigsh_top3": lanczos,
                  "small_top3_rel": float(np.max(np.abs(np.array(lanczos) - dense) / np.abs(dense))),
                  "small_hessian_asym": ((H - H.T).norm() / H.norm()).item(),
                  "small_Hv_vs_hvp": rel(so.hvp(sth, sv), H @ sv), "small_dense_seconds": dense_s})
        ok &= r["small_top3_rel"] < 1e-9 and r["small_Hv_vs_hvp"] < 1e-12 and r["small_hessian_asym"] < 1e-12
        res[loss] = r
    res.update({"ok": bool(ok), **versions(), "threads": torch.get_num_threads()})
    print(json.dumps(res, indent=1))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description="PyTorch float64 reference for convnet([32,32],relu,max) on CIFAR-10")
    ap.add_argument("mode", choices=["spectrum", "hvp", "bench", "selftest", "init"])
    ap.add_argument("--weights")
    ap.add_argument("--vector", help="hvp: safetensors file holding v")
    ap.add_argument("--out", help="init: weights file to write; hvp: where to save Hv (optional)")
    ap.add_argument("--data", default=default_data())
    ap.add_argument("--samples", type=int, default=None, help="first N records (default: all, at most 5000)")
    ap.add_argument("--loss", choices=["mse", "ce"], default=None)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tol", type=float, default=None, help="eigsh tol (spectrum: 1e-12; bench: 0)")
    ap.add_argument("--chunk", type=int, default=500, help="samples per chunk of the summed loss/grad/HVP")
    ap.add_argument("--seed", type=int, default=0, help="eigsh start vector, bench's v, init's weights")
    ap.add_argument("--repeats", "--runs", type=int, default=5)
    ap.add_argument("--top10", action="store_true", help="bench: also time eigsh's top 10")
    ap.add_argument("--first", type=int, default=10, help="hvp: entries of Hv to print")
    ap.add_argument("--widths", default="32,32", help="init: conv widths")
    ap.add_argument("--f64", action="store_true", help="init: save f64 tensors")
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
        a.samples = a.samples or 16
    if a.chunk < 1:
        ap.error("--chunk must be at least 1")
    return {"spectrum": cmd_spectrum, "hvp": cmd_hvp, "bench": cmd_bench, "selftest": cmd_selftest,
            "init": cmd_init}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
