from __future__ import annotations

import numpy as np
import pytest
import sympy
from references import bind, evaluate, finite_differences, random_values

from convviz.derivation import derive
from convviz.gradients import cells_in, chain_rule, partial
from convviz.spec import ConvSpec

SPECS = [
    pytest.param(ConvSpec((6, 6), (3, 3)), id="seed-6x6-k3"),
    pytest.param(ConvSpec((5, 5), (3, 3), stride=2), id="stride2"),
    pytest.param(ConvSpec((4, 4), (3, 3), padding=1), id="padding1"),
    pytest.param(ConvSpec((7, 7), (3, 3), dilation=2), id="dilation2"),
    pytest.param(ConvSpec((5, 4), (2, 3), stride=(2, 1), padding=(0, 1)), id="rect"),
    pytest.param(ConvSpec((4, 4), (2, 2), channels=2, filters=2), id="C2-F2"),
    pytest.param(ConvSpec((5, 5), (3, 3), bias=False), id="no-bias"),
    pytest.param(ConvSpec((6, 5), (2, 2), stride=2, padding=1, dilation=2, channels=2,
                          filters=3), id="everything"),
]

ROLES = ("grad_kernel", "grad_input", "grad_bias")


@pytest.mark.parametrize("spec", SPECS)
def test_product_rule_engine_equals_sympy_engine(spec):
    fast = derive(spec)
    slow = derive(spec, engine="sympy")
    for role in ROLES:
        left, right = fast.array(role), slow.array(role)
        assert left.shape == right.shape
        for pos, value in np.ndenumerate(left):
            assert value == right[pos], (role, pos)


@pytest.mark.parametrize("spec", SPECS)
def test_gradients_match_finite_differences(spec):
    d = derive(spec)
    x, w, b, g = random_values(spec, seed=3)
    values = {**bind(d.input, x), **bind(d.kernel, w), **bind(d.bias, b),
              **bind(d.grad_output, g)}
    fd = finite_differences(spec, x, w, b, g)
    np.testing.assert_allclose(evaluate(d.grad_kernel, values), fd["kernel"], atol=1e-6)
    np.testing.assert_allclose(evaluate(d.grad_input, values), fd["input"], atol=1e-6)
    if spec.bias:
        np.testing.assert_allclose(evaluate(d.grad_bias, values), fd["bias"], atol=1e-6)
    else:
        assert all(v is sympy.S.Zero for v in d.grad_bias.flat)


def test_sparse_chain_rule_equals_all_pairs_chain_rule():
    # The article's rule: for every variable, sum dz * z.diff(v) over ALL output cells.
    spec = ConvSpec((4, 4), (2, 2), stride=1, padding=1)
    d = derive(spec)
    z = d.output.reshape(-1)
    dz = d.grad_output.reshape(-1)
    for role, grad in (("kernel", "grad_kernel"), ("input", "grad_input"), ("bias", "grad_bias")):
        for pos, v in np.ndenumerate(d.array(role)):
            want = sum((dz_k * z_k.diff(v) for z_k, dz_k in zip(z, dz, strict=True)),
                       sympy.S.Zero)
            assert d.array(grad)[pos] == want, (role, pos)


def terms(expr):
    return sympy.Add.make_args(expr) if expr != 0 else ()


def test_only_sharing_pairs_by_hand():
    # 6x6 input, 3x3 kernel, output 4x4 (all 0-based below).
    d = derive(ConvSpec((6, 6), (3, 3)))
    dz = d.grad_output[0]
    k = d.kernel[0, 0]
    # a[0,0] is only under W[0,0] when z[0,0] is computed.
    assert d.grad_input[0, 0, 0] == dz[0, 0] * k[0, 0]
    # a[2,2] is in the window of z[i,j] for i, j in 0..2, under W[2-i, 2-j].
    want = sympy.Add(*(dz[i, j] * k[2 - i, 2 - j] for i in range(3) for j in range(3)))
    assert d.grad_input[0, 2, 2] == want
    # Corner a[5,5] only meets z[3,3] through W[2,2].
    assert len(terms(d.grad_input[0, 5, 5])) == 1
    # Every kernel cell meets every output cell once.
    assert all(len(terms(v)) == 16 for v in d.grad_kernel.flat)
    assert len(terms(d.grad_bias[0])) == 16


