"""The plain-NumPy network reference (tests/network_reference.py) checked on its own.

Three kinds of evidence that the reference can be trusted to judge ``convviz evaluate``:

* central finite differences of the reference's own scalar objective (the loss, or
  ``sum(grad_output * output)``) for every input cell, every parameter and every
  intermediate layer output of several small networks covering every layer type and
  option (stride, padding, dilation, rectangular kernels, output_padding, no bias);
* hand-checked tiny cases where the answer is known in closed form, including PyTorch's
  tie rules (max pooling: first maximum in row-major order; ReLU'(0) = 0) that finite
  differences cannot see;
* PyTorch autograd itself, when ``torch`` is importable (skipped otherwise).
"""

from __future__ import annotations

import copy
import math
import tomllib
from typing import Any

import numpy as np
import pytest
from network_reference import (
    avgpool2d_backward,
    avgpool2d_forward,
    build_layers,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    maxpool2d_backward,
    maxpool2d_forward,
    mse_backward,
    mse_forward,
    objective,
    random_values,
    reference_network,
    relu_backward,
    sigmoid_forward,
)

# ------------------------------------------------------------------------- networks
NETWORKS: dict[str, str] = {
    "tiny-cnn": """
        input = "1x6x6"
        [[layer]]
        type = "conv2d"
        filters = 2
        kernel = "3x3"
        [[layer]]
        type = "relu"
        [[layer]]
        type = "maxpool2d"
        kernel = "2x2"
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        outputs = 3
        [[layer]]
        type = "softmax-cross-entropy"
    """,
    "mlp-4-3-2": """
        input = "4"
        [[layer]]
        type = "dense"
        outputs = 3
        [[layer]]
        type = "sigmoid"
        [[layer]]
        type = "dense"
        outputs = 2
        [[layer]]
        type = "softmax-cross-entropy"
    """,
    "xor-2-2-1": """
        input = "2"
        [[layer]]
        type = "dense"
        outputs = 2
        [[layer]]
        type = "sigmoid"
        [[layer]]
        type = "dense"
        outputs = 1
        [[layer]]
        type = "sigmoid"
        [[layer]]
        type = "mse"
    """,
    "avgpool-tanh": """
        input = "2x5x5"
        [[layer]]
        type = "conv2d"
        filters = 2
        kernel = 3
        padding = 1
        [[layer]]
        type = "tanh"
        [[layer]]
        type = "avgpool2d"
        kernel = "3x3"
        stride = 2
        padding = 1
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        outputs = 3
        [[layer]]
        type = "mse"
    """,
    "strided-dilated": """
        input = "2x7x7"
        [[layer]]
        type = "conv2d"
        filters = 3
        kernel = "3x2"
        stride = "2x1"
        padding = "1x0"
        dilation = "1x2"
        [[layer]]
        type = "relu"
        [[layer]]
        type = "maxpool2d"
        kernel = 3
        stride = 1
        padding = 1
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        outputs = 4
        [[layer]]
        type = "softmax-cross-entropy"
    """,
    "conv-transpose-mse": """
        input = "2x3x3"
        [[layer]]
        type = "conv-transpose2d"
        filters = 2
        kernel = 3
        stride = 2
        padding = 1
        output_padding = 1
        [[layer]]
        type = "sigmoid"
        [[layer]]
        type = "avgpool2d"
        kernel = 2
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "mse"
    """,
    "no-loss-no-bias": """
        input = "1x4x5"
        [[layer]]
        type = "conv-transpose2d"
        filters = 2
        kernel = "2x3"
        stride = 1
        dilation = 2
        output_padding = 1
        bias = false
        [[layer]]
        type = "tanh"
        [[layer]]
        type = "conv2d"
        filters = 1
        kernel = 2
        stride = 2
        padding = 1
        bias = false
        [[layer]]
        type = "maxpool2d"
        kernel = "2x1"
        stride = "2x1"
        dilation = "1x1"
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        outputs = 2
        bias = false
    """,
}

TARGETS: dict[str, Any] = {"tiny-cnn": 2, "mlp-4-3-2": 1, "strided-dilated": 3}


def net_of(name: str) -> dict[str, Any]:
    return tomllib.loads("\n".join(line.strip() for line in NETWORKS[name].splitlines()))


