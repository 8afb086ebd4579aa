r"""What a clip shows, as plain data: grids, cell positions, and one entry per step.

A :class:`ScenePlan` is computed from a layer's highlight map and nothing else about
which cells light up; the scene classes only draw it. Keeping it free of manim makes it
cheap to test and lets the timeline, the chapters and the storyboard share it.

Geometry that is not a highlight (where padding goes, where the kernel window sits,
where each ``dz`` cell lands in the spread-out grid of the full correlation) comes from
the layer type's declaration (:mod:`convviz.layers`). Operands, operators and captions
come from the op's declaration.

Long axes are elided: a vector of 784 cells shows its first cells, a ``\vdots`` cell and
its last cells, plus every cell that a shown step computes; cells that are not drawn light
up the ellipsis cell that stands for them.

A plan can be drawn at numbers (:mod:`convviz.rendering.values`): every array then holds
the numbers of its cells, computed from the derived expressions; the cells show them
(``show``), the equations show them substituted, max pooling marks each window's first
maximum and ReLU's backward pass marks the cells its mask zeroes.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from convviz.highlights import Cell, Index
from convviz.notation import SHORT_NAMES, cell_latex, step_latex

if TYPE_CHECKING:  # SymPy-backed modules are imported only when a plan is computed
    import numpy as np
    from numpy.typing import NDArray

    from convviz.derivation import Derivation
    from convviz.highlights import HighlightMap

__all__ = [
    "CLIP_OPS",
    "ELIDE_ABOVE",
    "ArrayPlan",
    "Footprint",
    "GridPlan",
    "ScenePlan",
    "StepPlan",
    "plan_scene",
]

#: conv2d's clips; ``da-full`` is dL/da drawn as a full correlation. Other layer types
#: render their own ops (:attr:`convviz.layers.base.LayerType.ops`).
CLIP_OPS: tuple[str, ...] = ("forward", "dw", "da", "db", "da-full")

#: Axes longer than this are drawn elided (first cells, an ellipsis, last cells).
ELIDE_ABOVE = 16

#: Cells kept at each end of an elided axis.
ELIDE_KEEP = 4

GridKey = tuple[int, int]


@dataclass(frozen=True)
class GridPlan:
    """One 2-D slice of an array.

    Attributes
    ----------
    lead
        Leading display index shared by the slice's cells (``()``, ``(c,)``, ``(f, c)``).
    rows, cols, padding
        Real cells, and the width of the dashed zero ring as ``(rows, cols)``: padding
        rows above and below, padding columns left and right.
    title
        LaTeX above the slice.
    labels
        LaTeX of each real cell, by ``(row, col)``.
    zeros
        Real cells that hold a structural zero (the gaps of a stride-dilated grid).
    captions
        Small LaTeX above a cell's label (``show="both"``: the cell's name above its
        number), by ``(row, col)``.
    masked
        Cells a mask zeroes (ReLU's backward pass where ``z <= 0``), drawn dimmed.
    short_labels
        The labels without the slice's leading indices (``W_{2,1}`` in the slice titled
        ``W_{f=1,c=2}``), drawn when the full ones are too small to read; empty for a
        slice without leading indices or with numbers in its cells.
    """

    lead: Index
    rows: int
    cols: int
    padding: tuple[int, int]
    title: str
    labels: Mapping[GridKey, str]
    zeros: frozenset[GridKey] = frozenset()
    captions: Mapping[GridKey, str] = field(default_factory=dict)
    masked: frozenset[GridKey] = frozenset()
    short_labels: Mapping[GridKey, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ArrayPlan:
    """An array as drawn: its slices and where each display index lands.

    ``values`` holds the number of every display index when the clip is drawn at
    numbers (empty otherwise).
    """

    role: str
    label: str
    grids: tuple[GridPlan, ...]
    positions: Mapping[Index, tuple[int, GridKey]]
    short: str = ""
    values: Mapping[Index, float] = field(default_factory=dict)
    #: The title over the whole array, when its slices are too small for titles of their
    #: own ("": the label).
    title: str = ""
    #: The titles shown before the kernel turns (``rotate_kernel``): the whole array's,
    #: then each slice's ("" for an array that does not turn).
    unturned: tuple[str, ...] = ()

    @property
    def array_title(self) -> str:
        """The title over the whole array."""
        return self.title or self.label

    def locate(self, index: Index) -> tuple[int, GridKey]:
        """Slice number and ``(row, col)`` of a display index."""
        return self.positions[index]


@dataclass(frozen=True)
class Footprint:
    """The kernel's window on one slice: inclusive corner cells (padding coordinates)."""

    role: str
    slice: int
    first: GridKey
    last: GridKey


