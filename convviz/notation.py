r"""Short LaTeX names for cells and equations, as drawn in the animations.

Inside a grid there is no room for ``\frac{\partial \mathcal{L}}{\partial z^{[2]}_{1,1}}``,
so cells use the short names of Andrew Ng's course, which the article follows: ``a``,
``W``, ``b``, ``z`` for the layer's arrays and ``dz``, ``dW``, ``da``, ``db`` for the
gradients of the loss with respect to them. Grid titles keep the full names
(:attr:`convviz.highlights.ArrayInfo.label`).
"""

from __future__ import annotations

from collections.abc import Sequence

from convviz.highlights import Cell, Index, Step

__all__ = ["SHORT_NAMES", "cell_latex", "step_latex", "term_latex"]

#: Short symbol of each role.
SHORT_NAMES: dict[str, str] = {
    "input": "a",
    "kernel": "W",
    "bias": "b",
    "output": "z",
    "grad_output": "dz",
    "grad_input": "da",
    "grad_kernel": "dW",
    "grad_bias": "db",
}


def cell_latex(role: str, index: Index) -> str:
    """LaTeX of one cell, e.g. ``a_{1,2}``, ``dW_{2,1,3}`` or ``b`` for a scalar."""
    name = SHORT_NAMES[role]
    if not index:
        return name
    return f"{name}_{{{','.join(str(i) for i in index)}}}"


def term_latex(factors: Sequence[Cell], coefficient: str = "1") -> str:
    """LaTeX of one product term, factors in the order given."""
    body = r"\,".join(cell_latex(c.role, c.index) for c in factors)
    if coefficient == "1":
        return body
    if coefficient == "-1":
        return "-" + body
    return f"{coefficient}\\,{body}"


def step_latex(step: Step, *, max_terms: int = 6, head: int = 3) -> str:
    r"""``target = t1 + t2 + ...`` for one step, shortened when long.

    With more than ``max_terms`` terms, show the first ``head``, ``\cdots`` and the last.

    Terms are shown in the step's order; factors inside a term are shown operands
    first (e.g. ``W a`` reads as the kernel times the input).
    """
    target = cell_latex(step.target.role, step.target.index)
    terms = [
        term_latex(_reading_order(factors), coefficient)
        for factors, coefficient in zip(step.terms, step.coefficients, strict=True)
    ]
    if not terms:
        return f"{target} = 0"
    if len(terms) > max_terms:
        terms = [*terms[:head], r"\cdots", terms[-1]]
    return f"{target} = " + " + ".join(terms).replace("+ -", "- ")


_READING = {
    "grad_output": 0,
    "kernel": 1,
    "input": 2,
    "bias": 3,
}


def _reading_order(factors: Sequence[Cell]) -> list[Cell]:
    return sorted(factors, key=lambda c: _READING.get(c.role, 9))
