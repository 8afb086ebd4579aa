"""A Cairo camera that builds each mobject's path once and replays it while it is unchanged.

manim's :class:`~manim.camera.camera.Camera` turns a ``VMobject``'s points into a Cairo
path in Python, curve by curve, every time it draws it. A convolution clip redraws the
same glyphs (cell labels, equations) many times, so most of a frame's drawing time goes
into rebuilding identical paths. Here the path is kept (``cairo.Context.copy_path``) with
a copy of the points it was made from, and appended in one C call as long as the points,
and the camera's frame, are the same. The pixels are the same as manim's.
"""

from __future__ import annotations

from typing import Any

import cairo
import numpy as np
from manim import Camera, VMobject

__all__ = ["PathCachingCamera"]


class PathCachingCamera(Camera):
    """:class:`~manim.camera.camera.Camera` with a per-mobject cache of Cairo paths."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: id(vmobject) -> (frame key, points copy, cairo path)
        self._paths: dict[int, tuple[tuple[float, ...], np.ndarray, Any]] = {}

    def _frame_key(self) -> tuple[float, ...]:
        centre = self.frame_center
        return (float(self.frame_width), float(self.frame_height), float(centre[0]),
                float(centre[1]), float(centre[2]))

    def set_cairo_context_path(
        self, ctx: cairo.Context[Any], vmobject: VMobject
    ) -> PathCachingCamera:
        """Set ``vmobject``'s path on ``ctx``, reusing the path built for the same points."""
        points = vmobject.points
        if len(points) == 0:
            return self
        key = id(vmobject)
        frame = self._frame_key()
        cached = self._paths.get(key)
        if (
            cached is not None
            and cached[0] == frame
            and cached[1].shape == points.shape
            and np.array_equal(cached[1], points)
        ):
            ctx.new_path()
            ctx.append_path(cached[2])
            return self
        super().set_cairo_context_path(ctx, vmobject)
        self._paths[key] = (frame, points.copy(), ctx.copy_path())
        return self
