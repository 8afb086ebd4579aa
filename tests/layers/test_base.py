"""What every layer declaration is built from: options, array names, lookups, ``build``.

The declared types build their options once, at import; these tests call the factories
again, so that what a user types (``--stride 2x1``, ``filters = 0`` in a TOML file) is
checked against hand-written fields, values and messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
import sympy

from convviz.layers.base import (
    ArrayDecl,
    LayerType,
    OpDecl,
    Option,
    all_indices,
    count_option,
    drop_ones,
    flag_option,
    input_option,
    keep_mask,
    numbered,
    object_array,
    pair_option,
)
from convviz.layers.conv2d import CONV2D
from convviz.spec import ConvSpec, SpecError


def _rule(option: Option, value: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        option.parse(value)
    return caught.value


# --------------------------------------------------------------------- options
def test_command_line_flags_use_dashes() -> None:
    assert pair_option("output_padding", "0", 0, "").cli == "--output-padding"
    assert count_option("filters", "1", "").cli == "--filters"
    assert flag_option("bias", "").cli == "--no-bias"
    assert flag_option("running_stats", "").cli == "--no-running-stats"


def test_input_option_fields_and_parsing() -> None:
    seen: list[tuple[int, ...]] = []

    def to_fields(parts: tuple[int, ...]) -> dict[str, Any]:
        seen.append(parts)
        return {"input_size": parts}

    maps = input_option((2, 3), "6x6", "Input size.", to_fields, ("input_size", "channels"))
    assert (maps.key, maps.default, maps.help, maps.flag) == ("input", "6x6", "Input size.",
                                                              False)
    assert maps.fields == ("input_size", "channels")
    assert maps.metavar == "HxW|CxHxW"
    assert maps.parse("3x4x5") == {"input_size": (3, 4, 5)}
    assert maps.parse(" 4 x 5 ") == {"input_size": (4, 5)}
    assert seen == [(3, 4, 5), (4, 5)]
    vectors = input_option((1,), "4", "", to_fields, ("inputs",))
    assert vectors.metavar == "N"
    assert vectors.parse(7) == {"input_size": (7,)}
    assert input_option((1, 2, 3), "4", "", to_fields, ()).metavar == "N|HxW|CxHxW"


def test_input_option_errors() -> None:
    maps = input_option((2, 3), "6x6", "", lambda parts: {}, ("input_size",))
    wrong = _rule(maps, "6")
    assert (wrong.field_name, wrong.rule) == ("input_size", "expected NxN or NxNxN, got '6'")
    flag = _rule(maps, True)
    assert flag.field_name == "input"
    assert flag.rule == 'must be a string like "2x1" or an integer, got True'
    number = _rule(maps, 2.5)
    assert (number.field_name, number.rule) == (
        "input", 'must be a string like "2x1" or an integer, got 2.5')


def test_pair_option_fields_and_parsing() -> None:
    stride = pair_option("stride", "1", 1, "Stride.")
    assert (stride.key, stride.default, stride.help, stride.flag) == ("stride", "1", "Stride.",
                                                                     False)
    assert stride.fields == ("stride",)
    assert stride.metavar == "S|SHxW"
    assert stride.parse("2x1") == {"stride": (2, 1)}
    assert stride.parse("3") == {"stride": (3, 3)}
    assert stride.parse(2) == {"stride": (2, 2)}
    kernel = pair_option("kernel", None, 1, "", field_name="kernel_size")
    assert kernel.default is None
    assert kernel.fields == ("kernel_size",)
    assert kernel.metavar == "K|KHxW"
    assert kernel.parse("3x2") == {"kernel_size": (3, 2)}
    padding = pair_option("padding", "0", 0, "")
    assert padding.parse("0x1") == {"padding": (0, 1)}


def test_pair_option_errors_name_the_field_and_the_minimum() -> None:
    kernel = pair_option("kernel", "3", 1, "", field_name="kernel_size")
    small = _rule(kernel, "0x2")
    assert (small.field_name, small.rule) == ("kernel_size", "must be at least 1, got '0x2'")
    padding = pair_option("padding", "0", 0, "")
    negative = _rule(padding, "-1")
    assert (negative.field_name, negative.rule) == ("padding", "must be 0 or more, got '-1'")
    flag = _rule(kernel, False)
    assert (flag.field_name, flag.rule) == (
        "kernel", 'must be a string like "2x1" or an integer, got False')


def test_count_option_fields_and_parsing() -> None:
    filters = count_option("filters", "1", "Output channels.", metavar="F")
    assert (filters.key, filters.default, filters.help, filters.flag) == (
        "filters", "1", "Output channels.", False)
    assert filters.fields == ("filters",)
    assert filters.metavar == "F"
    assert count_option("outputs", None, "").metavar == "N"
    assert filters.parse("3") == {"filters": 3}
    assert filters.parse(" 12 ") == {"filters": 12}
    assert filters.parse(1) == {"filters": 1}
    target = count_option("target", "0", "", minimum=0)
    assert target.parse("0") == {"target": 0}
    flag = _rule(filters, True)
    assert (flag.field_name, flag.rule) == (
        "filters", 'must be a string like "2x1" or an integer, got True')


@pytest.mark.parametrize(
    ("minimum", "value", "rule"),
    [
        (1, "0", "must be a positive integer, got '0'"),
        (1, "-2", "must be a positive integer, got '-2'"),
        (1, "2.5", "must be a positive integer, got '2.5'"),
        (1, "3 filters", "must be a positive integer, got '3 filters'"),
        (1, "x3", "must be a positive integer, got 'x3'"),
        (0, "-1", "must be an integer of at least 0, got '-1'"),
        (2, "1", "must be an integer of at least 2, got '1'"),
    ],
)
def test_count_option_errors(minimum: int, value: str, rule: str) -> None:
    error = _rule(count_option("filters", "1", "", minimum=minimum), value)
    assert (error.field_name, error.rule) == ("filters", rule)


def test_flag_option_is_on_by_default_and_takes_only_booleans() -> None:
    bias = flag_option("bias", "Layer without a bias term.")
    assert (bias.key, bias.default, bias.help, bias.flag) == (
        "bias", True, "Layer without a bias term.", True)
    assert bias.fields == ("bias",)
    assert bias.metavar == ""
    assert bias.parse(False) == {"bias": False}
    assert bias.parse(True) == {"bias": True}
    for value in ("false", 0, None):
        error = _rule(bias, value)
        assert (error.field_name, error.rule) == ("bias", f"must be true or false, got {value!r}")


# ----------------------------------------------------------------------- names
def test_arrays_are_numbered_by_the_layer() -> None:
    spec = ConvSpec(layer=3)
    assert numbered("a", -1)(spec) == "a^{[2]}"
    assert numbered("W")(spec) == "W^{[3]}"
    assert numbered("z", 1)(ConvSpec()) == "z^{[3]}"
    assert CONV2D.array("input").label(spec) == "a^{[2]}"


def test_gradients_are_declared_from_the_arrays() -> None:
    spec = ConvSpec(layer=3)
    arrays = {a.role: a for a in CONV2D.all_arrays}
    assert CONV2D.roles == ("input", "kernel", "bias", "output", "grad_output", "grad_input",
                            "grad_kernel", "grad_bias")
    assert CONV2D.variables == ("input", "kernel", "bias")
    grad = r"\frac{\partial \mathcal{L}}{\partial "
    upstream = arrays["grad_output"]
    assert (upstream.short, upstream.kind, upstream.reading, upstream.needs) == (
        "dz", "upstream", 0, "")
    assert upstream.label(spec) == grad + "z^{[3]}}"
    bias = arrays["grad_bias"]
    assert (bias.short, bias.kind, bias.reading, bias.needs) == ("db", "value", 8, "bias")
    assert bias.label(spec) == grad + "b^{[3]}}"
    kernel = arrays["grad_kernel"]
    assert (kernel.short, kernel.kind, kernel.reading) == ("dW", "value", 8)
    assert CONV2D.array("grad_input").label(spec) == grad + "a^{[2]}}"


@dataclass(frozen=True)
class _Toy:
    """A spec whose rule breaks on a field no option sets."""

    size: int = 1
    TYPE: ClassVar[str] = "toy"

    def __post_init__(self) -> None:
        if self.size > 5:
            raise SpecError("cells", f"too many: {self.size}")
        if self.size < 0:
            raise SpecError("size", "must be 0 or more")


def _toy(size_default: str | None = None) -> LayerType:
    return LayerType(
        name="toy",
        torch_name="Toy",
        spec_class=_Toy,
        summary="",
        options=(count_option("size", size_default, "", minimum=0),),
        arrays=(
            ArrayDecl("input", "x", numbered("x"), "input", axes="c"),
            ArrayDecl("target", "y", numbered("y"), "const"),
            ArrayDecl("output", "z", numbered("z"), "output"),
            ArrayDecl("grad_output", "g", numbered("g"), "upstream"),
        ),
        ops=(OpDecl("forward", "output", ("input",), ("=",), ""),),
        forward=lambda xp, spec, arrays: {},
    )


def test_declared_upstream_gradient_is_kept_and_axes_carry_over() -> None:
    toy = _toy()
    assert toy.roles == ("input", "target", "output", "grad_output", "grad_input")
    assert toy.variables == ("input",)
    assert toy.array("grad_output").short == "g"
    assert toy.array("grad_input").axes == "c"
    assert toy.padding(_Toy(), "input") == (0, 0)


# --------------------------------------------------------------------- lookups
def test_lookups_and_their_errors() -> None:
    assert CONV2D.array("grad_kernel").short == "dW"
    with pytest.raises(KeyError, match="conv2d has no array 'weight'"):
        CONV2D.array("weight")
    assert CONV2D.op("da-full").map_op == "da"
    with pytest.raises(ValueError) as caught:
        CONV2D.op("backward")
    assert str(caught.value) == (
        "conv2d has no op 'backward'; expected one of forward, dw, da, db, da-full")
    assert CONV2D.option("kernel").fields == ("kernel_size",)
    with pytest.raises(KeyError) as missing:
        CONV2D.option("kernel_size")
    assert missing.value.args == ("kernel_size",)


# ---------------------------------------------------------------------- build
def test_build_takes_defaults_for_what_is_not_given() -> None:
    assert CONV2D.build({}) == ConvSpec((6, 6), (3, 3), layer=2)
    assert CONV2D.build({"stride": "2", "bias": False}) == ConvSpec(stride=2, bias=False)
    assert _toy().build({}) == _Toy()
    assert _toy().build({"size": 0}) == _Toy(0)
    # an option's own default wins over the spec's
    assert _toy("3").build({}) == _Toy(3)
    assert _toy("3").build({"size": "4"}) == _Toy(4)


def test_build_rejects_an_unknown_key_and_lists_the_options() -> None:
    with pytest.raises(SpecError) as caught:
        CONV2D.build({"kernel": "3", "strides": "2"})
    assert caught.value.field_name == "strides"
    assert caught.value.rule == ("not an option of conv2d (it takes bias, dilation, filters, "
                                 "input, kernel, layer, padding, stride)")


@pytest.mark.parametrize(
    ("values", "key", "rule"),
    [
        # the option's parser fails: named by the option, not by the spec field
        ({"kernel": "0"}, "kernel", "must be at least 1, got '0'"),
        ({"input": "3x3x3x3"}, "input", "expected NxN or NxNxN, got '3x3x3x3'"),
        # the spec's rule fails: its field is mapped back to the option that set it
        ({"kernel": "7"}, "kernel", "kernel height after dilation (7) is larger than the "
                                    "padded input height (6)"),
        ({"dilation": "1x0"}, "dilation", "must be at least 1, got '1x0'"),
        ({"input": "2x300x300"}, "input", "layer too large to derive: the forward pass has "
                                          "1,598,472 multiplications (limit 250,000)"),
        ({"input": "7x7", "kernel": "2", "layer": "0"}, "layer",
         "must be a positive integer, got '0'"),
    ],
)
def test_build_errors_name_the_option_key(values: dict[str, Any], key: str,
                                          rule: str) -> None:
    with pytest.raises(SpecError) as caught:
        CONV2D.build(values)
    assert caught.value.field_name == key
    assert caught.value.rule == rule
    assert str(caught.value) == f"{key}: {rule}"


def test_build_keeps_a_spec_field_no_option_sets() -> None:
    with pytest.raises(SpecError) as caught:
        _toy().build({"size": "9"})
    assert (caught.value.field_name, caught.value.rule) == ("cells", "too many: 9")
    with pytest.raises(SpecError) as caught:
        _toy().build({"size": 6})
    assert str(caught.value) == "cells: too many: 6"


# --------------------------------------------------------------- shape helpers
def test_display_shapes_drop_leading_ones_only() -> None:
    assert drop_ones((1, 3, 1), (4, 1)) == (3, 4, 1)
    assert drop_ones((1,), ()) == ()
    assert drop_ones((2, 2), (5,)) == (2, 2, 5)
    assert keep_mask((1, 1, 4, 4), (1, 4, 4)) == (False, True, True, True)
    assert keep_mask((2, 1, 4), (2, 4)) == (True, False, True)
    assert keep_mask((1, 1, 4, 1), (4, 1)) == (False, False, True, True)
    assert keep_mask((3, 4), (3, 4)) == (True, True)
    assert keep_mask((1, 1), (1, 1)) == (True, True)


def test_indices_and_object_arrays() -> None:
    assert list(all_indices((2, 3))) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert list(all_indices(())) == [()]
    filled = object_array((2, 3), sympy.S.Zero)
    assert filled.dtype == object
    assert filled.shape == (2, 3)
    assert all(cell is sympy.S.Zero for cell in filled.flat)
    symbol = sympy.Symbol("x")
    assert np.array_equal(object_array((2,), symbol), np.array([symbol, symbol], dtype=object))


@pytest.mark.parametrize(("axes", "full", "display", "letters"), [
    ("fc", (3, 2, 3, 3), (3, 2, 3, 3), "fc"),  # both axes drawn
    ("fc", (1, 2, 3, 3), (2, 3, 3), "c"),  # one filter: its axis is not drawn
    ("fc", (3, 1, 3, 3), (3, 3, 3), "f"),
    ("fc", (1, 1, 3, 3), (3, 3), ""),
    ("c", (2, 4, 4), (2, 4, 4), "c"),
    ("c", (4, 4), (4, 4), ""),  # a map without channels
    ("c", (5,), (5,), ""),  # a vector
    ("", (5,), (5,), ""),
    ("c", (3, 2, 4, 4), (3, 2, 4, 4), ""),  # letters for another number of axes: none
    ("", (2, 4, 4), (2, 4, 4), ""),
])
def test_lead_axes_names_the_leading_axes_a_display_keeps(
    axes: str, full: tuple[int, ...], display: tuple[int, ...], letters: str
) -> None:
    decl = ArrayDecl("input", "a", lambda spec: "a", "input", axes=axes)
    assert decl.lead_axes(full, display) == letters


def test_an_option_without_default_does_not_stop_the_later_ones() -> None:
    # max pooling's stride has no default of its own (it is the kernel's, as in PyTorch)
    # and comes before padding: padding must still be read
    from convviz.layers import layer_type

    spec = layer_type("maxpool2d").build({"kernel": "3", "padding": "1"})
    assert spec.stride == (3, 3)
    assert spec.padding == (1, 1)
