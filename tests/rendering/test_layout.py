import itertools

import pytest

from convviz.rendering.layout import (
    FRAME,
    ArrayShape,
    Box,
    FrameSpec,
    LayoutError,
    SliceShape,
    layout_row,
)


def arr(name: str, n: int, rows: int, cols: int, padding: int = 0) -> ArrayShape:
    return ArrayShape(name, tuple(SliceShape(rows, cols, padding) for _ in range(n)))


FORWARD = [arr("input", 1, 6, 6), arr("kernel", 1, 3, 3), arr("bias", 1, 1, 1),
           arr("output", 1, 4, 4)]


def all_boxes(layout):
    for placement in layout.arrays:
        yield from placement.slices
        yield placement.title
    for _, box in layout.operators:
        yield box


CASES = {
    "forward-6x6": FORWARD,
    "padded": [arr("input", 1, 6, 6, 2), arr("kernel", 1, 3, 3), arr("output", 1, 8, 8)],
    "multichannel": [arr("input", 3, 6, 6), arr("kernel", 6, 3, 3), arr("output", 2, 4, 4)],
    "many-channels": [arr("input", 16, 5, 5), arr("kernel", 16, 3, 3), arr("output", 1, 3, 3)],
    "large": [arr("input", 1, 28, 28), arr("kernel", 1, 5, 5), arr("output", 1, 24, 24)],
    "single": [arr("bias", 1, 1, 1)],
}


@pytest.mark.parametrize("arrays", CASES.values(), ids=CASES.keys())
def test_everything_inside_content_area_without_overlap(arrays):
    layout = layout_row(arrays, ["*"] * (len(arrays) - 1))
    content = FRAME.content_box
    boxes = list(all_boxes(layout))
    for box in boxes:
        assert content.contains(box), box
        assert not box.overlaps(layout.panel)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)


@pytest.mark.parametrize("arrays", CASES.values(), ids=CASES.keys())
def test_slices_have_the_common_cell_size(arrays):
    layout = layout_row(arrays, ["+"] * (len(arrays) - 1))
    for shape, placement in zip(arrays, layout.arrays, strict=True):
        for s, box in zip(shape.slices, placement.slices, strict=True):
            assert box.width == pytest.approx(s.padded_cols * layout.cell_size)
            assert box.height == pytest.approx(s.padded_rows * layout.cell_size)


def test_small_arrays_are_capped_and_centered():
    layout = layout_row([arr("bias", 1, 1, 1)], [])
    assert layout.cell_size == FRAME.max_cell
    assert layout.arrays[0].box.center_x == pytest.approx(0.0)


def test_operators_sit_between_their_neighbours():
    layout = layout_row(FORWARD, ["*", "+", "="])
    assert [op for op, _ in layout.operators] == ["*", "+", "="]
    for (_, box), left, right in zip(layout.operators, layout.arrays, layout.arrays[1:],
                                     strict=False):
        assert left.box.right <= box.left + 1e-9
        assert box.right <= right.box.left + 1e-9


def test_reading_order_left_to_right():
    layout = layout_row(FORWARD, ["*", "+", "="])
    xs = [p.box.center_x for p in layout.arrays]
    assert xs == sorted(xs)


def test_tall_stacks_wrap_into_columns():
    layout = layout_row([arr("input", 16, 5, 5), arr("output", 1, 3, 3)], ["="])
    assert layout.arrays[0].columns > 1


def test_short_stacks_stay_one_column():
    layout = layout_row([arr("input", 2, 3, 3), arr("output", 1, 3, 3)], ["="])
    assert layout.arrays[0].columns == 1
    first, second = layout.arrays[0].slices
    assert first.center_x == pytest.approx(second.center_x)
    assert first.top > second.top


def test_bad_operator_count():
    with pytest.raises(LayoutError, match="operators"):
        layout_row(FORWARD, ["*"])


def test_duplicate_names():
    with pytest.raises(LayoutError, match="distinct"):
        layout_row([arr("a", 1, 2, 2), arr("a", 1, 2, 2)], ["*"])


def test_too_big_to_fit():
    with pytest.raises(LayoutError, match="do not fit"):
        layout_row([arr("input", 1, 400, 400)], [], FrameSpec(min_cell=0.05))


def test_slice_validation():
    with pytest.raises(ValueError):
        SliceShape(0, 3)
    with pytest.raises(ValueError):
        SliceShape(3, 3, -1)
    with pytest.raises(ValueError):
        SliceShape(3, 3, (0, -2))


def test_padding_per_axis():
    assert SliceShape(4, 6, 1).padding == (1, 1)
    shape = SliceShape(4, 6, (1, 0))
    assert (shape.padded_rows, shape.padded_cols) == (6, 6)
    assert (SliceShape(4, 6, (0, 2)).padded_rows, SliceShape(4, 6, (0, 2)).padded_cols) == (4, 10)


def test_box_geometry():
    box = Box(1.0, 2.0, 4.0, 2.0)
    assert box.corners() == ((-1.0, 3.0), (3.0, 3.0), (3.0, 1.0), (-1.0, 1.0))
    assert box.contains(Box(1.0, 2.0, 1.0, 1.0))
    assert not box.overlaps(Box(4.0, 2.0, 2.0, 2.0))  # touching edges only


def _column_heights(placement) -> list[int]:
    """How many slices each column holds, from the boxes (columns share a centre x)."""
    xs: dict[float, int] = {}
    for box in placement.slices:
        key = round(box.center_x, 6)
        xs[key] = xs.get(key, 0) + 1
    return [xs[x] for x in sorted(xs)]


@pytest.mark.parametrize(("n", "group", "others"), [
    (32, 8, [arr("input", 8, 6, 6)]),   # 4 filters of 8 channels
    (12, 3, [arr("input", 3, 6, 6)]),   # 4 filters of 3 channels
    (6, 3, [arr("input", 3, 6, 6)]),
    (8, 4, [arr("input", 1, 6, 6)]),
    (6, 2, [arr("input", 3, 4, 4)]),    # 3 channels of 2 filters (conv-transpose2d)
    (10, 5, [arr("input", 1, 6, 6)]),
    (7, 1, [arr("input", 1, 6, 6)]),    # no groups: any height
])
def test_a_column_of_slices_never_splits_a_group(n: int, group: int, others) -> None:
    # slices fill a column top to bottom; a column ending inside a filter's channels put
    # the rest of that filter at the top of the next column
    kernel = ArrayShape("kernel", tuple(SliceShape(3, 3) for _ in range(n)), group)
    layout = layout_row([*others, kernel], ["*"], FRAME)
    heights = _column_heights(layout.array("kernel"))
    assert sum(heights) == n
    rows = heights[0]
    assert all(h == rows for h in heights[:-1]) and heights[-1] <= rows
    if group > 1:
        assert rows % group == 0 or group % rows == 0, heights


def test_a_group_must_be_positive() -> None:
    with pytest.raises(ValueError, match="group"):
        ArrayShape("kernel", (SliceShape(3, 3),), 0)
