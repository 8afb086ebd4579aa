"""The reflector's terms, plain flag and steps against a naive reference walk.

The reference reads the definition of a highlight term directly: the addends of the
expression are its terms; a term's numeric coefficient is the product of its top-level
number factors; its cells are every cell node found anywhere in it (an ``Indexed`` of a
known array, a scalar ``Symbol`` of the layer, ``Derivative(L, z)``), listed once each in
role order then index order. A term is *plain* when it is a number times distinct cells.
None of the reflector's fast paths, caches or contexts are used.
"""

from __future__ import annotations

from typing import Any

import pytest
import sympy
from sympy.functions.elementary.piecewise import ExprCondPair

from convviz.derivation import derive
from convviz.highlights import ROLES, Cell
from convviz.layers import layer_type
from convviz.reflection import ReflectionError, Reflector, highlight_map, step_for
from convviz.spec import ConvSpec

A = sympy.IndexedBase("a")
W = sympy.IndexedBase("W")
Z = sympy.IndexedBase("z")
S = sympy.IndexedBase("s")  # a role outside ROLES
b = sympy.Symbol("b")
u = sympy.Dummy("u")  # a scalar cell that is a Symbol subclass
L = sympy.Function("L")(b)

ROLE_OF: dict[Any, str] = {A: "input", W: "kernel", b: "bias", Z: "output", S: "scatter",
                           u: "grad_input"}
DERIVATIVE_ROLE_OF: dict[Any, str] = {Z: "grad_output"}
ORDER = {role: n for n, role in enumerate((*ROLES, "scatter"))}


def dz(*index: int) -> sympy.Derivative:
    return sympy.Derivative(L, Z[index])


def _cell_of(node: Any) -> Cell | None:
    if isinstance(node, sympy.Derivative):
        (var,) = node.variables
        return Cell(DERIVATIVE_ROLE_OF[var.base], tuple(int(i) for i in var.indices))
    if isinstance(node, sympy.Indexed):
        return Cell(ROLE_OF[node.base], tuple(int(i) for i in node.indices))
    if isinstance(node, sympy.Symbol):
        return Cell(ROLE_OF[node], ())
    return None


def _cells_anywhere(node: Any, found: list[Cell]) -> None:
    cell = _cell_of(node)
    if cell is not None:
        found.append(cell)
        return
    for arg in node.args:
        _cells_anywhere(arg, found)


def _key(cell: Cell) -> tuple[int, tuple[int, ...]]:
    return (ORDER[cell.role], cell.index)


def _flat_factors(term: Any) -> list[Any]:
    """The factors of a product, products nested in it (unevaluated) opened up."""
    found: list[Any] = []
    for factor in sympy.Mul.make_args(term):
        found.extend(_flat_factors(factor) if factor.is_Mul else [factor])
    return found


def reference_terms(expr: Any) -> tuple[list[tuple[Any, tuple[Cell, ...]]], bool]:
    """(coefficient, cells) of each addend, sorted; and whether all are plain."""
    terms = []
    plain = True
    for term in sympy.Add.make_args(expr):
        if term == 0:
            continue
        factors = _flat_factors(term)
        coefficient = sympy.Mul(*(f for f in factors if f.is_Number))
        found: list[Cell] = []
        for factor in factors:
            if not factor.is_Number:
                _cells_anywhere(factor, found)
        cells = tuple(sorted(set(found), key=_key))
        direct = [f for f in factors if not f.is_Number]
        if not cells or len(set(direct)) != len(direct) or not all(
            _cell_of(f) is not None for f in direct
        ):
            plain = False
        terms.append((coefficient, cells))
    terms.sort(key=lambda t: [_key(c) for c in t[1]])
    return terms, plain


def reference_highlights(terms: list[tuple[Any, tuple[Cell, ...]]]) -> dict[str, Any]:
    used: dict[str, set[tuple[int, ...]]] = {}
    for _, cells in terms:
        for cell in cells:
            used.setdefault(cell.role, set()).add(cell.index)
    return {role: tuple(sorted(used[role])) for role in sorted(used, key=ORDER.__getitem__)}


def unevaluated_mul(*args: Any) -> sympy.Mul:
    return sympy.Mul(*args, evaluate=False)


