"""Render plumbing that does not care what a scene shows.

* quality letters and output formats, validated up front;
* :func:`render_scene`: run a scene with an explicit, validated config in a private media
  directory and put the one produced file at the requested path atomically;
* scene coordinates to output-video pixels;
* WebVTT chapter files.

manim keeps its settings in a global ``config``; :func:`render_scene` confines every
change to one ``tempconfig`` block, so callers pass settings explicitly and nothing leaks
between renders. It is therefore not safe to render from two threads at once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convviz.config import FORMATS
from convviz.config import QUALITIES as QUALITY_NAMES

__all__ = [
    "FORMATS",
    "OWNED_KEYS",
    "QUALITIES",
    "Chapter",
    "Quality",
    "RenderError",
    "atomic_write_text",
    "box_to_pixels",
    "default_tex_cache",
    "encode_inline",
    "format_for",
    "format_timestamp",
    "manim_config",
    "render_scene",
    "scene_to_pixel",
    "webvtt_chapters",
    "write_chapters",
]


class RenderError(RuntimeError):
    """A render was asked for with bad settings, or produced no file."""


@dataclass(frozen=True)
class Quality:
    """Pixel size and frame rate of one quality preset."""

    pixel_width: int
    pixel_height: int
    frame_rate: int


#: manim's quality letters: low, medium, high, 4k.
QUALITIES: Mapping[str, Quality] = {
    "l": Quality(854, 480, 15),
    "m": Quality(1280, 720, 30),
    "h": Quality(1920, 1080, 60),
    "k": Quality(3840, 2160, 60),
}

assert tuple(QUALITIES) == QUALITY_NAMES, "convviz.config.QUALITIES must name every quality"

#: Config keys :func:`render_scene` sets itself; callers may not override them.
OWNED_KEYS: frozenset[str] = frozenset(
    {
        "disable_caching",
        "format",
        "images_dir",
        "input_file",
        "log_dir",
        "log_to_file",
        "media_dir",
        "output_file",
        "partial_movie_dir",
        "preview",
        "quality",
        "scene_names",
        "sections_dir",
        "show_in_file_browser",
        "video_dir",
        "write_all",
    }
)


def format_for(output: Path, fmt: str | None = None) -> str:
    """Return the output format, checked against the file's suffix.

    Raises
    ------
    RenderError
        When the format is unknown or disagrees with the suffix.
    """
    suffix = output.suffix.lower().lstrip(".")
    chosen = (fmt or suffix).lower()
    if chosen not in FORMATS:
        raise RenderError(
            f"unsupported format {chosen!r} for {output}; choose one of {', '.join(FORMATS)}"
        )
    if suffix != chosen:
        raise RenderError(f"output {output} does not end in .{chosen}")
    return chosen


def default_tex_cache() -> Path:
    """Directory kept between renders for compiled LaTeX (``$XDG_CACHE_HOME/convviz/tex``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convviz" / "tex"


def manim_config(
    media_dir: Path,
    *,
    quality: str = "l",
    fmt: str = "mp4",
    overrides: Mapping[str, Any] | None = None,
    tex_cache: Path | None = None,
) -> dict[str, Any]:
    """Build the complete manim config for one render, rejecting unknown keys.

    ``manim.tempconfig`` silently drops keys it does not know, so a typo would be
    ignored; here it is an error.

    Parameters
    ----------
    media_dir
        Private directory manim writes into.
    quality
        One of :data:`QUALITIES`.
    fmt
        One of :data:`FORMATS`.
    overrides
        Further manim config keys, e.g. ``{"background_color": "#000000"}``.
    tex_cache
        Where compiled LaTeX is kept between renders (default :func:`default_tex_cache`).

    Raises
    ------
    RenderError
        On an unknown quality, format or config key, or an override of an owned key.
    """
    from manim import config as global_config

    if quality not in QUALITIES:
        raise RenderError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
    if fmt not in FORMATS:
        raise RenderError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    overrides = dict(overrides or {})
    known = set(global_config)
    unknown = sorted(k for k in overrides if k not in known)
    if unknown:
        raise RenderError(f"unknown manim config key(s): {', '.join(unknown)}")
    owned = sorted(k for k in overrides if k in OWNED_KEYS)
    if owned:
        raise RenderError(f"config key(s) set by convviz itself: {', '.join(owned)}")
    q = QUALITIES[quality]
    tex = tex_cache or default_tex_cache()
    if fmt == "mp4":
        # Flat colours and long holds: x264's fast presets lose nothing visible here
        # and encode several times faster than its default ("medium").
        encoder = {"preset": "veryfast", **overrides.get("video_encoder_options", {})}
        overrides["video_encoder_options"] = encoder
    settings: dict[str, Any] = {
        "pixel_width": q.pixel_width,
        "pixel_height": q.pixel_height,
        "frame_rate": q.frame_rate,
        "tex_dir": str(tex),
        "text_dir": str(tex.parent / "text"),
        "verbosity": "WARNING",
        "progress_bar": "none",
        **overrides,
        "media_dir": str(media_dir),
        "format": fmt,
        "disable_caching": True,
        "log_to_file": False,
        "preview": False,
        "show_in_file_browser": False,
        "write_all": False,
    }
    return settings


def render_scene(
    scene_factory: Callable[[], Any],
    output: Path,
    *,
    quality: str = "l",
    fmt: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    tex_cache: Path | None = None,
    inline_encoding: bool = False,
) -> Path:
    """Render one scene and put the produced file exactly at ``output``.

    Parameters
    ----------
    scene_factory
        A ``Scene`` subclass, or any zero-argument callable returning a scene (e.g.
        ``lambda: ForwardScene(highlight_map)``). The scene must be built inside the
        render's config, because manim fixes its output paths when a scene is created,
        so an already built scene instance is not accepted.
    output
        Destination file; its suffix must match the format. Parent directories are
        created. An existing file is replaced only once the new one is complete.
    quality, fmt, overrides, tex_cache
        See :func:`manim_config`; ``fmt`` defaults to the suffix of ``output``.
    inline_encoding
        Encode each frame in the drawing thread instead of on manim's encoder thread
        (see :func:`encode_inline`); for processes that have one core to themselves.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    RenderError
        On bad settings, or when the scene produced no file (e.g. no ``play`` call for a
        video format).
    """
    from manim import Scene, tempconfig

    if isinstance(scene_factory, Scene):
        raise RenderError("pass the scene class or a factory, not a scene instance")
    output = Path(output)
    chosen = format_for(output, fmt)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="convviz-media-") as media:
        settings = manim_config(
            Path(media), quality=quality, fmt=chosen, overrides=overrides, tex_cache=tex_cache
        )
        with tempconfig(settings):
            scene = scene_factory()
            if inline_encoding:
                encode_inline(scene)
            with _prompt_encoder():
                scene.render()
            produced = getattr(scene.renderer.file_writer, "final_file_path", None)
        if produced is None or not Path(produced).is_file():
            raise RenderError(
                f"{type(scene).__name__} produced no {chosen} file"
                + (" (it played no animation)" if chosen != "png" else "")
            )
        _atomic_copy(Path(produced), output)
    return output


