"""conv-transpose2d (torch.nn.ConvTranspose2d) against independent references.

The references here are written from the definition, output cell by output cell: output
``(o, y, x)`` receives ``a[c, i, j] W[c, o, p, q]`` exactly when ``y = i s - pad + p d`` and
``x = j s - pad + q d``; they solve that relation for ``i`` (and ``j``) by division, unlike
the layer, which scatters input cell by input cell. Gradients are central finite
differences of ``L = sum(G * z)`` through that loop.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import sympy
from references import bind, evaluate, scipy_forward

from convviz.derivation import derive
from convviz.highlights import Cell
from convviz.identities import verify
from convviz.layers import layer_type
from convviz.layers.conv_transpose2d import (
    CONV_TRANSPOSE2D,
    ConvTranspose2d,
    GatherView,
    scatter_pairs,
    scatter_targets,
)
from convviz.layers.namespace import NUMERIC
from convviz.reflection import highlight_map
from convviz.spec import MAX_PRODUCTS, SpecError

SPECS = [
    pytest.param(ConvTranspose2d(), id="default-3x3-k3"),
    pytest.param(ConvTranspose2d((3, 3), (3, 3), stride=2), id="stride2"),
    pytest.param(ConvTranspose2d((3, 3), (3, 3), stride=2, output_padding=1), id="stride2-op1"),
    pytest.param(ConvTranspose2d((4, 4), (4, 4), stride=2, padding=1), id="k4-s2-p1"),
    pytest.param(ConvTranspose2d((3, 3), (2, 2), dilation=2, output_padding=1),
                 id="dilation2-op1"),
    pytest.param(ConvTranspose2d((3, 4), (2, 3), stride=(2, 1), padding=(1, 0),
                                 output_padding=(1, 0)), id="rect"),
    pytest.param(ConvTranspose2d((2, 3), (2, 2), stride=2, channels=2, filters=3), id="C2-F3"),
    pytest.param(ConvTranspose2d((3, 3), (2, 2), stride=2, bias=False), id="no-bias"),
    pytest.param(ConvTranspose2d((4, 4), (1, 2), padding=1), id="padding-beyond-kernel"),
    pytest.param(ConvTranspose2d((3, 3), (2, 2), stride=3), id="gaps"),
    pytest.param(ConvTranspose2d((3, 2), (2, 3), stride=(2, 3), padding=1,
                                 output_padding=(1, 2), dilation=(2, 1), channels=2,
                                 filters=2), id="everything"),
]


# ------------------------------------------------------------------ references
def sources(spec: ConvTranspose2d, axis: int, y: int) -> list[tuple[int, int]]:
    """0-based ``(i, p)`` with ``y = i s - pad + p d`` on ``axis``, solved for ``i``."""
    s, pad, d = spec.stride[axis], spec.padding[axis], spec.dilation[axis]
    out = []
    for p in range(spec.kernel_size[axis]):
        offset = y + pad - p * d
        if offset % s == 0 and 0 <= offset // s < spec.input_size[axis]:
            out.append((offset // s, p))
    return out


def loop_forward(spec: ConvTranspose2d, x: Any, w: Any, b: Any) -> np.ndarray:
    oh, ow = spec.output_size
    out = np.zeros((spec.filters, oh, ow))
    for o in range(spec.filters):
        for y in range(oh):
            for xx in range(ow):
                total = b[o] if spec.bias else 0.0
                for c in range(spec.channels):
                    for i, p in sources(spec, 0, y):
                        for j, q in sources(spec, 1, xx):
                            total += x[c, i, j] * w[c, o, p, q]
                out[o, y, xx] = total
    return out


def random_values(spec: ConvTranspose2d, seed: int) -> tuple[Any, Any, Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((spec.channels, *spec.input_size))
    w = rng.standard_normal((spec.channels, spec.filters, *spec.kernel_size))
    b = rng.standard_normal(spec.filters) if spec.bias else np.zeros(spec.filters)
    g = rng.standard_normal((spec.filters, *spec.output_size))
    return x, w, b, g


def finite_differences(spec: ConvTranspose2d, x: Any, w: Any, b: Any, g: Any,
                       step: float = 1e-4) -> dict[str, np.ndarray]:
    def loss(values: dict[str, Any]) -> float:
        return float(np.sum(g * loop_forward(spec, values["input"], values["kernel"],
                                             values["bias"])))

    values = {"input": x, "kernel": w, "bias": b}
    grads = {}
    for name, base in values.items():
        grad = np.zeros_like(base)
        for pos in np.ndindex(base.shape):
            moved = {k: v.copy() for k, v in values.items()}
            moved[name][pos] += step
            up = loss(moved)
            moved[name][pos] -= 2 * step
            grad[pos] = (up - loss(moved)) / (2 * step)
        grads[name] = grad
    return grads


# Display indices (1-based; size-1 channel / filter axes dropped), written out by hand.
def in_disp(spec: ConvTranspose2d, c: int, i: int, j: int) -> tuple[int, ...]:
    return ((c + 1,) if spec.channels > 1 else ()) + (i + 1, j + 1)


def w_disp(spec: ConvTranspose2d, c: int, o: int, p: int, q: int) -> tuple[int, ...]:
    lead = ((c + 1,) if spec.channels > 1 else ()) + ((o + 1,) if spec.filters > 1 else ())
    return (*lead, p + 1, q + 1)


def out_disp(spec: ConvTranspose2d, o: int, y: int, x: int) -> tuple[int, ...]:
    return ((o + 1,) if spec.filters > 1 else ()) + (y + 1, x + 1)


def b_disp(spec: ConvTranspose2d, o: int) -> tuple[int, ...]:
    return (o + 1,) if spec.filters > 1 else ()


def all_values(d: Any, x: Any, w: Any, b: Any, g: Any) -> dict[Any, float]:
    return {**bind(d.input, x), **bind(d.kernel, w), **bind(d.bias, b),
            **bind(d.grad_output, g)}


def term_sets(step: Any) -> set[frozenset[Cell]]:
    return {frozenset(term) for term in step.terms}


# ---------------------------------------------------------------------- numbers
@pytest.mark.parametrize("spec", SPECS)
def test_forward_matches_explicit_loop(spec):
    d = derive(spec)
    x, w, b, g = random_values(spec, seed=1)
    got = evaluate(d.output, all_values(d, x, w, b, g))
    np.testing.assert_allclose(got, loop_forward(spec, x, w, b), atol=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_numeric_forward_and_reference_match_explicit_loop(spec):
    x, w, b, _ = random_values(spec, seed=2)
    arrays = {"input": x, "kernel": w, "bias": b}
    want = loop_forward(spec, x, w, b)
    numeric = CONV_TRANSPOSE2D.forward(NUMERIC, spec, arrays)
    np.testing.assert_allclose(numeric["output"], want, atol=1e-12)
    assert CONV_TRANSPOSE2D.reference is not None
    np.testing.assert_allclose(CONV_TRANSPOSE2D.reference(spec, arrays), want, atol=1e-12)
    # what every input cell spreads adds up to the output without its bias
    bias = b[:, None, None] if spec.bias else 0.0
    np.testing.assert_allclose(numeric["scatter"].sum(), (want - bias).sum(), atol=1e-10)


@pytest.mark.parametrize("spec", SPECS)
def test_forward_matches_torch(spec):
    torch = pytest.importorskip("torch")
    x, w, b, _ = random_values(spec, seed=4)
    got = torch.nn.functional.conv_transpose2d(
        torch.tensor(x)[None], torch.tensor(w), torch.tensor(b) if spec.bias else None,
        stride=spec.stride, padding=spec.padding, output_padding=spec.output_padding,
        dilation=spec.dilation,
    )[0].numpy()
    layer = torch.nn.ConvTranspose2d(spec.channels, spec.filters, spec.kernel_size,
                                     stride=spec.stride, padding=spec.padding,
                                     output_padding=spec.output_padding,
                                     dilation=spec.dilation, bias=spec.bias)
    assert tuple(layer.weight.shape) == spec.full_shape("kernel")
    assert got.shape == spec.full_shape("output")
    np.testing.assert_allclose(got, loop_forward(spec, x, w, b), atol=1e-10)
    d = derive(spec)
    np.testing.assert_allclose(evaluate(d.output, all_values(d, x, w, b, got)), got,
                               atol=1e-10)


@pytest.mark.parametrize("spec", SPECS)
def test_loop_is_the_adjoint_of_conv2d(spec):
    # PyTorch defines the transposed convolution as the input gradient of the conv2d with
    # the same kernel, stride, padding and dilation (weight (C, F, kh, kw) maps F channels
    # onto C): <conv2d(u), v> = <u, conv_transpose2d(v)>, conv2d by scipy.
    rng = np.random.default_rng(6)
    _, w, _, _ = random_values(spec, seed=6)
    u = rng.standard_normal((spec.filters, *spec.output_size))
    v = rng.standard_normal((spec.channels, *spec.input_size))
    h, wd = spec.input_size
    conv = scipy_forward(u, w, None, stride=spec.stride, padding=spec.padding,
                         dilation=spec.dilation)[:, :h, :wd]
    assert conv.shape == v.shape
    transposed = loop_forward(spec, v, w, np.zeros(spec.filters))
    assert np.isclose(np.sum(conv * v), np.sum(u * transposed), atol=1e-10)


def test_hand_checked_2x2():
    d = derive(ConvTranspose2d((2, 2), (2, 2)))
    a, W, b = d.bases["input"], d.bases["kernel"], d.bases["bias"]
    z = d.output[0]
    assert z.shape == (3, 3)
    assert z[0, 0] == a[1, 1] * W[1, 1] + b
    assert z[0, 1] == a[1, 1] * W[1, 2] + a[1, 2] * W[1, 1] + b
    assert z[1, 1] == a[1, 1] * W[2, 2] + a[1, 2] * W[2, 1] + a[2, 1] * W[1, 2] \
        + a[2, 2] * W[1, 1] + b
    assert z[2, 2] == a[2, 2] * W[2, 2] + b


def test_hand_checked_stride2_gap_cells_hold_only_the_bias():
    # 2x2 input, 1x1 kernel, stride 2: the input cells land on (0,0),(0,2),(2,0),(2,2).
    d = derive(ConvTranspose2d((2, 2), (1, 1), stride=2))
    a, W, b = d.bases["input"], d.bases["kernel"], d.bases["bias"]
    z = d.output[0]
    assert z.shape == (3, 3)
    assert z[2, 0] == a[2, 1] * W[1, 1] + b
    assert z[1, 1] == b and z[0, 1] == b


@pytest.mark.parametrize("spec", SPECS)
def test_gradients_match_finite_differences(spec):
    d = derive(spec)
    x, w, b, g = random_values(spec, seed=3)
    values = all_values(d, x, w, b, g)
    fd = finite_differences(spec, x, w, b, g)
    np.testing.assert_allclose(evaluate(d.grad_input, values), fd["input"], atol=1e-6)
    np.testing.assert_allclose(evaluate(d.grad_kernel, values), fd["kernel"], atol=1e-6)
    if spec.bias:
        np.testing.assert_allclose(evaluate(d.grad_bias, values), fd["bias"], atol=1e-6)
    else:
        assert all(v is sympy.S.Zero for v in d.grad_bias.flat)


# ---------------------------------------------------------------- highlight maps
@pytest.mark.parametrize("spec", SPECS)
def test_forward_map_lights_exactly_the_landing_products(spec):
    hm = highlight_map(derive(spec), "forward")
    oh, ow = spec.output_size
    steps = iter(hm.steps)
    for o in range(spec.filters):
        for y in range(oh):
            for x in range(ow):
                step = next(steps)
                assert step.target == Cell("output", out_disp(spec, o, y, x))
                want = {
                    frozenset((Cell("input", in_disp(spec, c, i, j)),
                               Cell("kernel", w_disp(spec, c, o, p, q))))
                    for c in range(spec.channels)
                    for i, p in sources(spec, 0, y)
                    for j, q in sources(spec, 1, x)
                }
                if spec.bias:
                    want.add(frozenset((Cell("bias", b_disp(spec, o)),)))
                assert term_sets(step) == want, step.target
                assert set(step.highlights.get("input", ())) == {
                    c.index for t in want for c in t if c.role == "input"}
                assert set(step.highlights.get("kernel", ())) == {
                    c.index for t in want for c in t if c.role == "kernel"}
    assert next(steps, None) is None


@pytest.mark.parametrize("spec", SPECS)
def test_scatter_map_steps_input_cell_by_input_cell(spec):
    hm = highlight_map(derive(spec), "forward-scatter")
    oh, ow = spec.output_size
    steps = iter(hm.steps)
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    for c in range(spec.channels):
        for i in range(spec.input_size[0]):
            for j in range(spec.input_size[1]):
                step = next(steps)
                index = in_disp(spec, c, i, j)
                assert step.target == Cell("scatter", index)
                pairs = []
                for o in range(spec.filters):
                    for p in range(spec.kernel_size[0]):
                        for q in range(spec.kernel_size[1]):
                            y, x = i * sh - ph + p * dh, j * sw - pw + q * dw
                            if 0 <= y < oh and 0 <= x < ow:
                                pairs.append((w_disp(spec, c, o, p, q), out_disp(spec, o, y, x)))
                want = {frozenset((Cell("input", index), Cell("kernel", k))) for k, _ in pairs}
                assert term_sets(step) == want, index
                if pairs:
                    assert step.highlights["input"] == (index,)
                assert set(step.highlights.get("kernel", ())) == {k for k, _ in pairs}
                assert scatter_pairs(spec, index) == pairs
                assert scatter_targets(spec, index) == sorted({t for _, t in pairs})
    assert next(steps, None) is None


def test_scatter_targets_by_hand():
    # 3x3 input, 3x3 kernel, stride 2, padding 1 -> 5x5 output; a[1,1] (1-based) lands on
    # the 2x2 top-left block (its kernel's first row and column are cropped).
    spec = ConvTranspose2d((3, 3), (3, 3), stride=2, padding=1)
    assert spec.output_size == (5, 5)
    assert scatter_targets(spec, (1, 1)) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert [k for k, _ in scatter_pairs(spec, (1, 1))] == [(2, 2), (2, 3), (3, 2), (3, 3)]
    assert scatter_targets(spec, (2, 2)) == [(r, c) for r in (2, 3, 4) for c in (2, 3, 4)]


@pytest.mark.parametrize("spec", SPECS)
def test_da_map_is_a_correlation_of_dz_with_the_kernel(spec):
    hm = highlight_map(derive(spec), "da")
    oh, ow = spec.output_size
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    steps = iter(hm.steps)
    for c in range(spec.channels):
        for i in range(spec.input_size[0]):
            for j in range(spec.input_size[1]):
                step = next(steps)
                assert step.target == Cell("grad_input", in_disp(spec, c, i, j))
                want = set()
                for o in range(spec.filters):
                    for p in range(spec.kernel_size[0]):
                        for q in range(spec.kernel_size[1]):
                            y, x = i * sh - ph + p * dh, j * sw - pw + q * dw
                            if 0 <= y < oh and 0 <= x < ow:
                                want.add(frozenset((Cell("kernel", w_disp(spec, c, o, p, q)),
                                                    Cell("grad_output", out_disp(spec, o, y, x)))))
                assert term_sets(step) == want
    assert next(steps, None) is None


@pytest.mark.parametrize("spec", SPECS)
def test_dw_map_pairs_inputs_with_the_dz_they_landed_on(spec):
    hm = highlight_map(derive(spec), "dw")
    oh, ow = spec.output_size
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    steps = iter(hm.steps)
    for c in range(spec.channels):
        for o in range(spec.filters):
            for p in range(spec.kernel_size[0]):
                for q in range(spec.kernel_size[1]):
                    step = next(steps)
                    assert step.target == Cell("grad_kernel", w_disp(spec, c, o, p, q))
                    want = set()
                    for i in range(spec.input_size[0]):
                        for j in range(spec.input_size[1]):
                            y, x = i * sh - ph + p * dh, j * sw - pw + q * dw
                            if 0 <= y < oh and 0 <= x < ow:
                                want.add(frozenset((Cell("input", in_disp(spec, c, i, j)),
                                                    Cell("grad_output", out_disp(spec, o, y, x)))))
                    assert term_sets(step) == want
    assert next(steps, None) is None


@pytest.mark.parametrize("spec", [s for s in SPECS if s.values[0].bias])
def test_db_map_sums_each_output_channel(spec):
    hm = highlight_map(derive(spec), "db")
    oh, ow = spec.output_size
    assert len(hm.steps) == spec.filters
    for o, step in enumerate(hm.steps):
        assert step.target == Cell("grad_bias", b_disp(spec, o))
        assert term_sets(step) == {
            frozenset((Cell("grad_output", out_disp(spec, o, y, x)),))
            for y in range(oh) for x in range(ow)
        }


# ------------------------------------------------------------------- identities
@pytest.mark.parametrize("spec", SPECS)
def test_identities_hold(spec):
    checks = {c.op: c for c in verify(derive(spec))}
    assert set(checks) == {"forward", "dw", "da", "db", "engines"}
    for op, check in checks.items():
        if op == "db" and not spec.bias:
            assert check.holds is None
        else:
            assert check.holds is True, (op, check.detail)


def test_identity_detects_a_wrong_gradient():
    from dataclasses import replace

    d = derive(ConvTranspose2d((3, 3), (2, 2), stride=2))
    broken = dict(d.arrays)
    da = d.grad_input.copy()
    da[0, 1, 1] = da[0, 1, 1] + d.kernel[0, 0, 0, 0]
    broken["grad_input"] = da
    checks = {c.op: c for c in verify(replace(d, arrays=broken), engines=False)}
    assert checks["da"].holds is False
    assert checks["dw"].holds is True


# -------------------------------------------------------------------- geometry
@pytest.mark.parametrize("spec", SPECS)
def test_gather_view_correlation_with_rot180_reproduces_forward(spec):
    view = GatherView(spec)
    x, w, b, _ = random_values(spec, seed=5)
    gh, gw = view.grid_size
    grid = np.zeros((spec.channels, gh, gw))
    for c in range(spec.channels):
        for i in range(spec.input_size[0]):
            for j in range(spec.input_size[1]):
                where = view.input_position(in_disp(spec, c, i, j))
                if where is None:
                    continue
                assert where[:-2] == in_disp(spec, c, i, j)[:-2]
                grid[c, where[-2] - 1, where[-1] - 1] = x[c, i, j]
    kh, kw = spec.kernel_size
    rotated = np.zeros_like(w)
    for c in range(spec.channels):
        for o in range(spec.filters):
            for p in range(kh):
                for q in range(kw):
                    *lead, rp, rq = view.rotated_kernel_position(w_disp(spec, c, o, p, q))
                    assert tuple(lead) == w_disp(spec, c, o, p, q)[:-2]
                    rotated[c, o, rp - 1, rq - 1] = w[c, o, p, q]
    np.testing.assert_array_equal(rotated, w[:, :, ::-1, ::-1])
    oh, ow = spec.output_size
    out = np.zeros((spec.filters, oh, ow))
    for o in range(spec.filters):
        for y in range(oh):
            for xx in range(ow):
                (top, left), (dh, dw) = view.window(out_disp(spec, o, y, xx))
                total = b[o] if spec.bias else 0.0
                for c in range(spec.channels):
                    for p in range(kh):
                        for q in range(kw):
                            r, s = top - 1 + p * dh, left - 1 + q * dw
                            assert 0 <= r < gh and 0 <= s < gw
                            total += grid[c, r, s] * rotated[c, o, p, q]
                out[o, y, xx] = total
    np.testing.assert_allclose(out, loop_forward(spec, x, w, b), atol=1e-12)


def test_gather_view_by_hand():
    # 2x2 input, 3x3 kernel, stride 2, padding 1, output padding 1: spread input 3x3,
    # padded by 3 - 1 - 1 = 1 top/left and 2 bottom/right -> 6x6 grid, 4x4 output.
    view = GatherView(ConvTranspose2d((2, 2), (3, 3), stride=2, padding=1, output_padding=1))
    assert view.grid_size == (6, 6)
    assert (view.before, view.after) == ((1, 1), (2, 2))
    assert view.input_position((1, 1)) == (2, 2)
    assert view.input_position((2, 1)) == (4, 2)
    assert view.rotated_kernel_position((1, 3)) == (3, 1)
    assert view.window((4, 2)) == ((4, 2), (1, 1))
    # padding beyond the kernel's reach crops the spread input
    cropped = GatherView(ConvTranspose2d((4, 4), (1, 1), padding=1))
    assert cropped.grid_size == (2, 2)
    assert cropped.input_position((1, 1)) is None
    assert cropped.input_position((2, 3)) == (1, 2)


# --------------------------------------------------------------- spec and options
def test_declaration_and_shapes():
    layer = layer_type("conv-transpose2d")
    assert layer is CONV_TRANSPOSE2D
    assert (layer.torch_name, layer.rank, ConvTranspose2d.TYPE) == (
        "ConvTranspose2d", 20, "conv-transpose2d")
    assert layer.op_names == ("forward", "forward-scatter", "dw", "da", "db")
    for op in layer.ops:
        assert len(op.operators) == len(op.operands), op.name
    assert layer.option("output_padding").cli == "--output-padding"
    assert layer.build({}) == ConvTranspose2d()
    spec = layer.build({"input": "2x4x5", "kernel": "3x2", "stride": 2, "padding": "1",
                        "output_padding": "1x0", "dilation": "1", "filters": "3",
                        "bias": False, "layer": 4})
    assert spec == ConvTranspose2d((4, 5), (3, 2), stride=2, padding=1,
                                   output_padding=(1, 0), channels=2, filters=3, bias=False,
                                   layer=4)
    assert spec.output_size == (3 * 2 - 2 + 2 + 1 + 1, 4 * 2 - 2 + 1 + 0 + 1)
    assert spec.full_shape("kernel") == (2, 3, 3, 2)
    assert spec.full_shape("grad_output") == (3, 8, 8)
    assert spec.display_shape("kernel") == (2, 3, 3, 2)
    assert spec.display_shape("bias") == (3,)
    one = ConvTranspose2d((3, 3), (2, 2), stride=2)
    assert one.display_shape("input") == (3, 3)
    assert one.display_shape("scatter") == (3, 3)
    assert one.display_shape("kernel") == (2, 2)
    assert one.display_shape("bias") == ()
    assert one.display_shape("grad_output") == (6, 6)
    assert ConvTranspose2d((3, 3), channels=2).display_shape("kernel") == (2, 3, 3)
    assert ConvTranspose2d((3, 3), filters=2).display_shape("kernel") == (2, 3, 3)
    assert one.describe() == "3x3 input, 2x2 kernel, stride 2 (6x6 output)"
    assert one.slug() == "3x3_k2x2_s2"
    assert spec.slug() == "2x4x5_k3x2_f3_s2_p1_op1x0_nobias_l4"
    assert spec.products == 2 * 4 * 5 * 3 * 3 * 2


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"stride": 2, "output_padding": 2}, "output_padding", "smaller than the stride"),
        ({"output_padding": (0, 1)}, "output_padding", "width"),
        ({"stride": 2, "dilation": 2, "output_padding": (2, 1)}, "output_padding", "height"),
        ({"input_size": (2, 2), "kernel_size": (1, 1), "padding": 1}, "padding", "= 0"),
        ({"kernel_size": (0, 3)}, "kernel_size", "at least 1"),
        ({"input_size": (3, 0)}, "input_size", "at least 1"),
        ({"stride": 0}, "stride", "at least 1"),
        ({"padding": -1}, "padding", "0 or more"),
        ({"output_padding": -1}, "output_padding", "0 or more"),
        ({"filters": 0}, "filters", "at least 1"),
        ({"bias": 1}, "bias", "True or False"),
        ({"kernel_size": (2, 2, 2)}, "kernel_size", "pair"),
        ({"input_size": (100, 100), "kernel_size": (5, 5), "filters": 2}, "input_size",
         f"500,000 multiplications (limit {MAX_PRODUCTS:,})"),
    ],
)
def test_spec_errors(kwargs, field, words):
    with pytest.raises(SpecError) as err:
        ConvTranspose2d(**kwargs)
    assert err.value.field_name == field
    assert words in err.value.rule


def test_output_padding_below_the_dilation_is_allowed():
    spec = ConvTranspose2d((3, 3), (2, 2), stride=1, dilation=3, output_padding=2)
    assert spec.output_size == (2 + 3 + 2 + 1,) * 2


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"kernel": "0"}, "kernel"),
        ({"kernel": "3x"}, "kernel"),
        ({"stride": "2", "output_padding": "2"}, "output_padding"),
        ({"output_padding": "1"}, "output_padding"),
        ({"input": "2x2", "kernel": "1", "padding": "1"}, "padding"),
        ({"input": "100x100", "kernel": "5", "filters": "2"}, "input"),
        ({"input": "1x2x3x4"}, "input"),
        ({"outputs": "2"}, "outputs"),
    ],
)
def test_build_errors_name_the_option(values, key):
    with pytest.raises(SpecError) as err:
        CONV_TRANSPOSE2D.build(values)
    assert err.value.field_name == key


def test_declaration_imports_neither_sympy_nor_manim():
    code = ("import sys, convviz.layers.conv_transpose2d; "
            "assert 'sympy' not in sys.modules and 'manim' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------ renderer geometry
def test_gather_window_is_the_dilated_kernel_footprint_from_the_output_cell():
    # output cell (y, x) reads the grid window whose top-left cell is (y, x), kernel cells
    # d apart: a 3x2 kernel dilated (2, 1) spans rows y..y+4 and cols x..x+1
    spec = ConvTranspose2d((3, 3), (3, 2), dilation=(2, 1), output_padding=(1, 0))
    assert CONV_TRANSPOSE2D.window is not None
    assert CONV_TRANSPOSE2D.window(spec, "forward", (4, 2)) == [
        ("input", None, (4, 2), (8, 3))
    ]
    assert CONV_TRANSPOSE2D.window(spec, "forward", (1, 1)) == [
        ("input", None, (1, 1), (5, 2))
    ]
    # with filters the leading index is the output channel; the window is the same
    many = ConvTranspose2d((2, 2), (2, 3), stride=2, filters=2)
    assert CONV_TRANSPOSE2D.window(many, "forward", (2, 3, 1)) == [
        ("input", None, (3, 1), (4, 3))
    ]
    for op in ("forward-scatter", "dw", "da", "db"):
        assert CONV_TRANSPOSE2D.window(spec, op, (1, 1)) == [], op


def test_only_the_upstream_gradient_is_drawn_padded():
    spec = ConvTranspose2d((3, 3), (3, 3), stride=2, padding=(1, 2))
    assert CONV_TRANSPOSE2D.padding(spec, "grad_output") == (1, 2)
    for role in ("input", "kernel", "bias", "output", "grad_input", "grad_kernel", "scatter"):
        assert CONV_TRANSPOSE2D.padding(spec, role) == (0, 0), role


def test_gather_view_position_is_the_input_cell_in_the_grid():
    # 2x2 input, 3x3 kernel, stride 2, padding 1: 1 zero row/col before, cells 2 apart
    view = GatherView(ConvTranspose2d((2, 2), (3, 3), stride=2, padding=1, output_padding=1))
    assert [view.position(i) for i in ((1, 1), (1, 2), (2, 1), (2, 2))] == [
        (2, 2), (2, 4), (4, 2), (4, 4)]
    assert GatherView(ConvTranspose2d((4, 4), (1, 1), padding=1)).position((1, 4)) is None
    assert GatherView(ConvTranspose2d((2, 3), (2, 2), channels=2)).position((2, 1, 3)) == (
        2, 2, 4)


def test_describe_and_slug_name_every_setting():
    spec = ConvTranspose2d((4, 5), (3, 2), stride=2, padding=1, output_padding=(1, 0),
                           dilation=(1, 2), channels=2, filters=3, bias=False, layer=4)
    # output (4-1)*2 - 2 + 1*2 + 1 + 1 = 8 high, (5-1)*2 - 2 + 2*1 + 0 + 1 = 9 wide
    assert spec.output_size == (8, 9)
    assert spec.describe() == (
        "2x4x5 input, 3x2 kernel, 3 filters, stride 2, padding 1, output padding 1x0, "
        "dilation 1x2, no bias (3x8x9 output)"
    )
    assert spec.slug() == "2x4x5_k3x2_f3_s2_p1_op1x0_d1x2_nobias_l4"
    plain = ConvTranspose2d()
    assert plain.describe() == "3x3 input, 3x3 kernel (5x5 output)"
    assert plain.slug() == "3x3_k3x3"
    assert ConvTranspose2d(dilation=2, layer=3).slug() == "3x3_k3x3_d2_l3"
    assert ConvTranspose2d(padding=(0, 1)).describe() == (
        "3x3 input, 3x3 kernel, padding 0x1 (5x3 output)")


def test_two_filters_are_named():
    spec = ConvTranspose2d((2, 2), (2, 2), filters=2)
    assert spec.describe() == "2x2 input, 2x2 kernel, 2 filters (2x3x3 output)"
    assert spec.slug() == "2x2_k2x2_f2"


@pytest.mark.parametrize("name", ["channels", "filters", "layer"])
@pytest.mark.parametrize("value", [True, 2.0, "2"])
def test_counts_must_be_integers(name, value):
    with pytest.raises(SpecError) as err:
        ConvTranspose2d(**{name: value})
    assert err.value.field_name == name
    assert err.value.rule == f"must be an integer of at least 1, got {value!r}"


def test_smallest_output_and_largest_layer_are_allowed():
    # a 1x1 output is the smallest allowed: (1-1)*1 - 0 + 1*0 + 0 + 1 = 1
    assert ConvTranspose2d((1, 1), (1, 1)).output_size == (1, 1)
    # (2-1)*1 - 2*1 + 1*(2-1) + 0 + 1 = 1 high after cropping, (3-1) + 1 + 1 = 4 wide
    assert ConvTranspose2d((2, 3), (2, 2), padding=(1, 0)).output_size == (1, 4)
    # exactly the limit of multiplications: 1 * 100 * 100 * 1 * 5 * 5
    assert MAX_PRODUCTS == 250_000
    assert ConvTranspose2d((100, 100), (5, 5)).products == MAX_PRODUCTS


def test_padding_error_shows_the_arithmetic():
    # height: (2-1)*2 - 2*2 + 1*(2-1) + 0 + 1 = 0
    with pytest.raises(SpecError) as err:
        ConvTranspose2d((2, 4), (2, 2), stride=2, padding=(2, 0))
    assert err.value.field_name == "padding"
    assert err.value.rule == (
        "too large: output height (H-1)*s - 2p + d(k-1) + output_padding + 1"
        " = 1*2 - 2*2 + 1*1 + 0 + 1 = 0; it must be at least 1"
    )
    # width: (3-1)*1 - 2*3 + 2*(2-1) + 1 + 1 = 0 (output padding below the dilation)
    with pytest.raises(SpecError) as err:
        ConvTranspose2d((4, 3), (1, 2), padding=(0, 3), dilation=2, output_padding=(0, 1))
    assert err.value.rule == (
        "too large: output width (H-1)*s - 2p + d(k-1) + output_padding + 1"
        " = 2*1 - 2*3 + 2*1 + 1 + 1 = 0; it must be at least 1"
    )


GRAD_A = r"\frac{\partial \mathcal{L}}{\partial a^{[%d]}}"
GRAD_W = r"\frac{\partial \mathcal{L}}{\partial W^{[%d]}}"
GRAD_Z = r"\frac{\partial \mathcal{L}}{\partial z^{[%d]}}"


def test_identity_latex_names_the_settings_that_matter():
    # Written out by hand: the forward gather pads by d (k - 1) - p and notes the dilation;
    # dL/da is conv2d(dz, W) with the layer's stride, padding and dilation; dL/dW steps by
    # the dilation over the input spread by the stride, so the two swap places in its note.
    def latex(spec: ConvTranspose2d) -> dict[str, str]:
        return {i.op: i.latex(spec) for i in CONV_TRANSPOSE2D.identities}

    assert latex(ConvTranspose2d()) == {
        "forward": r"z^{[2]} = \operatorname{pad}_{2}\big(\operatorname{spread}_{1}(a^{[1]})"
                   r"\big) * \operatorname{rot180}(W^{[2]}) + b^{[2]}",
        "dw": GRAD_W % 2 + " = " + GRAD_Z % 2 + " * a^{[1]}",
        "da": GRAD_A % 1 + " = " + GRAD_Z % 2 + " * W^{[2]}",
        "db": r"\frac{\partial \mathcal{L}}{\partial b^{[2]}} = \sum_{y,x} "
              r"\frac{\partial \mathcal{L}}{\partial z^{[2]}_{y,x}}",
    }
    # k 3, stride 2, padding 1, dilation 1x2: padded by (1*2 - 1, 2*2 - 1) = (1, 3)
    spec = ConvTranspose2d((3, 3), (3, 3), stride=2, padding=1, dilation=(1, 2),
                           output_padding=1, filters=2, layer=3)
    assert latex(spec) == {
        "forward": r"z^{[3]} = \operatorname{pad}_{1\times3}\big(\operatorname{spread}_{2}"
                   r"(a^{[2]})\big) * \operatorname{rot180}(W^{[3]}) + b^{[3]}"
                   r"\quad \text{(dilation 1\times2)}",
        "dw": GRAD_W % 3 + " = " + GRAD_Z % 3 + " * a^{[2]}"
              r"\quad \text{(stride 1\times2, padding 1, dilation 2)}",
        "da": GRAD_A % 2 + " = " + GRAD_Z % 3 + " * W^{[3]}"
              r"\quad \text{(stride 2, padding 1, dilation 1\times2)}",
        "db": r"\frac{\partial \mathcal{L}}{\partial b^{[3]}_o} = \sum_{y,x} "
              r"\frac{\partial \mathcal{L}}{\partial z^{[3]}_{o,y,x}}",
    }
    # k 2, stride 2x1, no bias: padded by 1; dL/dW's note is the stride, as a dilation
    spec = ConvTranspose2d((3, 3), (2, 2), stride=(2, 1), bias=False)
    assert latex(spec) == {
        "forward": r"z^{[2]} = \operatorname{pad}_{1}\big(\operatorname{spread}_{2\times1}"
                   r"(a^{[1]})\big) * \operatorname{rot180}(W^{[2]})",
        "dw": GRAD_W % 2 + " = " + GRAD_Z % 2 + r" * a^{[1]}\quad \text{(dilation 2\times1)}",
        "da": GRAD_A % 1 + " = " + GRAD_Z % 2 + r" * W^{[2]}\quad \text{(stride 2\times1)}",
        "db": r"\frac{\partial \mathcal{L}}{\partial b^{[2]}} = \sum_{y,x} "
              r"\frac{\partial \mathcal{L}}{\partial z^{[2]}_{y,x}}",
    }
