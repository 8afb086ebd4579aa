from __future__ import annotations

import dataclasses

import pytest

from convviz.spec import MAX_PRODUCTS, ConvSpec, SpecError, pair_text, parse_pair, parse_shape

# (input, kernel, stride, padding, dilation) -> output size, worked out by hand
OUTPUT_SIZES = [
    pytest.param((6, 6), (3, 3), 1, 0, 1, (4, 4), id="seed-6x6-k3"),
    pytest.param((5, 5), (3, 3), 2, 0, 1, (2, 2), id="stride2"),
    pytest.param((6, 6), (3, 3), 2, 0, 1, (2, 2), id="stride2-floor"),
    pytest.param((5, 5), (3, 3), 1, 1, 1, (5, 5), id="same-padding"),
    pytest.param((7, 7), (3, 3), 1, 0, 2, (3, 3), id="dilation2"),
    pytest.param((7, 5), (2, 3), (2, 1), (1, 0), (1, 2), (4, 1), id="rect-mixed"),
    pytest.param((1, 1), (1, 1), 1, 0, 1, (1, 1), id="1x1"),
    pytest.param((1, 1), (3, 3), 1, 1, 1, (1, 1), id="kernel-fits-only-with-padding"),
    pytest.param((28, 28), (5, 5), 1, 0, 1, (24, 24), id="28-k5"),
    pytest.param((8, 8), (3, 3), 3, 1, 2, (2, 2), id="all-three"),
]


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "dilation", "expected"),
                         OUTPUT_SIZES)
def test_output_size_matches_hand_values(size, kernel, stride, padding, dilation, expected):
    spec = ConvSpec(size, kernel, stride=stride, padding=padding, dilation=dilation)
    assert spec.output_size == expected


def test_pairs_are_normalised():
    spec = ConvSpec((6, 6), (3, 3), stride=2, padding=[1, 0], dilation=(1, 2))
    assert spec.stride == (2, 2)
    assert spec.padding == (1, 0)
    assert spec.dilation == (1, 2)
    assert spec.padded_size == (8, 6)
    assert spec.effective_kernel_size == (3, 5)