@dataclass(frozen=True)
class StepPlan:
    """One step of the clip.

    ``marks`` are cells drawn with the winner mark, by role (max pooling's first maximum
    of each window the step reads); ``value`` is the target's number (with numbers).
    """

    target: Cell
    highlights: Mapping[str, tuple[Index, ...]]
    footprints: tuple[Footprint, ...]
    equation: str
    marks: Mapping[str, tuple[Index, ...]] = field(default_factory=dict)
    value: float | None = None


@dataclass(frozen=True)
class ScenePlan:
    """Everything a clip draws.

    Attributes
    ----------
    op
        One of :data:`CLIP_OPS`.
    arrays
        Arrays in reading order; the last one is the target.
    operators
        LaTeX operator between each pair of arrays.
    steps
        The steps, in row-major order of the target.
    identity
        Closing identity (LaTeX), present only if SymPy verified it for this layer.
    rotate_kernel
        Whether the clip opens by rotating the kernel by 180 degrees.
    move_cells
        Whether each step's one source cell travels to its target (flatten).
    caption
        One-line description shown at the top.
    show
        What the cells show: ``symbols``, ``values`` or ``both`` (see
        :data:`convviz.rendering.values.SHOW_MODES`).
    """

    op: str
    arrays: tuple[ArrayPlan, ...]
    operators: tuple[str, ...]
    steps: tuple[StepPlan, ...]
    identity: str | None
    rotate_kernel: bool = False
    caption: str = ""
    move_cells: bool = False
    show: str = "symbols"

    @property
    def has_values(self) -> bool:
        """Whether the clip is drawn at numbers."""
        return any(array.values for array in self.arrays)

    def array(self, role: str) -> ArrayPlan:
        """The plan of the array playing ``role``."""
        for array in self.arrays:
            if array.role == role:
                return array
        raise KeyError(role)


def _slices(shape: Index) -> tuple[list[Index], int, int]:
    """Leading indices, rows and cols of a display shape (scalars and vectors as columns)."""
    if len(shape) == 0:
        return [()], 1, 1
    if len(shape) == 1:
        return [()], shape[0], 1
    lead_shape = shape[:-2]
    leads = list(itertools.product(*(range(1, n + 1) for n in lead_shape)))
    return leads, shape[-2], shape[-1]


def _slice_title(label: str, lead: Index, axes: str) -> str:
    r"""``W_{f=1,\,c=2}``: a slice's leading indices, named by the declared axis letters."""
    if not lead:
        return label
    if len(axes) == len(lead):
        inner = r",\,".join(f"{a}={i}" for a, i in zip(axes, lead, strict=True))
    else:  # axes the declaration does not name
        inner = ",".join(str(i) for i in lead)
    return rf"{label}_{{{inner}}}"


def axis_slots(n: int, needed: set[int]) -> list[int | None]:
    """The cells drawn along an axis of ``n`` cells, ``None`` for an ellipsis cell.

    Short axes are drawn whole. A long one keeps :data:`ELIDE_KEEP` cells at each end and
    the ``needed`` ones (the cells the shown steps compute).
    """
    if n <= ELIDE_ABOVE:
        return list(range(1, n + 1))
    keep = set(range(1, ELIDE_KEEP + 1)) | set(range(n - ELIDE_KEEP + 1, n + 1))
    keep |= {i for i in needed if 1 <= i <= n}
    out: list[int | None] = []
    previous = 0
    for i in sorted(keep):
        if i - previous > 1:
            out.append(None)
        out.append(i)
        previous = i
    return out


