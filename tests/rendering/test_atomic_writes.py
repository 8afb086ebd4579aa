"""Interrupted or failing writes of timelines, chapters, hash files and storyboards.

Each is written to a temporary ``.<name>.*.part`` file beside the target and moved into
place with ``os.replace``. Whether the rename fails or the write is interrupted half way
(an error, or Ctrl-C), the old file must be untouched and no temporary file left behind.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from convviz.spec import ConvSpec

OLD = "the old contents\n"

#: Failures the writers must survive: the rename failing, or an interrupt while writing.
FAILURES = ["replace-fails", "write-interrupted"]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def fail(monkeypatch):
    """``fail(mode, target)``: make the next write of ``target`` fail in the given way.

    ``replace-fails``: ``os.replace`` onto ``target`` raises ``OSError`` (disk full, a
    read-only directory). ``write-interrupted``: the temporary file receives the first
    bytes, then ``KeyboardInterrupt`` is raised from the write (text writes through
    ``os.fdopen``, images through PIL's ``Image.save``, ``Path.write_text`` for SVG).
    """
    from PIL import Image

    def arm(mode: str, target: Path) -> type[BaseException]:
        if mode == "replace-fails":
            real_replace = os.replace

            def replace(src, dst, *args, **kwargs):
                if Path(dst) == target:
                    raise OSError(28, "No space left on device")
                return real_replace(src, dst, *args, **kwargs)

            monkeypatch.setattr(os, "replace", replace)
            return OSError

        def interrupted_part(path) -> bool:
            if not isinstance(path, str | os.PathLike):
                return False  # an in-memory buffer (PNGs inside an SVG)
            name = Path(path).name
            return name.startswith(f".{target.name}.") and name.endswith(".part")

        class Interrupting(io.TextIOWrapper):
            def write(self, text):
                super().write(text[: len(text) // 2])
                self.flush()
                raise KeyboardInterrupt

        real_fdopen = os.fdopen

        def fdopen(fd, *args, **kwargs):
            handle = real_fdopen(fd, *args, **kwargs)
            if interrupted_part(os.readlink(f"/proc/self/fd/{fd}")):
                return Interrupting(handle.detach(), encoding="utf-8", newline="\n")
            return handle

        real_save = Image.Image.save

        def save(self, fp, *args, **kwargs):
            if interrupted_part(fp):
                Path(fp).write_bytes(b"\x89PNG half")
                raise KeyboardInterrupt
            return real_save(self, fp, *args, **kwargs)

        real_write_text = Path.write_text

        def write_text(self, data, *args, **kwargs):
            if interrupted_part(self):
                real_write_text(self, data[: len(data) // 2], *args, **kwargs)
                raise KeyboardInterrupt
            return real_write_text(self, data, *args, **kwargs)

        monkeypatch.setattr(os, "fdopen", fdopen)
        monkeypatch.setattr(Image.Image, "save", save)
        monkeypatch.setattr(Path, "write_text", write_text)
        return KeyboardInterrupt

    return arm


@pytest.mark.parametrize("mode", FAILURES)
def test_atomic_write_text_keeps_the_old_file(tmp_path, fail, mode):
    from convviz.rendering.output import atomic_write_text

    target = tmp_path / "notes.json"
    target.write_text(OLD)
    error = fail(mode, target)
    with pytest.raises(error):
        atomic_write_text(target, json.dumps({"new": list(range(1000))}))
    assert target.read_text() == OLD
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", FAILURES)
@pytest.mark.parametrize("kind", ["timeline", "chapters"])
def test_render_keeps_old_timeline_and_chapters(tmp_path, fail, monkeypatch, mode, kind):
    """``render(timeline=..., chapters=...)`` after the clip: a failed write keeps the old."""
    import convviz.rendering.api as api

    video = tmp_path / "clip.mp4"
    doc = {
        "arrays": {"output": {"name": "z"}},
        "steps": [{"start": 0.0, "end": 1.0, "target": {"role": "output", "index": [1, 1]}}],
    }

    def fake_render_clip(spec, op, **kwargs):  # no manim: the write is what is tested
        video.write_bytes(b"video")
        return api.RenderResult(video, doc)

    monkeypatch.setattr(api, "render_clip", fake_render_clip)
    target = tmp_path / ("clip.json" if kind == "timeline" else "clip.vtt")
    target.write_text(OLD)
    error = fail(mode, target)
    with pytest.raises(error):
        api.render(ConvSpec(), "forward", output=video, **{kind: target})
    assert target.read_text() == OLD
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", FAILURES)
def test_batch_hash_file_keeps_the_old_one(tmp_path, fail, monkeypatch, mode):
    """The hash file is written after the clip; if that fails the job fails, the old stays.

    So the clip is not taken for up to date with a hash it was not rendered from.
    """
    import convviz.rendering.api as api
    from convviz.batch import HASH_SUFFIX, Job, render_job

    output = tmp_path / "a.mp4"
    job = Job(name="a", op="db", spec=ConvSpec(input_size=(3, 3), kernel_size=(2, 2)),
              fmt="mp4", quality="l", theme="dark", palette="article", step_time=1.0,
              max_steps=1, fps=None, output=output)
    monkeypatch.setattr(api, "render", lambda spec, op, *, output, **kw: output.write_bytes(b"v"))
    hash_file = tmp_path / f"a.mp4{HASH_SUFFIX}"
    hash_file.write_text(OLD)
    error = fail(mode, hash_file)
    if error is KeyboardInterrupt:  # never swallowed: Ctrl-C stops the worker
        with pytest.raises(KeyboardInterrupt):
            render_job(job.payload())
    else:
        outcome = render_job(job.payload())
        assert outcome["ok"] is False
        assert "No space left on device" in outcome["error"]
    assert hash_file.read_text() == OLD
    assert not job.is_up_to_date()
    assert leftovers(tmp_path) == []


def _frames(count: int):
    from convviz.rendering.storyboard import Frame

    rng = np.random.default_rng(0)
    return [Frame(k + 1, f"z[1,{k + 1}]", rng.integers(0, 255, (27, 48, 3), dtype=np.uint8))
            for k in range(count)]


@pytest.mark.parametrize("mode", FAILURES)
@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
def test_storyboard_keeps_the_old_sheet(tmp_path, fail, mode, suffix):
    from convviz.rendering.storyboard import write_storyboard

    target = tmp_path / f"board.{suffix}"
    target.write_text(OLD)
    error = fail(mode, target)
    with pytest.raises(error):
        write_storyboard(target, _frames(3), title="Forward pass")
    assert target.read_text() == OLD
    assert leftovers(tmp_path) == []
