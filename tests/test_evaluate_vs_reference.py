"""``convviz evaluate NET.toml --values V.json --json`` against the plain-NumPy reference.

Every number the command prints -- the loss, the input and its gradient, every layer's
output and its gradient, every parameter and its gradient -- must equal
:func:`network_reference.reference_network` (itself checked against finite differences,
hand-worked cases and, where installed, PyTorch in test_network_reference.py) to float64
rounding: ``rtol=1e-10, atol=1e-12``, with identical shapes (PyTorch layouts, no axis
dropped). One network uses whole-number data so that max-pool ties and ReLU inputs of
exactly 0 really occur, and the test asserts that they do and that they matter.

The module is skipped while ``evaluate`` is not registered on ``convviz.cli.main``
(issue 9); once it is, every failure here is real.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner
from network_reference import random_values, reference_network

from convviz.cli import main


def _evaluate_registered() -> bool:
    with click.Context(main) as ctx:
        return main.get_command(ctx, "evaluate") is not None


if not _evaluate_registered():
    pytest.skip(
        "`convviz evaluate` is not registered on convviz.cli.main yet (issue 9)",
        allow_module_level=True,
    )

RTOL, ATOL = 1e-10, 1e-12


# ------------------------------------------------------------------------- networks
TINY_CNN = """
input = "1x6x6"
[[layer]]
type = "conv2d"
filters = 2
kernel = "3x3"
[[layer]]
type = "relu"
[[layer]]
type = "maxpool2d"
kernel = "2x2"
[[layer]]
type = "flatten"
[[layer]]
type = "dense"
outputs = 3
[[layer]]
type = "softmax-cross-entropy"
"""

MLP = """
input = "4"
[[layer]]
type = "dense"
outputs = 3
[[layer]]
type = "sigmoid"
[[layer]]
type = "dense"
outputs = 2
[[layer]]
type = "softmax-cross-entropy"
"""

XOR = """
input = "2"
[[layer]]
type = "dense"
outputs = 2
[[layer]]
type = "sigmoid"
[[layer]]
type = "dense"
outputs = 1
[[layer]]
type = "sigmoid"
[[layer]]
type = "mse"
"""

AVGPOOL_TANH = """
input = "2x5x5"
[[layer]]
type = "conv2d"
filters = 2
kernel = "3x3"
padding = 1
[[layer]]
type = "tanh"
[[layer]]
type = "avgpool2d"
kernel = "3x3"
stride = 2
padding = 1
[[layer]]
type = "flatten"
[[layer]]
type = "dense"
outputs = 3
[[layer]]
type = "mse"
"""

STRIDED = """
input = "2x7x7"
[[layer]]
type = "conv2d"
filters = 3
kernel = "3x3"
stride = 2
padding = 1
[[layer]]
type = "relu"
[[layer]]
type = "maxpool2d"
kernel = "2x2"
stride = 1
[[layer]]
type = "flatten"
[[layer]]
type = "dense"
outputs = 4
[[layer]]
type = "softmax-cross-entropy"
"""

CONV_TRANSPOSE = """
input = "2x3x3"
[[layer]]
type = "conv-transpose2d"
filters = 2
kernel = "3x3"
stride = 2
padding = 1
output_padding = 1
[[layer]]
type = "sigmoid"
[[layer]]
type = "avgpool2d"
kernel = "2x2"
[[layer]]
type = "flatten"
[[layer]]
type = "mse"
"""

NO_LOSS = """
input = "1x4x4"
[[layer]]
type = "conv2d"
filters = 2
kernel = "2x2"
bias = false
[[layer]]
type = "tanh"
[[layer]]
type = "flatten"
[[layer]]
type = "dense"
outputs = 3
"""

RANDOM_NETWORKS = {
    "tiny-cnn": (TINY_CNN, 2),
    "mlp-4-3-2": (MLP, 1),
    "xor-2-2-1": (XOR, None),
    "avgpool-tanh": (AVGPOOL_TANH, None),
    "stride2-padding": (STRIDED, 3),
    "conv-transpose": (CONV_TRANSPOSE, None),
    "no-loss": (NO_LOSS, None),
}

# Whole numbers for the tiny CNN: the conv output has exact zeros that a max-pool window
# picks (so ReLU'(0) decides a gradient) and windows with tied positive maxima.
TIE_VALUES: dict[str, Any] = {
    "input": [[[0, 0, -1, 1, 0, 1], [-1, -1, -1, 0, -1, -1], [1, -1, 0, 0, 0, 0],
               [1, 1, 0, 1, -1, 0], [0, 0, 1, -1, 0, 1], [1, 1, 1, 1, 0, -1]]],
    "target": 1,
    "layers": [
        {"weight": [[[[0, 0, -1], [0, 1, 0], [-1, -1, -1]]],
                    [[[0, 0, 1], [1, 1, -1], [-1, 1, -1]]]],
         "bias": [0, 1]},
        {},
        {},
        {},
        {"weight": [[-1, 1, 1, 1, 0, -1, 1, -1], [-1, 0, -1, 0, -1, -1, -1, 0],
                    [-1, -1, 1, 1, 1, -1, 0, -1]],
         "bias": [-1, 1, 1]},
        {},
    ],
}

# Max pooling straight on a whole-number input, windows overlapping and padded.
POOL_TIES = """
input = "2x4x4"
[[layer]]
type = "maxpool2d"
kernel = "2x2"
stride = 1
padding = 1
[[layer]]
type = "flatten"
[[layer]]
type = "dense"
outputs = 2
[[layer]]
type = "mse"
"""


def _floats(value: Any) -> Any:
    """Whole numbers written as JSON floats (``1.0``)."""
    return np.asarray(value, dtype=float).tolist()


def pool_tie_values() -> dict[str, Any]:
    x = [[[float((i * j + c) % 3) for j in range(4)] for i in range(4)] for c in range(2)]
    w = [[float((3 * m + n) % 5 - 2) for n in range(50)] for m in range(2)]
    return {"input": x, "target": [1.0, -2.0],
            "layers": [{}, {}, {"weight": w, "bias": [0.0, 1.0]}, {}]}


# --------------------------------------------------------------------------- helpers
def evaluate(tmp_path: Path, toml_text: str, *args: str,
             values: dict[str, Any] | None = None) -> dict[str, Any]:
    net_path = tmp_path / "net.toml"
    net_path.write_text(toml_text)
    argv = ["evaluate", str(net_path)]
    if values is not None:
        values_path = tmp_path / "values.json"
        values_path.write_text(json.dumps(values))
        argv += ["--values", str(values_path)]
    argv += [*args, "--json"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, (result.output, result.exception)
    printed: dict[str, Any] = json.loads(result.stdout)
    return printed


def _same_array(got: Any, want: Any, where: str) -> None:
    got_arr = np.asarray(got, dtype=float)
    want_arr = np.asarray(want, dtype=float)
    assert got_arr.shape == want_arr.shape, f"{where}: shape {got_arr.shape} != {want_arr.shape}"
    np.testing.assert_allclose(got_arr, want_arr, rtol=RTOL, atol=ATOL, err_msg=where)


def assert_matches_reference(cli: dict[str, Any], ref: dict[str, Any]) -> None:
    """Every number of ``evaluate --json`` equals the reference, shapes included."""
    if ref["loss"] is None:
        assert cli.get("loss") is None
    else:
        _same_array(cli["loss"], ref["loss"], "loss")
    for part in ("value", "grad"):
        _same_array(cli["input"][part], ref["input"][part], f"input {part}")
    assert len(cli["layers"]) == len(ref["layers"])
    for n, (got, want) in enumerate(zip(cli["layers"], ref["layers"], strict=True), start=1):
        where = f"layer {n} ({want['type']})"
        assert got["type"] == want["type"], where
        for part in ("value", "grad"):
            _same_array(got["output"][part], want["output"][part], f"{where} output {part}")
        # A layer without parameters may print "params": {} or leave it out; a layer
        # without a bias may print "bias": null or leave it out.
        params = {k: v for k, v in (got.get("params") or {}).items() if v is not None}
        assert set(params) == set(want["params"]), where
        for name, param in want["params"].items():
            for part in ("value", "grad"):
                _same_array(params[name][part], param[part], f"{where} {name} {part}")


def check(tmp_path: Path, toml_text: str, values: dict[str, Any]) -> dict[str, Any]:
    ref = reference_network(tomllib.loads(toml_text), values)
    cli = evaluate(tmp_path, toml_text, values=values)
    assert_matches_reference(cli, ref)
    if "target" in cli["layers"][-1]:  # a loss may echo its target: the one given
        _same_array(cli["layers"][-1]["target"], values["target"], "target")
    return ref


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", sorted(RANDOM_NETWORKS))
def test_evaluate_matches_reference_on_random_values(tmp_path: Path, name: str) -> None:
    toml_text, target = RANDOM_NETWORKS[name]
    values = random_values(tomllib.loads(toml_text), seed=7, target=target)
    check(tmp_path, toml_text, values)


@pytest.mark.parametrize(("x0", "x1", "t"), [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_evaluate_matches_reference_on_a_trained_xor(tmp_path: Path, x0: int, x1: int,
                                                     t: int) -> None:
    values = {
        "input": [float(x0), float(x1)],
        "target": [float(t)],
        "layers": [{"weight": [[6.0, 6.0], [-4.0, -4.0]], "bias": [-2.5, 6.0]}, {},
                   {"weight": [[7.0, 7.0]], "bias": [-10.0]}, {}, {}],
    }
    ref = check(tmp_path, XOR, values)
    assert (ref["layers"][3]["output"]["value"][0] > 0.5) == bool(t)


def test_evaluate_follows_pytorch_tie_rules_on_whole_numbers(tmp_path: Path) -> None:
    values = {**TIE_VALUES, "input": _floats(TIE_VALUES["input"]),
              "layers": [{k: _floats(v) for k, v in entry.items()}
                         for entry in TIE_VALUES["layers"]]}
    ref = reference_network(tomllib.loads(TINY_CNN), values)
    conv, relu, pool = ref["layers"][0], ref["layers"][1], ref["layers"][2]
    z = conv["output"]["value"]
    a = relu["output"]["value"]
    # ReLU inputs of exactly 0 that a max-pool picks: dL/da != 0 there, so ReLU'(0)
    # decides whether the conv output gets a gradient (PyTorch: it does not).
    picked_zeros = (z == 0) & (relu["output"]["grad"] != 0)
    assert picked_zeros.any()
    assert (conv["output"]["grad"][picked_zeros] == 0).all()
    # Windows whose positive maximum is tied, with a gradient to route.
    tied = 0
    C, OH, OW = pool["output"]["value"].shape
    for c in range(C):
        for i in range(OH):
            for j in range(OW):
                window = a[c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                top = window.max()
                if top > 0 and (window == top).sum() >= 2 and pool["output"]["grad"][c, i, j]:
                    tied += 1
                    first = np.argwhere(window == top)[0]  # row-major first
                    routed = relu["output"]["grad"][c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                    assert routed[tuple(first)] == pool["output"]["grad"][c, i, j]
                    assert np.count_nonzero(routed) == 1
    assert tied >= 2
    assert_matches_reference(evaluate(tmp_path, TINY_CNN, values=values), ref)


def test_evaluate_follows_maxpool_tie_rule_with_overlapping_padded_windows(
    tmp_path: Path,
) -> None:
    values = pool_tie_values()
    ref = reference_network(tomllib.loads(POOL_TIES), values)
    x = np.asarray(values["input"])
    g = ref["layers"][0]["output"]["grad"]
    # Ties within windows that carry a gradient (padding is -inf, never a tie).
    tied = 0
    C, OH, OW = g.shape
    for c in range(C):
        for i in range(OH):
            for j in range(OW):
                rows = slice(max(i - 1, 0), min(i + 1, 4))
                cols = slice(max(j - 1, 0), min(j + 1, 4))
                window = x[c, rows, cols]
                if (window == window.max()).sum() >= 2 and g[c, i, j] != 0:
                    tied += 1
    assert tied >= 10
    # Overlapping windows: some input cell is the chosen maximum of several windows.
    chosen = np.zeros_like(x)
    for c in range(C):
        for i in range(OH):
            for j in range(OW):
                best = max(  # the first maximum: largest value, then smallest row, column
                    (x[c, r, s], -r, -s)
                    for r in range(max(i - 1, 0), min(i + 1, 4))
                    for s in range(max(j - 1, 0), min(j + 1, 4))
                )
                chosen[c, -best[1], -best[2]] += 1
    assert chosen.max() >= 2
    check(tmp_path, POOL_TIES, values)


@pytest.mark.parametrize("name", ["tiny-cnn", "xor-2-2-1", "no-loss"])
def test_seeded_values_are_consistent_with_the_reference(tmp_path: Path, name: str) -> None:
    """``--seed``: the values the command drew (read back from its own output: the
    input, the parameters, the target -- echoed, or else recovered from the loss's input
    gradient -- and a network without loss's grad_output) run through the reference give
    every other number it printed."""
    toml_text, _ = RANDOM_NETWORKS[name]
    cli = evaluate(tmp_path, toml_text, "--seed", "3")
    net = tomllib.loads(toml_text)
    values: dict[str, Any] = {
        "input": cli["input"]["value"],
        "layers": [{k: v["value"] for k, v in (layer.get("params") or {}).items()
                    if v is not None} for layer in cli["layers"]],
    }
    last_type = net["layer"][-1]["type"]
    before_loss = cli["layers"][-2] if len(cli["layers"]) > 1 else cli["input"]
    if "target" in cli["layers"][-1]:  # the loss echoes the target it drew
        values["target"] = cli["layers"][-1]["target"]
    elif last_type == "softmax-cross-entropy":  # dL/dz = softmax - onehot(target)
        values["target"] = int(np.argmin(before_loss["output"]["grad"]))
    elif last_type == "mse":  # dL/dy = 2 (y - t) / N
        y = np.asarray(before_loss["output"]["value"], dtype=float)
        dy = np.asarray(before_loss["output"]["grad"], dtype=float)
        values["target"] = (y - dy * y.size / 2).tolist()
    else:
        values["grad_output"] = cli["layers"][-1]["output"]["grad"]
    assert_matches_reference(cli, reference_network(net, values))
