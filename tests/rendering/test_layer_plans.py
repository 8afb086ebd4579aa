"""Every op of every layer type plans, lays out and typesets, without rendering.

For each type and op: the plan is built from the derivation, the layout fits the frame at
a readable size (long vectors elided), every snippet the clip typesets translates to
Typst (the no-TeX path), and every step's target and highlighted cells have a place on
screen. The identities the clips close with are the verified ones.
"""

from __future__ import annotations

from typing import Any

import pytest

from convviz.derivation import derive
from convviz.layers import layer_type, types
from convviz.rendering.labels import CLIP_FRAME, clip_layout, clip_text
from convviz.rendering.plan import ELIDE_ABOVE, plan_scene
from convviz.rendering.typst import latex_to_typst

SIZES = {
    "conv2d": [{}, {"input": "2x7x7", "kernel": "3", "stride": "2", "padding": "1",
                    "filters": "2"}],
    "conv-transpose2d": [{}, {"input": "2x4x4", "kernel": "3", "stride": "2", "padding": "1",
                              "output_padding": "1", "filters": "2"}],
    "maxpool2d": [{}, {"input": "3x9x9", "kernel": "3", "stride": "2", "padding": "1"}],
    "avgpool2d": [{}, {"input": "2x6x6", "kernel": "3", "stride": "1"}],
    "dense": [{}, {"input": "100", "outputs": "20"}],
    "relu": [{}, {"input": "40"}, {"input": "3x5x5"}],
    "sigmoid": [{}, {"input": "2x4x4"}],
    "tanh": [{}, {"input": "30"}],
    "flatten": [{}, {"input": "3x4x4"}],
    "softmax-cross-entropy": [{}, {"input": "10", "target": "7"}],
    "mse": [{}, {"input": "20"}],
}

CASES = [
    pytest.param(name, options, op, id=f"{name}-{op}-{'-'.join(options.values()) or 'default'}")
    for name, sizes in SIZES.items()
    for options in sizes
    for op in layer_type(name).op_names
]


def test_every_declared_type_is_covered() -> None:
    assert set(SIZES) == set(types())


@pytest.mark.parametrize(("name", "options", "op"), CASES)
def test_clip_plans_lays_out_and_typesets(name: str, options: dict[str, str], op: str) -> None:
    spec = layer_type(name).build(options)
    decl = layer_type(name).op(op)
    if decl.needs and not getattr(spec, decl.needs):
        pytest.skip("op needs a parameter the layer has not")
    plan = plan_scene(derive(spec), op, max_steps=3)
    assert plan.steps, "a clip has steps"
    assert len(plan.operators) == len(plan.arrays) - 1
    layout = clip_layout(plan)
    assert layout.cell_size >= 0.12, f"cells too small to see: {layout.cell_size:.3f}"
    frame = CLIP_FRAME.content_box
    for array in plan.arrays:
        placement = layout.array(array.role)
        for box in placement.slices:
            assert frame.contains(box, tol=1e-6), (array.role, box)
        for grid in array.grids:
            assert grid.rows <= 2 * ELIDE_ABOVE and grid.cols <= 2 * ELIDE_ABOVE
    for step in plan.steps:
        roles = {a.role for a in plan.arrays}
        assert step.target.role in roles
        plan.array(step.target.role).locate(step.target.index)
        for role, indices in step.highlights.items():
            assert role in roles, role
            for index in indices:
                plan.array(role).locate(index)
    text = clip_text(plan, layout)
    for snippet in text.strings:
        latex_to_typst(snippet)
    if plan.identity is not None:
        latex_to_typst(plan.identity)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_the_closing_identity_is_shown_for_every_op_that_has_one(name: str) -> None:
    spec = layer_type(name).build({})
    derivation = derive(spec)
    declared = {i.op for i in layer_type(name).identities}
    for op in layer_type(name).op_names:
        map_op = layer_type(name).op(op).highlights_op
        plan = plan_scene(derivation, op, max_steps=1)
        if map_op in declared and map_op != "forward":
            assert plan.identity, (name, op)
        if op == "forward" and layer_type(name).forward_latex is not None:
            assert plan.identity == layer_type(name).forward_latex(spec), name


