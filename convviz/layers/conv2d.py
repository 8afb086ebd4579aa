"""``conv2d``: 2-D convolution (cross-correlation, as ``torch.nn.Conv2d``), the article's layer.

Arrays: input ``a`` ``(C, H, W)``, kernel ``W`` ``(F, C, kh, kw)``, bias ``b`` ``(F,)``,
output ``z`` ``(F, OH, OW)``. The backward pass turns out to be convolutions again:

* ``dL/dW = a * dL/dz``: correlate the (padded) input with the upstream gradient, taking
  the layer's dilation as the stride and its stride as the dilation;
* ``dL/da = dL/dz *full rot180(W)``: the full correlation of the stride-dilated upstream
  gradient with the kernel rotated by 180 degrees (the transposed convolution), cropped
  by the padding;
* ``dL/db = sum of dL/dz`` over each filter's map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from convviz.layers.base import (
    LAYER_OPTION,
    ArrayDecl,
    Identity,
    LayerType,
    OpDecl,
    Window,
    count_option,
    flag_option,
    input_option,
    numbered,
    pair_option,
)
from convviz.spec import ConvSpec, Pair

if TYPE_CHECKING:
    from convviz.highlights import Index
    from convviz.layers.namespace import Namespace

__all__ = [
    "CONV2D",
    "TYPES",
    "Conv2d",
    "ConvSpec",
    "FullConvolutionView",
    "forward_identity",
    "reference_correlate",
]

#: The ``torch.nn`` name of the spec.
Conv2d = ConvSpec


def _conv_input(parts: tuple[int, ...]) -> dict[str, Any]:
    return {"input_size": parts[-2:], "channels": parts[0] if len(parts) == 3 else 1}


OPTIONS = (
    input_option(
        (2, 3),
        "6x6",
        "Input size, channels first when more than one: 6x6 or 3x6x6.",
        _conv_input,
        ("input_size", "channels"),
    ),
    pair_option("kernel", "3x3", 1, "Kernel size (rectangular allowed).",
                field_name="kernel_size"),
    pair_option("stride", "1", 1, "Stride (one number for both axes, or SHxSW)."),
    pair_option("padding", "0", 0, "Zero padding on every side."),
    pair_option("dilation", "1", 1, "Spacing between kernel cells."),
    count_option("filters", "1", "Output channels (number of kernels).", metavar="F"),
    flag_option("bias", "Layer without a bias term."),
    LAYER_OPTION,
)


_a = numbered("a", -1)
_w = numbered("W")
_b = numbered("b")
_z = numbered("z")


ARRAYS = (
    ArrayDecl("input", "a", _a, "input", reading=2, axes="c"),
    ArrayDecl("kernel", "W", _w, "param", reading=1, axes="fc"),
    ArrayDecl("bias", "b", _b, "param", reading=3, needs="bias"),
    ArrayDecl("output", "z", _z, "output", axes="f"),
)

OPS = (
    OpDecl(
        "forward",
        "output",
        ("input", "kernel", "bias"),
        ("*", "+", "="),
        r"\text{Forward pass: each } z \text{ cell is a window of } a "
        r"\text{ times } W \text{, plus } b",
        summary="z = a * W + b, cell by cell",
    ),
    OpDecl(
        "dw",
        "grad_kernel",
        ("input", "grad_output"),
        ("*", "="),
        r"\text{Weight gradient: each } dW \text{ cell sums } dz \text{ times the inputs "
        r"that weight met}",
        summary="dL/dW",
    ),
    OpDecl(
        "da",
        "grad_input",
        ("grad_output", "kernel"),
        (r",", r"\Rightarrow"),
        r"\text{Input gradient: each } da \text{ cell sums } dz \text{ times the weights "
        r"that input met}",
        summary="dL/da",
    ),
    OpDecl(
        "db",
        "grad_bias",
        ("grad_output",),
        (r"\Rightarrow",),
        r"\text{Bias gradient: } db \text{ sums every } dz",
        needs="bias",
        summary="dL/db",
    ),
    OpDecl(
        "da-full",
        "grad_input",
        ("grad_output", "kernel"),
        (r"*_{\mathrm{full}}", "="),
        r"\text{Input gradient as a full correlation of } dz \text{ with } "
        r"\operatorname{rot180}(W)",
        map_op="da",
        summary="dL/da drawn as a full correlation with the rotated kernel",
        view="full-correlation",
    ),
)


def forward(xp: Namespace, spec: ConvSpec, arrays: Mapping[str, NDArray[Any]]) -> dict[
    str, NDArray[Any]
]:
    """``z = a * W + b`` by :func:`convviz.conv.correlate` (numbers or symbols)."""
    from convviz.conv import correlate

    builder = getattr(xp, "builder", None)
    z = correlate(
        arrays["input"],
        arrays["kernel"],
        stride=spec.stride,
        padding=spec.padding,
        dilation=spec.dilation,
        bias=arrays["bias"],
        builder=builder,
    )
    return {"output": z}


# ---------------------------------------------------------------------- geometry
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

    def position(self, index: Index) -> Index | None:
        """Where cell ``index`` of the spread array (``dL/dz``) sits in the grid."""
        return self.grad_output_position(index)

    def window(self, index: Index) -> tuple[Index, Pair]:
        """Top-left grid cell (1-based row, col) and step of the window for ``dL/da[index]``.

        The window covers ``kh x kw`` cells spaced by the dilation.
        """
        s = self.spec
        *_, i, j = index
        return ((i + s.padding[0], j + s.padding[1]), s.dilation)


# -------------------------------------------------------------------- identities
def _dw_form(d: Any) -> NDArray[Any]:
    from convviz.conv import correlate

    spec: ConvSpec = d.spec
    a, w, dz = d.input, d.kernel, d.grad_output
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
    return dw


def _da_form(d: Any) -> NDArray[Any]:
    from convviz.conv import correlate, dilate, pad, rot180

    spec: ConvSpec = d.spec
    view = FullConvolutionView(spec)
    after = (view.offset[0] + view.trailing[0], view.offset[1] + view.trailing[1])
    spread = pad(dilate(d.grad_output, spec.stride), view.offset, after)
    flipped = rot180(d.kernel).transpose(1, 0, 2, 3)
    grad_padded = correlate(spread, np.ascontiguousarray(flipped), dilation=spec.dilation)
    ph, pw = spec.padding
    h, wd = spec.input_size
    return np.asarray(grad_padded[:, ph : ph + h, pw : pw + wd])


def _db_form(d: Any) -> NDArray[Any]:
    import sympy

    dz = d.grad_output
    return np.array([sympy.Add(*dz[f].flat) for f in range(dz.shape[0])], dtype=object)


def _grad(x: str) -> str:
    return rf"\frac{{\partial \mathcal{{L}}}}{{\partial {x}}}"


def _pair(value: Pair) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}\\times{value[1]}"


def _dw_latex(spec: ConvSpec) -> str:
    note = ""
    if spec.stride != (1, 1) or spec.dilation != (1, 1):
        note = (
            rf"\quad \text{{(stride {_pair(spec.dilation)}, dilation {_pair(spec.stride)})}}"
        )
    return rf"{_grad(_w(spec))} = {_a(spec)} * {_grad(_z(spec))}{note}"


def _da_latex(spec: ConvSpec) -> str:
    return rf"{_grad(_a(spec))} = {_grad(_z(spec))} *_{{\mathrm{{full}}}} " \
        rf"\operatorname{{rot180}}({_w(spec)})"


def _db_latex(spec: ConvSpec) -> str:
    many = spec.filters > 1
    bias_cell = f"{_b(spec)}_f" if many else _b(spec)
    z_cell = f"{_z(spec)}_{{f,i,j}}" if many else f"{_z(spec)}_{{i,j}}"
    return rf"{_grad(bias_cell)} = \sum_{{i,j}} {_grad(z_cell)}"


IDENTITIES = (
    Identity("dw", "grad_kernel", "dL/dW equals the input correlated with dL/dz", _dw_latex,
             _dw_form),
    Identity(
        "da",
        "grad_input",
        "dL/da equals the full correlation of dL/dz with the 180-degree rotated kernel",
        _da_latex,
        _da_form,
    ),
    Identity("db", "grad_bias", "dL/db equals dL/dz summed over each filter's map", _db_latex,
             _db_form),
)


def forward_identity(spec: ConvSpec) -> str:
    """``z = a * W + b`` as LaTeX."""
    bias = f" + {_b(spec)}" if spec.bias else ""
    return f"{_z(spec)} = {_a(spec)} * {_w(spec)}{bias}"


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


def _reference(spec: ConvSpec, values: Mapping[str, NDArray[Any]]) -> NDArray[np.float64]:
    return reference_correlate(values["input"], values["kernel"], values["bias"], spec)


def window(spec: ConvSpec, op: str, index: Index) -> list[Window]:
    """The kernel's footprint on the grid a step reads (forward, dw, da-full)."""
    if op not in ("forward", "dw", "da-full"):
        return []
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    kh, kw = spec.kernel_size
    oh, ow = spec.output_size
    *_, i, j = index
    if op == "forward":
        top, left = (i - 1) * sh + 1 - ph, (j - 1) * sw + 1 - pw
        span = ((kh - 1) * dh, (kw - 1) * dw)
        return [("input", None, (top, left), (top + span[0], left + span[1]))]
    if op == "dw":
        top, left = (i - 1) * dh + 1 - ph, (j - 1) * dw + 1 - pw
        span = ((oh - 1) * sh, (ow - 1) * sw)
        channel = index[-3] if spec.channels > 1 else 1
        return [("input", [channel - 1], (top, left), (top + span[0], left + span[1]))]
    if op == "da-full":
        top, left = FullConvolutionView(spec).window(index)[0]
        span = ((kh - 1) * dh, (kw - 1) * dw)
        return [("grad_output", None, (top, left), (top + span[0], left + span[1]))]
    return []


def _padding(spec: ConvSpec, role: str) -> Pair:
    return spec.padding if role == "input" else (0, 0)


CONV2D = LayerType(
    name="conv2d",
    torch_name="Conv2d",
    spec_class=ConvSpec,
    summary="2-D convolution (cross-correlation), as torch.nn.Conv2d",
    options=OPTIONS,
    arrays=ARRAYS,
    ops=OPS,
    forward=forward,
    identities=IDENTITIES,
    reference=_reference,
    padding=_padding,
    window=window,
    forward_latex=forward_identity,
    view_geometry=lambda spec, view: FullConvolutionView(spec),
    real=False,
    rank=10,
)

TYPES = (CONV2D,)