def _slot_of(slots: list[int | None]) -> dict[int, int]:
    """1-based slot of every cell of the axis (elided cells: their ellipsis slot)."""
    out: dict[int, int] = {}
    pending: int | None = None
    previous = 0
    for slot, value in enumerate(slots, start=1):
        if value is None:
            pending = slot
            continue
        if pending is not None:
            for i in range(previous + 1, value):
                out[i] = pending
            pending = None
        out[value] = slot
        previous = value
    return out


_ELLIPSIS = {(True, False): r"\vdots", (False, True): r"\cdots", (True, True): r"\ddots"}


def _array_plan(
    role: str,
    label: str,
    shape: Index,
    *,
    padding: tuple[int, int] = (0, 0),
    names: Mapping[str, str] | None = None,
    axes: str = "",
    needed: tuple[set[int], set[int]] = (set(), set()),
) -> ArrayPlan:
    leads, rows, cols = _slices(shape)
    row_slots, col_slots = axis_slots(rows, needed[0]), axis_slots(cols, needed[1])
    row_of, col_of = _slot_of(row_slots), _slot_of(col_slots)
    grids = []
    positions: dict[Index, tuple[int, GridKey]] = {}
    for n, lead in enumerate(leads):
        labels: dict[GridKey, str] = {}
        short: dict[GridKey, str] = {}
        for r in range(1, rows + 1):
            for c in range(1, cols + 1):
                if len(shape) == 0:
                    index: Index = ()
                elif len(shape) == 1:
                    index = (r,)
                else:
                    index = (*lead, r, c)
                key = (row_of[r], col_of[c])
                positions[index] = (n, key)
                if row_slots[key[0] - 1] is not None and col_slots[key[1] - 1] is not None:
                    labels[key] = cell_latex(role, index, names)
                    if lead:
                        short[key] = cell_latex(role, (r, c), names)
        for sr, rv in enumerate(row_slots, start=1):
            for sc, cv in enumerate(col_slots, start=1):
                if rv is None or cv is None:
                    labels[(sr, sc)] = _ELLIPSIS[(rv is None, cv is None)]
                    if lead:
                        short[(sr, sc)] = labels[(sr, sc)]
        title = _slice_title(label, lead, axes)
        grids.append(GridPlan(lead, len(row_slots), len(col_slots), padding, title, labels,
                              short_labels=short))
    return ArrayPlan(role, label, tuple(grids), positions, (names or SHORT_NAMES)[role])


def _axes(derivation: Derivation, role: str) -> str:
    """The declared letters of ``role``'s leading display axes (slice titles)."""
    spec = derivation.spec
    return derivation.layer.array(role).lead_axes(
        spec.full_shape(role), spec.display_shape(role)
    )


def _spread(
    derivation: Derivation, role: str, label: str, geometry: Any, names: Mapping[str, str]
) -> ArrayPlan:
    """An array spread out on a bigger grid, zeros between and around its cells.

    conv2d's ``da-full`` spreads ``dL/dz`` (stride-dilated, padded for the full
    correlation); conv-transpose2d's gather view spreads its input the same way.
    ``geometry.position(index)`` says where each cell sits (``None``: cropped away).
    """
    rows, cols = geometry.grid_size
    shape = derivation.spec.display_shape(role)
    leads, height, width = _slices(shape)
    grids = []
    positions: dict[Index, tuple[int, GridKey]] = {}
    for n, lead in enumerate(leads):
        labels: dict[GridKey, str] = {}
        short: dict[GridKey, str] = {}
        for i in range(1, height + 1):
            for j in range(1, width + 1):
                index = (*lead, i, j)
                where = geometry.position(index)
                if where is None:
                    continue
                *_, r, c = where
                labels[(r, c)] = cell_latex(role, index, names)
                if lead:
                    short[(r, c)] = cell_latex(role, (i, j), names)
                positions[index] = (n, (r, c))
        zeros = frozenset(
            (r, c)
            for r in range(1, rows + 1)
            for c in range(1, cols + 1)
            if (r, c) not in labels
        )
        title = _slice_title(label, lead, _axes(derivation, role))
        grids.append(GridPlan(lead, rows, cols, (0, 0), title, labels, zeros,
                              short_labels=short))
    return ArrayPlan(role, label, tuple(grids), positions, names[role])


