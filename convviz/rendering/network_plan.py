r"""A whole network's clip as plain data: its phases, their order and their pace.

``convviz render NET.toml`` draws the forward pass layer by layer down to the loss, then
the backward pass from the loss back to the first layer. Each *phase* is one op of one
``[[layer]]`` (``forward``; ``dw``, ``db``, ``da`` backwards), planned exactly as the
single-layer clip of that op (:func:`~convviz.rendering.plan.plan_scene` on the layer's
derivation from :func:`~convviz.network.derive_network`). The order backwards is the
chain rule's: the loss's ``dL/dz``, then per layer its parameter gradients (``dW``, then
``db``) and its ``dL/da``, which is the next phase's upstream gradient. The first
layer's ``dL/da`` (the gradient of the input) is left out unless asked for.

Pacing: in each phase the first ``detail`` cells go step by step with their equation;
then every cell of the result fills in one quick sweep. :meth:`NetworkPlan.schedule`
gives the time of everything; the scene plays exactly that schedule, so the duration
is known before rendering (:meth:`NetworkPlan.duration`).

Array names (timelines and chapters) are the LaTeX labels as plain text: ``a[0]``,
``W[1]``, ``z[2]``, ``L``, ``y_hat``, gradients ``dL/dz[1]``, ``dL/dW[2]``
(:func:`array_name`). They are unique within a network.

Nothing here imports manim.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convviz.highlights import Index
from convviz.network import NetworkLayer, plain_name
from convviz.rendering.plan import ScenePlan, axis_slots, plan_scene

if TYPE_CHECKING:
    from convviz.network import Network, NetworkDerivation, NetworkValues
    from convviz.results import NetworkResult

__all__ = [
    "PHASES",
    "NetworkPlan",
    "Pacing",
    "PhasePlan",
    "PhaseTimes",
    "PlanError",
    "PreparedNetwork",
    "StripArray",
    "array_name",
    "backward_ops",
    "layer_numbers",
    "parse_layers",
    "plan_network",
    "prepare_network_parts",
]

#: The two passes, in the order a clip plays them.
PHASES = ("forward", "backward")


class PlanError(ValueError):
    """A network clip was asked for with a bad selection (one line, names the option)."""


@dataclass(frozen=True)
class Pacing:
    """Seconds of each part of a network clip.

    Attributes
    ----------
    detail
        Cells per phase shown step by step with their equation (the rest: one sweep).
    step_time, transition
        One detailed step, and its fade from the previous highlights (as single clips).
    opening
        The first picture (the strip and the first phase) held before anything moves.
    move
        Between two phases: results move into place, the rest fades.
    intro
        Hold after a phase appears, to read its caption.
    sweep, sweep_fade, sweep_hold
        The sweep: cells light one after the other over ``sweep`` seconds (each fading
        in over ``sweep_fade``), then the full result is held ``sweep_hold``.
    closing
        Hold at the end.
    """

    detail: int = 2
    step_time: float = 1.0
    transition: float = 0.25
    opening: float = 1.0
    move: float = 1.0
    intro: float = 0.5
    sweep: float = 1.0
    sweep_fade: float = 0.2
    sweep_hold: float = 0.6
    closing: float = 1.5

    def __post_init__(self) -> None:
        if isinstance(self.detail, bool) or not isinstance(self.detail, int) or self.detail < 0:
            raise PlanError(f"--detail: a whole number of at least 0 expected, got {self.detail!r}")
        if self.step_time <= 0:
            raise PlanError(f"--step-time: must be positive, got {self.step_time}")


@dataclass(frozen=True)
class StripArray:
    """One array of the network as the strip across the top draws it.

    ``slices`` are ``(rows, cols)`` of its 2-D slices (long axes elided as in clips);
    ``layers`` the ``[[layer]]`` indices it belongs to (input, parameter or output).
    """

    name: str
    label: str
    slices: tuple[tuple[int, int], ...]
    layers: tuple[int, ...]


@dataclass(frozen=True)
class PhaseTimes:
    """When the parts of one phase happen (seconds from the start of the clip)."""

    start: float
    shown: float
    steps: tuple[tuple[float, float, float], ...]
    sweep: tuple[float, float] | None
    end: float


@dataclass(frozen=True)
class PhasePlan:
    """One op of one layer, as the clip shows it.

    Attributes
    ----------
    number
        1-based position in the clip.
    layer
        The ``[[layer]]`` (``layer.index`` is 1-based, as timelines count).
    phase
        ``forward`` or ``backward``.
    op
        The layer type's op (``forward``, ``dw``, ``db``, ``da``).
    plan
        The single-layer clip's plan, with only the detailed steps (its caption names
        the layer).
    names
        Network array name (:func:`array_name`) of every role the plan draws.
    sweep
        Display indices of the target cells that the sweep fills, in row-major order,
        without the detailed ones (cells elided from the picture included).
    """

    number: int
    layer: NetworkLayer
    phase: str
    op: str
    plan: ScenePlan
    names: Mapping[str, str]
    sweep: tuple[Index, ...]

    @property
    def target(self) -> str:
        """Role of the array the phase computes."""
        return self.layer.declaration.op(self.op).target

    @property
    def target_name(self) -> str:
        """Network name of the array the phase computes."""
        return self.names[self.target]

    @property
    def title(self) -> str:
        """``layer 1 (conv2d) forward`` (chapters, slides)."""
        what = "forward" if self.op == "forward" else f"backward {self.op}"
        return f"{self.layer.label} {what}: {self.target_name}"

    @property
    def cells(self) -> tuple[Index, ...]:
        """Every target cell, row-major: the detailed ones first, then the sweep's."""
        return (*(s.target.index for s in self.plan.steps), *self.sweep)


