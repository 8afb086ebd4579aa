"""The array namespaces: float64 arithmetic and canonical SymPy cells.

References are hand-checked small values, ``math``/NumPy on floats and SymPy's own
``Max``/``Add``/``Mul`` built directly (never through :mod:`convviz.layers.namespace`).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from convviz.arithmetic import CanonicalBuilder
from convviz.layers.namespace import NUMERIC, Numeric, Symbolic, _distinct_cells

x, y = sympy.symbols("x y", real=True)
P = sympy.Symbol("p", positive=True)
N = sympy.Symbol("n", nonnegative=True)
A = sympy.IndexedBase("a", real=True)


class CountingBuilder(CanonicalBuilder):
    """A builder that counts the calls it serves (results are the real builder's)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = {"total": 0, "product": 0}

    def total(self, terms):
        self.calls["total"] += 1
        return super().total(terms)

    def product(self, factors):
        self.calls["product"] += 1
        return super().product(factors)


# ----------------------------------------------------------------------------- numeric
def test_numeric_namespace_by_hand():
    assert isinstance(NUMERIC, Numeric)
    assert NUMERIC.symbolic is False
    empty = NUMERIC.empty((2, 3))
    assert empty.shape == (2, 3)
    assert empty.dtype == np.float64
    assert not empty.any()
    assert NUMERIC.zero() == 0.0
    assert NUMERIC.const(3) == 3.0
    assert isinstance(NUMERIC.const(3), float)
    assert NUMERIC.total([0.1] * 10) == 1.0  # exactly: fsum, not a running sum
    assert NUMERIC.product([2, 3.5, -1]) == -7.0
    assert NUMERIC.maximum([-2, 1.5, 0]) == 1.5
    assert NUMERIC.exp(1) == pytest.approx(2.718281828459045, rel=1e-15)
    assert NUMERIC.log(np.e**2) == pytest.approx(2.0, rel=1e-15)
    assert NUMERIC.tanh(0.5) == pytest.approx(0.46211715726000974, rel=1e-15)
    assert NUMERIC.reciprocal(4) == 0.25


def test_numeric_matmul_is_float64_even_for_object_arrays():
    left = np.array([[1, 2], [3, 4]], dtype=object)
    right = np.array([[5], [6]], dtype=object)
    for a, b in ((left, right), (left, right.astype(float)), (left.astype(float), right)):
        out = NUMERIC.matmul(a, b)
        assert out.dtype == np.float64
        assert out.tolist() == [[17.0], [39.0]]


# ---------------------------------------------------------------------------- symbolic
def test_symbolic_builder_is_shared_or_new():
    builder = CanonicalBuilder()
    assert Symbolic(builder).builder is builder
    assert isinstance(Symbolic().builder, CanonicalBuilder)
    assert Symbolic().builder is not Symbolic().builder
    assert Symbolic().symbolic is True


def test_symbolic_empty_is_exact_zeros():
    out = Symbolic().empty((2, 1, 3))
    assert out.shape == (2, 1, 3)
    assert out.dtype == object
    assert all(cell is sympy.S.Zero for cell in out.flat)


def test_symbolic_constants_are_exact():
    xp = Symbolic()
    assert xp.zero() is sympy.S.Zero
    assert xp.const(0.25) == sympy.Rational(1, 4)
    assert xp.const(-1.5) == sympy.Rational(-3, 2)
    assert xp.const(3) == 3
    assert isinstance(xp.const(3), sympy.Integer)


def test_symbolic_total_and_product():
    xp = Symbolic()
    assert xp.total([x, y]) == x + y
    assert xp.total(iter([A[1], A[2], A[3]])) == A[1] + A[2] + A[3]
    assert xp.total([x, sympy.Integer(1)]) == x + 1
    assert xp.total([2 * x, 3 * x, y]) == 5 * x + y
    assert xp.total([x * y, sympy.exp(x)]) == x * y + sympy.exp(x)
    assert xp.product([x, y]) == x * y
    assert xp.product((sympy.Integer(-1), x, x)) == -(x**2)
    assert xp.product(iter([x, sympy.Rational(1, 2)])) == x / 2


def test_symbolic_sums_and_products_of_cells_share_the_builder():
    """The builder's sort keys are shared across cells: sums of cells use it."""
    builder = CountingBuilder()
    xp = Symbolic(builder)
    assert xp.total([A[1], A[2] * A[3], x]) == A[1] + A[2] * A[3] + x
    assert builder.calls["total"] == 1
    assert xp.product([A[1], A[2]]) == A[1] * A[2]
    assert builder.calls["product"] == 1
    left = np.array([[A[1], A[2]]], dtype=object)
    right = np.array([[x], [y]], dtype=object)
    out = xp.matmul(left, right)
    assert out.shape == (1, 1)
    assert sympy.expand(out[0, 0] - (A[1] * x + A[2] * y)) == 0
    assert builder.calls["total"] == 2
    assert builder.calls["product"] == 3


def test_symbolic_functions():
    xp = Symbolic()
    assert xp.exp(x) == sympy.exp(x)
    assert xp.log(x) == sympy.log(x)
    assert xp.tanh(x) == sympy.tanh(x)
    assert xp.reciprocal(sympy.Integer(3)) == sympy.Rational(1, 3)
    assert xp.reciprocal(x) == 1 / x


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ([x], x),
        ([A[1], A[2]], sympy.Max(A[1], A[2])),  # distinct cells: the fast path
        ([sympy.S.Zero, x], sympy.Max(0, x)),  # ReLU's max(0, z)
        ([x, A[1], y], sympy.Max(x, y, A[1])),
        ([x, x], x),  # repeated: SymPy simplifies
        ([sympy.S.Zero, P], P),  # positive: max(0, p) = p
        ([sympy.S.Zero, N], N),  # nonnegative: max(0, n) = n
        ([sympy.Integer(2), sympy.Integer(5)], sympy.Integer(5)),
        ([sympy.S.Zero, sympy.S.Zero, x], sympy.Max(0, x)),
    ],
)
def test_symbolic_maximum(cells, expected):
    got = Symbolic().maximum(cells)
    assert got == expected
    value = {x: -1.5, y: 0.5, A[1]: 2.0, A[2]: -3.0, P: 4.0, N: 0.25}
    want = max(float(sympy.sympify(c).subs(value)) for c in cells)
    assert float(got.subs(value)) == want


