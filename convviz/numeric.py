"""Numeric cross-checks: symbolic results evaluated at random points against plain numerics.

Two independent references:

* :func:`reference_correlate`, an explicit loop over output cells, kernel cells and
  channels (no NumPy tricks shared with :mod:`convviz.conv`);
* central finite differences of the scalar loss ``L = sum(G * z)`` computed with the numeric
  convolution, for which ``dL/dz = G``.

The symbolic expressions are evaluated with :func:`sympy.lambdify` after replacing every
cell (and every ``Derivative(L, z[...])``) by a plain symbol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.conv import correlate
from convviz.derivation import Derivation
from convviz.spec import ConvSpec

__all__ = [
    "NumericCheck",
    "Point",
    "cross_check",
    "evaluate",
    "finite_difference_gradients",
    "random_point",
    "reference_correlate",
]

#: Acceptance threshold for max abs error in float64.
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Point:
    """Numeric values for a layer's variables and upstream gradient (full shapes)."""

    input: NDArray[np.float64]
    kernel: NDArray[np.float64]
    bias: NDArray[np.float64]
    grad_output: NDArray[np.float64]


@dataclass(frozen=True)
class NumericCheck:
    """Largest absolute difference between a symbolic result and its numeric reference."""

    name: str
    max_error: float

    @property
    def passed(self) -> bool:
        """Whether the error is below :data:`TOLERANCE`."""
        return self.max_error < TOLERANCE


def random_point(spec: ConvSpec, seed: int = 0) -> Point:
    """Random standard-normal values (bias zero when the layer has none)."""
    rng = np.random.default_rng(seed)
    bias = rng.standard_normal(spec.filters) if spec.bias else np.zeros(spec.filters)
    return Point(
        input=rng.standard_normal((spec.channels, *spec.input_size)),
        kernel=rng.standard_normal((spec.filters, spec.channels, *spec.kernel_size)),
        bias=bias,
        grad_output=rng.standard_normal((spec.filters, *spec.output_size)),
    )


def reference_correlate(
    x: NDArray[np.float64],
    w: NDArray[np.float64],
    b: NDArray[np.float64],
    spec: ConvSpec,
) -> NDArray[np.float64]:
    """Forward pass by explicit loops, independent of :func:`convviz.conv.correlate`."""
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    channels, height, width = x.shape
    filters, _, kh, kw = w.shape
    oh, ow = spec.output_size
    out = np.zeros((filters, oh, ow))
    for f in range(filters):
        for i in range(oh):
            for j in range(ow):
                total = float(b[f])
                for c in range(channels):
                    for p in range(kh):
                        for q in range(kw):
                            r = i * sh + p * dh - ph
                            s = j * sw + q * dw - pw
                            if 0 <= r < height and 0 <= s < width:
                                total += w[f, c, p, q] * x[c, r, s]
                out[f, i, j] = total
    return out


def _loss(spec: ConvSpec, grad_output: NDArray[np.float64]) -> Callable[..., float]:
    def loss(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any]) -> float:
        z = correlate(
            x, w, stride=spec.stride, padding=spec.padding, dilation=spec.dilation, bias=b
        )
        return float(np.sum(grad_output * z))

    return loss


def finite_difference_gradients(
    spec: ConvSpec, point: Point, step: float = 1e-3
) -> dict[str, NDArray[np.float64]]:
    """Central differences of ``L = sum(G * z)`` with respect to input, kernel and bias."""
    loss = _loss(spec, point.grad_output)
    values = {"input": point.input, "kernel": point.kernel, "bias": point.bias}
    grads: dict[str, NDArray[np.float64]] = {}
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


def evaluate(
    derivation: Derivation, point: Point, roles: tuple[str, ...]
) -> dict[str, NDArray[np.float64]]:
    """Evaluate the symbolic arrays of ``roles`` at ``point`` with ``lambdify``."""
    cells: list[Any] = []
    numbers: list[float] = []
    sources = {
        "input": point.input,
        "kernel": point.kernel,
        "bias": point.bias,
        "grad_output": point.grad_output,
    }
    for role, values in sources.items():
        for pos, cell in np.ndenumerate(derivation.array(role)):
            if cell is not sympy.S.Zero:
                cells.append(cell)
                numbers.append(float(values[pos]))
    plain = sympy.symbols(f"v0:{len(cells)}")
    swap = dict(zip(cells, plain, strict=True))
    out: dict[str, NDArray[np.float64]] = {}
    for role in roles:
        array = derivation.array(role)
        exprs = [sympy.sympify(e).xreplace(swap) for e in array.flat]
        func = sympy.lambdify(plain, exprs, modules="math")
        out[role] = np.array(func(*numbers), dtype=float).reshape(array.shape)
    return out


def cross_check(derivation: Derivation, seed: int = 0) -> list[NumericCheck]:
    """Evaluate the derivation at a random point and compare with numeric references."""
    spec = derivation.spec
    point = random_point(spec, seed)
    got = evaluate(derivation, point, ("output", "grad_kernel", "grad_input", "grad_bias"))
    forward = reference_correlate(point.input, point.kernel, point.bias, spec)
    fd = finite_difference_gradients(spec, point)
    checks = [
        NumericCheck("forward vs explicit-loop reference", _err(got["output"], forward)),
        NumericCheck("dL/dW vs finite differences", _err(got["grad_kernel"], fd["kernel"])),
        NumericCheck("dL/da vs finite differences", _err(got["grad_input"], fd["input"])),
    ]
    if spec.bias:
        db_error = _err(got["grad_bias"], fd["bias"])
        checks.append(NumericCheck("dL/db vs finite differences", db_error))
    return checks


def _err(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    return float(np.max(np.abs(a - b))) if a.size else 0.0