EXPRESSIONS = [
    pytest.param(sympy.S.Zero, id="zero"),
    pytest.param(A[1], id="one-cell"),
    pytest.param(b, id="scalar-cell"),
    pytest.param(A[1] * W[1], id="pair"),
    pytest.param(A[2] * A[1], id="pair-one-role"),
    pytest.param(W[2] * dz(1), id="pair-with-derivative"),
    pytest.param(A[1] * W[1, 2] + A[2] * W[1, 1] + b, id="sum-of-pairs-and-bias"),
    pytest.param(A[3] * W[1] + A[1] * W[3] + A[2] * W[2], id="terms-sorted"),
    pytest.param(A[1] * W[1] * dz(2) + A[2] * W[2] * S[1], id="triples"),
    pytest.param(S[2] * A[1] + A[2], id="role-outside-the-order"),
    pytest.param(A[0] * W[-1] + A[5] * W[0], id="zero-and-negative-indices"),
    pytest.param(A[1, 2] * W[2, 1, 3] + dz(1, 1) * W[1, 1, 1], id="multi-indices"),
    pytest.param(3 * A[1] * W[1] + A[2], id="coefficient"),
    pytest.param(-A[1] * W[1] - sympy.Rational(1, 2) * A[2], id="negative-coefficients"),
    pytest.param(A[1] + 5, id="constant-term"),
    pytest.param(sympy.Integer(-1) + dz(1) * W[1], id="minus-one-term"),
    pytest.param(unevaluated_mul(A[1], A[1]), id="repeated-cell"),
    pytest.param(unevaluated_mul(A[1], A[1], W[1]) + A[2] * W[2], id="repeated-in-triple"),
    pytest.param(unevaluated_mul(A[1], A[1]) + unevaluated_mul(W[1], W[1]),
                 id="repeated-pairs-in-sum"),
    pytest.param(A[1] ** 2 * W[1], id="power-factor"),
    pytest.param(dz(1) * sympy.Max(A[1], A[2]), id="max-factor"),
    pytest.param(dz(1) * sympy.Max(A[1], A[2]) + dz(2) * sympy.Max(A[2], A[3]),
                 id="max-factors-in-sum"),
    pytest.param(sympy.Max(A[1] * W[1], 2 * A[2], b), id="products-inside-max"),
    pytest.param(sympy.Max(A[1] + W[1], 0), id="sum-inside-max"),
    pytest.param(sympy.exp(A[1] * W[2] + dz(1)) * A[3], id="sum-of-products-in-exp"),
    pytest.param(dz(1) * sympy.Heaviside(A[1] - sympy.Max(A[2], A[3]), 0),
                 id="heaviside-of-max"),
    pytest.param(sympy.Piecewise((A[1] * W[1], A[2] > W[2]), (b, True)), id="piecewise"),
    pytest.param(sympy.Piecewise((A[1], sympy.And(A[2] > 0, W[1] < 1)), (0, True)),
                 id="piecewise-and"),
    pytest.param(sympy.Abs(A[1]) * W[1], id="abs-factor"),
    pytest.param(unevaluated_mul(A[1], sympy.Add(A[2], W[3])), id="sum-in-product"),
    pytest.param(unevaluated_mul(2, A[1], sympy.Add(A[2], W[3])) + A[4],
                 id="sum-in-product-with-coefficient"),
    pytest.param(sympy.log(sympy.exp(A[1]) + sympy.exp(A[2])) - A[2], id="log-sum-exp"),
    pytest.param(A[1] * sympy.Max(A[1], W[1]), id="cell-also-inside-a-factor"),
    pytest.param(sympy.exp(dz(1)) * dz(1), id="derivative-inside-and-outside"),
    pytest.param(u * W[1] + A[1] * u, id="dummy-symbol-cell"),
    pytest.param(A[1] + W[1], id="sum-of-two-cells"),
    pytest.param(dz(1) + dz(2), id="sum-of-two-derivatives"),
    pytest.param(sympy.Max(A[1], A[2]), id="max-of-two-cells"),
    pytest.param(A[1] ** W[1], id="cell-to-the-power-of-a-cell"),
    pytest.param(3 * A[1] * W[1], id="one-term-with-coefficient"),
    pytest.param(-dz(1) * W[1], id="one-term-negated"),
    pytest.param(sympy.Rational(-1, 2) * A[2], id="one-cell-times-a-half"),
    pytest.param(sympy.Integer(5), id="constant-only"),
    pytest.param(A[1] * Z[1] + A[2] * W[2], id="roles-met-out-of-order"),
    pytest.param(unevaluated_mul(2, A[1], unevaluated_mul(3, W[1])), id="nested-product"),
    pytest.param(unevaluated_mul(A[1], unevaluated_mul(-1, W[1], dz(1))) + b,
                 id="nested-product-in-sum"),
    pytest.param(sympy.Max(A[1], u) * dz(1), id="dummy-symbol-inside-max"),
    pytest.param(sympy.exp(u + A[1] * W[1]), id="dummy-symbol-in-sum-inside-exp"),
]


