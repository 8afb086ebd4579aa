"""Sums of products, numeric or symbolic: the one operation convolution needs.

The convolution in :mod:`convviz.conv` does its index arithmetic (padding, stride,
dilation, gathering windows) with NumPy, whatever the cells hold. What remains is a
matrix product: every output cell is a sum of products of cells. :func:`dot` forms it with
``@`` for numeric arrays and, for arrays of SymPy expressions, builds each sum in SymPy's
canonical form directly.

Why not let NumPy call ``+`` and ``*`` on the SymPy cells? It works, but SymPy re-sorts the
whole sum on every ``+`` and runs its full ``flatten`` machinery on every ``*``: about 40 us a
product and quadratic in the number of terms. :class:`CanonicalBuilder` sorts each sum once
with a cheap key that orders terms exactly as :meth:`sympy.core.basic.Basic.compare` does,
then assembles the ``Mul``/``Add`` nodes without re-evaluating them. Whenever a case falls
outside what it can build exactly (numeric coefficients, repeated terms, powers), it hands
the job to SymPy's own constructors, so the result is always the expression SymPy itself
would build (the tests check ``==`` against SymPy's evaluated form).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import sympy
from numpy.typing import NDArray
from sympy.core.basic import Basic, ordering_of_classes

__all__ = [
    "CanonicalBuilder",
    "before_products",
    "canonical_key",
    "cells_max",
    "difference",
    "dot",
    "heaviside",
    "is_symbolic",
]

_UNKNOWN = len(ordering_of_classes) + 1
_CLASS_KEYS: dict[type, tuple[int, str]] = {}


def _class_key(cls: type) -> tuple[int, str]:
    key = _CLASS_KEYS.get(cls)
    if key is None:
        name = cls.__name__
        if name in ordering_of_classes:
            key = (ordering_of_classes.index(name), "")
        else:
            key = (_UNKNOWN, name)
        _CLASS_KEYS[cls] = key
    return key


def canonical_key(expr: Basic) -> tuple[Any, ...]:
    """Sort key that orders expressions as ``Basic.compare`` does.

    ``Basic.compare`` orders by class (SymPy's ``ordering_of_classes``, then class name),
    then by the length of the hashable content, then element by element. A lexicographic
    tuple of the same parts gives the same order at a fraction of the cost.
    """
    content = expr._hashable_content()
    return (_class_key(type(expr)), len(content), *(_element_key(v) for v in content))


def _element_key(value: Any) -> Any:
    if isinstance(value, Basic):
        return canonical_key(value)
    if isinstance(value, frozenset):
        return canonical_key(Basic(*value))
    return value


_MUL_CLASS = _class_key(sympy.Mul)
_HEAVISIDE_NARGS = sympy.Heaviside(sympy.Symbol("x"), 0).nargs
_INDEXED_CLASS = _class_key(sympy.Indexed)
_FALLBACK = (sympy.Number, sympy.Mul, sympy.Add, sympy.Pow)
#: Commutative cells a product of two can be built from directly.
_CELLS = frozenset({sympy.Indexed, sympy.Derivative})


class CanonicalBuilder:
    """Builds canonical SymPy products and sums quickly.

    Both methods return exactly what ``sympy.Mul(*factors)`` and ``sympy.Add(*terms)``
    return; they are faster for the products of distinct atoms and the sums of distinct
    terms that convolutions and their gradients consist of. Sort keys are remembered per
    object (cells take part in many products), so use one builder per derivation.
    """

    def __init__(self) -> None:
        # id -> (object, key); holding the object keeps its id from being reused.
        self._keys: dict[int, tuple[Basic, tuple[Any, ...]]] = {}
        # IndexedBase -> (its key, the assumption items every one of its cells carries)
        self._bases: dict[Basic, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
        self._integers: dict[Basic, tuple[Any, ...]] = {}

    def key(self, expr: Basic) -> tuple[Any, ...]:
        """Memoised :func:`canonical_key`."""
        hit = self._keys.get(id(expr))
        if hit is not None:
            return hit[1]
        if isinstance(expr, sympy.Mul):
            args = expr.args
            key = (_MUL_CLASS, len(args), *(self.key(a) for a in args))
        elif type(expr) is sympy.Indexed:
            key = self._indexed_key(expr)
        else:
            key = canonical_key(expr)
        self._keys[id(expr)] = (expr, key)
        return key

    def _indexed_key(self, cell: sympy.Indexed) -> tuple[Any, ...]:
        """:func:`canonical_key` of a cell, from its base's key and its indices' keys."""
        args = cell.args
        base = args[0]
        known = self._bases.get(base)
        if known is None:
            content = cell._hashable_content()
            known = (canonical_key(base), tuple(content[len(args):]))
            self._bases[base] = known
        base_key, tail = known
        indices = []
        for index in args[1:]:
            index_key = self._integers.get(index)
            if index_key is None:
                index_key = canonical_key(index)
                self._integers[index] = index_key
            indices.append(index_key)
        return (_INDEXED_CLASS, len(args) + len(tail), base_key, *indices, *tail)

    def product(self, factors: Sequence[Basic]) -> Basic:
        """Return ``Mul(*factors)`` (zero if any factor is zero)."""
        if len(factors) == 1 and type(factors[0]) in _CELLS:
            return factors[0]
        if len(factors) == 2:
            # the chain rule's common case: upstream cell times one cell
            first, second = factors
            if type(first) in _CELLS and type(second) in _CELLS:
                key_a, key_b = self.key(first), self.key(second)
                if key_a != key_b:
                    if key_b < key_a:
                        first, second, key_a, key_b = second, first, key_b, key_a
                    result = sympy.Mul._from_args((first, second), is_commutative=True)
                    self._keys[id(result)] = (result, (_MUL_CLASS, 2, key_a, key_b))
                    return result
            if (
                type(second) is sympy.Mul
                and type(first) in _CELLS
                and second.is_commutative
                and first.is_commutative
            ):
                # a cell times a canonical product (the chain rule's upstream cell times
                # a local derivative): when the cell's class sorts before the product's
                # first factor's, it sorts before them all, and Mul leaves the product's
                # factors alone if none is one it combines (numbers, powers, exp ...)
                args = second.args
                lead = _MERGEABLE.get(type(args[0]))
                if (
                    lead is not None
                    and _class_key(type(first)) < lead
                    and all(type(arg) in _MERGEABLE for arg in args)
                ):
                    return sympy.Mul._from_args((first, *args), is_commutative=True)
            if type(second) is sympy.Mul or type(first) is sympy.Mul:
                merged = _merged_product(factors)
                if merged is not None:
                    return merged
        elif any(type(f) is sympy.Mul for f in factors):
            merged = _merged_product(factors)
            if merged is not None:
                return merged
        classes = [_class_key(type(f)) for f in factors]
        if len(factors) > 1 and len(set(classes)) == len(classes) and not any(
            not isinstance(f, Basic)
            or isinstance(f, _FALLBACK) or f is sympy.S.Zero or f is sympy.S.One
            or not f.is_commutative
            for f in factors
        ):
            # factors of different classes: Basic.compare orders them by class alone, so
            # their (possibly deep) keys are not needed
            ordered_factors = [f for _, f in sorted(zip(classes, factors, strict=True),
                                                    key=_first_of_pair)]
            return sympy.Mul._from_args(ordered_factors, is_commutative=True)
        kept: list[tuple[tuple[Any, ...], Basic]] = []
        for raw in factors:
            factor = raw if isinstance(raw, Basic) else sympy.sympify(raw, strict=True)
            if factor is sympy.S.Zero:
                return sympy.S.Zero
            if factor is sympy.S.One:
                continue
            if isinstance(factor, _FALLBACK) or not factor.is_commutative:
                return sympy.Mul(*factors)
            kept.append((self.key(factor), factor))
        if not kept:
            return sympy.S.One
        if len(kept) == 1:
            return kept[0][1]
        kept.sort(key=_first)
        if any(kept[n][0] == kept[n + 1][0] for n in range(len(kept) - 1)):
            return sympy.Mul(*factors)
        result = sympy.Mul._from_args([f for _, f in kept], is_commutative=True)
        self._keys[id(result)] = (result, (_MUL_CLASS, len(kept), *(k for k, _ in kept)))
        return result

    def total(self, terms: Iterable[Basic]) -> Basic:
        """Return ``Add(*terms)`` (zero terms dropped)."""
        found: list[Basic] = []
        plain = True
        for term in terms:
            if term is sympy.S.Zero:
                continue
            if (
                isinstance(term, sympy.Number | sympy.Add)
                or (isinstance(term, sympy.Mul) and isinstance(term.args[0], sympy.Number))
                or not term.is_commutative
            ):
                plain = False
            found.append(term)
        if not found:
            return sympy.S.Zero
        if len(found) == 1:
            return found[0]
        if not plain:
            return sympy.Add(*found)
        kept = [(self.key(t), t) for t in found]
        kept.sort(key=_first)
        if any(kept[n][0] == kept[n + 1][0] for n in range(len(kept) - 1)):
            return sympy.Add(*(t for _, t in kept))
        return sympy.Add._from_args([t for _, t in kept], is_commutative=True)


#: Factors :func:`_merged_product` leaves to the general paths: numbers, powers, sums and
#: ``exp`` (which ``Mul`` combines with its like), products.
_NOT_MERGED = (sympy.Number, sympy.Pow, sympy.Add, sympy.Mul, sympy.exp)


#: Class key of each class :func:`_merged_product` may merge (none of ``_NOT_MERGED``).
_MERGEABLE: dict[type, tuple[int, str]] = {}


def _merged_product(factors: Sequence[Basic]) -> Basic | None:
    """``Mul(*factors)`` for factors and products whose classes do not meet, else ``None``.

    Each product is canonical, so its factors are sorted; when no class (by name, as
    ``Basic.compare`` sees it) occurs in two of the groups (a product's factors, or one
    factor), ``Basic.compare`` orders factors of different groups by class alone, so a
    stable sort by class puts the union in canonical order. Numbers, powers, sums,
    ``exp`` and non-commutative factors (which ``Mul`` would combine or keep apart) are
    not handled.
    """
    owner: dict[tuple[int, str], int] = {}
    keyed: list[tuple[tuple[int, str], Basic]] = []
    for group, factor in enumerate(factors):
        if not isinstance(factor, Basic):
            return None
        args = factor.args if type(factor) is sympy.Mul else (factor,)
        for arg in args:
            key = _MERGEABLE.get(type(arg))
            if key is None:
                if isinstance(arg, _NOT_MERGED):
                    return None
                key = _MERGEABLE[type(arg)] = _class_key(type(arg))
            if not arg.is_commutative or owner.setdefault(key, group) != group:
                return None
            keyed.append((key, arg))
    keyed.sort(key=_first_of_pair)
    return sympy.Mul._from_args([f for _, f in keyed], is_commutative=True)


def _first(pair: tuple[tuple[Any, ...], Basic]) -> tuple[Any, ...]:
    return pair[0]


def _first_of_pair(pair: tuple[tuple[int, str], Basic]) -> tuple[int, str]:
    return pair[0]


def cells_max(cells: Sequence[Basic]) -> Basic:
    """``Max(*cells)`` of distinct cells of unknown sign, built without evaluation.

    SymPy's ``Max`` compares every pair of arguments (milliseconds each for real cells)
    and, even unevaluated, sorts them with ``ordered``, which prints them. Distinct cells
    of unknown sign cannot be compared, so the result is the unevaluated ``Max``; its
    arguments are put in ``ordered``'s order directly: cells of one ``IndexedBase`` are
    atoms to its sort key, compared by their printed names (``a[1, 10]`` before
    ``a[1, 9]``). Anything else goes to SymPy.
    """
    if len(cells) == 1:
        return cells[0]
    bases = {c.base for c in cells if type(c) is sympy.Indexed}
    if len(bases) != 1 or not all(type(c) is sympy.Indexed for c in cells):
        return sympy.Max(*cells, evaluate=False)
    args = sorted(cells, key=_printed_indices)
    node = Basic.__new__(sympy.Max, *args)
    node._argset = frozenset(args)
    return node


def _printed_indices(cell: sympy.Indexed) -> str:
    return ", ".join([str(i.p) for i in cell._args[1:]]) + "]"


def heaviside(gap: Basic, at_zero: Basic = sympy.S.Half) -> Basic:
    """``Heaviside(gap, at_zero)`` for a ``gap`` whose sign SymPy cannot decide.

    Built without ``Function.__new__``, which evaluates (asks for the gap's sign) and
    builds the argument-count set every time; the node is the same.
    """
    node = Basic.__new__(sympy.Heaviside, gap, at_zero)
    node.nargs = _HEAVISIDE_NARGS
    return node


def difference(left: Basic, right: Basic) -> Basic:
    """``left - right`` for a cell ``left`` and a node ``right`` of another class.

    SymPy's ``Add`` would only order the two terms (``Basic.compare`` orders terms of
    different classes by class), so they are put in that order directly.
    """
    negated = sympy.Mul._from_args((sympy.S.NegativeOne, right), is_commutative=True)
    terms = (left, negated) if before_products(type(left)) else (negated, left)
    return sympy.Add._from_args(terms, is_commutative=True)


def before_products(cls: type) -> bool:
    """Whether a term of class ``cls`` goes before a product in a canonical sum.

    ``Basic.compare`` orders terms of different classes by class alone, so a cell goes
    before or after ``-Max(...)`` by its class.
    """
    return _class_key(cls) <= _MUL_CLASS


def is_symbolic(array: NDArray[Any]) -> bool:
    """True for arrays of Python objects (SymPy cells), False for numeric arrays."""
    return bool(array.dtype == object)


def dot(
    left: NDArray[Any], right: NDArray[Any], builder: CanonicalBuilder | None = None
) -> NDArray[Any]:
    """Matrix product ``left @ right`` for 2-D arrays of numbers or of SymPy expressions.

    For symbolic arrays each entry is the canonical sum of the non-zero products, so
    zeros (e.g. padding cells) simply vanish from the expression. ``builder`` lets
    several calls share remembered sort keys.
    """
    if not (is_symbolic(left) or is_symbolic(right)):
        return np.asarray(left @ right)
    rows, inner = left.shape
    inner_r, cols = right.shape
    if inner != inner_r:
        raise ValueError(f"dot: shapes {left.shape} and {right.shape} do not align")
    result = np.empty((rows, cols), dtype=object)
    builder = builder or CanonicalBuilder()
    product, total = builder.product, builder.total
    right_cols = [right[:, j] for j in range(cols)]
    for i in range(rows):
        row = left[i]
        live = [k for k in range(inner) if not _is_zero(row[k])]
        for j, column in enumerate(right_cols):
            result[i, j] = total(
                product((row[k], column[k])) for k in live if not _is_zero(column[k])
            )
    return result


def _is_zero(value: Any) -> bool:
    if isinstance(value, Basic):
        return value is sympy.S.Zero
    return bool(value == 0)
