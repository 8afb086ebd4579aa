from __future__ import annotations

import numpy as np
import pytest
import sympy
from references import bind, evaluate, finite_differences, random_values

from convviz.derivation import derive
from convviz.gradients import chain_rule, partial
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
