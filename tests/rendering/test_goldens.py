"""Frame goldens, in the manner of manim's ``frames_comparison``.

The scene runs its real ``construct`` with ``skip_animations`` (no frames drawn, nothing
written: ``dry_run``) and is stopped from ``on_step`` once step ``k`` is on screen; the
camera then draws that one frame, which is what the video shows during the step's hold.
It is compared with ``control_data/<name>.npz`` with a tolerance for font rasterisation
and antialiasing differences between systems.

Regenerate after an intended visual change with::

    CONVVIZ_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/rendering/test_goldens.py

and look at the PNGs written next to the pytest temporary directory before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from convviz.spec import ConvSpec

from .conftest import draw_frame, needs_latex, run_until_step

CONTROL = Path(__file__).parent / "control_data"
UPDATE = os.environ.get("CONVVIZ_UPDATE_GOLDENS") == "1"

WIDTH, HEIGHT = 480, 270

#: Mean absolute difference (0-255 levels, over all RGB values) allowed.
MEAN_TOLERANCE = 1.5
#: Share of pixels allowed to differ by more than 32 levels in some channel.
OFF_PIXELS_TOLERANCE = 0.004

GOLDENS = [
    pytest.param("forward_6x6_k3x3_step2", "forward", ConvSpec(), 2, id="forward-seed-step2"),
    pytest.param(
        "dw_5x5_k3x3_s2_p1_step1",
        "dw",
        ConvSpec(input_size=(5, 5), stride=2, padding=1),
        1,
        id="dw-stride2-pad1-step1",
    ),
    pytest.param("da-full_6x6_k3x3_step0", "da-full", ConvSpec(), 0, id="da-full-seed-step0"),
]


def frame_at_step(op: str, spec: ConvSpec, k: int, media: Path) -> np.ndarray:
    """RGB frame shown during the hold of step ``k`` (0-based)."""
    frame = draw_frame(run_until_step(op, spec, k, media, width=WIDTH, height=HEIGHT))
    assert frame.shape == (HEIGHT, WIDTH, 3)
    return frame


def save_png(frame: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(frame).save(path)


@needs_latex
@pytest.mark.parametrize(("name", "op", "spec", "k"), GOLDENS)
def test_frame_matches_golden(tmp_path, name, op, spec, k):
    frame = frame_at_step(op, spec, k, tmp_path / "media")
    control = CONTROL / f"{name}.npz"
    if UPDATE:
        CONTROL.mkdir(exist_ok=True)
        np.savez_compressed(control, frame_data=frame)
        save_png(frame, tmp_path.parent / f"{name}.png")
        pytest.skip(f"golden {control.name} written; look at {tmp_path.parent / name}.png")
    assert control.is_file(), f"no golden {control}; run with CONVVIZ_UPDATE_GOLDENS=1"
    with np.load(control) as data:
        expected = data["frame_data"]
    assert frame.shape == expected.shape
    diff = np.abs(frame.astype(np.int16) - expected.astype(np.int16))
    mean = float(diff.mean())
    off = float((diff.max(axis=2) > 32).mean())
    if mean > MEAN_TOLERANCE or off > OFF_PIXELS_TOLERANCE:
        save_png(frame, tmp_path / f"{name}.actual.png")
        save_png(expected, tmp_path / f"{name}.expected.png")
        save_png((diff.max(axis=2, keepdims=True).repeat(3, axis=2) * 4).clip(0, 255)
                 .astype(np.uint8), tmp_path / f"{name}.diff.png")
    assert mean <= MEAN_TOLERANCE, f"mean abs diff {mean:.3f}; see {tmp_path}"
    assert off <= OFF_PIXELS_TOLERANCE, f"{off:.4%} of pixels off by > 32; see {tmp_path}"


@needs_latex
def test_golden_frame_is_the_hold_frame_of_the_video(tmp_path):
    """The golden technique shows what the video shows: same cells lit, same place.

    Checked cheaply on the forward golden: the teal target cell ``z[1,3]`` (step 2) is in
    the output grid's first row, third column of the frame drawn at step 2, and not at
    step 0.
    """
    spec = ConvSpec()
    step0 = frame_at_step("forward", spec, 0, tmp_path / "a")
    step2 = frame_at_step("forward", spec, 2, tmp_path / "b")
    teal = np.array([69, 156, 134])

    def teal_share(frame: np.ndarray) -> float:
        close = np.abs(frame.astype(int) - teal).max(axis=2) < 25
        return float(close.mean())

    assert teal_share(step0) > 0.002 and teal_share(step2) > 0.002
    moved = np.abs(step0.astype(int) - step2.astype(int)).max(axis=2) > 32
    assert moved.any()
