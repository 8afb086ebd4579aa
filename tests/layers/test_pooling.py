"""maxpool2d and avgpool2d against independent references.

References here never use convviz's pooling code: window cells come from index arithmetic
written out below, forward and backward passes from explicit loops that follow PyTorch's
kernels (max pooling pads with -inf and routes a window's gradient to its first maximum
in row-major order; average pooling divides by kh*kw, padding included), and gradients
are also checked by central finite differences.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np
import pytest
import sympy

import convviz.layers.pooling as pooling_module
from convviz.derivation import derive
from convviz.identities import verify
from convviz.layers import layer_type, type_names
from convviz.layers.namespace import NUMERIC
from convviz.layers.pooling import (
    AvgPool2d,
    MaxPool2d,
    first_maximum,
    first_maximum_indicator,
    window_indicators,
)
from convviz.reflection import highlight_map
from convviz.spec import MAX_PRODUCTS, SpecError

MAX = layer_type("maxpool2d")
AVG = layer_type("avgpool2d")


# ------------------------------------------------------------------ independent references
def geometry(spec: Any) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    h, w = spec.input_size
    kh, kw = spec.kernel_size
    sh, sw = spec.stride
    ph, pw = spec.padding
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    return h, w, kh, kw, sh, sw, ph, pw, oh, ow


def window_cells(spec: Any, i: int, j: int) -> list[tuple[int, int]]:
    """0-based input cells of output (i, j), row-major, padding left out."""
    h, w, kh, kw, sh, sw, ph, pw, _, _ = geometry(spec)
    out = []
    for p in range(kh):
        for q in range(kw):
            r, s = i * sh - ph + p, j * sw - pw + q
            if 0 <= r < h and 0 <= s < w:
                out.append((r, s))
    return out


def all_windows(spec: Any) -> list[tuple[int, int, list[tuple[int, int]]]]:
    *_, oh, ow = geometry(spec)
    return [(i, j, window_cells(spec, i, j)) for i in range(oh) for j in range(ow)]


def max_loop(spec: Any, x: np.ndarray) -> np.ndarray:
    """PyTorch's max pooling: -inf padding, strict '>' so the first maximum stays."""
    h, w, kh, kw, sh, sw, ph, pw, oh, ow = geometry(spec)
    out = np.empty((x.shape[0], oh, ow), dtype=object)
    for c in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                best = None
                for p in range(kh):
                    for q in range(kw):
                        r, s = i * sh - ph + p, j * sw - pw + q
                        if 0 <= r < h and 0 <= s < w and (best is None or x[c, r, s] > best):
                            best = x[c, r, s]
                out[c, i, j] = best
    return out


