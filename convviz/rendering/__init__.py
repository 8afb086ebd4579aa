"""Rendering: the only part of convviz that imports manim.

Modules are small and named after what they hold:

``theme``
    Colours and cell styles (plain data, no manim import).
``layout``
    Where each grid goes in the frame, and how big a cell is (pure math, no manim import).
``labels``
    What a clip typesets, decided from its plan (no manim import).
``latex``
    The clip's one LaTeX document, and compiling it ahead of time (no manim import).
``plan_cache``
    Clip plans kept between renders, derived in a child while manim loads (no manim).
``typeset``
    Many LaTeX labels from one LaTeX run.
``grid``
    :class:`~convviz.rendering.grid.CellGrid`, one 2-D slice of an array as squares.
``output``
    Quality presets, formats, rendering a scene to an exact path, chapters.

Import the submodules directly; this package imports nothing heavy on its own.
"""

from __future__ import annotations

__all__: list[str] = []
