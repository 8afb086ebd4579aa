from __future__ import annotations

import dataclasses
import json

import pytest
import sympy
from click.testing import CliRunner

from convviz.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


# ------------------------------------------------------------------------------ derive
# 2x2 input, 1x1 kernel: z[i,j] = W[1,1] a[i,j] + b, dL/dW[1,1] = sum dz[i,j] a[i,j], ...
A = sympy.IndexedBase("a^{[1]}")
W = sympy.IndexedBase("W^{[2]}")
Z = sympy.IndexedBase("z^{[2]}")
B = sympy.Symbol("b^{[2]}")
LOSS = sympy.Function(r"\mathcal{L}")(*sympy.symbols(r"y \hat{y}"))


def dz(i, j):
    return sympy.Derivative(LOSS, Z[i, j])


CELLS = [(1, 1), (1, 2), (2, 1), (2, 2)]
EXPECTED_2x2_1x1 = {
    "forward": [((i, j), W[1, 1] * A[i, j] + B) for i, j in CELLS],
    "dw": [((1, 1), sympy.Add(*(dz(i, j) * A[i, j] for i, j in CELLS)))],
    "da": [((i, j), dz(i, j) * W[1, 1]) for i, j in CELLS],
    "db": [((), sympy.Add(*(dz(i, j) for i, j in CELLS)))],
}
TARGET_ROLE = {"forward": "output", "dw": "grad_kernel", "da": "grad_input", "db": "grad_bias"}


@pytest.mark.parametrize("op", ["forward", "dw", "da", "db"])
def test_derive_json_matches_hand_written_expressions(op):
    result = run("derive", op, "--input", "2x2", "--kernel", "1x1", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"op", "arrays", "cells"}
    assert doc["op"] == op
    for info in doc["arrays"].values():
        assert set(info) == {"label", "symbol", "shape"}
    assert list(doc["arrays"])[-1] == TARGET_ROLE[op]
    want = EXPECTED_2x2_1x1[op]
    assert len(doc["cells"]) == len(want)
    for cell, (index, expr) in zip(doc["cells"], want, strict=True):
        assert set(cell) == {"target", "expr", "latex"}
        assert cell["target"] == {"role": TARGET_ROLE[op], "index": list(index)}
        assert cell["expr"] == sympy.srepr(expr)
        assert cell["latex"] == sympy.latex(expr)


def test_derive_json_arrays_for_forward():
    doc = json.loads(run("derive", "forward", "--input", "2x5x5", "--filters", "3",
                         "--format", "json").stdout)
    arrays = doc["arrays"]
    assert list(arrays) == ["input", "kernel", "bias", "output"]
    assert arrays["input"]["shape"] == [2, 5, 5]
    assert arrays["kernel"]["shape"] == [3, 2, 3, 3]
    assert arrays["bias"]["shape"] == [3]
    assert arrays["output"]["shape"] == [3, 3, 3]
    assert arrays["input"]["symbol"] == "a^{[1]}"
    assert len(doc["cells"]) == 27


def test_derive_text_and_latex():
    text = run("derive", "da", "--input", "2x2", "--kernel", "1x1")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("da^{[1]}[1, 1] = ")
    assert "W^{[2]}[1, 1]" in lines[0]
    latex = run("derive", "db", "--input", "2x2", "--kernel", "1x1", "--format", "latex")
    assert latex.exit_code == 0
    [line] = latex.stdout.splitlines()
    assert line.startswith(r"\frac{\partial \mathcal{L}}{\partial b^{[2]}} = ")


def test_derive_layer_number_changes_labels():
    doc = json.loads(run("derive", "forward", "--layer", "5", "--format", "json").stdout)
    assert doc["arrays"]["input"]["symbol"] == "a^{[4]}"
    assert doc["arrays"]["kernel"]["symbol"] == "W^{[5]}"


def test_derive_engines_agree():
    fast = run("derive", "dw", "--input", "4x4", "--stride", "2", "--format", "json")
    slow = run("derive", "dw", "--input", "4x4", "--stride", "2", "--format", "json",
               "--engine", "sympy")
    assert fast.exit_code == slow.exit_code == 0
    assert fast.stdout == slow.stdout


# -------------------------------------------------------------------------- highlights
def test_highlights_json_schema_and_row_major_steps():
    result = run("highlights", "forward", "--input", "6x6", "--kernel", "3x3", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert set(doc) == {"op", "arrays", "steps"}
    steps = doc["steps"]
    assert [s["target"]["index"] for s in steps] == [[i, j] for i in range(1, 5)
                                                     for j in range(1, 5)]
    for step in steps:
        assert set(step) == {"target", "terms", "highlights"}
        assert step["target"]["role"] == "output"
        for term in step["terms"]:
            assert all(set(f) == {"role", "index"} for f in term)
    # z[1,2]: a[1..3, 2..4], all of W, the bias
    second = steps[1]["highlights"]
    assert second["input"] == [[r, c] for r in (1, 2, 3) for c in (2, 3, 4)]
    assert second["kernel"] == [[p, q] for p in (1, 2, 3) for q in (1, 2, 3)]
    assert second["bias"] == [[]]


def test_highlights_text():
    result = run("highlights", "db", "--input", "3x3", "--kernel", "2x2")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "grad_bias[] <- grad_output: (1,1) (1,2) (2,1) (2,2)"
    ]