def _rotated_kernel(base: ArrayPlan, geometry: Any, names: Mapping[str, str]) -> ArrayPlan:
    """The kernel with every cell where a 180-degree turn puts it."""
    positions = {}
    for index, (n, _) in base.positions.items():
        *_, r, c = geometry.rotated_kernel_position(index)
        positions[index] = (n, (r, c))
    grids = []
    turned = rf"\operatorname{{rot180}}({base.label})"
    for n, grid in enumerate(base.grids):
        mine = [index for index, (m, _) in base.positions.items() if m == n]
        labels = {positions[index][1]: cell_latex("kernel", index, names) for index in mine}
        short = (
            {positions[index][1]: cell_latex("kernel", index[-2:], names) for index in mine}
            if grid.lead else {}
        )
        title = grid.title.replace(base.label, turned, 1)
        grids.append(GridPlan(grid.lead, grid.rows, grid.cols, (0, 0), title, labels,
                              short_labels=short))
    unturned = (base.label, *(grid.title for grid in base.grids))
    return ArrayPlan("kernel", base.label, tuple(grids), positions, base.short,
                     title=turned, unturned=unturned)


def _scatter_steps(
    derivation: Derivation, steps: tuple[Any, ...], names: Mapping[str, str]
) -> list[StepPlan]:
    """Steps of the scatter view: an input cell lights the output cells it lands on."""
    scatter = derivation.layer.scatter
    assert scatter is not None
    out = []
    for step in steps:
        index = step.target.index
        pairs = scatter(derivation.spec, index)
        highlights = {
            "kernel": tuple(sorted({k for k, _ in pairs})),
            "output": tuple(sorted({o for _, o in pairs})),
        }
        source = cell_latex("input", index, names)
        parts = [
            rf"{cell_latex('output', o, names)} \mathrel{{+}}= {cell_latex('kernel', k, names)}"
            rf"\,{source}"
            for k, o in pairs
        ]
        if len(parts) > 3:
            parts = [*parts[:2], r"\ldots", parts[-1]]
        equation = r",\; ".join(parts) if parts else rf"{source} \text{{ lands outside}}"
        out.append(StepPlan(Cell("input", index), highlights, (), equation))
    return out


def _operators(derivation: Derivation, op: str) -> tuple[str, ...]:
    """The op's operators, without the one before an operand the spec leaves out."""
    decl = derivation.layer.op(op)
    operators = list(decl.operators)
    for n in reversed(range(len(decl.operands))):
        if not derivation.has(decl.operands[n]) and operators:
            del operators[max(n - 1, 0)]
    return tuple(operators)


def _needed(
    steps: tuple[Any, ...], shapes: Mapping[str, Index]
) -> dict[str, tuple[set[int], set[int]]]:
    """Per role, the row and column numbers the shown steps' targets sit at."""
    out: dict[str, tuple[set[int], set[int]]] = {}
    for step in steps:
        role, index = step.target.role, step.target.index
        shape = shapes.get(role, ())
        rows, cols = out.setdefault(role, (set(), set()))
        if len(shape) == 1:
            rows.add(index[0])
        elif len(shape) >= 2:
            rows.add(index[-2])
            cols.add(index[-1])
    return out