def max_backward_loop(spec: Any, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """PyTorch's max-pooling backward: each window's dp goes to its first maximum."""
    h, w, kh, kw, sh, sw, ph, pw, oh, ow = geometry(spec)
    grad = np.zeros(x.shape, dtype=object)
    grad[...] = 0
    for c in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                best, where = None, None
                for p in range(kh):
                    for q in range(kw):
                        r, s = i * sh - ph + p, j * sw - pw + q
                        if 0 <= r < h and 0 <= s < w and (best is None or x[c, r, s] > best):
                            best, where = x[c, r, s], (c, r, s)
                grad[where] += g[c, i, j]
    return grad


def avg_loop(spec: Any, x: np.ndarray) -> np.ndarray:
    h, w, kh, kw, sh, sw, ph, pw, oh, ow = geometry(spec)
    out = np.zeros((x.shape[0], oh, ow))
    for c in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                total = 0.0
                for p in range(kh):
                    for q in range(kw):
                        r, s = i * sh - ph + p, j * sw - pw + q
                        if 0 <= r < h and 0 <= s < w:
                            total += x[c, r, s]
                out[c, i, j] = total / (kh * kw)
    return out


def avg_backward_loop(spec: Any, g: np.ndarray) -> np.ndarray:
    h, w, kh, kw, sh, sw, ph, pw, oh, ow = geometry(spec)
    grad = np.zeros((g.shape[0], h, w))
    for c in range(g.shape[0]):
        for i in range(oh):
            for j in range(ow):
                for p in range(kh):
                    for q in range(kw):
                        r, s = i * sh - ph + p, j * sw - pw + q
                        if 0 <= r < h and 0 <= s < w:
                            grad[c, r, s] += g[c, i, j] / (kh * kw)
    return grad


def finite_differences(forward: Any, x: np.ndarray, g: np.ndarray, step: float = 1e-6) -> Any:
    """Central differences of L = sum(g * forward(x))."""
    grad = np.zeros_like(x)
    for pos in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[pos] += step
        down[pos] -= step
        grad[pos] = (np.sum(g * forward(up)) - np.sum(g * forward(down))) / (2 * step)
    return grad


def bindings(d: Any, x: np.ndarray, g: np.ndarray, exact: bool) -> dict[Any, Any]:
    number = sympy.Integer if exact else sympy.Float
    values = {d.input[pos]: number(x[pos]) for pos in np.ndindex(x.shape)}
    values.update({d.grad_output[pos]: number(g[pos]) for pos in np.ndindex(g.shape)})
    return values


def evaluate(array: np.ndarray, values: dict[Any, Any]) -> np.ndarray:
    out = np.empty(array.shape, dtype=object)
    for pos, expr in np.ndenumerate(array):
        value = sympy.sympify(expr).xreplace(values)
        assert value.is_Number, f"{expr} did not evaluate: {value}"
        out[pos] = value
    return out


def make(kind: str, **fields: Any) -> Any:
    return (MaxPool2d if kind == "max" else AvgPool2d)(**fields)


# Small layers (evaluated Max of many cells is slow in SymPy, so windows stay small).
SPECS = [
    pytest.param(dict(), id="4x4-k2"),
    pytest.param(dict(input_size=(3, 4), kernel_size=2, stride=1), id="3x4-k2-s1-overlap"),
    pytest.param(dict(input_size=(5, 5), kernel_size=2, stride=2, padding=1), id="5x5-k2-p1"),
    pytest.param(dict(input_size=(5, 4), kernel_size=(1, 3), stride=(2, 1)),
                 id="5x4-k1x3-overlap"),
    pytest.param(dict(input_size=(3, 3), kernel_size=2, stride=1, channels=2),
                 id="2x3x3-k2-s1"),
    pytest.param(dict(input_size=(4, 5), kernel_size=(2, 1), stride=(1, 3), padding=(1, 0)),
                 id="4x5-k2x1-p1x0"),
    # SymPy orders cells by printed name (a[1, 10] before a[1, 9]), not by index
    pytest.param(dict(input_size=(2, 12), kernel_size=2), id="2x12-k2"),
]


@pytest.fixture(scope="module")
def derived() -> Any:
    cache: dict[tuple[str, str], Any] = {}

    def get(kind: str, fields: dict[str, Any]) -> Any:
        key = (kind, repr(sorted(fields.items())))
        if key not in cache:
            cache[key] = derive(make(kind, **fields))
        return cache[key]

    return get


# ----------------------------------------------------------------------------- declarations
def test_declarations() -> None:
    assert {"maxpool2d", "avgpool2d"} <= set(type_names())
    assert (MAX.torch_name, MAX.spec_class, MAX.rank) == ("MaxPool2d", MaxPool2d, 30)
    assert (AVG.torch_name, AVG.spec_class, AVG.rank) == ("AvgPool2d", AvgPool2d, 31)
    assert MaxPool2d.TYPE == "maxpool2d" and AvgPool2d.TYPE == "avgpool2d"
    assert [o.key for o in MAX.options] == ["input", "kernel", "stride", "padding", "layer"]
    assert MAX.op_names == AVG.op_names == ("forward", "da")
    assert MAX.op("da").operands == ("grad_output", "input")
    assert AVG.op("da").operands == ("grad_output",)
    for layer in (MAX, AVG):
        for op in layer.ops:
            assert len(op.operators) == len(op.operands)  # arrays drawn (with target) - 1
            assert op.caption.startswith(r"\text{")
        assert layer.array("input").short == "a" and layer.array("output").short == "p"
        assert layer.array("grad_input").short == "da"
        assert layer.array("grad_output").short == "dp"
    spec = MAX.build({"layer": "3"})
    assert MAX.array("input").symbol(spec) == "a^{[3]}"
    assert MAX.array("output").symbol(spec) == "p^{[3]}"


def test_declaration_imports_no_sympy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, convviz.layers.pooling; "
        "print('sympy' in sys.modules, 'manim' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------------------------ specs
def test_defaults_follow_pytorch() -> None:
    spec = MAX.build({})
    assert spec == MaxPool2d()
    assert (spec.input_size, spec.kernel_size, spec.stride, spec.padding) == (
        (4, 4), (2, 2), (2, 2), (0, 0))
    assert spec.layer == 1 and spec.channels == 1
    assert AvgPool2d(kernel_size=3, input_size=(6, 6)).stride == (3, 3)
    assert MaxPool2d(kernel_size=(3, 2), input_size=(6, 6)).stride == (3, 2)
    assert MAX.build({"kernel": "3", "input": "7x7"}).stride == (3, 3)
    assert MAX.build({"kernel": "3", "stride": "1", "input": "7x7"}).stride == (1, 1)
    assert MaxPool2d(stride=(1, 2)).stride == (1, 2)


@pytest.mark.parametrize(
    ("fields", "output"),
    [
        (dict(input_size=(4, 4)), (2, 2)),
        (dict(input_size=(5, 5)), (2, 2)),  # floor mode drops the last row and column
        (dict(input_size=(7, 5), kernel_size=(3, 2), stride=(2, 1), padding=(1, 1)),
         (4, 6)),
        (dict(input_size=(6, 6), kernel_size=3, stride=1), (4, 4)),
        (dict(input_size=(1, 1), kernel_size=1), (1, 1)),
        (dict(input_size=(3, 3), kernel_size=2, padding=1), (2, 2)),
    ],
)
def test_output_size(fields: dict[str, Any], output: tuple[int, int]) -> None:
    for cls in (MaxPool2d, AvgPool2d):
        spec = cls(**fields)
        assert spec.output_size == output
        assert geometry(spec)[-2:] == output
        assert spec.full_shape("output") == (1, *output)
        assert spec.full_shape("grad_output") == (1, *output)


def test_shapes_drop_a_single_channel() -> None:
    one = MaxPool2d(input_size=(4, 6))
    assert one.full_shape("input") == one.full_shape("grad_input") == (1, 4, 6)
    assert one.display_shape("input") == (4, 6)
    assert one.display_shape("output") == (2, 3)
    three = MAX.build({"input": "3x4x6"})
    assert three.channels == 3
    assert three.full_shape("input") == three.display_shape("input") == (3, 4, 6)
    assert three.display_shape("grad_output") == (3, 2, 3)


def test_describe_and_slug() -> None:
    assert MaxPool2d().describe() == "4x4 input, 2x2 kernel, stride 2"
    assert MaxPool2d().slug() == "4x4_k2x2_s2"
    spec = AVG.build({"input": "3x6x6", "kernel": "3", "stride": "1x2", "padding": "1",
                      "layer": "2"})
    assert spec.describe() == "3x6x6 input, 3x3 kernel, stride 1x2, padding 1"
    assert spec.slug() == "3x6x6_k3x3_s1x2_p1_l2"


def test_products() -> None:
    spec = MaxPool2d(input_size=(6, 6), kernel_size=3, stride=1, channels=2)
    assert spec.products == 2 * 4 * 4 * 9


@pytest.mark.parametrize(
    ("values", "key", "needle"),
    [
        ({"padding": "2"}, "padding", "at most half the kernel size on each axis"),
        ({"kernel": "3", "padding": "1x2", "input": "6x6"}, "padding", "got 1x2"),
        ({"kernel": "5", "input": "4x4"}, "kernel",
         "kernel height (5) is larger than the padded input height (4)"),
        ({"kernel": "2x5", "input": "4x4", "padding": "1x0"}, "kernel",
         "kernel width (5) is larger than the padded input width (4)"),
        ({"stride": "0"}, "stride", "at least 1"),
        ({"kernel": "0"}, "kernel", "at least 1"),
        ({"padding": "-1"}, "padding", "0 or more"),
        ({"input": "4"}, "input", "expected"),
        ({"input": "2x2x2x2"}, "input", "expected"),
        ({"layer": "0"}, "layer", "positive integer"),
        ({"dilation": "2"}, "dilation", "not an option of maxpool2d"),
        ({"input": "64x64x64"}, "input", f"limit {MAX_PRODUCTS:,}"),
    ],
)
def test_spec_errors_name_the_option(values: dict[str, str], key: str, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        MAX.build(values)
    assert info.value.field_name == key
    assert needle in str(info.value)


def test_every_size_field_takes_an_int_or_a_pair() -> None:
    # an int means the same on both axes; lists become tuples (specs are compared and hashed)
    for cls in (MaxPool2d, AvgPool2d):
        spec = cls(input_size=5, kernel_size=[3, 2], stride=[1, 2], padding=1)
        assert (spec.input_size, spec.kernel_size, spec.stride, spec.padding) == (
            (5, 5), (3, 2), (1, 2), (1, 1))
        assert spec.output_size == (5, 3)
        assert spec == cls(input_size=(5, 5), kernel_size=(3, 2), stride=(1, 2),
                           padding=(1, 1))
        assert cls(input_size=[3, 4]).input_size == (3, 4)


@pytest.mark.parametrize("name", ["input_size", "kernel_size", "stride", "padding"])
@pytest.mark.parametrize("value", [(2, 2, 2), (2.0, 2), True, "2"])
def test_malformed_sizes_name_their_field(name: str, value: Any) -> None:
    with pytest.raises(SpecError) as info:
        MaxPool2d(**{name: value})
    assert info.value.field_name == name
    assert "expected an integer or a pair of integers" in str(info.value)


def test_padding_rule_is_pytorchs() -> None:
    assert MaxPool2d(input_size=(4, 4), kernel_size=3, padding=1).padding == (1, 1)
    assert MaxPool2d(input_size=(4, 4), kernel_size=2, padding=1).padding == (1, 1)
    with pytest.raises(SpecError) as info:
        MaxPool2d(input_size=(4, 4), kernel_size=3, padding=2)
    assert info.value.field_name == "padding"
    assert "kernel 3x3 allows up to 1x1" in str(info.value)


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        (dict(channels=0), "channels"),
        (dict(layer=True), "layer"),
        (dict(stride=(1, 0)), "stride"),
        (dict(kernel_size=(2, 2, 2)), "kernel_size"),
        (dict(input_size=(3, 3), kernel_size=4), "kernel_size"),
    ],
)
def test_spec_class_errors(fields: dict[str, Any], name: str) -> None:
    with pytest.raises(SpecError) as info:
        AvgPool2d(**fields)
    assert info.value.field_name == name


