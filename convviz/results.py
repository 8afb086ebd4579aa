"""The numbers of a network at one point: every value and gradient (no SymPy).

:func:`convviz.evaluation.evaluate_network` computes them from the derived expressions;
they live here, apart from the evaluator, so that what holds them (a network clip's
cached plan, ``convviz evaluate --json``) can be read back without importing SymPy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from convviz.network import Network, NetworkLayer

__all__ = ["ArrayResult", "LayerResult", "NetworkResult"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ArrayResult:
    """One array's numbers and the loss's gradient with respect to it (same shape)."""

    value: FloatArray
    grad: FloatArray

    def to_json(self) -> dict[str, Any]:
        """``{"value": ..., "grad": ...}`` as nested lists (a float for a scalar)."""
        return {"value": self.value.tolist(), "grad": self.grad.tolist()}


@dataclass(frozen=True)
class LayerResult:
    """The numbers of one layer: its output and its parameters, with their gradients."""

    layer: NetworkLayer
    output: ArrayResult
    params: Mapping[str, ArrayResult]
    extra: Mapping[str, FloatArray] = field(default_factory=dict)
    seconds: tuple[float, float] = (0.0, 0.0)

    def to_json(self) -> dict[str, Any]:
        """``{"type", "output", "params"}`` (plus ``"target"`` for a loss)."""
        doc: dict[str, Any] = {"type": self.layer.type, "output": self.output.to_json(),
                               "params": {k: v.to_json() for k, v in self.params.items()}}
        if "target" in self.extra:
            target = self.extra["target"]
            doc["target"] = int(target) if target.shape == () else target.tolist()
        return doc


@dataclass(frozen=True)
class NetworkResult:
    """Every value and gradient of a network at one point, in PyTorch's full layouts.

    ``layers[k]`` is the ``k``-th ``[[layer]]`` entry (0-based here, as in JSON).
    ``seconds`` holds, per layer, the time to evaluate its forward and backward cells.
    """

    network: Network
    loss: float | None
    input: ArrayResult
    layers: tuple[LayerResult, ...]

    def to_json(self) -> dict[str, Any]:
        """The document ``convviz evaluate --json`` prints."""
        return {
            "loss": self.loss,
            "input": self.input.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
