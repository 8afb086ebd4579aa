"""One forward pass for numbers and for symbols: the array namespace layers compute with.

NumPy's ``np.exp``, ``np.maximum`` and ``np.where`` do not work on object arrays of SymPy
cells, and building SymPy sums with ``+`` is slow. A layer's forward function therefore
takes a namespace ``xp`` and uses only its operations; :data:`NUMERIC` works on float
arrays and :class:`Symbolic` on arrays of SymPy expressions (building canonical sums with
:class:`~convviz.arithmetic.CanonicalBuilder`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from convviz.arithmetic import CanonicalBuilder, cells_max, dot

__all__ = ["NUMERIC", "Namespace", "Numeric", "Symbolic"]


class Namespace:
    """Operations a forward pass may use, cell by cell or on whole arrays."""

    symbolic: bool = False

    def empty(self, shape: tuple[int, ...]) -> NDArray[Any]:
        """An array to fill cell by cell."""
        raise NotImplementedError

    def zero(self) -> Any:
        """The additive zero."""
        raise NotImplementedError

    def const(self, value: float | int) -> Any:
        """A constant (exact for symbols: ``1/4`` stays a rational)."""
        raise NotImplementedError

    def total(self, terms: Iterable[Any]) -> Any:
        """Sum of cells."""
        raise NotImplementedError

    def product(self, factors: Sequence[Any]) -> Any:
        """Product of cells."""
        raise NotImplementedError

    def maximum(self, cells: Sequence[Any]) -> Any:
        """Largest of some cells."""
        raise NotImplementedError

    def exp(self, x: Any) -> Any:
        """``e**x``."""
        raise NotImplementedError

    def log(self, x: Any) -> Any:
        """Natural logarithm."""
        raise NotImplementedError

    def tanh(self, x: Any) -> Any:
        """Hyperbolic tangent."""
        raise NotImplementedError

    def reciprocal(self, x: Any) -> Any:
        """``1/x`` (exact for symbols: ``1/3`` stays a rational)."""
        raise NotImplementedError

    def matmul(self, left: NDArray[Any], right: NDArray[Any]) -> NDArray[Any]:
        """Matrix product of 2-D arrays."""
        raise NotImplementedError


class Numeric(Namespace):
    """Float64 arithmetic."""

    symbolic = False

    def empty(self, shape: tuple[int, ...]) -> NDArray[Any]:
        return np.zeros(shape, dtype=np.float64)

    def zero(self) -> Any:
        return 0.0

    def const(self, value: float | int) -> Any:
        return float(value)

    def total(self, terms: Iterable[Any]) -> Any:
        return math.fsum(float(t) for t in terms)

    def product(self, factors: Sequence[Any]) -> Any:
        out = 1.0
        for f in factors:
            out *= float(f)
        return out

    def maximum(self, cells: Sequence[Any]) -> Any:
        return max(float(c) for c in cells)

    def exp(self, x: Any) -> Any:
        return math.exp(float(x))

    def log(self, x: Any) -> Any:
        return math.log(float(x))

    def tanh(self, x: Any) -> Any:
        return math.tanh(float(x))

    def reciprocal(self, x: Any) -> Any:
        return 1.0 / float(x)

    def matmul(self, left: NDArray[Any], right: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(np.asarray(left, dtype=float) @ np.asarray(right, dtype=float))


class Symbolic(Namespace):
    """SymPy expressions in canonical form; one builder shares sort keys across cells."""

    symbolic = True

    def __init__(self, builder: CanonicalBuilder | None = None) -> None:
        self.builder = builder or CanonicalBuilder()

    def empty(self, shape: tuple[int, ...]) -> NDArray[Any]:
        import sympy

        out = np.empty(shape, dtype=object)
        out.fill(sympy.S.Zero)
        return out

    def zero(self) -> Any:
        import sympy

        return sympy.S.Zero

    def const(self, value: float | int) -> Any:
        import sympy

        return sympy.nsimplify(value) if isinstance(value, float) else sympy.Integer(value)

    def total(self, terms: Iterable[Any]) -> Any:
        import sympy

        terms = list(terms)
        if all(isinstance(t, sympy.Indexed | sympy.Symbol) or (
            isinstance(t, sympy.Mul) and not isinstance(t.args[0], sympy.Number)
        ) for t in terms):
            return self.builder.total(terms)
        return sympy.Add(*terms)

    def product(self, factors: Sequence[Any]) -> Any:
        return self.builder.product(list(factors))

    def maximum(self, cells: Sequence[Any]) -> Any:
        import sympy

        if len(cells) == 1:
            return cells[0]
        if _distinct_cells(cells):
            # nothing to simplify: distinct real cells of unknown sign (and at most a 0)
            # cannot be compared, so skip SymPy's pairwise comparisons; same expression
            # (the zero, if any, is SymPy's singleton: _distinct_cells checks by identity)
            if any(cell is sympy.S.Zero for cell in cells):
                return sympy.Max(*cells, evaluate=False)
            return cells_max(cells)
        return sympy.Max(*cells)

    def exp(self, x: Any) -> Any:
        import sympy

        return sympy.exp(x)

    def log(self, x: Any) -> Any:
        import sympy

        return sympy.log(x)

    def tanh(self, x: Any) -> Any:
        import sympy

        return sympy.tanh(x)

    def reciprocal(self, x: Any) -> Any:
        import sympy

        return sympy.Pow(x, -1)

    def matmul(self, left: NDArray[Any], right: NDArray[Any]) -> NDArray[Any]:
        return dot(left, right, self.builder)


def _distinct_cells(cells: Sequence[Any]) -> bool:
    """Whether ``cells`` are distinct cells without sign assumptions, and at most one 0."""
    import sympy

    zeros = 0
    for cell in cells:
        if cell is sympy.S.Zero:
            zeros += 1
        elif not isinstance(cell, sympy.Indexed | sympy.Symbol) or (
            cell.is_positive is not None or cell.is_nonnegative is not None
        ):
            return False
    return zeros <= 1 and len(set(cells)) == len(cells)


#: The numeric namespace (stateless, shared).
NUMERIC = Numeric()
