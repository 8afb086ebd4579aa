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
