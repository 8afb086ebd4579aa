r"""Math snippets typeset to standalone SVG, for pages that carry no math JavaScript.

The snippets are the equation-panel texts of a clip (``z_{1,1} = W_{1,1}\,a_{1,1} + \cdots
+ b``). With LaTeX they go into one document, each in its own ``align*`` made a page of
its own by the ``preview`` package, and one ``dvisvgm --no-fonts`` run turns every page
into an SVG whose glyphs are paths: the same TeX and the same programs the clips use
(:mod:`convviz.rendering.latex`). Without LaTeX, Typst typesets them, translated by
:func:`convviz.rendering.typst.latex_to_typst` (one page per snippet).

Each SVG is made ready to sit inline in an HTML page beside others
(:func:`formula_book`): every glyph is kept once for the whole page, named after its
outline (two SVGs' ``#g0-1`` glyphs may differ, and two equal glyphs need not be stored
twice), any other id gets a prefix of the formula's own, and it draws in ``currentColor``
so that the page's theme colours it. A page's formulas share most of their glyphs, so
this keeps a page of a hundred formulas small.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from convviz.rendering.latex import TypesetError

__all__ = ["BACKENDS", "formula_book", "inline_svg", "typeset_svgs"]

#: ``latex`` (needs a TeX installation and dvisvgm) or ``typst`` (the PyPI package).
BACKENDS = ("latex", "typst")

_DOCUMENT = (
    "\\documentclass{article}\n"
    "\\usepackage[english]{babel}\n"
    "\\usepackage{amsmath}\n"
    "\\usepackage{amssymb}\n"
    "\\usepackage[active,tightpage]{preview}\n"
    "\\PreviewEnvironment{align*}\n"
    "\\begin{document}\n"
    "PAGES\n"
    "\\end{document}\n"
)
_ID = re.compile(r"""\bid=(['"])([^'"]+)\1""")
_HREF = re.compile(r"""(xlink:href|href)=(['"])#([^'"]+)\2""")
_URL = re.compile(r"url\(#([^)]+)\)")
_SVG_OPEN = re.compile(r"<svg\b[^>]*>")
_SIZE = re.compile(r"""\b(width|height)=(['"])([0-9.]+)pt\2""")
_DEFS = re.compile(r"<defs>(.*?)</defs>", re.DOTALL)
#: A glyph inside <defs>: dvisvgm's <path id=.../>, Typst's <symbol id=...>...</symbol>.
_GLYPH = re.compile(
    r"""<(path|symbol)\b([^>]*?)\bid=(['"])([^'"]+)\3([^>]*?)(/>|>.*?</\1>)""", re.DOTALL)


def typeset_svgs(snippets: Sequence[str], *, backend: str = "latex") -> list[str]:
    """One standalone SVG document (text) per math-mode LaTeX snippet, in order.

    Raises
    ------
    TypesetError
        When the programs are missing or a snippet does not typeset.
    """
    if backend not in BACKENDS:
        raise TypesetError(f"unknown typesetting backend {backend!r}; use latex or typst")
    if not snippets:
        return []
    unique = list(dict.fromkeys(snippets))
    made = _latex(unique) if backend == "latex" else _typst(unique)
    by_text = dict(zip(unique, made, strict=True))
    return [by_text[s] for s in snippets]


def _latex(snippets: list[str]) -> list[str]:
    for program in ("latex", "dvisvgm"):
        if shutil.which(program) is None:
            raise TypesetError(f"{program} is not installed (give --tex none to use Typst)")
    pages = "\n".join(f"\\begin{{align*}}{s}\\end{{align*}}" for s in snippets)
    with tempfile.TemporaryDirectory(prefix="convviz-svg-") as private:
        work = Path(private)
        (work / "page.tex").write_text(_DOCUMENT.replace("PAGES", pages), encoding="utf-8")
        latex = subprocess.run(
            ["latex", "-interaction=batchmode", "-halt-on-error", "page.tex"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, check=False,
        )
        if latex.returncode != 0:
            raise TypesetError(f"LaTeX could not typeset the formulas: {_first_error(work)}")
        subprocess.run(
            ["dvisvgm", "--page=1-", "--no-fonts", "--verbosity=0", "--output=p-%p.svg",
             "page.dvi"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, check=False,
        )
        found = sorted(work.glob("p-*.svg"), key=lambda p: int(p.stem.split("-")[1]))
        if len(found) != len(snippets):
            raise TypesetError(
                f"dvisvgm wrote {len(found)} formulas for {len(snippets)} snippets")
        return [p.read_text(encoding="utf-8") for p in found]


def _first_error(work: Path) -> str:
    log = work / "page.log"
    if log.exists():
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("!"):
                return line[1:].strip()
    return "see the LaTeX log"


def _typst(snippets: list[str]) -> list[str]:
    from convviz.rendering.typst import latex_to_typst

    try:
        import typst as typst_compiler
    except ImportError:
        raise TypesetError("neither LaTeX nor the typst package is installed") from None
    body = "\n#pagebreak()\n".join(f"$ {latex_to_typst(s)} $" for s in snippets)
    source = ("#set page(width: auto, height: auto, margin: 1pt, fill: none)\n"
              "#set text(size: 10pt)\n" + body + "\n")
    made = typst_compiler.compile(source.encode("utf-8"), format="svg")
    pages = made if isinstance(made, list) else [made]
    if len(pages) != len(snippets):
        raise TypesetError(f"Typst wrote {len(pages)} formulas for {len(snippets)} snippets")
    return [p.decode("utf-8") for p in pages]


def _shelve(defs: re.Match[str], book: dict[str, str], renamed: dict[str, str]) -> str:
    """Move the glyphs of one ``<defs>`` into ``book`` under names from their outlines."""

    def keep(match: re.Match[str]) -> str:
        tag, before, _, old, after, rest = match.groups()
        new = "cv" + hashlib.sha1(f"<{tag}{before}{after}{rest}".encode()).hexdigest()[:12]
        renamed[old] = new
        book.setdefault(new, f'<{tag}{before}id="{new}"{after}{rest}')
        return ""

    left = _GLYPH.sub(keep, defs.group(1)).strip()
    return f"<defs>{left}</defs>" if left else ""


def _refer(match: re.Match[str], renamed: dict[str, str]) -> str:
    """A reference to a glyph that moved into the book, under its new name."""
    attribute, quote, old = match.groups()
    return f"{attribute}={quote}#{renamed[old]}{quote}" if old in renamed else match.group(0)


def inline_svg(svg: str, prefix: str, *, keep: set[str] | None = None) -> str:
    """``svg`` made to sit inline in a page: no XML prolog, ids prefixed, currentColor.

    References to the ids in ``keep`` (the page's shared glyphs) are left as they are.

    Sizes stay in points (TeX's), so a formula reads at the page's text size when the
    page scales it by ``em``.
    """
    start = svg.find("<svg")
    if start < 0:
        raise TypesetError("the typeset formula is not an SVG")
    body = svg[start:]
    shared = keep or set()
    body = _ID.sub(lambda m: f"id={m.group(1)}{prefix}{m.group(2)}{m.group(1)}", body)
    body = _HREF.sub(lambda m: m.group(0) if m.group(3) in shared else
                     f"{m.group(1)}={m.group(2)}#{prefix}{m.group(3)}{m.group(2)}", body)
    body = _URL.sub(lambda m: m.group(0) if m.group(1) in shared else
                    f"url(#{prefix}{m.group(1)})", body)
    # black is TeX's ink and Typst's default; the page's text colour replaces it
    body = re.sub(r"""(fill|stroke)=(['"])(#000000|#000|black)\2""",
                  r"\1=\2currentColor\2", body)
    opening = _SVG_OPEN.search(body)
    assert opening is not None
    # points to em (TeX's 10 pt is one em), so the page's font size sets the formula's
    head = _SIZE.sub(lambda m: f'{m.group(1)}="{float(m.group(3)) / 10:.4g}em"', opening.group(0))
    tag = head[:-1].rstrip("/") + ' fill="currentColor" class="formula" aria-hidden="true">'
    return tag + body[opening.end():].strip()


def formula_book(svgs: Sequence[str]) -> tuple[str, list[str]]:
    """The formulas of one page: one hidden SVG holding every glyph once, and the formulas.

    Every glyph definition is renamed after a hash of its outline and moved into the
    shared book; the formulas refer to it by that name (an inline SVG may use another's
    definitions in the same HTML document). Whatever else has an id stays in its formula,
    prefixed (:func:`inline_svg`).
    """
    book: dict[str, str] = {}
    out: list[str] = []
    for n, svg in enumerate(svgs):
        renamed: dict[str, str] = {}
        text = _DEFS.sub(functools.partial(_shelve, book=book, renamed=renamed), svg)
        text = _HREF.sub(functools.partial(_refer, renamed=renamed), text)
        out.append(inline_svg(text, f"f{n}-", keep=set(renamed.values())))
    shared = ('<svg class="formula-book" width="0" height="0" aria-hidden="true" '
              'style="position:absolute" fill="currentColor"><defs>'
              + "".join(book.values()) + "</defs></svg>")
    return shared, out
