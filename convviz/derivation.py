"""A layer's forward pass and its gradients, as arrays of SymPy expressions.

:func:`derive` works for every layer type: it makes a SymPy cell for every cell of the
layer's inputs and parameters (named by the type's :class:`~convviz.layers.base.ArrayDecl`),
runs the type's forward function on them, and derives the gradient of the loss with
respect to every input and parameter cell by the chain rule, against the opaque upstream
gradient ``Derivative(L(y, y_hat), z[...])`` (or, for a loss, from the loss itself).
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.arithmetic import CanonicalBuilder
from convviz.gradients import Engine, chain_rule
from convviz.highlights import ArrayInfo
from convviz.layers import layer_type
from convviz.layers.namespace import Symbolic
from convviz.symbolic import cell_base, cells, loss_function

if TYPE_CHECKING:
    from convviz.layers.base import LayerType

__all__ = ["GC_PAUSE_PRODUCTS", "OPS", "Derivation", "derive", "paused_gc", "upstream_cells"]

#: conv2d's operations and the role each computes (see :mod:`convviz.layers.conv2d`).
OPS: dict[str, str] = {"forward": "output", "dw": "grad_kernel", "da": "grad_input",
                       "db": "grad_bias"}


@dataclass(frozen=True)
class Derivation:
    """Everything derived for one layer, every array in full shape.

    Attributes
    ----------
    spec
        The layer.
    layer
        Its type's declaration.
    arrays
        Every role's array: inputs and parameters (cells), computed arrays (expressions),
        ``grad_output`` (``Derivative(L, z[...])`` cells) and the gradients.
    bases
        The ``IndexedBase`` (or ``Symbol`` for a scalar) behind each role's cells.

    Roles are also attributes: ``derivation.input``, ``derivation.grad_kernel``.
    """

    spec: Any
    layer: LayerType
    arrays: Mapping[str, NDArray[Any]]
    bases: Mapping[str, sympy.Basic]

    def __getattr__(self, name: str) -> Any:
        arrays = self.__dict__.get("arrays")
        if arrays is not None and name in arrays:
            return arrays[name]
        raise AttributeError(name)

    def with_arrays(self, **changes: NDArray[Any]) -> Derivation:
        """A copy with some arrays replaced (tests plant faults this way)."""
        return Derivation(self.spec, self.layer, {**self.arrays, **changes}, self.bases)

    def array(self, role: str) -> NDArray[Any]:
        """Full-shape array for ``role``."""
        try:
            return self.arrays[role]
        except KeyError:
            raise KeyError(f"{self.layer.name} has no array {role!r}") from None

    def has(self, role: str) -> bool:
        """Whether ``role`` exists for this spec (a layer without bias has no ``bias``)."""
        if role not in self.arrays:
            return False
        needs = self.layer.array(role).needs
        return not needs or bool(getattr(self.spec, needs))

    def displayed(self, role: str) -> NDArray[Any]:
        """Array for ``role`` in its display shape."""
        return self.array(role).reshape(self.spec.display_shape(role))

    def targets(self, op: str) -> NDArray[Any]:
        """Display-shape array of the expressions that ``op`` computes."""
        return self.displayed(self.layer.op(op).target)

    def name(self, role: str) -> str:
        """LaTeX name of a non-gradient array (``a^{[1]}``), as its cells are named."""
        if role in self.bases:
            return str(self.bases[role])
        return str(self.layer.array(role).symbol(self.spec))

    def symbol(self, role: str) -> str:
        """Name of the SymPy array behind ``role``'s cells (``da^{[1]}`` for gradients)."""
        if role == "grad_output" and "output" in self.bases and not self.layer.loss:
            return str(self.bases["output"])
        if role.startswith("grad_"):
            return "d" + self.name(role.removeprefix("grad_"))
        return self.name(role)

    def label(self, role: str) -> str:
        """LaTeX title of ``role``: its name, or dL/d its name for a gradient."""
        if role.startswith("grad_"):
            of = self.name(role.removeprefix("grad_"))
            return rf"\frac{{\partial \mathcal{{L}}}}{{\partial {of}}}"
        return self.name(role)

    def array_info(self, role: str) -> ArrayInfo:
        """Name, symbol and display shape of ``role``."""
        return ArrayInfo(role, self.label(role), self.symbol(role), self.spec.display_shape(role))

    def arrays_for(self, op: str) -> dict[str, ArrayInfo]:
        """The arrays that take part in ``op``: its operands, then its target."""
        decl = self.layer.op(op)
        roles = [r for r in decl.operands if self.has(r)]
        roles.append(decl.target)
        return {role: self.array_info(role) for role in roles}