def values_of(name: str, seed: int = 0) -> dict[str, Any]:
    return random_values(net_of(name), seed, target=TARGETS.get(name))


# ---------------------------------------------------------------- finite differences
H = 1e-6


def one_sided_differences(f: Any, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Forward and backward differences of ``f`` in every cell of ``arr`` (mutated in
    place and restored), and ``f`` itself."""
    base = f()
    forward, backward = np.zeros_like(arr), np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        keep = arr[idx]
        arr[idx] = keep + H
        up = f()
        arr[idx] = keep - H
        down = f()
        arr[idx] = keep
        forward[idx] = (up - base) / H
        backward[idx] = (base - down) / H
    return forward, backward, base


def check_gradient(analytic: Any, f: Any, arr: np.ndarray) -> int:
    """``analytic`` against differences of ``f``; returns how many kinks were met.

    Where ``f`` is smooth the forward and backward differences agree (to ``H * f''``)
    and the analytic gradient must equal the central difference to 1e-6. Where they
    disagree the cell sits on a kink -- a max-pool tie or a ReLU input of exactly 0,
    which structural zeros (ReLU outputs, output_padding columns without bias) produce
    on purpose -- and PyTorch's convention picks one side: the gradient must then equal
    the forward or the backward difference. (That holds when the perturbed cell reaches
    a single tied window; a cell feeding several tied, overlapping windows can get a
    gradient that is neither side's, so the networks keep structural ties out of
    overlapping windows. The tie rules themselves are checked by hand below.)
    """
    analytic = np.asarray(analytic, dtype=float)
    assert analytic.shape == arr.shape
    forward, backward, _ = one_sided_differences(f, arr)
    central = (forward + backward) / 2
    kinks = np.abs(forward - backward) > 1e-5
    smooth = ~kinks
    np.testing.assert_allclose(analytic[smooth], central[smooth], rtol=1e-6, atol=1e-7)
    for idx in zip(*np.nonzero(kinks), strict=True):
        a = analytic[idx]
        assert any(abs(a - side) <= 1e-5 * (1 + abs(side)) for side in
                   (forward[idx], backward[idx])), (idx, a, forward[idx], backward[idx])
    return int(kinks.sum())


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_gradients_match_central_differences_of_the_loss(name: str) -> None:
    net = net_of(name)
    values = values_of(name)
    ref = reference_network(net, values)
    work = copy.deepcopy(values)
    work["input"] = np.array(work["input"], dtype=float)
    for entry in work["layers"]:
        for key in entry:
            entry[key] = np.array(entry[key], dtype=float)

    def f() -> float:
        return objective(net, work)

    assert ref["loss"] is None or ref["loss"] == pytest.approx(f(), rel=1e-14)
    kinks = check_gradient(ref["input"]["grad"], f, work["input"])
    for k, layer in enumerate(ref["layers"]):
        for key, param in layer["params"].items():
            kinks += check_gradient(param["grad"], f, work["layers"][k][key])
    assert kinks == 0  # random floats: no parameter or input cell sits on a kink


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_layer_output_gradients_match_central_differences(name: str) -> None:
    """``dL/d(output of layer k)``: perturb that output and run the rest of the net."""
    net = net_of(name)
    values = values_of(name, seed=1)
    ref = reference_network(net, values)
    layers = ref["layers"]
    has_loss = ref["loss"] is not None
    for k, layer in enumerate(layers):
        if has_loss and k == len(layers) - 1:
            assert layer["output"]["grad"] == 1.0  # dL/dL
            assert layer["output"]["value"] == pytest.approx(ref["loss"], rel=0)
            continue
        out = np.array(layer["output"]["value"], dtype=float)
        check_gradient(layer["output"]["grad"],
                       lambda: objective(net, values, start=k + 1, x=out), out)  # noqa: B023


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_result_has_evaluate_json_layout(name: str) -> None:
    net = net_of(name)
    values = values_of(name)
    ref = reference_network(net, values)
    assert set(ref) == {"loss", "input", "layers"}
    assert np.shape(ref["input"]["value"]) == np.shape(values["input"])
    assert ref["input"]["grad"].shape == ref["input"]["value"].shape
    assert [layer["type"] for layer in ref["layers"]] == [s["type"] for s in net["layer"]]
    specs = build_layers(net)
    for layer, spec, given in zip(ref["layers"], specs, values["layers"], strict=True):
        assert layer["output"]["value"].shape == spec.out_shape
        assert layer["output"]["grad"].shape == spec.out_shape
        assert set(layer["params"]) == set(given)
        for key, param in layer["params"].items():
            np.testing.assert_array_equal(param["value"], given[key])
            assert param["grad"].shape == param["value"].shape


# ----------------------------------------------------------------- hand-checked cases
def test_maxpool_tie_sends_the_gradient_to_the_first_maximum() -> None:
    x = np.array([[[1.0, 3.0], [3.0, 2.0]]])
    assert maxpool2d_forward(x, (2, 2), (2, 2)).tolist() == [[[3.0]]]
    dx = maxpool2d_backward(x, np.array([[[5.0]]]), (2, 2), (2, 2))
    assert dx.tolist() == [[[0.0, 5.0], [0.0, 0.0]]]
    flat = np.full((1, 2, 2), 7.0)  # all four tied: the top-left cell
    assert maxpool2d_backward(flat, np.array([[[1.0]]]), (2, 2), (2, 2)).tolist() == [
        [[1.0, 0.0], [0.0, 0.0]]
    ]
    column_tie = np.array([[[0.0, 4.0], [0.0, 4.0]]])  # row-major: row 0 before row 1
    assert maxpool2d_backward(column_tie, np.array([[[1.0]]]), (2, 2), (2, 2)).tolist() == [
        [[0.0, 1.0], [0.0, 0.0]]
    ]


def test_maxpool_overlapping_windows_add_their_gradients() -> None:
    x = np.array([[[0.0, 1.0, 0.0], [1.0, 9.0, 1.0], [0.0, 1.0, 0.0]]])
    g = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    assert maxpool2d_forward(x, (2, 2), (1, 1)).tolist() == [[[9.0, 9.0], [9.0, 9.0]]]
    dx = maxpool2d_backward(x, g, (2, 2), (1, 1))
    assert dx.tolist() == [[[0.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 0.0]]]
    # Ties across overlapping windows: each window picks its own first maximum.
    ones = np.ones((1, 3, 3))
    dx = maxpool2d_backward(ones, g, (2, 2), (1, 1))
    assert dx.tolist() == [[[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]]


def test_maxpool_padding_is_minus_infinity_not_zero() -> None:
    x = np.array([[[-3.0, -1.0], [-2.0, -4.0]]])
    # kernel 2, stride 2, padding 1: every window holds one real cell and three pads.
    out = maxpool2d_forward(x, (2, 2), (2, 2), (1, 1))
    assert out.tolist() == [[[-3.0, -1.0], [-2.0, -4.0]]]
    dx = maxpool2d_backward(x, np.array([[[1.0, 2.0], [3.0, 4.0]]]), (2, 2), (2, 2), (1, 1))
    assert dx.tolist() == [[[1.0, 2.0], [3.0, 4.0]]]
    # kernel 3, stride 1, padding 1 over a negative map: corners see 4 real cells.
    out = maxpool2d_forward(x, (3, 3), (1, 1), (1, 1))
    assert out.tolist() == [[[-1.0, -1.0], [-1.0, -1.0]]]


def test_avgpool_counts_padding_as_zeros_and_divides_by_the_full_window() -> None:
    x = np.ones((1, 2, 2))
    out = avgpool2d_forward(x, (2, 2), (2, 2), (1, 1))
    assert out.tolist() == [[[0.25, 0.25], [0.25, 0.25]]]
    dx = avgpool2d_backward(x, np.array([[[4.0, 8.0], [12.0, 16.0]]]), (2, 2), (2, 2), (1, 1))
    assert dx.tolist() == [[[1.0, 2.0], [3.0, 4.0]]]
    x = np.arange(9.0).reshape(1, 3, 3)
    out = avgpool2d_forward(x, (3, 3), (2, 2), (1, 1))
    assert out[0, 0, 0] == pytest.approx((0 + 1 + 3 + 4) / 9, rel=1e-15)
    assert out[0, 1, 1] == pytest.approx((4 + 5 + 7 + 8) / 9, rel=1e-15)


def test_relu_gradient_is_zero_at_exactly_zero() -> None:
    x = np.array([-1.0, 0.0, -0.0, 1e-300, 2.0])
    assert relu_backward(x, np.full(5, 5.0)).tolist() == [0.0, 0.0, 0.0, 5.0, 5.0]
    # The same inside a network: a dense layer whose output is exactly 0.
    net = tomllib.loads(
        'input = "2"\n[[layer]]\ntype = "dense"\noutputs = 2\n'
        '[[layer]]\ntype = "relu"\n[[layer]]\ntype = "mse"\n'
    )
    values = {
        "input": [1.0, 1.0],
        "target": [1.0, 1.0],
        "layers": [{"weight": [[1.0, -1.0], [2.0, 0.0]], "bias": [0.0, -1.0]}, {}, {}],
    }
    ref = reference_network(net, values)
    assert ref["layers"][0]["output"]["value"].tolist() == [0.0, 1.0]
    assert ref["layers"][1]["output"]["grad"].tolist() == [-1.0, 0.0]  # 2(y - t)/2
    assert ref["layers"][0]["output"]["grad"].tolist() == [0.0, 0.0]
    assert ref["loss"] == 0.5


def test_conv2d_by_hand() -> None:
    x = np.arange(9.0).reshape(1, 3, 3)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    out = conv2d_forward(x, w, np.array([0.5]))
    assert out.tolist() == [[[-3.5, -3.5], [-3.5, -3.5]]]  # x[i,j] - x[i+1,j+1] + 0.5
    dx, dw, db = conv2d_backward(x, w, np.ones((1, 2, 2)))
    assert dw.tolist() == [[[[8.0, 12.0], [20.0, 24.0]]]]
    assert dx.tolist() == [[[1.0, 1.0, 0.0], [1.0, 0.0, -1.0], [0.0, -1.0, -1.0]]]
    assert db.tolist() == [4.0]
    # Stride 2 and padding 1 on 3x3 with a 3x3 kernel of ones: 2x2 output of corner sums.
    out = conv2d_forward(x, np.ones((1, 1, 3, 3)), None, (2, 2), (1, 1))
    assert out.tolist() == [[[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]]]
    # Dilation 2: a 2x2 kernel touching the four corners.
    out = conv2d_forward(x, np.ones((1, 1, 2, 2)), None, dilation=(2, 2))
    assert out.tolist() == [[[0 + 2 + 6 + 8]]]


def test_conv_transpose2d_by_hand() -> None:
    x = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    w = np.ones((1, 1, 2, 2))
    full = conv_transpose2d_forward(x, w, None, stride=(2, 2))
    assert full.tolist() == [[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]]
    # padding crops every side; output_padding adds back rows/cols at the bottom/right.
    cropped = conv_transpose2d_forward(x, w, None, stride=(2, 2), padding=(1, 1))
    assert cropped.tolist() == [[[1, 2], [3, 4]]]
    extra = conv_transpose2d_forward(x, w, np.array([10.0]), stride=(2, 2), padding=(1, 1),
                                     output_padding=(1, 1))
    assert extra.tolist() == [[[11, 12, 12], [13, 14, 14], [13, 14, 14]]]
    # output_padding past what the kernel reaches: a column of bias alone.
    wide = conv_transpose2d_forward(x, w, np.array([10.0]), stride=(2, 3),
                                    output_padding=(0, 2))
    assert wide.shape == (1, 4, 7)  # columns: (2-1)*3 + 1*(2-1) + 2 + 1 = 7
    assert wide[0, :, 2].tolist() == [10.0] * 4  # between the two painted column pairs
    assert wide[0, :, 4:].tolist() == [[12, 10, 10], [12, 10, 10], [14, 10, 10], [14, 10, 10]]
    dx, dw, db = conv_transpose2d_backward(x, w, np.ones((1, 3, 3)), stride=(2, 2),
                                           padding=(1, 1), output_padding=(1, 1))
    assert dx.tolist() == [[[1.0, 2.0], [2.0, 4.0]]]  # cells painted inside the output
    assert dw.tolist() == [[[[4.0, 7.0], [6.0, 10.0]]]]
    assert db.tolist() == [9.0]


@pytest.mark.parametrize(
    ("hw", "kernel", "stride", "padding", "dilation"),
    [
        ((5, 5), (3, 3), (2, 2), (1, 1), (1, 1)),
        ((6, 7), (2, 3), (2, 3), (0, 1), (1, 1)),
        ((7, 6), (3, 2), (1, 2), (2, 0), (2, 1)),
    ],
)
def test_conv_transpose2d_is_the_adjoint_of_conv2d(
    hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int], dilation: tuple[int, int],
) -> None:
    """``<conv2d(x; w), y> = <x, conv_transpose2d(y; w)>``, with ``output_padding`` the
    rows/cols the convolution's floor division dropped (PyTorch's documented use)."""
    rng = np.random.default_rng(3)
    C, F = 2, 3
    x = rng.standard_normal((C, *hw))
    w = rng.standard_normal((F, C, *kernel))
    z = conv2d_forward(x, w, None, stride, padding, dilation)
    op = tuple(
        n + 2 * p - d * (k - 1) - 1 - (o - 1) * s
        for n, k, s, p, d, o in zip(
            hw, kernel, stride, padding, dilation, z.shape[1:], strict=True
        )
    )
    y = rng.standard_normal(z.shape)
    back = conv_transpose2d_forward(y, w, None, stride, padding, op, dilation)
    assert back.shape == x.shape
    assert float(np.sum(z * y)) == pytest.approx(float(np.sum(x * back)), rel=1e-12)
    # ... hence conv2d's input gradient is conv_transpose2d, and vice versa.
    np.testing.assert_allclose(conv2d_backward(x, w, y, stride, padding, dilation)[0], back,
                               rtol=1e-12, atol=1e-12)
    dy = conv_transpose2d_backward(y, w, x, stride, padding, op, dilation)[0]
    np.testing.assert_allclose(dy, z, rtol=1e-12, atol=1e-12)


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


@pytest.mark.parametrize(("x0", "x1", "t"), [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_xor_2_2_1_by_hand(x0: int, x1: int, t: int) -> None:
    """Scalar chain rule written out for the 2-2-1 sigmoid/MSE XOR net."""
    W1 = [[20.0, 20.0], [-20.0, -20.0]]
    b1 = [-10.0, 30.0]
    w2 = [20.0, 20.0]
    b2 = -30.0
    x = [float(x0), float(x1)]
    z1 = [W1[k][0] * x[0] + W1[k][1] * x[1] + b1[k] for k in range(2)]
    h = [_sigmoid(v) for v in z1]
    z2 = w2[0] * h[0] + w2[1] * h[1] + b2
    y = _sigmoid(z2)
    loss = (y - t) ** 2  # mean over N = 1
    d_y = 2 * (y - t)
    d_z2 = d_y * y * (1 - y)
    d_h = [d_z2 * w2[k] for k in range(2)]
    d_z1 = [d_h[k] * h[k] * (1 - h[k]) for k in range(2)]
    d_x = [d_z1[0] * W1[0][j] + d_z1[1] * W1[1][j] for j in range(2)]

    net = net_of("xor-2-2-1")
    values = {
        "input": x,
        "target": [float(t)],
        "layers": [{"weight": W1, "bias": b1}, {}, {"weight": [w2], "bias": [b2]}, {}, {}],
    }
    ref = reference_network(net, values)
    assert abs(y - t) < 1e-4  # the weights do solve XOR

    def same(got: Any, want: Any) -> None:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)

    same(ref["loss"], loss)
    same(ref["layers"][3]["output"]["value"], [y])
    same(ref["layers"][3]["output"]["grad"], [d_y])
    same(ref["layers"][2]["output"]["grad"], [d_z2])
    same(ref["layers"][2]["params"]["weight"]["grad"],
                               [[d_z2 * h[0], d_z2 * h[1]]])
    same(ref["layers"][2]["params"]["bias"]["grad"], [d_z2])
    same(ref["layers"][1]["output"]["value"], h)
    same(ref["layers"][1]["output"]["grad"], d_h)
    same(ref["layers"][0]["output"]["grad"], d_z1)
    same(ref["layers"][0]["params"]["weight"]["grad"],
                               [[d_z1[k] * x[j] for j in range(2)] for k in range(2)])
    same(ref["layers"][0]["params"]["bias"]["grad"], d_z1)
    same(ref["input"]["grad"], d_x)


def test_xor_with_zero_weights_literal_numbers() -> None:
    net = net_of("xor-2-2-1")
    values = {
        "input": [1.0, 0.0],
        "target": [1.0],
        "layers": [{"weight": [[0.0, 0.0], [0.0, 0.0]], "bias": [0.0, 0.0]}, {},
                   {"weight": [[0.0, 0.0]], "bias": [0.0]}, {}, {}],
    }
    ref = reference_network(net, values)
    assert ref["loss"] == 0.25  # sigmoid(0) = 1/2, (1/2 - 1)^2
    assert ref["layers"][3]["output"]["grad"].tolist() == [-1.0]
    assert ref["layers"][2]["output"]["grad"].tolist() == [-0.25]
    assert ref["layers"][2]["params"]["weight"]["grad"].tolist() == [[-0.125, -0.125]]
    assert ref["layers"][2]["params"]["bias"]["grad"].tolist() == [-0.25]
    assert ref["layers"][0]["params"]["weight"]["grad"].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert ref["input"]["grad"].tolist() == [0.0, 0.0]


def test_softmax_cross_entropy_is_stable_and_0_based() -> None:
    z = np.array([0.0, 1.0, 2.0])
    expected = math.log(1 + math.e + math.e**2) - 2.0
    assert cross_entropy_forward(z, 2) == pytest.approx(expected, rel=1e-15)
    assert cross_entropy_forward(z + 1000.0, 2) == pytest.approx(expected, rel=1e-12)
    assert cross_entropy_forward(z - 1000.0, 2) == pytest.approx(expected, rel=1e-12)
    g = cross_entropy_backward(z + 1000.0, 0)
    soft = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(g, soft - [1.0, 0.0, 0.0], rtol=1e-12)
    assert abs(g.sum()) < 1e-15
    with pytest.raises(ValueError):
        cross_entropy_forward(z, 3)  # 0-based: classes 0..2


def test_mse_mean_and_other_elementwise_pieces() -> None:
    y, t = np.array([1.0, 2.0]), np.array([0.0, 0.0])
    assert mse_forward(y, t) == 2.5
    assert mse_backward(y, t).tolist() == [1.0, 2.0]
    assert sigmoid_forward(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]
    net = tomllib.loads('input = "2x2x2"\n[[layer]]\ntype = "flatten"\n')
    values = {"input": np.arange(8.0).reshape(2, 2, 2).tolist(), "layers": [{}],
              "grad_output": list(range(8))}
    ref = reference_network(net, values)
    assert ref["loss"] is None
    assert ref["layers"][0]["output"]["value"].tolist() == list(range(8))  # row-major
    assert ref["input"]["grad"].tolist() == np.arange(8.0).reshape(2, 2, 2).tolist()


@pytest.mark.parametrize(
    ("toml", "values_change", "message"),
    [
        ('input = "4"\n[[layer]]\ntype = "mse"\n[[layer]]\ntype = "relu"\n', None, "last"),
        ('input = "1x4x4"\n[[layer]]\ntype = "maxpool2d"\nkernel = 2\npadding = 2\n', None,
         "half"),
        ('input = "1x4x4"\n[[layer]]\ntype = "conv2d"\nkernels = 2\n', None, "unknown"),
        ('input = "1x4x4"\n[[layer]]\ntype = "dense2d"\n', None, "unknown type"),
        ('input = "3"\n[[layer]]\ntype = "dense"\noutputs = 2\n',
         {"layers": [{"weight": [[1.0, 2.0, 3.0]], "bias": [0.0, 0.0]}]}, "shape"),
    ],
)
def test_bad_networks_and_values_are_refused(toml: str, values_change: Any,
                                             message: str) -> None:
    net = tomllib.loads(toml)
    with pytest.raises(ValueError, match=message):
        values = random_values(net, 0)
        if values_change:
            values.update(values_change)
        reference_network(net, values)


def test_conv_transpose2d_refuses_output_padding_not_below_stride_or_dilation() -> None:
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose2d_forward(np.ones((1, 2, 2)), np.ones((1, 1, 2, 2)), None,
                                 stride=(2, 2), output_padding=(2, 0))


# ------------------------------------------------------------------------ PyTorch
TIE_NET = """
    input = "1x6x6"
    [[layer]]
    type = "conv2d"
    filters = 2
    kernel = 3
    [[layer]]
    type = "relu"
    [[layer]]
    type = "maxpool2d"
    kernel = 2
    stride = 1
    [[layer]]
    type = "flatten"
    [[layer]]
    type = "dense"
    outputs = 3
    [[layer]]
    type = "softmax-cross-entropy"
