"""Play many animations and holds as one video segment, redrawing only what changes.

manim's Cairo renderer writes every ``play`` and every ``wait`` into a partial movie of
its own (opening, flushing and closing an encoder each time), renders the whole still
scene again for every ``wait``, and during an animation redraws every mobject drawn
after the first animated one. A clip of many short steps pays all three per step.

:class:`OneSegmentScene` runs a block of ``play``/``wait`` calls (:meth:`one_segment`)
inside a single ``play``: the encoder is opened once, a ``wait`` draws its frame once and
repeats it, and an animation of known extent (``tight_animations``) redraws only the
animated mobjects and whatever overlaps them later in drawing order, over a still image
of the rest. The frames are the same as manim's; when nothing is drawn (``-s``, PNG
output, ``skip_animations`` in tests) the block runs as plain manim calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Self, cast

import numpy as np
from manim import Animation, FadeIn, FadeOut, Mobject, Scene, VMobject, config
from manim.mobject.opengl.opengl_mobject import OpenGLMobject
from manim.renderer.cairo_renderer import CairoRenderer
from manim.utils.family import extract_mobject_family_members
from manim.utils.iterables import list_update

__all__ = ["OneSegmentScene"]


class _Segment(Animation):
    """Placeholder played by :meth:`OneSegmentScene.one_segment`; runs ``body`` when drawn."""

    def __init__(self, body: Callable[[], None]) -> None:
        super().__init__(Mobject(), run_time=1.0)
        self.body = body

    def begin(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def interpolate(self, alpha: float) -> None:
        pass

    def clean_up_from_scene(self, scene: Scene) -> None:
        scene.remove(cast(Mobject, self.mobject))


class OneSegmentScene(Scene):
    """A :class:`~manim.Scene` that can render a block of plays and waits as one segment."""

    #: Animations whose mobjects, at every moment, lie within the union of their boxes
    #: at the start and at the end (no arcs, no overshoot), so only what overlaps those
    #: boxes is redrawn. Others redraw everything after their first mobject, as manim
    #: does. Exact types: a subclass counts only if listed.
    tight_animations: ClassVar[tuple[type[Animation], ...]] = (FadeIn, FadeOut)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._segment: _Segment | None = None
        #: Mobjects to draw over the renderer's still image for the current frame; None
        #: when the still image is out of date and a wait must draw everything.
        self._hold_layer: list[Mobject] | None = None
        #: The last still image and what it was drawn from (see :meth:`_save_still`).
        self._still: _Still | None = None

    # -- the block ------------------------------------------------------------------------
    def one_segment(self, body: Callable[[], None]) -> None:
        """Run ``body`` (which calls ``self.play`` and ``self.wait``) as one segment."""
        if self._segment is not None:
            body()
            return
        self.play(_Segment(body))

    def play_internal(self, skip_rendering: bool = False) -> None:
        """Run a :class:`_Segment`'s body; anything else is played by manim."""
        animations = self.animations or []
        if not (len(animations) == 1 and isinstance(animations[0], _Segment)):
            super().play_internal(skip_rendering)
            return
        segment = animations[0]
        if self.renderer.skip_animations:
            # manim already counted the placeholder's run time; the body counts its own.
            self.renderer.time -= self.duration
        self._segment = segment
        # manim has just drawn the whole scene as the still image of this play.
        self._hold_layer = []
        self._still = None
        try:
            segment.body()
        finally:
            self._segment = None
            self._hold_layer = None
            self._still = None
            segment.clean_up_from_scene(self)
            self._cairo.static_image = None

    # -- scene edits invalidate the still image ------------------------------------------
    @property
    def _cairo(self) -> CairoRenderer:
        return cast(CairoRenderer, self.renderer)

    def add(self, *mobjects: Mobject | OpenGLMobject) -> Self:
        """Add mobjects (see :meth:`manim.Scene.add`)."""
        self._hold_layer = None
        return super().add(*mobjects)

    def remove(self, *mobjects: Mobject) -> Self:
        """Remove mobjects (see :meth:`manim.Scene.remove`)."""
        self._hold_layer = None
        return super().remove(*mobjects)

    def get_restructured_mobject_list(
        self, mobjects: Iterable[Mobject], to_remove: Iterable[Mobject]
    ) -> list[Mobject]:
        """``mobjects`` without ``to_remove`` and with groups that held some split up.

        The same list as manim's :meth:`~manim.Scene.get_restructured_mobject_list`,
        which every ``add`` and ``remove`` calls: manim builds the whole family of every
        mobject in the scene (deduplicated) to intersect it with ``to_remove``; here the
        families are walked by identity and only until a mobject to remove turns up.
        """
        remove = {id(m) for m in to_remove}
        kept: list[Mobject] = []

        def walk(items: Iterable[Mobject]) -> None:
            for mob in items:
                if id(mob) in remove:
                    continue
                if mob.submobjects and _holds(mob, remove):
                    walk(mob.submobjects)
                else:
                    kept.append(mob)

        walk(mobjects)
        return kept

    # -- play and wait inside the block ----------------------------------------------------
    def play(self, *args: Any, **kwargs: Any) -> None:
        """Play animations; inside :meth:`one_segment`, into its segment."""
        if self._segment is None:
            super().play(*args, **kwargs)
            return
        animations = self.compile_animations(*args, **kwargs)
        self.add_mobjects_from_animations(animations)
        for animation in animations:
            animation._setup_scene(self)
            animation.begin()
        run_time = self.get_run_time(animations)
        if self.renderer.skip_animations:
            for animation in animations:
                animation.interpolate(1.0)
            self.renderer.time += run_time
        else:
            layer = self._redrawn(animations)
            still = set(map(id, layer))
            self._save_still([m for m in self._drawn() if id(m) not in still])
            last = 0.0
            for t in np.arange(0, run_time, 1 / config["frame_rate"]):
                for animation in animations:
                    animation.update_mobjects(t - last)
                    animation.interpolate(t / animation.run_time)
                self.update_mobjects(t - last)
                last = t
                self._cairo.render(self, t, layer)
        for animation in animations:
            animation.finish()
            animation.clean_up_from_scene(self)
        if self.renderer.skip_animations:
            self._hold_layer = None
        else:
            # A remover (FadeOut) has left the scene; the still image never had it.
            present = {id(m) for m in self._drawn()}
            self._hold_layer = [m for m in layer if id(m) in present]

    def wait(self, duration: float = 1.0, *args: Any, **kwargs: Any) -> None:
        """Hold the picture; inside :meth:`one_segment`, one frame drawn and repeated."""
        if self._segment is None or args or kwargs:
            super().wait(duration, *args, **kwargs)
            return
        duration = self.validate_run_time(duration, self.wait, "duration")
        renderer = self._cairo
        if renderer.skip_animations:
            renderer.time += duration
            return
        dt = 1 / renderer.camera.frame_rate
        if self._updating():
            # Not a still: draw every frame, as manim would.
            for _ in np.arange(0, duration, dt):
                self.update_mobjects(dt)
                renderer.static_image = None
                renderer.update_frame(self)
                renderer.add_frame(renderer.get_frame())
            self._hold_layer = None
            return
        if self._hold_layer is None:
            renderer.static_image = None
            renderer.update_frame(self)
        elif not self._hold_layer and renderer.static_image is not None:
            renderer.camera.set_frame_to_background(renderer.static_image)
        else:
            renderer.update_frame(self, mobjects=self._hold_layer)
        renderer.add_frame(renderer.get_frame(), num_frames=int(duration / dt))

    # -- the still image of each animation -------------------------------------------------
    def _save_still(self, mobjects: list[Mobject]) -> None:
        """Make the renderer's still image: ``mobjects`` drawn over the background.

        manim draws every still mobject again for each animation. Between two steps of a
        clip few of them change (the squares that stop or start changing colour, the
        equation), so here only the regions of those are drawn again, over the previous
        still image. The regions are pixel-aligned rectangles covering every mobject
        that changed, appeared or went (where it was and where it is); every still
        mobject that reaches into one is drawn, in drawing order, over a clean
        background, and the rectangles are copied from that drawing. (A Cairo clip
        would round some edge pixels differently.) Each pixel therefore gets exactly the
        paint it would get from drawing everything. Anything this cannot vouch for (a
        mobject that is not a plain VMobject, a change of drawing order, a moved
        camera, large changes) is drawn in full, as manim does.
        """
        renderer = self._cairo
        camera = renderer.camera
        states = [_state(m) for m in mobjects]
        known = all(states)
        boxes = _boxes(mobjects, camera)
        frame = _frame_key(camera)
        previous = self._still
        dirty = None
        if previous is not None and previous.frame == frame and known:
            dirty = previous.changed(mobjects, cast(list[tuple[Any, ...]], states), boxes)
        if previous is None or dirty is None:
            renderer.save_static_frame_data(self, mobjects)
        else:
            rects = _pixel_rects(dirty, camera)
            if _area(rects) > 0.4 * camera.pixel_width * camera.pixel_height:
                renderer.save_static_frame_data(self, mobjects)
            else:
                self._redraw_regions(previous, mobjects, boxes, rects)
        image = renderer.static_image
        if image is None or not known:
            self._still = None
            return
        self._still = _Still(
            image.copy(), frame, {id(m): (m, st, box) for m, st, box in
                                  zip(mobjects, cast(list[tuple[Any, ...]], states), boxes,
                                      strict=True)},
            [id(m) for m in mobjects],
        )

    def _redraw_regions(self, previous: _Still, mobjects: list[Mobject], boxes: np.ndarray,
                        rects: list[tuple[int, int, int, int]]) -> None:
        renderer = self._cairo
        camera = renderer.camera
        pixels = previous.image.copy()
        if rects:
            where = _pixel_boxes(boxes, camera)
            rect_array = np.array(rects, dtype=float)
            wanted = [
                m for m, (x0, y0, x1, y1) in zip(mobjects, where, strict=True)
                if np.any((rect_array[:, 0] < x1) & (x0 < rect_array[:, 2])
                          & (rect_array[:, 1] < y1) & (y0 < rect_array[:, 3]))
            ]
            renderer.save_static_frame_data(self, wanted)
            fresh = renderer.static_image
            source = cast(np.ndarray, camera.background if fresh is None else fresh)
            for x0, y0, x1, y1 in rects:
                pixels[y0:y1, x0:x1] = source[y0:y1, x0:x1]
        renderer.static_image = pixels

    # -- what to redraw -------------------------------------------------------------------
    def _updating(self) -> list[Mobject]:
        """Mobjects with updaters (redrawn at every frame)."""
        return [m for m in self.get_mobject_family_members() if m.updaters]

    def _drawn(self) -> list[Mobject]:
        """Every mobject with points, in drawing order (as manim's renderer sees them)."""
        return list(
            extract_mobject_family_members(
                list_update(self.mobjects, self.foreground_mobjects),
                use_z_index=self.renderer.camera.use_z_index,
                only_those_with_points=True,
            )
        )

    def _redrawn(self, animations: Sequence[Animation]) -> list[Mobject]:
        """The mobjects to draw at every frame of ``animations``, in drawing order.

        The animated ones, and every later one whose box meets the box of something
        redrawn before it. For an animation not in :data:`TIGHT_ANIMATIONS`, everything
        after its first mobject, as manim does.
        """
        drawn = self._drawn()
        animated: set[int] = set()
        loose: set[int] = set()
        for animation in animations:
            family = {id(m) for m in animation.mobject.get_family()}
            animated |= family
            if type(animation) not in self.tight_animations:
                loose |= family
        for mob in self._updating():
            loose |= {id(m) for m in mob.get_family()}
        first_loose = next((i for i, m in enumerate(drawn) if id(m) in loose), None)
        if first_loose is not None:
            return drawn[first_loose:]
        # Nothing before the first animated mobject is redrawn. Where the animated ones
        # are at the start and at the end; the others do not move.
        first = next((i for i, m in enumerate(drawn) if id(m) in animated), None)
        if first is None:
            return []
        drawn = drawn[first:]
        moving = [m for m in drawn if id(m) in animated]
        boxes = _boxes(drawn, self.renderer.camera)
        for animation in animations:
            animation.interpolate(1.0)
        end = _boxes(moving, self.renderer.camera)
        for animation in animations:
            animation.interpolate(0.0)
        rows = [i for i, m in enumerate(drawn) if id(m) in animated]
        boxes[rows, :2] = np.minimum(boxes[rows, :2], end[:, :2])
        boxes[rows, 2:] = np.maximum(boxes[rows, 2:], end[:, 2:])
        layer: list[Mobject] = []
        taken: list[int] = []
        for i, mob in enumerate(drawn):
            if id(mob) in animated:
                take = True
            elif taken:
                others, box = boxes[taken], boxes[i]
                take = bool(
                    np.any(
                        (others[:, 0] <= box[2]) & (box[0] <= others[:, 2])
                        & (others[:, 1] <= box[3]) & (box[1] <= others[:, 3])
                    )
                )
            else:
                take = False
            if take:
                taken.append(i)
                layer.append(mob)
        return layer


