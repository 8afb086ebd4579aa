r"""``softmax-cross-entropy`` and ``mse``: losses that end a network, as ``torch.nn``'s.

``softmax-cross-entropy`` (``torch.nn.CrossEntropyLoss`` on one sample): logits
``z^{[l]}`` ``(N,)``, the true class ``t`` (1-based, as every index convviz shows; PyTorch's
target is ``t - 1``), probabilities ``\hat{y} = softmax(z)`` and the scalar loss::

    L = -log softmax(z)_t = log(sum_j exp(z_j)) - z_t

written in the log-sum-exp form, as PyTorch computes it. Its gradient is the famous
``dL/dz = \hat{y} - y`` with ``y`` the one-hot target.

``mse`` (``torch.nn.MSELoss``, reduction ``mean``): prediction ``\hat{y}`` ``(N,)``, target
``y`` ``(N,)`` (a constant, not differentiated) and ``L = (1/N) sum_k (\hat{y}_k - y_k)^2``,
whose gradient is ``dL/d\hat{y} = 2 (\hat{y} - y) / N``.

A loss's upstream gradient is 1 (:attr:`~convviz.layers.base.LayerType.loss`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from convviz.layers.base import (
    LAYER_OPTION,
    ArrayDecl,
    Identity,
    LayerType,
    OpDecl,
    count_option,
    input_option,
)
from convviz.spec import MAX_PRODUCTS, SpecError

if TYPE_CHECKING:
    from convviz.layers.namespace import Namespace

__all__ = ["CROSS_ENTROPY", "MSE", "TYPES", "CrossEntropyLoss", "MSELoss"]

Shape = tuple[int, ...]


def _check_size(value: Any) -> tuple[int]:
    size = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(size, tuple | list)
        or len(size) != 1
        or isinstance(size[0], bool)
        or not isinstance(size[0], int)
    ):
        raise SpecError("input_size", f"a loss takes a vector N, got {value!r}")
    if size[0] < 1:
        raise SpecError("input_size", f"sizes must be at least 1, got {tuple(size)}")
    if size[0] > MAX_PRODUCTS:
        raise SpecError(
            "input_size",
            f"layer too large to derive: {size[0]:,} cells (limit {MAX_PRODUCTS:,})",
        )
    return (int(size[0]),)


def _check_layer(layer: Any) -> None:
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 1:
        raise SpecError("layer", f"must be an integer of at least 1, got {layer!r}")


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class CrossEntropyLoss:
    """Softmax followed by the negative log-likelihood of the true class.

    Parameters
    ----------
    input_size
        ``(N,)``: the number of classes (an integer means ``(N,)``).
    target
        The true class, 1-based (``1 <= target <= N``); PyTorch's target is ``target - 1``.
    layer
        Layer number used in labels: the logits are ``z^{[layer]}``.
    """

    input_size: tuple[int] = (3,)
    target: int = 1
    layer: int = 2

    TYPE: ClassVar[str] = "softmax-cross-entropy"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", _check_size(self.input_size))
        n = self.classes
        if isinstance(self.target, bool) or not isinstance(self.target, int):
            raise SpecError("target", f"must be an integer, got {self.target!r}")
        if not 1 <= self.target <= n:
            raise SpecError("target", f"must be between 1 and {n}, got {self.target}")
        _check_layer(self.layer)

    @property
    def classes(self) -> int:
        """Number of classes ``N``."""
        return self.input_size[0]

    @property
    def products(self) -> int:
        """Work of the forward pass: one exponential per class."""
        return self.classes

    def full_shape(self, role: str) -> Shape:
        """``(N,)`` for the logits, probabilities and their gradient; ``()`` for the loss."""
        base = role.removeprefix("grad_")
        if base == "output":
            return ()
        if base in ("input", "probs"):
            return self.input_size
        raise KeyError(f"softmax-cross-entropy has no array {role!r}")

    def display_shape(self, role: str) -> Shape:
        """As :meth:`full_shape` (vectors keep their axis)."""
        return self.full_shape(role)

    def describe(self) -> str:
        """E.g. ``3 classes, true class 1``."""
        return f"{self.classes} classes, true class {self.target}"

    def slug(self) -> str:
        """File-name friendly identifier, e.g. ``3_t1`` or ``5_t2_l3``."""
        text = f"{self.classes}_t{self.target}"
        return text if self.layer == 2 else f"{text}_l{self.layer}"


@dataclass(frozen=True)
class MSELoss:
    """Mean squared error between a prediction and a target vector (reduction ``mean``).

    Parameters
    ----------
    input_size
        ``(N,)``: the length of the prediction and of the target.
    layer
        Layer number (used in file names).
    """

    input_size: tuple[int] = (3,)
    layer: int = 2

    TYPE: ClassVar[str] = "mse"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", _check_size(self.input_size))
        _check_layer(self.layer)

    @property
    def size(self) -> int:
        """Length ``N`` of the vectors."""
        return self.input_size[0]

    @property
    def products(self) -> int:
        """Work of the forward pass: one square per cell."""
        return self.size

    def full_shape(self, role: str) -> Shape:
        """``(N,)`` for the prediction, target and gradient; ``()`` for the loss."""
        base = role.removeprefix("grad_")
        if base == "output":
            return ()
        if base in ("input", "target"):
            return self.input_size
        raise KeyError(f"mse has no array {role!r}")

    def display_shape(self, role: str) -> Shape:
        """As :meth:`full_shape` (vectors keep their axis)."""
        return self.full_shape(role)

    def describe(self) -> str:
        """E.g. ``3-vector prediction``."""
        return f"{self.size}-vector prediction"

    def slug(self) -> str:
        """File-name friendly identifier, e.g. ``3`` or ``3_l3``."""
        text = str(self.size)
        return text if self.layer == 2 else f"{text}_l{self.layer}"


# ------------------------------------------------------------------------- options
def _vector(parts: tuple[int, ...]) -> dict[str, Any]:
    return {"input_size": parts}


def _parse_target(value: Any) -> dict[str, Any]:
    """A whole number; the spec checks the range (``between 1 and N``)."""
    text = str(value).strip() if isinstance(value, int | str) else None
    if isinstance(value, bool) or text is None or not re.fullmatch(r"[+-]?\d+", text):
        raise SpecError("target", f"must be a whole number (the true class), got {value!r}")
    return {"target": int(text)}


#: ``--target``: a :func:`count_option` whose range is the spec's (``1..N``), so that
#: ``0`` and ``N + 1`` get the same message.
TARGET_OPTION = dataclasses.replace(
    count_option(
        "target",
        "1",
        "The true class, 1-based like every index shown (PyTorch's target is one less).",
        metavar="K",
    ),
    parse=_parse_target,
)

CE_OPTIONS = (
    input_option(
        (1,),
        "3",
        "Number of classes N (the logits are a vector).",
        _vector,
        ("input_size",),
    ),
    TARGET_OPTION,
    LAYER_OPTION,
)

MSE_OPTIONS = (
    input_option(
        (1,),
        "3",
        "Length N of the prediction and target vectors.",
        _vector,
        ("input_size",),
    ),
    LAYER_OPTION,
)


# -------------------------------------------------------------------------- arrays
def _z(spec: CrossEntropyLoss) -> str:
    return f"z^{{[{spec.layer}]}}"


def _loss(spec: Any) -> str:
    return r"\mathcal{L}"


def _y_hat(spec: Any) -> str:
    return r"\hat{y}"


def _y(spec: Any) -> str:
    return "y"


def _grad(x: str) -> str:
    return rf"\frac{{\partial \mathcal{{L}}}}{{\partial {x}}}"


CE_ARRAYS = (
    ArrayDecl("input", "z", _z, "input", reading=2),
    ArrayDecl("probs", r"\hat{y}", _y_hat, "value", reading=3),
    ArrayDecl("output", "L", _loss, "output"),
)

MSE_ARRAYS = (
    ArrayDecl("input", r"\hat{y}", _y_hat, "input", reading=2),
    ArrayDecl("target", "y", _y, "const", reading=3),
    ArrayDecl("output", "L", _loss, "output"),
)


# ------------------------------------------------------------------------- forward
def _softmax_parts(xp: Namespace, z: NDArray[Any]) -> tuple[list[Any], Any]:
    exps = [xp.exp(z[k]) for k in range(z.shape[0])]
    return exps, xp.total(exps)


def cross_entropy_forward(
    xp: Namespace, spec: CrossEntropyLoss, arrays: Mapping[str, NDArray[Any]]
) -> dict[str, NDArray[Any]]:
    r"""``\hat{y} = softmax(z)`` and ``L = -log \hat{y}_t = log(sum_j e^{z_j}) - z_t``."""
    z = arrays["input"]
    exps, total = _softmax_parts(xp, z)
    share = xp.reciprocal(total)
    probs = xp.empty(z.shape)
    for k, e in enumerate(exps):
        probs[k] = xp.product([e, share])
    t = spec.target - 1
    loss = xp.empty(())
    loss[()] = xp.total([xp.log(total), xp.product([xp.const(-1), z[t]])])
    return {"output": loss, "probs": probs}


def mse_forward(
    xp: Namespace, spec: MSELoss, arrays: Mapping[str, NDArray[Any]]
) -> dict[str, NDArray[Any]]:
    r"""``L = (1/N) sum_k (\hat{y}_k - y_k)^2``, the ``1/N`` exact for symbols."""
    y_hat, y = arrays["input"], arrays["target"]
    squares = []
    for k in range(y_hat.shape[0]):
        error = xp.total([y_hat[k], xp.product([xp.const(-1), y[k]])])
        squares.append(xp.product([error, error]))
    loss = xp.empty(())
    loss[()] = xp.product([xp.reciprocal(xp.const(spec.size)), xp.total(squares)])
    return {"output": loss}


# ---------------------------------------------------------------------- references
def cross_entropy_reference(
    spec: CrossEntropyLoss, arrays: Mapping[str, NDArray[Any]]
) -> NDArray[Any]:
    """The loss by a max-shifted log-sum-exp loop (as PyTorch computes it)."""
    z = [float(v) for v in np.asarray(arrays["input"], dtype=np.float64).reshape(-1)]
    top = max(z)
    acc = 0.0
    for v in z:
        acc += math.exp(v - top)
    return np.array(top + math.log(acc) - z[spec.target - 1])


def mse_reference(spec: MSELoss, arrays: Mapping[str, NDArray[Any]]) -> NDArray[Any]:
    """The loss by an explicit loop."""
    y_hat = np.asarray(arrays["input"], dtype=np.float64)
    y = np.asarray(arrays["target"], dtype=np.float64)
    acc = 0.0
    for k in range(spec.size):
        acc += (float(y_hat[k]) - float(y[k])) ** 2
    return np.array(acc / spec.size)


# ---------------------------------------------------------------------- identities
def _ce_forward_latex(spec: CrossEntropyLoss) -> str:
    t = spec.target
    return (rf"\mathcal{{L}} = -\log \hat{{y}}_{{{t}}} = "
            rf"\log \sum_{{j}} e^{{z_{{j}}}} - z_{{{t}}}")


def _mse_forward_latex(spec: MSELoss) -> str:
    return (rf"\mathcal{{L}} = \frac{{1}}{{{spec.size}}} "
            r"\sum_{k} (\hat{y}_{k} - y_{k})^{2}")


def _ce_form(d: Any) -> NDArray[Any]:
    r"""``\hat{y} - y``: the probabilities minus the one-hot target."""
    probs = d.probs
    t = d.spec.target - 1
    out = np.empty(probs.shape, dtype=object)
    for k in range(probs.shape[0]):
        out[k] = probs[k] - 1 if k == t else probs[k]
    return out


def _mse_form(d: Any) -> NDArray[Any]:
    r"""``2 (\hat{y} - y) / N``."""
    import sympy

    y_hat, y = d.input, d.target
    scale = sympy.Rational(2, d.spec.size)
    out = np.empty(y_hat.shape, dtype=object)
    for k in range(y_hat.shape[0]):
        out[k] = scale * (y_hat[k] - y[k])
    return out


def _mse_latex(spec: MSELoss) -> str:
    return _grad(_y_hat(spec)) + rf" = \frac{{2}}{{{spec.size}}}(\hat{{y}} - y)"


CE_IDENTITIES = (
    Identity(
        "da",
        "grad_input",
        "dL/dz equals the probabilities minus the one-hot target",
        lambda spec: rf"{_grad('z')} = \hat{{y}} - y",
        _ce_form,
        method="simplify",
    ),
)

MSE_IDENTITIES = (
    Identity(
        "da",
        "grad_input",
        "dL/dy_hat equals 2 (y_hat - y) / N",
        _mse_latex,
        _mse_form,
    ),
)


# ----------------------------------------------------------------------------- ops
CE_OPS = (
    OpDecl(
        "forward",
        "output",
        ("input",),
        (r"\Rightarrow",),
        r"\text{Loss: } \mathcal{L} = -\log \hat{y}_t = \log \textstyle\sum_j e^{z_j} - z_t",
        summary="L = -log softmax(z)_t",
    ),
    OpDecl(
        "softmax",
        "probs",
        ("input",),
        (r"\Rightarrow",),
        r"\text{Softmax: each } \hat{y} \text{ cell is } e^{z_k} \text{ over the sum of "
        r"every } e^{z_j}",
        summary="y_hat = softmax(z)",
    ),
    OpDecl(
        "da",
        "grad_input",
        ("input",),
        (r"\Rightarrow",),
        r"\text{Input gradient: } dz = \hat{y} - y \text{, the probabilities minus the "
        r"one-hot target}",
        summary="dL/dz = y_hat - y",
    ),
)

MSE_OPS = (
    OpDecl(
        "forward",
        "output",
        ("input", "target"),
        (r",", r"\Rightarrow"),
        r"\text{Loss: } \mathcal{L} = \frac{1}{N} \sum_k (\hat{y}_k - y_k)^2",
        summary="L = mean((y_hat - y)^2)",
    ),
    OpDecl(
        "da",
        "grad_input",
        ("input", "target"),
        (r",", r"\Rightarrow"),
        r"\text{Input gradient: each } d\hat{y} \text{ cell is } "
        r"\frac{2}{N}(\hat{y}_k - y_k)",
        summary="dL/dy_hat = 2 (y_hat - y) / N",
    ),
)


CROSS_ENTROPY = LayerType(
    name="softmax-cross-entropy",
    torch_name="CrossEntropyLoss",
    spec_class=CrossEntropyLoss,
    summary="Softmax then negative log-likelihood of the true class, as "
    "torch.nn.CrossEntropyLoss",
    options=CE_OPTIONS,
    arrays=CE_ARRAYS,
    ops=CE_OPS,
    forward=cross_entropy_forward,
    identities=CE_IDENTITIES,
    reference=cross_entropy_reference,
    forward_latex=_ce_forward_latex,
    loss=True,
    real=True,
    rank=90,
)

MSE = LayerType(
    name="mse",
    torch_name="MSELoss",
    spec_class=MSELoss,
    summary="Mean squared error (reduction mean), as torch.nn.MSELoss",
    options=MSE_OPTIONS,
    arrays=MSE_ARRAYS,
    ops=MSE_OPS,
    forward=mse_forward,
    identities=MSE_IDENTITIES,
    reference=mse_reference,
    forward_latex=_mse_forward_latex,
    loss=True,
    real=True,
    rank=91,
)

TYPES = (CROSS_ENTROPY, MSE)
