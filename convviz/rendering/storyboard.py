"""Storyboards: one printable sheet with a clip's key frames, for handouts.

The scene runs its real ``construct`` with ``skip_animations`` (every animation jumps to
its end, nothing is encoded) and the camera draws a frame whenever a chosen step is on
screen, so the sheet shows exactly what the video shows during each step's hold.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from convviz.rendering.output import RenderError, default_tex_cache
from convviz.rendering.theme import DARK, Theme

__all__ = [
    "STORYBOARD_FORMATS",
    "Frame",
    "capture_frames",
    "draw_frame",
    "dry_run",
    "write_storyboard",
]

#: File types a storyboard can be written as.
STORYBOARD_FORMATS = ("png", "pdf", "svg")


@dataclass(frozen=True)
class Frame:
    """One key frame: which step (1-based), the cell it computes, and its pixels."""

    step: int
    caption: str
    pixels: NDArray[np.uint8]


def _caption(name: str, index: Sequence[int]) -> str:
    return f"{name}[{','.join(str(i) for i in index)}]" if index else name


def draw_frame(scene: Any) -> NDArray[np.uint8]:
    """The RGB pixels of what ``scene`` shows now (Cairo renderer, even while skipping)."""
    from manim.renderer.cairo_renderer import CairoRenderer

    renderer = scene.renderer
    if not isinstance(renderer, CairoRenderer):
        raise RenderError("storyboards need manim's Cairo renderer")
    renderer.static_image = None
    renderer.update_frame(scene, ignore_skipping=True)
    return np.asarray(renderer.get_frame(), dtype=np.uint8)[:, :, :3].copy()


@contextlib.contextmanager
def dry_run(width: int, height: int, theme: Theme) -> Iterator[None]:
    """Manim's configuration for drawing frames without writing a video."""
    from manim import tempconfig

    cache = default_tex_cache()
    with tempfile.TemporaryDirectory(prefix="convviz-storyboard-") as media:
        settings = {
            "dry_run": True,
            "pixel_width": width,
            "pixel_height": height,
            "frame_rate": 15,
            "media_dir": media,
            "tex_dir": str(cache),
            "text_dir": str(cache.parent / "text"),
            "verbosity": "WARNING",
            "progress_bar": "none",
            "disable_caching": True,
            "background_color": theme.background,
        }
        with tempconfig(settings):
            yield


def capture_frames(
    spec: Any,
    op: str,
    *,
    every: int = 1,
    theme: Theme = DARK,
    tex: str = "latex",
    width: int = 960,
    height: int = 540,
    max_steps: int | None = None,
    seed: int | None = None,
    values: Any = None,
    show: str | None = None,
) -> list[Frame]:
    """Draw the frame of every ``every``-th step (and always the last one).

    Parameters
    ----------
    spec, op
        The layer and the clip (``forward``, ``dw``, ``da``, ``db``, ``da-full``).
    every
        Keep steps 1, 1 + every, 1 + 2 every, ... and the last.
    theme, tex
        Colours and typesetting backend (``latex`` or ``typst``).
    width, height
        Pixel size of each frame.
    max_steps
        Stop after this many steps.
    seed, values, show
        Draw the clip at numbers, as :func:`convviz.render` does.
    """
    from convviz.rendering.scenes import ConvolutionScene, scene_class

    if every < 1:
        raise RenderError(f"--every must be at least 1, got {every}")
    from convviz.rendering.api import clip_numbers

    numbers, show = clip_numbers(spec, seed=seed, values=values, show=show)
    if numbers is not None:
        spec = numbers.spec
    frames: list[Frame] = []
    holder: list[ConvolutionScene] = []

    def grab(done: int, total: int) -> None:
        if (done - 1) % every and done != total:
            return
        scene = holder[0]
        assert scene.plan is not None
        pixels = draw_frame(scene)
        target = scene.plan.steps[done - 1].target
        from convviz.rendering.api import plain_name

        short = plain_name(scene.plan.array(target.role).short or target.role)
        frames.append(Frame(done, _caption(short, target.index), pixels))

    with dry_run(width, height, theme):
        scene = scene_class(op, spec.TYPE)(
            spec,
            theme=theme,
            tex=tex,
            on_step=grab,
            max_steps=max_steps,
            skip_animations=True,
            values=numbers,
            show=show,
        )
        holder.append(scene)
        scene.render()
    return frames


