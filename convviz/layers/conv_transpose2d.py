"""``conv-transpose2d``: 2-D transposed convolution, as ``torch.nn.ConvTranspose2d``.

Arrays (PyTorch's layouts, no batch axis): input ``a`` ``(C, H, W)``, kernel ``W``
``(C, F, kh, kw)`` (input channels first, as ``ConvTranspose2d.weight``), bias ``b``
``(F,)``, output ``z`` ``(F, OH, OW)`` with, on each axis,

    OH = (H - 1) s - 2 p + d (k - 1) + output_padding + 1.

The forward pass *scatters*: every input cell ``a[c, i, j]`` adds ``a[c, i, j] W[c, o]`` onto
the output, the kernel's cell ``(p, q)`` landing on ``(i s - pad + p d, j s - pad + q d)``;
cells landing outside the output (the ``padding`` crops them) are dropped. Each output
cell is therefore::

    z[o, y, x] = b[o] + sum of a[c, i, j] W[c, o, p, q]
                 over c, i, j, p, q with y = i s - pad + p d and x = j s - pad + q d.

The same pass read as a *gather* (see :class:`GatherView`) is an ordinary correlation: put
``s - 1`` zeros between the input cells, pad by ``d (k - 1) - p`` on every side (plus the
output padding bottom and right; a negative amount crops), and correlate with the kernel
rotated by 180 degrees, dilated by ``d``, with stride 1.

The backward pass is the convolution the layer transposes:

* ``dL/da = conv2d(dL/dz, W)`` with the layer's stride, padding and dilation (only the
  first ``H x W`` cells when the output padding leaves a spare window);
* ``dL/dW[c, o] = dL/dz[o] * a[c]``: correlate the padded upstream gradient with the input
  spread out by the stride, stepping by the dilation;
* ``dL/db`` sums ``dL/dz`` over each output channel.

The ``forward-scatter`` op
--------------------------
A highlight map steps through its op's *target* array, one cell after the other, and
lights the cells in that cell's expression. To step input cell by input cell, the forward
pass also computes a ``value`` array ``scatter`` shaped like the input: its cell
``(c, i, j)`` is the sum of the contributions ``a[c, i, j] W[c, o, p, q]`` that the input
cell spreads onto the output (those that land inside it). Reflection then lights that
input cell and the kernel cells whose copies land; the output cells they land on are
geometry, given by :func:`scatter_targets` (and, kernel cell by kernel cell, by
:func:`scatter_pairs`) for the renderer to draw. Summing ``scatter`` over every input cell
gives the output without its bias.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from convviz.layers.base import (
    LAYER_OPTION,
    ArrayDecl,
    Identity,
    LayerType,
    OpDecl,
    Window,
    count_option,
    drop_ones,
    flag_option,
    input_option,
    keep_mask,
    numbered,
    pair_option,
)
from convviz.spec import MAX_PRODUCTS, Pair, SpecError, as_pair, pair_text

if TYPE_CHECKING:
    from convviz.highlights import Index
    from convviz.layers.namespace import Namespace

__all__ = [
    "CONV_TRANSPOSE2D",
    "TYPES",
    "ConvTranspose2d",
    "GatherView",
    "scatter_pairs",
    "scatter_targets",
]

_AXES = ("height", "width")






@dataclass(frozen=True)
class ConvTranspose2d:
    """A 2-D transposed convolution layer (``torch.nn.ConvTranspose2d``, groups 1).

    Parameters
    ----------
    input_size
        Input height and width.
    kernel_size
        Kernel height and width.
    stride, padding, output_padding, dilation
        Each an int or an ``(h, w)`` pair, with PyTorch's defaults (1, 0, 0, 1).
        ``padding`` crops ``p`` rows/cols from every side of the full scatter;
        ``output_padding`` adds rows/cols at the bottom and right and, as in PyTorch,
        must be smaller than the stride or the dilation on each axis.
    channels
        Input channels ``C``.
    filters
        Output channels ``F``.
    bias
        Whether each output channel adds a bias.
    layer
        Layer number used in labels: ``a^{[layer-1]}``, ``W^{[layer]}``, ``z^{[layer]}``.
    """

    input_size: Pair = (3, 3)
    kernel_size: Pair = (3, 3)
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    output_padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    channels: int = 1
    filters: int = 1
    bias: bool = True
    layer: int = 2

    #: The layer type's name.
    TYPE: ClassVar[str] = "conv-transpose2d"

    def __post_init__(self) -> None:
        for name in ("input_size", "kernel_size", "stride", "padding", "output_padding",
                     "dilation"):
            object.__setattr__(self, name, as_pair(name, getattr(self, name)))
        for name in ("input_size", "kernel_size"):
            if min(getattr(self, name)) < 1:
                raise SpecError(name, f"sizes must be at least 1, got {getattr(self, name)}")
        for name in ("stride", "dilation"):
            if min(getattr(self, name)) < 1:
                raise SpecError(name, f"must be at least 1, got {getattr(self, name)}")
        for name in ("padding", "output_padding"):
            if min(getattr(self, name)) < 0:
                raise SpecError(name, f"must be 0 or more, got {getattr(self, name)}")
        for name in ("channels", "filters", "layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(name, f"must be an integer of at least 1, got {value!r}")
        if not isinstance(self.bias, bool):
            raise SpecError("bias", f"must be True or False, got {self.bias!r}")
        for axis, axis_name in enumerate(_AXES):
            op, s, d = self.output_padding[axis], self.stride[axis], self.dilation[axis]
            if op >= s and op >= d:
                raise SpecError(
                    "output_padding",
                    f"must be smaller than the stride or the dilation on each axis, got "
                    f"output padding {op} with stride {s} and dilation {d} ({axis_name})",
                )
        for axis, axis_name in enumerate(_AXES):
            size = self.output_size[axis]
            if size < 1:
                h, s, p = self.input_size[axis], self.stride[axis], self.padding[axis]
                d, k, op = self.dilation[axis], self.kernel_size[axis], self.output_padding[axis]
                raise SpecError(
                    "padding",
                    f"too large: output {axis_name} (H-1)*s - 2p + d(k-1) + output_padding + 1"
                    f" = {h - 1}*{s} - 2*{p} + {d}*{k - 1} + {op} + 1 = {size}; it must be "
                    "at least 1",
                )
        if self.products > MAX_PRODUCTS:
            raise SpecError(
                "input_size",
                f"layer too large to derive: the forward pass has {self.products:,} "
                f"multiplications (limit {MAX_PRODUCTS:,})",
            )

    # ----------------------------------------------------------------- derived sizes
    @property
    def output_size(self) -> Pair:
        """``(H - 1) s - 2 p + d (k - 1) + output_padding + 1`` on each axis."""
        h = self.input_size[0]
        w = self.input_size[1]
        return (
            (h - 1) * self.stride[0] - 2 * self.padding[0]
            + self.dilation[0] * (self.kernel_size[0] - 1) + self.output_padding[0] + 1,
            (w - 1) * self.stride[1] - 2 * self.padding[1]
            + self.dilation[1] * (self.kernel_size[1] - 1) + self.output_padding[1] + 1,
        )

    @property
    def products(self) -> int:
        """Multiplications of the full scatter (every input cell times every kernel cell)."""
        h, w = self.input_size
        kh, kw = self.kernel_size
        return self.channels * h * w * self.filters * kh * kw

    # ---------------------------------------------------------------------- shapes
    def full_shape(self, role: str) -> tuple[int, ...]:
        """Shape of the array playing ``role`` as computed, in PyTorch's layout."""
        shapes = {
            "input": (self.channels, *self.input_size),
            "scatter": (self.channels, *self.input_size),
            "kernel": (self.channels, self.filters, *self.kernel_size),
            "bias": (self.filters,),
            "output": (self.filters, *self.output_size),
        }
        return shapes[role.removeprefix("grad_")]

    def display_shape(self, role: str) -> tuple[int, ...]:
        """Display shape of ``role``: size-1 channel and filter axes dropped."""
        shapes = {
            "input": drop_ones((self.channels,), self.input_size),
            "scatter": drop_ones((self.channels,), self.input_size),
            "kernel": drop_ones((self.channels, self.filters), self.kernel_size),
            "bias": drop_ones((self.filters,), ()),
            "output": drop_ones((self.filters,), self.output_size),
        }
        return shapes[role.removeprefix("grad_")]

    # ---------------------------------------------------------------------- naming
    def describe(self) -> str:
        """E.g. ``3x3 input, 3x3 kernel, stride 2, output padding 1 (6x6 output)``."""
        parts = ["x".join(str(n) for n in self.display_shape("input")) + " input"]
        parts.append("x".join(str(n) for n in self.kernel_size) + " kernel")
        if self.filters > 1:
            parts.append(f"{self.filters} filters")
        for name, default in (("stride", 1), ("padding", 0), ("output_padding", 0),
                              ("dilation", 1)):
            value = getattr(self, name)
            if value != (default, default):
                parts.append(f"{name.replace('_', ' ')} {pair_text(value)}")
        if not self.bias:
            parts.append("no bias")
        out = "x".join(str(n) for n in self.display_shape("output"))
        return ", ".join(parts) + f" ({out} output)"

    def slug(self) -> str:
        """File-name id, e.g. ``3x3_k3x3_s2_op1`` (file names put the type first)."""
        parts = ["x".join(str(n) for n in self.display_shape("input"))]
        parts.append("k" + "x".join(str(n) for n in self.kernel_size))
        if self.filters > 1:
            parts.append(f"f{self.filters}")
        for letter, name, default in (("s", "stride", 1), ("p", "padding", 0),
                                      ("op", "output_padding", 0), ("d", "dilation", 1)):
            value = getattr(self, name)
            if value != (default, default):
                parts.append(letter + pair_text(value))
        if not self.bias:
            parts.append("nobias")
        if self.layer != 2:
            parts.append(f"l{self.layer}")
        return "_".join(parts)


