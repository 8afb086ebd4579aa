from __future__ import annotations

import numpy as np
import pytest
import sympy
from references import bind, evaluate, scipy_forward

from convviz.conv import correlate, dilate, output_size, pad, rot180, zero_like

# (C, H, W, F, kh, kw, stride, padding, dilation)
SETTINGS = [
    pytest.param(1, 6, 6, 1, 3, 3, (1, 1), (0, 0), (1, 1), id="seed-6x6-k3"),
    pytest.param(1, 5, 5, 1, 3, 3, (2, 2), (0, 0), (1, 1), id="stride2"),
    pytest.param(1, 6, 6, 1, 3, 3, (2, 2), (0, 0), (1, 1), id="stride2-ragged"),
    pytest.param(1, 5, 5, 1, 3, 3, (1, 1), (1, 1), (1, 1), id="padding1"),
    pytest.param(1, 4, 4, 1, 3, 3, (1, 1), (2, 2), (1, 1), id="padding2"),
    pytest.param(1, 7, 7, 1, 3, 3, (1, 1), (0, 0), (2, 2), id="dilation2"),
    pytest.param(1, 7, 5, 1, 2, 3, (1, 1), (0, 0), (1, 1), id="rect"),
    pytest.param(1, 7, 6, 1, 2, 3, (2, 1), (1, 0), (1, 2), id="rect-mixed-pairs"),
    pytest.param(3, 6, 6, 1, 3, 3, (1, 1), (0, 0), (1, 1), id="C3"),
    pytest.param(1, 6, 6, 4, 3, 3, (1, 1), (0, 0), (1, 1), id="F4"),
    pytest.param(2, 8, 7, 3, 3, 2, (2, 3), (1, 2), (2, 1), id="C2-F3-everything"),
    pytest.param(1, 3, 3, 1, 1, 1, (1, 1), (0, 0), (1, 1), id="1x1-kernel"),
    pytest.param(1, 4, 4, 1, 4, 4, (1, 1), (0, 0), (1, 1), id="kernel-fills-input"),
    pytest.param(2, 9, 9, 2, 3, 3, (3, 3), (2, 2), (3, 3), id="big-steps"),
]
NAMES = ("C", "H", "W", "F", "kh", "kw", "stride", "padding", "dilation")


@pytest.mark.parametrize(NAMES, SETTINGS)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_numeric_matches_scipy(C, H, W, F, kh, kw, stride, padding, dilation, with_bias):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((C, H, W))
    w = rng.standard_normal((F, C, kh, kw))
    b = rng.standard_normal(F) if with_bias else None
    got = correlate(x, w, stride=stride, padding=padding, dilation=dilation, bias=b)
    want = scipy_forward(x, w, b, stride=stride, padding=padding, dilation=dilation)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_seed_example_by_hand():
    # The article's 4x4 test: rows [1,2,3,4], kernel [[0,1],[1,0]] -> every row [3,5,7].
    x = np.tile([1.0, 2.0, 3.0, 4.0], (4, 1))[None]
    w = np.array([[0.0, 1.0], [1.0, 0.0]])[None, None]
    np.testing.assert_array_equal(correlate(x, w)[0], np.tile([3.0, 5.0, 7.0], (3, 1)))


def test_integer_arrays_stay_exact():
    x = np.arange(16).reshape(1, 4, 4)
    w = np.ones((1, 1, 2, 2), dtype=int)
    # window sums of 0..15 laid out row-major: top-left window 0+1+4+5 = 10
    assert correlate(x, w)[0, 0, 0] == 10
    assert correlate(x, w)[0, 2, 2] == 10 + 4 * 10


def _symbolic_arrays(C, H, W, F, kh, kw):
    a, k, b = sympy.IndexedBase("a"), sympy.IndexedBase("W"), sympy.IndexedBase("b")
    x = np.empty((C, H, W), dtype=object)
    for pos in np.ndindex(x.shape):
        x[pos] = a[pos]
    w = np.empty((F, C, kh, kw), dtype=object)
    for pos in np.ndindex(w.shape):
        w[pos] = k[pos]
    bias = np.array([b[f] for f in range(F)], dtype=object)
    return x, w, bias


