from __future__ import annotations

import functools

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import convviz.arithmetic as arithmetic
from convviz.arithmetic import (
    CanonicalBuilder,
    canonical_key,
    cells_max,
    difference,
    dot,
    heaviside,
    is_symbolic,
)

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
    # a node built with _from_args carries the flag it was given, not one derived from
    # its arguments: a wrong flag would make later arithmetic treat it as non-commutative
    assert got.is_commutative == want.is_commutative


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


REAL_A = sympy.IndexedBase("a", real=True)  # its cells carry assumptions in their content
real_indexed = st.builds(lambda idx: REAL_A[idx], st.lists(index, min_size=1, max_size=3)
                         .map(tuple))
any_atom = st.one_of(atom, real_indexed)
any_factor = st.one_of(any_atom, st.lists(any_atom, min_size=2, max_size=3, unique=True)
                       .map(lambda f: sympy.Mul(*f)))


@settings(max_examples=200, deadline=None)
@given(st.lists(any_factor, min_size=2, max_size=10, unique=True))
def test_builder_key_orders_like_basic_compare(exprs):
    # one builder, asked twice: its remembered keys (per object, per base, per index)
    # must order exactly as Basic.compare, cold and warm
    builder = CanonicalBuilder()
    by_compare = sorted(exprs, key=functools.cmp_to_key(sympy.Basic.compare))
    for _ in range(2):
        assert sorted(exprs, key=builder.key) == by_compare
        for e in exprs:
            assert builder.key(e) == canonical_key(e)


@settings(max_examples=200, deadline=None)
@given(st.lists(any_atom, min_size=0, max_size=5), st.lists(any_factor, min_size=0, max_size=6))
def test_builder_with_real_cells_is_sympy(factors, terms):
    builder = CanonicalBuilder()
    assert_identical(builder.product(factors), sympy.Mul(*factors))
    assert_identical(builder.product(list(reversed(factors))), sympy.Mul(*factors))
    assert_identical(builder.total(terms), sympy.Add(*terms))
    built = [builder.product([t, f]) for t, f in zip(terms, factors, strict=False)]
    assert_identical(builder.total(built), sympy.Add(*(sympy.Mul(t, f) for t, f in
                                                      zip(terms, factors, strict=False))))


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


# ------------------------------------------------------------------ merging products
def _merge_cases():
    a = sympy.IndexedBase("a", real=True)
    up = sympy.Derivative(LOSS, Z[1, 1])
    inner = sympy.Mul(sympy.Heaviside(a[1, 2] - a[1, 1], 0),
                      sympy.Heaviside(a[1, 2] - sympy.Max(a[2, 1], a[2, 2]), 1))
    return up, inner


def test_merged_product_merges_groups_of_disjoint_classes(monkeypatch) -> None:
    # the contract of the fast path itself (the public paths fall back when it declines,
    # so only asking it directly shows that it merges): Mul(*factors) when no class occurs
    # in two groups. A cold class-key cache first, then the warm one.
    monkeypatch.setattr(arithmetic, "_MERGEABLE", {})
    up, inner = _merge_cases()
    for factors in ((up, inner), (inner, up), (A[1], up, inner), (up, sympy.Mul(A[1], W[2])),
                    (inner, sympy.Mul(A[1], up))):
        for _ in range(2):
            got = arithmetic._merged_product(list(factors))
            assert got is not None, factors
            assert_identical(got, sympy.Mul(*factors))
            assert got.is_commutative is True


