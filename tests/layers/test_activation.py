"""relu, sigmoid, tanh: numbers against NumPy and finite differences, maps, identities.

References are independent of convviz: ``np.maximum``, ``1 / (1 + np.exp(-x))`` and
``np.tanh`` evaluated on whole arrays, central finite differences of ``L = sum(g * a)``,
and 1-based index arithmetic written out here. Derived expressions are evaluated by
``lambdify`` (:func:`references.evaluate`).
"""

from __future__ import annotations

import dataclasses
import itertools
import types

import numpy as np
import pytest
import sympy
from references import bind, evaluate

from convviz.derivation import derive
from convviz.highlights import Cell
from convviz.identities import _equal, verify
from convviz.layers import activation, layer_type
from convviz.layers.activation import ReLU, Sigmoid, Tanh
from convviz.layers.base import Identity, OpDecl
from convviz.layers.namespace import NUMERIC, Symbolic
from convviz.reflection import highlight_map
from convviz.spec import MAX_PRODUCTS, SpecError

NUMPY = {
    "relu": lambda x: np.maximum(0.0, x),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
}
CLASSES = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}
NAMES = tuple(NUMPY)
#: (option text, full shape, display shape)
SHAPES = [
    ("4", (4,), (4,)),
    ("1", (1,), (1,)),
    ("3x2", (1, 3, 2), (3, 2)),
    ("2x2x3", (2, 2, 3), (2, 2, 3)),
    ("1x2x2", (1, 2, 2), (2, 2)),
]


def spec_of(name: str, size: str = "4", layer: int | None = None):
    values = {"input": size}
    if layer is not None:
        values["layer"] = str(layer)
    return layer_type(name).build(values)


def random_input(shape, seed, *, away_from_zero=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2.0
    if away_from_zero:  # finite differences of ReLU need |x| well above the step
        x = np.where(np.abs(x) < 0.1, np.sign(x + 1e-12) * (0.1 + np.abs(x)), x)
    return x


def numbers(d, z, g=None):
    """Values of the derived output and input gradient at ``z`` (upstream ``g``)."""
    values = bind(d.input, z)
    out = evaluate(d.output, values)
    if g is None:
        return out, None
    values.update(bind(d.grad_output, g))
    return out, evaluate(d.grad_input, values)


def finite_difference(name, z, g, step=1e-5):
    f = NUMPY[name]
    grad = np.zeros_like(z)
    for pos in np.ndindex(*z.shape):
        up, down = z.copy(), z.copy()
        up[pos] += step
        down[pos] -= step
        grad[pos] = (np.sum(g * f(up)) - np.sum(g * f(down))) / (2 * step)
    return grad


def display_indices(shape):
    return list(itertools.product(*(range(1, n + 1) for n in shape)))


# ------------------------------------------------------------------------------ spec
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("size", "full", "display"), SHAPES)
def test_shapes(name, size, full, display):
    spec = spec_of(name, size)
    assert isinstance(spec, CLASSES[name])
    assert name == spec.TYPE
    for role in ("input", "output", "grad_input", "grad_output"):
        assert spec.full_shape(role) == full
        assert spec.display_shape(role) == display
    d = derive(spec)
    assert d.input.shape == full
    assert d.output.shape == full
    assert d.grad_input.shape == full


def test_defaults_and_naming():
    spec = spec_of("relu")
    assert spec == ReLU(input_size=(4,), layer=1)
    assert spec.describe() == "ReLU of a 4-vector"
    assert spec.slug() == "4"
    assert spec_of("tanh", "2x3x3", 2).slug() == "2x3x3_l2"
    assert spec_of("sigmoid", "3x3").describe() == "Sigmoid of a 3x3 map"
    assert ReLU(input_size=(3, 3)) == ReLU(input_size=(1, 3, 3))
    assert ReLU(input_size=5).input_size == (5,)
    assert spec_of("sigmoid").products == 4
    assert spec_of("sigmoid", "2x3x4").products == 24
    for name, cls in CLASSES.items():
        declared = layer_type(name)
        assert declared.torch_name == cls.__name__
        assert declared.spec_class is cls
        assert declared.op_names == ("forward", "da")
        assert declared.real is True
        assert not declared.loss


def test_labels():
    spec = spec_of("relu", "4", 3)
    d = derive(spec)
    assert d.layer.array("input").symbol(spec) == "z^{[3]}"
    assert d.layer.array("output").symbol(spec) == "a^{[3]}"
    shorts = {a.role: a.short for a in d.layer.all_arrays}
    assert shorts == {"input": "z", "output": "a", "grad_output": "da", "grad_input": "dz"}


