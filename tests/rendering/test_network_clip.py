"""The network clip (``convviz render NET.toml``): its plan, its scene's structure, its CLI.

The plan and the scene run without drawing (the scene with ``skip_animations`` and a
stand-in for LaTeX); one slow test renders tiny_cnn and looks at the frames inside the
timeline's boxes.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from convviz.cli import main
from convviz.network import Network, load_network
from convviz.rendering.network_plan import (
    NetworkPlan,
    Pacing,
    PlanError,
    array_name,
    parse_layers,
)

from .conftest import HAVE_LATEX, fake_typeset, scene_config

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "tiny_cnn.toml"
WIDTH, HEIGHT = 854, 480

#: tiny_cnn's phases in clip order: (layer, phase, op).
TINY_ORDER = [
    (1, "forward", "forward"), (2, "forward", "forward"), (3, "forward", "forward"),
    (4, "forward", "forward"), (5, "forward", "forward"), (6, "forward", "forward"),
    (6, "backward", "da"), (5, "backward", "dw"), (5, "backward", "db"),
    (5, "backward", "da"), (4, "backward", "da"), (3, "backward", "da"),
    (2, "backward", "da"), (1, "backward", "dw"), (1, "backward", "db"),
]


@functools.cache
def _network() -> Network:
    return load_network(TINY)


def _plan(**kwargs: Any) -> NetworkPlan:
    from convviz.rendering.network_scene import prepare_network

    return prepare_network(_network(), **kwargs)


def _order(plan: NetworkPlan) -> list[tuple[int, str, str]]:
    return [(p.layer.index, p.phase, p.op) for p in plan.phases]


# ------------------------------------------------------------------------------- plan
def test_every_layer_runs_forward_to_the_loss_then_back_to_the_first_layer():
    plan = _plan()
    assert _order(plan) == TINY_ORDER
    for layer in _network().layers:
        phases = {p.phase for p in plan.phases if p.layer.index == layer.index}
        assert phases == {"forward", "backward"}, layer.label
    # the loss's forward phase is the loss value, its backward one dL/dz of the logits
    assert plan.phases[5].target_name == "L"
    assert plan.phases[6].target_name == "dL/dz[2]"
    # every backward phase's upstream gradient is the last dL/da computed before it
    upstream = None
    for phase in plan.phases[6:]:
        if upstream is not None:
            assert phase.names["grad_output"] == upstream, phase.title
        if phase.op == "da":
            upstream = phase.target_name


def test_first_da_adds_the_input_gradient_last():
    plan = _plan(first_da=True)
    assert _order(plan) == [*TINY_ORDER, (1, "backward", "da")]
    assert plan.phases[-1].target_name == "dL/da[0]"


@pytest.mark.parametrize("detail", [0, 1, 2, 5])
def test_detail_cells_go_step_by_step_and_the_rest_in_one_sweep(detail):
    plan = _plan(detail=detail)
    for phase in plan.phases:
        total = len(phase.plan.array(phase.target).positions)
        steps = len(phase.plan.steps)
        assert steps == min(detail, total), phase.title
        assert len(phase.sweep) == total - steps
        assert len(set(phase.cells)) == total
        # the detailed steps are the first cells, row-major, as the single clips' steps
        assert list(phase.cells) == sorted(phase.cells)
    times = plan.schedule()
    for phase, t in zip(plan.phases, times, strict=True):
        assert len(t.steps) == len(phase.plan.steps)
        assert (t.sweep is not None) == bool(phase.sweep)


def test_only_and_layers_select_phases():
    backward = _plan(only="backward")
    assert _order(backward) == TINY_ORDER[6:]
    forward = _plan(only="forward", layers=(2, 4))
    assert _order(forward) == [(2, "forward", "forward"), (3, "forward", "forward"),
                               (4, "forward", "forward")]
    middle = _plan(layers=(2, 4))
    assert _order(middle) == [(2, "forward", "forward"), (3, "forward", "forward"),
                              (4, "forward", "forward"), (4, "backward", "da"),
                              (3, "backward", "da"), (2, "backward", "da")]
    # the strip still shows the whole network; the outline names the layer's arrays
    assert [a.name for a in middle.strip][:4] == ["a[0]", "W[1]", "b[1]", "z[1]"]
    first = _plan(only="backward", layers=(1, 1))
    assert _order(first) == [(1, "backward", "dw"), (1, "backward", "db")]


def test_a_layer_with_no_phase_left_is_an_error():
    from convviz.network import Linear, ReLU, Sequential
    from convviz.rendering.network_scene import prepare_network

    net = Sequential(ReLU(), Linear(2), input="3")
    with pytest.raises(PlanError, match="nothing to show"):
        prepare_network(net, only="backward", layers=(1, 1))


def test_the_default_tiny_cnn_clip_lasts_at_most_90_seconds():
    plan = _plan()
    assert plan.duration() <= 90
    times = plan.schedule()
    assert times[0].start == pytest.approx(plan.pacing.opening)
    previous = 0.0
    for t in times:
        assert previous <= t.start <= t.shown < t.end
        for start, hold, end in t.steps:
            assert t.shown <= start < hold < end <= t.end
        previous = t.end


def test_step_time_and_detail_change_the_length_as_the_schedule_says():
    short = _plan(detail=1)
    longer = _plan(detail=2)
    pacing = longer.pacing
    sweep = pacing.sweep + pacing.sweep_hold
    expected = 0.0
    for phase in longer.phases:
        n = len(phase.plan.array(phase.target).positions)
        expected += pacing.step_time * (min(2, n) - min(1, n))
        expected += sweep * ((n > 2) - (n > 1))
    assert longer.duration() - short.duration() == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"), [(None, (1, 6)), ("2-4", (2, 4)), ("3", (3, 3)), (" 1 - 6 ", (1, 6))]
)
def test_parse_layers(text, expected):
    assert parse_layers(text, 6) == expected


@pytest.mark.parametrize("text", ["0-2", "4-2", "7", "a-b", "2-", "1,3"])
def test_parse_layers_rejects(text):
    with pytest.raises(PlanError, match="--layers"):
        parse_layers(text, 6)


def test_pacing_rejects_negative_detail():
    with pytest.raises(PlanError, match="--detail"):
        Pacing(detail=-1)


@pytest.mark.parametrize(
    ("label", "name"),
    [("z^{[1]}", "z[1]"), (r"\mathcal{L}", "L"), (r"\hat{y}", "y_hat"),
     (r"\frac{\partial \mathcal{L}}{\partial W^{[2]}}", "dL/dW[2]"),
     (r"\frac{\partial \mathcal{L}}{\partial a^{[0]}}", "dL/da[0]")],
)
def test_array_names(label, name):
    assert array_name(label) == name


# ------------------------------------------------------------------------------ scene
def _run_scene(plan: NetworkPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The scene's real construct, without drawing (stand-in LaTeX)."""
    import convviz.rendering.network_scene as network_scene
    import convviz.rendering.scenes as scenes
    from convviz.rendering.network_scene import NetworkScene

    monkeypatch.setattr(scenes, "typeset", fake_typeset)
    monkeypatch.setattr(network_scene, "typeset", fake_typeset)
    with scene_config(tmp_path / "media", width=WIDTH, height=HEIGHT):
        scene = NetworkScene(plan, skip_animations=True)
        scene.render()
    return scene


