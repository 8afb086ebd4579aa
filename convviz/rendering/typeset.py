"""Typeset many LaTeX snippets with a single LaTeX run.

Every ``MathTex`` costs one ``latex`` + ``dvisvgm`` run plus SVG parsing, and a convolution
picture has dozens of cell labels. Here all snippets go into one LaTeX document, each in
its own dvisvgm group exactly as ``MathTex`` does it, the SVG is converted glyph by glyph
(each distinct glyph once), and the parts are handed back as independent mobjects for the
caller to move and scale. The outlines are also cached beside manim's TeX cache, so a
warm render does not even read the SVG.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from manim import VGroup, VMobject

from convviz.rendering.latex import (
    PER_LINE,
    TypesetError,
    cell_tex,
    join_snippets,
    prepare_snippets,
    protect_braces,
    svg_cache_path,
    unique_snippets,
)

__all__ = [
    "BACKENDS",
    "TypesetError",
    "cell_tex",
    "protect_braces",
    "typeset",
    "typeset_map",
]

K = TypeVar("K", bound=Hashable)

#: Typesetting engines: LaTeX (MathTex) or Typst (no TeX installation needed).
BACKENDS = ("latex", "typst")


def typeset(
    strings: Sequence[str],
    *,
    font_size: float = 36.0,
    color: str = "#FFFFFF",
    backend: str = "latex",
) -> list[VMobject]:
    """Typeset math-mode snippets with one LaTeX (or Typst) run.

    Parameters
    ----------
    strings
        Math-mode LaTeX snippets. Duplicates are typeset once and copied; an empty
        string gives an empty mobject.
    font_size
        manim font size of every snippet (scale the results afterwards as needed).
    color
        Fill colour of the glyphs.
    backend
        ``"latex"`` (MathTex, needs a TeX installation) or ``"typst"`` (the ``typst``
        package from PyPI; the snippets are translated by
        :func:`convviz.rendering.typst.latex_to_typst`).

    Returns
    -------
    list[VMobject]
        One independent mobject per input string, in input order, each centred where
        LaTeX put it (callers move them).

    Raises
    ------
    TypesetError
        When ``latex`` or ``dvisvgm`` is missing, or LaTeX rejects a snippet.
    """
    unique = unique_snippets(strings)
    parts: dict[str, VMobject] = {}
    if backend not in BACKENDS:
        raise TypesetError(f"unknown typesetting backend {backend!r}; use latex or typst")
    if unique and backend == "typst":
        parts = _typeset_typst(unique, font_size, color)
    elif unique:
        parts = _typeset_latex(unique, font_size, color)
    result: list[VMobject] = []
    used: set[str] = set()
    for s in strings:
        if s not in parts:
            result.append(VGroup())
        elif s in used:
            result.append(parts[s].copy())
        else:
            used.add(s)
            result.append(parts[s])
    return result


def _typeset_latex(unique: list[str], font_size: float, color: str) -> dict[str, VMobject]:
    """One MathTex for all snippets, or its glyph outlines from the cache of an earlier run."""
    key = _cache_key(unique, font_size)
    cached = _load_outlines(key, len(unique))
    if cached is not None:
        return {s: _from_outlines(glyphs, color) for s, glyphs in zip(unique, cached, strict=True)}
    parts: dict[str, VMobject] = {}
    if unique:
        try:
            outlines = _compile_outlines(prepare_snippets(unique), font_size)
        except FileNotFoundError as exc:
            name = str(exc.filename or "latex")
            if "/" in name or "." in name:
                raise TypesetError(
                    f"LaTeX produced no output for the labels ({name} is missing); "
                    "check the TeX installation with `make setup`"
                ) from exc
            raise TypesetError(
                f"cannot typeset labels: {name} is not installed; run `make setup`, "
                "or render with --tex none"
            ) from exc
        except ValueError as exc:
            raise TypesetError(f"LaTeX failed on the labels: {exc}") from exc
        if len(outlines) != len(unique):
            raise TypesetError(f"LaTeX returned {len(outlines)} parts for {len(unique)} labels")
        for s, glyphs in zip(unique, outlines, strict=True):
            parts[s] = _from_outlines(glyphs, color)
        _save_outlines(key, [parts[s] for s in unique])
    return parts


# -- from LaTeX to glyph outlines ----------------------------------------------------------
# manim's MathTex hands dvisvgm's SVG to svgelements, which re-parses a glyph's path for
# every use of it (a clip's labels and equations use a few dozen glyphs a thousand times),
# and then builds a mobject per use. Here each distinct glyph is converted once, with
# manim's own path converter and settings, and every use is a shifted copy of its points:
# the outlines are the same as MathTex's (a test compares them), an order of magnitude
# faster.

_SVG = "{http://www.w3.org/2000/svg}"
_HREF = "{http://www.w3.org/1999/xlink}href"
_PATH_CONFIG = {"should_subdivide_sharp_curves": True, "should_remove_null_curves": True}


def _compile_outlines(snippets: Sequence[str], font_size: float) -> list[list[np.ndarray]]:
    """Typeset ``snippets`` in one LaTeX run; return each one's glyph outlines.

    The snippets are joined exactly as MathTex joins its parts (a dvisvgm group per part,
    separated by a space) and compiled in MathTex's ``align*`` environment. Outlines are
    in scene units at ``font_size``, centred on the origin as MathTex centres itself.
    """
    from manim import SCALE_FACTOR_PER_FONT_POINT, Rectangle, config
    from manim.utils.tex_file_writing import tex_to_svg_file

    joined = join_snippets(snippets)
    template = config.tex_template
    # A cold render may have had the document compiled already, by the plan prefetch
    # (convviz.rendering.latex.precompile), while manim was being imported.
    ahead = svg_cache_path(
        Path(config.get_dir("tex_dir")),
        template.get_texcode_for_expression_in_env(joined, "align*"),
        (str(template.tex_compiler), str(template.output_format)),
    )
    root = _parse_svg(ahead)
    if root is None:
        # Compile in a private directory: manim's shared TeX cache is not safe for two
        # processes writing the same file at once, and the outlines cached by
        # _save_outlines (written atomically) are what later renders reuse anyway.
        shared = config.tex_dir
        with tempfile.TemporaryDirectory(prefix="convviz-tex-") as private:
            config.tex_dir = private
            try:
                svg = tex_to_svg_file(joined, environment="align*", tex_template=template)
                root = ElementTree.parse(svg).getroot()
            finally:
                config.tex_dir = shared
    paths = {p.get("id"): p.get("d") or "" for p in root.iter(f"{_SVG}path")}
    glyphs: dict[str, np.ndarray] = {}
    parts: list[list[np.ndarray]] = []
    for group in root.iter(f"{_SVG}g"):
        if not (group.get("id") or "").startswith("unique"):
            continue
        outlines: list[np.ndarray] = []
        for element in group.iter():
            if element.tag == f"{_SVG}use":
                ref = (element.get(_HREF) or "").lstrip("#")
                if ref not in glyphs:
                    glyphs[ref] = _path_points(paths[ref])
                points = glyphs[ref].copy()
                points[:, 0] += float(element.get("x", 0))
                points[:, 1] += float(element.get("y", 0))
                outlines.append(points)
            elif element.tag == f"{_SVG}rect":
                x, y, w, h = (float(element.get(k, 0)) for k in ("x", "y", "width", "height"))
                # As manim's SVGMobject draws a rect: a Rectangle centred on it.
                bar = Rectangle(width=w, height=h).shift(np.array([x + w / 2, y + h / 2, 0.0]))
                outlines.append(np.array(bar.points, dtype=float))
        parts.append(outlines)
    everything = [o for outlines in parts for o in outlines]
    if everything:
        stacked = np.concatenate(everything)
        centre = (stacked.min(axis=0) + stacked.max(axis=0)) / 2
        # SVG y grows downwards; MathTex at font size f is f * SCALE_FACTOR_PER_FONT_POINT
        # scene units per SVG point.
        scale = font_size * SCALE_FACTOR_PER_FONT_POINT
        flip = np.array([scale, -scale, 1.0])
        for outlines in parts:
            for n, points in enumerate(outlines):
                outlines[n] = (points - centre) * flip
    return parts


def _parse_svg(path: Path) -> ElementTree.Element | None:
    """The SVG at ``path``, if it is there and whole."""
    try:
        return ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None


def _path_points(d: str) -> np.ndarray:
    import svgelements
    from manim.mobject.svg.svg_mobject import VMobjectFromSVGPath

    mob = VMobjectFromSVGPath(svgelements.Path(d), **_PATH_CONFIG)
    return np.array(mob.points, dtype=float)


# -- cache of glyph outlines ---------------------------------------------------------------
# Parsing dvisvgm's SVG into mobjects costs more than LaTeX itself. The outlines (points
# of every glyph of every part) are kept beside manim's compiled TeX, keyed by the
# snippets, the font size, the TeX template and the manim version, so a warm render
# builds its labels straight from arrays.


def _cache_key(unique: Sequence[str], font_size: float) -> str:
    import manim
    from manim import config

    text = json.dumps(
        [unique, font_size, config.tex_template.body, PER_LINE, manim.__version__]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cache_path(key: str) -> Path:
    from manim import config

    # Beside manim's TeX directory, not in it: manim deletes what it does not know there.
    tex_dir = Path(config.get_dir("tex_dir"))
    return tex_dir.parent / f"{tex_dir.name}-outlines" / f"{key}.npz"


def _save_outlines(key: str, parts: Sequence[VMobject]) -> None:
    points, glyphs, counts = [], [], []
    for part in parts:
        members = part.family_members_with_points()
        counts.append(len(members))
        for glyph in members:
            glyphs.append(len(glyph.points))
            points.append(glyph.points)
    path = _cache_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as handle:
            np.savez(
                handle,
                points=np.concatenate(points) if points else np.zeros((0, 3)),
                glyphs=np.array(glyphs, dtype=np.int64),
                counts=np.array(counts, dtype=np.int64),
            )
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def _load_outlines(key: str, n_parts: int) -> list[list[np.ndarray]] | None:
    try:
        with np.load(_cache_path(key)) as data:
            points, glyphs, counts = data["points"], data["glyphs"], data["counts"]
    except (OSError, KeyError, ValueError):
        return None
    if (
        len(counts) != n_parts
        or int(glyphs.sum()) != len(points)
        or int(counts.sum()) != len(glyphs)
    ):
        return None
    bounds = np.cumsum(glyphs)[:-1]
    outlines = np.split(points, bounds) if len(glyphs) else []
    out, start = [], 0
    for n in counts:
        out.append(outlines[start:start + int(n)])
        start += int(n)
    return out


def _from_outlines(glyphs: Sequence[np.ndarray], color: str) -> VMobject:
    """A part as one filled, unstroked VMobject holding every glyph outline.

    Each glyph's outline is a set of closed subpaths already (a hole is a contour of
    its own); the glyphs of a part never overlap, so one mobject with all of their
    subpaths fills exactly the same pixels as one mobject per glyph, and costs a tenth
    to build and to draw.
    """
    part = _blank(color).copy()
    if glyphs:
        part.set_points(np.concatenate(list(glyphs)))
    return part


@functools.cache
def _blank(color: str) -> VMobject:
    """A pointless, filled, unstroked VMobject to copy (copying skips manim's styling)."""
    return VMobject().set_fill(color, opacity=1.0).set_stroke(width=0)


def _typeset_typst(unique: list[str], font_size: float, color: str) -> dict[str, VMobject]:
    try:
        from convviz.rendering.typst import TypstTranslationError, typeset_typst
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TypesetError(
            "cannot typeset labels without TeX: the typst package is not installed; "
            "run `make setup`"
        ) from exc
    try:
        found = typeset_typst(unique, font_size=font_size, color=color)
    except ImportError as exc:
        raise TypesetError(
            "cannot typeset labels without TeX: the typst package is not installed; "
            "run `make setup`"
        ) from exc
    except (TypstTranslationError, RuntimeError) as exc:
        raise TypesetError(f"Typst failed on the labels: {exc}") from exc
    return dict(zip(unique, found, strict=True))


def typeset_map(
    strings: Mapping[K, str],
    *,
    font_size: float = 36.0,
    color: str = "#FFFFFF",
) -> dict[K, VMobject]:
    """Typeset a mapping of snippets with one LaTeX run; same keys, mobject values.

    See :func:`typeset` for the parameters and errors.
    """
    keys = list(strings)
    mobs = typeset([strings[k] for k in keys], font_size=font_size, color=color)
    return dict(zip(keys, mobs, strict=True))
