#!/usr/bin/env python3
"""The metadata keys of a weights file, one set for subspace-lab and its PyTorch twins
(torch_transformer_reference.py, torch_cnn_reference.py, torch_reference.py). The Rust side holds
the same table in src/nn/weights/meta.rs; tests/weights.rs runs this file to check that what one
side writes the other reads. Standard library only (no torch), so that the check runs anywhere.

  MODEL_KEYS  describe the network or its training and are read: model, activation, heads, mask
              ("true"/"false"), ln_eps, input (a CNN's "C,H,W"), loss, dataset, vocab (JSON list).
  INFO_KEYS   describe the file and are kept, never read: format, seed, random_head, widths; run,
              phase, step, train_loss (the final weights of a leg that `run`/`reproduce` save).
  ALIASES     older names read as the current ones: act -> activation (what the Transformer twin
              wrote before).

A key in none of these is named in a warning (stderr) and ignored.

Command line (for the round-trip test):
  python3 twin_metadata.py write --heads H --activation A --mask true|false
      prints the JSON metadata the Transformer twin writes for that configuration;
  python3 twin_metadata.py read 'JSON'
      prints {"heads", "activation", "mask", "warnings"} as the Transformer twin reads them.
"""
import json, sys

MODEL_KEYS = ("model", "activation", "heads", "mask", "ln_eps", "input", "loss", "dataset", "vocab")
INFO_KEYS = ("format", "seed", "random_head", "widths", "run", "phase", "step", "train_loss")
ALIASES = {"act": "activation"}


def read(meta, path="weights", warn=None):
    """The metadata under the current key names; exits when an old and a new name disagree; warns
    (via `warn`, default stderr) on every key it does not know."""
    warnings = []
    out = {}
    for k in sorted(meta, key=lambda k: (k in ALIASES, k)):
        v = meta[k]
        if k in MODEL_KEYS:
            out[k] = v
        elif k in ALIASES:
            new = ALIASES[k]
            if new in out and out[new] != v:
                sys.exit(f"{path}: metadata says {k} = {v} and {new} = {out[new]}: two names of one setting that "
                         f"disagree ({k} is the older name of {new}); fix the file")
            out[new] = v
        elif k not in INFO_KEYS:
            warnings.append(f"{path}: the file's metadata has the key `{k}`, which this reader does not know, "
                            f"so it is ignored (it reads {', '.join(MODEL_KEYS)})")
    for w in warnings:
        (warn or (lambda m: print(m, file=sys.stderr)))(w)
    out["__warnings__"] = warnings
    return out


def transformer_settings(meta, heads=None, activation=None, mask=None):
    """(heads, activation, mask) of a Transformer file: the command line's overrides, else the
    metadata (read by `read`), else 8, silu, true."""
    heads = heads if heads is not None else int(meta.get("heads", 8))
    activation = activation or meta.get("activation", "silu")
    mask = {"true": True, "false": False}.get(mask or meta.get("mask", "true"))
    return heads, activation, mask


def transformer_meta(heads, activation, mask, ln_eps, **info):
    """The metadata the Transformer twin writes: the model keys, then `info` (seed, random_head,
    vocab, … as strings)."""
    meta = {"model": "transformer", "heads": str(heads), "activation": activation,
            "mask": "true" if mask else "false", "ln_eps": repr(ln_eps)}
    meta.update(info)
    return meta


def main(argv):
    if len(argv) >= 1 and argv[0] == "write":
        opts = dict(zip(argv[1::2], argv[2::2]))
        meta = transformer_meta(int(opts.get("--heads", 8)), opts.get("--activation", "silu"),
                                opts.get("--mask", "true") == "true", 1e-6)
        print(json.dumps(meta))
        return 0
    if len(argv) == 2 and argv[0] == "read":
        meta = read(json.loads(argv[1]), warn=lambda m: None)
        heads, activation, mask = transformer_settings(meta)
        print(json.dumps({"heads": heads, "activation": activation, "mask": mask,
                          "warnings": meta["__warnings__"]}))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
