"""Property tests: ``chain_rule`` agrees with ``sympy.diff`` on random expression trees.

The occurrence index of :mod:`convviz.gradients` must find a cell wherever it occurs in a
term: as a plain factor, inside ``Max``, a function (``exp``, ``log``, ``Heaviside``), a
``Piecewise`` or a power of a sum. The reference here is independent of that index:
``sum_k u_k * sympy.diff(z_k, v)`` on each whole output expression. Both engines are compared
with it numerically, at random points away from the kinks of ``Max``, ``Heaviside`` and the
``Piecewise`` conditions, and structurally: a cell whose reference gradient is non-zero never
gets an identically-zero gradient.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from convviz.gradients import chain_rule

A = sympy.IndexedBase("a", real=True)
CELLS = [A[i] for i in range(1, 5)]
a1, a2, a3, a4 = CELLS

Z = sympy.IndexedBase("z", real=True)
LOSS = sympy.Function("L")(*(Z[k] for k in range(3)))

ENGINES = ("product-rule", "sympy")
DIGITS = 50  # working precision of the numeric comparison
TOLERANCE = sympy.Float("1e-20")
KINK = 1e-6  # points this close to a tie, kink or jump are not used
POINTS = 3  # points compared per example


# ---------------------------------------------------------------------------- expressions

constants = st.sampled_from(
    [sympy.S.One, sympy.Integer(2), sympy.Integer(-1), sympy.Rational(1, 2)]
)
leaves = st.one_of(st.sampled_from(CELLS), st.sampled_from(CELLS), constants)


def _extend(children: st.SearchStrategy[sympy.Expr]) -> st.SearchStrategy[sympy.Expr]:
    two = st.tuples(children, children)
    three = st.tuples(children, children, children)
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: sympy.Add(*xs)),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: sympy.Mul(*xs)),
        st.tuples(children, st.sampled_from([2, 3])).map(lambda t: t[0] ** t[1]),
        # powers of sums, and negative / fractional powers of positive things
        st.tuples(children, children, st.sampled_from([2, 3])).map(
            lambda t: (t[0] + t[1]) ** t[2]
        ),
        children.map(lambda x: 1 / (1 + x**2)),
        children.map(lambda x: sympy.sqrt(1 + x**2)),
        # Max of 2-4 arguments, and ReLU
        st.lists(children, min_size=2, max_size=4).map(lambda xs: sympy.Max(*xs)),
        children.map(lambda x: sympy.Max(0, x)),
        two.map(lambda t: sympy.Min(*t)),
        # functions
        children.map(sympy.exp),
        children.map(lambda x: 1 / (1 + sympy.exp(-x))),
        children.map(lambda x: sympy.log(1 + x**2)),
        two.map(lambda t: sympy.log(sympy.exp(t[0]) + sympy.exp(t[1]))),
        # steps and branches
        children.map(sympy.Heaviside),
        st.tuples(children, st.sampled_from([0, sympy.Rational(1, 2), 1])).map(
            lambda t: sympy.Heaviside(t[0], t[1])
        ),
        two.map(lambda t: t[0] * sympy.Heaviside(t[1])),
        two.map(lambda t: sympy.Piecewise((t[0], t[1] > 0), (t[0] * t[1], True))),
        three.map(lambda t: sympy.Piecewise((t[0], t[1] > t[2]), (t[2], True))),
    )


expressions = st.recursive(leaves, _extend, max_leaves=6)
output_lists = st.lists(expressions, min_size=1, max_size=3)


# ----------------------------------------------------------------------------- reference


def upstream_of(count: int) -> np.ndarray:
    up = np.empty(count, dtype=object)
    for k in range(count):
        up[k] = sympy.Derivative(LOSS, Z[k])
    return up


def variable_arrays(fresh: bool = False) -> list[np.ndarray]:
    """The four cells as two arrays of different shapes (``chain_rule`` takes several).

    The second array ends in a zero, which ``chain_rule`` skips. With ``fresh`` the cells
    are new ``Indexed`` objects, equal to but not identical with those in the outputs (the
    product rule has an identity fast path).
    """
    cells = [A[i] for i in range(1, 5)] if fresh else CELLS
    first = np.empty(1, dtype=object)
    first[0] = cells[0]
    second = np.empty((2, 2), dtype=object)
    second[0, 0], second[0, 1], second[1, 0] = cells[1:]
    second[1, 1] = sympy.S.Zero
    return [first, second]


def reference(outputs: list[sympy.Expr], upstream: np.ndarray, cell: Any) -> sympy.Expr:
    return sympy.Add(*(upstream[k] * sympy.diff(z, cell) for k, z in enumerate(outputs)))


def gradients(
    outputs: list[sympy.Expr], engine: str, fresh: bool = False
) -> tuple[dict[Any, sympy.Expr], np.ndarray]:
    out = np.empty(len(outputs), dtype=object)
    for k, z in enumerate(outputs):
        out[k] = z
    up = upstream_of(len(outputs))
    arrays = variable_arrays(fresh)
    result = chain_rule(out, up, arrays, engine=engine)
    assert len(result) == len(arrays)
    got: dict[Any, sympy.Expr] = {}
    for array, grad in zip(arrays, result, strict=True):
        assert grad.shape == array.shape
        for pos, cell in np.ndenumerate(array):
            if cell == 0:
                assert grad[pos] == 0
            else:
                got[cell] = grad[pos]
    assert set(got) == set(CELLS)
    return got, up


def assert_canonical(expr: sympy.Expr) -> None:
    """Every sum and product is the one SymPy's own constructors build (CanonicalBuilder)."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Add | sympy.Mul):
            rebuilt = node.func(*node.args)
            assert rebuilt == node and rebuilt.args == node.args, (expr, node, rebuilt)


