"""The five convviz clips for the article's layer (6x6 input, 3x3 kernel).

Render one with plain manim, e.g.::

    manim -ql scenes/convolution.py ForwardConvolution
    manim -qh scenes/convolution.py InputGradientAsFullConvolution

or with convviz, which also writes timelines and chapters::

    convviz render forward -q h

manim only lists scenes defined in the file it is given, so each convviz scene is
re-exported here as a (trivial) subclass.
"""

from convviz.rendering import scenes


class ForwardConvolution(scenes.ForwardConvolution):
    """z = a * W + b, one output cell per step."""


class WeightGradient(scenes.WeightGradient):
    """dL/dW from the input and dL/dz."""


class InputGradient(scenes.InputGradient):
    """dL/da from dL/dz and the kernel."""


class BiasGradient(scenes.BiasGradient):
    """dL/db, the sum of dL/dz."""


class InputGradientAsFullConvolution(scenes.InputGradientAsFullConvolution):
    """dL/da as the full correlation of dL/dz with rot180(W)."""