@dataclass(frozen=True)
class NetworkPlan:
    """Everything a network clip shows, and when."""

    network: Network
    phases: tuple[PhasePlan, ...]
    strip: tuple[StripArray, ...]
    pacing: Pacing
    result: NetworkResult | None = None

    def schedule(self) -> list[PhaseTimes]:
        """The time of every part of every phase (the scene follows it to the frame)."""
        p = self.pacing
        out = []
        t = p.opening
        for n, phase in enumerate(self.phases):
            start = t
            # the first phase is on screen from the start; the others move in
            t += p.move if n else 0.0
            shown = t
            t += p.intro
            steps = []
            for _ in phase.plan.steps:
                steps.append((t, t + p.transition, t + p.step_time))
                t += p.step_time
            sweep = None
            if phase.sweep:
                sweep = (t, t + p.sweep)
                t += p.sweep + p.sweep_hold
            out.append(PhaseTimes(start, shown, tuple(steps), sweep, t))
        return out

    def duration(self) -> float:
        """Length of the clip in seconds."""
        times = self.schedule()
        return (times[-1].end if times else self.pacing.opening) + self.pacing.closing

    def sweep_times(self, phase: PhasePlan, times: PhaseTimes) -> list[tuple[float, float]]:
        """``(lit, fully lit)`` of each cell of :meth:`PhasePlan.cells` in the sweep."""
        assert times.sweep is not None
        start, end = times.sweep
        count = len(phase.cells)
        fade = min(self.pacing.sweep_fade, end - start)
        gap = (end - start - fade) / max(count - 1, 1)
        return [(start + k * gap, start + k * gap + fade) for k in range(count)]


# --------------------------------------------------------------------------- names
_GRAD = re.compile(r"^\\frac\{\\partial \\mathcal\{L\}\}\{\\partial (.+)\}$")


def array_name(label: str) -> str:
    r"""A LaTeX array label as plain text: ``z^{[1]}`` -> ``z[1]``, dL/d... for gradients.

    ``\frac{\partial \mathcal{L}}{\partial W^{[2]}}`` -> ``dL/dW[2]``; ``\mathcal{L}`` ->
    ``L``; ``\hat{y}`` -> ``y_hat``.
    """
    found = _GRAD.match(label.strip())
    if found:
        return f"dL/d{plain_name(found.group(1))}"
    return plain_name(label.strip())


# ----------------------------------------------------------------------- selection
def parse_layers(text: str | None, count: int) -> tuple[int, int]:
    """``"2-4"`` -> ``(2, 4)``; ``"3"`` -> ``(3, 3)``; ``None`` -> every layer (1-based)."""
    if text is None:
        return (1, count)
    found = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if not found:
        raise PlanError(f"--layers: expected A-B or A ([[layer]] numbers from 1), got {text!r}")
    first = int(found.group(1))
    last = int(found.group(2)) if found.group(2) else first
    if not 1 <= first <= last <= count:
        raise PlanError(
            f"--layers: {text} is not a range within 1-{count} (the network has {count} "
            f"layer{'s' if count != 1 else ''})"
        )
    return (first, last)