def plan_scene(
    derivation: Derivation,
    op: str,
    *,
    max_steps: int | None = None,
    verify_identity: bool = True,
    values: Mapping[str, NDArray[np.float64]] | None = None,
    show: str = "symbols",
) -> ScenePlan:
    """Plan the clip of ``op`` for a derived layer.

    Parameters
    ----------
    derivation
        The layer, derived.
    op
        One of the layer type's ops (conv2d: :data:`CLIP_OPS`).
    max_steps
        Keep only the first steps (``None``: all of them).
    verify_identity
        Check the closing identity with SymPy; when False no identity is shown.
    values
        Numbers of the leaves by role, in full shape (see
        :class:`convviz.rendering.values.LayerValues`): every array's numbers are then
        computed from the derived expressions, equations show them substituted, and max
        pooling and ReLU's backward pass mark their winners and mask.
    show
        What the cells show with numbers: ``values``, ``both`` or ``symbols``.
    """
    layer = derivation.layer
    if op not in layer.op_names:
        raise ValueError(f"unknown clip {op!r}; expected one of {', '.join(layer.op_names)}")
    from convviz.reflection import highlight_map

    decl = layer.op(op)
    map_op = decl.highlights_op
    hmap: HighlightMap = highlight_map(derivation, op, expressions=max_steps)
    steps = hmap.steps if max_steps is None else hmap.steps[:max_steps]
    names = {a.role: a.short for a in layer.all_arrays}
    reading = {a.role: a.reading for a in layer.all_arrays}
    shapes = {role: info.shape for role, info in hmap.arrays.items()}
    needed = _needed(steps, shapes)
    plans: dict[str, ArrayPlan] = {}
    for role, info in hmap.arrays.items():
        plans[role] = _array_plan(
            role,
            info.label,
            info.shape,
            padding=layer.padding(derivation.spec, role),
            names=names,
            axes=_axes(derivation, role),
            needed=needed.get(role, (set(), set())),
        )
    geometry = (
        layer.view_geometry(derivation.spec, decl.view)
        if decl.view and layer.view_geometry is not None
        else None
    )
    if decl.view in ("full-correlation", "gather"):
        spread = "grad_output" if decl.view == "full-correlation" else "input"
        plans[spread] = _spread(derivation, spread, hmap.arrays[spread].label, geometry, names)
        plans["kernel"] = _rotated_kernel(plans["kernel"], geometry, names)
    step_plans: tuple[StepPlan, ...]
    if decl.view == "scatter":
        del plans[decl.target]
        info = derivation.array_info("output")
        plans["output"] = _array_plan("output", info.label, info.shape, names=names,
                                      axes=_axes(derivation, "output"))
        step_plans = tuple(_scatter_steps(derivation, steps, names))
    else:
        step_plans = tuple(
            StepPlan(
                target=step.target,
                highlights=step.highlights,
                footprints=_footprints(derivation, op, step.target, plans),
                equation=step_latex(step, names=names, reading=reading),
            )
            for step in steps
        )
    if values is not None:
        plans, step_plans = _at_numbers(
            derivation, op, plans, step_plans, steps, values, show, names, reading
        )
    identity = _identity(derivation, map_op) if verify_identity else None
    return ScenePlan(
        op=op,
        arrays=tuple(plans.values()),
        operators=_operators(derivation, op),
        steps=step_plans,
        identity=identity,
        rotate_kernel=decl.view in ("full-correlation", "gather"),
        caption=decl.caption,
        move_cells=decl.view == "move",
        show=show if values is not None else "symbols",
    )


def _at_numbers(
    derivation: Derivation,
    op: str,
    plans: dict[str, ArrayPlan],
    step_plans: tuple[StepPlan, ...],
    steps: tuple[Any, ...],
    values: Mapping[str, NDArray[np.float64]],
    show: str,
    names: Mapping[str, str],
    reading: Mapping[str, int],
) -> tuple[dict[str, ArrayPlan], tuple[StepPlan, ...]]:
    """The plan drawn at numbers: labels, equations, winners and mask (see plan_scene)."""
    from convviz.rendering.values import evaluate_roles, numeric_equation

    numbers, leaves = evaluate_roles(derivation, values, list(plans))
    number_of: dict[str, dict[Index, float]] = {}
    for role, plan in plans.items():
        if role not in numbers:
            continue
        array = numbers[role]
        number_of[role] = {
            # + 0.0: no -0.0 (a zero gradient times a negative number) in labels or JSON
            index: float(array[tuple(i - 1 for i in index)]) + 0.0 for index in plan.positions
        }
    masked = _relu_mask(derivation, op, number_of)
    out = {
        role: _relabelled(plan, number_of.get(role, {}), show, masked.get(role, set()))
        for role, plan in plans.items()
    }
    winners = _pool_winners(derivation, op, steps, number_of)
    if derivation.layer.op(op).view == "scatter":
        return out, tuple(_scatter_numbers(derivation, step_plans, number_of, names))
    new_steps = []
    for step, step_plan in zip(steps, step_plans, strict=True):
        target = step_plan.target
        value = number_of.get(target.role, {}).get(target.index)
        if value is None:
            new_steps.append(step_plan)
            continue
        expr = None
        if step.expression:
            cells = derivation.displayed(target.role)
            expr = cells[tuple(i - 1 for i in target.index)]
        equation = numeric_equation(
            step,
            cell_latex(target.role, target.index, names),
            value,
            number_of,
            reading=reading,
            expr=expr,
            leaves=leaves,
        )
        new_steps.append(
            dataclasses.replace(step_plan, equation=equation, marks=winners.get(target, {}),
                                value=value)
        )
    return out, tuple(new_steps)


