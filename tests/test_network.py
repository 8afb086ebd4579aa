"""Networks (issue 9): shapes, notation, values files, evaluate and check, the examples.

The numbers of ``evaluate`` come from each layer's derived expressions; here they are
compared with the layer declarations' numeric forward pass, with central finite
differences of the loss at points in general position, and, at whole-number points
full of max-pooling ties and ReLU zeros, with explicit loops that follow PyTorch's tie
rules (the first maximum of a window in row-major order takes the gradient; ReLU'(0) = 0).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sympy
from click.testing import CliRunner

from convviz.cli import main
from convviz.evaluation import (
    EvaluationError,
    ExpressionEvaluator,
    evaluate_network,
    finite_differences,
    numeric_forward,
)
from convviz.network import (
    Conv2d,
    CrossEntropyLoss,
    Flatten,
    Linear,
    MaxPool2d,
    NetworkError,
    ReLU,
    Sequential,
    ValuesError,
    derive_network,
    generic_values,
    load_network,
    parse_network,
    parse_values,
    random_values,
    with_input,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

TINY = {
    "input": "1x6x6",
    "layer": [
        {"type": "conv2d", "filters": 2, "kernel": "3x3"},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel": "2x2"},
        {"type": "flatten"},
        {"type": "dense", "outputs": 3},
        {"type": "softmax-cross-entropy"},
    ],
}


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def net_of(*layers: dict[str, Any], input: str = "1x6x6") -> Any:
    return parse_network({"input": input, "layer": list(layers)})


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def toml_text(doc: dict[str, Any]) -> str:
    lines = [f"input = {json.dumps(doc['input'])}"]
    for entry in doc["layer"]:
        lines.append("[[layer]]")
        for key, value in entry.items():
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def tiny() -> Any:
    return parse_network(TINY)


@pytest.fixture(scope="module")
def tiny_derived(tiny: Any) -> Any:
    return derive_network(random_values(tiny, 0).network)


# ----------------------------------------------------------------- shapes and names
def test_shapes_are_inferred_layer_by_layer(tiny: Any) -> None:
    assert tiny.input_shape == (1, 6, 6)
    outputs = [layer.output_shape for layer in tiny.layers]
    assert outputs == [(2, 4, 4), (2, 4, 4), (2, 2, 2), (8,), (3,), ()]
    assert tiny.layers[4].spec.inputs == 8
    assert tiny.layers[5].spec.classes == 3
    assert [layer.index for layer in tiny.layers] == [1, 2, 3, 4, 5, 6]


def test_notation_follows_the_seeds(tiny: Any) -> None:
    names = [dict(layer.names) for layer in tiny.layers]
    assert [layer.number for layer in tiny.layers] == [1, 1, 1, 1, 2, 2]
    assert names[0] == {"input": "a^{[0]}", "output": "z^{[1]}", "kernel": "W^{[1]}",
                        "bias": "b^{[1]}"}
    assert names[1] == {"input": "z^{[1]}", "output": "a^{[1]}"}
    assert names[2] == {"input": "a^{[1]}", "output": "p^{[1]}"}
    assert names[3] == {"input": "p^{[1]}", "output": "f^{[1]}"}
    assert names[4] == {"input": "f^{[1]}", "output": "z^{[2]}", "weight": "W^{[2]}",
                        "bias": "b^{[2]}"}
    assert names[5] == {"input": "z^{[2]}"}
    assert tiny.layers[4].spec.layer == 2


def test_derived_cells_are_named_after_the_previous_output(tiny_derived: Any) -> None:
    d = tiny_derived.derivations
    assert str(d[3].bases["input"]) == "p^{[1]}"
    assert str(d[4].bases["input"]) == "f^{[1]}"
    assert str(d[4].bases["weight"]) == "W^{[2]}"
    assert d[5].name("probs") == r"\hat{y}"
    assert str(d[5].bases["output"]) == r"\mathcal{L}"
    # the backward pass is local: upstream cells are opaque derivatives of the next name
    upstream = d[4].arrays["grad_output"].flat[0]
    assert isinstance(upstream, sympy.Derivative)
    assert str(upstream.variables[0].base) == "z^{[2]}"
    assert not any(isinstance(e, sympy.Derivative) for e in d[5].arrays["grad_input"].flat)


def test_mse_network_ends_in_y_hat_and_repeated_names_get_primes() -> None:
    net = net_of({"type": "dense", "outputs": 2}, {"type": "sigmoid"}, {"type": "tanh"},
                 {"type": "dense", "outputs": 1}, {"type": "sigmoid"}, {"type": "mse"},
                 input="2")
    outputs = [layer.names.get("output") for layer in net.layers]
    assert outputs == ["z^{[1]}", "a^{[1]}", "a'^{[1]}", "z^{[2]}", r"\hat{y}", None]
    assert net.layers[5].names["input"] == r"\hat{y}"


def test_sequential_matches_the_file_and_reinfers_spec_inputs(tiny: Any) -> None:
    import convviz

    lazy = Sequential(Conv2d(2, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(3),
                      CrossEntropyLoss(), input="1x6x6")
    specs = Sequential(
        convviz.Conv2d(input_size=(9, 9), kernel_size=(3, 3), filters=2),
        convviz.ReLU(input_size=(7,)),
        convviz.MaxPool2d(kernel_size=(2, 2)),
        convviz.Flatten(),
        convviz.Linear(inputs=99, outputs=3, layer=7),
        convviz.CrossEntropyLoss(),
        input=(1, 6, 6),
    )
    for net in (lazy, specs):
        assert [a.spec for a in net.layers] == [b.spec for b in tiny.layers]
        assert [dict(a.names) for a in net.layers] == [dict(b.names) for b in tiny.layers]
    assert convviz.Sequential is Sequential


def test_with_input_is_generic_over_the_types() -> None:
    import convviz

    assert with_input(convviz.Linear(), (8,)).inputs == 8
    conv = with_input(convviz.Conv2d(), (3, 7, 7), layer=4)
    assert (conv.channels, conv.input_size, conv.layer) == (3, (7, 7), 4)
    pool = with_input(convviz.AvgPool2d(kernel_size=2), (2, 6, 4))
    assert (pool.channels, pool.input_size) == (2, (6, 4))
    assert with_input(convviz.Tanh(), (2, 3, 3)).input_size == (2, 3, 3)
    assert with_input(convviz.MSELoss(), (5,)).size == 5
    tconv = with_input(convviz.ConvTranspose2d(), (2, 3, 3))
    assert (tconv.channels, tconv.input_size) == (2, (3, 3))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"input": "1x6x6", "layer": [*TINY["layer"][:4],
                                      {"type": "dense", "outputs": 3, "input": "18"},
                                      TINY["layer"][5]]},
         "layer 5 (dense): 18 inputs expected, the layer before gives 8"),
        ({"input": "1x6x6", "layer": [*TINY["layer"][:3], {"type": "dense", "outputs": 3}]},
         "layer 4 (dense): a vector expected, the layer before gives 2x2x2"),
        ({"input": "4", "layer": [{"type": "dense", "outputs": 8},
                                  {"type": "conv2d", "kernel": "3x3"}]},
         "layer 2 (conv2d): a map C x H x W expected, the layer before gives a vector of 8"),
        ({"input": "4", "layer": [{"type": "mse"}, {"type": "relu"}]},
         "layer 1 (mse): a loss must be the last layer (1 more after it)"),
        ({"input": "4", "layer": [{"type": "relu"}, {"type": "convv2d"}]},
         "layer 2 (convv2d): unknown layer type 'convv2d'"),
        ({"input": "4", "layer": [{"type": "relu", "kernel": "3x3"}]},
         "layer 1 (relu): kernel: not an option of relu"),
        ({"input": "4", "layer": [{"type": "dense", "outputs": 2, "layer": 3}]},
         "layer 1 (dense): layer: set by the network"),
        ({"input": "1x4x4", "layer": [{"type": "conv2d", "kernel": "5x5"}]},
         "layer 1 (conv2d): kernel: kernel height after dilation (5) is larger"),
        ({"input": "1x6x6", "layer": [{"type": "conv2d", "input": "2x6x6"}]},
         "layer 1 (conv2d): input 2x6x6 expected, the input gives 1x6x6"),
        ({"input": "1x100x100", "layer": [{"type": "conv2d", "kernel": "5x5",
                                           "filters": 8}]},
         "layer 1 (conv2d): input: layer too large to derive: the forward pass has "
         "1,843,200 multiplications (limit 250,000)"),
        ({"input": "4", "layer": [{"type": "dense", "outputs": 0}]},
         "layer 1 (dense): outputs: must be a positive integer"),
        ({"input": "4", "layer": [{"outputs": 3}]}, "layer 1: type: missing"),
        ({"input": "4x", "layer": [{"type": "relu"}]}, "input: expected sizes like"),
        ({"layer": [{"type": "relu"}]}, "input: missing"),
        ({"input": "4", "layers": []}, "layers: unknown key"),
        ({"input": "4"}, "no layers"),
    ],
)
def test_bad_networks_are_one_line(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(NetworkError) as err:
        parse_network(doc)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_sequential_errors_name_the_layer() -> None:
    with pytest.raises(NetworkError, match=r"^layer 2 \(maxpool2d\): a map C x H x W"):
        Sequential(Linear(4), MaxPool2d(2), input="3")
    with pytest.raises(NetworkError, match=r"^layer 1: not a layer spec"):
        Sequential("relu", input="3")


def test_cli_network_errors_exit_2_on_one_line(tmp_path: Path) -> None:
    doc = {"input": "1x6x6", "layer": [*TINY["layer"][:3], {"type": "dense", "outputs": 3}]}
    path = write(tmp_path, "NET.toml", toml_text(doc))
    for command in ("evaluate", "check"):
        result = run(command, str(path))
        assert result.exit_code == 2, result.output
        assert result.output.strip() == (
            f"Error: {path}: layer 4 (dense): a vector expected, the layer before gives "
            "2x2x2"
        )
    broken = write(tmp_path, "broken.toml", "input = \n")
    result = run("evaluate", str(broken))
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {broken}: not valid TOML")
    assert len(result.output.strip().splitlines()) == 1


# ------------------------------------------------------------------------- values
def tiny_values(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "input": np.arange(36).reshape(1, 6, 6).tolist(),
        "target": 2,
        "layers": [{"weight": np.zeros((2, 1, 3, 3)).tolist(), "bias": [0.1, -0.2]},
                   {}, {}, {}, {"weight": np.zeros((3, 8)).tolist(), "bias": [0, 0, 0]},
                   {}],
    }
    doc.update(changes)
    return doc


def with_layer(k: int, **entry: Any) -> dict[str, Any]:
    doc = tiny_values()
    doc["layers"][k] = entry
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (with_layer(4, weight=np.zeros((8, 3)).tolist()),
         "layers[4].weight: shape (3, 8) expected, got (8, 3)"),
        (with_layer(0, bias=[0.1, "a"]), "layers[0].bias[1]: a number expected, got \"a\""),
        (with_layer(0, bias=[0.1, True]), "layers[0].bias[1]: a number expected, got true"),
        (with_layer(0, bias=[math.nan, 0]), "layers[0].bias[0]: a finite number expected, got nan"),
        (with_layer(0, bias=[math.inf, 0]), "layers[0].bias[0]: a finite number expected, got inf"),
        (with_layer(0, bias=[[1], 2]), "layers[0].bias: not a rectangular array"),
        (with_layer(0, kernel=[1]), "layers[0].kernel: unknown key (conv2d takes weight, bias)"),
        (with_layer(1, weight=[1]), "layers[1].weight: unknown key (relu has no parameters"),
        (with_layer(1, bias=[1]), "layers[1].bias: unknown key"),
        (tiny_values(target=3), "target: a class index from 0 to 2 expected, got 3"),
        (tiny_values(target=-1), "target: a class index from 0 to 2 expected, got -1"),
        (tiny_values(target=1.0), "target: a class index from 0 to 2 expected, got 1.0"),
        (tiny_values(target=[0, 0, 1]), "target: a class index from 0 to 2 expected"),
        (tiny_values(grad_output=[1.0]), "grad_output: the network ends in a loss"),
        (tiny_values(weights=[]), "weights: unknown key (expected input, target, layers, "
                                  "grad_output)"),
        (tiny_values(layers=[{}, {}]), "layers: 6 objects expected (one per [[layer]]), got 2"),
        (tiny_values(layers=[{}, {}, {}, {}, {}, 3]), "layers[5]: an object expected"),
        (tiny_values(input=[[1, 2]]), "input: shape (1, 6, 6) expected, got (1, 2)"),
        (tiny_values(input=None), "input: a number expected, got null"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_values_name_the_place(tiny: Any, doc: Any, message: str) -> None:
    with pytest.raises(ValuesError) as err:
        parse_values(doc, tiny)
    assert str(err.value).startswith(message), str(err.value)


def test_a_target_in_the_network_file_is_used_unless_the_values_give_one() -> None:
    doc = {"input": "3", "layer": [{"type": "softmax-cross-entropy", "target": 3}]}
    net = parse_network(doc)
    assert net.target == 2
    for seed in range(4):
        assert random_values(net, seed).target == 2
    assert parse_values({"target": 0}, net).network.loss.spec.target == 1


def test_values_for_networks_without_loss_and_with_mse() -> None:
    plain = net_of({"type": "dense", "outputs": 2}, {"type": "tanh"}, input="3")
    with pytest.raises(ValuesError, match=r"^target: the network has no loss"):
        parse_values({"target": 1}, plain)
    with pytest.raises(ValuesError, match=r"^grad_output: shape \(2,\) expected, got \(3,\)"):
        parse_values({"grad_output": [1, 2, 3]}, plain)
    assert parse_values({"grad_output": [1, 2]}, plain).grad_output.tolist() == [1.0, 2.0]
    mse = net_of({"type": "dense", "outputs": 2}, {"type": "mse"}, input="3")
    with pytest.raises(ValuesError, match=r"^target: shape \(2,\) expected, got \(\)"):
        parse_values({"target": 1}, mse)
    nobias = net_of({"type": "dense", "outputs": 2, "bias": False}, {"type": "mse"}, input="3")
    taken = r"^layers\[0\]\.bias: unknown key \(dense takes weight\)"
    with pytest.raises(ValuesError, match=taken):
        parse_values({"layers": [{"bias": [0, 0]}, {}]}, nobias)


def test_cli_values_errors_exit_2(tmp_path: Path) -> None:
    net = write(tmp_path, "NET.toml", toml_text(TINY))
    bad = write(tmp_path, "values.json",
                json.dumps(with_layer(4, weight=np.zeros((8, 3)).tolist())))
    result = run("evaluate", str(net), "--values", str(bad))
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: {bad}: layers[4].weight: shape (3, 8) expected, got (8, 3)"
    )
    nan = write(tmp_path, "nan.json", '{"input": NaN}')
    result = run("evaluate", str(net), "--values", str(nan))
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {nan}: input: a finite number expected, got nan"
    junk = write(tmp_path, "junk.json", "{")
    result = run("evaluate", str(net), "--values", str(junk))
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {junk}: not valid JSON")


def test_drawn_values_are_small_readable_and_independent(tiny: Any) -> None:
    values = random_values(tiny, 3)
    assert set(np.unique(values.input)) <= {0.0, 1.0, 2.0, 3.0}
    quarters = {-0.5, -0.25, 0.0, 0.25, 0.5}
    for params in values.params:
        for array in params.values():
            assert set(np.unique(array)) <= quarters
    assert isinstance(values.target, int) and 0 <= values.target < 3
    assert values.network is not None
    assert values.network.loss.spec.target == values.target + 1
    # giving one array leaves the drawn ones as they were
    given = parse_values({"layers": [{}, {}, {}, {}, {"bias": [1, 2, 3]}, {}]}, tiny, seed=3)
    assert np.array_equal(given.input, values.input)
    assert np.array_equal(given.params[0]["kernel"], values.params[0]["kernel"])
    assert np.array_equal(given.params[4]["weight"], values.params[4]["weight"])
    assert given.params[4]["bias"].tolist() == [1.0, 2.0, 3.0]
    assert not np.array_equal(random_values(tiny, 4).input, values.input)


# --------------------------------------------------------------- the evaluator itself
def test_evaluator_handles_every_node_class() -> None:
    x, y = sympy.symbols("x y", real=True)
    d = sympy.Derivative(sympy.Function("L")(x), x)
    ev = ExpressionEvaluator({x: 0.0, y: 2.0, d: 3.0})
    assert ev.value(sympy.Heaviside(x, 0)) == 0.0
    assert ev.value(sympy.Heaviside(x, 1)) == 1.0
    assert ev.value(sympy.Heaviside(x)) == 0.5
    assert ev.value(sympy.Max(x, y) * d) == 6.0
    assert ev.value(sympy.Min(x, y) + sympy.Rational(1, 4)) == 0.25
    assert ev.value(sympy.tanh(y)) == math.tanh(2.0)
    assert ev.value(y ** -2 + sympy.log(y) + sympy.exp(y)) == pytest.approx(
        0.25 + math.log(2) + math.exp(2), rel=1e-15)
    assert ev.value(sympy.sin(y)) == pytest.approx(math.sin(2.0))  # lambdify fallback
    with pytest.raises(EvaluationError, match="no value given for z"):
        ev.value(sympy.Symbol("z") + 1)


def test_evaluator_survives_overflow_as_pytorch_does() -> None:
    z = sympy.IndexedBase("z", real=True)
    cells = [z[k] for k in range(1, 4)]
    total = sympy.Add(*(sympy.exp(c) for c in cells))
    ev = ExpressionEvaluator({cells[0]: 1000.0, cells[1]: 999.0, cells[2]: -5.0})
    lse = 1000.0 + math.log1p(math.exp(-1.0) + math.exp(-1005.0))
    assert ev.value(sympy.log(total) - cells[1]) == pytest.approx(lse - 999.0, rel=1e-14)
    assert ev.value(sympy.exp(cells[0]) / total) == pytest.approx(
        1 / (1 + math.exp(-1.0)), rel=1e-14)
    assert ev.value(sympy.exp(cells[2]) / total) == 0.0  # exp(-1005 - ...) underflows
    s = 1 / (1 + sympy.exp(-cells[2]))
    far = ExpressionEvaluator({cells[2]: -1000.0})
    assert far.value(s) == 0.0
    assert far.value(sympy.diff(s, cells[2])) == 0.0  # exp(1000) / (1 + exp(1000))^2


# -------------------------------------------------------------- numbers vs references
NETWORKS = {
    "tiny_cnn": TINY,
    "mlp": {"input": "4", "layer": [{"type": "dense", "outputs": 3}, {"type": "sigmoid"},
                                    {"type": "dense", "outputs": 2},
                                    {"type": "softmax-cross-entropy"}]},
    "xor": {"input": "2", "layer": [{"type": "dense", "outputs": 2}, {"type": "sigmoid"},
                                    {"type": "dense", "outputs": 1}, {"type": "sigmoid"},
                                    {"type": "mse"}]},
    "strided": {"input": "2x7x7", "layer": [
        {"type": "conv2d", "filters": 2, "kernel": "3x2", "stride": 2, "padding": 1},
        {"type": "tanh"},
        {"type": "avgpool2d", "kernel": "2x2", "stride": 1, "padding": 1},
        {"type": "maxpool2d", "kernel": "3x3", "stride": 2, "padding": 1},
        {"type": "flatten"},
        {"type": "dense", "outputs": 3, "bias": False},
        {"type": "mse"}]},
    "transpose": {"input": "2x3x3", "layer": [
        {"type": "conv-transpose2d", "filters": 2, "kernel": "2x2", "stride": 2},
        {"type": "relu"},
        {"type": "conv2d", "filters": 1, "kernel": "3x3", "bias": False},
        {"type": "flatten"},
        {"type": "softmax-cross-entropy"}]},
    "no_loss": {"input": "1x5x5", "layer": [
        {"type": "conv2d", "filters": 2, "kernel": "2x2"}, {"type": "relu"},
        {"type": "maxpool2d", "kernel": "2x2", "stride": 1}]},
}


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def case(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    net = parse_network(NETWORKS[request.param])
    return request.param, net, derive_network(generic_values(net, 1).network)


def _outputs(result: Any) -> list[Any]:
    return [layer.output.value for layer in result.layers]


def test_evaluate_matches_the_numeric_forward_and_finite_differences(case: Any) -> None:
    name, net, derived = case
    values = generic_values(net, 1)
    result = evaluate_network(derived, values)
    for got, want in zip(_outputs(result), numeric_forward(values.network, values),
                         strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for check in finite_differences(result, values, sample=60):
        assert check.passed, (name, check)


def test_drawn_values_evaluate_exactly_through_linear_layers(case: Any) -> None:
    name, net, derived = case
    values = random_values(net, 2)
    derived = derive_network(values.network, reuse=derived)
    result = evaluate_network(derived, values)
    numeric = numeric_forward(values.network, values)
    exact = True  # sums of quarters stay exact until a function or a 1/9 comes in
    for layer, got, want in zip(net.layers, _outputs(result), numeric, strict=True):
        exact = exact and layer.type in ("conv2d", "conv-transpose2d", "relu", "maxpool2d",
                                         "flatten", "dense")
        if exact:
            assert np.array_equal(got, want), (name, layer.label)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def _tiny_by_loops(
    x: Any, w1: Any, b1: Any, w2: Any, b2: Any, t: int, pytorch: bool = True
) -> dict[str, Any]:
    """tiny_cnn forward and backward by explicit loops, with PyTorch's tie rules.

    ``pytorch=False`` breaks them (last maximum wins, ReLU'(0) = 1) for contrast.
    """
    z = np.zeros((2, 4, 4))
    for f in range(2):
        for i in range(4):
            for j in range(4):
                z[f, i, j] = b1[f] + sum(w1[f, 0, p, q] * x[0, i + p, j + q]
                                         for p in range(3) for q in range(3))
    a = np.maximum(z, 0)
    p = np.zeros((2, 2, 2))
    winner = {}
    for f in range(2):
        for i in range(2):
            for j in range(2):
                cells = [(2 * i + r, 2 * j + s) for r in range(2) for s in range(2)]
                order = cells if pytorch else cells[::-1]
                best = max(order, key=lambda c: a[f, c[0], c[1]])  # first maximum wins
                winner[f, i, j] = best
                p[f, i, j] = a[f, best[0], best[1]]
    flat = p.reshape(-1)
    logits = w2 @ flat + b2
    top = logits.max()
    probs = np.exp(logits - top) / np.exp(logits - top).sum()
    loss = top + math.log(np.exp(logits - top).sum()) - logits[t]
    dlogits = probs.copy()
    dlogits[t] -= 1
    dw2 = np.outer(dlogits, flat)
    dp = (w2.T @ dlogits).reshape(2, 2, 2)
    da = np.zeros((2, 4, 4))
    for (f, i, j), (r, s) in winner.items():
        da[f, r, s] += dp[f, i, j]
    dz = da * ((z > 0) if pytorch else (z >= 0))  # ReLU'(0) = 0
    dw1 = np.zeros((2, 1, 3, 3))
    dx = np.zeros((1, 6, 6))
    for f in range(2):
        for i in range(4):
            for j in range(4):
                for pp in range(3):
                    for q in range(3):
                        dw1[f, 0, pp, q] += dz[f, i, j] * x[0, i + pp, j + q]
                        dx[0, i + pp, j + q] += dz[f, i, j] * w1[f, 0, pp, q]
    return {"loss": loss, "z": z, "dx": dx, "dw1": dw1, "db1": dz.sum(axis=(1, 2)),
            "dw2": dw2, "db2": dlogits, "ties": winner}


def test_ties_and_relu_zeros_follow_pytorch(tiny: Any, tiny_derived: Any) -> None:
    x = np.array([[[1, 1, 0, 2, 2, 1], [1, 1, 0, 2, 2, 1], [0, 3, 3, 0, 1, 1],
                   [0, 3, 3, 0, 1, 1], [2, 2, 1, 1, 0, 0], [2, 2, 1, 1, 0, 0]]], float)
    w1 = np.array([[[[1, 0, 0], [0, 0, 0], [0, 0, 0]]],
                   [[[0, 1, -1], [1, 0, -1], [0, 0, 0]]]], float)
    b1 = np.array([0.0, -1.0])
    w2 = np.arange(24, dtype=float).reshape(3, 8) % 5 - 2
    b2 = np.array([0.0, 1.0, -1.0])
    doc = {"input": x.tolist(), "target": 1,
           "layers": [{"weight": w1.tolist(), "bias": b1.tolist()}, {}, {}, {},
                      {"weight": w2.tolist(), "bias": b2.tolist()}, {}]}
    values = parse_values(doc, tiny)
    result = evaluate_network(derive_network(values.network, reuse=tiny_derived), values)
    want = _tiny_by_loops(x, w1, b1, w2, b2, 1)
    z = want["z"]
    relu = np.maximum(z, 0)
    windows = relu.reshape(2, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(2, 2, 2, 4)
    tied = [(w == w.max()).sum() > 1 for w in windows.reshape(-1, 4)]
    assert sum(tied) >= 3, "the point must hold max-pooling ties"
    assert (z == 0).sum() >= 2, "the point must hold ReLU inputs of exactly 0"
    assert result.loss == pytest.approx(want["loss"], rel=1e-13)
    np.testing.assert_allclose(result.input.grad, want["dx"], rtol=1e-12, atol=1e-14)
    conv, dense = result.layers[0], result.layers[4]
    np.testing.assert_allclose(conv.params["weight"].grad, want["dw1"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(conv.params["bias"].grad, want["db1"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dense.params["weight"].grad, want["dw2"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dense.params["bias"].grad, want["db2"], rtol=1e-12, atol=1e-14)
    # the tie rules matter at this point: other rules give other gradients
    other = _tiny_by_loops(x, w1, b1, w2, b2, 1, pytorch=False)
    assert not np.allclose(other["dx"], want["dx"])
    assert not np.allclose(other["dw1"], want["dw1"])


# -------------------------------------------------------------------------- the CLI
def test_evaluate_json_is_in_full_layouts(tmp_path: Path) -> None:
    result = run("evaluate", str(EXAMPLES / "tiny_cnn.toml"), "--seed", "1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"loss", "input", "layers"}
    assert np.shape(doc["input"]["value"]) == np.shape(doc["input"]["grad"]) == (1, 6, 6)
    types = [layer["type"] for layer in doc["layers"]]
    assert types == ["conv2d", "relu", "maxpool2d", "flatten", "dense",
                     "softmax-cross-entropy"]
    conv = doc["layers"][0]
    assert np.shape(conv["output"]["value"]) == (2, 4, 4)
    assert np.shape(conv["params"]["weight"]["value"]) == (2, 1, 3, 3)
    assert np.shape(conv["params"]["bias"]["grad"]) == (2,)
    assert doc["layers"][1]["params"] == {}
    assert np.shape(doc["layers"][4]["params"]["weight"]["grad"]) == (3, 8)
    loss = doc["layers"][5]
    assert loss["output"]["value"] == doc["loss"] and loss["output"]["grad"] == 1.0
    assert loss["target"] in (0, 1, 2)
    # flatten only routes: its output gradient is the pooling's, read row by row
    pooled = np.asarray(doc["layers"][2]["output"]["grad"])
    assert np.asarray(doc["layers"][3]["output"]["grad"]).tolist() == pooled.reshape(-1).tolist()


def test_evaluate_text_table_and_timing() -> None:
    result = run("evaluate", str(EXAMPLES / "xor_mlp.toml"), "--values",
                 str(EXAMPLES / "xor_mlp.values.json"), "--timing")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "loss L = 0.121956 (mse" in out
    assert "y_hat" in out and "W[2]" in out
    assert "timing layer 1 (dense): derive" in result.stderr
    assert "timing total:" in result.stderr


def test_evaluate_no_loss_network_takes_grad_output(tmp_path: Path) -> None:
    net = write(tmp_path, "net.toml", toml_text(NETWORKS["no_loss"]))
    values = write(tmp_path, "v.json", json.dumps({"grad_output": np.ones((2, 3, 3)).tolist()}))
    result = run("evaluate", str(net), "--values", str(values), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["loss"] is None
    assert doc["layers"][-1]["output"]["grad"] == np.ones((2, 3, 3)).tolist()


def test_check_network_passes_and_exits_0() -> None:
    result = run("check", str(EXAMPLES / "tiny_cnn.toml"))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "PASS  symbolic  layer 1 (conv2d): dL/dW equals" in out
    assert "PASS  symbolic  layer 3 (maxpool2d)" in out
    assert "PASS  numeric   forward" in out
    assert "PASS  numeric   dL/d input vs finite differences (36 cells)" in out
    assert "PASS  numeric   dL/d layer 5 (dense) weight vs finite differences (24 cells)" in out
    assert "FAIL" not in out and "all checks passed" in out


def test_check_network_fails_with_a_planted_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    import convviz.network as network

    real = network.derive_network

    def faulty(net: Any, **kwargs: Any) -> Any:
        derived = real(net, **kwargs)
        d = derived.derivations[4]
        wrong = d.arrays["grad_weight"].copy()
        wrong[0, 0] = wrong[0, 1]
        changed = [*derived.derivations]
        changed[4] = d.with_arrays(grad_weight=wrong)
        return network.NetworkDerivation(derived.network, tuple(changed), derived.seconds)

    monkeypatch.setattr(network, "derive_network", faulty)
    result = run("check", str(EXAMPLES / "tiny_cnn.toml"))
    assert result.exit_code == 1, result.output
    assert "FAIL  symbolic  layer 5 (dense): dL/dW equals" in result.output
    assert "FAIL  numeric   dL/d layer 5 (dense) weight" in result.output
    assert "SOME CHECKS FAILED" in result.output


def test_check_keeps_the_layer_form_and_rejects_options_with_a_network() -> None:
    result = run("check", "--input", "4x4", "--kernel", "2x2")
    assert result.exit_code == 0, result.output
    assert "layer: conv2d" in result.output
    result = run("check", str(EXAMPLES / "tiny_cnn.toml"), "--kernel", "2x2")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: --kernel: layer options cannot be combined with a NETWORK file (the file "
        "gives every layer's options)"
    )
    result = run("check", str(EXAMPLES / "tiny_cnn.toml"), "--type", "relu")
    assert result.exit_code == 2


# ----------------------------------------------------------------------- examples
def test_examples_parse() -> None:
    for path in sorted(EXAMPLES.glob("*.toml")):
        net = load_network(path)
        assert net.layers, path
    xor = load_network(EXAMPLES / "xor_mlp.toml")
    assert [layer.type for layer in xor.layers] == ["dense", "sigmoid", "dense", "sigmoid",
                                                    "mse"]
    assert xor.layers[0].spec.inputs == 2 and xor.layers[2].spec.outputs == 1
    mlp = load_network(EXAMPLES / "mlp_sigmoid_ce.toml")
    assert mlp.layers[-1].type == "softmax-cross-entropy"
    assert "sigmoid" in [layer.type for layer in mlp.layers]


def test_lenet5_shapes_and_size() -> None:
    from convviz.spec import MAX_PRODUCTS

    net = load_network(EXAMPLES / "lenet5.toml")
    assert net.input_shape == (1, 28, 28)
    shapes = [layer.output_shape for layer in net.layers]
    assert shapes[:7] == [(6, 24, 24), (6, 24, 24), (6, 12, 12), (16, 8, 8), (16, 8, 8),
                          (16, 4, 4), (256,)]
    assert shapes[7:] == [(120,), (120,), (84,), (84,), (10,), ()]
    multiplications = sum(layer.spec.products for layer in net.layers
                          if layer.type in ("conv2d", "dense"))
    assert multiplications == 86_400 + 153_600 + 30_720 + 10_080 + 840  # ~280,000
    assert all(layer.spec.products <= MAX_PRODUCTS for layer in net.layers)
    assert [layer.number for layer in net.layers] == [1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4, 5, 5]


@pytest.mark.parametrize(
    "args",
    [
        ("tiny_cnn.toml", "--seed", "0"),
        ("xor_mlp.toml", "--values", "xor_mlp.values.json"),
        ("mlp_sigmoid_ce.toml", "--seed", "2"),
    ],
)
def test_examples_evaluate_and_check(args: tuple[str, ...]) -> None:
    name, *rest = args
    rest = [str(EXAMPLES / r) if r.endswith(".json") else r for r in rest]
    result = run("evaluate", str(EXAMPLES / name), *rest, "--json")
    assert result.exit_code == 0, result.output
    assert math.isfinite(json.loads(result.stdout)["loss"])
    result = run("check", str(EXAMPLES / name))
    assert result.exit_code == 0, result.output


def test_xor_values_file_matches_the_values_format() -> None:
    net = load_network(EXAMPLES / "xor_mlp.toml")
    doc = json.loads((EXAMPLES / "xor_mlp.values.json").read_text())
    values = parse_values(doc, net)
    assert values.to_json() == doc  # nothing drawn: the file gives every array
    with (EXAMPLES / "xor_mlp.toml").open("rb") as handle:
        assert len(tomllib.load(handle)["layer"]) == len(doc["layers"])


def test_import_convviz_stays_free_of_sympy() -> None:
    code = ("import sys, convviz; net = convviz.Sequential(convviz.ReLU(), input='3'); "
            "import convviz.network; print('sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