def _timeline(scene: Any) -> dict[str, Any]:
    from convviz.rendering.network_scene import network_timeline

    return network_timeline(scene, video=Path("clip.mp4"), width=WIDTH, height=HEIGHT, fps=15)


def test_scene_plays_the_schedule_and_the_timeline_has_every_cell(tmp_path, monkeypatch):
    plan = _plan()
    scene = _run_scene(plan, tmp_path, monkeypatch)
    doc = _timeline(scene)
    assert doc["duration"] == pytest.approx(plan.duration())
    assert doc["duration"] <= 90
    assert [(p["layer"], p["phase"], p["op"]) for p in doc["phases"]] == TINY_ORDER
    for key in ("video", "width", "height", "fps", "duration"):
        assert key in doc
    times = plan.schedule()
    for phase, t in zip(doc["phases"], times, strict=True):
        assert phase["end"] == pytest.approx(t.end)
    # steps: in phase order, every target cell once, detailed ones one after the other
    seen: dict[tuple[int, str, str], list[list[int]]] = {}
    previous_end = 0.0
    for step in doc["steps"]:
        key = (step["layer"], step["phase"], step["op"])
        seen.setdefault(key, []).append(step["target"]["index"])
        assert step["start"] <= step["hold"][0] <= step["hold"][1] == step["end"]
        if not step["sweep"]:
            assert step["start"] >= previous_end - 1e-9
            assert step["highlights"], step
            previous_end = step["end"]
        else:
            assert step["highlights"] == {}
        names = {step["target"]["array"], *step["highlights"]}
        assert set(step["boxes"]) == names
        assert step["boxes"][step["target"]["array"]].keys() >= {
            ",".join(map(str, step["target"]["index"]))}
        for name, indices in step["highlights"].items():
            assert {",".join(map(str, i)) for i in indices} <= step["boxes"][name].keys()
    assert list(seen) == TINY_ORDER
    for phase in plan.phases:
        key = (phase.layer.index, phase.phase, phase.op)
        assert [tuple(i) for i in seen[key]] == list(phase.cells)


