"""The layer types convviz knows, one declaration each (see :mod:`convviz.layers.base`).

Every module of this package that defines ``TYPES`` (a tuple of
:class:`~convviz.layers.base.LayerType`) is picked up, so adding a layer type means adding
one file. Importing the declarations needs neither SymPy nor manim: the command line
builds its options from them at start-up.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from convviz.layers.base import LayerType

__all__ = ["DEFAULT_TYPE", "layer_type", "type_names", "types"]

#: The type commands use when ``--type`` is not given.
DEFAULT_TYPE = "conv2d"

_NOT_DECLARATIONS = {"base", "namespace"}


@cache
def types() -> dict[str, LayerType]:
    """Every layer type by name, ``conv2d`` first, then in module order."""
    found: dict[str, LayerType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_DECLARATIONS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for declared in getattr(module, "TYPES", ()):
            if declared.name in found:
                raise RuntimeError(f"layer type {declared.name!r} is declared twice")
            found[declared.name] = declared
    ordered = sorted(found.values(), key=lambda t: (t.name != DEFAULT_TYPE, t.rank, t.name))
    return {t.name: t for t in ordered}


def type_names() -> tuple[str, ...]:
    """Names of the layer types, as ``--type`` takes them."""
    return tuple(types())


def layer_type(spec_or_name: Any) -> LayerType:
    """The declaration of a spec's type, or of the type called ``spec_or_name``."""
    name = spec_or_name if isinstance(spec_or_name, str) else spec_or_name.TYPE
    try:
        return types()[name]
    except KeyError:
        raise ValueError(
            f"unknown layer type {name!r}; expected one of {', '.join(type_names())}"
        ) from None