@pytest.mark.parametrize(
    ("values", "key", "rule"),
    [
        ({"input": "0"}, "input", "at least 1"),
        ({"input": "2x2x2x2"}, "input", "expected"),
        ({"input": "a"}, "input", "expected"),
        ({"layer": "0"}, "layer", "positive"),
        ({"input": "600x600"}, "input", "too large"),
        ({"kernel": "3"}, "kernel", "not an option"),
    ],
)
def test_spec_errors_name_the_option(values, key, rule):
    with pytest.raises(SpecError) as err:
        layer_type("tanh").build(values)
    assert err.value.field_name == key
    assert rule in err.value.rule


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_size": (0,)}, "input_size"),
        ({"input_size": (1, 2, 3, 4)}, "input_size"),
        ({"input_size": ()}, "input_size"),
        ({"input_size": (2.0,)}, "input_size"),
        ({"input_size": (True,)}, "input_size"),
        ({"input_size": (1000, 1000)}, "input_size"),
        ({"layer": 0}, "layer"),
        ({"layer": True}, "layer"),
    ],
)
def test_spec_class_validation(kwargs, field):
    with pytest.raises(SpecError) as err:
        Sigmoid(**kwargs)
    assert err.value.field_name == field


def test_unknown_role():
    with pytest.raises(KeyError):
        spec_of("relu").full_shape("kernel")


