"""dense (torch.nn.Linear): shapes, highlight maps, numbers, identities and spec errors.

Every expectation comes from index arithmetic or explicit loops written here (or from
torch when it is installed), never from convviz's own output.
"""

from __future__ import annotations

import numpy as np
import pytest
from references import bind, evaluate

from convviz.derivation import derive
from convviz.highlights import Cell
from convviz.identities import verify
from convviz.layers import layer_type
from convviz.layers.linear import Linear, forward, reference
from convviz.layers.namespace import NUMERIC
from convviz.reflection import highlight_map
from convviz.spec import MAX_PRODUCTS, SpecError

SPECS = [
    pytest.param(Linear(), id="default-4to3"),
    pytest.param(Linear(1, 1), id="1to1"),
    pytest.param(Linear(1, 3), id="1to3"),
    pytest.param(Linear(5, 1), id="5to1"),
    pytest.param(Linear(5, 2, bias=False), id="no-bias"),
    pytest.param(Linear(3, 4, layer=3), id="layer3"),
]


# ----------------------------------------------------------------------- independent
def loop_forward(w, a, b):
    """z_j = sum_i W[j, i] a_i + b_j, the textbook loop."""
    m, n = w.shape
    z = np.zeros(m)
    for j in range(m):
        z[j] = b[j]
        for i in range(n):
            z[j] += w[j, i] * a[i]
    return z


def finite_differences(w, a, b, g, step=1e-5):
    """Central differences of L = sum_j g_j z_j with respect to W, a and b."""
    values = {"weight": w, "input": a, "bias": b}
    grads = {}
    for name, base in values.items():
        grad = np.zeros_like(base)
        for pos in np.ndindex(base.shape):
            args = {k: v.copy() for k, v in values.items()}
            args[name][pos] += step
            up = float(np.sum(g * loop_forward(args["weight"], args["input"], args["bias"])))
            args[name][pos] -= 2 * step
            down = float(np.sum(g * loop_forward(args["weight"], args["input"], args["bias"])))
            grad[pos] = (up - down) / (2 * step)
        grads[name] = grad
    return grads


