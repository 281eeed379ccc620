#!/usr/bin/env python3
"""PyTorch twin of `subspace-lab spectrum --trace / --density` (issue 35): the Hessian trace of
fc-tanh on MNIST-5k by PyHessian's method, and optionally its SLQ density, with HVPs by torch.func
(forward-over-reverse: jvp of grad), in float64.

  trace:   Hutchinson with Rademacher probes exactly as PyHessian's `hessian.trace(maxIter, tol)`:
           probes are drawn until maxIter or until the running mean changes by less than tol
           (relative). Prints the mean, its standard error (sample std / sqrt(N)) and the HVPs.
  density: PyHessian's `hessian.density(iter, n_v)`: n_v Rademacher probes (normalised), `iter`
           Lanczos steps with full reorthogonalisation, the tridiagonal T's eigenvalues (nodes) and
           the squared first components of its eigenvectors (weights). Prints the nodes, weights
           and the trace p * mean(sum(w * node)).

The network and data are those of scripts/torch_reference.py (imported from it): fc-tanh
784-200-200-10 from a safetensors file with subspace-lab's names (write θ₀ at seed 0 with
`subspace-lab init --seed 0 --out w0.safetensors --dtype f64`), MNIST-5k from subspace-lab's
verified cache (`SUBSPACE_LAB_DATA`), MSE loss ½‖f − y‖² averaged over samples.

Output, one JSON object on stdout, e.g. for `trace`:
  {"mode": "trace", "trace": 1234.5, "std_error": 56.7, "probes": 100, "hvps": 100,
   "params": 199210, "samples": 5000, "loss": 0.57, "seconds": 12.3, "torch": "2.x"}
and for `density`:
  {"mode": "density", "probes": 1, "steps": 100, "hvps": 100, "nodes": [[...]], "weights": [[...]],
   "trace": 1234.5, "params": 199210, "seconds": 9.8, "torch": "2.x"}

Compare with `subspace-lab spectrum --weights w0.safetensors --trace --trace-method hutchinson
--probes 100 --json` (its `trace.estimate` and `trace.std_error`): the two estimates agree when
|a − b| ≤ 3·sqrt(se_a² + se_b²) (independent probes: the twin's come from torch's generator).
Needs torch (with torch.func: 2.0 or later), numpy, scipy, safetensors.
"""
import argparse, json, math, os, sys, time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402  (load_data, make_model, functional)


def rademacher_like(theta, gen):
    v = torch.randint(0, 2, theta.shape, generator=gen, dtype=torch.int64).to(theta.dtype)
    return 2.0 * v - 1.0


def pyhessian_trace(theta, hvp, max_iter, tol, gen):
    """PyHessian's trace(): the list of v·Hv, stopped early when the running mean settles."""
    vhv, running = [], 0.0
    for _ in range(max_iter):
        v = rademacher_like(theta, gen)
        vhv.append(torch.dot(hvp(theta, v), v).item())
        mean = float(np.mean(vhv))
        if abs(mean - running) / (abs(running) + 1e-6) < tol:
            break
        running = mean
    return vhv


def pyhessian_density(theta, hvp, steps, probes, gen):
    """PyHessian's density(): nodes and weights of each probe's Lanczos tridiagonal matrix."""
    nodes, weights, hvps = [], [], 0
    for _ in range(probes):
        v = rademacher_like(theta, gen)
        v = v / v.norm()
        basis, alphas, betas = [v], [], []
        w = None
        for i in range(steps):
            if i > 0:
                beta = w.norm()
                if beta.item() == 0.0:
                    break
                betas.append(beta.item())
                v = w / beta
                for _ in range(2):  # full reorthogonalisation, two passes
                    for q in basis:
                        v = v - torch.dot(v, q) * q
                v = v / v.norm()
                basis.append(v)
            hv = hvp(theta, v)
            hvps += 1
            alpha = torch.dot(hv, v)
            alphas.append(alpha.item())
            w = hv - alpha * v
            if i > 0:
                w = w - betas[-1] * basis[-2]
        m = len(alphas)
        t = torch.zeros(m, m, dtype=torch.float64)
        for i in range(m):
            t[i, i] = alphas[i]
            if i + 1 < m:
                t[i, i + 1] = t[i + 1, i] = betas[i]
        evals, evecs = torch.linalg.eigh(t)
        nodes.append(evals.tolist())
        weights.append((evecs[0, :] ** 2).tolist())
    return nodes, weights, hvps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["trace", "density"])
    ap.add_argument("--weights", required=True, help="θ as subspace-lab init/export writes it")
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--probes", type=int, default=100, help="trace: maxIter; density: n_v")
    ap.add_argument("--tol", type=float, default=0.0,
                    help="trace: PyHessian's early stop (its default 1e-3; 0 runs all probes)")
    ap.add_argument("--steps", type=int, default=100, help="density: Lanczos steps (PyHessian's iter)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    # OMP_NUM_THREADS caps torch's threads (the build machine is shared); else all cores.
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    dtype = torch.float64
    x, t = ref.load_data(a.samples, dtype)
    net = ref.make_model(a.weights, dtype, a.seed)
    theta, loss_fn, _grad_fn, hvp = ref.functional(net, x, t)
    gen = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    out = {"mode": a.mode, "params": theta.numel(), "samples": a.samples, "loss": loss_fn(theta).item()}
    if a.mode == "trace":
        vhv = pyhessian_trace(theta, hvp, a.probes, a.tol, gen)
        n = len(vhv)
        se = float(np.std(vhv, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
        out.update({"trace": float(np.mean(vhv)), "std_error": se, "probes": n, "hvps": n})
    else:
        nodes, weights, hvps = pyhessian_density(theta, hvp, a.steps, a.probes, gen)
        p = theta.numel()
        tr = p * float(np.mean([sum(w * l for w, l in zip(ws, ls)) for ws, ls in zip(weights, nodes)]))
        out.update({"probes": a.probes, "steps": a.steps, "hvps": hvps, "nodes": nodes,
                    "weights": weights, "trace": tr})
    out.update({"seconds": time.time() - t0, "torch": torch.__version__})
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
