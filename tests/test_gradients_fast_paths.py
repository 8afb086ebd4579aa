"""The chain rule's quick paths are taken: speed is held to benchmark targets.

Each test spies (``pytest.MonkeyPatch``) on the general path a quick path avoids, and
checks the derivative against ``sympy.diff``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import sympy

from convviz import gradients
from convviz.arithmetic import CanonicalBuilder
from convviz.gradients import _derivative_of_one, cells_in, chain_rule

a = sympy.IndexedBase("a")
w = sympy.IndexedBase("w")
L = sympy.Symbol("L")


def _raising(what: str) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{what} was called: the quick path was not taken")

    return fail


@pytest.fixture
def no_diff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``sympy.diff`` (the general path) raises; references are computed before."""
    monkeypatch.setattr(sympy, "diff", _raising("sympy.diff"))
    yield


@pytest.fixture
def no_evaluation(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts evaluations of ``Heaviside`` and ``Max`` nodes (costly, skipped by the fast path)."""
    calls: list[str] = []
    heaviside_eval = sympy.Heaviside.eval.__func__  # type: ignore[attr-defined]
    collapse = sympy.Max._collapse_arguments.__func__  # type: ignore[attr-defined]

    def counted_heaviside(cls: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append("Heaviside")
        return heaviside_eval(cls, *args, **kwargs)

    def counted_collapse(cls: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append("Max")
        return collapse(cls, *args, **kwargs)

    monkeypatch.setattr(sympy.Heaviside, "eval", classmethod(counted_heaviside))
    monkeypatch.setattr(sympy.Max, "_collapse_arguments", classmethod(counted_collapse))
    return calls


def test_cells_in_a_node_made_only_of_cells_takes_the_quick_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pooled = sympy.Max(a[0], a[1], w[2])
    activated = sympy.exp(a[3])
    expected = {pooled: {a[0], a[1], w[2]}, activated: {a[3]}}
    monkeypatch.setattr(sympy.Max, "atoms", _raising("Max.atoms"))
    monkeypatch.setattr(sympy.exp, "atoms", _raising("exp.atoms"))
    for node, cells in expected.items():
        assert cells_in(node) == frozenset(cells)


def test_max_of_distinct_cells_takes_the_quick_path(no_diff: None) -> None:
    del no_diff
    cases = [
        (sympy.Max(a[0], a[1]), a[0]),
        (sympy.Max(a[0], a[1], a[2]), a[1]),
        (sympy.Max(a[0], 0), a[0]),
        (sympy.Max(a[0], a[1], 0), a[1]),
        (sympy.Max(L, sympy.Symbol("M"), sympy.Symbol("N")), L),
    ]
    references = []
    for node, variable in cases:
        references.append(sympy.Derivative(node, variable).doit())
    for (node, variable), reference in zip(cases, references, strict=True):
        assert _derivative_of_one(node, variable) == reference


def test_max_of_distinct_cells_is_differentiated_without_evaluation(
    no_evaluation: list[str],
) -> None:
    cases = [
        (sympy.Max(a[0], a[1]), a[0], "Heaviside(a[0] - a[1])"),
        (sympy.Max(a[0], a[1], a[2]), a[0], "Heaviside(a[0] - Max(a[1], a[2]))"),
        (sympy.Max(a[0], 0), a[0], "Heaviside(a[0])"),
        (sympy.Max(a[0], a[1], 0), a[0], "Heaviside(a[0] - Max(0, a[1]))"),
        (sympy.Max(L, sympy.Symbol("M")), L, "Heaviside(L - M)"),
        (sympy.Max(L, sympy.Symbol("M"), 0), L, "Heaviside(L - Max(0, M))"),
    ]
    for node, variable, printed in cases:
        no_evaluation.clear()
        found = _derivative_of_one(node, variable)
        assert no_evaluation == [], (node, no_evaluation)
        names = {"a": a, "L": L, "M": sympy.Symbol("M")}
        assert sympy.sympify(str(found), locals=names) == sympy.sympify(printed, locals=names)
        assert found == sympy.diff(node, variable)


def test_max_holding_an_equal_but_distinct_cell_takes_the_quick_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = sympy.Max(a[0], a[1])
    reference = sympy.diff(node, a[0])
    sympy.core.cache.clear_cache()
    variable = sympy.Indexed(a, 0)
    if any(arg is variable for arg in node.args):  # pragma: no cover - cache kept it
        pytest.skip("sympy returned the same object")
    monkeypatch.setattr(sympy, "diff", _raising("sympy.diff"))
    assert _derivative_of_one(node, variable) == reference


def _spy(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[Any]:
    calls: list[Any] = []
    original = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def _reference(outputs: Any, upstream: Any, variable: Any) -> Any:
    return sympy.expand(
        sum(u * sympy.diff(z, variable) for z, u in zip(outputs.flat, upstream.flat, strict=True))
    )


def test_product_of_distinct_plain_cells_takes_the_quick_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs = np.array([a[0] * w[0] + a[1] * w[1], a[0] * w[1] * a[2]], dtype=object)
    upstream = np.array([sympy.Symbol("g0"), sympy.Symbol("g1")], dtype=object)
    variables = [np.array([a[0], a[1], a[2]], dtype=object), np.array([w[0], w[1]], dtype=object)]
    references = [[_reference(outputs, upstream, v) for v in arr.flat] for arr in variables]
    rule_calls: list[Any] = []

    def rule(node: Any) -> Any:
        rule_calls.append(node)
        return None

    monkeypatch.setattr(gradients, "partial", _raising("partial"))
    monkeypatch.setattr(sympy, "diff", _raising("sympy.diff"))
    found = chain_rule(outputs, upstream, variables, local_gradients=rule)
    assert rule_calls == []
    for result, expected in zip(found, references, strict=True):
        assert [sympy.expand(r) for r in result.flat] == expected


def test_repeated_plain_cell_is_not_taken_for_a_product_of_distinct_cells() -> None:
    outputs = np.array([a[0] * a[0] * w[0]], dtype=object)
    upstream = np.array([sympy.Symbol("g")], dtype=object)
    (da,) = chain_rule(outputs, upstream, [np.array([a[0]], dtype=object)])
    assert sympy.expand(da[0] - _reference(outputs, upstream, a[0])) == 0


def test_single_use_and_single_other_factor_take_the_quick_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs = np.array([a[0] * w[0], a[1] * w[1] + w[2]], dtype=object)
    upstream = np.array([sympy.Symbol("g0"), sympy.Symbol("g1")], dtype=object)
    cells = np.array([a[0], a[1]], dtype=object)
    references = [_reference(outputs, upstream, v) for v in cells.flat]
    builder = CanonicalBuilder()
    products = _spy(monkeypatch, builder, "product")
    totals = _spy(monkeypatch, builder, "total")
    (da,) = chain_rule(outputs, upstream, [cells], builder=builder)
    assert [sympy.expand(d) for d in da.flat] == references
    # one product (upstream times the other factor) per use, no sum of one use
    assert len(products) == 2
    assert totals == []


def test_layer_rule_for_a_single_node_term_takes_the_quick_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = sympy.Max(a[0], a[1])
    outputs = np.array([node], dtype=object)
    upstream = np.array([sympy.Symbol("g")], dtype=object)
    cells = np.array([a[0], a[1]], dtype=object)
    references = [_reference(outputs, upstream, v) for v in cells.flat]
    rule_calls: list[Any] = []

    def rule(found: Any) -> Any:
        rule_calls.append(found)
        return [(a[1], sympy.Heaviside(a[1] - a[0])), (a[0], sympy.Heaviside(a[0] - a[1]))]

    monkeypatch.setattr(gradients, "partial", _raising("partial"))
    (da,) = chain_rule(outputs, upstream, [cells], local_gradients=rule)
    # asked once for the node, and every cell's derivative came from that answer
    assert rule_calls == [node]
    assert [sympy.expand(d) for d in da.flat] == references


def test_a_cell_the_layer_rule_leaves_out_gets_the_general_rules() -> None:
    node = sympy.Max(a[0], a[1], a[2])
    outputs = np.array([node], dtype=object)
    upstream = np.array([sympy.Symbol("g")], dtype=object)
    cells = np.array([a[0], a[1], a[2]], dtype=object)
    marker = sympy.Symbol("own")

    def rule(found: Any) -> Any:
        return [(a[0], marker), (a[2], 2 * marker), (w[0], marker)]  # w[0]: not in the node

    (da,) = chain_rule(outputs, upstream, [cells], local_gradients=rule)
    assert da[0] == sympy.Symbol("g") * marker
    assert da[2] == 2 * sympy.Symbol("g") * marker
    # a[1], left out by the rule, is differentiated as sympy.diff would
    assert sympy.expand(da[1] - _reference(outputs, upstream, a[1])) == 0


def test_the_layer_rule_serves_every_term_of_a_sum() -> None:
    outputs = np.array([sympy.Max(a[0], a[1]) + sympy.Max(a[2], a[3])], dtype=object)
    upstream = np.array([sympy.Symbol("g")], dtype=object)
    cells = np.array([a[0], a[1], a[2], a[3]], dtype=object)
    markers = sympy.symbols("m0:4")

    def rule(node: Any) -> Any:
        return [(cell, markers[int(cell.indices[0])]) for cell in node.args]

    (da,) = chain_rule(outputs, upstream, [cells], local_gradients=rule)
    assert list(da) == [sympy.Symbol("g") * m for m in markers]


def test_an_unknown_engine_is_refused_by_name() -> None:
    outputs = np.array([a[0] * w[0]], dtype=object)
    upstream = np.array([sympy.Symbol("g")], dtype=object)
    with pytest.raises(ValueError, match=r"^chain_rule: unknown engine 'nope'$"):
        chain_rule(outputs, upstream, [np.array([a[0]], dtype=object)],
                   engine="nope")  # type: ignore[arg-type]


def test_cells_of_the_forward_expressions_are_found_without_hashing(
    monkeypatch: pytest.MonkeyPatch, indexed_hashes: list[Any]
) -> None:
    node = sympy.Max(a[0], a[1])
    outputs = np.array([node], dtype=object)
    upstream = np.array([sympy.Symbol("g")], dtype=object)
    cells = np.array(list(node.args), dtype=object)  # the very cell objects of the node

    def rule(found: Any) -> Any:
        return [(cell, sympy.S.One) for cell in found.args]

    indexed_hashes.clear()
    (da,) = chain_rule(outputs, upstream, [cells], local_gradients=rule)
    monkeypatch.undo()
    assert list(da) == [sympy.Symbol("g"), sympy.Symbol("g")]
    # each cell is hashed three times: into the wanted set, into the term's cells and to
    # check the rule's cells against them; it is filed and found again by id
    assert len(indexed_hashes) == 6



def test_chain_rule_shares_one_builder_for_composite_terms_is_built_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs = np.array([a[0] * sympy.Max(w[0], w[1]), sympy.exp(a[0]) * w[2]], dtype=object)
    upstream = np.array([sympy.Symbol("g0"), sympy.Symbol("g1")], dtype=object)
    variables = [np.array([a[0]], dtype=object), np.array([w[0], w[2]], dtype=object)]
    references = [[_reference(outputs, upstream, v) for v in arr.flat] for arr in variables]
    builder = CanonicalBuilder()
    monkeypatch.setattr(gradients, "CanonicalBuilder", _raising("CanonicalBuilder()"))
    found = chain_rule(outputs, upstream, variables, builder=builder)
    for result, expected in zip(found, references, strict=True):
        gaps = [sympy.expand(r - e) for r, e in zip(result.flat, expected, strict=True)]
        assert gaps == [0] * len(expected)


def test_max_of_several_cells_is_differentiated_without_sympy_add(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = [
        (sympy.Max(a[0], a[1], a[2]), a[0]),
        (sympy.Max(a[3], a[1], a[2], a[0]), a[2]),
    ]
    references = [sympy.diff(node, variable) for node, variable in cases]
    flattened: list[Any] = []
    flatten = sympy.Add.flatten.__func__  # type: ignore[attr-defined]

    def counted(cls: Any, seq: Any) -> Any:
        flattened.append(seq)
        return flatten(cls, seq)

    sympy.core.cache.clear_cache()  # a cached sum would hide the construction
    monkeypatch.setattr(sympy.Add, "flatten", classmethod(counted))
    found = [_derivative_of_one(node, variable) for node, variable in cases]
    assert flattened == []
    monkeypatch.undo()
    assert found == references
