r"""``relu``, ``sigmoid``, ``tanh``: elementwise activations, as ``torch.nn.ReLU`` and friends.

Arrays: input ``z^{[l]}`` and output ``a^{[l]} = g(z^{[l]})``, of one shape: a vector
``(N,)`` or a map ``(C, H, W)`` (an ``HxW`` map has ``C = 1``, not drawn). Each output cell
depends on its own input cell only, so the backward pass is elementwise too::

    dL/dz = dL/da (*) g'(z)

with ``g'`` derived by SymPy: ``ReLU' = 1[z > 0]`` (``Heaviside(z, 0)``: PyTorch's
ReLU'(0) = 0), ``sigma' = sigma (1 - sigma)``, ``tanh' = 1 - tanh^2``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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
    input_option,
)
from convviz.spec import MAX_PRODUCTS, SpecError

if TYPE_CHECKING:
    from convviz.layers.namespace import Namespace

__all__ = [
    "RELU",
    "SIGMOID",
    "TANH",
    "TYPES",
    "Activation",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "refine_heaviside",
]

Shape = tuple[int, ...]


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class Activation:
    """An elementwise activation ``a = g(z)`` (the shared part of ReLU, Sigmoid, Tanh).

    Parameters
    ----------
    input_size
        ``(N,)`` for a vector, ``(H, W)`` or ``(C, H, W)`` for a map (stored as
        ``(C, H, W)``, with ``C = 1`` for ``(H, W)``); an integer means ``(N,)``.
    layer
        Layer number used in labels: ``z^{[layer]}``, ``a^{[layer]}``.
    """

    input_size: Shape = (4,)
    layer: int = 1

    TYPE: ClassVar[str] = ""
    #: Name of the function, as torch.nn spells it.
    NAME: ClassVar[str] = ""

    def __post_init__(self) -> None:
        size: Any = self.input_size
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size,)
        if (
            not isinstance(size, tuple | list)
            or not 1 <= len(size) <= 3
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in size)
        ):
            raise SpecError(
                "input_size", f"expected N, HxW or CxHxW as integers, got {self.input_size!r}"
            )
        if min(size) < 1:
            raise SpecError("input_size", f"sizes must be at least 1, got {tuple(size)}")
        if len(size) == 2:
            size = (1, *size)
        object.__setattr__(self, "input_size", tuple(int(n) for n in size))
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 1:
            raise SpecError("layer", f"must be an integer of at least 1, got {self.layer!r}")
        if self.products > MAX_PRODUCTS:
            raise SpecError(
                "input_size",
                f"layer too large to derive: {self.products:,} cells (limit {MAX_PRODUCTS:,})",
            )

    @property
    def vector(self) -> bool:
        """Whether the input is a vector ``(N,)`` rather than a map."""
        return len(self.input_size) == 1

    @property
    def products(self) -> int:
        """Work of the forward pass: one function evaluation per cell."""
        return math.prod(self.input_size)

    def full_shape(self, role: str) -> Shape:
        """``(N,)`` or ``(C, H, W)`` for every role (the layer keeps its shape)."""
        self._check_role(role)
        return self.input_size

    def display_shape(self, role: str) -> Shape:
        """``(N,)``, ``(H, W)`` or ``(C, H, W)``: a map's size-1 ``C`` is dropped."""
        self._check_role(role)
        if self.vector or self.input_size[0] > 1:
            return self.input_size
        return self.input_size[1:]

    @staticmethod
    def _check_role(role: str) -> None:
        if role.removeprefix("grad_") not in ("input", "output"):
            raise KeyError(f"an activation has no array {role!r}")

    def _size_text(self) -> str:
        return "x".join(str(n) for n in self.display_shape("input"))

    def describe(self) -> str:
        """E.g. ``ReLU of a 4-vector`` or ``Tanh of a 3x3 map``."""
        kind = "vector" if self.vector else "map"
        return f"{self.NAME} of a {self._size_text()}{'-' if self.vector else ' '}{kind}"

    def slug(self) -> str:
        """File-name friendly identifier, e.g. ``4``, ``3x3`` or ``2x3x3_l2``."""
        text = self._size_text()
        return text if self.layer == 1 else f"{text}_l{self.layer}"


@dataclass(frozen=True)
class ReLU(Activation):
    """``a = max(0, z)``, as ``torch.nn.ReLU`` (gradient 0 at ``z = 0``)."""

    TYPE: ClassVar[str] = "relu"
    NAME: ClassVar[str] = "ReLU"


