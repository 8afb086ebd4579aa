"""What a layer type declares: its options, arrays, forward computation, ops and identities.

Every layer type of convviz is one :class:`LayerType` in one module of this package, the
way ``torch/nn/modules/`` keeps one family of layers per file. Everything else reads these
declarations: the command line builds its options from :attr:`LayerType.options`, lecture
and network files take the same keys, the derivation runs :attr:`LayerType.forward` on
symbols, reflection names cells by :attr:`LayerType.arrays`, and the clips take their
operands, operators and captions from :attr:`LayerType.ops`.

A declaration holds no SymPy logic beyond building its forward expressions and the closed
forms of its identities; the chain rule, reflection and rendering are generic.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from convviz.spec import MAX_PRODUCTS, Pair, SpecError, parse_pair, parse_shape

__all__ = [
    "ArrayDecl",
    "Identity",
    "LayerSpec",
    "LayerType",
    "OpDecl",
    "Option",
    "count_option",
    "drop_ones",
    "flag_option",
    "input_option",
    "numbered",
    "pair_option",
]

Shape = tuple[int, ...]
ArrayKind = Literal["input", "param", "const", "output", "value", "upstream"]


class LayerSpec(Protocol):
    """What every layer spec offers (frozen dataclasses, validated on construction)."""

    TYPE: ClassVar[str]
    layer: int

    def full_shape(self, role: str) -> Shape:
        """Shape of the array playing ``role`` as computed (PyTorch's layout, no batch)."""
        ...

    def display_shape(self, role: str) -> Shape:
        """Shape of the array playing ``role`` as shown (size-1 leading axes dropped)."""
        ...

    @property
    def products(self) -> int:
        """Work of the forward pass, in multiplications (or cells for cheap layers)."""
        ...

    def describe(self) -> str:
        """Short human description of the layer."""
        ...

    def slug(self) -> str:
        """File-name friendly identifier."""
        ...


# ------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class Option:
    """One layer option, as the command line, lecture files and network files take it.

    Attributes
    ----------
    key
        Name in TOML files (``kernel``, ``output_padding``); the command-line flag is
        ``--`` plus the key with dashes (``--output-padding``), or ``--no-bias``.
    default
        Text used when the option is not given (``None``: the spec's own default).
    parse
        Turns the text (or a TOML boolean for flags) into spec fields.
    fields
        Spec fields the option sets, so that a :class:`SpecError` names the option.
    metavar, help
        For ``--help``.
    flag
        Whether this is an on/off switch (``--no-bias``).
    """

    key: str
    default: str | bool | None
    parse: Callable[[Any], dict[str, Any]]
    fields: tuple[str, ...]
    metavar: str = ""
    help: str = ""
    flag: bool = False

    @property
    def cli(self) -> str:
        """The command-line flag, e.g. ``--output-padding``."""
        if self.flag:
            return f"--no-{self.key.replace('_', '-')}"
        return "--" + self.key.replace("_", "-")


def _text(key: str, value: Any) -> str:
    """TOML integers are accepted wherever text like ``"2"`` is."""
    if isinstance(value, bool):
        raise SpecError(key, f"must be a string like \"2x1\" or an integer, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise SpecError(key, f"must be a string like \"2x1\" or an integer, got {value!r}")
    return value


def input_option(
    allowed: tuple[int, ...],
    default: str,
    help: str,
    to_fields: Callable[[tuple[int, ...]], dict[str, Any]],
    fields: tuple[str, ...],
) -> Option:
    """``--input``: ``N`` for vectors (when ``1`` is allowed), ``[C]xHxW`` for maps."""
    names = {1: "N", 2: "HxW", 3: "CxHxW"}
    metavar = "|".join(names[n] for n in allowed)

    def parse(value: Any) -> dict[str, Any]:
        return to_fields(parse_shape("input_size", _text("input", value), allowed=allowed))

    return Option("input", default, parse, fields, metavar, help)


def pair_option(
    key: str, default: str | None, minimum: int, help: str, *, field_name: str | None = None
) -> Option:
    """An option like ``--stride``: one number for both axes, or ``HxW``."""
    name = field_name or key

    def parse(value: Any) -> dict[str, Any]:
        return {name: parse_pair(name, _text(key, value), minimum=minimum)}

    letter = key[0].upper()
    return Option(key, default, parse, (name,), f"{letter}|{letter}HxW", help)


def count_option(
    key: str, default: str | None, help: str, *, minimum: int = 1, metavar: str = "N"
) -> Option:
    """A whole number option (``--filters``, ``--outputs``, ``--target``)."""

    def parse(value: Any) -> dict[str, Any]:
        text = _text(key, value).strip()
        if not re.fullmatch(r"-?\d+", text) or int(text) < minimum:
            rule = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
            raise SpecError(key, f"must be {rule}, got {text!r}")
        return {key: int(text)}

    return Option(key, default, parse, (key,), metavar, help)


def flag_option(key: str, help: str) -> Option:
    """An on/off option, on by default; ``--no-<key>`` or ``key = false`` turns it off."""

    def parse(value: Any) -> dict[str, Any]:
        if not isinstance(value, bool):
            raise SpecError(key, f"must be true or false, got {value!r}")
        return {key: value}

    return Option(key, True, parse, (key,), "", help, flag=True)


LAYER_OPTION = count_option(
    "layer",
    None,
    "Layer number used in labels (a^[L-1], W^[L], z^[L]). Layers are limited to "
    f"{MAX_PRODUCTS:,} multiplications in the forward pass.",
    metavar="L",
)


# ------------------------------------------------------------------------------- arrays
@dataclass(frozen=True)
class ArrayDecl:
    """One array of a layer.

    Attributes
    ----------
    role
        ``input``, ``output``, ``kernel``, ``weight``, ``bias``, ... (gradients are
        declared for you: ``grad_<role>`` for inputs and parameters, ``grad_output``).
    short
        Short cell name inside grids and equations (``a``, ``W``, ``z``).
    symbol
        LaTeX name of the whole array for a spec (``a^{[1]}``), also the SymPy name.
    kind
        ``input`` and ``param`` are differentiated; ``const`` is not (a target);
        ``output`` is computed by the forward pass; ``value`` is another computed array
        (softmax probabilities); ``upstream`` is the incoming gradient.
    reading
        Order of factors when an equation is read aloud (lower first).
    needs
        Spec attribute that must be true for the array to exist (``bias``); without it
        the array's cells are zero.
    axes
        Letters naming the leading axes of the full shape (those before a map's rows and
        columns) in slice titles: ``"fc"`` titles conv2d's kernel slices ``W_{f=1, c=2}``.
        Axes a display shape drops are dropped from the title too (:meth:`lead_axes`).
    """

    role: str
    short: str
    symbol: Callable[[Any], str]
    kind: ArrayKind
    reading: int = 5
    needs: str = ""
    axes: str = ""

    def label(self, spec: Any) -> str:
        """LaTeX title of the array."""
        return self.symbol(spec)

    def lead_axes(self, full: Shape, display: Shape) -> str:
        """The letters of the leading axes ``display`` keeps (``""`` if none are named).

        A map's leading axes are all but its last two; a vector or a map whose
        declaration names a different number of them has none named.
        """
        count = len(full) - 2
        if count <= 0 or len(self.axes) != count:
            return ""
        kept = keep_mask(full, display)[:count]
        return "".join(a for a, keep in zip(self.axes, kept, strict=True) if keep)


@dataclass(frozen=True)
class OpDecl:
    """One operation a layer animates.

    Attributes
    ----------
    name
        ``forward``, ``da``, ``dw``, ``db`` or a type's own (``forward-scatter``).
    target
        Role of the array it computes.
    operands
        Roles drawn before the target, in on-screen order.
    operators
        LaTeX between the arrays (one fewer than the arrays drawn).
    caption
        One line of LaTeX at the top of the clip.
    needs
        Spec attribute that must be true for the op to exist (``bias`` for ``db``).
    map_op
        Highlight map the clip draws, when it is another op's (``da-full`` draws ``da``).
    summary
        A few words for ``convviz types``.
    view
        A special drawing of the arrays: ``full-correlation`` (conv2d's ``da-full``:
        spread ``dz``, rotated kernel), ``gather`` and ``scatter`` (conv-transpose2d),
        ``move`` (each step's source cell travels to its target: flatten).
    """

    name: str
    target: str
    operands: tuple[str, ...]
    operators: tuple[str, ...]
    caption: str
    needs: str = ""
    map_op: str = ""
    summary: str = ""
    view: str = ""

    @property
    def highlights_op(self) -> str:
        """The op whose highlight map the clip draws."""
        return self.map_op or self.name


@dataclass(frozen=True)
class Identity:
    """A closed form of one derived array, checked by SymPy cell by cell.

    ``closed_form`` builds the right-hand side in full shape from the derivation;
    ``method`` is ``expand`` (polynomials) or ``simplify`` (functions, where ``expand``
    cannot prove sigma' = sigma (1 - sigma)).
    """

    op: str
    role: str
    name: str
    latex: Callable[[Any], str]
    closed_form: Callable[[Any], NDArray[Any]]
    method: Literal["expand", "simplify"] = "expand"


#: ``(role, slice numbers or None for all, first cell, last cell)`` of an outline.
Window = tuple[str, "Sequence[int] | None", Pair, Pair]

#: ``forward(xp, spec, arrays)``: ``xp`` is a :class:`~convviz.layers.namespace.Namespace`.
Forward = Callable[[Any, Any, Mapping[str, NDArray[Any]]], Mapping[str, NDArray[Any]]]


@dataclass(frozen=True)
class LayerType:
    """Everything about one layer type, in one place.

    Attributes
    ----------
    name
        The ``--type`` name (``conv2d``, ``maxpool2d``).
    torch_name
        The spec class's name, as in ``torch.nn`` (``Conv2d``).
    spec_class
        The frozen, validated spec.
    summary
        One line for ``convviz types``.
    options
        Options it takes (``--input`` first).
    arrays
        Its arrays (not the gradients, which follow from the kinds).
    ops
        Its operations, in the order clips are listed.
    forward
        ``forward(xp, spec, arrays)`` returns the computed arrays (at least ``output``)
        in full shape, from the ``input``/``param``/``const`` arrays. It is written once:
        ``xp`` is the numeric or the symbolic namespace (see
        :mod:`convviz.layers.namespace`).
    identities
        Closed forms checked by :func:`convviz.identities.verify`.
    reference
        ``reference(spec, arrays)``: the output by explicit loops over float arrays,
        written independently of ``forward``, for the numeric cross-check.
    refine
        Applied to every derived gradient cell (e.g. ``Heaviside(x)`` -> ``Heaviside(x, 0)``
        for PyTorch's ReLU'(0) = 0); identity by default.
    local_gradients
        ``local_gradients(node)``: the layer's own backward rule for one node of its
        forward expressions, ``d node / d cell`` for every cell in it as ``(cell,
        derivative)`` pairs, where PyTorch's rule is not SymPy's (max pooling's
        first-maximum indicator), or ``None`` to leave the node to the general rules. Used
        by the ``"product-rule"`` engine only; ``refine`` still applies to every gradient
        cell, and brings ``sympy.diff``'s result (the ``"sympy"`` engine) to the same form.
    vector_layout
        Arrays drawn as column vectors even when they have more than one axis.
    padding
        Width of the dashed zero ring drawn around a role's slices.
    window
        ``window(spec, op, target index)``: the outlines drawn around the cells a step
        reads (the kernel's footprint), as ``(role, slices or None for all, first
        cell, last cell)`` with cells in padded 1-based ``(row, col)`` coordinates.
    forward_latex
        The forward pass as one identity (``z = a * W + b``), shown at the end of the
        forward clip once the numbers agree with :attr:`reference`.
    view_geometry
        ``view_geometry(spec, view)``: the geometry of an op's special drawing (see
        :attr:`OpDecl.view`): an object with ``grid_size``, ``position(index)`` (where a
        cell of the spread array sits, ``None`` if cropped) and
        ``rotated_kernel_position(index)``.
    scatter
        ``scatter(spec, input index)``: the ``(kernel cell, output cell)`` pairs an input
        cell spreads onto, for the ``scatter`` view.
    loss
        Whether the layer ends a network (its output is the scalar loss).
    real
        Whether cells are real SymPy symbols (needed for ``Max`` to compare them).
    rank
        Position in listings (``convviz types``): network order.
    """

    name: str
    torch_name: str
    spec_class: type
    summary: str
    options: tuple[Option, ...]
    arrays: tuple[ArrayDecl, ...]
    ops: tuple[OpDecl, ...]
    forward: Forward
    identities: tuple[Identity, ...] = ()
    reference: Callable[[Any, Mapping[str, NDArray[Any]]], NDArray[Any]] | None = None
    refine: Callable[[Any], Any] | None = None
    local_gradients: Callable[[Any], Sequence[tuple[Any, Any]] | None] | None = None
    padding: Callable[[Any, str], Pair] = field(default=lambda spec, role: (0, 0))
    window: Callable[[Any, str, tuple[int, ...]], list[Window]] | None = None
    forward_latex: Callable[[Any], str] | None = None
    view_geometry: Callable[[Any, str], Any] | None = None
    scatter: Callable[[Any, tuple[int, ...]], list[tuple[tuple[int, ...], tuple[int, ...]]]] | (
        None
    ) = None
    loss: bool = False
    real: bool = True
    rank: int = 50

    # -------------------------------------------------------------- lookups
    def array(self, role: str) -> ArrayDecl:
        """The declaration of ``role`` (gradient roles included)."""
        for decl in self.all_arrays:
            if decl.role == role:
                return decl
        raise KeyError(f"{self.name} has no array {role!r}")

    @property
    def all_arrays(self) -> tuple[ArrayDecl, ...]:
        """Declared arrays plus their gradients (``grad_<role>``, ``grad_output``)."""
        out = list(self.arrays)
        roles = {a.role for a in self.arrays}
        output = next(a for a in self.arrays if a.kind == "output")
        if "grad_output" not in roles:
            out.append(_gradient_of(output, "grad_output", "upstream", 0))
        for decl in self.arrays:
            if decl.kind in ("input", "param"):
                out.append(_gradient_of(decl, f"grad_{decl.role}", "value", 8))
        return tuple(out)

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role, in display order."""
        return tuple(a.role for a in self.all_arrays)

    @property
    def variables(self) -> tuple[str, ...]:
        """Roles differentiated by the chain rule (inputs, then parameters)."""
        return tuple(a.role for a in self.arrays if a.kind in ("input", "param"))

    def op(self, name: str) -> OpDecl:
        """The declaration of op ``name``."""
        for op in self.ops:
            if op.name == name:
                return op
        raise ValueError(
            f"{self.name} has no op {name!r}; expected one of {', '.join(self.op_names)}"
        )

    @property
    def op_names(self) -> tuple[str, ...]:
        """Names of the ops, in order."""
        return tuple(op.name for op in self.ops)

    def option(self, key: str) -> Option:
        """The option with TOML ``key``."""
        for option in self.options:
            if option.key == key:
                return option
        raise KeyError(key)

    # ------------------------------------------------------------- building
    def build(self, values: Mapping[str, Any]) -> Any:
        """A spec from option values by TOML key (text, integers or booleans).

        Missing options take their defaults. An unknown key or a broken rule raises
        :class:`SpecError` naming the option's key.
        """
        known = {o.key for o in self.options}
        for key in values:
            if key not in known:
                takes = ", ".join(sorted(known))
                raise SpecError(key, f"not an option of {self.name} (it takes {takes})")
        fields: dict[str, Any] = {}
        field_to_key: dict[str, str] = {}
        for option in self.options:
            value = values.get(option.key, option.default)
            for name in option.fields:
                field_to_key[name] = option.key
            if value is None:
                continue
            try:
                fields.update(option.parse(value))
            except SpecError as err:
                raise SpecError(option.key, err.rule) from None
        try:
            return self.spec_class(**fields)
        except SpecError as err:
            raise SpecError(field_to_key.get(err.field_name, err.field_name), err.rule) from None


def _gradient_of(decl: ArrayDecl, role: str, kind: ArrayKind, reading: int) -> ArrayDecl:
    def symbol(spec: Any) -> str:
        return rf"\frac{{\partial \mathcal{{L}}}}{{\partial {decl.symbol(spec)}}}"

    return ArrayDecl(role, "d" + decl.short, symbol, kind, reading, decl.needs, decl.axes)


# ----------------------------------------------------------------------- names
def numbered(letter: str, offset: int = 0) -> Callable[[Any], str]:
    """The name of an array numbered by its layer, as the course notation numbers them.

    ``numbered("a", -1)`` gives ``a^{[1]}`` for a spec of layer 2 (its input).
    """

    def name(spec: Any) -> str:
        return f"{letter}^{{[{spec.layer + offset}]}}"

    return name


# ---------------------------------------------------------------------- shape helpers
def drop_ones(leading: Sequence[int], rest: Sequence[int]) -> Shape:
    """Display shape: leading axes of size 1 dropped, the rest kept."""
    return tuple(n for n in leading if n > 1) + tuple(rest)


def keep_mask(full: Shape, display: Shape) -> tuple[bool, ...]:
    """Which axes of ``full`` appear in ``display`` (leading size-1 axes are dropped)."""
    extra = len(full) - len(display)
    mask = []
    for size in full:
        if extra > 0 and size == 1:
            mask.append(False)
            extra -= 1
        else:
            mask.append(True)
    return tuple(mask)


def all_indices(shape: Shape) -> itertools.product[tuple[int, ...]]:
    """Every 0-based index of ``shape`` in row-major order."""
    return itertools.product(*(range(n) for n in shape))


def object_array(shape: Shape, fill: Any) -> NDArray[Any]:
    """An object array of ``shape`` filled with ``fill``."""
    out = np.empty(shape, dtype=object)
    out.fill(fill)
    return out
