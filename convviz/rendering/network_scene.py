r"""The network clip: the forward pass layer by layer to the loss, then back to the first layer.

A strip across the top shows every array of the network, small, with the current
layer outlined. Below it the current phase (one op of one layer) is drawn exactly as the
single-layer clip of that op draws it: :class:`NetworkScene` is a
:class:`~convviz.rendering.scenes.ConvolutionScene` that builds each phase's plan with
the base class's own :meth:`~convviz.rendering.scenes.ConvolutionScene.build` and plays
its detailed steps with the base class's restyling (:meth:`apply_step`, footprints, the
flatten ghosts), fitted into the space under the strip. The rest of each result fills in
one quick sweep. Between two phases every array they share (a result that is the next
layer's operand, the upstream gradient of ``dW``, ``db`` and ``da``) moves from its place
in the old picture to its place in the new one; everything else fades.

:func:`render_network` renders a clip and returns its timeline document (see
:func:`network_timeline` for the schema); :func:`network_chapters` and
:func:`write_network_slides` give WebVTT chapters and a manim-slides folder, one slide per
phase; :func:`capture_network_frames` draws the key frames for a storyboard.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from manim import (
    Animation,
    ManimColor,
    Mobject,
    Rectangle,
    VGroup,
    VMobject,
    smooth,
)

from convviz.rendering.grid import CellGrid, extent, move_centre, scale_about
from convviz.rendering.labels import CLIP_FRAME
from convviz.rendering.layout import ArrayShape, Box, FrameSpec, Layout, SliceShape, layout_row
from convviz.rendering.network_plan import NetworkPlan, PhasePlan, phase_arrays
from convviz.rendering.output import (
    QUALITIES,
    RenderError,
    atomic_write_text,
    box_to_pixels,
    default_tex_cache,
    format_timestamp,
    render_scene,
)
from convviz.rendering.scenes import ConvolutionScene, StepTiming
from convviz.rendering.theme import DARK, Theme
from convviz.rendering.typeset import typeset

if TYPE_CHECKING:
    from convviz.network import Network
    from convviz.rendering.storyboard import Frame

__all__ = [
    "MAIN_BOX",
    "STRIP_FRAME",
    "NetworkRenderResult",
    "NetworkScene",
    "StepRecord",
    "capture_network_frames",
    "network_chapters",
    "network_timeline",
    "prepare_network",
    "render_network",
    "write_network_slides",
]

#: The strip across the top: its own small frame, moved to the top of the picture.
STRIP_FRAME = FrameSpec(height=1.7, margin=0.1, caption_height=0.0, panel_height=0.1,
                        title_height=0.3, operator_width=0.3, slice_gap=0.5, max_cell=0.2,
                        min_cell=0.01)
#: How far up the strip's frame is moved (its top at the top of the picture).
STRIP_SHIFT = CLIP_FRAME.height / 2 - STRIP_FRAME.height / 2
#: The phase's caption, under the strip.
CAPTION_BOX = Box(0.0, CLIP_FRAME.height / 2 - STRIP_FRAME.height - 0.25,
                  CLIP_FRAME.width - 2 * CLIP_FRAME.margin, 0.5)
#: Where the phase's arrays go: between the caption and the equation panel.
MAIN_BOX = Box(
    0.0,
    (CAPTION_BOX.bottom - 0.05 + CLIP_FRAME.panel_box.top) / 2,
    CLIP_FRAME.width - 2 * CLIP_FRAME.margin,
    CAPTION_BOX.bottom - 0.05 - CLIP_FRAME.panel_box.top,
)

#: Style tuple as :meth:`CellGrid.style_of` reports it.
StyleTuple = tuple[str, float, str, float]


# ------------------------------------------------------------------------ animations
class _Move(Animation):
    """Move and scale mobjects along straight lines (a result moving into its next place).

    Each item is ``(mobject, centre, scale, shift)``: every point ``p`` goes to
    ``centre + (p - centre) * scale + shift``, linearly in time, so every point stays
    within the union of its start and end boxes (the scene redraws only there).
    """

    def __init__(self, items: Sequence[tuple[Mobject, np.ndarray, float, np.ndarray]],
                 run_time: float) -> None:
        super().__init__(Mobject().add(*(m for m, *_ in items)), run_time=run_time,
                         rate_func=smooth)
        self.items = list(items)
        self._start: list[list[tuple[Mobject, np.ndarray]]] = []

    def create_starting_mobject(self) -> Mobject:
        """No deep copy: the start points are kept per family member."""
        return Mobject()

    def begin(self) -> None:
        self._start = [
            [(m, m.points.copy()) for m in mob.get_family() if len(m.points)]
            for mob, *_ in self.items
        ]
        super().begin()

    def interpolate_mobject(self, alpha: float) -> None:
        a = self.rate_func(alpha)
        for (_, centre, scale, shift), family in zip(self.items, self._start, strict=True):
            factor = 1.0 + (scale - 1.0) * a
            offset = centre + shift * a
            for m, points in family:
                m.points = offset + (points - centre) * factor


class _Sprite:
    """A picture of a moving mobject (premultiplied RGBA), pasted scaled and shifted.

    ``start`` is how it looks as it leaves, ``end`` (see :meth:`finish`) as it arrives;
    at time ``a`` the blend of both is scaled by ``1 + (scale - 1) a`` about ``centre``
    and shifted by ``shift * a`` (pixels), as :class:`_Move` moves the mobject itself.
    """

    def __init__(self, start: np.ndarray, x0: int, y0: int, centre: tuple[float, float],
                 scale: float, shift: tuple[float, float]) -> None:
        self.start = start
        self.end = start
        self.x0, self.y0 = x0, y0
        self.centre = centre
        self.scale = scale
        self.shift = shift

    def finish(self, end: np.ndarray) -> None:
        """How it looks when it arrives (same size as ``start``)."""
        self.end = end

    def paint(self, frame: np.ndarray, a: float) -> None:
        """Paint it over ``frame`` (uint8 RGBA, in place) at time ``a`` in [0, 1]."""
        from PIL import Image

        h, w = self.start.shape[:2]
        if h == 0 or w == 0:
            return
        pixels = self.start if self.end is self.start else (
            self.start * (1.0 - a) + self.end * a).astype(np.uint8)
        factor = 1.0 + (self.scale - 1.0) * a
        width, height = max(1, round(w * factor)), max(1, round(h * factor))
        cx, cy = self.centre
        x = round(cx + (self.x0 - cx) * factor + self.shift[0] * a)
        y = round(cy + (self.y0 - cy) * factor + self.shift[1] * a)
        image = Image.frombytes("RGBa", (w, h), np.ascontiguousarray(pixels).tobytes())
        if (width, height) != (w, h):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        sprite = np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(height, width, 4)
        fh, fw = frame.shape[:2]
        left, top = max(x, 0), max(y, 0)
        right, bottom = min(x + width, fw), min(y + height, fh)
        if left >= right or top >= bottom:
            return
        part = sprite[top - y:bottom - y, left - x:right - x].astype(np.float32)
        under = frame[top:bottom, left:right].astype(np.float32)
        cover = part[:, :, 3:4] / 255.0
        frame[top:bottom, left:right] = np.clip(part + under * (1.0 - cover), 0, 255).astype(
            np.uint8)


# ------------------------------------------------------------------------- records
@dataclass(frozen=True)
class StepRecord:
    """One step as it was played: its phase, cells and times, and boxes in scene units.

    ``sweep`` steps are the cells filled by a phase's sweep (no highlights; their
    ``hold`` lasts to the end of the sweep).
    """

    phase: PhasePlan
    target: tuple[int, ...]
    highlights: dict[str, tuple[tuple[int, ...], ...]]
    timing: StepTiming
    boxes: dict[str, dict[str, Box]]
    sweep: bool = False


@dataclass(frozen=True)
class PhaseRecord:
    """When one phase was on screen, and the box outlined in the strip."""

    phase: PhasePlan
    start: float
    end: float
    outline: Box


@dataclass
class _Shown:
    """The mobjects of the phase on screen."""

    plan: Any
    grids: dict[str, list[CellGrid]]
    titles: dict[str, VMobject]
    operators: VGroup
    caption: VMobject
    labels: dict[str, str]


def _key(index: Sequence[int]) -> str:
    return ",".join(str(i) for i in index)


def _into_main_box(width: float, height: float) -> float:
    """The scale that fits a phase of ``width`` x ``height`` under the strip (at most 1)."""
    return min(1.0, MAIN_BOX.width / max(width, 1e-6), MAIN_BOX.height / max(height, 1e-6))


class NetworkScene(ConvolutionScene):
    """The clip of a :class:`~convviz.rendering.network_plan.NetworkPlan`.

    Parameters
    ----------
    plan
        The phases and their pacing.
    theme, tex
        Colours and typesetting backend (``latex`` or ``typst``).
    on_step
        ``on_step(done, total)`` after every detailed step and every sweep (progress).
    on_hold
        ``on_hold(record)`` once each detailed step's highlights are fully shown and
        once each sweep has filled its result (storyboards grab frames there).
    """

    tight_animations: ClassVar[tuple[type[Animation], ...]] = (  # type: ignore[assignment]
        *ConvolutionScene.tight_animations, _Move,
    )

    def __init__(
        self,
        plan: NetworkPlan,
        *,
        theme: Theme = DARK,
        tex: str = "latex",
        on_step: Callable[[int, int], None] | None = None,
        on_hold: Callable[[StepRecord], None] | None = None,
        **kwargs: Any,
    ) -> None:
        first = plan.phases[0]
        super().__init__(
            first.layer.spec,
            theme=theme,
            step_time=plan.pacing.step_time,
            transition=plan.pacing.transition,
            plan=first.plan,
            on_step=on_step,
            tex=tex,
            **kwargs,
        )
        self.network_plan = plan
        self.on_hold = on_hold
        self.records: list[StepRecord] = []
        self.phase_records: list[PhaseRecord] = []
        self.strip_boxes: dict[str, Box] = {}
        #: Per phase number, the arrays that moved in from the phase before (by name).
        self.moved: dict[int, list[str]] = {}
        self._outline_boxes: dict[int, Box] = {}
        self._shown: _Shown | None = None
        self._notes: list[VMobject] = []
        self._done = 0
        self._total = sum(len(p.plan.steps) + (1 if p.sweep else 0) for p in plan.phases)

    # ----------------------------------------------------------------- the strip
    def _build_strip(self) -> VGroup:
        plan = self.network_plan
        shapes = [
            ArrayShape(a.name, tuple(SliceShape(r, c) for r, c in a.slices)) for a in plan.strip
        ]
        layout = layout_row(shapes, [""] * (len(shapes) - 1), STRIP_FRAME)
        notes = [_sweep_note(len(p.sweep), p.plan.array(p.target).label) if p.sweep else ""
                 for p in plan.phases]
        mobs = typeset([a.label for a in plan.strip] + notes, color=self.theme.text,
                       backend=self.tex)
        thin = dataclasses.replace(self.theme, cell=dataclasses.replace(
            self.theme.cell, stroke_width=1.0))
        group = VGroup()
        up = np.array([0.0, STRIP_SHIFT, 0.0])
        for array, title in zip(plan.strip, mobs, strict=False):
            placement = layout.array(array.name)
            for (rows, cols), box in zip(array.slices, placement.slices, strict=True):
                grid = CellGrid(rows, cols, cell_size=layout.cell_size, theme=thin)
                centre = grid.squares.get_center()
                grid.shift(np.array([box.center_x - centre[0], box.center_y - centre[1], 0.0])
                           + up)
                group.add(grid)
            room = Box(placement.title.center_x, placement.title.center_y + STRIP_SHIFT,
                       placement.title.width + STRIP_FRAME.operator_width * 0.9,
                       placement.title.height * 0.8)
            if title.width > 0 and title.height > 0:
                title.scale(min(room.width / title.width, room.height / title.height))
                title.move_to(np.array([room.center_x, room.center_y, 0.0]))
                group.add(title)
            self.strip_boxes[array.name] = Box(placement.box.center_x,
                                               placement.box.center_y + STRIP_SHIFT,
                                               placement.box.width, placement.box.height)
        self._notes = list(mobs[len(plan.strip):])
        panel = CLIP_FRAME.panel_box
        for note in self._notes:
            self._fit(note, panel.width, min(0.4, panel.height * 0.45))
            note.move_to(np.array([panel.center_x, panel.center_y, 0.0]))
        for phase in plan.phases:
            names = phase_arrays(plan, phase)
            boxes = [self.strip_boxes[n] for n in names]
            left = min(b.left for b in boxes) - 0.08
            right = max(b.right for b in boxes) + 0.08
            bottom = min(b.bottom for b in boxes) - 0.06
            top = max(b.top for b in boxes) + STRIP_FRAME.title_height
            top = min(top, CLIP_FRAME.height / 2 - 0.02)
            self._outline_boxes[phase.number] = Box((left + right) / 2, (top + bottom) / 2,
                                                    right - left, top - bottom)
        self.outline = Rectangle(width=1.0, height=1.0)
        self.outline.set_fill(self.theme.background, opacity=0.0)
        self.outline.set_stroke(self.theme.target.stroke_color, width=2.5, opacity=1.0)
        self._place(self.outline, self._outline_boxes[plan.phases[0].number])
        return group

    @staticmethod
    def _place(rect: VMobject, box: Box) -> None:
        rect.stretch_to_fit_width(box.width)
        rect.stretch_to_fit_height(box.height)
        rect.move_to(np.array([box.center_x, box.center_y, 0.0]))

    # ----------------------------------------------------------------- one phase
    def smallest_title(self, layout: Layout) -> float:
        """The readable title height divided by the scale a phase's layout gets.

        A phase is laid out as a clip, then shrunk into the room under the strip, so its
        titles must be readable after that shrinking.
        """
        boxes = [b for p in layout.arrays for b in (p.box, p.title)]
        boxes += [box for _, box in layout.operators]
        width = max(b.right for b in boxes) - min(b.left for b in boxes)
        height = max(b.top for b in boxes) - min(b.bottom for b in boxes)
        return super().smallest_title(layout) / _into_main_box(width, height)

    def _enter(self, phase: PhasePlan) -> _Shown:
        """Build the phase with the base class (its own layout), fitted under the strip."""
        self._built = False
        self._given_plan = phase.plan
        self.spec = phase.layer.spec
        self.plan = None
        self._lit = []
        self._equations = []
        self._current_equation = None
        self.build()
        plan = phase.plan
        titles: dict[str, VMobject] = dict(self.array_title_of)
        content = VGroup(*(g for gs in self.grids.values() for g in gs), self.array_titles,
                         self.operator_mobs)
        width, height = extent(content)
        scale_about(content, _into_main_box(width, height))
        move_centre(content, np.array([MAIN_BOX.center_x, MAIN_BOX.center_y, 0.0]))
        self._fit(self.caption, CAPTION_BOX.width, CAPTION_BOX.height * 0.7)
        self.caption.move_to(np.array([CAPTION_BOX.center_x, CAPTION_BOX.center_y, 0.0]))
        labels = {a.role: a.label for a in plan.arrays}
        return _Shown(plan, dict(self.grids), titles, self.operator_mobs, self.caption, labels)

    def _mobjects(self, shown: _Shown) -> list[Mobject]:
        grids = [g for gs in shown.grids.values() for g in gs]
        return [*grids, *shown.titles.values(), shown.operators, shown.caption]

    # ------------------------------------------------------------------ the clip
    def construct(self) -> None:
        """Draw the strip and the first phase, then play every phase."""
        camera = self._cairo.camera
        camera.background_color = ManimColor(self.theme.background)
        strip = self._build_strip()
        # The strip never changes: it is drawn once, into the camera's background.
        camera.reset()
        camera.capture_mobjects([strip])
        camera.background = np.array(camera.pixel_array)
        self.strip = strip
        self._shown = self._enter(self.network_plan.phases[0])
        self.add(self.outline, *self._mobjects(self._shown))
        self.one_segment(self._play_network)

    def _now(self) -> float:
        return float(self.renderer.time)

    def _hold_until(self, t: float) -> None:
        """Hold the picture until clip time ``t`` (whole frames; drift stays under one)."""
        gap = t - self._now()
        if self.renderer.skip_animations:
            if gap > 1e-9:
                self.wait(gap)
            return
        fps = float(self.camera.frame_rate)
        frames = round(gap * fps)
        if frames > 0:
            self.wait((frames + 0.01) / fps)

    def _play_network(self) -> None:
        plan = self.network_plan
        schedule = plan.schedule()
        for n, (phase, times) in enumerate(zip(plan.phases, schedule, strict=True)):
            start = self._now()
            if n == 0:
                self._hold_until(times.start)
                start = 0.0
            else:
                self._change_phase(phase)
            self._hold_until(times.shown + plan.pacing.intro)
            for k, (_, _, end) in enumerate(times.steps):
                self._detail_step(phase, k, end)
            if times.sweep is not None:
                self._sweep(phase, times.sweep, times.end)
            self._hold_until(times.end)
            self.phase_records.append(
                PhaseRecord(phase, start, self._now(), self._outline_boxes[phase.number])
            )
        self._hold_until(plan.duration())

    def _progress(self) -> None:
        self._done += 1
        if self.on_step is not None:
            self.on_step(self._done, self._total)

    def _detail_step(self, phase: PhasePlan, k: int, end: float) -> None:
        """One step as the single-layer clip plays it (restyle, equation, ghost, hold)."""
        assert self.plan is not None
        step = self.plan.steps[k]
        start = self._now()
        self._animate_step(k)
        hold = self._now()
        boxes = self._boxes_of(phase, step.target.role, [step.target.index], step.highlights)
        record = StepRecord(
            phase, step.target.index,
            {phase.names[r]: tuple(i) for r, i in step.highlights.items()},
            StepTiming(start, hold, max(end, hold)), boxes,
        )
        if self.on_hold is not None:
            self.on_hold(record)
        self._hold_until(end)
        self.records.append(dataclasses.replace(
            record, timing=StepTiming(start, hold, self._now())))
        self._progress()

    def _boxes_of(self, phase: PhasePlan, role: str, targets: Sequence[tuple[int, ...]],
                  highlights: Any) -> dict[str, dict[str, Box]]:
        out: dict[str, dict[str, Box]] = {}
        for r, indices in [(role, targets), *highlights.items()]:
            for index in indices:
                grid, key = self._grid_cell(r, index)
                out.setdefault(phase.names[r], {})[_key(index)] = grid.cell_box(key)
        return out

    # ------------------------------------------------------------ raster frames
    def _picture(self, mobjects: Sequence[Mobject]) -> np.ndarray:
        """The frame with only ``mobjects`` drawn (in scene order), as an RGBA array."""
        camera = self._cairo.camera
        camera.reset()
        camera.capture_mobjects(list(mobjects))
        return np.array(camera.pixel_array, dtype=np.int16)

    def _pixel_rect(self, box: Box, margin: float = 1.5) -> tuple[int, int, int, int]:
        camera = self._cairo.camera
        sx = camera.pixel_width / camera.frame_width
        sy = camera.pixel_height / camera.frame_height
        x0 = (box.left + camera.frame_width / 2) * sx - margin
        x1 = (box.right + camera.frame_width / 2) * sx + margin
        y0 = (camera.frame_height / 2 - box.top) * sy - margin
        y1 = (camera.frame_height / 2 - box.bottom) * sy + margin
        w, h = int(camera.pixel_width), int(camera.pixel_height)
        return (max(0, int(np.floor(x0))), max(0, int(np.floor(y0))),
                min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1))))

    def _sprite(self, item: tuple[Mobject, np.ndarray, float, np.ndarray]) -> _Sprite:
        """``item``'s mobject drawn alone on a transparent frame, cut to its box."""
        mob, centre, scale, shift = item
        camera = self._cairo.camera
        box = Box(float(mob.get_center()[0]), float(mob.get_center()[1]), float(mob.width),
                  float(mob.height))
        x0, y0, x1, y1 = self._pixel_rect(box, margin=4.0)
        camera.set_pixel_array(np.zeros_like(camera.pixel_array))
        camera.capture_mobjects([mob])
        pixels = np.array(camera.pixel_array[y0:y1, x0:x1])
        sx = camera.pixel_width / camera.frame_width
        sy = camera.pixel_height / camera.frame_height
        cx = (centre[0] + camera.frame_width / 2) * sx
        cy = (camera.frame_height / 2 - centre[1]) * sy
        return _Sprite(pixels, x0, y0, (cx, cy), scale, (shift[0] * sx, -shift[1] * sy))

    def _write_frames(self, run_time: float, frame: Callable[[float], np.ndarray]) -> None:
        """Write ``run_time`` seconds of frames, each ``frame(alpha)`` (alpha in [0, 1))."""
        renderer = self._cairo
        if renderer.skip_animations:
            renderer.time += run_time
            return
        dt = 1 / float(renderer.camera.frame_rate)
        for t in np.arange(0, run_time, dt):
            renderer.add_frame(frame(float(t) / run_time))
        # the still image and the hold layer no longer describe the screen
        self._hold_layer = None
        self._still = None
        renderer.static_image = None

    def _adopt(self, image: np.ndarray) -> None:
        """Make ``image`` (the screen as the scene now is) the still of what follows.

        The next hold copies it and the next step redraws only what changed from it,
        as after any play of :class:`~convviz.rendering.segment.OneSegmentScene`.
        """
        from convviz.rendering.segment import _boxes, _frame_key, _state, _Still

        renderer = self._cairo
        camera = renderer.camera
        image = np.asarray(image, dtype=np.uint8)
        camera.set_pixel_array(image)
        renderer.static_image = image.copy()
        mobjects = self._drawn()
        states = [_state(m) for m in mobjects]
        if not all(states):
            self._still = None
            self._hold_layer = None
            return
        boxes = _boxes(mobjects, camera)
        known = [st for st in states if st is not None]
        self._still = _Still(
            image.copy(), _frame_key(camera),
            {id(m): (m, st, box) for m, st, box in zip(mobjects, known, boxes, strict=True)},
            [id(m) for m in mobjects],
        )
        self._hold_layer = []

    # ------------------------------------------------------------------ the sweep
    def _sweep(self, phase: PhasePlan, window: tuple[float, float], end: float) -> None:
        """Every cell of the result lit one after the other, then held.

        Drawn as a blend of two still frames (before and after), cell by cell in its own
        time window: the picture is the one manim would draw at the start and the end,
        and nothing is drawn in between.
        """
        assert self.plan is not None
        pacing = self.network_plan.pacing
        start, stop = self._now(), window[1]
        span = max(stop - start, 1e-6)
        times = self.network_plan.sweep_times(phase, self.network_plan.schedule()[
            phase.number - 1])
        offset = start - window[0]
        drawing = not self.renderer.skip_animations
        # the screen as it is (the last hold's frame)
        before = np.array(self._cairo.camera.pixel_array, dtype=np.int16) if drawing else None
        if self._current_equation is not None:
            self.remove(self._current_equation)
        note = self._notes[phase.number - 1]
        self.add(note)
        self._current_equation = note
        targets = {self._grid_cell(phase.target, index) for index in phase.cells}
        for grid, key in self._lit:
            if (grid, key) not in targets:
                grid.restyle(key, self._rest_style(grid, key))
        for grids in self.grids.values():
            for grid in grids:
                grid.hide_footprint()
        windows: list[tuple[tuple[int, int, int, int], float, float]] = []
        lit: list[tuple[CellGrid, tuple[int, int]]] = []
        seen: set[int] = set()
        for index, (t0, t1) in zip(phase.cells, times, strict=True):
            grid, key = self._grid_cell(phase.target, index)
            square = grid.square(key)
            if id(square) in seen:
                continue
            seen.add(id(square))
            old = grid.style_of(key)
            grid.restyle(key, self.theme.target)
            lit.append((grid, key))
            if drawing and grid.style_of(key) != old:
                a = min(max((t0 + offset - start) / span, 0.0), 1.0)
                b = min(max((t1 + offset - start) / span, a + 1e-6), 1.0)
                windows.append((self._pixel_rect(grid.cell_box(key)), a, b))
        self._lit = lit
        if drawing:
            assert before is not None
            after = self._picture(self.mobjects)
            change = after - before
            start_u8, end_u8 = before.astype(np.uint8), after.astype(np.uint8)
            fade = min(pacing.sweep_fade / span, 1.0)
            left, top, right, bottom = _differing_box(start_u8, end_u8)

            def frame(alpha: float) -> np.ndarray:
                g = smooth(min(alpha / fade, 1.0)) if fade > 0 else 1.0
                if g >= 1:
                    out = end_u8.copy()
                elif g <= 0:
                    out = start_u8.copy()
                else:  # (outside the box where the pictures differ, both are the end)
                    out = end_u8.copy()
                    box = (slice(top, bottom), slice(left, right))
                    out[box] = (before[box] + change[box] * g).astype(np.uint8)
                for (x0, y0, x1, y1), a, b in windows:
                    if alpha >= b and g >= 1:
                        continue  # already as at the end
                    w = 0.0 if alpha <= a else smooth((alpha - a) / (b - a))
                    out[y0:y1, x0:x1] = (before[y0:y1, x0:x1]
                                         + change[y0:y1, x0:x1] * w).astype(np.uint8)
                return out

            self._write_frames(span, frame)
            self._adopt(after)
        else:
            self._write_frames(span, lambda alpha: np.zeros(0))
        hold = self._now()
        for index, (t0, _) in zip(phase.cells[len(self.plan.steps):],
                                  times[len(self.plan.steps):], strict=True):
            boxes = self._boxes_of(phase, phase.target, [index], {})
            self.records.append(StepRecord(
                phase, index, {}, StepTiming(t0 + offset, hold, end), boxes, sweep=True))
        if self.on_hold is not None and self.records:
            self.on_hold(self.records[-1])
        self._progress()

    # -------------------------------------------------------------- phase change
    def _change_phase(self, phase: PhasePlan) -> None:
        """Results move into their next place, the outline moves along the strip.

        Arrays the two phases share move (drawn at every frame); everything else
        cross-fades from the old still frame to the new one.
        """
        old = self._shown
        assert old is not None
        from convviz.rendering.scenes import _Restyle

        lit = list(self._lit)
        previous = self.phase_records[-1].phase if self.phase_records else phase
        outline = (self.outline, self._outline_boxes[previous.number],
                   self._outline_boxes[phase.number], 1.0, 1.0)
        old_equation = self._current_equation
        new = self._enter(phase)
        self._shown = new
        by_label = {label: role for role, label in old.labels.items()}
        items: list[tuple[Mobject, np.ndarray, float, np.ndarray]] = []
        movers: list[Mobject] = [self.outline]
        arriving: list[Mobject] = []
        paired_old: set[str] = set()
        for role, grids in new.grids.items():
            source = by_label.get(new.labels[role])
            if source is None or source in paired_old:
                continue
            paired_old.add(source)
            self.moved.setdefault(phase.number, []).append(phase.names[role])
            leaving = old.grids[source]
            if len(leaving) == len(grids):
                pairs: list[tuple[Mobject, Mobject]] = list(zip(leaving, grids, strict=True))
            else:
                pairs = [(VGroup(*leaving), VGroup(*grids))]
            for a, b in pairs:
                items.append(_move_item(a, b))
                movers.extend(leaving if isinstance(a, VGroup) and not isinstance(a, CellGrid)
                              else [a])
                arriving.append(b)
        mover_ids = {id(m) for m in movers}
        # (drawn from the phase's own mobjects: playing a step split the grids it restyled
        # into their parts among the scene's mobjects, as manim's ``add`` does)
        old_mobjects = [*self._mobjects(old), *([old_equation] if old_equation else [])]
        drawing = not self.renderer.skip_animations
        before_frame = (self._picture([m for m in old_mobjects if id(m) not in mover_ids])
                        if drawing else None)
        # the moving results go back to rest on their way
        moving_squares = {id(sq) for m in movers for sq in m.get_family()}
        changes = []
        for grid, key in lit:
            if id(grid.square(key)) not in moving_squares:
                continue
            before = grid.style_of(key)
            grid.restyle(key, self._rest_style(grid, key))
            changes.append((grid.square(key), before, grid.style_of(key)))
        for grids in old.grids.values():
            for grid in grids:
                grid.hide_footprint()
        restyle = _Restyle(changes, [outline], [], run_time=1.0)
        move = _Move(items, run_time=1.0)
        self.clear()
        arriving_ids = {id(m) for m in arriving}
        staying = [m for m in self._mobjects(new) if id(m) not in arriving_ids]
        self.add(self.outline, *staying)
        for animation in (restyle, move):
            animation.begin()
        run_time = self.network_plan.pacing.move
        camera = self._cairo.camera
        after_frame = None
        if drawing:
            assert before_frame is not None
            after_frame = self._picture(staying)
            # each moving array as a picture of itself, lit (as it leaves) and at rest (as
            # it arrives), blended and scaled on its way: no drawing at every frame
            sprites = [self._sprite(item) for item in items]
            restyle.interpolate(1.0)
            for sprite, item in zip(sprites, items, strict=True):
                sprite.finish(self._sprite(item).start)
            restyle.interpolate(0.0)
            from PIL import Image

            # Only the outline is drawn at every frame (the rest are pictures), so only it
            # needs to follow the animation; the squares' styles jump to their end below.
            glide = _Restyle([], [outline], [], run_time=1.0)
            # The two pictures differ only within some box (the strip stays): blending
            # just that box gives the same pixels as blending them whole.
            base = after_frame.astype(np.uint8)
            start = before_frame.astype(np.uint8)
            x0, y0, x1, y1 = _differing_box(start, base)
            start_image = Image.fromarray(start[y0:y1, x0:x1], "RGBA")
            end_image = Image.fromarray(base[y0:y1, x0:x1], "RGBA")

            def frame(alpha: float) -> np.ndarray:
                a = smooth(alpha)
                glide.interpolate(alpha)
                pixels = camera.pixel_array
                pixels[...] = base
                if x1 > x0:
                    pixels[y0:y1, x0:x1] = np.asarray(Image.blend(start_image, end_image, a))
                for sprite in sprites:
                    sprite.paint(pixels, a)
                camera.capture_mobjects([self.outline])
                return np.array(pixels)

            self._write_frames(run_time, frame)
        else:
            self._write_frames(run_time, lambda alpha: np.zeros(0))
        restyle.interpolate(1.0)
        move.interpolate(1.0)
        self.add(*arriving)
        self._current_equation = None
        if drawing:
            assert after_frame is not None
            camera.set_pixel_array(after_frame.astype(np.uint8))
            camera.capture_mobjects([self.outline, *arriving])
            self._adopt(np.array(camera.pixel_array))


