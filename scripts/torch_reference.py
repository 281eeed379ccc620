#!/usr/bin/env python3
"""Independent PyTorch reference for subspace-lab's engine.

  spectrum: loss, ‖∇L‖ and the top-k Hessian eigenvalues of fc-tanh (weights from a safetensors
            file with PyTorch names) on MNIST-5k in float64, HVPs by torch.func forward-over-reverse,
            eigenvalues by scipy's eigsh (ARPACK). Prints one JSON object.
  bench:    the same three timings as `subspace-lab bench` in float32 (gradient, HVP, top-10 eigsh at
            the given tolerance; 0 = eigsh's default, machine precision).

MNIST-5k is read from subspace-lab's verified cache (`subspace-lab data fetch` writes it): 16-byte
magic, 5000×784 uint8 images, 5000 uint8 labels. Needs torch, numpy, scipy, safetensors.
"""
import argparse, json, os, statistics, sys, time
from pathlib import Path

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twin_metadata  # noqa: E402  (the metadata keys both sides use)


def cache_path():
    d = os.environ.get("SUBSPACE_LAB_DATA") or str(Path.home() / ".local/share/subspace-lab")
    return Path(d) / "mnist5k-v1.bin"


def load_data(n, dtype):
    raw = cache_path().read_bytes()
    assert raw[:16] == b"SSLAB-MNIST5K-v1" and len(raw) == 16 + 5000 * 785, "run `subspace-lab data fetch` first"
    x = np.frombuffer(raw[16:16 + 5000 * 784], dtype=np.uint8).reshape(5000, 784)[:n]
    y = np.frombuffer(raw[16 + 5000 * 784:], dtype=np.uint8)[:n]
    x = (torch.tensor(x, dtype=torch.float64) / 255.0 - 0.1307) / 0.3081
    t = torch.nn.functional.one_hot(torch.tensor(y, dtype=torch.long), 10).to(torch.float64)
    return x.to(dtype), t.to(dtype)


def make_model(weights, dtype, seed):
    net = torch.nn.Sequential(torch.nn.Linear(784, 200), torch.nn.Tanh(), torch.nn.Linear(200, 200),
                              torch.nn.Tanh(), torch.nn.Linear(200, 10)).to(dtype)
    if weights:
        # Load after .to(dtype): loading f64 weights into an f32 module would round them.
        sd = load_file(weights)
        with safe_open(weights, framework="pt") as f:
            meta = twin_metadata.read(f.metadata() or {}, weights)
        # This twin builds fc-tanh 784-200-200-10 only: a file that says otherwise is refused.
        if meta.get("activation", "tanh") != "tanh":
            sys.exit(f"{weights}: metadata activation = {meta['activation']}: this twin builds tanh networks only")
        mapping = {"fc1": "0", "fc2": "2", "fc3": "4"}
        net.load_state_dict({mapping[k.split(".")[0]] + "." + k.split(".")[1]: v for k, v in sd.items()})
    else:
        torch.manual_seed(seed)
    return net


def functional(net, x, t):
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def loss_fn(th):
        params, off = {}, 0
        for n_, s, k in zip(names, shapes, sizes):
            params[n_] = th[off:off + k].reshape(s)
            off += k
        out = torch.func.functional_call(net, params, (x,))
        return 0.5 * ((out - t) ** 2).sum() / x.shape[0]

    grad_fn = torch.func.grad(loss_fn)
    hvp = lambda th, v: torch.func.jvp(grad_fn, (th,), (v,))[1]
    return theta, loss_fn, grad_fn, hvp


def top_k(theta, hvp, k, tol, dtype):
    p = theta.numel()
    count = [0]

    def mv(v):
        count[0] += 1
        return hvp(theta, torch.tensor(v.reshape(-1), dtype=dtype)).detach().numpy().astype(np.float64)

    op = LinearOperator((p, p), matvec=mv, dtype=np.float64)
    vals = eigsh(op, k=k, which="LA", tol=tol, return_eigenvectors=False)
    return sorted(vals.tolist(), reverse=True), count[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["spectrum", "bench"])
    ap.add_argument("--weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tol", type=float, default=0.0)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if a.mode == "spectrum":
        dtype = torch.float64
        x, t = load_data(a.samples, dtype)
        net = make_model(a.weights, dtype, a.seed)
        theta, loss_fn, grad_fn, hvp = functional(net, x, t)
        t0 = time.time()
        loss = loss_fn(theta).item()
        g = grad_fn(theta)
        vals, hvps = top_k(theta, hvp, a.k, a.tol, dtype)
        print(json.dumps({"loss": loss, "grad_norm": g.norm().item(), "eigenvalues": vals, "hvps": hvps,
                          "seconds": time.time() - t0, "torch": torch.__version__}))
    else:
        dtype = torch.float32
        x, t = load_data(a.samples, dtype)
        net = make_model(a.weights, dtype, a.seed)
        theta, loss_fn, grad_fn, hvp = functional(net, x, t)
        v = torch.randn_like(theta)
        res = {}
        for name, f in [("grad_ms", lambda: grad_fn(theta)), ("hvp_ms", lambda: hvp(theta, v))]:
            f()
            ts = []
            for _ in range(a.runs):
                t0 = time.perf_counter(); f(); ts.append((time.perf_counter() - t0) * 1e3)
            res[name] = statistics.median(ts)
        ts = []
        for _ in range(min(a.runs, 3)):
            t0 = time.perf_counter(); _, hvps = top_k(theta, hvp, 10, a.tol, dtype); ts.append((time.perf_counter() - t0) * 1e3)
        res.update({"top10_ms": statistics.median(ts), "top10_hvps": hvps, "backend": f"pytorch-{torch.__version__}-cpu-f32",
                    "tol": a.tol, "threads": torch.get_num_threads()})
        print(json.dumps(res))


if __name__ == "__main__":
    sys.exit(main())