# --------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", ["5", "2x3", "2x2x2"])
def test_forward_and_gradient_match_numpy_and_finite_differences(name, size):
    spec = spec_of(name, size)
    d = derive(spec)
    shape = spec.full_shape("input")
    z = random_input(shape, 1, away_from_zero=True)
    g = np.random.default_rng(2).standard_normal(shape)
    out, grad = numbers(d, z, g)
    np.testing.assert_allclose(out, NUMPY[name](z), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, finite_difference(name, z, g), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_numeric_namespace_and_reference_match_numpy(name):
    declared = layer_type(name)
    spec = spec_of(name, "2x3x4")
    z = random_input(spec.full_shape("input"), 3) * 10  # large |z|: no overflow either
    expected = NUMPY[name](z)
    forward = declared.forward(NUMERIC, spec, {"input": z})["output"]
    np.testing.assert_allclose(forward, expected, rtol=1e-12, atol=1e-300)
    assert declared.reference is not None
    np.testing.assert_allclose(declared.reference(spec, {"input": z}), expected,
                               rtol=1e-12, atol=1e-300)


def test_relu_gradient_is_zero_at_zero():
    """PyTorch's ReLU'(0) = 0: exact integer inputs, no Heaviside(0) = 1/2 leaking."""
    d = derive(spec_of("relu", "5"))
    z = [-2, -1, 0, 1, 2]
    g = [3, 5, 7, 11, 13]
    swap = {d.input[k]: sympy.Integer(z[k]) for k in range(5)}
    swap.update({d.grad_output[k]: sympy.Integer(g[k]) for k in range(5)})
    grads = [sympy.sympify(e).xreplace(swap) for e in d.grad_input]
    assert grads == [0, 0, 0, 11, 13]
    outputs = [sympy.sympify(e).xreplace(swap) for e in d.output]
    assert outputs == [0, 0, 0, 1, 2]
    _, floats = numbers(d, np.array(z, dtype=float), np.array(g, dtype=float))
    assert floats.tolist() == [0.0, 0.0, 0.0, 11.0, 13.0]
    for cell in d.grad_input:
        assert not any(h.args[1] == sympy.S.Half for h in cell.atoms(sympy.Heaviside))
        assert cell.atoms(sympy.Heaviside)


def test_refine_rewrites_only_the_half_heaviside():
    x = sympy.Symbol("x", real=True)
    refine = layer_type("relu").refine
    assert refine is not None
    assert refine(3 * sympy.Heaviside(x)) == 3 * sympy.Heaviside(x, 0)
    assert refine(sympy.Heaviside(x, 1)) == sympy.Heaviside(x, 1)
    assert refine(x + 1) == x + 1
    assert layer_type("sigmoid").refine is None


def test_relu_gradient_at_zero_for_both_engines():
    d = derive(spec_of("relu", "1"), engine="sympy")
    cell = d.grad_input[0]
    assert cell.xreplace({d.input[0]: 0}) == 0


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_smooth_gradients_at_zero(name):
    d = derive(spec_of(name, "1"))
    value = sympy.sympify(d.grad_input[0]).xreplace(
        {d.input[0]: sympy.Integer(0), d.grad_output[0]: sympy.Integer(1)}
    )
    assert sympy.nsimplify(value) == {"sigmoid": sympy.Rational(1, 4), "tanh": 1}[name]


# ----------------------------------------------------------------------- highlights
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", ["4", "3x2", "2x2x2"])
def test_highlight_maps_are_cell_by_cell(name, size):
    spec = spec_of(name, size)
    d = derive(spec)
    display = spec.display_shape("input")
    indices = display_indices(display)

    forward = highlight_map(d, "forward")
    assert [s.target for s in forward.steps] == [Cell("output", i) for i in indices]
    for step, index in zip(forward.steps, indices, strict=True):
        assert step.highlights == {"input": (index,)}
    assert list(forward.arrays) == ["input", "output"]

    da = highlight_map(d, "da")
    assert [s.target for s in da.steps] == [Cell("grad_input", i) for i in indices]
    for step, index in zip(da.steps, indices, strict=True):
        assert set(step.highlights) == {"grad_output", "input"}
        assert step.highlights["grad_output"] == (index,)
        assert step.highlights["input"] == (index,)
    assert list(da.arrays) == ["grad_output", "input", "grad_input"]
    for role, info in da.arrays.items():
        assert info.shape == display, role


def test_step_expressions_read_as_lectures():
    relu = derive(spec_of("relu", "2"))
    assert highlight_map(relu, "forward").steps[0].expression == r"\max(0, z_{1})"
    assert highlight_map(relu, "da").steps[1].expression == r"da_{2} \mathbf{1}[z_{2} > 0]"
    sigmoid = highlight_map(derive(spec_of("sigmoid", "2")), "forward").steps[0]
    assert sigmoid.expression == r"\frac{1}{1 + e^{- z_{1}}}"
    tanh = highlight_map(derive(spec_of("tanh", "2")), "da").steps[0]
    assert "da_{1}" in tanh.expression and r"\tanh^{2}" in tanh.expression


# ----------------------------------------------------------------------- identities
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", ["3", "2x2x2"])
def test_identities_hold(name, size):
    checks = verify(derive(spec_of(name, size)))
    assert {c.op for c in checks} == {"da", "engines"}
    for check in checks:
        assert check.holds is True, (check.op, check.detail)


def test_identity_latex():
    spec = spec_of("relu", "4", 2)
    (relu,) = layer_type("relu").identities
    assert relu.latex(spec) == (
        r"\frac{\partial \mathcal{L}}{\partial z^{[2]}} = "
        r"\frac{\partial \mathcal{L}}{\partial a^{[2]}} \odot \mathbf{1}[z^{[2]} > 0]"
    )
    (sigmoid,) = layer_type("sigmoid").identities
    assert sigmoid.latex(spec).endswith(r"\sigma(z^{[2]})(1-\sigma(z^{[2]}))")
    assert sigmoid.method == "simplify"
    (tanh,) = layer_type("tanh").identities
    assert r"\tanh^{2}(z^{[2]})" in tanh.latex(spec)


def test_forward_latex():
    spec = spec_of("relu", "4", 2)
    forward = {name: layer_type(name).forward_latex for name in NAMES}
    assert forward["relu"](spec) == r"a^{[2]} = \max(0, z^{[2]})"
    assert forward["sigmoid"](spec) == r"a^{[2]} = \sigma(z^{[2]}) = \frac{1}{1 + e^{-z^{[2]}}}"
    assert forward["tanh"](spec) == r"a^{[2]} = \tanh(z^{[2]})"


def _wrong_forms():
    def relu_h1(d):  # Heaviside(z, 1): 1 at z = 0, PyTorch says 0
        return np.vectorize(lambda u, z: u * sympy.Heaviside(z, 1), otypes=[object])(
            d.grad_output, d.input)

    def sigmoid_plus(d):  # sigma (1 + sigma)
        def cell(u, z):
            s = 1 / (1 + sympy.exp(-z))
            return u * s * (1 + s)
        return np.vectorize(cell, otypes=[object])(d.grad_output, d.input)

    def tanh_plus(d):  # 1 + tanh^2
        return np.vectorize(lambda u, z: u * (1 + sympy.tanh(z) ** 2), otypes=[object])(
            d.grad_output, d.input)

    return {"relu": relu_h1, "sigmoid": sigmoid_plus, "tanh": tanh_plus}


@pytest.mark.parametrize("name", NAMES)
def test_wrong_closed_forms_are_caught(name):
    d = derive(spec_of(name, "3"))
    wrong = Identity("da", "grad_input", "wrong", lambda spec: "", _wrong_forms()[name],
                     method="simplify")
    layer = dataclasses.replace(d.layer, identities=(wrong,))
    checks = verify(dataclasses.replace(d, layer=layer), engines=False)
    assert [c.holds for c in checks] == [False]
    assert "differs at" in checks[0].detail
    right = d.layer.identities[0].closed_form(d)
    assert _equal(d.grad_input[0], right[0], "simplify", {})
    assert not _equal(d.grad_input[0], wrong.closed_form(d)[0], "simplify", {})


# ---------------------------------------------------------------------------- torch
@pytest.mark.parametrize("name", NAMES)
def test_matches_torch(name):
    torch = pytest.importorskip("torch")
    modules = {"relu": torch.nn.ReLU(), "sigmoid": torch.nn.Sigmoid(), "tanh": torch.nn.Tanh()}
    spec = spec_of(name, "2x3x3")
    d = derive(spec)
    z = random_input(spec.full_shape("input"), 5)
    z[0, 0, 0] = 0.0  # ReLU'(0) = 0 in torch too
    g = np.random.default_rng(6).standard_normal(z.shape)
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    at = modules[name](zt)
    at.backward(torch.tensor(g, dtype=torch.float64))
    out, grad = numbers(d, z, g)
    np.testing.assert_allclose(out, at.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------ messages
@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"input_size": (1, 2, 3, 4)}, "input_size", ["CxHxW", "(1, 2, 3, 4)"]),
        ({"input_size": (2, 0)}, "input_size", ["at least 1", "(2, 0)"]),
        ({"layer": -3}, "layer", ["at least 1", "-3"]),
    ],
)
def test_spec_errors_quote_the_bad_value(kwargs, field, words):
    with pytest.raises(SpecError) as err:
        Tanh(**kwargs)
    assert err.value.field_name == field
    for word in words:
        assert word in err.value.rule