def _reflector() -> Reflector:
    return Reflector(ROLE_OF, DERIVATIVE_ROLE_OF, ROLES)


def _check_terms(reflector: Reflector, expr: Any) -> None:
    want, plain = reference_terms(expr)
    got = reflector.terms(expr)
    assert got == want, expr
    assert [type(c) for c, _ in got] == [type(c) for c, _ in want]
    assert reflector.plain is plain, expr


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_terms_follow_the_definition(expr):
    # a fresh reflector, then again once it knows the cells (its caches filled)
    reflector = _reflector()
    _check_terms(reflector, expr)
    _check_terms(reflector, expr)


def test_terms_follow_the_definition_with_one_reflector_for_all():
    reflector = _reflector()
    exprs = [p.values[0] for p in EXPRESSIONS]
    for expr in [*exprs, *reversed(exprs)]:
        _check_terms(reflector, expr)


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_step_follows_the_definition(expr):
    reflector = _reflector()
    reflector.short_names = {role: role[0] for role in ORDER}
    for _ in range(2):
        target = Cell("grad_input", (1,))
        want, plain = reference_terms(expr)
        step = step_for(reflector, target, expr)
        assert step.target == target
        assert step.terms == tuple(cells for _, cells in want)
        assert step.coefficients == tuple(
            "1" if c == 1 else str(c) for c, _ in want
        )
        assert dict(step.highlights) == reference_highlights(want)
        assert list(step.highlights) == list(reference_highlights(want))
        assert reflector.plain is plain
        assert (step.expression != "") is (not plain), expr
        # without expression=True the costly LaTeX is never printed
        assert step_for(reflector, target, expr, expression=False).expression == ""


def test_step_of_two_cells_of_one_role_highlights_both():
    reflector = _reflector()
    reflector.terms(A[1] + A[2])  # the cells known: the short path
    step = step_for(reflector, Cell("grad_input", (1,)), A[2] * A[1])
    assert step.terms == ((Cell("input", (1,)), Cell("input", (2,))),)
    assert step.highlights == {"input": ((1,), (2,))}
    assert step.coefficients == ("1",)
    assert reflector.plain is True
    step = step_for(reflector, Cell("grad_input", (1,)), W[1] * A[2])
    assert step.terms == ((Cell("input", (2,)), Cell("kernel", (1,))),)
    assert list(step.highlights) == ["input", "kernel"]
    assert step.highlights == {"input": ((2,),), "kernel": ((1,),)}


def test_reflector_made_directly_prints_expressions():
    reflector = _reflector()  # no short names given
    step = step_for(reflector, Cell("grad_input", (1,)), sympy.exp(A[1]) * dz(1))
    assert step.expression != ""
    assert reflector.plain is False


def test_plain_flag_is_reset_by_every_expression():
    reflector = _reflector()
    reflector.terms(sympy.Max(A[1], A[2]))
    assert reflector.plain is False
    reflector.terms(A[1] * W[1])
    assert reflector.plain is True
    step_for(reflector, Cell("grad_input", (1,)), sympy.exp(A[1]))
    assert reflector.plain is False
    reflector.terms(A[1])  # cells known
    step_for(reflector, Cell("grad_input", (1,)), A[1] * W[1])
    assert reflector.plain is True


def test_roles_outside_the_order_sort_after_it():
    reflector = Reflector({A: "input", S: "scatter", W: "extra"}, order=("kernel", "input"))
    terms = reflector.terms(A[1] * S[1] * W[1])
    assert terms == [(sympy.S.One, (Cell("input", (1,)), Cell("scatter", (1,)),
                                    Cell("extra", (1,))))]
    reflector = Reflector({A: "input", W: "kernel"}, order=("kernel", "input"))
    assert reflector.terms(A[1] * W[1] + A[2]) == [
        (sympy.S.One, (Cell("kernel", (1,)), Cell("input", (1,)))),
        (sympy.S.One, (Cell("input", (2,)),)),
    ]


