"""Writing pages from Python: :func:`write_page` for a layer's clip, :func:`write_network_page`.

The command line (``convviz page``) is thin over these. Each renders the clip (or takes an
existing render's timeline and video), plans it again from the same options for the
formulas, and writes the page through a temporary file, so a failure leaves nothing.

Bad input is a :class:`~convviz.web.embed.PageError` (or the renderer's
:class:`~convviz.rendering.output.RenderError`) of one line; missing TeX is a
:class:`~convviz.rendering.latex.TypesetError`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from convviz.web.embed import PageError, atomic_write

__all__ = ["read_timeline", "write_network_page", "write_page"]


def _target(output: Path | str) -> Path:
    target = Path(output)
    if target.suffix.lower() not in (".html", ".htm"):
        raise PageError(f"-o: a page is an .html file, not {target.suffix or target}")
    if target.is_dir():
        raise PageError(f"-o: {target} is a directory; give a file name ending in .html")
    return target


def read_timeline(path: Path | str, video: Path | str | None = None
                  ) -> tuple[dict[str, Any], Path]:
    """An existing render's timeline and its video, checked against each other.

    The video is ``video``, else the timeline's ``video`` (relative to the current
    directory, else to the timeline's folder).
    """
    from convviz.web.page import check_video

    path = Path(path)
    if not path.is_file():
        raise PageError(f"--timeline: {path}: no such file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PageError(f"--timeline: {path}: not a timeline JSON file ({err})") from None
    needed = ("video", "width", "height", "fps", "duration", "steps")
    if not isinstance(doc, dict) or any(k not in doc for k in needed):
        raise PageError(f"--timeline: {path}: not a convviz timeline (it needs "
                        f"{', '.join(needed)})")
    if video is None:
        named = Path(str(doc["video"]))
        video = named if named.is_absolute() or named.exists() else path.parent / named
    clip = Path(video)
    check_video(doc, clip)
    return doc, clip


def write_page(
    spec: Any,
    op: str,
    output: Path | str,
    *,
    timeline: Path | str | None = None,
    video: Path | str | None = None,
    quality: str = "l",
    tex: str = "auto",
    theme: str = "dark",
    palette: str = "article",
    step_time: float = 1.0,
    max_steps: int | None = None,
    seed: int | None = None,
    values: str | Path | Mapping[str, Any] | Any | None = None,
    show: str | None = None,
) -> Path:
    """Write the interactive page of the clip of ``op`` for the layer ``spec``.

    Without ``timeline`` the clip is rendered first (``quality``, ``step_time``,
    ``max_steps``, ``tex``, ``theme``, ``palette``, numbers from ``seed``/``values`` as
    :func:`convviz.render` takes them); with it, the page is made from that render, whose
    options these must repeat. Returns the written path.
    """
    from convviz.derivation import derive
    from convviz.rendering.api import clip_numbers, render, resolve_tex
    from convviz.rendering.plan_cache import cached_plan
    from convviz.rendering.theme import theme_for
    from convviz.web.page import layer_page_data, page_html

    target = _target(output)
    if video is not None and timeline is None:
        raise PageError("--video: only with --timeline (a page of an existing render)")
    numbers, shown = clip_numbers(spec, seed=seed, values=values, show=show)
    if numbers is not None:
        spec = numbers.spec
    backend = resolve_tex(tex)
    with tempfile.TemporaryDirectory(prefix="convviz-page-") as private:
        if timeline is not None:
            doc, clip = read_timeline(timeline, video)
        else:
            clip, made = Path(private) / "clip.mp4", Path(private) / "clip.json"
            render(spec, op, quality=quality, output=clip, timeline=made,
                   step_time=step_time, max_steps=max_steps, tex=tex,
                   theme=theme_for(theme, palette), values=numbers, show=shown)
            doc = json.loads(made.read_text(encoding="utf-8"))
        plan = cached_plan(spec, op, max_steps, numbers, shown)
        data = layer_page_data(doc, plan, derive(spec),
                               numbers.arrays if numbers is not None else None)
        return atomic_write(target, page_html(data, clip, theme=theme, backend=backend))


def write_network_page(
    network: Any,
    output: Path | str,
    *,
    values: Any | None = None,
    seed: int = 0,
    show: str | None = None,
    detail: int = 2,
    only: str | None = None,
    layers: tuple[int, int] | None = None,
    first_da: bool = False,
    step_time: float = 1.0,
    timeline: Path | str | None = None,
    video: Path | str | None = None,
    quality: str = "l",
    tex: str = "auto",
    theme: str = "dark",
    palette: str = "article",
    title: str = "",
) -> Path:
    """Write the interactive page of a network's clip (a :class:`~convviz.network.Network`).

    ``values`` (:class:`~convviz.network.NetworkValues`) or ``seed`` give the numbers;
    ``detail``, ``only``, ``layers``, ``first_da`` and ``step_time`` shape the clip as
    ``convviz render NET.toml`` does; ``title`` heads the page. Returns the written path.
    """
    from convviz.rendering.api import resolve_tex
    from convviz.rendering.network_plan import prepare_network_parts
    from convviz.rendering.theme import theme_for
    from convviz.web.page import network_page_data, page_html

    target = _target(output)
    if video is not None and timeline is None:
        raise PageError("--video: only with --timeline (a page of an existing render)")
    prepared = prepare_network_parts(network, values=values, seed=seed, detail=detail,
                                     only=only, layers=layers, first_da=first_da,
                                     step_time=step_time, show=show)
    backend = resolve_tex(tex)
    with tempfile.TemporaryDirectory(prefix="convviz-page-") as private:
        if timeline is not None:
            doc, clip = read_timeline(timeline, video)
        else:
            from convviz.rendering.network_scene import render_network

            clip, made = Path(private) / "clip.mp4", Path(private) / "clip.json"
            render_network(prepared.plan, output=clip, quality=quality,
                           theme=theme_for(theme, palette), tex=tex, timeline=made)
            doc = json.loads(made.read_text(encoding="utf-8"))
        data = network_page_data(doc, prepared, title=title)
        return atomic_write(target, page_html(data, clip, theme=theme, backend=backend))