def kink_quantities(exprs: list[sympy.Expr]) -> list[sympy.Expr]:
    """Quantities that must stay away from zero: Heaviside / DiracDelta arguments,
    differences of Max/Min arguments, the two sides of every relation."""
    found: list[sympy.Expr] = []
    for expr in exprs:
        for node in sympy.preorder_traversal(expr):
            if isinstance(node, sympy.Heaviside | sympy.DiracDelta | sympy.Abs | sympy.sign):
                found.append(node.args[0])
            elif isinstance(node, sympy.Max | sympy.Min):
                found.extend(p - q for p, q in combinations(node.args, 2))
            elif isinstance(node, sympy.core.relational.Relational):
                found.append(node.lhs - node.rhs)
    return [q for q in set(found) if q.free_symbols & set(CELLS)]


def numeric(expr: sympy.Expr, subs: dict[Any, sympy.Float]) -> sympy.Float:
    value = sympy.sympify(expr).xreplace(subs).evalf(DIGITS)
    assert value.is_number and value.is_real, (expr, value)
    return value


def sample_points(
    quantities: list[sympy.Expr], upstream: np.ndarray, seed: int
) -> list[dict[Any, sympy.Float]]:
    """Up to ``POINTS`` random points (cells and upstream values) away from every kink."""
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(40):
        subs: dict[Any, sympy.Float] = {
            cell: sympy.Float(float(v), DIGITS)
            for cell, v in zip(CELLS, rng.uniform(-1.5, 1.5, len(CELLS)), strict=True)
        }
        subs.update(
            {u: sympy.Float(float(v), DIGITS)
             for u, v in zip(upstream, rng.uniform(-2, 2, len(upstream)), strict=True)}
        )
        if all(abs(numeric(q, subs)) > KINK for q in quantities):
            points.append(subs)
            if len(points) == POINTS:
                break
    return points


