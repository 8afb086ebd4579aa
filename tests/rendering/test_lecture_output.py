"""Lecture-ready output: Typst typesetting, TeX-free renders, slides, storyboards, themes."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convviz import ConvSpec, derive
from convviz.cli import main
from convviz.rendering.plan import CLIP_OPS, plan_scene
from convviz.rendering.theme import DARK, LIGHT, PALETTES, THEMES, theme_for
from convviz.rendering.typst import TypstTranslationError, latex_to_typst

from .conftest import needs_latex

CONVVIZ = Path(sys.executable).with_name("convviz")


# -- LaTeX -> Typst ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tex", "typst"),
    [
        ("a_{1,2}", "a_(1 , 2)"),
        (r"dz_{1,1}\,W_{2,2}", "d z_(1 , 1) thin W_(2 , 2)"),
        (
            r"\frac{\partial \mathcal{L}}{\partial z^{[2]}}",
            "frac(partial cal(L), partial z^([ 2 ]))",
        ),
        (r"*_{\mathrm{full}}", 'ast_(upright("full"))'),
        (r"\operatorname{rot180}(W^{[2]})", 'op("rot180") ( W^([ 2 ]) )'),
        (r"\text{Bias gradient: } db", '"Bias gradient:" d b'),
        (
            r"z_{1,2} = W_{1,1}\,a_{1,2} + \cdots + b",
            "z_(1 , 2) = W_(1 , 1) thin a_(1 , 2) + dots.c + b",
        ),
        (r"\Rightarrow", "=>"),
        (r"\sum_{i,j} x", "sum_(i , j) x"),
    ],
    ids=["cell", "product", "fraction", "full-conv", "rot180", "text", "equation", "arrow", "sum"],
)
def test_latex_to_typst(tex: str, typst: str) -> None:
    assert latex_to_typst(tex) == typst


@pytest.mark.parametrize("tex", [r"\alpha", r"\frac{a}", "a}", r"\begin{matrix}"])
def test_latex_to_typst_rejects_unknown(tex: str) -> None:
    with pytest.raises(TypstTranslationError):
        latex_to_typst(tex)


def test_every_snippet_a_clip_uses_compiles_with_typst(tmp_path: Path) -> None:
    """All titles, labels, operators, equations, captions and identities of every clip."""
    import typst

    snippets: set[str] = set()
    for spec in (
        ConvSpec(),
        ConvSpec(input_size=(4, 4), kernel_size=(2, 2), channels=2, filters=2, stride=2,
                 padding=1),
        ConvSpec(input_size=(5, 5), kernel_size=(2, 3), dilation=2, bias=False),
    ):
        d = derive(spec)
        for op in CLIP_OPS:
            plan = plan_scene(d, op)
            for array in plan.arrays:
                for grid in array.grids:
                    snippets.add(grid.title)
                    snippets.update(grid.labels.values())
            snippets.update(plan.operators)
            snippets.add(plan.caption)
            snippets.update(step.equation for step in plan.steps)
            if plan.identity:
                snippets.add(plan.identity)
    source = tmp_path / "all.typ"
    source.write_text(
        "#set page(width: auto, height: auto)\n"
        + "\n".join(f"$ {latex_to_typst(s)} $\n" for s in sorted(snippets)),
        encoding="utf-8",
    )
    typst.compile(str(source), output=str(tmp_path / "all.svg"), format="svg")
    assert (tmp_path / "all.svg").stat().st_size > 1000


def test_typst_typesets_one_part_per_snippet() -> None:
    from convviz.rendering.typeset import typeset

    snippets = ["a_{1,2}", r"\frac{\partial \mathcal{L}}{\partial W^{[2]}}", "0", "a_{1,2}", ""]
    parts = typeset(snippets, backend="typst")
    assert len(parts) == 5
    assert len(parts[4].submobjects) == 0  # the empty snippet
    # A fraction is taller than a cell label; duplicates are equal copies.
    assert parts[1].height > 1.5 * parts[0].height
    assert parts[3].height == pytest.approx(parts[0].height)
    assert parts[3] is not parts[0]


# -- no TeX at all -----------------------------------------------------------------------
def _path_without_tex(tmp_path: Path) -> str:
    """A PATH with the venv's tools and core utilities, but no latex or dvisvgm."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "uname", "env"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return f"{CONVVIZ.parent}{os.pathsep}{bin_dir}"


