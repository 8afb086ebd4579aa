r"""``maxpool2d`` and ``avgpool2d``: 2-D pooling, as ``torch.nn.MaxPool2d`` / ``AvgPool2d``.

Arrays: input ``a`` ``(C, H, W)``, output ``p`` ``(C, OH, OW)``, each channel pooled on its
own. A window of ``kh x kw`` cells moves by the stride (the kernel size unless given, as in
PyTorch) over the input padded by ``padding`` on every side::

    OH = floor((H + 2 ph - kh) / sh) + 1        OW = floor((W + 2 pw - kw) / sw) + 1

(floor mode, PyTorch's default ``ceil_mode=False``; no dilation). PyTorch requires the
padding to be at most half the kernel on each axis, so that every window holds at least
one input cell.

* Max pooling: ``p = max`` of the window's input cells. Padding cells are not candidates
  (PyTorch pads with ``-inf``). The gradient of a window goes to its *first* maximum in
  row-major order, as PyTorch's kernels do on ties:
  ``da[c, r, s] = sum over windows containing (r, s) of dp * [a[c, r, s] is the first
  maximum of that window]``. SymPy differentiates ``Max`` into ``Heaviside(a - Max(others))``,
  which is ``1/2`` on a tie; :func:`first_maximum` rewrites it into the tie-aware indicator
  ``Heaviside(a - Max(earlier cells), 0) * Heaviside(a - Max(later cells), 1)``
  (``a`` beats every earlier cell and ties or beats every later one).
* Average pooling: ``p = (sum of the window's cells) / (kh kw)``; padding cells count as
  zeros in the divisor (PyTorch's default ``count_include_pad=True``). Every cell of a
  window receives ``dp / (kh kw)``: ``da[c, r, s] = sum over windows containing (r, s) of
  dp / (kh kw)``.

Where windows overlap (stride smaller than the kernel) the contributions of all windows
containing a cell add up.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
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
    drop_ones,
    input_option,
    pair_option,
)
from convviz.spec import MAX_PRODUCTS, Pair, SpecError, as_pair, pair_text

if TYPE_CHECKING:
    from convviz.layers.namespace import Namespace

__all__ = [
    "AVGPOOL2D",
    "MAXPOOL2D",
    "TYPES",
    "AvgPool2d",
    "MaxPool2d",
    "Pool2d",
    "first_maximum",
    "first_maximum_gradients",
    "first_maximum_indicator",
    "window_indicators",
]

#: One window: the output position ``(i, j)`` and its input cells ``(r, s)`` inside the
#: input (padding left out), 0-based, in row-major order.
Window = tuple[Pair, tuple[Pair, ...]]






# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class Pool2d:
    """What max and average pooling share: the window geometry.

    Parameters
    ----------
    input_size
        Input height and width.
    kernel_size
        Window height and width (an int for both).
    stride
        Step of the window (an int for both axes); ``None`` takes the kernel size, as
        PyTorch does. After construction it is always a pair (so
        ``dataclasses.replace(spec, kernel_size=...)`` keeps the resolved stride; pass
        ``stride=None`` to follow the new kernel).
    padding
        Padding on every side, at most half the kernel on each axis (PyTorch's rule).
    channels
        Input channels ``C``; each is pooled on its own.
    layer
        Layer number used in labels: ``a^{[layer]}`` in, ``p^{[layer]}`` out.

    Output size (floor mode, PyTorch's default): ``floor((H + 2p - k) / s) + 1`` per axis.
    """

    input_size: Pair = (4, 4)
    kernel_size: Pair = (2, 2)
    stride: Pair | None = None
    padding: Pair = (0, 0)
    channels: int = 1
    layer: int = 1

    TYPE: ClassVar[str] = ""

    def __post_init__(self) -> None:
        stride = self.kernel_size if self.stride is None else self.stride
        pairs = {
            "input_size": self.input_size,
            "kernel_size": self.kernel_size,
            "stride": stride,
            "padding": self.padding,
        }
        for name, value in pairs.items():
            object.__setattr__(self, name, as_pair(name, value))
        for name in ("input_size", "kernel_size"):
            if min(getattr(self, name)) < 1:
                raise SpecError(name, f"sizes must be at least 1, got {getattr(self, name)}")
        if min(self.strides) < 1:
            raise SpecError("stride", f"must be at least 1, got {self.strides}")
        if min(self.padding) < 0:
            raise SpecError("padding", f"must be 0 or more, got {self.padding}")
        kh, kw = self.kernel_size
        ph, pw = self.padding
        if 2 * ph > kh or 2 * pw > kw:
            raise SpecError(
                "padding",
                f"must be at most half the kernel size on each axis (kernel "
                f"{kh}x{kw} allows up to {kh // 2}x{kw // 2}), got {ph}x{pw}",
            )
        for name in ("channels", "layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(name, f"must be an integer of at least 1, got {value!r}")
        for axis, axis_name in ((0, "height"), (1, "width")):
            size, room = self.kernel_size[axis], self.padded_size[axis]
            if size > room:
                raise SpecError(
                    "kernel_size",
                    f"kernel {axis_name} ({size}) is larger than the padded input "
                    f"{axis_name} ({room})",
                )
        if self.products > MAX_PRODUCTS:
            raise SpecError(
                "input_size",
                f"layer too large to derive: the forward pass visits {self.products:,} "
                f"window cells (limit {MAX_PRODUCTS:,})",
            )

    # ----------------------------------------------------------------- derived sizes
    @property
    def strides(self) -> Pair:
        """The stride as a pair (``stride`` is resolved on construction; typed here)."""
        assert self.stride is not None
        return self.stride

    @property
    def padded_size(self) -> Pair:
        """Input height and width after padding."""
        return (
            self.input_size[0] + 2 * self.padding[0],
            self.input_size[1] + 2 * self.padding[1],
        )

    @property
    def output_size(self) -> Pair:
        """``floor((H + 2p - k) / s) + 1`` on each axis."""
        (hp, wp), (kh, kw), (sh, sw) = self.padded_size, self.kernel_size, self.strides
        return ((hp - kh) // sh + 1, (wp - kw) // sw + 1)

    @property
    def products(self) -> int:
        """Window cells visited by the forward pass, counting padding cells."""
        oh, ow = self.output_size
        kh, kw = self.kernel_size
        return self.channels * oh * ow * kh * kw

    def windows(self) -> tuple[Window, ...]:
        """Every output position with its input cells (padding left out), row-major, 0-based.

        The same for every channel.
        """
        (oh, ow), (kh, kw) = self.output_size, self.kernel_size
        (sh, sw), (ph, pw) = self.strides, self.padding
        h, w = self.input_size
        out = []
        for i in range(oh):
            rows = [r for r in range(i * sh - ph, i * sh - ph + kh) if 0 <= r < h]
            for j in range(ow):
                cols = [s for s in range(j * sw - pw, j * sw - pw + kw) if 0 <= s < w]
                out.append(((i, j), tuple((r, s) for r in rows for s in cols)))
        return tuple(out)

    # ---------------------------------------------------------------------- shapes
    def full_shape(self, role: str) -> tuple[int, ...]:
        """``(C, H, W)`` for the input, ``(C, OH, OW)`` for the output (and gradients)."""
        shapes = {
            "input": (self.channels, *self.input_size),
            "output": (self.channels, *self.output_size),
        }
        return shapes[role.removeprefix("grad_")]

    def display_shape(self, role: str) -> tuple[int, ...]:
        """The full shape with a size-1 channel axis dropped."""
        full = self.full_shape(role)
        return drop_ones(full[:1], full[1:])

    # ---------------------------------------------------------------------- naming
    def describe(self) -> str:
        """Short human description, e.g. ``4x4 input, 2x2 kernel, stride 2``."""
        parts = ["x".join(str(n) for n in self.display_shape("input")) + " input"]
        parts.append("x".join(str(n) for n in self.kernel_size) + " kernel")
        parts.append(f"stride {pair_text(self.strides)}")
        if self.padding != (0, 0):
            parts.append(f"padding {pair_text(self.padding)}")
        return ", ".join(parts)

    def slug(self) -> str:
        """File-name friendly identifier, e.g. ``4x4_k2x2_s2`` or ``3x6x6_k3x3_s1_p1``."""
        parts = ["x".join(str(n) for n in self.display_shape("input"))]
        parts.append("k" + "x".join(str(n) for n in self.kernel_size))
        parts.append("s" + pair_text(self.strides))
        if self.padding != (0, 0):
            parts.append("p" + pair_text(self.padding))
        if self.layer != 1:
            parts.append(f"l{self.layer}")
        return "_".join(parts)


@dataclass(frozen=True)
class MaxPool2d(Pool2d):
    """Max pooling, as ``torch.nn.MaxPool2d`` (no dilation, floor mode).

    Each output cell is the largest input cell of its window; padding cells never win.
    Shape: ``(C, H, W) -> (C, OH, OW)`` with ``OH = floor((H + 2p - k) / s) + 1``.
    """

    TYPE: ClassVar[str] = "maxpool2d"


@dataclass(frozen=True)
class AvgPool2d(Pool2d):
    """Average pooling, as ``torch.nn.AvgPool2d`` (floor mode, ``count_include_pad=True``).

    Each output cell is the sum of its window's input cells over ``kh kw`` (padding
    cells count as zeros). Shape: ``(C, H, W) -> (C, OH, OW)``.
    """

    TYPE: ClassVar[str] = "avgpool2d"


# ------------------------------------------------------------------------- options
def _pool_input(parts: tuple[int, ...]) -> dict[str, Any]:
    return {"input_size": parts[-2:], "channels": parts[0] if len(parts) == 3 else 1}


OPTIONS = (
    input_option(
        (2, 3),
        "4x4",
        "Input size, channels first when more than one: 4x4 or 3x4x4.",
        _pool_input,
        ("input_size", "channels"),
    ),
    pair_option("kernel", "2x2", 1, "Window size (rectangular allowed).",
                field_name="kernel_size"),
    pair_option("stride", None, 1,
                "Stride (one number for both axes, or SHxSW); default: the kernel size."),
    pair_option("padding", "0", 0,
                "Padding on every side, at most half the kernel (floor mode, as PyTorch)."),
    LAYER_OPTION,
)


# -------------------------------------------------------------------------- arrays
def _a(spec: Pool2d) -> str:
    return f"a^{{[{spec.layer}]}}"


def _p(spec: Pool2d) -> str:
    return f"p^{{[{spec.layer}]}}"


ARRAYS = (
    ArrayDecl("input", "a", _a, "input", reading=2, axes="c"),
    ArrayDecl("output", "p", _p, "output", axes="c"),
)


def _padding(spec: Pool2d, role: str) -> Pair:
    return spec.padding if role == "input" else (0, 0)


# ------------------------------------------------------------------------- forward
def max_forward(
    xp: Namespace, spec: Pool2d, arrays: Mapping[str, NDArray[Any]]
) -> dict[str, NDArray[Any]]:
    """``p[c, i, j] = max`` of the window's input cells (padding cells are not candidates)."""
    a = arrays["input"]
    out = xp.empty(spec.full_shape("output"))
    windows = spec.windows()
    for c in range(spec.channels):
        for (i, j), cells in windows:
            out[c, i, j] = xp.maximum([a[c, r, s] for r, s in cells])
    return {"output": out}


def avg_forward(
    xp: Namespace, spec: Pool2d, arrays: Mapping[str, NDArray[Any]]
) -> dict[str, NDArray[Any]]:
    """``p[c, i, j] = (sum of the window's cells) / (kh kw)``, padding counted as zeros."""
    a = arrays["input"]
    kh, kw = spec.kernel_size
    scale = xp.const(1) / xp.const(kh * kw)  # exact 1/(kh kw) for symbols
    out = xp.empty(spec.full_shape("output"))
    windows = spec.windows()
    for c in range(spec.channels):
        for (i, j), cells in windows:
            out[c, i, j] = xp.product([scale, xp.total([a[c, r, s] for r, s in cells])])
    return {"output": out}


def max_reference(spec: Pool2d, arrays: Mapping[str, NDArray[Any]]) -> NDArray[Any]:
    """Max pooling by explicit loops over a ``-inf``-padded float input."""
    x = np.asarray(arrays["input"], dtype=float)
    (ph, pw), (kh, kw), (sh, sw) = spec.padding, spec.kernel_size, spec.strides
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    oh, ow = spec.output_size
    out = np.empty((x.shape[0], oh, ow))
    for c in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                best = -np.inf
                for p in range(kh):
                    for q in range(kw):
                        best = max(best, padded[c, i * sh + p, j * sw + q])
                out[c, i, j] = best
    return out


def avg_reference(spec: Pool2d, arrays: Mapping[str, NDArray[Any]]) -> NDArray[Any]:
    """Average pooling by explicit loops over a zero-padded float input."""
    x = np.asarray(arrays["input"], dtype=float)
    (ph, pw), (kh, kw), (sh, sw) = spec.padding, spec.kernel_size, spec.strides
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    oh, ow = spec.output_size
    out = np.empty((x.shape[0], oh, ow))
    for c in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                window = padded[c, i * sh : i * sh + kh, j * sw : j * sw + kw]
                out[c, i, j] = float(window.sum()) / (kh * kw)
    return out


# ---------------------------------------------------------- first-maximum indicators
# A max-pooling gradient has one term per (window, cell) pair, so the nodes of the
# indicators are built directly, each exactly as SymPy's own constructor would return it
# (the tests compare them with ``==`` against the evaluated constructors): evaluating
# ``Max`` of distinct cells compares every pair (tens of milliseconds for four cells) only
# to keep them all, and ``Heaviside``'s ``eval`` cannot decide the sign of ``a - Max(...)``.
def _compare_key() -> Callable[[Any], Any]:
    import sympy

    return functools.cmp_to_key(sympy.Basic.compare)


def _canonical(cls: Any, args: Sequence[Any]) -> Any:
    """``cls(*args)`` (``Add`` or ``Mul``) for arguments SymPy would only sort.

    A sum of terms ``c * t`` with distinct ``t`` (no numbers, no nested sums) and a
    product of distinct factors (no numbers, powers or nested products) are sorted by
    ``Basic.compare`` and left as they are; anything else goes to SymPy's constructor.
    """
    import sympy

    if len(args) == 1:
        return args[0]
    if cls is sympy.Add:
        plain = not any(isinstance(a, sympy.Number | sympy.Add) for a in args)
        distinct = {a.as_coeff_Mul()[1] for a in args}
    else:
        plain = not any(isinstance(a, sympy.Number | sympy.Mul | sympy.Pow) for a in args)
        distinct = set(args)
    if not plain or len(distinct) != len(args):
        return cls(*args)
    return cls._from_args(sorted(args, key=_compare_key()), is_commutative=True)


_CLASS_ORDER: dict[tuple[type, type], int] = {}


def _before(left: Any, right: Any) -> bool:
    """Whether ``left`` sorts before ``right`` in SymPy's canonical order.

    ``Basic.compare`` decides by class name alone when the names differ, so that answer
    is remembered per pair of classes.
    """
    import sympy

    key = (type(left), type(right))
    order = _CLASS_ORDER.get(key)
    if order is None:
        order = sympy.Basic.compare(left, right)
        if key[0].__name__ != key[1].__name__:
            _CLASS_ORDER[key] = order
    return order < 0


#: How a window's factors are laid out, by the class of its cells and the window's
#: signature (the row-major position of each cell in printed order): for every cell in
#: row-major order the positions of its earlier and later cells in printed order (the
#: arguments of their ``Max``) and whether ``Basic.compare`` puts its "later" factor
#: first. The factors' order depends on nothing else for cells of one class (see
#: :func:`window_indicators`), so it is found by comparing once per class and signature
#: (a few dozen at most for a layer). Cells of another class (``Symbol`` rather than
#: ``Indexed``) compare by other rules, so they must not share it.
_LAYOUTS: dict[
    tuple[type, tuple[int, ...]], tuple[tuple[tuple[int, ...], tuple[int, ...], bool], ...]
] = {}


@functools.cache
def _heaviside_nargs() -> Any:
    import sympy

    return sympy.Heaviside(sympy.Symbol("x"), 0).nargs


def _factor(x: Any, side: Sequence[Any], at_zero: Any, cell_first: bool) -> Any:
    """``Heaviside(x - Max(*side), at_zero)`` built as its constructors would return it.

    ``side`` is in printed order (the ``Max``'s arguments, with its ``_argset``); a lone
    cell is itself. ``cell_first``: whether ``x`` goes before ``-Max`` in the gap (by its
    class, :func:`~convviz.arithmetic.before_products`). The nodes are built inline
    (``Max`` with its ``_argset``, ``Mul``, ``Add`` in canonical order, ``Heaviside`` with
    its ``nargs``): a layer builds a few of them for every input cell.
    """
    import sympy

    new = sympy.Basic.__new__
    if len(side) == 1:
        largest = side[0]
    else:
        largest = new(sympy.Max, *side)
        largest._argset = frozenset(side)
    negative = new(sympy.Mul, sympy.S.NegativeOne, largest)
    negative.is_commutative = True
    gap = new(sympy.Add, x, negative) if cell_first else new(sympy.Add, negative, x)
    gap.is_commutative = True
    node = new(sympy.Heaviside, gap, at_zero)
    node.nargs = _heaviside_nargs()
    return node


def _layout(
    cells: Sequence[Any], order: tuple[int, ...]
) -> tuple[tuple[tuple[int, ...], tuple[int, ...], bool], ...]:
    """The layout of :data:`_LAYOUTS` for a window, found by comparing its factors."""
    import sympy

    from convviz.arithmetic import before_products

    cell_first = before_products(type(cells[0]))
    plan = []
    for n in range(len(cells)):
        earlier_at = tuple(p for p in order if p < n)
        later_at = tuple(p for p in order if p > n)
        swap = False
        if earlier_at and later_at:  # a cell with two factors: which comes first
            first = _factor(cells[n], [cells[p] for p in earlier_at], sympy.S.Zero, cell_first)
            second = _factor(cells[n], [cells[p] for p in later_at], sympy.S.One, cell_first)
            swap = sympy.Basic.compare(first, second) > 0
        plan.append((earlier_at, later_at, swap))
    return tuple(plan)


def window_indicators(
    cells: Sequence[Any], printed: Sequence[Any] | None = None
) -> list[tuple[Any, ...]]:
    """Factors of ``[cells[n] is the first maximum of cells]`` for every ``n``.

    ``cells`` are a window's distinct cells of one array in row-major order. Cell ``x``
    gets ``Heaviside(x - Max(earlier cells), 0)`` (it beats every earlier cell) and
    ``Heaviside(x - Max(later cells), 1)`` (it ties or beats every later cell), in SymPy's
    canonical order; a factor is left out when its side is empty, so a lone cell gets no
    factor (the indicator 1). ``printed``: the same cells in ``sympy.ordered``'s order (the
    arguments of the window's ``Max``), when known.

    The two factors of a cell are ordered by ``Basic.compare``, which decides on their
    ``Max`` arguments: their counts, their order (the printed order) and, cell against cell,
    their indices as numbers (the row-major order). So windows of one size whose printed
    order is the same permutation of the row-major order get the same order of factors,
    and it is compared for the first such window only (:data:`_LAYOUTS`).
    """
    import sympy

    from convviz.arithmetic import before_products

    last = len(cells) - 1
    if last == 0:
        return [()]
    if printed is None:
        printed = sorted(cells, key=_printed_index)
    at = {id(cell): n for n, cell in enumerate(cells)}
    order = tuple([at.get(id(cell), -1) for cell in printed])
    if -1 in order:  # equal cells that are other objects: found by value
        by_value = {cell: n for n, cell in enumerate(cells)}
        order = tuple([by_value[cell] for cell in printed])
    signature = (type(cells[0]), order)
    plan = _LAYOUTS.get(signature)
    if plan is None:
        plan = _LAYOUTS[signature] = _layout(cells, order)
    zero, one, factor = sympy.S.Zero, sympy.S.One, _factor
    cell_first = before_products(type(cells[0]))  # the cells are of one class
    out: list[tuple[Any, ...]] = []
    for x, (earlier_at, later_at, swap) in zip(cells, plan, strict=True):
        if not earlier_at:
            out.append((factor(x, [cells[p] for p in later_at], one, cell_first),))
        elif not later_at:
            out.append((factor(x, [cells[p] for p in earlier_at], zero, cell_first),))
        else:
            first = factor(x, [cells[p] for p in earlier_at], zero, cell_first)
            second = factor(x, [cells[p] for p in later_at], one, cell_first)
            out.append((second, first) if swap else (first, second))
    return out


def first_maximum_indicator(cells: Sequence[Any], n: int) -> tuple[Any, ...]:
    """Factors of ``[cells[n] is the first maximum of cells]`` (see :func:`window_indicators`)."""
    return window_indicators(cells)[n]


def _index(cell: Any) -> list[int]:
    """A cell's indices as numbers: sorting by them is row-major order."""
    return [i.p for i in cell.args[1:]]


def _printed_index(cell: Any) -> str:
    """What ``sympy.ordered`` sorts cells of one ``IndexedBase`` by, without printing them.

    A cell is an atom to SymPy's sort key, which compares atoms by their printed names
    ``a[1, 10]``; the names share the base's prefix, so the indices as printed decide.
    """
    return ", ".join(str(int(i)) for i in cell.indices) + "]"


class _WindowIndicators:
    """First-maximum factors of the cells of windows being refined.

    A window is known by the frozenset of its cells; the factors of all its cells are
    built when the first of them is refined and handed out once each, and the window is
    forgotten when all its cells have had theirs, so nothing outlives a derivation.
    Windows left partly refined are dropped oldest first beyond ``size``; asking again
    for a cell already served rebuilds its window (the same expressions).
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._open: OrderedDict[frozenset[Any], dict[Any, tuple[Any, ...]]] = OrderedDict()

    def factors(
        self, cell: Any, others: tuple[Any, ...], printed: tuple[Any, ...] | None = None
    ) -> tuple[Any, ...]:
        """The factors for ``cell`` in the window it forms with ``others``.

        ``printed``: the window's cells in ``sympy.ordered``'s order, when known (the
        arguments of its ``Max``).
        """
        key = frozenset((cell, *others))
        found = self._open.get(key)
        if found is None or cell not in found:
            ordered = sorted(key, key=_index)
            if len(ordered) != len(others) + 1 or len({c.base for c in ordered}) != 1:
                raise ValueError(f"not a pooling window: {sorted(map(str, ordered))}")
            found = dict(zip(ordered, window_indicators(ordered, printed), strict=True))
            self._open[key] = found
            if len(self._open) > self.size:
                self._open.popitem(last=False)
        factors = found.pop(cell)
        if not found:
            del self._open[key]
        return factors


_INDICATORS = _WindowIndicators()


def _window_of(gap: Any) -> tuple[Any, tuple[Any, ...]]:
    """``(a, others)`` from ``a - Max(*others)`` (or ``a - b``), as SymPy differentiates Max."""
    import sympy

    if isinstance(gap, sympy.Add) and len(gap.args) == 2:
        first, second = gap.args
        cell, negative = (first, second) if isinstance(first, sympy.Indexed) else (second, first)
        if (
            isinstance(cell, sympy.Indexed)
            and isinstance(negative, sympy.Mul)
            and len(negative.args) == 2
            and negative.args[0] is sympy.S.NegativeOne
        ):
            other = negative.args[1]
            others = other.args if isinstance(other, sympy.Max) else (other,)
            if all(isinstance(o, sympy.Indexed) for o in others):
                return cell, others
    raise ValueError(f"not the derivative of a window maximum: Heaviside({gap})")


def first_maximum(expr: Any) -> Any:
    """Rewrite each ``Heaviside(a - Max(others))`` into PyTorch's first-maximum indicator.

    The window is ``a`` with ``others`` (the arguments of SymPy's derivative of ``Max``);
    its cells are ordered row-major by index and the ``Heaviside`` becomes the factors of
    :func:`window_indicators`. Indicators already refined (``H0`` of 0 or 1) and
    other factors are kept.
    """
    import sympy

    heaviside, half = sympy.Heaviside, sympy.S.Half
    if type(expr) is sympy.Mul:
        for factor in expr.args:
            if isinstance(factor, heaviside) and factor.args[1] is half:
                break
        else:
            return expr  # one product without SymPy's Heaviside: nothing to rewrite
    out = []
    changed = False
    for term in sympy.Add.make_args(expr):
        rest: list[Any] = []
        found: list[tuple[Any, ...]] = []
        for factor in sympy.Mul.make_args(term):
            if isinstance(factor, heaviside) and factor.args[1] is half:
                found.append(_INDICATORS.factors(*_window_of(factor.args[0])))
            else:
                rest.append(factor)
        if not found:
            out.append(term)
            continue
        changed = True
        if len(found) == 1:
            out.append(_with_indicator(rest, found[0]))
        else:
            out.append(sympy.Mul(*rest, *(f for group in found for f in group)))
    return _canonical(sympy.Add, out) if changed else expr


def first_maximum_gradients(node: Any) -> list[tuple[Any, Any]] | None:
    """``d Max(window) / d cell`` for every cell of the window, by PyTorch's tie rule.

    Max pooling's own backward rule (``LayerType.local_gradients``): for ``Max`` of
    distinct cells of one array, each cell's first-maximum indicator, the product of the
    factors of :func:`window_indicators` (the window in row-major order), which is what
    :func:`first_maximum` makes of ``sympy.diff``'s ``Heaviside(cell - Max(others))``.
    ``None`` for any other node.
    """
    import sympy

    if type(node) is not sympy.Max:
        return None
    args = node.args
    if not all(type(a) is sympy.Indexed for a in args) or len({a.args[0] for a in args}) != 1:
        return None
    ordered = sorted(args, key=_index)
    # a Max has two arguments at least, so every cell has one factor or two
    build = sympy.Mul._from_args  # a lone factor is returned as it is
    return [
        (cell, build(f, is_commutative=True))
        for cell, f in zip(ordered, window_indicators(ordered, args), strict=True)
    ]


def _with_indicator(rest: list[Any], indicator: tuple[Any, ...]) -> Any:
    """``Mul(*rest, *indicator)`` for a product's other factors (in canonical order)."""
    import sympy

    if not indicator:
        return _canonical(sympy.Mul, rest) if rest else sympy.S.One
    if any(isinstance(f, sympy.Number | sympy.Pow | sympy.Heaviside) for f in rest):
        return sympy.Mul(*rest, *indicator)
    first = indicator[0]
    before = [f for f in rest if _before(f, first)]
    after = [f for f in rest if not _before(f, first)]
    return sympy.Mul._from_args((*before, *indicator, *after), is_commutative=True)


# ------------------------------------------------------------------------------ ops
MAX_OPS = (
    OpDecl(
        "forward",
        "output",
        ("input",),
        (r"\Rightarrow",),
        r"\text{Forward pass: each } p \text{ cell is the largest } a \text{ in its window}",
        summary="p = max of each window of a",
    ),
    OpDecl(
        "da",
        "grad_input",
        ("grad_output", "input"),
        (",", r"\Rightarrow"),
        r"\text{Input gradient: each } da \text{ cell collects the } dp \text{ of the "
        r"windows it won}",
        summary="dL/da: dp routed to each window's first maximum",
    ),
)

AVG_OPS = (
    OpDecl(
        "forward",
        "output",
        ("input",),
        (r"\Rightarrow",),
        r"\text{Forward pass: each } p \text{ cell is the mean of } a \text{ over its window}",
        summary="p = mean of each window of a (padding counts as zeros)",
    ),
    OpDecl(
        "da",
        "grad_input",
        ("grad_output",),
        (r"\Rightarrow",),
        r"\text{Input gradient: spread } dp / (k_h \cdot k_w) \text{ over the window}",
        summary="dL/da: dp / (kh kw) to every cell of the window",
    ),
)


# ------------------------------------------------------------------------ identities
def _grad(x: str) -> str:
    return rf"\frac{{\partial \mathcal{{L}}}}{{\partial {x}}}"


def _cell(spec: Pool2d, name: str, index: str) -> str:
    channel = "c," if spec.channels > 1 else ""
    return f"{name}_{{{channel}{index}}}"


def _max_da_latex(spec: Pool2d) -> str:
    a, p = _a(spec), _p(spec)
    return (
        rf"{_grad(_cell(spec, a, 'r,s'))} = \sum_{{(i,j) \text{{ covering }} (r,s)}} "
        rf"{_grad(_cell(spec, p, 'i,j'))} \, \mathbf{{1}}[{_cell(spec, a, 'r,s')} "
        rf"\text{{ is the first maximum of window }} (i,j)]"
    )


def _avg_da_latex(spec: Pool2d) -> str:
    kh, kw = spec.kernel_size
    return (
        rf"{_grad(_cell(spec, _a(spec), 'r,s'))} = \sum_{{(i,j) \text{{ covering }} (r,s)}} "
        rf"\frac{{1}}{{{kh * kw}}} {_grad(_cell(spec, _p(spec), 'i,j'))}"
    )


def _max_da_form(d: Any) -> NDArray[Any]:
    """Sum over the windows containing each cell of ``dp * [cell is the first maximum]``."""
    import sympy

    spec: Pool2d = d.spec
    a, dp = d.input, d.grad_output
    terms: dict[tuple[int, int, int], list[Any]] = {}
    for c in range(spec.channels):
        for (i, j), cells in spec.windows():
            window = [a[c, r, s] for r, s in cells]
            for (r, s), factors in zip(cells, window_indicators(window), strict=True):
                terms.setdefault((c, r, s), []).append(sympy.Mul(dp[c, i, j], *factors))
    out = np.empty(a.shape, dtype=object)
    for pos in np.ndindex(*a.shape):
        out[pos] = sympy.Add(*terms.get(pos, ()))
    return out


def _avg_da_form(d: Any) -> NDArray[Any]:
    """Sum over the windows containing each cell of ``dp / (kh kw)``."""
    import sympy

    spec: Pool2d = d.spec
    dp = d.grad_output
    kh, kw = spec.kernel_size
    terms: dict[tuple[int, int, int], list[Any]] = {}
    for c in range(spec.channels):
        for (i, j), cells in spec.windows():
            for r, s in cells:
                terms.setdefault((c, r, s), []).append(dp[c, i, j] / (kh * kw))
    out = np.empty(d.input.shape, dtype=object)
    for pos in np.ndindex(*out.shape):
        out[pos] = sympy.Add(*terms.get(pos, ()))
    return out


MAX_IDENTITIES = (
    Identity(
        "da",
        "grad_input",
        "dL/da sums, over the windows containing each cell, dL/dp where the cell is the "
        "window's first maximum",
        _max_da_latex,
        _max_da_form,
        # built in the same canonical form as the derivation: equal structurally (simplify
        # on Max/Heaviside would take minutes and prove nothing more)
        method="expand",
    ),
)

AVG_IDENTITIES = (
    Identity(
        "da",
        "grad_input",
        "dL/da sums, over the windows containing each cell, dL/dp / (kh kw)",
        _avg_da_latex,
        _avg_da_form,
    ),
)


# ---------------------------------------------------------------------- declarations
def _declare(
    name: str,
    torch_name: str,
    spec_class: type,
    summary: str,
    ops: tuple[OpDecl, ...],
    forward: Callable[..., dict[str, NDArray[Any]]],
    identities: tuple[Identity, ...],
    reference: Callable[[Any, Mapping[str, NDArray[Any]]], NDArray[Any]],
    rank: int,
    refine: Callable[[Any], Any] | None = None,
    local_gradients: Callable[[Any], Any] | None = None,
) -> LayerType:
    return LayerType(
        name=name,
        torch_name=torch_name,
        spec_class=spec_class,
        summary=summary,
        options=OPTIONS,
        arrays=ARRAYS,
        ops=ops,
        forward=forward,
        identities=identities,
        reference=reference,
        refine=refine,
        local_gradients=local_gradients,
        padding=_padding,
        rank=rank,
    )


MAXPOOL2D = _declare(
    "maxpool2d",
    "MaxPool2d",
    MaxPool2d,
    "2-D max pooling, as torch.nn.MaxPool2d (gradient to each window's first maximum)",
    MAX_OPS,
    max_forward,
    MAX_IDENTITIES,
    max_reference,
    30,
    refine=first_maximum,
    local_gradients=first_maximum_gradients,
)

AVGPOOL2D = _declare(
    "avgpool2d",
    "AvgPool2d",
    AvgPool2d,
    "2-D average pooling, as torch.nn.AvgPool2d (padding counted in the mean)",
    AVG_OPS,
    avg_forward,
    AVG_IDENTITIES,
    avg_reference,
    31,
)

TYPES = (MAXPOOL2D, AVGPOOL2D)
