"""Putting files and data inside one HTML file.

A page made here must work from a USB stick in a lecture hall with no network: every
video, script, style and formula is inside the HTML file. Videos travel as base64 in a
``<script type="application/octet-stream">`` element and become ``blob:`` URLs when the
page loads, which Chromium and Firefox seek in as well as in a file; data as JSON in a
``<script type="application/json">`` element; scripts and styles are read from
``convviz/web/assets`` and inlined.
"""

from __future__ import annotations

import base64
import html
import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["MIME_TYPES", "PageError", "asset", "atomic_write", "blob_script", "json_script",
           "mime_type"]

#: The video formats a page can carry, by suffix.
MIME_TYPES = {".mp4": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime",
              ".gif": "image/gif"}


class PageError(ValueError):
    """Bad input for a page (missing file, mismatched timeline): one line, exit 2."""


def mime_type(path: Path) -> str:
    """The MIME type of a video file, or a :class:`PageError` naming what is accepted."""
    try:
        return MIME_TYPES[path.suffix.lower()]
    except KeyError:
        raise PageError(f"{path}: a page embeds .mp4, .webm, .mov or .gif videos, "
                        f"not {path.suffix or 'a file without suffix'}") from None


def asset(name: str) -> str:
    """The text of ``convviz/web/assets/NAME`` (a script or a style sheet)."""
    return resources.files("convviz.web").joinpath("assets", name).read_text(encoding="utf-8")


def json_script(element_id: str, data: Any) -> str:
    """``data`` as JSON in a script element that no text inside can close early."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{html.escape(element_id)}">{text}</script>'


def blob_script(element_id: str, payload: bytes, mime: str) -> str:
    """``payload`` as base64 in a script element; the page turns it into a ``blob:`` URL."""
    encoded = base64.b64encode(payload).decode("ascii")
    return (f'<script type="application/octet-stream" id="{html.escape(element_id)}" '
            f'data-mime="{html.escape(mime)}">{encoded}</script>')


def atomic_write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
