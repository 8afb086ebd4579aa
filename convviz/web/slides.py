"""An offline presentation of a manim-slides folder, with convviz's own player.

``convviz render forward --slides`` writes a manim-slides folder (one JSON file per scene,
the slide videos under ``files/<scene>/``). ``manim-slides convert`` would turn it into a
reveal.js page that loads reveal.js from a CDN: with no network it shows a white page.
:func:`write_slides_page` writes ONE HTML file instead, with every slide video inside it
(base64, turned into ``blob:`` URLs by the page) and a small player of its own
(``assets/slides.js``, ``assets/slides.css``): nothing is requested from anywhere.

The player follows manim-slides' semantics: a slide's video plays when the slide is
entered and stops on its last frame; ``loop`` slides loop, ``auto_next`` slides advance
when done, ``playback_rate`` is honoured, and the slide's notes are the speaker notes.

Paths in a presentation file are resolved as manim-slides resolves them: relative to the
parent of the folder holding the JSON file (``slides/files/Scene/slide_001.mp4`` next to
``slides/``). When the folder has been renamed or moved since, the path is also tried
inside the folder itself, without its first part (``<folder>/files/Scene/slide_001.mp4``).
"""

from __future__ import annotations

import html
import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convviz.web.embed import PageError, asset, atomic_write, blob_script, json_script, mime_type

__all__ = ["Slide", "available_scenes", "read_slides", "slides_page", "write_slides_page"]

@dataclass(frozen=True)
class Slide:
    """One slide of a presentation: its video and how the player treats it."""

    scene: str
    number: int  # 1-based, within its scene
    video: Path
    loop: bool = False
    auto_next: bool = False
    playback_rate: float = 1.0
    notes: str = ""


def available_scenes(folder: Path) -> list[str]:
    """The scenes whose presentation files are in ``folder`` (sorted), or ``[]``."""
    try:
        return sorted(p.stem for p in Path(folder).glob("*.json") if p.is_file())
    except OSError:
        return []


def _scenes_hint(folder: Path) -> str:
    scenes = available_scenes(folder)
    if not scenes:
        return f"no presentation files in {folder}"
    return f"scenes in {folder}: {', '.join(scenes)}"


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PageError(f"{path}: not a presentation file (not UTF-8 text)") from None
    except OSError as err:
        raise PageError(f"{path}: cannot read it ({err.strerror or err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise PageError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, "
                        f"column {err.colno})") from None


def _resolve(folder: Path, json_file: Path, file: str) -> Path:
    """Where a slide's file is: manim-slides' place first, then inside ``folder``."""
    given = Path(file)
    first = json_file.parent.parent / given  # manim-slides: relative to the folder's parent
    if first.is_file() or given.is_absolute():
        return first
    if len(given.parts) > 1:
        moved = folder / Path(*given.parts[1:])  # the folder renamed or moved since
        if moved.is_file():
            return moved
    return first


def _flag(value: Any, json_file: Path, number: int, key: str) -> bool:
    if not isinstance(value, bool):
        raise PageError(f"{json_file}: slide {number}: {key} must be true or false, "
                        f"got {json.dumps(value)}")
    return value


def _slide(entry: Any, scene: str, number: int, folder: Path, json_file: Path) -> Slide:
    if not isinstance(entry, dict):
        raise PageError(f"{json_file}: slide {number} is not an object")
    file = entry.get("file")
    if not isinstance(file, str) or not file:
        raise PageError(f"{json_file}: slide {number} names no video file")
    rate = entry.get("playback_rate", 1.0)
    if (isinstance(rate, bool) or not isinstance(rate, int | float)
            or not math.isfinite(rate) or rate <= 0):
        raise PageError(f"{json_file}: slide {number}: playback_rate must be a number "
                        f"above 0, got {json.dumps(rate)}")
    notes = entry.get("notes", "")
    if not isinstance(notes, str):
        raise PageError(f"{json_file}: slide {number}: notes must be text")
    if _flag(entry.get("dedent_notes", True), json_file, number, "dedent_notes"):
        notes = textwrap.dedent(notes)  # as manim-slides does by default
    video = _resolve(folder, json_file, file)
    if not video.is_file():
        raise PageError(f"{video}: slide {number} of {json_file} is missing "
                        f"(render again with --slides)")
    if not mime_type(video).startswith("video/"):
        raise PageError(f"{video}: slide {number} of {json_file}: a slide is a video "
                        f"(.mp4, .webm or .mov)")
    return Slide(
        scene=scene,
        number=number,
        video=video,
        loop=_flag(entry.get("loop", False), json_file, number, "loop"),
        auto_next=_flag(entry.get("auto_next", False), json_file, number, "auto_next"),
        playback_rate=float(rate),
        notes=notes.strip(),
    )