def test_timeline_boxes_lie_inside_the_frame_and_below_the_strip(tmp_path, monkeypatch):
    doc = _timeline(_run_scene(_plan(detail=1), tmp_path, monkeypatch))
    strip_bottom = max(box[3] for box in doc["strip"].values())
    for box in doc["strip"].values():
        assert 0 <= box[0] < box[2] <= WIDTH and 0 <= box[1] < box[3] <= HEIGHT
    for phase in doc["phases"]:
        x0, y0, x1, y1 = phase["outline"]
        assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT
    for step in doc["steps"]:
        for cells in step["boxes"].values():
            for x0, y0, x1, y1 in cells.values():
                assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT
                assert y0 > strip_bottom, step["target"]


@pytest.mark.skipif(not HAVE_LATEX, reason="needs LaTeX: titles are measured as typeset")
def test_slice_titles_stay_readable_once_a_phase_is_shrunk_under_the_strip(
    tmp_path, monkeypatch
):
    # a phase is laid out as a clip and then shrunk to fit under the strip; a slice title
    # readable before the shrinking may not be after it, and then the array gets one
    # title over all its slices instead
    from convviz.rendering.labels import MIN_SLICE_TITLE
    from convviz.rendering.network_scene import NetworkScene

    drawn: list[tuple[str, float]] = []
    entered = NetworkScene._enter

    def enter(self: Any, phase: Any) -> Any:
        shown = entered(self, phase)
        for role, grids in shown.grids.items():
            if len(grids) > 1:
                titled = [g.title is not None for g in grids]
                assert all(titled) or not any(titled), role
                assert all(titled) != (role in shown.titles), role
            drawn.extend((role, g.title.height) for g in grids if g.title is not None)
        return shown

    monkeypatch.setattr(NetworkScene, "_enter", enter)
    with scene_config(tmp_path / "media", width=WIDTH, height=HEIGHT):  # real LaTeX
        NetworkScene(_plan(detail=1), skip_animations=True).render()
    assert drawn
    small = [(role, round(h, 3)) for role, h in drawn if h < MIN_SLICE_TITLE - 1e-9]
    assert not small


def test_results_move_into_their_next_place(tmp_path, monkeypatch):
    """A result that is the next phase's operand moves there; shared operands move too."""
    scene = _run_scene(_plan(detail=1), tmp_path, monkeypatch)
    moved = {n: sorted(names) for n, names in scene.moved.items()}
    assert moved[2] == ["z[1]"]             # conv's result is relu's input
    assert moved[3] == ["a[1]"]
    assert moved[5] == ["f[1]"]
    assert moved[6] == ["z[2]"]             # the logits go into the loss
    assert moved[7] == ["z[2]"]             # ... and stay for dL/dz
    assert moved[8] == ["dL/dz[2]"]         # dL/dz of the loss is dense dW's operand
    assert moved[9] == ["dL/dz[2]"]
    assert moved[10] == ["dL/dz[2]"]
    assert moved[11] == ["dL/df[1]"]
    assert moved[12] == ["dL/dp[1]"]
    assert moved[13] == ["dL/da[1]"]         # the routed gradient meets the ReLU mask
    assert moved[14] == ["dL/dz[1]"]
    assert moved[15] == ["dL/dz[1]"]
    # after the last phase only its own arrays (and the strip's outline) are drawn
    shown = scene._shown
    family = {id(m) for grids in shown.grids.values() for g in grids for m in g.get_family()}
    family |= {id(m) for m in scene.outline.get_family()}
    family |= {id(m) for m in shown.operators.get_family()} | {
        id(m) for m in shown.caption.get_family()}
    family |= {id(m) for note in scene._notes for m in note.get_family()}
    for mob in scene.mobjects:
        assert id(mob) in family or all(id(m) in family for m in mob.get_family()[1:]), mob


def test_chapters_nest_cells_inside_their_phase(tmp_path, monkeypatch):
    from convviz.rendering.network_scene import network_chapters

    doc = _timeline(_run_scene(_plan(detail=1, only="forward"), tmp_path, monkeypatch))
    text = network_chapters(doc)
    assert text.startswith("WEBVTT\n\n")
    cues = text.strip().split("\n\n")[1:]
    titles = [c.split("\n")[2] for c in cues]
    assert titles[0] == "Layer 1 (conv2d) forward forward: z[1]"
    assert titles[1] == "z[1][1,1,1]"
    assert titles[2] == "z[1]: the other 31 cells"
    assert sum(t.startswith("Layer ") for t in titles) == len(doc["phases"])


# -------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "0-3"], "--layers"),
        (["--layers", "2-9"], "--layers"),
        (["--only", "sideways"], "--only"),
        (["--detail", "-1"], "--detail"),
        (["-o", "clip.webm"], "-o"),
        (["--format", "gif", "--slides"], "--slides"),
        (["--seed", "-3"], "--seed"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(main, ["render", str(TINY), *args])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], result.output
        assert not any(Path(".").iterdir())


