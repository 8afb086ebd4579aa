"""Benchmark the whole symbolic derivation against the article's all-pairs chain rule.

"Whole derivation" = ``derive(spec)`` plus all four highlight maps (forward, dw, da, db),
which is what every render and ``convviz highlights`` pays for.

Every measurement runs in a fresh Python subprocess, so SymPy's caches start cold and
memory is isolated. convviz (and with it SymPy and NumPy) is imported *before* the clock
starts, so these are in-process (warm-import) figures; the ``cli`` table times whole
``convviz`` command runs (cold: interpreter start-up and imports included).

Layer types other than conv2d are measured in the ``layers`` table: derive plus every op's
highlight map, against the same derivation with ``sympy.diff`` on every sharing pair
(``engine="sympy"``), measured in the same run.

Columns
-------
sparse s
    Wall time (``time.perf_counter``), best of N fresh processes, default engine.
trace MB
    Peak of Python allocations (``tracemalloc``), in a separate traced process (tracing
    slows the run, so its time is not used).
RSS MB
    Growth of the resident set: ``ru_maxrss`` after the derivation minus ``VmRSS`` just
    before it, max over the timed processes.
sympy-eng s
    The same derivation with ``engine="sympy"`` (``sympy.diff`` on whole output cells,
    still only for sharing pairs).
all-pairs s
    The article's rule: the same symbolic forward pass, then for every cell ``v`` of W, a
    and b, ``sum(dz * z.diff(v) for z, dz in zip(all z, all dz))``. Highlight maps are not
    included, so the comparison flatters the baseline.

Usage::

    .venv/bin/python benchmarks/derive.py            # full table (a few minutes)
    .venv/bin/python benchmarks/derive.py --quick    # small cases only
    .venv/bin/python benchmarks/derive.py --layers   # the layers and cli tables only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Targets from the project brief.
TARGET_28_SECONDS = 1.0
TARGET_28_MB = 300.0
TARGET_64_SECONDS = 10.0


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    runs: int  # timed fresh processes for the sparse path
    allpairs: str  # "run": run fully; "auto": sample, run fully if under budget;
    # "sample": sample only; "model": extrapolate from the largest sampled case
    sympy_engine: str  # "run", "auto" (run if the estimate is under budget), "model"


CASES = [
    Case("6x6 / 3x3", {"input_size": (6, 6), "kernel_size": (3, 3)}, 7, "run", "run"),
    Case("14x14 / 3x3", {"input_size": (14, 14), "kernel_size": (3, 3)}, 5, "auto", "run"),
    Case("28x28 / 5x5", {"input_size": (28, 28), "kernel_size": (5, 5)}, 3, "sample", "auto"),
    Case(
        "3x32x32 / 3x3, F=4",
        {"input_size": (32, 32), "kernel_size": (3, 3), "channels": 3, "filters": 4},
        2,
        "model",
        "model",
    ),
    Case("64x64 / 5x5", {"input_size": (64, 64), "kernel_size": (5, 5)}, 2, "model", "model"),
]


# ================================================================ worker (child process)
def _rss_now_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _rss_peak_mb()


def _rss_peak_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _whole_derivation(spec: Any, engine: str) -> None:
    from convviz.derivation import derive
    from convviz.reflection import highlight_map

    derivation = derive(spec, engine=engine)  # type: ignore[arg-type]
    for op in derivation.layer.ops:
        if not op.map_op and (not op.needs or getattr(spec, op.needs)):
            highlight_map(derivation, op.name, expressions=0)


#: (name, type, options as in lecture files, target seconds for derive + all maps)
LAYER_CASES: list[tuple[str, str, dict[str, Any], float]] = [
    ("dense 784->64", "dense", {"input": "784", "outputs": "64"}, 2.0),
    ("maxpool2d 2x2 on 16x64x64", "maxpool2d", {"input": "16x64x64", "kernel": "2"}, 1.0),
    (
        "conv-transpose2d 14x14->28x28 k4 s2 p1",
        "conv-transpose2d",
        {"input": "14x14", "kernel": "4", "stride": "2", "padding": "1"},
        1.0,
    ),
]


def _pool_floor(spec: Any, maps: bool = False, walk: bool = False) -> None:
    """The least SymPy work a derivation of a max pool in the required form must do.

    ``derive --format json`` writes each gradient cell in SymPy's own functions, so the
    first-maximum indicator of cell ``x`` is ``Heaviside(x - Max(earlier), 0) *
    Heaviside(x - Max(later), 1)``. Here: the input and upstream cells built the fastest
    way convviz knows (:func:`convviz.symbolic.cells`), one ``Max`` per window, and per
    input cell the nodes of those two factors and of its product with the upstream cell,
    every node made bare (``Basic.__new__``: no evaluation, no canonical order, no
    hashing), then each product's cells gathered into two sets (the highlight map's
    content), with the garbage collector paused as :func:`convviz.derivation.derive`
    pauses it. No checks, no cache, no map objects: convviz does all of this and more.
    With ``maps``, also the objects of both highlight maps (:func:`_bare_map_objects`),
    made from what the nodes were built of, without walking them. With ``walk``, also one
    bare walk of every node of both maps' expressions (:func:`_bare_walk`), the least a
    reflection of the trees adds to those objects.
    """
    from convviz.derivation import paused_gc

    with paused_gc():
        _bare_pool_nodes(spec, maps, walk)


def _bare_pool_nodes(spec: Any, maps: bool, walk: bool = False) -> None:
    import sympy

    from convviz.symbolic import cells

    a_base, dp_base = sympy.IndexedBase("a", real=True), sympy.IndexedBase("dp")
    shape_in = spec.full_shape("input")
    shape_out = spec.full_shape("output")
    a = cells(a_base, shape_in, shape_in)
    dp = cells(dp_base, shape_out, shape_out)
    new, maximum, mul, add = sympy.Basic.__new__, sympy.Max, sympy.Mul, sympy.Add
    heaviside, minus, zero, one = sympy.Heaviside, sympy.S.NegativeOne, sympy.S.Zero, sympy.S.One

    def factor(x: Any, side: tuple[Any, ...], at_zero: Any) -> Any:
        largest = side[0] if len(side) == 1 else new(maximum, *side)
        return new(heaviside, new(add, x, new(mul, minus, largest)), at_zero)

    forward: list[Any] = []
    products: list[Any] = []
    for c in range(spec.channels):
        for (i, j), window in spec.windows():
            args = tuple(a[c, r, s] for r, s in window)
            forward.append(new(maximum, *args))
            upstream = dp[c, i, j]
            for n, x in enumerate(args):
                earlier, later = args[:n], args[n + 1 :]
                factors = [factor(x, side, at) for side, at in ((earlier, zero), (later, one))
                           if side]
                products.append((new(mul, upstream, *factors), args))
    found: list[tuple[set[Any], set[Any]]] = []
    for product, args in products:
        found.append(({product.args[0]}, set(args)))
    if walk:
        leaves = {id(node): node for node in (*a.flat, *dp.flat)}
        _bare_walk(forward, leaves)
        _bare_walk([product for product, _ in products], leaves)
    if maps:
        _bare_map_objects(spec, a, dp, forward, products)


def _bare_walk(roots: list[Any], leaves: dict[int, Any]) -> None:
    """Visit every node under each root once, looking each one up among the cells by id.

    What any reflection of an expression tree must do at the least: reach each node
    (an explicit stack, no dispatch on its class) and tell a cell from the rest. The cells
    found for each root go into a list, in the order met (not sorted, not grouped).
    """
    for root in roots:
        found: list[Any] = []
        stack = [root]
        pop, push, extend = stack.pop, found.append, stack.extend
        while stack:
            node = pop()
            cell = leaves.get(id(node))
            if cell is None:
                extend(node._args)
            else:
                push(cell)


def _bare_map_objects(
    spec: Any, a: Any, dp: Any, forward: list[Any], products: list[tuple[Any, Any]]
) -> None:
    """The highlight maps' objects, from what the bare nodes were built of (no walk).

    One :class:`~convviz.highlights.Cell` per cell of ``a`` and ``dp`` and per target cell,
    and one :class:`~convviz.highlights.Step` per output cell (forward) and per
    (window, cell) product (da), each with its terms and highlights, the cells in the order
    a map holds them (the windows were built in row-major order, so nothing is sorted).
    Any implementation that returns these maps makes these objects.
    """
    import itertools

    from convviz.highlights import Cell, Step

    def cells_of(array: Any, role: str) -> dict[int, Cell]:
        shape = array.shape
        indices = itertools.product(*(range(1, n + 1) for n in shape))
        pairs = zip(array.flat, indices, strict=True)
        return {id(node): Cell(role, index) for node, index in pairs}

    inputs, upstream = cells_of(a, "input"), cells_of(dp, "grad_output")
    steps = []
    out_index = itertools.product(*(range(1, n + 1) for n in spec.full_shape("output")))
    for node, index in zip(forward, out_index, strict=True):
        used = [inputs[id(c)] for c in node.args]  # built in row-major order: sorted
        steps.append(Step(Cell("output", index), (tuple(used),), ("1",),
                          {"input": tuple(c.index for c in used)}))
    for n, (product, args) in enumerate(products, 1):
        used = [inputs[id(c)] for c in args]
        up = upstream[id(product.args[0])]
        steps.append(Step(Cell("grad_input", (n,)), ((*used, up),), ("1",),
                          {"input": tuple(c.index for c in used), "grad_output": (up.index,)}))


def _layer_spec(job: dict[str, Any]) -> Any:
    from convviz.layers import layer_type

    return layer_type(job["type"]).build(job["options"])


def _allpairs(spec: Any, sample: int) -> dict[str, Any]:
    """The seed's chain rule; with ``sample`` > 0 only that many variables per group."""
    from convviz.derivation import derive

    started = time.perf_counter()
    symbolic = derive(spec, only=())  # the forward pass on symbols, no gradients
    a, w, b = symbolic.input, symbolic.kernel, symbolic.bias
    z, dz = symbolic.output, symbolic.grad_output
    zs, dzs = list(z.flat), list(dz.flat)
    forward = time.perf_counter() - started
    groups = {}
    if sample:
        # warm SymPy's caches on one untimed variable so the first sampled one isn't an outlier
        sum(dzk * zk.diff(a.flat[-1]) for zk, dzk in zip(zs, dzs, strict=True))
    for name, array in (("W", w), ("a", a), ("b", b)):
        variables = list(array.flat)
        if sample:
            step = max(1, len(variables) // sample)
            chosen = variables[::step][:sample]
        else:
            chosen = variables
        t0 = time.perf_counter()
        for v in chosen:
            sum(dzk * zk.diff(v) for zk, dzk in zip(zs, dzs, strict=True))
        groups[name] = {
            "size": len(variables),
            "timed": len(chosen),
            "seconds": time.perf_counter() - t0,
        }
    return {"forward": forward, "groups": groups}


def worker(job: dict[str, Any]) -> dict[str, Any]:
    import gc
    import tracemalloc

    import convviz.derivation
    import convviz.reflection  # noqa: F401  (imported before the clock starts)
    from convviz.spec import ConvSpec

    if "type" in job:
        spec = _layer_spec(job)
    else:
        options: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in job["spec"].items()
        }
        spec = ConvSpec(**options)
    mode = job["mode"]
    gc.collect()
    if mode == "traced":
        tracemalloc.start()
        _whole_derivation(spec, "product-rule")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"trace_mb": peak / 2**20}
    before = _rss_now_mb()
    started = time.perf_counter()
    result: dict[str, Any] = {}
    if mode in ("sparse", "sympy"):
        _whole_derivation(spec, "product-rule" if mode == "sparse" else "sympy")
    elif mode == "allpairs":
        result = _allpairs(spec, job.get("sample", 0))
    elif mode == "floor":
        _pool_floor(spec)
    elif mode == "floor-maps":
        _pool_floor(spec, maps=True)
    elif mode == "floor-walk":
        _pool_floor(spec, maps=True, walk=True)
    else:
        raise ValueError(mode)
    result["seconds"] = time.perf_counter() - started
    result["rss_mb"] = _rss_peak_mb() - before
    return result