def _holds(mob: Mobject, ids: set[int]) -> bool:
    """Whether ``mob`` or any mobject of its family has its ``id`` in ``ids``."""
    stack = [mob]
    while stack:
        m = stack.pop()
        if id(m) in ids:
            return True
        stack.extend(m.submobjects)
    return False


def _boxes(mobjects: Sequence[Mobject], camera: Any) -> np.ndarray:
    """``(left, bottom, right, top)`` of each mobject's points, widened by its stroke.

    The margin is the whole stroke width (a miter at a square corner reaches about 0.7
    of it beyond the corner) plus two pixels of antialiasing.
    """
    if not mobjects:
        return np.zeros((0, 4))
    pixel = camera.frame_width / camera.pixel_width
    points = np.concatenate([m.points[:, :2] for m in mobjects])
    starts = np.cumsum([0] + [len(m.points) for m in mobjects[:-1]])
    widths = np.array(
        [
            max(float(m.get_stroke_width()), float(m.get_stroke_width(background=True)))
            if isinstance(m, VMobject)
            else 0.0
            for m in mobjects
        ]
    )
    margin = (widths * camera.cairo_line_width_multiple + 2 * pixel)[:, None]
    lo = np.minimum.reduceat(points, starts, axis=0) - margin
    hi = np.maximum.reduceat(points, starts, axis=0) + margin
    return np.concatenate([lo, hi], axis=1)