def test_windows_follow_index_arithmetic() -> None:
    for fields in (dict(), dict(input_size=(5, 7), kernel_size=(3, 2), stride=(1, 2),
                                padding=(1, 1))):
        spec = MaxPool2d(**fields)
        assert [(ij, list(cells)) for ij, cells in spec.windows()] == [
            ((i, j), cells) for i, j, cells in all_windows(spec)
        ]


# -------------------------------------------------------------------------- forward numbers
@pytest.mark.parametrize("fields", SPECS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_forward_numbers(derived: Any, kind: str, fields: dict[str, Any]) -> None:
    d = derived(kind, fields)
    spec = d.spec
    rng = np.random.default_rng(1)
    x = rng.standard_normal(spec.full_shape("input"))
    g = rng.standard_normal(spec.full_shape("output"))
    expected = max_loop(spec, x).astype(float) if kind == "max" else avg_loop(spec, x)
    symbolic = evaluate(d.output, bindings(d, x, g, exact=False)).astype(float)
    np.testing.assert_allclose(symbolic, expected, rtol=1e-12)
    layer = d.layer
    numeric = layer.forward(NUMERIC, spec, {"input": x})["output"]
    np.testing.assert_allclose(numeric, expected, rtol=1e-12)
    np.testing.assert_allclose(layer.reference(spec, {"input": x}), expected, rtol=1e-12)


def test_avg_coefficient_is_exact() -> None:
    d = derive(AvgPool2d(input_size=(3, 3), kernel_size=3))
    a = d.input
    assert d.output[0, 0, 0] == sympy.Add(*a.flat) * sympy.Rational(1, 9)
    d = derive(AvgPool2d(input_size=(3, 3), kernel_size=2, stride=1, padding=1))
    a, dp = d.input, d.grad_output
    # the corner window holds one input cell, still divided by 4 (count_include_pad=True)
    assert d.output[0, 0, 0] == a[0, 0, 0] / 4 == sympy.Rational(1, 4) * a[0, 0, 0]
    assert d.grad_input[0, 0, 0] == (dp[0, 0, 0] + dp[0, 0, 1] + dp[0, 1, 0] + dp[0, 1, 1]) / 4


def test_max_padding_never_wins() -> None:
    # all inputs negative: a zero-padded maximum would be 0, PyTorch's is the input's
    d = derive(MaxPool2d(input_size=(3, 3), kernel_size=2, padding=1))
    x = -1.0 - np.arange(9, dtype=float).reshape(1, 3, 3)
    g = np.ones(d.spec.full_shape("output"))
    out = evaluate(d.output, bindings(d, x, g, exact=False)).astype(float)
    np.testing.assert_allclose(out, max_loop(d.spec, x).astype(float))
    assert out.max() < 0
    assert d.output[0, 0, 0] == d.input[0, 0, 0]  # the corner window's only cell


# ------------------------------------------------------------------------- backward numbers
@pytest.mark.parametrize("fields", SPECS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_gradient_numbers_at_random_points(derived: Any, kind: str,
                                           fields: dict[str, Any]) -> None:
    d = derived(kind, fields)
    spec = d.spec
    rng = np.random.default_rng(7)
    x = rng.standard_normal(spec.full_shape("input"))  # no ties
    g = rng.standard_normal(spec.full_shape("output"))
    got = evaluate(d.grad_input, bindings(d, x, g, exact=False)).astype(float)
    if kind == "max":
        loop = max_backward_loop(spec, x, g).astype(float)

        def forward(v: np.ndarray) -> np.ndarray:
            return max_loop(spec, v).astype(float)
    else:
        loop = avg_backward_loop(spec, g)

        def forward(v: np.ndarray) -> np.ndarray:
            return avg_loop(spec, v)
    np.testing.assert_allclose(got, loop, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, finite_differences(forward, x, g), rtol=1e-6, atol=1e-6)


TIE_INPUTS = [
    pytest.param(lambda shape, rng: np.zeros(shape, dtype=int), id="all-equal"),
    pytest.param(lambda shape, rng: rng.integers(0, 2, shape), id="zeros-and-ones"),
    pytest.param(lambda shape, rng: rng.integers(-1, 2, shape), id="three-values"),
]


@pytest.mark.parametrize("make_x", TIE_INPUTS)
@pytest.mark.parametrize("fields", SPECS)
def test_ties_go_to_the_first_maximum(derived: Any, fields: dict[str, Any], make_x: Any) -> None:
    d = derived("max", fields)
    spec = d.spec
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = make_x(spec.full_shape("input"), rng)
        g = rng.integers(1, 10, spec.full_shape("output"))
        values = bindings(d, x, g, exact=True)
        got = evaluate(d.grad_input, values)
        assert (got == max_backward_loop(spec, x, g)).all(), (x, got)
        assert (evaluate(d.output, values) == max_loop(spec, x)).all()


def test_all_equal_window_routes_to_its_top_left_cell() -> None:
    d = derive(MaxPool2d())
    x = np.full((1, 4, 4), 5)
    g = np.arange(1, 5).reshape(1, 2, 2)
    got = evaluate(d.grad_input, bindings(d, x, g, exact=True))
    expected = np.zeros((1, 4, 4), dtype=int)
    expected[0, ::2, ::2] = g[0]
    assert (got == expected).all()


def test_overlapping_windows_add_up() -> None:
    d = derive(MaxPool2d(input_size=(3, 3), kernel_size=2, stride=1))
    x = np.zeros((1, 3, 3), dtype=int)
    x[0, 1, 1] = 10  # the centre is in all four windows and wins each
    g = np.array([[[1, 2], [3, 4]]])
    got = evaluate(d.grad_input, bindings(d, x, g, exact=True))
    assert got[0, 1, 1] == 10
    assert (np.delete(got.ravel(), 4) == 0).all()
    assert len(sympy.Add.make_args(d.grad_input[0, 1, 1])) == 4
    avg = derive(AvgPool2d(input_size=(3, 3), kernel_size=2, stride=1))
    assert avg.grad_input[0, 1, 1] == sum(avg.grad_output.flat) / 4


def test_torch_cross_check() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for fields in (dict(), dict(input_size=(3, 4), kernel_size=2, stride=1),
                   dict(input_size=(5, 5), kernel_size=2, stride=2, padding=1)):
        for kind in ("max", "avg"):
            d = derive(make(kind, **fields))
            spec = d.spec
            module = (torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d)(
                spec.kernel_size, spec.stride, spec.padding)
            for x in (rng.integers(0, 2, spec.full_shape("input")),
                      rng.standard_normal(spec.full_shape("input"))):
                g = rng.integers(1, 5, spec.full_shape("output"))
                t = torch.tensor(x[None], dtype=torch.float64, requires_grad=True)
                out = module(t)
                out.backward(torch.tensor(g[None], dtype=torch.float64))
                values = bindings(d, x, g, exact=x.dtype.kind == "i")
                np.testing.assert_allclose(
                    evaluate(d.output, values).astype(float), out.detach().numpy()[0])
                np.testing.assert_allclose(
                    evaluate(d.grad_input, values).astype(float), t.grad.numpy()[0])


# ---------------------------------------------------------------------- refine (tie rule)
@pytest.fixture
def cold_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    # window_indicators remembers the layout of factors per window signature, _before the
    # order per pair of classes, for the whole process: start from empty tables so the
    # comparisons themselves run (and are checked), not answers left by earlier tests
    monkeypatch.setattr(pooling_module, "_LAYOUTS", {})
    monkeypatch.setattr(pooling_module, "_CLASS_ORDER", {})


def assert_built_as_constructed(expr: Any) -> None:
    """Every node of ``expr`` is what its constructor returns for its arguments."""
    for node in sympy.preorder_traversal(expr):
        if not node.args:
            continue
        rebuilt = node.func(*node.args)
        assert node == rebuilt and hash(node) == hash(rebuilt), node
        assert node.args == rebuilt.args, node
        assert node.is_commutative is rebuilt.is_commutative is True, node
        if isinstance(node, sympy.Heaviside):
            assert node.nargs == rebuilt.nargs == sympy.FiniteSet(1, 2), node
        if isinstance(node, sympy.Max):
            assert sympy.Max.make_args(node) == sympy.Max.make_args(rebuilt), node


@pytest.mark.parametrize(
    "window",
    [
        [(1, 1), (1, 2), (2, 1), (2, 2)],
        [(2, 9), (2, 10), (10, 9), (10, 10)],  # row-major order differs from SymPy's
        [(1, 8), (1, 9), (1, 10), (1, 11)],
        [(3, 4), (3, 5)],
        [(7, 7)],
    ],
)
def test_indicator_nodes_equal_sympys_constructors(window: list[tuple[int, int]],
                                                   cold_caches: None) -> None:
    a = sympy.IndexedBase("a", real=True)
    cells = [a[index] for index in window]
    check_indicators(cells, window_indicators(cells))  # compared
    check_indicators(cells, window_indicators(cells))  # remembered for the signature
    shifted = [a[r + 20, s + 20] for r, s in window]  # another window, the same signature
    check_indicators(shifted, window_indicators(shifted))


def sympy_factors(cells: list[Any], n: int) -> list[Any]:
    """The factors of [cells[n] is the first maximum] as SymPy's own ``Mul`` orders them."""
    x, before, after = cells[n], cells[:n], cells[n + 1:]
    expected = []
    if before:
        expected.append(sympy.Heaviside(x - sympy.Max(*before), 0))
    if after:
        expected.append(sympy.Heaviside(x - sympy.Max(*after), 1))
    return list(sympy.Mul(*expected).args) if len(expected) == 2 else expected


def check_indicators(cells: list[Any], factors: list[tuple[Any, ...]]) -> None:
    assert len(factors) == len(cells)
    for n in range(len(cells)):
        got = factors[n]
        assert first_maximum_indicator(cells, n) == got
        assert list(got) == sympy_factors(cells, n)
        for node in got:
            assert_built_as_constructed(node)
            assert node.func(*node.args) == node
            assert hash(node) == hash(node.func(*node.args))
            gap = node.args[0]
            assert gap == gap.func(*gap.args) and gap.args == sympy.Add(*gap.args).args
            (m,) = [t for t in gap.args if t.could_extract_minus_sign()]
            assert m.args == sympy.Mul(*m.args).args
            if isinstance(-m, sympy.Max):
                assert (-m).args == sympy.Max(*(-m).args).args
    assert factors[0] if len(cells) > 1 else factors == [()]


def test_max_arguments_in_sympys_order() -> None:
    rng = np.random.default_rng(5)
    for rank in (2, 3):
        base = sympy.IndexedBase("a^{[2]}", real=True)
        for _ in range(20):
            picks = {tuple(int(v) for v in rng.integers(1, 120, rank)) for _ in range(6)}
            cells = sorted((base[p] for p in picks), key=lambda c: c.indices)
            for got in window_indicators(cells):
                for node in got:
                    (m,) = [t for t in node.args[0].args if t.could_extract_minus_sign()]
                    inner = -m
                    if isinstance(inner, sympy.Max):
                        assert inner.args == tuple(sympy.ordered(inner.args))
                        assert inner == sympy.Max(*reversed(inner.args), evaluate=False)


def test_symbol_windows_do_not_reuse_the_order_learned_for_indexed_cells(
    cold_caches: None,
) -> None:
    # an Indexed window and a Symbol window with the same signature (2, 0, 1): Symbols
    # compare by other rules, so the factor order remembered for the first must not be
    # applied to the second
    a = sympy.IndexedBase("a", real=True)
    c0, c1, c2 = sympy.symbols("c0:3", real=True)
    check_indicators([a[3, 37], a[17, 19], a[29, 35]],
                     window_indicators([a[3, 37], a[17, 19], a[29, 35]]))
    window = [c2, c0, c1]
    factors = window_indicators(window, [c0, c1, c2])
    for n, x in enumerate(window):
        assert list(factors[n]) == sympy_factors(window, n), x


def test_indicators_of_many_windows_equal_sympys_constructors(cold_caches: None) -> None:
    # the order of a cell's two factors is compared once per window signature (the
    # printed order of its cells against their row-major order) and reused: check it
    # against SymPy's constructors over many windows, sharing signatures
    rng = np.random.default_rng(17)
    a = sympy.IndexedBase("a^{[1]}", real=True)
    for _ in range(60):
        size = int(rng.integers(2, 6))
        picks = {tuple(int(v) for v in rng.integers(1, 40, 3)) for _ in range(size)}
        cells = sorted((a[p] for p in picks), key=lambda c: c.indices)
        for n, got in enumerate(window_indicators(cells)):
            want = sympy_factors(cells, n)
            assert list(got) == want
            assert [sympy.srepr(f) for f in got] == [sympy.srepr(f) for f in want]


def test_first_maximum_gradients_are_the_refined_diff(fresh_indicators: Any) -> None:
    # max pooling's own backward rule for a window's Max equals sympy.diff refined, cell by
    # cell, with the window's cells in row-major order
    a = sympy.IndexedBase("a", real=True)
    for window in ([(1, 1), (1, 2), (2, 1), (2, 2)], [(2, 9), (2, 10), (10, 9), (10, 10)],
                   [(3, 4), (3, 5)]):
        cells = [a[index] for index in window]
        node = sympy.Max(*cells)
        got = pooling_module.first_maximum_gradients(node)
        assert got is not None
        assert [cell for cell, _ in got] == cells
        for x, found in got:
            refined = first_maximum(sympy.diff(node, x))
            assert found == refined and sympy.srepr(found) == sympy.srepr(refined)
            assert_built_as_constructed(found)  # products flagged commutative, as Mul does
    assert pooling_module.first_maximum_gradients(a[1, 1] * a[1, 2]) is None
    assert not pooling_module._INDICATORS._open


def test_first_maximum_gradients_take_the_window_order_from_the_max(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    # the Max's arguments are the printed order already: they are not sorted again
    def raising(cell: Any) -> Any:
        raise AssertionError("the window was sorted into printed order again")

    monkeypatch.setattr(pooling_module, "_printed_index", raising)
    a = sympy.IndexedBase("a", real=True)
    cells = [a[2, 9], a[2, 10], a[10, 9], a[10, 10]]
    got = pooling_module.first_maximum_gradients(sympy.Max(*cells))
    assert got is not None
    assert [g for _, g in got] == [first_of(cells, n) for n in range(4)]


def test_window_layout_is_worked_out_once_per_signature(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    calls: list[Any] = []
    original = pooling_module._layout

    def counted(cells: Any, order: Any) -> Any:
        calls.append(order)
        return original(cells, order)

    monkeypatch.setattr(pooling_module, "_layout", counted)
    a = sympy.IndexedBase("a", real=True)
    for r, s in [(1, 1), (3, 3), (5, 1), (7, 7)]:  # one signature: printed = row-major
        cells = [a[r, s], a[r, s + 1], a[r + 1, s], a[r + 1, s + 1]]
        assert list(window_indicators(cells)) == [tuple(sympy_factors(cells, n))
                                                  for n in range(4)]
    assert calls == [(0, 1, 2, 3)]
    # printed names compare as text: a[10, 10] < a[10, 9] < a[2, 10] < a[2, 9]
    cells = [a[2, 9], a[2, 10], a[10, 9], a[10, 10]]
    window_indicators(cells)
    assert calls == [(0, 1, 2, 3), (3, 2, 1, 0)]


def test_window_of_the_very_cells_is_not_hashed_to_find_their_order(
    indexed_hashes: list[Any],
) -> None:
    a = sympy.IndexedBase("a", real=True)
    cells = [a[1, 1], a[1, 2], a[2, 1], a[2, 2]]
    window_indicators(cells)  # the layout, once
    indexed_hashes.clear()
    window_indicators(cells, cells)
    # only the Max nodes' argument sets hash their cells: 3 + 2 + 2 + 3 (cells 1 to 4)
    assert len(indexed_hashes) == 10


def test_window_of_equal_cells_that_are_other_objects_is_found_by_value(
    cold_caches: None,
) -> None:
    from convviz.symbolic import _indexed

    a = sympy.IndexedBase("a", real=True)
    for window in ([(1, 1), (1, 2), (2, 1), (2, 2)], [(2, 9), (2, 10), (10, 9), (10, 10)]):
        cells = [a[index] for index in window]
        printed = list(sympy.Max(*cells).args)
        copies = [_indexed(a, c.indices, c) for c in printed]  # equal, not the same objects
        assert copies == printed and all(c is not p for c, p in zip(copies, printed, strict=True))
        got = window_indicators(cells, copies)
        assert [list(f) for f in got] == [sympy_factors(cells, n) for n in range(4)]


def test_first_maximum_gradients_leave_other_nodes_alone() -> None:
    # Max nodes that are not one array's window, and nodes that are not Max
    for node in (sympy.Max(RA[1, 1], SX), sympy.Max(RA[1, 1], RB[1, 2]),
                 sympy.Max(RA[1, 1], RB[1, 2], RA[2, 2]), sympy.Max(RA[1, 1], 2 * RA[1, 2]),
                 SX, RA[1, 1], sympy.Min(RA[1, 1], RA[1, 2]), sympy.exp(RA[1, 1])):
        assert pooling_module.first_maximum_gradients(node) is None, node


def test_window_cache_is_empty_after_a_derivation() -> None:
    import convviz.layers.pooling as pooling

    derive(MaxPool2d(input_size=(3, 4), kernel_size=2, stride=1))
    derive(MaxPool2d(input_size=(3, 4), kernel_size=2, stride=1), engine="sympy")
    assert not pooling._INDICATORS._open


def test_refined_gradients_hold_no_half() -> None:
    d = derive(MaxPool2d(input_size=(3, 4), kernel_size=2, stride=1))
    for expr in d.grad_input.flat:
        for node in sympy.preorder_traversal(expr):
            if isinstance(node, sympy.Heaviside):
                assert node.args[1] in (sympy.S.Zero, sympy.S.One)
        assert first_maximum(expr) is expr  # already refined
        assert expr == sympy.Add(*(sympy.Mul(*t.args) for t in sympy.Add.make_args(expr)))


def test_refine_reads_the_window_from_max_args(fresh_indicators: Any) -> None:
    a = sympy.IndexedBase("a", real=True)
    dz = sympy.Symbol("dz")
    cells = [a[1, 1], a[1, 2], a[2, 1], a[2, 2]]
    raw = dz * sympy.diff(sympy.Max(*cells), a[1, 2])
    refined = first_maximum(raw)
    assert refined == dz * sympy.Heaviside(a[1, 2] - a[1, 1], 0) * sympy.Heaviside(
        a[1, 2] - sympy.Max(a[2, 1], a[2, 2]), 1)
    two = first_maximum(sympy.diff(sympy.Max(a[3, 1], a[3, 2]), a[3, 1]))
    assert two == sympy.Heaviside(a[3, 1] - a[3, 2], 1)
    with pytest.raises(ValueError, match="window maximum"):
        first_maximum(sympy.Heaviside(a[1, 1] + a[1, 2]))


# --------------------------------------------------------------------------- highlight maps
def display(spec: Any, c: int, r: int, s: int) -> tuple[int, ...]:
    return (c + 1, r + 1, s + 1) if spec.channels > 1 else (r + 1, s + 1)


@pytest.mark.parametrize("fields", SPECS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_forward_highlights(derived: Any, kind: str, fields: dict[str, Any]) -> None:
    d = derived(kind, fields)
    spec = d.spec
    hm = highlight_map(d, "forward")
    expected = {}
    for c in range(spec.channels):
        for i, j, cells in all_windows(spec):
            expected[display(spec, c, i, j)] = {
                "input": tuple(sorted(display(spec, c, r, s) for r, s in cells))}
    assert [s.target.role for s in hm.steps] == ["output"] * len(expected)
    assert {s.target.index: s.highlights for s in hm.steps} == expected
    assert list(hm.arrays) == ["input", "output"]


@pytest.mark.parametrize("fields", SPECS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_input_gradient_highlights(derived: Any, kind: str, fields: dict[str, Any]) -> None:
    d = derived(kind, fields)
    spec = d.spec
    h, w = spec.input_size
    hm = highlight_map(d, "da")
    expected: dict[tuple[int, ...], dict[str, set[tuple[int, ...]]]] = {}
    for c, r, s in itertools.product(range(spec.channels), range(h), range(w)):
        expected[display(spec, c, r, s)] = {"grad_output": set(), "input": set()}
    for c in range(spec.channels):
        for i, j, cells in all_windows(spec):
            for r, s in cells:
                lit = expected[display(spec, c, r, s)]
                lit["grad_output"].add(display(spec, c, i, j))
                if kind == "max" and len(cells) > 1:
                    # the first-maximum test compares the cell with the whole window
                    lit["input"].update(display(spec, c, rr, ss) for rr, ss in cells)
    got = {}
    for step in hm.steps:
        assert step.target.role == "grad_input"
        got[step.target.index] = {role: set(v) for role, v in step.highlights.items()}
    want = {k: {role: v for role, v in lit.items() if v} for k, lit in expected.items()}
    assert got == want
    assert list(hm.arrays) == [*d.layer.op("da").operands, "grad_input"]


def test_da_expression_reads_as_indicators(derived: Any) -> None:
    d = derived("max", {})
    step = highlight_map(d, "da").steps[0]
    assert r"1}[a_{1,1} \ge \max(a_{1,2}, a_{2,1}, a_{2,2})]" in step.expression
    last = highlight_map(d, "da").steps[5]  # a[2,2], last cell of the first window
    assert r"1}[a_{2,2} > \max(a_{1,1}, a_{1,2}, a_{2,1})]" in last.expression


# ------------------------------------------------------------------------------ identities
@pytest.mark.parametrize("fields", SPECS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_identities_hold(derived: Any, kind: str, fields: dict[str, Any]) -> None:
    d = derived(kind, fields)
    checks = verify(d)
    assert [c.op for c in checks] == ["da", "engines"]
    assert all(c.holds is True for c in checks), checks


def test_identity_catches_a_wrong_tie_rule(derived: Any) -> None:
    d = derived("max", {})
    a, dp = d.input, d.grad_output
    wrong = d.grad_input.copy()
    # a[1,1] claiming its window only when strictly larger than the later cells
    wrong[0, 0, 0] = dp[0, 0, 0] * sympy.Heaviside(
        a[0, 0, 0] - sympy.Max(a[0, 0, 1], a[0, 1, 0], a[0, 1, 1]), 0)
    broken = dataclasses.replace(d, arrays={**d.arrays, "grad_input": wrong})
    check = verify(broken, engines=False)[0]
    assert check.holds is False and "(0, 0, 0)" in check.detail


def test_latex_stays_in_the_typst_subset() -> None:
    from convviz.rendering.typst import latex_to_typst

    for layer in (MAX, AVG):
        for spec in (layer.build({}), layer.build({"input": "2x4x4", "padding": "1"})):
            texts = [i.latex(spec) for i in layer.identities]
            texts += [op.caption for op in layer.ops]
            texts += [o for op in layer.ops for o in op.operators]
            texts += [a.label(spec) for a in layer.all_arrays]
            for text in texts:
                assert latex_to_typst(text)


# ------------------------------------------------------- canonical-form helpers, by hand
def assert_identical(got: Any, want: Any) -> None:
    assert got == want
    assert hash(got) == hash(want)
    assert got.args == want.args
    assert sympy.srepr(got) == sympy.srepr(want)
    assert got.is_commutative == want.is_commutative


RA = sympy.IndexedBase("a", real=True)
RB = sympy.IndexedBase("b", real=True)
DZ, DY = sympy.symbols("dz dy")
SX, SY = sympy.symbols("x y")
H_PAIR = sympy.Heaviside(RA[1, 2] - RA[1, 1], 0)
H_LATER = sympy.Heaviside(RA[1, 2] - sympy.Max(RA[2, 1], RA[2, 2]), 1)


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (sympy.Add, [SX, SY]),
        (sympy.Add, [SY, SX]),
        (sympy.Add, [SY, 2 * SX]),
        (sympy.Add, [DZ * H_PAIR, DY * H_LATER]),
        (sympy.Add, [DY * H_LATER, DZ * H_PAIR, RA[3, 3]]),
        (sympy.Add, [SX, 2 * SX]),  # like terms: SymPy combines them
        (sympy.Add, [SX, -SX]),
        (sympy.Add, [SX, sympy.S.One]),  # a number
        (sympy.Add, [SX + SY, SY]),  # a nested sum
        (sympy.Add, [SX]),
        (sympy.Mul, [SX, SY]),
        (sympy.Mul, [SY, SX]),
        (sympy.Mul, [H_LATER, DZ, H_PAIR]),
        (sympy.Mul, [SX, SX]),  # repeated: a power
        (sympy.Mul, [SX, sympy.Integer(2)]),
        (sympy.Mul, [SX, SX**2]),
        (sympy.Mul, [SX, SX * SY]),
        (sympy.Mul, [DZ]),
    ],
)
def test_canonical_is_sympys_constructor(cls: Any, args: list[Any]) -> None:
    assert_identical(pooling_module._canonical(cls, args), cls(*args))


def test_before_is_basic_compare_for_either_order(cold_caches: None) -> None:
    # the answer is remembered per pair of classes only when the class names differ:
    # cells of one class must still be compared one by one; nothing sorts before itself
    pairs = [(RA[1, 1], RA[1, 2]), (RA[2, 1], RA[1, 9]), (SX, SY), (SX, RA[1, 1]),
             (DZ, H_PAIR), (H_PAIR, H_LATER), (RA[1, 1], -sympy.Max(RA[1, 2], RA[2, 2])),
             (SX, SX), (RA[1, 1], RA[1, 1]), (H_PAIR, H_PAIR)]
    for _ in range(2):
        for left, right in pairs:
            for one, other in ((left, right), (right, left)):
                assert pooling_module._before(one, other) is (
                    sympy.Basic.compare(one, other) < 0), (one, other)


@pytest.mark.parametrize(
    ("rest", "n"),
    [
        ([], 0),  # a lone cell: no factor, the indicator 1
        ([DZ], 0),
        ([DZ, DY], 0),
        ([DY, DZ], 0),
        ([], 1),
        ([DZ], 1),
        ([DZ], 2),
        ([DZ, RA[5, 5]], 1),  # one factor sorts before the indicator, one after
        ([RA[5, 5]], 2),
        ([sympy.Integer(2), DZ], 1),  # a number
        ([DZ**2], 1),  # a power
        ([sympy.Heaviside(RB[1, 1] - RB[1, 2], 1)], 1),  # another window's indicator
    ],
)
def test_with_indicator_is_sympys_mul(rest: list[Any], n: int) -> None:
    # n factors: a lone cell, the first of two cells, the middle one of three
    cells = [[RA[4, 4]], [RA[1, 1], RA[1, 2]], [RA[1, 1], RA[1, 2], RA[2, 1]]][n]
    indicator = window_indicators(cells)[n // 2 * 1]
    assert len(indicator) == n
    assert_identical(pooling_module._with_indicator(rest, indicator),
                     sympy.Mul(*rest, *indicator))


def first_of(cells: list[Any], n: int) -> Any:
    """[cells[n] is the first maximum], from SymPy's constructors (row-major cells)."""
    return sympy.Mul(*sympy_factors(cells, n))


@pytest.fixture
def fresh_indicators(monkeypatch: pytest.MonkeyPatch) -> Any:
    # windows left partly refined stay open (by design): keep them out of the module's cache
    cache = pooling_module._WindowIndicators()
    monkeypatch.setattr(pooling_module, "_INDICATORS", cache)
    return cache


def test_first_maximum_rewrites_every_term(fresh_indicators: Any) -> None:
    w1 = [RA[1, 1], RA[1, 2], RA[2, 1], RA[2, 2]]
    w2 = [RA[1, 2], RA[1, 3]]
    raw = (DZ * sympy.diff(sympy.Max(*w1), RA[1, 2])
           + DY * sympy.diff(sympy.Max(*w2), RA[1, 2]) + SX)
    assert_identical(first_maximum(raw),
                     sympy.Add(DZ * first_of(w1, 1), DY * first_of(w2, 0), SX))
    # two of SymPy's indicators in one product: both rewritten
    two = sympy.diff(sympy.Max(*w2), RA[1, 3]) * sympy.diff(sympy.Max(*w1), RA[2, 2])
    assert_identical(first_maximum(two), sympy.Mul(first_of(w2, 1), first_of(w1, 3)))
    assert_identical(first_maximum(DZ * two), sympy.Mul(DZ, first_of(w2, 1), first_of(w1, 3)))
    # the cell may be the later term of the gap
    assert_identical(first_maximum(sympy.Heaviside(RA[1, 2] - RA[1, 1])),
                     sympy.Heaviside(RA[1, 2] - RA[1, 1], 0))


def test_first_maximum_keeps_what_it_does_not_rewrite(fresh_indicators: Any) -> None:
    refined = DZ * H_PAIR * H_LATER
    for expr in (SX, DZ * SX, refined, refined + DY * SX, sympy.S.Zero):
        assert first_maximum(expr) is expr
    mixed = refined + DY * sympy.diff(sympy.Max(RA[3, 1], RA[3, 2]), RA[3, 1])
    assert_identical(first_maximum(mixed),
                     sympy.Add(refined, DY * sympy.Heaviside(RA[3, 1] - RA[3, 2], 1)))


def test_first_maximum_reads_a_gap_in_either_order(fresh_indicators: Any) -> None:
    # SymPy's own Add puts -Max(others) first; an unevaluated a - Max(others) (cell
    # first) or -Max(others) + a is the same window and gets the same indicator
    window = [RA[1, 1], RA[1, 2], RA[2, 1]]
    for n, cell in enumerate(window):
        others = window[:n] + window[n + 1:]
        largest = sympy.Max(*others)
        for gap in (sympy.Add(cell, -largest, evaluate=False),
                    sympy.Add(-largest, cell, evaluate=False)):
            assert sympy.Heaviside(gap).args[0].args == gap.args  # kept as written
            assert_identical(first_maximum(DZ * sympy.Heaviside(gap)),
                             DZ * first_of(window, n))
    pair = sympy.Add(RA[3, 1], -RA[3, 2], evaluate=False)  # two cells: no Max
    assert_identical(first_maximum(sympy.Heaviside(pair)),
                     sympy.Heaviside(RA[3, 1] - RA[3, 2], 1))


@pytest.mark.parametrize(
    "gap",
    [
        RA[1, 1] + RA[1, 2],
        RA[1, 1] - 2 * RA[1, 2],  # coefficient -2, not -1
        SX - RA[1, 2],  # the positive term is no cell
        RA[1, 1] - SX,
        RA[1, 1] - sympy.Max(RA[1, 2], SX),
        RA[1, 1] - RA[1, 2] - RA[1, 3],  # three terms
        RA[1, 1] - RA[1, 2] * RA[1, 3],  # -1 times two cells
        RA[1, 1] - sympy.Max(RA[1, 2], RA[1, 3]) ** 2,
    ],
)
def test_first_maximum_rejects_other_heavisides(gap: Any, fresh_indicators: Any) -> None:
    with pytest.raises(ValueError, match="not the derivative of a window maximum"):
        first_maximum(DZ * sympy.Heaviside(gap))


def test_window_indicators_cache_is_bounded_and_rebuilds() -> None:
    cache = pooling_module._WindowIndicators(size=1)
    w1, w2 = [RA[1, 1], RA[1, 2]], [RA[2, 1], RA[2, 2]]
    assert cache.factors(w1[0], (w1[1],)) == (sympy.Heaviside(w1[0] - w1[1], 1),)
    assert list(cache._open) == [frozenset(w1)]  # w1[1] still to come
    assert cache.factors(w2[1], (w2[0],)) == (sympy.Heaviside(w2[1] - w2[0], 0),)
    assert list(cache._open) == [frozenset(w2)]  # the oldest window dropped beyond size
    # asking again (or after the drop) rebuilds the same factors
    assert cache.factors(w1[0], (w1[1],)) == (sympy.Heaviside(w1[0] - w1[1], 1),)
    assert cache.factors(w1[0], (w1[1],)) == (sympy.Heaviside(w1[0] - w1[1], 1),)
    assert cache.factors(w1[1], (w1[0],)) == (sympy.Heaviside(w1[1] - w1[0], 0),)
    assert not cache._open  # w1 served in full (w2 was dropped when w1 reopened)
    assert cache.factors(w2[0], (w2[1],)) == (sympy.Heaviside(w2[0] - w2[1], 1),)
    assert list(cache._open) == [frozenset(w2)]
    with pytest.raises(ValueError, match="not a pooling window"):
        cache.factors(RA[1, 1], (RB[1, 2],))
    with pytest.raises(ValueError, match="not a pooling window"):
        cache.factors(RA[1, 1], (RA[1, 1],))


# ------------------------------------------------------------------------------ factory
# MAXPOOL2D and AVGPOOL2D are built by _declare at import time, before mutmut switches
# mutants per call: call it again here, with hand-written expectations for every field.
def test_declare_factory_fills_every_field() -> None:
    def forward(*_: Any) -> dict[str, Any]:
        return {}

    def reference(*_: Any) -> Any:
        return None

    def refine(expr: Any) -> Any:
        return expr

    def local_gradients(node: Any) -> Any:
        return None

    ops = pooling_module.MAX_OPS
    identities = pooling_module.AVG_IDENTITIES
    built = pooling_module._declare("pool-x", "PoolX", AvgPool2d, "one line", ops, forward,
                                    identities, reference, 42, refine=refine,
                                    local_gradients=local_gradients)
    assert built.name == "pool-x"
    assert built.torch_name == "PoolX"
    assert built.spec_class is AvgPool2d
    assert built.summary == "one line"
    assert [o.key for o in built.options] == ["input", "kernel", "stride", "padding", "layer"]
    assert [(a.role, a.short) for a in built.arrays] == [("input", "a"), ("output", "p")]
    assert built.ops is ops and built.identities is identities
    assert built.forward is forward and built.reference is reference
    assert built.refine is refine and built.local_gradients is local_gradients
    assert built.rank == 42
    spec = AvgPool2d(input_size=(5, 5), kernel_size=3, padding=1)
    assert built.padding(spec, "input") == (1, 1)
    assert built.padding(spec, "output") == (0, 0)
    assert built.padding(spec, "grad_output") == (0, 0)
    plain = pooling_module._declare("q", "Q", MaxPool2d, "s", ops, forward, identities,
                                    reference, 1)
    assert plain.refine is None and plain.local_gradients is None
    # the declared types, field by field
    assert MAX.summary == ("2-D max pooling, as torch.nn.MaxPool2d (gradient to each "
                           "window's first maximum)")
    assert AVG.summary == ("2-D average pooling, as torch.nn.AvgPool2d (padding counted in "
                           "the mean)")
    assert MAX.refine is first_maximum
    assert MAX.local_gradients is pooling_module.first_maximum_gradients
    assert AVG.refine is None and AVG.local_gradients is None
    assert MAX.forward is pooling_module.max_forward and AVG.forward is pooling_module.avg_forward
    assert MAX.reference is pooling_module.max_reference
    assert AVG.reference is pooling_module.avg_reference


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(kernel_size=0), "kernel_size: sizes must be at least 1, got (0, 0)"),
        (dict(input_size=(0, 3)), "input_size: sizes must be at least 1, got (0, 3)"),
        (dict(input_size=(3, 0), kernel_size=1),
         "input_size: sizes must be at least 1, got (3, 0)"),
        (dict(stride=(1, 0)), "stride: must be at least 1, got (1, 0)"),
        (dict(padding=(0, -1)), "padding: must be 0 or more, got (0, -1)"),
        (dict(padding=2), "padding: must be at most half the kernel size on each axis "
                          "(kernel 2x2 allows up to 1x1), got 2x2"),
        (dict(input_size=(6, 6), kernel_size=(3, 5), padding=(2, 0)),
         "padding: must be at most half the kernel size on each axis "
         "(kernel 3x5 allows up to 1x2), got 2x0"),
        (dict(input_size=(6, 6), kernel_size=(5, 3), padding=(0, 2)),
         "padding: must be at most half the kernel size on each axis "
         "(kernel 5x3 allows up to 2x1), got 0x2"),
        (dict(channels=0), "channels: must be an integer of at least 1, got 0"),
        (dict(channels=1.0), "channels: must be an integer of at least 1, got 1.0"),
        (dict(channels=True), "channels: must be an integer of at least 1, got True"),
        (dict(layer=0), "layer: must be an integer of at least 1, got 0"),
        (dict(layer="2"), "layer: must be an integer of at least 1, got '2'"),
        (dict(input_size=(3, 3), kernel_size=4),
         "kernel_size: kernel height (4) is larger than the padded input height (3)"),
        (dict(input_size=(4, 3), kernel_size=(2, 4)),
         "kernel_size: kernel width (4) is larger than the padded input width (3)"),
        (dict(input_size=(500, 501), kernel_size=1),
         "input_size: layer too large to derive: the forward pass visits 250,500 window "
         "cells (limit 250,000)"),
    ],
)
def test_spec_error_messages(fields: dict[str, Any], message: str) -> None:
    for cls in (MaxPool2d, AvgPool2d):
        with pytest.raises(SpecError) as info:
            cls(**fields)
        assert str(info.value) == message


@pytest.mark.parametrize(
    "fields",
    [
        dict(input_size=(1, 1), kernel_size=1),  # every size at its least
        dict(input_size=(3, 3), kernel_size=2, padding=1),  # padding exactly half
        dict(input_size=(4, 4), kernel_size=(2, 4), padding=(1, 2)),
        dict(input_size=(3, 5), kernel_size=(3, 5)),  # kernel exactly the input
        dict(input_size=(2, 2), kernel_size=4, padding=2),  # ... or the padded input
        dict(input_size=(500, 500), kernel_size=1),  # exactly MAX_PRODUCTS
        dict(input_size=(2, 2), kernel_size=1, channels=1, layer=1),
    ],
)
def test_spec_limits_are_inclusive(fields: dict[str, Any]) -> None:
    spec = MaxPool2d(**fields)
    assert spec.products <= MAX_PRODUCTS
    assert spec.padded_size == tuple(
        n + 2 * p for n, p in zip(spec.input_size, spec.padding, strict=True))


def test_identity_latex_by_hand() -> None:
    grad = r"\frac{\partial \mathcal{L}}{\partial "
    covering = r" = \sum_{(i,j) \text{ covering } (r,s)} "
    one = MaxPool2d()
    assert MAX.identities[0].latex(one) == (
        grad + "a^{[1]}_{r,s}}" + covering + grad + r"p^{[1]}_{i,j}} \, \mathbf{1}[a^{[1]}_{r,s}"
        r" \text{ is the first maximum of window } (i,j)]"
    )
    three = MaxPool2d(input_size=(4, 4), channels=3, layer=2)
    assert MAX.identities[0].latex(three) == (
        grad + "a^{[2]}_{c,r,s}}" + covering + grad + r"p^{[2]}_{c,i,j}} \, "
        r"\mathbf{1}[a^{[2]}_{c,r,s} \text{ is the first maximum of window } (i,j)]"
    )
    avg = AvgPool2d(input_size=(6, 6), kernel_size=(3, 2), layer=4)
    assert AVG.identities[0].latex(avg) == (
        grad + "a^{[4]}_{r,s}}" + covering + r"\frac{1}{6} " + grad + "p^{[4]}_{i,j}}"
    )
    avg3 = AvgPool2d(channels=2)
    assert AVG.identities[0].latex(avg3) == (
        grad + "a^{[1]}_{c,r,s}}" + covering + r"\frac{1}{4} " + grad + "p^{[1]}_{c,i,j}}"
    )


def test_references_by_hand() -> None:
    # 3x3 input, 2x2 kernel, stride 2, padding 1: windows hold 1, 2, 2 and 4 cells
    spec = MaxPool2d(input_size=(3, 3), kernel_size=2, padding=1)
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3)  # all negative: padding must never win
    # windows: {x00}, {x01, x02}, {x10, x20}, {x11, x12, x21, x22}
    assert MAX.reference(spec, {"input": x}).tolist() == [[[-1.0, -2.0], [-4.0, -5.0]]]
    # integers (as nested lists) are read as floats, so -inf padding applies to them too
    ints = (-np.arange(1, 10).reshape(1, 3, 3)).tolist()
    assert MAX.reference(spec, {"input": ints}).tolist() == [[[-1.0, -2.0], [-4.0, -5.0]]]
    assert AVG.reference(AvgPool2d(input_size=(3, 3), kernel_size=2, padding=1),
                         {"input": -x}).tolist() == [[[1 / 4, 5 / 4], [11 / 4, 28 / 4]]]
    # stride 1 (overlap) and a rectangular kernel, two channels, integers in
    spec = MaxPool2d(input_size=(2, 3), kernel_size=(1, 2), stride=1, channels=2)
    x = np.array([[[1, 3, 2], [5, 4, 6]], [[0, 0, 7], [-1, -2, -3]]])
    got = MAX.reference(spec, {"input": x})
    assert got.dtype == np.float64
    assert got.tolist() == [[[3, 3], [5, 6]], [[0, 7], [-1, -2]]]
    avg = AVG.reference(AvgPool2d(input_size=(2, 3), kernel_size=(1, 2), stride=1, channels=2),
                        {"input": x})
    assert avg.tolist() == [[[2, 2.5], [4.5, 5]], [[0, 3.5], [-1.5, -2.5]]]


def test_avg_reference_sums_floats_so_large_integers_do_not_overflow() -> None:
    # four int64 cells of 2**62 sum to 2**64, which wraps to 0 in int64 arithmetic;
    # read as float64 (as the layer's numbers are) their mean is 2**62
    x = np.full((1, 2, 2), 2**62, dtype=np.int64)
    got = AVG.reference(AvgPool2d(input_size=(2, 2)), {"input": x})
    assert got.dtype == np.float64
    assert got.tolist() == [[[2.0**62]]]
    got = AVG.reference(AvgPool2d(input_size=(2, 2)), {"input": x.tolist()})
    assert got.tolist() == [[[2.0**62]]]