# ================================================================= driver (parent process)
def run_job(job: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """Run one measurement in a fresh interpreter; ``None`` on timeout."""
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(job)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"worker failed for {job}:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _spec(case: Case) -> Any:
    from convviz.spec import ConvSpec

    return ConvSpec(**case.spec)


def _pairs_work(case: Case) -> float:
    """Size of the all-pairs job: variables x outputs x terms per output."""
    spec = _spec(case)
    variables = (
        spec.channels * spec.input_size[0] * spec.input_size[1]
        + spec.filters * spec.channels * spec.kernel_size[0] * spec.kernel_size[1]
        + spec.filters
    )
    outputs = spec.filters * spec.output_size[0] * spec.output_size[1]
    terms = spec.channels * spec.kernel_size[0] * spec.kernel_size[1] + 1
    return float(variables * outputs * terms)


def _sharing_work(case: Case) -> float:
    """Size of the sympy-engine job: sharing (output, variable) pairs x terms per output."""
    spec = _spec(case)
    outputs = spec.filters * spec.output_size[0] * spec.output_size[1]
    pairs = 2 * spec.products + outputs
    terms = spec.channels * spec.kernel_size[0] * spec.kernel_size[1] + 1
    return float(pairs * terms)


def _estimate_allpairs(sampled: dict[str, Any]) -> float:
    total = sampled["forward"]
    for group in sampled["groups"].values():
        total += group["seconds"] / group["timed"] * group["size"]
    return float(total)


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="only the two smallest cases")
    parser.add_argument(
        "--budget", type=float, default=90.0, help="seconds allowed for one baseline run"
    )
    parser.add_argument("--sample", type=int, default=5, help="variables timed per group")
    parser.add_argument("--layers", action="store_true", help="only the layers and cli tables")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.layers:
        layers_table(args.budget)
        cli_table()
        return 0

    import sympy

    cases = CASES[:2] if args.quick else CASES
    print(
        f"convviz derivation benchmark: Python {platform.python_version()}, "
        f"SymPy {sympy.__version__}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    print("each measurement in a fresh process; imports done before the clock starts (warm)\n")

    rows = []
    allpairs_rate: float | None = None  # seconds per unit of _pairs_work
    sympy_rate: float | None = None  # seconds per unit of _sharing_work
    notes: list[str] = []
    rows_28: tuple[float, float] | None = None
    rows_64: float | None = None
    for case in cases:
        base = {"spec": case.spec}
        print(f"  measuring {case.name} ...", file=sys.stderr, flush=True)
        timed = [run_job({**base, "mode": "sparse"}, 600) for _ in range(case.runs)]
        sparse = min(r["seconds"] for r in timed if r)
        rss = max(r["rss_mb"] for r in timed if r)
        traced = run_job({**base, "mode": "traced"}, 1200)
        trace_mb = traced["trace_mb"] if traced else math.nan

        # ---- sympy engine
        sympy_text = "-"
        estimate = sympy_rate * _sharing_work(case) if sympy_rate else None
        run_it = case.sympy_engine == "run" or (
            case.sympy_engine == "auto" and estimate is not None and estimate < args.budget
        )
        if run_it:
            result = run_job({**base, "mode": "sympy"}, args.budget * 2)
            if result:
                sympy_rate = result["seconds"] / _sharing_work(case)
                sympy_text = _fmt_seconds(result["seconds"])
            else:
                sympy_text = f"> {args.budget * 2:.0f} (stopped)"
        elif estimate is not None:
            sympy_text = f"~{_fmt_seconds(estimate)} est., not run"

        # ---- all-pairs baseline
        ap_seconds: float | None = None
        ap_text, ap_rss = "-", "-"
        if case.allpairs in ("auto", "sample"):
            sampled = run_job({**base, "mode": "allpairs", "sample": args.sample}, 1200)
            assert sampled is not None
            estimate = _estimate_allpairs(sampled)
            allpairs_rate = estimate / _pairs_work(case)
            if case.allpairs == "auto" and estimate < args.budget:
                full = run_job({**base, "mode": "allpairs"}, args.budget * 3)
                if full:
                    ap_seconds = full["seconds"]
                    ap_text, ap_rss = _fmt_seconds(ap_seconds), f"{full['rss_mb']:.0f}"
                    allpairs_rate = ap_seconds / _pairs_work(case)
                    notes.append(
                        f"{case.name}: all-pairs sample predicted {_fmt_seconds(estimate)} s, "
                        f"full run took {_fmt_seconds(ap_seconds)} s"
                    )
            if ap_seconds is None:
                ap_seconds = estimate
                timed_vars = sum(g["timed"] for g in sampled["groups"].values())
                all_vars = sum(g["size"] for g in sampled["groups"].values())
                ap_text = f"~{_fmt_seconds(estimate)} est."
                notes.append(
                    f"{case.name}: all-pairs est. from {timed_vars} of {all_vars} variables "
                    f"timed ({args.sample} per group W, a, b), scaled by group size"
                )
        elif case.allpairs == "run":
            full = run_job({**base, "mode": "allpairs"}, args.budget * 3)
            assert full is not None, "all-pairs baseline did not finish"
            ap_seconds = full["seconds"]
            ap_text, ap_rss = _fmt_seconds(ap_seconds), f"{full['rss_mb']:.0f}"
            allpairs_rate = ap_seconds / _pairs_work(case)
        elif allpairs_rate is not None:
            ap_seconds = allpairs_rate * _pairs_work(case)
            ap_text = f"~{_fmt_seconds(ap_seconds)} est., not run"
        speedup = f"{ap_seconds / sparse:,.0f}x" if ap_seconds else "-"
        rows.append(
            [
                case.name,
                f"{_spec(case).products:,}",
                f"{_fmt_seconds(sparse)} (best of {case.runs})",
                f"{trace_mb:.1f}",
                f"{rss:.1f}",
                sympy_text,
                ap_text,
                ap_rss,
                speedup,
            ]
        )
        if case.name.startswith("28x28"):
            memory = max(trace_mb, rss)
            rows_28 = (sparse, memory)
        if case.name.startswith("64x64"):
            rows_64 = sparse

    header = [
        "case",
        "mults",
        "sparse s",
        "trace MB",
        "RSS MB",
        "sympy-eng s",
        "all-pairs s",
        "all-pairs RSS MB",
        "speedup",
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    print("sparse = derive() + 4 highlight maps, default product-rule engine; trace MB =")
    print("tracemalloc peak (separate traced run); RSS MB = ru_maxrss after minus VmRSS before.")
    print("est. = extrapolated from timed variables; est., not run = scaled from the largest")
    print("measured case by variables x outputs x terms (all-pairs) or sharing pairs x terms")
    print("(sympy engine); the all-pairs sum is quadratic for W cells, so big estimates are low.")
    for note in notes:
        print(f"note: {note}")

    if rows_28 is not None and rows_64 is not None:
        print("\ntargets:")
        t28, m28 = rows_28
        print(
            f"  28x28/5x5 time   < {TARGET_28_SECONDS:.0f} s    : {t28:.3f} s  "
            f"{'PASS' if t28 < TARGET_28_SECONDS else 'FAIL'}"
        )
        print(
            f"  28x28/5x5 memory < {TARGET_28_MB:.0f} MB : {m28:.1f} MB (max of trace, RSS)  "
            f"{'PASS' if m28 < TARGET_28_MB else 'FAIL'}"
        )
        print(
            f"  64x64/5x5 time   < {TARGET_64_SECONDS:.0f} s   : {rows_64:.3f} s  "
            f"{'PASS' if rows_64 < TARGET_64_SECONDS else 'FAIL'}"
        )
    if not args.quick:
        layers_table(args.budget)
        cli_table()
    return 0


def layers_table(budget: float) -> None:
    """derive + every highlight map for the other layer types, vs sympy.diff per pair."""
    print("\nlayers: derive + all highlight maps, in process (imports excluded)")
    header = ["case", "mults", "convviz s", "RSS MB", "sympy.diff per pair s", "speedup",
              "target"]
    rows = []
    floors: list[str] = []
    for name, type_name, options, target in LAYER_CASES:
        print(f"  measuring {name} ...", file=sys.stderr, flush=True)
        job = {"type": type_name, "options": options}
        timed = [run_job({**job, "mode": "sparse"}, 600) for _ in range(3)]
        best = min(r["seconds"] for r in timed if r)
        rss = max(r["rss_mb"] for r in timed if r)
        slow = run_job({**job, "mode": "sympy"}, budget * 4)
        slow_text = _fmt_seconds(slow["seconds"]) if slow else f"> {budget * 4:.0f} (stopped)"
        speedup = f"{slow['seconds'] / best:,.1f}x" if slow else "-"
        verdict = "PASS" if best <= target else "FAIL"
        products = _layer_spec(job).products
        rows.append([name, f"{products:,}", f"{_fmt_seconds(best)} (best of 3)", f"{rss:.0f}",
                     slow_text, speedup, f"<= {target:g} s {verdict}"])
        if type_name == "maxpool2d":
            # the floors alternate with convviz runs, so all meet the machine alike
            runs: dict[str, list[float]] = {"sparse": [r["seconds"] for r in timed if r]}
            for _ in range(3):
                for mode in ("floor", "floor-maps", "floor-walk", "sparse"):
                    found = run_job({**job, "mode": mode}, 600)
                    if found:
                        runs.setdefault(mode, []).append(found["seconds"])
            best = min(runs["sparse"])
            rows[-1][2] = f"{_fmt_seconds(best)} (best of {len(runs['sparse'])})"
            rows[-1][-1] = f"<= {target:g} s {'PASS' if best <= target else 'FAIL'}"
            for mode, what in (
                ("floor", "nodes only"),
                ("floor-maps", "nodes + map objects"),
                ("floor-walk", "nodes + map objects + one bare walk of every node"),
            ):
                floor = min(runs[mode])
                floors.append(f"{name}: bare-SymPy floor, {what}: {_fmt_seconds(floor)} "
                              f"(best of 3); convviz {best / floor:.2f}x of it")
    _print_table(header, rows)
    for line in floors:
        print(line)
    if floors:
        print("  floor (_pool_floor): the cells, one Max per window and, per input cell, the "
              "bare nodes of dp * Heaviside(x - Max(earlier), 0) * Heaviside(x - Max(later), "
              "1) and the sets of its cells: no evaluation, order, checks or walks; "
              "'+ map objects' also makes every Cell and Step of both maps from those sets; "
              "'+ one bare walk' also visits every node of both maps' expressions once "
              "(an explicit stack, each node looked up among the cells by id), the least "
              "a reflection of the trees adds, with no chain rule at all")


def cli_table() -> None:
    """Whole CLI runs (cold): highlights of each op at 28x28/5x5 vs a 6x6 run."""
    exe = Path(sys.executable).with_name("convviz")
    print("\ncli: whole `convviz highlights OP --json` runs (cold: start-up included)")

    def once(*args: str) -> float:
        started = time.perf_counter()
        subprocess.run([str(exe), *args], check=True, capture_output=True, cwd=ROOT)
        return time.perf_counter() - started

    small = min(once("highlights", "forward", "--input", "6x6", "--json") for _ in range(3))
    rows = []
    total = 0.0
    for op in ("forward", "dw", "da", "db"):
        seconds = min(
            once("highlights", op, "--input", "28x28", "--kernel", "5x5", "--json")
            for _ in range(2)
        )
        total += seconds - small
        rows.append([f"highlights {op} 28x28/5x5", _fmt_seconds(seconds),
                     _fmt_seconds(seconds - small)])
    rows.append(["highlights forward 6x6/3x3 (start-up)", _fmt_seconds(small), "-"])
    _print_table(["run", "wall s", "beyond a 6x6 run s"], rows)
    verdict = "PASS" if total <= 2.0 else "FAIL"
    print(f"four 28x28/5x5 runs beyond start-up: {total:.2f} s (target <= 2 s) {verdict}")


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