# -- still images -------------------------------------------------------------------------
class _Still:
    """A still image, and the state and box of every mobject drawn in it."""

    def __init__(self, image: np.ndarray, frame: tuple[Any, ...],
                 states: dict[int, tuple[Mobject, tuple[Any, ...], np.ndarray]],
                 order: list[int]) -> None:
        self.image = image
        self.frame = frame
        self.states = states
        self.order = order

    def changed(self, mobjects: Sequence[Mobject], states: Sequence[tuple[Any, ...]],
                boxes: np.ndarray) -> np.ndarray | None:
        """Boxes of what differs from this image; ``None`` if drawing order changed.

        ``boxes`` are the current boxes of ``mobjects``.
        """
        current = {id(m) for m in mobjects}
        common = [i for i in self.order if i in current]
        if common != [id(m) for m in mobjects if id(m) in self.states]:
            return None
        dirty: list[np.ndarray] = []
        for mob, state, box in zip(mobjects, states, boxes, strict=True):
            before = self.states.get(id(mob))
            if before is None:
                dirty.append(box)
            elif before[0] is not mob or before[1] != state:
                dirty.append(box)
                dirty.append(before[2])
        for key, (_, _, box) in self.states.items():
            if key not in current:
                dirty.append(box)
        return np.array(dirty, dtype=float).reshape(-1, 4)


