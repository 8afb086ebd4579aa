"""``convviz slides``: a manim-slides folder as one offline HTML presentation.

Two kinds of decks. Synthetic ones, written here with PyAV in a fraction of a second:
every slide a solid colour (red, green, blue, yellow) brightening from its first frame to
its last, so a screenshot tells which slide is on screen and whether it shows its last
frame. And a real one, rendered once per module by ``convviz render forward --slides``
(marked slow). What the page shows is checked against facts measured outside it: the
files' bytes, the durations PyAV reads, the colours written into the frames, the
notes in the presentation file, and manim-slides' own reading of the folder.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convviz.cli import main
from convviz.cli.slides_commands import slides_command

SHOTS = Path("/tmp/slides_shots")  # a few screenshots kept for a human to look at

FPS = 10
SIZE = (160, 90)  # 16:9
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 230),
           "yellow": (230, 210, 40)}
DIM, BRIGHT = 0.35, 1.0  # first and last frame's brightness


# -- helpers ------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def cli() -> Iterator[None]:
    """``convviz slides`` on the real group (registered here until convviz.cli does it)."""
    added = "slides" not in main.commands
    if added:
        main.add_command(slides_command)
    yield
    if added:
        main.commands.pop("slides", None)


def run(*args: str | Path) -> Any:
    return CliRunner().invoke(main, ["slides", *map(str, args)])


def write_video(path: Path, colour: tuple[int, int, int], frames: int = FPS) -> None:
    """``frames`` frames of ``colour``, from DIM to BRIGHT brightness."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for n in range(frames):
            level = DIM + (BRIGHT - DIM) * n / max(frames - 1, 1)
            rgb = np.empty((SIZE[1], SIZE[0], 3), np.uint8)
            rgb[:] = [round(c * level) for c in colour]
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = n
            frame.time_base = Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_folder(root: Path, scene: str = "Demo", specs: list[dict[str, Any]] | None = None,
                folder: str = "slides") -> Path:
    """A manim-slides folder as ``render --slides`` writes it; ``specs`` per slide."""
    # The first slide lasts 4 s: still playing when a test presses "next" on it. The
    # second lasts 3 s: still playing when a test checks that its time advances, on a
    # busy machine too.
    specs = specs or [{"colour": "red", "frames": 4 * FPS}, {"colour": "green", "frames": 3 * FPS},
                      {"colour": "blue"}, {"colour": "yellow"}]
    slides = []
    for n, spec in enumerate(specs, start=1):
        rel = f"{folder}/files/{scene}/slide_{n:03d}.mp4"
        write_video(root / rel, COLOURS[spec["colour"]], spec.get("frames", FPS))
        slides.append({"file": rel, "rev_file": rel, "loop": spec.get("loop", False),
                       "auto_next": spec.get("auto_next", False),
                       "playback_rate": spec.get("rate", 1.0),
                       "reversed_playback_rate": 1.0,
                       "notes": spec.get("notes", f"note {n} of {scene}")})
    doc = {"slides": slides, "resolution": list(SIZE), "background_color": "#000000"}
    (root / folder / f"{scene}.json").write_text(json.dumps(doc, indent=2))
    return root / folder


def embedded_videos(html: str) -> dict[str, bytes]:
    found = re.findall(r'<script type="application/octet-stream" id="([^"]+)" '
                       r'data-mime="video/mp4">([^<]*)</script>', html)
    return {key: base64.b64decode(text) for key, text in found}