@dataclass(frozen=True)
class Sigmoid(Activation):
    """``a = 1 / (1 + exp(-z))``, as ``torch.nn.Sigmoid``."""

    TYPE: ClassVar[str] = "sigmoid"
    NAME: ClassVar[str] = "Sigmoid"


@dataclass(frozen=True)
class Tanh(Activation):
    """``a = tanh(z)``, as ``torch.nn.Tanh``."""

    TYPE: ClassVar[str] = "tanh"
    NAME: ClassVar[str] = "Tanh"


# ------------------------------------------------------------------------- options
def _input_fields(parts: tuple[int, ...]) -> dict[str, Any]:
    return {"input_size": parts}


OPTIONS = (
    input_option(
        (1, 2, 3),
        "4",
        "Input size: N for a vector, HxW or CxHxW for a map (the output has the same shape).",
        _input_fields,
        ("input_size",),
    ),
    LAYER_OPTION,
)


def _z(spec: Activation) -> str:
    return f"z^{{[{spec.layer}]}}"


def _a(spec: Activation) -> str:
    return f"a^{{[{spec.layer}]}}"


def _grad(x: str) -> str:
    return rf"\frac{{\partial \mathcal{{L}}}}{{\partial {x}}}"


ARRAYS = (
    ArrayDecl("input", "z", _z, "input", reading=2, axes="c"),
    ArrayDecl("output", "a", _a, "output", axes="c"),
)


# ------------------------------------------------------------------------- forward
Cellwise = Callable[[Any, Any], Any]


def _relu(xp: Namespace, z: Any) -> Any:
    return xp.maximum([xp.zero(), z])


def _sigmoid(xp: Namespace, z: Any) -> Any:
    minus_z = xp.product([xp.const(-1), z])
    return xp.reciprocal(xp.total([xp.const(1), xp.exp(minus_z)]))


def _tanh(xp: Namespace, z: Any) -> Any:
    return xp.tanh(z)


def _elementwise(g: Cellwise) -> Callable[[Any, Any, Mapping[str, NDArray[Any]]], Any]:
    def forward(
        xp: Namespace, spec: Activation, arrays: Mapping[str, NDArray[Any]]
    ) -> dict[str, NDArray[Any]]:
        z = arrays["input"]
        a = xp.empty(z.shape)
        for pos in np.ndindex(*z.shape):
            a[pos] = g(xp, z[pos])
        return {"output": a}

    forward.__doc__ = f"``a = g(z)`` cell by cell, with ``g`` = {g.__name__.strip('_')}."
    return forward


# ------------------------------------------------------------------- references
def _reference(g: Callable[[float], float]) -> Callable[[Any, Mapping[str, NDArray[Any]]], Any]:
    def reference(spec: Activation, arrays: Mapping[str, NDArray[Any]]) -> NDArray[Any]:
        z = np.asarray(arrays["input"], dtype=np.float64)
        out = np.zeros(z.shape)
        for pos in np.ndindex(*z.shape):
            out[pos] = g(float(z[pos]))
        return out

    return reference


def _relu_float(x: float) -> float:
    return x if x > 0 else 0.0


def _sigmoid_float(x: float) -> float:
    # the form that cannot overflow for large |x|
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


# ---------------------------------------------------------------------- refine
def refine_heaviside(expr: Any) -> Any:
    """``Heaviside(x)`` (SymPy's ``H(0) = 1/2``) -> ``Heaviside(x, 0)``: ReLU'(0) = 0."""
    import sympy

    if not isinstance(expr, sympy.Basic) or not expr.has(sympy.Heaviside):
        return expr
    swap = {
        node: sympy.Heaviside(node.args[0], 0)
        for node in expr.atoms(sympy.Heaviside)
        if len(node.args) == 1 or node.args[1] == sympy.S.Half
    }
    return expr.xreplace(swap) if swap else expr


# ------------------------------------------------------------------ identities
def _cellwise_form(factor: Callable[[Any], Any]) -> Callable[[Any], NDArray[Any]]:
    """Closed form ``dL/da * g'(z)`` with ``g'(z)`` given by ``factor``."""

    def closed_form(d: Any) -> NDArray[Any]:
        import sympy

        z, up = d.input, d.grad_output
        out = np.empty(z.shape, dtype=object)
        for pos in np.ndindex(*z.shape):
            out[pos] = sympy.Mul(up[pos], factor(z[pos]))
        return out

    return closed_form