def test_input_cells_skipped_by_stride_get_zero():
    # 5x5 input, 2x2 kernel, stride 3 -> windows start at rows/cols 0 and 3: row/col 2 unused.
    d = derive(ConvSpec((5, 5), (2, 2), stride=3))
    assert d.grad_input[0, 2, 0] is sympy.S.Zero
    assert d.grad_input[0, 0, 2] is sympy.S.Zero
    assert d.grad_input[0, 3, 3] == d.grad_output[0, 1, 1] * d.kernel[0, 0, 0, 0]


def test_partial_product_rule_and_fallback():
    a, b, c = sympy.symbols("a b c")
    assert partial(a * b * c, b) == a * c
    assert partial(a, a) == 1
    assert partial(a**2 * b, a) == 2 * a * b
    assert partial(a * b, c) == 0


def test_chain_rule_shape_mismatch():
    z = np.zeros((1, 2, 2), dtype=object)
    with pytest.raises(ValueError, match="chain_rule"):
        chain_rule(z, np.zeros((1, 3, 3), dtype=object), [])


def test_chain_rule_with_powers_uses_diff():
    # An output that is not a product of distinct cells still differentiates correctly.
    x, y = sympy.symbols("x y")
    g = sympy.Symbol("g")
    outputs = np.array([x**2 * y], dtype=object)
    upstream = np.array([g], dtype=object)
    for engine in ("product-rule", "sympy"):
        (gx,) = chain_rule(outputs, upstream, [np.array([x], dtype=object)], engine=engine)
        assert sympy.expand(gx[0] - 2 * g * x * y) == 0


# ----------------------------------------------------------------- cells_in and partial
R = sympy.IndexedBase("r", real=True)
r1, r2, r3 = R[1], R[2], R[3]
s, t = sympy.symbols("s t", real=True)


@pytest.mark.parametrize(
    ("factor", "cells"),
    [
        pytest.param(r1, {r1}, id="indexed"),
        pytest.param(s, {s}, id="symbol"),
        pytest.param(sympy.Integer(3), set(), id="constant"),
        pytest.param(r1**2, {r1}, id="power-of-cell"),
        pytest.param(r1**r2, {r1, r2}, id="cell-to-power-of-cell"),
        pytest.param(s**t, {s, t}, id="symbol-to-power-of-symbol"),
        pytest.param((r1 + r2) ** 2, {r1, r2}, id="power-of-sum"),
        pytest.param(sympy.Max(r1, r2, s), {r1, r2, s}, id="max-of-cells"),
        pytest.param(sympy.Max(r1, r2 * r3), {r1, r2, r3}, id="max-of-a-product"),
        pytest.param(sympy.Max(0, r1), {r1}, id="relu"),
        pytest.param(sympy.exp(r2), {r2}, id="exp"),
        pytest.param(sympy.exp(2 * r2), {r2}, id="exp-of-multiple"),
        pytest.param(sympy.log(1 + sympy.exp(r1 - s)), {r1, s}, id="nested"),
    ],
)
def test_cells_in_finds_every_cell_anywhere_in_the_factor(factor, cells):
    # (deep inside a node the array's label symbol may come along: it is no variable)
    assert cells_in(factor) - {R.label} == frozenset(cells)


def test_cell_in_an_exponent_gets_its_gradient():
    # d(r1^r2)/dr2 = r1^r2 log r1: the exponent is a cell too
    g = sympy.Symbol("g")
    outputs = np.array([r1**r2], dtype=object)
    for engine in ("product-rule", "sympy"):
        (grad,) = chain_rule(outputs, np.array([g], dtype=object),
                             [np.array([r1, r2], dtype=object)], engine=engine)
        assert sympy.simplify(grad[0] - g * r2 * r1 ** (r2 - 1)) == 0, engine
        assert sympy.simplify(grad[1] - g * r1**r2 * sympy.log(r1)) == 0, engine


