"""flatten (torch.flatten / nn.Flatten): the row-major mapping, numbers, identities, errors.

The expected mapping comes from ``np.arange(...).reshape(...)`` and explicit loops written
here (or from torch when it is installed), never from convviz's own output.
"""

from __future__ import annotations

import numpy as np
import pytest
from references import bind, evaluate

from convviz.derivation import derive
from convviz.highlights import Cell
from convviz.identities import verify
from convviz.layers import layer_type
from convviz.layers.flatten import Flatten, flat_position, forward, reference
from convviz.layers.namespace import NUMERIC
from convviz.reflection import highlight_map
from convviz.spec import MAX_PRODUCTS, SpecError

SPECS = [
    pytest.param(Flatten(), id="default-2x3x3"),
    pytest.param(Flatten((3, 4)), id="map-3x4"),
    pytest.param(Flatten((1, 2, 3)), id="C1-2x3"),
    pytest.param(Flatten((3, 1, 4)), id="3x1x4"),
    pytest.param(Flatten((2, 2, 1)), id="2x2x1"),
    pytest.param(Flatten((5,)), id="vector-5"),
    pytest.param(Flatten((1, 1)), id="1x1"),
    pytest.param(Flatten((2, 3), layer=4), id="layer4"),
]


def full_of(spec):
    """(C, H, W) with C = 1 for an HxW map, (N,) for a vector: written out by hand."""
    size = spec.input_size
    return size if len(size) != 2 else (1, *size)


def display_of(spec):
    full = full_of(spec)
    return full[1:] if len(full) == 3 and full[0] == 1 else full


def display_index(spec, pos):
    """1-based display index of the 0-based full position ``pos``."""
    full = full_of(spec)
    if len(full) == 3 and full[0] == 1:
        pos = pos[1:]
    return tuple(int(p) + 1 for p in pos)


def positions(spec):
    """Each full position with its 1-based place in the flattened vector, from numpy."""
    full = full_of(spec)
    order = np.arange(1, int(np.prod(full)) + 1).reshape(full)
    return [(pos, int(order[pos])) for pos in np.ndindex(*full)]


def loop_flatten(x):
    out = []
    if x.ndim == 1:
        return np.array(list(x))
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            for j in range(x.shape[2]):
                out.append(x[c, i, j])
    return np.array(out)


# -------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("spec", SPECS)
def test_shapes(spec):
    full, display = full_of(spec), display_of(spec)
    n = int(np.prod(full))
    for role in ("input", "grad_input"):
        assert spec.full_shape(role) == full
        assert spec.display_shape(role) == display
    for role in ("output", "grad_output"):
        assert spec.full_shape(role) == (n,)
        assert spec.display_shape(role) == (n,)
    assert spec.products == n
    assert spec.size == n


def test_declaration():
    flatten = layer_type("flatten")
    assert flatten.torch_name == "Flatten"
    assert flatten.spec_class is Flatten
    assert Flatten.TYPE == "flatten"
    assert flatten.rank == 45
    assert flatten.op_names == ("forward", "da")
    assert set(flatten.roles) == {"input", "output", "grad_output", "grad_input"}
    assert {a.role: a.short for a in flatten.all_arrays} == {
        "input": "a", "output": "f", "grad_output": "df", "grad_input": "da",
    }
    assert {a.role: a.label(Flatten(layer=2)) for a in flatten.arrays} == {
        "input": "a^{[2]}", "output": "f^{[2]}",
    }
    for op in flatten.ops:
        assert len(op.operators) == len(op.operands)
    assert flatten.variables == ("input",)


def test_describe_and_slug():
    assert Flatten().describe() == "2x3x3 input flattened to 18 cells"
    assert Flatten((1, 4, 4)).describe() == "4x4 input flattened to 16 cells"
    assert Flatten((5,)).describe() == "vector of 5 cells (already flat)"
    assert Flatten().slug() == "2x3x3"
    assert Flatten((4, 4), layer=2).slug() == "4x4_l2"


# --------------------------------------------------------------------------- options
def test_build():
    flatten = layer_type("flatten")
    assert flatten.build({}) == Flatten((2, 3, 3), layer=1)
    assert flatten.build({"input": "4x5"}) == Flatten((4, 5))
    assert flatten.build({"input": "3x4x5", "layer": 2}) == Flatten((3, 4, 5), layer=2)
    assert flatten.build({"input": 7}) == Flatten((7,))
    assert flatten.build({"input": "1x3x3"}).display_shape("input") == (3, 3)


