"""End to end: real ``-q l`` renders, checked by metadata and by sampled frames.

One short render per clip (first steps only). Encoders differ between systems, so the
videos are not compared with goldens: the stream is checked (codec, size, frame count)
and, for every step, one decoded frame from the middle of the step's ``hold`` interval
is looked at inside the timeline's pixel boxes: the target cell is filled teal, operand
cells have a yellow outline, and a cell away from both has neither.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convviz.rendering.theme import DARK
from convviz.spec import ConvSpec

from .conftest import OPS
from .expected import expected_steps

pytestmark = pytest.mark.slow

SEED = ConvSpec()
MAX_STEPS = 3
WIDTH, HEIGHT, FPS = 854, 480, 15


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


#: The target's fill as it should look: teal at the theme's opacity over the background.
TEAL_ON_BLACK = (
    DARK.target.fill_opacity * _rgb(DARK.target.fill_color)
    + (1 - DARK.target.fill_opacity) * _rgb(DARK.background)
)
#: Allowed difference per channel (yuv420p chroma subsampling, h264 quantisation).
COLOUR_TOLERANCE = 18


@dataclass
class Clip:
    video: Path
    timeline_text: str
    chapters_text: str

    @property
    def timeline(self) -> dict[str, Any]:
        return json.loads(self.timeline_text)


def _render(spec: ConvSpec, op: str, folder: Path, **kwargs: Any) -> Clip:
    from convviz import render

    video = render(
        spec,
        op,
        quality="l",
        output=folder / f"{op}.mp4",
        timeline=folder / f"{op}.json",
        chapters=folder / f"{op}.vtt",
        max_steps=MAX_STEPS,
        **kwargs,
    )
    return Clip(
        video,
        (folder / f"{op}.json").read_text(encoding="utf-8"),
        (folder / f"{op}.vtt").read_text(encoding="utf-8"),
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    folder = tmp_path_factory.mktemp("clips")
    return {op: _render(SEED, op, folder) for op in OPS}


def decode(video: Path, wanted: set[int]) -> tuple[int, dict[int, np.ndarray]]:
    """Number of frames in the video, and the wanted frames as RGB arrays."""
    import av

    frames = {}
    count = 0
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            if count in wanted:
                frames[count] = frame.to_ndarray(format="rgb24")
            count += 1
    return count, frames


def box_pixels(box: list[float]) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    return round(left), round(top), round(right), round(bottom)


def interior(frame: np.ndarray, box: list[float], margin: float = 0.2) -> np.ndarray:
    """Pixels well inside a cell (its outline excluded), as an (n, 3) array."""
    left, top, right, bottom = box
    dx, dy = (right - left) * margin, (bottom - top) * margin
    sub = frame[round(top + dy):round(bottom - dy), round(left + dx):round(right - dx)]
    return sub.reshape(-1, 3).astype(float)


def border(frame: np.ndarray, box: list[float], width: int = 2) -> np.ndarray:
    """Pixels within ``width`` of the cell's outline, as an (n, 3) array."""
    left, top, right, bottom = box_pixels(box)
    h, w = frame.shape[:2]
    mask = np.zeros((h, w), dtype=bool)
    y0, y1 = max(top - width, 0), min(bottom + width + 1, h)
    x0, x1 = max(left - width, 0), min(right + width + 1, w)
    mask[y0:y1, x0:x1] = True
    inner_y0, inner_y1 = top + width + 1, bottom - width
    inner_x0, inner_x1 = left + width + 1, right - width
    if inner_y1 > inner_y0 and inner_x1 > inner_x0:
        mask[inner_y0:inner_y1, inner_x0:inner_x1] = False
    return frame[mask].astype(float)


def yellow_share(pixels: np.ndarray) -> float:
    """Share of yellow-ish pixels: bright, red and green well above blue.

    Pale yellow counts: where an operand's outline lies on the edge of the kernel window,
    the (white) window outline is drawn over it and only tints it.
    """
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    yellow = (r > 170) & (g > 140) & (r - b > 35) & (g - b > 25)
    return float(yellow.mean())


def teal_distance(pixels: np.ndarray) -> np.ndarray:
    median = np.median(pixels, axis=0)
    return np.abs(median - TEAL_ON_BLACK)