def test_merged_product_declines_what_mul_would_combine(monkeypatch) -> None:
    monkeypatch.setattr(arithmetic, "_MERGEABLE", {})
    up, inner = _merge_cases()
    p = sympy.Symbol("p", commutative=False)
    declined = [
        [A[3], sympy.Mul(A[1], W[2])],  # Indexed in two groups
        [up, sympy.Mul(W[1], sympy.Derivative(LOSS, Z[2, 2]))],  # Derivative in two
        [inner, sympy.Heaviside(A[1] - A[2], 1)],  # Heaviside in two
        [A[1], sympy.Mul(2, W[2])],  # a number
        [sympy.exp(A[1]), up],  # exp combines with its like
        [x**2, up],  # a power
        [x + y, up],  # a sum
        [p, up],  # not commutative
        [2, up],  # not a Basic
        [up, 3],
    ]
    for factors in declined:
        assert arithmetic._merged_product(factors) is None, factors
        assert_identical(CanonicalBuilder().product(factors), sympy.Mul(*factors))


# ------------------------------------------------------------------------ cells_max
REAL = sympy.IndexedBase("a^{[1]}", real=True)
REAL_B = sympy.IndexedBase("b", real=True)


def assert_same_max(got, cells):
    want = sympy.Max(*cells, evaluate=False)
    assert_identical(got, want)
    assert got._argset == want._argset


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(index, index), min_size=2, max_size=6, unique=True))
def test_cells_max_is_sympys_unevaluated_max(indices):
    cells = [REAL[i] for i in indices]
    assert_same_max(cells_max(cells), cells)
    # distinct real cells of unknown sign: the evaluated Max keeps them all, in this order
    assert_identical(cells_max(cells), sympy.Max(*cells))


@pytest.mark.parametrize(
    "cells",
    [
        pytest.param([REAL[1, 10], REAL[1, 9]], id="printed-order-10-before-9"),
        pytest.param([REAL[10, 5], REAL[1, 5]], id="comma-before-digit"),
        pytest.param([REAL[2, 1], REAL[1, 2], REAL[1, 1]], id="reversed"),
        pytest.param([REAL_B[1], REAL[2]], id="two-bases"),
        pytest.param([REAL[2], REAL_B[1], REAL[1]], id="two-bases-three-cells"),
        pytest.param([REAL[1], sympy.Symbol("x", real=True)], id="not-all-cells"),
        pytest.param([sympy.Symbol("x", real=True), REAL[1]], id="cell-second"),
    ],
)
def test_cells_max_cases(cells):
    assert_same_max(cells_max(cells), cells)


def test_cells_max_of_one_cell_and_no_evaluation():
    cell = REAL[3, 4]
    assert cells_max([cell]) is cell
    r = sympy.Symbol("r", real=True)
    # left unevaluated even when SymPy could decide (Max(r, r + 1) evaluates to r + 1)
    got = cells_max([r, r + 1])
    assert sympy.Max(r, r + 1) == r + 1
    assert isinstance(got, sympy.Max) and set(got.args) == {r, r + 1}


# --------------------------------------------------------------- heaviside, difference
def test_heaviside_is_sympys_node():
    gap = REAL[1] - REAL[2]
    for at_zero, args in ((None, (gap, sympy.S.Half)), (sympy.S.Zero, (gap, 0)),
                          (sympy.S.One, (gap, 1))):
        got = heaviside(gap) if at_zero is None else heaviside(gap, at_zero)
        want = sympy.Heaviside(*args)
        assert_identical(got, want)
        assert got.args == (gap, args[1])
        assert got.nargs == want.nargs == sympy.FiniteSet(1, 2)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(REAL[3], sympy.Max(REAL[1], REAL[2]), id="cell-after-mul"),
        pytest.param(sympy.Symbol("x", real=True), sympy.Max(REAL[1], REAL[2]),
                     id="symbol-before-mul"),
        pytest.param(REAL[3], REAL_B[1], id="cell-minus-cell"),
        pytest.param(sympy.Symbol("x", real=True), REAL[1], id="symbol-minus-cell"),
    ],
)
def test_difference_is_sympys_add(left, right):
    got = difference(left, right)
    assert_identical(got, sympy.Add(left, -right))
    assert_identical(got, left - right)
    (negated,) = [t for t in got.args if t is not left]
    assert negated.is_commutative is True
    assert_identical(negated, sympy.Mul(-1, right))