@pytest.mark.parametrize(
    ("values", "key", "rule"),
    [
        ({"input": "0x3"}, "input", "at least 1"),
        ({"input": "0"}, "input", "at least 1"),
        ({"input": "2x3x4x5"}, "input", "expected N or NxN or NxNxN"),
        ({"input": "3by3"}, "input", "expected sizes like"),
        ({"input": "600x600"}, "input", "limit"),
        ({"layer": "0"}, "layer", "must be a positive integer"),
        ({"outputs": "3"}, "outputs", "not an option of flatten"),
    ],
)
def test_build_errors(values, key, rule):
    with pytest.raises(SpecError) as err:
        layer_type("flatten").build(values)
    assert err.value.field_name == key
    assert rule in err.value.rule


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"input_size": (0, 3)}, "input_size", "at least 1"),
        ({"input_size": (2, 3, 4, 5)}, "input_size", "must be (N,), (H, W) or (C, H, W)"),
        ({"input_size": ()}, "input_size", "must be (N,), (H, W) or (C, H, W)"),
        ({"input_size": "3x3"}, "input_size", "must be (N,), (H, W) or (C, H, W)"),
        ({"input_size": (2.0, 3)}, "input_size", "must be (N,), (H, W) or (C, H, W)"),
        ({"layer": 0}, "layer", "must be a positive integer, got 0"),
        ({"layer": True}, "layer", "must be a positive integer"),
    ],
)
def test_spec_errors(kwargs, field, rule):
    with pytest.raises(SpecError) as err:
        Flatten(**kwargs)
    assert err.value.field_name == field
    assert rule in err.value.rule


def test_size_limit():
    Flatten((MAX_PRODUCTS,))
    with pytest.raises(SpecError) as err:
        Flatten((MAX_PRODUCTS + 1,))
    assert err.value.field_name == "input_size"
    assert f"{MAX_PRODUCTS + 1:,}" in err.value.rule


def test_list_input_size_becomes_a_tuple():
    assert Flatten([2, 3]).input_size == (2, 3)  # type: ignore[arg-type]
    assert hash(Flatten([2, 3])) == hash(Flatten((2, 3)))  # type: ignore[arg-type]


# ------------------------------------------------------------------- flat_position
@pytest.mark.parametrize("spec", SPECS)
def test_flat_position_matches_numpy_reshape(spec):
    for pos, place in positions(spec):
        assert flat_position(spec, display_index(spec, pos)) == place
    # every place is used exactly once
    places = sorted(flat_position(spec, display_index(spec, pos)) for pos, _ in positions(spec))
    assert places == list(range(1, spec.size + 1))


def test_flat_position_examples():
    assert flat_position(Flatten((2, 3, 3)), (1, 1, 1)) == 1
    assert flat_position(Flatten((2, 3, 3)), (1, 2, 1)) == 4
    assert flat_position(Flatten((2, 3, 3)), (2, 1, 1)) == 10
    assert flat_position(Flatten((2, 3, 3)), (2, 3, 3)) == 18
    assert flat_position(Flatten((3, 4)), (2, 1)) == 5
    assert flat_position(Flatten((1, 3, 4)), (2, 1)) == 5
    assert flat_position(Flatten((5,)), (4,)) == 4


@pytest.mark.parametrize(
    ("spec", "index"),
    [
        (Flatten((2, 3, 3)), (0, 1, 1)),
        (Flatten((2, 3, 3)), (3, 1, 1)),
        (Flatten((2, 3, 3)), (1, 1)),
        (Flatten((1, 3, 3)), (1, 1, 1)),
        (Flatten((3, 4)), (4, 1)),
        (Flatten((5,)), (6,)),
    ],
)
def test_flat_position_rejects_cells_outside(spec, index):
    with pytest.raises(IndexError):
        flat_position(spec, index)


# ------------------------------------------------------------------- highlight maps
@pytest.mark.parametrize("spec", SPECS)
def test_forward_highlights_one_input_cell(spec):
    d = derive(spec)
    steps = {s.target: s for s in highlight_map(d, "forward").steps}
    assert list(steps) == [Cell("output", (k,)) for k in range(1, spec.size + 1)]
    for pos, place in positions(spec):
        step = steps[Cell("output", (place,))]
        cell = display_index(spec, pos)
        assert dict(step.highlights) == {"input": (cell,)}
        assert step.terms == ((Cell("input", cell),),)