def page_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="convviz-slides">(.*?)</script>',
                      html, re.S)
    assert match, "no slide list in the page"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def duration_pyav(path: Path) -> float:
    """Seconds of the file's video, from its frames' timestamps as PyAV reads them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(f.time) for f in container.decode(stream)]
        rate = float(stream.average_rate)
    return max(times) + 1 / rate


def frame_time(path: Path) -> float:
    with av.open(str(path)) as container:
        return 1 / float(container.streams.video[0].average_rate)


# -- the file -----------------------------------------------------------------------------
def test_page_holds_every_slide_video_and_its_notes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    out = tmp_path / "deck.html"
    result = run("--folder", folder, "Demo", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    html = out.read_text(encoding="utf-8")
    videos = embedded_videos(html)
    slides = page_data(html)["slides"]
    doc = json.loads((folder / "Demo.json").read_text())
    assert len(slides) == len(doc["slides"]) == 4
    for slide, entry in zip(slides, doc["slides"], strict=True):
        assert videos[slide["video"]] == (tmp_path / entry["file"]).read_bytes()
        assert slide["notes"] == entry["notes"]
        assert entry["notes"] in html


def test_the_folder_is_media_slides_unless_told(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``convviz render forward --slides`` leaves it: media/slides beside the video."""
    make_folder(tmp_path / "media", specs=[{"colour": "red"}, {"colour": "blue"}])
    monkeypatch.chdir(tmp_path)
    result = run("Demo", "forward.html")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "forward.html"
    videos = embedded_videos((tmp_path / "forward.html").read_text())
    assert sorted(videos.values()) == sorted(
        p.read_bytes() for p in (tmp_path / "media/slides/files/Demo").glob("*.mp4"))


def test_paths_resolve_as_manim_slides_resolves_them(tmp_path: Path) -> None:
    """manim-slides' own reader finds the same files as the page embeds, in order."""
    from manim_slides.config import PresentationConfig

    folder = make_folder(tmp_path)
    out = tmp_path / "deck.html"
    assert run("--folder", folder, "Demo", out).exit_code == 0
    html = out.read_text()
    videos = embedded_videos(html)
    config = PresentationConfig.from_file(folder / "Demo.json")
    assert [videos[s["video"]] for s in page_data(html)["slides"]] == \
        [Path(s.file).read_bytes() for s in config.slides]


