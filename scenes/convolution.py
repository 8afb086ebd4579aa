"""The five convviz clips for the article's layer (6x6 input, 3x3 kernel).

Render one with plain manim, e.g.::

    manim -ql scenes/convolution.py ForwardConvolution
    manim -qh scenes/convolution.py InputGradientAsFullConvolution

or with convviz, which also writes timelines and chapters::

    convviz render forward -q h
"""

from convviz.rendering.scenes import (
    BiasGradient,
    ForwardConvolution,
    InputGradient,
    InputGradientAsFullConvolution,
    WeightGradient,
)

__all__ = [
    "BiasGradient",
    "ForwardConvolution",
    "InputGradient",
    "InputGradientAsFullConvolution",
    "WeightGradient",
]
