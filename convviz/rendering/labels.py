"""What a clip typesets, decided from its plan alone (no manim).

A clip's layout (how big a cell is, whether cells carry labels, whether slices get
titles of their own) and the list of LaTeX snippets it needs follow from the
:class:`~convviz.rendering.plan.ScenePlan` and the clip frame. The scenes build their
mobjects from this list; :mod:`convviz.rendering.plan_cache` uses the same list to
compile a cold clip's LaTeX ahead of time, while manim is still being imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convviz.rendering.layout import ArrayShape, FrameSpec, Layout, SliceShape, layout_row
from convviz.rendering.plan import ArrayPlan, ScenePlan

__all__ = [
    "CLIP_FRAME",
    "LABEL_MIN_CELL",
    "MIN_SLICE_TITLE",
    "ClipText",
    "clip_layout",
    "clip_text",
]

#: Frame used by every clip: a caption band on top, the equation panel at the bottom.
CLIP_FRAME = FrameSpec(caption_height=0.55, panel_height=1.5, slice_gap=1.2)

#: Slice titles smaller than this (scene units) give way to one title per array.
MIN_SLICE_TITLE = 0.16

#: Cells smaller than this (scene units) get no labels at all (not even typeset).
LABEL_MIN_CELL = 0.3


def clip_layout(plan: ScenePlan) -> Layout:
    """Where every grid of the clip goes in the frame."""
    shapes = [
        ArrayShape(
            a.role,
            tuple(SliceShape(g.rows, g.cols, g.padding) for g in a.grids),
            _group(a),
        )
        for a in plan.arrays
    ]
    return layout_row(shapes, plan.operators, CLIP_FRAME)


def _group(array: ArrayPlan) -> int:
    """How many consecutive slices go together.

    For slices led by two indices (a kernel's ``f, c``): the run of them that shares the
    first (one filter's channels); else 1.
    """
    leads = [g.lead for g in array.grids]
    if not leads or len(leads[0]) < 2:
        return 1
    return sum(1 for lead in leads if lead[:-1] == leads[0][:-1])


@dataclass(frozen=True)
class ClipText:
    """Every snippet a clip typesets, in one list, and where each key's snippet is."""

    strings: list[str]
    slots: dict[tuple[Any, ...], int]
    labelled: bool
    slice_titles: bool
    title_gap: float


def clip_text(plan: ScenePlan, layout: Layout) -> ClipText:
    """Titles, cell labels, operators, equations, caption and identity of a clip.

    Keys: ``("array-title", role)``, ``("title", role, n)``, ``("label", role, n, cell)``,
    ``("short", role, n, cell)`` (a label without the slice's leading indices),
    ``("symbol", role, n, cell)`` (the name above a number, ``show="both"``), ``("zero",)``,
    ``("op", k)``, ``("eq", k)``, ``("caption",)``, ``("identity",)``, and, for a
    kernel that turns, ``("title-unrotated",)`` (the array's title before the turn) and
    ``("title-unrotated", n)`` (each slice's, when it has several).
    """
    strings: list[str] = []
    slots: dict[tuple[Any, ...], int] = {}

    def want(key: tuple[Any, ...], tex: str) -> None:
        slots[key] = len(strings)
        strings.append(tex)

    labelled = layout.cell_size >= LABEL_MIN_CELL
    # Per-slice titles need room between stacked slices; when there is too little,
    # one title for the whole array goes above it instead. The scene makes the same
    # choice per array when a slice title fitted to its width would be too small, so
    # every array of several slices has its array title typeset.
    gap = CLIP_FRAME.slice_gap * layout.cell_size
    slice_titles = min(0.45, 0.8 * (gap - 0.04)) >= MIN_SLICE_TITLE
    for array in plan.arrays:
        if len(array.grids) > 1:
            want(("array-title", array.role), array.array_title)
        for n, slice_plan in enumerate(array.grids):
            want(("title", array.role, n), slice_plan.title)
            if labelled:
                for cell, tex in slice_plan.labels.items():
                    want(("label", array.role, n, cell), tex)
                for cell, tex in slice_plan.short_labels.items():
                    want(("short", array.role, n, cell), tex)
                for cell, tex in slice_plan.captions.items():
                    want(("symbol", array.role, n, cell), tex)
    want(("zero",), "0")
    for k, op in enumerate(plan.operators):
        want(("op", k), op.replace("*", r"\ast"))
    for k, step in enumerate(plan.steps):
        want(("eq", k), step.equation)
    want(("caption",), plan.caption)
    if plan.identity:
        want(("identity",), plan.identity)
    if plan.rotate_kernel:
        kernel = plan.array("kernel")
        want(("title-unrotated",), kernel.unturned[0] if kernel.unturned else kernel.label)
        if len(kernel.grids) > 1:
            for n, title in enumerate(kernel.unturned[1:]):
                want(("title-unrotated", n), title)
    return ClipText(strings, slots, labelled, slice_titles, gap)