def test_cell_of_reports_reflected_nodes_only():
    reflector = _reflector()
    reflector.terms(A[1] * W[2] + dz(3) + b)
    assert reflector.cell_of(A[1]) == Cell("input", (1,))
    assert reflector.cell_of(W[2]) == Cell("kernel", (2,))
    assert reflector.cell_of(dz(3)) == Cell("grad_output", (3,))
    assert reflector.cell_of(b) == Cell("bias", ())
    assert reflector.cell_of(A[9]) is None


ERRORS: list[Any] = [
    pytest.param(A[1] * W[sympy.Symbol("i")], "W[i]", "indices must be integers",
                 id="symbolic-index-in-product"),
    pytest.param(sympy.Max(A[1], sympy.IndexedBase("q")[1]), "q[1]",
                 "q is not an array of this layer",
                 id="unknown-array-inside-max"),
    pytest.param(sympy.exp(A[1] * sympy.Symbol("y")), "'y'", "y is not an array of this layer",
                 id="unknown-symbol-in-product-inside-exp"),
    pytest.param(sympy.Max(sympy.Function("f")(A[1]), A[2]), "f(a[1])",
                 "an undefined function is not a cell", id="undefined-function-inside-max"),
    pytest.param(sympy.Max(A[1] + sympy.Function("f")(A[2]), 0), "f(a[2])",
                 "an undefined function is not a cell", id="undefined-function-in-sum-in-max"),
    pytest.param(dz(1) * sympy.Derivative(L, Z[1], Z[2]), "Derivative",
                 "only first derivatives by one cell are cells", id="derivative-by-two-cells"),
    pytest.param(sympy.Derivative(L, b) * A[1], "Derivative", "b is not an array of this layer",
                 id="derivative-by-a-cell-without-a-gradient-role"),
    pytest.param(A[1] > sympy.IndexedBase("q")[1], "q[1]", "q is not an array of this layer",
                 id="unknown-array-in-a-relation"),
    pytest.param(sympy.And(A[1] > 0, sympy.IndexedBase("q")[1] < 1), "q[1]",
                 "q is not an array of this layer", id="unknown-array-in-a-conjunction"),
    pytest.param(ExprCondPair(A[1], sympy.IndexedBase("q")[1] > 0), "q[1]",
                 "q is not an array of this layer", id="unknown-array-in-a-branch"),
    pytest.param(A[1] + sympy.Integral(A[2], b), "Integral", "unexpected Integral node",
                 id="unknown-node-in-sum"),
    pytest.param(sympy.Max(A[1], sympy.Integral(A[2], b)), "Integral",
                 "unexpected Integral node", id="unknown-node-inside-max"),
    pytest.param(sympy.Heaviside(A[1] - sympy.IndexedBase("q")[2]), "q[2]",
                 "q is not an array of this layer", id="unknown-array-in-heaviside"),
    pytest.param(A[1] ** sympy.IndexedBase("q")[2], "q[2]",
                 "q is not an array of this layer", id="unknown-array-in-power"),
    pytest.param(sympy.Piecewise((A[1], sympy.IndexedBase("q")[2] > 0), (0, True)), "q[2]",
                 "q is not an array of this layer", id="unknown-array-in-condition"),
]


@pytest.mark.parametrize(("expr", "needle", "why"), ERRORS)
def test_errors_name_the_node_and_why(expr, needle, why):
    with pytest.raises(ReflectionError) as info:
        _reflector().terms(expr)
    message = str(info.value)
    assert message.startswith("cannot reflect ")
    assert needle in message.split(" in ")[0]
    assert message.endswith(": " + why), message
    assert isinstance(info.value, ValueError)
    assert needle.strip("'") in sympy.sstr(info.value.node)
    # the message names the whole expression the node was found in
    assert f" in {sympy.sstr(expr)}: " in message


def test_error_message_shortens_a_long_expression():
    expr = sum((A[n] * W[n] for n in range(1, 30)), sympy.S.Zero) + A[sympy.Symbol("i")]
    with pytest.raises(ReflectionError) as info:
        _reflector().terms(expr)
    message = str(info.value)
    whole = message.removeprefix("cannot reflect 'a[i]' in ").split(": ")[0]
    assert len(whole) == 80
    assert whole.endswith("...")
    assert sympy.sstr(expr).startswith(whole[:-3])
    # exactly 80 characters: shown whole
    exact = sum((A[n] * W[n] for n in range(1, 7)), sympy.S.Zero) + A[sympy.Symbol("i")] + 5
    assert len(sympy.sstr(exact)) == 80
    with pytest.raises(ReflectionError) as info:
        _reflector().terms(exact)
    assert f" in {sympy.sstr(exact)}: indices must be integers" in str(info.value)
    short = sympy.Symbol("y") + A[1]
    with pytest.raises(ReflectionError, match=r"^cannot reflect 'y' in y \+ a\[1\]: y is not"):
        _reflector().terms(short)