def test_dot_keeps_python_numbers_and_drops_zeros():
    # object arrays may hold plain Python numbers: only zeros vanish, ones and twos stay
    left = np.array([[2, 0, 1], [0, 0, 0]], dtype=object)
    right = np.array([[W[1], A[1]], [W[2], 0], [W[3], 1]], dtype=object)
    got = dot(left, right)
    assert_identical(got[0, 0], sympy.Add(sympy.Mul(2, W[1]), W[3]))
    assert_identical(got[0, 1], sympy.Add(sympy.Mul(2, A[1]), sympy.S.One))
    assert got[1, 0] is sympy.S.Zero and got[1, 1] is sympy.S.Zero
    # numeric on one side only: still the symbolic path, the same sums
    numeric = np.array([[2, 0, 1]])
    assert_identical(dot(numeric, right)[0, 0], sympy.Add(sympy.Mul(2, W[1]), W[3]))


# ------------------------------------------------- the fast paths are the ones taken
# The builder exists for speed (SymPy's evaluating constructors re-sort and re-flatten on
# every call); these tests check that the cases a derivation consists of are assembled
# directly, never handed to the evaluating constructors, and still equal their result.
def _count_constructor_calls(monkeypatch, cls) -> list:
    original = cls.__new__
    calls = []

    def counting(klass, *args, **kwargs):
        calls.append(args)
        return original(klass, *args, **kwargs)

    monkeypatch.setattr(cls, "__new__", staticmethod(counting))
    return calls


def test_total_of_distinct_cell_products_is_assembled_without_sympy_add(monkeypatch) -> None:
    builder = CanonicalBuilder()
    up = [sympy.Derivative(LOSS, Z[i, j]) for i in range(2) for j in range(2)]
    terms = [builder.product([u, A[n]]) for n, u in enumerate(up)] + [W[5], A[7]]
    calls = _count_constructor_calls(monkeypatch, sympy.Add)
    got = builder.total(terms)
    assert calls == []
    monkeypatch.undo()
    assert_identical(got, sympy.Add(*terms))


def test_total_of_noncommutative_terms_is_sympys() -> None:
    p, q = sympy.symbols("p q", commutative=False)
    for terms in ([q, p], [p * q, q * p], [A[1], q]):
        got = CanonicalBuilder().total(terms)
        assert_identical(got, sympy.Add(*terms))
        assert got.is_commutative is False


def test_cells_max_of_one_base_does_not_evaluate(monkeypatch) -> None:
    cells = [REAL[1, 10], REAL[1, 9], REAL[2, 1], REAL[1, 1]]
    calls = _count_constructor_calls(monkeypatch, sympy.Max)
    got = cells_max(cells)
    assert calls == []
    # anything else goes to SymPy's Max
    cells_max([REAL[1], REAL_B[1]])
    assert len(calls) == 1
    monkeypatch.undo()
    assert_same_max(got, cells)


def test_dot_never_multiplies_by_a_zero_cell() -> None:
    # zeros (padding cells, Python or SymPy) are skipped, not multiplied and dropped
    left = np.array([[A[1], 0, sympy.S.Zero, A[2]], [0, A[3], 0, sympy.S.Zero]], dtype=object)
    right = np.array([[W[1], 0], [W[2], sympy.S.Zero], [W[3], W[4]], [0, W[5]]], dtype=object)
    builder = CanonicalBuilder()
    seen: list[tuple] = []
    original = builder.product

    def product(factors):
        seen.append(tuple(factors))
        return original(factors)

    builder.product = product  # type: ignore[method-assign]
    got = dot(left, right, builder)
    assert sorted(seen, key=str) == sorted([(A[1], W[1]), (A[2], W[5]), (A[3], W[2])], key=str)
    assert_identical(got[0, 0], A[1] * W[1])
    assert_identical(got[0, 1], A[2] * W[5])
    assert_identical(got[1, 0], A[3] * W[2])
    assert got[1, 1] is sympy.S.Zero
    # numbers on one side only: still the builder's sums, not NumPy's ``@`` on objects
    seen.clear()
    column = np.array([[W[1]], [W[2]], [W[3]]], dtype=object)
    mixed = dot(np.array([[2, 0, 1]]), column, builder)
    assert seen == [(2, W[1]), (1, W[3])]
    assert_identical(mixed[0, 0], sympy.Add(sympy.Mul(2, W[1]), W[3]))


