"""A layer's forward pass and its three gradients, as arrays of SymPy expressions."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

from convviz.arithmetic import CanonicalBuilder
from convviz.conv import correlate
from convviz.gradients import Engine, chain_rule
from convviz.highlights import ArrayInfo
from convviz.spec import ConvSpec
from convviz.symbolic import LayerSymbols

__all__ = ["OPS", "Derivation", "derive", "paused_gc"]

#: Operations and the role of the array each one computes.
OPS: dict[str, str] = {
    "forward": "output",
    "dw": "grad_kernel",
    "da": "grad_input",
    "db": "grad_bias",
}

#: Roles drawn as operands of each operation, in on-screen order.
OPERANDS: dict[str, tuple[str, ...]] = {
    "forward": ("input", "kernel", "bias"),
    "dw": ("input", "grad_output"),
    "da": ("grad_output", "kernel"),
    "db": ("grad_output",),
}


@dataclass(frozen=True)
class Derivation:
    """Everything derived for one layer (arrays in full shape, see :mod:`convviz.symbolic`).

    Attributes
    ----------
    input, kernel, bias
        The layer's variables (bias cells are zero when the layer has none).
    output
        Expression of every output cell: correlation plus bias.
    grad_output
        ``dL/dz`` cells, ``Derivative(L(y, y_hat), z[...])``.
    grad_kernel, grad_input, grad_bias
        ``dL/dW``, ``dL/da``, ``dL/db`` from the chain rule.
    """

    spec: ConvSpec
    symbols: LayerSymbols
    input: NDArray[Any]
    kernel: NDArray[Any]
    bias: NDArray[Any]
    output: NDArray[Any]
    grad_output: NDArray[Any]
    grad_kernel: NDArray[Any]
    grad_input: NDArray[Any]
    grad_bias: NDArray[Any]

    def array(self, role: str) -> NDArray[Any]:
        """Full-shape array for ``role`` (one of :data:`convviz.highlights.ROLES`)."""
        return getattr(self, role)  # type: ignore[no-any-return]

    def displayed(self, role: str) -> NDArray[Any]:
        """Array for ``role`` in its display shape."""
        return self.symbols.display(self.array(role), role)

    def targets(self, op: str) -> NDArray[Any]:
        """Display-shape array of the expressions that ``op`` computes."""
        return self.displayed(_target_role(op))

    def array_info(self, role: str) -> ArrayInfo:
        """Name, symbol and display shape of ``role``."""
        return array_info(self.symbols, role)

    def arrays_for(self, op: str) -> dict[str, ArrayInfo]:
        """The arrays that take part in ``op``: its operands, then its target."""
        roles = [r for r in OPERANDS[op] if r != "bias" or self.spec.bias]
        roles.append(_target_role(op))
        return {role: self.array_info(role) for role in roles}


def _target_role(op: str) -> str:
    try:
        return OPS[op]
    except KeyError:
        raise ValueError(f"unknown op {op!r}; expected one of {', '.join(OPS)}") from None


def array_info(symbols: LayerSymbols, role: str) -> ArrayInfo:
    """Describe the array playing ``role`` for the layer of ``symbols``."""
    spec = symbols.spec
    a, w, b, z = (str(s) for s in (symbols.input, symbols.kernel, symbols.bias, symbols.output))
    loss = r"\mathcal{L}"

    def grad(name: str) -> str:
        return rf"\frac{{\partial {loss}}}{{\partial {name}}}"

    table = {
        "input": (a, a),
        "kernel": (w, w),
        "bias": (b, b),
        "output": (z, z),
        "grad_output": (grad(z), z),
        "grad_input": (grad(a), f"d{a}"),
        "grad_kernel": (grad(w), f"d{w}"),
        "grad_bias": (grad(b), f"d{b}"),
    }
    label, symbol = table[role]
    return ArrayInfo(role=role, label=label, symbol=symbol, shape=spec.display_shape(role))


def derive(spec: ConvSpec, *, engine: Engine = "product-rule") -> Derivation:
    """Run the forward pass on symbols and derive dL/dW, dL/da and dL/db.

    Parameters
    ----------
    spec
        The layer.
    engine
        How each chain-rule term is differentiated (see :mod:`convviz.gradients`).
    """
    with paused_gc(spec.products >= GC_PAUSE_PRODUCTS):
        return _derive(spec, engine)


#: Layers from this many forward multiplications on derive with the collector paused;
#: below it the collector's passes cost less than the full pass its resumption triggers.
GC_PAUSE_PRODUCTS = 5_000


@contextmanager
def paused_gc(pause: bool = True) -> Iterator[None]:
    """Pause the cyclic garbage collector while building many SymPy objects.

    A derivation allocates hundreds of thousands of small objects and no reference
    cycles worth collecting; without the pause, collector passes over the growing heap
    cost about a third of the time on large layers. Plain reference counting still frees
    everything as usual.
    """
    if not pause:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _derive(spec: ConvSpec, engine: Engine) -> Derivation:
    symbols = LayerSymbols.for_spec(spec)
    a = symbols.input_cells()
    w = symbols.kernel_cells()
    b = symbols.bias_cells()
    builder = CanonicalBuilder()
    z = correlate(
        a,
        w,
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        bias=b,
        builder=builder,
    )
    dz = symbols.grad_output_cells()
    dw, da, db = chain_rule(z, dz, [w, a, b], engine=engine, builder=builder)
    return Derivation(
        spec=spec,
        symbols=symbols,
        input=a,
        kernel=w,
        bias=b,
        output=z,
        grad_output=dz,
        grad_kernel=dw,
        grad_input=da,
        grad_bias=db,
    )