def derive(
    spec: Any,
    *,
    engine: Engine = "product-rule",
    only: Collection[str] | None = None,
    names: Mapping[str, str] | None = None,
) -> Derivation:
    """Run the forward pass on symbols and derive the gradients by the chain rule.

    Parameters
    ----------
    spec
        The layer (any layer type's spec).
    engine
        How each chain-rule term is differentiated (see :mod:`convviz.gradients`).
    only
        Roles wanted (``"output"``, ``"grad_input"`` ...): gradients not listed are not
        derived (their arrays are absent), so a command computes only what it shows.
        ``None``: everything.
    names
        LaTeX names overriding the declared ones by role, e.g. ``{"input": "p^{[1]}"}``
        when a network feeds a pooling result into a flatten (cells are named after them).
    """
    with paused_gc(spec.products >= GC_PAUSE_PRODUCTS):
        return _derive(spec, engine, only, names or {})


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
        # The new objects go to the permanent generation, so the collector's next full
        # pass does not scan the whole derivation again (they are still freed by
        # reference counting).
        gc.freeze()
        if enabled:
            gc.enable()


def upstream_cells(loss: sympy.Expr, outputs: NDArray[Any]) -> NDArray[Any]:
    """``Derivative(loss, z)`` for every cell ``z`` of ``outputs`` (cells of one array).

    The first is built by ``sympy.Derivative``; the others as it builds an unevaluated
    derivative by one cell (``Expr.__new__(Derivative, loss, Tuple(z, 1))``), without its
    checks, and share the first one's deduced facts (as the cells do: every ``z`` has the
    same assumptions, so every derivative has the same facts). The results are ``==``,
    hash and print exactly as ``sympy.Derivative(loss, z)`` (tests check).
    """
    out = np.empty(outputs.shape, dtype=object)
    first: Any = None
    for pos, z in np.ndenumerate(outputs):
        if first is None:
            first = sympy.Derivative(loss, z)
            first.is_commutative  # noqa: B018  (deduced once, for all of them to share)
            out[pos] = first
            continue
        count = first.args[1]
        node = sympy.Expr.__new__(
            sympy.Derivative, loss, sympy.Basic.__new__(sympy.Tuple, z, count.args[1])
        )
        node._assumptions = first._assumptions
        out[pos] = node
    return out


def _derive(
    spec: Any, engine: Engine, only: Collection[str] | None, names: Mapping[str, str]
) -> Derivation:
    layer = layer_type(spec)
    builder = CanonicalBuilder()
    arrays: dict[str, NDArray[Any]] = {}
    bases: dict[str, sympy.Basic] = {}
    for decl in layer.arrays:
        if decl.kind in ("upstream", "value") and decl.role != "output":
            continue
        full, display = spec.full_shape(decl.role), spec.display_shape(decl.role)
        base = cell_base(names.get(decl.role) or decl.symbol(spec), display, real=layer.real)
        bases[decl.role] = base
        if decl.kind in ("input", "param", "const"):
            if decl.needs and not getattr(spec, decl.needs):
                zeros = np.empty(full, dtype=object)
                zeros.fill(sympy.S.Zero)
                arrays[decl.role] = zeros
            else:
                arrays[decl.role] = cells(base, full, display)
    computed = layer.forward(Symbolic(builder), spec, arrays)
    arrays.update(computed)
    output = arrays["output"]
    if layer.loss:
        upstream = np.empty(output.shape, dtype=object)
        upstream.fill(sympy.S.One)
    else:
        output_cells = cells(bases["output"], output.shape, spec.display_shape("output"))
        upstream = upstream_cells(loss_function(), output_cells)
    arrays["grad_output"] = upstream
    roles = [r for r in layer.variables if only is None or f"grad_{r}" in only]
    variables = [arrays[role] for role in roles]
    grads = chain_rule(
        output, upstream, variables, engine=engine, builder=builder,
        local_gradients=layer.local_gradients,
    )
    for role, grad in zip(roles, grads, strict=True):
        if layer.refine is not None:
            refine = layer.refine
            refined = np.empty(grad.shape, dtype=object)
            flat = refined.reshape(-1)
            for n, value in enumerate(grad.flat):
                flat[n] = refine(value)
            grad = refined
        arrays[f"grad_{role}"] = grad
    return Derivation(spec=spec, layer=layer, arrays=arrays, bases=bases)
