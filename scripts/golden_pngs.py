"""Write a PNG view of every frame golden, for review in a diff or a browser.

The goldens of ``tests/rendering/test_goldens.py`` are ``control_data/<name>.npz`` arrays
(``frame_data``: height x width x RGB). This writes ``control_data/png/<name>.png`` for
each, so a change to a golden can be looked at (and committed) as a picture::

    .venv/bin/python scripts/golden_pngs.py            # every golden
    .venv/bin/python scripts/golden_pngs.py --check    # exit 1 if a PNG is missing or stale

Run it after regenerating goldens (``CONVVIZ_UPDATE_GOLDENS=1``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CONTROL = Path(__file__).resolve().parent.parent / "tests" / "rendering" / "control_data"


def golden_frame(path: Path) -> np.ndarray:
    """The RGB frame stored in a golden ``.npz``."""
    with np.load(path) as data:
        frame = data["frame_data"]
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"{path}: expected an HxWx3 uint8 frame, got {frame.shape} {frame.dtype}")
    return frame


def png_path(golden: Path) -> Path:
    """Where the PNG of a golden goes: ``control_data/png/<name>.png``."""
    return golden.parent / "png" / f"{golden.stem}.png"


def is_current(golden: Path) -> bool:
    """Whether the golden's PNG exists and shows exactly its pixels."""
    png = png_path(golden)
    if not png.is_file():
        return False
    with Image.open(png) as image:
        return np.array_equal(np.asarray(image.convert("RGB")), golden_frame(golden))


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check``, compare) the PNG of every golden; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--control", type=Path, default=CONTROL, help="golden directory")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; fail if a PNG is missing or out of date")
    args = parser.parse_args(argv)
    goldens = sorted(args.control.glob("*.npz"))
    if not goldens:
        print(f"no goldens in {args.control}", file=sys.stderr)
        return 1
    stale = []
    for golden in goldens:
        png = png_path(golden)
        if args.check:
            if not is_current(golden):
                stale.append(png)
            continue
        png.parent.mkdir(exist_ok=True)
        Image.fromarray(golden_frame(golden)).save(png, optimize=True)
        print(png.relative_to(Path.cwd()) if png.is_relative_to(Path.cwd()) else png)
    for png in stale:
        print(f"missing or stale: {png}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