BAD_SPECS = [
    pytest.param({"input_size": (0, 5)}, "input_size", id="input-zero"),
    pytest.param({"input_size": (5, -1)}, "input_size", id="input-negative"),
    pytest.param({"kernel_size": (0, 3)}, "kernel_size", id="kernel-zero"),
    pytest.param({"stride": 0}, "stride", id="stride-zero"),
    pytest.param({"stride": (1, 0)}, "stride", id="stride-w-zero"),
    pytest.param({"dilation": 0}, "dilation", id="dilation-zero"),
    pytest.param({"dilation": (0, 1)}, "dilation", id="dilation-h-zero"),
    pytest.param({"padding": -1}, "padding", id="padding-negative"),
    pytest.param({"padding": (0, -2)}, "padding", id="padding-w-negative"),
    pytest.param({"channels": 0}, "channels", id="channels-zero"),
    pytest.param({"filters": 0}, "filters", id="filters-zero"),
    pytest.param({"filters": True}, "filters", id="filters-bool"),
    pytest.param({"layer": 0}, "layer", id="layer-zero"),
    pytest.param({"bias": 1}, "bias", id="bias-not-bool"),
    pytest.param({"stride": 1.5}, "stride", id="stride-float"),
    pytest.param({"stride": (1, 2, 3)}, "stride", id="stride-triple"),
    pytest.param({"kernel_size": (9, 9)}, "kernel_size", id="kernel-larger-than-input"),
    pytest.param({"kernel_size": (3, 3), "dilation": 3}, "kernel_size",
                 id="dilated-kernel-larger"),
    pytest.param({"input_size": (400, 400)}, "input_size", id="too-large"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_SPECS)
def test_invalid_specs_name_the_field(changes, field):
    with pytest.raises(SpecError) as info:
        ConvSpec(**{"input_size": (6, 6), "kernel_size": (3, 3), **changes})
    assert info.value.field_name == field
    assert str(info.value).startswith(f"{field}: ")


def test_kernel_may_exactly_fill_padded_input():
    # 3x3 kernel dilated by 2 spans 5 cells; 3x3 input padded by 1 is 5 wide.
    spec = ConvSpec((3, 3), (3, 3), padding=1, dilation=2)
    assert spec.output_size == (1, 1)


def test_kernel_height_too_large_message():
    with pytest.raises(SpecError, match=r"height after dilation \(7\).*\(6\)"):
        ConvSpec((6, 6), (4, 3), dilation=2)


def test_product_limit_boundary():
    # 64x64 with 5x5: 60*60*25 = 90,000 multiplications, accepted.
    assert ConvSpec((64, 64), (5, 5)).products == 60 * 60 * 25
    spec = ConvSpec((4, 4), (1, 1), channels=1, filters=1)
    assert spec.products == 16
    big = ConvSpec((100, 100), (1, 1), channels=25, filters=1)
    assert big.products == MAX_PRODUCTS
    with pytest.raises(SpecError, match="input_size"):
        dataclasses.replace(big, channels=26)


def test_frozen_and_replace_revalidates():
    spec = ConvSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.stride = (2, 2)  # type: ignore[misc]
    with pytest.raises(SpecError, match="stride"):
        dataclasses.replace(spec, stride=0)


DISPLAY = [
    pytest.param(1, 1, (6, 6), (3, 3), (), (4, 4), id="C1-F1"),
    pytest.param(3, 1, (3, 6, 6), (3, 3, 3), (), (4, 4), id="C3-F1"),
    pytest.param(1, 2, (6, 6), (2, 3, 3), (2,), (2, 4, 4), id="C1-F2"),
    pytest.param(3, 2, (3, 6, 6), (2, 3, 3, 3), (2,), (2, 4, 4), id="C3-F2"),
]


@pytest.mark.parametrize(("channels", "filters", "inp", "kernel", "bias", "out"), DISPLAY)
def test_display_shapes_drop_size_one_axes(channels, filters, inp, kernel, bias, out):
    spec = ConvSpec((6, 6), (3, 3), channels=channels, filters=filters)
    assert spec.input_shape == inp
    assert spec.kernel_shape == kernel
    assert spec.bias_shape == bias
    assert spec.output_shape == out


def test_display_keeps_size_one_spatial_axes():
    spec = ConvSpec((1, 5), (1, 2))
    assert spec.input_shape == (1, 5)
    assert spec.output_shape == (1, 4)


def test_describe_and_slug():
    spec = ConvSpec((8, 8), (3, 3), stride=2, padding=(1, 0), channels=3, filters=2, bias=False)
    assert spec.describe() == (
        "3x8x8 input, 3x3 kernel, 2 filters, stride 2, padding 1x0, no bias"
    )
    assert spec.slug() == "3x8x8_k3x3_f2_s2_p1x0_nobias"
    assert ConvSpec().slug() == "6x6_k3x3"


GOOD_SHAPES = [
    pytest.param("6x6", (2, 3), (6, 6), id="2d"),
    pytest.param("3x6x6", (2, 3), (3, 6, 6), id="3d"),
    pytest.param(" 7 x 5 ", (2,), (7, 5), id="spaces"),
    pytest.param("1x1", (2,), (1, 1), id="ones"),
]


@pytest.mark.parametrize(("text", "allowed", "expected"), GOOD_SHAPES)
def test_parse_shape_good(text, allowed, expected):
    assert parse_shape("input_size", text, allowed=allowed) == expected


BAD_SHAPES = [
    pytest.param("abc", (2, 3), id="letters"),
    pytest.param("3x", (2, 3), id="trailing-x"),
    pytest.param("x3", (2, 3), id="leading-x"),
    pytest.param("0x5", (2, 3), id="zero"),
    pytest.param("-3x3", (2, 3), id="negative"),
    pytest.param("6", (2, 3), id="one-part"),
    pytest.param("2x3x6x6", (2, 3), id="four-parts"),
    pytest.param("3x6x6", (2,), id="three-not-allowed"),
    pytest.param("", (2,), id="empty"),
    pytest.param("6.0x6", (2,), id="float"),
]


@pytest.mark.parametrize(("text", "allowed"), BAD_SHAPES)
def test_parse_shape_bad(text, allowed):
    with pytest.raises(SpecError) as info:
        parse_shape("kernel_size", text, allowed=allowed)
    assert info.value.field_name == "kernel_size"
    assert repr(text) in str(info.value)


GOOD_PAIRS = [
    pytest.param("2", 1, (2, 2), id="single"),
    pytest.param("2x1", 1, (2, 1), id="pair"),
    pytest.param("0", 0, (0, 0), id="zero-allowed"),
    pytest.param(" 3 x 0 ", 0, (3, 0), id="spaces"),
]


@pytest.mark.parametrize(("text", "minimum", "expected"), GOOD_PAIRS)
def test_parse_pair_good(text, minimum, expected):
    assert parse_pair("stride", text, minimum=minimum) == expected


BAD_PAIRS = [
    pytest.param("0", 1, id="zero-below-1"),
    pytest.param("2x0", 1, id="second-zero"),
    pytest.param("-1", 0, id="negative"),
    pytest.param("a", 1, id="letter"),
    pytest.param("1x2x3", 1, id="three-parts"),
    pytest.param("", 1, id="empty"),
    pytest.param("1.5", 1, id="float"),
]


@pytest.mark.parametrize(("text", "minimum"), BAD_PAIRS)
def test_parse_pair_bad(text, minimum):
    with pytest.raises(SpecError) as info:
        parse_pair("padding", text, minimum=minimum)
    assert info.value.field_name == "padding"


SPEC_MESSAGES = [
    pytest.param({"input_size": (0, 5)}, "input_size", "sizes must be at least 1, got (0, 5)",
                 id="input-zero"),
    pytest.param({"kernel_size": (3, 0)}, "kernel_size", "sizes must be at least 1, got (3, 0)",
                 id="kernel-w-zero"),
    pytest.param({"stride": (1, 0)}, "stride", "must be at least 1, got (1, 0)", id="stride"),
    pytest.param({"dilation": (0, 1)}, "dilation", "must be at least 1, got (0, 1)",
                 id="dilation"),
    pytest.param({"padding": (0, -2)}, "padding", "must be 0 or more, got (0, -2)",
                 id="padding"),
    pytest.param({"channels": 0}, "channels", "must be an integer of at least 1, got 0",
                 id="channels"),
    pytest.param({"filters": True}, "filters", "must be an integer of at least 1, got True",
                 id="filters-bool"),
    pytest.param({"layer": 1.5}, "layer", "must be an integer of at least 1, got 1.5",
                 id="layer-float"),
    pytest.param({"bias": 1}, "bias", "must be True or False, got 1", id="bias"),
    pytest.param({"stride": True}, "stride",
                 "expected an integer or a pair of integers, got True", id="stride-bool"),
    pytest.param({"stride": (1, 2, 3)}, "stride",
                 "expected an integer or a pair of integers, got (1, 2, 3)", id="stride-triple"),
    pytest.param({"stride": (True, 1)}, "stride",
                 "expected an integer or a pair of integers, got (True, 1)", id="pair-of-bool"),
    pytest.param({"dilation": (1.0, 2)}, "dilation",
                 "expected an integer or a pair of integers, got (1.0, 2)", id="pair-of-float"),
    pytest.param({"padding": "1"}, "padding",
                 "expected an integer or a pair of integers, got '1'", id="text"),
    # 6x6 input: a 3x4 kernel dilated by (1, 2) spans 3 rows and 2*3+1 = 7 columns
    pytest.param({"kernel_size": (3, 4), "dilation": (1, 2)}, "kernel_size",
                 "kernel width after dilation (7) is larger than the padded input width (6)",
                 id="kernel-too-wide"),
    pytest.param({"kernel_size": (7, 3)}, "kernel_size",
                 "kernel height after dilation (7) is larger than the padded input height (6)",
                 id="kernel-too-tall"),
    # 398 * 398 outputs times 9 kernel cells
    pytest.param({"input_size": (400, 400)}, "input_size",
                 "layer too large to derive: the forward pass has 1,425,636 multiplications "
                 "(limit 250,000)", id="too-large"),
]


@pytest.mark.parametrize(("changes", "field", "rule"), SPEC_MESSAGES)
def test_invalid_specs_say_the_rule(changes, field, rule):
    with pytest.raises(SpecError) as info:
        ConvSpec(**{"input_size": (6, 6), "kernel_size": (3, 3), **changes})
    assert (info.value.field_name, info.value.rule) == (field, rule)
    assert str(info.value) == f"{field}: {rule}"


def test_pairs_from_lists_and_single_numbers():
    spec = ConvSpec([5, 4], 2, stride=[2, 1], padding=1, dilation=[1, 1])
    assert (spec.input_size, spec.kernel_size, spec.stride, spec.padding) == (
        (5, 4), (2, 2), (2, 1), (1, 1))
    assert all(type(v) is tuple for v in (spec.input_size, spec.stride, spec.dilation))
    # the smallest legal values pass
    tiny = ConvSpec((1, 1), (1, 1), stride=1, padding=0, dilation=1, channels=1, filters=1,
                    layer=1)
    assert tiny.output_size == (1, 1)


def test_describe_and_slug_name_every_setting():
    spec = ConvSpec((5, 4), (2, 3), dilation=(2, 1), padding=(0, 1), channels=2, layer=3)
    assert spec.describe() == "2x5x4 input, 2x3 kernel, padding 0x1, dilation 2x1"
    assert spec.slug() == "2x5x4_k2x3_p0x1_d2x1_l3"
    plain = ConvSpec((7, 7), (2, 2), stride=(1, 3), dilation=2, filters=4, layer=1)
    assert plain.describe() == "7x7 input, 2x2 kernel, 4 filters, stride 1x3, dilation 2"
    assert plain.slug() == "7x7_k2x2_f4_s1x3_d2_l1"
    assert ConvSpec(bias=False).describe() == "6x6 input, 3x3 kernel, no bias"
    assert ConvSpec(padding=1).slug() == "6x6_k3x3_p1"


def test_gradients_are_shaped_like_their_arrays():
    # 5x4 input padded (0, 1), 2x3 kernel dilated (2, 1): output (5 - 3 + 1, 6 - 3 + 1)
    spec = ConvSpec((5, 4), (2, 3), dilation=(2, 1), padding=(0, 1), channels=2)
    assert spec.full_shape("input") == spec.full_shape("grad_input") == (2, 5, 4)
    assert spec.full_shape("grad_kernel") == (1, 2, 2, 3)
    assert spec.full_shape("grad_bias") == (1,)
    assert spec.full_shape("grad_output") == (1, 3, 4)
    assert spec.display_shape("grad_input") == (2, 5, 4)
    assert spec.display_shape("grad_kernel") == (2, 2, 3)
    assert spec.display_shape("grad_bias") == ()
    assert spec.display_shape("output") == spec.display_shape("grad_output") == (3, 4)


@pytest.mark.parametrize(
    ("text", "allowed", "rule"),
    [
        ("abc", (2, 3), "expected sizes like NxN or NxNxN with positive integers, got 'abc'"),
        ("6", (2, 3), "expected NxN or NxNxN, got '6'"),
        ("3x6x6", (2,), "expected NxN, got '3x6x6'"),
        ("4x3", (1,), "expected N, got '4x3'"),
        ("0x5", (2,), "sizes must be at least 1, got '0x5'"),
    ],
)
def test_parse_shape_messages(text, allowed, rule):
    with pytest.raises(SpecError) as info:
        parse_shape("input_size", text, allowed=allowed)
    assert (info.value.field_name, info.value.rule) == ("input_size", rule)


@pytest.mark.parametrize(
    ("text", "minimum", "rule"),
    [
        ("a", 1, "expected an integer like 2 or a pair like 2x1, got 'a'"),
        ("2x", 1, "expected an integer like 2 or a pair like 2x1, got '2x'"),
        ("0", 1, "must be at least 1, got '0'"),
        ("3x-1", 0, "must be 0 or more, got '3x-1'"),
        ("1x2", 2, "must be 2 or more, got '1x2'"),
    ],
)
def test_parse_pair_messages(text, minimum, rule):
    with pytest.raises(SpecError) as info:
        parse_pair("padding", text, minimum=minimum)
    assert (info.value.field_name, info.value.rule) == ("padding", rule)


def test_pair_text():
    assert pair_text((2, 2)) == "2"
    assert pair_text((2, 1)) == "2x1"
    assert pair_text((1, 2)) == "1x2"
