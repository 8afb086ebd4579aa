from __future__ import annotations

import numpy as np
import pytest
import sympy
from references import finite_differences, random_values

from convviz.derivation import derive
from convviz.identities import ENGINE_CHECK_LIMIT, FullConvolutionView, closed_forms, verify
from convviz.spec import ConvSpec

SPECS = [
    pytest.param(ConvSpec((6, 6), (3, 3)), id="seed-6x6-k3"),
    pytest.param(ConvSpec((5, 5), (3, 3), stride=2), id="stride2"),
    pytest.param(ConvSpec((6, 6), (3, 3), stride=2), id="stride2-ragged"),
    pytest.param(ConvSpec((4, 4), (3, 3), padding=1), id="padding1"),
    pytest.param(ConvSpec((7, 7), (3, 3), dilation=2), id="dilation2"),
    pytest.param(ConvSpec((7, 5), (2, 3)), id="rect"),
    pytest.param(ConvSpec((7, 6), (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
                 id="rect-mixed"),
    pytest.param(ConvSpec((4, 4), (2, 2), channels=3), id="C3"),
    pytest.param(ConvSpec((4, 4), (2, 2), filters=3), id="F3"),
    pytest.param(ConvSpec((5, 5), (3, 3), bias=False), id="no-bias"),
    pytest.param(ConvSpec((8, 7), (3, 2), stride=2, padding=2, dilation=2, channels=2,
                          filters=2), id="everything"),
]


@pytest.mark.parametrize("spec", SPECS)
def test_identities_hold(spec):
    checks = verify(derive(spec))
    by_op = {c.op: c for c in checks}
    assert set(by_op) == {"dw", "da", "db", "engines"}
    assert by_op["dw"].holds is True
    assert by_op["da"].holds is True
    if spec.bias:
        assert by_op["db"].holds is True
    else:
        assert by_op["db"].holds is None
        assert "no bias" in by_op["db"].detail
    assert by_op["engines"].holds is True


def test_engine_check_skipped_for_large_layers():
    spec = ConvSpec((16, 16), (3, 3))  # 14 * 14 * 9 = 1,764 multiplications
    assert spec.products > ENGINE_CHECK_LIMIT
    [engines] = [c for c in verify(derive(spec)) if c.op == "engines"]
    assert engines.holds is None
    assert "skipped" in engines.detail


def _tampered(derivation, role, pos, extra):
    array = derivation.array(role).copy()
    array[pos] = array[pos] + extra
    return derivation.with_arrays(**{role: array})


@pytest.mark.parametrize(
    ("role", "pos", "broken"),
    [
        pytest.param("grad_kernel", (0, 0, 1, 2), "dw", id="dw-cell"),
        pytest.param("grad_input", (0, 3, 2), "da", id="da-cell"),
        pytest.param("grad_bias", (0,), "db", id="db-cell"),
    ],
)
def test_wrong_gradient_breaks_exactly_its_identity(role, pos, broken):
    d = derive(ConvSpec((5, 5), (3, 3), padding=1))
    bad = _tampered(d, role, pos, d.grad_output[0, 0, 0] * d.input[0, 4, 4])
    checks = {c.op: c for c in verify(bad)}
    for op in ("dw", "da", "db"):
        assert checks[op].holds is (op != broken), op
    assert checks[broken].detail == f"differs at {pos}"
    assert checks["engines"].holds is False


def test_dropped_term_is_caught():
    d = derive(ConvSpec((4, 4), (2, 2)))
    array = d.grad_input.copy()
    _dropped, *rest = sympy.Add.make_args(array[0, 1, 1])
    array[0, 1, 1] = sympy.Add(*rest)
    checks = {c.op: c for c in verify(d.with_arrays(grad_input=array), engines=False)}
    assert checks["da"].holds is False
    assert checks["dw"].holds is True
    assert "engines" not in checks


def test_closed_forms_shapes():
    spec = ConvSpec((5, 6), (2, 3), channels=2, filters=3)
    forms = closed_forms(derive(spec))
    assert forms["dw"].shape == (3, 2, 2, 3)
    assert forms["da"].shape == (2, 5, 6)
    assert forms["db"].shape == (3,)


VIEW_SPECS = [
    pytest.param(ConvSpec((6, 6), (3, 3)), id="seed-6x6-k3"),
    pytest.param(ConvSpec((5, 5), (3, 3), stride=2), id="stride2"),
    pytest.param(ConvSpec((6, 6), (3, 3), stride=2), id="stride2-ragged"),
    pytest.param(ConvSpec((4, 4), (3, 3), padding=1), id="padding1"),
    pytest.param(ConvSpec((7, 7), (3, 3), dilation=2), id="dilation2"),
    pytest.param(ConvSpec((7, 6), (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
                 id="rect-mixed"),
    pytest.param(ConvSpec((5, 5), (2, 2), channels=2, filters=3, stride=2, padding=1),
                 id="C2-F3"),
]


@pytest.mark.parametrize("spec", VIEW_SPECS)
def test_full_convolution_view_reproduces_input_gradient(spec):
    """Place dL/dz and rot180(W) where the view says, slide the windows, compare with FD."""
    view = FullConvolutionView(spec)
    x, w, b, g = random_values(spec, seed=5)
    gh, gw = view.grid_size
    kh, kw = spec.kernel_size
    grid = np.zeros((spec.filters, gh, gw))
    for f, i, j in np.ndindex(g.shape):
        *_, r, c = view.grad_output_position((f + 1, i + 1, j + 1))
        grid[f, r - 1, c - 1] = g[f, i, j]
    rotated = np.zeros_like(w)
    for f, c, p, q in np.ndindex(w.shape):
        *_, rp, rq = view.rotated_kernel_position((f + 1, c + 1, p + 1, q + 1))
        rotated[f, c, rp - 1, rq - 1] = w[f, c, p, q]
    got = np.zeros_like(x)
    for c, r, s in np.ndindex(x.shape):
        (top, left), (dh, dw) = view.window((c + 1, r + 1, s + 1))
        for f in range(spec.filters):
            for p in range(kh):
                for q in range(kw):
                    got[c, r, s] += grid[f, top - 1 + p * dh, left - 1 + q * dw] * rotated[
                        f, c, p, q
                    ]
    want = finite_differences(spec, x, w, b, g)["input"]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_full_convolution_view_by_hand():
    # 4x4 input, 2x2 kernel, stride 2: dz is 2x2, spread to rows/cols 1 and 3 of the padded
    # input, then shifted by k - 1 = 1: positions 2 and 4 in a 5x5 grid.
    view = FullConvolutionView(ConvSpec((4, 4), (2, 2), stride=2))
    assert view.offset == (1, 1)
    assert view.trailing == (1, 1)
    assert view.grid_size == (5, 5)
    assert view.grad_output_position((1, 1)) == (2, 2)
    assert view.grad_output_position((2, 2)) == (4, 4)
    assert view.rotated_kernel_position((1, 1)) == (2, 2)
    assert view.rotated_kernel_position((1, 2)) == (2, 1)
    assert view.window((3, 4)) == ((3, 4), (1, 1))


def _sigmoid():
    from convviz.layers import layer_type

    return derive(layer_type("sigmoid").build({"input": "2x2"}))


def test_simplify_identity_holds_for_every_cell_of_an_elementwise_layer():
    checks = {c.op: c for c in verify(_sigmoid())}
    assert checks["da"].holds is True
    assert checks["da"].detail == ""
    assert checks["engines"].holds is True


def test_gradient_reading_a_neighbour_cell_is_caught():
    # dL/dz[1,2] built from cell [1,1]'s z and dL/da: the right shape of formula, the wrong
    # cells. expand cannot decide it; simplify must see the cells as different.
    d = _sigmoid()
    array = d.grad_input.copy()
    array[0, 0, 1] = array[0, 0, 0]
    checks = {c.op: c for c in verify(d.with_arrays(grad_input=array))}
    assert checks["da"].holds is False
    assert checks["da"].detail == "differs at (0, 0, 1)"
    assert checks["engines"].holds is False
    assert checks["engines"].detail == "differs at (0, 0, 1)"


def test_wrong_factor_in_a_simplify_identity_is_caught():
    # sigma(z) (1 + sigma(z)) instead of sigma(z) (1 - sigma(z)) in one cell
    d = _sigmoid()
    z, up = d.input[0, 1, 1], d.grad_output[0, 1, 1]
    s = 1 / (1 + sympy.exp(-z))
    array = d.grad_input.copy()
    array[0, 1, 1] = up * s * (1 + s)
    checks = {c.op: c for c in verify(d.with_arrays(grad_input=array), engines=False)}
    assert checks["da"].holds is False
    assert checks["da"].detail == "differs at (0, 1, 1)"


def test_only_the_identities_asked_for_are_checked():
    d = derive(ConvSpec((4, 4), (2, 2)))
    assert [c.op for c in verify(d, ops=("dw",), engines=False)] == ["dw"]
    assert [c.op for c in verify(d, ops=("db", "da"))] == ["da", "db", "engines"]
    assert [c.op for c in verify(d, ops=())] == ["engines"]
    assert [c.op for c in verify(d, engines=False)] == ["dw", "da", "db"]


def test_each_check_carries_its_identity():
    d = derive(ConvSpec((4, 4), (2, 2)))
    checks = verify(d)
    declared = d.layer.identities
    assert [(c.op, c.name) for c in checks[:-1]] == [(i.op, i.name) for i in declared]
    assert [c.latex for c in checks[:-1]] == [i.latex(d.spec) for i in declared]
    assert all(r"\partial" in c.latex for c in checks[:-1])
    engines = checks[-1]
    assert (engines.op, engines.latex) == ("engines", "")
    assert engines.name == "product-rule engine agrees with sympy.diff on whole expressions"


def test_missing_bias_is_reported_not_checked():
    checks = {c.op: c for c in verify(derive(ConvSpec((4, 4), (2, 2), bias=False)))}
    assert checks["db"].holds is None
    assert checks["db"].detail == "layer has no bias"
    assert checks["dw"].detail == ""


def test_engine_check_runs_up_to_the_limit(monkeypatch):
    import convviz.identities as identities

    d = derive(ConvSpec((4, 4), (2, 2)))  # 3 * 3 * 4 = 36 multiplications
    assert d.spec.products == 36
    monkeypatch.setattr(identities, "ENGINE_CHECK_LIMIT", 36)
    [engines] = [c for c in verify(d) if c.op == "engines"]
    assert engines.holds is True
    monkeypatch.setattr(identities, "ENGINE_CHECK_LIMIT", 35)
    [engines] = [c for c in verify(d) if c.op == "engines"]
    assert engines.holds is None
    assert engines.detail == "skipped: 36 multiplications > 35"


def test_skipped_engine_check_names_the_sizes():
    [engines] = [c for c in verify(derive(ConvSpec((16, 16), (3, 3)))) if c.op == "engines"]
    assert engines.detail == "skipped: 1,764 multiplications > 1,500"


def test_engine_check_uses_the_derivation_names():
    # renamed arrays: the sympy.diff reference must be derived with the same names
    d = derive(ConvSpec((4, 4), (2, 2)), names={"input": "p", "kernel": "K"})
    checks = {c.op: c for c in verify(d)}
    assert checks["engines"].holds is True, checks["engines"].detail
    assert all(c.holds is True for c in checks.values())


def test_engine_mismatch_in_a_later_gradient_is_caught():
    # grad_input right, grad_bias wrong: the engine check looks at every gradient
    d = derive(ConvSpec((4, 4), (2, 2)))
    bias = d.grad_bias.copy()
    bias[0] = bias[0] + d.grad_output[0, 0, 0]
    [engines] = [c for c in verify(d.with_arrays(grad_bias=bias)) if c.op == "engines"]
    assert engines.holds is False
    assert engines.detail == "differs at (0,)"


def test_gradient_of_the_wrong_shape_is_reported_with_the_expected_shape():
    d = derive(ConvSpec((3, 3), (2, 2)))
    wide = np.zeros(2, dtype=object)
    checks = {c.op: c for c in verify(d.with_arrays(grad_bias=wide))}
    assert checks["db"].holds is False
    assert checks["db"].detail == "differs at (1,)"
    assert checks["dw"].holds is True


def test_simplify_treats_cells_as_the_real_numbers_they_are():
    # true for a real cell only: the placeholders simplify works on must be real too
    from convviz.identities import _equal

    x = sympy.IndexedBase("x", real=True)
    for left, right in [
        (sympy.log(sympy.exp(x[1]), evaluate=False), x[1]),
        (sympy.Pow(x[1] ** 2, sympy.S.Half, evaluate=False), sympy.Abs(x[1])),
        (sympy.sqrt(sympy.exp(x[1] + x[2]) ** 2, evaluate=False), sympy.exp(x[1] + x[2])),
    ]:
        assert _equal(left, right, "simplify", {}) is True, left
        assert _equal(left, right + x[2], "simplify", {}) is False, left
        # expand alone is not asked to prove more than a sum of products
        assert _equal(left, right + x[2], "expand", {}) is False, left


def test_engine_check_catches_a_bug_in_the_product_rule_engine(monkeypatch):
    # Simulate a product-rule engine that drops nothing but adds a stray term to one cell:
    # only a reference derived by sympy.diff (the other engine) can tell.
    import convviz.derivation as derivation
    from convviz.gradients import chain_rule

    def buggy(outputs, upstream, variables, *, engine="product-rule", **kwargs):
        grads = chain_rule(outputs, upstream, variables, engine=engine, **kwargs)
        if engine != "sympy":  # chain_rule's own dispatch: all else is the product rule
            grads[0] = grads[0].copy()
            grads[0].flat[0] = grads[0].flat[0] + upstream.flat[0]
        return grads

    monkeypatch.setattr(derivation, "chain_rule", buggy)
    checks = {c.op: c for c in verify(derive(ConvSpec((3, 3), (2, 2))))}
    assert checks["engines"].holds is False
    assert checks["engines"].detail == "differs at (0, 0, 0)"


def test_reports_that_are_not_checks_carry_their_names():
    checks = {c.op: c for c in verify(derive(ConvSpec((4, 4), (2, 2), bias=False)))}
    db = next(i for i in derive(ConvSpec((4, 4), (2, 2))).layer.identities if i.op == "db")
    spec = ConvSpec((4, 4), (2, 2), bias=False)
    assert (checks["db"].name, checks["db"].latex) == (db.name, db.latex(spec))
    [engines] = [c for c in verify(derive(ConvSpec((16, 16), (3, 3)))) if c.op == "engines"]
    assert engines.name == "product-rule engine agrees with sympy.diff on whole expressions"
    assert engines.latex == ""


def test_engine_check_accepts_an_equal_gradient_written_differently(monkeypatch):
    # A product-rule engine that writes sigmoid's derivative as sigma (1 - sigma): equal to
    # sympy.diff's exp(-z) / (1 + exp(-z))^2, but only simplify can show it.
    import convviz.derivation as derivation
    from convviz.gradients import chain_rule

    def rewritten(outputs, upstream, variables, *, engine="product-rule", **kwargs):
        grads = chain_rule(outputs, upstream, variables, engine=engine, **kwargs)
        if engine == "product-rule":
            (cells,) = variables
            grads[0] = grads[0].copy()
            for pos, z in np.ndenumerate(cells):
                s = 1 / (1 + sympy.exp(-z))
                grads[0][pos] = upstream[pos] * s * (1 - s)
        return grads

    monkeypatch.setattr(derivation, "chain_rule", rewritten)
    d = _sigmoid()
    assert sympy.expand(d.grad_input[0, 0, 0] - derive(
        d.spec, engine="sympy").grad_input[0, 0, 0]) != 0
    checks = {c.op: c for c in verify(d)}
    assert checks["engines"].holds is True, checks["engines"].detail
    assert checks["engines"].detail == ""
    assert checks["da"].holds is True
