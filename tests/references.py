"""Independent numeric references for the tests.

Nothing here uses convviz's convolution or numeric modules: the forward pass is
``scipy.signal.correlate2d`` on a padded input with a dilated kernel, strided by slicing,
and gradients are central finite differences of ``L = sum(G * z)`` through that forward.
Symbolic arrays are evaluated with ``lambdify`` after swapping every cell for a plain symbol.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy
from numpy.typing import NDArray
from scipy.signal import correlate2d

from convviz.spec import ConvSpec


def dilate_kernel(kernel: NDArray[Any], dilation: tuple[int, int]) -> NDArray[Any]:
    """Spread a 2-D kernel out with ``dilation - 1`` zeros between its cells."""
    kh, kw = kernel.shape
    dh, dw = dilation
    out = np.zeros(((kh - 1) * dh + 1, (kw - 1) * dw + 1))
    out[::dh, ::dw] = kernel
    return out


def scipy_forward(
    x: NDArray[Any],
    w: NDArray[Any],
    b: NDArray[Any] | None,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> NDArray[np.float64]:
    """Layer forward pass ``(C,H,W) x (F,C,kh,kw) -> (F,OH,OW)`` via scipy's correlate2d."""
    channels = x.shape[0]
    filters = w.shape[0]
    (ph, pw), (sh, sw) = padding, stride
    maps = []
    for f in range(filters):
        total = None
        for c in range(channels):
            padded = np.pad(x[c], ((ph, ph), (pw, pw)))
            full = correlate2d(padded, dilate_kernel(w[f, c], dilation), mode="valid")
            total = full if total is None else total + full
        assert total is not None
        strided = total[::sh, ::sw]
        maps.append(strided + (0.0 if b is None else b[f]))
    return np.array(maps)


def spec_forward(spec: ConvSpec, x: NDArray[Any], w: NDArray[Any], b: NDArray[Any]) -> Any:
    """:func:`scipy_forward` with the spec's stride, padding and dilation."""
    return scipy_forward(
        x, w, b if spec.bias else None,
        stride=spec.stride, padding=spec.padding, dilation=spec.dilation,
    )


def finite_differences(
    spec: ConvSpec,
    x: NDArray[np.float64],
    w: NDArray[np.float64],
    b: NDArray[np.float64],
    g: NDArray[np.float64],
    step: float = 1e-4,
) -> dict[str, NDArray[np.float64]]:
    """Central differences of ``L = sum(g * z)`` for input, kernel and bias."""

    def loss(xx: Any, ww: Any, bb: Any) -> float:
        return float(np.sum(g * spec_forward(spec, xx, ww, bb)))

    values = {"input": x, "kernel": w, "bias": b}
    grads = {}
    for name, base in values.items():
        grad = np.zeros_like(base)
        for pos in np.ndindex(base.shape):
            args = {k: v.copy() for k, v in values.items()}
            args[name][pos] += step
            up = loss(args["input"], args["kernel"], args["bias"])
            args[name][pos] -= 2 * step
            down = loss(args["input"], args["kernel"], args["bias"])
            grad[pos] = (up - down) / (2 * step)
        grads[name] = grad
    return grads


def evaluate(exprs: NDArray[Any], values: dict[Any, float]) -> NDArray[np.float64]:
    """Evaluate an object array of expressions, each cell in ``values`` replaced by a number."""
    cells = list(values)
    plain = sympy.symbols(f"t0:{len(cells)}")
    swap = dict(zip(cells, plain, strict=True))
    flat = [sympy.sympify(e).xreplace(swap) for e in exprs.flat]
    leftover = set().union(*(e.free_symbols for e in flat)) - set(plain)
    assert not leftover, f"unevaluated symbols {leftover}"
    func = sympy.lambdify(plain, flat, modules="math")
    return np.array(func(*(values[c] for c in cells)), dtype=float).reshape(exprs.shape)


def bind(cells: NDArray[Any], numbers: NDArray[Any]) -> dict[Any, float]:
    """Map each non-zero cell of ``cells`` to the number at the same position."""
    return {
        cell: float(numbers[pos])
        for pos, cell in np.ndenumerate(cells)
        if cell is not sympy.S.Zero
    }


def random_values(spec: ConvSpec, seed: int) -> tuple[Any, Any, Any, Any]:
    """Random input, kernel, bias (zeros without bias) and upstream gradient, full shapes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((spec.channels, *spec.input_size))
    w = rng.standard_normal((spec.filters, spec.channels, *spec.kernel_size))
    b = rng.standard_normal(spec.filters) if spec.bias else np.zeros(spec.filters)
    g = rng.standard_normal((spec.filters, *spec.output_size))
    return x, w, b, g


def window(spec: ConvSpec, i: int, j: int) -> list[tuple[int, int, int, int]]:
    """0-based ``(p, q, r, s)``: kernel cell ``(p, q)`` meets padded-free input ``(r, s)``.

    Straight from ``z[i, j] = sum W[p, q] * a[i*s + p*d - pad, j*s + q*d - pad]``; cells
    that fall in the padding are left out.
    """
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    h, wd = spec.input_size
    out = []
    for p in range(spec.kernel_size[0]):
        for q in range(spec.kernel_size[1]):
            r, s = i * sh + p * dh - ph, j * sw + q * dw - pw
            if 0 <= r < h and 0 <= s < wd:
                out.append((p, q, r, s))
    return out