def random_point(spec, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((spec.outputs, spec.inputs))
    a = rng.standard_normal(spec.inputs)
    b = rng.standard_normal(spec.outputs) if spec.bias else np.zeros(spec.outputs)
    g = rng.standard_normal(spec.outputs)
    return w, a, b, g


def evaluated(derivation, w, a, b, g):
    values = {}
    for role, numbers in (("weight", w), ("input", a), ("bias", b), ("grad_output", g)):
        values.update(bind(derivation.array(role), numbers))
    return {
        role: evaluate(derivation.array(role), values)
        for role in ("output", "grad_weight", "grad_input", "grad_bias")
    }


# -------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("spec", SPECS)
def test_shapes_keep_every_axis(spec):
    m, n = spec.outputs, spec.inputs
    expected = {"input": (n,), "weight": (m, n), "bias": (m,), "output": (m,)}
    for role, shape in expected.items():
        assert spec.full_shape(role) == shape
        assert spec.display_shape(role) == shape
        assert spec.full_shape(f"grad_{role}") == shape
        assert spec.display_shape(f"grad_{role}") == shape
    assert spec.products == m * n


def test_registry_declaration():
    dense = layer_type("dense")
    assert dense.torch_name == "Linear"
    assert dense.spec_class is Linear
    assert Linear.TYPE == "dense"
    assert dense.rank == 50
    assert dense.op_names == ("forward", "dw", "da", "db")
    assert dense.op("db").needs == "bias"
    assert set(dense.roles) == {
        "input", "weight", "bias", "output",
        "grad_output", "grad_input", "grad_weight", "grad_bias",
    }
    shorts = {a.role: a.short for a in dense.all_arrays}
    assert shorts == {
        "input": "a", "weight": "W", "bias": "b", "output": "z",
        "grad_output": "dz", "grad_input": "da", "grad_weight": "dW", "grad_bias": "db",
    }
    for op in dense.ops:
        assert len(op.operators) == len(op.operands)  # operands + target, minus one
        assert op.caption.startswith(r"\text{")


def test_labels_follow_the_layer_number():
    spec = Linear(layer=3)
    dense = layer_type("dense")
    labels = {a.role: a.label(spec) for a in dense.arrays}
    assert labels == {"input": "a^{[2]}", "weight": "W^{[3]}", "bias": "b^{[3]}",
                      "output": "z^{[3]}"}


def test_describe_and_slug():
    assert Linear().describe() == "4 inputs, 3 outputs"
    assert Linear(1, 1, bias=False).describe() == "1 input, 1 output, no bias"
    assert Linear().slug() == "in4_out3"
    assert Linear(784, 64, bias=False, layer=2).slug() == "in784_out64_nobias_l2"


# --------------------------------------------------------------------------- options
def test_build_defaults_and_options():
    dense = layer_type("dense")
    assert dense.build({}) == Linear(inputs=4, outputs=3, bias=True, layer=1)
    assert dense.build({"input": "7", "outputs": 2, "bias": False, "layer": "2"}) == Linear(
        7, 2, bias=False, layer=2
    )
    assert dense.build({"input": 5}) == Linear(5, 3)
    assert dense.option("bias").cli == "--no-bias"
    assert dense.option("outputs").cli == "--outputs"


@pytest.mark.parametrize(
    ("values", "key", "rule"),
    [
        ({"outputs": "0"}, "outputs", "must be a positive integer"),
        ({"outputs": 0}, "outputs", "must be a positive integer"),
        ({"outputs": "-2"}, "outputs", "must be a positive integer"),
        ({"input": "0"}, "input", "at least 1"),
        ({"input": 0}, "input", "at least 1"),
        ({"input": "3x3"}, "input", "expected N"),
        ({"layer": "0"}, "layer", "must be a positive integer"),
        ({"bias": "no"}, "bias", "true or false"),
        ({"kernel": "3"}, "kernel", "not an option of dense"),
        ({"input": "1000", "outputs": "251"}, "input", "limit"),
    ],
)
def test_build_errors_name_the_option(values, key, rule):
    with pytest.raises(SpecError) as err:
        layer_type("dense").build(values)
    assert err.value.field_name == key
    assert rule in err.value.rule


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"outputs": 0}, "outputs", "must be a positive integer, got 0"),
        ({"inputs": 0}, "inputs", "must be a positive integer, got 0"),
        ({"inputs": -1}, "inputs", "must be a positive integer"),
        ({"inputs": 2.0}, "inputs", "must be a positive integer"),
        ({"inputs": True}, "inputs", "must be a positive integer"),
        ({"layer": 0}, "layer", "must be a positive integer"),
        ({"bias": 1}, "bias", "must be True or False"),
    ],
)
def test_spec_errors(kwargs, field, rule):
    with pytest.raises(SpecError) as err:
        Linear(**kwargs)
    assert err.value.field_name == field
    assert rule in err.value.rule


def test_products_limit():
    n = MAX_PRODUCTS // 10
    Linear(n, 10)  # exactly at the limit
    with pytest.raises(SpecError) as err:
        Linear(n + 1, 10)
    assert err.value.field_name == "inputs"
    assert f"{(n + 1) * 10:,}" in err.value.rule
    assert f"{MAX_PRODUCTS:,}" in err.value.rule


# ------------------------------------------------------------------- highlight maps
def _steps(derivation, op):
    return {step.target: step for step in highlight_map(derivation, op).steps}


@pytest.mark.parametrize("spec", SPECS)
def test_forward_highlights_row_of_w_all_of_a_and_b(spec):
    d = derive(spec)
    m, n = spec.outputs, spec.inputs
    steps = _steps(d, "forward")
    assert list(steps) == [Cell("output", (j,)) for j in range(1, m + 1)]
    for j in range(1, m + 1):
        step = steps[Cell("output", (j,))]
        expected = {
            "input": tuple((i,) for i in range(1, n + 1)),
            "weight": tuple((j, i) for i in range(1, n + 1)),
        }
        if spec.bias:
            expected["bias"] = ((j,),)
        assert dict(step.highlights) == expected
        terms = {frozenset(t) for t in step.terms}
        wanted = {frozenset({Cell("weight", (j, i)), Cell("input", (i,))})
                  for i in range(1, n + 1)}
        if spec.bias:
            wanted.add(frozenset({Cell("bias", (j,))}))
        assert terms == wanted
        assert len(step.terms) == n + spec.bias
        assert set(step.coefficients) == {"1"}


