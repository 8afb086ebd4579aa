"""The command line for every layer type: ``--type``, the types' options, JSON, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from convviz.cli import main

TYPES = [
    "conv2d",
    "conv-transpose2d",
    "maxpool2d",
    "avgpool2d",
    "dense",
    "relu",
    "sigmoid",
    "tanh",
    "flatten",
    "softmax-cross-entropy",
    "mse",
]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def test_types_lists_every_type_with_its_options_and_ops() -> None:
    result = run("types")
    assert result.exit_code == 0
    text = result.output
    for name in TYPES:
        assert f"--type {name}," in text, name
    blocks = text.split("\n")
    maxpool = next(n for n, line in enumerate(blocks) if line.startswith("maxpool2d "))
    assert "--kernel 2x2" in blocks[maxpool + 1] and "--stride" in blocks[maxpool + 1]
    assert blocks[maxpool + 2].strip().startswith("ops:     forward")
    dense = next(n for n, line in enumerate(blocks) if line.startswith("dense "))
    assert "--outputs 3" in blocks[dense + 1]
    ops = [part.split(" (")[0].strip() for part in blocks[dense + 2].split(":", 1)[1].split("), ")]
    assert ops == ["forward", "dw", "da", "db"]


BAD = [
    pytest.param(["derive", "forward", "--outputs", "3"], "--outputs", "conv2d",
                 id="conv2d-takes-no-outputs"),
    pytest.param(["derive", "forward", "--type", "relu", "--kernel", "2"], "--kernel", "relu",
                 id="relu-takes-no-kernel"),
    pytest.param(["derive", "forward", "--type", "dense", "--outputs", "0"], "--outputs", "",
                 id="outputs-zero"),
    pytest.param(["derive", "forward", "--type", "dense", "--input", "3x3"], "--input", "",
                 id="dense-needs-a-vector"),
    pytest.param(["derive", "forward", "--type", "maxpool2d", "--input", "3x3", "--kernel", "5"],
                 "--kernel", "", id="pool-kernel-larger-than-input"),
    pytest.param(["check", "--type", "softmax-cross-entropy", "--input", "3", "--target", "4"],
                 "--target", "", id="target-out-of-range"),
    pytest.param(["check", "--type", "softmax-cross-entropy", "--target", "0"], "--target", "",
                 id="target-zero"),
    pytest.param(["highlights", "dw", "--type", "maxpool2d"], "OP", "maxpool2d",
                 id="op-of-another-type"),
    pytest.param(["derive", "forward", "--type", "conv-transpose2d", "--stride", "2",
                  "--output-padding", "2"], "--output-padding", "", id="output-padding-too-big"),
    pytest.param(["derive", "forward", "--type", "nope"], "--type", "", id="unknown-type"),
]


@pytest.mark.parametrize(("args", "option", "type_name"), BAD)
def test_bad_input_is_one_line_naming_the_option_and_exit_2(args, option, type_name) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    assert option in lines[0]
    assert type_name in lines[0]
    assert "Traceback" not in result.output


def test_render_with_a_bad_option_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    result = run("render", "forward", "--type", "maxpool2d", "--outputs", "2", "-o",
                 str(target))
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_one_number_means_both_axes() -> None:
    square = run("highlights", "forward", "--type", "maxpool2d", "--input", "4x4", "--kernel",
                 "2x2", "--json")
    single = run("highlights", "forward", "--type", "maxpool2d", "--input", "4x4", "--kernel",
                 "2", "--json")
    assert square.exit_code == 0 and single.exit_code == 0
    assert json.loads(square.output) == json.loads(single.output)
    conv = run("highlights", "forward", "--input", "5x5", "--kernel", "2", "--json")
    assert json.loads(conv.output)["arrays"]["kernel"]["shape"] == [2, 2]


def test_maxpool_highlights_are_the_windows() -> None:
    # 4x6 input, 2x2 kernel, stride 2: output (i, j) reads rows 2i-1..2i, cols 2j-1..2j
    result = run("highlights", "forward", "--type", "maxpool2d", "--input", "4x6", "--kernel",
                 "2", "--json")
    doc = json.loads(result.output)
    assert doc["arrays"]["output"]["shape"] == [2, 3]
    for step in doc["steps"]:
        i, j = step["target"]["index"]
        window = [[r, c] for r in (2 * i - 1, 2 * i) for c in (2 * j - 1, 2 * j)]
        assert step["highlights"] == {"input": window}


def test_dense_json_keeps_every_axis_and_uses_its_roles() -> None:
    result = run("derive", "dw", "--type", "dense", "--input", "1", "--outputs", "1",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert list(doc["arrays"]) == ["grad_output", "input", "grad_weight"]
    assert doc["arrays"]["grad_weight"]["shape"] == [1, 1]
    assert doc["arrays"]["input"]["shape"] == [1]
    assert [c["target"] for c in doc["cells"]] == [{"role": "grad_weight", "index": [1, 1]}]
    # dW[1,1] = dz_1 a_1: srepr names the upstream derivative and the input cell
    expr = doc["cells"][0]["expr"]
    assert "Derivative" in expr and "a^{[0]}" in expr


def test_vector_indices_are_one_based_lists() -> None:
    result = run("highlights", "da", "--type", "relu", "--input", "3", "--json")
    doc = json.loads(result.output)
    assert [s["target"]["index"] for s in doc["steps"]] == [[1], [2], [3]]
    assert doc["steps"][1]["highlights"] == {"input": [[2]], "grad_output": [[2]]} or (
        doc["steps"][1]["highlights"] == {"grad_output": [[2]], "input": [[2]]}
    )


@pytest.mark.parametrize("type_name", TYPES)
def test_check_passes_for_every_type_at_its_defaults(type_name: str) -> None:
    result = run("check", "--type", type_name)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("all checks passed")
    assert "FAIL" not in result.output
    assert "PASS  symbolic" in result.output
    assert "PASS  numeric" in result.output
