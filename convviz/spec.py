"""The layer being visualised: a frozen, validated description of a 2-D convolution."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = [
    "MAX_PRODUCTS",
    "ConvSpec",
    "Pair",
    "SpecError",
    "as_pair",
    "pair_text",
    "parse_pair",
    "parse_shape",
]

Pair = tuple[int, int]

#: Upper bound on the number of multiplications in the forward pass (output cells times
#: kernel cells per output cell). The backward pass costs about three times as much again.
#: 64x64 input with a 5x5 kernel needs 90,000; the limit leaves room for a little more.
MAX_PRODUCTS = 250_000


class SpecError(ValueError):
    """A layer specification breaks a rule; the message names the field and the rule."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field_name = field_name
        self.rule = message


def as_pair(name: str, value: int | Pair) -> Pair:
    """An int or an ``(h, w)`` pair of ints as a pair; anything else is a :class:`SpecError`."""
    if isinstance(value, bool):
        raise SpecError(name, f"expected an integer or a pair of integers, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise SpecError(name, f"expected an integer or a pair of integers, got {value!r}")


@dataclass(frozen=True)
class ConvSpec:
    """A 2-D convolution layer (cross-correlation, as in deep learning).

    Parameters
    ----------
    input_size
        Input height and width.
    kernel_size
        Kernel height and width (rectangular kernels are allowed).
    stride, padding, dilation
        Each an int or an ``(h, w)`` pair. Padding is zero padding on every side.
    channels
        Input channels ``C``.
    filters
        Output channels ``F`` (number of kernels).
    bias
        Whether each filter adds a bias.
    layer
        Layer number used in labels: ``a^{[layer-1]}``, ``W^{[layer]}``, ``z^{[layer]}``.
    """

    input_size: Pair = (6, 6)
    kernel_size: Pair = (3, 3)
    stride: Pair = field(default=(1, 1))
    padding: Pair = field(default=(0, 0))
    dilation: Pair = field(default=(1, 1))
    channels: int = 1
    filters: int = 1
    bias: bool = True
    layer: int = 2

    #: The layer type's name (see :mod:`convviz.layers.conv2d`).
    TYPE: ClassVar[str] = "conv2d"

    def __post_init__(self) -> None:
        pairs = {
            "input_size": self.input_size,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
        }
        for name, value in pairs.items():
            object.__setattr__(self, name, as_pair(name, value))
        for name in ("input_size", "kernel_size"):
            if min(getattr(self, name)) < 1:
                raise SpecError(name, f"sizes must be at least 1, got {getattr(self, name)}")
        if min(self.stride) < 1:
            raise SpecError("stride", f"must be at least 1, got {self.stride}")
        if min(self.dilation) < 1:
            raise SpecError("dilation", f"must be at least 1, got {self.dilation}")
        if min(self.padding) < 0:
            raise SpecError("padding", f"must be 0 or more, got {self.padding}")
        for name in ("channels", "filters", "layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(name, f"must be an integer of at least 1, got {value!r}")
        if not isinstance(self.bias, bool):
            raise SpecError("bias", f"must be True or False, got {self.bias!r}")
        for axis, axis_name in ((0, "height"), (1, "width")):
            span = self.effective_kernel_size[axis]
            room = self.padded_size[axis]
            if span > room:
                raise SpecError(
                    "kernel_size",
                    f"kernel {axis_name} after dilation ({span}) is larger than the padded "
                    f"input {axis_name} ({room})",
                )
        if self.products > MAX_PRODUCTS:
            raise SpecError(
                "input_size",
                f"layer too large to derive: the forward pass has {self.products:,} "
                f"multiplications (limit {MAX_PRODUCTS:,})",
            )

    # ----------------------------------------------------------------- derived sizes
    @property
    def padded_size(self) -> Pair:
        """Input height and width after zero padding."""
        return (
            self.input_size[0] + 2 * self.padding[0],
            self.input_size[1] + 2 * self.padding[1],
        )

    @property
    def effective_kernel_size(self) -> Pair:
        """Span of the kernel on the input once dilated: ``d (k - 1) + 1``."""
        return (
            self.dilation[0] * (self.kernel_size[0] - 1) + 1,
            self.dilation[1] * (self.kernel_size[1] - 1) + 1,
        )

    @property
    def output_size(self) -> Pair:
        """``floor((H + 2p - d (k - 1) - 1) / s) + 1`` on each axis."""
        padded, span = self.padded_size, self.effective_kernel_size
        return (
            (padded[0] - span[0]) // self.stride[0] + 1,
            (padded[1] - span[1]) // self.stride[1] + 1,
        )

    @property
    def products(self) -> int:
        """Multiplications in the forward pass, counting padding cells."""
        oh, ow = self.output_size
        kh, kw = self.kernel_size
        return self.filters * oh * ow * self.channels * kh * kw

    # ---------------------------------------------------------------- display shapes
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Display shape of the input: ``(H, W)`` or ``(C, H, W)``."""
        return self._drop((self.channels,), self.input_size)

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """Display shape of the kernel: ``(F, C, kh, kw)`` with size-1 F and C dropped."""
        return self._drop((self.filters, self.channels), self.kernel_size)

    @property
    def bias_shape(self) -> tuple[int, ...]:
        """Display shape of the bias: ``()`` for one filter, else ``(F,)``."""
        return self._drop((self.filters,), ())

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Display shape of the output: ``(OH, OW)`` or ``(F, OH, OW)``."""
        return self._drop((self.filters,), self.output_size)

    def full_shape(self, role: str) -> tuple[int, ...]:
        """Shape of the array playing ``role`` as computed, in PyTorch's layout."""
        shapes = {
            "input": (self.channels, *self.input_size),
            "kernel": (self.filters, self.channels, *self.kernel_size),
            "bias": (self.filters,),
            "output": (self.filters, *self.output_size),
        }
        return shapes[role.removeprefix("grad_")]

    def display_shape(self, role: str) -> tuple[int, ...]:
        """Display shape of the array playing ``role`` (a gradient is shaped like its array)."""
        shapes = {
            "input": self.input_shape,
            "kernel": self.kernel_shape,
            "bias": self.bias_shape,
            "output": self.output_shape,
        }
        return shapes[role.removeprefix("grad_")]

    @staticmethod
    def _drop(leading: tuple[int, ...], spatial: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(n for n in leading if n > 1) + tuple(spatial)

    # ----------------------------------------------------------------------- naming
    def describe(self) -> str:
        """Short human description, e.g. ``6x6 input, 3x3 kernel, stride 1``."""
        parts = ["x".join(str(n) for n in self.input_shape) + " input"]
        parts.append("x".join(str(n) for n in self.kernel_size) + " kernel")
        if self.filters > 1:
            parts.append(f"{self.filters} filters")
        for name in ("stride", "padding", "dilation"):
            value = getattr(self, name)
            default = 0 if name == "padding" else 1
            if value != (default, default):
                parts.append(f"{name} {pair_text(value)}")
        if not self.bias:
            parts.append("no bias")
        return ", ".join(parts)

    def slug(self) -> str:
        """File-name friendly identifier, e.g. ``6x6_k3x3`` or ``3x8x8_k3x3_f2_s2``."""
        parts = ["x".join(str(n) for n in self.input_shape)]
        parts.append("k" + "x".join(str(n) for n in self.kernel_size))
        if self.filters > 1:
            parts.append(f"f{self.filters}")
        for letter, name in (("s", "stride"), ("p", "padding"), ("d", "dilation")):
            value = getattr(self, name)
            default = 0 if name == "padding" else 1
            if value != (default, default):
                parts.append(letter + pair_text(value))
        if not self.bias:
            parts.append("nobias")
        if self.layer != 2:
            parts.append(f"l{self.layer}")
        return "_".join(parts)


def pair_text(value: Pair) -> str:
    """``(2, 2)`` -> ``"2"``, ``(2, 1)`` -> ``"2x1"``."""
    return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"


_SHAPE = re.compile(r"^\s*\d+(\s*x\s*\d+)*\s*$")


def parse_shape(name: str, text: str, *, allowed: tuple[int, ...]) -> tuple[int, ...]:
    """Parse ``"6x6"`` or ``"3x6x6"`` into a tuple, with ``allowed`` numbers of parts.

    Raises
    ------
    SpecError
        If the text is malformed, has the wrong number of parts, or a part is 0.
    """
    wanted = " or ".join("x".join(("N",) * n) for n in allowed)
    if not _SHAPE.match(text):
        raise SpecError(name, f"expected sizes like {wanted} with positive integers, got {text!r}")
    parts = tuple(int(p) for p in text.replace(" ", "").split("x"))
    if len(parts) not in allowed:
        raise SpecError(name, f"expected {wanted}, got {text!r}")
    if min(parts) < 1:
        raise SpecError(name, f"sizes must be at least 1, got {text!r}")
    return parts


def parse_pair(name: str, text: str, *, minimum: int) -> Pair:
    """Parse ``"2"`` or ``"2x1"`` into an ``(h, w)`` pair of integers >= ``minimum``."""
    if not re.match(r"^\s*-?\d+(\s*x\s*-?\d+)?\s*$", text):
        raise SpecError(name, f"expected an integer like 2 or a pair like 2x1, got {text!r}")
    parts = [int(p) for p in text.replace(" ", "").split("x")]
    if min(parts) < minimum:
        rule = "at least 1" if minimum == 1 else f"{minimum} or more"
        raise SpecError(name, f"must be {rule}, got {text!r}")
    return (parts[0], parts[-1])
