r"""``dense``: a fully connected layer, as ``torch.nn.Linear``.

Arrays (PyTorch's layout, no batch axis): input ``a`` ``(N,)``, weight ``W`` ``(M, N)``
(out features by in features), bias ``b`` ``(M,)``, output ``z`` ``(M,)``, with

.. math:: z^{[l]} = W^{[l]} a^{[l-1]} + b^{[l]},
          \qquad z_j = \sum_i W_{j,i} a_i + b_j.

Every axis is kept on screen, even of size 1: the weight is always drawn as a matrix and
the vectors as vectors. The backward pass in matrix form:

* ``dL/dW = dL/dz a^T``: the outer product, ``dW[j, i] = dz_j a_i``;
* ``dL/da = W^T dL/dz``: ``da_i = sum_j W[j, i] dz_j``, column ``i`` of ``W`` against
  every ``dz``;
* ``dL/db = dL/dz``.
"""

from __future__ import annotations

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
    flag_option,
    input_option,
    numbered,
)
from convviz.spec import MAX_PRODUCTS, SpecError

if TYPE_CHECKING:
    from convviz.layers.namespace import Namespace

__all__ = ["DENSE", "TYPES", "Linear", "forward", "forward_identity", "reference"]


@dataclass(frozen=True)
class Linear:
    """A fully connected layer ``z = W a + b`` (``torch.nn.Linear``, without the batch axis).

    Parameters
    ----------
    inputs
        Input features ``N`` (``in_features``).
    outputs
        Output features ``M`` (``out_features``); the weight is ``M x N``.
    bias
        Whether the layer adds a bias ``b`` of ``M`` cells.
    layer
        Layer number used in labels: ``a^{[layer-1]}``, ``W^{[layer]}``, ``z^{[layer]}``.
    """

    inputs: int = 4
    outputs: int = 3
    bias: bool = True
    layer: int = 1

    #: The layer type's name.
    TYPE: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        for name in ("inputs", "outputs", "layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(name, f"must be a positive integer, got {value!r}")
        if not isinstance(self.bias, bool):
            raise SpecError("bias", f"must be True or False, got {self.bias!r}")
        if self.products > MAX_PRODUCTS:
            raise SpecError(
                "inputs",
                f"layer too large to derive: the forward pass has {self.products:,} "
                f"multiplications (limit {MAX_PRODUCTS:,})",
            )

    @property
    def products(self) -> int:
        """Multiplications in the forward pass: ``M * N``."""
        return self.outputs * self.inputs

    def full_shape(self, role: str) -> tuple[int, ...]:
        """Shape of ``role`` in PyTorch's layout (a gradient is shaped like its array)."""
        shapes = {
            "input": (self.inputs,),
            "weight": (self.outputs, self.inputs),
            "bias": (self.outputs,),
            "output": (self.outputs,),
        }
        try:
            return shapes[role.removeprefix("grad_")]
        except KeyError:
            raise KeyError(f"dense has no array {role!r}") from None

    def display_shape(self, role: str) -> tuple[int, ...]:
        """Display shape: the full shape, every axis kept (vectors stay vectors)."""
        return self.full_shape(role)

    def describe(self) -> str:
        """Short description, e.g. ``4 inputs, 3 outputs`` (``, no bias``)."""
        parts = [f"{self.inputs} input{'s' if self.inputs != 1 else ''}",
                 f"{self.outputs} output{'s' if self.outputs != 1 else ''}"]
        if not self.bias:
            parts.append("no bias")
        return ", ".join(parts)

    def slug(self) -> str:
        """File-name friendly identifier, e.g. ``in4_out3`` or ``in784_out64_nobias_l2``."""
        parts = [f"in{self.inputs}", f"out{self.outputs}"]
        if not self.bias:
            parts.append("nobias")
        if self.layer != 1:
            parts.append(f"l{self.layer}")
        return "_".join(parts)


# ------------------------------------------------------------------------- options
def _inputs(parts: tuple[int, ...]) -> dict[str, Any]:
    return {"inputs": parts[0]}


OPTIONS = (
    input_option((1,), "4", "Input features N (a vector of N cells).", _inputs, ("inputs",)),
    count_option("outputs", "3", "Output features M (rows of the M x N weight).",
                 metavar="M"),
    flag_option("bias", "Layer without a bias term."),
    LAYER_OPTION,
)


# -------------------------------------------------------------------------- arrays
_a = numbered("a", -1)
_w = numbered("W")
_b = numbered("b")
_z = numbered("z")


ARRAYS = (
    ArrayDecl("input", "a", _a, "input", reading=2),
    ArrayDecl("weight", "W", _w, "param", reading=1),
    ArrayDecl("bias", "b", _b, "param", reading=3, needs="bias"),
    ArrayDecl("output", "z", _z, "output"),
)

OPS = (
    OpDecl(
        "forward",
        "output",
        ("weight", "input", "bias"),
        (r"\cdot", "+", "="),
        r"\text{Forward pass: each } z_j \text{ is row } j \text{ of } W \text{ times } a "
        r"\text{, plus } b_j",
        summary="z = W a + b: row j of W times a, plus b_j",
    ),
    OpDecl(
        "dw",
        "grad_weight",
        ("grad_output", "input"),
        (",", r"\Rightarrow"),
        r"\text{Weight gradient: each } dW_{j,i} \text{ is } dz_j \text{ times } a_i",
        summary="dL/dW = dL/dz a^T (outer product)",
    ),
    OpDecl(
        "da",
        "grad_input",
        ("weight", "grad_output"),
        (",", r"\Rightarrow"),
        r"\text{Input gradient: each } da_i \text{ is column } i \text{ of } W "
        r"\text{ times } dz",
        summary="dL/da = W^T dL/dz: column i of W times dz",
    ),
    OpDecl(
        "db",
        "grad_bias",
        ("grad_output",),
        ("=",),
        r"\text{Bias gradient: } db_j = dz_j",
        needs="bias",
        summary="dL/db = dL/dz",
    ),
)


# ------------------------------------------------------------------------- forward
def forward(
    xp: Namespace, spec: Linear, arrays: Mapping[str, NDArray[Any]]
) -> dict[str, NDArray[Any]]:
    """``z = W a + b`` as one matrix product, ``[W | b] @ [a; 1]`` (numbers or symbols).

    The bias rides along as one more column of ``W`` against a constant ``1`` appended to
    ``a``, as :func:`convviz.conv.correlate` does, so every ``z_j`` is one canonical sum.
    """
    m, n = spec.outputs, spec.inputs
    a = np.asarray(arrays["input"]).reshape(n, 1)
    w = np.asarray(arrays["weight"]).reshape(m, n)
    bias = arrays.get("bias")
    if spec.bias and bias is not None:
        one = np.empty((1, 1), dtype=a.dtype)
        one[0, 0] = xp.const(1)
        a = np.concatenate([a, one])
        column = np.asarray(bias).reshape(m, 1)
        w = np.concatenate([w, column.astype(np.result_type(w, column))], axis=1)
    z = xp.matmul(w, a)
    return {"output": np.asarray(z).reshape(m)}


def reference(spec: Linear, arrays: Mapping[str, NDArray[Any]]) -> NDArray[Any]:
    """``z_j = sum_i W[j, i] a_i + b_j`` by explicit loops over float arrays."""
    a, w = arrays["input"], arrays["weight"]
    bias = arrays.get("bias")
    out = np.zeros(spec.outputs)
    for j in range(spec.outputs):
        total = float(bias[j]) if spec.bias and bias is not None else 0.0
        for i in range(spec.inputs):
            total += float(w[j, i]) * float(a[i])
        out[j] = total
    return out


def forward_identity(spec: Linear) -> str:
    """``z = W a + b`` as LaTeX."""
    bias = f" + {_b(spec)}" if spec.bias else ""
    return rf"{_z(spec)} = {_w(spec)} \, {_a(spec)}{bias}"


# ---------------------------------------------------------------------- identities
def _grad(x: str) -> str:
    return rf"\frac{{\partial \mathcal{{L}}}}{{\partial {x}}}"


def _transposed(symbol: str) -> str:
    r"""``a^{[0]}`` -> ``a^{[0]\top}`` (the transpose joins the existing superscript)."""
    return symbol[:-1] + r"\top}" if symbol.endswith("]}") else symbol + r"^{\top}"


def _matmul(left: NDArray[Any], right: NDArray[Any]) -> NDArray[Any]:
    from convviz.layers.namespace import Symbolic

    return Symbolic().matmul(left, right)


def _dw_form(d: Any) -> NDArray[Any]:
    spec: Linear = d.spec
    dz = np.asarray(d.grad_output).reshape(spec.outputs, 1)
    a_row = np.asarray(d.input).reshape(1, spec.inputs)
    return _matmul(dz, a_row)


def _da_form(d: Any) -> NDArray[Any]:
    spec: Linear = d.spec
    w_t = np.ascontiguousarray(np.asarray(d.weight).T)
    dz = np.asarray(d.grad_output).reshape(spec.outputs, 1)
    return _matmul(w_t, dz).reshape(spec.inputs)


def _db_form(d: Any) -> NDArray[Any]:
    return np.array(d.grad_output, dtype=object, copy=True)


def _dw_latex(spec: Linear) -> str:
    return rf"{_grad(_w(spec))} = {_grad(_z(spec))} \, {_transposed(_a(spec))}"


def _da_latex(spec: Linear) -> str:
    return rf"{_grad(_a(spec))} = {_transposed(_w(spec))} \, {_grad(_z(spec))}"


def _db_latex(spec: Linear) -> str:
    return rf"{_grad(_b(spec))} = {_grad(_z(spec))}"


IDENTITIES = (
    Identity("dw", "grad_weight", "dL/dW equals the outer product of dL/dz and the input",
             _dw_latex, _dw_form),
    Identity("da", "grad_input", "dL/da equals the transposed weight times dL/dz",
             _da_latex, _da_form),
    Identity("db", "grad_bias", "dL/db equals dL/dz", _db_latex, _db_form),
)


DENSE = LayerType(
    name="dense",
    torch_name="Linear",
    spec_class=Linear,
    summary="Fully connected layer z = W a + b, as torch.nn.Linear",
    options=OPTIONS,
    arrays=ARRAYS,
    ops=OPS,
    forward=forward,
    identities=IDENTITIES,
    reference=reference,
    real=False,
    rank=50,
)

TYPES = (DENSE,)
