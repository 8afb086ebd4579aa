"""Cells and upstream derivatives built without SymPy's constructors are SymPy's own."""

from __future__ import annotations

import numpy as np
import sympy

from convviz.derivation import upstream_cells
from convviz.symbolic import cell_base, cells, loss_function


def assert_identical(got: sympy.Basic, want: sympy.Basic) -> None:
    assert got == want
    assert hash(got) == hash(want)
    assert got.args == want.args
    assert sympy.srepr(got) == sympy.srepr(want)
    assert str(got) == str(want)


def test_cells_are_base_items() -> None:
    for real in (True, False):
        base = cell_base("a^{[1]}", (3, 11, 12), real=real)
        array = cells(base, (3, 11, 12), (3, 11, 12))
        for pos, cell in np.ndenumerate(array):
            want = base[tuple(i + 1 for i in pos)]
            assert_identical(cell, want)
            remembered, cell._mhash = cell._mhash, None
            assert hash(cell) == remembered  # the hash set up front is the computed one
            assert cell.is_real == want.is_real


def test_cells_follow_row_major_order_with_dropped_leading_axes() -> None:
    # (full, display): a vector, a (1, 1, kh, kw) kernel, a kept size-1 spatial axis
    for full, display in (((7,), (7,)), ((1, 1, 2, 3), (2, 3)), ((2, 1, 4), (2, 1, 4)),
                          ((1, 3, 1), (3, 1))):
        base = cell_base("w", display, real=True)
        array = cells(base, full, display)
        assert array.shape == full
        for pos, cell in np.ndenumerate(array):
            kept = pos[len(full) - len(display) :]  # the dropped axes are the leading ones
            assert_identical(cell, base[tuple(i + 1 for i in kept)])


def test_upstream_cells_are_sympy_derivatives() -> None:
    base = cell_base("z^{[2]}", (4, 5), real=True)
    outputs = cells(base, (1, 4, 5), (4, 5))
    loss = loss_function()
    upstream = upstream_cells(loss, outputs)
    assert upstream.shape == outputs.shape
    for pos, z in np.ndenumerate(outputs):
        want = sympy.Derivative(loss, z)
        got = upstream[pos]
        assert_identical(got, want)
        assert got.variables == want.variables and got.expr == want.expr
        assert got.is_commutative == want.is_commutative
        assert got.func(*got.args) == got
