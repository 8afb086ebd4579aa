"""Render benchmark of the network clip: tiny_cnn's clip against a static video as long.

Usage::

    .venv/bin/python benchmarks/network_render.py [--repeat N] [--quality l] [--detail 2]

As ``benchmarks/render.py`` measures single-layer clips: every render runs in a fresh
Python subprocess, timed from before ``import manim`` (and before convviz derives the
network) until the output file is complete. The *floor* is a static scene of the same
duration, resolution and frame rate through the same
:func:`convviz.rendering.output.render_scene`; each network render is followed by its
floor, so both see the machine in the same state, and the fastest of ``--repeat`` runs
of each is kept. The target (issue 9) is a ratio of at most 1.5 at 480p15, warm caches.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

TARGET = 1.5


def _work_network(quality: str, output: Path, detail: int) -> None:
    from convviz.network import load_network
    from convviz.rendering.network_scene import prepare_network, render_network

    plan = prepare_network(load_network(ROOT / "examples" / "tiny_cnn.toml"), detail=detail)
    render_network(plan, output=output, quality=quality)


def worker(args: argparse.Namespace) -> None:
    """One render, timed from before ``import manim``; print a JSON result."""
    from render import _video_seconds, _work_floor  # benchmarks/render.py

    output = Path(args.output)
    start = time.perf_counter()
    if args.case == "network":
        _work_network(args.quality, output, args.detail)
    else:
        _work_floor(args.quality, output, Path(args.output).parent / "tex", args.duration)
    wall = time.perf_counter() - start
    print(json.dumps({"wall": wall, "video": _video_seconds(output)}))


def run(case: str, quality: str, work: Path, detail: int,
        duration: float = 0.0) -> dict[str, float]:
    output = work / f"{case}.mp4"
    cmd = [sys.executable, __file__, "--worker", case, "--quality", quality, "--output",
           str(output), "--detail", str(detail), "--duration", str(duration)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quality", default="l")
    parser.add_argument("--detail", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.case = args.worker
        worker(args)
        return
    walls, floors, video = [], [], 0.0
    with tempfile.TemporaryDirectory(prefix="convviz-bench-") as tmp:
        work = Path(tmp)
        run("network", args.quality, work, args.detail)  # warm the caches
        for _ in range(args.repeat):
            got = run("network", args.quality, work, args.detail)
            video = got["video"]
            walls.append(got["wall"])
            floors.append(run("floor", args.quality, work, args.detail, video)["wall"])
    wall, floor = min(walls), min(floors)
    ratio = wall / floor
    print(f"network tiny_cnn -q {args.quality} --detail {args.detail}: video {video:.1f} s, "
          f"wall {wall:.2f} s, floor {floor:.2f} s, ratio {ratio:.2f}x "
          f"(target {TARGET}x) {'ok' if ratio <= TARGET else 'OVER'}")
    print(f"  all walls {[round(w, 2) for w in walls]}, floors {[round(f, 2) for f in floors]}")


if __name__ == "__main__":
    main()
