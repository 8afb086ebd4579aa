"""End to end for every layer type: a real ``-q l`` render, checked by pixels.

For each type, one clip of its first steps is rendered with a timeline. In the middle of
each step's hold, the target cell's box must be filled teal and every highlighted cell's
box outlined yellow, at the pixel boxes the timeline gives; the boxes must lie inside the
frame. Which cells are highlighted is checked against index arithmetic by each type's own
tests; here the question is whether the video shows what the timeline says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convviz.layers import layer_type

from .test_render_e2e import (
    COLOUR_TOLERANCE,
    HEIGHT,
    WIDTH,
    border,
    decode,
    interior,
    teal_distance,
    yellow_share,
)

pytestmark = pytest.mark.slow

CLIPS = [
    pytest.param("conv-transpose2d", {"input": "3x3", "kernel": "2", "stride": "2"}, "forward",
                 id="conv-transpose2d-forward"),
    pytest.param("conv-transpose2d", {"input": "3x3", "kernel": "2", "stride": "2"},
                 "forward-scatter", id="conv-transpose2d-forward-scatter"),
    pytest.param("maxpool2d", {"input": "4x4", "kernel": "2"}, "forward", id="maxpool2d-forward"),
    pytest.param("maxpool2d", {"input": "4x4", "kernel": "2", "stride": "1"}, "da",
                 id="maxpool2d-da-overlapping"),
    pytest.param("avgpool2d", {"input": "2x4x4", "kernel": "2"}, "da", id="avgpool2d-da"),
    pytest.param("dense", {"input": "4", "outputs": "3"}, "dw", id="dense-dw"),
    pytest.param("dense", {"input": "40", "outputs": "3"}, "forward", id="dense-elided"),
    pytest.param("relu", {"input": "2x3x3"}, "da", id="relu-da"),
    pytest.param("sigmoid", {"input": "4"}, "forward", id="sigmoid-forward"),
    pytest.param("tanh", {"input": "3x3"}, "da", id="tanh-da"),
    pytest.param("flatten", {"input": "2x2x2"}, "forward", id="flatten-forward"),
    pytest.param("softmax-cross-entropy", {"input": "3", "target": "2"}, "da",
                 id="softmax-cross-entropy-da"),
    pytest.param("mse", {"input": "3"}, "forward", id="mse-forward"),
]


def _render(type_name: str, options: dict[str, str], op: str, folder: Path) -> dict[str, Any]:
    from convviz import render

    spec = layer_type(type_name).build(options)
    timeline = folder / f"{op}.json"
    render(spec, op, quality="l", output=folder / f"{op}.mp4", timeline=timeline, max_steps=2)
    doc: dict[str, Any] = json.loads(timeline.read_text(encoding="utf-8"))
    return doc


@pytest.mark.parametrize(("type_name", "options", "op"), CLIPS)
def test_clip_shows_the_timeline_highlights(tmp_path, type_name, options, op):
    doc = _render(type_name, options, op, tmp_path)
    assert doc["op"] == op
    assert (doc["width"], doc["height"]) == (WIDTH, HEIGHT)
    assert 1 <= len(doc["steps"]) <= 2
    for role, array in doc["arrays"].items():
        for key, (left, top, right, bottom) in array["cells"].items():
            assert 0 <= left < right <= WIDTH and 0 <= top < bottom <= HEIGHT, (role, key)
    fps = doc["fps"]
    wanted = {int((s["hold"][0] + s["hold"][1]) / 2 * fps): s for s in doc["steps"]}
    _, frames = decode(Path(doc["video"]), set(wanted))
    assert len(frames) == len(wanted)
    for n, step in wanted.items():
        frame = frames[n]
        cells = doc["arrays"]
        target = step["target"]
        box = cells[target["role"]]["cells"][",".join(map(str, target["index"]))]
        assert teal_distance(interior(frame, box)).max() <= COLOUR_TOLERANCE, (n, target)
        lit = 0
        for role, indices in step["highlights"].items():
            for index in indices:
                key = ",".join(map(str, index))
                share = yellow_share(border(frame, cells[role]["cells"][key]))
                assert share > 0.3, (n, role, key, share)
                lit += 1
        assert lit >= 1


def test_elided_vector_keeps_the_target_and_lights_the_ellipsis(tmp_path):
    doc = _render("dense", {"input": "40", "outputs": "3"}, "forward", tmp_path)
    boxes = doc["arrays"]["input"]["cells"]
    assert len(boxes) == 40  # every index has a box ...
    distinct = {tuple(b) for b in boxes.values()}
    assert len(distinct) < 40  # ... but elided ones share the ellipsis cell's box
    assert boxes["1"] != boxes["40"] and boxes["20"] == boxes["21"]
    heights = {round(b[3] - b[1]) for b in distinct}
    assert min(heights) >= 10  # cells stay big enough to read
    assert np.isfinite(doc["duration"])
