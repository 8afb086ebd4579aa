"""Manim scenes that animate a layer's highlight maps.

Every scene draws a :class:`~convviz.rendering.plan.ScenePlan`: grids laid out once,
labels typeset in one LaTeX run, and then, step by step, the target cell filled teal and
the cells that multiply to produce it outlined yellow. Which cells light up comes only
from the plan, i.e. from reflecting the derived expressions.

Each step is one short ``play`` that restyles only the squares that change (so Cairo
redraws little), followed by a ``wait`` in which the frame is still (so frames are
copied, not redrawn). The times of both are recorded for the timeline.

Scenes take a :class:`~convviz.spec.ConvSpec`, so they work from ``manim`` files, from
``%%manim`` in Jupyter and as base classes::

    class Mine(ForwardConvolution):
        def __init__(self, **kwargs):
            super().__init__(ConvSpec(input_size=(5, 5), stride=2), **kwargs)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from manim import (
    DOWN,
    PI,
    Animation,
    FadeIn,
    FadeOut,
    ManimColor,
    Mobject,
    UpdateFromAlphaFunc,
    VGroup,
    VMobject,
    smooth,
)

from convviz.rendering.camera import PathCachingCamera
from convviz.rendering.grid import (
    CellGrid,
    critical_point,
    extent,
    label_scale,
    move_centre,
    scale_about,
    title_scale,
)
from convviz.rendering.labels import CLIP_FRAME, MIN_SLICE_TITLE, clip_layout, clip_text
from convviz.rendering.layout import Box, Layout
from convviz.rendering.plan import ScenePlan, StepPlan, plan_scene
from convviz.rendering.segment import OneSegmentScene
from convviz.rendering.theme import DARK, CellStyle, Theme
from convviz.rendering.typeset import typeset
from convviz.spec import ConvSpec

if TYPE_CHECKING:  # imported lazily: a scene given its plan needs no SymPy at all
    from convviz.derivation import Derivation
    from convviz.rendering.values import LayerValues

__all__ = [
    "BiasGradient",
    "ConvolutionScene",
    "ForwardConvolution",
    "InputGradient",
    "InputGradientAsFullConvolution",
    "LayerScene",
    "StepTiming",
    "WeightGradient",
    "scene_class",
]

#: Style tuple as reported by :meth:`CellGrid.style_of`.
StyleTuple = tuple[str, float, str, float]

#: A built-up fraction in an equation (not ``\tfrac``, which is one line tall).
_FRACTION = re.compile(r"(?<![td])\\frac\{")

#: With ``show="both"``: the name's size relative to the number below it (as typeset).
SYMBOL_SCALE = 0.6
#: With ``show="both"``: the band of the cell the name fills at most (one size per grid),
#: and the band its number fills (one size per number), as fractions of the cell.
BOTH_SYMBOL_HEIGHT, BOTH_NUMBER_HEIGHT, BOTH_WIDTH = 0.24, 0.3, 0.8
#: With numbers: each number fills at most this much of its cell (one size per label, so
#: that one wide ``-0.25`` does not shrink every other number of its grid).
NUMBER_HEIGHT, NUMBER_WIDTH = 0.34, 0.84
#: Opacity of the labels of masked cells (ReLU's backward pass where ``z <= 0``).
MASKED_LABEL_OPACITY = 0.35


def winner_style(theme: Theme) -> CellStyle:
    """Max pooling's winner: a thick outline in the target colour over a faint fill."""
    return CellStyle(
        fill_color=theme.target.fill_color,
        fill_opacity=0.25,
        stroke_color=theme.target.stroke_color,
        stroke_width=theme.operand.stroke_width + 3.0,
    )


def masked_style(theme: Theme) -> CellStyle:
    """A cell a mask zeroes: dimmed, filled with the padding grey."""
    return CellStyle(
        fill_color=theme.padding.stroke_color,
        fill_opacity=0.45,
        stroke_color=theme.padding.stroke_color,
        stroke_width=theme.cell.stroke_width,
    )


@dataclass(frozen=True)
class StepTiming:
    """When a step starts, when its highlights are fully shown, and when it ends."""

    start: float
    hold_start: float
    end: float


