"""Frame goldens, in the manner of manim's ``frames_comparison``.

The scene runs its real ``construct`` with ``skip_animations`` (no frames drawn, nothing
written: ``dry_run``) and is stopped from ``on_step`` once step ``k`` is on screen; the
camera then draws that one frame, which is what the video shows during the step's hold.
It is compared with ``control_data/<name>.npz`` with a tolerance for font rasterisation
and antialiasing differences between systems.

Regenerate after an intended visual change with::

    CONVVIZ_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/rendering/test_goldens.py

and look at the PNGs written next to the pytest temporary directory before committing;
then ``.venv/bin/python scripts/golden_pngs.py`` refreshes ``control_data/png/``, the
committed picture of every golden.
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
    # da[2,2]: an inner input cell, reached by four outputs through four kernel cells.
    pytest.param("da_6x6_k3x3_step7", "da", ConvSpec(), 7, id="da-seed-step7"),
    # db[2]: the second filter's bias gradient, the sum of its own dz slice.
    pytest.param("db_5x5_k3x3_f2_step1", "db", ConvSpec(input_size=(5, 5), filters=2), 1,
                 id="db-2filters-step1"),
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


def cell_pixels(scene, role: str, index: str) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` pixel box of a cell in the scene's drawn frame.

    From the scene's ``cell_boxes()`` (scene units) and its camera frame, mapped as the
    timeline maps them, and shrunk by 3 pixels on each side to stay off the outline.
    """
    from convviz.rendering.output import box_to_pixels

    camera = scene.renderer.camera
    left, top, right, bottom = box_to_pixels(
        scene.cell_boxes()[role][index].corners(),
        pixel_width=WIDTH,
        pixel_height=HEIGHT,
        frame_width=float(camera.frame_width),
        frame_height=float(camera.frame_height),
    )
    return round(left) + 3, round(top) + 3, round(right) - 3, round(bottom) - 3


TEAL = np.array([69, 156, 134])  # the target fill (TEAL_C at 0.75 over black)


def teal_share(patch: np.ndarray) -> float:
    close = np.abs(patch.astype(int) - TEAL).max(axis=2) < 25
    return float(close.mean())


@needs_latex
def test_golden_frame_is_the_hold_frame_of_the_video(tmp_path):
    """The golden technique shows what the video shows: the lit cell is where it is drawn.

    Checked on the forward golden's layer: inside the box of the target cell ``z[1,3]``
    (step 2, 0-based) the frame is teal at step 2, and not at steps 0 and 1, when
    ``z[1,1]`` and ``z[1,2]`` are the targets; and the boxes of those are teal at their
    own steps only.
    """
    spec = ConvSpec()
    scenes = [run_until_step("forward", spec, k, tmp_path / str(k), width=WIDTH,
                             height=HEIGHT) for k in range(3)]
    frames = [draw_frame(scene) for scene in scenes]
    for frame in frames:
        assert frame.shape == (HEIGHT, WIDTH, 3)
    for k, index in enumerate(("1,1", "1,2", "1,3")):
        x0, y0, x1, y1 = cell_pixels(scenes[k], "output", index)
        assert x1 - x0 >= 6 and y1 - y0 >= 6, (x0, y0, x1, y1)
        # The output grid does not move between steps.
        assert all(cell_pixels(s, "output", index) == (x0, y0, x1, y1) for s in scenes)
        for j, frame in enumerate(frames):
            share = teal_share(frame[y0:y1, x0:x1])
            if j == k:
                assert share > 0.6, f"z[{index}] at its step {k}: {share:.0%} teal"
            else:
                assert share < 0.05, f"z[{index}] at step {j}: {share:.0%} teal"
    # The golden of step 2 is that frame: its z[1,3] box is teal too.
    with np.load(CONTROL / "forward_6x6_k3x3_step2.npz") as data:
        golden = data["frame_data"]
    x0, y0, x1, y1 = cell_pixels(scenes[2], "output", "1,3")
    assert teal_share(golden[y0:y1, x0:x1]) > 0.6