def _scatter_numbers(
    derivation: Derivation,
    step_plans: tuple[StepPlan, ...],
    numbers: Mapping[str, Mapping[Index, float]],
    names: Mapping[str, str],
) -> list[StepPlan]:
    r"""The scatter view's equations at numbers: ``z_{1,2} += 0.5\cdot 3, ...``."""
    from convviz.rendering.values import number_latex

    scatter = derivation.layer.scatter
    assert scatter is not None
    out = []
    for plan in step_plans:
        index = plan.target.index
        source = number_latex(numbers["input"][index], paren=True)
        parts = [
            rf"{cell_latex('output', o, names)} \mathrel{{+}}= "
            rf"{number_latex(numbers['kernel'][k], paren=True)}\cdot {source}"
            for k, o in scatter(derivation.spec, index)
        ]
        if len(parts) > 3:
            parts = [*parts[:2], r"\ldots", parts[-1]]
        if not parts:
            out.append(plan)
            continue
        out.append(dataclasses.replace(plan, equation=r",\; ".join(parts),
                                       value=numbers["input"][index]))
    return out


def _relabelled(
    plan: ArrayPlan, numbers: Mapping[Index, float], show: str, masked: set[Index]
) -> ArrayPlan:
    """An array's plan with numbers in its cells (``show``) and its masked cells.

    Numbers too small for a cell (``-3.16e-4``) are drawn in a power of ten the array
    shares, named in its titles: ``-3.16`` under ``dz (x 10^-4)``.
    """
    from convviz.rendering.values import number_latex, shared_exponent

    if not numbers:
        return plan
    exponent = shared_exponent(numbers.values()) if show != "symbols" else 0
    unit = 10.0**exponent

    def titled(title: str) -> str:
        return rf"{title}\;(\times 10^{{{exponent}}})" if exponent and title else title

    ellipses = set(_ELLIPSIS.values())
    grids = []
    for n, grid in enumerate(plan.grids):
        labels = dict(grid.labels)
        captions: dict[GridKey, str] = {}
        hidden: set[GridKey] = set()
        for index, (m, key) in plan.positions.items():
            if m != n or key not in labels or labels[key] in ellipses:
                continue
            if index in masked:
                hidden.add(key)
            if show == "symbols" or key in captions:
                continue
            if show == "both":
                captions[key] = labels[key]
            labels[key] = number_latex(numbers[index] / unit, cell=True)
        short = {} if show != "symbols" else grid.short_labels  # numbers have no lead
        grids.append(dataclasses.replace(grid, labels=labels, captions=captions,
                                         masked=frozenset(hidden), title=titled(grid.title),
                                         short_labels=short))
    return dataclasses.replace(
        plan, grids=tuple(grids), values=dict(numbers), title=titled(plan.array_title),
        unturned=tuple(titled(t) for t in plan.unturned),
    )


def _relu_mask(
    derivation: Derivation, op: str, numbers: Mapping[str, Mapping[Index, float]]
) -> dict[str, set[Index]]:
    """ReLU's backward pass: the cells where ``z <= 0`` (``dz = 0``), in ``z`` and ``dz``."""
    if derivation.layer.name != "relu" or op != "da" or "input" not in numbers:
        return {}
    cells = {index for index, z in numbers["input"].items() if z <= 0}
    return {"input": cells, "grad_input": cells}


def _first_maximum(window: tuple[Index, ...], numbers: Mapping[Index, float]) -> Index | None:
    """The window's first maximum in row-major order (PyTorch's tie rule)."""
    if not window:
        return None
    ordered = sorted(window)
    top = max(numbers[i] for i in ordered)
    return next(i for i in ordered if numbers[i] == top)