@pytest.mark.parametrize("op", ["forward", "da"])
def test_flatten_cells_travel_from_their_source_to_their_place(build_scene, op: str) -> None:
    import numpy as np

    from convviz.layers.flatten import Flatten

    spec = Flatten((2, 2, 3))
    scene = build_scene(op, spec)
    assert scene.plan.move_cells is True
    for step in scene.plan.steps:
        ((role, (index,)),) = step.highlights.items()
        ghost, travel = scene._ghost(step)
        source_grid, source_key = scene._grid_cell(role, index)
        target_grid, target_key = scene._grid_cell(step.target.role, step.target.index)
        travel(ghost, 0.0)
        np.testing.assert_allclose(ghost.get_center(), source_grid.cell_center(source_key),
                                   atol=1e-6)
        travel(ghost, 1.0)
        np.testing.assert_allclose(ghost.get_center(), target_grid.cell_center(target_key),
                                   atol=1e-6)
        # flatten reads row-major (C, H, W): the vector position of a display index
        (c, i, j) = index if role == "input" else step.target.index
        (k,) = step.target.index if role == "input" else index
        assert k == c * 6 + (i - 1) * 3 + j - 6


#: Slice subscripts, written by hand from PyTorch's layouts: (type, options, op, role,
#: subscripts). conv2d's kernel is (out, in, kh, kw), conv-transpose2d's (in, out, kh, kw);
#: pooling and activations keep their input's channels; an axis of size 1 is not drawn, so
#: it is not named.
TITLES = [
    ("conv2d", {"input": "2x5x5", "kernel": "3", "filters": "2"}, "forward", "kernel",
     [r"f=1,\,c=1", r"f=1,\,c=2", r"f=2,\,c=1", r"f=2,\,c=2"]),
    ("conv2d", {"input": "5x5", "kernel": "3", "filters": "2"}, "dw", "grad_kernel",
     ["f=1", "f=2"]),
    ("conv2d", {"input": "2x5x5", "kernel": "3"}, "dw", "grad_kernel", ["c=1", "c=2"]),
    ("conv2d", {"input": "2x5x5", "kernel": "3"}, "forward", "input", ["c=1", "c=2"]),
    ("conv2d", {"input": "5x5", "kernel": "3", "filters": "3"}, "da", "grad_output",
     ["f=1", "f=2", "f=3"]),
    ("conv-transpose2d", {"input": "2x3x3", "kernel": "2", "filters": "3"}, "dw",
     "grad_kernel", [rf"c={c},\,f={f}" for c in (1, 2) for f in (1, 2, 3)]),
    ("conv-transpose2d", {"input": "3x3", "kernel": "2", "filters": "2"}, "forward-scatter",
     "kernel", ["f=1", "f=2"]),
    ("conv-transpose2d", {"input": "3x3", "kernel": "2", "filters": "2"}, "forward",
     "output", ["f=1", "f=2"]),
    ("maxpool2d", {"input": "2x4x4", "kernel": "2"}, "forward", "output", ["c=1", "c=2"]),
    ("avgpool2d", {"input": "2x4x4", "kernel": "2"}, "da", "grad_output", ["c=1", "c=2"]),
    ("relu", {"input": "2x3x3"}, "forward", "output", ["c=1", "c=2"]),
    ("flatten", {"input": "2x2x2"}, "forward", "input", ["c=1", "c=2"]),
]


@pytest.mark.parametrize(("name", "options", "op", "role", "subscripts"), TITLES,
                         ids=[f"{t[0]}-{t[2]}-{t[3]}-{t[1]['input']}" for t in TITLES])
def test_slices_are_titled_by_their_axes(
    name: str, options: dict[str, str], op: str, role: str, subscripts: list[str]
) -> None:
    plan = plan_scene(derive(layer_type(name).build(options)), op, max_steps=1)
    array = next(a for a in plan.arrays if a.role == role)
    assert [g.title for g in array.grids] == [f"{array.label}_{{{s}}}" for s in subscripts]