def _font(size: int) -> Any:
    from PIL import ImageFont

    for path in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ):
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def _sheet_geometry(count: int, columns: int | None) -> tuple[int, int]:
    cols = columns or (2 if count <= 4 else 3 if count <= 9 else 4)
    cols = max(1, min(cols, count))
    return cols, math.ceil(count / cols)


def compose_png(frames: Sequence[Frame], title: str, theme: Theme,
                columns: int | None = None) -> Any:
    """The sheet as a PIL image: a title, then the frames in a grid, each captioned."""
    from PIL import Image, ImageDraw

    if not frames:
        raise RenderError("no frames to put on the storyboard")
    cols, rows = _sheet_geometry(len(frames), columns)
    fh, fw = frames[0].pixels.shape[:2]
    pad, caption_h, title_h = 24, 44, 70
    width = cols * fw + (cols + 1) * pad
    height = title_h + rows * (fh + caption_h) + (rows + 1) * pad
    paper = "#FFFFFF"
    ink = "#000000"
    sheet = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, pad), title, fill=ink, font=_font(30))
    for n, frame in enumerate(frames):
        r, c = divmod(n, cols)
        x = pad + c * (fw + pad)
        y = title_h + pad + r * (fh + caption_h + pad)
        sheet.paste(Image.fromarray(frame.pixels), (x, y))
        draw.rectangle((x - 1, y - 1, x + fw, y + fh), outline="#888888")
        draw.text((x, y + fh + 8), f"{frame.step}. {frame.caption}", fill=ink, font=_font(24))
    return sheet


def _svg(frames: Sequence[Frame], title: str, columns: int | None) -> str:
    from PIL import Image

    cols, rows = _sheet_geometry(len(frames), columns)
    fh, fw = frames[0].pixels.shape[:2]
    pad, caption_h, title_h = 24, 44, 70
    width = cols * fw + (cols + 1) * pad
    height = title_h + rows * (fh + caption_h) + (rows + 1) * pad
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" '
        f'xmlns:xlink="http://www.w3.org/1999/xlink" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<rect width="{width}" height="{height}" fill="#FFFFFF"/>',
        f'<text x="{pad}" y="{pad + 30}" font-family="DejaVu Sans, sans-serif" '
        f'font-size="30">{_escape(title)}</text>',
    ]
    for n, frame in enumerate(frames):
        r, c = divmod(n, cols)
        x = pad + c * (fw + pad)
        y = title_h + pad + r * (fh + caption_h + pad)
        buffer = io.BytesIO()
        Image.fromarray(frame.pixels).save(buffer, format="PNG")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        parts.append(
            f'<image x="{x}" y="{y}" width="{fw}" height="{fh}" '
            f'xlink:href="data:image/png;base64,{data}"/>'
        )
        parts.append(
            f'<rect x="{x}" y="{y}" width="{fw}" height="{fh}" fill="none" '
            f'stroke="#888888"/>'
        )
        parts.append(
            f'<text x="{x}" y="{y + fh + 32}" font-family="DejaVu Sans, sans-serif" '
            f'font-size="24">{frame.step}. {_escape(frame.caption)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_storyboard(
    path: Path,
    frames: Sequence[Frame],
    *,
    title: str,
    theme: Theme = DARK,
    columns: int | None = None,
) -> Path:
    """Write the sheet as PNG, PDF or SVG (by ``path``'s suffix), atomically."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in STORYBOARD_FORMATS:
        raise RenderError(
            f"storyboard must be .png, .pdf or .svg, not {path.suffix or 'no suffix'}"
        )
    if not frames:
        raise RenderError("no frames to put on the storyboard")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        if fmt == "svg":
            Path(tmp).write_text(_svg(frames, title, columns), encoding="utf-8")
        else:
            sheet = compose_png(frames, title, theme, columns)
            if fmt == "png":
                sheet.save(tmp, format="PNG")
            else:
                sheet.save(tmp, format="PDF", resolution=150.0, title=title)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
