"""Slides for manim-slides: one slide per step of a rendered clip.

The clip is cut at the step boundaries of its timeline (the first slide also holds the
opening, the last one the closing identity), each piece is encoded as its own MP4, and a
presentation file in manim-slides' format describes them. ``manim-slides present`` shows it
with the teacher advancing cell by cell; ``convviz slides`` turns it into one offline HTML
presentation (every slide video inside, convviz's own player, no network needed; see
:mod:`convviz.web.slides`)::

    convviz slides --folder media/slides ForwardConvolution forward.html

(``manim-slides convert`` would make a reveal.js page that loads reveal.js from a CDN, a
white page without network.)

manim-slides' own ``Slide`` base class cannot be mixed into the scenes on manim 0.22 (it
sets a configuration key that manim 0.22 removed), so the folder is written from the
timeline instead; its schema is checked with manim-slides' ``PresentationConfig``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

from convviz.rendering.output import RenderError

__all__ = ["slide_bounds", "write_slides"]


def slide_bounds(timeline: dict[str, Any]) -> list[tuple[float, float]]:
    """``(start, end)`` of every slide: one per step.

    The first slide also holds the opening and the last one the closing identity.
    """
    steps = timeline["steps"]
    if not steps:
        return [(0.0, float(timeline["duration"]))]
    bounds = [(float(s["start"]), float(s["end"])) for s in steps]
    bounds[0] = (0.0, bounds[0][1])
    bounds[-1] = (bounds[-1][0], float(timeline["duration"]))
    return bounds


def _split(video: Path, bounds: list[tuple[float, float]], folder: Path) -> list[Path]:
    """Re-encode ``video`` into one MP4 per ``(start, end)`` interval."""
    import av

    outputs: list[Path] = []
    containers = []
    streams = []
    with av.open(str(video)) as source:
        vin = source.streams.video[0]
        rate = vin.average_rate or Fraction(15)
        for n in range(len(bounds)):
            path = folder / f"slide_{n + 1:03d}.mp4"
            out = av.open(str(path), mode="w")
            stream = out.add_stream("libx264", rate=rate)
            stream.width, stream.height = vin.codec_context.width, vin.codec_context.height
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast"}
            containers.append(out)
            streams.append(stream)
            outputs.append(path)
        counts = [0] * len(bounds)
        index = 0
        # timeline times are rounded to 1e-4 s, so a frame belongs to the next slide
        # from half a frame before the boundary on (at 15 fps, the step starting at
        # 22/15 = 1.46667 s is written 1.4667 and frame 22 is already the next step's)
        half = 0.5 / float(rate)
        for frame in source.decode(vin):
            t = float(frame.time or 0.0)
            while index < len(bounds) - 1 and t >= bounds[index][1] - half:
                index += 1
            image = frame.reformat(format="yuv420p")
            image.pts = counts[index]
            image.time_base = Fraction(1) / rate
            for packet in streams[index].encode(image):
                containers[index].mux(packet)
            counts[index] += 1
    for out, stream in zip(containers, streams, strict=True):
        for packet in stream.encode():
            out.mux(packet)
        out.close()
    empty = [n + 1 for n, c in enumerate(counts) if c == 0]
    if empty:
        raise RenderError(f"slides {empty} would be empty: steps shorter than one frame")
    return outputs


def write_slides(
    video: Path, timeline: dict[str, Any], folder: Path, name: str, *, background: str
) -> Path:
    """Write a manim-slides presentation of ``video`` into ``folder``; return its JSON file.

    The folder appears only when complete; an existing one is replaced.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        files = tmp / "files" / name
        files.mkdir(parents=True)
        pieces = _split(Path(video), slide_bounds(timeline), files)
        relative = [f"{folder.name}/files/{name}/{p.name}" for p in pieces]
        doc = {
            "slides": [
                {
                    "file": rel,
                    "rev_file": rel,
                    "loop": False,
                    "auto_next": False,
                    "playback_rate": 1.0,
                    "reversed_playback_rate": 1.0,
                    "notes": _note(step),
                }
                for rel, step in zip(relative, timeline["steps"] or [{}], strict=False)
            ],
            "resolution": [int(timeline["width"]), int(timeline["height"])],
            "background_color": background,
        }
        (tmp / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        _validate(tmp / f"{name}.json", folder)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder / f"{name}.json"


def _note(step: dict[str, Any]) -> str:
    if not step:
        return ""
    target = step["target"]
    index = ",".join(str(i) for i in target["index"])
    return f"{target['role']}[{index}]"


def _validate(json_file: Path, final_folder: Path) -> None:
    """Check the file with manim-slides' own model when it is installed."""
    try:
        from manim_slides.config import PresentationConfig
    except ImportError:
        return
    # Paths in the file are relative to the folder's parent, named as the final folder.
    staged = json_file.parent
    link = staged.parent / final_folder.name
    if link.exists():
        # The final folder exists already (being replaced): validate the staged copy by
        # reading it with paths mapped onto the staged folder.
        data = json.loads(json_file.read_text(encoding="utf-8"))
        for slide in data["slides"]:
            for key in ("file", "rev_file"):
                slide[key] = str(staged / Path(slide[key]).relative_to(final_folder.name))
        PresentationConfig.model_validate(data)
        return
    os.symlink(staged.name, link)
    try:
        PresentationConfig.from_file(link / json_file.name)
    finally:
        link.unlink()
