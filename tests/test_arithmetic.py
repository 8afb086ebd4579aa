from __future__ import annotations

import functools

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from convviz.arithmetic import CanonicalBuilder, canonical_key, dot, is_symbolic

A = sympy.IndexedBase("a^{[1]}")
W = sympy.IndexedBase("W^{[2]}")
Z = sympy.IndexedBase("z^{[2]}")
LOSS = sympy.Function(r"\mathcal{L}")(*sympy.symbols(r"y \hat{y}"))
SYMBOLS = [sympy.Symbol(n) for n in ("b^{[2]}", "x", "b", "B", "y0", "y10", "y2")]

index = st.integers(min_value=0, max_value=12)
indexed = st.builds(lambda base, idx: base[idx], st.sampled_from([A, W, Z]),
                    st.lists(index, min_size=1, max_size=4).map(tuple))
derivative = st.builds(lambda i, j: sympy.Derivative(LOSS, Z[i, j]), index, index)
symbol = st.sampled_from(SYMBOLS)
atom = st.one_of(indexed, derivative, symbol)
# products of distinct atoms, as the chain rule produces (dz * a, W * a, ...)
product = st.lists(atom, min_size=2, max_size=3, unique=True).map(lambda f: sympy.Mul(*f))
factor = st.one_of(atom, product)


def assert_identical(got, want):
    assert got == want
    assert hash(got) == hash(want)
    assert got.func == want.func
    assert got.args == want.args
    assert sympy.srepr(got) == sympy.srepr(want)


@settings(max_examples=300, deadline=None)
@given(st.lists(atom, min_size=0, max_size=6))
def test_product_of_atoms_is_sympy_mul(factors):
    assert_identical(CanonicalBuilder().product(factors), sympy.Mul(*factors))


@settings(max_examples=200, deadline=None)
@given(st.lists(factor, min_size=0, max_size=4))
def test_product_with_products_is_sympy_mul(factors):
    assert_identical(CanonicalBuilder().product(factors), sympy.Mul(*factors))


@settings(max_examples=300, deadline=None)
@given(st.lists(factor, min_size=0, max_size=8))
def test_total_is_sympy_add(terms):
    assert_identical(CanonicalBuilder().total(terms), sympy.Add(*terms))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(atom, min_size=1, max_size=3), min_size=1, max_size=8))
def test_total_of_built_products_is_sympy_add(groups):
    # One builder for all, as in a derivation: products are built, then summed.
    builder = CanonicalBuilder()
    built = [builder.product(g) for g in groups]
    assert_identical(builder.total(built), sympy.Add(*(sympy.Mul(*g) for g in groups)))


@settings(max_examples=200, deadline=None)
@given(st.lists(atom, min_size=2, max_size=12, unique=True))
def test_canonical_key_orders_like_basic_compare(atoms):
    by_key = sorted(atoms, key=canonical_key)
    by_compare = sorted(atoms, key=functools.cmp_to_key(sympy.Basic.compare))
    assert by_key == by_compare


x, y = sympy.symbols("x y")
FALLBACKS = [
    pytest.param([2, A[1], W[1]], id="integer-coefficient"),
    pytest.param([sympy.Rational(1, 2), x], id="rational"),
    pytest.param([A[1], A[1]], id="duplicate-factor"),
    pytest.param([A[1], A[1] ** 2], id="power-merge"),
    pytest.param([x**2, y], id="power"),
    pytest.param([x + y, x], id="sum-factor"),
    pytest.param([0, x, y], id="zero"),
    pytest.param([1, x], id="one"),
    pytest.param([sympy.S.One, sympy.S.One], id="only-ones"),
    pytest.param([-1, x, y], id="minus-one"),
    pytest.param([sympy.Float(1.5), x], id="float"),
]


@pytest.mark.parametrize("factors", FALLBACKS)
def test_product_fallbacks(factors):
    assert_identical(CanonicalBuilder().product(factors), sympy.Mul(*factors))


TOTAL_FALLBACKS = [
    pytest.param([x, x], id="duplicate"),
    pytest.param([x * y, x * y], id="duplicate-product"),
    pytest.param([x, 2 * x], id="coefficient"),
    pytest.param([sympy.S.One, x], id="number"),
    pytest.param([x, -x], id="cancel"),
    pytest.param([x + y, x], id="nested-sum"),
    pytest.param([x, sympy.S.Zero, y], id="zero-dropped"),
    pytest.param([], id="empty"),
    pytest.param([x * y, 3 * x * y, y], id="mixed-coefficients"),
]


@pytest.mark.parametrize("terms", TOTAL_FALLBACKS)
def test_total_fallbacks(terms):
    assert_identical(CanonicalBuilder().total(terms), sympy.Add(*terms))


def test_noncommutative_falls_back():
    p, q = sympy.symbols("p q", commutative=False)
    assert CanonicalBuilder().product([q, p]) == q * p
    assert CanonicalBuilder().product([q, p]) != p * q


def test_dot_numeric_is_matmul():
    rng = np.random.default_rng(0)
    left, right = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    np.testing.assert_allclose(dot(left, right), left @ right)
    assert not is_symbolic(left)


def test_dot_symbolic_by_hand():
    left = np.array([[A[1], 0], [A[2], A[3]]], dtype=object)
    right = np.array([[W[1]], [W[2]]], dtype=object)
    got = dot(left, right)
    assert is_symbolic(got)
    assert got.shape == (2, 1)
    assert got[0, 0] == A[1] * W[1]
    assert got[1, 0] == A[2] * W[1] + A[3] * W[2]
    with pytest.raises(ValueError, match="do not align"):
        dot(left, np.array([[W[1]]], dtype=object))


def test_product_with_a_product_of_another_class_is_sympy_mul() -> None:
    # the chain rule's dz * (Heaviside * Heaviside): merged by class, without keys
    a = sympy.IndexedBase("a", real=True)
    up = sympy.Derivative(LOSS, Z[1, 1])
    h0 = sympy.Heaviside(a[1, 2] - a[1, 1], 0)
    h1 = sympy.Heaviside(a[1, 2] - sympy.Max(a[2, 1], a[2, 2]), 1)
    builder = CanonicalBuilder()
    inner = sympy.Mul(h0, h1)
    for factors in ((up, inner), (inner, up), (A[1], up, inner), (up, sympy.Mul(A[1], W[2]))):
        assert_identical(builder.product(list(factors)), sympy.Mul(*factors))
    # classes that meet (a cell times a product holding cells) go the general way
    assert_identical(builder.product([A[3], sympy.Mul(A[1], W[2])]),
                     sympy.Mul(A[3], A[1], W[2]))
    assert_identical(builder.product([A[1], sympy.Mul(2, W[2])]), sympy.Mul(A[1], 2, W[2]))
    assert_identical(builder.product([sympy.exp(A[1]), sympy.Mul(sympy.exp(W[1]), up)]),
                     sympy.Mul(sympy.exp(A[1]), sympy.exp(W[1]), up))
