"""Benchmark whole networks: derive every layer, then evaluate the derived expressions.

Each network runs in a fresh Python subprocess (SymPy's caches cold, memory isolated);
convviz and SymPy are imported before the clock starts, so these are in-process figures.
Per layer: seconds to derive it, to evaluate its forward cells and its backward cells;
per network: the totals, ``convviz check`` (identities and finite differences) for the
small ones, and the peak resident set (``ru_maxrss``) of the process.

Targets (issue 9): tiny_cnn derive, evaluate and check within 1 s; lenet5 derive and
evaluate within 30 s and 1 GB.

Baseline, measured in the same run: the seed's all-pairs chain rule on tiny_cnn. Every
layer's forward pass on symbols, then for every variable cell ``v`` the sum over *all*
output cells ``dz_k * diff(z_k, v)`` (no index of which pairs share a term), as the
article and the seeds write it; the same local derivation per layer, so the comparison
isolates the chain rule.

Usage::

    .venv/bin/python benchmarks/network.py            # tiny_cnn, xor_mlp, lenet5
    .venv/bin/python benchmarks/network.py --quick    # without lenet5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import contextlib, io, json, resource, sys, time
import sympy
import convviz.derivation, convviz.evaluation, convviz.identities, convviz.network
from convviz.cli.network_commands import check_network
from convviz.evaluation import evaluate_network
from convviz.network import derive_network, load_network, random_values

path, check = sys.argv[1], sys.argv[2] == "1"
started = time.perf_counter()
net = load_network(path)
values = random_values(net, 0)
derived = derive_network(values.network)
between = time.perf_counter()
result = evaluate_network(derived, values)
done = time.perf_counter()
layers = [
    {"label": layer.label, "products": layer.spec.products, "derive": d,
     "forward": r.seconds[0], "backward": r.seconds[1]}
    for layer, d, r in zip(net.layers, derived.seconds, result.layers)
]
doc = {"derive": between - started, "evaluate": done - between, "layers": layers}
if check:
    with contextlib.redirect_stdout(io.StringIO()):
        begun = time.perf_counter()
        doc["check_status"] = check_network(path, 0)
        doc["check"] = time.perf_counter() - begun
doc["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(doc))
"""


def measure(name: str, check: bool) -> dict[str, object]:
    path = ROOT / "examples" / f"{name}.toml"
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), "1" if check else "0"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


_ALLPAIRS = r"""
import json, sys, time
import sympy
import convviz.derivation
from convviz.derivation import derive
from convviz.network import load_network

net = load_network(sys.argv[1])
started = time.perf_counter()
for layer in net.layers:
    d = derive(layer.spec, only=())  # forward on symbols, upstream cells, no gradients
    outputs, upstream = list(d.output.flat), list(d.grad_output.flat)
    for role in d.layer.variables:
        for v in d.array(role).flat:
            if v is not sympy.S.Zero:
                sympy.Add(*(u * sympy.diff(z, v) for z, u in zip(outputs, upstream)))
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def all_pairs(name: str) -> float:
    path = ROOT / "examples" / f"{name}.toml"
    out = subprocess.run([sys.executable, "-c", _ALLPAIRS, str(path)], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip lenet5")
    args = parser.parse_args()
    names = ["tiny_cnn", "xor_mlp"] + ([] if args.quick else ["lenet5"])
    for name in names:
        doc = measure(name, check=name != "lenet5")
        print(f"{name}: derive {doc['derive']:.2f} s, evaluate {doc['evaluate']:.2f} s"
              + (f", check {doc['check']:.2f} s (exit {doc['check_status']})"
                 if "check" in doc else "")
              + f", peak RSS {doc['rss_mb']:.0f} MB")
        for layer in doc["layers"]:  # type: ignore[attr-defined]
            print(f"  {layer['label']:<32} {layer['products']:>8,} products  "
                  f"derive {layer['derive']:7.3f} s  forward {layer['forward']:6.3f} s  "
                  f"backward {layer['backward']:6.3f} s")
        if name == "tiny_cnn":
            total = float(doc["derive"]) + float(doc["evaluate"]) + float(doc["check"])
            verdict = "PASS" if total <= 1.0 else "FAIL"
            print(f"  tiny_cnn derive + evaluate + check: {total:.2f} s (target <= 1 s) "
                  f"{verdict}")
            baseline = all_pairs(name)
            print(f"  baseline, the seed's all-pairs chain rule (derive only): "
                  f"{baseline:.2f} s, {baseline / float(doc['derive']):.0f}x convviz's derive")
        if name == "lenet5":
            total = float(doc["derive"]) + float(doc["evaluate"])
            rss = float(doc["rss_mb"])
            verdict = "PASS" if total <= 30 and rss <= 1024 else "FAIL"
            print(f"  lenet5 derive + evaluate: {total:.1f} s, {rss:.0f} MB "
                  f"(targets <= 30 s, <= 1 GB) {verdict}")


if __name__ == "__main__":
    main()