@pytest.mark.slow
def test_render_without_tex_on_path(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": _path_without_tex(tmp_path), "HOME": str(tmp_path)}
    assert shutil.which("latex", path=env["PATH"]) is None
    out = tmp_path / "forward.mp4"
    result = subprocess.run(
        [str(CONVVIZ), "render", "forward", "--max-steps", "2", "-o", str(out),
         "--timeline", str(tmp_path / "t.json")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.width == 854
    timeline = json.loads((tmp_path / "t.json").read_text())
    assert len(timeline["steps"]) == 2

    # Insisting on LaTeX without it is one clear line and no file.
    strict = subprocess.run(
        [str(CONVVIZ), "render", "forward", "--tex", "latex", "-o", str(tmp_path / "x.mp4")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert strict.returncode == 2, strict.stderr
    lines = strict.stderr.strip().splitlines()
    assert len(lines) == 1 and "make setup" in lines[0] and "--tex none" in lines[0]
    assert not (tmp_path / "x.mp4").exists()


def _built(tmp_path: Path, op: str, spec: ConvSpec, tex: str):
    from convviz.rendering.scenes import scene_class

    from .conftest import derivation_of, scene_config

    with scene_config(tmp_path / tex):
        scene = scene_class(op)(spec, derivation=derivation_of(spec), tex=tex)
        scene.build()
    return scene


def _box(mob) -> tuple[float, float, float, float]:
    x, y, _ = mob.get_center()
    return float(x), float(y), float(mob.width), float(mob.height)


#: LaTeX (Computer Modern) and Typst (New Computer Modern) glyphs differ a little: sizes
#: agree within this share (operators, such as a starred ``full`` subscript, within the
#: second), centres within this many scene units (0.6 px at 480p).
SIZE_TOLERANCE = 0.2
OPERATOR_SIZE_TOLERANCE = 0.3
CENTRE_TOLERANCE = 0.02


@needs_latex
@pytest.mark.parametrize("op", ["forward", "da-full"])
def test_typst_and_latex_labels_have_the_same_boxes(tmp_path: Path, op: str) -> None:
    """Every typeset label, title and equation: same place, nearly the same size.

    Compares the typeset mobjects themselves (glyph outlines from each backend), not the
    layout's cell boxes, which do not depend on glyphs at all.
    """
    spec = ConvSpec()
    latex, typst = (_built(tmp_path, op, spec, tex) for tex in ("latex", "typst"))
    pairs = []
    for role, grids in latex.grids.items():
        for n, grid in enumerate(grids):
            other = typst.grids[role][n]
            assert set(grid.label_of) == set(other.label_of) != set(), f"{role}[{n}]"
            for key, label in grid.label_of.items():
                pairs.append((f"{role}[{n}] {key}", label, other.label_of[key]))
                cell = grid.cell_size
                for mob in (label, other.label_of[key]):  # shrunk to fit the cell
                    assert mob.width <= 0.8 * cell + 1e-6 and mob.height <= 0.42 * cell + 1e-6
            pairs.append((f"{role}[{n}] title", grid.title, other.title))
    pairs += [(f"equation {k}", a, b)
              for k, (a, b) in enumerate(zip(latex._equations, typst._equations, strict=True))]
    pairs.append(("caption", latex.caption, typst.caption))
    pairs += [(f"operator {k}", a, b)
              for k, (a, b) in enumerate(zip(latex.operator_mobs, typst.operator_mobs,
                                             strict=True))]
    assert len(pairs) > 30
    for name, a, b in pairs:
        (xa, ya, wa, ha), (xb, yb, wb, hb) = _box(a), _box(b)
        assert min(wa, ha, wb, hb) > 0, f"{name}: empty"
        share = OPERATOR_SIZE_TOLERANCE if name.startswith("operator") else SIZE_TOLERANCE
        assert abs(wa - wb) <= share * max(wa, wb), f"{name}: width {wa} vs {wb}"
        assert abs(ha - hb) <= share * max(ha, hb), f"{name}: height {ha} vs {hb}"
        # Titles sit on their grid: their bottoms agree, so their centres by half the
        # height difference.
        slack = CENTRE_TOLERANCE + (abs(ha - hb) / 2 if name.endswith("title") else 0)
        assert abs(xa - xb) <= CENTRE_TOLERANCE, f"{name}: x {xa} vs {xb}"
        assert abs(ya - yb) <= slack, f"{name}: y {ya} vs {yb}"
    # The typeset text differs: these really are two backends' glyphs.
    assert any(abs(_box(a)[2] - _box(b)[2]) > 1e-3 for _, a, b in pairs)


@needs_latex
def test_typst_and_latex_frames_show_the_same_picture(tmp_path: Path) -> None:
    """The drawn frames agree up to glyph shapes; the target cell is teal in both.

    Glyph outlines differ, so pixels are compared after a 3-pixel blur (what is left is
    where things are and how much ink they carry), against the difference a step makes.
    """
    from PIL import ImageFilter

    from .conftest import draw_frame, run_until_step

    spec = ConvSpec()
    frames = {
        tex: draw_frame(run_until_step("forward", spec, 2, tmp_path / tex, tex=tex))
        for tex in ("latex", "typst")
    }
    other_step = draw_frame(run_until_step("forward", spec, 1, tmp_path / "s1", tex="latex"))

    def blurred(frame: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(3)), dtype=int)

    latex, typst = blurred(frames["latex"]), blurred(frames["typst"])
    diff = np.abs(latex - typst)
    step_diff = np.abs(latex - blurred(other_step))
    assert diff.mean() < 2.5, diff.mean()
    assert (diff.max(axis=2) > 32).mean() < 0.01
    assert step_diff.mean() > 0  # a different step is a different picture...
    assert (diff.max(axis=2) > 32).sum() < (step_diff.max(axis=2) > 32).sum()  # ...and more so
    ink = {tex: float((f.max(axis=2) > 60).mean()) for tex, f in frames.items()}
    assert abs(ink["latex"] - ink["typst"]) < 0.1 * ink["latex"], ink


# -- slides ------------------------------------------------------------------------------
@pytest.mark.slow
def test_slides_export_has_one_slide_per_step(tmp_path: Path) -> None:
    import convviz

    slides = tmp_path / "slides"
    timeline = tmp_path / "clip.json"
    convviz.render(ConvSpec(input_size=(4, 4), kernel_size=(2, 2)), "forward",
                   output=tmp_path / "clip.mp4", slides=slides, timeline=timeline,
                   max_steps=4)
    steps = json.loads(timeline.read_text())["steps"]
    presentation = json.loads((slides / "ForwardConvolution.json").read_text())
    assert len(presentation["slides"]) == len(steps) == 4
    doc = json.loads(timeline.read_text())
    fps, duration = doc["fps"], doc["duration"]
    # each slide holds the frames whose time lies in its step (the first also the
    # opening, the last the closing): counted from the timeline, frame n at n / fps
    edges = [0.0] + [s["start"] for s in steps[1:]] + [duration]
    expected = [round(b * fps) - round(a * fps) for a, b in itertools.pairwise(edges)]
    total_frames = 0
    for slide, step, want in zip(presentation["slides"], steps, expected, strict=True):
        file = tmp_path / slide["file"]
        assert file.is_file()
        with av.open(str(file)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
        total_frames += frames
        assert frames == want, (slide["file"], frames, want)
        index = ",".join(str(i) for i in step["target"]["index"])
        assert slide["notes"] == f"{step['target']['role']}[{index}]"
    with av.open(str(tmp_path / "clip.mp4")) as container:
        assert total_frames == sum(1 for _ in container.decode(video=0))
    # manim-slides itself accepts the folder and converts it to a reveal.js page.
    from manim_slides.config import PresentationConfig

    config = PresentationConfig.from_file(slides / "ForwardConvolution.json")
    assert len(config.slides) == 4
    html = tmp_path / "deck.html"
    convert = subprocess.run(
        [str(CONVVIZ.with_name("manim-slides")), "convert", "--folder", str(slides),
         "ForwardConvolution", str(html)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert convert.returncode == 0, convert.stderr[-2000:]
    assert "reveal" in html.read_text().lower()


@pytest.mark.slow
def test_slides_from_the_cli_replace_an_existing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``render --slides`` writes slides/ beside the video; a second run replaces it whole."""
    monkeypatch.chdir(tmp_path)
    args = ["render", "forward", "--input", "4x4", "--kernel", "2x2", "-o", "clip.mp4",
            "--slides"]
    slides = tmp_path / "slides"

    def slide_files() -> list[Path]:
        presentation = json.loads((slides / "ForwardConvolution.json").read_text())
        files = [tmp_path / slide["file"] for slide in presentation["slides"]]
        assert all(f.is_file() and f.parent.parent.parent == slides for f in files)
        return files

    first = CliRunner().invoke(main, [*args, "--max-steps", "3"])
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "clip.mp4"
    assert len(slide_files()) == 3
    (slides / "stale.txt").write_text("from an older render")

    second = CliRunner().invoke(main, [*args, "--max-steps", "2"])
    assert second.exit_code == 0, second.output
    files = slide_files()
    assert len(files) == 2
    assert sorted(p.relative_to(slides) for p in slides.rglob("*") if p.is_file()) == sorted(
        [Path("ForwardConvolution.json"), *(f.relative_to(slides) for f in files)]
    )  # nothing of the first folder is left, not even the extra file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "slides"]


def test_slides_need_mp4() -> None:
    result = CliRunner().invoke(main, ["render", "forward", "--slides", "--format", "gif"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "Error: --slides: needs the mp4 format, not gif"
    ]


# -- storyboards --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
def test_storyboard_formats(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"board.{suffix}"
    result = CliRunner().invoke(
        main, ["storyboard", "forward", "--input", "4x4", "--kernel", "2x2", "--every", "4",
               "-o", str(out), "--tex", "none"],
    )
    assert result.exit_code == 0, result.output + result.stderr
    data = out.read_bytes()
    if suffix == "png":
        with Image.open(out) as image:
            assert image.width > image.height > 500
    elif suffix == "pdf":
        assert data.startswith(b"%PDF")
    else:
        text = data.decode()
        # 9 steps, every 4th and the last: steps 1, 5, 9.
        assert text.count("<image ") == 3
        for caption in ("1. z[1,1]", "5. z[2,2]", "9. z[3,3]"):
            assert caption in text
    assert not list(tmp_path.glob(".*.part"))


def test_storyboard_frames_show_each_steps_target(tmp_path: Path) -> None:
    from convviz.rendering.storyboard import capture_frames

    spec = ConvSpec(input_size=(4, 4), kernel_size=(3, 3))
    frames = capture_frames(spec, "forward", every=1, tex="typst", width=480, height=270)
    assert [f.caption for f in frames] == ["z[1,1]", "z[1,2]", "z[2,1]", "z[2,2]"]
    # The teal target moves: the teal pixels' centre differs frame to frame, left to
    # right then top to bottom, like the output cells.
    centres = []
    for frame in frames:
        px = frame.pixels.astype(int)
        teal = (px[..., 1] > 120) & (px[..., 0] < 120) & (px[..., 2] > 100)
        ys, xs = np.nonzero(teal)
        assert len(xs) > 20
        centres.append((xs.mean(), ys.mean()))
    assert centres[1][0] > centres[0][0] and abs(centres[1][1] - centres[0][1]) < 3
    assert centres[2][1] > centres[0][1] and abs(centres[2][0] - centres[0][0]) < 3


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-o", "board.txt"], "Error: -o: a storyboard is .png, .pdf or .svg, not .txt"),
        (["--every", "0"], "Error: --every: "),
        (["--columns", "0"], "Error: --columns: "),
        (["--max-steps", "0"], "Error: --max-steps: "),
    ],
    ids=["suffix", "every", "columns", "max-steps"],
)
def test_storyboard_bad_input(args: list[str], named: str) -> None:
    result = CliRunner().invoke(main, ["storyboard", "forward", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(named)


# -- themes --------------------------------------------------------------------------------
def test_themes_and_palettes() -> None:
    assert theme_for() is DARK
    assert theme_for("light") is LIGHT
    assert set(THEMES) == {"dark", "light"} and set(PALETTES) == {"article", "colorblind"}
    # The article's colours are manim's TEAL_C and YELLOW_C.
    assert DARK.target.fill_color == "#5CD0B3" and DARK.operand.stroke_color == "#F7D96F"
    safe = theme_for("dark", "colorblind")
    assert safe.target.fill_color == "#0072B2" and safe.operand.stroke_color == "#E69F00"
    assert safe.background == DARK.background
    assert theme_for("light", "colorblind").background == "#FFFFFF"
    with pytest.raises(ValueError, match="unknown theme"):
        theme_for("sepia")
    with pytest.raises(ValueError, match="unknown palette"):
        theme_for("dark", "neon")


@pytest.mark.slow
def test_light_colorblind_render_uses_its_colours(tmp_path: Path) -> None:
    out = tmp_path / "light.png"
    timeline = tmp_path / "light.json"
    result = CliRunner().invoke(
        main, ["render", "forward", "--theme", "light", "--palette", "colorblind",
               "--max-steps", "1", "-o", str(out), "--timeline", str(timeline)],
    )
    assert result.exit_code == 0, result.stderr
    image = np.asarray(Image.open(out).convert("RGB"), dtype=int)
    assert (image[2, 2] == [255, 255, 255]).all()  # white page
    doc = json.loads(timeline.read_text())
    x0, y0, x1, y1 = (int(v) for v in doc["arrays"]["output"]["cells"]["1,1"])
    patch = image[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3].reshape(-1, 3)
    blueish = (patch[:, 2] > patch[:, 0] + 60).mean()
    assert blueish > 0.5  # Okabe-Ito blue target


# -- GIF loops ---------------------------------------------------------------------------
@pytest.mark.slow
def test_gif_loops_back_to_its_first_frame(tmp_path: Path) -> None:
    out = tmp_path / "clip.gif"
    result = CliRunner().invoke(main, ["render", "forward", "--max-steps", "2", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    with Image.open(out) as gif:
        assert gif.info.get("loop") == 0  # loop forever
        gif.seek(0)
        first = np.asarray(gif.convert("RGB"), dtype=int)
        gif.seek(gif.n_frames // 3)
        middle = np.asarray(gif.convert("RGB"), dtype=int)
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("RGB"), dtype=int)
    # The clip ends on its opening picture (up to GIF palette dithering)...
    assert np.abs(first - last).mean() < 3
    # ...while in between the highlights really were on screen.
    assert np.abs(first - middle).mean() > 3 * np.abs(first - last).mean()


# -- transparency ------------------------------------------------------------------------
def _alpha_range(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.name == "vp9":
            # FFmpeg's own VP9 decoder drops the alpha plane; libvpx keeps it.
            decoder = av.CodecContext.create("libvpx-vp9", "r")
            frame = next(f for p in container.demux(stream) for f in decoder.decode(p))
        else:
            frame = next(container.decode(stream))
        alpha = frame.to_ndarray(format="rgba")[..., 3]
    return int(alpha.min()), int(alpha.max())


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["webm", "mov", "png"])
def test_transparent_output_has_alpha(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"clip.{fmt}"
    result = CliRunner().invoke(
        main, ["render", "db", "--transparent", "--max-steps", "1", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    low, high = _alpha_range(out)
    assert low == 0 and high == 255  # see-through background, opaque drawing


def test_forward_identity_is_shown_only_when_the_numbers_agree() -> None:

    import sympy

    from convviz.rendering.plan import _forward_identity

    d = derive(ConvSpec(input_size=(5, 5), stride=2, padding=1))
    assert _forward_identity(d) == r"z^{[2]} = a^{[1]} * W^{[2]} + b^{[2]}"
    broken = d.output.copy()
    broken[0, 0, 0] = broken[0, 0, 0] + d.input[0, 0, 0]  # one wrong term in z[1,1]
    assert _forward_identity(d.with_arrays(output=broken)) is None
    no_bias = derive(ConvSpec(input_size=(4, 4), bias=False))
    assert _forward_identity(no_bias) == r"z^{[2]} = a^{[1]} * W^{[2]}"
    assert sympy.S.Zero not in {c for c in no_bias.output.flat}


def test_plan_cache_reuses_and_invalidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import convviz.derivation
    from convviz.rendering import plan_cache as api

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = ConvSpec(input_size=(5, 5), stride=2)
    first = api.cached_plan(spec, "dw", None)
    assert first == plan_scene(derive(spec), "dw")  # a cached plan is the derived plan
    calls = []
    real = convviz.derivation.derive
    monkeypatch.setattr(convviz.derivation, "derive", lambda *a, **k: calls.append(a) or real(*a))
    assert api.cached_plan(spec, "dw", None) == first and calls == []  # from the cache
    assert api.cached_plan(spec, "dw", 2).steps == first.steps[:2] and len(calls) == 1
    # A damaged cache file is ignored and rewritten.
    for file in (tmp_path / "convviz" / "plans").iterdir():
        file.write_bytes(b"not a pickle")
    assert api.cached_plan(spec, "dw", None) == first and len(calls) == 2