def test_symbolic_maximum_fast_path_args_are_the_cells():
    got = Symbolic().maximum([A[2], A[10], A[1]])
    assert isinstance(got, sympy.Max)
    assert set(got.args) == {A[1], A[2], A[10]}
    relu = Symbolic().maximum([sympy.S.Zero, A[3]])
    assert isinstance(relu, sympy.Max)
    assert set(relu.args) == {sympy.S.Zero, A[3]}


@pytest.mark.parametrize(
    ("cells", "distinct"),
    [
        ([x, y], True),
        ([A[1], A[2], x], True),
        ([sympy.S.Zero, x], True),
        ([x, sympy.S.Zero, A[1]], True),
        ([sympy.S.Zero, sympy.S.Zero, x], False),  # two zeros
        ([x, x], False),
        ([P, x], False),  # a sign assumption: SymPy can compare
        ([N, x], False),  # nonnegative only (is_positive unknown)
        ([sympy.Symbol("m", negative=True), x], False),
        ([x + 1, y], False),  # not a cell
        ([sympy.Integer(1), x], False),  # a number other than the zero
    ],
)
def test_distinct_cells(cells, distinct):
    assert _distinct_cells(cells) is distinct


def test_symbolic_maximum_fast_path_skips_sympy_comparisons(monkeypatch):
    """Distinct cells of unknown sign are not compared pair by pair (that is slow)."""
    calls = []
    collapse = sympy.Max._collapse_arguments.__func__

    def spy(cls, args, **assumptions):
        calls.append(args)
        return collapse(cls, args, **assumptions)

    monkeypatch.setattr(sympy.Max, "_collapse_arguments", classmethod(spy))
    xp = Symbolic()
    assert xp.maximum([sympy.S.Zero, A[1]]) == sympy.Max(0, A[1], evaluate=False)
    assert xp.maximum([A[1], x, A[2]]) == sympy.Max(A[1], x, A[2], evaluate=False)
    assert calls == []
    assert xp.maximum([sympy.S.Zero, P]) == P  # a known sign: SymPy compares
    assert calls