@pytest.mark.parametrize(NAMES, SETTINGS)
def test_symbolic_evaluates_to_numeric(C, H, W, F, kh, kw, stride, padding, dilation):
    sx, sw, sb = _symbolic_arrays(C, H, W, F, kh, kw)
    z = correlate(sx, sw, stride=stride, padding=padding, dilation=dilation, bias=sb)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(sx.shape)
    w = rng.standard_normal(sw.shape)
    b = rng.standard_normal(sb.shape)
    values = {**bind(sx, x), **bind(sw, w), **bind(sb, b)}
    got = evaluate(z, values)
    want = scipy_forward(x, w, b, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_symbolic_cell_written_out():
    # 1 channel, 3x3 input, 2x2 kernel, no bias: z[0,1] = W00 a01 + W01 a02 + W10 a11 + W11 a12
    sx, sw, _ = _symbolic_arrays(1, 3, 3, 1, 2, 2)
    z = correlate(sx, sw)
    a, k = sympy.IndexedBase("a"), sympy.IndexedBase("W")
    want = (
        k[0, 0, 0, 0] * a[0, 0, 1]
        + k[0, 0, 0, 1] * a[0, 0, 2]
        + k[0, 0, 1, 0] * a[0, 1, 1]
        + k[0, 0, 1, 1] * a[0, 1, 2]
    )
    assert z[0, 0, 1] == want
    assert z.shape == (1, 2, 2)


def test_padding_zeros_vanish_from_symbolic_expressions():
    sx, sw, _ = _symbolic_arrays(1, 3, 3, 1, 3, 3)
    z = correlate(sx, sw, padding=(1, 1))
    a, k = sympy.IndexedBase("a"), sympy.IndexedBase("W")
    # Corner output (0,0): kernel rows/cols 1..2 meet input rows/cols 0..1, the rest is padding.
    want = sympy.Add(*(k[0, 0, p + 1, q + 1] * a[0, p, q] for p in range(2) for q in range(2)))
    assert z[0, 0, 0] == want
    for expr in z.flat:
        assert sympy.S.Zero not in sympy.Add.make_args(expr)
        for term in sympy.Add.make_args(expr):
            assert not isinstance(term, sympy.Number)
            assert len(sympy.Mul.make_args(term)) == 2
    # Centre: full 3x3 window, no padding involved.
    assert len(sympy.Add.make_args(z[0, 1, 1])) == 9


def test_no_bias_differs_from_zero_bias_only_in_form():
    sx, sw, _ = _symbolic_arrays(1, 4, 4, 1, 2, 2)
    zero_bias = np.array([sympy.S.Zero], dtype=object)
    assert np.array_equal(correlate(sx, sw), correlate(sx, sw, bias=zero_bias))


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "bias_shape"),
    [
        pytest.param((1, 4, 4), (1, 2, 2, 2), None, id="channel-mismatch"),
        pytest.param((4, 4), (1, 1, 2, 2), None, id="2d-input"),
        pytest.param((1, 4, 4), (1, 5, 5), None, id="3d-kernel"),
        pytest.param((1, 2, 2), (1, 1, 3, 3), None, id="kernel-too-big"),
        pytest.param((1, 4, 4), (2, 1, 2, 2), (3,), id="bias-mismatch"),
    ],
)
def test_correlate_rejects_bad_shapes(x_shape, w_shape, bias_shape):
    bias = None if bias_shape is None else np.zeros(bias_shape)
    with pytest.raises(ValueError, match="correlate"):
        correlate(np.zeros(x_shape), np.zeros(w_shape), bias=bias)


def test_pad_numeric_and_symbolic():
    x = np.arange(6.0).reshape(1, 2, 3)
    got = pad(x, (1, 2), (0, 1))
    want = np.zeros((1, 3, 6))
    want[0, 1:3, 2:5] = x[0]
    np.testing.assert_array_equal(got, want)
    a = sympy.IndexedBase("a")
    sym = np.array([[a[0, 0]]], dtype=object)
    padded = pad(sym, (1, 1))
    assert padded.shape == (3, 3)
    assert padded[1, 1] == a[0, 0]
    assert all(padded[p] is sympy.S.Zero for p in np.ndindex(3, 3) if p != (1, 1))