# ------------------------------------------------------------------------- options
def _input(parts: tuple[int, ...]) -> dict[str, Any]:
    return {"input_size": parts[-2:], "channels": parts[0] if len(parts) == 3 else 1}


OPTIONS = (
    input_option(
        (2, 3),
        "3x3",
        "Input size, channels first when more than one: 3x3 or 2x3x3.",
        _input,
        ("input_size", "channels"),
    ),
    pair_option("kernel", "3x3", 1, "Kernel size (rectangular allowed).",
                field_name="kernel_size"),
    pair_option("stride", "1", 1, "Stride: input cells land this far apart on the output."),
    pair_option("padding", "0", 0, "Rows/cols cropped from every side of the output."),
    pair_option("output_padding", "0", 0,
                "Extra rows/cols at the bottom/right of the output (smaller than the stride "
                "or the dilation)."),
    pair_option("dilation", "1", 1, "Spacing between kernel cells."),
    count_option("filters", "1", "Output channels.", metavar="F"),
    flag_option("bias", "Layer without a bias term."),
    LAYER_OPTION,
)


# -------------------------------------------------------------------------- arrays
_a = numbered("a", -1)
_w = numbered("W")
_b = numbered("b")
_z = numbered("z")


def _scatter(spec: ConvTranspose2d) -> str:
    return f"{_a(spec)} {_w(spec)}"


