"""Where every grid goes in the frame, and how big one cell is.

Pure arithmetic, no manim import: given the arrays of an equation (``a * W + b = z``),
each made of one or more 2-D slices, place them left to right in one row that fits a
16:9 manim frame, leaving a band at the bottom for the equation panel. One cell size is
chosen for every grid so cells line up visually across arrays. A multi-channel array
stacks its slices top to bottom, and when the stack would be too tall, wraps it into
several columns; slices never overlap, so no cell is hidden.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

__all__ = [
    "FRAME",
    "STACK_PREFERENCE",
    "ArrayPlacement",
    "ArrayShape",
    "Box",
    "FrameSpec",
    "Layout",
    "LayoutError",
    "SliceShape",
    "layout_row",
]


#: A layout with fewer slice columns is preferred while its cells are at least this
#: fraction of the largest achievable cell size.
STACK_PREFERENCE = 0.8


class LayoutError(ValueError):
    """The arrays cannot be placed in the frame at a usable size."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in scene coordinates (y grows upwards)."""

    center_x: float
    center_y: float
    width: float
    height: float

    @property
    def left(self) -> float:
        """Smallest x."""
        return self.center_x - self.width / 2

    @property
    def right(self) -> float:
        """Largest x."""
        return self.center_x + self.width / 2

    @property
    def top(self) -> float:
        """Largest y."""
        return self.center_y + self.height / 2

    @property
    def bottom(self) -> float:
        """Smallest y."""
        return self.center_y - self.height / 2

    @property
    def center(self) -> tuple[float, float]:
        """``(x, y)`` of the centre."""
        return (self.center_x, self.center_y)

    def corners(self) -> tuple[tuple[float, float], ...]:
        """Corners clockwise from the upper left: UL, UR, LR, LL."""
        return (
            (self.left, self.top),
            (self.right, self.top),
            (self.right, self.bottom),
            (self.left, self.bottom),
        )

    def contains(self, other: Box, tol: float = 1e-9) -> bool:
        """Whether ``other`` lies inside this box."""
        return (
            other.left >= self.left - tol
            and other.right <= self.right + tol
            and other.bottom >= self.bottom - tol
            and other.top <= self.top + tol
        )

    def overlaps(self, other: Box, tol: float = 1e-9) -> bool:
        """Whether the interiors of the two boxes intersect."""
        return (
            self.left < other.right - tol
            and other.left < self.right - tol
            and self.bottom < other.top - tol
            and other.bottom < self.top - tol
        )


@dataclass(frozen=True)
class SliceShape:
    """One 2-D slice: ``rows`` x ``cols`` real cells plus a ring of padding cells.

    ``padding`` is one width for every side, or ``(rows, cols)``: ``rows`` cells above and
    below, ``cols`` cells left and right (it is stored as the pair).
    """

    rows: int
    cols: int
    padding: int | tuple[int, int] = 0

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"a slice needs at least one cell, got {self.rows}x{self.cols}")
        pair = (self.padding, self.padding) if isinstance(self.padding, int) else self.padding
        if len(pair) != 2 or min(pair) < 0:
            raise ValueError(f"padding must be >= 0, got {self.padding}")
        object.__setattr__(self, "padding", (int(pair[0]), int(pair[1])))

    @property
    def pad(self) -> tuple[int, int]:
        """Padding cells above/below and left/right."""
        return cast(tuple[int, int], self.padding)

    @property
    def padded_rows(self) -> int:
        """Rows drawn, padding included."""
        return self.rows + 2 * self.pad[0]

    @property
    def padded_cols(self) -> int:
        """Columns drawn, padding included."""
        return self.cols + 2 * self.pad[1]


@dataclass(frozen=True)
class ArrayShape:
    """An array as drawn: its name (any key the caller likes) and its slices in order."""

    name: str
    slices: tuple[SliceShape, ...]
    #: How many consecutive slices belong together (a kernel's channels of one filter):
    #: a column of slices then holds whole groups, or a whole group fills whole columns,
    #: so no group is split across a column's end.
    group: int = 1

    def __post_init__(self) -> None:
        if not self.slices:
            raise ValueError(f"array {self.name!r} has no slices")
        if self.group < 1:
            raise ValueError(f"array {self.name!r}: group must be positive, got {self.group}")

    @property
    def slot_rows(self) -> int:
        """Height in cells of the largest slice (every slice gets a slot this size)."""
        return max(s.padded_rows for s in self.slices)

    @property
    def slot_cols(self) -> int:
        """Width in cells of the largest slice."""
        return max(s.padded_cols for s in self.slices)


