import numpy as np
import pytest
from manim import Rectangle

from convviz.rendering.grid import CellGrid
from convviz.rendering.theme import DARK


def fake_label(width: float = 1.0, height: float = 0.4) -> Rectangle:
    """A stand-in for a typeset label: building it needs no LaTeX."""
    return Rectangle(width=width, height=height)


def test_cells_are_row_major_from_the_top_left():
    grid = CellGrid(3, 4, cell_size=0.5)
    assert grid.cell_center((1, 1))[0] < grid.cell_center((1, 2))[0]
    assert grid.cell_center((1, 1))[1] > grid.cell_center((2, 1))[1]
    assert np.allclose(grid.squares.get_center(), [0, 0, 0])
    assert grid.width == pytest.approx(4 * 0.5)


def test_cell_box_follows_the_grid_when_moved():
    grid = CellGrid(2, 2, cell_size=1.0)
    grid.move_to([3.0, -1.0, 0.0])
    box = grid.cell_box((1, 1))
    assert box.corners()[0] == pytest.approx((2.0, 0.0))
    assert (box.width, box.height) == pytest.approx((1.0, 1.0))


def test_padding_ring_is_addressable_and_dashed():
    grid = CellGrid(2, 3, cell_size=0.5, padding=1)
    assert len(grid.squares) == 4 * 5
    assert len(grid.pad_outlines) == 4 * 5 - 2 * 3
    assert not grid.is_real((0, 0)) and grid.is_real((1, 1))
    assert grid.cell_box((0, 0)).right == pytest.approx(grid.cell_box((1, 1)).left)
    with pytest.raises(KeyError):
        grid.square((-1, 1))


def test_padding_ring_per_axis():
    """Padding (1, 0): padding rows above and below, no padding columns."""
    grid = CellGrid(2, 3, cell_size=0.5, padding=(1, 0))
    assert grid.padding == (1, 0)
    assert len(grid.squares) == 4 * 3
    assert len(grid.pad_outlines) == 2 * 3
    assert not grid.is_real((0, 1)) and not grid.is_real((3, 3))
    for missing in ((1, 0), (1, 4), (0, 0)):
        with pytest.raises(KeyError):
            grid.square(missing)
    wide = CellGrid(2, 3, cell_size=0.5, padding=(0, 2))
    assert len(wide.squares) == 2 * 7 and wide.cell_box((1, -1)).right == pytest.approx(
        wide.cell_box((1, 0)).left
    )
    with pytest.raises(ValueError, match="padding"):
        CellGrid(2, 2, cell_size=0.5, padding=(1, -1))


def test_restyle_changes_existing_squares_only():
    grid = CellGrid(3, 3, cell_size=0.5)
    before = list(grid.family_members_with_points())
    grid.restyle((2, 2), DARK.target)
    grid.highlight([(1, 1), (1, 2)], DARK.operand)
    after = list(grid.family_members_with_points())
    assert len(before) >= 9  # at least one square per cell
    assert len(after) == len(before) and {id(m) for m in after} == {id(m) for m in before}
    fill, opacity, stroke, _width = grid.style_of((2, 2))
    assert (fill, stroke) == (DARK.target.fill_color, DARK.target.stroke_color)
    assert opacity == pytest.approx(DARK.target.fill_opacity)
    assert grid.style_of((1, 1))[2:] == (DARK.operand.stroke_color, DARK.operand.stroke_width)
    assert grid.style_of((3, 3))[2] == DARK.cell.stroke_color
    # highlighted squares are drawn last, above their neighbours
    assert grid.squares.submobjects[-1] is grid.square((1, 2))
    grid.reset()
    assert grid.style_of((2, 2))[2] == DARK.cell.stroke_color


def test_footprint_surrounds_cells_and_hides():
    grid = CellGrid(4, 4, cell_size=0.5, padding=1)
    rect = grid.show_footprint([(0, 0), (0, 1), (1, 0), (1, 1)])
    assert rect.width == pytest.approx(1.0)
    assert rect.get_center()[:2] == pytest.approx(grid.cells_box([(0, 0), (1, 1)]).center)
    assert rect.get_stroke_opacity() == 1.0
    grid.hide_footprint()
    assert rect.get_stroke_opacity() == 0.0


def test_labels_fit_in_cells():
    labels = {(r, c): fake_label() for r in (1, 2) for c in (1, 2)}
    grid = CellGrid(2, 2, cell_size=1.0, labels=labels)
    assert len(grid.labels) == 4
    for key, label in labels.items():
        assert label.width <= 0.8 + 1e-9
        assert np.allclose(label.get_center(), grid.cell_center(key))


def test_labels_give_way_when_cells_are_too_small():
    labels = {(r, c): fake_label() for r in (1, 2) for c in (1, 2)}
    grid = CellGrid(2, 2, cell_size=0.1, labels=labels)
    assert len(grid.labels) == 0


def test_padding_cells_read_zero():
    grid = CellGrid(2, 2, cell_size=1.0, padding=1, pad_label=fake_label(0.3, 0.4))
    assert len(grid.pad_labels) == 16 - 4


def test_title_sits_above():
    title = fake_label(1.0, 2.0)
    grid = CellGrid(2, 2, cell_size=1.0, title=title)
    assert title.height == pytest.approx(0.45)
    assert title.get_bottom()[1] > grid.squares.get_top()[1]


@pytest.mark.parametrize(("rows", "cols", "index", "key"), [
    (1, 1, (), (1, 1)),
    (3, 1, (2,), (2, 1)),
    (1, 3, (2,), (1, 2)),
])
def test_short_indices_for_scalars_and_vectors(rows, cols, index, key):
    grid = CellGrid(rows, cols, cell_size=0.5)
    assert grid.key(index) == key


def test_labels_outside_grid_rejected():
    with pytest.raises(KeyError):
        CellGrid(2, 2, cell_size=1.0, labels={(3, 3): fake_label()})
