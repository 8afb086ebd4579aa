"""SymPy symbols for one layer: the cells of its input, kernel, bias and upstream gradient.

Cells are ``Indexed`` objects with 1-based indices as displayed; channel and filter axes of
size 1 are left out of the indices (spatial axes never are). Arrays are kept in full shape
(``(C, H, W)``, ``(F, C, kh, kw)``, ``(F,)``, ``(F, OH, OW)``) so the convolution code never
special-cases them; :meth:`LayerSymbols.display` reshapes them for people.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.spec import ConvSpec

__all__ = ["LayerSymbols"]


def _cells(
    shape: tuple[int, ...],
    keep: tuple[bool, ...],
    make: Callable[[tuple[int, ...]], Any],
) -> NDArray[Any]:
    """Object array of ``shape`` whose cells are ``make(display index)``.

    ``keep[k]`` says whether axis ``k`` appears in the display index.
    """
    array = np.empty(shape, dtype=object)
    for full in itertools.product(*(range(n) for n in shape)):
        display = tuple(i + 1 for i, k in zip(full, keep, strict=True) if k)
        array[full] = make(display)
    return array


@dataclass(frozen=True)
class LayerSymbols:
    """The symbols of a layer and arrays of its cells.

    Attributes
    ----------
    spec
        The layer.
    input, kernel, bias, output
        ``IndexedBase`` objects (the bias is a plain ``Symbol`` when there is one filter).
    loss
        The loss ``L(y, y_hat)`` as an undefined function, as in the article.
    """

    spec: ConvSpec
    input: sympy.IndexedBase
    kernel: sympy.IndexedBase
    bias: sympy.Symbol | sympy.IndexedBase
    output: sympy.IndexedBase
    loss: sympy.Expr

    @classmethod
    def for_spec(cls, spec: ConvSpec) -> LayerSymbols:
        """Create the symbols of ``spec`` (names carry the layer numbers)."""
        prev, cur = spec.layer - 1, spec.layer
        y, y_hat = sympy.symbols(r"y \hat{y}")
        bias: sympy.Symbol | sympy.IndexedBase
        if spec.filters > 1:
            bias = sympy.IndexedBase(f"b^{{[{cur}]}}")
        else:
            bias = sympy.Symbol(f"b^{{[{cur}]}}")
        return cls(
            spec=spec,
            input=sympy.IndexedBase(f"a^{{[{prev}]}}"),
            kernel=sympy.IndexedBase(f"W^{{[{cur}]}}"),
            bias=bias,
            output=sympy.IndexedBase(f"z^{{[{cur}]}}"),
            loss=sympy.Function(r"\mathcal{L}")(y, y_hat),
        )

    # -------------------------------------------------------------- cell arrays
    def input_cells(self) -> NDArray[Any]:
        """Input cells, shape ``(C, H, W)``."""
        spec = self.spec
        shape = (spec.channels, *spec.input_size)
        return _cells(shape, (spec.channels > 1, True, True), lambda i: self.input[i])

    def kernel_cells(self) -> NDArray[Any]:
        """Kernel cells, shape ``(F, C, kh, kw)``."""
        spec = self.spec
        shape = (spec.filters, spec.channels, *spec.kernel_size)
        keep = (spec.filters > 1, spec.channels > 1, True, True)
        return _cells(shape, keep, lambda i: self.kernel[i])

    def bias_cells(self) -> NDArray[Any]:
        """Bias cells, shape ``(F,)``; zeros when the layer has no bias."""
        spec = self.spec
        if not spec.bias:
            return np.full((spec.filters,), sympy.S.Zero, dtype=object)
        if isinstance(self.bias, sympy.IndexedBase):
            base = self.bias
            return _cells((spec.filters,), (True,), lambda i: base[i])
        return np.array([self.bias], dtype=object)

    def output_cells(self) -> NDArray[Any]:
        """Output cells ``z[...]`` (names only, not their expressions), ``(F, OH, OW)``."""
        spec = self.spec
        shape = (spec.filters, *spec.output_size)
        return _cells(shape, (spec.filters > 1, True, True), lambda i: self.output[i])

    def grad_output_cells(self) -> NDArray[Any]:
        """Upstream gradient cells ``Derivative(L, z[...])``, shape ``(F, OH, OW)``."""
        cells = self.output_cells()
        result = np.empty(cells.shape, dtype=object)
        for pos, z in np.ndenumerate(cells):
            result[pos] = sympy.Derivative(self.loss, z)
        return result

    # ------------------------------------------------------------------ display
    def display(self, array: NDArray[Any], role: str) -> NDArray[Any]:
        """Reshape a full-shape array of ``role`` to its display shape."""
        return array.reshape(self.spec.display_shape(role))

    def full(self, array: NDArray[Any], role: str) -> NDArray[Any]:
        """Reshape a display-shape array of ``role`` back to full shape."""
        spec = self.spec
        shapes = {
            "input": (spec.channels, *spec.input_size),
            "kernel": (spec.filters, spec.channels, *spec.kernel_size),
            "bias": (spec.filters,),
            "output": (spec.filters, *spec.output_size),
        }
        base = role.removeprefix("grad_")
        return array.reshape(shapes[base])