class _Restyle(Animation):
    """Fade squares from one style to another and glide footprint outlines.

    ``extra`` mobjects (labels above the squares) are animated as no-ops so that Cairo
    keeps drawing them on top of the moving squares.
    """

    def __init__(
        self,
        changes: Sequence[tuple[VMobject, StyleTuple, StyleTuple]],
        moves: Sequence[tuple[VMobject, Box, Box, float, float]],
        extra: Iterable[VMobject],
        run_time: float,
    ) -> None:
        group = VGroup(*(m for m, _, _ in changes), *(m for m, *_ in moves), *extra)
        super().__init__(group, run_time=run_time, rate_func=smooth)
        self.changes = [
            (m, ManimColor(a[0]), a[1], ManimColor(a[2]), a[3], ManimColor(b[0]), b[1],
             ManimColor(b[2]), b[3])
            for m, a, b in changes
        ]
        self.moves = moves

    def create_starting_mobject(self) -> Mobject:
        """Skip manim's deep copy of every animated square: the start styles are stored."""
        return Mobject()

    def interpolate_mobject(self, alpha: float) -> None:
        a = self.rate_func(alpha)
        for m, f0, o0, s0, w0, f1, o1, s1, w1 in self.changes:
            if _plain(m):
                # What set_fill/set_stroke do to a lone square, without building colours.
                m.fill_rgbas[:, :3] = (f0._internal_value * (1 - a) + f1._internal_value * a)[:3]
                m.fill_rgbas[:, 3] = m.fill_opacity = o0 + (o1 - o0) * a
                m.stroke_rgbas[:, :3] = (
                    s0._internal_value * (1 - a) + s1._internal_value * a
                )[:3]
                m.stroke_width = w0 + (w1 - w0) * a
                continue
            m.set_fill(f0.interpolate(f1, a), opacity=o0 + (o1 - o0) * a)
            m.set_stroke(s0.interpolate(s1, a), width=w0 + (w1 - w0) * a)
        for rect, b0, b1, op0, op1 in self.moves:
            width = b0.width + (b1.width - b0.width) * a
            height = b0.height + (b1.height - b0.height) * a
            x = b0.center_x + (b1.center_x - b0.center_x) * a
            y = b0.center_y + (b1.center_y - b0.center_y) * a
            if rect.submobjects or not len(rect.points):
                rect.stretch_to_fit_width(max(width, 1e-3))
                rect.stretch_to_fit_height(max(height, 1e-3))
                rect.move_to(np.array([x, y, 0.0]))
            else:
                _stretch_to(rect, max(width, 1e-3), 0)
                _stretch_to(rect, max(height, 1e-3), 1)
                # move_to: the points shifted as ``Mobject.shift`` does
                rect.points = rect.points.astype("float")
                rect.points += np.array([x, y, 0.0]) - critical_point(rect, _CENTRE)
            rect.set_stroke(opacity=op0 + (op1 - op0) * a)


_CENTRE = np.zeros(3)


def _stretch_to(rect: VMobject, length: float, dim: int) -> None:
    """``rect.stretch_to_fit_width`` (``dim`` 0) or ``_height`` (1), for a lone mobject.

    The same arithmetic on its points, without manim's walks of the family.
    """
    column = rect.points[:, dim]
    old = column.max() - column.min()
    if old == 0:
        return
    factor = length / old
    about = critical_point(rect, _CENTRE)
    rect.points -= about
    rect.points[:, dim] *= factor
    rect.points += about


def _plain(m: VMobject) -> bool:
    """A VMobject whose fill and stroke are one colour each, with no parts and no sheen."""
    return (
        not m.submobjects
        and len(m.fill_rgbas) == 1
        and len(m.stroke_rgbas) == 1
        and m.get_sheen_factor() == 0
    )


def _title_room(slice_box: Box, array_box: Box, gap: float) -> float:
    """How wide a slice's title may be.

    Most of the way to its neighbours' titles, and not past its array's sides, where the
    operators are.
    """
    half = min(
        slice_box.width / 2 + 0.4 * gap,
        slice_box.center_x - array_box.left,
        array_box.right - slice_box.center_x,
    )
    return 2 * half


def _array_title_room(layout: Layout, role: str) -> float:
    """How wide an array's title may be: its own width and half the gap to each neighbour.

    The neighbours' titles keep within their own arrays' sides or their halves of the
    gaps, so titles of neighbouring arrays do not meet.
    """
    placements = layout.arrays
    n = next(k for k, p in enumerate(placements) if p.name == role)
    box = placements[n].box
    content = layout.frame.content_box
    left = (placements[n - 1].box.right + box.left) / 2 if n > 0 else content.left
    right = (
        (box.right + placements[n + 1].box.left) / 2 if n + 1 < len(placements)
        else content.right
    )
    return 2 * min(box.center_x - left, right - box.center_x)


