"""Single-layer clips drawn at numbers (``--seed``/``--values``/``--show``).

The references here are plain NumPy written in the tests (explicit loops), not the layer
declarations' forward functions nor the evaluator the plans use.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from convviz.cli import main
from convviz.derivation import derive
from convviz.layers import layer_type
from convviz.rendering.plan import ScenePlan, plan_scene
from convviz.rendering.values import (
    format_number,
    layer_values,
    number_latex,
    resolve_show,
)
from convviz.spec import ConvSpec

from .conftest import scene_config


def _plan(spec: Any, op: str, *, seed: int | None = None, values: Any = None,
          show: str = "values", max_steps: int | None = None) -> tuple[ScenePlan, Any]:
    numbers = layer_values(spec, seed=seed, values=values)
    assert numbers is not None
    plan = plan_scene(derive(numbers.spec), op, max_steps=max_steps, values=numbers.arrays,
                      show=show, verify_identity=False)
    return plan, numbers


def _labels(plan: ScenePlan, role: str) -> dict[tuple[int, ...], str]:
    """The label drawn in each display cell of ``role``."""
    array = plan.array(role)
    return {index: array.grids[n].labels[key] for index, (n, key) in array.positions.items()}


def _assert_cells_show(plan: ScenePlan, role: str, expected: np.ndarray) -> None:
    """Every cell of ``role`` holds ``expected`` (display shape) and shows it."""
    array = plan.array(role)
    labels = _labels(plan, role)
    wanted = {tuple(i + 1 for i in pos) for pos in np.ndindex(*expected.shape)}
    assert set(array.values) == wanted
    for pos in np.ndindex(*expected.shape):
        index = tuple(i + 1 for i in pos)
        assert array.values[index] == pytest.approx(float(expected[pos]), abs=1e-12), index
        assert labels[index] == number_latex(float(expected[pos]), cell=True), index


# ----------------------------------------------------------------------- references
def _correlate(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: tuple[int, int],
               padding: tuple[int, int]) -> np.ndarray:
    """z[f, i, j] = sum_c,p,q w[f, c, p, q] x_padded[c, i*s + p, j*s + q] + b[f], by loops."""
    channels, height, width = x.shape
    filters, _, kh, kw = w.shape
    ph, pw = padding
    padded = np.zeros((channels, height + 2 * ph, width + 2 * pw))
    padded[:, ph:ph + height, pw:pw + width] = x
    oh = (height + 2 * ph - kh) // stride[0] + 1
    ow = (width + 2 * pw - kw) // stride[1] + 1
    z = np.zeros((filters, oh, ow))
    for f in range(filters):
        for i in range(oh):
            for j in range(ow):
                total = b[f]
                for c in range(channels):
                    for p in range(kh):
                        for q in range(kw):
                            total += w[f, c, p, q] * padded[c, i * stride[0] + p,
                                                            j * stride[1] + q]
                z[f, i, j] = total
    return z


def _maxpool(x: np.ndarray, k: int) -> np.ndarray:
    channels, height, width = x.shape
    out = np.zeros((channels, height // k, width // k))
    for c in range(channels):
        for i in range(height // k):
            for j in range(width // k):
                out[c, i, j] = max(x[c, i * k + p, j * k + q] for p in range(k) for q in range(k))
    return out


# ------------------------------------------------------------------------------ numbers
@pytest.mark.parametrize(("x", "text"), [
    (0.875, "0.875"), (2.0, "2"), (1 / 3, "0.333"), (-0.25, "-0.25"), (12345.0, "12300"),
    (9.996, "10"), (0.0001234, "1.23e-4"), (-0.0, "0"), (0.0999999, "0.1"), (-1.625, "-1.62"),
])
def test_numbers_read_short(x: float, text: str) -> None:
    assert format_number(x) == text


def test_negative_numbers_are_parenthesised_in_equations_and_tight_in_cells() -> None:
    assert number_latex(-0.5, paren=True) == "({-}0.5)"
    assert number_latex(0.5, paren=True) == "0.5"
    assert number_latex(-0.5, cell=True) == r"\text{-0.5}"
    assert number_latex(1.5e-5) == r"1.5\times 10^{-5}"


# --------------------------------------------------------------------- against NumPy
@pytest.mark.parametrize("spec", [
    ConvSpec(),
    ConvSpec(input_size=(5, 5), kernel_size=(3, 3), channels=2, filters=2, stride=2,
             padding=1),
], ids=["6x6-k3x3", "2ch-2f-5x5-s2-p1"])
def test_conv2d_cells_hold_the_explicit_loop_correlation(spec: ConvSpec) -> None:
    plan, numbers = _plan(spec, "forward", seed=3)
    a = numbers.arrays
    z = _correlate(a["input"], a["kernel"], a["bias"], spec.stride, spec.padding)
    _assert_cells_show(plan, "output", z.reshape(spec.display_shape("output")))
    _assert_cells_show(plan, "input", a["input"].reshape(spec.display_shape("input")))
    # the drawn numbers follow the documented distribution
    assert set(np.unique(a["input"])) <= {0.0, 1.0, 2.0, 3.0}
    assert all(v in (-0.5, -0.25, 0.0, 0.25, 0.5) for v in a["kernel"].reshape(-1))
    for step in plan.steps:
        assert step.value == pytest.approx(z.reshape(-1)[plan.steps.index(step)])
        assert step.equation.endswith("= " + number_latex(step.value))


def test_conv2d_weight_gradient_is_the_correlation_of_input_and_upstream() -> None:
    spec = ConvSpec(input_size=(5, 5), stride=2)
    plan, numbers = _plan(spec, "dw", seed=1)
    x, g = numbers.arrays["input"][0], numbers.arrays["grad_output"][0]
    dw = np.zeros((3, 3))
    for p in range(3):
        for q in range(3):
            dw[p, q] = sum(g[i, j] * x[2 * i + p, 2 * j + q]
                           for i in range(g.shape[0]) for j in range(g.shape[1]))
    _assert_cells_show(plan, "grad_kernel", dw)
    assert all(v in (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
               for v in numbers.arrays["grad_output"].reshape(-1))


def test_dense_forward_and_input_gradient_are_matrix_products() -> None:
    spec = layer_type("dense").build({"input": "5", "outputs": "3"})
    plan, numbers = _plan(spec, "forward", seed=2)
    w, x, b = (numbers.arrays[k] for k in ("weight", "input", "bias"))
    z = np.array([sum(w[m, n] * x[n] for n in range(5)) + b[m] for m in range(3)])
    _assert_cells_show(plan, "output", z)
    plan, numbers = _plan(spec, "da", seed=2)
    g = numbers.arrays["grad_output"]
    da = np.array([sum(w[m, n] * g[m] for m in range(3)) for n in range(5)])
    _assert_cells_show(plan, "grad_input", da)


def test_maxpool_cells_hold_the_window_maxima() -> None:
    spec = layer_type("maxpool2d").build({"input": "2x4x4", "kernel": "2"})
    plan, numbers = _plan(spec, "forward", seed=5)
    _assert_cells_show(plan, "output", _maxpool(numbers.arrays["input"], 2))


def test_softmax_shows_the_probabilities_and_the_loss_its_value() -> None:
    spec = layer_type("softmax-cross-entropy").build({"input": "4", "target": "2"})
    plan, numbers = _plan(spec, "softmax", seed=0)
    z = numbers.arrays["input"]
    probs = np.exp(z) / np.exp(z).sum()
    _assert_cells_show(plan, "probs", probs)
    assert numbers.spec.target == 2  # the class the command line gave is kept
    plan, _ = _plan(spec, "forward", seed=0)
    loss = math.log(np.exp(z).sum()) - z[1]
    assert plan.array("output").values[()] == pytest.approx(loss)
    assert plan.steps[0].equation.endswith("= " + number_latex(loss))


def test_a_values_file_target_sets_the_class() -> None:
    spec = layer_type("softmax-cross-entropy").build({"input": "3"})
    numbers = layer_values(spec, values={"input": [1, 2, 0], "target": 2})
    assert numbers is not None and numbers.spec.target == 3


# ---------------------------------------------------------------------- equations
def test_the_equation_substitutes_the_numbers_of_a_hand_checked_2x2_window() -> None:
    spec = ConvSpec(input_size=(2, 2), kernel_size=(2, 2))
    doc = {"input": [[[1, 0], [2, 3]]],
           "layers": [{"weight": [[[[0.25, -0.5], [1, 0.5]]]], "bias": [0.25]}],
           "grad_output": [[[1]]]}
    plan, _ = _plan(spec, "forward", values=doc)
    # 0.25*1 - 0.5*0 + 1*2 + 0.5*3 + 0.25 = 4, kernel factor first as in z = W a + b
    assert plan.steps[0].equation == (
        r"z_{1,1} = 0.25\cdot 1 + ({-}0.5)\cdot 0 + 1\cdot 2 + 0.5\cdot 3 + 0.25 = 4"
    )
    assert plan.steps[0].value == 4.0
    plan, _ = _plan(spec, "db", values=doc)
    assert plan.steps[0].equation == "db = 1"


def test_long_sums_are_elided_as_the_symbolic_equation_is() -> None:
    plan, numbers = _plan(ConvSpec(), "forward", seed=0, max_steps=1)
    symbolic = plan_scene(derive(ConvSpec()), "forward", max_steps=1, verify_identity=False)
    assert symbolic.steps[0].equation.count("+") == plan.steps[0].equation.count("+")
    assert r"\cdots" in plan.steps[0].equation
    x, w = numbers.arrays["input"][0], numbers.arrays["kernel"][0, 0]
    first = f"{number_latex(w[0, 0], paren=True)}\\cdot {number_latex(x[0, 0], paren=True)}"
    assert plan.steps[0].equation.startswith(f"z_{{1,1}} = {first} + ")


def test_functions_read_with_their_numbers() -> None:
    spec = layer_type("relu").build({"input": "2"})
    plan, _ = _plan(spec, "da", values={"input": [-1, 2], "grad_output": [0.5, 0.25]})
    assert plan.steps[0].equation == r"dz_{1} = 0.5 \cdot \mathbf{1}[({-}1) > 0] = 0"
    assert plan.steps[1].equation == r"dz_{2} = 0.25 \cdot \mathbf{1}[2 > 0] = 0.25"


# -------------------------------------------------------------------- winners, masks
TIED = {"input": [[[1, 3, 2, 0], [3, 0, 2, 2], [0, 0, 1, 1], [1, 2, 2, 0]]],
        "grad_output": [[[0.5, -1], [0.25, 1]]]}


def test_max_pooling_marks_the_first_maximum_of_a_tie() -> None:
    spec = layer_type("maxpool2d").build({"input": "4x4", "kernel": "2"})
    plan, _ = _plan(spec, "forward", values=TIED)
    marks = {step.target.index: step.marks for step in plan.steps}
    # windows in row-major order: (1,2) and (2,1) tie at 3; (1,3), (2,3), (2,4) at 2;
    # (4,2) alone at 2; (4,3) alone at 2
    assert marks == {(1, 1): {"input": ((1, 2),)}, (1, 2): {"input": ((1, 3),)},
                     (2, 1): {"input": ((4, 2),)}, (2, 2): {"input": ((4, 3),)}}
    plan, _ = _plan(spec, "da", values=TIED)
    grads = plan.array("grad_input").values
    winners = {(1, 2), (1, 3), (4, 2), (4, 3)}
    # the winner takes its window's dp, every other cell 0 (PyTorch's tie rule)
    assert {index for index, v in grads.items() if v != 0} == winners
    for step in plan.steps:
        row, col = step.target.index
        window = ((row - 1) // 2 * 2, (col - 1) // 2 * 2)
        winner = next(w for w in winners if ((w[0] - 1) // 2 * 2, (w[1] - 1) // 2 * 2) == window)
        assert step.marks == {"input": (winner,)}


def test_relu_backward_masks_exactly_the_cells_where_z_is_not_positive() -> None:
    spec = layer_type("relu").build({"input": "2x3"})
    z = [[1.5, -1, 0], [2, -0.5, 3]]
    plan, _ = _plan(spec, "da", values={"input": [z], "grad_output": [[[1, 1, 1], [1, 1, 1]]]})
    expected = {(i + 1, j + 1) for i in range(2) for j in range(3) if z[i][j] <= 0}
    for role in ("input", "grad_input"):
        array = plan.array(role)
        masked = {index for index, (n, key) in array.positions.items()
                  if key in array.grids[n].masked}
        assert masked == expected, role
    assert plan.array("grad_output").grids[0].masked == frozenset()
    grads = plan.array("grad_input").values
    assert {index for index, v in grads.items() if v == 0} == expected
    forward, _ = _plan(spec, "forward", values={"input": [z]})
    assert all(not g.masked for a in forward.arrays for g in a.grids)


def test_scenes_draw_the_winner_and_the_mask(build_scene, no_latex_typeset) -> None:
    pool = layer_type("maxpool2d").build({"input": "4x4", "kernel": "2"})
    scene = build_scene("forward", pool, values=layer_values(pool, values=TIED), max_steps=2)
    scene.apply_step(0)
    lit = scene.lit_cells()
    assert lit["input"] == {(1, 1): "operand", (1, 2): "winner", (2, 1): "operand",
                            (2, 2): "operand"}
    assert lit["output"] == {(1, 1): "target"}
    relu = layer_type("relu").build({"input": "3"})
    numbers = layer_values(relu, values={"input": [1, 0, -2], "grad_output": [1, 1, 1]})
    scene = build_scene("da", relu, values=numbers)
    assert scene.masked_cells() == {"input": {(2,), (3,)}, "grad_input": {(2,), (3,)}}
    scene.apply_step(2)
    scene.apply_step(0)  # a masked cell lit and left returns to its masked style
    assert scene.masked_cells() == {"input": {(2,), (3,)}, "grad_input": {(2,), (3,)}}


def test_show_both_puts_the_name_above_the_number(build_scene, no_latex_typeset) -> None:
    spec = ConvSpec(input_size=(3, 3), kernel_size=(2, 2))
    numbers = layer_values(spec, seed=0)
    scene = build_scene("forward", spec, values=numbers, show="both", max_steps=1)
    assert scene.plan.show == "both"
    grid = scene.grids["input"][0]
    label = grid.label_of[(1, 1)]
    name, number = label.submobjects
    assert name.tex == "a_{1,1}"
    assert number.tex == number_latex(numbers.arrays["input"][0, 0, 0], cell=True)
    assert name.get_center()[1] > number.get_center()[1]
    box = grid.cell_box((1, 1))
    for part in (name, number):  # inside the cell
        assert box.left < part.get_left()[0] and part.get_right()[0] < box.right
        assert box.bottom < part.get_bottom()[1] and part.get_top()[1] < box.top


def test_show_symbols_keeps_symbol_labels_but_substitutes_the_equation() -> None:
    plan, _ = _plan(ConvSpec(), "forward", seed=0, show="symbols", max_steps=1)
    assert _labels(plan, "input")[(1, 1)] == "a_{1,1}"
    assert plan.steps[0].value is not None and "a_" not in plan.steps[0].equation


# --------------------------------------------------------------------- bad input
def test_show_needs_numbers() -> None:
    assert resolve_show(None, False) == "symbols"
    assert resolve_show(None, True) == "values"
    with pytest.raises(ValueError, match="show: values needs numbers"):
        resolve_show("values", False)


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(("args", "doc", "message"), [
    (["render", "forward", "--show", "values"], None,
     "Error: --show: values needs numbers: give --seed N or --values FILE.json"),
    (["render", "forward", "--show", "both", "-o", "x.png"], None, "--show: both needs"),
    (["render", "forward", "--values", "v.json"], {"input": [[[1, 2], [3, 4]]]},
     "Error: --values v.json: input: shape (1, 6, 6) expected, got (1, 2, 2)"),
    (["render", "forward", "--values", "v.json"],
     {"layers": [{"weight": [[1, 2]]}]},
     "Error: --values v.json: layers[0].weight: shape (1, 1, 3, 3) expected, got (1, 2)"),
    (["render", "da", "--type", "relu", "--values", "v.json"], {"weights": 1},
     "Error: --values v.json: weights: unknown key"),
    (["render", "forward", "--values", "missing.json"], None,
     "Error: --values missing.json: cannot read"),
    (["render", "forward", "--seed", "-1"], None, "--seed"),
    (["storyboard", "forward", "--type", "maxpool2d", "--values", "v.json"],
     {"grad_output": [[[1]]]}, "Error: --values v.json: grad_output: shape (1, 2, 2)"),
])
def test_bad_numbers_are_one_line_exit_2_and_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], doc: Any, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if doc is not None:
        (tmp_path / "v.json").write_text(json.dumps(doc), encoding="utf-8")
    before = sorted(tmp_path.rglob("*"))
    result = _run(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or message == "--seed", lines
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert sorted(tmp_path.rglob("*")) == before


def test_the_api_refuses_bad_numbers_with_a_render_error(tmp_path: Path) -> None:
    import convviz
    from convviz.rendering.output import RenderError

    with pytest.raises(RenderError, match=r"^values: input: shape \(1, 6, 6\) expected"):
        convviz.render(ConvSpec(), "forward", values={"input": [1]}, output=tmp_path / "x.png")
    with pytest.raises(RenderError, match="show: values needs numbers"):
        convviz.render(ConvSpec(), "forward", show="values", output=tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


# -------------------------------------------------------------------- plan cache
def test_the_plan_cache_key_holds_the_numbers_and_the_show_mode() -> None:
    from convviz.rendering.plan_cache import cached_plan, plan_path

    spec = ConvSpec(input_size=(4, 4), kernel_size=(2, 2))
    zero, one = layer_values(spec, seed=0), layer_values(spec, seed=1)
    paths = {
        plan_path(spec, "forward", 2),
        plan_path(spec, "forward", 2, zero, "values"),
        plan_path(spec, "forward", 2, zero, "both"),
        plan_path(spec, "forward", 2, one, "values"),
    }
    assert len(paths) == 4
    assert plan_path(spec, "forward", 2, zero, "values") == plan_path(
        spec, "forward", 2, layer_values(spec, seed=0), "values")
    cached = cached_plan(spec, "forward", 2, zero, "both")
    assert cached == cached_plan(spec, "forward", 2, zero, "both")
    assert cached.show == "both" and cached.has_values
    assert not cached_plan(spec, "forward", 2).has_values


# ------------------------------------------------------------------------ lectures
def _lecture(tmp_path: Path, clip: str) -> Path:
    path = tmp_path / "lecture" / "lecture.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'[[clip]]\nname = "c"\nop = "forward"\n{clip}\n', encoding="utf-8")
    return path


def test_lecture_clips_take_seed_values_and_show(tmp_path: Path) -> None:
    from convviz.batch import LectureError, load_lecture

    plain = load_lecture(_lecture(tmp_path, 'type = "maxpool2d"')).jobs[0]
    seeded = load_lecture(_lecture(tmp_path, 'type = "maxpool2d"\nseed = 4\nshow = "both"'))
    job = seeded.jobs[0]
    assert (job.seed, job.values, job.show) == (4, None, "both")
    assert job.payload()["seed"] == 4 and job.digest() != plain.digest()
    assert "seed" not in plain.payload()  # clips without numbers keep their hashes
    values = tmp_path / "lecture" / "numbers" / "pool.json"
    values.parent.mkdir()
    values.write_text(json.dumps({"input": TIED["input"]}), encoding="utf-8")
    path = _lecture(tmp_path, 'type = "maxpool2d"\nvalues = "numbers/pool.json"')
    first = load_lecture(path).jobs[0]
    assert first.values == {"input": TIED["input"]}
    values.write_text(json.dumps({"input": [[[0] * 4] * 4]}), encoding="utf-8")
    assert load_lecture(path).jobs[0].digest() != first.digest()
    values.write_text(json.dumps({"input": [[1, 2]]}), encoding="utf-8")
    with pytest.raises(LectureError, match=r'clip 1 \("c"\): values: numbers/pool.json: '
                                           r"input: shape \(1, 4, 4\) expected"):
        load_lecture(path)
    for bad, message in (('show = "values"', "show: values needs numbers"),
                         ("seed = -2", "seed: a whole number"),
                         ('values = "nope.json"', "values: nope.json: cannot read")):
        with pytest.raises(LectureError, match=message):
            load_lecture(_lecture(tmp_path, bad))


def test_render_job_passes_the_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import convviz.rendering.api as api
    from convviz.batch import load_lecture, render_job

    seen: dict[str, Any] = {}

    def fake_render(spec: Any, op: str, **kwargs: Any) -> Path:
        seen.update(kwargs)
        Path(kwargs["output"]).parent.mkdir(parents=True, exist_ok=True)
        Path(kwargs["output"]).write_bytes(b"x")
        return Path(kwargs["output"])

    monkeypatch.setattr(api, "render", fake_render)
    job = load_lecture(_lecture(tmp_path, 'type = "relu"\nseed = 2\nshow = "values"')).jobs[0]
    result = render_job(job.payload())
    assert result["ok"], result
    assert (seen["seed"], seen["values"], seen["show"]) == (2, None, "values")


def test_scene_files_take_values(tmp_path: Path, no_latex_typeset) -> None:
    from convviz.rendering.scenes import ForwardConvolution

    spec = ConvSpec(input_size=(3, 3), kernel_size=(2, 2))
    with scene_config(tmp_path):
        scene = ForwardConvolution(spec, values=layer_values(spec, seed=0), max_steps=1)
        scene.build()
    assert scene.plan is not None and scene.plan.show == "values"


# ----------------------------------------------------------- numbers too small for a cell
@pytest.mark.parametrize(("numbers", "exponent"), [
    ([-3.16e-4, 2.6e-5, 0.0], -4), ([0.5, 1e-6], 0), ([0.00999], -3), ([0.01], 0),
    ([], 0), ([0.0, -0.0], 0), ([math.nan, 1e-5], -5), ([math.inf, 1e-5], -5),
    ([-0.0012], -3), ([9.9e-3, -1e-2], 0),
])
def test_small_numbers_share_a_power_of_ten(numbers: list[float], exponent: int) -> None:
    from convviz.rendering.values import shared_exponent

    assert shared_exponent(numbers) == exponent


def test_an_array_of_small_numbers_shows_them_in_a_power_of_ten_named_in_its_title() -> None:
    # -3.16e-4 fits no cell (it was left out, grid and all): in units of 10^-4 it is -3.16
    spec = layer_type("dense").build({"input": "3", "outputs": "2"})
    values = {"input": [1.0, 2.0, 3.0], "layers": [{"weight": [[1.0, 0.5, -1.0],
                                                               [2.0, 0.0, 1.0]],
                                                    "bias": [0.0, 0.0]}],
              "grad_output": [-3.16e-4, 2.5e-5]}
    plan, _ = _plan(spec, "da", values=values)
    # da = W^T dz by hand: [1*-3.16e-4 + 2*2.5e-5, 0.5*-3.16e-4, -1*-3.16e-4 + 2.5e-5]
    assert _labels(plan, "grad_input") == {
        (1,): r"\text{-2.66}", (2,): r"\text{-1.58}", (3,): "3.41"}
    assert _labels(plan, "grad_output") == {(1,): r"\text{-3.16}", (2,): "0.25"}
    assert plan.array("grad_input").values[(1,)] == pytest.approx(-2.66e-4)  # unscaled
    for role in ("grad_input", "grad_output"):
        array = plan.array(role)
        assert all(g.title.endswith(r"\;(\times 10^{-4})") for g in array.grids), role
        assert array.array_title.endswith(r"\;(\times 10^{-4})"), role
    weight = plan.array("weight")  # numbers of a usual size are drawn as they are
    assert "times" not in weight.grids[0].title
    assert _labels(plan, "weight")[(1, 2)] == "0.5"
