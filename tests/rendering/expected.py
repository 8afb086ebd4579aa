"""Which cells a clip should light up, computed here from the convolution index formulas.

This is deliberately independent of convviz's reflection, highlight maps and scene plan:
the tests compare what the scenes paint with what these loops say, so a mistake in the
derivation or the plan cannot hide behind itself.

Conventions (as on screen): indices are 1-based; full indices are ``input[c, r, s]``,
``kernel[f, c, p, q]``, ``bias[f]``, ``output[f, i, j]`` (and the same for the gradients);
a size-1 channel or filter axis is dropped from the displayed index.

Forward, per axis: output ``i`` meets input row ``(i-1)*s + (p-1)*d + 1 - pad`` through
kernel row ``p``; cells whose input row falls in the zero padding contribute nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from convviz.spec import ConvSpec

Index = tuple[int, ...]

#: Roles whose full index has a leading (filter, channel) part, and which axes those are.
_LEADING = {
    "input": ("c",),
    "grad_input": ("c",),
    "kernel": ("f", "c"),
    "grad_kernel": ("f", "c"),
    "bias": ("f",),
    "grad_bias": ("f",),
    "output": ("f",),
    "grad_output": ("f",),
}


def display(spec: ConvSpec, role: str, full: Index) -> Index:
    """Drop the size-1 filter/channel axes of a full index."""
    sizes = {"f": spec.filters, "c": spec.channels}
    lead = _LEADING[role]
    kept = tuple(v for v, axis in zip(full, lead, strict=False) if sizes[axis] > 1)
    return kept + tuple(full[len(lead):])


def display_shape(spec: ConvSpec, role: str) -> Index:
    """Displayed shape of an array (size-1 filter/channel axes dropped)."""
    h, w = spec.input_size
    kh, kw = spec.kernel_size
    oh, ow = out_size(spec)
    full = {
        "input": (spec.channels, h, w),
        "grad_input": (spec.channels, h, w),
        "kernel": (spec.filters, spec.channels, kh, kw),
        "grad_kernel": (spec.filters, spec.channels, kh, kw),
        "bias": (spec.filters,),
        "grad_bias": (spec.filters,),
        "output": (spec.filters, oh, ow),
        "grad_output": (spec.filters, oh, ow),
    }[role]
    return display(spec, role, full)


def out_size(spec: ConvSpec) -> tuple[int, int]:
    """Output height and width from the textbook formula."""
    out = []
    for axis in (0, 1):
        n, k = spec.input_size[axis], spec.kernel_size[axis]
        s, p, d = spec.stride[axis], spec.padding[axis], spec.dilation[axis]
        out.append((n + 2 * p - d * (k - 1) - 1) // s + 1)
    return out[0], out[1]


def input_pos(spec: ConvSpec, axis: int, i: int, p: int) -> int:
    """Input row (axis 0) or column (axis 1) met by output ``i`` through kernel ``p``."""
    s, pad, d = spec.stride[axis], spec.padding[axis], spec.dilation[axis]
    return (i - 1) * s + (p - 1) * d + 1 - pad


def inside(spec: ConvSpec, r: int, c: int) -> bool:
    """Whether input cell ``(r, c)`` is a real cell (not zero padding)."""
    return 1 <= r <= spec.input_size[0] and 1 <= c <= spec.input_size[1]


@dataclass(frozen=True)
class ExpectedStep:
    """The target cell (role, display index) and the operand cells by role."""

    target: tuple[str, Index]
    operands: dict[str, frozenset[Index]]


def _filled(spec: ConvSpec, roles: tuple[str, ...]) -> dict[str, set[Index]]:
    return {role: set() for role in roles}


def _freeze(found: dict[str, set[Index]]) -> dict[str, frozenset[Index]]:
    return {role: frozenset(v) for role, v in found.items() if v}


def _range(n: int) -> range:
    return range(1, n + 1)


def forward_steps(spec: ConvSpec) -> list[ExpectedStep]:
    """``z[f,i,j] = sum a[c, r(i,p), s(j,q)] W[f,c,p,q] + b[f]``."""
    oh, ow = out_size(spec)
    kh, kw = spec.kernel_size
    steps = []
    for f, i, j in itertools.product(_range(spec.filters), _range(oh), _range(ow)):
        found = _filled(spec, ("input", "kernel", "bias"))
        for c, p, q in itertools.product(_range(spec.channels), _range(kh), _range(kw)):
            r, s = input_pos(spec, 0, i, p), input_pos(spec, 1, j, q)
            if inside(spec, r, s):
                found["input"].add(display(spec, "input", (c, r, s)))
                found["kernel"].add(display(spec, "kernel", (f, c, p, q)))
        if spec.bias:
            found["bias"].add(display(spec, "bias", (f,)))
        steps.append(ExpectedStep(("output", display(spec, "output", (f, i, j))), _freeze(found)))
    return steps


def weight_gradient_steps(spec: ConvSpec) -> list[ExpectedStep]:
    """``dW[f,c,p,q] = sum over valid (i,j) of dz[f,i,j] a[c, r(i,p), s(j,q)]``."""
    oh, ow = out_size(spec)
    kh, kw = spec.kernel_size
    steps = []
    for f, c, p, q in itertools.product(
        _range(spec.filters), _range(spec.channels), _range(kh), _range(kw)
    ):
        found = _filled(spec, ("input", "grad_output"))
        for i, j in itertools.product(_range(oh), _range(ow)):
            r, s = input_pos(spec, 0, i, p), input_pos(spec, 1, j, q)
            if inside(spec, r, s):
                found["input"].add(display(spec, "input", (c, r, s)))
                found["grad_output"].add(display(spec, "grad_output", (f, i, j)))
        target = ("grad_kernel", display(spec, "grad_kernel", (f, c, p, q)))
        steps.append(ExpectedStep(target, _freeze(found)))
    return steps


def _output_index(spec: ConvSpec, axis: int, r: int, p: int) -> int | None:
    """Output index ``i`` whose window puts kernel ``p`` on input ``r``, if any.

    ``r + pad - 1 - (p-1)*d`` must be a non-negative multiple of the stride, and the
    quotient plus one must be a real output index.
    """
    s, pad, d = spec.stride[axis], spec.padding[axis], spec.dilation[axis]
    offset = r + pad - 1 - (p - 1) * d
    if offset < 0 or offset % s:
        return None
    i = offset // s + 1
    return i if i <= out_size(spec)[axis] else None


def input_gradient_steps(spec: ConvSpec) -> list[ExpectedStep]:
    """``da[c,r,s] = sum over (f,p,q) with a valid output (i,j) of dz[f,i,j] W[f,c,p,q]``."""
    h, w = spec.input_size
    kh, kw = spec.kernel_size
    steps = []
    for c, r, s in itertools.product(_range(spec.channels), _range(h), _range(w)):
        found = _filled(spec, ("grad_output", "kernel"))
        for f, p, q in itertools.product(_range(spec.filters), _range(kh), _range(kw)):
            i, j = _output_index(spec, 0, r, p), _output_index(spec, 1, s, q)
            if i is not None and j is not None:
                found["grad_output"].add(display(spec, "grad_output", (f, i, j)))
                found["kernel"].add(display(spec, "kernel", (f, c, p, q)))
        target = ("grad_input", display(spec, "grad_input", (c, r, s)))
        steps.append(ExpectedStep(target, _freeze(found)))
    return steps


def bias_gradient_steps(spec: ConvSpec) -> list[ExpectedStep]:
    """``db[f] = sum of dz[f, :, :]``."""
    oh, ow = out_size(spec)
    steps = []
    for f in _range(spec.filters):
        cells = {
            display(spec, "grad_output", (f, i, j))
            for i, j in itertools.product(_range(oh), _range(ow))
        }
        steps.append(
            ExpectedStep(("grad_bias", display(spec, "grad_bias", (f,))),
                         {"grad_output": frozenset(cells)})
        )
    return steps


def expected_steps(spec: ConvSpec, op: str) -> list[ExpectedStep]:
    """Steps of a clip in row-major order of the target."""
    return {
        "forward": forward_steps,
        "dw": weight_gradient_steps,
        "da": input_gradient_steps,
        "da-full": input_gradient_steps,
        "db": bias_gradient_steps,
    }[op](spec)


# -- where display cells are drawn ----------------------------------------------------------
def spread_position(spec: ConvSpec, i: int, j: int) -> tuple[int, int]:
    """Grid cell of ``dz[.., i, j]`` in the stride-spread, padded grid of the full correlation.

    ``(k-1)*d`` zero rows on top, then one row per output row spaced by the stride.
    """
    (kh, kw), (sh, sw), (dh, dw) = spec.kernel_size, spec.stride, spec.dilation
    return ((kh - 1) * dh + (i - 1) * sh + 1, (kw - 1) * dw + (j - 1) * sw + 1)


def spread_grid_size(spec: ConvSpec) -> tuple[int, int]:
    """Size of the spread grid: padded input plus the dilated kernel span minus one."""
    (h, w), (kh, kw) = spec.input_size, spec.kernel_size
    (ph, pw), (dh, dw) = spec.padding, spec.dilation
    return (h + 2 * ph + (kh - 1) * dh, w + 2 * pw + (kw - 1) * dw)


def rotated_position(spec: ConvSpec, p: int, q: int) -> tuple[int, int]:
    """Where kernel cell ``(p, q)`` lands once the kernel is turned by 180 degrees."""
    kh, kw = spec.kernel_size
    return (kh + 1 - p, kw + 1 - q)


def slice_and_key(spec: ConvSpec, op: str, role: str, index: Index) -> tuple[int, tuple[int, int]]:
    """Which drawn slice and which ``(row, col)`` of it show display cell ``index``.

    Scalars are a 1x1 grid, vectors a column; higher ranks are one grid per leading index,
    slices in row-major order of the leading indices.
    """
    shape = display_shape(spec, role)
    if len(shape) == 0:
        return 0, (1, 1)
    if len(shape) == 1:
        return 0, (index[0], 1)
    lead, (r, c) = index[:-2], index[-2:]
    n = 0
    for size, value in zip(shape[:-2], lead, strict=True):
        n = n * size + (value - 1)
    if op == "da-full" and role == "grad_output":
        r, c = spread_position(spec, r, c)
    elif op == "da-full" and role == "kernel":
        r, c = rotated_position(spec, r, c)
    return n, (r, c)


def all_indices(spec: ConvSpec, role: str) -> list[Index]:
    """Every display index of an array, row-major."""
    return list(itertools.product(*(_range(n) for n in display_shape(spec, role))))
