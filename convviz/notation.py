r"""Short LaTeX names for cells and equations, as drawn in the animations.

Inside a grid there is no room for ``\frac{\partial \mathcal{L}}{\partial z^{[2]}_{1,1}}``,
so cells use the short names of Andrew Ng's course, which the article follows: ``a``,
``W``, ``b``, ``z`` for the layer's arrays and ``dz``, ``dW``, ``da``, ``db`` for the
gradients of the loss with respect to them. Each layer type declares its short names
(:class:`convviz.layers.base.ArrayDecl`); these defaults are conv2d's. Grid titles keep
the full names (:attr:`convviz.highlights.ArrayInfo.label`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from convviz.highlights import Cell, Index, Step

__all__ = ["SHORT_NAMES", "cell_latex", "expression_latex", "step_latex", "term_latex"]

#: conv2d's short symbol of each role (the default of :func:`cell_latex`).
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


def cell_latex(role: str, index: Index, names: Mapping[str, str] | None = None) -> str:
    """LaTeX of one cell, e.g. ``a_{1,2}``, ``dW_{2,1,3}`` or ``b`` for a scalar."""
    name = (names or SHORT_NAMES)[role]
    if not index:
        return name
    return f"{name}_{{{','.join(str(i) for i in index)}}}"


def term_latex(
    factors: Sequence[Cell], coefficient: str = "1", names: Mapping[str, str] | None = None
) -> str:
    """LaTeX of one product term, factors in the order given."""
    body = r"\,".join(cell_latex(c.role, c.index, names) for c in factors)
    if coefficient == "1":
        return body
    if coefficient == "-1":
        return "-" + body
    if "/" in coefficient:  # a rational: 2/3 reads as a fraction
        numerator, denominator = coefficient.split("/", 1)
        sign = "-" if numerator.startswith("-") else ""
        return rf"{sign}\tfrac{{{numerator.lstrip('-')}}}{{{denominator}}}\,{body}"
    return f"{coefficient}\\,{body}"


def step_latex(
    step: Step,
    *,
    max_terms: int = 6,
    head: int = 3,
    names: Mapping[str, str] | None = None,
    reading: Mapping[str, int] | None = None,
) -> str:
    r"""``target = t1 + t2 + ...`` for one step, shortened when long.

    With more than ``max_terms`` terms, show the first ``head``, ``\cdots`` and the last.

    Terms are shown in the step's order; factors inside a term are shown operands
    first (e.g. ``W a`` reads as the kernel times the input).
    """
    target = cell_latex(step.target.role, step.target.index, names)
    if step.expression:
        return f"{target} = {step.expression}"
    order = reading or _READING
    terms = [
        term_latex(sorted(factors, key=lambda c: order.get(c.role, 9)), coefficient, names)
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


def expression_latex(
    expr: Any,
    cell_of: Callable[[Any], Cell | None],
    names: Mapping[str, str],
    *,
    max_terms: int = 6,
    head: int = 3,
) -> str:
    r"""LaTeX of an expression that is not a plain sum of products, in short cell names.

    ``Heaviside(x, 0)`` reads as the indicator ``\mathbf{1}[x > 0]`` (``\ge`` for
    ``Heaviside(x, 1)``); a sum of more than ``max_terms`` terms is shortened as in
    :func:`step_latex`.
    """
    import sympy

    cell_names: dict[Any, str] = {}
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Indexed | sympy.Symbol | sympy.Derivative):
            cell = cell_of(node)
            if cell is not None:
                cell_names[node] = cell_latex(cell.role, cell.index, names)
    # The printer names cells as they are drawn; the expression itself is not rebuilt
    # (rebuilding re-evaluates every Max and Heaviside, which is slow).
    printer = _IndicatorPrinter()
    printer.cell_names = cell_names
    if isinstance(expr, sympy.Add) and len(expr.args) > max_terms:
        parts = [printer.doprint(t) for t in printer._as_ordered_terms(expr)]
        shown = [*parts[:head], r"\cdots", parts[-1]]
        return " + ".join(shown).replace("+ -", "- ")
    if isinstance(expr, sympy.Mul) and not any(
        isinstance(f, sympy.Number) or (isinstance(f, sympy.Pow) and f.exp.is_negative)
        for f in expr.args
    ):
        # read the upstream gradient first: dz * 1[z > 0], as a lecture says it
        upstream = [f for f in expr.args if isinstance(f, sympy.Derivative)]
        rest = [f for f in expr.args if not isinstance(f, sympy.Derivative)]
        return " ".join(str(printer.doprint(f)) for f in (*upstream, *rest))
    return str(printer.doprint(expr))


def _indicator_printer_class() -> type:
    from sympy.printing.latex import LatexPrinter

    class IndicatorPrinter(LatexPrinter):  # type: ignore[misc]
        r"""SymPy's LaTeX, with ``Heaviside`` as an indicator and ``Max`` as ``\max``."""

        cell_names: dict[Any, str] = {}

        def _print_Indexed(self, expr: Any) -> str:
            name = self.cell_names.get(expr)
            return name if name is not None else str(super()._print_Indexed(expr))

        def _print_Derivative(self, expr: Any) -> str:
            name = self.cell_names.get(expr)
            return name if name is not None else str(super()._print_Derivative(expr))

        def _print_Symbol(self, expr: Any, style: str = "plain") -> str:
            name = self.cell_names.get(expr)
            return name if name is not None else str(super()._print_Symbol(expr, style))

        def _print_Heaviside(self, expr: Any, exp: Any = None) -> str:
            import sympy

            arg = expr.args[0]
            h0 = expr.args[1] if len(expr.args) > 1 else sympy.S.Half
            relation = {sympy.S.Zero: ">", sympy.S.One: r"\ge"}.get(h0)
            if relation is None:
                return str(super()._print_Heaviside(expr, exp))
            left, right = arg, sympy.S.Zero
            if isinstance(arg, sympy.Add) and len(arg.args) == 2:
                pos = [a for a in arg.args if not a.could_extract_minus_sign()]
                neg = [a for a in arg.args if a.could_extract_minus_sign()]
                if len(pos) == 1 and len(neg) == 1:
                    left, right = pos[0], -neg[0]
            body = rf"\mathbf{{1}}[{self._print(left)} {relation} {self._print(right)}]"
            return body if exp is None else rf"{body}^{{{exp}}}"

        def _print_Max(self, expr: Any, exp: Any = None) -> str:
            args = ", ".join(self._print(a) for a in expr.args)
            body = rf"\max({args})"
            return body if exp is None else rf"{body}^{{{exp}}}"

    return IndicatorPrinter


class _LazyPrinter:
    _cls: type | None = None

    def __call__(self) -> Any:
        if _LazyPrinter._cls is None:
            _LazyPrinter._cls = _indicator_printer_class()
        return _LazyPrinter._cls()


_IndicatorPrinter = _LazyPrinter()
