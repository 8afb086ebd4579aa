"""convviz: derive and animate what happens inside neural-network layers.

The core (everything importable from this package except :func:`render` and the scene
classes) needs SymPy and NumPy only; Manim is imported on first use of the rendering API.

>>> import convviz
>>> spec = convviz.ConvSpec(input_size=(6, 6), kernel_size=(3, 3))
>>> d = convviz.derive(spec)
>>> step = convviz.highlight_map(d, "forward").steps[1]
>>> step.highlights["input"][:3]
((1, 2), (1, 3), (1, 4))
"""

from __future__ import annotations

from typing import Any

from convviz.derivation import OPS, Derivation, derive
from convviz.highlights import ROLES, ArrayInfo, Cell, HighlightMap, Step
from convviz.identities import FullConvolutionView, IdentityCheck, verify
from convviz.numeric import NumericCheck, cross_check
from convviz.reflection import ReflectionError, Reflector, highlight_map
from convviz.spec import MAX_PRODUCTS, ConvSpec, SpecError

__version__ = "0.1.0"

__all__ = [
    "MAX_PRODUCTS",
    "OPS",
    "ROLES",
    "ArrayInfo",
    "Cell",
    "ConvSpec",
    "Derivation",
    "FullConvolutionView",
    "HighlightMap",
    "IdentityCheck",
    "NumericCheck",
    "ReflectionError",
    "Reflector",
    "SpecError",
    "Step",
    "__version__",
    "cross_check",
    "derive",
    "highlight_map",
    "verify",
]

# Names served lazily from the rendering layer, so that importing convviz never imports
# manim (slow to import, and not needed to derive or check anything).
_RENDERING = {
    "render": "convviz.rendering.api",
    "ForwardConvolution": "convviz.rendering.scenes",
    "WeightGradient": "convviz.rendering.scenes",
    "InputGradient": "convviz.rendering.scenes",
    "BiasGradient": "convviz.rendering.scenes",
    "InputGradientAsFullConvolution": "convviz.rendering.scenes",
}


def __getattr__(name: str) -> Any:
    module = _RENDERING.get(name)
    if module is None:
        raise AttributeError(f"module 'convviz' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
