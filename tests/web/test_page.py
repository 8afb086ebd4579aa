"""``convviz page``: one offline HTML page per clip, checked in a real headless Chromium.

Pages are made as a user makes them (the CLI) from renders made once per module. The
checks are against facts the page did not produce: the timeline's own boxes and times,
the plan's equation texts, numbers recomputed here with explicit NumPy loops or with
the plain-NumPy network reference, the video's length read with PyAV, and the bytes of
the page itself (no URL that could leave it).
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from network_reference import reference_network

import convviz
from convviz.cli import main
from convviz.derivation import derive
from convviz.rendering.plan import plan_scene

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SHOTS = Path("/tmp/convviz-page-shots")

pytestmark = pytest.mark.slow


def run(*args: str | Path) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def _made(result: Any) -> Path:
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1])


def shoot(opened: Any, name: str, tmp: Path) -> Path:
    """A screenshot under tmp, copied to SHOTS for people to look at."""
    path = opened.screenshot(tmp / name)
    SHOTS.mkdir(exist_ok=True)
    shutil.copyfile(path, SHOTS / name)
    return path


@pytest.fixture(scope="module")
def forward(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The default clip rendered with a timeline, then its page made from that render."""
    folder = tmp_path_factory.mktemp("forward")
    video, timeline = folder / "forward.mp4", folder / "forward.json"
    _made(run("render", "forward", "-q", "l", "-o", video, "--timeline", timeline))
    page = _made(run("page", "forward", "--timeline", timeline, "-o", folder / "forward.html"))
    return {"video": video, "timeline": json.loads(timeline.read_text()), "page": page,
            "timeline_path": timeline, "folder": folder}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A dW clip at numbers (--seed 1), rendered by ``convviz page`` itself."""
    folder = tmp_path_factory.mktemp("seeded")
    page = _made(run("page", "dw", "--seed", "1", "--max-steps", "4", "--theme", "light",
                     "-o", folder / "dw.html"))
    return {"page": page, "folder": folder}


def page_data(page: Path) -> dict[str, Any]:
    text = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="convviz-data">(.*?)</script>',
                      text, re.S)
    assert found is not None
    return dict(json.loads(found.group(1)))


def wait_ready(opened: Any) -> None:
    opened.page.wait_for_function("window.convvizPage && window.convvizPage.ready",
                                  timeout=15000)


def click_box(opened: Any, box: list[float], width: int, height: int) -> None:
    """Click the centre of a timeline box (video pixels) where the video is on screen."""
    rect = opened.page.locator("#video").bounding_box()
    x = rect["x"] + (box[0] + box[2]) / 2 / width * rect["width"]
    y = rect["y"] + (box[1] + box[3]) / 2 / height * rect["height"]
    opened.page.mouse.click(x, y)
    opened.page.wait_for_timeout(300)


def current_time(opened: Any) -> float:
    return float(opened.page.evaluate("document.getElementById('video').currentTime"))


# ----------------------------------------------------------------------- the HTML file
def test_page_is_one_file_with_no_address_to_fetch(forward: dict[str, Any]) -> None:
    text = forward["page"].read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text, re.I)
    assert not re.search(r"""url\(\s*["']?(https?:|//)""", text, re.I)
    assert not re.search(r"@import", text)
    assert "default-src 'none'" in text  # and the page forbids itself any request
    # the video is inside: decode it and compare with the render
    found = re.search(r'id="convviz-video" data-mime="video/mp4">([A-Za-z0-9+/=]+)</script>',
                      text)
    assert found is not None
    import base64

    assert base64.b64decode(found.group(1)) == forward["video"].read_bytes()


def test_every_timeline_cell_is_a_region(forward: dict[str, Any]) -> None:
    data = page_data(forward["page"])
    timeline = forward["timeline"]
    want = {(f"{role}:{key}", *box) for role, array in timeline["arrays"].items()
            for key, box in array["cells"].items()}
    got = {tuple(b[:5]) for layout in data["layouts"] for b in layout["boxes"]}
    assert got == want
    assert len(data["steps"]) == len(timeline["steps"]) == 16


def test_a_target_cell_carries_its_equation_panel_text(forward: dict[str, Any]) -> None:
    data = page_data(forward["page"])
    plan = plan_scene(derive(convviz.ConvSpec()), "forward")
    for n, step in enumerate(plan.steps):
        key = f"output:{','.join(map(str, step.target.index))}"
        assert data["cells"][key]["tex"] == step.equation
        assert data["cells"][key]["step"] == n
        svg = data["formulas"][data["cells"][key]["formula"]]
        assert svg.startswith("<svg") and svg.count("<use") >= 10


def test_numbers_and_gradients_match_explicit_loops(seeded: dict[str, Any]) -> None:
    """Values and gradients of a --seed page, against loops written here."""
    data = page_data(seeded["page"])
    from convviz.rendering.values import layer_values

    numbers = layer_values(convviz.ConvSpec(), seed=1, values=None, where="--seed")
    assert numbers is not None
    a = numbers.arrays["input"].reshape(6, 6)
    w = numbers.arrays["kernel"].reshape(3, 3)
    g = numbers.arrays["grad_output"].reshape(4, 4)
    dw = np.array([[sum(g[p, q] * a[p + u, q + v] for p in range(4) for q in range(4))
                    for v in range(3)] for u in range(3)])
    da = np.zeros((6, 6))
    for p in range(4):
        for q in range(4):
            da[p:p + 3, q:q + 3] += g[p, q] * w
    from convviz.rendering.values import format_number

    for (i, j), x in np.ndenumerate(a):
        cell = data["cells"][f"input:{i + 1},{j + 1}"]
        assert cell["value"] == format_number(x)
        assert cell["grad"] == format_number(da[i, j])
    for (u, v), x in np.ndenumerate(dw):
        cell = data["cells"][f"grad_kernel:{u + 1},{v + 1}"]
        assert cell["value"] == format_number(x)


def test_bad_input_gets_one_line_and_writes_nothing(forward: dict[str, Any],
                                                    tmp_path: Path) -> None:
    timeline = forward["timeline_path"]
    other = tmp_path / "short.json"
    doc = dict(forward["timeline"])
    doc["duration"] = doc["duration"] + 3.0
    other.write_text(json.dumps(doc))
    existing = tmp_path / "keep.html"
    existing.write_text("old")
    cases = [
        (["page", "forward", "--timeline", tmp_path / "missing.json"], "no such file"),
        (["page", "forward", "--timeline", timeline, "--video", tmp_path / "none.mp4"],
         "no such video"),
        (["page", "forward", "--timeline", other], "not the video of this timeline"),
        (["page", "dw", "--timeline", timeline], "not of this clip"),
        (["page", "forward", "--stride", "2", "--timeline", timeline], "not of this clip"),
        (["page", "forward", "--timeline", forward["video"]], "not a timeline"),
        (["page", "forward", "--timeline", timeline, "-o", tmp_path / "page.txt"], ".html"),
    ]
    for args, words in cases:
        target = [] if "-o" in args else ["-o", existing]
        result = run(*args, *target)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:") and words in lines[0], lines
        assert "Traceback" not in result.output
        assert existing.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.html", "short.json"]


# ----------------------------------------------------------------------- in the browser
def test_page_loads_offline_and_asks_for_nothing(forward: dict[str, Any],
                                                 open_offline: Any, tmp_path: Path) -> None:
    import av

    opened = open_offline(forward["page"])
    wait_ready(opened)
    assert opened.outside_requests() == []
    assert opened.console_errors == []
    duration = opened.page.evaluate("document.getElementById('video').duration")
    with av.open(str(forward["video"])) as container:
        assert container.duration is not None
        assert abs(duration - container.duration / 1e6) < 0.1
    chapters = opened.page.locator("#chapters li").count()
    assert chapters == len(forward["timeline"]["steps"])
    shoot(opened, "forward-loaded.png", tmp_path)


def test_clicking_a_cell_jumps_into_its_step_and_shows_its_formula(
        forward: dict[str, Any], open_offline: Any, tmp_path: Path) -> None:
    timeline = forward["timeline"]
    opened = open_offline(forward["page"])
    wait_ready(opened)
    plan = plan_scene(derive(convviz.ConvSpec()), "forward")
    for n in (6, 0, 15):  # z[2,3], z[1,1], z[4,4]
        target = timeline["steps"][n]["target"]
        key = ",".join(map(str, target["index"]))
        box = timeline["arrays"]["output"]["cells"][key]
        click_box(opened, box, timeline["width"], timeline["height"])
        hold = timeline["steps"][n]["hold"]
        assert hold[0] <= current_time(opened) <= hold[1]
        assert opened.page.text_content("#cell-name") == f"z[{key}]"
        formula = opened.page.locator("#cell-formula")
        assert formula.get_attribute("data-tex") == plan.steps[n].equation
        assert formula.locator("svg use").count() >= 10
        # the glyphs really draw: the formula has a size on screen
        size = formula.locator("svg").bounding_box()
        assert size["width"] > 100 and size["height"] > 10
    shoot(opened, "forward-clicked.png", tmp_path)
    # an operand cell: its name, and a jump to the first step that uses it
    box = timeline["arrays"]["input"]["cells"]["3,3"]
    click_box(opened, box, timeline["width"], timeline["height"])
    assert opened.page.text_content("#cell-name") == "a[3,3]"
    first = next(s for s in timeline["steps"] if [3, 3] in s["highlights"]["input"])
    assert first["hold"][0] <= current_time(opened) <= first["hold"][1]


@pytest.mark.parametrize(("role", "key", "name", "width"), [
    ("kernel", "2,3", "W[2,3]", 1280),
    ("input", "1,1", "a[1,1]", 1280),  # the top-left cell: the label stays inside the frame
    ("output", "4,4", "z[4,4]", 1280),
    # the cell nearest the frame's top, on a phone: no room above, so the label goes below
    (None, None, None, 360),
])
def test_hover_names_the_cell_beside_it(forward: dict[str, Any], open_offline: Any,
                                        role: str | None, key: str | None,
                                        name: str | None, width: int) -> None:
    timeline = forward["timeline"]
    opened = open_offline(forward["page"], width=width, height=740)
    wait_ready(opened)
    if role is None:
        role, key = min(((r, k) for r, a in timeline["arrays"].items() for k in a["cells"]),
                        key=lambda rk: timeline["arrays"][rk[0]]["cells"][rk[1]][1])
        name = {"input": "a", "kernel": "W", "output": "z", "bias": "b"}[role] + f"[{key}]"
    box = timeline["arrays"][role]["cells"][key]
    rect = opened.page.locator("#video").bounding_box()
    sx, sy = rect["width"] / timeline["width"], rect["height"] / timeline["height"]
    cell = (rect["x"] + box[0] * sx, rect["y"] + box[1] * sy,
            rect["x"] + box[2] * sx, rect["y"] + box[3] * sy)
    opened.page.mouse.move((cell[0] + cell[2]) / 2, (cell[1] + cell[3]) / 2)
    opened.page.wait_for_timeout(200)
    assert opened.page.locator("#hover").is_visible()
    assert opened.page.text_content("#hover") == name
    label = opened.page.locator("#hover").bounding_box()
    # it does not cover the cell it names
    assert label["y"] + label["height"] <= cell[1] + 0.5 or label["y"] >= cell[3] - 0.5
    # and it is inside the video's frame
    assert rect["x"] - 0.5 <= label["x"]
    assert label["x"] + label["width"] <= rect["x"] + rect["width"] + 0.5
    assert rect["y"] - 0.5 <= label["y"]
    assert label["y"] + label["height"] <= rect["y"] + rect["height"] + 0.5


def test_keys_step_and_play(forward: dict[str, Any], open_offline: Any) -> None:
    steps = forward["timeline"]["steps"]
    opened = open_offline(forward["page"])
    wait_ready(opened)
    page = opened.page
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(200)
    assert steps[0]["hold"][0] <= current_time(opened) <= steps[0]["hold"][1]
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(200)
    assert steps[2]["hold"][0] <= current_time(opened) <= steps[2]["hold"][1]
    page.keyboard.press("ArrowLeft")
    page.wait_for_timeout(200)
    assert steps[1]["hold"][0] <= current_time(opened) <= steps[1]["hold"][1]
    assert "step 2 of 16: z[1,2]" in page.text_content("#now")
    before = current_time(opened)
    page.keyboard.press(" ")
    page.wait_for_timeout(700)
    assert page.evaluate("document.getElementById('video').paused") is False
    assert current_time(opened) > before + 0.2
    page.keyboard.press(" ")
    assert page.evaluate("document.getElementById('video').paused") is True


def test_phone_sized_screen_and_light_theme(seeded: dict[str, Any], open_offline: Any,
                                            tmp_path: Path) -> None:
    opened = open_offline(seeded["page"], width=390, height=844)
    wait_ready(opened)
    page = opened.page
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    frame = page.locator("#frame").bounding_box()
    assert frame["x"] >= 0 and frame["x"] + frame["width"] <= 390
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == \
        "rgb(255, 255, 255)"
    data = page_data(seeded["page"])
    page.locator('#regions .cell[data-cell="input:2,2"]').click()
    page.wait_for_timeout(300)
    numbers = page.text_content("#cell-numbers")
    assert data["cells"]["input:2,2"]["value"] in numbers
    assert data["cells"]["input:2,2"]["grad"] in numbers
    shoot(opened, "dw-phone-light.png", tmp_path)


# ------------------------------------------------------------------------ network pages
@pytest.fixture(scope="module")
def xor(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("xor")
    net, values = EXAMPLES / "xor_mlp.toml", EXAMPLES / "xor_mlp.values.json"
    video, timeline = folder / "xor.mp4", folder / "xor.json"
    _made(run("render", net, "--values", values, "-o", video, "--timeline", timeline))
    page = _made(run("page", net, "--values", values, "--timeline", timeline,
                     "-o", folder / "xor.html"))
    return {"page": page, "timeline": json.loads(timeline.read_text()), "net": net,
            "values": values}


def test_network_page_numbers_match_the_reference(xor: dict[str, Any]) -> None:
    data = page_data(xor["page"])
    net = tomllib.loads(xor["net"].read_text())
    reference = reference_network(net, json.loads(xor["values"].read_text()))
    from convviz.rendering.values import format_number

    w1 = reference["layers"][0]["params"]["weight"]
    for (i, j), grad in np.ndenumerate(w1["grad"]):
        cell = data["cells"].get(f"dL/dW[1]:{i + 1},{j + 1}")
        if cell is not None:  # cells the clip shows
            assert cell["value"] == format_number(grad)
    shown = [k for k in data["cells"] if k.startswith("dL/dW[1]:")]
    assert shown, "the backward pass of layer 1 shows dL/dW[1]"
    z2 = reference["layers"][2]["output"]
    cell = data["cells"]["z[2]:1"]
    assert cell["value"] == format_number(z2["value"][0])
    assert cell["grad"] == format_number(z2["grad"][0])


def test_network_strip_jumps_to_a_layer_phase(xor: dict[str, Any], open_offline: Any,
                                              tmp_path: Path) -> None:
    timeline = xor["timeline"]
    opened = open_offline(xor["page"])
    wait_ready(opened)
    assert opened.outside_requests() == [] and opened.console_errors == []
    layers = opened.page.locator("#strip .layer")
    assert layers.count() == len(tomllib.loads(xor["net"].read_text())["layer"])
    for layer, phase in ((3, "backward"), (1, "forward"), (1, "backward")):
        opened.page.locator(f'#strip .layer[data-layer="{layer}"] button.{phase}').click()
        opened.page.wait_for_timeout(300)
        t = current_time(opened)
        # the phase's first step, held still (the first of its ops: dW before db)
        first = next(s for s in timeline["steps"] if s["layer"] == layer and
                     s["phase"] == phase)
        assert first["hold"][0] <= t <= first["hold"][1], (layer, phase, t, first)
        title = next(p["title"] for p in timeline["phases"] if p["layer"] == layer
                     and p["phase"] == phase)
        assert opened.page.text_content("#now").startswith(title)
        button = opened.page.locator(f'#strip .layer[data-layer="{layer}"] button.{phase}')
        assert "current" in (button.get_attribute("class") or "").split()
    # at the very end (layer 1's db phase) the strip still marks layer 1's backward pass
    opened.page.keyboard.press("End")
    opened.page.wait_for_timeout(200)
    marked = opened.page.locator("#strip button.current")
    assert marked.count() == 1
    assert marked.get_attribute("data-layer") == "1"
    assert "backward" in (marked.get_attribute("class") or "")
    shoot(opened, "xor-strip.png", tmp_path)


@pytest.fixture(scope="module")
def tiny_cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    return _made(run("page", EXAMPLES / "tiny_cnn.toml", "--seed", "4",
                     "-o", folder / "tiny_cnn.html"))


def test_tiny_cnn_page_clicks_through_every_phase(tiny_cnn: Path, open_offline: Any,
                                                  tmp_path: Path) -> None:
    data = page_data(tiny_cnn)
    size = tiny_cnn.stat().st_size
    print(f"tiny_cnn page: {size} bytes")
    assert size < 8_000_000
    opened = open_offline(tiny_cnn)
    wait_ready(opened)
    assert opened.outside_requests() == [] and opened.console_errors == []
    for k, phase in enumerate(data["phases"]):
        opened.page.locator(f'#chapters li.phase[data-phase="{k}"] > button').click()
        opened.page.wait_for_timeout(150)
        regions = opened.page.locator("#regions .cell")
        assert regions.count() > 0, phase["title"]
        # click the phase's first target cell where the timeline drew it
        first = phase["step"]
        step = data["steps"][first]
        cell = opened.page.locator(f'#regions .cell[data-cell="{step["cell"]}"]')
        cell.click()
        opened.page.wait_for_timeout(150)
        assert step["hold"][0] <= current_time(opened) <= step["hold"][1]
        assert opened.page.text_content("#cell-name") == step["label"]
        if k == 0:
            shoot(opened, "tiny-cnn-layer1.png", tmp_path)
    shoot(opened, "tiny-cnn-last.png", tmp_path)


def test_a_page_from_a_timeline_needs_no_manim(forward: dict[str, Any], tmp_path: Path) -> None:
    """Making a page of an existing render imports no manim (only rendering/ does)."""
    import subprocess
    import sys

    target = tmp_path / "page.html"
    script = (
        "import sys\n"
        "sys.modules['manim'] = None\n"
        "from convviz.cli import main\n"
        f"main(['page', 'forward', '--timeline', {str(forward['timeline_path'])!r}, "
        f"'-o', {str(target)!r}], prog_name='convviz')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == forward["page"].read_bytes()


def _every_type() -> list[tuple[str, str]]:
    from convviz.layers import types

    # each type's last op: the backward pass where there is one
    return [(name, declared.ops[-1].name) for name, declared in types().items()]


@pytest.mark.parametrize(("kind", "op"), _every_type())
def test_every_layer_type_has_a_working_page(kind: str, op: str, open_offline: Any,
                                             tmp_path: Path) -> None:
    video, timeline = tmp_path / "clip.mp4", tmp_path / "clip.json"
    options = ["--type", kind, "--seed", "0", "--max-steps", "2"]
    _made(run("render", op, *options, "-q", "l", "-o", video, "--timeline", timeline))
    page = _made(run("page", op, *options, "--timeline", timeline, "-o", tmp_path / "p.html"))
    doc = json.loads(timeline.read_text())
    opened = open_offline(page)
    wait_ready(opened)
    assert opened.outside_requests() == [] and opened.console_errors == []
    boxes = sum(len(a["cells"]) for a in doc["arrays"].values())
    assert opened.page.locator("#regions .cell").count() == boxes
    for n, step in enumerate(doc["steps"]):
        target = step["target"]
        key = ",".join(map(str, target["index"]))
        click_box(opened, doc["arrays"][target["role"]]["cells"][key], doc["width"],
                  doc["height"])
        assert step["hold"][0] <= current_time(opened) <= step["hold"][1], (kind, n)
        name = doc["arrays"][target["role"]]["name"]
        assert opened.page.text_content("#cell-name") == (f"{name}[{key}]" if key else name)
        assert opened.page.locator("#cell-formula svg use").count() > 0
        # with numbers the panel shows the cell's number, as the timeline gives it
        value = doc["arrays"][target["role"]].get("values", {}).get(key)
        if value is not None:
            from convviz.rendering.values import format_number

            assert format_number(value) in opened.page.text_content("#cell-numbers")
    shoot(opened, f"type-{kind}-{op}.png", tmp_path)


def test_without_tex_typst_typesets_the_formulas(forward: dict[str, Any],
                                                 tmp_path: Path) -> None:
    page = _made(run("page", "forward", "--timeline", forward["timeline_path"], "--tex",
                     "none", "-o", tmp_path / "typst.html"))
    data, latex = page_data(page), page_data(forward["page"])
    assert len(data["formulas"]) == len(latex["formulas"]) == 62
    assert all(f.startswith("<svg") and "<use" in f for f in data["formulas"])
    assert data["formulas"] != latex["formulas"]  # another typesetter drew them
    assert data["cells"]["output:2,3"]["tex"] == latex["cells"]["output:2,3"]["tex"]
