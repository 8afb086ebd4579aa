"""The backward pass by the chain rule, working only where cells actually interact.

For a variable ``v`` (a cell of the input, kernel or bias) the chain rule over the
computation graph says::

    dL/dv = sum over output cells k of  dL/dz_k * dz_k/dv

The article evaluates every ``(k, v)`` pair with ``sympy.diff``; almost all of those
derivatives are zero, since a kernel window touches few input cells. Here an occurrence
index, built once from the forward expressions, lists for every variable the terms it occurs
in (anywhere: as a factor, inside ``Max``, a function or a power), so only pairs that share
a term are differentiated.

Two engines differentiate a term:

``"product-rule"`` (default)
    For a product of distinct cells the product rule gives ``d(u w)/du = w``: the
    derivative is the product of the other factors. A factor that is not a plain cell
    (``Max``, a function, a power of a sum) contributes its own derivative; ``Max`` of
    cells has a fast path, and everything else goes to ``sympy.diff``.
``"sympy"``
    ``sympy.diff(z_k, v)`` on the whole output expression for every sharing pair. Slower;
    :func:`convviz.identities` uses it to confirm that both engines agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.arithmetic import CanonicalBuilder, cells_max, difference, heaviside

__all__ = ["Engine", "LocalGradients", "cells_in", "chain_rule", "partial"]

Engine = Literal["product-rule", "sympy"]

#: A layer's own backward rule for one node of its forward expressions: ``rule(node)``
#: gives ``d node / d cell`` for every cell in ``node``, as ``(cell, derivative)`` pairs
#: (the way micrograd's ops push a gradient to each of their inputs), or ``None`` where
#: the rule does not apply.
LocalGradients = Callable[[Any], Sequence[tuple[Any, Any]] | None]


#: Arguments of a Max that need no evaluation (the node already has them distinct).
_CELL_OR_ZERO = (sympy.Indexed, sympy.Symbol, sympy.core.numbers.Zero)

#: Arguments that are cells (a node whose arguments are all cells holds just those).
_PLAIN_CELLS = frozenset({sympy.Indexed, sympy.Symbol})

#: Factors that are cells themselves.
_PLAIN = frozenset({sympy.Indexed, sympy.Symbol, sympy.Derivative})


def cells_in(factor: sympy.Expr) -> frozenset[Any]:
    """The cells (``Indexed`` objects and plain symbols) that occur anywhere in ``factor``."""
    if isinstance(factor, sympy.Indexed | sympy.Symbol):
        return frozenset((factor,))
    if (
        isinstance(factor, sympy.Pow)
        and isinstance(factor.base, sympy.Indexed | sympy.Symbol)
        and factor.exp.is_Number
    ):
        return frozenset((factor.base,))
    args = factor.args
    if args and all(type(a) in _PLAIN_CELLS for a in args):  # Max of cells, exp(cell)
        return frozenset(args)
    return frozenset(factor.atoms(sympy.Indexed, sympy.Symbol))


def partial(
    term: sympy.Expr,
    variable: sympy.Expr,
    builder: CanonicalBuilder | None = None,
    local_gradients: LocalGradients | None = None,
) -> sympy.Expr:
    """Derivative of one addend ``term`` with respect to one cell ``variable``.

    The product rule is used where it is exact and cheap: when ``variable`` is one plain
    factor of a product and no other factor contains it, the derivative is the product of
    the other factors; when exactly one factor contains it, the other factors multiply
    that factor's derivative. That factor is differentiated by the layer's
    ``local_gradients`` rule where it gives one; else ``Max`` of distinct arguments is
    differentiated into the ``Heaviside`` form ``sympy.diff`` gives. Everything else goes
    to ``sympy.diff``.
    """
    builder = builder or CanonicalBuilder()
    factors = sympy.Mul.make_args(term)
    holding = [n for n, f in enumerate(factors) if variable in cells_in(f)]
    if not holding:
        return sympy.S.Zero
    if len(holding) > 1:
        return sympy.diff(term, variable)
    (n,) = holding
    rest = [f for m, f in enumerate(factors) if m != n]
    inner = factors[n]
    if inner is variable:
        return builder.product(rest)
    if len(factors) == 1:
        return _derivative_of_one(inner, variable, local_gradients)
    found = _derivative_of_one(inner, variable, local_gradients)
    if found is sympy.S.Zero:
        return sympy.S.Zero
    return sympy.Mul(*rest, found)


def _own(node: sympy.Expr, variable: sympy.Expr, rule: LocalGradients | None) -> Any:
    """The layer rule's ``d node / d variable``, ``None`` where it gives none."""
    if rule is None:
        return None
    for cell, found in rule(node) or ():
        if cell == variable:
            return found
    return None


def _derivative_of_one(
    node: sympy.Expr, variable: sympy.Expr, local_gradients: LocalGradients | None = None
) -> sympy.Expr:
    """Derivative of a single non-product node, with a fast path for ``Max`` of cells."""
    own = _own(node, variable, local_gradients)
    if own is not None:
        return own
    if isinstance(node, sympy.Max) and variable in node.args:
        others = [a for a in node.args if a is not variable]
        if len(others) == len(node.args):  # an equal cell, not the same object
            others = [a for a in node.args if a != variable]
        if len(others) == len(node.args) - 1 and not any(
            variable in cells_in(a) for a in others
        ):
            if all(isinstance(a, _CELL_OR_ZERO) for a in others):
                # the others are distinct cells, as in the node: Max and Heaviside have
                # nothing to simplify, so skip their (costly) evaluation
                if sympy.S.Zero in others:
                    rest = sympy.Max(*others, evaluate=False) if len(others) > 1 else others[0]
                    return sympy.Heaviside(variable - rest, evaluate=False)
                rest = cells_max(others)
                if len(others) > 1 and isinstance(variable, sympy.Indexed):
                    return heaviside(difference(variable, rest))
                return sympy.Heaviside(variable - rest, evaluate=False)
            return sympy.Heaviside(variable - sympy.Max(*others))
    return sympy.diff(node, variable)


