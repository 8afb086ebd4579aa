"""What a clip shows, as plain data: grids, cell positions, and one entry per step.

A :class:`ScenePlan` is computed from a layer's highlight map and nothing else about
which cells light up; the scene classes only draw it. Keeping it free of manim makes it
cheap to test and lets the timeline, the chapters and the storyboard share it.

Geometry that is not a highlight (where padding goes, where the kernel window sits,
where each ``dz`` cell lands in the spread-out grid of the full correlation) comes from
the layer spec.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from convviz.highlights import Cell, Index
from convviz.notation import cell_latex, step_latex

if TYPE_CHECKING:  # SymPy-backed modules are imported only when a plan is computed
    from convviz.derivation import Derivation
    from convviz.highlights import HighlightMap

__all__ = [
    "CLIP_OPS",
    "ArrayPlan",
    "Footprint",
    "GridPlan",
    "ScenePlan",
    "StepPlan",
    "plan_scene",
]

#: Clips convviz renders; ``da-full`` is dL/da drawn as a full correlation.
CLIP_OPS: tuple[str, ...] = ("forward", "dw", "da", "db", "da-full")

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
    """

    lead: Index
    rows: int
    cols: int
    padding: tuple[int, int]
    title: str
    labels: Mapping[GridKey, str]
    zeros: frozenset[GridKey] = frozenset()