def read_slides(folder: Path, scenes: Sequence[str]) -> list[Slide]:
    """The slides of ``scenes`` (in that order) from a manim-slides ``folder``.

    Anything wrong (missing folder or file, invalid JSON, no slides, a missing video) is
    a :class:`PageError` naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "no such folder"
        raise PageError(f"{folder}: {what} (convviz render ... --slides writes one)")
    if not scenes:
        raise PageError(f"name at least one scene ({_scenes_hint(folder)})")
    slides: list[Slide] = []
    for scene in scenes:
        if not scene or Path(scene).name != scene:
            raise PageError(f"{scene!r}: a scene is a name, like ForwardConvolution "
                            f"({_scenes_hint(folder)})")
        json_file = folder / f"{scene}.json"
        if not json_file.is_file():
            raise PageError(f"{json_file}: no such presentation file ({_scenes_hint(folder)})")
        doc = _load_json(json_file)
        entries = doc.get("slides") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise PageError(f"{json_file}: not a manim-slides presentation (no \"slides\" list)")
        if not entries:
            raise PageError(f"{json_file}: the presentation has no slides")
        slides += [_slide(entry, scene, n, folder, json_file)
                   for n, entry in enumerate(entries, start=1)]
    return slides


def slides_page(slides: Sequence[Slide], *, title: str) -> str:
    """The HTML of a presentation of ``slides``: one self-contained file."""
    if not slides:
        raise PageError("a presentation needs at least one slide")
    blobs: dict[Path, str] = {}  # a video shown by several slides is embedded once
    scripts: list[str] = []
    entries: list[dict[str, Any]] = []
    for slide in slides:
        key = slide.video.resolve()
        if key not in blobs:
            blobs[key] = f"convviz-video-{len(blobs) + 1}"
            try:
                payload = slide.video.read_bytes()
            except OSError as err:
                raise PageError(f"{slide.video}: cannot read it "
                                f"({err.strerror or err})") from None
            if not payload:
                raise PageError(f"{slide.video}: slide {slide.number} of {slide.scene} "
                                f"is an empty file")
            scripts.append(blob_script(blobs[key], payload, mime_type(slide.video)))
        entries.append({
            "video": blobs[key],
            "scene": slide.scene,
            "number": slide.number,
            "loop": slide.loop,
            "autoNext": slide.auto_next,
            "rate": slide.playback_rate,
            "notes": slide.notes,
        })
    data = {"title": title, "slides": entries}
    total = len(slides)
    head = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may leave the page: videos are blob: URLs, the rest is inline.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "media-src blob:; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'\">",
        '<meta name="generator" content="convviz slides">',
        '<link rel="icon" href="data:,">',
        f"<title>{html.escape(title)}</title>",
        f"<style>\n{asset('slides.css')}</style>",
        "</head>",
    ])
    body = "\n".join([
        '<body data-slide="0">',
        '<main id="stage" aria-label="slides">',
        '<video class="slide-video" muted playsinline preload="auto"></video>',
        '<video class="slide-video" muted playsinline preload="auto"></video>',
        "</main>",
        f'<div id="counter" aria-live="polite">1 / {total}</div>',
        '<aside id="notes" hidden></aside>',
        '<noscript><p class="noscript">This presentation needs JavaScript.</p></noscript>',
        json_script("convviz-slides", data),
        *scripts,
        f"<script>\n{asset('slides.js')}</script>",
        "</body>",
        "</html>",
        "",
    ])
    return head + "\n" + body


def write_slides_page(folder: Path, scenes: Sequence[str], output: Path) -> Path:
    """Write the presentation of ``scenes`` in ``folder`` to ``output`` (an .html file).

    Nothing is written when the input is bad: the page goes to a temporary file that is
    renamed into place, and an existing ``output`` stays as it was.
    """
    output = Path(output)
    if output.suffix.lower() != ".html":
        raise PageError(f"{output}: the presentation is an .html file")
    if output.is_dir():
        raise PageError(f"{output}: is a folder, not an .html file")
    slides = read_slides(folder, scenes)
    text = slides_page(slides, title=", ".join(scenes))
    try:
        return atomic_write(output, text)
    except OSError as err:
        raise PageError(f"{output}: cannot write it ({err.strerror or err})") from None