@pytest.mark.parametrize(("name", "options", "op"), [
    ("conv2d", {"input": "2x5x5", "kernel": "3", "filters": "2"}, "da-full"),
    ("conv2d", {"input": "2x5x5", "kernel": "3", "filters": "2"}, "forward"),
    ("conv-transpose2d", {"input": "2x3x3", "kernel": "2", "stride": "2", "filters": "2"},
     "forward"),
])
def test_slice_titles_overlap_neither_each_other_nor_the_operators(
    build_scene: Any, name: str, options: dict[str, str], op: str
) -> None:
    # rot180(W)_{f=1, c=2} is wider than a small kernel slice: it must be fitted
    scene = build_scene(op, layer_type(name).build(options))
    titles = [g.title for grids in scene.grids.values() for g in grids if g.title is not None]
    boxes = [(t.get_left()[0], t.get_right()[0], t.get_bottom()[1], t.get_top()[1])
             for t in [*titles, *scene.operator_mobs]]
    assert len(titles) >= 4
    for n, a in enumerate(boxes):
        for b in boxes[n + 1:]:
            apart = a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]
            assert apart, f"overlapping boxes {a} and {b}"


TITLED = [
    ("conv2d", {"input": "2x5x5", "kernel": "2", "filters": "2"}, "da-full"),
    ("conv2d", {"input": "2x5x5", "kernel": "3", "filters": "2"}, "da-full"),
    ("conv-transpose2d", {"input": "2x2x2", "kernel": "2", "filters": "2"}, "forward"),
    ("conv-transpose2d", {"input": "2x3x3", "kernel": "3", "filters": "2"}, "forward"),
    ("conv2d", {"input": "3x6x6", "kernel": "3", "filters": "2"}, "forward"),
]


@pytest.mark.parametrize(("name", "options", "op"), TITLED,
                         ids=[f"{t[0]}-{t[2]}-{t[1]['input']}-k{t[1]['kernel']}" for t in TITLED])
def test_every_title_drawn_is_readable_and_apart(
    build_scene: Any, name: str, options: dict[str, str], op: str
) -> None:
    # A slice title too wide for the room above a small slice (rot180(W)_{f=1,c=2} over a
    # 2x2 kernel) was fitted to a tenth of the readable size; such an array gets one
    # title over the whole of it instead, as labels too small to read are left out.
    from convviz.rendering.labels import MIN_SLICE_TITLE

    scene = build_scene(op, layer_type(name).build(options))
    slice_titles = [g.title for gs in scene.grids.values() for g in gs if g.title is not None]
    whole = list(scene.array_title_of.values())
    assert slice_titles or whole
    for title in [*slice_titles, *whole]:
        assert title.height >= MIN_SLICE_TITLE - 1e-9, f"title {title.height:.3f} tall"
    boxes = [(t.get_left()[0], t.get_right()[0], t.get_bottom()[1], t.get_top()[1])
             for t in [*slice_titles, *whole, *scene.operator_mobs]]
    for n, a in enumerate(boxes):
        for b in boxes[n + 1:]:
            apart = a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]
            assert apart, f"overlapping boxes {a} and {b}"
    # each array of several slices is titled one way: per slice, or once over them all
    for role, grids in scene.grids.items():
        if len(grids) > 1:
            titled = [g.title is not None for g in grids]
            assert all(titled) != (role in scene.array_title_of), role
            assert all(titled) or not any(titled), role


def test_a_small_turned_kernel_is_titled_once_as_rotated_and_plain_before_the_turn(
    build_scene: Any,
) -> None:
    spec = layer_type("conv2d").build({"input": "2x5x5", "kernel": "2", "filters": "2"})
    scene = build_scene("da-full", spec)
    assert "kernel" in scene.array_title_of
    assert all(g.title is None for g in scene.grids["kernel"])
    plan = scene.plan
    text = clip_text(plan, clip_layout(plan))
    strings = {key: text.strings[slot] for key, slot in text.slots.items()}
    assert strings[("array-title", "kernel")] == r"\operatorname{rot180}(W^{[2]})"
    assert strings[("title-unrotated",)] == "W^{[2]}"
    # slices of a kernel that turns are titled plainly until it has turned
    assert [strings[("title-unrotated", n)] for n in range(4)] == [
        r"W^{[2]}_{f=1,\,c=1}", r"W^{[2]}_{f=1,\,c=2}",
        r"W^{[2]}_{f=2,\,c=1}", r"W^{[2]}_{f=2,\,c=2}",
    ]
    assert [strings[("title", "kernel", n)] for n in range(4)] == [
        rf"\operatorname{{rot180}}(W^{{[2]}})_{{f={f},\,c={c}}}" for f in (1, 2) for c in (1, 2)
    ]


