r"""Numbers from the derived expressions: a fast evaluator of SymPy trees, and whole networks.

:class:`ExpressionEvaluator` computes the float value of a SymPy expression tree at given
values of its leaves (the cells ``Indexed``/``Symbol`` and the opaque upstream gradients
``Derivative(L, z[...])``). It walks the tree recursively by node class (``Add``, ``Mul``,
``Pow``, numbers, ``exp``, ``log``, ``tanh``, ``Max``, ``Min``, ``Heaviside(x, H0)``),
remembering the value of every node it has seen, so that a sub-expression shared by many
cells (the softmax denominator, a pooling window's maximum) is computed once. Anything
else falls back to :func:`sympy.lambdify` of that one node, compiled once per function.
``lambdify`` on whole cells is not used: a LeNet layer has a hundred thousand terms.

Sums are computed with :func:`math.fsum` (correctly rounded), so a sum of exactly
representable numbers (integers, quarters) is exact whatever the order of its terms, as
in any float64 implementation. ``Heaviside(x, H0)`` is ``H0`` at ``x = 0`` exactly: the
refined gradients of ReLU (``H0 = 0``) and of max pooling (``H0`` of 0 and 1, the first
maximum in row-major order wins) follow PyTorch's tie rules.

``log`` of a sum of exponentials (softmax cross-entropy's ``log sum_j exp z_j``) is
computed as a max-shifted log-sum-exp, as PyTorch computes it, so a confidently right
prediction has a loss near 0 rather than the rounding error of ``log`` of a large sum.

Overflow
--------
``exp`` of a large logit overflows float64 although the quantity asked for is finite
(``log(sum exp z)``, ``exp(z_k) / sum exp z``, ``sigmoid'`` far from 0). When a node's
value comes out infinite or NaN, the node is evaluated again in the log domain, as a sign
and a log-magnitude (``log exp u = u``, products add logs, sums of exponentials are
log-sum-exps), which is the max-shifted form PyTorch computes.

:func:`evaluate_network` runs a whole network this way, layer by layer: the forward
pass evaluates each layer's derived ``output`` at the previous layer's numbers; the
backward pass evaluates each layer's derived gradients at its inputs and at the upstream
gradient, which is the next layer's ``grad_input`` (a loss starts the chain with 1).
Nothing is substituted across layers. :func:`numeric_forward` is the independent check:
the layer declarations' forward functions run on floats
(:data:`convviz.layers.namespace.NUMERIC`), and :func:`finite_differences` differentiates
the loss that pass computes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy
from numpy.typing import NDArray

from convviz.results import ArrayResult, LayerResult, NetworkResult

if TYPE_CHECKING:
    from convviz.derivation import Derivation
    from convviz.network import Network, NetworkDerivation, NetworkValues

__all__ = [
    "FD_SAMPLE",
    "ArrayResult",
    "EvaluationError",
    "ExpressionEvaluator",
    "GradientCheck",
    "LayerResult",
    "NetworkResult",
    "evaluate_network",
    "finite_differences",
    "leaf_values",
    "network_loss",
    "numeric_forward",
]

FloatArray = NDArray[np.float64]

#: ``log`` of the largest float64: ``exp`` above it overflows.
_LOG_MAX = math.log(np.finfo(np.float64).max)


class EvaluationError(ValueError):
    """An expression holds a leaf without a value (a bug, not bad input)."""


class _NoLog(Exception):
    """A node has no finite log-domain form."""


def _lambdified(func: Any, nargs: int) -> Callable[..., Any]:
    """``func`` of ``nargs`` plain symbols, compiled once (the fallback for rare nodes)."""
    key = (func, nargs)
    found = _COMPILED.get(key)
    if found is None:
        args = sympy.symbols(f"x0:{nargs}", real=True)
        found = sympy.lambdify(args, func(*args), modules=["math", "mpmath"])
        _COMPILED[key] = found
    return found


_COMPILED: dict[tuple[Any, int], Callable[..., Any]] = {}


class ExpressionEvaluator:
    """Float values of SymPy expressions at given leaf values, memoised per node.

    Parameters
    ----------
    leaves
        Value of every leaf (``Indexed`` cell, ``Symbol``, ``Derivative`` upstream cell).
        More can be added with :meth:`add` (the backward pass adds the upstream gradient
        to the evaluator of the forward pass, reusing what it computed).
    """

    def __init__(self, leaves: Mapping[Any, float] | None = None) -> None:
        self._memo: dict[Any, float] = {}
        self._logs: dict[Any, tuple[float, float]] = {}
        self._handlers: dict[type, Callable[[Any], float]] = {}
        if leaves:
            self.add(leaves)

    def add(self, leaves: Mapping[Any, float]) -> None:
        """Give leaves values (as floats)."""
        for leaf, value in leaves.items():
            self._memo[leaf] = float(value)

    # ------------------------------------------------------------------- public
    def value(self, expr: Any) -> float:
        """The value of one expression (a SymPy node or a plain number)."""
        found = self._memo.get(expr)
        if found is not None:
            return found
        if not isinstance(expr, sympy.Basic):
            return float(expr)
        return self._compute(expr)

    def array(self, exprs: NDArray[Any]) -> FloatArray:
        """Values of an object array of expressions, same shape, float64."""
        flat = [self.value(e) for e in np.asarray(exprs, dtype=object).reshape(-1)]
        return np.array(flat, dtype=np.float64).reshape(np.shape(exprs))

    # ----------------------------------------------------------------- dispatch
    def _compute(self, node: Any) -> float:
        cls = type(node)
        handler = self._handlers.get(cls)
        if handler is None:
            handler = self._handler_for(cls)
            self._handlers[cls] = handler
        try:
            result = handler(node)
        except EvaluationError:
            raise
        except (OverflowError, ZeroDivisionError, ValueError):  # math range and domain errors
            result = math.nan
        if not math.isfinite(result) and isinstance(
            node, sympy.Add | sympy.Mul | sympy.Pow | sympy.log
        ):
            result = self._stable(node, result)
        self._memo[node] = result
        return result

    def _handler_for(self, cls: type) -> Callable[[Any], float]:
        table: list[tuple[type, Callable[[Any], float]]] = [
            (sympy.Add, self._add),
            (sympy.Mul, self._mul),
            (sympy.Pow, self._pow),
            (sympy.Number, self._number),
            (sympy.exp, self._exp),
            (sympy.log, self._log),
            (sympy.tanh, self._tanh),
            (sympy.Max, self._max),
            (sympy.Min, self._min),
            (sympy.Heaviside, self._heaviside),
            (sympy.Indexed, self._leaf),
            (sympy.Symbol, self._leaf),
            (sympy.Derivative, self._leaf),
            (sympy.NumberSymbol, self._number),
        ]
        for base, handler in table:
            if issubclass(cls, base):
                return handler
        return self._fallback

    # ----------------------------------------------------------------- handlers
    def _args(self, node: Any) -> list[float]:
        get = self._memo.get
        out = []
        for arg in node.args:
            v = get(arg)
            out.append(self._compute(arg) if v is None else v)
        return out

    def _add(self, node: Any) -> float:
        return math.fsum(self._args(node))

    def _mul(self, node: Any) -> float:
        out = 1.0
        for v in self._args(node):
            out *= v
        return out

    def _pow(self, node: Any) -> float:
        base = self.value(node.args[0])
        exponent = node.args[1]
        if exponent is sympy.S.NegativeOne:
            return 1.0 / base
        if exponent.is_Integer:
            n = int(exponent)
            return 1.0 / base ** (-n) if n < 0 else float(base**n)
        if exponent is sympy.S.Half:
            return math.sqrt(base)
        return float(base ** self.value(exponent))

    @staticmethod
    def _number(node: Any) -> float:
        return float(node)

    def _exp(self, node: Any) -> float:
        x = self.value(node.args[0])
        return math.inf if x > _LOG_MAX else math.exp(x)

    def _log(self, node: Any) -> float:
        arg = node.args[0]
        if isinstance(arg, sympy.Add) and any(isinstance(a, sympy.exp) for a in arg.args):
            # log(sum of exponentials): the max-shifted log-sum-exp, as PyTorch computes it
            try:
                sign, logabs = self._log_form(arg)
            except _NoLog:
                pass
            else:
                if sign > 0:
                    return logabs
        x = self.value(arg)
        if x == math.inf:
            return math.inf
        return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)

    def _tanh(self, node: Any) -> float:
        return math.tanh(self.value(node.args[0]))

    def _max(self, node: Any) -> float:
        return max(self._args(node))

    def _min(self, node: Any) -> float:
        return min(self._args(node))

    def _heaviside(self, node: Any) -> float:
        x = self.value(node.args[0])
        if x > 0:
            return 1.0
        if x < 0:
            return 0.0
        if x != x:  # NaN
            return math.nan
        return self.value(node.args[1]) if len(node.args) > 1 else 0.5

    @staticmethod
    def _leaf(node: Any) -> float:
        raise EvaluationError(f"no value given for {node}")

    def _fallback(self, node: Any) -> float:
        values = self._args(node)
        return float(_lambdified(node.func, len(values))(*values))

    # ----------------------------------------------------------- log domain
    def _stable(self, node: Any, direct: float) -> float:
        """The value of a node whose direct evaluation overflowed, from its log form."""
        try:
            if isinstance(node, sympy.log):
                sign, logabs = self._log_form(node.args[0])
                return logabs if sign > 0 else (-math.inf if sign == 0 else math.nan)
            sign, logabs = self._log_form(node)
        except _NoLog:
            return direct
        if sign == 0:
            return 0.0
        if logabs > _LOG_MAX:
            return sign * math.inf
        return sign * math.exp(logabs)

    def _log_form(self, node: Any) -> tuple[float, float]:
        """``(sign, log|value|)`` of a node; sign 0 means the value is 0."""
        found = self._logs.get(node)
        if found is not None:
            return found
        result = self._log_form_of(node)
        self._logs[node] = result
        return result

    def _log_form_of(self, node: Any) -> tuple[float, float]:
        if isinstance(node, sympy.exp):
            u = self.value(node.args[0])
            if not math.isfinite(u):
                raise _NoLog
            return (1.0, u)
        if isinstance(node, sympy.Mul):
            sign, total = 1.0, 0.0
            for arg in node.args:
                s, la = self._log_form(arg)
                if s == 0:
                    return (0.0, -math.inf)
                sign *= s
                total += la
            return (sign, total)
        if isinstance(node, sympy.Pow) and node.args[1].is_Number:
            s, la = self._log_form(node.args[0])
            e = float(node.args[1])
            if s == 0:
                if e > 0:
                    return (0.0, -math.inf)
                raise _NoLog
            if s < 0:
                if not node.args[1].is_Integer:
                    raise _NoLog
                s = -1.0 if int(node.args[1]) % 2 else 1.0
            return (s, e * la)
        if isinstance(node, sympy.Add):
            positive, negative = [], []
            for arg in node.args:
                s, la = self._log_form(arg)
                if s > 0:
                    positive.append(la)
                elif s < 0:
                    negative.append(la)
            p, n = _log_sum_exp(positive), _log_sum_exp(negative)
            if p == n:
                return (0.0, -math.inf)
            if p > n:
                return (1.0, p + math.log1p(-math.exp(n - p)))
            return (-1.0, n + math.log1p(-math.exp(p - n)))
        v = self.value(node)
        if not math.isfinite(v):
            raise _NoLog
        if v == 0:
            return (0.0, -math.inf)
        return (1.0 if v > 0 else -1.0, math.log(abs(v)))


def _log_sum_exp(logs: Sequence[float]) -> float:
    if not logs:
        return -math.inf
    top = max(logs)
    if top == -math.inf:
        return top
    return top + math.log(math.fsum(math.exp(la - top) for la in logs))


# ------------------------------------------------------------------------ leaves
def leaf_values(
    derivation: Derivation, values: Mapping[str, NDArray[Any]]
) -> dict[Any, float]:
    """``{cell: number}`` for the cells of ``derivation``'s arrays, from numbers by role.

    Roles are ``input``, parameters, constants (``target``) and ``grad_output`` (whose
    cells are the ``Derivative(L, z[...])`` upstream cells). Cells that are numbers
    (the zeros of a layer without bias, a loss's upstream 1) need no value.
    """
    out: dict[Any, float] = {}
    for role, numbers in values.items():
        if role not in derivation.arrays:
            continue
        cells = derivation.arrays[role]
        flat = np.asarray(numbers, dtype=np.float64).reshape(-1)
        for cell, number in zip(cells.reshape(-1), flat, strict=True):
            if isinstance(cell, sympy.Indexed | sympy.Symbol | sympy.Derivative):
                out[cell] = float(number)
    return out


# ---------------------------------------------------------------------- networks
def evaluate_network(
    derivation: NetworkDerivation, values: NetworkValues
) -> NetworkResult:
    """Evaluate the derived expressions of every layer at ``values``, layer by layer.

    The forward pass evaluates each layer's ``output`` cells at its input and
    parameters; the backward pass, from the last layer down, evaluates each layer's
    gradients at the same numbers and at the upstream gradient: the next layer's
    ``grad_input``, the loss's 1, or ``values.grad_output`` for a network without loss.
    """
    network = derivation.network
    count = len(network.layers)
    evaluators: list[ExpressionEvaluator] = []
    inputs: list[FloatArray] = []
    outputs: list[FloatArray] = []
    extras: list[dict[str, FloatArray]] = []
    seconds = [[0.0, 0.0] for _ in range(count)]
    x = np.asarray(values.input, dtype=np.float64)
    for k, (layer, d) in enumerate(zip(network.layers, derivation.derivations, strict=True)):
        started = time.perf_counter()
        given = {"input": x, **values.layer_arrays(k)}
        evaluator = ExpressionEvaluator(leaf_values(d, given))
        out = evaluator.array(d.arrays["output"])
        extra: dict[str, FloatArray] = {}
        if layer.declaration.loss and values.target is not None:
            extra["target"] = np.asarray(values.target)
        for decl in layer.declaration.arrays:
            if decl.kind == "value" and decl.role in d.arrays:
                extra[decl.role] = evaluator.array(d.arrays[decl.role])
        evaluators.append(evaluator)
        inputs.append(x)
        outputs.append(out)
        extras.append(extra)
        seconds[k][0] = time.perf_counter() - started
        x = out

    last = network.layers[-1] if network.layers else None
    if last is not None and last.declaration.loss:
        upstream = np.ones(outputs[-1].shape)
    else:
        upstream = np.asarray(values.grad_output, dtype=np.float64)
    results: list[LayerResult] = []
    for k in range(count - 1, -1, -1):
        started = time.perf_counter()
        layer, d, evaluator = network.layers[k], derivation.derivations[k], evaluators[k]
        if not layer.declaration.loss:
            evaluator.add(leaf_values(d, {"grad_output": upstream}))
        params = {}
        for name, role in layer.params:
            params[name] = ArrayResult(
                values.layer_arrays(k)[role], evaluator.array(d.arrays[f"grad_{role}"])
            )
        output = ArrayResult(outputs[k], upstream)
        grad_input = evaluator.array(d.arrays["grad_input"])
        seconds[k][1] = time.perf_counter() - started
        results.append(LayerResult(layer, output, params, extras[k],
                                   (seconds[k][0], seconds[k][1])))
        upstream = grad_input
    results.reverse()
    loss = float(outputs[-1]) if last is not None and last.declaration.loss else None
    first_input = np.asarray(values.input, dtype=np.float64)
    return NetworkResult(network, loss, ArrayResult(first_input, upstream), tuple(results))


# ----------------------------------------------------------- numeric references
def numeric_forward(
    network: Network, values: NetworkValues, *, start: int = 0, x: FloatArray | None = None
) -> list[FloatArray]:
    """Outputs of every layer from ``start`` on, by the declarations' forward on floats.

    ``x`` is the input of layer ``start`` (default: the network's input). This pass
    shares nothing with the derivation but the layer declarations' forward functions,
    run with :data:`convviz.layers.namespace.NUMERIC`.
    """
    from convviz.layers.namespace import NUMERIC

    current = np.asarray(values.input if x is None else x, dtype=np.float64)
    out = []
    for k in range(start, len(network.layers)):
        layer = network.layers[k]
        arrays = {"input": current, **values.layer_arrays(k)}
        computed = layer.declaration.forward(NUMERIC, layer.spec, arrays)
        current = np.asarray(computed["output"], dtype=np.float64)
        out.append(current)
    return out


def network_loss(network: Network, values: NetworkValues, outputs: Sequence[FloatArray]) -> float:
    """The scalar the gradients differentiate: the loss, or ``sum(grad_output * output)``."""
    last = np.asarray(outputs[-1], dtype=np.float64)
    if network.layers[-1].declaration.loss:
        return float(last)
    return math.fsum((np.asarray(values.grad_output) * last).reshape(-1).tolist())


@dataclass(frozen=True)
class GradientCheck:
    """Symbolic gradient of one array against central finite differences of the loss.

    ``where`` is ``input`` or ``layer K (type) weight``; ``cells`` how many were compared
    (of ``size``); ``max_error`` the largest absolute difference, ``scale`` the largest
    gradient magnitude among the compared cells.
    """

    where: str
    cells: int
    size: int
    max_error: float
    scale: float
    tolerance: float = 1e-6

    @property
    def passed(self) -> bool:
        """Whether ``max_error <= tolerance * max(1, scale)``."""
        return self.max_error <= self.tolerance * max(1.0, self.scale)


def _sample(shape: tuple[int, ...], limit: int) -> list[tuple[int, ...]]:
    everything = list(np.ndindex(*shape))
    if len(everything) <= limit:
        return everything
    picks = np.unique(np.linspace(0, len(everything) - 1, limit).astype(int))
    return [everything[k] for k in picks]


#: Above this many cells in one array, finite differences check an evenly spread sample.
FD_SAMPLE = 2_000


def finite_differences(
    result: NetworkResult,
    values: NetworkValues,
    *,
    sample: int = FD_SAMPLE,
    step: float = 1e-6,
) -> list[GradientCheck]:
    """Compare every gradient of ``result`` with central differences of the loss.

    The loss is computed by :func:`numeric_forward`; a cell of layer ``k`` only reruns
    the layers from ``k`` on. Arrays with more than ``sample`` cells are checked on an
    evenly spread sample of that many.
    """
    network = result.network
    before = numeric_forward(network, values)
    inputs = [np.asarray(values.input, dtype=np.float64), *before[:-1]]
    checks = []

    def loss_with(k: int, x: FloatArray, changed: NetworkValues) -> float:
        tail = numeric_forward(network, changed, start=k, x=x)
        return network_loss(network, changed, [*before[:k], *tail])

    targets: list[tuple[str, int, str | None, FloatArray]] = [
        ("input", 0, None, result.input.grad)
    ]
    for k, layer_result in enumerate(result.layers):
        layer = layer_result.layer
        for name, param in layer.params:
            targets.append((f"layer {layer.index} ({layer.type}) {name}", k, param,
                            layer_result.params[name].grad))
    for where, k, role, grad in targets:
        positions = _sample(grad.shape, sample)
        errors, scale = [], 0.0
        for pos in positions:
            estimates = []
            for sign in (1.0, -1.0):
                if role is None:
                    x = inputs[0].copy()
                    x[pos] += sign * step
                    estimates.append(loss_with(0, x, values))
                else:
                    changed = values.shifted(k, role, pos, sign * step)
                    estimates.append(loss_with(k, inputs[k], changed))
            fd = (estimates[0] - estimates[1]) / (2 * step)
            errors.append(abs(float(grad[pos]) - fd))
            scale = max(scale, abs(float(grad[pos])))
        checks.append(GradientCheck(where, len(positions), grad.size, max(errors, default=0.0),
                                    scale))
    return checks


def max_abs_difference(a: Iterable[FloatArray], b: Iterable[FloatArray]) -> float:
    """Largest absolute difference between corresponding arrays."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.size:
            worst = max(worst, float(np.max(np.abs(x - y))))
    return worst