def test_a_renamed_folder_still_finds_its_videos(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    moved = tmp_path / "elsewhere" / "deck"
    moved.parent.mkdir()
    folder.rename(moved)  # the JSON still says slides/files/...
    out = tmp_path / "deck.html"
    result = run("--folder", moved, "Demo", "-o", out)
    assert result.exit_code == 0, result.output
    videos = embedded_videos(out.read_text())
    assert sorted(videos.values()) == sorted(
        p.read_bytes() for p in (moved / "files" / "Demo").glob("*.mp4"))


def test_several_scenes_make_one_presentation_in_the_order_given(tmp_path: Path) -> None:
    make_folder(tmp_path, "Intro", [{"colour": "red"}, {"colour": "green"}])
    folder = make_folder(tmp_path, "Main", [{"colour": "blue"}])
    out = tmp_path / "deck.html"
    assert run("--folder", folder, "Main", "Intro", out).exit_code == 0
    html = out.read_text()
    videos = embedded_videos(html)
    expected = [folder / "files/Main/slide_001.mp4", folder / "files/Intro/slide_001.mp4",
                folder / "files/Intro/slide_002.mp4"]
    assert [videos[s["video"]] for s in page_data(html)["slides"]] == \
        [p.read_bytes() for p in expected]


def test_page_asks_for_nothing_outside_itself(tmp_path: Path) -> None:
    out = tmp_path / "deck.html"
    assert run("--folder", make_folder(tmp_path), "Demo", out).exit_code == 0
    html = out.read_text()
    text = re.sub(r'(data-mime="video/mp4">)[^<]*', r"\1", html)  # the base64 aside
    assert "http://" not in text and "https://" not in text
    assert "reveal" not in text.lower() and "cdn" not in text.lower()
    # Markup: every address in an attribute is data: (scripts' and styles' bodies aside).
    markup = re.sub(r"(<(script|style)\b[^>]*>).*?(</\2>)", r"\1\3", text, flags=re.S)
    links = re.findall(r"\b(?:src|href|srcset|poster|action|data|content)\s*=\s*"
                       r"[\"']([^\"']*)", markup)
    assert links and all(not re.search(r"\w+://|^//", link) for link in links), links
    assert [link for link in links if re.match(r"[a-z]+:", link)] == ["data:,"]
    styles = "".join(re.findall(r"<style\b[^>]*>(.*?)</style>", text, flags=re.S))
    assert "url(" not in styles and "@import" not in styles
    scripts = "".join(re.findall(r"<script>(.*?)</script>", text, flags=re.S))
    assert "createObjectURL" in scripts  # videos come from the page's own bytes
    for loader in ("fetch(", "XMLHttpRequest", "import(", "importScripts", "WebSocket",
                   "EventSource", "sendBeacon", "location", "open("):
        assert loader not in scripts, loader


def test_a_video_twice_in_the_deck_is_embedded_once(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, specs=[{"colour": "red"}, {"colour": "blue"}])
    doc = json.loads((folder / "Demo.json").read_text())
    doc["slides"].append(dict(doc["slides"][0], notes="again"))
    (folder / "Demo.json").write_text(json.dumps(doc))
    out = tmp_path / "deck.html"
    assert run("--folder", folder, "Demo", out).exit_code == 0
    html = out.read_text()
    slides = page_data(html)["slides"]
    assert len(slides) == 3 and len(embedded_videos(html)) == 2
    assert slides[0]["video"] == slides[2]["video"]


# -- bad input: one line, exit 2, nothing written -----------------------------------------
def _break(case: str, root: Path) -> tuple[list[str], str]:
    """Arguments for a broken case and a piece of the file name the error must name."""
    folder = make_folder(root, specs=[{"colour": "red"}, {"colour": "green"}])
    doc_path = folder / "Demo.json"
    doc = json.loads(doc_path.read_text())
    if case == "missing folder":
        return ["--folder", str(root / "nowhere"), "Demo"], "nowhere"
    if case == "folder is a file":
        (root / "plain").write_text("x")
        return ["--folder", str(root / "plain"), "Demo"], "plain"
    if case == "missing scene":
        return ["--folder", str(folder), "Backward"], "Backward.json"
    if case == "invalid json":
        doc_path.write_text('{"slides": [')
        return ["--folder", str(folder), "Demo"], "Demo.json"
    if case == "not utf-8":
        doc_path.write_bytes(b"\xff\xfe\x00garbage")
        return ["--folder", str(folder), "Demo"], "Demo.json"
    if case == "unreadable json":
        doc_path.chmod(0)
        return ["--folder", str(folder), "Demo"], "Demo.json"
    if case == "json is a folder":
        doc_path.unlink()
        doc_path.mkdir()
        return ["--folder", str(folder), "Demo"], "Demo.json"
    if case == "no slides":
        doc_path.write_text(json.dumps(dict(doc, slides=[])))
        return ["--folder", str(folder), "Demo"], "Demo.json"
    if case == "not a presentation":
        doc_path.write_text("[1, 2, 3]")
        return ["--folder", str(folder), "Demo"], "Demo.json"
    if case == "missing video":
        (root / doc["slides"][1]["file"]).unlink()
        return ["--folder", str(folder), "Demo"], "slide_002.mp4"
    if case == "empty video":
        (root / doc["slides"][1]["file"]).write_bytes(b"")
        return ["--folder", str(folder), "Demo"], "slide_002.mp4"
    if case == "slide without file":
        del doc["slides"][0]["file"]
        doc_path.write_text(json.dumps(doc))
        return ["--folder", str(folder), "Demo"], "Demo.json"
    if case == "bad playback rate":
        doc["slides"][0]["playback_rate"] = 0
        doc_path.write_text(json.dumps(doc))
        return ["--folder", str(folder), "Demo"], "Demo.json"
    if case == "not a video":
        gif = root / doc["slides"][1]["file"].replace(".mp4", ".gif")
        gif.write_bytes(b"GIF89a")
        doc["slides"][1]["file"] = str(gif.relative_to(root))
        doc_path.write_text(json.dumps(doc))
        return ["--folder", str(folder), "Demo"], "slide_002.gif"
    if case == "unknown kind of file":
        doc["slides"][0]["file"] = doc["slides"][0]["file"] + ".txt"
        (root / doc["slides"][0]["file"]).write_text("not a video")
        doc_path.write_text(json.dumps(doc))
        return ["--folder", str(folder), "Demo"], "slide_001.mp4.txt"
    if case == "no scene":
        return ["--folder", str(folder)], "Demo"  # the hint names the scenes there
    raise AssertionError(case)


BAD = ["missing folder", "folder is a file", "missing scene", "invalid json", "not utf-8",
       "unreadable json", "json is a folder", "no slides", "not a presentation",
       "missing video", "empty video", "not a video", "unknown kind of file",
       "slide without file", "bad playback rate", "no scene"]


def _one_line_exit_2(result: Any, named: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines
    assert named in lines[0], lines
    assert "Traceback" not in result.output and result.stdout == ""


@pytest.mark.parametrize("case", BAD)
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing output"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, case: str,
                                                  existing: bool) -> None:
    if case == "unreadable json" and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    args, named = _break(case, tmp_path)
    out = tmp_path / "out" / "deck.html"
    if existing:
        out.parent.mkdir()
        out.write_text("the deck from last week")
        os.utime(out, (1_000_000_000, 1_000_000_000))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    _one_line_exit_2(run(*args, out), named)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    if existing:
        assert out.read_text() == "the deck from last week"
        assert out.stat().st_mtime == 1_000_000_000


@pytest.mark.parametrize(("args", "named"), [
    (["Demo", "deck.mp4"], "deck.mp4"),
    (["Demo", "-o", "deck.txt"], "deck.txt"),
    (["Demo"], "output"),
    (["Demo", "a.html", "-o", "b.html"], "once"),
    (["-o", "deck.html"], "scene"),
])
def test_output_must_be_one_html_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      args: list[str], named: str) -> None:
    folder = make_folder(tmp_path, specs=[{"colour": "red"}])
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    _one_line_exit_2(run("--folder", folder, *args), named)
    assert sorted(tmp_path.rglob("*")) == before