@pytest.mark.parametrize("spec", SPECS)
def test_dw_highlights_are_the_outer_product(spec):
    d = derive(spec)
    steps = _steps(d, "dw")
    m, n = spec.outputs, spec.inputs
    assert list(steps) == [Cell("grad_weight", (j, i))
                           for j in range(1, m + 1) for i in range(1, n + 1)]
    for (j, i), step in ((c.index, s) for c, s in steps.items()):
        assert dict(step.highlights) == {"grad_output": ((j,),), "input": ((i,),)}
        assert [set(t) for t in step.terms] == [{Cell("grad_output", (j,)), Cell("input", (i,))}]


@pytest.mark.parametrize("spec", SPECS)
def test_da_highlights_column_of_w_and_all_of_dz(spec):
    d = derive(spec)
    steps = _steps(d, "da")
    m, n = spec.outputs, spec.inputs
    assert list(steps) == [Cell("grad_input", (i,)) for i in range(1, n + 1)]
    for i in range(1, n + 1):
        step = steps[Cell("grad_input", (i,))]
        assert dict(step.highlights) == {
            "weight": tuple((j, i) for j in range(1, m + 1)),
            "grad_output": tuple((j,) for j in range(1, m + 1)),
        }
        assert {frozenset(t) for t in step.terms} == {
            frozenset({Cell("weight", (j, i)), Cell("grad_output", (j,))})
            for j in range(1, m + 1)
        }


@pytest.mark.parametrize("spec", [s for s in SPECS if s.values[0].bias])
def test_db_highlights_one_dz_each(spec):
    d = derive(spec)
    steps = _steps(d, "db")
    assert list(steps) == [Cell("grad_bias", (j,)) for j in range(1, spec.outputs + 1)]
    for cell, step in steps.items():
        assert dict(step.highlights) == {"grad_output": (cell.index,)}


def test_op_arrays_follow_the_operands():
    d = derive(Linear())
    assert list(d.arrays_for("forward")) == ["weight", "input", "bias", "output"]
    assert list(d.arrays_for("dw")) == ["grad_output", "input", "grad_weight"]
    assert list(d.arrays_for("da")) == ["weight", "grad_output", "grad_input"]
    assert list(d.arrays_for("db")) == ["grad_output", "grad_bias"]
    no_bias = derive(Linear(bias=False))
    assert list(no_bias.arrays_for("forward")) == ["weight", "input", "output"]


# -------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("spec", SPECS)
def test_numbers_match_loops_and_finite_differences(spec):
    d = derive(spec)
    w, a, b, g = random_point(spec, seed=spec.inputs * 10 + spec.outputs)
    got = evaluated(d, w, a, b, g)
    np.testing.assert_allclose(got["output"], loop_forward(w, a, b), atol=1e-12)
    fd = finite_differences(w, a, b, g)
    np.testing.assert_allclose(got["grad_weight"], fd["weight"], atol=1e-7)
    np.testing.assert_allclose(got["grad_input"], fd["input"], atol=1e-7)
    # and the textbook loops: dW[j, i] = g_j a_i, da_i = sum_j W[j, i] g_j, db = g
    dw = np.array([[g[j] * a[i] for i in range(spec.inputs)] for j in range(spec.outputs)])
    da = np.array([sum(w[j, i] * g[j] for j in range(spec.outputs))
                   for i in range(spec.inputs)])
    np.testing.assert_allclose(got["grad_weight"], dw, atol=1e-12)
    np.testing.assert_allclose(got["grad_input"], da, atol=1e-12)
    if spec.bias:
        np.testing.assert_allclose(got["grad_bias"], fd["bias"], atol=1e-7)
        np.testing.assert_allclose(got["grad_bias"], g, atol=0)
    else:
        assert all(cell == 0 for cell in d.grad_bias.flat)


@pytest.mark.parametrize("spec", SPECS)
def test_numeric_forward_and_reference_match_loops(spec):
    w, a, b, _ = random_point(spec, seed=3)
    arrays = {"input": a, "weight": w, "bias": b}
    expected = loop_forward(w, a, b)
    np.testing.assert_allclose(forward(NUMERIC, spec, arrays)["output"], expected, atol=1e-12)
    np.testing.assert_allclose(reference(spec, arrays), expected, atol=1e-12)
    assert layer_type("dense").reference is reference


