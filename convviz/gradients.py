"""The backward pass by the chain rule, working only where cells actually interact.

For a variable ``v`` (a cell of the input, kernel or bias) the chain rule over the
computation graph says::

    dL/dv = sum over output cells k of  dL/dz_k * dz_k/dv

The article evaluates every ``(k, v)`` pair with ``sympy.diff``; almost all of those
derivatives are zero, since a kernel window touches few input cells. Here an occurrence
index, built once from the forward expressions, lists for every variable the terms it appears
in, so only pairs that share a term are differentiated.

Two engines differentiate a term:

``"product-rule"`` (default)
    A term is a product of distinct cells, so by the product rule ``d(u w)/du = w``: the
    derivative is the product of the other factors. Terms of any other form (powers,
    repeated factors) go to ``sympy.diff``.
``"sympy"``
    ``sympy.diff(z_k, v)`` on the whole output expression for every sharing pair. Slower;
    :func:`convviz.identities` uses it to confirm that both engines agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.arithmetic import CanonicalBuilder

__all__ = ["Engine", "chain_rule", "partial"]

Engine = Literal["product-rule", "sympy"]


def partial(
    term: sympy.Expr, variable: sympy.Expr, builder: CanonicalBuilder | None = None
) -> sympy.Expr:
    """Derivative of one product ``term`` with respect to one of its factors ``variable``.

    When ``variable`` is one plain factor of the product, the product rule leaves the
    other factors; anything else is differentiated by ``sympy.diff``.
    """
    factors = sympy.Mul.make_args(term)
    same = [f is variable for f in factors]
    if sum(same) == 1 and not any(isinstance(f, sympy.Pow) for f in factors):
        rest = [f for f, s in zip(factors, same, strict=True) if not s]
        return (builder or CanonicalBuilder()).product(rest)
    return sympy.diff(term, variable)


def chain_rule(
    outputs: NDArray[Any],
    upstream: NDArray[Any],
    variables: Sequence[NDArray[Any]],
    *,
    engine: Engine = "product-rule",
    builder: CanonicalBuilder | None = None,
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

    Returns
    -------
    list of numpy.ndarray
        One object array per entry of ``variables``, shaped like it, holding ``dL/dv``.
    """
    if outputs.shape != upstream.shape:
        raise ValueError(f"chain_rule: outputs {outputs.shape} vs upstream {upstream.shape}")
    builder = builder or CanonicalBuilder()
    wanted = {v for array in variables for v in array.flat if v is not sympy.S.Zero}
    # variable -> list of (output position, term containing it): the sparse graph edges
    occurrences: dict[Any, list[tuple[int, sympy.Expr]]] = defaultdict(list)
    flat_out = outputs.reshape(-1)
    flat_up = upstream.reshape(-1)
    for k, expr in enumerate(flat_out):
        for term in sympy.Add.make_args(expr):
            for factor in sympy.Mul.make_args(term):
                # a power x**n uses x: index it under its base so the term is not missed
                base = factor.base if isinstance(factor, sympy.Pow) else factor
                if base in wanted:
                    occurrences[base].append((k, term))

    results = []
    for array in variables:
        result = np.empty(array.shape, dtype=object)
        for pos, variable in np.ndenumerate(array):
            uses = occurrences.get(variable, ())
            if engine == "sympy":
                sharing = sorted({k for k, _ in uses})
                result[pos] = sympy.Add(
                    *(flat_up[k] * sympy.diff(flat_out[k], variable) for k in sharing)
                )
            else:
                result[pos] = builder.total(
                    builder.product((flat_up[k], partial(term, variable, builder)))
                    for k, term in uses
                )
        results.append(result)
    return results
