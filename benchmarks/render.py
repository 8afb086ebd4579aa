"""Render benchmark: how much a convviz clip costs over a static video of the same length.

Usage::

    .venv/bin/python benchmarks/render.py [--repeat N] [--skip-hd] [--skip-reference]

Every render runs in a fresh Python subprocess, and the timed span of each starts
*before* ``import manim`` and ends when the output file is complete, so import, scene
construction, LaTeX, drawing and encoding are all counted, the same way for every case.
(Interpreter start-up, identical for all cases, is not counted.)

Cases, all mp4:

* ``convviz`` -- the default forward clip (6x6 input, 3x3 kernel, 16 steps) through
  :func:`convviz.render`, at ``-q l`` cold and warm, and at ``-q h`` (1080p60) warm.
  *Cold* means a new, empty TeX cache directory (convviz's ``tex_cache``) and new, empty
  convviz caches (``XDG_CACHE_HOME``: glyph outlines, clip plans); *warm* is a
  second render into the same directory.
* ``reference`` -- the seed article's approach, for comparison: every cell an entry of a
  ``MathTable`` (one LaTeX run per label when cold), one ``MathTex`` equation per step
  (another LaTeX run), and every highlight a new rectangle faded in (0.5 s), held
  (0.5 s) and faded out (0.3 s) at each step. Which cells light up comes from
  :func:`convviz.highlight_map`, so it does the same work. The equation of each step is
  shown without a fade, as in convviz's clip. Its cold/warm TeX cache is manim's
  ``tex_dir``.
* ``floor`` -- a static scene (a few squares and a ``wait``) of the same duration,
  resolution and frame rate, rendered through the same
  :func:`convviz.rendering.output.render_scene`. Its wall time is the floor: what
  writing that much video costs at all.

The *overhead ratio* is a case's wall time divided by the floor's for the same duration
and quality. With ``--repeat N`` (default 3) every case is rendered N times (cold ones
into N fresh cache directories), each time followed by its floor, so that both see the
machine in the same state; the fastest of each is kept, since machine noise only ever
adds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Targets for the overhead ratio, by (case, quality, cache state).
TARGETS: dict[tuple[str, str, str], float] = {
    ("convviz", "l", "cold"): 2.0,
    ("convviz", "l", "warm"): 1.5,
    ("convviz", "h", "warm"): 2.0,
}

#: Seed-style reference timings per step (seconds).
FADE_IN, HOLD, FADE_OUT = 0.5, 0.5, 0.3


# ----------------------------------------------------------------------------- workers
# Each worker runs in its own subprocess; it imports manim inside the timed span.


def _video_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration or 0) / 1e6


def _work_convviz(quality: str, output: Path, tex_cache: Path) -> None:
    from convviz import ConvSpec, render

    render(ConvSpec(), "forward", quality=quality, output=output, tex_cache=tex_cache)


def _work_floor(quality: str, output: Path, tex_cache: Path, duration: float) -> None:
    from manim import BLUE, GREEN, RED, Circle, Scene, Square, Triangle

    from convviz.rendering.output import render_scene

    class StaticFloor(Scene):  # type: ignore[misc]
        def construct(self) -> None:
            self.add(
                Square(color=BLUE).shift([-3.0, 0.0, 0.0]),
                Circle(color=RED),
                Triangle(color=GREEN).shift([3.0, 0.0, 0.0]),
            )
            self.wait(duration)

    render_scene(StaticFloor, output, quality=quality, tex_cache=tex_cache)


def _work_reference(quality: str, output: Path, tex_cache: Path) -> None:
    from manim import (
        DOWN,
        RIGHT,
        UP,
        WHITE,
        YELLOW,
        FadeIn,
        FadeOut,
        MathTable,
        MathTex,
        Scene,
        VGroup,
    )

    import convviz
    from convviz.rendering.output import render_scene

    spec = convviz.ConvSpec()
    hmap = convviz.highlight_map(convviz.derive(spec), "forward")
    teal = "#1ABC9C"

    def entries(role: str) -> list[list[str]]:
        info = hmap.arrays[role]
        if not info.shape:
            return [[info.label]]
        rows, cols = info.shape
        return [
            [f"{{{info.label}}}_{{{i},{j}}}" for j in range(1, cols + 1)]
            for i in range(1, rows + 1)
        ]

    def equation(step: convviz.Step) -> str:
        def name(cell: convviz.Cell) -> str:
            label = hmap.arrays[cell.role].label
            return label if not cell.index else f"{{{label}}}_{{{','.join(map(str, cell.index))}}}"

        terms = [" ".join(name(f) for f in term) for term in step.terms]
        return name(step.target) + " = " + " + ".join(terms)

    class SeedStyleForward(Scene):  # type: ignore[misc]
        def construct(self) -> None:
            roles = ("input", "kernel", "bias", "output")
            tables = {
                role: MathTable(entries(role), include_outer_lines=True, h_buff=0.6, v_buff=0.45)
                for role in roles
            }
            ops = [MathTex(s) for s in (r"\ast", "+", "=")]
            row = VGroup(
                tables["input"], ops[0], tables["kernel"], ops[1], tables["bias"], ops[2],
                tables["output"],
            ).arrange(RIGHT, buff=0.3)
            row.scale_to_fit_width(13.5).move_to(0.3 * UP)
            self.add(row)
            self.wait(0.5)
            for step in hmap.steps:
                rects = []
                target = tables[step.target.role]
                rects.append(target.get_highlighted_cell(step.target.index, color=teal))
                rects.append(target.get_cell(step.target.index, color=teal))
                for role, indices in step.highlights.items():
                    for index in indices:
                        pos = index if index else (1, 1)
                        rects.append(tables[role].get_cell(pos, color=YELLOW))
                eq = MathTex(equation(step), color=WHITE)
                eq.scale_to_fit_width(min(eq.width, 13.0)).to_edge(DOWN)
                self.add(eq)
                group = VGroup(*rects)
                self.play(FadeIn(group), run_time=FADE_IN)
                self.wait(HOLD)
                self.play(FadeOut(group), run_time=FADE_OUT)
                self.remove(eq)
            self.wait(0.5)

    render_scene(SeedStyleForward, output, quality=quality, tex_cache=tex_cache)


def worker(args: argparse.Namespace) -> None:
    """Run one render, timed from before ``import manim``; print a JSON result."""
    output, tex_cache = Path(args.output), Path(args.tex_cache)
    start = time.perf_counter()
    if args.case == "convviz":
        _work_convviz(args.quality, output, tex_cache)
    elif args.case == "floor":
        _work_floor(args.quality, output, tex_cache, args.duration)
    elif args.case == "reference":
        _work_reference(args.quality, output, tex_cache)
    else:
        raise SystemExit(f"unknown case {args.case!r}")
    wall = time.perf_counter() - start
    print(json.dumps({"wall": wall, "video": _video_seconds(output)}))


# ----------------------------------------------------------------------------- driver
@dataclass
class Result:
    """One measured case."""

    case: str
    quality: str
    cache: str
    wall: float
    video: float
    floor: float = 0.0

    @property
    def ratio(self) -> float:
        return self.wall / self.floor if self.floor else float("nan")


def run_once(case: str, quality: str, work: Path, tex_cache: Path,
             duration: float | None = None) -> tuple[float, float]:
    """Render one case in a fresh subprocess; return (wall seconds, video seconds)."""
    output = work / f"{case}-{quality}.mp4"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", case,
           "--quality", quality, "--output", str(output), "--tex-cache", str(tex_cache)]
    if duration is not None:
        cmd += ["--duration", repr(duration)]
    # Every convviz cache (typeset glyph outlines, derived clip plans) lives under
    # XDG_CACHE_HOME: a cold run gets a fresh one along with its fresh TeX cache.
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=f"{tex_cache}-xdg")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{case} -q {quality} failed")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(data["wall"]), float(data["video"])


def measure_all(work: Path, repeat: int, *, reference: bool, hd: bool) -> list[Result]:
    """Every case, ``repeat`` times, interleaved with the floors they are compared with.

    Each repetition renders the cases and their floors one after the other, so a slow
    spell of the machine affects a case and its floor alike; the fastest of each is
    kept.
    """
    runs: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    floors: dict[tuple[str, str, str], list[float]] = {}

    def record(key: tuple[str, str, str], result: tuple[float, float], quality: str) -> None:
        runs.setdefault(key, []).append(result)
        floor = run_once("floor", quality, work, work / "cache-floor" / "tex", result[1])
        floors.setdefault(key, []).append(floor[0])

    for n in range(repeat):
        # Cold: fresh TeX and convviz caches; warm: the same caches again.
        cache = work / f"cache-convviz-{n}" / "tex"
        record(("convviz", "l", "cold"), run_once("convviz", "l", work, cache), "l")
        record(("convviz", "l", "warm"), run_once("convviz", "l", work, cache), "l")
        if reference:
            ref_cache = work / f"cache-reference-{n}" / "tex"
            record(("reference", "l", "cold"), run_once("reference", "l", work, ref_cache), "l")
            record(("reference", "l", "warm"), run_once("reference", "l", work, ref_cache), "l")
        if hd:
            # The TeX cache is resolution independent: warm from the -q l runs.
            record(("convviz", "h", "warm"), run_once("convviz", "h", work, cache), "h")
        print(f"  repetition {n + 1}/{repeat} done (load {load()})", flush=True)
    results = []
    for (case, quality, state), values in runs.items():
        wall, video = min(values)
        results.append(Result(case, quality, state, wall, video,
                              floor=min(floors[(case, quality, state)])))
    return results


def load() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    """Run every case and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="renders per case (fastest kept)")
    parser.add_argument("--skip-hd", action="store_true", help="skip the 1080p60 case")
    parser.add_argument("--skip-reference", action="store_true", help="skip the seed reference")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quality", default="l", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--tex-cache", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.case = args.worker
        worker(args)
        return

    print(f"load average at start: {load()} ({os.cpu_count()} cores)", flush=True)
    with tempfile.TemporaryDirectory(prefix="convviz-bench-") as tmp:
        results = measure_all(Path(tmp), args.repeat, reference=not args.skip_reference,
                              hd=not args.skip_hd)

    header = ("case", "quality", "cache", "wall s", "video s", "floor s", "ratio", "target", "")
    rows = []
    for r in results:
        target = TARGETS.get((r.case, r.quality, r.cache))
        verdict = "" if target is None else ("PASS" if r.ratio <= target else "FAIL")
        rows.append((r.case, r.quality, r.cache, f"{r.wall:.2f}", f"{r.video:.2f}",
                     f"{r.floor:.2f}", f"{r.ratio:.2f}x",
                     "-" if target is None else f"<= {target:g}x", verdict))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(f"load average at end: {load()}")
    if any(row[-1] == "FAIL" for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
