r"""Networks: layers in order, shapes inferred, numbers drawn or read, each layer derived.

A network file (TOML) gives the input shape and the layers in order; the keys of each
``[[layer]]`` are the layer options of lecture files (``convviz types`` lists them)::

    input = "1x6x6"            # C x H x W (H x W means C = 1), or "4" for a vector
    [[layer]]
    type = "conv2d"
    filters = 2
    kernel = "3x3"
    [[layer]]
    type = "relu"
    [[layer]]
    type = "maxpool2d"
    kernel = "2x2"
    [[layer]]
    type = "flatten"
    [[layer]]
    type = "dense"
    outputs = 3
    [[layer]]
    type = "softmax-cross-entropy"

Each layer's input is the previous layer's output, so ``input`` is only given to the
network (a layer that gives it anyway must agree). The last layer may be a loss
(``softmax-cross-entropy`` or ``mse``); a network without one takes the gradient of its
output from the values. In Python the same network is
``Sequential(Conv2d(2, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(3), CrossEntropyLoss(),
input="1x6x6")``, with the factories of this module named like ``torch.nn``'s lazy
layers (``Linear(3)`` has 3 outputs, as ``torch.nn.LazyLinear(3)``), or with spec
instances of :mod:`convviz.layers`, whose input fields :class:`Sequential` replaces by the
inferred shape (through the type's declared ``input`` option, so every type works the
same way) and whose ``layer`` number it sets.

Notation (as the seeds write it)
--------------------------------
Parametric layers (``conv2d``, ``conv-transpose2d``, ``dense``) are numbered ``l = 1, 2,
...``; the input is ``a^{[0]}``; layer ``l`` computes ``z^{[l]}`` and the activation,
pooling or flattening after it keeps the number: ``z^{[1]} -> a^{[1]} -> p^{[1]} ->
f^{[1]}``. A loss takes the logits ``z^{[L]}`` to ``\hat{y}`` and ``\mathcal{L}``
(softmax cross-entropy), or the prediction ``\hat{y}`` and the target ``y`` to
``\mathcal{L}`` (mse: the layer before it outputs ``\hat{y}``). A name already taken gets a
prime (``a'^{[1]}`` for a second activation). Every layer is derived on its own
(:func:`derive_network`), its cells named after the previous layer's output, its backward
pass written against the opaque upstream gradient ``Derivative(L, z[...])``. Messages
count ``[[layer]]`` entries instead (``layer 5 (dense): ...``, 1-based, in file order).

Values
------
A values file (JSON) gives numbers in PyTorch's layouts, without the batch axis::

    {"input": [[[0, 1, 1, 0, 0, 1], ...]],     # (C, H, W), or (N,)
     "target": 2,                               # class index from 0 (softmax-cross-entropy)
                                                # or a list (mse)
     "layers": [{"weight": ..., "bias": ...},   # one object per [[layer]]
                {}, ...]}

``weight`` is ``(F, C, KH, KW)`` for conv2d, ``(C, F, KH, KW)`` for conv-transpose2d and
``(M, N)`` for dense; ``bias`` is ``(F,)`` or ``(M,)``. A network without a loss takes
``"grad_output"`` (shaped like its last output) instead of ``"target"``. Anything left
out is drawn from the seed.

Drawn values (``--seed N``) are small and readable, and exact in binary floating point,
so that every sum through convolutions, dense layers, ReLU and pooling is computed
exactly in any order (ties in max pooling and zeros at ReLU are real ties and zeros, the
same in every float64 implementation):

* input: integers 0 to 3;
* weights and biases: multiples of 0.25 in [-0.5, 0.5];
* target: a class index (softmax-cross-entropy; the network file's ``target``, 1-based
  like every layer option, when it gives one), or multiples of 0.25 in [0, 1] (mse);
* grad_output (no loss): multiples of 0.25 in [-1, 1].

Each array has its own random stream (from the seed and its place), so giving some arrays
in a values file does not change the ones drawn. :func:`generic_values` draws a point in
general position instead (no ties, no ReLU zeros), for finite differences.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from convviz.layers import layer_type
from convviz.layers.base import LayerType
from convviz.spec import SpecError, parse_shape

if TYPE_CHECKING:
    from convviz.derivation import Derivation

__all__ = [
    "AvgPool2d",
    "Conv2d",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "Flatten",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Network",
    "NetworkDerivation",
    "NetworkError",
    "NetworkLayer",
    "NetworkValues",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "ValuesError",
    "derive_network",
    "generic_values",
    "load_network",
    "load_values",
    "parse_network",
    "parse_values",
    "random_values",
    "with_input",
]

Shape = tuple[int, ...]
FloatArray = NDArray[np.float64]

#: Keys of a network file.
NETWORK_KEYS = ("input", "layer")
#: Keys of a values file.
VALUES_KEYS = ("input", "target", "layers", "grad_output")
#: Parameters by their name in values files and JSON (PyTorch's), by the role they play.
PARAM_NAMES = {"kernel": "weight", "weight": "weight", "bias": "bias"}


class NetworkError(ValueError):
    """A network is malformed; the message is one line naming the layer (or the key)."""


class ValuesError(ValueError):
    """A values file is malformed; the message is one line naming the place."""


# --------------------------------------------------------------------------- shapes
def shape_text(shape: Shape) -> str:
    """``(1, 6, 6)`` -> ``"1x6x6"``; ``()`` -> ``"scalar"``."""
    return "x".join(str(n) for n in shape) if shape else "scalar"


def parse_input(value: Any) -> Shape:
    """The network's input shape in full: ``"1x6x6"``, ``"6x6"`` (one channel) or ``"4"``.

    Tuples (``(1, 6, 6)``, ``(6, 6)``, ``(4,)``) and an integer (``4``) are taken too.
    """
    text: str
    wrong = f"input: expected C x H x W like \"1x6x6\" or N like \"4\", got {value!r}"
    if isinstance(value, bool):
        raise NetworkError(wrong)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, tuple | list) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in value
    ):
        text = "x".join(str(n) for n in value)
    elif isinstance(value, str):
        text = value
    else:
        raise NetworkError(wrong)
    try:
        parts = parse_shape("input", text, allowed=(1, 2, 3))
    except SpecError as err:
        raise NetworkError(f"input: {err.rule}") from None
    return (1, *parts) if len(parts) == 2 else parts


@cache
def _accepted_ranks(name: str) -> tuple[int, ...]:
    """How many axes the ``input`` option of type ``name`` takes (1: N, 2: HxW, 3: CxHxW)."""
    option = layer_type(name).option("input")
    ranks = []
    for n in (1, 2, 3):
        try:
            option.parse("x".join(["2"] * n))
        except SpecError:
            continue
        ranks.append(n)
    return tuple(ranks)


def is_parametric(declared: LayerType) -> bool:
    """Whether layers of this type have parameters (and so a number ``l``)."""
    return any(decl.kind == "param" for decl in declared.arrays)


def with_input(spec: Any, shape: Shape, *, layer: int | None = None) -> Any:
    """``spec`` with its input replaced by ``shape`` (and its ``layer`` number, if given).

    Generic for every layer type: the shape goes through the type's declared ``input``
    option (which maps ``"2x6x6"`` to the spec's fields, e.g. ``input_size`` and
    ``channels`` for conv2d, ``inputs`` for dense) and :func:`dataclasses.replace`, so
    the spec validates the new geometry. A broken rule raises :class:`SpecError` naming
    the option key.
    """
    declared = layer_type(spec)
    fields = dict(declared.option("input").parse(shape_text(shape)))
    if layer is not None:
        fields["layer"] = layer
    keys = {name: option.key for option in declared.options for name in option.fields}
    try:
        return dataclasses.replace(spec, **fields)
    except SpecError as err:
        raise SpecError(keys.get(err.field_name, err.field_name), err.rule) from None


# ---------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class NetworkLayer:
    """One layer of a network.

    Attributes
    ----------
    index
        Position among the ``[[layer]]`` entries, 1-based (as messages and timelines
        count).
    type
        Layer type name (``conv2d``).
    spec
        The layer, its input inferred from the layer before.
    number
        Its ``l`` in the notation: parametric layers count 1, 2, ...; the layers after
        one keep its number (0 before the first).
    names
        LaTeX names of its arrays by role, as passed to :func:`convviz.derivation.derive`
        (``input`` is the previous layer's ``output``).
    """

    index: int
    type: str
    spec: Any
    number: int
    names: Mapping[str, str]

    @property
    def declaration(self) -> LayerType:
        """The layer type's declaration."""
        return layer_type(self.type)

    @property
    def params(self) -> tuple[tuple[str, str], ...]:
        """``(name, role)`` of the parameters it has: ``("weight", "kernel")``, ``("bias", ...)``.

        Names are PyTorch's (``weight``, ``bias``) for every type; roles are the
        declaration's (``kernel`` for convolutions). A layer without bias has no bias.
        """
        out = []
        for decl in self.declaration.arrays:
            if decl.kind != "param" or (decl.needs and not getattr(self.spec, decl.needs)):
                continue
            out.append((PARAM_NAMES.get(decl.role, decl.role), decl.role))
        return tuple(out)

    @property
    def input_shape(self) -> Shape:
        """Full shape of its input."""
        return tuple(self.spec.full_shape("input"))

    @property
    def output_shape(self) -> Shape:
        """Full shape of its output (``()`` for a loss)."""
        return tuple(self.spec.full_shape("output"))

    @property
    def label(self) -> str:
        """``layer 5 (dense)``, as messages name it."""
        return f"layer {self.index} ({self.type})"


@dataclass(frozen=True)
class Network:
    """Layers in order, each with its input inferred from the one before.

    Build one with :func:`load_network` (a TOML file), :func:`parse_network` (its
    contents) or :func:`Sequential` (specs).
    """

    input_shape: Shape
    layers: tuple[NetworkLayer, ...]
    source: str = ""
    #: The class a network file's softmax-cross-entropy gives (``target = K``, 1-based as
    #: every layer option), 0-based; values without a target use it instead of drawing.
    target: int | None = None

    @property
    def loss(self) -> NetworkLayer | None:
        """The loss layer (always the last one), if there is one."""
        if self.layers and self.layers[-1].declaration.loss:
            return self.layers[-1]
        return None

    @property
    def output_shape(self) -> Shape:
        """Full shape of the last layer's output."""
        return self.layers[-1].output_shape

    @property
    def products(self) -> int:
        """Multiplications of the forward pass, summed over the layers."""
        return sum(int(layer.spec.products) for layer in self.layers)

    def with_target(self, target: Any) -> Network:
        """The network with its softmax-cross-entropy's class set (0-based, as PyTorch)."""
        loss = self.loss
        if loss is None or not hasattr(loss.spec, "target") or target is None:
            return self
        spec = dataclasses.replace(loss.spec, target=int(target) + 1)
        return dataclasses.replace(self, layers=(*self.layers[:-1],
                                                 dataclasses.replace(loss, spec=spec)))

    def describe(self) -> str:
        """One line: ``input 1x6x6 -> conv2d 2x4x4 -> relu 2x4x4 -> ... -> loss``."""
        parts = [f"input {shape_text(self.input_shape)}"]
        for layer in self.layers:
            parts.append(f"{layer.type} {shape_text(layer.output_shape)}")
        return " -> ".join(parts)


def _before(index: int) -> str:
    return "the input" if index == 1 else "the layer before"


def _incompatible(index: int, name: str, shape: Shape) -> str | None:
    """Why type ``name`` cannot take ``shape`` (None when it can)."""
    ranks = _accepted_ranks(name)
    given = shape_text(shape)
    if len(shape) == 1 and 1 not in ranks:
        return f"a map C x H x W expected, {_before(index)} gives a vector of {shape[0]}"
    if len(shape) == 3 and 3 not in ranks:
        return f"a vector expected, {_before(index)} gives {given}"
    if len(shape) == 0:
        return f"an array expected, {_before(index)} gives a scalar"
    return None


def _check_given_input(index: int, name: str, given: Any, shape: Shape) -> None:
    """A layer that states its input must agree with the inferred one."""
    declared = layer_type(name)
    try:
        declared.option("input").parse(given)
        parts = parse_shape("input", str(given).strip(), allowed=_accepted_ranks(name))
    except SpecError as err:
        raise NetworkError(f"layer {index} ({name}): input: {err.rule}") from None
    stated = (1, *parts) if len(parts) == 2 else parts
    if stated == shape:
        return
    if len(stated) == 1 and len(shape) == 1:
        plural = "s" if stated[0] != 1 else ""
        raise NetworkError(
            f"layer {index} ({name}): {stated[0]} input{plural} expected, "
            f"{_before(index)} gives {shape[0]}"
        )
    raise NetworkError(
        f"layer {index} ({name}): input {shape_text(stated)} expected, "
        f"{_before(index)} gives {shape_text(shape)}"
    )


def _prime(name: str) -> str:
    """``a^{[1]}`` -> ``a'^{[1]}``."""
    head, sep, tail = name.partition("^")
    return f"{head}'{sep}{tail}"


def _assemble(
    input_shape: Shape, entries: Sequence[tuple[str, Any]], source: str
) -> Network:
    """Infer every layer's input and notation; ``entries`` are (type, options or spec)."""
    if not entries:
        raise NetworkError("no layers: a network needs at least one [[layer]]")
    shape = input_shape
    number = 0
    target = None
    built: list[tuple[str, Any, int]] = []
    for index, (name, given) in enumerate(entries, start=1):
        try:
            declared = layer_type(name)
        except ValueError as err:
            raise NetworkError(f"layer {index} ({name}): {err}") from None
        if declared.loss and index != len(entries):
            raise NetworkError(
                f"layer {index} ({name}): a loss must be the last layer "
                f"({len(entries) - index} more after it)"
            )
        if is_parametric(declared):
            number += 1
        why = _incompatible(index, name, shape)
        if why is not None:
            raise NetworkError(f"layer {index} ({name}): {why}")
        try:
            if isinstance(given, Mapping):
                options = dict(given)
                if "layer" in options:
                    raise SpecError(
                        "layer", "set by the network (parametric layers are numbered 1, 2, "
                        "...): remove this key"
                    )
                if "input" in options:
                    _check_given_input(index, name, options.pop("input"), shape)
                options["input"] = shape_text(shape)
                options["layer"] = str(max(number, 1))
                spec = declared.build(options)
                if declared.loss and "target" in options:
                    target = int(spec.target) - 1
            else:
                spec = with_input(given, shape, layer=max(number, 1))
        except SpecError as err:
            raise NetworkError(f"layer {index} ({name}): {err.field_name}: {err.rule}") from None
        built.append((name, spec, number))
        shape = tuple(spec.full_shape("output"))
    return Network(input_shape, _name_layers(built), source, target)


def _takes_prediction(name: str, spec: Any) -> bool:
    r"""Whether a layer is a loss whose input is the prediction ``\hat{y}`` (mse)."""
    declared = layer_type(name)
    if not declared.loss:
        return False
    decl = next(d for d in declared.arrays if d.role == "input")
    return bool(decl.symbol(spec) == r"\hat{y}")


def _name_layers(built: Sequence[tuple[str, Any, int]]) -> tuple[NetworkLayer, ...]:
    """Names of every layer's arrays, following the seeds' notation."""
    previous = "a^{[0]}"
    used = {previous}
    layers = []
    for index, (name, spec, number) in enumerate(built, start=1):
        declared = layer_type(name)
        names = {"input": previous}
        if not declared.loss:
            output = next(d for d in declared.arrays if d.kind == "output")
            if index < len(built) and _takes_prediction(*built[index][:2]):
                text = r"\hat{y}"
            else:
                text = f"{output.short}^{{[{number}]}}"
            while text in used:
                text = _prime(text)
            used.add(text)
            names["output"] = text
            previous = text
        for decl in declared.arrays:
            if decl.kind == "param":
                names[decl.role] = decl.symbol(spec)
        layers.append(NetworkLayer(index, name, spec, number, names))
    return tuple(layers)


# ------------------------------------------------------------------------- parsing
def parse_network(doc: Mapping[str, Any], source: str = "") -> Network:
    """A network from the contents of a network file (a TOML document as a dict)."""
    for key in doc:
        if key not in NETWORK_KEYS:
            raise NetworkError(
                f"{key}: unknown key (a network file has input = \"CxHxW\" and [[layer]] "
                "entries)"
            )
    if "input" not in doc:
        raise NetworkError("input: missing (the network's input shape, e.g. input = \"1x6x6\")")
    shape = parse_input(doc["input"])
    raw = doc.get("layer", [])
    if not isinstance(raw, list):
        raise NetworkError("layer: must be [[layer]] tables")
    entries: list[tuple[str, Any]] = []
    for index, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict):
            raise NetworkError(f"layer {index}: must be a table")
        name = entry.get("type")
        if not isinstance(name, str):
            raise NetworkError(f"layer {index}: type: missing or not a string (e.g. type = "
                               "\"conv2d\")")
        entries.append((name, {k: v for k, v in entry.items() if k != "type"}))
    return _assemble(shape, entries, source)


