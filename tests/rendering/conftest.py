"""Shared fixtures of the rendering tests: layers, manim configs, scene building, LaTeX."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from convviz.derivation import Derivation, derive
from convviz.spec import ConvSpec

#: Layers the structural tests walk through, with readable ids.
SPECS: dict[str, ConvSpec] = {
    "seed-6x6-k3x3": ConvSpec(),
    "5x5-stride2-pad1": ConvSpec(input_size=(5, 5), stride=2, padding=1),
    "7x7-dilation2": ConvSpec(input_size=(7, 7), dilation=2),
    "5x6-k2x3-stride2x1": ConvSpec(input_size=(5, 6), kernel_size=(2, 3), stride=(2, 1)),
    "2ch-2f-4x4-k2x2": ConvSpec(input_size=(4, 4), kernel_size=(2, 2), channels=2, filters=2),
    "no-bias-5x5": ConvSpec(input_size=(5, 5), bias=False),
    # beyond the brief: mixed per-axis settings and a single leading axis on the kernel
    "4x6-k2x2-pad1x0-dil1x2-stride1x2": ConvSpec(
        input_size=(4, 6), kernel_size=(2, 2), padding=(1, 0), dilation=(1, 2), stride=(1, 2)
    ),
    "2ch-1f-5x5-stride2-pad1": ConvSpec(input_size=(5, 5), channels=2, stride=2, padding=1),
    "1ch-3f-5x5-k2x2-pad0x1-stride1x3": ConvSpec(
        input_size=(5, 5), kernel_size=(2, 2), filters=3, padding=(0, 1), stride=(1, 3)
    ),
}

OPS = ("forward", "dw", "da", "db", "da-full")

HAVE_LATEX = shutil.which("latex") is not None and shutil.which("dvisvgm") is not None

needs_latex = pytest.mark.skipif(not HAVE_LATEX, reason="LaTeX not installed (run make setup)")


@functools.cache
def derivation_of(spec: ConvSpec) -> Derivation:
    """Derive each layer once per test session (scenes only read the derivation)."""
    return derive(spec)


@contextmanager
def scene_config(media_dir: Path, *, width: int = 480, height: int = 270,
                 **extra: Any) -> Iterator[None]:
    """A small manim config that writes nothing (``dry_run``) and keeps LaTeX cached."""
    from manim import tempconfig

    from convviz.rendering.output import default_tex_cache

    tex = default_tex_cache()
    settings = {
        "dry_run": True,
        "pixel_width": width,
        "pixel_height": height,
        "frame_rate": 15,
        "media_dir": str(media_dir),
        "tex_dir": str(tex),
        "text_dir": str(tex.parent / "text"),
        "verbosity": "WARNING",
        "progress_bar": "none",
        "disable_caching": True,
        **extra,
    }
    with tempconfig(settings):
        yield


def fake_typeset(strings: Sequence[str], *, color: str = "#FFFFFF", **_: Any) -> list[Any]:
    """Stand-in for :func:`convviz.rendering.typeset.typeset` that needs no LaTeX.

    Each snippet becomes a rectangle sized roughly like the text and remembers its source
    in ``.tex``, so tests can tell which label ended up in which cell.
    """
    from manim import Rectangle, VMobject

    out: list[Any] = []
    for tex in strings:
        if not tex:
            mob: Any = VMobject()
        else:
            mob = Rectangle(width=0.12 * len(tex), height=0.3)
            mob.set_fill(color, opacity=1.0)
        mob.tex = tex
        out.append(mob)
    return out


@pytest.fixture
def no_latex_typeset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make scenes typeset with :func:`fake_typeset` (fast, no LaTeX needed)."""
    import convviz.rendering.scenes as scenes

    monkeypatch.setattr(scenes, "typeset", fake_typeset)


@pytest.fixture
def build_scene(tmp_path: Path):
    """``build_scene(op, spec, **kwargs)``: a scene, built (planned, laid out) but not rendered."""
    from convviz.rendering.scenes import scene_class

    def make(op: str, spec: ConvSpec, **kwargs: Any) -> Any:
        with scene_config(tmp_path / "media"):
            scene = scene_class(op, spec.TYPE)(spec, derivation=derivation_of(spec), **kwargs)
            scene.build()
        return scene

    return make


class StopScene(Exception):
    """Raised from ``on_step`` to stop a scene while a step is on screen."""


def run_until_step(op: str, spec: ConvSpec, k: int, media: Path, *, width: int = 480,
                   height: int = 270, **kwargs: Any) -> Any:
    """Run the scene's real ``construct`` without drawing frames; stop once step ``k`` shows.

    Like manim's ``frames_comparison`` (last-frame mode): ``skip_animations`` plays every
    animation to its end state without rendering, ``dry_run`` writes no file. The returned
    scene is in the state of step ``k``'s hold (0-based), inside its manim config no more,
    but ``scene.renderer`` can still draw it (see :func:`draw_frame`).
    """
    from convviz.rendering.scenes import scene_class

    def stop(done: int, total: int) -> None:
        if done == k + 1:
            raise StopScene

    with scene_config(media, width=width, height=height):
        scene = scene_class(op)(
            spec, derivation=derivation_of(spec), on_step=stop, skip_animations=True, **kwargs
        )
        with pytest.raises(StopScene):
            scene.render()
    return scene


def draw_frame(scene: Any) -> Any:
    """Draw the scene's current state with its camera; return the RGB pixel array."""
    import numpy as np

    scene.renderer.static_image = None
    scene.renderer.update_frame(scene, ignore_skipping=True)
    frame = np.array(scene.renderer.get_frame())
    return frame[:, :, :3].copy()
