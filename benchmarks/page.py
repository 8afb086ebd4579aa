"""How big an interactive page is, and how long ``convviz page`` takes beyond the render.

For the default clip (``convviz render forward``) and the ``tiny_cnn`` network clip, each
rendered once at ``-q l`` with a timeline, the table gives:

video bytes
    The MP4 alone: the baseline, since a page has to carry its video.
page bytes
    The whole self-contained page (video as base64, every formula as SVG, the script,
    styles and data).
over video
    ``page bytes / video bytes``; base64 alone costs 4/3.
formulas
    Typeset formulas in the page (one per distinct cell text).
page s
    Wall time of ``convviz page ... --timeline`` (a whole CLI run, cold: start-up and
    the re-derivation of the plan included), best of three.

Usage::

    .venv/bin/python benchmarks/page.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONVVIZ = str(Path(sys.executable).parent / "convviz")

CASES = [
    ("default clip (forward 6x6, 3x3)", ["forward"]),
    ("tiny_cnn network (--seed 4)", [str(ROOT / "examples" / "tiny_cnn.toml"), "--seed", "4"]),
]


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([CONVVIZ, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as private:
        folder = Path(private)
        for n, (name, args) in enumerate(CASES):
            video, timeline, page = (folder / f"{n}.mp4", folder / f"{n}.json",
                                     folder / f"{n}.html")
            run(["render", *args, "-q", "l", "-o", str(video), "--timeline", str(timeline)])
            seconds = min(run(["page", *args, "--timeline", str(timeline), "-o", str(page)])
                          for _ in range(3))
            text = page.read_text(encoding="utf-8")
            found = re.search(r'id="convviz-data">(.*?)</script>', text, re.S)
            formulas = len(json.loads(found.group(1))["formulas"]) if found else 0
            rows.append((name, video.stat().st_size, page.stat().st_size, formulas, seconds))
    print(f"{'clip':34} {'video bytes':>12} {'page bytes':>12} {'over video':>10} "
          f"{'formulas':>8} {'page s':>7}")
    for name, vbytes, pbytes, formulas, seconds in rows:
        print(f"{name:34} {vbytes:>12,} {pbytes:>12,} {pbytes / vbytes:>9.2f}x "
              f"{formulas:>8} {seconds:>7.2f}")


if __name__ == "__main__":
    main()