def test_merged_product_remembers_the_class_keys(monkeypatch) -> None:
    # cold: each class's key is computed once and remembered under the class; warm: none
    monkeypatch.setattr(arithmetic, "_MERGEABLE", {})
    computed: list[type] = []
    original = arithmetic._class_key

    def class_key(cls: type) -> tuple[int, str]:
        computed.append(cls)
        return original(cls)

    monkeypatch.setattr(arithmetic, "_class_key", class_key)
    up, inner = _merge_cases()
    factors = [up, inner]
    cold = arithmetic._merged_product(factors)
    heaviside_class = type(inner.args[0])
    assert sorted(computed, key=str) == sorted([type(up), heaviside_class], key=str)
    remembered = dict(arithmetic._MERGEABLE)
    assert remembered == {type(up): original(type(up)),
                          heaviside_class: original(heaviside_class)}
    computed.clear()
    warm = arithmetic._merged_product(factors)
    assert computed == []
    assert cold is not None and warm is not None
    assert_identical(warm, sympy.Mul(*factors))
    assert_identical(cold, warm)


def test_builder_remembers_base_and_index_keys(monkeypatch) -> None:
    # a layer's cells share a few bases and small integers: each key is computed once
    cells = [A[1, 2], A[2, 1], REAL_A[1, 1], A[2, 2]]
    later = [A[1, 1], REAL_A[2, 2]]
    want = [canonical_key(cell) for cell in cells + later]
    computed: list[sympy.Basic] = []
    original = arithmetic.canonical_key

    def canonical(expr: sympy.Basic) -> tuple:
        if isinstance(expr, sympy.IndexedBase | sympy.Integer):  # not the nested parts
            computed.append(expr)
        return original(expr)

    monkeypatch.setattr(arithmetic, "canonical_key", canonical)
    builder = CanonicalBuilder()
    keys = [builder.key(cell) for cell in cells]
    assert computed == [A, sympy.Integer(1), sympy.Integer(2), REAL_A]
    computed.clear()
    keys += [builder.key(cell) for cell in later]
    assert computed == []
    assert keys == want


def test_products_a_derivation_builds_are_assembled_without_sympy_mul(monkeypatch) -> None:
    up, inner = _merge_cases()
    x = sympy.Symbol("x")
    cases = [
        [A[1]],  # one cell
        [up, A[1]],  # the chain rule's upstream cell times one cell
        [A[2], up],
        [up, inner],  # a cell times a product of other classes: merged
        [inner, up],
        [A[1], up, inner],
        [x, A[1], up],  # factors of different classes: ordered by class
        [A[3], A[1], W[2]],  # cells of one class: sorted by key
        [A[2], sympy.S.One, W[2]],  # ones dropped
        [A[2], sympy.S.One],
        [sympy.S.One, sympy.S.One],
        [A[1], sympy.S.Zero, W[1]],  # zero
        [A[1], 0],
    ]
    builder = CanonicalBuilder()
    calls = _count_constructor_calls(monkeypatch, sympy.Mul)
    built = [builder.product(factors) for factors in cases]
    assert calls == []
    # the cases SymPy must combine go to its Mul
    builder.product([2, A[1]])
    assert calls[0] == (2, A[1])
    builder.product([A[1], A[1]])
    assert (A[1], A[1]) in calls
    monkeypatch.undo()
    for factors, got in zip(cases, built, strict=True):
        assert_identical(got, sympy.Mul(*factors))


