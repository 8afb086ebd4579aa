"""The render speed-ups change no pixel: one segment, path cache, cached glyph outlines."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convviz import ConvSpec

needs_latex = pytest.mark.skipif(
    shutil.which("latex") is None or shutil.which("dvisvgm") is None, reason="needs LaTeX"
)


def _frames(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spec: ConvSpec, op: str,
            *, plain: bool, steps: int = 3, partial: list[int] | None = None) -> np.ndarray:
    """Every frame handed to the encoder (before compression) for a tiny render."""
    from manim import Camera
    from manim.scene import scene_file_writer as sfw

    from convviz.rendering.output import render_scene
    from convviz.rendering.scenes import scene_class

    frames: list[np.ndarray] = []
    original = sfw.SceneFileWriter.write_frame

    def keep(self: Any, pixels: np.ndarray, *, repeat: int = 1) -> None:
        frames.extend([pixels.copy()] * repeat)
        original(self, pixels, repeat=repeat)

    with monkeypatch.context() as patch:
        patch.setattr(sfw.SceneFileWriter, "write_frame", keep)
        cls = scene_class(op)
        kwargs: dict[str, Any] = {"max_steps": steps}
        if partial is not None:
            from convviz.rendering import segment

            redraw = segment.OneSegmentScene._redraw_regions

            def counting(self: Any, *args: Any) -> None:
                partial.append(1)
                redraw(self, *args)

            patch.setattr(segment.OneSegmentScene, "_redraw_regions", counting)
        if plain:
            # manim's own loop and camera: one segment per play and wait.
            patch.setattr(cls, "one_segment", lambda self, body: body())
            kwargs["camera_class"] = Camera
        render_scene(
            lambda: cls(spec, **kwargs),
            tmp_path / f"{op}-{plain}.mp4",
            quality="l",
            overrides={"pixel_width": 320, "pixel_height": 180},
        )
    return np.stack(frames)


@pytest.mark.slow
@needs_latex
@pytest.mark.parametrize(
    ("op", "spec"),
    [
        ("forward", ConvSpec()),
        ("forward", ConvSpec(padding=1)),
        ("da-full", ConvSpec()),
    ],
    ids=["forward", "forward-padded", "da-full-rotation"],
)
def test_one_segment_draws_the_frames_manim_draws(monkeypatch, tmp_path, op, spec):
    fast = _frames(monkeypatch, tmp_path, spec, op, plain=False)
    plain = _frames(monkeypatch, tmp_path, spec, op, plain=True)
    assert fast.shape == plain.shape
    assert np.array_equal(fast, plain)


@pytest.mark.slow
@needs_latex
@pytest.mark.parametrize(
    ("op", "spec"),
    [
        ("forward", ConvSpec(input_size=(5, 5), channels=2, filters=2, stride=2, padding=1)),
        ("dw", ConvSpec(input_size=(5, 5), dilation=2)),
    ],
    ids=["forward-channels-filters", "dw-dilated"],
)
def test_still_images_redrawn_in_parts_match_manims(monkeypatch, tmp_path, op, spec):
    """Between steps only the changed regions of the still image are drawn again."""
    partial: list[int] = []
    fast = _frames(monkeypatch, tmp_path, spec, op, plain=False, steps=6, partial=partial)
    plain = _frames(monkeypatch, tmp_path, spec, op, plain=True, steps=6)
    assert len(partial) >= 4  # the partial redraw really ran, at (almost) every step
    assert fast.shape == plain.shape
    assert np.array_equal(fast, plain)


@needs_latex
def test_cached_outlines_are_the_parsed_ones(tmp_path, monkeypatch):
    import manim.utils.tex_file_writing as tfw
    from manim import tempconfig

    from convviz.rendering.typeset import typeset

    strings = ["{a^{[1]}}_{1,2}", r"z = \sum_i w_i", "0", ""]
    with tempconfig({"tex_dir": str(tmp_path / "tex")}):
        first = typeset(strings, color="#ABCDEF")
        calls: list[Any] = []
        monkeypatch.setattr(tfw, "compile_tex", lambda *a, **k: calls.append(a))
        second = typeset(strings, color="#ABCDEF")
    assert calls == []  # no LaTeX the second time
    assert (tmp_path / "tex-outlines").is_dir()
    for a, b in zip(first, second, strict=True):
        pa = [m.points for m in a.family_members_with_points()]
        pb = [m.points for m in b.family_members_with_points()]
        assert len(pa) == len(pb)
        assert all(np.array_equal(x, y) for x, y in zip(pa, pb, strict=True))
        assert [m.get_fill_color().to_hex() for m in b.family_members_with_points()] == [
            m.get_fill_color().to_hex() for m in a.family_members_with_points()
        ]


def test_restyle_fast_path_equals_set_fill_and_set_stroke():
    """The transition's direct array writes give what manim's setters give, bit for bit."""
    from manim import ManimColor, Square

    from convviz.rendering.scenes import _Restyle

    rng = np.random.default_rng(1)
    for _ in range(100):
        fast, reference = Square(), Square()
        colours = [f"#{int(rng.integers(0, 2**24)):06X}" for _ in range(4)]
        before = (colours[0], float(rng.random()), colours[1], float(rng.random() * 4))
        after = (colours[2], float(rng.random()), colours[3], float(rng.random() * 4))
        for square in (fast, reference):
            square.set_fill(before[0], opacity=before[1]).set_stroke(before[2], width=before[3])
        restyle = _Restyle([(fast, before, after)], [], [], run_time=0.25)
        alpha = float(rng.random())
        restyle.interpolate_mobject(alpha)
        t = restyle.rate_func(alpha)
        f0, f1, s0, s1 = map(ManimColor, (before[0], after[0], before[2], after[2]))
        reference.set_fill(f0.interpolate(f1, t), opacity=before[1] + (after[1] - before[1]) * t)
        reference.set_stroke(s0.interpolate(s1, t), width=before[3] + (after[3] - before[3]) * t)
        assert np.array_equal(fast.fill_rgbas, reference.fill_rgbas)
        assert np.array_equal(fast.stroke_rgbas, reference.stroke_rgbas)
        assert fast.stroke_width == reference.stroke_width
        assert fast.fill_opacity == reference.fill_opacity