def test_size_limit_is_inclusive():
    """Exactly MAX_PRODUCTS cells is allowed, one more is not (no derivation is run)."""
    assert ReLU(input_size=(MAX_PRODUCTS,)).products == MAX_PRODUCTS
    with pytest.raises(SpecError, match="too large"):
        ReLU(input_size=(MAX_PRODUCTS + 1,))


def test_unknown_role_is_named():
    with pytest.raises(KeyError, match="kernel"):
        spec_of("tanh").display_shape("kernel")
    assert spec_of("tanh").display_shape("grad_output") == (4,)


def test_refine_leaves_non_sympy_values_alone():
    refine = layer_type("relu").refine
    assert refine is not None
    assert refine(2.5) == 2.5
    assert refine(7) == 7


# ----------------------------------------------------------------------- factories
# The three layer types are built at import time by the factories below (``_ops``,
# ``_identity``, ``_layer_type``, ...). mutmut switches mutants per call, after import,
# so these tests call the factories again, inside the test, with hand-written expectations.
def test_ops_factory():
    forward, da = activation._ops("Name", "F(z)", "D(z)")
    assert forward == OpDecl(
        "forward", "output", ("input",), (r"\Rightarrow",),
        r"\text{Forward pass: } a = F(z) \text{, cell by cell}",
        summary="a = Name(z), cell by cell",
    )
    assert da == OpDecl(
        "da", "grad_input", ("grad_output", "input"), (",", r"\Rightarrow"),
        r"\text{Input gradient: } dz = da \odot D(z) \text{, cell by cell}",
        summary="dL/dz = dL/da * Name'(z)",
    )


def test_elementwise_factory_on_numbers_and_symbols():
    forward = activation._elementwise(activation._tanh)
    assert forward.__doc__ == "``a = g(z)`` cell by cell, with ``g`` = tanh."
    spec = Tanh(input_size=(2, 3))
    z = random_input((1, 2, 3), 7)
    out = forward(NUMERIC, spec, {"input": z})
    assert set(out) == {"output"}
    np.testing.assert_allclose(out["output"], np.tanh(z), rtol=1e-14, atol=0)
    u, v = sympy.symbols("u v", real=True)
    cells = np.array([u, v], dtype=object)
    symbolic = activation._elementwise(activation._relu)(Symbolic(), ReLU(2), {"input": cells})
    assert symbolic["output"].shape == (2,)
    values = [[sympy.sympify(c).subs({u: -2, v: 3}) for c in symbolic["output"]]]
    assert values == [[0, 3]]


