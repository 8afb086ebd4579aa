"""Reflection: walk SymPy expression trees and turn them into highlight maps.

Each cell of a derived array is a sum of products of cells. :class:`Reflector` walks such
an expression through ``func``/``args`` and dispatches on the node's class, in the style
of SymPy's printers: ``_walk_Add``, ``_walk_Mul``, ``_walk_Indexed`` and so on, looked up
along the class's MRO. A node it has no method for is an error naming that node.

The result is plain data (:mod:`convviz.highlights`): which cells of which arrays multiply
together in each term, and for each role the distinct cells used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import sympy
from sympy.core.basic import Basic

from convviz.derivation import GC_PAUSE_PRODUCTS, OPS, Derivation, paused_gc
from convviz.highlights import ROLES, Cell, HighlightMap, Index, Step

__all__ = ["ReflectionError", "Reflector", "Term", "highlight_map", "step_for"]

#: One addend: its numeric coefficient and its indexed factors.
Term = tuple[sympy.Expr, tuple[Cell, ...]]

_ROLE_ORDER = {role: n for n, role in enumerate(ROLES)}


class ReflectionError(ValueError):
    """An expression is not a sum of products of indexed cells."""

    def __init__(self, node: Basic, whole: Basic, why: str) -> None:
        super().__init__(f"cannot reflect {sympy.sstr(node)!r} in {_short(whole)}: {why}")
        self.node = node


def _short(expr: Basic, limit: int = 80) -> str:
    text = str(sympy.sstr(expr))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Reflector:
    """Turns sum-of-products expressions into lists of :class:`Cell` factors.

    Parameters
    ----------
    roles
        Maps each ``IndexedBase`` (or scalar ``Symbol``) to the role of its cells.
    derivative_roles
        Maps the ``IndexedBase`` of a cell ``x`` to the role that ``Derivative(L, x)``
        plays (``z`` -> ``grad_output``).
    """

    def __init__(
        self,
        roles: Mapping[Basic, str],
        derivative_roles: Mapping[Basic, str] | None = None,
    ) -> None:
        self.roles = dict(roles)
        self.derivative_roles = dict(derivative_roles or {})
        self._cells: dict[Basic, Cell] = {}
        self._methods: dict[type, Callable[[Reflector, Any, Basic], list[Term]]] = {}

    @classmethod
    def for_derivation(cls, derivation: Derivation) -> Reflector:
        """Reflector that knows the roles of a layer's symbols."""
        s = derivation.symbols
        return cls(
            {s.input: "input", s.kernel: "kernel", s.bias: "bias", s.output: "output"},
            {s.output: "grad_output"},
        )

    # ------------------------------------------------------------------ walking
    def terms(self, expr: Basic) -> list[Term]:
        """The addends of ``expr``, each as ``(coefficient, factors)``, sorted."""
        found = self._walk(expr, expr)
        found.sort(key=lambda t: [(_ROLE_ORDER[c.role], c.index) for c in t[1]])
        return found

    def _walk(self, node: Basic, whole: Basic) -> list[Term]:
        method = self._methods.get(type(node))
        if method is None:
            for klass in type(node).__mro__:
                candidate = getattr(type(self), f"_walk_{klass.__name__}", None)
                if candidate is not None:
                    method = candidate
                    break
            else:
                raise ReflectionError(node, whole, f"unexpected {type(node).__name__} node")
            self._methods[type(node)] = method
        return method(self, node, whole)

    def _walk_Add(self, node: sympy.Add, whole: Basic) -> list[Term]:
        out: list[Term] = []
        for arg in node.args:
            out.extend(self._walk(arg, whole))
        return out

    def _walk_Mul(self, node: sympy.Mul, whole: Basic) -> list[Term]:
        coefficient: sympy.Expr = sympy.S.One
        factors: list[Cell] = []
        for arg in node.args:
            if isinstance(arg, sympy.Number):
                coefficient *= arg
                continue
            sub = self._walk(arg, whole)
            if len(sub) != 1:
                raise ReflectionError(arg, whole, "a factor must be a single cell, not a sum")
            if sub[0][0] is not sympy.S.One:
                coefficient *= sub[0][0]
            factors.extend(sub[0][1])
        factors.sort(key=lambda c: (_ROLE_ORDER[c.role], c.index))
        return [(coefficient, tuple(factors))]

    def _walk_Zero(self, node: Basic, whole: Basic) -> list[Term]:
        return []

    def _walk_Number(self, node: sympy.Number, whole: Basic) -> list[Term]:
        raise ReflectionError(node, whole, "a constant term is not a product of cells")

    def _walk_Indexed(self, node: sympy.Indexed, whole: Basic) -> list[Term]:
        known = self._cells.get(node)
        if known is not None:
            return [(sympy.S.One, (known,))]
        return [(sympy.S.One, (self._cell(node, node.base, node.indices, self.roles, whole),))]

    def _walk_Symbol(self, node: sympy.Symbol, whole: Basic) -> list[Term]:
        return [(sympy.S.One, (self._cell(node, node, (), self.roles, whole),))]

    def _walk_Derivative(self, node: sympy.Derivative, whole: Basic) -> list[Term]:
        known = self._cells.get(node)
        if known is not None:
            return [(sympy.S.One, (known,))]
        variables = node.variables
        if len(variables) != 1 or not isinstance(variables[0], sympy.Indexed | sympy.Symbol):
            raise ReflectionError(node, whole, "only first derivatives by one cell are cells")
        var = variables[0]
        base = var.base if isinstance(var, sympy.Indexed) else var
        indices = var.indices if isinstance(var, sympy.Indexed) else ()
        return [(sympy.S.One, (self._cell(node, base, indices, self.derivative_roles, whole),))]

    def _cell(
        self,
        node: Basic,
        base: Basic,
        indices: tuple[Any, ...],
        roles: Mapping[Basic, str],
        whole: Basic,
    ) -> Cell:
        cell = self._cells.get(node)
        if cell is not None:
            return cell
        role = roles.get(base)
        if role is None:
            raise ReflectionError(node, whole, f"{sympy.sstr(base)} is not an array of this layer")
        if not all(isinstance(i, sympy.Integer | int) for i in indices):
            raise ReflectionError(node, whole, "indices must be integers")
        cell = Cell(role, tuple(int(i) for i in indices))
        self._cells[node] = cell
        return cell