class ConvolutionScene(OneSegmentScene):
    """Base class: animate one operation of a convolution layer.

    Parameters
    ----------
    spec
        The layer (default: the article's 6x6 input and 3x3 kernel).
    theme
        Colours (default :data:`~convviz.rendering.theme.DARK`, as in the article).
    step_time
        Seconds per step, transition included.
    transition
        Seconds of each step spent fading from the previous highlights.
    max_steps
        Animate only the first steps (``None``: all).
    derivation
        Reuse an existing derivation of ``spec`` instead of deriving again.
    plan
        Reuse a plan of this clip (e.g. from the plan cache); nothing is derived.
    on_step
        Called as ``on_step(done, total)`` after each step (progress display).
    tex
        Typesetting engine: ``"latex"`` (needs TeX) or ``"typst"`` (no TeX needed).
    loop
        End by fading back to the opening picture (for looping GIFs).
    values
        Draw the clip at these numbers (leaves by role in full shape, or a
        :class:`~convviz.rendering.values.LayerValues`); ignored when ``plan`` is given.
    show
        What the cells show with numbers: ``values`` (default), ``both`` or ``symbols``.
    """

    op: ClassVar[str] = "forward"
    tight_animations = (FadeIn, FadeOut, _Restyle)

    def __init__(
        self,
        spec: Any = None,
        *,
        theme: Theme = DARK,
        step_time: float = 1.0,
        transition: float = 0.25,
        max_steps: int | None = None,
        derivation: Derivation | None = None,
        plan: ScenePlan | None = None,
        on_step: Callable[[int, int], None] | None = None,
        tex: str = "latex",
        loop: bool = False,
        values: Mapping[str, Any] | LayerValues | None = None,
        show: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("camera_class", PathCachingCamera)
        super().__init__(**kwargs)
        self.tex = tex
        self.loop = loop
        self.spec = spec or ConvSpec()
        if step_time <= 0 or transition < 0:
            raise ValueError("step_time must be positive and transition at least 0")
        self.theme = theme
        self.step_time = step_time
        self.transition = min(transition, step_time / 2)
        self.max_steps = max_steps
        self.derivation = derivation
        self._given_plan = plan
        self.on_step = on_step
        self.values = values
        self.show = show
        self.plan: ScenePlan | None = None
        self.layout: Layout | None = None
        self.grids: dict[str, list[CellGrid]] = {}
        self.timings: list[StepTiming] = []
        self._lit: list[tuple[CellGrid, tuple[int, int]]] = []
        self._equations: list[VMobject] = []
        self._current_equation: VMobject | None = None
        self._built = False

    # ------------------------------------------------------------------ building
    def build(self) -> None:
        """Plan, lay out and typeset everything (no rendering); safe to call twice."""
        if self._built:
            return
        if self._given_plan is not None:
            plan = self._given_plan
        else:
            from convviz.derivation import derive
            from convviz.rendering.values import LayerValues, resolve_show

            numbers = self.values
            if isinstance(numbers, LayerValues):
                self.spec = numbers.spec
                numbers = numbers.arrays
            show = resolve_show(self.show, numbers is not None)
            derivation = self.derivation or derive(self.spec)
            self.derivation = derivation
            plan = plan_scene(derivation, self.op, max_steps=self.max_steps,
                              values=numbers, show=show)
        self.plan = plan
        layout = clip_layout(plan)
        self.layout = layout
        # Everything typeset in one LaTeX run: titles, labels, operators, equations.
        text = clip_text(plan, layout)
        labelled, slice_titles = text.labelled, text.slice_titles
        mobs = typeset(text.strings, color=self.theme.text, backend=self.tex)

        def mob(key: tuple[Any, ...]) -> VMobject:
            return mobs[text.slots[key]]

        multi_gap = text.title_gap
        self.grids = {}
        self.array_titles = VGroup()
        #: The title over a whole array, for arrays whose slices have no titles of their own.
        self.array_title_of: dict[str, VMobject] = {}
        # kernel titles: room and scale of each slice's, scale of the array's (the titles
        # shown before the turn get the same font size, see _unturned_title)
        self._kernel_title_rooms: list[float | None] = []
        self._kernel_title_scales: list[float] = []
        self._kernel_array_title_scale = 1.0
        readable = self.smallest_title(layout)
        for array in plan.arrays:
            placement = layout.array(array.role)
            grids: list[CellGrid] = []
            many = len(array.grids) > 1
            title_height = min(0.45, 0.8 * (multi_gap - 0.04)) if many else 0.5
            rooms = [
                _title_room(box, placement.box, multi_gap) if many else None
                for box in placement.slices
            ]
            # Slice titles where the gaps have room and each stays readable at the width
            # above its slice (as labels are left out when too small); else one title
            # for the whole array.
            titles = [mob(("title", array.role, n)) for n in range(len(array.grids))]
            scales = [title_scale(t, title_height, room) for t, room in zip(titles, rooms,
                                                                               strict=True)]
            titled = not many or (slice_titles and all(
                extent(t)[1] * scale
                >= readable * (2 if _FRACTION.search(grid.title) else 1)  # two lines
                for t, scale, grid in zip(titles, scales, array.grids, strict=True)
            ))
            if array.role == "kernel":
                self._kernel_title_rooms, self._kernel_title_scales = rooms, scales
            # Labels too small to read are left out (CellGrid); in titled slices, they
            # first give way to labels without the indices the title names (W_{2,1}).
            short = labelled and titled and any(
                g.short_labels and label_scale(
                    [mob(("label", array.role, n, cell)) for cell in g.labels],
                    layout.cell_size,
                ) is None
                for n, g in enumerate(array.grids)
            )
            kind = "short" if short else "label"
            for n, (grid_plan, box) in enumerate(zip(array.grids, placement.slices, strict=True)):
                labels = (
                    {
                        cell: self._cell_label(
                            mob((kind, array.role, n, cell)),
                            mob(("symbol", array.role, n, cell))
                            if cell in grid_plan.captions else None,
                        )
                        for cell in grid_plan.labels
                    }
                    if labelled
                    else None
                )
                zero = mob(("zero",)).copy()
                grid = CellGrid(
                    grid_plan.rows,
                    grid_plan.cols,
                    cell_size=layout.cell_size,
                    padding=grid_plan.padding,
                    theme=self.theme,
                    title=mob(("title", array.role, n)) if titled else None,
                    labels=labels,
                    pad_label=zero if any(grid_plan.padding) else None,
                    title_height=title_height,
                    title_buff=0.04 if many else 0.12,
                    title_width=rooms[n],
                )
                if grid_plan.captions:
                    self._fit_both(grid)
                elif array.values and plan.show == "values":
                    self._fit_labels(grid, NUMBER_HEIGHT, NUMBER_WIDTH)
                centre = critical_point(grid.squares, _CENTRE)
                grid.shift(np.array([box.center_x - centre[0], box.center_y - centre[1], 0.0]))
                if grid_plan.zeros:
                    self._mark_zeros(grid, grid_plan.zeros, mob(("zero",)))
                if grid_plan.masked:
                    self._mark_masked(grid, grid_plan.masked)
                grids.append(grid)
            self.grids[array.role] = grids
            if not titled:
                title = mob(("array-title", array.role))
                if title.height > 0:
                    room = _array_title_room(layout, array.role)
                    scale = min(1.0, 0.4 / title.height, room / title.width)
                    title.scale(scale)
                    if array.role == "kernel":
                        self._kernel_array_title_scale = scale
                title.move_to(np.array([placement.title.center_x, placement.title.center_y, 0]))
                self.array_titles.add(title)
                self.array_title_of[array.role] = title

        self.operator_mobs = VGroup()
        op_scale = None
        for k, (_, box) in enumerate(layout.operators):
            m = mob(("op", k))
            if op_scale is None:
                op_scale = min(1.2, 0.5 * box.width / max(m.width, 1e-6))
            m.scale(op_scale).move_to(np.array([box.center_x, box.center_y, 0.0]))
            self.operator_mobs.add(m)

        panel = layout.panel
        self._equations = []
        for k in range(len(plan.steps)):
            eq = mob(("eq", k))
            # a built-up fraction (softmax, sigmoid) is two lines tall: it gets two lines
            tall = _FRACTION.search(plan.steps[k].equation) is not None
            self._fit(eq, panel.width, min(0.9 if tall else 0.45, panel.height * 0.5 * (
                1.6 if tall else 1.0)))
            eq.move_to(np.array([panel.center_x, panel.center_y, 0.0]))
            self._equations.append(eq)
        caption_box = CLIP_FRAME.caption_box
        self.caption = mob(("caption",))
        self._fit(self.caption, caption_box.width, caption_box.height * 0.75)
        self.caption.move_to(np.array([caption_box.center_x, caption_box.center_y, 0.0]))
        self.caption.set_fill(self.theme.text, opacity=0.8)
        self.identity_mob: VMobject | None = None
        if plan.identity:
            ident = mob(("identity",))
            self._fit(ident, panel.width, min(0.6, panel.height * 0.6))
            ident.move_to(np.array([panel.center_x, panel.center_y, 0.0]))
            self.identity_mob = ident
        self.unrotated_title: VMobject | None = None
        self.unturned_titles: dict[int, VMobject] = {}
        if plan.rotate_kernel:
            self.unrotated_title = mob(("title-unrotated",))
            self.unturned_titles = {
                key[1]: mob(key) for key in text.slots if key[0] == "title-unrotated" and
                len(key) == 2
            }
        self._built = True

    def smallest_title(self, layout: Layout) -> float:
        """The height below which a slice title is unreadable, as built.

        That is before any scaling of the whole scene: a scene that shrinks what it built
        asks for more.
        """
        return MIN_SLICE_TITLE

    @staticmethod
    def _fit(m: VMobject, width: float, height: float) -> None:
        w, h = extent(m)
        if w <= 0 or h <= 0:
            return
        scale_about(m, min(width / w, height / h))

    @staticmethod
    def _cell_label(number: VMobject, symbol: VMobject | None) -> VMobject:
        """A cell's label: its text, or (``show="both"``) its name small above its number."""
        if symbol is None:
            return number
        small = symbol.scale(SYMBOL_SCALE)
        return VGroup(small, number).arrange(DOWN, buff=0.25 * small.height)

    @staticmethod
    def _fit_labels(grid: CellGrid, height: float, width: float) -> None:
        """Scale each label on its own to fill at most ``height`` x ``width`` of its cell.

        Numbers differ in width (``3`` and ``-0.25``), and two-line labels (name above
        number) need more of the cell than one line.
        """
        size = grid.cell_size
        for key, label in grid.label_of.items():
            w, h = extent(label)
            if w > 0 and h > 0:
                scale_about(label, min(width * size / w, height * size / h))
                move_centre(label, critical_point(grid.square(key), _CENTRE))

    @staticmethod
    def _fit_both(grid: CellGrid) -> None:
        """Name above number: the names at one size in the top band, numbers below."""
        size = grid.cell_size
        pairs = {key: label for key, label in grid.label_of.items()
                 if len(label.submobjects) == 2}
        names = [label.submobjects[0] for label in pairs.values()]
        sized = [m for m in names if m.width > 0 and m.height > 0]
        if not sized:
            return
        name_scale = min(min(BOTH_WIDTH * size / m.width, BOTH_SYMBOL_HEIGHT * size / m.height)
                         for m in sized)
        for key, label in pairs.items():
            name, number = label.submobjects
            centre = grid.square(key).get_center()
            if name.width > 0:
                name.scale(name_scale)
            name.move_to(centre + np.array([0.0, 0.27 * size, 0.0]))
            if number.width > 0 and number.height > 0:
                number.scale(min(BOTH_WIDTH * size / number.width,
                                 BOTH_NUMBER_HEIGHT * size / number.height))
            number.move_to(centre + np.array([0.0, -0.12 * size, 0.0]))

    def _mark_masked(self, grid: CellGrid, keys: Iterable[tuple[int, int]]) -> None:
        """Dim the cells a mask zeroes (their squares and labels)."""
        style = masked_style(self.theme)
        masked = set(keys)
        for key in masked:
            grid.restyle(key, style)
            label = grid.label_of.get(key)
            if label is not None:
                label.set_opacity(MASKED_LABEL_OPACITY)
        grid._masked = masked  # type: ignore[attr-defined]

    def _mark_zeros(self, grid: CellGrid, zeros: Iterable[tuple[int, int]], zero: VMobject) -> None:
        """Draw structural zeros (gaps of a stride-dilated grid) like padding cells."""
        size = 0.3 * grid.cell_size
        for key in zeros:
            grid.restyle(key, self.theme.padding)
            if size >= grid.min_label_height:
                z = zero.copy().scale_to_fit_height(size).move_to(grid.square(key))
                z.set_fill(self.theme.padding_text)
                grid.pad_labels.add(z)
        grid._structural_zeros = set(zeros)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ stepping
    def _grid_cell(self, role: str, index: tuple[int, ...]) -> tuple[CellGrid, tuple[int, int]]:
        assert self.plan is not None
        n, key = self.plan.array(role).locate(index)
        return self.grids[role][n], key

    def _rest_style(self, grid: CellGrid, key: tuple[int, int]) -> CellStyle:
        if key in getattr(grid, "_structural_zeros", ()):
            return self.theme.padding
        if key in getattr(grid, "_masked", ()):
            return masked_style(self.theme)
        return grid.base_style(key)

    def apply_step(self, k: int) -> list[tuple[VMobject, StyleTuple, StyleTuple]]:
        """Restyle the grids for step ``k``; return what changed (square, before, after)."""
        assert self.plan is not None
        step = self.plan.steps[k]
        touched: dict[int, tuple[CellGrid, tuple[int, int], StyleTuple]] = {}
        new: list[tuple[CellGrid, tuple[int, int], CellStyle]] = []
        target_grid, target_key = self._grid_cell(step.target.role, step.target.index)
        new.append((target_grid, target_key, self.theme.target))
        for role, indices in step.highlights.items():
            for index in indices:
                grid, key = self._grid_cell(role, index)
                new.append((grid, key, self.theme.operand))
        winner = winner_style(self.theme)
        for role, indices in step.marks.items():
            for index in indices:
                grid, key = self._grid_cell(role, index)
                new.append((grid, key, winner))
        for grid, key in self._lit:
            touched.setdefault(id(grid.square(key)), (grid, key, grid.style_of(key)))
        for grid, key, _ in new:
            touched.setdefault(id(grid.square(key)), (grid, key, grid.style_of(key)))
        for grid, key in self._lit:
            grid.restyle(key, self._rest_style(grid, key))
        for grid, key, style in new:
            grid.restyle(key, style)
        self._lit = [(g, key) for g, key, _ in new]
        changes = []
        for grid, key, before in touched.values():
            after = grid.style_of(key)
            if after != before:
                changes.append((grid.square(key), before, after))
        return changes

    def lit_cells(self) -> dict[str, dict[tuple[int, ...], str]]:
        """For tests: which display cells currently wear the target/operand/winner colours."""
        assert self.plan is not None
        out: dict[str, dict[tuple[int, ...], str]] = {}
        target_stroke = self.theme.target.stroke_color.upper()
        operand_stroke = self.theme.operand.stroke_color.upper()
        winner = winner_style(self.theme)
        for array in self.plan.arrays:
            for index, (n, key) in array.positions.items():
                style = self.grids[array.role][n].style_of(key)
                if style[2] == winner.stroke_color.upper() and abs(
                    style[3] - winner.stroke_width
                ) < 1e-6:
                    out.setdefault(array.role, {})[index] = "winner"
                elif style[2] == target_stroke and style[1] > 0:
                    out.setdefault(array.role, {})[index] = "target"
                elif style[2] == operand_stroke:
                    out.setdefault(array.role, {})[index] = "operand"
        return out

    def masked_cells(self) -> dict[str, set[tuple[int, ...]]]:
        """For tests: which display cells are drawn masked, by role."""
        assert self.plan is not None
        out: dict[str, set[tuple[int, ...]]] = {}
        for array in self.plan.arrays:
            for index, (n, key) in array.positions.items():
                if key in getattr(self.grids[array.role][n], "_masked", ()):
                    out.setdefault(array.role, set()).add(index)
        return out

    def _footprint_moves(
        self, step: StepPlan
    ) -> list[tuple[VMobject, Box, Box, float, float]]:
        moves: list[tuple[VMobject, Box, Box, float, float]] = []
        shown = {(f.role, f.slice) for f in step.footprints}
        for f in step.footprints:
            grid = self.grids[f.role][f.slice]
            rect = grid.footprint
            before = Box(float(rect.get_x()), float(rect.get_y()), float(rect.width),
                         float(rect.height))
            old_opacity = float(rect.get_stroke_opacity())
            cells = [f.first, f.last]
            after = grid.footprint_box(cells)
            if old_opacity == 0:
                before = after
            moves.append((rect, before, after, old_opacity, 1.0))
        for role, grids in self.grids.items():
            for n, grid in enumerate(grids):
                rect = grid.footprint
                if (role, n) not in shown and rect.get_stroke_opacity() > 0:
                    box = Box(float(rect.get_x()), float(rect.get_y()), float(rect.width),
                              float(rect.height))
                    moves.append((rect, box, box, float(rect.get_stroke_opacity()), 0.0))
        return moves

    def _ghost(
        self, step: StepPlan
    ) -> tuple[VMobject, Callable[[Mobject, float], None]] | None:
        """A copy of the step's one source cell label, and how it travels to the target."""
        sources = [(role, index) for role, indices in step.highlights.items() for index in indices]
        if len(sources) != 1:
            return None
        grid, key = self._grid_cell(*sources[0])
        target_grid, target_key = self._grid_cell(step.target.role, step.target.index)
        label = grid.label_of.get(key)
        if label is None:
            return None
        ghost = label.copy()
        start = grid.cell_center(key)
        end = target_grid.cell_center(target_key)
        landing = target_grid.label_of.get(target_key)
        h0 = float(label.height)
        h1 = float(landing.height) if landing is not None else h0

        def travel(mob: Mobject, alpha: float) -> None:
            a = smooth(alpha)
            height = h0 + (h1 - h0) * a
            if height > 0 and mob.height > 0:
                mob.scale(height / mob.height)
            mob.move_to(start + (end - start) * a)

        return ghost, travel

    def _labels_over(self, squares: Iterable[VMobject]) -> list[VMobject]:
        wanted = {id(s) for s in squares}
        out = []
        for grids in self.grids.values():
            for grid in grids:
                for key, label in grid.label_of.items():
                    if id(grid.square(key)) in wanted:
                        out.append(label)
        return out

    # ------------------------------------------------------------------ the clip
    def first_layer(self) -> list[VMobject]:
        """Everything drawn before the first step, back to front."""
        grids = [g for gs in self.grids.values() for g in gs]
        return [*grids, self.array_titles, self.operator_mobs, self.caption]

    def construct(self) -> None:
        """Draw the grids, play every step, then show the verified identity."""
        self.build()
        assert self.plan is not None
        self.camera.background_color = self.theme.background  # type: ignore[union-attr]
        self.add(*self.first_layer())
        # Every play and wait below goes into one video segment (see segment.py).
        self.one_segment(self._play_steps)

    def _play_steps(self) -> None:
        assert self.plan is not None
        if self.plan.rotate_kernel:
            self._rotate_kernel()
        else:
            self.wait(0.5)
        total = len(self.plan.steps)
        for k in range(total):
            start = float(self.renderer.time)
            self._animate_step(k)
            hold_start = float(self.renderer.time)
            self.wait(self.step_time - (hold_start - start))
            self.timings.append(StepTiming(start, hold_start, float(self.renderer.time)))
            if self.on_step is not None:
                self.on_step(k + 1, total)
        self._finish()

    def _animate_step(self, k: int) -> None:
        """Step ``k`` up to its hold: restyle the cells, show its equation, move a ghost.

        The single-layer clip and each detailed step of a network clip play it alike.
        """
        assert self.plan is not None
        step = self.plan.steps[k]
        moves = self._footprint_moves(step)
        changes = self.apply_step(k)
        eq, previous = self._equations[k], self._current_equation
        self._current_equation = eq
        extra = self._labels_over(m for m, _, _ in changes)
        ghost = self._ghost(step) if self.plan.move_cells else None
        if ghost is not None:
            # the cell's label travels to where it lands (flatten, and back)
            run_time = max(self.transition, min(0.6, self.step_time / 2))
            self.add(ghost[0])
            self.play(
                _Restyle(changes, moves, extra, run_time=run_time),
                UpdateFromAlphaFunc(ghost[0], ghost[1]),
                *self._equation_swap(previous, eq, run_time),
                run_time=run_time,
            )
            self.remove(ghost[0])
        elif self.transition > 0 and (changes or moves):
            self.play(
                _Restyle(changes, moves, extra, run_time=self.transition),
                *self._equation_swap(previous, eq, self.transition),
                run_time=self.transition,
            )
        else:  # no transition: the equation changes with the cells, at once
            if previous is not None:
                self.remove(previous)
            self.add(eq)

    def _equation_swap(
        self, previous: VMobject | None, eq: VMobject, run_time: float
    ) -> list[Animation]:
        """The old equation fading out while the new one fades in, as the cells change.

        The panel never overlaps a grid, so the grids stay in the static layer.
        """
        fades: list[Animation] = [FadeIn(eq, run_time=run_time)]
        if previous is not None and previous is not eq:
            fades.append(FadeOut(previous, run_time=run_time))
        return fades

    def _finish(self) -> None:
        leftovers = self._footprint_moves(StepPlan(self.plan.steps[-1].target, {}, (), ""))  # type: ignore[union-attr]
        fades: list[Animation] = []
        if self._current_equation is not None:
            fades.append(FadeOut(self._current_equation))
        if self.identity_mob is not None:
            fades.append(FadeIn(self.identity_mob))
        if leftovers:
            fades.append(_Restyle([], leftovers, [], run_time=0.5))
        if fades:
            self.play(*fades, run_time=0.5)
        self.wait(2.0 if self.identity_mob is not None else 0.5)
        if self.loop:
            self._return_to_start()

    def _return_to_start(self) -> None:
        """Fade back to the opening picture, so a looping GIF has no jump.

        (In ``da-full`` the opening turns the kernel; the loop restarts from the turned
        kernel's labels moving back, which reads as the same rotation.)
        """
        changes = []
        for grid, key in self._lit:
            before = grid.style_of(key)
            grid.restyle(key, self._rest_style(grid, key))
            changes.append((grid.square(key), before, grid.style_of(key)))
        self._lit = []
        labels = self._labels_over(m for m, _, _ in changes)
        animations: list[Animation] = [_Restyle(changes, [], labels, run_time=0.6)]
        if self.identity_mob is not None:
            animations.append(FadeOut(self.identity_mob))
        self.play(*animations, run_time=0.6)
        self.wait(0.2)

    def _rotate_kernel(self) -> None:
        """Show the kernel as stored, then turn it by 180 degrees (labels stay upright)."""
        assert self.plan is not None
        view_rows = self.plan.array("kernel")
        moving = []
        swaps: list[tuple[VMobject, VMobject]] = []  # (title before the turn, after it)
        for n, grid in enumerate(self.grids["kernel"]):
            centre = grid.squares.get_center()
            rows, cols = view_rows.grids[n].rows, view_rows.grids[n].cols
            for (r, c), label in grid.label_of.items():
                start = grid.cell_center((rows + 1 - r, cols + 1 - c))
                label.move_to(start)
                moving.append((label, start - centre, centre))
            if grid.title is not None:
                # Before turning, the slice is titled with the plain kernel name.
                plain = self._unturned_title(n, grid.title)
                grid.remove(grid.title)
                self.add(plain)
                swaps.append((plain, grid.title))
        whole = self.array_title_of.get("kernel")
        if whole is not None and self.unrotated_title is not None:
            # one title over the whole kernel: the plain name until the kernel has turned
            plain = self.unrotated_title.copy()
            plain.scale(self._kernel_array_title_scale)
            plain.move_to(whole)
            self.array_titles.remove(whole)
            self.add(plain)
            swaps.append((plain, whole))
        self.wait(0.5)

        def turn(_: Mobject, alpha: float) -> None:
            angle = PI * smooth(alpha)
            cos, sin = np.cos(angle), np.sin(angle)
            for label, offset, centre in moving:
                x, y = offset[0], offset[1]
                label.move_to(centre + np.array([cos * x - sin * y, sin * x + cos * y, 0.0]))

        group = VGroup(*(m for m, _, _ in moving))
        self.play(UpdateFromAlphaFunc(group, turn), run_time=1.5)
        if swaps:
            self.play(
                *(FadeOut(plain) for plain, _ in swaps),
                *(FadeIn(title) for _, title in swaps),
                run_time=0.5,
            )
            # The titles stay in the scene on their own: playing the turn above split the
            # kernel grids into their parts, so a grid no longer draws what it holds.
            self.add(*(title for _, title in swaps))
        self.wait(0.3)

    def _unturned_title(self, n: int, turned: VMobject) -> VMobject:
        """The title of kernel slice ``n`` before the turn, where ``turned`` is drawn.

        Scaled as ``turned`` was (the same font size), but no wider than the room above
        its slice.
        """
        many = len(self.grids["kernel"]) > 1
        plain = self.unturned_titles.get(n) if many else self.unrotated_title
        if plain is None:
            return turned.copy()
        plain = plain.copy()
        plain.scale(self._kernel_title_scales[n])
        room = self._kernel_title_rooms[n] if many else None
        if room is not None and plain.width > room:
            plain.scale_to_fit_width(room)
        return plain.move_to(turned)

    # ------------------------------------------------------------------ geometry
    def cell_boxes(self) -> dict[str, dict[str, Box]]:
        """Scene-unit box of every displayed cell, keyed by role and ``"i,j"`` index."""
        assert self.plan is not None
        out: dict[str, dict[str, Box]] = {}
        for array in self.plan.arrays:
            boxes = {}
            for index, (n, key) in array.positions.items():
                boxes[",".join(str(i) for i in index)] = self.grids[array.role][n].cell_box(key)
            out[array.role] = boxes
        return out


class LayerScene(ConvolutionScene):
    """Base of the scenes of layer types other than conv2d (give ``spec``: any spec)."""


class ForwardConvolution(ConvolutionScene):
    """``z = a * W + b``: each output cell from a kernel-sized window of the input."""

    op = "forward"


class WeightGradient(ConvolutionScene):
    """``dL/dW``: each kernel cell's gradient from the input and ``dL/dz``."""

    op = "dw"


class InputGradient(ConvolutionScene):
    """``dL/da``: each input cell's gradient from ``dL/dz`` and the kernel."""

    op = "da"


class BiasGradient(ConvolutionScene):
    """``dL/db``: the sum of ``dL/dz``."""

    op = "db"


class InputGradientAsFullConvolution(ConvolutionScene):
    """``dL/da`` as the full correlation of ``dL/dz`` with the kernel rotated by 180 degrees."""

    op = "da-full"


_SCENES: dict[str, type[ConvolutionScene]] = {
    cls.op: cls
    for cls in (
        ForwardConvolution,
        WeightGradient,
        InputGradient,
        BiasGradient,
        InputGradientAsFullConvolution,
    )
}


_GENERATED: dict[tuple[str, str], type[ConvolutionScene]] = {}


def scene_class(op: str, type_name: str = "conv2d") -> type[ConvolutionScene]:
    """The scene class that animates ``op`` of a layer type.

    conv2d's clips have the classes above; other types get one generated per op, named
    after the spec class and the op (``MaxPool2dForward``, ``LinearDw``).
    """
    from convviz.layers import layer_type

    declared = layer_type(type_name)
    if op not in declared.op_names:
        raise ValueError(
            f"unknown clip {op!r}; expected one of {', '.join(declared.op_names)}"
        )
    if type_name == "conv2d":
        return _SCENES[op]
    key = (type_name, op)
    if key not in _GENERATED:
        name = declared.torch_name + "".join(p.capitalize() for p in op.split("-"))
        doc = f"{declared.torch_name}: the {op} clip ({declared.op(op).summary})."
        _GENERATED[key] = type(name, (LayerScene,), {"op": op, "__doc__": doc,
                                                      "__module__": __name__})
    return _GENERATED[key]

