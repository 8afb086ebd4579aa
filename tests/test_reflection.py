from __future__ import annotations

import itertools
import json

import pytest
import sympy

from convviz.derivation import derive
from convviz.highlights import Cell
from convviz.reflection import ReflectionError, Reflector, highlight_map
from convviz.spec import ConvSpec


def expected_terms(spec: ConvSpec) -> dict[str, dict[tuple[int, ...], set[tuple[Cell, ...]]]]:
    """Every term of every target cell of every op, straight from the index formula.

    ``z[f,i,j] = b[f] + sum_{c,p,q} W[f,c,p,q] a[c, i*s + p*d - pad, j*s + q*d - pad]``
    (0-based, padding cells left out). Indices are then shown 1-based with size-1 C and F
    axes dropped. Factors inside a term are listed in role order input, kernel, bias,
    grad_output, as the reflector reports them.
    """
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    h, wd = spec.input_size
    oh, ow = spec.output_size
    kh, kw = spec.kernel_size
    many_c, many_f = spec.channels > 1, spec.filters > 1

    def c_(c):
        return (c + 1,) if many_c else ()

    def f_(f):
        return (f + 1,) if many_f else ()

    ops: dict[str, dict[tuple[int, ...], set[tuple[Cell, ...]]]] = {
        k: {} for k in ("forward", "dw", "da", "db")
    }
    for f, i, j in itertools.product(range(spec.filters), range(oh), range(ow)):
        z = (*f_(f), i + 1, j + 1)
        dz = Cell("grad_output", z)
        for c, p, q in itertools.product(range(spec.channels), range(kh), range(kw)):
            r, s = i * sh + p * dh - ph, j * sw + q * dw - pw
            if not (0 <= r < h and 0 <= s < wd):
                continue
            a = Cell("input", (*c_(c), r + 1, s + 1))
            w = Cell("kernel", f_(f) + c_(c) + (p + 1, q + 1))
            ops["forward"].setdefault(z, set()).add((a, w))
            ops["dw"].setdefault(w.index, set()).add((a, dz))
            ops["da"].setdefault(a.index, set()).add((w, dz))
        if spec.bias:
            ops["forward"].setdefault(z, set()).add((Cell("bias", f_(f)),))
            ops["db"].setdefault(f_(f), set()).add((dz,))
    return ops


