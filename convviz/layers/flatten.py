r"""``flatten``: a map read row by row into a vector, as ``torch.flatten`` / ``torch.nn.Flatten``.

Arrays: input ``a^{[l]}`` (short ``a``) of shape ``(C, H, W)`` (``(H, W)`` maps have
``C = 1``, a vector ``(N,)`` stays a vector), output ``f^{[l]}`` (short ``f``, the
*flattened* ``a``) of shape ``(C H W,)``. The cells are taken in row-major ``(C, H, W)``
order, exactly ``a.reshape(-1)``::

    f_k = a_{c,i,j}   with   k = (c H + i) W + j   (0-based)

Nothing is computed, so the backward pass only routes: every ``da`` cell is the one
``df`` cell it was flattened into, ``dL/da = reshape(dL/df, (C, H, W))``.
On screen a size-1 ``C`` axis of the input is dropped, as for conv2d.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
    keep_mask,
)
from convviz.spec import MAX_PRODUCTS, SpecError

if TYPE_CHECKING:
    from convviz.layers.namespace import Namespace

__all__ = ["FLATTEN", "TYPES", "Flatten", "flat_position", "forward", "reference"]


@dataclass(frozen=True)
class Flatten:
    """Flatten one sample (``torch.nn.Flatten()`` on a batch, ``torch.flatten`` on a sample).

    Parameters
    ----------
    input_size
        Shape of the input as given: ``(N,)`` for a vector (which flattens to itself),
        ``(H, W)`` for a map (``C = 1``) or ``(C, H, W)``.
    layer
        Layer number used in labels: ``a^{[layer]}`` and ``f^{[layer]}``.
    """

    input_size: tuple[int, ...] = (2, 3, 3)
    layer: int = 1

    #: The layer type's name.
    TYPE: ClassVar[str] = "flatten"

    def __post_init__(self) -> None:
        size = self.input_size
        if isinstance(size, list):
            size = tuple(size)
            object.__setattr__(self, "input_size", size)
        if (
            not isinstance(size, tuple)
            or len(size) not in (1, 2, 3)
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in size)
        ):
            raise SpecError(
                "input_size",
                f"must be (N,), (H, W) or (C, H, W) of positive integers, got {size!r}",
            )
        if min(size) < 1:
            raise SpecError("input_size", f"sizes must be at least 1, got {size}")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 1:
            raise SpecError("layer", f"must be a positive integer, got {self.layer!r}")
        if self.products > MAX_PRODUCTS:
            raise SpecError(
                "input_size",
                f"layer too large to derive: the input has {self.products:,} cells "
                f"(limit {MAX_PRODUCTS:,})",
            )

    @property
    def is_vector(self) -> bool:
        """Whether the input is a vector ``(N,)`` rather than a map."""
        return len(self.input_size) == 1

    @property
    def channels(self) -> int:
        """``C`` of a map (1 for ``(H, W)`` and for a vector)."""
        return self.input_size[0] if len(self.input_size) == 3 else 1

    @property
    def size(self) -> int:
        """Cells of the input, hence of the output vector: ``C H W``."""
        return math.prod(self.input_size)

    @property
    def products(self) -> int:
        """Work of the forward pass: one copied cell per output cell."""
        return self.size

    def full_shape(self, role: str) -> tuple[int, ...]:
        """``input``: ``(C, H, W)`` (or ``(N,)``); ``output``: ``(C H W,)``."""
        base = role.removeprefix("grad_")
        if base == "input":
            return self.input_size if self.is_vector else (self.channels, *self.input_size[-2:])
        if base == "output":
            return (self.size,)
        raise KeyError(f"flatten has no array {role!r}")

    def display_shape(self, role: str) -> tuple[int, ...]:
        """As :meth:`full_shape`, with a size-1 channel axis of the input dropped."""
        base = role.removeprefix("grad_")
        if base == "input" and not self.is_vector:
            return drop_ones((self.channels,), self.input_size[-2:])
        return self.full_shape(role)

    def _input_text(self) -> str:
        return "x".join(str(n) for n in self.display_shape("input"))

    def describe(self) -> str:
        """Short description, e.g. ``2x3x3 input flattened to 18 cells``."""
        if self.is_vector:
            return f"vector of {self.size} cells (already flat)"
        return f"{self._input_text()} input flattened to {self.size} cells"

    def slug(self) -> str:
        """File-name friendly identifier, e.g. ``2x3x3`` or ``4x4_l2``."""
        parts = [self._input_text()]
        if self.layer != 1:
            parts.append(f"l{self.layer}")
        return "_".join(parts)


def flat_position(spec: Flatten, index: Sequence[int]) -> int:
    """1-based position in the output vector of the input cell at display ``index``.

    ``index`` is 1-based and in the input's display shape (no channel axis when
    ``C = 1``), as highlight maps name cells. The position is ``k + 1`` for the row-major
    offset ``k`` of the cell in ``(C, H, W)``, as ``numpy.reshape`` and ``torch.flatten``
    lay it out.
    """
    full, display = spec.full_shape("input"), spec.display_shape("input")
    index = tuple(index)
    if len(index) != len(display) or not all(
        isinstance(i, int | np.integer) and 1 <= i <= n for i, n in zip(index, display, strict=True)
    ):
        raise IndexError(f"index {index} is not a cell of an input of shape {display}")
    given = iter(index)
    offset = 0
    for size, kept in zip(full, keep_mask(full, display), strict=True):
        position = int(next(given)) - 1 if kept else 0
        offset = offset * size + position
    return offset + 1


# ------------------------------------------------------------------------- options
def _flatten_input(parts: tuple[int, ...]) -> dict[str, Any]:
    return {"input_size": parts}


OPTIONS = (
    input_option(
        (1, 2, 3),
        "2x3x3",
        "Input to flatten: a vector N, a map HxW, or CxHxW with channels first.",
        _flatten_input,
        ("input_size",),
    ),
    LAYER_OPTION,
)


# -------------------------------------------------------------------------- arrays
def _a(spec: Flatten) -> str:
    return f"a^{{[{spec.layer}]}}"


def _f(spec: Flatten) -> str:
    return f"f^{{[{spec.layer}]}}"


ARRAYS = (
    ArrayDecl("input", "a", _a, "input", reading=1, axes="c"),
    ArrayDecl("output", "f", _f, "output"),
)

OPS = (
    OpDecl(
        "forward",
        "output",
        ("input",),
        (r"\Rightarrow",),
        r"\text{Flatten: the cells of } a \text{ are read row by row into the vector } f",
        summary="f = flatten(a), row-major (C, H, W) order",
        view="move",
    ),
    OpDecl(
        "da",
        "grad_input",
        ("grad_output",),
        (r"\Rightarrow",),
        r"\text{Input gradient: each } da \text{ cell is the } df \text{ cell it was "
        r"flattened into}",
        summary="dL/da = reshape(dL/df) back to the input's shape",
        view="move",
    ),
)


# ------------------------------------------------------------------------- forward
def forward(
    xp: Namespace, spec: Flatten, arrays: Mapping[str, NDArray[Any]]
) -> dict[str, NDArray[Any]]:
    """``f = a.reshape(-1)``: each output cell is one input cell (numbers or symbols)."""
    cells = np.asarray(arrays["input"]).reshape(-1)
    out = xp.empty((spec.size,))
    out[:] = cells
    return {"output": out}


def reference(spec: Flatten, arrays: Mapping[str, NDArray[Any]]) -> NDArray[Any]:
    """Row-major flattening by explicit loops over ``c``, ``i``, ``j``."""
    a = np.asarray(arrays["input"], dtype=float)
    out = np.zeros(spec.size)
    if spec.is_vector:
        for k in range(spec.size):
            out[k] = a[k]
        return out
    channels, height, width = spec.full_shape("input")
    a = a.reshape(channels, height, width)
    k = 0
    for c in range(channels):
        for i in range(height):
            for j in range(width):
                out[k] = a[c, i, j]
                k += 1
    return out


def forward_identity(spec: Flatten) -> str:
    """``f = flatten(a)`` as LaTeX."""
    return rf"{_f(spec)} = \operatorname{{flatten}}({_a(spec)})"


# ---------------------------------------------------------------------- identities
def _grad(x: str) -> str:
    return rf"\frac{{\partial \mathcal{{L}}}}{{\partial {x}}}"


def _da_form(d: Any) -> NDArray[Any]:
    spec: Flatten = d.spec
    return np.asarray(d.grad_output).reshape(spec.full_shape("input")).copy()


def _da_latex(spec: Flatten) -> str:
    shape = r" \times ".join(str(n) for n in spec.display_shape("input"))
    return (
        rf"{_grad(_a(spec))} = \operatorname{{reshape}}\left({_grad(_f(spec))}, "
        rf"{shape}\right)"
    )


IDENTITIES = (
    Identity("da", "grad_input", "dL/da is dL/df reshaped to the input's shape",
             _da_latex, _da_form),
)


FLATTEN = LayerType(
    name="flatten",
    torch_name="Flatten",
    spec_class=Flatten,
    summary="Flatten a map to a vector in row-major order, as torch.flatten / nn.Flatten",
    options=OPTIONS,
    arrays=ARRAYS,
    ops=OPS,
    forward=forward,
    identities=IDENTITIES,
    reference=reference,
    real=False,
    rank=45,
)

TYPES = (FLATTEN,)