#: An occurrence of a variable in a term: the output position, the term, and how the
#: term's derivative by the variable is known: the other factors of a product of
#: distinct plain cells (``d(u w)/du = w``), the layer rule's derivative (a 1-tuple), or
#: ``None`` (to be worked out by :func:`partial`).
_Occurrence = tuple[int, sympy.Expr, tuple[Any, ...] | None]


def chain_rule(
    outputs: NDArray[Any],
    upstream: NDArray[Any],
    variables: Sequence[NDArray[Any]],
    *,
    engine: Engine = "product-rule",
    builder: CanonicalBuilder | None = None,
    local_gradients: LocalGradients | None = None,
) -> list[NDArray[Any]]:
    """Gradient of the loss with respect to every cell of each array in ``variables``.

    Parameters
    ----------
    outputs
        Expressions of the output cells ``z_k``.
    upstream
        ``dL/dz_k`` for each output cell, same shape as ``outputs``.
    variables
        Arrays of cells to differentiate by (``Indexed`` or ``Symbol``); zeros are skipped.
    engine
        How each term is differentiated (see the module docstring).
    builder
        Shared canonical builder (remembers sort keys of cells).
    local_gradients
        The layer's own backward rule for nodes of the forward expressions (see
        :class:`~convviz.layers.base.LayerType`), ``"product-rule"`` engine only. A term
        that is one such node is differentiated by every cell in it at once.

    Returns
    -------
    list of numpy.ndarray
        One object array per entry of ``variables``, shaped like it, holding ``dL/dv``.
    """
    if outputs.shape != upstream.shape:
        raise ValueError(f"chain_rule: outputs {outputs.shape} vs upstream {upstream.shape}")
    if engine not in ("product-rule", "sympy"):
        raise ValueError(f"chain_rule: unknown engine {engine!r}")
    builder = builder or CanonicalBuilder()
    # the cells to differentiate by, known by id (the forward expressions hold the very
    # cell objects, and an id is cheaper to look up than a SymPy node); an equal cell
    # that is another object is found by value and filed under the wanted one
    wanted: dict[Any, Any] = {}
    wanted_ids: dict[int, int] = {}  # id of a variable -> id of the wanted cell equal to it
    for array in variables:
        for v in array.flat:
            if v is not sympy.S.Zero:
                wanted_ids[id(v)] = id(wanted.setdefault(v, v))
    rule = local_gradients if engine == "product-rule" else None
    # id of a variable -> its occurrences: the sparse graph edges
    occurrences: dict[int, list[_Occurrence]] = defaultdict(list)

    def file(cell: Any, occurrence: _Occurrence) -> None:
        key = wanted_ids.get(id(cell))
        if key is None:
            same = wanted.get(cell)
            if same is None:
                return
            key = id(same)
        occurrences[key].append(occurrence)

    flat_out = outputs.reshape(-1)
    flat_up = upstream.reshape(-1)
    for k, expr in enumerate(flat_out):
        for term in sympy.Add.make_args(expr):
            factors = sympy.Mul.make_args(term)
            if all(type(f) in _PLAIN for f in factors) and len(set(factors)) == len(factors):
                # product rule: d(u w)/du = w, and u occurs nowhere else in the term
                for n, factor in enumerate(factors):
                    file(factor, (k, term, factors[:n] + factors[n + 1 :]))
                continue
            # every cell that occurs anywhere in the term (inside Max, functions, powers)
            seen: set[Any] = set()
            for factor in factors:
                seen.update(cells_in(factor))
            own = rule(term) if rule is not None and type(term) is not sympy.Mul else None
            if own is not None and len(own) == len(seen) and all(c in seen for c, _ in own):
                # the layer's rule for a term that is one node, for all its cells at once
                for cell, found in own:
                    file(cell, (k, term, (found,)))
                continue
            for cell in seen:  # (partial asks the rule again, for the cells it gives)
                file(cell, (k, term, None))

    results = []
    for array in variables:
        result = np.empty(array.shape, dtype=object)
        flat = result.reshape(-1)
        for n, variable in enumerate(array.flat):
            uses = occurrences.get(wanted_ids.get(id(variable), 0), ())
            if engine == "sympy":
                sharing = sorted({k for k, _, _ in uses})
                flat[n] = sympy.Add(
                    *(flat_up[k] * sympy.diff(flat_out[k], variable) for k in sharing)
                )
            else:
                product = builder.product
                found = [
                    product(
                        (
                            flat_up[k],
                            (rest[0] if len(rest) == 1 else product(rest))
                            if rest is not None
                            else partial(term, variable, builder, rule),
                        )
                    )
                    for k, term, rest in uses
                ]
                flat[n] = found[0] if len(found) == 1 else builder.total(found)
        results.append(result)
    return results