def _key(index: tuple[int, ...] | list[int]) -> str:
    return ",".join(str(i) for i in index)


def _overlaps(a: list[float], b: list[float], pad: float) -> bool:
    return not (a[2] + pad < b[0] or b[2] + pad < a[0] or a[3] + pad < b[1] or b[3] + pad < a[1])


def quiet_cell(doc: dict[str, Any], lit: list[tuple[str, str]]) -> tuple[str, str] | None:
    """A cell that is not lit and does not touch a lit cell (its outline is its own)."""
    lit_boxes = [doc["arrays"][role]["cells"][key] for role, key in lit]
    for role, array in doc["arrays"].items():
        for key, box in array["cells"].items():
            if (role, key) in lit:
                continue
            if not any(_overlaps(box, other, 6) for other in lit_boxes):
                return role, key
    return None


@pytest.mark.parametrize("op", OPS)
def test_stream_metadata(clips, op):
    import av

    clip = clips[op]
    doc = clip.timeline
    with av.open(str(clip.video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (WIDTH, HEIGHT)
        assert stream.guessed_rate == FPS
    count, _ = decode(clip.video, set())
    assert abs(count - doc["duration"] * doc["fps"]) <= 2, (count, doc["duration"])
    assert (doc["width"], doc["height"], doc["fps"], doc["op"]) == (WIDTH, HEIGHT, FPS, op)
    assert doc["video"] == str(clip.video)


@pytest.mark.parametrize("op", OPS)
def test_timeline_steps_follow_the_formulas_and_the_clock(clips, op):
    doc = clips[op].timeline
    steps = expected_steps(SEED, op)[:MAX_STEPS]
    assert len(doc["steps"]) == len(steps)
    previous_end = 0.0
    for got, want in zip(doc["steps"], steps, strict=True):
        assert (got["target"]["role"], tuple(got["target"]["index"])) == want.target
        highlights = {role: {tuple(i) for i in idx} for role, idx in got["highlights"].items()}
        assert {r: v for r, v in highlights.items() if v} == {
            r: set(v) for r, v in want.operands.items()
        }
        assert previous_end <= got["start"] < got["hold"][0] < got["hold"][1] == got["end"]
        # one step lasts step_time (1 s) give or take a frame
        assert got["end"] - got["start"] == pytest.approx(1.0, abs=1.01 / FPS)
        previous_end = got["end"]
    assert doc["duration"] >= previous_end
    for role, array in doc["arrays"].items():
        for key, (left, top, right, bottom) in array["cells"].items():
            assert 0 <= left < right <= WIDTH and 0 <= top < bottom <= HEIGHT, (role, key)


@pytest.mark.parametrize("op", OPS)
def test_hold_frames_show_the_highlights_in_the_timeline_boxes(clips, op):
    clip = clips[op]
    doc = clip.timeline
    fps = doc["fps"]
    wanted = {int((s["hold"][0] + s["hold"][1]) / 2 * fps): s for s in doc["steps"]}
    _, frames = decode(clip.video, set(wanted))
    assert len(frames) == len(wanted)
    checked_quiet = 0
    for n, step in wanted.items():
        frame = frames[n]
        cells = doc["arrays"]
        target_role, target_key = step["target"]["role"], _key(step["target"]["index"])
        target_box = cells[target_role]["cells"][target_key]
        off = teal_distance(interior(frame, target_box))
        assert off.max() <= COLOUR_TOLERANCE, (
            f"frame {n}: target {target_role}[{target_key}] interior median "
            f"{np.median(interior(frame, target_box), axis=0)}, expected ~{TEAL_ON_BLACK}"
        )
        lit = [(target_role, target_key)]
        for role, indices in step["highlights"].items():
            for index in indices:
                key = _key(index)
                lit.append((role, key))
                share = yellow_share(border(frame, cells[role]["cells"][key]))
                assert share > 0.3, f"frame {n}: operand {role}[{key}] outline {share:.0%} yellow"
        quiet = quiet_cell(doc, lit)
        if quiet is None:
            assert op == "db"  # every dz is an operand of db
            continue
        role, key = quiet
        box = cells[role]["cells"][key]
        assert teal_distance(interior(frame, box)).max() > 60, f"frame {n}: {role}[{key}] teal"
        assert yellow_share(border(frame, box)) < 0.03, f"frame {n}: {role}[{key}] yellow"
        checked_quiet += 1
    assert checked_quiet or op == "db"


def test_timeline_and_chapters_are_deterministic(clips, tmp_path):
    clip = clips["forward"]
    again = _render(SEED, "forward", clip.video.parent)
    assert again.timeline_text == clip.timeline_text
    assert again.chapters_text == clip.chapters_text


_CUE_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)$")


def _seconds(parts: tuple[str, ...]) -> float:
    h, m, s, ms = (int(p) for p in parts)
    return h * 3600 + m * 60 + s + ms / 1000


@pytest.mark.parametrize("op", OPS)
def test_chapters_are_webvtt_with_one_cue_per_step(clips, op):
    text = clips[op].chapters_text
    doc = clips[op].timeline
    assert text.startswith("WEBVTT\n\n")
    assert text.endswith("\n") and "\r" not in text
    blocks = text.rstrip("\n").split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = blocks[1:]
    assert len(cues) == len(doc["steps"])
    for number, (cue, step) in enumerate(zip(cues, doc["steps"], strict=True), start=1):
        lines = cue.split("\n")
        assert len(lines) == 3, cue
        assert lines[0] == str(number)
        match = _CUE_TIME.match(lines[1])
        assert match, lines[1]
        start, end = _seconds(match.groups()[:4]), _seconds(match.groups()[4:])
        assert start == pytest.approx(step["start"], abs=1e-3)
        assert end == pytest.approx(step["end"], abs=1e-3)
        target = step["target"]
        assert lines[2].endswith(f"[{_key(target['index'])}]") or not target["index"], lines[2]
        assert "-->" not in lines[2]


def test_png_is_one_854x480_frame(tmp_path):
    from PIL import Image

    from convviz import render

    out = render(SEED, "db", output=tmp_path / "db.png")
    assert out == tmp_path / "db.png"
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (WIDTH, HEIGHT)


def test_gif_is_an_animated_854x480_gif(tmp_path):
    import av

    from convviz import render

    out = render(SEED, "db", output=tmp_path / "db.gif")
    assert out.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "gif"
        assert (stream.width, stream.height) == (WIDTH, HEIGHT)
    count, _ = decode(out, set())
    assert count > 10


def test_transparent_mov_has_an_alpha_channel(tmp_path):
    import av

    from convviz import render

    out = render(SEED, "db", output=tmp_path / "db.mov", transparent=True)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "qtrle"
        assert "a" in stream.codec_context.pix_fmt  # argb
        frame = next(container.decode(video=0)).to_ndarray(format="rgba")
    assert frame[0, 0, 3] == 0  # background is see-through
    assert frame[..., 3].max() == 255  # drawn cells are opaque


def test_transparent_png_has_a_clear_background(tmp_path):
    from PIL import Image

    from convviz import render

    out = render(SEED, "db", output=tmp_path / "db.png", transparent=True)
    with Image.open(out) as image:
        assert image.mode == "RGBA" and image.size == (WIDTH, HEIGHT)
        alpha = np.array(image)[..., 3]
    assert alpha[0, 0] == 0 and alpha.max() == 255


@pytest.mark.parametrize("op", ["forward", "da-full"])
def test_golden_technique_draws_what_the_video_shows(clips, tmp_path, op):
    """The frame the goldens use (construct run without drawing, stopped at a step) is the
    video's hold frame, up to h264 noise."""
    from .conftest import draw_frame, run_until_step

    doc = clips[op].timeline
    k = len(doc["steps"]) - 1
    step = doc["steps"][k]
    n = int((step["hold"][0] + step["hold"][1]) / 2 * doc["fps"])
    _, frames = decode(clips[op].video, {n})
    drawn = draw_frame(run_until_step(op, SEED, k, tmp_path, width=WIDTH, height=HEIGHT))
    diff = np.abs(drawn.astype(int) - frames[n].astype(int))
    off = float((diff.max(axis=2) > 64).mean())
    assert diff.mean() < 3.0
    assert off < 0.002