def test_dilate_and_rot180():
    x = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(
        dilate(x, (2, 3)), [[1, 0, 0, 2], [0, 0, 0, 0], [3, 0, 0, 4]]
    )
    assert dilate(x, (1, 1)) is x
    np.testing.assert_array_equal(rot180(x), [[4, 3], [2, 1]])
    a = sympy.IndexedBase("a")
    sym = np.array([[a[0], a[1]]], dtype=object)
    spread = dilate(sym, (1, 2))
    assert list(spread[0]) == [a[0], sympy.S.Zero, a[1]]


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation", "expected"),
    [
        pytest.param((6, 6), (3, 3), (1, 1), (0, 0), (1, 1), (4, 4), id="plain"),
        pytest.param((7, 8), (3, 2), (2, 3), (1, 0), (2, 1), (3, 3), id="mixed"),
    ],
)
def test_output_size(size, kernel, stride, padding, dilation, expected):
    assert output_size(size, kernel, stride, padding, dilation) == expected


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "bias_shape", "message"),
    [
        pytest.param((1, 4, 4), (1, 2, 2, 2), None,
                     "correlate: input (1, 4, 4) and kernel (1, 2, 2, 2) do not fit",
                     id="channel-mismatch"),
        pytest.param((4, 4), (1, 1, 2, 2), None,
                     "correlate: input (4, 4) and kernel (1, 1, 2, 2) do not fit", id="2d-input"),
        pytest.param((1, 4, 4), (1, 5, 5), None,
                     "correlate: input (1, 4, 4) and kernel (1, 5, 5) do not fit",
                     id="3d-kernel"),
        pytest.param((1, 2, 3), (1, 1, 3, 3), None, "correlate: kernel larger than padded input",
                     id="kernel-too-tall"),
        pytest.param((1, 3, 2), (1, 1, 3, 3), None, "correlate: kernel larger than padded input",
                     id="kernel-too-wide"),
        pytest.param((1, 4, 4), (2, 1, 2, 2), (3,), "correlate: bias (3,) does not fit 2 filters",
                     id="bias-mismatch"),
        # the channel counts agree, but one of the arrays has the wrong number of axes
        pytest.param((1, 1, 4, 4), (1, 1, 2, 2), None,
                     "correlate: input (1, 1, 4, 4) and kernel (1, 1, 2, 2) do not fit",
                     id="4d-input"),
        pytest.param((1, 4, 4), (2, 1, 2), None,
                     "correlate: input (1, 4, 4) and kernel (2, 1, 2) do not fit",
                     id="3d-kernel-same-channels"),
    ],
)
def test_correlate_errors_say_what_does_not_fit(x_shape, w_shape, bias_shape, message):
    bias = None if bias_shape is None else np.zeros(bias_shape)
    with pytest.raises(ValueError) as caught:
        correlate(np.zeros(x_shape), np.zeros(w_shape), bias=bias)
    assert str(caught.value) == message


def test_symbolic_pad_with_different_margins_on_each_side():
    # (2, 2, 3) cells padded by 1 row on top, none below, 2 columns left, 1 right: (2, 3, 6)
    a = sympy.IndexedBase("a")
    sym = np.empty((2, 2, 3), dtype=object)
    for pos in np.ndindex(sym.shape):
        sym[pos] = a[pos]
    padded = pad(sym, (1, 2), (0, 1))
    assert padded.shape == (2, 3, 6)
    for c, r, s in np.ndindex(padded.shape):
        inside = 1 <= r < 3 and 2 <= s < 5
        if inside:
            assert padded[c, r, s] == a[c, r - 1, s - 2]
        else:
            assert padded[c, r, s] is sympy.S.Zero
    numeric = pad(np.ones((2, 2, 3)), (1, 2), (0, 1))
    np.testing.assert_array_equal(numeric != 0, padded != sympy.S.Zero)


def test_dilate_keeps_leading_axes_and_the_cell_type():
    x = np.arange(1, 7).reshape(2, 1, 3)
    spread = dilate(x, (3, 2))
    assert spread.dtype == x.dtype
    np.testing.assert_array_equal(spread, [[[1, 0, 2, 0, 3]], [[4, 0, 5, 0, 6]]])
    tall = dilate(np.array([[1.5], [2.5]]), (3, 1))
    assert tall.dtype == np.float64
    np.testing.assert_array_equal(tall, [[1.5], [0.0], [0.0], [2.5]])


def test_padding_zeros_are_sympy_zeros_for_symbols_and_numbers_of_the_dtype_otherwise():
    a = sympy.IndexedBase("a")
    sym = np.array([[a[0], a[1]]], dtype=object)
    assert zero_like(sym) is sympy.S.Zero
    spread = dilate(sym, (1, 3))
    assert [spread[0, 1], spread[0, 2]] == [0, 0]
    assert spread[0, 1] is sympy.S.Zero and spread[0, 2] is sympy.S.Zero
    for dtype in (np.float64, np.float32, np.int64):
        zero = zero_like(np.ones(3, dtype=dtype))
        assert type(zero) is dtype
        assert zero == 0