@pytest.mark.parametrize("factor", [2, sympy.Rational(1, 2), sympy.Symbol("x") + 1, A[1]])
def test_product_of_one_factor_is_sympys(factor) -> None:
    assert_identical(CanonicalBuilder().product([factor]), sympy.Mul(factor))


# ----------------------------------------- product: each shortcut is taken, and is exact
# The chain rule multiplies tens of thousands of factors per layer; the builder's product
# has a shortcut for each common case. Each test spies on the slower machinery the
# shortcut exists to avoid (key computation, SymPy's evaluating Mul, the merge of
# products) and checks the result against SymPy's own constructor.
def _spy(monkeypatch, owner, name) -> list:
    original = getattr(owner, name)
    calls: list = []

    def spying(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spying)
    return calls


def test_product_of_one_cell_is_the_cell_without_computing_its_key(monkeypatch) -> None:
    builder = CanonicalBuilder()
    keys = _spy(monkeypatch, builder, "key")
    for cell in (A[1, 2], sympy.Derivative(LOSS, Z[1, 1])):
        assert builder.product([cell]) is cell
    assert keys == []


def test_product_of_two_cells_needs_no_class_keys_and_remembers_its_key(monkeypatch) -> None:
    builder = CanonicalBuilder()
    up = sympy.Derivative(LOSS, Z[2, 1])
    for cell in (up, A[1, 3], A[2, 2], W[1, 1]):
        builder.key(cell)  # the cells' own keys, as a derivation has them by then
    classes = _spy(monkeypatch, arithmetic, "_class_key")
    merges = _spy(monkeypatch, arithmetic, "_merged_product")
    results = [builder.product(pair) for pair in ((up, A[1, 3]), (A[1, 3], up),
                                                 (A[2, 2], W[1, 1]))]
    assert classes == [] and merges == []
    monkeypatch.undo()
    for got, pair in zip(results, ((up, A[1, 3]), (A[1, 3], up), (A[2, 2], W[1, 1])),
                         strict=True):
        assert_identical(got, sympy.Mul(*pair))
        # the product's key is remembered, and is its canonical key
        assert builder._keys[id(got)] == (got, canonical_key(got))


def test_product_of_factors_of_different_classes_needs_no_keys(monkeypatch) -> None:
    # upstream cell, a Heaviside indicator and a cell: Basic.compare orders them by class
    builder = CanonicalBuilder()
    up = sympy.Derivative(LOSS, Z[1, 1])
    step = sympy.Heaviside(A[1, 1] - A[1, 2], 0)
    cases = [(up, step), (step, A[2, 1]), (A[2, 1], step, up)]
    keys = _spy(monkeypatch, builder, "key")
    merges = _spy(monkeypatch, arithmetic, "_merged_product")
    results = [builder.product(list(case)) for case in cases]
    assert keys == [] and merges == []
    monkeypatch.undo()
    for got, case in zip(results, cases, strict=True):
        assert_identical(got, sympy.Mul(*case))


def test_product_with_zero_or_one_among_different_classes_is_sympys() -> None:
    builder = CanonicalBuilder()
    up = sympy.Derivative(LOSS, Z[1, 1])
    step = sympy.Heaviside(A[1, 1] - A[1, 2], 0)
    assert builder.product([sympy.S.Zero, A[1, 1]]) is sympy.S.Zero
    assert builder.product([up, sympy.S.Zero, step]) is sympy.S.Zero
    assert_identical(builder.product([sympy.S.One, step]), step)
    assert_identical(builder.product([up, sympy.S.One, step]), sympy.Mul(up, step))


