"""SymPy cells for a layer's arrays: every cell of every input, parameter and output.

Cells are ``Indexed`` objects with 1-based indices as displayed; leading axes of size 1
(a single channel or filter) are left out of the indices, spatial axes never are. Arrays
are kept in full shape (PyTorch's layout, e.g. ``(C, H, W)``, ``(F, C, kh, kw)``) so that
forward functions never special-case them; a derivation reshapes them for display.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.layers.base import keep_mask

__all__ = ["cell_base", "cells", "loss_function"]


def loss_function() -> sympy.Expr:
    """The loss ``L(y, y_hat)`` as an undefined function, as in the article."""
    y, y_hat = sympy.symbols(r"y \hat{y}")
    return sympy.Function(r"\mathcal{L}")(y, y_hat)


def cells(base: sympy.Basic, full: tuple[int, ...], display: tuple[int, ...]) -> NDArray[Any]:
    """Object array of shape ``full`` whose cells are ``base[display index]`` (1-based).

    Axes of ``full`` missing from ``display`` (leading size-1 axes) are left out of the
    indices; a scalar is the symbol itself.
    """
    out = np.empty(full, dtype=object)
    if not display:
        out.fill(base)
        return out
    keep = keep_mask(full, display)
    assert isinstance(base, sympy.IndexedBase)
    integers = [sympy.Integer(n) for n in range(max(full) + 2)]
    # row-major over the kept axes (the dropped ones have size 1), as np.ndindex would go
    indices = itertools.product(
        *(integers[1 : size + 1] for size, k in zip(full, keep, strict=True) if k)
    )
    first = base[next(indices)]
    tail = first._hashable_content()[len(first.args) :]
    flat = out.reshape(-1)
    flat[0] = first
    for n, index in enumerate(indices, 1):
        flat[n] = _indexed(base, index, first, tail)
    return out


def _indexed(
    base: sympy.IndexedBase,
    index: Sequence[sympy.Integer],
    like: sympy.Indexed,
    tail: tuple[Any, ...] | None = None,
) -> Any:
    """``base[index]`` without ``Indexed.__new__``'s checks and assumption deduction.

    Every cell of a base has the same assumptions, so the cells share the first cell's
    deduced fact base (SymPy only ever adds facts that follow from those assumptions).
    ``tail``: what ``like._hashable_content()`` holds after its arguments (the sorted
    assumptions, the same for every cell of the base); with it the hash is set as
    ``Basic.__hash__`` would compute it, without building that content for every cell.
    The result is ``==``, hashes and prints exactly as ``base[index]`` (tests check).
    """
    cell = sympy.Expr.__new__(sympy.Indexed, base, *index)
    cell._assumptions = like._assumptions
    if tail is not None:
        cell._mhash = hash(("Indexed", base, *index, *tail))
    return cell


def cell_base(name: str, display: tuple[int, ...], *, real: bool) -> sympy.Basic:
    """The ``IndexedBase`` behind an array's cells (a plain ``Symbol`` for a scalar)."""
    assumptions = {"real": True} if real else {}
    if not display:
        return sympy.Symbol(name, **assumptions)
    return sympy.IndexedBase(name, **assumptions)