def _pool_winners(
    derivation: Derivation,
    op: str,
    steps: tuple[Any, ...],
    numbers: Mapping[str, Mapping[Index, float]],
) -> dict[Cell, dict[str, tuple[Index, ...]]]:
    """Max pooling: per step, the input cells that win the windows it reads.

    A forward step reads one window; a ``da`` step reads every window holding its
    cell (one per highlighted ``dp`` cell), whose winners get ``dp``.
    """
    if derivation.layer.name != "maxpool2d" or "input" not in numbers:
        return {}
    inputs = numbers["input"]
    windows: dict[Index, tuple[Index, ...]] = {}
    if op == "forward":
        windows = {s.target.index: s.highlights.get("input", ()) for s in steps}
    else:
        from convviz.reflection import highlight_map

        forward = highlight_map(derivation, "forward", expressions=0)
        windows = {s.target.index: s.highlights.get("input", ()) for s in forward.steps}
    out: dict[Cell, dict[str, tuple[Index, ...]]] = {}
    for step in steps:
        reads = (
            [step.target.index] if op == "forward" else step.highlights.get("grad_output", ())
        )
        found = {_first_maximum(windows.get(o, ()), inputs) for o in reads}
        winners = tuple(sorted(i for i in found if i is not None))
        if winners:
            out[step.target] = {"input": winners}
    return out


def _footprints(
    derivation: Derivation, op: str, target: Cell, arrays: Mapping[str, ArrayPlan]
) -> tuple[Footprint, ...]:
    window = derivation.layer.window
    if window is None:
        return ()
    found = window(derivation.spec, op, target.index)
    out = []
    for role, slices, first, last in found:
        if role not in arrays:
            continue
        count = len(arrays[role].grids)
        for n in slices if slices is not None else range(count):
            if 0 <= n < count:
                out.append(Footprint(role, n, first, last))
    return tuple(out)


def _identity(derivation: Derivation, op: str) -> str | None:
    from convviz.identities import verify

    if op == "forward":
        return _forward_identity(derivation)
    for check in verify(derivation, engines=False, ops=(op,)):
        if check.op == op:
            return check.latex if check.holds else None
    return None


def _forward_identity(derivation: Derivation, samples: int = 48) -> str | None:
    """The type's forward identity (``z = a * W + b``), shown only if the numbers agree.

    Up to ``samples`` output cells (spread over the whole output) are evaluated at a
    random point by substituting numbers into their expressions, and compared with the
    type's explicit-loop reference; that is cheap at any layer size, unlike ``lambdify``.
    """
    import numpy as np
    import sympy

    from convviz.numeric import random_values

    layer, spec = derivation.layer, derivation.spec
    if layer.forward_latex is None or layer.reference is None:
        return None
    point = random_values(derivation)
    expected = np.asarray(layer.reference(spec, point), dtype=float).reshape(-1)
    values: dict[sympy.Basic, float] = {}
    for role, numbers in point.items():
        if role == "grad_output":
            continue
        for pos, cell in np.ndenumerate(derivation.array(role)):
            if isinstance(cell, sympy.Indexed | sympy.Symbol):
                values[cell] = float(numbers[pos])
    outputs = derivation.output.reshape(-1)
    picks = np.unique(np.linspace(0, len(outputs) - 1, min(samples, len(outputs))).astype(int))
    for k in picks:
        got = _value(outputs[k], values)
        if abs(got - float(expected[k])) > 1e-9:
            return None
    return layer.forward_latex(spec)


def _value(expr: Any, values: Mapping[Any, float]) -> float:
    """Numeric value of a sum of products of cells (other nodes: SymPy substitutes)."""
    import sympy

    if isinstance(expr, sympy.Add):
        return sum(_value(term, values) for term in expr.args)
    if isinstance(expr, sympy.Mul):
        product = 1.0
        for factor in expr.args:
            product *= _value(factor, values)
        return product
    if isinstance(expr, sympy.Number):
        return float(expr)
    if expr in values:
        return values[expr]
    return float(expr.xreplace({k: sympy.Float(v) for k, v in values.items()}))
