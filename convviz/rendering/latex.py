"""The one LaTeX document of a clip, and compiling it ahead of time (no manim).

:mod:`convviz.rendering.typeset` puts every snippet of a clip into one document, each in
its own dvisvgm group, as ``MathTex`` does for its parts. The document's text is decided
here, from the snippets alone, so that it can be written and compiled before manim is
imported: :func:`precompile` (run by the plan prefetch in
:mod:`convviz.rendering.plan_cache`) compiles it with manim's default TeX template and
manim's own ``latex`` and ``dvisvgm`` command lines, and leaves the SVG in a cache keyed
by the complete TeX source. :mod:`~convviz.rendering.typeset` looks there first, keyed by
the source that manim's configured template produces, so a render with another template
simply compiles its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_TEMPLATE",
    "PER_LINE",
    "TypesetError",
    "cell_tex",
    "document",
    "join_snippets",
    "precompile",
    "prepare_snippets",
    "protect_braces",
    "svg_cache_path",
    "unique_snippets",
]

#: Snippets per output line inside the one LaTeX document. Keeps every line far below
#: TeX's maximum dimension (about 5.7 m) however many labels a scene needs.
PER_LINE = 16

#: manim's default TeX template (``manim.config.tex_template.body``); a test checks that
#: the two agree. Only sources made from it are compiled ahead of time.
DEFAULT_TEMPLATE = (
    "\\documentclass[preview]{standalone}\n"
    "\\usepackage[english]{babel}\n"
    "\\usepackage{amsmath}\n"
    "\\usepackage{amssymb}\n"
    "\\begin{document}\n"
    "YourTextHere\n"
    "\\end{document}"
)
_PLACEHOLDER = "YourTextHere"
#: The compiler and output format of manim's default template.
DEFAULT_COMPILER = ("latex", ".dvi")


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


def unique_snippets(strings: Iterable[str]) -> list[str]:
    """The distinct non-blank snippets, in first-seen order (each is typeset once)."""
    return list(dict.fromkeys(s for s in strings if s.strip()))


def prepare_snippets(unique: Sequence[str]) -> list[str]:
    """Snippets as they go into the document.

    Braces are protected, and every :data:`PER_LINE`-th part ends with a line break
    (inside that part's group, which carries no glyphs for it).
    """
    prepared = [protect_braces(s) for s in unique]
    for k in range(PER_LINE - 1, len(prepared) - 1, PER_LINE):
        prepared[k] += r" \\"
    return prepared


def join_snippets(prepared: Sequence[str]) -> str:
    """One math expression holding every snippet in its own dvisvgm group.

    The parts are joined as MathTex joins its parts, separated by a space.
    """
    last = len(prepared) - 1
    return "".join(
        rf"\special{{dvisvgm:raw <g id='unique{n:03d}'>}}"
        + text
        + (" " if n < last else "")
        + r"\special{dvisvgm:raw </g>}"
        for n, text in enumerate(prepared)
    ).strip()


def document(expression: str, template: str = DEFAULT_TEMPLATE) -> str:
    """The TeX source of ``expression`` in an ``align*`` environment, as manim writes it."""
    return template.replace(
        _PLACEHOLDER, "\n".join([r"\begin{align*}", expression, r"\end{align*}"])
    )


def svg_cache_path(tex_dir: Path, source: str, compiler: tuple[str, str]) -> Path:
    """Where the SVG compiled from ``source`` is kept (beside the TeX cache, not in it)."""
    key = hashlib.sha256("\0".join([source, *compiler]).encode()).hexdigest()[:32]
    return tex_dir.parent / f"{tex_dir.name}-svg" / f"{key}.svg"


def precompile(strings: Iterable[str], tex_dir: Path) -> Path | None:
    """Compile a clip's snippets with manim's default template; return the cached SVG.

    Returns ``None`` (and leaves nothing behind) when LaTeX is missing or fails: the
    render then compiles the document itself and reports any error the usual way.
    """
    unique = unique_snippets(strings)
    if not unique or shutil.which("latex") is None or shutil.which("dvisvgm") is None:
        return None
    source = document(join_snippets(prepare_snippets(unique)))
    target = svg_cache_path(tex_dir, source, DEFAULT_COMPILER)
    if target.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="convviz-tex-") as private:
            work = Path(private)
            tex = work / "clip.tex"
            tex.write_text(source, encoding="utf-8")
            # The command lines of manim.utils.tex_file_writing (compile_tex, convert_to_svg).
            latex = subprocess.run(
                ["latex", "-interaction=batchmode", "-output-format=dvi", "-halt-on-error",
                 f"-output-directory={work.as_posix()}", tex.as_posix()],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                check=False,
            )
            svg = work / "clip.svg"
            if latex.returncode != 0:
                return None
            subprocess.run(
                ["dvisvgm", "--page=1", "--no-fonts", "--verbosity=0",
                 f"--output={svg.as_posix()}", (work / "clip.dvi").as_posix()],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                check=False,
            )
            if not svg.exists():
                return None
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
            os.close(fd)
            shutil.copyfile(svg, tmp)
            os.replace(tmp, target)
    except OSError:
        return None
    return target