MAX_NODES = [
    pytest.param(sympy.Max(r1, r2), r1, id="two-cells"),
    pytest.param(sympy.Max(r1, r2, r3), r2, id="three-cells"),
    pytest.param(sympy.Max(0, r1), r1, id="relu"),
    pytest.param(sympy.Max(0, r1, r2), r1, id="relu-of-two"),
    pytest.param(sympy.Max(s, t), s, id="symbols"),
    pytest.param(sympy.Max(0, s, t), t, id="relu-of-symbols"),
    pytest.param(sympy.Max(s, r1), r1, id="symbol-and-cell"),
    pytest.param(sympy.Max(s, r1, r2), s, id="symbol-and-two-cells"),
    pytest.param(sympy.Max(r1, 2 * r2), r1, id="other-not-a-cell"),
    pytest.param(sympy.Max(r1, r1 * r2), r1, id="cell-also-inside-the-other"),
    pytest.param(sympy.Max(r1, r2 + r3), r3, id="cell-inside-a-sum"),
]


@pytest.mark.parametrize(("node", "cell"), MAX_NODES)
def test_max_derivative_is_exactly_the_heaviside_form_of_sympy_diff(node, cell):
    # The fast path builds the node sympy.diff would build, argument for argument.
    want = sympy.diff(node, cell)
    got = partial(node, cell)
    assert sympy.srepr(got) == sympy.srepr(want)
    # the same with an equal cell that is not the same object
    fresh = R[cell.indices[0]] if isinstance(cell, sympy.Indexed) else sympy.Symbol(
        cell.name, real=True)
    assert sympy.srepr(partial(node, fresh)) == sympy.srepr(want)
    # and as a factor of a product with an upstream cell
    g = sympy.Symbol("g")
    assert sympy.expand(partial(g * node, cell) - g * want) == 0


def test_partial_of_a_factor_holding_the_cell_twice():
    # d/dr1 of r1 * Max(r1, r2) = Max(r1, r2) + r1 Heaviside(r1 - r2)
    got = partial(r1 * sympy.Max(r1, r2), r1)
    want = sympy.Max(r1, r2) + r1 * sympy.Heaviside(r1 - r2)
    assert sympy.expand(got - want) == 0
    # the other factors multiply the derivative of the one factor holding the cell
    assert sympy.expand(partial(s * t * sympy.exp(2 * r1), r1)
                        - 2 * s * t * sympy.exp(2 * r1)) == 0
    assert partial(s * sympy.exp(t), r1) == 0


# ------------------------------------------------------------- the layer's own rule
class RecordingRule:
    """A layer rule: ``tanh(x)`` differentiates to the marker ``D(x)``, nothing else."""

    marker = sympy.Function("D")

    def __init__(self) -> None:
        self.calls: list[sympy.Expr] = []

    def __call__(self, node: sympy.Expr) -> list[tuple[sympy.Expr, sympy.Expr]] | None:
        self.calls.append(node)
        if isinstance(node, sympy.tanh) and isinstance(node.args[0], sympy.Indexed | sympy.Symbol):
            return [(node.args[0], self.marker(node.args[0]))]
        return None


def test_layer_rule_is_what_the_product_rule_engine_uses():
    g0, g1, g2, g3 = sympy.symbols("g0:4")
    outputs = np.array(
        [sympy.tanh(r1), r2 * sympy.tanh(r1), sympy.exp(r2), sympy.Max(r1, r2)], dtype=object)
    upstream = np.array([g0, g1, g2, g3], dtype=object)
    rule = RecordingRule()
    gr1, gr2 = chain_rule(outputs, upstream, [np.array([r1], dtype=object),
                                              np.array([r2], dtype=object)],
                          local_gradients=rule)
    D = RecordingRule.marker
    # tanh goes to the rule; where the rule gives nothing (exp, Max) the derivative is
    # SymPy's
    want1 = g0 * D(r1) + g1 * r2 * D(r1) + g3 * sympy.Heaviside(r1 - r2)
    want2 = g1 * sympy.tanh(r1) + g2 * sympy.exp(r2) + g3 * sympy.Heaviside(r2 - r1)
    assert sympy.expand(gr1[0] - want1) == 0
    assert sympy.expand(gr2[0] - want2) == 0
    # the rule was asked about the nodes holding the cells
    assert sympy.tanh(r1) in rule.calls
    assert sympy.exp(r2) in rule.calls
    # products are the product rule's: the rule is asked about their factors only
    assert not any(isinstance(node, sympy.Mul) for node in rule.calls)


