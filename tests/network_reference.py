"""A plain-NumPy reference for whole networks, forward and backward, with PyTorch's semantics.

Independent of convviz: nothing here imports it. Every layer is written out with explicit
loops over output cells and kernel offsets (NumPy only for the sums over channels), so
the semantics can be read off the code and compared with PyTorch's documentation:

* ``conv2d`` -- ``torch.nn.functional.conv2d`` on one sample: cross-correlation,
  ``out[f, i, j] = b[f] + sum_{c,u,v} w[f, c, u, v] * xpad[c, i*sh + u*dh, j*sw + v*dw]``
  with zero padding, ``OH = (H + 2p - d(k-1) - 1) // s + 1``.
* ``conv-transpose2d`` -- ``conv_transpose2d``, weight ``(C_in, C_out, kh, kw)``: every
  input cell scatters ``x[c, i, j] * w[c, :, u, v]`` to output row ``i*s - p + u*d``
  (and likewise columns); cells landing outside ``[0, OH)`` are dropped, with
  ``OH = (H - 1)s - 2p + d(k - 1) + output_padding + 1``. It is the adjoint of ``conv2d``
  with the same weight (what PyTorch computes: the input gradient of a convolution).
* ``maxpool2d`` -- ``max_pool2d`` (floor mode): padding cells are ``-inf`` (never chosen);
  the window is scanned row-major and the FIRST strict maximum wins (``val > maxval``, as
  in ATen's CPU kernel), so a tie's gradient goes to the first maximum; overlapping
  windows add their gradients into the same input cell.
* ``avgpool2d`` -- ``avg_pool2d(count_include_pad=True)``: padding cells are zeros and
  every window divides by ``kh * kw`` (floor mode never lets a window run past the
  padding, so PyTorch's divisor is always the full window).
* ``dense`` -- ``nn.Linear``: ``y = W x + b`` with ``W`` of shape ``(M, N)`` (over the
  last axis, as Linear does).
* ``relu`` (gradient 0 at exactly 0, as ``threshold_backward``), ``sigmoid`` and
  ``tanh`` (gradients from the output: ``y(1 - y)``, ``1 - y^2``), ``flatten``
  (row-major over all axes of the sample: ``nn.Flatten()`` on a batch of one).
* ``softmax-cross-entropy`` -- ``cross_entropy(z, t)`` for one sample, target 0-based:
  ``L = logsumexp(z) - z[t]`` computed stably; ``dL/dz = softmax(z) - onehot(t)``.
* ``mse`` -- ``mse_loss`` with ``reduction="mean"``: ``L = mean((y - t)^2)``,
  ``dL/dy = 2 (y - t) / N``.

:func:`reference_network` takes the parsed network TOML and a values dictionary (the
``--values`` JSON of ``convviz evaluate``) and returns the structure of
``convviz evaluate --json`` with NumPy arrays in place of nested lists (:func:`as_lists`
converts). A network without a loss layer takes ``values["grad_output"]`` as
``dL/d(last output)``; its ``loss`` is ``None``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

__all__ = [
    "LAYER_OPTIONS",
    "Layer",
    "as_lists",
    "avgpool2d_backward",
    "avgpool2d_forward",
    "build_layers",
    "conv2d_backward",
    "conv2d_forward",
    "conv_transpose2d_backward",
    "conv_transpose2d_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "dense_backward",
    "dense_forward",
    "maxpool2d_argmax",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "mse_backward",
    "mse_forward",
    "objective",
    "parse_pair",
    "parse_shape",
    "random_values",
    "reference_network",
    "relu_backward",
    "sigmoid_forward",
]

LOSSES = ("softmax-cross-entropy", "mse")
ACTIVATIONS = ("relu", "sigmoid", "tanh")

#: Options each layer type accepts in the network file (``layer`` and ``target`` are
#: labels for convviz's single-layer tools and are ignored here).
LAYER_OPTIONS: dict[str, tuple[str, ...]] = {
    "conv2d": ("filters", "kernel", "stride", "padding", "dilation", "bias"),
    "conv-transpose2d": (
        "filters", "kernel", "stride", "padding", "output_padding", "dilation", "bias",
    ),
    "maxpool2d": ("kernel", "stride", "padding", "dilation"),
    "avgpool2d": ("kernel", "stride", "padding"),
    "dense": ("outputs", "bias"),
    "relu": (),
    "sigmoid": (),
    "tanh": (),
    "flatten": (),
    "softmax-cross-entropy": (),
    "mse": (),
}
_IGNORED = ("type", "layer", "target")


# ----------------------------------------------------------------------------- parsing
def parse_shape(text: Any) -> tuple[int, ...]:
    """``"1x6x6"`` -> ``(1, 6, 6)``; ``"4"`` or ``4`` -> ``(4,)``."""
    if isinstance(text, bool):
        raise ValueError(f"input: not a shape: {text!r}")
    if isinstance(text, int):
        text = str(text)
    parts = str(text).lower().replace(" ", "").split("x")
    if not all(re.fullmatch(r"\d+", p) for p in parts) or any(int(p) < 1 for p in parts):
        raise ValueError(f"input: not a shape like '1x6x6' or '4': {text!r}")
    shape = tuple(int(p) for p in parts)
    if len(shape) not in (1, 3):
        raise ValueError(f"input: give C x H x W or N, got {text!r}")
    return shape


def parse_pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    """``3`` / ``"3"`` -> ``(3, 3)``; ``"2x1"`` -> ``(2, 1)``; ``[2, 1]`` -> ``(2, 1)``."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: not a size: {value!r}")
    if isinstance(value, int):
        parts = [value]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        text = str(value).lower().replace(" ", "")
        if not re.fullmatch(r"\d+(x\d+)?", text):
            raise ValueError(f"{name}: not a size like '3' or '2x1': {value!r}")
        parts = [int(p) for p in text.split("x")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or any(not isinstance(p, int) or p < minimum for p in parts):
        raise ValueError(f"{name}: must be one or two integers >= {minimum}, got {value!r}")
    return int(parts[0]), int(parts[1])


# ---------------------------------------------------------------------------- conv2d
def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """PyTorch's ``floor((size + 2p - d(k-1) - 1) / s) + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_forward(
    x: Array,
    w: Array,
    b: Array | None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> Array:
    """``(C, H, W) * (F, C, kh, kw) -> (F, OH, OW)``: cross-correlation, zero padding."""
    C, H, W = x.shape
    F, C2, kh, kw = w.shape
    if C2 != C:
        raise ValueError(f"conv2d: weight has {C2} input channels, input has {C}")
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH = conv_out_size(H, kh, sh, ph, dh)
    OW = conv_out_size(W, kw, sw, pw, dw)
    if OH < 1 or OW < 1:
        raise ValueError("conv2d: kernel larger than the padded input")
    xpad = np.zeros((C, H + 2 * ph, W + 2 * pw))
    xpad[:, ph:ph + H, pw:pw + W] = x
    out = np.zeros((F, OH, OW))
    for f in range(F):
        for i in range(OH):
            for j in range(OW):
                total = 0.0
                for u in range(kh):
                    for v in range(kw):
                        r, s = i * sh + u * dh, j * sw + v * dw
                        total += float(np.dot(w[f, :, u, v], xpad[:, r, s]))
                out[f, i, j] = total + (0.0 if b is None else b[f])
    return out


def conv2d_backward(
    x: Array,
    w: Array,
    g: Array,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> tuple[Array, Array, Array]:
    """``(dL/dx, dL/dw, dL/db)`` from ``g = dL/d(out)``: every product of the forward
    pass sends ``g`` back to the weight and the (padded) input cell it multiplied."""
    C, H, W = x.shape
    F, _, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    _, OH, OW = g.shape
    xpad = np.zeros((C, H + 2 * ph, W + 2 * pw))
    xpad[:, ph:ph + H, pw:pw + W] = x
    dxpad = np.zeros_like(xpad)
    dw_ = np.zeros_like(w, dtype=float)
    for f in range(F):
        for i in range(OH):
            for j in range(OW):
                for u in range(kh):
                    for v in range(kw):
                        r, s = i * sh + u * dh, j * sw + v * dw
                        dxpad[:, r, s] += w[f, :, u, v] * g[f, i, j]
                        dw_[f, :, u, v] += xpad[:, r, s] * g[f, i, j]
    db = g.sum(axis=(1, 2))
    return dxpad[:, ph:ph + H, pw:pw + W].copy(), dw_, db


# ------------------------------------------------------------------- conv-transpose2d
def conv_transpose_out_size(
    size: int, kernel: int, stride: int, padding: int, output_padding: int, dilation: int
) -> int:
    """``(H - 1)s - 2p + d(k - 1) + output_padding + 1``."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv_transpose2d_forward(
    x: Array,
    w: Array,
    b: Array | None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    output_padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> Array:
    """``(C_in, H, W) * (C_in, C_out, kh, kw) -> (C_out, OH, OW)``: scatter-add."""
    Ci, H, W = x.shape
    Ci2, Co, kh, kw = w.shape
    if Ci2 != Ci:
        raise ValueError(f"conv-transpose2d: weight has {Ci2} input channels, input has {Ci}")
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    if not (oph < max(sh, dh) and opw < max(sw, dw)):
        raise ValueError("conv-transpose2d: output_padding must be smaller than stride or dilation")
    OH = conv_transpose_out_size(H, kh, sh, ph, oph, dh)
    OW = conv_transpose_out_size(W, kw, sw, pw, opw, dw)
    if OH < 1 or OW < 1:
        raise ValueError("conv-transpose2d: empty output")
    out = np.zeros((Co, OH, OW))
    for c in range(Ci):
        for i in range(H):
            for j in range(W):
                for u in range(kh):
                    for v in range(kw):
                        r, s = i * sh - ph + u * dh, j * sw - pw + v * dw
                        if 0 <= r < OH and 0 <= s < OW:
                            out[:, r, s] += x[c, i, j] * w[c, :, u, v]
    if b is not None:
        out += np.asarray(b, dtype=float)[:, None, None]
    return out


def conv_transpose2d_backward(
    x: Array,
    w: Array,
    g: Array,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    output_padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> tuple[Array, Array, Array]:
    """``(dL/dx, dL/dw, dL/db)``: each scattered product reads ``g`` where it landed."""
    Ci, H, W = x.shape
    _, _Co, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    _, OH, OW = g.shape
    dx = np.zeros_like(x, dtype=float)
    dw_ = np.zeros_like(w, dtype=float)
    for c in range(Ci):
        for i in range(H):
            for j in range(W):
                for u in range(kh):
                    for v in range(kw):
                        r, s = i * sh - ph + u * dh, j * sw - pw + v * dw
                        if 0 <= r < OH and 0 <= s < OW:
                            dx[c, i, j] += float(np.dot(w[c, :, u, v], g[:, r, s]))
                            dw_[c, :, u, v] += x[c, i, j] * g[:, r, s]
    db = g.sum(axis=(1, 2))
    return dx, dw_, db


# ------------------------------------------------------------------------------ pools
def _check_pool_padding(kind: str, kernel: tuple[int, int], padding: tuple[int, int]) -> None:
    for k, p in zip(kernel, padding, strict=True):
        if p > k // 2:
            raise ValueError(f"{kind}: padding should be at most half of the kernel size")


def maxpool2d_argmax(
    x: Array,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> tuple[Array, NDArray[np.int64]]:
    """Max values ``(C, OH, OW)`` and the chosen input cell of each: ``(C, OH, OW, 2)``.

    Padding cells count as ``-inf`` (so they are never chosen); the window is scanned
    row-major and only a strictly larger value replaces the running maximum, so the
    first of tied maxima wins.
    """
    C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    _check_pool_padding("maxpool2d", kernel, padding)
    OH = conv_out_size(H, kh, sh, ph, dh)
    OW = conv_out_size(W, kw, sw, pw, dw)
    if OH < 1 or OW < 1:
        raise ValueError("maxpool2d: window larger than the padded input")
    out = np.zeros((C, OH, OW))
    where = np.zeros((C, OH, OW, 2), dtype=np.int64)
    for c in range(C):
        for i in range(OH):
            for j in range(OW):
                best, at = -math.inf, None
                for u in range(kh):
                    for v in range(kw):
                        r, s = i * sh - ph + u * dh, j * sw - pw + v * dw
                        if not (0 <= r < H and 0 <= s < W):
                            continue  # padding: -inf
                        if at is None or x[c, r, s] > best:
                            best, at = float(x[c, r, s]), (r, s)
                assert at is not None  # padding <= kernel // 2 leaves a real cell
                out[c, i, j] = best
                where[c, i, j] = at
    return out, where


def maxpool2d_forward(
    x: Array,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> Array:
    return maxpool2d_argmax(x, kernel, stride, padding, dilation)[0]


def maxpool2d_backward(
    x: Array,
    g: Array,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> Array:
    """Each window's gradient goes to its chosen cell; overlapping windows add up."""
    _, where = maxpool2d_argmax(x, kernel, stride, padding, dilation)
    dx = np.zeros_like(x, dtype=float)
    C, OH, OW = g.shape
    for c in range(C):
        for i in range(OH):
            for j in range(OW):
                r, s = where[c, i, j]
                dx[c, r, s] += g[c, i, j]
    return dx


def avgpool2d_forward(
    x: Array,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
) -> Array:
    """Window means with zero padding, always divided by ``kh * kw``."""
    C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    _check_pool_padding("avgpool2d", kernel, padding)
    OH = conv_out_size(H, kh, sh, ph, 1)
    OW = conv_out_size(W, kw, sw, pw, 1)
    if OH < 1 or OW < 1:
        raise ValueError("avgpool2d: window larger than the padded input")
    out = np.zeros((C, OH, OW))
    for c in range(C):
        for i in range(OH):
            for j in range(OW):
                total = 0.0
                for u in range(kh):
                    for v in range(kw):
                        r, s = i * sh - ph + u, j * sw - pw + v
                        if 0 <= r < H and 0 <= s < W:
                            total += x[c, r, s]
                out[c, i, j] = total / (kh * kw)
    return out


def avgpool2d_backward(
    x: Array,
    g: Array,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
) -> Array:
    C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    dx = np.zeros_like(x, dtype=float)
    _, OH, OW = g.shape
    for c in range(C):
        for i in range(OH):
            for j in range(OW):
                for u in range(kh):
                    for v in range(kw):
                        r, s = i * sh - ph + u, j * sw - pw + v
                        if 0 <= r < H and 0 <= s < W:
                            dx[c, r, s] += g[c, i, j] / (kh * kw)
    return dx


# ------------------------------------------------------------------------------ dense
def dense_forward(x: Array, w: Array, b: Array | None) -> Array:
    """``y[..., m] = sum_n W[m, n] x[..., n] + b[m]`` (``nn.Linear``)."""
    M, N = w.shape
    if x.shape[-1] != N:
        raise ValueError(f"dense: weight takes {N} inputs, got {x.shape[-1]}")
    flat = x.reshape(-1, N)
    out = np.zeros((flat.shape[0], M))
    for k in range(flat.shape[0]):
        for m in range(M):
            out[k, m] = float(np.dot(w[m], flat[k])) + (0.0 if b is None else b[m])
    return out.reshape((*x.shape[:-1], M))


def dense_backward(x: Array, w: Array, g: Array) -> tuple[Array, Array, Array]:
    M, N = w.shape
    flat_x, flat_g = x.reshape(-1, N), g.reshape(-1, M)
    dx = np.zeros_like(flat_x, dtype=float)
    dw = np.zeros((M, N))
    for k in range(flat_x.shape[0]):
        for m in range(M):
            dx[k] += w[m] * flat_g[k, m]
            dw[m] += flat_g[k, m] * flat_x[k]
    return dx.reshape(x.shape), dw, flat_g.sum(axis=0)


# ------------------------------------------------------------------------ activations
def relu_backward(x: Array, g: Array) -> Array:
    """``g`` where ``x > 0``; 0 elsewhere, including at exactly 0 (PyTorch's choice)."""
    return np.where(x > 0, g, 0.0)


def sigmoid_forward(x: Array) -> Array:
    """``1 / (1 + exp(-x))``, written so neither branch overflows."""
    out = np.empty_like(x, dtype=float)
    for idx, value in np.ndenumerate(x):
        if value >= 0:
            out[idx] = 1.0 / (1.0 + math.exp(-value))
        else:
            e = math.exp(value)
            out[idx] = e / (1.0 + e)
    return out


# ----------------------------------------------------------------------------- losses
def cross_entropy_forward(z: Array, target: int) -> float:
    """``logsumexp(z) - z[target]`` with the maximum taken out first."""
    if z.ndim != 1:
        raise ValueError(f"softmax-cross-entropy: logits must be a vector, got shape {z.shape}")
    if not (isinstance(target, (int, np.integer)) and not isinstance(target, bool)):
        raise ValueError(f"softmax-cross-entropy: target must be a class index, got {target!r}")
    if not 0 <= target < z.shape[0]:
        raise ValueError(f"softmax-cross-entropy: target {target} outside 0..{z.shape[0] - 1}")
    top = float(np.max(z))
    lse = top + math.log(sum(math.exp(float(v) - top) for v in z))
    return lse - float(z[target])


def cross_entropy_backward(z: Array, target: int) -> Array:
    """``softmax(z) - onehot(target)``."""
    top = float(np.max(z))
    e = np.array([math.exp(float(v) - top) for v in z])
    grad = e / e.sum()
    grad[target] -= 1.0
    return grad


def mse_forward(y: Array, t: Array) -> float:
    if y.shape != t.shape:
        raise ValueError(f"mse: target shape {t.shape} differs from prediction {y.shape}")
    return float(np.sum((y - t) ** 2) / y.size)


def mse_backward(y: Array, t: Array) -> Array:
    return 2.0 * (y - t) / y.size


# ----------------------------------------------------------------------------- layers
@dataclass
class Layer:
    """One ``[[layer]]`` with its options resolved and its input/output shapes."""

    type: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    opts: dict[str, Any] = field(default_factory=dict)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        o = self.opts
        if self.type == "conv2d":
            shapes = {"weight": (o["filters"], self.in_shape[0]) + o["kernel"]}
            if o["bias"]:
                shapes["bias"] = (o["filters"],)
            return shapes
        if self.type == "conv-transpose2d":
            shapes = {"weight": (self.in_shape[0], o["filters"]) + o["kernel"]}
            if o["bias"]:
                shapes["bias"] = (o["filters"],)
            return shapes
        if self.type == "dense":
            shapes = {"weight": (o["outputs"], self.in_shape[-1])}
            if o["bias"]:
                shapes["bias"] = (o["outputs"],)
            return shapes
        return {}

    def forward(self, x: Array, params: dict[str, Array], target: Any = None) -> Any:
        o, t = self.opts, self.type
        if t == "conv2d":
            return conv2d_forward(x, params["weight"], params.get("bias"),
                                  o["stride"], o["padding"], o["dilation"])
        if t == "conv-transpose2d":
            return conv_transpose2d_forward(x, params["weight"], params.get("bias"),
                                            o["stride"], o["padding"], o["output_padding"],
                                            o["dilation"])
        if t == "maxpool2d":
            return maxpool2d_forward(x, o["kernel"], o["stride"], o["padding"], o["dilation"])
        if t == "avgpool2d":
            return avgpool2d_forward(x, o["kernel"], o["stride"], o["padding"])
        if t == "dense":
            return dense_forward(x, params["weight"], params.get("bias"))
        if t == "relu":
            return np.where(x > 0, x, 0.0)
        if t == "sigmoid":
            return sigmoid_forward(x)
        if t == "tanh":
            return np.tanh(x)
        if t == "flatten":
            return x.reshape(-1).copy()
        if t == "softmax-cross-entropy":
            return cross_entropy_forward(x, target)
        if t == "mse":
            return mse_forward(x, target)
        raise AssertionError(t)

    def backward(
        self, x: Array, y: Any, g: Any, params: dict[str, Array], target: Any = None
    ) -> tuple[Array, dict[str, Array]]:
        """``(dL/dx, {name: dL/dparam})`` from the layer's input ``x``, output ``y`` and
        ``g = dL/dy`` (a float for losses)."""
        o, t = self.opts, self.type
        if t == "conv2d":
            dx, dw, db = conv2d_backward(x, params["weight"], g,
                                         o["stride"], o["padding"], o["dilation"])
            return dx, self._param_grads(dw, db)
        if t == "conv-transpose2d":
            dx, dw, db = conv_transpose2d_backward(x, params["weight"], g, o["stride"],
                                                   o["padding"], o["output_padding"],
                                                   o["dilation"])
            return dx, self._param_grads(dw, db)
        if t == "dense":
            dx, dw, db = dense_backward(x, params["weight"], g)
            return dx, self._param_grads(dw, db)
        if t == "maxpool2d":
            return maxpool2d_backward(x, g, o["kernel"], o["stride"], o["padding"],
                                      o["dilation"]), {}
        if t == "avgpool2d":
            return avgpool2d_backward(x, g, o["kernel"], o["stride"], o["padding"]), {}
        if t == "relu":
            return relu_backward(x, g), {}
        if t == "sigmoid":
            return g * y * (1.0 - y), {}
        if t == "tanh":
            return g * (1.0 - y * y), {}
        if t == "flatten":
            return np.asarray(g, dtype=float).reshape(x.shape).copy(), {}
        if t == "softmax-cross-entropy":
            return g * cross_entropy_backward(x, target), {}
        if t == "mse":
            return g * mse_backward(x, target), {}
        raise AssertionError(t)

    def _param_grads(self, dw: Array, db: Array) -> dict[str, Array]:
        grads = {"weight": dw}
        if self.opts["bias"]:
            grads["bias"] = db
        return grads


def build_layers(net: dict[str, Any]) -> list[Layer]:
    """The network's layers with options resolved (defaults as convviz documents them:
    conv kernel 3x3 and 1 filter, pool kernel 2x2 with stride = kernel, dense 3 outputs,
    bias on, stride/dilation 1, padding 0) and shapes propagated."""
    if "input" not in net:
        raise ValueError("network: no input shape")
    shape = parse_shape(net["input"])
    layers: list[Layer] = []
    specs = net.get("layer", [])
    if not specs:
        raise ValueError("network: no [[layer]]")
    for n, spec in enumerate(specs, start=1):
        kind = spec.get("type")
        if kind not in LAYER_OPTIONS:
            raise ValueError(f"layer {n}: unknown type {kind!r}")
        unknown = set(spec) - set(LAYER_OPTIONS[kind]) - set(_IGNORED)
        if unknown:
            raise ValueError(f"layer {n} ({kind}): unknown options {sorted(unknown)}")
        if kind in LOSSES and n != len(specs):
            raise ValueError(f"layer {n}: a loss must be the last layer")
        opts: dict[str, Any] = {}
        out: tuple[int, ...]
        if kind in ("conv2d", "conv-transpose2d", "maxpool2d", "avgpool2d"):
            if len(shape) != 3:
                raise ValueError(f"layer {n} ({kind}): needs a C x H x W input, got {shape}")
            C, H, W = shape
            default_kernel = "2x2" if kind.endswith("pool2d") else "3x3"
            opts["kernel"] = parse_pair(spec.get("kernel", default_kernel), "kernel", 1)
            stride_default = opts["kernel"] if kind.endswith("pool2d") else 1
            opts["stride"] = parse_pair(spec.get("stride", stride_default), "stride", 1)
            opts["padding"] = parse_pair(spec.get("padding", 0), "padding", 0)
            if kind != "avgpool2d":
                opts["dilation"] = parse_pair(spec.get("dilation", 1), "dilation", 1)
            (kh, kw), (sh, sw), (ph, pw) = opts["kernel"], opts["stride"], opts["padding"]
            if kind in ("conv2d", "conv-transpose2d"):
                opts["filters"] = int(spec.get("filters", 1))
                opts["bias"] = bool(spec.get("bias", True))
                dh, dw = opts["dilation"]
            if kind == "conv2d":
                out = (opts["filters"], conv_out_size(H, kh, sh, ph, dh),
                       conv_out_size(W, kw, sw, pw, dw))
            elif kind == "conv-transpose2d":
                opts["output_padding"] = parse_pair(spec.get("output_padding", 0),
                                                    "output_padding", 0)
                oph, opw = opts["output_padding"]
                out = (opts["filters"], conv_transpose_out_size(H, kh, sh, ph, oph, dh),
                       conv_transpose_out_size(W, kw, sw, pw, opw, dw))
            else:
                _check_pool_padding(kind, opts["kernel"], opts["padding"])
                dh, dw = opts.get("dilation", (1, 1))
                out = (C, conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw))
            if min(out) < 1:
                raise ValueError(f"layer {n} ({kind}): empty output {out}")
        elif kind == "dense":
            opts["outputs"] = int(spec.get("outputs", 3))
            opts["bias"] = bool(spec.get("bias", True))
            out = (*shape[:-1], opts["outputs"])
        elif kind == "flatten":
            out = (int(np.prod(shape)),)
        elif kind in LOSSES:
            if len(shape) != 1:
                raise ValueError(f"layer {n} ({kind}): needs a vector input, got {shape}")
            out = ()
        else:
            out = shape
        layers.append(Layer(kind, shape, out, opts))
        shape = out
    return layers


# ---------------------------------------------------------------------------- network
def _array(value: Any, shape: tuple[int, ...], what: str) -> Array:
    arr = np.asarray(value, dtype=float)
    if arr.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {arr.shape}")
    return arr


def _read_values(
    layers: list[Layer], values: dict[str, Any]
) -> tuple[Array, list[dict[str, Array]], Any, Array | None]:
    x = _array(values["input"], layers[0].in_shape, "input")
    given = values.get("layers", [{} for _ in layers])
    if len(given) != len(layers):
        raise ValueError(f"values: {len(given)} layer entries for {len(layers)} layers")
    params: list[dict[str, Array]] = []
    for n, (layer, entry) in enumerate(zip(layers, given, strict=True), start=1):
        shapes = layer.param_shapes
        extra = {k for k, v in (entry or {}).items() if v is not None} - set(shapes)
        if extra:
            raise ValueError(f"layer {n} ({layer.type}): unexpected values {sorted(extra)}")
        params.append({k: _array(entry[k], s, f"layer {n} {k}") for k, s in shapes.items()})
    last = layers[-1]
    target: Any = None
    grad_output = None
    if last.type == "softmax-cross-entropy":
        target = values["target"]
    elif last.type == "mse":
        target = _array(values["target"], last.in_shape, "target")
    else:
        grad_output = _array(values["grad_output"], last.out_shape, "grad_output")
    return x, params, target, grad_output


def _forward(layers: list[Layer], x: Array, params: list[dict[str, Array]], target: Any,
             start: int = 0) -> list[Any]:
    """Outputs of layers ``start, start + 1, ...`` fed ``x`` as the input of ``start``."""
    outs = []
    for k in range(start, len(layers)):
        x = layers[k].forward(x, params[k], target)
        outs.append(x)
    return outs


def objective(
    net: dict[str, Any],
    values: dict[str, Any],
    *,
    start: int = 0,
    x: Array | None = None,
) -> float:
    """The scalar being differentiated, from layer ``start`` on with ``x`` as its input
    (default: the whole network on ``values["input"]``): the loss, or for a network
    without a loss ``sum(grad_output * last output)``. For finite differences."""
    layers = build_layers(net)
    x0, params, target, grad_output = _read_values(layers, values)
    if x is None:
        if start != 0:
            raise ValueError("objective: give x when starting past layer 0")
        x = x0
    outs = _forward(layers, np.asarray(x, dtype=float), params, target, start)
    last = outs[-1] if outs else x
    if grad_output is None:
        return float(last)
    return float(np.sum(grad_output * last))


def reference_network(net: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Every value and gradient of the network, in ``convviz evaluate --json``'s layout.

    ``{"loss": float | None, "input": {"value", "grad"}, "layers": [{"type", "output":
    {"value", "grad"}, "params": {name: {"value", "grad"}}}]}`` with NumPy arrays
    (a loss layer's output value is the loss as a 0-d array, its grad 1.0).
    """
    layers = build_layers(net)
    x, params, target, grad_output = _read_values(layers, values)
    outs = _forward(layers, x, params, target)
    inputs = [x, *outs[:-1]]
    loss = None
    if layers[-1].type in LOSSES:
        loss = float(outs[-1])
        g: Any = 1.0
    else:
        assert grad_output is not None
        g = grad_output
    out_grads: list[Any] = [None] * len(layers)
    param_grads: list[dict[str, Array]] = [{} for _ in layers]
    for k in range(len(layers) - 1, -1, -1):
        out_grads[k] = g
        g, param_grads[k] = layers[k].backward(inputs[k], outs[k], g, params[k], target)
    result_layers = []
    for k, layer in enumerate(layers):
        result_layers.append({
            "type": layer.type,
            "output": {"value": np.asarray(outs[k], dtype=float),
                       "grad": np.asarray(out_grads[k], dtype=float)},
            "params": {name: {"value": params[k][name], "grad": param_grads[k][name]}
                       for name in layer.param_shapes},
        })
    return {"loss": loss, "input": {"value": x, "grad": np.asarray(g, dtype=float)},
            "layers": result_layers}


def as_lists(result: Any) -> Any:
    """The reference's result with arrays turned into nested lists / floats (JSON-ready)."""
    if isinstance(result, dict):
        return {k: as_lists(v) for k, v in result.items()}
    if isinstance(result, list):
        return [as_lists(v) for v in result]
    if isinstance(result, np.ndarray):
        return result.tolist()
    return result


def random_values(
    net: dict[str, Any],
    seed: int,
    *,
    integers: tuple[int, int] | None = None,
    target: Any = None,
) -> dict[str, Any]:
    """A values dictionary (JSON-ready lists) of the right shapes for ``net``.

    Floats from a standard normal, or with ``integers=(lo, hi)`` whole numbers in
    ``lo..hi`` (stored as floats). ``target`` defaults to class 0 / a random vector;
    networks without a loss get a random ``grad_output``.
    """
    rng = np.random.default_rng(seed)
    layers = build_layers(net)

    def draw(shape: tuple[int, ...]) -> list[Any]:
        if integers is None:
            arr = rng.standard_normal(shape)
        else:
            arr = rng.integers(integers[0], integers[1] + 1, size=shape).astype(float)
        return arr.tolist()

    values: dict[str, Any] = {"input": draw(layers[0].in_shape), "layers": []}
    for layer in layers:
        values["layers"].append({k: draw(s) for k, s in layer.param_shapes.items()})
    last = layers[-1]
    if last.type == "softmax-cross-entropy":
        values["target"] = 0 if target is None else target
    elif last.type == "mse":
        values["target"] = draw(last.in_shape) if target is None else target
    else:
        values["grad_output"] = draw(last.out_shape)
    return values