def backward_ops(layer: NetworkLayer, *, first_da: bool = False) -> list[str]:
    """The layer's backward ops in the chain rule's order: parameter gradients, then da.

    One op per gradient (``da`` rather than conv2d's ``da-full``); a gradient the spec
    does not have (no bias) is left out, and so is the first layer's ``da`` unless
    ``first_da``.
    """
    declared = layer.declaration
    params: list[str] = []
    inputs: list[str] = []
    seen: set[str] = set()
    for op in declared.ops:
        if not op.target.startswith("grad_") or op.target in seen:
            continue
        if op.needs and not getattr(layer.spec, op.needs):
            continue
        seen.add(op.target)
        (inputs if op.target == "grad_input" else params).append(op.name)
    if layer.index == 1 and not first_da:
        inputs = []
    return [*params, *inputs]


# -------------------------------------------------------------------------- plans
def _slices(shape: Index) -> tuple[tuple[int, int], ...]:
    """``(rows, cols)`` of each 2-D slice of a display shape, long axes elided."""
    if len(shape) == 0:
        rows, cols, count = 1, 1, 1
    elif len(shape) == 1:
        rows, cols, count = shape[0], 1, 1
    else:
        rows, cols = shape[-2], shape[-1]
        count = 1
        for n in shape[:-2]:
            count *= n
    size = (len(axis_slots(rows, set())), len(axis_slots(cols, set())))
    return (size,) * count


def _strip(network: Network, derivation: NetworkDerivation) -> tuple[StripArray, ...]:
    """The input, then per layer its parameters and its output (the loss: L)."""
    first = derivation.derivations[0]
    arrays: dict[str, StripArray] = {}
    order: list[str] = []

    def add(label: str, shape: Index, layer: int) -> None:
        name = array_name(label)
        if name in arrays:
            old = arrays[name]
            if layer in old.layers:
                return
            arrays[name] = dataclasses.replace(old, layers=(*old.layers, layer))
            return
        arrays[name] = StripArray(name, label, _slices(shape), (layer,))
        order.append(name)

    info = first.array_info("input")
    add(info.label, info.shape, 1)
    for layer, d in zip(network.layers, derivation.derivations, strict=True):
        add(d.array_info("input").label, d.array_info("input").shape, layer.index)
        for decl in layer.declaration.arrays:
            if decl.kind == "param" and d.has(decl.role):
                info = d.array_info(decl.role)
                add(info.label, info.shape, layer.index)
        info = d.array_info("output")
        add(info.label, info.shape, layer.index)
    return tuple(arrays[name] for name in order)


def _caption(layer: NetworkLayer, phase: str, op: str, caption: str, note: str) -> str:
    head = rf"\text{{Layer {layer.index} ({layer.type}), {phase}: }}"
    # "forward: Forward pass: ..." says it twice
    caption = caption.replace(r"\text{Forward pass: ", r"\text{", 1)
    return head + caption + note


def _phase(
    number: int,
    layer: NetworkLayer,
    derivation: Any,
    phase: str,
    op: str,
    detail: int,
    note: str = "",
    numbers: Mapping[str, Any] | None = None,
    show: str = "symbols",
) -> PhasePlan:
    if numbers is not None and show != "symbols":
        plan = plan_scene(derivation, op, max_steps=max(detail, 1), verify_identity=False,
                          values=numbers, show=show)
    else:
        plan = plan_scene(derivation, op, max_steps=max(detail, 1), verify_identity=False)
    steps = plan.steps[:detail]
    target = layer.declaration.op(op).target
    shown = {s.target.index for s in steps}
    # the target array's cells in row-major order (the plan's positions hold them all)
    target_plan = plan.array(target) if target in {a.role for a in plan.arrays} else None
    every = sorted(target_plan.positions) if target_plan is not None else []
    sweep = tuple(i for i in every if i not in shown)
    plan = dataclasses.replace(
        plan, steps=steps, caption=_caption(layer, phase, op, plan.caption, note)
    )
    names = {a.role: array_name(a.label) for a in plan.arrays}
    return PhasePlan(number, layer, phase, op, plan, names, sweep)