def test_partial_takes_the_layer_rule_for_a_lone_node_and_for_a_factor():
    D = RecordingRule.marker
    assert partial(sympy.tanh(r1), r1, local_gradients=RecordingRule()) == D(r1)
    assert partial(s * sympy.tanh(r1), r1, local_gradients=RecordingRule()) == s * D(r1)
    # where the rule gives nothing, SymPy's derivative
    assert partial(sympy.exp(r1), r1, local_gradients=RecordingRule()) == sympy.exp(r1)
    assert partial(sympy.tanh(r1), r1) == 1 - sympy.tanh(r1) ** 2


def test_layer_rule_overrides_the_max_fast_path():
    g = sympy.Symbol("g")

    def rule(node: sympy.Expr) -> list[tuple[sympy.Expr, sympy.Expr]] | None:
        if isinstance(node, sympy.Max):
            return [(cell, sympy.Symbol("own")) for cell in node.args]
        return None

    for term in (sympy.Max(r1, r2), g * sympy.Max(r1, r2)):
        (grad,) = chain_rule(np.array([term], dtype=object), np.array([g], dtype=object),
                             [np.array([r1], dtype=object)], local_gradients=rule)
        want = g * sympy.Symbol("own") * (g if term.is_Mul else 1)
        assert sympy.expand(grad[0] - want) == 0, term


def test_sympy_engine_differentiates_the_whole_output_expression(monkeypatch):
    g = sympy.Symbol("g")
    expr = r2 * sympy.tanh(r1)
    calls = []
    original = sympy.diff

    def recording(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(sympy, "diff", recording)
    (grad,) = chain_rule(np.array([expr], dtype=object), np.array([g], dtype=object),
                         [np.array([r1], dtype=object)], engine="sympy")
    monkeypatch.undo()
    # the whole expression, not its tanh factor as the product rule would
    assert calls == [(expr, r1)]
    assert sympy.simplify(grad[0] - g * r2 * (1 - sympy.tanh(r1) ** 2)) == 0


def test_sympy_engine_ignores_the_layer_rule():
    g = sympy.Symbol("g")
    rule = RecordingRule()
    (grad,) = chain_rule(np.array([sympy.tanh(r1)], dtype=object), np.array([g], dtype=object),
                         [np.array([r1], dtype=object)], engine="sympy",
                         local_gradients=rule)
    assert sympy.simplify(grad[0] - g * (1 - sympy.tanh(r1) ** 2)) == 0
    assert not rule.calls


def test_chain_rule_sums_over_every_output_sharing_the_cell():
    # z = (r1 r2, r1 r3 + s, r1^2): dL/dr1 = g0 r2 + g1 r3 + 2 g2 r1, dL/dr2 = g0 r1,
    # dL/ds = g1, and r3's zero slot stays zero
    g0, g1, g2 = sympy.symbols("g0:3")
    outputs = np.array([[r1 * r2, r1 * r3 + s, r1**2]], dtype=object)
    upstream = np.array([[g0, g1, g2]], dtype=object)
    variables = [np.array([[r1, r2], [sympy.S.Zero, r3]], dtype=object),
                 np.array([s, t], dtype=object)]
    for engine in ("product-rule", "sympy"):
        cells, scalars = chain_rule(outputs, upstream, variables, engine=engine)
        assert cells.shape == (2, 2) and scalars.shape == (2,)
        want = [[g0 * r2 + g1 * r3 + 2 * g2 * r1, g0 * r1], [0, g1 * r1]]
        for pos in np.ndindex(2, 2):
            assert sympy.expand(cells[pos] - want[pos[0]][pos[1]]) == 0, (engine, pos)
        assert scalars[0] == g1
        assert scalars[1] is sympy.S.Zero