def test_an_output_folder_is_refused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, specs=[{"colour": "red"}])
    (tmp_path / "deck.html").mkdir()
    _one_line_exit_2(run("--folder", folder, "Demo", tmp_path / "deck.html"), "deck.html")
    assert list((tmp_path / "deck.html").iterdir()) == []


# -- in the browser: synthetic decks ------------------------------------------------------
SHOWN = "document.querySelector('#stage video.shown')"
STATE = f"""() => {{
  const v = {SHOWN};
  return {{index: convvizSlides.index, count: convvizSlides.count,
           ready: convvizSlides.ready, slide: document.body.dataset.slide,
           counter: document.getElementById('counter').textContent,
           readyState: v ? v.readyState : -1, duration: v ? v.duration : NaN,
           time: v ? v.currentTime : NaN, paused: v ? v.paused : true,
           loop: v ? v.loop : null, rate: v ? v.playbackRate : NaN}};
}}"""


def state(opened: Any) -> dict[str, Any]:
    result: dict[str, Any] = opened.page.evaluate(STATE)
    return result


def wait_ready(opened: Any, index: int, timeout: float = 10_000) -> dict[str, Any]:
    opened.page.wait_for_function(
        f"() => convvizSlides.ready && convvizSlides.index === {index}", timeout=timeout)
    return state(opened)