@pytest.mark.parametrize(("name", "options"), [
    ("conv2d", {"input": "8x6x6", "kernel": "3", "filters": "4"}),
    ("conv2d", {"input": "3x6x6", "kernel": "3", "filters": "4"}),
    ("conv2d", {"input": "3x6x6", "kernel": "3", "filters": "2"}),
    # (in, out, kh, kw): slices go by input channel, each with its 2 filters
    ("conv-transpose2d", {"input": "3x2x2", "kernel": "2", "filters": "2"}),
], ids=lambda o: f"{o['input']}-f{o['filters']}" if isinstance(o, dict) else o)
def test_each_column_of_kernel_slices_holds_whole_groups(
    name: str, options: dict[str, str]
) -> None:
    # a filter's channels wrapped from the bottom of one column to the top of the next
    plan = plan_scene(derive(layer_type(name).build(options)), "forward", max_steps=1)
    layout = clip_layout(plan)
    kernel = plan.array("kernel")
    columns: dict[float, list[tuple[int, ...]]] = {}
    for grid, box in zip(kernel.grids, layout.array("kernel").slices, strict=True):
        columns.setdefault(round(box.center_x, 6), []).append(grid.lead)
    inner = len({grid.lead[1] for grid in kernel.grids})  # slices of one outer index
    for leads in columns.values():
        outer = {lead[0] for lead in leads}
        whole = all(sum(1 for lead in leads if lead[0] == f) == inner for f in outer)
        assert len(outer) == 1 or whole, leads
        if len(outer) == 1:  # part of one group: consecutive slices
            inners = [lead[1] for lead in leads]
            assert inners == list(range(inners[0], inners[0] + len(inners))), leads


def test_slices_carry_labels_without_their_leading_indices() -> None:
    plan = plan_scene(derive(layer_type("conv2d").build(
        {"input": "2x4x4", "kernel": "2", "filters": "2"})), "forward", max_steps=1)
    a = plan.array("input")
    assert a.grids[1].labels[(2, 3)] == "a_{2,2,3}"
    assert a.grids[1].short_labels[(2, 3)] == "a_{2,3}"
    w = plan.array("kernel")  # (f, c): slice 3 is f=2, c=1
    assert w.grids[2].lead == (2, 1)
    assert w.grids[2].labels[(1, 2)] == "W_{2,1,1,2}"
    assert w.grids[2].short_labels[(1, 2)] == "W_{1,2}"
    single = plan_scene(derive(layer_type("conv2d").build({})), "forward", max_steps=1)
    assert all(not g.short_labels for arr in single.arrays for g in arr.grids)


def test_titled_slices_show_short_labels_where_full_ones_are_too_small(
    build_scene: Any,
) -> None:
    # a_{1,2,3} over a 0.38-unit cell is shorter than the readable 0.1 and was left out,
    # grid and all; in the slice titled a_{c=1}, a_{2,3} says the same and fits
    from convviz.rendering.grid import label_scale

    spec = layer_type("conv-transpose2d").build({"input": "2x3x3", "kernel": "3",
                                                 "filters": "2"})
    from convviz.rendering.typeset import typeset

    scene = build_scene("forward", spec)
    plan = scene.plan
    for role in ("input", "output"):
        grids = scene.grids[role]
        assert all(g.title is not None for g in grids), role  # the slices are titled
        for grid, grid_plan in zip(grids, plan.array(role).grids, strict=True):
            # every cell is labelled, readably
            assert set(grid.label_of) == set(grid_plan.labels), role
            assert all(label.height >= 0.1 - 1e-9 for label in grid.label_of.values())
        # the full labels would have been too small (so these are the short ones)
        full = typeset([tex for g in plan.array(role).grids for tex in g.labels.values()])
        assert label_scale(full, grids[0].cell_size) is None, role