@pytest.mark.parametrize("spec", SPECS)
def test_da_highlights_the_df_cell_it_came_from(spec):
    d = derive(spec)
    steps = {s.target: s for s in highlight_map(d, "da").steps}
    assert len(steps) == spec.size
    for pos, place in positions(spec):
        step = steps[Cell("grad_input", display_index(spec, pos))]
        assert dict(step.highlights) == {"grad_output": ((place,),)}
        assert step.terms == ((Cell("grad_output", (place,)),),)


def test_display_order_of_da_targets_is_row_major():
    d = derive(Flatten((2, 2, 3)))
    targets = [s.target.index for s in highlight_map(d, "da").steps]
    assert targets == [tuple(int(i) + 1 for i in p) for p in np.ndindex(2, 2, 3)]


# -------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("spec", SPECS)
def test_numbers(spec):
    d = derive(spec)
    rng = np.random.default_rng(spec.size)
    x = rng.standard_normal(full_of(spec))
    g = rng.standard_normal(spec.size)
    values = bind(d.input, x) | bind(d.grad_output, g)
    out = evaluate(d.output, values)
    da = evaluate(d.grad_input, values)
    np.testing.assert_array_equal(out, loop_flatten(x))
    np.testing.assert_array_equal(out, x.reshape(-1))
    # finite differences of L = sum(g * flatten(x))
    fd = np.zeros_like(x)
    step = 1e-6
    for pos in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[pos] += step
        down[pos] -= step
        fd[pos] = (np.sum(g * loop_flatten(up)) - np.sum(g * loop_flatten(down))) / (2 * step)
    np.testing.assert_allclose(da, fd, atol=1e-8)
    # each da cell is the g cell at its flat place
    for pos, place in positions(spec):
        assert da[pos] == g[place - 1]


@pytest.mark.parametrize("spec", SPECS)
def test_numeric_forward_and_reference(spec):
    x = np.random.default_rng(1).standard_normal(full_of(spec))
    expected = loop_flatten(x)
    got = forward(NUMERIC, spec, {"input": x})["output"]
    assert got.shape == (spec.size,)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(reference(spec, {"input": x}), expected)
    assert layer_type("flatten").reference is reference


# ----------------------------------------------------------------------- identities
@pytest.mark.parametrize("spec", SPECS)
def test_identities_hold(spec):
    checks = {c.op: c for c in verify(derive(spec))}
    assert set(checks) == {"da", "engines"}
    assert all(c.holds is True for c in checks.values()), checks


def test_identity_latex_names_the_display_shape():
    [check] = verify(derive(Flatten()), engines=False)
    assert check.latex == (
        r"\frac{\partial \mathcal{L}}{\partial a^{[1]}} = \operatorname{reshape}\left("
        r"\frac{\partial \mathcal{L}}{\partial f^{[1]}}, 2 \times 3 \times 3\right)"
    )
    [check] = verify(derive(Flatten((1, 4, 5))), engines=False)
    assert check.latex.endswith(r", 4 \times 5\right)")


def test_identity_catches_a_swap():
    import dataclasses

    d = derive(Flatten((2, 2)))
    swapped = d.grad_input.copy()
    swapped[0, 0, 0], swapped[0, 0, 1] = swapped[0, 0, 1], swapped[0, 0, 0]
    tampered = dataclasses.replace(d, arrays=dict(d.arrays, grad_input=swapped))
    [check] = verify(tampered, engines=False)
    assert check.holds is False
    assert "(0, 0, 0)" in check.detail


def test_latex_translates_to_typst():
    from convviz.rendering.typst import latex_to_typst

    flatten = layer_type("flatten")
    spec = Flatten()
    snippets = [op.caption for op in flatten.ops]
    snippets += [o for op in flatten.ops for o in op.operators]
    snippets += [i.latex(spec) for i in flatten.identities]
    snippets += [a.label(spec) for a in flatten.all_arrays]
    for snippet in snippets:
        assert latex_to_typst(snippet)


# ---------------------------------------------------------------------------- torch
def test_matches_torch_flatten():
    torch = pytest.importorskip("torch")
    for spec in (Flatten(), Flatten((3, 4)), Flatten((5,))):
        x = np.random.default_rng(2).standard_normal(full_of(spec))
        expected = torch.flatten(torch.tensor(x)).numpy()
        batched = torch.nn.Flatten()(torch.tensor(x)[None]).numpy()[0]
        d = derive(spec)
        got = evaluate(d.output, bind(d.input, x))
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(got, batched)
