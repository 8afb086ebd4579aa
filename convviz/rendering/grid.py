"""``CellGrid``: one 2-D slice of an array drawn as a grid of squares.

A grid is built once per scene and restyled at every animation step: restyling changes
the colours of the existing squares and moves the one footprint rectangle, it never
adds mobjects, so Cairo's static-layer caching keeps working and steps stay cheap.

Cells are addressed by 1-based display indices ``(row, col)``. Padding cells, drawn
dashed around the real ones and reading ``0``, have row indices from ``1 - ph`` to
``rows + ph`` and column indices from ``1 - pw`` to ``cols + pw`` for padding
``(ph, pw)``. A scalar (``()``) or a 1-D index ``(i,)`` is accepted for a grid with a
single row or column.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar, cast

import numpy as np
from manim import DashedVMobject, ManimColor, Mobject, Rectangle, Square, VGroup, VMobject

from .layout import Box
from .theme import DARK, CellStyle, Theme

__all__ = [
    "CellGrid",
    "GridIndex",
    "critical_point",
    "extent",
    "label_scale",
    "move_centre",
    "scale_about",
    "title_scale",
]

#: 1-based ``(row, col)``, or a shorter display index normalised by the grid.
GridIndex = tuple[int, ...]

#: A label is shrunk to fit this fraction of the cell's width and height.
_LABEL_WIDTH = 0.8
_LABEL_HEIGHT = 0.42
#: Height of the ``0`` in a padding cell, as a fraction of the cell.
_PAD_LABEL_HEIGHT = 0.3


# -- geometry as manim computes it, without its per-call overhead ----------------------
# Laying out a phase places thousands of squares and labels; manim's ``get_center``,
# ``move_to``, ``scale`` and ``width`` walk the family and build Python tuples of points
# each time. These give the same numbers (the same points, the same reductions) in a
# few numpy calls.
def _anchors(mob: Mobject) -> np.ndarray:
    """The points manim bounds ``mob`` by: its family's anchors (all points if not a VMobject)."""
    if not isinstance(mob, VMobject):
        return np.asarray(mob.get_points_defining_boundary())
    parts = []
    for m in mob.get_family():
        points = m.points
        if len(points) == 1:
            parts.append(points)
        elif len(points):
            n: int = getattr(m, "n_points_per_cubic_curve", 4)
            parts.append(points[::n])
            parts.append(points[n - 1::n])
    return np.concatenate(parts) if parts else np.zeros((0, 3))


def critical_point(mob: Mobject, direction: np.ndarray) -> np.ndarray:
    """``mob.get_critical_point(direction)`` (the same numbers)."""
    points = _anchors(mob)
    if len(points) == 0:
        return np.zeros(3)
    low, high = points.min(axis=0), points.max(axis=0)
    toward = np.asarray(direction)
    centre: np.ndarray = np.where(toward < 0, low, np.where(toward > 0, high, (low + high) / 2))
    return centre


_ORIGIN = np.zeros(3)


def extent(mob: Mobject) -> tuple[float, float]:
    """``(mob.width, mob.height)`` (the same numbers: every point, handles included)."""
    parts = [m.points for m in mob.get_family() if len(m.points)]
    if not parts:
        return (0.0, 0.0)
    points = np.concatenate(parts) if len(parts) > 1 else parts[0]
    size = points.max(axis=0) - points.min(axis=0)
    return (float(size[0]), float(size[1]))


def move_centre(mob: Mobject, target: np.ndarray) -> Mobject:
    """``mob.move_to(target)`` for a point ``target``."""
    return mob.shift(np.asarray(target, dtype=float) - critical_point(mob, _ORIGIN))


def scale_about(mob: Mobject, factor: float) -> Mobject:
    """``mob.scale(factor)`` (about its centre; stroke widths unchanged)."""
    about = critical_point(mob, _ORIGIN)
    for m in mob.family_members_with_points():
        m.points -= about
        m.points = factor * m.points
        m.points += about
    return mob