@dataclass(frozen=True)
class FrameSpec:
    """The frame and the fixed spaces of a layout, in scene units.

    Attributes
    ----------
    width, height
        manim frame size (14.22 x 8 for 16:9).
    margin
        Empty border kept on every side.
    caption_height
        Band kept free at the top for a caption line.
    panel_height
        Band kept free at the bottom for the equation panel.
    title_height
        Space above each array for its title.
    operator_width
        Horizontal space for an operator between two arrays (gaps included).
    slice_gap
        Gap between two slices of one array, in cells.
    max_cell
        Largest cell size, so that tiny arrays are not blown up.
    min_cell
        Smallest usable cell size; below it :func:`layout_row` raises.
    """

    width: float = 128 / 9
    height: float = 8.0
    margin: float = 0.3
    caption_height: float = 0.0
    panel_height: float = 1.6
    title_height: float = 0.6
    operator_width: float = 0.9
    slice_gap: float = 0.5
    max_cell: float = 0.9
    min_cell: float = 0.04

    @property
    def frame_box(self) -> Box:
        """The whole frame."""
        return Box(0.0, 0.0, self.width, self.height)

    @property
    def content_box(self) -> Box:
        """Where arrays, titles and operators may go."""
        top = self.height / 2 - self.margin - self.caption_height
        bottom = -self.height / 2 + self.panel_height
        width = self.width - 2 * self.margin
        return Box(0.0, (top + bottom) / 2, width, top - bottom)

    @property
    def caption_box(self) -> Box:
        """The caption band at the top (zero height when there is none)."""
        top = self.height / 2 - self.margin
        return Box(
            0.0, top - self.caption_height / 2, self.width - 2 * self.margin, self.caption_height
        )

    @property
    def panel_box(self) -> Box:
        """The equation panel band at the bottom."""
        bottom = -self.height / 2 + self.margin
        top = -self.height / 2 + self.panel_height
        return Box(0.0, (top + bottom) / 2, self.width - 2 * self.margin, top - bottom)


#: The default 16:9 frame.
FRAME = FrameSpec()


@dataclass(frozen=True)
class ArrayPlacement:
    """Where one array landed.

    Attributes
    ----------
    name
        The :attr:`ArrayShape.name` it was given.
    box
        Bounding box of its grids (titles excluded).
    title
        Box reserved for its title, just above ``box``.
    slices
        Box of each slice, padding ring included, in slice order.
    columns
        How many columns its slices were wrapped into.
    """

    name: str
    box: Box
    title: Box
    slices: tuple[Box, ...]
    columns: int


@dataclass(frozen=True)
class Layout:
    """Result of :func:`layout_row`."""

    cell_size: float
    arrays: tuple[ArrayPlacement, ...]
    operators: tuple[tuple[str, Box], ...]
    panel: Box
    frame: FrameSpec = field(default=FRAME)

    def array(self, name: str) -> ArrayPlacement:
        """Return the placement of the array called ``name``."""
        for placement in self.arrays:
            if placement.name == name:
                return placement
        raise KeyError(name)


def _grid_extent(array: ArrayShape, columns: int, gap: float) -> tuple[float, float]:
    """Width and height in cells of ``array`` wrapped into ``columns`` columns."""
    rows = math.ceil(len(array.slices) / columns)
    width = columns * array.slot_cols + (columns - 1) * gap
    height = rows * array.slot_rows + (rows - 1) * gap
    return width, height


def _column_choices(n: int, group: int = 1) -> list[int]:
    """Distinct column counts worth trying for ``n`` slices (fewest columns first).

    Slices fill a column top to bottom, then the next; with groups of ``group`` slices,
    only column heights that are a multiple or a divisor of the group are tried.
    """
    choices = {math.ceil(n / rows) for rows in range(1, n + 1)}
    # a column count fills ceil(n / columns) slices a column
    return sorted(
        c for c in choices if math.ceil(n / c) % group == 0 or group % math.ceil(n / c) == 0
    )


