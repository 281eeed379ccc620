#!/usr/bin/env python3
"""The house issue's counts, from the source text alone (no build needed).

    python3 scripts/house_metrics.py [--max-file 800] [--max-fn 120] [--max-allows 5]

Prints, for `src/`:
  * files over --max-file lines;
  * functions over --max-fn lines (from the `fn` line to its closing brace, counted by brace depth
    with strings, chars and comments skipped);
  * the number of `#[allow(clippy::too_many_arguments)]`;
  * import circles between modules: a module is a file (`src/a/b.rs` -> `a::b`, `mod.rs` -> its
    folder); an edge A -> B for every `crate::B...` or `super::...` path A names (in `use` lines or
    inline). A circle is a strongly connected component of more than one module, after folding
    each module into its parent when one is inside the other (a folder's own files may use its
    `mod.rs`: that is layering, not a circle).
Exits 1 when any limit is exceeded (so CI or a hook can call it), 0 otherwise.
"""

import argparse
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].replace(os.sep, "::")
    if rel.endswith("::mod"):
        rel = rel[: -len("::mod")]
    if rel in ("lib", "main"):
        return "crate"
    return rel


def strip(text):
    """Blank out comments, strings and char literals, keeping line breaks."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i : j + 1]))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|\\x..|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")


def long_functions(path, clean, limit):
    lines = clean.split("\n")
    found = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            seg = lines[j]
            if not started and ";" in seg and "{" not in seg:
                break  # a declaration without a body
            for ch in seg:
                if ch == "{":
                    depth += 1
                    started = True
                elif ch == "}":
                    depth -= 1
            if started and depth <= 0:
                break
            j += 1
        if started:
            length = j - i + 1
            if length > limit:
                found.append((length, f"{os.path.relpath(path, SRC)}:{i + 1} {m.group(1)}"))
    return found


def edges(mod, clean, modules):
    """Modules named by `crate::` and `super::` paths in this file."""
    out = set()
    parent = mod.rsplit("::", 1)[0] if "::" in mod else "crate"
    for m in re.finditer(r"\b(crate|super)((?:::\w+)+)", clean):
        root, rest = m.group(1), [p for p in m.group(2).split("::") if p]
        base = [] if root == "crate" else ([] if parent == "crate" else parent.split("::"))
        if root == "super" and mod.endswith(tuple(["::" + p for p in []])):
            pass
        parts = base + rest
        # the longest prefix that is a module
        for k in range(len(parts), 0, -1):
            cand = "::".join(parts[:k])
            if cand in modules:
                if cand != mod:
                    out.add(cand)
                break
    # `use super::{a, b}` groups
    for m in re.finditer(r"\bsuper::\{([^}]*)\}", clean):
        base = [] if parent == "crate" else parent.split("::")
        for name in re.findall(r"\b(\w+)\b", m.group(1)):
            cand = "::".join(base + [name])
            if cand in modules and cand != mod:
                out.add(cand)
    for m in re.finditer(r"\bcrate::\{([^}]*)\}", clean):
        for name in re.findall(r"(?:^|,)\s*(\w+)", m.group(1)):
            if name in modules and name != mod:
                out.add(name)
    return out


def circles(graph):
    """Strongly connected components (Tarjan) of more than one module, after dropping edges
    between a module and its own ancestors or descendants."""

    def related(a, b):
        return a == b or a.startswith(b + "::") or b.startswith(a + "::")

    g = {a: {b for b in bs if not related(a, b)} for a, bs in graph.items()}
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return comps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-file", type=int, default=800)
    ap.add_argument("--max-fn", type=int, default=120)
    ap.add_argument("--max-allows", type=int, default=5)
    args = ap.parse_args()

    files = []
    for root, _, names in os.walk(SRC):
        files += [os.path.join(root, n) for n in names if n.endswith(".rs")]
    files.sort()
    modules = {module_of(f): f for f in files}
    big, longs, allows, graph = [], [], 0, {}
    total = 0
    for f in files:
        text = open(f, encoding="utf-8").read()
        n = text.count("\n")
        total += n
        if n > args.max_file:
            big.append((n, os.path.relpath(f, SRC)))
        clean = strip(text)
        longs += long_functions(f, clean, args.max_fn)
        allows += text.count("clippy::too_many_arguments")
        graph[module_of(f)] = edges(module_of(f), clean, modules)
    comps = circles(graph)

    print(f"{len(files)} files, {total} lines in src/")
    print(f"files over {args.max_file} lines: {len(big)}")
    for n, f in sorted(big, reverse=True):
        print(f"  {n:5} {f}")
    print(f"functions over {args.max_fn} lines: {len(longs)}")
    for n, f in sorted(longs, reverse=True):
        print(f"  {n:5} {f}")
    print(f"too_many_arguments allows: {allows}")
    print(f"import circles: {len(comps)}")
    for c in comps:
        print("  " + " <-> ".join(c))
    bad = big or longs or allows > args.max_allows or comps
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