ARRAYS = (
    ArrayDecl("input", "a", _a, "input", reading=2, axes="c"),
    ArrayDecl("kernel", "W", _w, "param", reading=1, axes="cf"),
    ArrayDecl("bias", "b", _b, "param", reading=3, needs="bias"),
    ArrayDecl("output", "z", _z, "output", axes="f"),
    ArrayDecl("scatter", "aW", _scatter, "value", reading=6, axes="c"),
)

OPS = (
    OpDecl(
        "forward",
        "output",
        ("input", "kernel", "bias"),
        (r"*", "+", "="),
        r"\text{Forward pass: each } z \text{ cell is a window of the spread-out } a "
        r"\text{ times } \operatorname{rot180}(W) \text{, plus } b",
        summary="z = a *T W + b, output cell by output cell (a gather)",
        view="gather",
    ),
    OpDecl(
        "forward-scatter",
        "scatter",
        ("input", "kernel"),
        (r"\cdot", r"\mapsto"),
        r"\text{Forward pass, scattered: each } a \text{ cell adds } a \cdot W "
        r"\text{ onto a window of } z",
        summary="z built input cell by input cell: a[i,j] W lands at (i s - p, j s - p)",
        view="scatter",
    ),
    OpDecl(
        "dw",
        "grad_kernel",
        ("grad_output", "input"),
        ("*", "="),
        r"\text{Weight gradient: each } dW \text{ cell sums } a \text{ times the } dz "
        r"\text{ its products landed on}",
        summary="dL/dW",
    ),
    OpDecl(
        "da",
        "grad_input",
        ("grad_output", "kernel"),
        ("*", "="),
        r"\text{Input gradient: an ordinary convolution of } dz \text{ with } W",
        summary="dL/da = conv2d(dL/dz, W)",
    ),
    OpDecl(
        "db",
        "grad_bias",
        ("grad_output",),
        (r"\Rightarrow",),
        r"\text{Bias gradient: } db \text{ sums every } dz",
        needs="bias",
        summary="dL/db",
    ),
)


