"""conv2d's declaration: the outlines it draws, its equations, options and forward pass.

The outlines (``window``) are checked against the derivation itself: the cells an outline
covers, stepped by the dilation (forward, ``dL/da``) or the stride (``dL/dW``) and cut to
the array, must be exactly the cells that appear in the derived expression of the step's
target. The equations are hand-written LaTeX; the forward pass is compared with
``scipy.signal.correlate2d`` (:func:`references.scipy_forward`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sympy
from references import random_values, scipy_forward

from convviz.derivation import derive
from convviz.identities import closed_forms, verify
from convviz.layers import layer_type
from convviz.layers.conv2d import (
    CONV2D,
    FullConvolutionView,
    forward_identity,
    reference_correlate,
)
from convviz.layers.namespace import NUMERIC
from convviz.spec import ConvSpec, SpecError

SPECS = [
    pytest.param(ConvSpec((4, 4), (2, 2)), id="plain"),
    pytest.param(ConvSpec((5, 5), (3, 3), stride=2), id="stride2"),
    pytest.param(ConvSpec((4, 5), (3, 2), padding=(1, 2)), id="padding-rect"),
    pytest.param(ConvSpec((7, 6), (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
                 id="rect-mixed"),
    pytest.param(ConvSpec((4, 4), (2, 2), filters=2), id="F2"),
    pytest.param(ConvSpec((4, 4), (2, 2), channels=2), id="C2"),
    pytest.param(ConvSpec((5, 6), (2, 2), stride=(1, 2), padding=1, dilation=(2, 1),
                          channels=2, filters=2), id="everything"),
]


def _cells(expr: Any, base: Any) -> set[tuple[int, ...]]:
    """Display indices of the cells of ``base`` appearing in ``expr``."""
    return {
        tuple(int(i) for i in cell.indices)
        for cell in sympy.sympify(expr).atoms(sympy.Indexed)
        if cell.base == base
    }


def _display(spec: ConvSpec, role: str, full: tuple[int, ...]) -> tuple[int, ...]:
    """1-based display index of a 0-based full index (size-1 leading axes dropped)."""
    shape, display = spec.full_shape(role), spec.display_shape(role)
    extra = len(shape) - len(display)
    out = []
    for n, (size, i) in enumerate(zip(shape, full, strict=True)):
        if n < extra and size == 1:
            continue
        out.append(i + 1)
    return tuple(out)


def _lattice(first: tuple[int, int], steps: tuple[int, int], counts: tuple[int, int],
             rows: range, cols: range) -> set[tuple[int, int]]:
    """Cells ``first + (n * step)`` for ``n < count`` on each axis, inside rows x cols."""
    return {
        (first[0] + n * steps[0], first[1] + m * steps[1])
        for n in range(counts[0])
        for m in range(counts[1])
        if first[0] + n * steps[0] in rows and first[1] + m * steps[1] in cols
    }


# ------------------------------------------------------------------------ outlines
@pytest.mark.parametrize("spec", SPECS)
def test_forward_outline_covers_exactly_the_inputs_each_output_cell_reads(spec: ConvSpec) -> None:
    d = derive(spec)
    base = d.input.flat[0].base
    (kh, kw), (dh, dw) = spec.kernel_size, spec.dilation
    h, w = spec.input_size
    for full in np.ndindex(d.output.shape):
        index = _display(spec, "output", full)
        [(role, slices, first, last)] = CONV2D.window(spec, "forward", index)
        assert (role, slices) == ("input", None)
        # the outline spans the dilated kernel: kh cells dh apart, kw cells dw apart
        assert (last[0] - first[0], last[1] - first[1]) == ((kh - 1) * dh, (kw - 1) * dw)
        read = {cell[-2:] for cell in _cells(d.output[full], base)}
        covered = _lattice(first, (dh, dw), (kh, kw), range(1, h + 1), range(1, w + 1))
        assert covered == read, index


def test_forward_outline_by_hand() -> None:
    # 5x5 input, 3x3 kernel, stride 2, padding 1: output (2, 2) starts at padded row 3,
    # i.e. input row 2, and ends 2 rows further down.
    spec = ConvSpec((5, 5), (3, 3), stride=2, padding=1)
    assert CONV2D.window(spec, "forward", (1, 1)) == [("input", None, (0, 0), (2, 2))]
    assert CONV2D.window(spec, "forward", (2, 3)) == [("input", None, (2, 4), (4, 6))]
    dilated = ConvSpec((7, 7), (2, 3), dilation=(3, 2))
    assert CONV2D.window(dilated, "forward", (2, 1)) == [("input", None, (2, 1), (5, 5))]


@pytest.mark.parametrize("spec", SPECS)
def test_dw_outline_covers_exactly_the_inputs_each_weight_met(spec: ConvSpec) -> None:
    d = derive(spec)
    base = d.input.flat[0].base
    (oh, ow), (sh, sw) = spec.output_size, spec.stride
    h, w = spec.input_size
    for full in np.ndindex(d.grad_kernel.shape):
        index = _display(spec, "kernel", full)
        [(role, slices, first, last)] = CONV2D.window(spec, "dw", index)
        channel = full[1]
        assert (role, slices) == ("input", [channel])
        # the outline spans the output grid, stepped by the stride
        assert (last[0] - first[0], last[1] - first[1]) == ((oh - 1) * sh, (ow - 1) * sw)
        met = _cells(d.grad_kernel[full], base)
        if spec.channels > 1:
            assert {cell[0] for cell in met} <= {channel + 1}
        covered = _lattice(first, (sh, sw), (oh, ow), range(1, h + 1), range(1, w + 1))
        assert covered == {cell[-2:] for cell in met}, index


def test_dw_outline_by_hand() -> None:
    # 3 filters, 2 channels: W[f=3, c=2, p=2, q=1] met the input of channel 2 from row
    # p - pad = 1 (stride 2 over 2 output rows) and column 1 - pad = 0 (the padding).
    spec = ConvSpec((5, 5), (2, 2), stride=2, padding=1, channels=2, filters=3)
    assert spec.output_size == (3, 3)
    assert CONV2D.window(spec, "dw", (3, 2, 2, 1)) == [("input", [1], (1, 0), (5, 4))]
    one_channel = ConvSpec((5, 5), (2, 2), filters=3)
    assert CONV2D.window(one_channel, "dw", (3, 2, 1)) == [("input", [0], (2, 1), (5, 4))]


@pytest.mark.parametrize("spec", SPECS)
def test_full_correlation_outline_covers_exactly_the_dz_each_input_gradient_reads(
    spec: ConvSpec,
) -> None:
    d = derive(spec)
    base = d.grad_output.flat[0].atoms(sympy.Indexed).pop().base
    view = FullConvolutionView(spec)
    (kh, kw), (dh, dw) = spec.kernel_size, spec.dilation
    gh, gw = view.grid_size
    for full in np.ndindex(d.grad_input.shape):
        index = _display(spec, "input", full)
        [(role, slices, first, last)] = CONV2D.window(spec, "da-full", index)
        assert (role, slices) == ("grad_output", None)
        assert (last[0] - first[0], last[1] - first[1]) == ((kh - 1) * dh, (kw - 1) * dw)
        placed = {view.position(cell)[-2:] for cell in _cells(d.grad_input[full], base)}
        covered = _lattice(first, (dh, dw), (kh, kw), range(1, gh + 1), range(1, gw + 1))
        spread = {view.position(_display(spec, "output", o))[-2:]
                  for o in np.ndindex(d.grad_output.shape)}
        assert covered & spread == placed, index


@pytest.mark.parametrize("op", ["da", "db", "forward-scatter", "backward"])
def test_ops_without_a_kernel_outline_draw_none(op: str) -> None:
    spec = ConvSpec((4, 4), (2, 2), padding=1, channels=2, filters=2)
    assert CONV2D.window(spec, op, (1, 1, 1)) == []


def test_full_convolution_view_positions_by_hand() -> None:
    # 5x6 input, 2x3 kernel, stride (2, 1), dilation (1, 2): dz is 2x2, spread to padded
    # rows 1 and 3 (2 rows left below) and columns 1 and 2 (4 left), shifted by d (k - 1).
    spec = ConvSpec((5, 6), (2, 3), stride=(2, 1), dilation=(1, 2))
    view = FullConvolutionView(spec)
    assert spec.output_size == (2, 2)
    assert view.offset == (1, 4)
    assert view.trailing == (2, 4)
    assert view.grid_size == (6, 10)
    assert view.position((1, 1)) == (2, 5)
    assert view.position((2, 2)) == (4, 6)
    assert view.grad_output_position((3, 2, 1)) == (3, 4, 5)
    assert view.rotated_kernel_position((1, 1)) == (2, 3)
    assert view.rotated_kernel_position((2, 1, 2, 3)) == (2, 1, 1, 1)
    assert view.window((4, 5)) == ((4, 5), (1, 2))
    padded = FullConvolutionView(ConvSpec((4, 4), (3, 3), padding=(1, 2), dilation=(2, 1),
                                          channels=2))
    assert padded.window((2, 3, 1)) == ((4, 3), (2, 1))


# ------------------------------------------------------------------- identities
@pytest.mark.parametrize(
    "spec",
    [
        # tall kernels: the rotated kernel needs more zero rows than columns around dz
        pytest.param(ConvSpec((6, 5), (3, 1), stride=(2, 1)), id="tall-kernel-ragged"),
        pytest.param(ConvSpec((7, 4), (2, 2), stride=(3, 1), dilation=(2, 1)),
                     id="ragged-rows-only"),
        pytest.param(ConvSpec((4, 7), (1, 3), stride=(1, 3)), id="wide-kernel-ragged-cols"),
    ],
)
def test_closed_forms_hold_when_the_axes_differ(spec: ConvSpec) -> None:
    d = derive(spec)
    forms = closed_forms(d)
    assert forms["da"].shape == (spec.channels, *spec.input_size)
    assert forms["dw"].shape == (spec.filters, spec.channels, *spec.kernel_size)
    checks = {c.op: c.holds for c in verify(d, engines=False)}
    assert checks == {"dw": True, "da": True, "db": True}


# ------------------------------------------------------------------- zero rings
def test_only_the_input_is_drawn_with_its_padding_ring() -> None:
    spec = ConvSpec((4, 5), (3, 3), padding=(1, 2))
    assert CONV2D.padding(spec, "input") == (1, 2)
    for role in ("kernel", "bias", "output", "grad_input", "grad_output", "grad_kernel"):
        assert CONV2D.padding(spec, role) == (0, 0), role


# ---------------------------------------------------------------------- equations
GRAD = r"\frac{\partial \mathcal{L}}{\partial "


def test_forward_equation_names_the_layer_arrays() -> None:
    assert forward_identity(ConvSpec()) == "z^{[2]} = a^{[1]} * W^{[2]} + b^{[2]}"
    assert forward_identity(ConvSpec(layer=4, bias=False)) == "z^{[4]} = a^{[3]} * W^{[4]}"


def _identity_latex(spec: ConvSpec, op: str) -> str:
    [identity] = [i for i in CONV2D.identities if i.op == op]
    return identity.latex(spec)


def test_weight_gradient_equation_swaps_stride_and_dilation() -> None:
    plain = GRAD + "W^{[2]}} = a^{[1]} * " + GRAD + "z^{[2]}}"
    assert _identity_latex(ConvSpec(), "dw") == plain
    note = r"\quad \text{(stride 3, dilation 2)}"
    assert _identity_latex(ConvSpec((9, 9), stride=2, dilation=3), "dw") == plain + note
    only_stride = r"\quad \text{(stride 1, dilation 2\times1)}"
    assert _identity_latex(ConvSpec((9, 9), stride=(2, 1)), "dw") == plain + only_stride
    only_dilation = r"\quad \text{(stride 1\times2, dilation 1)}"
    assert _identity_latex(ConvSpec((9, 9), dilation=(1, 2)), "dw") == plain + only_dilation
    layer3 = _identity_latex(ConvSpec(layer=3), "dw")
    assert layer3 == GRAD + "W^{[3]}} = a^{[2]} * " + GRAD + "z^{[3]}}"


def test_input_gradient_equation_is_a_full_correlation_with_the_rotated_kernel() -> None:
    assert _identity_latex(ConvSpec(layer=3), "da") == (
        GRAD + "a^{[2]}} = " + GRAD + r"z^{[3]}} *_{\mathrm{full}} "
        r"\operatorname{rot180}(W^{[3]})"
    )


def test_bias_gradient_equation_sums_each_filters_map() -> None:
    assert _identity_latex(ConvSpec(), "db") == (
        GRAD + "b^{[2]}} = \\sum_{i,j} " + GRAD + "z^{[2]}_{i,j}}"
    )
    assert _identity_latex(ConvSpec(filters=2, layer=5), "db") == (
        GRAD + "b^{[5]}_f} = \\sum_{i,j} " + GRAD + "z^{[5]}_{f,i,j}}"
    )


# ------------------------------------------------------------------ forward pass
@pytest.mark.parametrize("spec", SPECS)
def test_numeric_forward_and_reference_match_scipy(spec: ConvSpec) -> None:
    x, w, b, _ = random_values(spec, seed=3)
    want = scipy_forward(x, w, b, stride=spec.stride, padding=spec.padding,
                         dilation=spec.dilation)
    arrays = {"input": x, "kernel": w, "bias": b}
    got = CONV2D.forward(NUMERIC, spec, arrays)
    assert set(got) == {"output"}
    np.testing.assert_allclose(got["output"], want, atol=1e-12)
    assert CONV2D.reference is not None
    np.testing.assert_allclose(CONV2D.reference(spec, arrays), want, atol=1e-12)
    np.testing.assert_allclose(reference_correlate(x, w, b, spec), want, atol=1e-12)


def test_symbolic_forward_writes_out_a_padded_strided_cell() -> None:
    # 3x3 input padded by 1, 2x2 kernel, stride 2: z[2, 2] reads a[2..3, 2..3] (1-based
    # unpadded: rows 2-3 and columns 2-3 of the input; the padded ring is row/col 0).
    d = derive(ConvSpec((3, 3), (2, 2), stride=2, padding=1))
    a, w, b = d.input, d.kernel, d.bias
    want = b[0] + sum(w[0, 0, p, q] * a[0, 1 + p, 1 + q] for p in range(2) for q in range(2))
    assert sympy.expand(d.output[0, 1, 1] - want) == 0
    # z[1, 1] only meets a[1, 1]: the other three kernel cells lie in the padding
    assert sympy.expand(d.output[0, 0, 0] - (b[0] + w[0, 0, 1, 1] * a[0, 0, 0])) == 0


# ---------------------------------------------------------------------- options
def test_input_option_takes_channels_first() -> None:
    layer = layer_type("conv2d")
    assert layer is CONV2D
    assert layer.build({"input": "3x5x6"}) == ConvSpec((5, 6), channels=3)
    assert layer.build({"input": "5x6"}) == ConvSpec((5, 6), channels=1)
    assert layer.build({"input": "7x7", "kernel": "2x3"}) == ConvSpec((7, 7), (2, 3))
    spec = layer.build({"input": "2x8x7", "kernel": "3x2", "stride": "2x1", "padding": 1,
                        "dilation": "2", "filters": "3", "bias": False, "layer": "4"})
    assert spec == ConvSpec((8, 7), (3, 2), stride=(2, 1), padding=1, dilation=2,
                            channels=2, filters=3, bias=False, layer=4)
    assert layer.build({}) == ConvSpec()


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"input": "1x2x3x4"}, "input"),
        ({"kernel": "0"}, "kernel"),
        ({"kernel": "9x9"}, "kernel"),
        ({"padding": "-1"}, "padding"),
        ({"filters": "0"}, "filters"),
        ({"bias": "no"}, "bias"),
    ],
)
def test_build_errors_name_the_option(values: dict[str, Any], key: str) -> None:
    with pytest.raises(SpecError) as caught:
        CONV2D.build(values)
    assert caught.value.field_name == key
