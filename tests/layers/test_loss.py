"""softmax-cross-entropy and mse: numbers against NumPy, finite differences and torch.

References are independent of convviz: the cross-entropy by a max-shifted log-sum-exp in
NumPy (and a hand-checked uniform case), the mean squared error by ``np.mean``, central
finite differences of both, and 1-based index arithmetic written out here.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import sympy
from references import bind, evaluate

from convviz.derivation import derive
from convviz.highlights import Cell
from convviz.identities import _equal, verify
from convviz.layers import layer_type
from convviz.layers.base import Identity
from convviz.layers.loss import CrossEntropyLoss, MSELoss
from convviz.layers.namespace import NUMERIC
from convviz.reflection import highlight_map
from convviz.spec import SpecError

CE = "softmax-cross-entropy"


def ce_spec(classes: int = 3, target: int = 1, **extra):
    values = {"input": str(classes), "target": str(target), **extra}
    return layer_type(CE).build(values)


def mse_spec(size: int = 3, **extra):
    return layer_type("mse").build({"input": str(size), **extra})


def numpy_cross_entropy(z, target):
    """``-log softmax(z)[target - 1]`` by a max-shifted log-sum-exp."""
    top = np.max(z)
    return float(top + np.log(np.sum(np.exp(z - top))) - z[target - 1])


def numpy_mse(y_hat, y):
    return float(np.mean((y_hat - y) ** 2))


def central_difference(f, x, step=1e-6):
    grad = np.zeros_like(x)
    for k in range(x.shape[0]):
        up, down = x.copy(), x.copy()
        up[k] += step
        down[k] -= step
        grad[k] = (f(up) - f(down)) / (2 * step)
    return grad


# ------------------------------------------------------------------------------ specs
def test_cross_entropy_spec():
    spec = ce_spec()
    assert spec == CrossEntropyLoss(input_size=(3,), target=1, layer=2)
    assert spec.TYPE == CE
    assert spec.classes == 3
    assert spec.describe() == "3 classes, true class 1"
    assert spec.slug() == "3_t1"
    assert ce_spec(5, 2, layer="3").slug() == "5_t2_l3"
    assert CrossEntropyLoss(input_size=4, target=4).input_size == (4,)
    for role, shape in {"input": (3,), "grad_input": (3,), "probs": (3,), "output": (),
                        "grad_output": ()}.items():
        assert spec.full_shape(role) == shape
        assert spec.display_shape(role) == shape
    declared = layer_type(CE)
    assert declared.loss is True
    assert declared.torch_name == "CrossEntropyLoss"
    assert declared.op_names == ("forward", "softmax", "da")
    assert declared.array("probs").kind == "value"
    assert declared.array("probs").short == r"\hat{y}"
    assert declared.array("output").short == "L"
    assert declared.array("output").symbol(spec) == r"\mathcal{L}"
    assert declared.array("input").symbol(spec) == "z^{[2]}"


def test_mse_spec():
    spec = mse_spec(4)
    assert spec == MSELoss(input_size=(4,), layer=2)
    assert spec.TYPE == "mse"
    assert spec.describe() == "4-vector prediction"
    assert spec.slug() == "4"
    for role, shape in {"input": (4,), "grad_input": (4,), "target": (4,), "output": ()}.items():
        assert spec.full_shape(role) == shape
        assert spec.display_shape(role) == shape
    declared = layer_type("mse")
    assert declared.loss is True
    assert declared.torch_name == "MSELoss"
    assert declared.array("target").kind == "const"
    assert declared.variables == ("input",)
    assert declared.op_names == ("forward", "da")


@pytest.mark.parametrize(
    ("values", "key", "rule"),
    [
        ({"target": "0"}, "target", "must be between 1 and 3, got 0"),
        ({"target": "4"}, "target", "must be between 1 and 3, got 4"),
        ({"target": "-1"}, "target", "must be between 1 and 3, got -1"),
        ({"input": "5", "target": "6"}, "target", "must be between 1 and 5, got 6"),
        ({"target": "two"}, "target", "whole number"),
        ({"target": True}, "target", "whole number"),
        ({"input": "3x3"}, "input", "expected N"),
        ({"input": "0"}, "input", "at least 1"),
        ({"input": "300000"}, "input", "too large"),
        ({"layer": "0"}, "layer", "positive"),
        ({"kernel": "3"}, "kernel", "not an option"),
    ],
)
def test_cross_entropy_errors(values, key, rule):
    with pytest.raises(SpecError) as err:
        layer_type(CE).build(values)
    assert err.value.field_name == key
    assert rule in err.value.rule


def test_target_accepts_toml_integers():
    assert layer_type(CE).build({"input": 4, "target": 3}).target == 3


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"target": 0}, "target", "must be between 1 and 3, got 0"),
        ({"target": 4}, "target", "must be between 1 and 3, got 4"),
        ({"target": 1.0}, "target", "integer"),
        ({"input_size": (3, 3)}, "input_size", "vector"),
        ({"input_size": (0,)}, "input_size", "at least 1"),
        ({"layer": 0}, "layer", "at least 1"),
    ],
)
def test_cross_entropy_class_validation(kwargs, field, rule):
    with pytest.raises(SpecError) as err:
        CrossEntropyLoss(**kwargs)
    assert err.value.field_name == field
    assert rule in err.value.rule


@pytest.mark.parametrize(
    ("values", "key"),
    [({"input": "2x2"}, "input"), ({"input": "0"}, "input"), ({"target": "1"}, "target"),
     ({"layer": "-1"}, "layer")],
)
def test_mse_errors(values, key):
    with pytest.raises(SpecError) as err:
        layer_type("mse").build(values)
    assert err.value.field_name == key


# ---------------------------------------------------------------- cross-entropy numbers
def ce_numbers(d, z):
    values = bind(d.input, z)
    return (float(evaluate(d.output, values)), evaluate(d.probs, values),
            evaluate(d.grad_input, values))


@pytest.mark.parametrize(("classes", "target"), [(3, 1), (3, 3), (5, 2), (1, 1)])
def test_cross_entropy_values_and_gradient(classes, target):
    spec = ce_spec(classes, target)
    d = derive(spec)
    z = np.random.default_rng(classes * 10 + target).standard_normal(classes) * 2
    loss, probs, grad = ce_numbers(d, z)
    assert loss == pytest.approx(numpy_cross_entropy(z, target), rel=1e-12, abs=1e-14)
    shifted = np.exp(z - z.max())
    np.testing.assert_allclose(probs, shifted / shifted.sum(), rtol=1e-12)
    fd = central_difference(lambda v: numpy_cross_entropy(v, target), z)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    one_hot = np.eye(classes)[target - 1]
    np.testing.assert_allclose(grad, probs - one_hot, rtol=1e-12, atol=1e-14)


def test_cross_entropy_hand_checked():
    """Equal logits: every probability is 1/N, the loss is log N, dL/dz = 1/N - y."""
    d = derive(ce_spec(4, 2))
    swap = {cell: sympy.Integer(0) for cell in d.input}
    assert sympy.simplify(d.output[()].xreplace(swap) - sympy.log(4)) == 0
    grads = [sympy.nsimplify(sympy.simplify(g.xreplace(swap))) for g in d.grad_input]
    assert grads == [sympy.Rational(1, 4), sympy.Rational(-3, 4), sympy.Rational(1, 4),
                     sympy.Rational(1, 4)]


def test_cross_entropy_numeric_namespace_and_reference():
    declared = layer_type(CE)
    spec = ce_spec(6, 4)
    z = np.random.default_rng(9).standard_normal(6) * 3
    computed = declared.forward(NUMERIC, spec, {"input": z})
    assert float(computed["output"]) == pytest.approx(numpy_cross_entropy(z, 4), rel=1e-12)
    np.testing.assert_allclose(computed["probs"], np.exp(z) / np.exp(z).sum(), rtol=1e-12)
    assert declared.reference is not None
    big = z * 300  # the reference is max-shifted: no overflow
    assert float(declared.reference(spec, {"input": big})) == pytest.approx(
        numpy_cross_entropy(big, 4), rel=1e-12)


# -------------------------------------------------------------------------- mse numbers
@pytest.mark.parametrize("size", [1, 3, 7])
def test_mse_values_and_gradient(size):
    d = derive(mse_spec(size))
    rng = np.random.default_rng(size)
    y_hat, y = rng.standard_normal(size), rng.standard_normal(size)
    values = {**bind(d.input, y_hat), **bind(d.target, y)}
    assert float(evaluate(d.output, values)) == pytest.approx(numpy_mse(y_hat, y), rel=1e-12)
    grad = evaluate(d.grad_input, values)
    fd = central_difference(lambda v: numpy_mse(v, y), y_hat)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad, 2 * (y_hat - y) / size, rtol=1e-12, atol=1e-14)


def test_mse_is_exact_rational():
    d = derive(mse_spec(3))
    swap = {**{c: sympy.Integer(k + 1) for k, c in enumerate(d.input)},
            **{c: sympy.Integer(0) for c in d.target}}
    assert d.output[()].xreplace(swap) == sympy.Rational(1 + 4 + 9, 3)
    assert [g.xreplace(swap) for g in d.grad_input] == [
        sympy.Rational(2, 3), sympy.Rational(4, 3), sympy.Integer(2)]
    assert "target" not in [f"grad_{r}" for r in d.layer.variables]
    assert "grad_target" not in d.arrays


def test_mse_numeric_namespace_and_reference():
    declared = layer_type("mse")
    spec = mse_spec(5)
    rng = np.random.default_rng(4)
    arrays = {"input": rng.standard_normal(5), "target": rng.standard_normal(5)}
    expected = numpy_mse(arrays["input"], arrays["target"])
    assert float(declared.forward(NUMERIC, spec, arrays)["output"]) == pytest.approx(
        expected, rel=1e-12)
    assert declared.reference is not None
    assert float(declared.reference(spec, arrays)) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------- highlights
@pytest.mark.parametrize(("classes", "target"), [(3, 1), (4, 3)])
def test_cross_entropy_highlights(classes, target):
    d = derive(ce_spec(classes, target))
    every = tuple((k,) for k in range(1, classes + 1))

    forward = highlight_map(d, "forward")
    assert [s.target for s in forward.steps] == [Cell("output", ())]
    assert forward.steps[0].highlights == {"input": every}
    assert list(forward.arrays) == ["input", "output"]
    assert forward.arrays["output"].shape == ()

    for op, role in (("softmax", "probs"), ("da", "grad_input")):
        hmap = highlight_map(d, op)
        assert [s.target for s in hmap.steps] == [Cell(role, (k,)) for k in
                                                  range(1, classes + 1)]
        for step in hmap.steps:
            assert step.highlights == {"input": every}
        assert list(hmap.arrays) == ["input", role]
        assert hmap.arrays[role].shape == (classes,)


def test_cross_entropy_step_expressions():
    d = derive(ce_spec(3, 2))
    loss = highlight_map(d, "forward").steps[0].expression
    assert loss == r"\log{\left(e^{z_{1}} + e^{z_{2}} + e^{z_{3}} \right)} - z_{2}"
    softmax = highlight_map(d, "softmax").steps[0].expression
    assert softmax == r"\frac{e^{z_{1}}}{e^{z_{1}} + e^{z_{2}} + e^{z_{3}}}"
    da = highlight_map(d, "da").steps
    assert da[0].expression == softmax
    assert da[1].expression == r"-1 + \frac{e^{z_{2}}}{e^{z_{1}} + e^{z_{2}} + e^{z_{3}}}"


def test_mse_highlights():
    size = 4
    d = derive(mse_spec(size))
    forward = highlight_map(d, "forward")
    every = tuple((k,) for k in range(1, size + 1))
    assert forward.steps[0].highlights == {"input": every, "target": every}
    assert list(forward.arrays) == ["input", "target", "output"]
    assert r"\hat{y}_{1} - y_{1}" in forward.steps[0].expression
    da = highlight_map(d, "da")
    assert [s.target for s in da.steps] == [Cell("grad_input", (k,)) for k in
                                            range(1, size + 1)]
    for k, step in enumerate(da.steps, start=1):
        assert step.highlights == {"input": ((k,),), "target": ((k,),)}
        assert step.coefficients == ("1/2", "-1/2")
    assert list(da.arrays) == ["input", "target", "grad_input"]


# ------------------------------------------------------------------------- identities
@pytest.mark.parametrize("spec", [ce_spec(3, 1), ce_spec(5, 4), mse_spec(3), mse_spec(6)],
                         ids=["ce3", "ce5", "mse3", "mse6"])
def test_identities_hold(spec):
    checks = verify(derive(spec))
    assert {c.op for c in checks} == {"da", "engines"}
    for check in checks:
        assert check.holds is True, (check.op, check.detail)


def test_identity_latex():
    (ce,) = layer_type(CE).identities
    assert ce.latex(ce_spec()) == r"\frac{\partial \mathcal{L}}{\partial z} = \hat{y} - y"
    assert ce.method == "simplify"
    (mse,) = layer_type("mse").identities
    assert mse.latex(mse_spec(4)) == (
        r"\frac{\partial \mathcal{L}}{\partial \hat{y}} = \frac{2}{4}(\hat{y} - y)")


def test_forward_latex():
    assert layer_type(CE).forward_latex(ce_spec(4, 3)) == (
        r"\mathcal{L} = -\log \hat{y}_{3} = \log \sum_{j} e^{z_{j}} - z_{3}")
    assert layer_type("mse").forward_latex(mse_spec(5)) == (
        r"\mathcal{L} = \frac{1}{5} \sum_{k} (\hat{y}_{k} - y_{k})^{2}")


def test_wrong_closed_forms_are_caught():
    d = derive(ce_spec(3, 2))

    def wrong_target(derivation):  # the one-hot at class 1 instead of 2
        out = derivation.probs.copy()
        out[0] = out[0] - 1
        return out

    wrong = Identity("da", "grad_input", "wrong", lambda spec: "", wrong_target,
                     method="simplify")
    layer = dataclasses.replace(d.layer, identities=(wrong,))
    checks = verify(dataclasses.replace(d, layer=layer), engines=False)
    assert [c.holds for c in checks] == [False]
    assert checks[0].detail == "differs at (0,)"

    m = derive(mse_spec(3))
    halved = Identity("da", "grad_input", "wrong", lambda spec: "",
                      lambda dd: (dd.input - dd.target) / 3)
    layer = dataclasses.replace(m.layer, identities=(halved,))
    checks = verify(dataclasses.replace(m, layer=layer), engines=False)
    assert [c.holds for c in checks] == [False]
    assert not _equal(m.grad_input[0], (m.input[0] - m.target[0]) / 3, "expand", {})


# ------------------------------------------------------------------------------ torch
@pytest.mark.parametrize(("classes", "target"), [(3, 1), (5, 5)])
def test_cross_entropy_matches_torch(classes, target):
    torch = pytest.importorskip("torch")
    d = derive(ce_spec(classes, target))
    z = np.random.default_rng(classes).standard_normal(classes)
    zt = torch.tensor(z[None, :], dtype=torch.float64, requires_grad=True)
    loss = torch.nn.CrossEntropyLoss()(zt, torch.tensor([target - 1]))
    loss.backward()
    value, _, grad = ce_numbers(d, z)
    assert value == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy()[0], rtol=1e-12, atol=1e-14)


def test_mse_matches_torch():
    torch = pytest.importorskip("torch")
    d = derive(mse_spec(4))
    rng = np.random.default_rng(11)
    y_hat, y = rng.standard_normal(4), rng.standard_normal(4)
    yt = torch.tensor(y_hat, dtype=torch.float64, requires_grad=True)
    loss = torch.nn.MSELoss()(yt, torch.tensor(y, dtype=torch.float64))
    loss.backward()
    values = {**bind(d.input, y_hat), **bind(d.target, y)}
    assert float(evaluate(d.output, values)) == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(evaluate(d.grad_input, values), yt.grad.numpy(), rtol=1e-12)
    assert math.isfinite(float(loss))