@dataclass(frozen=True)
class ArrayPlan:
    """An array as drawn: its slices and where each display index lands."""

    role: str
    label: str
    grids: tuple[GridPlan, ...]
    positions: Mapping[Index, tuple[int, GridKey]]

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
    """One step of the clip."""

    target: Cell
    highlights: Mapping[str, tuple[Index, ...]]
    footprints: tuple[Footprint, ...]
    equation: str


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
    caption
        One-line description shown at the top.
    """

    op: str
    arrays: tuple[ArrayPlan, ...]
    operators: tuple[str, ...]
    steps: tuple[StepPlan, ...]
    identity: str | None
    rotate_kernel: bool = False
    caption: str = ""
    total_steps: int = field(default=0)

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


def _grid_key(shape: Index, index: Index) -> tuple[Index, GridKey]:
    if len(shape) == 0:
        return (), (1, 1)
    if len(shape) == 1:
        return (), (index[0], 1)
    return index[:-2], (index[-2], index[-1])


def _slice_title(label: str, role: str, lead: Index, shape: Index) -> str:
    if not lead:
        return label
    if role in ("kernel", "grad_kernel") and len(shape) == 4:
        return rf"{label}_{{f={lead[0]},\,c={lead[1]}}}"
    if role in ("kernel", "grad_kernel"):
        # one leading axis: filters when F > 1, channels when C > 1 (decided by caller)
        return rf"{label}_{{{lead[0]}}}"
    axis = "c" if role in ("input", "grad_input") else "f"
    return rf"{label}_{{{axis}={lead[0]}}}"


def _array_plan(
    role: str,
    label: str,
    shape: Index,
    *,
    padding: tuple[int, int] = (0, 0),
    kernel_axis: str = "",
) -> ArrayPlan:
    leads, rows, cols = _slices(shape)
    grids = []
    positions: dict[Index, tuple[int, GridKey]] = {}
    for n, lead in enumerate(leads):
        labels: dict[GridKey, str] = {}
        for r in range(1, rows + 1):
            for c in range(1, cols + 1):
                if len(shape) == 0:
                    index: Index = ()
                elif len(shape) == 1:
                    index = (r,)
                else:
                    index = (*lead, r, c)
                labels[(r, c)] = cell_latex(role, index)
                positions[index] = (n, (r, c))
        title = _slice_title(label, role, lead, shape)
        if kernel_axis and len(lead) == 1:
            title = rf"{label}_{{{kernel_axis}={lead[0]}}}"
        grids.append(GridPlan(lead, rows, cols, padding, title, labels))
    return ArrayPlan(role, label, tuple(grids), positions)


def _kernel_axis(derivation: Derivation) -> str:
    spec = derivation.spec
    if spec.filters > 1 and spec.channels == 1:
        return "f"
    if spec.channels > 1 and spec.filters == 1:
        return "c"
    return ""


def _spread_grad_output(derivation: Derivation, label: str) -> ArrayPlan:
    """``dL/dz`` spread by the stride and padded for the full correlation."""
    from convviz.identities import FullConvolutionView

    spec = derivation.spec
    view = FullConvolutionView(spec)
    rows, cols = view.grid_size
    shape = spec.output_shape
    leads, oh, ow = _slices(shape)
    grids = []
    positions: dict[Index, tuple[int, GridKey]] = {}
    for n, lead in enumerate(leads):
        labels: dict[GridKey, str] = {}
        for i in range(1, oh + 1):
            for j in range(1, ow + 1):
                index = (*lead, i, j)
                *_, r, c = view.grad_output_position(index)
                labels[(r, c)] = cell_latex("grad_output", index)
                positions[index] = (n, (r, c))
        zeros = frozenset(
            (r, c)
            for r in range(1, rows + 1)
            for c in range(1, cols + 1)
            if (r, c) not in labels
        )
        title = _slice_title(label, "grad_output", lead, shape)
        grids.append(GridPlan(lead, rows, cols, (0, 0), title, labels, zeros))
    return ArrayPlan("grad_output", label, tuple(grids), positions)


def _rotated_kernel(base: ArrayPlan, derivation: Derivation) -> ArrayPlan:
    from convviz.identities import FullConvolutionView

    view = FullConvolutionView(derivation.spec)
    positions = {}
    for index, (n, _) in base.positions.items():
        *_, r, c = view.rotated_kernel_position(index)
        positions[index] = (n, (r, c))
    grids = []
    for n, grid in enumerate(base.grids):
        labels = {
            positions[index][1]: cell_latex("kernel", index)
            for index, (m, _) in base.positions.items()
            if m == n
        }
        title = grid.title.replace(base.label, rf"\operatorname{{rot180}}({base.label})", 1)
        grids.append(GridPlan(grid.lead, grid.rows, grid.cols, (0, 0), title, labels))
    return ArrayPlan("kernel", base.label, tuple(grids), positions)


def _footprints(
    op: str, derivation: Derivation, target: Cell, arrays: Mapping[str, ArrayPlan]
) -> tuple[Footprint, ...]:
    if op not in ("forward", "dw", "da-full"):
        return ()
    spec = derivation.spec
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    kh, kw = spec.kernel_size
    oh, ow = spec.output_size
    *_, i, j = target.index
    if op == "forward":
        top, left = (i - 1) * sh + 1 - ph, (j - 1) * sw + 1 - pw
        span = ((kh - 1) * dh, (kw - 1) * dw)
        slices = range(len(arrays["input"].grids))
        role = "input"
    elif op == "dw":
        top, left = (i - 1) * dh + 1 - ph, (j - 1) * dw + 1 - pw
        span = ((oh - 1) * sh, (ow - 1) * sw)
        channel = target.index[-3] if spec.channels > 1 else 1
        slices = range(channel - 1, channel)
        role = "input"
    elif op == "da-full":
        from convviz.identities import FullConvolutionView

        top, left = FullConvolutionView(spec).window(target.index)[0]
        span = ((kh - 1) * dh, (kw - 1) * dw)
        slices = range(len(arrays["grad_output"].grids))
        role = "grad_output"
    else:
        return ()
    return tuple(
        Footprint(role, n, (top, left), (top + span[0], left + span[1])) for n in slices
    )


_OPERATORS = {
    "forward": ("*", "+", "="),
    "dw": ("*", "="),
    "da": (r",", r"\Rightarrow"),
    "db": (r"\Rightarrow",),
    "da-full": (r"*_{\mathrm{full}}", "="),
}

_CAPTIONS = {
    "forward": r"\text{Forward pass: each } z \text{ cell is a window of } a "
    r"\text{ times } W \text{, plus } b",
    "dw": r"\text{Weight gradient: each } dW \text{ cell sums } dz \text{ times the inputs "
    r"that weight met}",
    "da": r"\text{Input gradient: each } da \text{ cell sums } dz \text{ times the weights "
    r"that input met}",
    "db": r"\text{Bias gradient: } db \text{ sums every } dz",
    "da-full": r"\text{Input gradient as a full correlation of } dz \text{ with } "
    r"\operatorname{rot180}(W)",
}


def plan_scene(
    derivation: Derivation,
    op: str,
    *,
    max_steps: int | None = None,
    verify_identity: bool = True,
) -> ScenePlan:
    """Plan the clip of ``op`` for a derived layer.

    Parameters
    ----------
    derivation
        The layer, derived.
    op
        One of :data:`CLIP_OPS`.
    max_steps
        Keep only the first steps (``None``: all of them).
    verify_identity
        Check the closing identity with SymPy; when False no identity is shown.
    """
    if op not in CLIP_OPS:
        raise ValueError(f"unknown clip {op!r}; expected one of {', '.join(CLIP_OPS)}")
    from convviz.reflection import highlight_map

    map_op = "da" if op == "da-full" else op
    hmap: HighlightMap = highlight_map(derivation, map_op)
    axis = _kernel_axis(derivation)
    plans: dict[str, ArrayPlan] = {}
    for role, info in hmap.arrays.items():
        padding = derivation.spec.padding if role == "input" else (0, 0)
        kernel_axis = axis if role in ("kernel", "grad_kernel") else ""
        plans[role] = _array_plan(
            role, info.label, info.shape, padding=padding, kernel_axis=kernel_axis
        )
    if op == "da-full":
        plans["grad_output"] = _spread_grad_output(derivation, hmap.arrays["grad_output"].label)
        plans["kernel"] = _rotated_kernel(plans["kernel"], derivation)

    steps = hmap.steps if max_steps is None else hmap.steps[:max_steps]
    step_plans = tuple(
        StepPlan(
            target=step.target,
            highlights=step.highlights,
            footprints=_footprints(op, derivation, step.target, plans),
            equation=step_latex(step),
        )
        for step in steps
    )
    identity = _identity(derivation, map_op) if verify_identity else None
    return ScenePlan(
        op=op,
        arrays=tuple(plans.values()),
        operators=_OPERATORS[op] if derivation.spec.bias or op != "forward" else ("*", "="),
        steps=step_plans,
        identity=identity,
        rotate_kernel=op == "da-full",
        caption=_CAPTIONS[op],
        total_steps=len(hmap.steps),
    )


def _identity(derivation: Derivation, op: str) -> str | None:
    from convviz.identities import verify

    if op == "forward":
        return _forward_identity(derivation)
    for check in verify(derivation, engines=False, ops=(op,)):
        if check.op == op:
            return check.latex if check.holds else None
    return None


def _forward_identity(derivation: Derivation, samples: int = 48) -> str | None:
    """``z = a * W + b``, shown only if the symbolic forward pass matches the numbers.

    Up to ``samples`` output cells (spread over the whole output) are evaluated at a
    random point by substituting numbers into their expressions, and compared with the
    explicit-loop reference; that is cheap at any layer size, unlike ``lambdify``.
    """
    import numpy as np
    import sympy

    from convviz.numeric import random_point, reference_correlate

    spec = derivation.spec
    point = random_point(spec)
    expected = reference_correlate(point.input, point.kernel, point.bias, spec)
    values: dict[sympy.Basic, float] = {}
    for role, numbers in (("input", point.input), ("kernel", point.kernel), ("bias", point.bias)):
        for pos, cell in np.ndenumerate(derivation.array(role)):
            if cell is not sympy.S.Zero:
                values[cell] = float(numbers[pos])
    outputs = derivation.output.reshape(-1)
    picks = np.unique(np.linspace(0, len(outputs) - 1, min(samples, len(outputs))).astype(int))
    for k in picks:
        got = _value(outputs[k], values)
        if abs(got - float(expected.reshape(-1)[k])) > 1e-9:
            return None
    s = derivation.symbols
    bias = f" + {s.bias}" if spec.bias else ""
    return f"{s.output} = {s.input} * {s.kernel}{bias}"


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