def test_no_bias_ignores_bias_values():
    spec = Linear(3, 2, bias=False)
    w, a, _, _ = random_point(spec)
    arrays = {"input": a, "weight": w, "bias": np.full(2, 100.0)}
    np.testing.assert_allclose(forward(NUMERIC, spec, arrays)["output"], w @ a, atol=1e-12)
    np.testing.assert_allclose(reference(spec, arrays), w @ a, atol=1e-12)


def test_hand_checked_case():
    spec = Linear(2, 2)
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    a = np.array([5.0, 6.0])
    b = np.array([0.5, -0.5])
    g = np.array([1.0, -1.0])
    got = evaluated(derive(spec), w, a, b, g)
    np.testing.assert_allclose(got["output"], [17.5, 38.5])
    np.testing.assert_allclose(got["grad_weight"], [[5.0, 6.0], [-5.0, -6.0]])
    np.testing.assert_allclose(got["grad_input"], [-2.0, -2.0])
    np.testing.assert_allclose(got["grad_bias"], [1.0, -1.0])


# ----------------------------------------------------------------------- identities
@pytest.mark.parametrize("spec", SPECS)
def test_identities_hold(spec):
    checks = {c.op: c for c in verify(derive(spec))}
    assert set(checks) == {"dw", "da", "db", "engines"}
    for op in ("dw", "da", "engines"):
        assert checks[op].holds is True, checks[op]
    if spec.bias:
        assert checks["db"].holds is True
    else:
        assert checks["db"].holds is None
        assert "no bias" in checks["db"].detail


def test_identity_latex():
    checks = {c.op: c.latex for c in verify(derive(Linear()), engines=False)}
    grad = r"\frac{\partial \mathcal{L}}{\partial "
    assert checks["dw"] == rf"{grad}W^{{[1]}}}} = {grad}z^{{[1]}}}} \, a^{{[0]\top}}"
    assert checks["da"] == rf"{grad}a^{{[0]}}}} = W^{{[1]\top}} \, {grad}z^{{[1]}}}}"
    assert checks["db"] == rf"{grad}b^{{[1]}}}} = {grad}z^{{[1]}}}}"


def test_identities_catch_a_wrong_gradient():
    import dataclasses

    import sympy

    d = derive(Linear(3, 2))
    tampered = d.grad_weight.copy()
    tampered[1, 2] = tampered[1, 2] + sympy.Symbol("oops")
    arrays = dict(d.arrays, grad_weight=tampered)
    checks = {c.op: c for c in verify(dataclasses.replace(d, arrays=arrays), engines=False)}
    assert checks["dw"].holds is False
    assert "(1, 2)" in checks["dw"].detail
    assert checks["da"].holds is True


def test_latex_translates_to_typst():
    from convviz.rendering.typst import latex_to_typst

    dense = layer_type("dense")
    spec = Linear()
    snippets = [op.caption for op in dense.ops]
    snippets += [o for op in dense.ops for o in op.operators]
    snippets += [i.latex(spec) for i in dense.identities]
    snippets += [a.label(spec) for a in dense.all_arrays]
    for snippet in snippets:
        assert latex_to_typst(snippet)


# ---------------------------------------------------------------------------- torch
def test_matches_torch_linear():
    torch = pytest.importorskip("torch")
    for spec in (Linear(), Linear(5, 2, bias=False), Linear(1, 1)):
        layer = torch.nn.Linear(spec.inputs, spec.outputs, bias=spec.bias, dtype=torch.float64)
        w = layer.weight.detach().numpy().copy()
        b = layer.bias.detach().numpy().copy() if spec.bias else np.zeros(spec.outputs)
        rng = np.random.default_rng(7)
        a = rng.standard_normal(spec.inputs)
        g = rng.standard_normal(spec.outputs)
        x = torch.tensor(a, requires_grad=True)
        z = layer(x)
        (z * torch.tensor(g)).sum().backward()
        got = evaluated(derive(spec), w, a, b, g)
        np.testing.assert_allclose(got["output"], z.detach().numpy(), atol=1e-10)
        np.testing.assert_allclose(got["grad_weight"], layer.weight.grad.numpy(), atol=1e-10)
        np.testing.assert_allclose(got["grad_input"], x.grad.numpy(), atol=1e-10)
        if spec.bias:
            np.testing.assert_allclose(got["grad_bias"], layer.bias.grad.numpy(), atol=1e-10)
