"""Property tests: on random valid layers, symbolic results evaluate to numeric references."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from references import bind, evaluate, finite_differences, random_values, spec_forward

from convviz.derivation import derive
from convviz.spec import ConvSpec

pair = st.tuples


@st.composite
def specs(draw):
    """Valid layers built directly: the input is sized to fit the dilated, padded kernel."""
    kernel = draw(pair(st.integers(1, 3), st.integers(1, 3)))
    dilation = draw(pair(st.integers(1, 2), st.integers(1, 2)))
    padding = draw(pair(st.integers(0, 2), st.integers(0, 2)))
    stride = draw(pair(st.integers(1, 2), st.integers(1, 2)))
    size = []
    for axis in range(2):
        # the dilated kernel spans at most 5 cells, so the range is never empty
        span = dilation[axis] * (kernel[axis] - 1) + 1
        size.append(draw(st.integers(max(1, span - 2 * padding[axis]), 7)))
    return ConvSpec(
        input_size=(size[0], size[1]),
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        channels=draw(st.integers(1, 2)),
        filters=draw(st.integers(1, 2)),
        bias=draw(st.booleans()),
    )


SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(specs(), st.integers(0, 2**16))
def test_symbolic_forward_evaluates_to_scipy(spec, seed):
    d = derive(spec)
    x, w, b, _ = random_values(spec, seed)
    values = {**bind(d.input, x), **bind(d.kernel, w), **bind(d.bias, b)}
    got = evaluate(d.output, values)
    np.testing.assert_allclose(got, spec_forward(spec, x, w, b), atol=1e-10)


@SETTINGS
@given(specs(), st.integers(0, 2**16))
def test_symbolic_gradients_evaluate_to_finite_differences(spec, seed):
    d = derive(spec)
    x, w, b, g = random_values(spec, seed)
    values = {**bind(d.input, x), **bind(d.kernel, w), **bind(d.bias, b),
              **bind(d.grad_output, g)}
    fd = finite_differences(spec, x, w, b, g)
    np.testing.assert_allclose(evaluate(d.grad_kernel, values), fd["kernel"], atol=1e-6)
    np.testing.assert_allclose(evaluate(d.grad_input, values), fd["input"], atol=1e-6)
    if spec.bias:
        np.testing.assert_allclose(evaluate(d.grad_bias, values), fd["bias"], atol=1e-6)