def check(outputs: list[sympy.Expr], seed: int = 0, fresh: bool = False) -> bool:
    """Both engines against the sympy.diff reference, structurally and numerically.

    Returns False when no usable point was found (every sample sat on a kink).
    """
    up = upstream_of(len(outputs))
    refs = {cell: reference(outputs, up, cell) for cell in CELLS}
    occurring = set().union(*(sympy.sympify(z).free_symbols for z in outputs))
    results = {engine: gradients(outputs, engine, fresh)[0] for engine in ENGINES}
    for engine, got in results.items():
        for cell in CELLS:
            assert_canonical(got[cell])
            if refs[cell] != 0:
                assert got[cell] != 0, (engine, outputs, cell, refs[cell])
            if cell not in occurring:
                assert got[cell] == 0, (engine, outputs, cell, got[cell])
    quantities = kink_quantities(
        [*outputs, *refs.values(), *(g for got in results.values() for g in got.values())]
    )
    points = sample_points(quantities, up, seed)
    if not points:
        return False
    for subs in points:
        for cell in CELLS:
            want = numeric(refs[cell], subs)
            for engine, got in results.items():
                value = numeric(got[cell], subs)
                assert abs(value - want) <= TOLERANCE * (1 + abs(want)), (
                    engine, outputs, cell, got[cell], refs[cell], value, want
                )
    return True


# ------------------------------------------------------------------------ the properties

REGRESSIONS = [
    pytest.param([sympy.Max(a1, a2)], id="max"),
    pytest.param([sympy.Max(0, a1)], id="relu"),
    pytest.param([1 / (1 + sympy.exp(-a1))], id="sigmoid"),
    pytest.param([(a1 + a2) ** 2], id="square-of-sum"),
    pytest.param([a1 * sympy.exp(a2)], id="cell-times-exp"),
]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(outputs=output_lists, seed=st.integers(0, 2**16), fresh=st.booleans())
@example(outputs=[sympy.Max(a1, a2)], seed=0, fresh=False)
@example(outputs=[sympy.Max(0, a1)], seed=0, fresh=False)
@example(outputs=[1 / (1 + sympy.exp(-a1))], seed=0, fresh=False)
@example(outputs=[(a1 + a2) ** 2], seed=0, fresh=False)
@example(outputs=[a1 * sympy.exp(a2)], seed=0, fresh=False)
@example(outputs=[a1 * sympy.exp(a2)], seed=0, fresh=True)
@example(outputs=[sympy.Max(a1, a2, a3, a4), sympy.Heaviside(a1 - a3, 0) * a2],
         seed=1, fresh=False)
@example(outputs=[sympy.Piecewise((a1, a2 > 0), (a1 * a2, True)),
                  sympy.log(sympy.exp(a3) + sympy.exp(a4))], seed=2, fresh=True)
@example(outputs=[a1 * sympy.Max(a1, a2) + 2 * a3 * a4], seed=3, fresh=False)
def test_chain_rule_matches_sympy_diff(outputs, seed, fresh):
    assume(check(outputs, seed, fresh))


@pytest.mark.parametrize("fresh", [False, True], ids=["same-cells", "fresh-cells"])
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("outputs", REGRESSIONS)
def test_regressions_once_zero(outputs, engine, fresh):
    """Each of these once got gradient 0 (the index looked only at Mul factors / Pow bases)."""
    got, up = gradients(outputs, engine, fresh)
    occurring = outputs[0].free_symbols & set(CELLS)
    assert occurring
    for cell in CELLS:
        want = reference(outputs, up, cell)
        if cell in occurring:
            assert got[cell] != 0, cell
            assert want != 0, cell
        # exact agreement up to expansion (Max's derivative is Heaviside in both forms)
        assert sympy.expand(got[cell] - want) == 0, (cell, got[cell], want)
    assert check(outputs)


def test_max_gradient_is_heaviside():
    (grad,) = chain_rule(
        np.array([sympy.Max(a1, a2)], dtype=object),
        upstream_of(1),
        [np.array([a1, a2, a3], dtype=object)],
    )
    u = sympy.Derivative(LOSS, Z[0])
    assert sympy.expand(grad[0] - u * sympy.Heaviside(a1 - a2)) == 0
    assert sympy.expand(grad[1] - u * sympy.Heaviside(a2 - a1)) == 0
    assert grad[2] == 0