# ------------------------------------------------------------------------------- check
def test_check_passes():
    result = run("check", "--input", "2x5x5", "--filters", "2", "--stride", "2", "--padding", "1")
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.stdout
    assert "all checks passed" in result.stdout
    assert result.stdout.count("PASS") >= 7


def _with_grad_kernel(d, grad):
    """``d`` with its kernel gradient replaced (as tests/test_numeric.py does)."""
    if hasattr(d, "with_arrays"):  # the layer-generic Derivation of convviz.layers
        return d.with_arrays(grad_kernel=grad)
    return dataclasses.replace(d, grad_kernel=grad)


def test_check_reports_a_broken_gradient_and_exits_1(monkeypatch):
    """As in test_numeric: dL/dW[1,1,2,2] gains a stray term; check must say so."""
    import convviz.derivation

    real_derive = convviz.derivation.derive

    def broken_derive(spec, *args, **kwargs):
        d = real_derive(spec, *args, **kwargs)
        grad = d.grad_kernel.copy()
        grad[0, 0, 1, 1] = grad[0, 0, 1, 1] + d.grad_output[0, 0, 0] * d.input[0, 3, 3]
        return _with_grad_kernel(d, grad)

    monkeypatch.setattr(convviz.derivation, "derive", broken_derive)
    result = run("check", "--input", "4x4", "--kernel", "2x2")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert "FAIL  numeric   dL/dW vs finite differences: max abs error" in "\n".join(failed)
    passed = "\n".join(line for line in lines if line.startswith("PASS"))
    assert "dL/da vs finite differences" in passed
    assert "forward vs explicit-loop reference" in passed
    assert lines[-1].startswith("SOME CHECKS FAILED in ")
    assert "all checks passed" not in result.stdout
    assert "Traceback" not in result.output


def test_check_seed_is_the_seed_of_the_numeric_test_point(monkeypatch):
    import convviz.numeric

    seeds = []
    real_cross_check = convviz.numeric.cross_check

    def recording(derivation, *args, seed, **kwargs):
        seeds.append(seed)
        return real_cross_check(derivation, *args, seed=seed, **kwargs)

    monkeypatch.setattr(convviz.numeric, "cross_check", recording)
    for args in ([], ["--seed", "12345"]):
        result = run("check", "--input", "3x3", "--kernel", "2x2", *args)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1].startswith("all checks passed in ")
    assert seeds == [0, 12345]


# ----------------------------------------------------------------------------- errors
BAD_INPUT = [
    pytest.param(["derive", "forward", "--input", "abc"], "--input", id="input-letters"),
    pytest.param(["derive", "forward", "--input", "3x"], "--input", id="input-trailing-x"),
    pytest.param(["derive", "forward", "--input", "0x5"], "--input", id="input-zero"),
    pytest.param(["derive", "forward", "--input", "-3x3"], "--input", id="input-negative"),
    pytest.param(["derive", "forward", "--kernel", "0x3"], "--kernel", id="kernel-zero"),
    pytest.param(["derive", "forward", "--stride", "0"], "--stride", id="stride-zero"),
    pytest.param(["derive", "forward", "--stride", "2x0"], "--stride", id="stride-pair-zero"),
    pytest.param(["derive", "forward", "--dilation", "0"], "--dilation", id="dilation-zero"),
    pytest.param(["derive", "forward", "--padding", "-1"], "--padding", id="padding-negative"),
    pytest.param(["derive", "forward", "--kernel", "9x9"], "--kernel", id="kernel-too-big"),
    pytest.param(["derive", "forward", "--input", "400x400"], "--input", id="layer-too-large"),
    pytest.param(["derive", "forward", "--filters", "0"], "--filters", id="filters-zero"),
    pytest.param(["derive", "forward", "--layer", "x"], "--layer", id="layer-letter"),
    pytest.param(["highlights", "forward", "--dilation", "3", "--input", "4x4"], "--kernel",
                 id="dilated-kernel-too-big"),
    pytest.param(["check", "--stride", "2x0"], "--stride", id="check-stride"),
    pytest.param(["check", "--seed", "x"], "'--seed'", id="check-seed-not-a-number"),
    pytest.param(["derive", "bogus"], "'bogus'", id="unknown-op"),
    pytest.param(["highlights"], "Missing argument", id="missing-op"),
    pytest.param(["derive", "forward", "--bogus"], "--bogus", id="unknown-option"),
    pytest.param(["derive", "forward", "--format", "pdf"], "--format", id="bad-format"),
    pytest.param(["frobnicate"], "frobnicate", id="unknown-command"),
]


@pytest.mark.parametrize(("args", "named"), BAD_INPUT)
def test_bad_input_is_one_line_exit_2(args, named):
    result = run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert named in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["main", *sorted(main.commands)])
def test_every_command_has_help_with_example(name):
    command = main if name == "main" else main.commands[name]
    assert command.help and "Example" in command.help
    result = run(*([] if name == "main" else [name]), "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert "convviz" in result.stdout


def test_core_commands_registered():
    from convviz.cli import core_commands

    assert main.commands["derive"] is core_commands.derive_command
    assert main.commands["highlights"] is core_commands.highlights_command
    assert main.commands["check"] is core_commands.check_command


def test_unknown_op_names_the_types_ops_and_exits_2() -> None:
    result = CliRunner().invoke(main, ["derive", "dz"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: OP: conv2d has no op 'dz'; expected one of forward, dw, da, db, da-full"
    ]


def test_cli_starts_without_sympy_or_manim() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from convviz.cli import main; "
        "assert 'sympy' not in sys.modules and 'manim' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
