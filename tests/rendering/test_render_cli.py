"""``convviz render``: one-line errors, missing LaTeX, safe outputs, default paths."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from convviz.cli import main
from convviz.spec import ConvSpec

VENV_BIN = Path(sys.executable).parent


def run(*args: str):
    return CliRunner().invoke(main, ["render", *args])


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def files_under(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty directory (no project defaults, nothing to overwrite)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


BAD = [
    pytest.param(["forward", "--transparent"], "--transparent", id="transparent-mp4"),
    pytest.param(["forward", "--transparent", "-o", "x.gif"], "--transparent",
                 id="transparent-gif"),
    pytest.param(["forward", "--fps", "0"], "--fps", id="fps-0"),
    pytest.param(["forward", "--fps", "500"], "--fps", id="fps-500"),
    pytest.param(["forward", "--fps", "abc"], "'--fps'", id="fps-not-a-number"),
    pytest.param(["forward", "--step-time", "0"], "--step-time", id="step-time-0"),
    pytest.param(["forward", "--step-time", "-1"], "--step-time", id="step-time-negative"),
    pytest.param(["forward", "--max-steps", "0"], "--max-steps", id="max-steps-0"),
    pytest.param(["forward", "-o", "out.txt"], ".txt", id="output-txt"),
    pytest.param(["forward", "-o", "x.mp4", "--format", "gif"], "x.mp4", id="suffix-vs-format"),
    pytest.param(["all", "-o", "x.mp4"], "directory", id="all-to-a-file"),
    pytest.param(["forwards"], "forwards", id="unknown-op"),
    pytest.param(["forward", "-q", "z"], "'-q' / '--quality'", id="unknown-quality"),
    pytest.param(["forward", "--format", "avi"], "'--format'", id="unknown-format"),
    pytest.param(["forward", "--stride", "0"], "--stride", id="stride-0"),
    pytest.param(["forward", "--stride", "2x"], "--stride", id="stride-malformed"),
    pytest.param(["forward", "--input", "6x"], "--input", id="input-malformed"),
    pytest.param(["forward", "--input", "0x6"], "--input", id="input-0"),
    pytest.param(["forward", "--input", "2x3x6x6"], "--input", id="input-4d"),
    pytest.param(["forward", "--kernel", "9x9"], "--kernel", id="kernel-too-big"),
    pytest.param(["forward", "--kernel", "3x3x3"], "--kernel", id="kernel-3d"),
    pytest.param(["forward", "--padding", "-1"], "--padding", id="padding-negative"),
    pytest.param(["forward", "--dilation", "x"], "--dilation", id="dilation-malformed"),
    pytest.param(["forward", "--filters", "0"], "--filters", id="filters-0"),
    pytest.param(["forward", "--layer", "0"], "--layer", id="layer-0"),
    pytest.param(["forward", "--input", "200x200", "--kernel", "5x5"], "--input",
                 id="layer-too-large"),
]


@pytest.mark.parametrize(("args", "mentions"), BAD)
def test_bad_input_is_one_error_line_and_exit_2(in_tmp, args, mentions):
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    assert mentions in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert files_under(in_tmp) == []


def test_missing_latex_is_one_line_pointing_to_make_setup(tmp_path):
    """With no TeX on PATH (only python), ``--tex latex`` stops before rendering anything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "LANG": "C.UTF-8",
    }
    out = work / "clip.mp4"
    proc = subprocess.run(
        [str(VENV_BIN / "convviz"), "render", "forward", "--tex", "latex", "-o", str(out)],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ") and "make setup" in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert files_under(work) == []


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """Point ``tempfile`` at a private directory, so leftovers of a render can be seen."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _interrupt_after_first_step(error: type[BaseException]):
    def on_step(done: int, total: int) -> None:
        if done == 1:
            raise error("stop")

    return on_step


@pytest.mark.slow
@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
@pytest.mark.parametrize("existing", [True, False], ids=["over-existing", "fresh"])
def test_failed_render_leaves_no_partial_file(tmp_path, private_tmp, error, existing):
    from convviz import render

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "forward.mp4"
    timeline = out_dir / "forward.json"
    if existing:
        target.write_bytes(b"an older render")
        os.utime(target, (1_000_000_000, 1_000_000_000))
    with pytest.raises(error):
        render(
            ConvSpec(),
            "forward",
            output=target,
            timeline=timeline,
            max_steps=3,
            on_step=_interrupt_after_first_step(error),
        )
    if existing:
        assert target.read_bytes() == b"an older render"
        assert target.stat().st_mtime == 1_000_000_000
        assert files_under(out_dir) == [Path("forward.mp4")]
    else:
        assert files_under(out_dir) == []
    assert list(out_dir.glob("*.part")) == list(out_dir.glob(".*")) == []
    assert files_under(private_tmp) == []  # manim's private media directory is gone


@pytest.mark.slow
def test_ctrl_c_in_the_cli_aborts_and_keeps_the_old_file(in_tmp, monkeypatch):
    """Ctrl-C during the render: ``Aborted.``, exit 130, the old file untouched."""
    import convviz.rendering.api as api

    real_render = api.render

    def interrupted(*args, **kwargs):
        kwargs["on_step"] = _interrupt_after_first_step(KeyboardInterrupt)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(api, "render", interrupted)
    (in_tmp / "clip.mp4").write_bytes(b"keep me")
    result = run("forward", "--max-steps", "3", "-o", "clip.mp4")
    assert result.exit_code == 130, result.output
    assert "Aborted." in result.stderr
    assert "Traceback" not in result.output
    assert (in_tmp / "clip.mp4").read_bytes() == b"keep me"
    assert files_under(in_tmp) == [Path("clip.mp4")]


@pytest.mark.slow
def test_default_output_is_named_after_op_and_layer(in_tmp):
    result = run("db", "--input", "5x5", "--stride", "2", "--max-steps", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(Path("media") / "db_5x5_k3x3_s2.mp4")
    assert files_under(in_tmp) == [Path("media"), Path("media/db_5x5_k3x3_s2.mp4")]
    assert (in_tmp / "media/db_5x5_k3x3_s2.mp4").stat().st_size > 0


def test_db_without_bias_is_refused(in_tmp):
    result = run("db", "--no-bias", "-o", "db.png")
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "--no-bias" in lines[0] and "dL/db" in lines[0]
    assert files_under(in_tmp) == []


#: Clips of ``render all`` for the small layer below: op, array of the target, chapter title.
ALL_CLIPS = {
    "forward": ("output", "z[1,1]"),
    "dw": ("grad_kernel", "dW[1,1]"),
    "da": ("grad_input", "da[1,1]"),
    "db": ("grad_bias", "db"),
    "da-full": ("grad_input", "da[1,1]"),
}


@pytest.mark.slow
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_render_all_writes_every_clip_with_its_timeline_and_chapters(in_tmp, bias):
    """``render all`` into directories: one video, timeline and chapters file per clip."""
    import json

    import av

    from convviz.rendering.output import format_timestamp

    slug = "3x3_k2x2" if bias else "3x3_k2x2_nobias"
    ops = list(ALL_CLIPS) if bias else [op for op in ALL_CLIPS if op != "db"]
    args = ["all", "--input", "3x3", "--kernel", "2x2", "--max-steps", "1",
            "-o", "clips", "--timeline", "timelines", "--chapters", "chapters"]
    result = run(*args, *([] if bias else ["--no-bias"]))
    assert result.exit_code == 0, result.output
    stems = [f"{op}_{slug}" for op in ops]
    assert len(stems) == (5 if bias else 4)
    # One line per clip, in the order of the layer type's ops.
    assert result.stdout.splitlines() == [str(Path("clips") / f"{s}.mp4") for s in stems]
    assert files_under(in_tmp) == sorted(
        [Path("chapters"), Path("clips"), Path("timelines")]
        + [Path("clips") / f"{s}.mp4" for s in stems]
        + [Path("timelines") / f"{s}.timeline.json" for s in stems]
        + [Path("chapters") / f"{s}.vtt" for s in stems]
    )
    for op, stem in zip(ops, stems, strict=True):
        role, title = ALL_CLIPS[op]
        video = in_tmp / "clips" / f"{stem}.mp4"
        with av.open(str(video)) as container:
            assert container.streams.video[0].codec_context.width == 854
        doc = json.loads((in_tmp / "timelines" / f"{stem}.timeline.json").read_text())
        assert doc["op"] == op
        assert doc["video"] == str(Path("clips") / f"{stem}.mp4")
        assert len(doc["steps"]) == 1
        assert doc["steps"][0]["target"]["role"] == role
        assert ("grad_bias" in doc["arrays"]) == (op == "db")
        vtt = (in_tmp / "chapters" / f"{stem}.vtt").read_text()
        step = doc["steps"][0]
        span = f"{format_timestamp(step['start'])} --> {format_timestamp(step['end'])}"
        assert vtt == f"WEBVTT\n\n1\n{span}\n{title}\n"


def test_typesetting_error_is_one_line_exit_1(in_tmp, private_tmp, monkeypatch):
    """A TeX failure is not the user's input: ``RenderFailed``, exit 1, nothing written."""
    import convviz.rendering.scenes as scenes
    from convviz.rendering.latex import TypesetError

    def broken(*args, **kwargs):
        raise TypesetError("LaTeX failed on the labels: ! Undefined control sequence.")

    monkeypatch.setattr(scenes, "typeset", broken)
    result = run("forward", "--input", "3x3", "--kernel", "2x2", "--max-steps", "1",
                 "-o", "clip.mp4", "--timeline", "clip.json")
    assert result.exit_code == 1, result.output
    assert error_lines(result) == [
        "Error: LaTeX failed on the labels: ! Undefined control sequence."
    ]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert files_under(in_tmp) == [Path("tmp")]  # private_tmp
    assert files_under(private_tmp) == []  # manim's private media directory is gone


def test_layout_error_is_one_line_exit_2(in_tmp, private_tmp, monkeypatch):
    """A layer whose arrays cannot fit the frame is bad input: exit 2, nothing written."""
    import dataclasses

    import convviz.rendering.labels as labels

    # Cells must be at least 5 scene units: no clip can fit a 14x8 frame.
    monkeypatch.setattr(labels, "CLIP_FRAME", dataclasses.replace(labels.CLIP_FRAME,
                                                                  min_cell=5.0))
    result = run("forward", "--input", "3x3", "--kernel", "2x2", "--max-steps", "1",
                 "-o", "clip.mp4")
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: arrays do not fit the frame: cells would be ")
    assert lines[0].endswith("(minimum 5.0)")
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert files_under(in_tmp) == [Path("tmp")]  # private_tmp
    assert files_under(private_tmp) == []
