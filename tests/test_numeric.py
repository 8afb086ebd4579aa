from __future__ import annotations

import numpy as np
import pytest
from references import spec_forward

from convviz.derivation import derive
from convviz.numeric import (
    TOLERANCE,
    cross_check,
    evaluate,
    finite_difference_gradients,
    random_point,
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