def load_network(path: str | Path) -> Network:
    """Read a network file; any problem is one :class:`NetworkError` line."""
    import tomllib

    path = Path(path)
    try:
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise NetworkError(f"not valid TOML: {err}") from None
    except OSError as err:
        raise NetworkError(f"cannot read: {err.strerror or err}") from None
    return parse_network(doc, str(path))


def Sequential(*layers: Any, input: str | int | Sequence[int]) -> Network:
    """A network from layer specs in order, as ``torch.nn.Sequential``.

    Each layer is a spec instance of :mod:`convviz.layers` (or one of the factories of
    this module). Its input fields are replaced by the shape the layer before gives (see
    :func:`with_input`) and its ``layer`` number is set by the network's numbering.
    ``input`` is ``"1x6x6"``, ``"4"`` or a tuple such as ``(1, 6, 6)``.
    """
    shape = parse_input(input)
    entries = []
    for index, spec in enumerate(layers, start=1):
        name = getattr(spec, "TYPE", None)
        if not isinstance(name, str) or not dataclasses.is_dataclass(spec):
            raise NetworkError(f"layer {index}: not a layer spec: {spec!r}")
        entries.append((name, spec))
    return _assemble(shape, entries, "")


# ------------------------------------------------------- factories named like torch
def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


