"""``convviz.render``: one call from a layer spec to a video file (plus timeline, chapters)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convviz.layers import layer_type
from convviz.rendering.output import (
    FORMATS,
    QUALITIES,
    Chapter,
    RenderError,
    atomic_write_text,
    box_to_pixels,
    default_tex_cache,
    render_scene,
    write_chapters,
)
from convviz.rendering.plan_cache import start_plan
from convviz.rendering.theme import DARK, Theme
from convviz.spec import ConvSpec

if TYPE_CHECKING:  # manim is imported by render_clip, once the plan is under way
    from convviz.rendering.scenes import ConvolutionScene
    from convviz.rendering.values import LayerValues

__all__ = [
    "RenderResult",
    "clip_numbers",
    "default_output",
    "render",
    "render_clip",
    "timeline_document",
]

#: Formats that can carry an alpha channel.
TRANSPARENT_FORMATS = ("webm", "mov", "png")


@dataclass(frozen=True)
class RenderResult:
    """What :func:`render_clip` wrote."""

    video: Path
    timeline: dict[str, Any]


def default_output(spec: Any, op: str, fmt: str = "mp4", root: Path | None = None) -> Path:
    """``media/<op>_<layer slug>.<fmt>``, e.g. ``media/forward_6x6_k3x3.mp4``.

    Types other than conv2d put their name first: ``media/forward_maxpool2d_4x4_k2x2.mp4``.
    """
    kind = "" if spec.TYPE == "conv2d" else f"{spec.TYPE}_"
    return (root or Path("media")) / f"{op}_{kind}{spec.slug()}.{fmt}"


#: Values of the ``tex`` option.
TEX_CHOICES = ("auto", "latex", "none")


def latex_available() -> bool:
    """Whether ``latex`` and ``dvisvgm`` are on ``PATH``."""
    import shutil

    return shutil.which("latex") is not None and shutil.which("dvisvgm") is not None


def resolve_tex(tex: str) -> str:
    """Typesetting backend for a ``tex`` option value.

    ``auto`` uses LaTeX when it is installed and Typst otherwise; ``latex`` insists on
    LaTeX (a clear error when it is missing); ``none`` never uses TeX.
    """
    if tex not in TEX_CHOICES:
        raise RenderError(f"unknown tex option {tex!r}; choose one of {', '.join(TEX_CHOICES)}")
    if tex == "none":
        return "typst"
    if latex_available():
        return "latex"
    if tex == "latex":
        raise RenderError(
            "LaTeX (latex, dvisvgm) not found: install it with `make setup`, or use "
            "--tex none to typeset with Typst (no TeX needed)"
        )
    return "typst"


def _check(spec: Any, op: str, quality: str, fmt: str, transparent: bool, fps: int | None,
           step_time: float, max_steps: int | None) -> None:
    ops = layer_type(spec).op_names
    if op not in ops:
        raise RenderError(f"unknown clip {op!r}; choose one of {', '.join(ops)}")
    if quality not in QUALITIES:
        raise RenderError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
    if fmt not in FORMATS:
        raise RenderError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if transparent and fmt not in TRANSPARENT_FORMATS:
        raise RenderError(
            f"--transparent needs a format with an alpha channel "
            f"({', '.join(TRANSPARENT_FORMATS)}), not {fmt}"
        )
    from convviz.config import SettingError, check_setting

    for key, value in (("fps", fps), ("step_time", step_time), ("max_steps", max_steps)):
        if value is not None:
            try:
                check_setting(key, value)
            except SettingError as err:
                raise RenderError(f"{key}: {err.rule}") from None


def clip_numbers(
    spec: Any,
    *,
    seed: int | None = None,
    values: str | Path | Mapping[str, Any] | LayerValues | None = None,
    show: str | None = None,
) -> tuple[LayerValues | None, str]:
    """The numbers a clip is drawn at (``None``: symbols only) and what its cells show.

    Bad input is a :class:`RenderError` of one line naming the place.
    """
    from convviz.rendering.values import ValuesInputError, layer_values, resolve_show

    try:
        numbers = layer_values(spec, seed=seed, values=values)
        return numbers, resolve_show(show, numbers is not None)
    except ValuesInputError as err:
        raise RenderError(str(err)) from None


def render_clip(
    spec: ConvSpec,
    op: str = "forward",
    *,
    quality: str = "l",
    output: Path | str | None = None,
    fmt: str | None = None,
    transparent: bool = False,
    fps: int | None = None,
    step_time: float = 1.0,
    max_steps: int | None = None,
    theme: Theme = DARK,
    on_step: Callable[[int, int], None] | None = None,
    tex_cache: Path | str | None = None,
    tex: str = "auto",
    slides: Path | str | None = None,
    encoder_threads: int | None = None,
    inline_encoding: bool = False,
    seed: int | None = None,
    values: str | Path | Mapping[str, Any] | LayerValues | None = None,
    show: str | None = None,
) -> RenderResult:
    """Render one clip; return the written path and its timeline document.

    See :func:`render` for the parameters.
    """
    chosen = (fmt or (Path(output).suffix.lstrip(".") if output else "mp4")).lower()
    numbers, show = clip_numbers(spec, seed=seed, values=values, show=show)
    if numbers is not None:
        spec = numbers.spec
    _check(spec, op, quality, chosen, transparent, fps, step_time, max_steps)
    declared = layer_type(spec)
    needs = declared.op(op).needs
    if needs and not getattr(spec, needs):
        short = declared.array(declared.op(op).target).short
        raise RenderError(
            f"{op}: the layer has no {needs} (--no-{needs}), so there is no dL/{short} "
            "to show"
        )
    target = Path(output) if output is not None else default_output(spec, op, chosen)
    backend = resolve_tex(tex)
    if slides is not None and chosen != "mp4":
        raise RenderError(f"--slides needs the mp4 format, not {chosen}")
    # On a cold cache a child process derives the plan while manim is imported here.
    # With LaTeX, the child also compiles the clip's labels and equations.
    tex_dir = Path(tex_cache) if tex_cache is not None else default_tex_cache()
    job = start_plan(spec, op, max_steps, latex_dir=tex_dir if backend == "latex" else None,
                     values=numbers, show=show)
    from convviz.rendering.scenes import scene_class

    plan = job.result()
    holder: list[ConvolutionScene] = []
    cls: type[ConvolutionScene] = scene_class(op, spec.TYPE)

    def factory() -> ConvolutionScene:
        scene = cls(
            spec,
            theme=theme,
            step_time=step_time,
            max_steps=max_steps,
            plan=plan,
            on_step=on_step,
            tex=backend,
            loop=chosen == "gif",
        )
        holder.append(scene)
        return scene

    overrides: dict[str, Any] = {"background_color": theme.background}
    if transparent:
        overrides["background_opacity"] = 0.0
    if fps is not None:
        overrides["frame_rate"] = fps
    if encoder_threads is not None and chosen in ("mp4", "webm", "mov"):
        overrides["video_encoder_options"] = {"threads": str(encoder_threads)}
    written = render_scene(
        factory,
        target,
        quality=quality,
        fmt=chosen,
        overrides=overrides,
        tex_cache=tex_dir,
        inline_encoding=inline_encoding,
    )
    q = QUALITIES[quality]
    doc = timeline_document(
        holder[0],
        video=written,
        width=q.pixel_width,
        height=q.pixel_height,
        fps=fps or q.frame_rate,
    )
    if slides is not None:
        from convviz.rendering.slides import write_slides

        write_slides(written, doc, Path(slides), cls.__name__, background=theme.background)
    return RenderResult(written, doc)


def render(
    spec: ConvSpec,
    op: str = "forward",
    *,
    quality: str = "l",
    output: Path | str | None = None,
    fmt: str | None = None,
    transparent: bool = False,
    fps: int | None = None,
    timeline: Path | str | None = None,
    chapters: Path | str | None = None,
    step_time: float = 1.0,
    max_steps: int | None = None,
    theme: Theme = DARK,
    on_step: Callable[[int, int], None] | None = None,
    tex_cache: Path | str | None = None,
    tex: str = "auto",
    slides: Path | str | None = None,
    encoder_threads: int | None = None,
    inline_encoding: bool = False,
    seed: int | None = None,
    values: str | Path | Mapping[str, Any] | LayerValues | None = None,
    show: str | None = None,
) -> Path:
    r"""Render the clip of ``op`` for the layer ``spec`` and return the written path.

    Parameters
    ----------
    spec
        The layer.
    op
        ``forward``, ``dw``, ``da``, ``db`` or ``da-full``.
    quality
        manim's letters: ``l`` 480p15, ``m`` 720p30, ``h`` 1080p60, ``k`` 2160p60.
    output
        Where to write (default :func:`default_output`). The file appears only once the
        render is complete; an existing file is left alone if rendering fails.
    fmt
        ``mp4``, ``gif``, ``webm``, ``mov`` or ``png`` (last frame); default from the
        suffix of ``output``, else ``mp4``.
    transparent
        Transparent background (``webm``, ``mov``, ``png``).
    fps
        Frame rate instead of the quality's.
    timeline, chapters
        Also write the clip's timeline JSON / WebVTT chapters there.
    step_time
        Seconds per step.
    max_steps
        Animate only the first steps.
    theme
        Colours.
    on_step
        Progress callback ``on_step(done, total)``.
    tex
        ``auto`` (LaTeX when installed, else Typst), ``latex`` or ``none`` (Typst).
    encoder_threads
        Threads the video encoder may use (default: the encoder's choice); worker
        processes that each own one core pass 1.
    inline_encoding
        Encode frames in the drawing thread rather than on manim's encoder thread
        (:func:`~convviz.rendering.output.encode_inline`): for worker processes that
        each own one core, where a second thread only costs hand-offs.
    slides
        Also write a manim-slides presentation folder there (one slide per step);
        ``convviz slides --folder DIR <Scene> out.html`` turns it into one offline page.
    tex_cache
        Directory for compiled LaTeX kept between renders (default
        :func:`~convviz.rendering.output.default_tex_cache`).
    seed
        Draw the clip at numbers drawn from this seed (as ``convviz evaluate`` draws a
        network's: inputs integers 0 to 3, weights and biases multiples of 0.25 in
        [-0.5, 0.5], ``grad_output`` multiples of 0.25 in [-1, 1]).
    values
        Draw the clip at these numbers: a values file (path) or its contents, in the
        format of network values files for a one-layer network (``{"input": ...,
        "layers": [{"weight": ..., "bias": ...}], "grad_output": ...}``; a loss takes
        ``"target"``); what it leaves out is drawn from ``seed`` (default 0).
    show
        What the cells show: ``symbols``, ``values`` or ``both`` (the name small above
        the number). Default: ``values`` when ``seed`` or ``values`` is given, else
        ``symbols``; ``values`` or ``both`` without numbers is an error.

    With numbers the equation panel shows them substituted (``z_{1,1} = 0.25\cdot 1 +
    (-0.5)\cdot 0 + \cdots = 0.875``), max pooling marks each window's first maximum,
    ReLU's backward pass dims the cells where ``z <= 0``, and the timeline's arrays
    carry their cells' numbers (``"values"``).
    """
    result = render_clip(
        spec,
        op,
        quality=quality,
        output=output,
        fmt=fmt,
        transparent=transparent,
        fps=fps,
        step_time=step_time,
        max_steps=max_steps,
        theme=theme,
        on_step=on_step,
        tex_cache=tex_cache,
        tex=tex,
        slides=slides,
        encoder_threads=encoder_threads,
        inline_encoding=inline_encoding,
        seed=seed,
        values=values,
        show=show,
    )
    if timeline is not None:
        atomic_write_text(Path(timeline), json.dumps(result.timeline, indent=1) + "\n")
    if chapters is not None:
        write_chapters(Path(chapters), chapter_list(result.timeline))
    return result.video


def plain_name(short: str) -> str:
    r"""A short LaTeX cell name as plain text: ``\hat{y}`` becomes ``ŷ``."""
    import re

    text = re.sub(r"\\hat\{(\w)\}", "\\1\u0302", short)
    text = re.sub(r"\\mathcal\{(\w)\}", "\\1", text)
    return text.replace("\\", "")


def _cell_name(name: str, index: list[int]) -> str:
    return f"{name}[{','.join(str(i) for i in index)}]" if index else name


def chapter_list(doc: dict[str, Any]) -> list[Chapter]:
    """One chapter per step, titled with the cell it computes (e.g. ``z[1,2]``)."""
    chapters = []
    for step in doc["steps"]:
        role = step["target"]["role"]
        name = doc["arrays"].get(role, {}).get("name", role)
        chapters.append(
            Chapter(step["start"], step["end"], _cell_name(name, step["target"]["index"]))
        )
    return chapters


def timeline_document(
    scene: ConvolutionScene, *, video: Path, width: int, height: int, fps: int
) -> dict[str, Any]:
    """The timeline JSON of a rendered scene (see the README for the schema)."""
    assert scene.plan is not None
    arrays: dict[str, Any] = {}
    boxes = scene.cell_boxes()
    for array in scene.plan.arrays:
        shape = scene.spec.display_shape(array.role)
        cells = {}
        for key, box in boxes[array.role].items():
            left, top, right, bottom = box_to_pixels(
                box.corners(), pixel_width=width, pixel_height=height
            )
            cells[key] = [round(left, 2), round(top, 2), round(right, 2), round(bottom, 2)]
        arrays[array.role] = {
            "label": array.label,
            "name": plain_name(array.short),
            "shape": list(shape),
            "cells": cells,
        }
        if array.values:
            # with numbers: each cell's number, and the cells a mask zeroes
            arrays[array.role]["values"] = {
                ",".join(str(i) for i in index): value for index, value in array.values.items()
            }
            masked = sorted(
                index for index, (n, key) in array.positions.items()
                if key in array.grids[n].masked
            )
            if masked:
                arrays[array.role]["masked"] = [list(i) for i in masked]
    steps = []
    for step, timing in zip(scene.plan.steps, scene.timings, strict=True):
        entry: dict[str, Any] = {
            "start": round(timing.start, 4),
            "end": round(timing.end, 4),
            "hold": [round(timing.hold_start, 4), round(timing.end, 4)],
            "target": step.target.to_json(),
            "highlights": {
                role: [list(i) for i in idx] for role, idx in step.highlights.items()
            },
        }
        if step.value is not None:
            entry["value"] = step.value
        if step.marks:
            entry["marks"] = {role: [list(i) for i in idx] for role, idx in step.marks.items()}
        steps.append(entry)
    extra: dict[str, Any] = {"show": scene.plan.show} if scene.plan.has_values else {}
    return {
        "video": str(video),
        "op": scene.plan.op,
        "layer": scene.spec.describe(),
        "width": width,
        "height": height,
        "fps": fps,
        "duration": round(float(scene.renderer.time), 4),
        "arrays": arrays,
        "steps": steps,
        **extra,
    }
