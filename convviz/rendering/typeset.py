"""Typeset many LaTeX snippets with a single LaTeX run.

Every ``MathTex`` costs one ``latex`` + ``dvisvgm`` run (about half a second) plus SVG
parsing. A convolution picture has dozens of cell labels, so building one ``MathTex`` per
label is the slowest part of a render. Here all snippets go into one ``MathTex`` whose
parts manim 0.22 tags individually (dvisvgm ``<g>`` groups), and the parts are handed
back as independent mobjects for the caller to move and scale.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from manim import MathTex, VGroup, VMobject

__all__ = [
    "BACKENDS",
    "TypesetError",
    "cell_tex",
    "protect_braces",
    "typeset",
    "typeset_map",
]

K = TypeVar("K", bound=Hashable)

#: Snippets per output line inside the one LaTeX document. Keeps every line far below
#: TeX's maximum dimension (about 5.7 m) however many labels a scene needs.
PER_LINE = 16

#: Typesetting engines: LaTeX (MathTex) or Typst (no TeX installation needed).
BACKENDS = ("latex", "typst")


class TypesetError(RuntimeError):
    """LaTeX could not typeset the labels (missing programs or a LaTeX error)."""


def cell_tex(label: str, index: Sequence[int]) -> str:
    """Return the LaTeX for one cell, e.g. ``{a^{[1]}}_{1,2}`` for ``a^{[1]}`` at (1, 2).

    Parameters
    ----------
    label
        LaTeX name of the array, as in ``ArrayInfo.label``.
    index
        1-based display index; empty for a scalar, which is shown as the bare label.
    """
    if not index:
        return label
    subscript = ",".join(str(i) for i in index)
    return "{" + label + "}_{" + subscript + "}"


def protect_braces(tex: str) -> str:
    """Stop manim from splitting a snippet at ``{{`` (its part notation).

    In math mode a space between two braces changes nothing, so ``{{`` becomes ``{ {``.
    """
    while "{{" in tex:
        tex = tex.replace("{{", "{ {")
    return tex


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
    unique = list(dict.fromkeys(s for s in strings if s.strip()))
    parts: dict[str, VMobject] = {}
    if backend not in BACKENDS:
        raise TypesetError(f"unknown typesetting backend {backend!r}; use latex or typst")
    if unique and backend == "typst":
        parts = _typeset_typst(unique, font_size, color)
    elif unique:
        prepared = [protect_braces(s) for s in unique]
        # A line break after every PER_LINE-th part; the break sits inside that part's
        # group, which carries no glyphs for it.
        for k in range(PER_LINE - 1, len(prepared) - 1, PER_LINE):
            prepared[k] += r" \\"
        try:
            tex = MathTex(*prepared, font_size=font_size, use_svg_cache=False)
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
        if len(tex.submobjects) != len(unique):
            raise TypesetError(
                f"LaTeX returned {len(tex.submobjects)} parts for {len(unique)} labels"
            )
        found = list(tex.submobjects)
        tex.remove(*found)
        for s, part in zip(unique, found, strict=True):
            part.set_fill(color, opacity=1.0).set_stroke(width=0)
            parts[s] = part
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