"""


def torch_network(net: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The same network run by PyTorch autograd on a batch of one, float64."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    f64 = torch.float64
    layers = build_layers(net)
    x = torch.tensor(values["input"], dtype=f64, requires_grad=True)
    h = x[None]
    outs, params = [], []
    for layer, entry in zip(layers, values["layers"], strict=True):
        p = {k: torch.tensor(entry[k], dtype=f64, requires_grad=True)
             for k in layer.param_shapes}
        o, kind = layer.opts, layer.type
        if kind == "conv2d":
            h = F.conv2d(h, p["weight"], p.get("bias"), stride=o["stride"],
                         padding=o["padding"], dilation=o["dilation"])
        elif kind == "conv-transpose2d":
            h = F.conv_transpose2d(h, p["weight"], p.get("bias"), stride=o["stride"],
                                   padding=o["padding"], output_padding=o["output_padding"],
                                   dilation=o["dilation"])
        elif kind == "maxpool2d":
            h = F.max_pool2d(h, o["kernel"], o["stride"], o["padding"], o["dilation"])
        elif kind == "avgpool2d":
            h = F.avg_pool2d(h, o["kernel"], o["stride"], o["padding"],
                             ceil_mode=False, count_include_pad=True)
        elif kind == "dense":
            h = F.linear(h, p["weight"], p.get("bias"))
        elif kind == "relu":
            h = torch.relu(h)
        elif kind == "sigmoid":
            h = torch.sigmoid(h)
        elif kind == "tanh":
            h = torch.tanh(h)
        elif kind == "flatten":
            h = torch.nn.Flatten()(h)
        elif kind == "softmax-cross-entropy":
            h = F.cross_entropy(h, torch.tensor([values["target"]]))
        elif kind == "mse":
            h = F.mse_loss(h, torch.tensor(values["target"], dtype=f64)[None])
        else:
            raise AssertionError(kind)
        h.retain_grad()
        outs.append(h)
        params.append(p)
    if layers[-1].type in ("softmax-cross-entropy", "mse"):
        h.backward()
        loss = float(h.detach())
    else:
        h.backward(torch.tensor(values["grad_output"], dtype=f64)[None])
        loss = None

    def unbatch(t: Any) -> np.ndarray:
        arr = t.detach().numpy()
        return arr if arr.ndim == 0 else arr[0]

    return {
        "loss": loss,
        "input": {"value": x.detach().numpy(), "grad": x.grad.numpy()},
        "layers": [
            {"type": layer.type,
             "output": {"value": unbatch(out), "grad": unbatch(out.grad)},
             "params": {k: {"value": t.detach().numpy(), "grad": t.grad.numpy()}
                        for k, t in p.items()}}
            for layer, out, p in zip(layers, outs, params, strict=True)
        ],
    }


def _assert_same(ref: dict[str, Any], other: dict[str, Any]) -> None:
    def same(got: Any, want: Any) -> None:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)

    assert (ref["loss"] is None) == (other["loss"] is None)
    if ref["loss"] is not None:
        same(ref["loss"], other["loss"])
    for part in ("value", "grad"):
        same(ref["input"][part], other["input"][part])
    for a, b in zip(ref["layers"], other["layers"], strict=True):
        assert a["type"] == b["type"]
        for part in ("value", "grad"):
            assert np.shape(a["output"][part]) == np.shape(b["output"][part])
            same(a["output"][part], b["output"][part])
        assert set(a["params"]) == set(b["params"])
        for key in a["params"]:
            for part in ("value", "grad"):
                same(a["params"][key][part], b["params"][key][part])


@pytest.mark.parametrize("name", [*sorted(NETWORKS), "ties"])
def test_reference_matches_torch_autograd(name: str) -> None:
    pytest.importorskip("torch")
    if name == "ties":  # integer data: maxpool ties and relu zeros actually occur
        net = tomllib.loads("\n".join(line.strip() for line in TIE_NET.splitlines()))
        values = random_values(net, 5, integers=(-1, 1), target=1)
    else:
        net, values = net_of(name), values_of(name)
    _assert_same(reference_network(net, values), torch_network(net, values))
