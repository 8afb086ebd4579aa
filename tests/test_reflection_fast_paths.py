"""The reflector's caches and quick paths are taken: highlight maps are held to speed targets.

Each test spies (``pytest.MonkeyPatch``) on the general path that a cache or quick path
avoids, and checks the terms against cells worked out by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sympy

from convviz import reflection
from convviz.derivation import GC_PAUSE_PRODUCTS, derive
from convviz.highlights import Cell
from convviz.reflection import ReflectionError, Reflector, highlight_map, step_for
from convviz.spec import ConvSpec

a = sympy.IndexedBase("a")
w = sympy.IndexedBase("w")
z = sympy.IndexedBase("z")
b = sympy.Symbol("b")
L = sympy.Symbol("L")
ONE = sympy.S.One


def g(*index: int) -> sympy.Derivative:
    """The upstream gradient dL/dz[index], a cell of role grad_output."""
    return sympy.Derivative(L, z[index])


def A(*index: int) -> Cell:
    return Cell("input", index)


def W(*index: int) -> Cell:
    return Cell("kernel", index)


def B() -> Cell:
    return Cell("bias", ())


def DZ(*index: int) -> Cell:
    return Cell("grad_output", index)


def make() -> Reflector:
    return Reflector({a: "input", w: "kernel", b: "bias"}, {z: "grad_output"})


def spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """Record the node of every call of ``Reflector.<name>`` (the calls still happen)."""
    calls: list[Any] = []
    original = getattr(Reflector, name)

    def spied(self: Reflector, node: Any, *args: Any) -> Any:
        calls.append(node)
        return original(self, node, *args)

    monkeypatch.setattr(Reflector, name, spied)
    return calls


def raising(what: str) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{what} was called: the quick path was not taken")

    return fail


class CountingDict(dict):  # type: ignore[type-arg]
    """A dict that counts lookups and stores."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.gets = 0
        self.sets: Counter[Any] = Counter()

    def get(self, key: Any, default: Any = None) -> Any:
        self.gets += 1
        return super().get(key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.sets[key] += 1
        super().__setitem__(key, value)


# ------------------------------------------------------------------ products of cells
def test_a_product_of_seen_cells_takes_the_quick_path(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make()
    expr = w[1] * a[0] * a[2]
    assert r.terms(expr) == [(ONE, (A(0), A(2), W(1)))]
    by_id = CountingDict(r._by_id)
    nodes = CountingDict(r._cells)
    monkeypatch.setattr(r, "_by_id", by_id)
    monkeypatch.setattr(r, "_cells", nodes)
    monkeypatch.setattr(Reflector, "_cell_hit", raising("_cell_hit"))
    monkeypatch.setattr(Reflector, "_collect", raising("_collect"))
    monkeypatch.setattr(Reflector, "_action", raising("_action"))
    assert r.terms(expr) == [(ONE, (A(0), A(2), W(1)))]
    assert by_id.gets == 3  # one lookup by id per factor, no node hashed
    assert nodes.gets == 0
    assert r.plain


def test_a_sum_of_products_of_cells_takes_the_quick_path(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make()
    walks = spy(monkeypatch, "_walk")
    expr = a[0] * w[1] + a[1] * w[0] + a[2] * w[2] * a[0]
    assert r.terms(expr) == [
        (ONE, (A(0), A(2), W(2))),
        (ONE, (A(0), W(1))),
        (ONE, (A(1), W(0))),
    ]
    assert walks == [expr]


def test_a_seen_cell_of_a_sum_is_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make()
    expr = a[0] + b + a[1] * w[1]
    expected = [(ONE, (A(0),)), (ONE, (A(1), W(1))), (ONE, (B(),))]
    assert r.terms(expr) == expected
    walks = spy(monkeypatch, "_walk")
    quick = spy(monkeypatch, "_quick_cell")
    assert r.terms(expr) == expected
    assert walks == [expr]
    assert quick == []


def test_a_single_term_is_not_sorted(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make()
    assert r.terms(a[3]) == [(ONE, (A(3),))]
    keys = spy(monkeypatch, "_sort_key")
    cells = spy(monkeypatch, "_cell")
    quick = spy(monkeypatch, "_quick_cell")
    assert r.terms(a[3]) == [(ONE, (A(3),))]
    assert r.terms(b) == [(ONE, (B(),))]
    roles = CountingDict(r.roles)
    monkeypatch.setattr(r, "roles", roles)
    assert r.terms(b) == [(ONE, (B(),))]
    assert keys == []
    assert quick == []
    assert cells == [b, b]  # _walk_Symbol asks _cell, which remembers the cell
    assert roles.gets == 0


def test_an_integer_indexed_cell_takes_the_quick_path(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make()
    cells = spy(monkeypatch, "_cell")
    assert r.terms(a[1, 2]) == [(ONE, (A(1, 2),))]
    assert r.terms(a[0] * w[2, 1]) == [(ONE, (A(0), W(2, 1)))]
    assert cells == []


def test_the_method_table_is_remembered_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make()
    methods = CountingDict()
    monkeypatch.setattr(r, "_methods", methods)
    exprs = [
        sympy.exp(a[0]),
        sympy.exp(a[0] * sympy.exp(w[1])) + a[1] * w[0],
        sympy.Max(a[2] * w[2], a[1]) * b,
    ]
    assert r.terms(exprs[0]) == [(ONE, (A(0),))]
    assert r.terms(exprs[1]) == [(ONE, (A(0), W(1))), (ONE, (A(1), W(0)))]
    assert r.terms(exprs[2]) == [(ONE, (A(1), A(2), W(2), B()))]
    calls = spy(monkeypatch, "_method")
    for expr in exprs:
        r.terms(expr)
    assert calls == []
    assert methods.sets and max(methods.sets.values()) == 1


def test_a_composite_term_walked_again_is_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make()
    exprs = {
        sympy.exp(a[0] * w[1]): [(ONE, (A(0), W(1)))],
        sympy.Max(sympy.exp(a[0]), w[0], 0): [(ONE, (A(0), W(0)))],
        2 * a[1] * w[1] + sympy.log(a[2]) * sympy.exp(w[2]): [
            (2, (A(1), W(1))),
            (ONE, (A(2), W(2))),
        ],
        sympy.Max(a[0], 2 * a[1] * sympy.exp(w[0])) * g(1): [
            (ONE, (A(0), A(1), W(0), DZ(1)))
        ],
    }
    for expr, expected in exprs.items():
        assert r.terms(expr) == expected
    walks = spy(monkeypatch, "_walk")
    hits = spy(monkeypatch, "_cell_hit")
    actions = spy(monkeypatch, "_action")
    methods = spy(monkeypatch, "_method")
    for expr, expected in exprs.items():
        walks.clear()
        assert r.terms(expr) == expected
        # only the expression, its terms that are not plain products, and their Max
        # factors (Max is not a Function, _walk_Mul dispatches it) are walked
        terms = sympy.Add.make_args(expr)
        maxima = [f for t in terms for f in sympy.Mul.make_args(t) if isinstance(f, sympy.Max)]
        assert [n for n in walks if n not in (expr, *terms, *maxima)] == []
        assert walks[0] == expr
    assert hits == []
    assert actions == []
    assert methods == []


def test_constants_and_composites_need_no_method_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make()
    methods = spy(monkeypatch, "_method")
    walks = spy(monkeypatch, "_walk")
    expr = sympy.exp(a[0] * 2 * sympy.exp(w[1])) * sympy.Max(a[1], 0)
    assert r.terms(expr) == [(ONE, (A(0), A(1), W(1)))]
    found = Counter(type(n) for n in methods)
    assert not any(issubclass(t, sympy.Number) for t in found), found
    assert found[sympy.exp] == 0
    # the factors exp and Max (not a Function, but walked the same way) are collected
    # directly: only the product itself is dispatched
    assert [type(n) for n in walks if not isinstance(n, sympy.Indexed)] == [sympy.Mul]


def test_an_upstream_derivative_is_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make()
    dz = sympy.Derivative(L, z[1, 2])
    assert r.terms(dz * a[0]) == [(ONE, (A(0), DZ(1, 2)))]
    assert r.terms(dz) == [(ONE, (DZ(1, 2),))]
    cells = spy(monkeypatch, "_cell")
    assert r.terms(dz) == [(ONE, (DZ(1, 2),))]
    assert cells == []


def test_an_upstream_derivative_by_one_cell_takes_the_quick_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = make()
    dz = sympy.Derivative(L, z[0, 1])
    monkeypatch.setattr(sympy.Derivative, "variables", property(raising("variables")))
    assert r.terms(dz) == [(ONE, (DZ(0, 1),))]


def test_a_cell_met_first_inside_a_composite_is_not_dispatched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = make()
    walks = spy(monkeypatch, "_walk")
    expr = sympy.exp(a[0]) * sympy.Max(a[1], w[2]) * g(1)
    assert r.terms(expr) == [(ONE, (A(0), A(1), W(2), DZ(1)))]
    # integer-indexed cells are read directly; only the product and the upstream
    # derivative (not an Indexed) go through their methods
    assert [type(n) for n in walks] == [sympy.Mul, sympy.Derivative]


# ------------------------------------------------------------------ step_for
def test_a_step_of_two_seen_cells_takes_the_quick_path(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make()
    r.terms(a[0] * g(1) + w[1] * g(1) + a[1])
    monkeypatch.setattr(Reflector, "terms", raising("terms"))
    step = step_for(r, W(0), a[0] * g(1))
    assert step.terms == ((A(0), DZ(1)),)
    assert step.coefficients == ("1",)
    assert step.highlights == {"input": ((0,),), "grad_output": ((1,),)}
    same_role = step_for(r, W(0), w[1] * a[0])
    assert same_role.highlights == {"input": ((0,),), "kernel": ((1,),)}
    pair = step_for(r, W(0), a[1] * a[0])
    assert pair.terms == ((A(0), A(1)),)
    assert pair.highlights == {"input": ((0,), (1,))}


class Counted(sympy.Function):
    """A function node that counts how often it is hashed."""

    hashes = 0

    def __hash__(self) -> int:
        Counted.hashes += 1
        return super().__hash__()


def test_a_composite_factor_is_not_hashed_to_find_a_cell() -> None:
    r = make()
    expr = Counted(a[0]) * w[1]
    assert r.terms(expr) == [(ONE, (A(0), W(1)))]
    Counted.hashes = 0
    assert r.terms(expr) == [(ONE, (A(0), W(1)))]
    step = step_for(r, W(0), expr, expression=False)
    assert step.terms == ((A(0), W(1)),)
    # the composite factor on the right of the product (b sorts before it)
    right = b * Counted(a[1])
    assert r.terms(right) == [(ONE, (A(1), B()))]
    Counted.hashes = 0
    step = step_for(r, W(0), right, expression=False)
    assert step.terms == ((A(1), B()),)
    assert Counted.hashes == 0


# ------------------------------------------------------------------ errors and caches
def test_an_undefined_function_error_names_the_whole_expression() -> None:
    f = sympy.Function("f")
    x = sympy.Symbol("x")
    for expr in (sympy.exp(f(a[0])) * w[0], (a[1] + sympy.exp(f(a[0]))) * w[0],
                 sympy.Integral(a[1], x) * w[0]):
        with pytest.raises(ReflectionError) as caught:
            make().terms(expr)
        assert sympy.sstr(expr) in str(caught.value)


def test_a_coefficient_of_an_unevaluated_product_multiplies() -> None:
    expr = sympy.Mul(2, 3, a[0], w[1], evaluate=False)
    assert make().terms(expr) == [(6, (A(0), W(1)))]


def test_the_reflector_of_a_derivation_is_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    original = Reflector.for_derivation.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Reflector], derivation: Any) -> Reflector:
        made.append(derivation)
        return original(cls, derivation)

    monkeypatch.setattr(Reflector, "for_derivation", classmethod(counted))
    d = derive(ConvSpec((3, 3), (2, 2)))
    forward = highlight_map(d, "forward")
    highlight_map(d, "da")
    highlight_map(d, "forward")
    assert len(made) == 1
    # z[1,1] = a11 w11 + a12 w12 + a21 w21 + a22 w22 + b, by hand
    first = forward.steps[0]
    assert first.highlights["input"] == ((1, 1), (1, 2), (2, 1), (2, 2))
    assert first.highlights["kernel"] == ((1, 1), (1, 2), (2, 1), (2, 2))
    assert reflection._reflector_of(d) is reflection._reflector_of(d)


@pytest.mark.parametrize(
    ("products", "paused"),
    [(GC_PAUSE_PRODUCTS - 1, False), (GC_PAUSE_PRODUCTS, True), (GC_PAUSE_PRODUCTS + 1, True)],
)
def test_a_large_map_is_built_with_the_garbage_collector_paused(
    monkeypatch: pytest.MonkeyPatch, products: int, paused: bool
) -> None:
    d = derive(ConvSpec((3, 3), (2, 2)))
    pauses: list[Any] = []
    original = reflection.paused_gc

    def spied(pause: bool = True) -> Any:
        pauses.append(pause)
        return original(pause)

    monkeypatch.setattr(reflection, "paused_gc", spied)
    monkeypatch.setattr(ConvSpec, "products", property(lambda spec: products))
    hmap = highlight_map(d, "db")
    assert pauses == [paused]
    # db[1] = sum of the four dL/dz cells, by hand
    (step,) = hmap.steps
    assert step.highlights == {"grad_output": ((1, 1), (1, 2), (2, 1), (2, 2))}