def test_a_bad_network_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('input = "1x6x6"\n[[layer]]\ntype = "conv2d"\nkernel = "9x9"\n')
    result = CliRunner().invoke(main, ["render", str(bad)])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "layer 1 (conv2d)" in result.output


def test_render_of_an_op_is_unchanged():
    result = CliRunner().invoke(main, ["render", "sideways"])
    assert result.exit_code == 2
    assert "OP" in result.output and "sideways" in result.output


# ------------------------------------------------------------------------- end to end
#: The target's fill, as the single-layer clips' tests see it.
def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_LATEX, reason="LaTeX not installed")
def test_render_tiny_cnn_lights_the_timeline_boxes(tmp_path):
    from .test_render_e2e import COLOUR_TOLERANCE, decode, interior, teal_distance, yellow_share
    from .test_render_e2e import border as outline

    video = tmp_path / "cnn.mp4"
    result = CliRunner().invoke(main, [
        "render", str(TINY), "--detail", "1", "-o", str(video), "--timeline",
        str(tmp_path / "cnn.json"), "--chapters", str(tmp_path / "cnn.vtt"), "--slides",
    ])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "cnn.json").read_text())
    assert doc["video"] == str(video) and (doc["width"], doc["height"]) == (WIDTH, HEIGHT)
    assert [(p["layer"], p["phase"], p["op"]) for p in doc["phases"]] == TINY_ORDER
    count, _ = decode(video, set())
    assert abs(count - doc["duration"] * doc["fps"]) <= 2
    fps = doc["fps"]
    detailed = [s for s in doc["steps"] if not s["sweep"]]
    # a few cells of every sweep: the first, the last
    swept = []
    for phase in doc["phases"]:
        cells = [s for s in doc["steps"] if s["sweep"] and s["start"] >= phase["start"]
                 and s["end"] <= phase["end"]]
        swept.extend(cells[:1] + cells[-1:])
    wanted: dict[int, list[dict[str, Any]]] = {}
    for step in [*detailed, *swept]:
        frame = int((step["hold"][0] + step["hold"][1]) / 2 * fps)
        wanted.setdefault(frame, []).append(step)
    _, frames = decode(video, set(wanted))
    assert len(frames) == len(wanted)
    for n, steps in wanted.items():
        for step in steps:
            name = step["target"]["array"]
            key = ",".join(map(str, step["target"]["index"]))
            box = step["boxes"][name][key]
            off = teal_distance(interior(frames[n], box))
            assert off.max() <= COLOUR_TOLERANCE, (n, step["layer"], step["op"], name, key)
            for hname, indices in step["highlights"].items():
                for index in indices:
                    hkey = ",".join(map(str, index))
                    if hname == name and hkey == key:
                        continue
                    ring = outline(frames[n], step["boxes"][hname][hkey])
                    share = yellow_share(ring)
                    # with numbers, max pooling (layer 3) outlines its window's winner teal
                    won = float((np.abs(ring - _rgb("#5CD0B3")).max(axis=1) < 60).mean())
                    assert share > 0.3 or (step["layer"] == 3 and won > 0.3), (
                        n, step["layer"], step["op"], hname, hkey, share)
    # the strip's outline is teal around the current layer during each phase
    for phase in doc["phases"][:3]:
        frame_no = int((phase["start"] + phase["end"]) / 2 * fps)
        _, got = decode(video, {frame_no})
        x0, y0, x1, y1 = phase["outline"]
        ring = outline(got[frame_no], [x0, y0, x1, y1], width=1)
        teal = np.abs(ring - _rgb("#5CD0B3")).max(axis=1) < 60
        assert teal.mean() > 0.3, phase
    vtt = (tmp_path / "cnn.vtt").read_text()
    assert vtt.count("Layer ") == len(doc["phases"])
    slides = json.loads((tmp_path / "slides" / "NetworkClip.json").read_text())
    assert len(slides["slides"]) == len(doc["phases"])
    assert slides["slides"][0]["notes"] == doc["phases"][0]["title"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_LATEX, reason="LaTeX not installed")
def test_storyboard_has_one_key_frame_per_phase(tmp_path):
    from PIL import Image

    sheet = tmp_path / "cnn.png"
    result = CliRunner().invoke(main, ["storyboard", str(TINY), "--only", "forward",
                                       "--detail", "1", "-o", str(sheet)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(sheet)
    with Image.open(sheet) as image:
        width, height = image.size
    # 6 forward phases: 3 columns of 960 px frames, 2 rows
    assert width == 3 * 960 + 4 * 24
    assert height > 2 * 540


def test_storyboard_bad_input_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["storyboard", str(TINY), "-o", str(tmp_path / "x.gif")])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
