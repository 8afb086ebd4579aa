from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy
from references import spec_forward

from convviz.derivation import derive
from convviz.layers import layer_type
from convviz.numeric import (
    TOLERANCE,
    NumericCheck,
    _err,
    _heaviside,
    _sample,
    cross_check,
    evaluate,
    evaluate_cells,
    finite_difference_gradients,
    numeric_forward,
    random_point,
    random_values,
    reference_correlate,
)
from convviz.spec import ConvSpec

SPECS = [
    pytest.param(ConvSpec((6, 6), (3, 3)), id="seed-6x6-k3"),
    pytest.param(ConvSpec((5, 5), (3, 3), stride=2, padding=1), id="stride2-padding1"),
    pytest.param(ConvSpec((7, 7), (3, 3), dilation=2), id="dilation2"),
    pytest.param(ConvSpec((7, 6), (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
                 id="rect-mixed"),
    pytest.param(ConvSpec((4, 4), (2, 2), channels=2, filters=3), id="C2-F3"),
    pytest.param(ConvSpec((5, 5), (3, 3), bias=False), id="no-bias"),
]


@pytest.mark.parametrize("spec", SPECS)
def test_cross_check_passes(spec):
    checks = cross_check(derive(spec), seed=7)
    assert len(checks) == (4 if spec.bias else 3)
    for check in checks:
        assert check.passed, check
        assert check.max_error < TOLERANCE


@pytest.mark.parametrize("spec", SPECS)
def test_reference_correlate_matches_scipy(spec):
    point = random_point(spec, seed=11)
    got = reference_correlate(point.input, point.kernel, point.bias, spec)
    want = spec_forward(spec, point.input, point.kernel, point.bias)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_random_point_shapes_and_no_bias():
    spec = ConvSpec((5, 4), (2, 2), channels=2, filters=3, bias=False)
    point = random_point(spec, seed=0)
    assert point.input.shape == (2, 5, 4)
    assert point.kernel.shape == (3, 2, 2, 2)
    assert point.grad_output.shape == (3, 4, 3)
    np.testing.assert_array_equal(point.bias, np.zeros(3))


def test_finite_differences_of_linear_loss_by_hand():
    # 2x2 input, 1x1 kernel w, bias b: z = w a + b, L = sum(G z)
    # => dL/da = w G, dL/dw = sum(G a), dL/db = sum(G)
    spec = ConvSpec((2, 2), (1, 1))
    point = random_point(spec, seed=3)
    fd = finite_difference_gradients(spec, point)
    w, g, a = point.kernel[0, 0, 0, 0], point.grad_output[0], point.input[0]
    np.testing.assert_allclose(fd["input"][0], w * g, atol=1e-9)
    np.testing.assert_allclose(fd["kernel"].ravel(), [np.sum(g * a)], atol=1e-9)
    np.testing.assert_allclose(fd["bias"], [np.sum(g)], atol=1e-9)


def test_evaluate_by_hand():
    spec = ConvSpec((2, 2), (2, 2))
    d = derive(spec)
    point = random_point(spec, seed=4)
    got = evaluate(d, point, ("output", "grad_bias"))
    want = np.sum(point.input[0] * point.kernel[0, 0]) + point.bias[0]
    assert got["output"].shape == (1, 1, 1)
    assert got["output"][0, 0, 0] == pytest.approx(want)
    assert got["grad_bias"][0] == pytest.approx(point.grad_output[0, 0, 0])


def test_cross_check_catches_a_wrong_gradient():
    d = derive(ConvSpec((4, 4), (2, 2)))
    grad = d.grad_kernel.copy()
    grad[0, 0, 1, 1] = grad[0, 0, 1, 1] + d.grad_output[0, 0, 0] * d.input[0, 3, 3]
    checks = {c.name: c for c in cross_check(d.with_arrays(grad_kernel=grad))}
    assert not checks["dL/dW vs finite differences"].passed
    assert checks["dL/da vs finite differences"].passed
    assert checks["forward vs explicit-loop reference"].passed


def _conv_gradients_by_loops(spec, point):
    """dL/da, dL/dW, dL/db of ``L = sum(G * z)`` by explicit loops over the padded input."""
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    x = np.pad(point.input, ((0, 0), (ph, ph), (pw, pw)))
    g, w = point.grad_output, point.kernel
    grad_x, grad_w = np.zeros_like(x), np.zeros_like(w)
    filters, channels, kh, kw = w.shape
    for f, c, i, j in itertools.product(range(filters), range(channels), range(kh), range(kw)):
        for oy, ox in np.ndindex(*g.shape[1:]):
            row, col = oy * sh + i * dh, ox * sw + j * dw
            grad_w[f, c, i, j] += g[f, oy, ox] * x[c, row, col]
            grad_x[c, row, col] += g[f, oy, ox] * w[f, c, i, j]
    grad_x = grad_x[:, ph:ph + point.input.shape[1], pw:pw + point.input.shape[2]]
    return {"input": grad_x, "kernel": grad_w, "bias": g.sum(axis=(1, 2))}


@pytest.mark.parametrize("spec", [
    ConvSpec((6, 5), (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2), channels=2,
             filters=2),
    ConvSpec((5, 5), (3, 3), stride=2, padding=1),
    ConvSpec((7, 7), (3, 3), dilation=2),
    ConvSpec((4, 4), (3, 3), padding=(0, 2)),
])
def test_finite_differences_follow_stride_padding_dilation(spec):
    point = random_point(spec, seed=5)
    fd = finite_difference_gradients(spec, point)
    want = _conv_gradients_by_loops(spec, point)
    for role in ("input", "kernel", "bias"):
        assert fd[role].shape == want[role].shape, role
        np.testing.assert_allclose(fd[role], want[role], atol=1e-8, err_msg=role)


def test_random_point_is_reproducible_and_seeded():
    spec = ConvSpec((3, 3), (2, 2), filters=2)
    first, again = random_point(spec, seed=9), random_point(spec, seed=9)
    for role, value in first.values().items():
        np.testing.assert_array_equal(value, again.values()[role])
    default = random_point(spec)
    np.testing.assert_array_equal(default.input, random_point(spec, seed=0).input)
    assert not np.array_equal(default.input, random_point(spec, seed=1).input)
    assert np.all(first.bias != 0)  # with bias: drawn, not zeros
    assert first.bias.shape == (2,)


def test_heaviside_values():
    # SymPy's H(0) = 1/2 unless told otherwise; PyTorch's ReLU'(0) = 0 is at_zero=0
    assert [_heaviside(v) for v in (-2.0, -1e-300, 0.0, 1e-300, 0.5)] == [
        0.0, 0.0, 0.5, 1.0, 1.0]
    assert _heaviside(0.0, 0) == 0.0
    assert _heaviside(0.0, 1) == 1.0
    assert _heaviside(0.25, 0) == 1.0


def test_evaluate_cells_heaviside_at_zero():
    d = derive(layer_type("relu").build({"input": "2"}))
    z = d.input
    exprs = [sympy.Heaviside(z[0]), sympy.Heaviside(z[0], 0), sympy.Heaviside(z[1], 0),
             sympy.Max(0, z[1]), 3 * z[0] + z[1]]
    got = evaluate_cells(d, {"input": np.array([0.0, -2.0])}, exprs)
    assert got == [0.5, 0.0, 0.0, 0.0, -2.0]
    got = evaluate_cells(d, {"input": np.array([1.5, 2.0]), "kernel": np.ones(3)}, exprs)
    assert got == [1.0, 1.0, 1.0, 2.0, 6.5]


def test_sample_is_everything_or_an_even_spread():
    assert _sample((2, 3), 6) == list(np.ndindex(2, 3))
    assert _sample((2, 3), 100) == list(np.ndindex(2, 3))
    # 20 cells, 5 picks: flat positions 0, 4, 9, 14, 19 (linspace 0..19, truncated)
    assert _sample((4, 5), 5) == [(0, 0), (0, 4), (1, 4), (2, 4), (3, 4)]
    assert _sample((7,), 1) == [(0,)]


def test_cross_check_samples_large_arrays(monkeypatch):
    import convviz.numeric as numeric

    monkeypatch.setattr(numeric, "FD_SAMPLE", 5)
    d = derive(ConvSpec((4, 4), (2, 2)))  # input 16 cells, kernel 4, bias 1
    checks = {c.name: c for c in cross_check(d, seed=2)}
    assert list(checks) == [
        "forward vs explicit-loop reference",
        "dL/da vs finite differences (5 cells sampled)",
        "dL/dW vs finite differences",
        "dL/db vs finite differences",
    ]
    assert all(c.passed for c in checks.values())
    # a wrong first input cell is among the sampled ones (the spread starts at cell 0)
    grad = d.grad_input.copy()
    grad[0, 0, 0] = grad[0, 0, 0] + d.grad_output[0, 0, 0]
    wrong = {c.name: c for c in cross_check(d.with_arrays(grad_input=grad), seed=2)}
    assert not wrong["dL/da vs finite differences (5 cells sampled)"].passed


def test_numeric_check_threshold_and_errors():
    assert NumericCheck("x", TOLERANCE / 2).passed
    assert not NumericCheck("x", TOLERANCE).passed
    assert _err(np.array([1.0, -2.0]), np.array([1.5, 1.0])) == 3.0
    assert _err(np.zeros(0), np.zeros(0)) == 0.0


def test_random_values_by_declaration():
    relu = derive(layer_type("relu").build({"input": "2x3"}))
    values = random_values(relu, seed=4)
    assert sorted(values) == ["grad_output", "input"]
    assert values["input"].shape == values["grad_output"].shape == (1, 2, 3)
    assert not np.array_equal(values["input"], values["grad_output"])
    again = random_values(relu, seed=4)
    np.testing.assert_array_equal(values["input"], again["input"])
    assert not np.array_equal(random_values(relu, seed=5)["input"], values["input"])
    nobias = derive(ConvSpec((3, 3), (2, 2), filters=2, bias=False))
    values = random_values(nobias)
    assert values["bias"].tolist() == [0.0, 0.0]
    assert values["kernel"].shape == (2, 1, 2, 2) and np.all(values["kernel"] != 0)
    assert values["grad_output"].shape == (2, 2, 2)


def test_numeric_forward_on_floats_ignores_the_upstream():
    relu = derive(layer_type("relu").build({"input": "3"}))
    out = numeric_forward(relu, {"input": [-1, 0, 2], "grad_output": None})
    assert out.dtype == np.float64
    assert out.tolist() == [0.0, 0.0, 2.0]


def test_evaluate_cells_skips_roles_the_layer_does_not_have():
    d = derive(layer_type("relu").build({"input": "2"}))
    values = {"kernel": np.ones(3), "input": np.array([1.5, -2.0]), "weight": np.ones(2)}
    assert evaluate_cells(d, values, [d.input[0] - d.input[1]]) == [3.5]


def test_seeds_default_to_zero_and_change_the_point():
    d = derive(ConvSpec((3, 3), (2, 2)))
    values = random_values(d)
    for role, value in random_values(d, seed=0).items():
        np.testing.assert_array_equal(values[role], value)
    assert cross_check(d) == cross_check(d, seed=0)
    assert cross_check(d, seed=3) == cross_check(d, seed=3)
    first = [c.max_error for c in cross_check(d, seed=0)]
    assert first != [c.max_error for c in cross_check(d, seed=1)]
