"""The examples folder: the script and the notebook run end to end; the notebook is well formed."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lecture_script_writes_clips(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "make_lecture_clips.py"),
            "--out",
            str(tmp_path),
            "--quality",
            "l",
            "--max-steps",
            "2",
            "--layers",
            "strided",
            "--clips",
            "forward",
            "db",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "all checks pass" in result.stdout
    for op in ("forward", "db"):
        video = tmp_path / "strided" / f"{op}.mp4"
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (854, 480)
        timeline = json.loads((tmp_path / "strided" / f"{op}.json").read_text())
        assert timeline["video"] == str(video)
        assert (tmp_path / "strided" / f"{op}.vtt").read_text().startswith("WEBVTT")


def test_notebook_is_valid_and_uses_the_api() -> None:
    notebook = json.loads((ROOT / "examples" / "convviz_tour.ipynb").read_text())
    assert notebook["nbformat"] == 4
    sources = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    magics = [s for s in sources if s.startswith("%%manim")]
    assert len(magics) >= 3  # forward, custom layer, gradient
    for source in sources:
        body = "\n".join(line for line in source.splitlines() if not line.startswith("%%"))
        ast.parse(body)  # every cell is valid Python once the magic line is removed
    names = {line.split()[-1] for s in magics for line in s.splitlines()[:1]}
    for source in magics:
        tree = ast.parse("\n".join(source.splitlines()[1:]))
        classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        assert classes & names, "the %%manim line must name a class defined in its cell"


def _manim_cells(notebook) -> list:
    return [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith("%%manim")]


@pytest.mark.slow
def test_notebook_runs_on_a_fresh_kernel_and_shows_every_clip(tmp_path: Path) -> None:
    """Every cell runs in a new kernel (no error) and each ``%%manim`` cell shows a video.

    Runs a copy in a temporary directory, where the videos land, at low quality (``-ql``
    instead of the notebook's own quality flag) to stay fast.
    """
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    copy = tmp_path / "convviz_tour.ipynb"
    shutil.copy(ROOT / "examples" / "convviz_tour.ipynb", copy)
    notebook = nbformat.read(copy, as_version=4)
    magics = _manim_cells(notebook)
    assert len(magics) >= 3
    for cell in magics:
        first, _, body = cell.source.partition("\n")
        words = [w for w in first.split() if not re.fullmatch(r"-q[lmhkp]", w)]
        cell.source = " ".join([words[0], "-ql", *words[1:]]) + "\n" + body

    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first cell that raises

    for cell in notebook.cells:
        if cell.cell_type == "code":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert errors == [], (cell.source, errors)
    for cell in magics:
        scene = cell.source.splitlines()[0].split()[-1]
        videos = [
            o.data["text/html"]
            for o in cell.outputs
            if o.output_type == "display_data" and "<video" in o.data.get("text/html", "")
        ]
        assert len(videos) == 1, (scene, cell.outputs)
        (source,) = re.findall(r'<video src="([^"]+)"', videos[0])
        video = tmp_path / source
        assert video.name.startswith(f"{scene}@") and video.suffix == ".mp4"
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (854, 480)
            assert stream.frames > 1
    assert (tmp_path / "media" / "notebook_dw.mp4").stat().st_size > 1000
