"""Scenes without rendering: after each step, exactly the right squares wear the colours.

The expectation comes from :mod:`.expected` (index formulas written out in the tests),
never from convviz's highlight maps or scene plan. Every square of every grid, padding
ring and structural zeros included, is checked at every step: lit ones must carry exactly
the target/operand style, all others exactly their resting style (so cells lit at the
previous step must have gone back to rest).

Labels are typeset with a stand-in (no LaTeX) that remembers each label's source text.
"""

from __future__ import annotations

from typing import Any

import pytest

from convviz.rendering.theme import DARK, CellStyle
from convviz.spec import ConvSpec

from .conftest import OPS, SPECS, run_until_step, scene_config
from .expected import (
    all_indices,
    display_shape,
    expected_steps,
    out_size,
    rotated_position,
    slice_and_key,
    spread_grid_size,
    spread_position,
)

pytestmark = pytest.mark.usefixtures("no_latex_typeset")

#: Arrays each clip draws.
ROLES = {
    "forward": ("input", "kernel", "bias", "output"),
    "dw": ("input", "grad_output", "grad_kernel"),
    "da": ("grad_output", "kernel", "grad_input"),
    "db": ("grad_output", "grad_bias"),
    "da-full": ("grad_output", "kernel", "grad_input"),
}

CASES = [
    pytest.param(op, spec, id=f"{op}-{name}")
    for name, spec in SPECS.items()
    for op in OPS
    # A layer without bias has no dL/db: see test_render_cli.py::test_db_without_bias_*.
    if not (op == "db" and not spec.bias)
]


def style(s: CellStyle) -> tuple[str, float, str, float]:
    return (s.fill_color.upper(), s.fill_opacity, s.stroke_color.upper(), s.stroke_width)


TARGET, OPERAND = style(DARK.target), style(DARK.operand)
CELL, PADDING = style(DARK.cell), style(DARK.padding)


def roles_of(spec: ConvSpec, op: str) -> tuple[str, ...]:
    roles = ROLES[op]
    return tuple(r for r in roles if r != "bias" or spec.bias)


def grid_keys(grid: Any) -> list[tuple[int, int]]:
    ph, pw = grid.padding
    return [
        (r, c)
        for r in range(1 - ph, grid.rows + ph + 1)
        for c in range(1 - pw, grid.cols + pw + 1)
    ]


def resting(spec: ConvSpec, op: str, role: str, grid: Any, key: tuple[int, int]) -> tuple:
    """Resting style: padding ring and the zeros of the spread dz grid look like padding."""
    real = 1 <= key[0] <= grid.rows and 1 <= key[1] <= grid.cols
    if not real:
        return PADDING
    if op == "da-full" and role == "grad_output":
        oh, ow = out_size(spec)
        spread = {spread_position(spec, i, j) for i in range(1, oh + 1) for j in range(1, ow + 1)}
        return CELL if key in spread else PADDING
    return CELL


def painted(scene: Any, spec: ConvSpec, op: str) -> dict[tuple[str, int, tuple[int, int]], str]:
    """Every square not at rest, as ``(role, slice, key) -> "target" | "operand"``.

    Fails on a square whose style is neither resting nor one of the two highlights.
    """
    out = {}
    for role, grids in scene.grids.items():
        for n, grid in enumerate(grids):
            for key in grid_keys(grid):
                got = tuple(
                    round(v, 6) if isinstance(v, float) else v for v in grid.style_of(key)
                )
                if got == TARGET:
                    out[(role, n, key)] = "target"
                elif got == OPERAND:
                    out[(role, n, key)] = "operand"
                else:
                    rest = resting(spec, op, role, grid, key)
                    assert got == rest, f"{role}[{n}] {key}: style {got}, resting is {rest}"
    return out


