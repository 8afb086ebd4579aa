"""Custom layers: subclass a convviz scene and pass your own ConvSpec.

    manim -ql scenes/variants.py StridedPaddedForward
    manim -ql scenes/variants.py TwoChannelWeightGradient
    manim -ql scenes/variants.py DilatedFullConvolution
"""

from typing import Any

from convviz import ConvSpec
from convviz.rendering.scenes import (
    ForwardConvolution,
    InputGradientAsFullConvolution,
    WeightGradient,
)


class StridedPaddedForward(ForwardConvolution):
    """Forward pass with stride 2 and one ring of zero padding."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ConvSpec(input_size=(5, 5), stride=2, padding=1), **kwargs)


class TwoChannelWeightGradient(WeightGradient):
    """dL/dW for a two-channel input and two filters (each slice its own grid)."""

    def __init__(self, **kwargs: Any) -> None:
        spec = ConvSpec(input_size=(4, 4), kernel_size=(2, 2), channels=2, filters=2)
        super().__init__(spec, max_steps=6, **kwargs)


class DilatedFullConvolution(InputGradientAsFullConvolution):
    """dL/da of a dilated 2x2 kernel, shown as a full correlation."""

    def __init__(self, **kwargs: Any) -> None:
        spec = ConvSpec(input_size=(5, 5), kernel_size=(2, 2), dilation=2)
        super().__init__(spec, max_steps=8, **kwargs)