def centre_colour(opened: Any) -> np.ndarray:
    shot = Image.open(io.BytesIO(opened.page.screenshot())).convert("RGB")
    w, h = shot.size
    return np.asarray(shot, dtype=float)[h // 2 - 5:h // 2 + 5, w // 2 - 5:w // 2 + 5] \
        .reshape(-1, 3).mean(axis=0)


def looks_like(pixel: np.ndarray, colour: str, level: float, tol: float = 30) -> bool:
    expected = np.array(COLOURS[colour], dtype=float) * level
    ok = bool(np.abs(pixel - expected).max() < tol)
    if not ok:
        print(f"centre {pixel.round()} is not {colour} at {level}: {expected.round()}")
    return ok


def nearest_colour(pixel: np.ndarray) -> str:
    def distance(name: str) -> float:
        hue = np.array(COLOURS[name], float)
        return float(np.linalg.norm(pixel / max(pixel.max(), 1) - hue / hue.max()))
    return min(COLOURS, key=distance)


def advance(opened: Any, press: Any, expected: int) -> None:
    """Press; when that only finished the slide still playing, press again."""
    press()
    if state(opened)["index"] != expected:
        assert wait_ready(opened, expected - 1)["paused"]
        press()
    wait_ready(opened, expected)


@pytest.fixture
def synthetic_deck(tmp_path: Path) -> Path:
    folder = make_folder(tmp_path)
    out = tmp_path / "deck.html"
    assert run("--folder", folder, "Demo", out).exit_code == 0
    return out


def test_deck_plays_offline_and_steps_like_manim_slides(synthetic_deck: Path,
                                                       open_offline: Any) -> None:
    opened = open_offline(synthetic_deck)
    first = wait_ready(opened, 0)
    assert first["count"] == 4 and first["counter"] == "1 / 4" and first["slide"] == "1"
    assert first["readyState"] >= 2
    assert nearest_colour(centre_colour(opened)) == "red"
    # Still playing: the first "next" finishes the slide, at its last (bright) frame.
    assert not first["paused"]
    opened.page.keyboard.press("ArrowRight")
    finished = wait_ready(opened, 0)
    assert finished["paused"]
    assert finished["index"] == 0
    assert finished["time"] == pytest.approx(finished["duration"], abs=1e-3)
    assert looks_like(centre_colour(opened), "red", BRIGHT)
    # The second goes on: slide 2 plays, from its dim first frames on.
    opened.page.keyboard.press("ArrowRight")
    second = wait_ready(opened, 1)
    assert second["counter"] == "2 / 4" and second["slide"] == "2"
    t0 = state(opened)["time"]
    time.sleep(0.3)
    assert state(opened)["time"] > t0
    assert nearest_colour(centre_colour(opened)) == "green"
    # Left the video alone to its end: it stops there, on its last frame, on slide 2.
    opened.page.wait_for_function(f"() => {SHOWN}.ended", timeout=5000)
    time.sleep(0.3)
    ended = state(opened)
    assert ended["index"] == 1 and ended["paused"]
    assert looks_like(centre_colour(opened), "green", BRIGHT)
    # Back: slide 1 at its last frame, not playing.
    opened.page.keyboard.press("ArrowLeft")
    back = wait_ready(opened, 0)
    assert back["paused"] and back["time"] == pytest.approx(back["duration"], abs=1e-3)
    assert looks_like(centre_colour(opened), "red", BRIGHT)
    # End / Home.
    opened.page.keyboard.press("End")
    assert wait_ready(opened, 3)["counter"] == "4 / 4"
    assert nearest_colour(centre_colour(opened)) == "yellow"
    opened.page.keyboard.press("ArrowRight")  # past the last slide: stays
    opened.page.keyboard.press("ArrowRight")
    time.sleep(0.2)
    assert state(opened)["index"] == 3
    opened.page.keyboard.press("Home")
    assert wait_ready(opened, 0)["counter"] == "1 / 4"
    # Space, PageDown and a click go on too (finishing a slide still playing first),
    # PageUp goes back.
    advance(opened, lambda: opened.page.keyboard.press("Space"), 1)
    advance(opened, lambda: opened.page.keyboard.press("PageDown"), 2)
    advance(opened, lambda: opened.page.mouse.click(640, 400), 3)
    assert nearest_colour(centre_colour(opened)) == "yellow"
    opened.page.keyboard.press("PageUp")
    wait_ready(opened, 2)
    assert looks_like(centre_colour(opened), "blue", BRIGHT)
    assert opened.outside_requests() == []
    assert opened.console_errors == []


def test_stepping_never_flashes_another_frame(synthetic_deck: Path,
                                             open_offline: Any) -> None:
    """Back shows the last frame from the first screenshot on, even when the slide left
    was still playing; forward shows the next slide's colour."""
    opened = open_offline(synthetic_deck)
    wait_ready(opened, 0)
    names = list(COLOURS)
    for index in range(1, 4):
        advance(opened, lambda: opened.page.keyboard.press("ArrowRight"), index)
        assert nearest_colour(centre_colour(opened)) == names[index]
    lags = []
    for back, forth in ((2, 3), (1, 2), (0, 1)):  # from slide forth, back, forth, back
        started = time.monotonic()
        opened.page.keyboard.press("ArrowLeft")  # the slide on screen is playing
        wait_ready(opened, back)
        lags.append(time.monotonic() - started)
        for _ in range(3):
            assert looks_like(centre_colour(opened), names[back], BRIGHT)
        advance(opened, lambda: opened.page.keyboard.press("ArrowRight"), forth)
        assert nearest_colour(centre_colour(opened)) == names[forth]
        opened.page.wait_for_function(f"() => {SHOWN}.ended", timeout=5000)
        started = time.monotonic()
        opened.page.keyboard.press("ArrowLeft")  # the slide on screen has ended
        wait_ready(opened, back)
        lags.append(time.monotonic() - started)
        for _ in range(3):
            assert looks_like(centre_colour(opened), names[back], BRIGHT)
    # A step back takes a few frames (the player's fallback, when no frame comes, is
    # 300 ms: a lag the audience would notice).
    assert sorted(lags)[len(lags) // 2] < 0.25, lags
    assert opened.console_errors == []


def test_notes_toggle_with_n(synthetic_deck: Path, open_offline: Any) -> None:
    opened = open_offline(synthetic_deck)
    wait_ready(opened, 0)
    notes = opened.page.locator("#notes")
    assert not notes.is_visible()
    opened.page.keyboard.press("n")
    assert notes.is_visible() and notes.inner_text() == "note 1 of Demo"
    opened.page.keyboard.press("End")
    wait_ready(opened, 3)
    assert notes.inner_text() == "note 4 of Demo"
    opened.page.keyboard.press("n")
    assert not notes.is_visible()
    assert opened.console_errors == []


def test_f_toggles_fullscreen(synthetic_deck: Path, open_offline: Any) -> None:
    opened = open_offline(synthetic_deck)
    wait_ready(opened, 0)
    opened.page.keyboard.press("f")
    opened.page.wait_for_function("() => document.fullscreenElement !== null", timeout=3000)
    opened.page.keyboard.press("f")
    opened.page.wait_for_function("() => document.fullscreenElement === null", timeout=3000)


def test_loop_auto_next_and_playback_rate(tmp_path: Path, open_offline: Any) -> None:
    folder = make_folder(tmp_path, specs=[
        {"colour": "red", "frames": 5},
        {"colour": "green", "loop": True, "frames": 5},
        {"colour": "blue", "auto_next": True, "rate": 2.0},
        {"colour": "yellow"},
    ])
    out = tmp_path / "deck.html"
    assert run("--folder", folder, "Demo", out).exit_code == 0
    opened = open_offline(out)
    first = wait_ready(opened, 0)
    assert not first["loop"] and first["rate"] == 1.0
    opened.page.wait_for_function(f"() => {SHOWN}.ended", timeout=5000)
    opened.page.keyboard.press("ArrowRight")
    looping = wait_ready(opened, 1)
    assert looping["loop"]
    time.sleep(1.2)  # more than twice its 0.5 s: still on it, still playing
    again = state(opened)
    assert again["index"] == 1 and not again["paused"] and again["time"] < again["duration"]
    # A looping slide never ends, so "next" goes straight on, to the auto_next slide
    # (1 s at double speed) which hands over to the last one by itself.
    opened.page.keyboard.press("ArrowRight")
    auto = wait_ready(opened, 2)
    assert auto["rate"] == 2.0
    started = time.monotonic()
    last = wait_ready(opened, 3, timeout=5000)
    assert time.monotonic() - started < 0.95  # 1 s of video at 2x
    assert last["rate"] == 1.0 and nearest_colour(centre_colour(opened)) == "yellow"
    assert opened.console_errors == []


def _content_rows_and_columns(png: bytes) -> tuple[int, int, int, int]:
    """The box of the screenshot's non-black pixels: top, bottom, left, right."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    lit = image.max(axis=2) > 40
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def test_phone_viewport_letterboxes_the_whole_video(synthetic_deck: Path,
                                                    open_offline: Any) -> None:
    opened = open_offline(synthetic_deck, width=390, height=844)
    wait_ready(opened, 0)
    opened.page.evaluate(f"() => {{ {SHOWN}.pause(); }}")
    opened.page.evaluate("() => document.getElementById('counter').style.visibility = 'hidden'")
    top, bottom, left, right = _content_rows_and_columns(opened.page.screenshot())
    # 160x90 scaled into 390 px of width: 219 px high, centred in the 844 px.
    height = 390 * SIZE[1] / SIZE[0]
    assert (left, right) == (0, 389)
    assert bottom - top + 1 == pytest.approx(height, abs=3)
    assert (top + bottom) / 2 == pytest.approx(844 / 2, abs=3)


# -- in the browser: a real rendered deck (slow) ------------------------------------------
@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import convviz
    from convviz import ConvSpec

    root = tmp_path_factory.mktemp("rendered")
    convviz.render(ConvSpec(input_size=(6, 6), kernel_size=(3, 3)), "forward", quality="l",
                   output=root / "forward.mp4", slides=root / "slides", max_steps=3)
    deck = root / "forward.html"
    result = run("--folder", root / "slides", "ForwardConvolution", deck)
    assert result.exit_code == 0, result.output
    return {"root": root, "deck": deck, "json": root / "slides" / "ForwardConvolution.json"}


def _slide_files(rendered: dict[str, Path]) -> list[Path]:
    doc = json.loads(rendered["json"].read_text())
    return [rendered["root"] / s["file"] for s in doc["slides"]]


def _keep(path: Path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


@pytest.mark.slow
def test_rendered_deck_embeds_the_slides_and_notes(rendered: dict[str, Path]) -> None:
    html = rendered["deck"].read_text()
    videos = embedded_videos(html)
    doc = json.loads(rendered["json"].read_text())
    assert len(doc["slides"]) == 3
    for slide, entry, file in zip(page_data(html)["slides"], doc["slides"],
                                  _slide_files(rendered), strict=True):
        assert videos[slide["video"]] == file.read_bytes()
        assert slide["notes"] == entry["notes"]
    assert [s["notes"] for s in page_data(html)["slides"]] == \
        ["output[1,1]", "output[1,2]", "output[1,3]"]


@pytest.mark.slow
def test_rendered_deck_plays_offline(rendered: dict[str, Path], open_offline: Any,
                                     tmp_path: Path) -> None:
    files = _slide_files(rendered)
    opened = open_offline(rendered["deck"])
    first = wait_ready(opened, 0)
    assert first["readyState"] >= 2 and first["count"] == 3
    assert first["duration"] == pytest.approx(duration_pyav(files[0]),
                                              abs=frame_time(files[0]) + 1e-6)
    _keep(opened.screenshot(tmp_path / "slides_desktop_first.png"))
    advance(opened, lambda: opened.page.keyboard.press("ArrowRight"), 1)
    second = state(opened)
    assert second["duration"] == pytest.approx(duration_pyav(files[1]),
                                               abs=frame_time(files[1]) + 1e-6)
    t0 = state(opened)["time"]
    time.sleep(0.4)
    assert state(opened)["time"] > t0
    opened.page.keyboard.press("n")
    _keep(opened.screenshot(tmp_path / "slides_desktop_second_notes.png"))
    assert opened.page.locator("#notes").inner_text() == "output[1,2]"
    opened.page.keyboard.press("n")
    opened.page.keyboard.press("ArrowLeft")
    back = wait_ready(opened, 0)
    assert back["paused"] and back["time"] == pytest.approx(back["duration"], abs=1e-3)
    opened.page.keyboard.press("End")
    last = wait_ready(opened, 2)
    assert last["counter"] == "3 / 3"
    assert last["duration"] == pytest.approx(duration_pyav(files[2]),
                                             abs=frame_time(files[2]) + 1e-6)
    assert opened.outside_requests() == []
    assert opened.console_errors == []


@pytest.mark.slow
def test_rendered_deck_fits_a_phone(rendered: dict[str, Path], open_offline: Any,
                                    tmp_path: Path) -> None:
    opened = open_offline(rendered["deck"], width=390, height=844)
    wait_ready(opened, 0)
    opened.page.wait_for_function(f"() => {SHOWN}.ended", timeout=10_000)
    _keep(opened.screenshot(tmp_path / "slides_phone.png"))
    video = opened.page.locator("#stage video.shown").bounding_box()
    counter = opened.page.locator("#counter").bounding_box()
    for box in (video, counter):
        assert box["x"] >= 0 and box["y"] >= 0
        assert box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844
    # The picture inside the element (object-fit: contain): the whole 854x480 frame in
    # the width, letterboxed; the lit pixels stay inside that band.
    size = opened.page.evaluate(f"() => [{SHOWN}.videoWidth, {SHOWN}.videoHeight]")
    assert size == [854, 480]
    assert counter["height"] >= 13  # readable
    opened.page.evaluate("() => document.getElementById('counter').style.visibility = 'hidden'")
    band = 390 * 480 / 854
    top, bottom, left, right = _content_rows_and_columns(opened.page.screenshot())
    assert top >= (844 - band) / 2 - 2 and bottom <= (844 + band) / 2 + 2
    assert bottom - top > band / 2  # the drawing is there, most of the band high
    assert left >= 0 and right <= 389
    assert opened.console_errors == []
