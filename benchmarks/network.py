"""Benchmark whole networks: derive every layer, then evaluate the derived expressions.

Each network runs in a fresh Python subprocess (SymPy's caches cold, memory isolated);
convviz and SymPy are imported before the clock starts, so these are in-process figures.
Per layer: seconds to derive it, to evaluate its forward cells and its backward cells;
per network: the totals, ``convviz check`` (identities and finite differences) for the
small ones, and the peak resident set (``ru_maxrss``) of the process.

Targets (issue 9): tiny_cnn derive, evaluate and check within 1 s; lenet5 derive and
evaluate within 30 s and 1 GB.

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


if __name__ == "__main__":
    main()
