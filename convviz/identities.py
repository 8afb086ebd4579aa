"""The closed forms of the backward pass, checked by SymPy for the layer at hand.

Derived cell by cell with the chain rule, the gradients turn out to be convolutions again:

* ``dL/dW = a * dL/dz``: correlate the (padded) input with the upstream gradient, taking
  the layer's dilation as the stride and its stride as the dilation;
* ``dL/da = dL/dz *full rot180(W)``: the full correlation of the stride-dilated upstream
  gradient with the kernel rotated by 180 degrees (the transposed convolution), cropped
  by the padding;
* ``dL/db = sum of dL/dz`` over each filter's map.

:func:`verify` builds each right-hand side with :func:`convviz.conv.correlate` on the
symbolic arrays and asks SymPy whether ``expand(derived - closed_form)`` is zero in every
cell. :class:`FullConvolutionView` describes the full correlation's geometry so that the
renderer can draw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.conv import correlate, dilate, pad, rot180
from convviz.derivation import Derivation, derive
from convviz.highlights import Index
from convviz.spec import ConvSpec, Pair

__all__ = [
    "ENGINE_CHECK_LIMIT",
    "FullConvolutionView",
    "IdentityCheck",
    "closed_forms",
    "verify",
]

#: Largest layer (forward multiplications) for which :func:`verify` also re-derives every
#: gradient with ``sympy.diff`` on whole output expressions to confirm the product-rule
#: engine; that path costs milliseconds per (output, variable) pair.
ENGINE_CHECK_LIMIT = 1_500


@dataclass(frozen=True)
class IdentityCheck:
    """Outcome of one symbolic identity.

    Attributes
    ----------
    op
        Which gradient (``dw``, ``da``, ``db``) or ``engines``.
    name
        Short description.
    latex
        The identity as LaTeX, as the animations show it.
    holds
        Whether SymPy confirmed it in every cell (``None`` when not run).
    detail
        Why it failed or was skipped (empty when it holds).
    """

    op: str
    name: str
    latex: str
    holds: bool | None
    detail: str = ""


@dataclass(frozen=True)
class FullConvolutionView:
    """Geometry of ``dL/da`` as a full correlation of ``dL/dz`` with ``rot180(W)``.

    The upstream gradient is spread out by the stride (``s - 1`` zeros between cells) and
    padded by the dilated kernel span minus one, giving a grid of ``grid_size`` per
    filter. Correlating it with the rotated kernel (dilated as in the layer) yields the
    gradient of the padded input; cropping the padding gives ``dL/da``.
    """

    spec: ConvSpec

    @property
    def offset(self) -> Pair:
        """Zero rows/cols added on top/left: ``d (k - 1)``."""
        s = self.spec
        return (s.dilation[0] * (s.kernel_size[0] - 1), s.dilation[1] * (s.kernel_size[1] - 1))

    @property
    def grid_size(self) -> Pair:
        """Height and width of the padded, stride-dilated ``dL/dz`` grid."""
        s = self.spec
        return (
            s.padded_size[0] + self.offset[0],
            s.padded_size[1] + self.offset[1],
        )

    @property
    def trailing(self) -> Pair:
        """Zero rows/cols added on the bottom/right."""
        s = self.spec
        oh, ow = s.output_size
        return (
            s.padded_size[0] - (oh - 1) * s.stride[0] - 1,
            s.padded_size[1] - (ow - 1) * s.stride[1] - 1,
        )

    def grad_output_position(self, index: Index) -> Index:
        """Where cell ``index`` of ``dL/dz`` sits in the grid (leading axes unchanged)."""
        s = self.spec
        *lead, i, j = index
        return (
            *lead,
            self.offset[0] + (i - 1) * s.stride[0] + 1,
            self.offset[1] + (j - 1) * s.stride[1] + 1,
        )

    def rotated_kernel_position(self, index: Index) -> Index:
        """Where kernel cell ``index`` lands once the kernel is rotated by 180 degrees."""
        kh, kw = self.spec.kernel_size
        *lead, p, q = index
        return (*lead, kh - p + 1, kw - q + 1)

    def window(self, index: Index) -> tuple[Index, Pair]:
        """Top-left grid cell (1-based row, col) and step of the window for ``dL/da[index]``.

        The window covers ``kh x kw`` cells spaced by the dilation.
        """
        s = self.spec
        *_, i, j = index
        return ((i + s.padding[0], j + s.padding[1]), s.dilation)


def closed_forms(derivation: Derivation) -> dict[str, NDArray[Any]]:
    """Right-hand sides of the three identities, in full shape, built by correlation."""
    spec = derivation.spec
    a, w, dz = derivation.input, derivation.kernel, derivation.grad_output
    kh, kw = spec.kernel_size
    dw = np.empty(w.shape, dtype=object)
    for f in range(spec.filters):
        for c in range(spec.channels):
            full = correlate(
                a[c : c + 1],
                dz[f][None, None],
                stride=spec.dilation,
                dilation=spec.stride,
                padding=spec.padding,
            )
            dw[f, c] = full[0, :kh, :kw]
    view = FullConvolutionView(spec)
    spread = pad(dilate(dz, spec.stride), view.offset, _add(view.offset, view.trailing))
    flipped = rot180(w).transpose(1, 0, 2, 3)
    grad_padded = correlate(spread, np.ascontiguousarray(flipped), dilation=spec.dilation)
    ph, pw = spec.padding
    h, wd = spec.input_size
    da = grad_padded[:, ph : ph + h, pw : pw + wd]
    db = np.array([sympy.Add(*dz[f].flat) for f in range(spec.filters)], dtype=object)
    return {"dw": dw, "da": da, "db": db}


def _add(x: Pair, y: Pair) -> Pair:
    return (x[0] + y[0], x[1] + y[1])


def _labels(derivation: Derivation) -> dict[str, str]:
    s = derivation.symbols
    a, w, b, z = (str(v) for v in (s.input, s.kernel, s.bias, s.output))

    def d(x: str) -> str:
        return rf"\frac{{\partial \mathcal{{L}}}}{{\partial {x}}}"

    spec = derivation.spec
    note = ""
    if spec.stride != (1, 1) or spec.dilation != (1, 1):
        note = (
            rf"\quad \text{{(stride {_pair(spec.dilation)}, dilation {_pair(spec.stride)})}}"
        )
    many = spec.filters > 1
    bias_cell = f"{b}_f" if many else b
    z_cell = f"{z}_{{f,i,j}}" if many else f"{z}_{{i,j}}"
    return {
        "dw": rf"{d(w)} = {a} * {d(z)}{note}",
        "da": rf"{d(a)} = {d(z)} *_{{\mathrm{{full}}}} \operatorname{{rot180}}({w})",
        "db": rf"{d(bias_cell)} = \sum_{{i,j}} {d(z_cell)}",
    }


def _pair(value: Pair) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}\times{value[1]}"


def verify(
    derivation: Derivation,
    *,
    engines: bool = True,
    ops: tuple[str, ...] = ("dw", "da", "db"),
) -> list[IdentityCheck]:
    """Check the identities of ``ops`` cell by cell with SymPy; optionally the engines too.

    With ``engines=True`` and a layer within :data:`ENGINE_CHECK_LIMIT`, the gradients are
    also re-derived with ``sympy.diff`` (``engine="sympy"``) and compared cell by cell.
    """
    spec = derivation.spec
    forms = closed_forms(derivation)
    labels = _labels(derivation)
    names = {
        "dw": "dL/dW equals the input correlated with dL/dz",
        "da": "dL/da equals the full correlation of dL/dz with the 180-degree rotated kernel",
        "db": "dL/db equals dL/dz summed over each filter's map",
    }
    derived = {
        "dw": derivation.grad_kernel,
        "da": derivation.grad_input,
        "db": derivation.grad_bias,
    }
    checks = []
    for op in ops:
        if op == "db" and not spec.bias:
            checks.append(IdentityCheck(op, names[op], labels[op], None, "layer has no bias"))
            continue
        bad = _first_mismatch(derived[op], forms[op])
        checks.append(
            IdentityCheck(
                op, names[op], labels[op], bad is None, "" if bad is None else f"differs at {bad}"
            )
        )
    if engines:
        name = "product-rule engine agrees with sympy.diff on whole expressions"
        if spec.products > ENGINE_CHECK_LIMIT:
            checks.append(
                IdentityCheck(
                    "engines",
                    name,
                    "",
                    None,
                    f"skipped: {spec.products:,} multiplications > {ENGINE_CHECK_LIMIT:,}",
                )
            )
        else:
            reference = derive(spec, engine="sympy")
            bad = None
            for role in ("grad_kernel", "grad_input", "grad_bias"):
                bad = bad or _first_mismatch(derivation.array(role), reference.array(role))
            checks.append(
                IdentityCheck(
                    "engines", name, "", bad is None, "" if bad is None else f"differs at {bad}"
                )
            )
    return checks


def _first_mismatch(left: NDArray[Any], right: NDArray[Any]) -> tuple[int, ...] | None:
    if left.shape != right.shape:
        return tuple(right.shape)
    for pos, value in np.ndenumerate(left):
        if sympy.expand(value - right[pos]) != 0:
            return tuple(int(p) for p in pos)
    return None
