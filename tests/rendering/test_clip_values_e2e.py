"""End to end: ``-q l`` renders drawn at numbers, checked by pixels and by the evaluator.

The timeline's numbers must be the numbers ``convviz evaluate`` computes for the same
layer as a one-layer network with the same seed; the frames must show the target teal in
its timeline box, and max pooling's winner outlined in the target colour.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from convviz.cli import main
from convviz.rendering.theme import DARK

from .test_render_e2e import TEAL_ON_BLACK, border, decode, interior

pytestmark = pytest.mark.slow


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def _evaluate(tmp_path: Path, network: str, seed: int) -> dict[str, Any]:
    path = tmp_path / "net.toml"
    path.write_text(network, encoding="utf-8")
    return json.loads(_cli("evaluate", str(path), "--seed", str(seed), "--json").stdout)


def _hold_frames(video: Path, doc: dict[str, Any]) -> dict[int, np.ndarray]:
    wanted = {round((s["hold"][0] + s["hold"][1]) / 2 * doc["fps"]): k
              for k, s in enumerate(doc["steps"])}
    _, frames = decode(video, set(wanted))
    return {wanted[n]: frame for n, frame in frames.items()}


def _values(doc: dict[str, Any], role: str) -> np.ndarray:
    array = doc["arrays"][role]
    shape = array["shape"]
    out = np.zeros(shape)
    for key, value in array["values"].items():
        out[tuple(int(i) - 1 for i in key.split(","))] = value
    return out


def test_seeded_conv2d_forward_shows_the_evaluated_numbers(tmp_path: Path) -> None:
    video, timeline = tmp_path / "forward.mp4", tmp_path / "forward.json"
    _cli("render", "forward", "--seed", "0", "-q", "l", "--max-steps", "2", "-o", str(video),
         "--timeline", str(timeline))
    doc = json.loads(timeline.read_text(encoding="utf-8"))
    # every key of a timeline without numbers, plus the numbers
    assert {"video", "op", "layer", "width", "height", "fps", "duration", "arrays",
            "steps"} <= set(doc) and doc["show"] == "values"
    for array in doc["arrays"].values():
        assert {"label", "name", "shape", "cells", "values"} <= set(array)
        assert set(array["values"]) == set(array["cells"])
    evaluated = _evaluate(tmp_path, 'input = "1x6x6"\n[[layer]]\ntype = "conv2d"\n', 0)
    layer = evaluated["layers"][0]
    z = np.asarray(layer["output"]["value"]).reshape(4, 4)
    assert np.array_equal(_values(doc, "output"), z)
    assert np.array_equal(_values(doc, "input"), np.asarray(evaluated["input"]["value"])[0])
    kernel = np.asarray(layer["params"]["weight"]["value"])[0, 0]
    assert np.array_equal(_values(doc, "kernel"), kernel)
    for k, step in enumerate(doc["steps"]):
        assert step["value"] == z.reshape(-1)[k]
    for k, frame in _hold_frames(video, doc).items():
        key = ",".join(str(i) for i in doc["steps"][k]["target"]["index"])
        box = doc["arrays"]["output"]["cells"][key]
        pixels = interior(frame, box, margin=0.1)
        # the cell is teal where no digit is drawn (the number sits on the teal fill)
        teal = np.abs(pixels - TEAL_ON_BLACK).max(axis=1) < 30
        assert teal.mean() > 0.5, f"step {k + 1}: z[{key}] not teal"


def _teal_share(pixels: np.ndarray, teal: np.ndarray) -> float:
    return float((np.abs(pixels - teal).max(axis=1) < 40).mean())


def test_seeded_maxpool_outlines_the_winner_in_the_target_colour(tmp_path: Path) -> None:
    video, timeline = tmp_path / "pool.mp4", tmp_path / "pool.json"
    _cli("render", "da", "--type", "maxpool2d", "--seed", "1", "-q", "l", "--max-steps", "2",
         "-o", str(video), "--timeline", str(timeline))
    doc = json.loads(timeline.read_text(encoding="utf-8"))
    evaluated = _evaluate(tmp_path, 'input = "1x4x4"\n[[layer]]\ntype = "maxpool2d"\n'
                                    'kernel = "2x2"\n', 1)
    grads = np.asarray(evaluated["input"]["grad"])[0]
    assert np.array_equal(_values(doc, "grad_input"), grads)
    x = np.asarray(evaluated["input"]["value"])[0]
    teal = np.array([int(DARK.target.stroke_color[i:i + 2], 16) for i in (1, 3, 5)], float)
    for k, frame in _hold_frames(video, doc).items():
        step = doc["steps"][k]
        (winner,) = step["marks"]["input"]
        window = [tuple(i) for i in step["highlights"]["input"]]
        values = [x[r - 1, c - 1] for r, c in window]
        assert tuple(winner) == window[values.index(max(values))]  # the first maximum
        box = doc["arrays"]["input"]["cells"][",".join(str(i) for i in winner)]
        share = _teal_share(border(frame, box, width=2), teal)
        assert share > 0.4, f"step {k + 1}"
        for other in window:  # the other window cells are outlined yellow (a neighbour's
            if other != tuple(winner):  # ring touches the winner's thick outline)
                ring = border(frame, doc["arrays"]["input"]["cells"][
                    ",".join(str(i) for i in other)], width=2)
                assert _teal_share(ring, teal) < share / 2


def test_seeded_png_and_storyboard(tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "relu.png"
    _cli("render", "da", "--type", "relu", "--seed", "2", "--format", "png", "-o", str(png),
         "--max-steps", "2", "--show", "both")
    with Image.open(png) as image:
        assert image.size == (854, 480)
    sheet = tmp_path / "sheet.png"
    _cli("storyboard", "softmax", "--type", "softmax-cross-entropy", "--seed", "0",
         "-o", str(sheet), "--max-steps", "2")
    assert sheet.is_file()