def wanted(spec: ConvSpec, op: str, step: Any) -> dict[tuple[str, int, tuple[int, int]], str]:
    out = {}
    for role, cells in step.operands.items():
        for index in cells:
            n, key = slice_and_key(spec, op, role, index)
            out[(role, n, key)] = "operand"
    role, index = step.target
    n, key = slice_and_key(spec, op, role, index)
    out[(role, n, key)] = "target"
    return out


def wanted_display(step: Any) -> dict[str, dict[tuple[int, ...], str]]:
    out: dict[str, dict[tuple[int, ...], str]] = {}
    for role, cells in step.operands.items():
        for index in cells:
            out.setdefault(role, {})[index] = "operand"
    role, index = step.target
    out.setdefault(role, {})[index] = "target"
    return out


@pytest.mark.parametrize(("op", "spec"), CASES)
def test_every_step_lights_exactly_the_cells_of_the_formula(build_scene, op, spec):
    steps = expected_steps(spec, op)
    scene = build_scene(op, spec)
    assert painted(scene, spec, op) == {}, "something is lit before the first step"
    assert len(scene.plan.steps) == len(steps)
    for k, step in enumerate(steps):
        scene.apply_step(k)
        assert painted(scene, spec, op) == wanted(spec, op, step), f"step {k}: {step.target}"
        assert scene.lit_cells() == wanted_display(step), f"step {k}: lit_cells()"


@pytest.mark.parametrize(("op", "spec"), CASES)
def test_grids_have_the_shapes_of_the_arrays(build_scene, op, spec):
    scene = build_scene(op, spec)
    assert tuple(scene.grids) == roles_of(spec, op)
    for role, grids in scene.grids.items():
        shape = display_shape(spec, role)
        slices = 1
        for n in shape[:-2]:
            slices *= n
        assert len(grids) == slices, role
        rows, cols = (1, 1) if not shape else (shape[0], 1) if len(shape) == 1 else shape[-2:]
        # The input's ring is as wide as the layer's padding along each axis.
        padding = spec.padding if role == "input" else (0, 0)
        if op == "da-full" and role == "grad_output":
            rows, cols = spread_grid_size(spec)
        for grid in grids:
            assert (grid.rows, grid.cols, grid.padding) == (rows, cols, padding), role


@pytest.mark.parametrize(("op", "spec"), CASES)
def test_cell_boxes_are_where_the_cells_are_drawn(build_scene, op, spec):
    """The timeline's boxes come from ``cell_boxes()``: they must match the drawn squares."""
    scene = build_scene(op, spec)
    boxes = scene.cell_boxes()
    for role in roles_of(spec, op):
        indices = all_indices(spec, role)
        assert sorted(boxes[role]) == sorted(",".join(map(str, i)) for i in indices)
        for index in indices:
            n, key = slice_and_key(spec, op, role, index)
            box = boxes[role][",".join(map(str, index))]
            centre = scene.grids[role][n].cell_center(key)
            assert (box.center_x, box.center_y) == pytest.approx((centre[0], centre[1]))


def test_a_step_returns_every_previous_highlight_to_rest(build_scene):
    """Jumping between far-apart steps, in any order, leaves no stale highlight."""
    spec = SPECS["5x5-stride2-pad1"]
    steps = expected_steps(spec, "dw")
    scene = build_scene("dw", spec)
    previous = None
    for k in (0, 8, 3, 3, 1, 7, 0):
        changes = scene.apply_step(k)
        assert painted(scene, spec, "dw") == wanted(spec, "dw", steps[k])
        if k == previous:
            assert changes == []  # the same step again changes nothing
        previous = k


def test_apply_step_reports_exactly_the_squares_that_changed(build_scene):
    spec = SPECS["seed-6x6-k3x3"]
    steps = expected_steps(spec, "forward")
    scene = build_scene("forward", spec)
    before = painted(scene, spec, "forward")
    for k in range(3):
        changes = scene.apply_step(k)
        after = painted(scene, spec, "forward")
        moved = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        assert len(changes) == len(moved)
        for _square, old, new in changes:
            assert old != new
        before = after
    assert after == wanted(spec, "forward", steps[2])