def _cell_size(
    arrays: Sequence[ArrayShape], columns: Sequence[int], frame: FrameSpec
) -> float:
    content = frame.content_box
    extents = [_grid_extent(a, k, frame.slice_gap) for a, k in zip(arrays, columns, strict=True)]
    width_cells = sum(w for w, _ in extents)
    height_cells = max(h for _, h in extents)
    free_width = content.width - frame.operator_width * (len(arrays) - 1)
    free_height = content.height - frame.title_height
    if free_width <= 0 or free_height <= 0:
        return 0.0
    return min(frame.max_cell, free_width / width_cells, free_height / height_cells)


def layout_row(
    arrays: Sequence[ArrayShape],
    operators: Sequence[str],
    frame: FrameSpec = FRAME,
) -> Layout:
    """Place ``arrays`` left to right with ``operators`` between them.

    Parameters
    ----------
    arrays
        The arrays in reading order.
    operators
        One operator between each pair of neighbours, e.g. ``["*", "+", "="]``.
    frame
        Frame size and fixed spaces.

    Returns
    -------
    Layout
        The common cell size and the box of every slice, title and operator. The whole
        row is centred horizontally and vertically in the content area.

    Raises
    ------
    LayoutError
        When the operator count is wrong, names repeat, or cells would be smaller than
        ``frame.min_cell``.
    """
    if not arrays:
        raise LayoutError("nothing to lay out")
    if len(operators) != len(arrays) - 1:
        raise LayoutError(
            f"{len(arrays)} arrays need {len(arrays) - 1} operators, got {len(operators)}"
        )
    names = [a.name for a in arrays]
    if len(set(names)) != len(names):
        raise LayoutError(f"array names must be distinct, got {names}")

    candidates = [
        (_cell_size(arrays, columns, frame), columns)
        for columns in itertools.product(
            *(_column_choices(len(a.slices), a.group) for a in arrays)
        )
    ]
    largest = max(cell for cell, _ in candidates)
    # Stacks read most naturally: take the fewest columns whose cells are nearly as large
    # as the largest possible, then the largest cells among those.
    cell, chosen = min(
        ((c, k) for c, k in candidates if c >= STACK_PREFERENCE * largest),
        key=lambda ck: (sum(ck[1]), -ck[0]),
    )
    if cell < frame.min_cell:
        raise LayoutError(
            f"arrays do not fit the frame: cells would be {cell:.3f} units "
            f"(minimum {frame.min_cell})"
        )

    gap = frame.slice_gap * cell
    extents = [_grid_extent(a, k, frame.slice_gap) for a, k in zip(arrays, chosen, strict=True)]
    total_width = sum(w for w, _ in extents) * cell + frame.operator_width * (len(arrays) - 1)
    tallest = max(h for _, h in extents) * cell
    content = frame.content_box
    # Centre the composition (tallest grid plus its title) vertically in the content.
    block_height = tallest + frame.title_height
    center_y = content.center_y - block_height / 2 + tallest / 2

    placements: list[ArrayPlacement] = []
    op_boxes: list[tuple[str, Box]] = []
    x = -total_width / 2
    for i, (array, columns, (w_cells, h_cells)) in enumerate(
        zip(arrays, chosen, extents, strict=True)
    ):
        width, height = w_cells * cell, h_cells * cell
        box = Box(x + width / 2, center_y, width, height)
        rows = math.ceil(len(array.slices) / columns)
        slot_w, slot_h = array.slot_cols * cell, array.slot_rows * cell
        slices: list[Box] = []
        for s, shape in enumerate(array.slices):
            col, row = divmod(s, rows)  # fill a column top to bottom, then the next
            slot_x = box.left + col * (slot_w + gap) + slot_w / 2
            slot_y = box.top - row * (slot_h + gap) - slot_h / 2
            slices.append(
                Box(slot_x, slot_y, shape.padded_cols * cell, shape.padded_rows * cell)
            )
        title = Box(box.center_x, box.top + frame.title_height / 2, width, frame.title_height)
        placements.append(ArrayPlacement(array.name, box, title, tuple(slices), columns))
        x += width
        if i < len(operators):
            op_boxes.append(
                (operators[i], Box(x + frame.operator_width / 2, center_y,
                                   frame.operator_width, frame.operator_width))
            )
            x += frame.operator_width
    return Layout(cell, tuple(placements), tuple(op_boxes), frame.panel_box, frame)
