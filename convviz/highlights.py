"""Highlight maps: plain data describing which cells combine to compute each target cell.

A highlight map is what the renderer, the CLI and the tests consume. It holds no SymPy
objects: every cell is named by its *role* (which array it belongs to) and its 1-based
index as displayed (size-1 channel and filter axes dropped).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ROLES",
    "ArrayInfo",
    "Cell",
    "HighlightMap",
    "Index",
    "Step",
]

Index = tuple[int, ...]

#: Every role a cell can play, in display order.
ROLES: tuple[str, ...] = (
    "input",
    "kernel",
    "bias",
    "output",
    "grad_output",
    "grad_input",
    "grad_kernel",
    "grad_bias",
)


@dataclass(frozen=True, order=True, slots=True)
class Cell:
    """One cell of one array: its role and its 1-based display index."""

    role: str
    index: Index

    def to_json(self) -> dict[str, Any]:
        """Return ``{"role": ..., "index": [...]}``."""
        return {"role": self.role, "index": list(self.index)}

    @property
    def key(self) -> str:
        """Comma-joined index, e.g. ``"2,3"`` (the key used in timelines)."""
        return ",".join(str(i) for i in self.index)


@dataclass(frozen=True)
class ArrayInfo:
    r"""How an array is named and shaped.

    Attributes
    ----------
    role
        One of :data:`ROLES`.
    label
        LaTeX name shown on screen, e.g. ``a^{[1]}`` or ``\\frac{\\partial L}{\\partial z^{[2]}}``.
    symbol
        Name of the SymPy ``IndexedBase`` (or ``Symbol`` for a scalar bias) behind the cells.
    shape
        Display shape; ``()`` for a scalar.
    """

    role: str
    label: str
    symbol: str
    shape: Index

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form used by ``derive`` and ``highlights``."""
        return {"label": self.label, "symbol": self.symbol, "shape": list(self.shape)}

    def indices(self) -> Iterator[Index]:
        """Yield every display index in row-major order (``()`` once for a scalar)."""
        import itertools

        yield from itertools.product(*(range(1, n + 1) for n in self.shape))


@dataclass(frozen=True)
class Step:
    """One target cell and what combines to compute it.

    Attributes
    ----------
    target
        The cell being computed.
    terms
        The addends of its expression, each the tuple of its indexed factors.
    coefficients
        Numeric coefficient of each term, as a string (``"1"`` for almost all).
    highlights
        For each role, the sorted distinct indices used by any term.
    expression
        LaTeX of the whole expression in short cell names, when it is not a plain sum
        of products (``Max``, functions); empty otherwise.
    """

    target: Cell
    terms: tuple[tuple[Cell, ...], ...]
    coefficients: tuple[str, ...]
    highlights: Mapping[str, tuple[Index, ...]] = field(hash=False)
    expression: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form of one step."""
        return {
            "target": self.target.to_json(),
            "terms": [[f.to_json() for f in term] for term in self.terms],
            "highlights": {role: [list(i) for i in idx] for role, idx in self.highlights.items()},
        }


@dataclass(frozen=True)
class HighlightMap:
    """The steps of one operation, in row-major order of the target array."""

    op: str
    arrays: Mapping[str, ArrayInfo]
    steps: tuple[Step, ...]

    @property
    def target_role(self) -> str:
        """Role of the array being computed."""
        return self.steps[0].target.role

    def to_json(self) -> dict[str, Any]:
        """Return the JSON document printed by ``convviz highlights --json``."""
        return {
            "op": self.op,
            "arrays": {role: info.to_json() for role, info in self.arrays.items()},
            "steps": [step.to_json() for step in self.steps],
        }