def Conv2d(
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    bias: bool = True,
) -> Any:
    """``conv2d`` with ``torch.nn.LazyConv2d``'s arguments (input channels inferred)."""
    from convviz.spec import ConvSpec

    k, p, d = _pair(kernel_size), _pair(padding), _pair(dilation)
    room = tuple(max(1, d[i] * (k[i] - 1) + 1 - 2 * p[i]) for i in range(2))
    return ConvSpec(input_size=(room[0], room[1]), kernel_size=k, stride=_pair(stride),
                    padding=p, dilation=d, filters=out_channels, bias=bias, layer=1)


def ConvTranspose2d(
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    bias: bool = True,
) -> Any:
    """``conv-transpose2d`` with ``torch.nn.LazyConvTranspose2d``'s arguments."""
    from convviz.layers.conv_transpose2d import ConvTranspose2d as Spec

    k, s, p, d = _pair(kernel_size), _pair(stride), _pair(padding), _pair(dilation)
    # a placeholder input large enough for any padding; Sequential replaces it
    room = tuple(max(1, (2 * p[i]) // max(s[i], 1) + 2) for i in range(2))
    return Spec(input_size=(room[0], room[1]), kernel_size=k, stride=s, padding=p,
                output_padding=_pair(output_padding), dilation=d, filters=out_channels,
                bias=bias, layer=1)


def Linear(out_features: int, bias: bool = True) -> Any:
    """``dense`` with ``torch.nn.LazyLinear``'s arguments: ``Linear(3)`` has 3 outputs."""
    from convviz.layers.linear import Linear as Spec

    return Spec(inputs=1, outputs=out_features, bias=bias, layer=1)


def _pool(cls: type, kernel_size: Any, stride: Any, padding: Any) -> Any:
    k = _pair(kernel_size)
    return cls(input_size=k, kernel_size=k, stride=None if stride is None else _pair(stride),
               padding=_pair(padding))


def MaxPool2d(
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
) -> Any:
    """``maxpool2d`` with ``torch.nn.MaxPool2d``'s arguments (stride: the kernel size)."""
    from convviz.layers.pooling import MaxPool2d as Spec

    return _pool(Spec, kernel_size, stride, padding)


def AvgPool2d(
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
) -> Any:
    """``avgpool2d`` with ``torch.nn.AvgPool2d``'s arguments (padding counted in the mean)."""
    from convviz.layers.pooling import AvgPool2d as Spec

    return _pool(Spec, kernel_size, stride, padding)


def ReLU() -> Any:
    """``relu``, as ``torch.nn.ReLU()``."""
    from convviz.layers.activation import ReLU as Spec

    return Spec()


def Sigmoid() -> Any:
    """``sigmoid``, as ``torch.nn.Sigmoid()``."""
    from convviz.layers.activation import Sigmoid as Spec

    return Spec()


def Tanh() -> Any:
    """``tanh``, as ``torch.nn.Tanh()``."""
    from convviz.layers.activation import Tanh as Spec

    return Spec()


def Flatten() -> Any:
    """``flatten``, as ``torch.nn.Flatten()`` on one sample."""
    from convviz.layers.flatten import Flatten as Spec

    return Spec()


def CrossEntropyLoss() -> Any:
    """``softmax-cross-entropy``, as ``torch.nn.CrossEntropyLoss()`` (target from values)."""
    from convviz.layers.loss import CrossEntropyLoss as Spec

    return Spec()


def MSELoss() -> Any:
    """``mse``, as ``torch.nn.MSELoss()`` (reduction mean; target from values)."""
    from convviz.layers.loss import MSELoss as Spec

    return Spec()


# -------------------------------------------------------------------------- values
@dataclass(frozen=True)
class NetworkValues:
    """Numbers for a network, in PyTorch's full layouts (no batch axis).

    Attributes
    ----------
    input
        The network's input.
    params
        Per layer (0-based), the parameters it has by role (``kernel``, ``weight``,
        ``bias``).
    target
        The class index from 0 (softmax-cross-entropy), the target vector (mse), or None.
    grad_output
        dL/d(last output) for a network without loss, else None.
    """

    input: FloatArray
    params: tuple[Mapping[str, FloatArray], ...]
    target: int | FloatArray | None = None
    grad_output: FloatArray | None = None
    network: Network | None = None

    def layer_arrays(self, k: int) -> dict[str, FloatArray]:
        """Arrays layer ``k`` (0-based) computes from, besides its input, by role.

        Parameters a layer lacks (no bias) are zeros; an mse loss gets its ``target``.
        """
        assert self.network is not None
        layer = self.network.layers[k]
        out = dict(self.params[k])
        for decl in layer.declaration.arrays:
            if decl.kind == "param" and decl.role not in out:
                out[decl.role] = np.zeros(layer.spec.full_shape(decl.role))
            if decl.kind == "const" and self.target is not None:
                out[decl.role] = np.asarray(self.target, dtype=np.float64)
        return out

    def shifted(self, k: int, role: str, pos: tuple[int, ...], delta: float) -> NetworkValues:
        """A copy with one parameter cell of layer ``k`` moved by ``delta``."""
        array = np.array(self.params[k][role], dtype=np.float64, copy=True)
        array[pos] += delta
        params = list(self.params)
        params[k] = {**params[k], role: array}
        return dataclasses.replace(self, params=tuple(params))

    def to_json(self) -> dict[str, Any]:
        """The values as a values file holds them."""
        assert self.network is not None
        doc: dict[str, Any] = {"input": self.input.tolist()}
        if self.target is not None:
            doc["target"] = (self.target if isinstance(self.target, int)
                             else np.asarray(self.target).tolist())
        layers = []
        for k, layer in enumerate(self.network.layers):
            layers.append({name: np.asarray(self.params[k][role]).tolist()
                           for name, role in layer.params})
        doc["layers"] = layers
        if self.grad_output is not None:
            doc["grad_output"] = self.grad_output.tolist()
        return doc


def _stream(seed: int, *place: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValuesError(f"seed: a whole number of at least 0 expected, got {seed!r}")
    return np.random.default_rng([seed, *place])


def _steps(rng: np.random.Generator, shape: Shape, low: float, high: float,
           step: float = 0.25) -> FloatArray:
    count = round((high - low) / step)
    return low + step * rng.integers(0, count + 1, size=shape).astype(np.float64)


def _fan_in(layer: NetworkLayer) -> int:
    for decl in layer.declaration.arrays:
        if decl.kind == "param" and decl.role != "bias":
            return max(1, math.prod(int(n) for n in layer.spec.full_shape(decl.role)[1:]))
    return 1


def _draw(network: Network, seed: int, generic: bool) -> dict[str, Any]:
    """Every array drawn, each from its own stream (see the module docstring)."""
    out: dict[str, Any] = {}
    rng = _stream(seed, 0)
    if generic:
        out["input"] = rng.standard_normal(network.input_shape)
    else:
        out["input"] = rng.integers(0, 4, size=network.input_shape).astype(np.float64)
    layers: list[dict[str, FloatArray]] = []
    for k, layer in enumerate(network.layers):
        drawn: dict[str, FloatArray] = {}
        bound = 1.0 / math.sqrt(_fan_in(layer))
        for j, (_name, role) in enumerate(layer.params):
            shape = tuple(layer.spec.full_shape(role))
            rng = _stream(seed, 1, k, j)
            if generic:
                drawn[role] = rng.uniform(-bound, bound, size=shape)
            elif role == "bias":
                drawn[role] = _steps(rng, shape, -0.5, 0.5)
            else:
                drawn[role] = _steps(rng, shape, -0.5, 0.5)
        layers.append(drawn)
    out["layers"] = layers
    loss = network.loss
    rng = _stream(seed, 2)
    if loss is not None and hasattr(loss.spec, "target"):
        drawn_class = int(rng.integers(0, loss.input_shape[0]))
        out["target"] = drawn_class if network.target is None else network.target
    elif loss is not None:
        shape = loss.input_shape
        out["target"] = rng.uniform(0, 1, shape) if generic else _steps(rng, shape, 0.0, 1.0)
    else:
        rng = _stream(seed, 3)
        shape = network.output_shape
        out["grad_output"] = (rng.standard_normal(shape) if generic
                              else _steps(rng, shape, -1.0, 1.0))
    return out


def _values(network: Network, drawn: Mapping[str, Any]) -> NetworkValues:
    network = network.with_target(drawn.get("target"))
    return NetworkValues(
        input=np.asarray(drawn["input"], dtype=np.float64),
        params=tuple(drawn["layers"]),
        target=drawn.get("target"),
        grad_output=drawn.get("grad_output"),
        network=network,
    )


def random_values(network: Network, seed: int = 0) -> NetworkValues:
    """Small readable numbers, exact in binary (see the module docstring)."""
    return _values(network, _draw(network, seed, generic=False))


def generic_values(network: Network, seed: int = 0) -> NetworkValues:
    """A point in general position, for finite differences: no ties, no ReLU zeros.

    Input standard normal; weights and biases uniform in ``+-1/sqrt(fan_in)`` (PyTorch's
    default initialisation); a random class, or an mse target uniform in [0, 1); a
    standard-normal ``grad_output`` for a network without loss.
    """
    return _values(network, _draw(network, seed, generic=True))


def _number_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | bool) or value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _nested(value: Any, where: str, index: tuple[int, ...] = ()) -> tuple[Any, Shape]:
    """Check a nested list of numbers; return it and its shape."""
    place = where + "".join(f"[{i}]" for i in index)
    if isinstance(value, bool) or not isinstance(value, int | float | list):
        raise ValuesError(f"{place}: a number expected, got {_number_text(value)}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValuesError(f"{place}: a finite number expected, got {value}")
        return value, ()
    shapes = []
    for n, item in enumerate(value):
        _, shape = _nested(item, where, (*index, n))
        shapes.append(shape)
    if any(s != shapes[0] for s in shapes):
        raise ValuesError(f"{place}: not a rectangular array (items of different shapes)")
    return value, (len(value), *(shapes[0] if shapes else ()))


def _array(value: Any, where: str, shape: Shape) -> FloatArray:
    try:
        _, got = _nested(value, where)
    except RecursionError:
        raise ValuesError(f"{where}: nested too deeply") from None
    if got != tuple(shape):
        raise ValuesError(f"{where}: shape {tuple(shape)} expected, got {got}")
    return np.asarray(value, dtype=np.float64).reshape(shape)


def parse_values(doc: Any, network: Network, seed: int = 0) -> NetworkValues:
    """Numbers from the contents of a values file; what it leaves out is drawn from ``seed``.

    Raises :class:`ValuesError` with the place: ``layers[4].weight: shape (3, 8)
    expected, got (8, 3)`` (layers counted from 0, as JSON arrays are).
    """
    if not isinstance(doc, dict):
        raise ValuesError("must be a JSON object with input, target and layers")
    for key in doc:
        if key not in VALUES_KEYS:
            raise ValuesError(f"{key}: unknown key (expected {', '.join(VALUES_KEYS)})")
    drawn = _draw(network, seed, generic=False)
    if "input" in doc:
        drawn["input"] = _array(doc["input"], "input", network.input_shape)
    if "layers" in doc:
        raw = doc["layers"]
        count = len(network.layers)
        if not isinstance(raw, list):
            raise ValuesError(f"layers: a list of {count} objects expected (one per [[layer]])")
        if len(raw) != count:
            raise ValuesError(
                f"layers: {count} objects expected (one per [[layer]]), got {len(raw)}"
            )
        for k, (entry, layer) in enumerate(zip(raw, network.layers, strict=True)):
            if not isinstance(entry, dict):
                raise ValuesError(f"layers[{k}]: an object expected ({{}} for {layer.type})")
            roles = dict(layer.params)
            for key, value in entry.items():
                if key not in roles:
                    takes = (f"takes {', '.join(roles)}" if roles
                             else "has no parameters: give {}")
                    raise ValuesError(f"layers[{k}].{key}: unknown key ({layer.type} {takes})")
                role = roles[key]
                drawn["layers"][k][role] = _array(value, f"layers[{k}].{key}",
                                                  tuple(layer.spec.full_shape(role)))
    loss = network.loss
    if "target" in doc:
        target = doc["target"]
        if loss is None:
            raise ValuesError("target: the network has no loss (give grad_output instead)")
        if hasattr(loss.spec, "target"):
            classes = loss.input_shape[0]
            if isinstance(target, bool) or not isinstance(target, int):
                raise ValuesError(
                    f"target: a class index from 0 to {classes - 1} expected, got "
                    f"{_number_text(target)}"
                )
            if not 0 <= target < classes:
                raise ValuesError(
                    f"target: a class index from 0 to {classes - 1} expected, got {target}"
                )
            drawn["target"] = target
        else:
            drawn["target"] = _array(target, "target", loss.input_shape)
    if "grad_output" in doc:
        if loss is not None:
            raise ValuesError(f"grad_output: the network ends in a loss ({loss.type}); "
                              "its gradient is 1")
        drawn["grad_output"] = _array(doc["grad_output"], "grad_output", network.output_shape)
    return _values(network, drawn)


def load_values(path: str | Path, network: Network, seed: int = 0) -> NetworkValues:
    """Read a values file; any problem is one :class:`ValuesError` line (without the path)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ValuesError(f"cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ValuesError("not valid JSON: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValuesError(f"not valid JSON: {err}") from None
    except RecursionError:
        raise ValuesError("not valid JSON: nested too deeply") from None
    return parse_values(doc, network, seed)


# ---------------------------------------------------------------------- derivation
@dataclass(frozen=True)
class NetworkDerivation:
    """Every layer derived on its own, with the seconds each derivation took."""

    network: Network
    derivations: tuple[Derivation, ...]
    seconds: tuple[float, ...]


def derive_network(
    network: Network, *, reuse: NetworkDerivation | None = None
) -> NetworkDerivation:
    """Derive every layer with :func:`~convviz.derivation.derive`, cells named by the network.

    Each layer's backward pass is derived against its own opaque upstream gradient; the
    chain between layers is numeric (:func:`convviz.evaluation.evaluate_network`).
    Layers of ``reuse`` with the same spec and names are not derived again (a new
    target only re-derives the loss).
    """
    from convviz.derivation import derive

    derivations = []
    seconds = []
    for k, layer in enumerate(network.layers):
        started = time.perf_counter()
        old = reuse.network.layers[k] if reuse and k < len(reuse.network.layers) else None
        if reuse is not None and old is not None and old.spec == layer.spec and \
                dict(old.names) == dict(layer.names):
            derivations.append(reuse.derivations[k])
        else:
            derivations.append(derive(layer.spec, names=dict(layer.names)))
        seconds.append(time.perf_counter() - started)
    return NetworkDerivation(network, tuple(derivations), tuple(seconds))


def plain_name(latex: str) -> str:
    r"""A LaTeX array name for a terminal: ``z^{[1]}`` -> ``z[1]``, ``\hat{y}`` -> ``y_hat``."""
    text = latex.replace(r"\hat{y}", "y_hat").replace(r"\mathcal{L}", "L")
    return text.replace("^{", "").replace("}", "").replace("{", "")


def layer_names(network: Network) -> Iterable[tuple[NetworkLayer, str]]:
    """Each layer with the plain name of its output (``L`` for a loss)."""
    for layer in network.layers:
        yield layer, plain_name(layer.names.get("output", r"\mathcal{L}"))