SPECS = [
    pytest.param(ConvSpec((6, 6), (3, 3)), id="seed-6x6-k3"),
    pytest.param(ConvSpec((5, 5), (3, 3), stride=2), id="stride2"),
    pytest.param(ConvSpec((4, 4), (3, 3), padding=1), id="padding1"),
    pytest.param(ConvSpec((7, 7), (3, 3), dilation=2), id="dilation2"),
    pytest.param(ConvSpec((7, 6), (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
                 id="rect-mixed"),
    pytest.param(ConvSpec((4, 4), (2, 2), channels=2, filters=3), id="C2-F3"),
    pytest.param(ConvSpec((5, 5), (2, 2), stride=3), id="stride3-skips-cells"),
    pytest.param(ConvSpec((4, 5), (3, 2), padding=1, bias=False), id="no-bias"),
]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("op", ["forward", "dw", "da", "db"])
def test_terms_and_highlights_follow_index_formula(spec, op):
    want = expected_terms(spec)[op]
    hmap = highlight_map(derive(spec), op)
    info = hmap.arrays[hmap.target_role]
    targets = list(info.indices())
    assert [s.target.index for s in hmap.steps] == targets
    for step in hmap.steps:
        terms = want.get(step.target.index, set())
        assert set(step.terms) == terms, step.target
        assert len(step.terms) == len(terms)  # no term twice
        assert all(c == "1" for c in step.coefficients)
        used: dict[str, set[tuple[int, ...]]] = {}
        for term in terms:
            for cell in term:
                used.setdefault(cell.role, set()).add(cell.index)
        assert {r: set(v) for r, v in step.highlights.items()} == used
        for indices in step.highlights.values():
            assert list(indices) == sorted(set(indices))


def test_seed_z_1_2_by_hand():
    # The article's z[1,2] for 6x6/3x3: a[1..3, 2..4] and all of W, plus the bias.
    step = highlight_map(derive(ConvSpec((6, 6), (3, 3))), "forward").steps[1]
    assert step.target == Cell("output", (1, 2))
    assert step.highlights["input"] == tuple(
        (r, c) for r in (1, 2, 3) for c in (2, 3, 4)
    )
    assert step.highlights["kernel"] == tuple((p, q) for p in (1, 2, 3) for q in (1, 2, 3))
    assert step.highlights["bias"] == ((),)
    assert set(step.highlights) == {"input", "kernel", "bias"}
    # a[r, c] meets W[r, c - 1]
    assert step.terms[0] == (Cell("input", (1, 2)), Cell("kernel", (1, 1)))
    assert step.terms[-1] == (Cell("bias", ()),)


def test_padding_and_stride_by_hand():
    # 3x3 input, 3x3 kernel, padding 1, stride 2: z[1,1] sees a[1..2,1..2] under W[2..3,2..3].
    hmap = highlight_map(derive(ConvSpec((3, 3), (3, 3), padding=1, stride=2)), "forward")
    first = hmap.steps[0]
    assert first.highlights["input"] == ((1, 1), (1, 2), (2, 1), (2, 2))
    assert first.highlights["kernel"] == ((2, 2), (2, 3), (3, 2), (3, 3))
    # z[2,2] starts at padded row/col 2 -> a[2..3, 2..3] under W[1..2, 1..2]
    last = hmap.steps[-1]
    assert last.target.index == (2, 2)
    assert last.highlights["input"] == ((2, 2), (2, 3), (3, 2), (3, 3))
    assert last.highlights["kernel"] == ((1, 1), (1, 2), (2, 1), (2, 2))


def test_dilation_by_hand():
    # 5x5 input, 2x2 kernel dilated by 2: z[1,1] = W11 a11 + W12 a13 + W21 a31 + W22 a33
    step = highlight_map(derive(ConvSpec((5, 5), (2, 2), dilation=2)), "forward").steps[0]
    assert step.terms[:4] == (
        (Cell("input", (1, 1)), Cell("kernel", (1, 1))),
        (Cell("input", (1, 3)), Cell("kernel", (1, 2))),
        (Cell("input", (3, 1)), Cell("kernel", (2, 1))),
        (Cell("input", (3, 3)), Cell("kernel", (2, 2))),
    )


def test_multi_channel_filter_index_forms():
    d = derive(ConvSpec((4, 4), (2, 2), channels=2, filters=3))
    forward = highlight_map(d, "forward")
    step = forward.steps[0]
    assert step.target == Cell("output", (1, 1, 1))
    assert step.highlights["bias"] == ((1,),)
    assert all(len(i) == 3 for i in step.highlights["input"])
    assert all(len(i) == 4 and i[0] == 1 for i in step.highlights["kernel"])
    assert (Cell("input", (2, 1, 2)), Cell("kernel", (1, 2, 1, 2))) in step.terms
    db = highlight_map(d, "db")
    assert [s.target for s in db.steps] == [Cell("grad_bias", (f,)) for f in (1, 2, 3)]
    assert db.steps[2].highlights["grad_output"] == tuple(
        (3, i, j) for i in (1, 2, 3) for j in (1, 2, 3)
    )
    assert forward.arrays["input"].shape == (2, 4, 4)
    assert forward.arrays["kernel"].shape == (3, 2, 2, 2)
    assert forward.arrays["bias"].shape == (3,)
    assert forward.arrays["output"].shape == (3, 3, 3)


def test_bias_term_is_one_factor_and_derivative_is_grad_output():
    d = derive(ConvSpec((3, 3), (2, 2)))
    reflector = Reflector.for_derivation(d)
    terms = reflector.terms(d.output[0, 0, 0])
    assert (sympy.S.One, (Cell("bias", ()),)) in terms
    [(coefficient, factors)] = reflector.terms(d.grad_output[0, 1, 0])
    assert coefficient == 1
    assert factors == (Cell("grad_output", (2, 1)),)
    # db has no input or kernel cells: only dL/dz
    step = highlight_map(d, "db").steps[0]
    assert set(step.highlights) == {"grad_output"}
    assert all(len(t) == 1 for t in step.terms)


def test_arrays_for_each_op():
    d = derive(ConvSpec((3, 3), (2, 2)))
    assert list(highlight_map(d, "forward").arrays) == ["input", "kernel", "bias", "output"]
    assert list(highlight_map(d, "dw").arrays) == ["input", "grad_output", "grad_kernel"]
    assert list(highlight_map(d, "da").arrays) == ["grad_output", "kernel", "grad_input"]
    assert list(highlight_map(d, "db").arrays) == ["grad_output", "grad_bias"]
    no_bias = derive(ConvSpec((3, 3), (2, 2), bias=False))
    assert "bias" not in highlight_map(no_bias, "forward").arrays


def test_zero_target_has_no_terms():
    # stride 3 on 5x5 with a 2x2 kernel never reads row 3 (1-based): da there is 0.
    hmap = highlight_map(derive(ConvSpec((5, 5), (2, 2), stride=3)), "da")
    step = next(s for s in hmap.steps if s.target.index == (3, 1))
    assert step.terms == ()
    assert step.highlights == {}


def test_coefficients_are_reported():
    a = sympy.IndexedBase("a")
    reflector = Reflector({a: "input"})
    terms = reflector.terms(3 * a[1] * a[2] + a[3])
    assert terms == [
        (sympy.Integer(3), (Cell("input", (1,)), Cell("input", (2,)))),
        (sympy.S.One, (Cell("input", (3,)),)),
    ]


A = sympy.IndexedBase("a")
Q = sympy.IndexedBase("q")
x = sympy.Symbol("x")
def _cells(*numbers):
    return tuple(Cell("input", (n,)) for n in numbers)


# Factors that are not plain products stand for every cell inside them; constants are
# terms without cells. (Hand-checked: which cells each term is made of.)
COMPOSITE = [
    pytest.param(sympy.sin(A[1]), [_cells(1)], id="sin"),
    pytest.param(A[1] ** 2 + A[2], [_cells(1), _cells(2)], id="pow"),
    pytest.param(A[1] * sympy.sin(A[2]), [_cells(1, 2)], id="sin-factor"),
    pytest.param(sympy.Mul(A[1], sympy.Add(A[2], A[3]), evaluate=False), [_cells(1, 2, 3)],
                 id="sum-in-product"),
    pytest.param(A[1] + 5, [(), _cells(1)], id="constant"),
    pytest.param(sympy.Max(A[3], A[1], A[2]), [_cells(1, 2, 3)], id="max"),
    pytest.param(A[4] * sympy.Heaviside(A[1] - sympy.Max(A[2], A[3]), 0), [_cells(1, 2, 3, 4)],
                 id="heaviside"),
    pytest.param(sympy.log(sympy.exp(A[1]) + sympy.exp(A[2])) - A[2], [_cells(2), _cells(1, 2)],
                 id="log-sum-exp"),
    pytest.param(sympy.Piecewise((A[1], A[2] > 0), (0, True)), [_cells(1, 2)], id="piecewise"),
]


@pytest.mark.parametrize(("expr", "expected"), COMPOSITE)
def test_composite_factors_stand_for_the_cells_inside(expr, expected):
    reflector = Reflector({A: "input"}, {A: "grad_input"})
    got = [cells for _, cells in reflector.terms(expr)]
    assert sorted(got) == sorted(expected)
    assert reflector.plain is False


def test_plain_products_stay_plain():
    reflector = Reflector({A: "input"})
    reflector.terms(3 * A[1] * A[2] + A[3])
    assert reflector.plain is True


BAD = [
    pytest.param(A[1] + Q[2], "q[2]", id="unknown-base"),
    pytest.param(A[1] + x, "'x'", id="unknown-symbol"),
    pytest.param(sympy.sin(Q[1]), "q[1]", id="unknown-base-inside-function"),
    pytest.param(sympy.Function("f")(A[1]), "f(a[1])", id="undefined-function"),
    # an undefined function is an error as a factor or deeper, not a composite of cells
    pytest.param(2 * A[2] * sympy.Function("f")(A[1]), "f(a[1])",
                 id="undefined-function-factor"),
    pytest.param(sympy.Max(A[2] * sympy.Function("f")(A[1]), 0), "f(a[1])",
                 id="undefined-function-factor-inside-max"),
    pytest.param(sympy.Integral(A[1], x), "Integral", id="integral"),
    pytest.param(A[x], "a[x]", id="symbolic-index"),
    pytest.param(sympy.Derivative(sympy.Function("L")(x), A[1], 2), "Derivative",
                 id="second-derivative"),
]


@pytest.mark.parametrize(("expr", "needle"), BAD)
def test_reflection_errors_name_the_offending_node(expr, needle):
    reflector = Reflector({A: "input"}, {A: "grad_input"})
    with pytest.raises(ReflectionError) as info:
        reflector.terms(expr)
    assert needle in str(info.value)
    assert str(info.value).startswith("cannot reflect ")


def test_unknown_op():
    with pytest.raises(ValueError, match="unknown op"):
        highlight_map(derive(ConvSpec((3, 3), (2, 2))), "dz")


def test_deterministic():
    spec = ConvSpec((5, 5), (2, 3), stride=2, padding=1, channels=2, filters=2)
    first = [json.dumps(highlight_map(derive(spec), op).to_json()) for op in ("forward", "da")]
    again = [json.dumps(highlight_map(derive(spec), op).to_json()) for op in ("forward", "da")]
    assert first == again
    steps = highlight_map(derive(spec), "forward").steps
    assert [s.target.index for s in steps] == sorted(s.target.index for s in steps)
