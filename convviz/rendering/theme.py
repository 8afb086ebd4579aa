"""Colours and stroke widths shared by every rendered picture.

Colours are plain ``#RRGGBB`` strings so a theme is data: it can be built, compared and
tested without importing manim, and manim accepts the strings wherever it takes a colour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from convviz.config import PALETTES as _PALETTE_NAMES
from convviz.config import THEMES as _THEME_NAMES

__all__ = ["DARK", "LIGHT", "PALETTES", "THEMES", "CellStyle", "Theme", "theme_for"]

_HEX = re.compile(r"#[0-9A-Fa-f]{6}")


def _check_colour(name: str, value: str) -> None:
    if not _HEX.fullmatch(value):
        raise ValueError(f"{name} must be a #RRGGBB colour, got {value!r}")


@dataclass(frozen=True)
class CellStyle:
    """How one cell square is painted.

    Attributes
    ----------
    fill_color
        Fill colour of the square.
    fill_opacity
        0 for an empty square, 1 for a solid one.
    stroke_color
        Outline colour.
    stroke_width
        Outline width in manim stroke units (pixels at 1080p, roughly).
    dashed
        Whether the outline is drawn dashed (padding cells).
    """

    fill_color: str
    fill_opacity: float
    stroke_color: str
    stroke_width: float
    dashed: bool = False

    def __post_init__(self) -> None:
        _check_colour("fill_color", self.fill_color)
        _check_colour("stroke_color", self.stroke_color)
        if not 0.0 <= self.fill_opacity <= 1.0:
            raise ValueError(f"fill_opacity must be in [0, 1], got {self.fill_opacity}")
        if self.stroke_width < 0:
            raise ValueError(f"stroke_width must be >= 0, got {self.stroke_width}")


@dataclass(frozen=True)
class Theme:
    """Every colour a convviz picture uses.

    Attributes
    ----------
    background
        Frame background colour.
    text
        Colour of titles, operators and cell labels.
    cell
        Resting style of an ordinary cell.
    padding
        Style of a zero-padding cell (dashed, dimmed).
    target
        The cell being computed (teal fill in the article).
    operand
        Cells multiplied together to compute the target (yellow outline in the article).
    footprint
        Outline drawn around the kernel's window on the input.
    padding_text
        Colour of the ``0`` written in padding cells.
    """

    background: str
    text: str
    cell: CellStyle
    padding: CellStyle
    target: CellStyle
    operand: CellStyle
    footprint: CellStyle
    padding_text: str = field(default="#888888")

    def __post_init__(self) -> None:
        _check_colour("background", self.background)
        _check_colour("text", self.text)
        _check_colour("padding_text", self.padding_text)


#: manim's TEAL_C and YELLOW_C, as in the article's animations.
_TEAL = "#5CD0B3"
_YELLOW = "#F7D96F"

#: Default theme, matching the article: black background, teal target, yellow operands.
DARK = Theme(
    background="#000000",
    text="#FFFFFF",
    cell=CellStyle(fill_color="#000000", fill_opacity=0.0, stroke_color="#BBBBBB",
                   stroke_width=2.0),
    padding=CellStyle(fill_color="#000000", fill_opacity=0.0, stroke_color="#666666",
                      stroke_width=1.5, dashed=True),
    target=CellStyle(fill_color=_TEAL, fill_opacity=0.75, stroke_color=_TEAL,
                     stroke_width=3.0),
    operand=CellStyle(fill_color=_YELLOW, fill_opacity=0.0, stroke_color=_YELLOW,
                      stroke_width=5.0),
    footprint=CellStyle(fill_color="#FFFFFF", fill_opacity=0.0, stroke_color="#FFFFFF",
                        stroke_width=2.5, dashed=True),
    padding_text="#888888",
)

#: A light variant for slides and printed pages.
LIGHT = Theme(
    background="#FFFFFF",
    text="#000000",
    cell=CellStyle(fill_color="#FFFFFF", fill_opacity=0.0, stroke_color="#444444",
                   stroke_width=2.0),
    padding=CellStyle(fill_color="#FFFFFF", fill_opacity=0.0, stroke_color="#AAAAAA",
                      stroke_width=1.5, dashed=True),
    target=CellStyle(fill_color="#49A88F", fill_opacity=0.6, stroke_color="#49A88F",
                     stroke_width=3.0),
    operand=CellStyle(fill_color="#E8C11C", fill_opacity=0.0, stroke_color="#C29B00",
                      stroke_width=5.0),
    footprint=CellStyle(fill_color="#222222", fill_opacity=0.0, stroke_color="#222222",
                        stroke_width=2.5, dashed=True),
    padding_text="#999999",
)

#: Okabe-Ito colours, distinguishable with the common colour-vision deficiencies:
#: blue for the cell being computed, orange for the cells that multiply.
_CB_BLUE = "#0072B2"
_CB_ORANGE = "#E69F00"

#: Theme names accepted by :func:`theme_for` and the CLI's ``--theme``.
THEMES = _THEME_NAMES
#: Palette names accepted by :func:`theme_for` and the CLI's ``--palette``.
PALETTES = _PALETTE_NAMES


def theme_for(name: str = "dark", palette: str = "article") -> Theme:
    """Return the theme ``name`` (dark, light) in ``palette`` (article, colorblind).

    The article palette is teal and yellow; the colour-blind palette swaps them for the
    Okabe-Ito blue and orange, which stay distinct under deuteranopia, protanopia and
    tritanopia, and differ in lightness as well as hue.
    """
    if name not in THEMES:
        raise ValueError(f"unknown theme {name!r}; choose one of {', '.join(THEMES)}")
    if palette not in PALETTES:
        raise ValueError(f"unknown palette {palette!r}; choose one of {', '.join(PALETTES)}")
    base = DARK if name == "dark" else LIGHT
    if palette == "article":
        return base
    from dataclasses import replace

    return replace(
        base,
        target=replace(base.target, fill_color=_CB_BLUE, stroke_color=_CB_BLUE,
                       fill_opacity=0.85),
        operand=replace(base.operand, fill_color=_CB_ORANGE, stroke_color=_CB_ORANGE),
    )


def load_theme(name: str, palette: str = "article") -> Theme:
    """The theme ``name`` in the highlight colours of ``palette``.

    Raises
    ------
    convviz.config.SettingError
        When this version of convviz has no such theme or palette.
    """
    from convviz.config import SettingError

    try:
        return theme_for(name, palette)
    except ValueError as err:
        raise SettingError("theme", str(err)) from None
