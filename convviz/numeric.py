"""Numeric cross-checks: symbolic results evaluated at random points against plain numerics.

Two independent references, for every layer type:

* the type's explicit-loop forward pass (:attr:`~convviz.layers.base.LayerType.reference`,
  for conv2d :func:`reference_correlate`), which shares no code with the forward function;
* central finite differences of the scalar loss ``L = sum(G * z)`` computed with the
  numeric forward pass, for which ``dL/dz = G`` (for a loss layer, of the loss itself).

The symbolic expressions are evaluated with :func:`sympy.lambdify` after replacing every
cell (and every ``Derivative(L, z[...])``) by a plain symbol. ``Heaviside`` is evaluated
with its own value at 0 (``Heaviside(x, 0)`` is 0 there), so no 1/2 leaks into numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.conv import correlate
from convviz.derivation import Derivation
from convviz.layers.conv2d import reference_correlate
from convviz.spec import ConvSpec

__all__ = [
    "FD_SAMPLE",
    "NumericCheck",
    "Point",
    "cross_check",
    "evaluate",
    "evaluate_cells",
    "finite_difference_gradients",
    "numeric_forward",
    "random_point",
    "random_values",
    "reference_correlate",
]

#: Acceptance threshold for max abs error in float64.
TOLERANCE = 1e-6

#: Above this many cells in one array, finite differences check an evenly spread sample.
FD_SAMPLE = 2_000


@dataclass(frozen=True)
class Point:
    """Numeric values for a layer's variables and upstream gradient (full shapes)."""

    input: NDArray[np.float64]
    kernel: NDArray[np.float64]
    bias: NDArray[np.float64]
    grad_output: NDArray[np.float64]

    def values(self) -> dict[str, NDArray[np.float64]]:
        """The point as values by role."""
        return {"input": self.input, "kernel": self.kernel, "bias": self.bias,
                "grad_output": self.grad_output}


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


def _heaviside(x: float, at_zero: float = 0.5) -> float:
    return 1.0 if x > 0 else 0.0 if x < 0 else float(at_zero)


_MODULES: list[Any] = [{"Heaviside": _heaviside, "Max": max, "Min": min}, "math"]


def evaluate_cells(
    derivation: Derivation, values: Mapping[str, NDArray[Any]], exprs: list[Any]
) -> list[float]:
    """Evaluate expressions over the derivation's cells at ``values`` (by role)."""
    cells: list[Any] = []
    numbers: list[float] = []
    for role, array in values.items():
        if role not in derivation.arrays:
            continue
        for pos, cell in np.ndenumerate(derivation.array(role)):
            if isinstance(cell, sympy.Indexed | sympy.Symbol | sympy.Derivative):
                cells.append(cell)
                numbers.append(float(np.asarray(array)[pos]))
    unique = dict(zip(cells, numbers, strict=True))
    plain = sympy.symbols(f"v0:{len(unique)}")
    swap = dict(zip(unique, plain, strict=True))
    swapped = [sympy.sympify(e).xreplace(swap) for e in exprs]
    func = sympy.lambdify(plain, swapped, modules=_MODULES)
    return [float(v) for v in func(*unique.values())]


def evaluate(
    derivation: Derivation,
    point: Point | Mapping[str, NDArray[Any]],
    roles: tuple[str, ...],
) -> dict[str, NDArray[np.float64]]:
    """Evaluate the symbolic arrays of ``roles`` at ``point`` with ``lambdify``."""
    values = point.values() if isinstance(point, Point) else dict(point)
    out: dict[str, NDArray[np.float64]] = {}
    for role in roles:
        array = derivation.array(role)
        numbers = evaluate_cells(derivation, values, list(array.flat))
        out[role] = np.array(numbers, dtype=float).reshape(array.shape)
    return out


def random_values(derivation: Derivation, seed: int = 0) -> dict[str, NDArray[np.float64]]:
    """Standard-normal values for every input, parameter, constant and upstream cell.

    Arrays a spec leaves out (no bias) are zero.
    """
    rng = np.random.default_rng(seed)
    layer, spec = derivation.layer, derivation.spec
    values: dict[str, NDArray[np.float64]] = {}
    for decl in layer.arrays:
        if decl.kind in ("input", "param", "const"):
            shape = spec.full_shape(decl.role)
            drawn = rng.standard_normal(shape)
            values[decl.role] = drawn if derivation.has(decl.role) else np.zeros(shape)
    if not layer.loss:
        values["grad_output"] = rng.standard_normal(spec.full_shape("output"))
    return values


def numeric_forward(derivation: Derivation, values: Mapping[str, NDArray[Any]]) -> Any:
    """The layer's forward function run on floats (the output array, or the loss)."""
    from convviz.layers.namespace import NUMERIC

    arrays = {k: np.asarray(v, dtype=float) for k, v in values.items() if k != "grad_output"}
    return derivation.layer.forward(NUMERIC, derivation.spec, arrays)["output"]


def _scalar_loss(
    derivation: Derivation, values: Mapping[str, NDArray[Any]]
) -> Callable[[Mapping[str, NDArray[Any]]], float]:
    upstream = values.get("grad_output")

    def loss(at: Mapping[str, NDArray[Any]]) -> float:
        out = np.asarray(numeric_forward(derivation, at), dtype=float)
        if upstream is None:
            return float(out.sum())
        return float(np.sum(upstream * out))

    return loss


def _sample(shape: tuple[int, ...], limit: int) -> list[tuple[int, ...]]:
    everything = list(np.ndindex(*shape))
    if len(everything) <= limit:
        return everything
    picks = np.unique(np.linspace(0, len(everything) - 1, limit).astype(int))
    return [everything[k] for k in picks]


def cross_check(derivation: Derivation, seed: int = 0) -> list[NumericCheck]:
    """Evaluate the derivation at a random point and compare with numeric references.

    Checks the forward pass against the type's explicit-loop reference, and every
    gradient against central finite differences (a spread sample of at most
    :data:`FD_SAMPLE` cells per array).
    """
    layer, spec = derivation.layer, derivation.spec
    values = random_values(derivation, seed)
    checks = []
    got = evaluate(derivation, values, ("output",))["output"]
    if layer.reference is not None:
        want = np.asarray(layer.reference(spec, values), dtype=float).reshape(got.shape)
        checks.append(NumericCheck("forward vs explicit-loop reference", _err(got, want)))
    loss = _scalar_loss(derivation, values)
    step = 1e-5
    for role in layer.variables:
        if not derivation.has(role):
            continue
        grad_role = f"grad_{role}"
        positions = _sample(spec.full_shape(role), FD_SAMPLE)
        grad = derivation.array(grad_role)
        symbolic = evaluate_cells(derivation, values, [grad[p] for p in positions])
        errors = []
        for pos, value in zip(positions, symbolic, strict=True):
            shifted = {k: v.copy() for k, v in values.items()}
            shifted[role][pos] += step
            up = loss(shifted)
            shifted[role][pos] -= 2 * step
            down = loss(shifted)
            errors.append(abs(value - (up - down) / (2 * step)))
        short = layer.array(role).short
        sampled = "" if len(positions) == grad.size else f" ({len(positions):,} cells sampled)"
        checks.append(
            NumericCheck(f"dL/d{short} vs finite differences{sampled}", max(errors, default=0.0))
        )
    return checks


def _err(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    return float(np.max(np.abs(a - b))) if a.size else 0.0
