#!/usr/bin/env python3
"""Independent PyTorch float64 twins of the paper's Section F networks on CIFAR-10 (issue 32).

Models (state-dict names = safetensors names = subspace-lab's):
  vgg11         Cohen et al.'s `vgg11_nodropout` (src/vgg.py): `features` = cfg A
                [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M] of Conv2d(3×3, padding 1, bias)
                + ReLU per number and MaxPool2d(2, 2) per M (convs at 0, 3, 6, 8, 11, 13, 16, 18);
                Flatten; `classifier` = Linear(512,512), ReLU, Linear(512,512), ReLU, Linear(512,10)
                (indices 0, 2, 4). 9,750,922 parameters.
  vgg11-narrow  the same at 1/8 of the widths (8, 16, 32, 64 channels; classifier 64–64–10): 153,530.
  resnet8       He et al.'s CIFAR ResNet with one BasicBlock per stage and no normalisation (convs with
                bias): conv1 3×3 3→16 – ReLU; layer{1,2,3}.0 = BasicBlock(16→16 s1, 16→32 s2, 32→64 s2):
                relu(conv2(relu(conv1(x))) + shortcut(x)), shortcut = identity, or `shortcut.0` =
                Conv2d(cin, cout, 1, stride 2) where the shape changes; global average pool; `linear`
                = Linear(64, 10). 77,706 parameters.

Data, preprocessing, losses, the chunked objective, HVPs (torch.func forward-over-reverse) and eigsh
(which='LA') are those of torch_cnn_reference.py (imported from it).

  spectrum --model M --weights F: loss, accuracy, ‖∇L‖ and the top-k eigenvalues of ∇²L over the first
           --samples images in float64, as one JSON object. F is a safetensors file with the model's
           state dict (e.g. `subspace-lab init --model resnet8 --seed 0 --dtype f64 --out F`).
  init     --model M --seed S --out F: the twin's own initialisation (torch.manual_seed(S); PyTorch's
           default Conv2d/Linear init, and for VGG Cohen's conv init: weights N(0, √(2/(k·k·cout))),
           biases 0) saved as the module's state dict by safetensors.torch.save_file, float32 (or
           --f64), no metadata: exactly what a PyTorch user's `save_file(net.state_dict(), F)` writes.
  bench    --model M --weights F: float32 timings (median ms over --repeats after one warm-up) of the
           gradient and one HVP (torch.func, jvp of grad) over the first --samples images, as JSON;
           the threads are torch's (set OMP_NUM_THREADS).
  selftest: on a tiny VGG and a tiny ResNet (random data), the HVP against reverse-over-reverse
           autograd and the top eigenvalues against the dense Hessian's. Exits 1 on a failure.
"""
import argparse, json, os, statistics, sys, time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_cnn_reference import Objective, default_data, load_data, top_k, versions  # noqa: E402

CFG_A = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class Vgg(torch.nn.Module):
    def __init__(self, cfg, hidden, classes=10, cin=3, size=32):
        super().__init__()
        mods, c = [], cin
        for v in cfg:
            if v == "M":
                mods.append(torch.nn.MaxPool2d(2, 2))
                size //= 2
            else:
                mods += [torch.nn.Conv2d(c, v, 3, padding=1), torch.nn.ReLU()]
                c = v
        self.features = torch.nn.Sequential(*mods)
        cls, w = [], c * size * size
        for h in hidden:
            cls += [torch.nn.Linear(w, h), torch.nn.ReLU()]
            w = h
        cls.append(torch.nn.Linear(w, classes))
        self.classifier = torch.nn.Sequential(*cls)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(torch.nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = torch.nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride=stride))

    def forward(self, x):
        out = self.conv2(torch.relu(self.conv1(x)))
        return torch.relu(out + self.shortcut(x))