def test_reference_factory_converts_to_floats():
    reference = activation._reference(activation._relu_float)
    out = reference(ReLU(input_size=(2, 2)), {"input": [[[-3, 2], [0, 5]]]})
    assert out.dtype == np.float64
    assert out.tolist() == [[[0.0, 2.0], [0.0, 5.0]]]
    sigmoid = activation._reference(activation._sigmoid_float)(Sigmoid(3), {"input": [-1, 0, 2]})
    np.testing.assert_allclose(sigmoid, 1 / (1 + np.exp(-np.array([-1.0, 0.0, 2.0]))),
                               rtol=1e-15)


def test_cellwise_form_factory():
    u = sympy.symbols("u1:4")
    z = sympy.symbols("z1:4")
    d = types.SimpleNamespace(input=np.array(z, dtype=object),
                              grad_output=np.array(u, dtype=object))
    out = activation._cellwise_form(lambda x: x**2 + 1)(d)
    assert out.dtype == object
    assert out.shape == (3,)
    for k in range(3):
        assert sympy.expand(out[k] - (u[k] * z[k] ** 2 + u[k])) == 0


def test_identity_factory():
    identity = activation._identity("a name", lambda x: rf"P({x})", activation._tanh_prime)
    assert (identity.op, identity.role, identity.name) == ("da", "grad_input", "a name")
    assert identity.method == "simplify"
    assert identity.latex(Tanh(layer=2)) == (
        r"\frac{\partial \mathcal{L}}{\partial z^{[2]}} = "
        r"\frac{\partial \mathcal{L}}{\partial a^{[2]}} \odot P(z^{[2]})"
    )
    u, z = sympy.symbols("u z", real=True)
    d = types.SimpleNamespace(input=np.array([z], dtype=object),
                              grad_output=np.array([u], dtype=object))
    (cell,) = identity.closed_form(d)
    # d/dz tanh(z) at z = 1/2, by a central difference
    h = 1e-6
    slope = (np.tanh(0.5 + h) - np.tanh(0.5 - h)) / (2 * h)
    assert float(cell.subs({u: 3, z: 0.5})) == pytest.approx(3 * slope, rel=1e-8)


def test_identity_latex_factory():
    latex = activation._identity_latex(lambda x: f"<{x}>")
    assert latex(ReLU(layer=4)) == (
        r"\frac{\partial \mathcal{L}}{\partial z^{[4]}} = "
        r"\frac{\partial \mathcal{L}}{\partial a^{[4]}} \odot <z^{[4]}>"
    )


def test_layer_type_factory_fills_every_field():
    ops = activation._ops("ReLU", "F", "D")
    identity = activation._identity("i", lambda x: x, activation._relu_prime)
    built = activation._layer_type(
        "relu", ReLU, "one line", activation._relu, activation._relu_float, identity, ops,
        7, lambda x: f"F({x})", refine=activation.refine_heaviside,
    )
    assert built.name == "relu"
    assert built.torch_name == "ReLU"
    assert built.spec_class is ReLU
    assert built.summary == "one line"
    assert [o.key for o in built.options] == ["input", "layer"]
    assert [a.role for a in built.arrays] == ["input", "output"]
    assert built.ops == ops
    assert built.identities == (identity,)
    assert built.refine is activation.refine_heaviside
    assert built.real is True
    assert built.rank == 7
    spec = ReLU(input_size=(3,), layer=5)
    assert built.forward_latex is not None
    assert built.forward_latex(spec) == "a^{[5]} = F(z^{[5]})"
    z = np.array([-1.5, 0.0, 2.0])
    assert built.forward(NUMERIC, spec, {"input": z})["output"].tolist() == [0.0, 0.0, 2.0]
    assert built.reference is not None
    assert built.reference(spec, {"input": z}).tolist() == [0.0, 0.0, 2.0]
    plain = activation._layer_type("tanh", Tanh, "s", activation._tanh, np.tanh, identity,
                                   ops, 1, str)
    assert plain.refine is None