def test_product_with_a_noncommutative_factor_is_sympys() -> None:
    p = sympy.Symbol("p", commutative=False)
    step = sympy.Heaviside(A[1, 1] - A[1, 2], 0)
    for factors in ([p, A[1, 1]], [step, p], [A[1, 1], p, step]):
        got = CanonicalBuilder().product(factors)
        assert_identical(got, sympy.Mul(*factors))
        assert got.is_commutative is False


def test_product_of_plain_factors_is_not_merged(monkeypatch) -> None:
    # no factor is a product: there is nothing to merge, and three cells are sorted
    builder = CanonicalBuilder()
    merges = _spy(monkeypatch, arithmetic, "_merged_product")
    factors = [W[2, 1], sympy.Derivative(LOSS, Z[1, 2]), A[1, 1]]
    got = builder.product(factors)
    assert merges == []
    monkeypatch.undo()
    assert_identical(got, sympy.Mul(*factors))


def test_product_of_three_cells_remembers_its_key_without_sympify(monkeypatch) -> None:
    builder = CanonicalBuilder()
    factors = [W[2, 1], A[1, 1], A[1, 2]]  # one class: the general path, with keys
    sympified = _spy(monkeypatch, sympy, "sympify")
    got = builder.product(factors)
    assert sympified == []  # SymPy objects are taken as they are
    monkeypatch.undo()
    assert_identical(got, sympy.Mul(*factors))
    assert builder._keys[id(got)] == (got, canonical_key(got))


def test_product_with_a_repeated_cell_is_sympys_power() -> None:
    # equal keys in the general path: SymPy's Mul makes the square
    for factors in ([A[1, 1], W[1, 1], A[1, 1]], [A[2, 2], A[2, 2], A[1, 1]]):
        assert_identical(CanonicalBuilder().product(factors), sympy.Mul(*factors))
    assert_identical(CanonicalBuilder().product([A[1, 1], W[1, 1], A[1, 1]]),
                     A[1, 1] ** 2 * W[1, 1])


def test_product_rejects_a_string_factor_instead_of_parsing_it() -> None:
    # a string is not an expression: sympify(strict=True) refuses to parse it
    with pytest.raises(sympy.SympifyError):
        CanonicalBuilder().product([A[1, 1], W[1, 1], "x + 1"])


class _CountingList(list):
    def __init__(self, items) -> None:
        super().__init__(items)
        self.lookups = 0

    def index(self, *args):  # type: ignore[override]
        self.lookups += 1
        return super().index(*args)


def test_class_keys_are_computed_once_per_class(monkeypatch) -> None:
    counting = _CountingList(arithmetic.ordering_of_classes)
    monkeypatch.setattr(arithmetic, "ordering_of_classes", counting)
    monkeypatch.setattr(arithmetic, "_CLASS_KEYS", {})
    first = arithmetic._class_key(sympy.Mul)
    assert counting.lookups == 1
    assert arithmetic._class_key(sympy.Mul) == first
    assert counting.lookups == 1  # remembered
    # Basic.compare's order: classes SymPy ranks by position, unknown ones after by name
    assert first == (list(counting).index("Mul"), "")
    unknown = type("Zeta9", (sympy.Basic,), {})
    assert arithmetic._class_key(unknown) == (arithmetic._UNKNOWN, "Zeta9")