def _differing_box(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` of every pixel where two frames differ (empty: 0s).

    The frames are uint8 RGBA (one 32-bit word a pixel).
    """
    differ = (np.ascontiguousarray(a).view(np.uint32) != np.ascontiguousarray(b).view(
        np.uint32))[:, :, 0]
    rows = np.flatnonzero(differ.any(axis=1))
    if len(rows) == 0:
        return (0, 0, 0, 0)
    cols = np.flatnonzero(differ.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _sweep_note(count: int, label: str) -> str:
    """The equation panel during a sweep: ``... and the other 30 cells of z``."""
    what = "cell" if count == 1 else f"{count} cells"
    return rf"\text{{\ldots and the other {what} of }} {label}"


def _squares_box(mob: Mobject) -> tuple[np.ndarray, float]:
    """Centre and width of the squares of a grid (or of a group of grids)."""
    grids = [mob] if isinstance(mob, CellGrid) else [m for m in mob.submobjects
                                                      if isinstance(m, CellGrid)]
    squares = VGroup(*(g.squares for g in grids))
    return np.asarray(squares.get_center(), dtype=float), float(squares.width)


def _move_item(a: Mobject, b: Mobject) -> tuple[Mobject, np.ndarray, float, np.ndarray]:
    """``a`` moved and scaled so that its squares land on ``b``'s."""
    c0, w0 = _squares_box(a)
    c1, w1 = _squares_box(b)
    return (a, c0, w1 / w0 if w0 > 0 else 1.0, c1 - c0)


# ------------------------------------------------------------------------- helpers
def prepare_network(network: Network, **options: Any) -> NetworkPlan:
    """Derive, evaluate and plan a network clip (see ``network_plan.prepare_network_parts``).

    The plan is kept in the plan cache (:func:`~convviz.rendering.plan_cache.cached_network_plan`):
    rendering the same clip again derives nothing.
    """
    from convviz.rendering.plan_cache import cached_network_plan

    return cached_network_plan(network, **options)


def _pixels(box: Box, width: int, height: int) -> list[float]:
    left, top, right, bottom = box_to_pixels(box.corners(), pixel_width=width,
                                             pixel_height=height)
    return [round(left, 2), round(top, 2), round(right, 2), round(bottom, 2)]


def network_timeline(scene: NetworkScene, *, video: Path, width: int, height: int,
                     fps: int) -> dict[str, Any]:
    """The timeline JSON of a rendered network clip.

    Top level: ``video``, ``width``, ``height``, ``fps``, ``duration``, ``network`` (its
    one-line description), ``strip`` (pixel box of every array in the strip, by name),
    ``phases`` and ``steps``. Each phase: ``layer`` (1-based ``[[layer]]`` index),
    ``type``, ``phase`` (``forward``/``backward``), ``op``, ``title``, ``target`` (the
    array's name), ``start``, ``end`` and ``outline`` (the strip box outlined). Each
    step: ``layer``, ``phase``, ``op``, ``target`` (``{"array": name, "index": [...]}``),
    ``highlights`` (``{name: [index, ...]}``), ``start``, ``end``, ``hold``, ``boxes``
    (``{name: {"i,j": [x0, y0, x1, y1]}}``: pixels, origin top left, of the target and
    every highlighted cell during the hold) and ``sweep`` (true for the cells the quick
    sweep fills: no highlights, lit from ``hold[0]`` to the end of the sweep). Names are
    the arrays' LaTeX labels as plain text (``z[1]``, ``dL/dW[2]``, ``L``).
    """
    plan = scene.network_plan

    def boxes(record: StepRecord) -> dict[str, dict[str, list[float]]]:
        return {name: {key: _pixels(b, width, height) for key, b in cells.items()}
                for name, cells in record.boxes.items()}

    steps = []
    for record in scene.records:
        t = record.timing
        steps.append({
            "layer": record.phase.layer.index,
            "phase": record.phase.phase,
            "op": record.phase.op,
            "target": {"array": record.phase.target_name, "index": list(record.target)},
            "highlights": {name: [list(i) for i in idx]
                           for name, idx in record.highlights.items()},
            "start": round(t.start, 4),
            "end": round(t.end, 4),
            "hold": [round(t.hold_start, 4), round(t.end, 4)],
            "boxes": boxes(record),
            "sweep": record.sweep,
        })
    phases = [
        {
            "layer": r.phase.layer.index,
            "type": r.phase.layer.type,
            "phase": r.phase.phase,
            "op": r.phase.op,
            "title": r.phase.title,
            "target": r.phase.target_name,
            "start": round(r.start, 4),
            "end": round(r.end, 4),
            "outline": _pixels(r.outline, width, height),
        }
        for r in scene.phase_records
    ]
    doc: dict[str, Any] = {
        "video": str(video),
        "width": width,
        "height": height,
        "fps": fps,
        "duration": round(float(scene.renderer.time), 4),
        "network": plan.network.describe(),
        "strip": {name: _pixels(b, width, height) for name, b in scene.strip_boxes.items()},
        "phases": phases,
        "steps": steps,
    }
    if plan.result is not None and plan.result.loss is not None:
        doc["loss"] = plan.result.loss
    return doc


def _cell(name: str, index: Sequence[int]) -> str:
    return f"{name}[{_key(index)}]" if index else name


def network_chapters(doc: dict[str, Any]) -> str:
    """WebVTT chapters: one per layer phase, with one per detailed cell nested inside.

    Chapter cues nest as WebVTT allows (each cell's cue lies within its phase's); the
    sweep of a phase is one more cue inside it.
    """
    blocks = ["WEBVTT"]
    cues: list[tuple[float, float, str]] = []
    for phase in doc["phases"]:
        cues.append((phase["start"], phase["end"], f"Layer {phase['layer']} "
                     f"({phase['type']}) {phase['phase']} {phase['op']}: {phase['target']}"))
        inside = [s for s in doc["steps"]
                  if phase["start"] <= s["start"] < phase["end"] and s["layer"] == phase["layer"]
                  and s["op"] == phase["op"] and s["phase"] == phase["phase"]]
        for step in inside:
            if not step["sweep"]:
                cues.append((step["start"], step["end"],
                             _cell(step["target"]["array"], step["target"]["index"])))
        swept = [s for s in inside if s["sweep"]]
        if swept:
            cues.append((swept[0]["start"], phase["end"],
                         f"{phase['target']}: the other {len(swept)} cells"))
    for number, (start, end, title) in enumerate(cues, start=1):
        if end <= start:
            continue
        blocks.append(f"{number}\n{format_timestamp(start)} --> {format_timestamp(end)}\n"
                      f"{title}")
    return "\n\n".join(blocks) + "\n"


def write_network_slides(video: Path, doc: dict[str, Any], folder: Path, *,
                         background: str, name: str = "NetworkClip") -> Path:
    """A manim-slides folder with one slide per layer phase (notes: the phase's title)."""
    from convviz.rendering.slides import write_slides

    steps = [{"start": p["start"], "end": p["end"],
              "target": {"role": p["title"], "index": []}} for p in doc["phases"]]
    shaped = {**doc, "steps": steps}
    written = write_slides(video, shaped, folder, name, background=background)
    data = json.loads(written.read_text(encoding="utf-8"))
    for slide, phase in zip(data["slides"], doc["phases"], strict=False):
        slide["notes"] = phase["title"]
    atomic_write_text(written, json.dumps(data, indent=2) + "\n")
    return written


# -------------------------------------------------------------------------- render
@dataclass(frozen=True)
class NetworkRenderResult:
    """What :func:`render_network` wrote."""

    video: Path
    timeline: dict[str, Any]
    plan: NetworkPlan


#: Formats a network clip can be written as.
NETWORK_FORMATS = ("mp4", "gif", "png")


def render_network(
    plan: NetworkPlan,
    *,
    output: Path | str,
    quality: str = "l",
    fmt: str | None = None,
    fps: int | None = None,
    theme: Theme = DARK,
    tex: str = "auto",
    tex_cache: Path | str | None = None,
    timeline: Path | str | None = None,
    chapters: Path | str | None = None,
    slides: Path | str | None = None,
    on_step: Callable[[int, int], None] | None = None,
    encoder_threads: int | None = None,
    inline_encoding: bool = False,
) -> NetworkRenderResult:
    """Render a network clip; also write its timeline, chapters and slides when asked.

    ``output``'s suffix gives the format unless ``fmt`` does (mp4, gif, png: the last
    frame). Files appear only once complete.
    """
    from convviz.rendering.api import resolve_tex

    target = Path(output)
    chosen = (fmt or target.suffix.lstrip(".") or "mp4").lower()
    if chosen not in NETWORK_FORMATS:
        raise RenderError(f"--format: a network clip is mp4, gif or png, not {chosen}")
    if quality not in QUALITIES:
        raise RenderError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
    if slides is not None and chosen != "mp4":
        raise RenderError(f"--slides needs the mp4 format, not {chosen}")
    backend = resolve_tex(tex)
    holder: list[NetworkScene] = []

    def factory() -> NetworkScene:
        scene = NetworkScene(plan, theme=theme, tex=backend, on_step=on_step)
        holder.append(scene)
        return scene

    overrides: dict[str, Any] = {"background_color": theme.background}
    if fps is not None:
        overrides["frame_rate"] = fps
    if encoder_threads is not None and chosen == "mp4":
        overrides["video_encoder_options"] = {"threads": str(encoder_threads)}
    tex_dir = Path(tex_cache) if tex_cache is not None else default_tex_cache()
    written = render_scene(factory, target, quality=quality, fmt=chosen, overrides=overrides,
                           tex_cache=tex_dir, inline_encoding=inline_encoding)
    q = QUALITIES[quality]
    doc = network_timeline(holder[0], video=written, width=q.pixel_width,
                           height=q.pixel_height, fps=fps or q.frame_rate)
    if timeline is not None:
        atomic_write_text(Path(timeline), json.dumps(doc, indent=1) + "\n")
    if chapters is not None:
        atomic_write_text(Path(chapters), network_chapters(doc))
    if slides is not None:
        write_network_slides(written, doc, Path(slides), background=theme.background)
    return NetworkRenderResult(written, doc, plan)


def capture_network_frames(
    plan: NetworkPlan,
    *,
    theme: Theme = DARK,
    tex: str = "latex",
    width: int = 960,
    height: int = 540,
) -> list[Frame]:
    """Key frames of a network clip, one per phase (its first detailed step, else its sweep).

    The scene runs with ``skip_animations`` (nothing is encoded); a frame is drawn when
    the chosen moment is on screen, so the sheet shows what the video shows there.
    """
    from convviz.rendering.storyboard import Frame, draw_frame, dry_run

    frames: list[Frame] = []
    holder: list[NetworkScene] = []
    taken: set[int] = set()

    def grab(record: StepRecord) -> None:
        if record.phase.number in taken:
            return
        taken.add(record.phase.number)
        pixels = draw_frame(holder[0])
        what = (f"{record.phase.title}" if record.sweep
                else f"{record.phase.title} ({_cell(record.phase.target_name, record.target)})")
        frames.append(Frame(len(frames) + 1, what, pixels))

    with dry_run(width, height, theme):
        scene = NetworkScene(plan, theme=theme, tex=tex, on_hold=grab, skip_animations=True)
        holder.append(scene)
        scene.render()
    return frames