def plan_network(
    derivation: NetworkDerivation,
    *,
    pacing: Pacing | None = None,
    only: str | None = None,
    layers: tuple[int, int] | None = None,
    first_da: bool = False,
    result: NetworkResult | None = None,
    numbers: Sequence[Mapping[str, Any]] | None = None,
    show: str = "symbols",
) -> NetworkPlan:
    """Plan the clip of a derived network.

    Parameters
    ----------
    derivation
        Every layer derived (:func:`~convviz.network.derive_network`).
    pacing
        Seconds and detail (default :class:`Pacing`).
    only
        ``forward`` or ``backward``: one pass only.
    layers
        ``(first, last)`` ``[[layer]]`` indices (1-based, inclusive) to show.
    first_da
        Also show the first layer's ``dL/da``.
    result
        The numbers (:func:`~convviz.evaluation.evaluate_network`); the loss phase's
        caption shows the loss value.
    numbers, show
        Per ``[[layer]]`` (0-based), the numbers its clips are drawn at by role
        (:func:`layer_numbers`), and what the cells show (``values``, ``both``,
        ``symbols``), as single-layer clips take them.
    """
    pacing = pacing or Pacing()
    network = derivation.network
    if only is not None and only not in PHASES:
        raise PlanError(f"--only: expected forward or backward, got {only!r}")
    first, last = layers or (1, len(network.layers))
    chosen = [
        (layer, d)
        for layer, d in zip(network.layers, derivation.derivations, strict=True)
        if first <= layer.index <= last
    ]
    phases: list[PhasePlan] = []
    if only in (None, "forward"):
        for layer, d in chosen:
            note = ""
            if layer.declaration.loss and result is not None and result.loss is not None:
                note = rf"\quad \mathcal{{L}} = {result.loss + 0.0:.4g}"
            given = numbers[layer.index - 1] if numbers is not None else None
            phases.append(_phase(len(phases) + 1, layer, d, "forward", "forward",
                                 pacing.detail, note, given, show))
    if only in (None, "backward"):
        for layer, d in reversed(chosen):
            given = numbers[layer.index - 1] if numbers is not None else None
            for op in backward_ops(layer, first_da=first_da):
                phases.append(_phase(len(phases) + 1, layer, d, "backward", op, pacing.detail,
                                     "", given, show))
    if not phases:
        raise PlanError(
            f"nothing to show: layers {first}-{last} have no "
            f"{only or 'forward or backward'} phase (the first layer's dL/da needs "
            "--first-da)"
        )
    return NetworkPlan(network, tuple(phases), _strip(network, derivation), pacing, result)


def layer_numbers(result: NetworkResult, values: Any) -> list[dict[str, Any]]:
    """Per ``[[layer]]``, the numbers its clips are drawn at, by role (full shapes).

    ``input`` is the layer before's output, the parameters and an mse ``target`` come
    from ``values`` (:class:`~convviz.network.NetworkValues`), and ``grad_output`` (a
    layer that is not the loss) is the gradient the layer after passed back: the
    numbers of :func:`~convviz.evaluation.evaluate_network`, one layer at a time.
    """
    out: list[dict[str, Any]] = []
    x = result.input.value
    for k, layer_result in enumerate(result.layers):
        given: dict[str, Any] = {"input": x, **values.layer_arrays(k)}
        if not layer_result.layer.declaration.loss:
            given["grad_output"] = layer_result.output.grad
        out.append(given)
        x = layer_result.output.value
    return out


def phase_arrays(plan: NetworkPlan, phase: PhasePlan) -> Sequence[str]:
    """Names of the strip arrays that belong to the phase's layer (outlined in the strip)."""
    return [a.name for a in plan.strip if phase.layer.index in a.layers]


@dataclass(frozen=True)
class PreparedNetwork:
    """A network clip's plan with what it was made from (pages re-plan phases in full)."""

    derivation: NetworkDerivation
    result: NetworkResult
    numbers: list[dict[str, Any]]
    plan: NetworkPlan


def prepare_network_parts(
    network: Network,
    *,
    values: NetworkValues | None = None,
    seed: int = 0,
    detail: int = 2,
    only: str | None = None,
    layers: tuple[int, int] | None = None,
    first_da: bool = False,
    step_time: float = 1.0,
    show: str | None = None,
) -> PreparedNetwork:
    """Derive, evaluate and plan a network clip (no manim), keeping every part.

    The numbers are ``values``, else drawn from ``seed``; ``show`` is what the cells
    show (``values`` by default, ``both`` or ``symbols``).
    """
    from convviz.evaluation import evaluate_network
    from convviz.network import derive_network, random_values
    from convviz.rendering.values import resolve_show

    given = values if values is not None else random_values(network, seed)
    network = given.network or network
    derivation = derive_network(network)
    result = evaluate_network(derivation, given)
    pacing = Pacing(detail=detail, step_time=step_time)
    mode = resolve_show(show, True, where="--show")
    numbers = layer_numbers(result, given)
    plan = plan_network(derivation, pacing=pacing, only=only, layers=layers,
                        first_da=first_da, result=result, numbers=numbers, show=mode)
    return PreparedNetwork(derivation, result, numbers, plan)
