"""Layer options shared by every command, and their conversion into a :class:`ConvSpec`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from convviz.spec import MAX_PRODUCTS, ConvSpec, SpecError, parse_pair, parse_shape

__all__ = ["OptionError", "layer_options", "spec_from_options"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTION_NAMES = {
    "input_size": "--input",
    "channels": "--input",
    "kernel_size": "--kernel",
    "stride": "--stride",
    "padding": "--padding",
    "dilation": "--dilation",
    "filters": "--filters",
    "layer": "--layer",
    "bias": "--no-bias",
}


class OptionError(click.ClickException):
    """Bad input: printed as one line, exit status 2."""

    exit_code = 2


def layer_options(func: F) -> F:
    """Add the layer options (``--input``, ``--kernel``, ...) to a command."""
    options = [
        click.option(
            "--input",
            "input_text",
            default="6x6",
            show_default=True,
            metavar="[C]xHxW",
            help="Input size, channels first when more than one: 6x6 or 3x6x6.",
        ),
        click.option(
            "--kernel",
            "kernel_text",
            default="3x3",
            show_default=True,
            metavar="HxW",
            help="Kernel size (rectangular allowed).",
        ),
        click.option("--stride", "stride_text", default="1", show_default=True, metavar="S|SHxSW"),
        click.option(
            "--padding",
            "padding_text",
            default="0",
            show_default=True,
            metavar="P|PHxPW",
            help="Zero padding on every side.",
        ),
        click.option(
            "--dilation", "dilation_text", default="1", show_default=True, metavar="D|DHxDW"
        ),
        click.option(
            "--filters",
            "filters_text",
            default="1",
            show_default=True,
            metavar="F",
            help="Output channels (number of kernels).",
        ),
        click.option("--no-bias", is_flag=True, help="Layer without a bias term."),
        click.option(
            "--layer",
            "layer_text",
            default="2",
            show_default=True,
            metavar="L",
            help=(
                "Layer number used in labels (a^[L-1], W^[L], z^[L]). Layers are limited to "
                f"{MAX_PRODUCTS:,} multiplications in the forward pass "
                "(64x64 input with a 5x5 kernel has 90,000)."
            ),
        ),
    ]
    for option in reversed(options):
        func = option(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["spec"] = spec_from_options(
            kwargs.pop("input_text"),
            kwargs.pop("kernel_text"),
            kwargs.pop("stride_text"),
            kwargs.pop("padding_text"),
            kwargs.pop("dilation_text"),
            kwargs.pop("filters_text"),
            kwargs.pop("no_bias"),
            kwargs.pop("layer_text"),
        )
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _count(name: str, text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise SpecError(name, f"must be a positive integer, got {text!r}")
    return int(text)


def spec_from_options(
    input_text: str,
    kernel_text: str,
    stride_text: str,
    padding_text: str,
    dilation_text: str,
    filters_text: str,
    no_bias: bool,
    layer_text: str,
) -> ConvSpec:
    """Build the spec, turning any rule it breaks into an :class:`OptionError`."""
    try:
        shape = parse_shape("input_size", input_text, allowed=(2, 3))
        channels = shape[0] if len(shape) == 3 else 1
        kernel = parse_shape("kernel_size", kernel_text, allowed=(2,))
        return ConvSpec(
            input_size=(shape[-2], shape[-1]),
            kernel_size=(kernel[0], kernel[1]),
            stride=parse_pair("stride", stride_text, minimum=1),
            padding=parse_pair("padding", padding_text, minimum=0),
            dilation=parse_pair("dilation", dilation_text, minimum=1),
            channels=channels,
            filters=_count("filters", filters_text),
            bias=not no_bias,
            layer=_count("layer", layer_text),
        )
    except SpecError as err:
        option = _OPTION_NAMES.get(err.field_name, err.field_name)
        raise OptionError(f"{option}: {err.rule}") from None