def test_built_nodes_are_declared_commutative_not_worked_out(monkeypatch) -> None:
    # SymPy's _from_args works out is_commutative over every argument (fuzzy_and) unless
    # told; the builder knows its factors and terms are commutative and says so
    import sympy.core.operations as operations

    builder = CanonicalBuilder()
    up = sympy.Derivative(LOSS, Z[1, 2])
    step = sympy.Heaviside(A[1, 1] - A[1, 2], 0)
    merge_up, inner = _merge_cases()
    cells = (up, A[1, 3], W[2, 1], A[1, 1], A[2, 2])
    for cell in cells:
        builder.key(cell)  # keys as a derivation has them by then
    largest = sympy.Max(A[1, 2], A[2, 2])
    worked_out = _spy(monkeypatch, operations, "fuzzy_and")
    got = {
        "two cells": builder.product([up, A[1, 3]]),
        "different classes": builder.product([up, step]),
        "general": builder.product([W[2, 1], A[1, 1], A[2, 2]]),
        "merged": arithmetic._merged_product([merge_up, inner]),
        "total": builder.total([A[1, 1], W[2, 1]]),
        "difference": difference(A[1, 1], largest),
    }
    assert worked_out == []
    monkeypatch.undo()
    want = {
        "two cells": sympy.Mul(up, A[1, 3]),
        "different classes": sympy.Mul(up, step),
        "general": sympy.Mul(W[2, 1], A[1, 1], A[2, 2]),
        "merged": sympy.Mul(merge_up, inner),
        "total": sympy.Add(A[1, 1], W[2, 1]),
        "difference": A[1, 1] - largest,
    }
    for name, node in got.items():
        assert_identical(node, want[name])
        assert node.is_commutative is True, name


def test_cell_times_a_product_of_later_classes_is_merged_directly(monkeypatch) -> None:
    # the chain rule's upstream cell times a local derivative (a product of indicators):
    # the cell's class sorts before every factor's, so no merge or key is needed
    builder = CanonicalBuilder()
    up = sympy.Derivative(LOSS, Z[1, 1])
    indicators = sympy.Mul(sympy.Heaviside(A[1, 1] - A[1, 2], 0),
                           sympy.Heaviside(A[1, 1] - A[2, 1], 1))
    with_cell = sympy.Mul(sympy.Heaviside(A[1, 1] - A[1, 2], 0), A[2, 2])
    cases = [(up, indicators), (up, with_cell)]
    for case in cases:
        builder.product(list(case))  # the factors' classes, as a derivation has them by then
    merges = _spy(monkeypatch, arithmetic, "_merged_product")
    keys = _spy(monkeypatch, builder, "key")
    results = [builder.product(list(case)) for case in cases]
    assert merges == [] and keys == []
    monkeypatch.undo()
    for got, case in zip(results, cases, strict=True):
        assert_identical(got, sympy.Mul(*case))


def test_cell_times_a_product_it_sorts_inside_is_not_merged_directly() -> None:
    # a factor of the product sorts before the cell (a Symbol before a Derivative, a
    # Heaviside before an Indexed), or Mul would combine it (a power of the same cell):
    # each is SymPy's product all the same
    builder = CanonicalBuilder()
    up = sympy.Derivative(LOSS, Z[1, 1])
    x = sympy.Symbol("x")
    step = sympy.Heaviside(A[1, 1] - A[1, 2], 0)
    cases = [
        (up, sympy.Mul(x, step)),  # x, then up, then the step
        (A[2, 2], sympy.Mul(step, sympy.Heaviside(A[1, 1] - A[2, 1], 1))),
        (A[2, 2], sympy.Mul(A[2, 2] ** 2, step)),
        (up, sympy.Mul(2, step)),
    ]
    for first, rest in cases:
        for _ in range(2):  # the second time with every class known
            assert_identical(builder.product([first, rest]), sympy.Mul(first, rest))


def test_cell_times_a_product_of_disjoint_classes_is_merged_not_rebuilt(monkeypatch) -> None:
    # a Heaviside sorts before an Indexed: no shortcut, but the classes are disjoint, so
    # the factors are merged by class order rather than handed to Mul
    builder = CanonicalBuilder()
    step = sympy.Heaviside(A[1, 1] - A[1, 2], 0)
    rest = sympy.Mul(step, sympy.Heaviside(A[1, 1] - A[2, 1], 1))
    builder.product([A[2, 2], rest])
    merges = _spy(monkeypatch, arithmetic, "_merged_product")
    got = builder.product([A[2, 2], rest])
    assert len(merges) == 1
    monkeypatch.undo()
    assert_identical(got, sympy.Mul(A[2, 2], rest))