class ResNet(torch.nn.Module):
    def __init__(self, channels, classes=10, cin=3):
        super().__init__()
        c = channels[0]
        self.conv1 = torch.nn.Conv2d(cin, c, 3, padding=1)
        for s, co in enumerate(channels):
            setattr(self, f"layer{s + 1}", torch.nn.Sequential(BasicBlock(c, co, 1 if s == 0 else 2)))
            c = co
        self.stages = len(channels)
        self.linear = torch.nn.Linear(c, classes)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        for s in range(self.stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.linear(x.mean((2, 3)))


def make_model(name, dtype):
    if name == "vgg11":
        net = Vgg(CFG_A, [512, 512])
    elif name == "vgg11-narrow":
        net = Vgg([v if v == "M" else v // 8 for v in CFG_A], [64, 64])
    elif name == "resnet8":
        net = ResNet([16, 32, 64])
    else:
        sys.exit(f"--model {name}: vgg11, vgg11-narrow or resnet8")
    return net.to(dtype)


def read_weights(name, path):
    sd = load_file(path)
    net = make_model(name, torch.float64)
    want = set(net.state_dict())
    if set(sd) != want:
        sys.exit(f"{path}: names {sorted(set(sd) ^ want)} differ from the {name} module's")
    net.load_state_dict({k: v.to(torch.float64) for k, v in sd.items()}, strict=True)
    return net


def cmd_spectrum(a):
    net = read_weights(a.model, a.weights)
    x, t, y = load_data(a.data, a.samples, a.loss, torch.float64)
    obj = Objective(net, x, t, a.loss, a.chunk)
    t0 = time.time()
    lval, acc = obj.value(obj.theta, y)
    g = obj.grad(obj.theta)
    vals, hvps = top_k(obj, a.k, a.tol, a.seed)
    print(json.dumps({"model": a.model, "loss": lval, "accuracy": acc, "grad_norm": g.norm().item(),
                      "eigenvalues": vals, "n": obj.n, "k": a.k, "tol": a.tol, **versions(),
                      "seconds": time.time() - t0, "hvps": hvps, "loss_kind": a.loss,
                      "params": obj.theta.numel(), "threads": torch.get_num_threads()}))


def cmd_init(a):
    torch.manual_seed(a.seed)
    net = make_model(a.model, torch.float32)
    if a.model.startswith("vgg"):
        # Cohen et al.'s vgg.py: conv weights N(0, sqrt(2 / (k*k*out_channels))), conv biases 0.
        for m in net.features:
            if isinstance(m, torch.nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                torch.nn.init.normal_(m.weight, 0.0, (2.0 / n) ** 0.5)
                torch.nn.init.zeros_(m.bias)
    dtype = torch.float64 if a.f64 else torch.float32
    sd = {k: v.detach().to(dtype).contiguous() for k, v in net.state_dict().items()}
    save_file(sd, a.out)
    print(json.dumps({"out": a.out, "model": a.model, "params": sum(v.numel() for v in sd.values()),
                      "names": {k: list(v.shape) for k, v in sd.items()}, "dtype": str(dtype), **versions()}))


def cmd_bench(a):
    net = read_weights(a.model, a.weights).to(torch.float32)
    x, t, _ = load_data(a.data, a.samples, a.loss, torch.float32)
    obj = Objective(net, x, t, a.loss, a.chunk)
    theta = obj.theta
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(a.seed), dtype=torch.float32)
    res = {}
    for name, f in [("grad_ms", lambda: obj.grad(theta)), ("hvp_ms", lambda: obj.hvp(theta, v))]:
        f()
        ts = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            f()
            ts.append((time.perf_counter() - t0) * 1e3)
        res[name] = statistics.median(ts)
        res[name.replace("_ms", "_all_ms")] = ts
    print(json.dumps({"model": a.model, **res, "backend": f"pytorch-{torch.__version__}-cpu-f32",
                      "threads": torch.get_num_threads(), "n": obj.n, "chunk": a.chunk, "repeats": a.repeats,
                      "loss_kind": a.loss, "params": theta.numel()}))


def cmd_selftest(_):
    torch.manual_seed(0)
    ok = True
    for name, net in [("tiny vgg", Vgg([3, "M", 2, "M"], [4], 3, cin=2, size=4)),
                      ("tiny resnet", ResNet([2, 3], 3, cin=2))]:
        net = net.to(torch.float64)
        x = torch.randn(5, 2, 4, 4, dtype=torch.float64)
        t = torch.nn.functional.one_hot(torch.arange(5) % 3, 3).to(torch.float64)
        obj = Objective(net, x, t, "mse", 2)
        th = obj.theta
        f = lambda p: sum(obj.chunk_loss(p, xc, tc) for xc, tc in obj.chunks)
        dense = torch.autograd.functional.hessian(f, th)
        v = torch.randn_like(th)
        e_hv = ((obj.hvp(th, v) - dense @ v).norm() / (dense @ v).norm()).item()
        vals, _ = top_k(obj, 3, 1e-12, 0)
        want = sorted(np.linalg.eigvalsh(dense.numpy()).tolist(), reverse=True)[:3]
        e_eig = max(abs(a - b) / abs(b) for a, b in zip(vals, want))
        good = e_hv < 1e-10 and e_eig < 1e-8
        ok &= good
        print(json.dumps({"net": name, "params": th.numel(), "hvp_vs_dense": e_hv, "top3_vs_dense": e_eig,
                          "ok": good}))
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("spectrum")
    s.add_argument("--model", required=True)
    s.add_argument("--weights", required=True)
    s.add_argument("--data", default=default_data())
    s.add_argument("--samples", type=int, default=50)
    s.add_argument("--loss", default="mse", choices=["mse", "ce"])
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--tol", type=float, default=1e-12)
    s.add_argument("--chunk", type=int, default=50)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(f=cmd_spectrum)
    i = sub.add_parser("init")
    i.add_argument("--model", required=True)
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--out", required=True)
    i.add_argument("--f64", action="store_true")
    i.set_defaults(f=cmd_init)
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--weights", required=True)
    b.add_argument("--data", default=default_data())
    b.add_argument("--samples", type=int, default=500)
    b.add_argument("--loss", default="mse", choices=["mse", "ce"])
    b.add_argument("--chunk", type=int, default=500)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(f=cmd_bench)
    t = sub.add_parser("selftest")
    t.set_defaults(f=cmd_selftest)
    a = ap.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
