"""Batch benchmark: parallel speed-up of ``convviz batch``, and the cost of a no-op run.

Usage::

    .venv/bin/python benchmarks/batch.py [--jobs 2] [--clips 8] [--max-steps N] [--repeat 3]

Writes a lecture of 8 small clips (forward, dw, da and db of two small layers, 5x5 input
with a 3x3 kernel and 6x6 with 2x2, complete clips at ``-q l``: 1 to 36 steps each, 110
in all) into a temporary directory and, in the same run, times

1. ``convviz batch -j 1 --force`` (one worker process renders every clip in turn),
2. ``convviz batch -j N --force`` (N worker processes),
3. ``convviz batch`` again, when every output is up to date (no worker starts),
4. for reference, the clips rendered one after the other in one process, with its wall
   and CPU time: how many cores a single clip keeps busy, which bounds the speed-up,
5. and how much faster N copies of a pure-CPU loop finish together than in turn: the
   machine's own ceiling for any parallel speed-up.

Each is the wall time of the whole ``convviz`` process, start-up included. A warm-up run
first fills the shared cache of typeset labels, so neither timed run pays for LaTeX that
the other does not. With ``--repeat N`` (default 3) the sequential and the parallel run
alternate N times and the fastest of each is kept: this machine's speed drifts by a
fifth from minute to minute, and noise only ever adds. Targets: speed-up >= 1.7x with
``-j 2`` on 2 cores, and the up-to-date run under 2 s. The machine's load average is
printed with the numbers, since other work on the machine eats into the speed-up.

What cannot run in parallel is start-up: the ``convviz`` process and the worker
forkserver's import of manim, about 1 s in both timed runs. That is why the clips are
complete rather than cut to a few steps; ``--max-steps`` cuts them. The other bound is the
sequential run itself: a clip rendered alone draws on one thread while manim encodes on
another, so it already keeps more than one core busy, and two workers on two cores can
only divide the remaining work (step 4 prints the figures).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONVVIZ = Path(sys.executable).parent / "convviz"

SPEEDUP_TARGET = 1.7
UP_TO_DATE_TARGET = 2.0

LAYERS = [("5x5", "3x3"), ("6x6", "2x2")]
OPS = ["forward", "dw", "da", "db"]


def write_lecture(folder: Path, clips: int, max_steps: int) -> Path:
    entries = [(op, size, kernel) for size, kernel in LAYERS for op in OPS]
    lines = ['[defaults]', 'quality = "l"']
    if max_steps:
        lines.append(f"max_steps = {max_steps}")
    lines.append("")
    for number, (op, size, kernel) in enumerate(entries[:clips], start=1):
        lines += [
            "[[clip]]",
            f'name = "clip{number}-{op}-{size}"',
            f'op = "{op}"',
            f'input = "{size}"',
            f'kernel = "{kernel}"',
            "",
        ]
    path = folder / "lecture.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


#: Renders the lecture's clips one after the other in this process, as a ``-j 1`` worker
#: does, and prints wall and CPU seconds (all threads).
_CORES_SCRIPT = """
import resource, sys, time
from pathlib import Path
from convviz.batch import load_lecture, render_job
jobs = load_lecture(Path(sys.argv[1])).jobs
import convviz.rendering.scenes  # imported before timing, like the forkserver's preload
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
for job in jobs:
    assert render_job(job.payload())["ok"]
usage = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - wall0, usage.ru_utime + usage.ru_stime - cpu0)
"""


def cores_per_clip(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of rendering every clip in turn in one process."""
    done = subprocess.run([sys.executable, "-c", _CORES_SCRIPT, str(path)],
                          capture_output=True, text=True, cwd=path.parent)
    if done.returncode != 0:
        sys.exit(f"timing the clips one by one failed:\n{done.stdout}{done.stderr}")
    wall, cpu = map(float, done.stdout.split()[-2:])
    return wall, cpu


_SPIN = "x = 0\nfor i in range(12_000_000):\n    x += i\n"


def machine_parallelism(jobs: int) -> float:
    """How much faster ``jobs`` copies of a pure-CPU loop finish together than in turn.

    The ceiling of any speed-up on this machine: virtual cores that share a physical
    one, or a CPU quota, give less than ``jobs`` times the work when all are busy.
    """
    def run(copies: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(copies)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - start

    alone = min(run(1) for _ in range(3))
    together = min(run(jobs) for _ in range(3))
    return jobs * alone / together


def timed(*args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(CONVVIZ), "batch", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"convviz batch {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel run")
    parser.add_argument("--clips", type=int, default=8, choices=range(1, 9), metavar="1..8")
    parser.add_argument(
        "--max-steps", type=int, default=0, help="cut each clip to N steps (0: complete clips)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed pairs (fastest kept)")
    args = parser.parse_args()

    print(f"cores: {os.cpu_count()}  load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="convviz-batch-bench-") as tmp:
        path = write_lecture(Path(tmp), args.clips, args.max_steps)
        timed(str(path), "-j", str(args.jobs), "--force")  # warm-up: fills the label cache
        sequentials, parallels = [], []
        for _ in range(max(1, args.repeat)):
            sequentials.append(timed(str(path), "-j", "1", "--force"))
            parallels.append(timed(str(path), "-j", str(args.jobs), "--force"))
        sequential, parallel = min(sequentials), min(parallels)
        up_to_date = timed(str(path))
        one_wall, one_cpu = cores_per_clip(path)
    ceiling = machine_parallelism(args.jobs)
    print("sequential runs: " + ", ".join(f"{t:.2f} s" for t in sequentials))
    print("parallel runs:   " + ", ".join(f"{t:.2f} s" for t in parallels))
    speedup = sequential / parallel
    rows = [
        (f"{args.clips} clips, -j 1 --force", f"{sequential:.2f} s", "", ""),
        (f"{args.clips} clips, -j {args.jobs} --force", f"{parallel:.2f} s",
         f"speed-up {speedup:.2f}x", f">= {SPEEDUP_TARGET}x"),
        ("second run, all up to date", f"{up_to_date:.2f} s", "", f"< {UP_TO_DATE_TARGET} s"),
    ]
    verdicts = ["", "PASS" if speedup >= SPEEDUP_TARGET else "FAIL",
                "PASS" if up_to_date < UP_TO_DATE_TARGET else "FAIL"]
    print(f"{'case':<32} {'wall':>8}  {'result':<17} {'target':<9} verdict")
    for (case, wall, result, target), verdict in zip(rows, verdicts, strict=True):
        print(f"{case:<32} {wall:>8}  {result:<17} {target:<9} {verdict}")
    cores = one_cpu / one_wall
    print(
        f"one process rendering the clips in turn: {one_wall:.2f} s wall, {one_cpu:.2f} s CPU, "
        f"so a clip keeps {cores:.2f} cores busy (drawing and encoding overlap); two workers "
        f"on {os.cpu_count()} cores can then be at most {2 / cores:.2f}x faster, before "
        "start-up"
    )
    print(
        f"this machine runs {args.jobs} copies of a pure-CPU loop {ceiling:.2f}x faster "
        "together than one after the other (the ceiling for any parallel speed-up here)"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
