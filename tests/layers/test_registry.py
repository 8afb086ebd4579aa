"""The registry of layer types (:mod:`convviz.layers`): look-up by name or by spec.

References are the declarations' own fields (name, rank, spec class) and the order the
package documents: ``conv2d`` first, then by rank.
"""

from __future__ import annotations

import pytest

from convviz.layers import DEFAULT_TYPE, layer_type, type_names, types
from convviz.layers.pooling import AvgPool2d, MaxPool2d


def test_type_names_put_conv2d_first_then_follow_the_ranks() -> None:
    names = type_names()
    assert isinstance(names, tuple)
    assert names[0] == DEFAULT_TYPE == "conv2d"
    assert {"maxpool2d", "avgpool2d", "conv-transpose2d", "relu", "dense"} <= set(names)
    assert len(set(names)) == len(names)
    ranks = [types()[name].rank for name in names[1:]]
    assert ranks == sorted(ranks)
    assert names.index("maxpool2d") + 1 == names.index("avgpool2d")  # ranks 30, 31


def test_layer_type_by_name_or_by_spec() -> None:
    for name, spec in (("maxpool2d", MaxPool2d()), ("avgpool2d", AvgPool2d(channels=2))):
        declared = layer_type(name)
        assert declared.name == name
        assert declared.spec_class is type(spec)
        assert layer_type(spec) is declared


@pytest.mark.parametrize("name", ["maxpool", "MaxPool2d", ""])
def test_unknown_layer_type_lists_the_known_ones(name: str) -> None:
    with pytest.raises(ValueError) as info:
        layer_type(name)
    message = str(info.value)
    head = f"unknown layer type {name!r}; expected one of "
    assert message.startswith(head)
    assert message[len(head):].split(", ") == list(type_names())