DA_FULL = [
    pytest.param(spec, id=name)
    for name, spec in SPECS.items()
]


def _tex_index(index: tuple[int, ...]) -> str:
    return "_{" + ",".join(str(i) for i in index) + "}"


@pytest.mark.parametrize("spec", DA_FULL)
def test_full_correlation_spreads_dz_and_rotates_the_kernel(build_scene, spec):
    """dz cells sit at their spread positions, kernel cells at their turned positions.

    Labels are checked where the layout kept them (they give way in small cells).
    """
    scene = build_scene("da-full", spec)
    plain = build_scene("da", spec)
    kh, kw = spec.kernel_size
    oh, ow = out_size(spec)
    rows, cols = spread_grid_size(spec)
    spread_keys = {spread_position(spec, i, j) for i in range(1, oh + 1) for j in range(1, ow + 1)}
    for grid in scene.grids["grad_output"]:
        assert (grid.rows, grid.cols) == (rows, cols)
        assert set(grid.label_of) in (set(), spread_keys)
        # every other cell of the spread grid is a structural zero, drawn like padding
        zeros = [k for k in grid_keys(grid) if k not in spread_keys]
        assert len(zeros) == rows * cols - oh * ow
        assert all(grid.style_of(k) == PADDING for k in zeros)
        assert all(grid.style_of(k) == CELL for k in spread_keys)
    labelled = 0
    for index in all_indices(spec, "grad_output"):
        n, key = slice_and_key(spec, "da", "grad_output", index)
        spread = spread_position(spec, *index[-2:])
        grid = scene.grids["grad_output"][n]
        if spread in grid.label_of:
            labelled += 1
            label = grid.label_of[spread]
            assert label.tex.endswith(_tex_index(index)), label.tex
            assert label.tex == plain.grids["grad_output"][n].label_of[key].tex
            assert label.get_center() == pytest.approx(grid.cell_center(spread))
    for index in all_indices(spec, "kernel"):
        n, key = slice_and_key(spec, "da", "kernel", index)
        turned = rotated_position(spec, *index[-2:])
        assert turned == (kh + 1 - key[0], kw + 1 - key[1])
        grid = scene.grids["kernel"][n]
        if turned in grid.label_of:
            labelled += 1
            label = grid.label_of[turned]
            assert label.tex.endswith(_tex_index(index)), label.tex
            assert label.tex == plain.grids["kernel"][n].label_of[key].tex
            assert label.get_center() == pytest.approx(grid.cell_center(turned))
    if spec == SPECS["seed-6x6-k3x3"]:
        assert labelled == oh * ow + kh * kw, "the seed layer must show every label"


def window_pairs(spec: ConvSpec, c: int, r: int, s: int) -> dict:
    """What the full correlation pairs for ``da[c, r, s]``, from the window alone.

    The window on the spread, padded dz grid starts at ``(r + pad_h, s + pad_w)`` and has
    the turned kernel's shape, its rows and columns ``dilation`` apart. Window offset
    ``(u, v)`` meets the turned kernel's square ``(u + 1, v + 1)``; a pair contributes
    when the dz square under it holds a real ``dz`` (not a structural or padding zero).
    Returned as painted squares ``(role, slice, (row, col)) -> style`` of the da-full
    scene: dz squares in the spread grid, kernel squares in the turned kernel.
    """
    (ph, pw), (dh, dw) = spec.padding, spec.dilation
    (kh, kw), (sh, sw) = spec.kernel_size, spec.stride
    oh, ow = out_size(spec)
    # Real dz squares of the spread grid: (k-1)*d zero rows on top, rows stride apart.
    real = {
        ((kh - 1) * dh + (i - 1) * sh + 1, (kw - 1) * dw + (j - 1) * sw + 1)
        for i in range(1, oh + 1)
        for j in range(1, ow + 1)
    }
    out = {}
    for f in range(1, spec.filters + 1):
        for u in range(kh):
            for v in range(kw):
                under = (r + ph + u * dh, s + pw + v * dw)
                if under in real:
                    out[("grad_output", f - 1, under)] = "operand"
                    kernel_slice = (f - 1) * spec.channels + (c - 1)
                    out[("kernel", kernel_slice, (u + 1, v + 1))] = "operand"
    out[("grad_input", c - 1, (r, s))] = "target"
    return out