#: Seconds a thread holding the GIL may run before another waiting for it gets it, while a
#: scene renders (Python's default is 0.005).
ENCODER_SWITCH_INTERVAL = 0.0005


@contextlib.contextmanager
def _prompt_encoder() -> Iterator[None]:
    """Let manim's encoder thread have the GIL back soon after it asks for it.

    The encoder thread takes the GIL for a moment around each frame it converts and
    hands to x264 (which then works in threads of its own), several times a frame. While
    the drawing thread runs Python, each of those moments waits up to the switch
    interval: at Python's 5 ms an encoder beside a busy drawing thread ran about three
    times slower than alone (1.5 times at 0.5 ms), and the video is only done when the
    encoder is. A scene that draws nothing while its frames encode is not affected.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, ENCODER_SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def encode_inline(scene: Any) -> bool:
    """Make ``scene`` (created, not yet rendered) encode video frames as they are drawn.

    manim hands every frame to an encoder thread, so drawing and encoding overlap, which
    is what a render on a machine of its own wants. A batch worker that shares the
    machine with one worker per core gains nothing from a second thread, and pays for
    the hand-offs (about a tenth of its CPU time): there the frame goes straight to the
    same segment encoder, from the drawing thread. The encoder's thread still finishes
    the segment, after the last frame. The encoder sees the same frames in the same
    order, so the video shows the same frames (a test compares the decoded frames, with
    the one x264 thread that batch workers use).

    Returns whether it could (``False`` with a manim whose file writer has no current
    encode job to write to; frames then take manim's way).
    """
    writer = getattr(getattr(scene, "renderer", None), "file_writer", None)
    if writer is None or not hasattr(writer, "_current_encode_job"):
        return False
    queued = writer.write_frame

    def write_frame(pixels: Any, *, repeat: int = 1) -> None:
        job = getattr(writer, "_current_encode_job", None)
        if job is None or job.failed or not writer.output_spec.is_video:
            queued(pixels, repeat=repeat)
            return
        job.encoder.write_frame(pixels, repeat=repeat)

    writer.write_frame = write_frame
    return True


def _public_mode(path: str) -> None:
    """Give a ``mkstemp`` file (mode 0600) the permissions a normal new file gets."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _atomic_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` so ``target`` is either untouched or complete."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        _public_mode(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        _public_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- coordinates ---------------------------------------------------------------------------
def scene_to_pixel(
    point: Sequence[float],
    *,
    pixel_width: int,
    pixel_height: int,
    frame_width: float = 128 / 9,
    frame_height: float = 8.0,
    frame_center: tuple[float, float] = (0.0, 0.0),
) -> tuple[float, float]:
    """Map a scene point to output-video pixels, origin top left, y down.

    Parameters
    ----------
    point
        ``(x, y)`` or ``(x, y, z)`` in scene units (z is ignored).
    pixel_width, pixel_height
        Size of the video, e.g. ``QUALITIES["h"]``'s.
    frame_width, frame_height, frame_center
        The camera's frame in scene units.
    """
    x, y = float(point[0]), float(point[1])
    px = (x - frame_center[0] + frame_width / 2) / frame_width * pixel_width
    py = (frame_center[1] + frame_height / 2 - y) / frame_height * pixel_height
    return (px, py)


def box_to_pixels(
    corners: Iterable[Sequence[float]],
    *,
    pixel_width: int,
    pixel_height: int,
    frame_width: float = 128 / 9,
    frame_height: float = 8.0,
) -> tuple[float, float, float, float]:
    """Return ``(left, top, right, bottom)`` in pixels of the box around ``corners``."""
    pts = [
        scene_to_pixel(c, pixel_width=pixel_width, pixel_height=pixel_height,
                       frame_width=frame_width, frame_height=frame_height)
        for c in corners
    ]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))


