"""convviz: derive and animate what happens inside neural-network layers.

Every layer type has a spec class named as in ``torch.nn``: :class:`Conv2d` (also
``ConvSpec``), :class:`ConvTranspose2d`, :class:`MaxPool2d`, :class:`AvgPool2d`,
:class:`Linear`, :class:`ReLU`, :class:`Sigmoid`, :class:`Tanh`, :class:`Flatten`,
:class:`CrossEntropyLoss` and :class:`MSELoss`; :func:`derive` works for all of them.

The core (everything importable from this package except :func:`render` and the scene
classes) needs SymPy and NumPy only; Manim is imported on first use of the rendering API.
:func:`write_page` and :func:`write_network_page` write a clip's interactive, offline
HTML page (rendering the clip first, unless given an existing render's timeline).
:func:`Sequential` and :func:`load_network` build networks of the specs (see
:mod:`convviz.network`, whose factories named like ``torch.nn``'s classes take the lazy
layers' arguments: ``convviz.network.Linear(3)`` has 3 outputs). Names are loaded on
first use, so the command line starts without importing SymPy until a command needs it.

>>> import convviz
>>> spec = convviz.ConvSpec(input_size=(6, 6), kernel_size=(3, 3))
>>> d = convviz.derive(spec)
>>> step = convviz.highlight_map(d, "forward").steps[1]
>>> step.highlights["input"][:3]
((1, 2), (1, 3), (1, 4))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from convviz.derivation import OPS, Derivation, derive
    from convviz.evaluation import NetworkResult, evaluate_network
    from convviz.highlights import ROLES, ArrayInfo, Cell, HighlightMap, Step
    from convviz.identities import FullConvolutionView, IdentityCheck, verify
    from convviz.layers.activation import ReLU, Sigmoid, Tanh
    from convviz.layers.conv2d import Conv2d
    from convviz.layers.conv_transpose2d import ConvTranspose2d
    from convviz.layers.flatten import Flatten
    from convviz.layers.linear import Linear
    from convviz.layers.loss import CrossEntropyLoss, MSELoss
    from convviz.layers.pooling import AvgPool2d, MaxPool2d
    from convviz.network import Network, Sequential, derive_network, load_network
    from convviz.numeric import NumericCheck, cross_check
    from convviz.reflection import ReflectionError, Reflector, highlight_map
    from convviz.rendering.api import render
    from convviz.rendering.scenes import (
        BiasGradient,
        ForwardConvolution,
        InputGradient,
        InputGradientAsFullConvolution,
        LayerScene,
        WeightGradient,
        scene_class,
    )
    from convviz.spec import MAX_PRODUCTS, ConvSpec, SpecError
    from convviz.web.api import write_network_page, write_page

#: Where each public name lives. The rendering names import manim (slow to import, and
#: not needed to derive or check anything).
_LOCATIONS = {
    "OPS": "convviz.derivation",
    "Derivation": "convviz.derivation",
    "derive": "convviz.derivation",
    "ROLES": "convviz.highlights",
    "ArrayInfo": "convviz.highlights",
    "Cell": "convviz.highlights",
    "HighlightMap": "convviz.highlights",
    "Step": "convviz.highlights",
    "FullConvolutionView": "convviz.identities",
    "IdentityCheck": "convviz.identities",
    "verify": "convviz.identities",
    "NetworkResult": "convviz.evaluation",
    "evaluate_network": "convviz.evaluation",
    "Network": "convviz.network",
    "Sequential": "convviz.network",
    "derive_network": "convviz.network",
    "load_network": "convviz.network",
    "NumericCheck": "convviz.numeric",
    "cross_check": "convviz.numeric",
    "ReflectionError": "convviz.reflection",
    "Reflector": "convviz.reflection",
    "highlight_map": "convviz.reflection",
    "MAX_PRODUCTS": "convviz.spec",
    "Conv2d": "convviz.layers.conv2d",
    "ConvTranspose2d": "convviz.layers.conv_transpose2d",
    "MaxPool2d": "convviz.layers.pooling",
    "AvgPool2d": "convviz.layers.pooling",
    "Linear": "convviz.layers.linear",
    "ReLU": "convviz.layers.activation",
    "Sigmoid": "convviz.layers.activation",
    "Tanh": "convviz.layers.activation",
    "Flatten": "convviz.layers.flatten",
    "CrossEntropyLoss": "convviz.layers.loss",
    "MSELoss": "convviz.layers.loss",
    "LayerScene": "convviz.rendering.scenes",
    "scene_class": "convviz.rendering.scenes",
    "ConvSpec": "convviz.spec",
    "SpecError": "convviz.spec",
    "render": "convviz.rendering.api",
    "ForwardConvolution": "convviz.rendering.scenes",
    "WeightGradient": "convviz.rendering.scenes",
    "InputGradient": "convviz.rendering.scenes",
    "BiasGradient": "convviz.rendering.scenes",
    "InputGradientAsFullConvolution": "convviz.rendering.scenes",
    "write_page": "convviz.web.api",
    "write_network_page": "convviz.web.api",
}

__all__ = [
    "MAX_PRODUCTS",
    "OPS",
    "ROLES",
    "ArrayInfo",
    "AvgPool2d",
    "BiasGradient",
    "Cell",
    "Conv2d",
    "ConvSpec",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "Derivation",
    "Flatten",
    "ForwardConvolution",
    "FullConvolutionView",
    "HighlightMap",
    "IdentityCheck",
    "InputGradient",
    "InputGradientAsFullConvolution",
    "LayerScene",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Network",
    "NetworkResult",
    "NumericCheck",
    "ReLU",
    "ReflectionError",
    "Reflector",
    "Sequential",
    "Sigmoid",
    "SpecError",
    "Step",
    "Tanh",
    "WeightGradient",
    "__version__",
    "cross_check",
    "derive",
    "derive_network",
    "evaluate_network",
    "highlight_map",
    "load_network",
    "render",
    "scene_class",
    "verify",
    "write_network_page",
    "write_page",
]


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'convviz' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