_M = TypeVar("_M", bound=Mobject)
#: Attribute types a copy may share with its original: immutable values (manim itself
#: shares a ManimColor's value between colours made from one another).
_SHARED: set[type] = {int, float, str, bool, type(None), ManimColor}


def light_copy(mob: _M) -> _M:
    """``mob.copy()`` for a mobject without parts or updaters, without ``deepcopy``'s walk.

    manim's copy deep-copies every attribute through ``copy.deepcopy``'s memo machinery;
    a lone square has only arrays, numbers, enums, colours, empty lists and an empty
    group, so copying those directly gives an equal, independent mobject several times
    faster. Anything else falls back to ``mob.copy()``.
    """
    if mob.submobjects or mob.updaters or type(mob).__deepcopy__ is not Mobject.__deepcopy__:
        return mob.copy()
    result = type(mob).__new__(type(mob))
    values = result.__dict__
    for key, value in mob.__dict__.items():
        kind = type(value)
        if kind is np.ndarray:
            values[key] = value.copy()
        elif kind in _SHARED or isinstance(value, enum.Enum):
            values[key] = value
        elif kind is list and not value:
            values[key] = []
        elif isinstance(value, Mobject):
            values[key] = light_copy(value)
        else:
            values[key] = copy.deepcopy(value)
    result.original_id = str(id(mob))
    return result


#: Prototypes of what every grid makes: building a manim mobject costs several times as
#: much as copying one. They are never handed out, only copied (see :func:`_copy_of`).
_PROTOTYPES: dict[tuple[object, ...], Mobject] = {}


def _copy_of(key: tuple[object, ...], make: Callable[[], _M]) -> _M:
    """A copy of the prototype ``key`` (made by ``make`` the first time)."""
    proto = _PROTOTYPES.get(key)
    if proto is None:
        if len(_PROTOTYPES) > 256:
            _PROTOTYPES.clear()
        proto = _PROTOTYPES[key] = make()
    return cast(_M, light_copy(proto))


def _group() -> VGroup:
    """``VGroup()``."""
    return _copy_of(("group",), VGroup)


def _prototypes(cell_size: float, style: CellStyle, *,
                dashed: bool) -> tuple[VMobject, VMobject | None]:
    """A square of a grid painted in ``style`` (and its dashed outline), centred at 0."""

    def square() -> VMobject:
        made: VMobject = Square(side_length=cell_size)
        outline = (DashedVMobject(Square(side_length=cell_size), num_dashes=8)
                   if dashed else None)
        CellGrid._paint(made, outline, style)
        if outline is not None:
            _PROTOTYPES[("outline", cell_size, style)] = outline
        return made

    made = _copy_of(("square", cell_size, style, dashed), square)
    outline = (cast(VMobject, _PROTOTYPES[("outline", cell_size, style)].copy()) if dashed
               else None)
    return made, outline


def _footprint(cell_size: float, style: CellStyle) -> VMobject:
    """The footprint rectangle of a grid: ``style``'s colours, fully transparent."""

    def make() -> VMobject:
        rect = Rectangle(width=cell_size, height=cell_size)
        rect.set_fill(style.fill_color, opacity=0.0)
        rect.set_stroke(style.stroke_color, width=style.stroke_width, opacity=0.0)
        return rect

    return _copy_of(("footprint", cell_size, style), make)


def title_scale(title: VMobject, height: float, width: float | None = None) -> float:
    """The scale a title gets above a grid: shrunk to ``height``, then to ``width``."""
    w, h = extent(title)
    scale = 1.0
    if h > height:
        scale = height / h
    if width is not None and w * scale > width:
        scale = width / w
    return scale


def label_scale(
    labels: Iterable[VMobject], cell_size: float, min_label_height: float = 0.1
) -> float | None:
    """One scale that fits every label in a cell of ``cell_size``, or None if unreadable.

    Unreadable: the tallest label, so scaled, is shorter than ``min_label_height``.
    """
    sizes = [extent(m) for m in labels]
    sized = [(w, h) for w, h in sizes if w > 0 and h > 0]
    if not sized:
        return None
    scale = min(
        min(_LABEL_WIDTH * cell_size / w, _LABEL_HEIGHT * cell_size / h) for w, h in sized
    )
    if max(h for _, h in sized) * scale < min_label_height:
        return None
    return scale