# -- chapters ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chapter:
    """One chapter of a video: from ``start`` to ``end`` seconds."""

    start: float
    end: float
    title: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"chapter {self.title!r} needs 0 <= start < end")
        if not self.title.strip() or "-->" in self.title or "\n\n" in self.title:
            raise ValueError(f"unusable chapter title {self.title!r}")


def format_timestamp(seconds: float) -> str:
    """WebVTT timestamp ``HH:MM:SS.mmm``."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def webvtt_chapters(chapters: Sequence[Chapter]) -> str:
    """Return a WebVTT chapters document; chapters must not overlap."""
    for before, after in itertools.pairwise(chapters):
        if after.start < before.end - 1e-9:
            raise ValueError(f"chapter {after.title!r} starts before {before.title!r} ends")
    blocks = ["WEBVTT"]
    for number, chapter in enumerate(chapters, start=1):
        span = f"{format_timestamp(chapter.start)} --> {format_timestamp(chapter.end)}"
        blocks.append(f"{number}\n{span}\n{chapter.title}")
    return "\n\n".join(blocks) + "\n"


def write_chapters(path: Path, chapters: Sequence[Chapter]) -> None:
    """Write :func:`webvtt_chapters` to ``path`` atomically."""
    atomic_write_text(Path(path), webvtt_chapters(chapters))