def _relu_prime(z: Any) -> Any:
    import sympy

    return sympy.Heaviside(z, 0)


def _sigmoid_of(z: Any) -> Any:
    import sympy

    return 1 / (1 + sympy.exp(-z))


def _sigmoid_prime(z: Any) -> Any:
    s = _sigmoid_of(z)
    return s * (1 - s)


def _tanh_prime(z: Any) -> Any:
    import sympy

    return 1 - sympy.tanh(z) ** 2


def _identity_latex(prime: Callable[[str], str]) -> Callable[[Activation], str]:
    def latex(spec: Activation) -> str:
        return rf"{_grad(_z(spec))} = {_grad(_a(spec))} \odot {prime(_z(spec))}"

    return latex


def _identity(name: str, prime_latex: Callable[[str], str],
              prime: Callable[[Any], Any]) -> Identity:
    return Identity(
        "da",
        "grad_input",
        name,
        _identity_latex(prime_latex),
        _cellwise_form(prime),
        method="simplify",
    )


# --------------------------------------------------------------------------- ops
def _ops(name: str, formula: str, derivative: str) -> tuple[OpDecl, ...]:
    return (
        OpDecl(
            "forward",
            "output",
            ("input",),
            (r"\Rightarrow",),
            rf"\text{{Forward pass: }} a = {formula} \text{{, cell by cell}}",
            summary=f"a = {name}(z), cell by cell",
        ),
        OpDecl(
            "da",
            "grad_input",
            ("grad_output", "input"),
            (r",", r"\Rightarrow"),
            rf"\text{{Input gradient: }} dz = da \odot {derivative} \text{{, cell by cell}}",
            summary=f"dL/dz = dL/da * {name}'(z)",
        ),
    )


def _layer_type(
    name: str,
    spec_class: type[Activation],
    summary: str,
    g: Cellwise,
    reference: Callable[[float], float],
    identity: Identity,
    ops: tuple[OpDecl, ...],
    rank: int,
    forward_latex: Callable[[str], str],
    refine: Callable[[Any], Any] | None = None,
) -> LayerType:
    return LayerType(
        name=name,
        torch_name=spec_class.__name__,
        spec_class=spec_class,
        summary=summary,
        options=OPTIONS,
        arrays=ARRAYS,
        ops=ops,
        forward=_elementwise(g),
        identities=(identity,),
        reference=_reference(reference),
        refine=refine,
        forward_latex=lambda spec: f"{_a(spec)} = {forward_latex(_z(spec))}",
        real=True,
        rank=rank,
    )


RELU = _layer_type(
    "relu",
    ReLU,
    "Rectified linear unit max(0, z), elementwise, as torch.nn.ReLU (ReLU'(0) = 0)",
    _relu,
    _relu_float,
    _identity(
        "dL/dz equals dL/da where z > 0, else 0",
        lambda z: rf"\mathbf{{1}}[{z} > 0]",
        _relu_prime,
    ),
    _ops("ReLU", r"\max(0, z)", r"\mathbf{1}[z > 0]"),
    40,
    lambda z: rf"\max(0, {z})",
    refine=refine_heaviside,
)

SIGMOID = _layer_type(
    "sigmoid",
    Sigmoid,
    "Logistic sigmoid 1 / (1 + exp(-z)), elementwise, as torch.nn.Sigmoid",
    _sigmoid,
    _sigmoid_float,
    _identity(
        "dL/dz equals dL/da times sigma(z) (1 - sigma(z))",
        lambda z: rf"\sigma({z})(1-\sigma({z}))",
        _sigmoid_prime,
    ),
    _ops("sigmoid", r"\sigma(z)", r"\sigma(z)(1-\sigma(z))"),
    41,
    lambda z: rf"\sigma({z}) = \frac{{1}}{{1 + e^{{-{z}}}}}",
)

TANH = _layer_type(
    "tanh",
    Tanh,
    "Hyperbolic tangent, elementwise, as torch.nn.Tanh",
    _tanh,
    math.tanh,
    _identity(
        "dL/dz equals dL/da times 1 - tanh(z)^2",
        lambda z: rf"(1-\tanh^{{2}}({z}))",
        _tanh_prime,
    ),
    _ops("tanh", r"\tanh(z)", r"(1-\tanh^{2}(z))"),
    42,
    lambda z: rf"\tanh({z})",
)

TYPES = (RELU, SIGMOID, TANH)