@pytest.mark.parametrize("spec", DA_FULL)
def test_full_correlation_window_pairs_dz_with_the_turned_kernel(build_scene, spec):
    """At every step of the da-full clip, the lit squares are the window's pairs.

    The scene is built and stepped; the squares wearing the highlight styles (read from
    the grids, in the spread dz grid and the turned kernel) must be exactly those
    :func:`window_pairs` finds by sliding the turned kernel over the spread grid, and
    each lit dz square must lie under a lit kernel square of the same window offset.
    """
    (ph, pw), (dh, dw) = spec.padding, spec.dilation
    scene = build_scene("da-full", spec)
    h, w = spec.input_size
    targets = [
        (c, r, s)
        for c in range(1, spec.channels + 1)
        for r in range(1, h + 1)
        for s in range(1, w + 1)
    ]
    assert len(scene.plan.steps) == len(targets)
    for k, (c, r, s) in enumerate(targets):
        scene.apply_step(k)
        lit = painted(scene, spec, "da-full")
        assert lit == window_pairs(spec, c, r, s), f"step {k}: da[{c},{r},{s}]"
        kernel = {(n, key) for (role, n, key) in lit if role == "kernel"}
        for role, n, (row, col) in lit:
            if role == "grad_output":
                u, v = (row - r - ph) // dh, (col - s - pw) // dw
                assert (row - r - ph, col - s - pw) == (u * dh, v * dw)
                assert (n * spec.channels + c - 1, (u + 1, v + 1)) in kernel
        # The display cells too: a lit dz[i, j] is the one the spread position shows.
        shown = scene.lit_cells()
        oh, ow = out_size(spec)
        spread = {
            spread_position(spec, i, j): (i, j)
            for i in range(1, oh + 1)
            for j in range(1, ow + 1)
        }
        lit_dz = {
            (n, spread[key]) for (role, n, key) in lit if role == "grad_output"
        }
        assert {
            (slice_and_key(spec, "da", "grad_output", index)[0], index[-2:])
            for index in shown.get("grad_output", {})
        } == lit_dz


def test_scene_defaults_to_the_seed_layer_and_rejects_bad_timing(tmp_path):
    from convviz.rendering.scenes import ForwardConvolution

    with scene_config(tmp_path):
        assert ForwardConvolution().spec == ConvSpec()
        with pytest.raises(ValueError, match="step_time"):
            ForwardConvolution(step_time=0)
        with pytest.raises(ValueError, match="transition"):
            ForwardConvolution(transition=-1)


@pytest.mark.parametrize("op", OPS)
def test_every_title_and_label_stays_on_screen(tmp_path, op):
    """Run the real construct (no frames drawn) to step 2: all titles and labels are drawn."""
    spec = SPECS["seed-6x6-k3x3"]
    k = min(2, len(expected_steps(spec, op)) - 1)
    scene = run_until_step(op, spec, k, tmp_path)
    drawn = {id(m) for m in scene.get_mobject_family_members()}
    for role, grids in scene.grids.items():
        for n, grid in enumerate(grids):
            assert all(id(sq) in drawn for sq in grid.squares), f"{role}[{n}] squares"
            assert all(id(lb) in drawn for lb in grid.label_of.values()), f"{role}[{n}] labels"
            assert grid.title is not None and id(grid.title) in drawn, f"{role}[{n}] title"
    assert painted(scene, spec, op) == wanted(spec, op, expected_steps(spec, op)[k])
