r"""Typeset without TeX: translate convviz's LaTeX snippets to Typst math.

convviz writes every label, equation and caption itself, in a small, fixed subset of
LaTeX math (scripts, ``\\frac``, ``\\partial``, ``\\mathcal``, ``\\text``,
``\\operatorname``, a few symbols). :func:`latex_to_typst` translates exactly that subset
to Typst math markup, so that the same picture can be drawn with manim's ``MathTypst``
(the ``typst`` package from PyPI, no TeX installation needed). Anything outside the
subset raises :class:`TypstTranslationError` rather than producing something subtly
different.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from manim import VMobject

__all__ = ["TypstTranslationError", "latex_to_typst", "typeset_typst"]


class TypstTranslationError(ValueError):
    """A LaTeX snippet uses something the translator does not know."""


#: Commands that become a Typst symbol.
_SYMBOLS = {
    "partial": "partial",
    "max": "max",
    "min": "min",
    "log": "log",
    "exp": "exp",
    "tanh": "tanh",
    "sigma": "sigma",
    "odot": "dot.o",
    "geq": ">=",
    "leq": "<=",
    "ge": ">=",
    "le": "<=",
    "neq": "!=",
    "top": "top",
    "cdots": "dots.c",
    "vdots": "dots.v",
    "ddots": "dots.down",
    "ldots": "dots",
    "ast": "ast",
    "Rightarrow": "=>",
    "rightarrow": "->",
    "mapsto": "|->",
    "leftarrow": "<-",
    "to": "->",
    "times": "times",
    "cdot": "dot.op",
    "sum": "sum",
    "quad": "quad",
    "qquad": "wide",
    ",": "thin",
    ";": "med",
    " ": "space",
    "!": "",
    "textstyle": "",
    "displaystyle": "",
    "left": "",
    "right": "",
}

#: Commands taking one argument, with the Typst function they map to.
_ONE_ARG = {
    "mathcal": "cal",
    "mathbf": "bold",
    "mathbb": "bb",
    "hat": "hat",
    "bar": "overline",
    "tilde": "tilde",
}

_TOKEN = re.compile(
    r"\\[A-Za-z]+|\\[,;! ]|\\\\|[{}^_]|[A-Za-z]|[0-9]+|\s+|[^\\{}^_A-Za-z0-9\s]"
)


@dataclass
class _Parser:
    tokens: list[str]
    pos: int = 0
    source: str = ""

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise TypstTranslationError(f"unexpected end of {self.source!r}")
        self.pos += 1
        return token

    def skip_space(self) -> None:
        while (token := self.peek()) is not None and token.isspace():
            self.pos += 1

    # A sequence of atoms until a closing brace or the end.
    def sequence(self, closing: bool) -> list[str]:
        out: list[str] = []
        while True:
            token = self.peek()
            if token is None:
                if closing:
                    raise TypstTranslationError(f"missing '}}' in {self.source!r}")
                return out
            if token == "}":
                if not closing:
                    raise TypstTranslationError(f"unbalanced '}}' in {self.source!r}")
                self.pos += 1
                return out
            if token in ("^", "_"):
                self.pos += 1
                script = self.argument()
                if not out:
                    out.append('""')
                out[-1] = f"{out[-1]}{token}{_paren(script)}"
                continue
            atom = self.atom()
            if atom is not None:
                out.append(atom)

    def argument(self) -> str:
        """One braced group or a single token, as Typst markup."""
        self.skip_space()
        token = self.take()
        if token == "{":
            return _join(self.sequence(closing=True))
        if token.startswith("\\"):
            self.pos -= 1
            atom = self.atom()
            return atom or ""
        if token.isdigit() and len(token) > 1:
            # LaTeX takes one digit as an argument: x^12 is x^1 2.
            self.tokens.insert(self.pos, token[1:])
            return token[0]
        return _plain(token)

    def raw_text(self) -> str:
        r"""The literal text of a braced argument (for \text and \operatorname)."""
        self.skip_space()
        if self.take() != "{":
            raise TypstTranslationError(f"expected '{{' after a text command in {self.source!r}")
        depth = 1
        parts: list[str] = []
        while True:
            token = self.take()
            if token == "{":
                depth += 1
            elif token == "}":
                depth -= 1
                if depth == 0:
                    return "".join(parts)
            parts.append(token)

    def atom(self) -> str | None:
        token = self.take()
        if token.isspace():
            return None
        if token == "{":
            inner = self.sequence(closing=True)
            return _join(inner) if len(inner) == 1 else _group(inner)
        if token.startswith("\\") and token != "\\\\":
            name = token[1:]
            if name in _SYMBOLS:
                symbol = _SYMBOLS[name]
                if name in ("left", "right"):
                    self.skip_space()
                    delim = self.take()
                    return None if delim == "." else _plain(delim)
                return symbol or None
            if name in ("frac", "tfrac", "dfrac"):
                num, den = self.argument(), self.argument()
                return f"frac({num}, {den})"
            if name == "text":
                text = self.raw_text().replace("\\", "\\\\").replace('"', '\\"')
                # Typst already spaces text from the math around it.
                return f'"{text.strip()}"'
            if name == "operatorname":
                return f'op("{self.raw_text()}")'
            if name == "mathrm":
                return f'upright("{self.raw_text()}")'
            if name == "mathrel":  # spacing only: the argument as it is
                return self.argument()
            if name in _ONE_ARG:
                return f"{_ONE_ARG[name]}({self.argument()})"
            raise TypstTranslationError(f"unknown command \\{name} in {self.source!r}")
        if token == "\\\\":
            raise TypstTranslationError(f"line breaks are not supported: {self.source!r}")
        return _plain(token)


def _plain(token: str) -> str:
    if token.isalpha():
        return token
    if token.isdigit():
        return token
    if token in "+-=<>/|!?.:'":
        return token
    if token in ",;()[]":
        return token
    if token == "*":
        return "ast"
    return "\\" + token


def _join(parts: list[str]) -> str:
    return " ".join(p for p in parts if p)


def _group(parts: list[str]) -> str:
    # Typst math has no invisible braces; juxtaposition already groups for display,
    # and scripts attach to the last atom, which is what convviz's snippets mean.
    return _join(parts)


def _paren(script: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9]|[0-9]+", script):
        return script
    return f"({script})"


def latex_to_typst(tex: str) -> str:
    r"""Translate one of convviz's LaTeX math snippets to Typst math markup.

    >>> latex_to_typst(r"dz_{1,2}\,W_{2,1}")
    'd z_(1 , 2) thin W_(2 , 1)'
    >>> latex_to_typst(r"\frac{\partial \mathcal{L}}{\partial a^{[1]}}")
    'frac(partial cal(L), partial a^([ 1 ]))'

    Raises
    ------
    TypstTranslationError
        For LaTeX outside the subset convviz writes.
    """
    tokens = _TOKEN.findall(tex)
    if "".join(tokens) != tex:
        raise TypstTranslationError(f"cannot tokenise {tex!r}")
    parser = _Parser(tokens, source=tex)
    return _join(parser.sequence(closing=False))


#: Height of one row of the batch document, in points: taller than any snippet.
_ROW_PT = 40.0
#: Scene units per Typst point that make 12 pt Typst text as tall as MathTex at size 48.
_UNITS_PER_PT_AT_48 = 0.03663
#: Width of the marker bar that starts each row (identifies rows after parsing).
_MARK_PT = 0.25


def typeset_typst(snippets: list[str], *, font_size: float, color: str) -> list[VMobject]:
    """Typeset LaTeX ``snippets`` with Typst in one compile and one SVG parse.

    Every snippet is translated with :func:`latex_to_typst` and put in its own row of a
    one-column grid; each row starts with a thin marker bar the height of the row. After
    parsing, the markers cut the glyphs back into one mobject per snippet (in document
    order) and are dropped.

    Raises
    ------
    TypstTranslationError
        For LaTeX outside the supported subset.
    ImportError
        When the ``typst`` package is not installed.
    """
    import tempfile
    from pathlib import Path

    import typst as typst_compiler
    from manim import SVGMobject, VGroup, VMobject

    body = []
    for snippet in snippets:
        math = latex_to_typst(snippet)
        body.append(
            f"rect(width: {_MARK_PT}pt, height: {_ROW_PT}pt, fill: black, stroke: none),"
            f" [$ {math} $],"
        )
    source = (
        "#set page(width: auto, height: auto, margin: 2pt, fill: none)\n"
        "#set text(size: 12pt)\n"
        f"#grid(columns: 2, rows: {_ROW_PT}pt, column-gutter: 6pt, align: left + horizon,\n"
        + "\n".join(body)
        + "\n)\n"
    )
    with tempfile.TemporaryDirectory(prefix="convviz-typst-") as tmp:
        src = Path(tmp) / "labels.typ"
        svg = Path(tmp) / "labels.svg"
        src.write_text(source, encoding="utf-8")
        typst_compiler.compile(str(src), output=str(svg), format="svg")
        parsed = SVGMobject(str(svg), use_svg_cache=False, should_center=True)
    leaves = [m for m in parsed.family_members_with_points() if isinstance(m, VMobject)]
    heights = [m.height for m in leaves]
    row_height = max(heights) if heights else 0.0
    units_per_pt = row_height / _ROW_PT if row_height else 1.0
    parts: list[VMobject] = []
    current: VGroup | None = None
    for leaf in leaves:
        is_marker = leaf.height > 0.95 * row_height and leaf.width < 0.05 * leaf.height
        if is_marker:
            current = VGroup()
            parts.append(current)
            continue
        if current is None:
            raise TypstTranslationError("Typst output did not start with a row marker")
        current.add(leaf)
    if len(parts) != len(snippets):
        raise TypstTranslationError(
            f"Typst returned {len(parts)} rows for {len(snippets)} snippets"
        )
    # Same size as MathTex at this font size (calibrated on "a_{1,2}").
    scale = _UNITS_PER_PT_AT_48 * (font_size / 48.0) / units_per_pt
    for part in parts:
        for leaf in part.submobjects:
            if leaf.get_fill_opacity() > 0:
                leaf.set_fill(color, opacity=1.0).set_stroke(width=0)
            else:  # fraction bars and rules are strokes in Typst's SVG
                leaf.set_stroke(color, opacity=1.0)
        part.scale(scale)
    return parts
