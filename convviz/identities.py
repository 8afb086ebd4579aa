"""The closed forms of a layer's results, checked by SymPy for the layer at hand.

Each layer type declares its identities (:class:`~convviz.layers.base.Identity`): for
conv2d, ``dL/dW = a * dL/dz``, ``dL/da = dL/dz *full rot180(W)`` and ``dL/db = sum dL/dz``;
for dense, ``dW = dz a^T``; for sigmoid, ``dL/dz = dL/da * sigma(z) (1 - sigma(z))``; and so
on. :func:`verify` builds each right-hand side from the derived arrays and asks SymPy
whether ``derived - closed_form`` is zero in every cell: by ``expand`` for sums of
products, by ``simplify`` where functions are involved (``expand`` cannot prove
``sigma' = sigma (1 - sigma)``). ``simplify`` results are remembered per cell *shape*
(cells renamed to placeholders), so an elementwise layer proves its identity once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.derivation import Derivation, derive
from convviz.layers.conv2d import FullConvolutionView

__all__ = [
    "ENGINE_CHECK_LIMIT",
    "FullConvolutionView",
    "IdentityCheck",
    "closed_forms",
    "verify",
]

#: Largest layer (forward multiplications) for which :func:`verify` also re-derives every
#: gradient with ``sympy.diff`` on whole output expressions to confirm the product-rule
#: engine; that path costs milliseconds per (output, variable) pair.
ENGINE_CHECK_LIMIT = 1_500


@dataclass(frozen=True)
class IdentityCheck:
    """Outcome of one symbolic identity.

    Attributes
    ----------
    op
        Which op's result (``dw``, ``da``, ``db``, ...) or ``engines``.
    name
        Short description.
    latex
        The identity as LaTeX, as the animations show it.
    holds
        Whether SymPy confirmed it in every cell (``None`` when not run).
    detail
        Why it failed or was skipped (empty when it holds).
    """

    op: str
    name: str
    latex: str
    holds: bool | None
    detail: str = ""


def closed_forms(derivation: Derivation) -> dict[str, NDArray[Any]]:
    """Right-hand side of every identity of the layer, in full shape, by op."""
    return {i.op: i.closed_form(derivation) for i in derivation.layer.identities}


def verify(
    derivation: Derivation,
    *,
    engines: bool = True,
    ops: tuple[str, ...] | None = None,
) -> list[IdentityCheck]:
    """Check the identities of ``ops`` (default: all) cell by cell; optionally the engines.

    With ``engines=True`` and a layer within :data:`ENGINE_CHECK_LIMIT`, the gradients are
    also re-derived with ``sympy.diff`` (``engine="sympy"``) and compared cell by cell.
    """
    spec = derivation.spec
    layer = derivation.layer
    checks = []
    memo: dict[Any, bool] = {}
    for identity in layer.identities:
        if ops is not None and identity.op not in ops:
            continue
        latex = identity.latex(spec)
        of = identity.role.removeprefix("grad_")
        if of in layer.variables and not derivation.has(of):
            checks.append(IdentityCheck(identity.op, identity.name, latex, None,
                                        f"layer has no {of}"))
            continue
        bad = _first_mismatch(
            derivation.array(identity.role), identity.closed_form(derivation), identity.method,
            memo,
        )
        checks.append(
            IdentityCheck(identity.op, identity.name, latex, bad is None,
                          "" if bad is None else f"differs at {bad}")
        )
    if engines and layer.variables:
        name = "product-rule engine agrees with sympy.diff on whole expressions"
        if spec.products > ENGINE_CHECK_LIMIT:
            checks.append(
                IdentityCheck(
                    "engines",
                    name,
                    "",
                    None,
                    f"skipped: {spec.products:,} multiplications > {ENGINE_CHECK_LIMIT:,}",
                )
            )
        else:
            names = {role: str(base) for role, base in derivation.bases.items()}
            reference = derive(spec, engine="sympy", names=names)
            bad = None
            for role in layer.variables:
                grad = f"grad_{role}"
                bad = bad or _first_mismatch(
                    derivation.array(grad), reference.array(grad), "simplify", memo
                )
            checks.append(
                IdentityCheck(
                    "engines", name, "", bad is None, "" if bad is None else f"differs at {bad}"
                )
            )
    return checks


def _first_mismatch(
    left: NDArray[Any], right: NDArray[Any], method: str, memo: dict[Any, bool]
) -> tuple[int, ...] | None:
    if left.shape != right.shape:
        return tuple(right.shape)
    for pos, value in np.ndenumerate(left):
        if not _equal(value, right[pos], method, memo):
            return tuple(int(p) for p in pos)
    return None


def _equal(left: Any, right: Any, method: str, memo: dict[Any, bool]) -> bool:
    """Whether SymPy proves ``left == right`` (structurally, by expand, then by simplify)."""
    if left == right:
        return True
    difference = sympy.sympify(left) - sympy.sympify(right)
    if sympy.expand(difference) == 0:
        return True
    if method != "simplify":
        return False
    pattern = _pattern(difference)
    known = memo.get(pattern)
    if known is None:
        known = bool(sympy.simplify(pattern) == 0)
        memo[pattern] = known
    return known


def _pattern(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with its cells renamed ``c0, c1, ...`` in order of appearance.

    Cells of an elementwise layer all give the same pattern, so ``simplify`` runs once.
    """
    found: list[sympy.Basic] = []
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Indexed | sympy.Derivative) and node not in found:
            found.append(node)
    swap = {node: sympy.Symbol(f"c{n}", real=True) for n, node in enumerate(found)}
    return expr.xreplace(swap)