def _state(mob: Mobject) -> tuple[Any, ...] | None:
    """Everything about ``mob`` that the Cairo camera's drawing depends on.

    ``None`` for what this module does not know how to compare (anything but a plain
    VMobject drawn without a background image).
    """
    if not isinstance(mob, VMobject) or mob.get_background_image() is not None:
        return None
    if getattr(mob, "shade_in_3d", False):
        return None
    arrays = (mob.points, mob.fill_rgbas, mob.stroke_rgbas, mob.background_stroke_rgbas)
    return (
        type(mob),
        *(a.shape for a in arrays),
        *(a.tobytes() for a in arrays),
        float(mob.stroke_width),
        float(mob.background_stroke_width),
        str(mob.joint_type),
        str(mob.cap_style),
        float(mob.sheen_factor),
        tuple(np.asarray(mob.sheen_direction, dtype=float).ravel()),
        float(mob.z_index),
    )


def _frame_key(camera: Any) -> tuple[Any, ...]:
    centre = camera.frame_center
    return (float(camera.frame_width), float(camera.frame_height), float(centre[0]),
            float(centre[1]), float(camera.pixel_width), float(camera.pixel_height),
            id(camera.background), str(camera.background_color),
            float(camera.background_opacity))


def _pixel_boxes(boxes: np.ndarray, camera: Any) -> np.ndarray:
    """Scene-unit ``(left, bottom, right, top)`` boxes as pixel ``(x0, y0, x1, y1)``."""
    sx = camera.pixel_width / camera.frame_width
    sy = camera.pixel_height / camera.frame_height
    left = camera.frame_center[0] - camera.frame_width / 2
    top = camera.frame_center[1] + camera.frame_height / 2
    x0 = (boxes[:, 0] - left) * sx
    x1 = (boxes[:, 2] - left) * sx
    y0 = (top - boxes[:, 3]) * sy
    y1 = (top - boxes[:, 1]) * sy
    return np.stack([x0, y0, x1, y1], axis=1)


def _pixel_rects(boxes: np.ndarray, camera: Any) -> list[tuple[int, int, int, int]]:
    """Whole-pixel rectangles (one pixel wider all round) covering ``boxes``, on screen."""
    if len(boxes) == 0:
        return []
    pixels = _pixel_boxes(boxes, camera)
    width, height = int(camera.pixel_width), int(camera.pixel_height)
    rects = []
    for x0, y0, x1, y1 in pixels:
        a = max(0, int(np.floor(x0)) - 1)
        b = max(0, int(np.floor(y0)) - 1)
        c = min(width, int(np.ceil(x1)) + 1)
        d = min(height, int(np.ceil(y1)) + 1)
        if a < c and b < d:
            rects.append((a, b, c, d))
    return rects


def _area(rects: Sequence[tuple[int, int, int, int]]) -> int:
    return sum((c - a) * (d - b) for a, b, c, d in rects)
