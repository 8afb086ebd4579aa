"""Clips on the web, offline: self-contained HTML pages (no manim import, no network).

Modules are small and named after what they hold:

``embed``
    Putting files and data inside one HTML file (data URIs, JSON in script tags, assets).
``svg``
    Math snippets typeset to standalone SVG by convviz's own LaTeX (or Typst) path.
``page``
    The interactive page of a clip: clickable cells over the video, chapters, formulas.
``slides``
    An offline presentation of a manim-slides folder, with convviz's own player.

Every page is one file: videos, scripts, styles and formulas are inside it, and the
page makes no request of its own. Pages are written to a temporary file and renamed
into place, so a failed run leaves nothing behind.
"""

from __future__ import annotations

__all__: list[str] = []
