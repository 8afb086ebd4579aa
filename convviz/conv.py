"""Cross-correlation (deep learning's "convolution") for numeric and symbolic arrays.

One implementation serves both: the index arithmetic (padding, dilation, stride, window
gathering) is plain NumPy and indifferent to what the cells hold, and the sum of products is
:func:`convviz.arithmetic.dot`, which uses ``@`` for numbers and builds SymPy sums for
symbols.

Shapes are always full here: input ``(C, H, W)``, kernel ``(F, C, kh, kw)``, output
``(F, OH, OW)``. Dropping size-1 axes for display is the caller's business.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.arithmetic import CanonicalBuilder, dot, is_symbolic
from convviz.spec import Pair

__all__ = ["correlate", "dilate", "output_size", "pad", "rot180", "zero_like"]


def zero_like(array: NDArray[Any]) -> Any:
    """The zero that fills padding for this array: SymPy's ``0`` or a numeric ``0``."""
    return sympy.S.Zero if is_symbolic(array) else array.dtype.type(0)


def pad(array: NDArray[Any], before: Pair, after: Pair | None = None) -> NDArray[Any]:
    """Zero-pad the last two axes: ``before`` rows/cols on top/left, ``after`` bottom/right."""
    after = before if after is None else after
    widths = [(0, 0)] * (array.ndim - 2) + [(before[0], after[0]), (before[1], after[1])]
    if is_symbolic(array):
        rows, cols = array.shape[-2:]
        shape = (*array.shape[:-2], rows + before[0] + after[0], cols + before[1] + after[1])
        result = np.full(shape, sympy.S.Zero, dtype=object)
        result[..., before[0] : before[0] + rows, before[1] : before[1] + cols] = array
        return result
    return np.pad(array, widths)


def dilate(array: NDArray[Any], factor: Pair) -> NDArray[Any]:
    """Insert ``factor - 1`` zeros between neighbouring cells of the last two axes."""
    if factor == (1, 1):
        return array
    rows, cols = array.shape[-2:]
    shape = (*array.shape[:-2], (rows - 1) * factor[0] + 1, (cols - 1) * factor[1] + 1)
    result = np.full(shape, zero_like(array), dtype=array.dtype)
    result[..., :: factor[0], :: factor[1]] = array
    return result


def rot180(array: NDArray[Any]) -> NDArray[Any]:
    """Rotate the last two axes by 180 degrees."""
    return np.asarray(array[..., ::-1, ::-1])


def output_size(size: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    """``floor((n + 2p - d (k - 1) - 1) / s) + 1`` per axis."""
    return (
        (size[0] + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
        (size[1] + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1,
    )


def correlate(
    x: NDArray[Any],
    w: NDArray[Any],
    *,
    stride: Pair = (1, 1),
    padding: Pair = (0, 0),
    dilation: Pair = (1, 1),
    bias: NDArray[Any] | None = None,
    builder: CanonicalBuilder | None = None,
) -> NDArray[Any]:
    """Cross-correlate input ``x`` ``(C, H, W)`` with kernels ``w`` ``(F, C, kh, kw)``.

    Returns the ``(F, OH, OW)`` array with ``out[f, i, j] = bias[f] + sum over c, p, q of
    w[f, c, p, q] * x_padded[c, i*s + p*d, j*s + q*d]``. The bias rides along as one
    more column of the kernel matrix, multiplied by a row of ones.
    """
    if x.ndim != 3 or w.ndim != 4 or x.shape[0] != w.shape[1]:
        raise ValueError(f"correlate: input {x.shape} and kernel {w.shape} do not fit")
    channels = x.shape[0]
    filters, _, kh, kw = w.shape
    oh, ow = output_size((x.shape[1], x.shape[2]), (kh, kw), stride, padding, dilation)
    if oh < 1 or ow < 1:
        raise ValueError("correlate: kernel larger than padded input")
    xp = pad(x, padding)
    rows = (np.arange(oh) * stride[0])[:, None] + (np.arange(kh) * dilation[0])[None, :]
    cols = (np.arange(ow) * stride[1])[:, None] + (np.arange(kw) * dilation[1])[None, :]
    # windows[c, i, j, p, q] = xp[c, rows[i, p], cols[j, q]]
    windows = xp[:, rows[:, None, :, None], cols[None, :, None, :]]
    patches = windows.transpose(0, 3, 4, 1, 2).reshape(channels * kh * kw, oh * ow)
    kernels = w.reshape(filters, channels * kh * kw)
    if bias is not None:
        if bias.shape != (filters,):
            raise ValueError(f"correlate: bias {bias.shape} does not fit {filters} filters")
        one = sympy.S.One if is_symbolic(patches) else patches.dtype.type(1)
        ones = np.full((1, oh * ow), one, dtype=patches.dtype)
        patches = np.concatenate([patches, ones])
        kernels = np.concatenate([kernels, bias.reshape(filters, 1).astype(kernels.dtype)], axis=1)
    return dot(kernels, patches, builder).reshape(filters, oh, ow)