# ------------------------------------------------------------------------- forward
def _landings(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> list[list[Pair]]:
    """For each input position ``i``: the ``(kernel index, output position)`` pairs in range."""
    out: list[list[Pair]] = []
    for i in range(n_in):
        row = []
        for kk in range(k):
            y = i * s - p + kk * d
            if 0 <= y < n_out:
                row.append((kk, y))
        out.append(row)
    return out


def _axis_landings(spec: ConvTranspose2d, axis: int) -> list[list[Pair]]:
    return _landings(spec.input_size[axis], spec.output_size[axis], spec.kernel_size[axis],
                     spec.stride[axis], spec.padding[axis], spec.dilation[axis])


def forward(xp: Namespace, spec: ConvTranspose2d, arrays: Mapping[str, NDArray[Any]]) -> dict[
    str, NDArray[Any]
]:
    """``z`` (each output cell the sum of the products landing on it) and ``scatter``.

    Every product ``a[c, i, j] W[c, o, p, q]`` that lands inside the output is built once
    and used twice: in the sum of the output cell it lands on and in the sum of what its
    input cell spreads.
    """
    a, w, b = arrays["input"], arrays["kernel"], arrays["bias"]
    product, total = xp.product, xp.total
    filters = range(spec.filters)
    oh, ow = spec.output_size
    landed: list[list[Any]] = [[] for _ in range(spec.filters * oh * ow)]
    down, across = _axis_landings(spec, 0), _axis_landings(spec, 1)
    spread = xp.empty(spec.full_shape("scatter"))
    for c in range(spec.channels):
        for i, landing_rows in enumerate(down):
            for j, landing_cols in enumerate(across):
                cell = a[c, i, j]
                spreads = []
                for o in filters:
                    kernel = w[c, o]
                    for p, y in landing_rows:
                        base = (o * oh + y) * ow
                        for q, x in landing_cols:
                            term = product((cell, kernel[p, q]))
                            landed[base + x].append(term)
                            spreads.append(term)
                spread[c, i, j] = total(spreads)
    z = xp.empty(spec.full_shape("output"))
    for n, terms in enumerate(landed):
        o, rest = divmod(n, oh * ow)
        if spec.bias:
            terms.append(b[o])
        z[o, rest // ow, rest % ow] = total(terms)
    return {"output": z, "scatter": spread}


def reference(spec: ConvTranspose2d, arrays: Mapping[str, NDArray[Any]]) -> NDArray[Any]:
    """The output by explicit scatter-add loops over float arrays."""
    a = np.asarray(arrays["input"], dtype=float)
    w = np.asarray(arrays["kernel"], dtype=float)
    oh, ow = spec.output_size
    out = np.zeros((spec.filters, oh, ow))
    if spec.bias:
        out += np.asarray(arrays["bias"], dtype=float)[:, None, None]
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    kh, kw = spec.kernel_size
    for c in range(spec.channels):
        for i in range(spec.input_size[0]):
            for j in range(spec.input_size[1]):
                for o in range(spec.filters):
                    for p in range(kh):
                        for q in range(kw):
                            y, x = i * sh - ph + p * dh, j * sw - pw + q * dw
                            if 0 <= y < oh and 0 <= x < ow:
                                out[o, y, x] += a[c, i, j] * w[c, o, p, q]
    return out


# ------------------------------------------------------------------------ geometry
def _to_full(shape: tuple[int, ...], display: tuple[int, ...], index: Index) -> tuple[int, ...]:
    """0-based full index from a 1-based display index (dropped size-1 axes are 0)."""
    keep = keep_mask(shape, display)
    values = iter(index)
    return tuple(next(values) - 1 if kept else 0 for kept in keep)


def _to_display(
    shape: tuple[int, ...], display: tuple[int, ...], full: tuple[int, ...]
) -> Index:
    """1-based display index from a 0-based full index."""
    keep = keep_mask(shape, display)
    return tuple(n + 1 for n, kept in zip(full, keep, strict=True) if kept)


def scatter_pairs(spec: ConvTranspose2d, index: Index) -> list[tuple[Index, Index]]:
    """Where input cell ``index`` (1-based display) spreads its products.

    Returns ``(kernel cell, output cell)`` pairs, both 1-based display indices, for every
    kernel cell whose product with the input cell lands inside the output, in the
    kernel's row-major order.
    """
    c, i, j = _to_full(spec.full_shape("input"), spec.display_shape("input"), index)
    kshape, kdisplay = spec.full_shape("kernel"), spec.display_shape("kernel")
    oshape, odisplay = spec.full_shape("output"), spec.display_shape("output")
    down, across = _axis_landings(spec, 0)[i], _axis_landings(spec, 1)[j]
    return [
        (_to_display(kshape, kdisplay, (c, o, p, q)), _to_display(oshape, odisplay, (o, y, x)))
        for o in range(spec.filters)
        for p, y in down
        for q, x in across
    ]


def scatter_targets(spec: ConvTranspose2d, index: Index) -> list[Index]:
    """Output cells (1-based display indices, row-major) that input cell ``index`` lands on."""
    return sorted({out for _, out in scatter_pairs(spec, index)})


@dataclass(frozen=True)
class GatherView:
    """Geometry of the forward pass as an ordinary correlation with ``rot180(W)``.

    The input is spread out by the stride (``s - 1`` zeros between cells) and padded by
    ``d (k - 1) - p`` on every side, plus ``output_padding`` more at the bottom and right,
    giving a grid of :attr:`grid_size` per input channel. (A negative amount crops: when
    ``p > d (k - 1)`` the outer rows of the spread input fall outside the grid.)
    Correlating the grid with the kernel rotated by 180 degrees, dilated by ``d``, stride
    1, gives the output: output cell ``(o, y, x)`` reads the ``kh x kw`` window whose
    top-left grid cell is ``(y, x)`` and whose cells are ``d`` apart, against
    ``rot180(W[:, o])``.

    All indices are 1-based display indices (size-1 channel/filter axes dropped), like a
    highlight map's; the leading axes of an index pass through unchanged.
    """

    spec: ConvTranspose2d

    @property
    def before(self) -> Pair:
        """Zero rows/cols on the top/left: ``d (k - 1) - p`` (negative: cropped)."""
        s = self.spec
        return (
            s.dilation[0] * (s.kernel_size[0] - 1) - s.padding[0],
            s.dilation[1] * (s.kernel_size[1] - 1) - s.padding[1],
        )

    @property
    def after(self) -> Pair:
        """Zero rows/cols on the bottom/right: ``d (k - 1) - p + output_padding``."""
        return (
            self.before[0] + self.spec.output_padding[0],
            self.before[1] + self.spec.output_padding[1],
        )

    @property
    def grid_size(self) -> Pair:
        """Height and width of the spread, padded input grid."""
        s = self.spec
        h, w = s.input_size
        return (
            (h - 1) * s.stride[0] + 1 + self.before[0] + self.after[0],
            (w - 1) * s.stride[1] + 1 + self.before[1] + self.after[1],
        )

    def input_position(self, index: Index) -> Index | None:
        """Where input cell ``index`` sits in the grid, or ``None`` if it is cropped away."""
        s = self.spec
        *lead, i, j = index
        row = self.before[0] + (i - 1) * s.stride[0] + 1
        col = self.before[1] + (j - 1) * s.stride[1] + 1
        gh, gw = self.grid_size
        if not (1 <= row <= gh and 1 <= col <= gw):
            return None
        return (*lead, row, col)

    def rotated_kernel_position(self, index: Index) -> Index:
        """Where kernel cell ``index`` lands once the kernel is rotated by 180 degrees."""
        kh, kw = self.spec.kernel_size
        *lead, p, q = index
        return (*lead, kh - p + 1, kw - q + 1)

    def position(self, index: Index) -> Index | None:
        """Where input cell ``index`` sits in the grid (the spread array of the view)."""
        return self.input_position(index)

    def window(self, index: Index) -> tuple[Index, Pair]:
        """Top-left grid cell (1-based row, col) and step of the window for output ``index``."""
        *_, y, x = index
        return ((y, x), self.spec.dilation)


# ---------------------------------------------------------------------- identities
def _gather_form(d: Any) -> NDArray[Any]:
    import sympy

    from convviz.arithmetic import CanonicalBuilder
    from convviz.conv import correlate

    spec: ConvTranspose2d = d.spec
    view = GatherView(spec)
    grid = np.empty((spec.channels, *view.grid_size), dtype=object)
    grid.fill(sympy.S.Zero)
    a = d.input
    ishape, idisplay = spec.full_shape("input"), spec.display_shape("input")
    for full in np.ndindex(*ishape):
        where = view.input_position(_to_display(ishape, idisplay, full))
        if where is not None:
            grid[(full[0], where[-2] - 1, where[-1] - 1)] = a[full]
    kernel = d.kernel
    rotated = np.empty((spec.filters, spec.channels, *spec.kernel_size), dtype=object)
    kshape, kdisplay = spec.full_shape("kernel"), spec.display_shape("kernel")
    for full in np.ndindex(*kshape):
        c, o = full[0], full[1]
        *_, p, q = view.rotated_kernel_position(_to_display(kshape, kdisplay, full))
        rotated[o, c, p - 1, q - 1] = kernel[full]
    return correlate(grid, rotated, dilation=spec.dilation, bias=d.bias,
                     builder=CanonicalBuilder())


def _da_form(d: Any) -> NDArray[Any]:
    from convviz.arithmetic import CanonicalBuilder
    from convviz.conv import correlate

    spec: ConvTranspose2d = d.spec
    # W is (C_in, C_out, kh, kw): as conv2d's (filters, channels, kh, kw) it maps dz's
    # C_out channels onto da's C_in channels unchanged.
    grad = correlate(d.grad_output, d.kernel, stride=spec.stride, padding=spec.padding,
                     dilation=spec.dilation, builder=CanonicalBuilder())
    h, w = spec.input_size
    return np.asarray(grad[:, :h, :w])


def _dw_form(d: Any) -> NDArray[Any]:
    from convviz.arithmetic import CanonicalBuilder
    from convviz.conv import correlate

    spec: ConvTranspose2d = d.spec
    a, dz = d.input, d.grad_output
    kh, kw = spec.kernel_size
    builder = CanonicalBuilder()
    dw = np.empty(spec.full_shape("kernel"), dtype=object)
    for c in range(spec.channels):
        for o in range(spec.filters):
            full = correlate(dz[o][None], a[c][None, None], stride=spec.dilation,
                             dilation=spec.stride, padding=spec.padding, builder=builder)
            dw[c, o] = full[0, :kh, :kw]
    return dw


def _db_form(d: Any) -> NDArray[Any]:
    from convviz.arithmetic import CanonicalBuilder

    builder = CanonicalBuilder()
    dz = d.grad_output
    return np.array([builder.total(list(dz[o].flat)) for o in range(dz.shape[0])],
                    dtype=object)


def _grad(x: str) -> str:
    return rf"\frac{{\partial \mathcal{{L}}}}{{\partial {x}}}"


def _pair(value: Pair) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}\\times{value[1]}"


def _settings(**values: Pair) -> str:
    """The layer settings that are not trivial, as a bracketed note after an identity."""
    trivial = {"stride": 1, "dilation": 1, "padding": 0}
    shown = [
        f"{name} {_pair(value)}"
        for name, value in values.items()
        if value != (trivial[name], trivial[name])
    ]
    return rf"\quad \text{{({', '.join(shown)})}}" if shown else ""


def _gather_latex(spec: ConvTranspose2d) -> str:
    view = GatherView(spec)
    bias = f" + {_b(spec)}" if spec.bias else ""
    note = _settings(dilation=spec.dilation)
    return (
        rf"{_z(spec)} = \operatorname{{pad}}_{{{_pair(view.before)}}}"
        rf"\big(\operatorname{{spread}}_{{{_pair(spec.stride)}}}({_a(spec)})\big) * "
        rf"\operatorname{{rot180}}({_w(spec)}){bias}{note}"
    )


def _da_latex(spec: ConvTranspose2d) -> str:
    note = _settings(stride=spec.stride, padding=spec.padding, dilation=spec.dilation)
    return rf"{_grad(_a(spec))} = {_grad(_z(spec))} * {_w(spec)}{note}"


def _dw_latex(spec: ConvTranspose2d) -> str:
    note = _settings(stride=spec.dilation, padding=spec.padding, dilation=spec.stride)
    return rf"{_grad(_w(spec))} = {_grad(_z(spec))} * {_a(spec)}{note}"


def _db_latex(spec: ConvTranspose2d) -> str:
    many = spec.filters > 1
    bias_cell = f"{_b(spec)}_o" if many else _b(spec)
    z_cell = f"{_z(spec)}_{{o,y,x}}" if many else f"{_z(spec)}_{{y,x}}"
    return rf"{_grad(bias_cell)} = \sum_{{y,x}} {_grad(z_cell)}"


IDENTITIES = (
    Identity(
        "forward",
        "output",
        "z equals the stride-spread, padded input correlated with the 180-degree rotated "
        "kernel",
        _gather_latex,
        _gather_form,
    ),
    Identity("dw", "grad_kernel",
             "dL/dW equals dL/dz correlated with the stride-spread input", _dw_latex, _dw_form),
    Identity("da", "grad_input",
             "dL/da equals the ordinary convolution of dL/dz with the same kernel", _da_latex,
             _da_form),
    Identity("db", "grad_bias", "dL/db equals dL/dz summed over each output channel",
             _db_latex, _db_form),
)


def _padding(spec: ConvTranspose2d, role: str) -> Pair:
    # dL/da and dL/dW correlate the upstream gradient zero-padded by the layer's padding.
    return spec.padding if role == "grad_output" else (0, 0)


def _window(spec: ConvTranspose2d, op: str, index: Index) -> list[Window]:
    """The rotated kernel's footprint on the spread input, for the gather view."""
    if op != "forward":
        return []
    (top, left), (dh, dw) = GatherView(spec).window(index)
    kh, kw = spec.kernel_size
    return [("input", None, (top, left), (top + dh * (kh - 1), left + dw * (kw - 1)))]


CONV_TRANSPOSE2D = LayerType(
    name="conv-transpose2d",
    torch_name="ConvTranspose2d",
    spec_class=ConvTranspose2d,
    summary="2-D transposed convolution (scatter of kernel copies), as "
    "torch.nn.ConvTranspose2d",
    options=OPTIONS,
    arrays=ARRAYS,
    ops=OPS,
    forward=forward,
    identities=IDENTITIES,
    reference=reference,
    padding=_padding,
    window=_window,
    forward_latex=lambda spec: rf"{_z(spec)} = \operatorname{{spread}}({_a(spec)}) * "
    rf"\operatorname{{rot180}}({_w(spec)})" + (f" + {_b(spec)}" if spec.bias else ""),
    view_geometry=lambda spec, view: GatherView(spec),
    scatter=scatter_pairs,
    real=False,
    rank=20,
)

TYPES = (CONV_TRANSPOSE2D,)
