r"""Numbers in single-layer clips: the values a clip is drawn at, and how they read.

``convviz render OP --seed N`` or ``--values FILE.json`` draws a clip at numbers: the
cells show them and the equation panel shows them substituted, e.g.
``z_{1,1} = 0.25\cdot 1 + (-0.5)\cdot 0 + \cdots = 0.875``. A single layer is a one-layer
network (:mod:`convviz.network`), so the numbers are drawn (``--seed``) and read
(``--values``, the format of network values files) exactly as for networks: the input
integers 0 to 3, weights and biases multiples of 0.25 in [-0.5, 0.5], ``grad_output``
multiples of 0.25 in [-1, 1], a loss's target as its spec gives it (or as the values
file does).

Every number a clip shows comes from the derived expressions, evaluated by
:class:`convviz.evaluation.ExpressionEvaluator`; numbers read short (up to three
significant digits), negative ones in parentheses inside equations.

This module imports neither manim nor SymPy at import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from convviz.derivation import Derivation
    from convviz.highlights import Step

__all__ = [
    "SHOW_MODES",
    "LayerValues",
    "ValuesInputError",
    "format_number",
    "layer_values",
    "number_latex",
    "numeric_equation",
    "resolve_show",
    "shared_exponent",
]

#: What the cells of a clip show: their names, their numbers, or both.
SHOW_MODES = ("symbols", "values", "both")

FloatArray = NDArray[np.float64]


class ValuesInputError(ValueError):
    """Bad ``seed``/``values``/``show``: one line naming the place (the option or key)."""


@dataclass(frozen=True)
class LayerValues:
    """The numbers one layer's clip is drawn at.

    Attributes
    ----------
    spec
        The layer; a softmax-cross-entropy takes its true class from the values file
        when that gives a ``target``.
    arrays
        Numbers of the leaves by role, in full shape: ``input``, the parameters
        (zeros for a missing bias), an mse ``target`` and ``grad_output`` (a layer that
        is not a loss).
    """

    spec: Any
    arrays: Mapping[str, FloatArray]

    def digest(self) -> str:
        """sha256 of the numbers and the spec (part of the plan cache's key)."""
        doc = {
            "type": self.spec.TYPE,
            "spec": dataclasses.asdict(self.spec),
            "arrays": {k: np.asarray(v, dtype=np.float64).tolist()
                       for k, v in sorted(self.arrays.items())},
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _read_document(path: Path) -> Any:
    from convviz.network import ValuesError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ValuesError(f"cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ValuesError("not valid JSON: not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValuesError(f"not valid JSON: {err}") from None
    except RecursionError:
        raise ValuesError("not valid JSON: nested too deeply") from None


def layer_values(
    spec: Any,
    *,
    seed: int | None = None,
    values: str | Path | Mapping[str, Any] | LayerValues | None = None,
    where: str = "values",
) -> LayerValues | None:
    """The numbers of a single-layer clip, or ``None`` when neither is given.

    Parameters
    ----------
    spec
        The layer.
    seed
        Draw the numbers (and whatever ``values`` leaves out) from this seed (default 0).
    values
        A values file (path), its parsed contents, or numbers already resolved: the
        format of network values files for a one-layer network, ``{"input": ...,
        "layers": [{"weight": ..., "bias": ...}], "grad_output": ...}`` (a loss takes
        ``"target"`` instead of ``grad_output``).
    where
        How messages name ``values`` (``--values FILE``, a lecture key).

    Raises
    ------
    ValuesInputError
        One line naming the place: ``--values v.json: input: shape (1, 6, 6) expected,
        got (5, 5)``.
    """
    if isinstance(values, LayerValues):
        return values
    if seed is None and values is None:
        return None
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValuesInputError(f"seed: a whole number of at least 0 expected, got {seed!r}")
    from convviz.network import (
        NetworkError,
        Sequential,
        ValuesError,
        parse_values,
        random_values,
    )
    from convviz.spec import SpecError

    try:
        network = Sequential(spec, input=tuple(spec.full_shape("input")))
    except (NetworkError, SpecError) as err:  # pragma: no cover - every type builds
        raise ValuesInputError(f"{where}: {err}") from None
    if isinstance(getattr(spec, "target", None), int):  # the spec's class, unless the file says
        network = dataclasses.replace(network, target=int(spec.target) - 1)
    try:
        if values is None:
            drawn = random_values(network, seed or 0)
        else:
            doc = _read_document(Path(values)) if isinstance(values, str | Path) else values
            drawn = parse_values(doc, network, seed or 0)
    except ValuesError as err:
        raise ValuesInputError(f"{where}: {err}") from None
    arrays: dict[str, FloatArray] = {"input": np.asarray(drawn.input, dtype=np.float64)}
    arrays.update(
        (k, np.asarray(v, dtype=np.float64)) for k, v in drawn.layer_arrays(0).items()
    )
    if drawn.grad_output is not None:
        arrays["grad_output"] = np.asarray(drawn.grad_output, dtype=np.float64)
    effective = spec
    if hasattr(spec, "target") and isinstance(drawn.target, int):
        effective = dataclasses.replace(spec, target=drawn.target + 1)
    return LayerValues(effective, arrays)


def resolve_show(
    show: str | None,
    has_values: bool,
    *,
    where: str = "show",
    hint: str = "give a seed or a values file",
) -> str:
    """The show mode: ``values`` by default with numbers, else ``symbols``.

    ``values`` or ``both`` without numbers is a :class:`ValuesInputError`.
    """
    if show is None:
        return "values" if has_values else "symbols"
    if show not in SHOW_MODES:
        raise ValuesInputError(
            f"{where}: must be one of {', '.join(SHOW_MODES)}, got {show!r}"
        )
    if show != "symbols" and not has_values:
        raise ValuesInputError(f"{where}: {show} needs numbers: {hint}")
    return show


# --------------------------------------------------------------------------- numbers
def format_number(x: float) -> str:
    """Short readable text of a number: up to 3 significant digits, no trailing zeros.

    ``0.875`` -> ``0.875``, ``2.0`` -> ``2``, ``1/3`` -> ``0.333``, ``-0.25`` ->
    ``-0.25``, ``12345`` -> ``12300``; below 0.001 in magnitude: ``1.23e-05``.
    """
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude < -3:
        mantissa, exponent = f"{x:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    decimals = 2 - magnitude
    rounded = round(x, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > magnitude:
        decimals -= 1  # 9.996 rounds to 10.0: one digit fewer after the point
        rounded = round(x, decimals)
    text = f"{rounded:.{max(decimals, 0)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


#: Below this magnitude an array's numbers are drawn in a shared power of ten: ``0.00123``
#: and ``1.23e-05`` are too wide for a cell, where ``1.23`` and ``0.0262`` are not.
SMALL_NUMBERS = 0.01


def shared_exponent(numbers: Iterable[float]) -> int:
    """The power of ten an array's cells show their numbers in (0: as they are).

    When the largest finite magnitude is below :data:`SMALL_NUMBERS`, the power ``e < 0``
    that shows it as a number from 1 to 10 (``-3.16e-4`` as ``-3.16`` in units of
    ``10^-4``).
    """
    top = max((abs(x) for x in numbers if math.isfinite(x)), default=0.0)
    if top == 0 or top >= SMALL_NUMBERS:
        return 0
    return math.floor(math.log10(top))


def number_latex(x: float, *, paren: bool = False, cell: bool = False) -> str:
    r"""LaTeX of a number: ``0.25``, ``{-}0.5``, ``1.2\times 10^{-5}``.

    ``paren``: a negative number in parentheses (``({-}0.5)``), for equations; ``cell``:
    a negative number as text (``\text{-0.5}``), narrower in a cell.
    """
    text = format_number(x)
    if text == "nan":
        body = r"\mathrm{NaN}"
    elif text.endswith("inf"):
        body = text.replace("inf", r"\infty")
    elif "e" in text:
        mantissa, exponent = text.split("e")
        body = rf"{mantissa}\times 10^{{{exponent}}}"
    else:
        body = text
    if body.startswith("-"):
        # {-}: a unary minus even where the snippet follows another one in LaTeX's
        # single document of a clip (a bare "-" would be spaced as a binary minus);
        # in a cell, the narrower hyphen leaves room for bigger digits
        if cell and body == text:
            return rf"\text{{{body}}}"  # the whole number as text: Typst keeps it tight too
        body = "{-}" + body[1:]
        return f"({body})" if paren else body
    return body


def _coefficient_latex(coefficient: str) -> str:
    """A term's coefficient as a leading factor (``""`` for 1, ``"-"`` for -1)."""
    if coefficient == "1":
        return ""
    if coefficient == "-1":
        return "-"
    if "/" in coefficient:
        numerator, denominator = coefficient.split("/", 1)
        sign = "-" if numerator.startswith("-") else ""
        return rf"{sign}\tfrac{{{numerator.lstrip('-')}}}{{{denominator}}}\cdot "
    return rf"{coefficient}\cdot "


def numeric_equation(
    step: Step,
    target_tex: str,
    value: float,
    number_of: Mapping[str, Mapping[tuple[int, ...], float]],
    *,
    reading: Mapping[str, int],
    expr: Any = None,
    leaves: Mapping[Any, float] | None = None,
    max_terms: int = 6,
    head: int = 3,
) -> str:
    r"""``target = numbers substituted = value`` for one step.

    A plain sum of products reads term by term, factors in the symbolic equation's
    order (``0.25\cdot 1 + (-0.5)\cdot 0 + \cdots + 0.25 = 0.875``), long sums elided as
    the symbolic equation is. Any other expression (``\max``, softmax, indicators) is
    printed as SymPy's LaTeX with every cell replaced by its number (``expr`` and the
    ``leaves``' numbers). The final value is the derived expression's.
    """
    result = number_latex(value)
    if step.expression and expr is not None:
        body = _expression_numbers(expr, leaves or {}, max_terms=max_terms, head=head)
    else:
        terms = []
        for factors, coefficient in zip(step.terms, step.coefficients, strict=True):
            ordered = sorted(factors, key=lambda c: reading.get(c.role, 9))
            numbers = [number_latex(number_of[c.role][c.index], paren=True) for c in ordered]
            terms.append(_coefficient_latex(coefficient) + r"\cdot ".join(numbers))
        if not terms:
            return f"{target_tex} = 0"
        if len(terms) > max_terms:
            terms = [*terms[:head], r"\cdots", terms[-1]]
        body = " + ".join(terms).replace("+ -", "- ")
    if body == result or body == f"({result})":
        return f"{target_tex} = {result}"
    return f"{target_tex} = {body} = {result}"


def _expression_numbers(
    expr: Any, leaves: Mapping[Any, float], *, max_terms: int, head: int
) -> str:
    r"""SymPy's LaTeX of ``expr`` (indicators, ``\max``) with numbers for its cells."""
    import sympy

    from convviz.notation import _IndicatorPrinter

    printer = _IndicatorPrinter()
    names: dict[Any, str] = {}
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Indexed | sympy.Symbol | sympy.Derivative) and node in leaves:
            names[node] = number_latex(leaves[node], paren=True)
    printer.cell_names = names
    if isinstance(expr, sympy.Add) and len(expr.args) > max_terms:
        parts = [printer.doprint(t) for t in printer._as_ordered_terms(expr)]
        return " + ".join([*parts[:head], r"\cdots", parts[-1]]).replace("+ -", "- ")
    if isinstance(expr, sympy.Mul) and not any(
        isinstance(f, sympy.Number) or (isinstance(f, sympy.Pow) and f.exp.is_negative)
        for f in expr.args
    ):
        upstream = [f for f in expr.args if isinstance(f, sympy.Derivative)]
        rest = [f for f in expr.args if not isinstance(f, sympy.Derivative)]
        return r" \cdot ".join(str(printer.doprint(f)) for f in (*upstream, *rest))
    return str(printer.doprint(expr))


# ------------------------------------------------------------------------ evaluation
def evaluate_roles(
    derivation: Derivation, values: Mapping[str, FloatArray], roles: list[str]
) -> tuple[dict[str, FloatArray], dict[Any, float]]:
    """Numbers of ``roles`` (display shape) from the derived expressions, and the leaves'."""
    from convviz.evaluation import ExpressionEvaluator, leaf_values

    leaves = leaf_values(derivation, values)
    evaluator = ExpressionEvaluator(leaves)
    out: dict[str, FloatArray] = {}
    spec = derivation.spec
    for role in roles:
        if role not in derivation.arrays:
            continue
        numbers = evaluator.array(derivation.array(role))
        out[role] = numbers.reshape(spec.display_shape(role))
    return out, leaves
