"""The examples folder: the script runs end to end; the notebook is well formed."""

from __future__ import annotations

import ast
import json
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