CONDITIONS = [
    pytest.param(A[1] > W[1], id="relation"),
    pytest.param(sympy.And(A[1] > 0, W[2] < 1), id="and"),
    pytest.param(sympy.Or(A[2] > 0, sympy.Not(W[1] < A[1])), id="or-not"),
    pytest.param(ExprCondPair(A[1] * W[2], W[1] > 0), id="branch"),
    pytest.param(sympy.hyper([A[1]], [W[1]], A[2]), id="function-with-tuple-arguments"),
]


@pytest.mark.parametrize("expr", CONDITIONS)
def test_conditions_and_branches_are_made_of_their_cells(expr):
    # what a Piecewise branches on, on its own: one term of every cell inside
    reflector = _reflector()
    found: list[Cell] = []
    _cells_anywhere(expr, found)
    assert reflector.terms(expr) == [(sympy.S.One, tuple(sorted(set(found), key=_key)))]
    assert reflector.plain is False


# ------------------------------------------------------------------- highlight_map
def test_map_op_reuses_the_steps_of_its_op():
    d = derive(ConvSpec((4, 4), (2, 2), stride=2))
    full = highlight_map(d, "da-full")
    da = highlight_map(d, "da")
    assert full.op == "da-full"
    assert full.steps == da.steps
    assert dict(full.arrays) == dict(da.arrays)


def test_unknown_op_lists_the_ops():
    d = derive(ConvSpec((3, 3), (2, 2)))
    with pytest.raises(ValueError) as info:
        highlight_map(d, "dz")
    assert str(info.value) == "unknown op 'dz'; expected one of forward, dw, da, db, da-full"


def test_each_map_is_named_by_its_op():
    d = derive(ConvSpec((3, 3), (2, 2)))
    for op in ("forward", "dw", "da", "db", "da-full"):
        assert highlight_map(d, op).op == op


def test_factors_and_highlights_follow_the_layer_role_order():
    # dense declares input, weight, bias, output, grad_output, ...: dL/da[1] reads
    # W[k, 1] dz[k], weight before grad_output, and z[1] lists input, weight, bias
    dense = layer_type("dense")
    d = derive(dense.build({"input": "2", "outputs": "2"}))
    da = highlight_map(d, "da").steps[0]
    assert da.terms == tuple(
        (Cell("weight", (k, 1)), Cell("grad_output", (k,))) for k in (1, 2))
    assert list(da.highlights) == ["weight", "grad_output"]
    forward = highlight_map(d, "forward").steps[1]
    assert list(forward.highlights) == ["input", "weight", "bias"]
    assert forward.terms == (
        (Cell("input", (1,)), Cell("weight", (2, 1))),
        (Cell("input", (2,)), Cell("weight", (2, 2))),
        (Cell("bias", (2,)),),
    )


def test_expressions_are_printed_for_the_first_steps_only():
    relu = layer_type("relu").build({"input": "2x2"})
    d = derive(relu)
    op = "da"  # dL/dz = dL/da * Heaviside(z): not a plain product, so printed
    every = highlight_map(d, op)
    assert all(s.expression for s in every.steps)
    first = highlight_map(d, op, expressions=2)
    assert [bool(s.expression) for s in first.steps] == [True, True, False, False]
    assert [s.expression for s in first.steps[:2]] == [s.expression for s in every.steps[:2]]
    assert not any(s.expression for s in highlight_map(d, op, expressions=0).steps)


def test_reflector_of_a_loss_layer_has_no_derivative_roles():
    mse = layer_type("mse")
    d = derive(mse.build({}))
    reflector = Reflector.for_derivation(d)
    assert reflector.derivative_roles == {}
    conv = derive(ConvSpec((3, 3), (2, 2)))
    reflector = Reflector.for_derivation(conv)
    assert reflector.derivative_roles == {conv.bases["output"]: "grad_output"}
    assert reflector.roles == {base: role for role, base in conv.bases.items()}