class CellGrid(VGroup):
    """Rows x columns of squares, with optional title, labels and padding ring.

    Parameters
    ----------
    rows, cols
        Number of real cells.
    cell_size
        Side of one square, in scene units.
    padding
        Width of the dashed zero-padding ring, in cells: one number for every side, or
        ``(rows, cols)``: ``rows`` above and below, ``cols`` left and right.
    theme
        Colours.
    title
        Already typeset title, put above the grid (scaled down to ``title_height``).
    labels
        Already typeset label per real cell, keyed by ``(row, col)``. They are scaled
        uniformly to fit the cells; when that would make them shorter than
        ``min_label_height`` they are all left out and the grid stays clean.
    pad_label
        Typeset ``0`` to copy into every padding cell (same readability rule).
    min_label_height
        Smallest readable label height in scene units (0.1 is 13 px at 1080p).
    title_buff
        Gap between the grid and its title.
    title_height
        Largest title height in scene units.
    title_width
        Largest title width in scene units (the room above the slice), ``None``: any.

    Attributes
    ----------
    squares
        Every square, padding included, in drawing order (restyled cells go last).
    labels
        The cell labels kept (empty when they gave way).
    pad_labels
        The ``0`` labels of the padding ring.
    title
        The title, or ``None``.
    footprint
        Outline rectangle moved by :meth:`show_footprint`; invisible until then.
    """

    def __init__(
        self,
        rows: int,
        cols: int,
        *,
        cell_size: float,
        padding: int | tuple[int, int] = 0,
        theme: Theme = DARK,
        title: VMobject | None = None,
        labels: Mapping[tuple[int, int], VMobject] | None = None,
        pad_label: VMobject | None = None,
        min_label_height: float = 0.1,
        title_height: float = 0.45,
        title_buff: float = 0.15,
        title_width: float | None = None,
    ) -> None:
        super().__init__()
        if rows < 1 or cols < 1:
            raise ValueError(f"a grid needs at least one cell, got {rows}x{cols}")
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        if ph < 0 or pw < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        if cell_size <= 0:
            raise ValueError(f"cell_size must be positive, got {cell_size}")
        self.rows, self.cols = rows, cols
        #: Padding cells above/below and left/right of the real ones.
        self.padding: tuple[int, int] = (ph, pw)
        self.cell_size = cell_size
        self.theme = theme
        self.min_label_height = min_label_height

        self._squares: dict[tuple[int, int], VMobject] = {}
        self._outlines: dict[tuple[int, int], VMobject] = {}
        self.squares = _group()
        self.pad_outlines = _group()
        # Copies of one square (and one dashed outline), already painted in their resting
        # style: building a manim Square costs ten times as much as copying one, and a
        # dashed outline a hundred times. The prototypes are centred on the origin, so
        # a copy is moved into place by adding its centre to its points.
        real_proto, _ = _prototypes(cell_size, theme.cell, dashed=False)
        pad_proto: VMobject | None = None
        outline_proto: VMobject | None = None
        outline_centre = _ORIGIN
        squares: list[VMobject] = []
        outlines: list[VMobject] = []
        for r in range(1 - ph, rows + ph + 1):
            for c in range(1 - pw, cols + pw + 1):
                real = 1 <= r <= rows and 1 <= c <= cols
                if not real and pad_proto is None:
                    pad_proto, outline_proto = _prototypes(cell_size, theme.padding,
                                                           dashed=True)
                    assert outline_proto is not None
                    outline_centre = critical_point(outline_proto, _ORIGIN)
                proto = real_proto if real else pad_proto
                assert proto is not None
                square = light_copy(proto)
                square.points = square.points + self._center_of(r, c)
                self._squares[(r, c)] = square
                squares.append(square)
                if not real:
                    assert outline_proto is not None
                    outline = outline_proto.copy()
                    outline.shift(critical_point(square, _ORIGIN) - outline_centre)
                    self._outlines[(r, c)] = outline
                    outlines.append(outline)
        self.squares.add(*squares)
        self.pad_outlines.add(*outlines)
        self.add(self.squares, self.pad_outlines)

        self.labels = _group()
        #: The label of each labelled cell, by ``(row, col)`` (empty when labels gave way).
        self.label_of: dict[tuple[int, int], VMobject] = {}
        if labels:
            unknown = [k for k in labels if not self.is_real(k)]
            if unknown:
                raise KeyError(f"labels for cells outside the {rows}x{cols} grid: {unknown}")
            scale = self._label_scale(labels.values())
            if scale is not None:
                for key, label in labels.items():
                    scale_about(label, scale)
                    move_centre(label, critical_point(self._squares[key], _ORIGIN))
                    self.label_of[key] = label
                self.labels.add(*self.label_of.values())
        self.pad_labels = _group()
        if pad_label is not None and (ph or pw):
            # A lone digit would be scaled up to fill the cell; keep it digit-sized.
            pad_label.scale_to_fit_height(_PAD_LABEL_HEIGHT * cell_size)
            if pad_label.height >= min_label_height:
                pad_label.set_fill(theme.padding_text)
                centre = critical_point(pad_label, _ORIGIN)
                zeros = []
                for key, square in self._squares.items():
                    if not self.is_real(key):
                        zero = pad_label.copy()
                        zero.shift(critical_point(square, _ORIGIN) - centre)
                        zeros.append(zero)
                self.pad_labels.add(*zeros)
        self.add(self.pad_labels, self.labels)

        self.title = title
        if title is not None:
            scale = title_scale(title, title_height, title_width)
            if scale < 1.0:
                title.scale(scale)
            up = np.array([0.0, 1.0, 0.0])
            # title.next_to(self.squares, UP, buff=title_buff)
            title.shift(critical_point(self.squares, up) - critical_point(title, -up)
                        + title_buff * up)
            self.add(title)

        self.footprint = _footprint(cell_size, theme.footprint)
        self.add(self.footprint)

    @staticmethod
    def _paint(square: VMobject, outline: VMobject | None, style: CellStyle) -> None:
        """Give a square (and its dashed outline, for padding cells) a style."""
        square.set_fill(style.fill_color, opacity=style.fill_opacity)
        if outline is not None and style.dashed:
            square.set_stroke(style.stroke_color, width=style.stroke_width, opacity=0.0)
            outline.set_stroke(style.stroke_color, width=style.stroke_width, opacity=1.0)
        else:
            square.set_stroke(style.stroke_color, width=style.stroke_width, opacity=1.0)
            if outline is not None:
                outline.set_stroke(opacity=0.0)

    # -- geometry ---------------------------------------------------------------------
    def _center_of(self, row: int, col: int) -> np.ndarray:
        """Centre of cell (row, col) before the grid is moved (grid centred at origin)."""
        x = (col - (self.cols + 1) / 2) * self.cell_size
        y = ((self.rows + 1) / 2 - row) * self.cell_size
        return np.array([x, y, 0.0])

    def key(self, index: GridIndex) -> tuple[int, int]:
        """Normalise a display index to ``(row, col)`` and check it is on the grid.

        ``()`` means the only cell of a 1x1 grid; ``(i,)`` means row ``i`` of a single
        column or column ``i`` of a single row.
        """
        if len(index) == 2:
            key = (index[0], index[1])
        elif len(index) == 0 and self.rows == self.cols == 1:
            key = (1, 1)
        elif len(index) == 1 and self.cols == 1:
            key = (index[0], 1)
        elif len(index) == 1 and self.rows == 1:
            key = (1, index[0])
        else:
            raise KeyError(f"index {index} does not address a {self.rows}x{self.cols} grid")
        if key not in self._squares:
            raise KeyError(
                f"index {index} is outside the {self.rows}x{self.cols} grid "
                f"(padding {self.padding})"
            )
        return key

    def is_real(self, index: GridIndex) -> bool:
        """Whether ``index`` is a real cell (not padding)."""
        r, c = index if len(index) == 2 else (1, 1)
        return 1 <= r <= self.rows and 1 <= c <= self.cols

    def square(self, index: GridIndex) -> VMobject:
        """Return the square of one cell (padding cells included)."""
        return self._squares[self.key(index)]

    def cell_center(self, index: GridIndex) -> np.ndarray:
        """Centre of one cell in scene coordinates."""
        return np.asarray(self.square(index).get_center(), dtype=float)

    def cell_box(self, index: GridIndex) -> Box:
        """Return the cell's square in scene coordinates; ``.corners()`` gives its corners."""
        square = self.square(index)
        x, y, _ = critical_point(square, _ORIGIN)  # square.get_center()
        width, height = extent(square)
        return Box(float(x), float(y), width, height)

    def cells_box(self, indices: Iterable[GridIndex]) -> Box:
        """Smallest box around several cells."""
        boxes = [self.cell_box(i) for i in indices]
        if not boxes:
            raise ValueError("no cells given")
        left = min(b.left for b in boxes)
        right = max(b.right for b in boxes)
        bottom = min(b.bottom for b in boxes)
        top = max(b.top for b in boxes)
        return Box((left + right) / 2, (top + bottom) / 2, right - left, top - bottom)

    def _label_scale(self, labels: Iterable[VMobject]) -> float | None:
        """Return one scale fitting every label in a cell, or None if unreadable."""
        return label_scale(labels, self.cell_size, self.min_label_height)

    # -- restyling --------------------------------------------------------------------
    def base_style(self, index: GridIndex) -> CellStyle:
        """Resting style of a cell: ordinary or padding."""
        return self.theme.cell if self.is_real(self.key(index)) else self.theme.padding

    def restyle(self, index: GridIndex, style: CellStyle) -> None:
        """Paint one existing square with ``style`` and draw it above its neighbours."""
        key = self.key(index)
        square = self._squares[key]
        self._paint(square, self._outlines.get(key), style)
        if style != self.base_style(key):
            # Later submobjects are drawn on top: a thick outline is not half-covered.
            self.squares.remove(square)
            self.squares.add(square)

    def highlight(self, indices: Iterable[GridIndex], style: CellStyle) -> None:
        """Restyle several cells at once."""
        for index in indices:
            self.restyle(index, style)

    def reset(self) -> None:
        """Return every cell to its resting style and hide the footprint."""
        for key in self._squares:
            self.restyle(key, self.base_style(key))
        if hasattr(self, "footprint"):
            self.hide_footprint()

    def style_of(self, index: GridIndex) -> tuple[str, float, str, float]:
        """``(fill_hex, fill_opacity, stroke_hex, stroke_width)`` of a square as drawn."""
        square = self.square(index)
        # manim reports a colour whose RGBA is all zeros (black, transparent) as None.
        fill, stroke = square.get_fill_color(), square.get_stroke_color()
        return (
            "#000000" if fill is None else fill.to_hex().upper(),
            float(square.get_fill_opacity()),
            "#000000" if stroke is None else stroke.to_hex().upper(),
            float(square.get_stroke_width()),
        )

    # -- footprint ----------------------------------------------------------------------
    def footprint_box(self, indices: Sequence[GridIndex]) -> Box:
        """Where :meth:`show_footprint` would put the outline (for animating it)."""
        return self.cells_box(indices)

    def show_footprint(self, indices: Sequence[GridIndex]) -> VMobject:
        """Move the footprint outline around ``indices`` and make it visible."""
        box = self.footprint_box(indices)
        rect = self.footprint
        rect.stretch_to_fit_width(box.width)
        rect.stretch_to_fit_height(box.height)
        rect.move_to(np.array([box.center_x, box.center_y, 0.0]))
        rect.set_stroke(opacity=1.0)
        return rect

    def hide_footprint(self) -> None:
        """Make the footprint outline invisible (it stays in the scene)."""
        self.footprint.set_stroke(opacity=0.0)