def step_for(reflector: Reflector, target: Cell, expr: Basic) -> Step:
    """Reflect one target cell's expression into a :class:`Step`."""
    terms = reflector.terms(expr)
    used: dict[str, set[Index]] = {}
    for _, factors in terms:
        for cell in factors:
            used.setdefault(cell.role, set()).add(cell.index)
    highlights = {role: tuple(sorted(used[role])) for role in ROLES if role in used}
    return Step(
        target=target,
        terms=tuple(f for _, f in terms),
        coefficients=tuple("1" if c is sympy.S.One else str(c) for c, _ in terms),
        highlights=highlights,
    )


def highlight_map(derivation: Derivation, op: str) -> HighlightMap:
    """The highlight map of ``op`` (``forward``, ``dw``, ``da`` or ``db``).

    Steps follow the target array in row-major order; each step's highlights come from
    reflecting that cell's expression, nothing else.
    """
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")
    reflector = Reflector.for_derivation(derivation)
    role = OPS[op]
    targets = derivation.targets(op)
    with paused_gc(derivation.spec.products >= GC_PAUSE_PRODUCTS):
        steps = [
            step_for(reflector, Cell(role, tuple(i + 1 for i in pos)), expr)
            for pos, expr in np.ndenumerate(targets)
        ]
    return HighlightMap(op=op, arrays=derivation.arrays_for(op), steps=tuple(steps))
