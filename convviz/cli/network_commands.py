"""``evaluate`` and the network form of ``check``: whole networks from a TOML file."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from convviz.cli.options import OptionError

if TYPE_CHECKING:
    from convviz.evaluation import ArrayResult, NetworkResult
    from convviz.network import Network, NetworkDerivation, NetworkValues

__all__ = ["COMMANDS", "check_network", "evaluate_command"]

_SEED_HELP = (
    "Seed of the drawn values: input integers 0..3, weights and biases multiples of 0.25 "
    "in [-0.5, 0.5], a random target class (mse: multiples of "
    "0.25 in [0, 1]); exact in binary, so pooling ties and ReLU zeros are real. With "
    "--values, draws what the file leaves out."
)


#: Layers up to this many forward multiplications also have their product-rule gradients
#: confirmed by ``sympy.diff`` in ``convviz check NETWORK`` (the identities are always
#: checked); above it that confirmation costs more than the rest of the check.
NETWORK_ENGINE_LIMIT = 100


def _load(path: str) -> Network:
    from convviz.network import NetworkError, load_network

    try:
        return load_network(path)
    except NetworkError as err:
        raise OptionError(f"{path}: {err}") from None


def _values(network: Network, values_path: str | None, seed: int) -> NetworkValues:
    from convviz.network import NetworkError, ValuesError, load_values, random_values

    try:
        if values_path is None:
            return random_values(network, seed)
        return load_values(values_path, network, seed)
    except ValuesError as err:
        raise OptionError(f"{values_path}: {err}") from None
    except NetworkError as err:  # a target the loss layer rejects
        raise OptionError(f"{values_path}: {err}") from None


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@click.command("evaluate")
@click.argument("network", type=click.Path(exists=True, dir_okay=False))
@click.option("--values", "values_path", type=click.Path(exists=True, dir_okay=False),
              metavar="FILE.json",
              help="Numbers in PyTorch's layouts without the batch axis: input, target "
              "(class index from 0, or a list for mse), layers (one object per [[layer]] "
              "with weight and bias), grad_output (networks without loss).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help=_SEED_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print every value and gradient as JSON, in PyTorch's full layouts.")
@click.option("--timing", is_flag=True,
              help="Print where the time goes, layer by layer (on stderr).")
def evaluate_command(
    network: str, values_path: str | None, seed: int, as_json: bool, timing: bool
) -> None:
    """Evaluate a network's derived expressions: every value and gradient.

    NETWORK is a TOML file: input = "CxHxW" (or "N") and [[layer]] tables with the
    layer options of lecture files. Each layer is derived on its own; the numbers come
    from its derived expressions, evaluated layer by layer (forward, then backward from
    the loss). grad is always dL/d(that array).

    \b
    Examples:
      convviz evaluate examples/tiny_cnn.toml --seed 1
      convviz evaluate examples/xor_mlp.toml --values examples/xor_mlp.values.json --json
    """
    from convviz.evaluation import evaluate_network
    from convviz.network import derive_network

    started = time.perf_counter()
    net = _load(network)
    values = _values(net, values_path, seed)
    net = values.network or net
    derivation = derive_network(net)
    result = evaluate_network(derivation, values)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        source = f"values: {values_path}" if values_path else f"values: seed {seed}"
        _print_table(network, result, source)
    if timing:
        _print_timing(derivation, result, time.perf_counter() - started)


# ----------------------------------------------------------------------- text output
def _number(x: float) -> str:
    return f"{x + 0.0:.6g}"  # + 0.0: no "-0"


def _summary(array: Any) -> str:
    import numpy as np

    flat = np.asarray(array, dtype=float).reshape(-1)
    if flat.size <= 4:
        inside = ", ".join(_number(float(v)) for v in flat)
        return inside if np.ndim(array) == 0 else f"[{inside}]"
    return f"{_number(float(flat.min()))} .. {_number(float(flat.max()))}"


def _rows(result: NetworkResult) -> list[tuple[str, str, str, str, str, str]]:
    from convviz.network import plain_name, shape_text

    network = result.network
    first = network.layers[0]
    rows = [("-", "input", plain_name(first.names["input"]), shape_text(network.input_shape),
             _summary(result.input.value), _summary(result.input.grad))]

    def row(index: str, kind: str, name: str, array: ArrayResult) -> None:
        rows.append((index, kind, name, shape_text(array.value.shape),
                     _summary(array.value), _summary(array.grad)))

    for layer_result in result.layers:
        layer = layer_result.layer
        out_name = plain_name(layer.names.get("output", r"\mathcal{L}"))
        row(str(layer.index), layer.type, out_name, layer_result.output)
        for name, array in layer_result.params.items():
            role = dict(layer.params)[name]
            row("", f"  {name}", plain_name(layer.names[role]), array)
    return rows


def _print_table(path: str, result: NetworkResult, source: str) -> None:
    network = result.network
    click.echo(f"network {path}: {network.describe()}")
    loss = network.loss
    if loss is not None and result.loss is not None:
        target = result.layers[-1].extra.get("target")
        told = ""
        if target is not None and target.shape == ():
            told = f", target class {int(target)} (from 0)"
        click.echo(f"loss L = {_number(result.loss)} ({loss.type}{told}; {source})")
    else:
        click.echo(f"no loss: dL/d(last output) given ({source})")
    header = ("#", "layer", "array", "shape", "value", "grad dL/d(array)")
    rows = [header, *_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        cells = [r[i].ljust(widths[i]) for i in range(5)]
        click.echo("  ".join([*cells, r[5]]).rstrip())


def _print_timing(derivation: NetworkDerivation, result: NetworkResult, total: float) -> None:
    for layer, derive_s, layer_result in zip(
        derivation.network.layers, derivation.seconds, result.layers, strict=True
    ):
        forward_s, backward_s = layer_result.seconds
        click.echo(
            f"timing {layer.label}: derive {derive_s:.3f} s, forward {forward_s:.3f} s, "
            f"backward {backward_s:.3f} s ({layer.spec.products:,} products)",
            err=True,
        )
    click.echo(
        f"timing total: derive {sum(derivation.seconds):.3f} s, evaluate "
        f"{sum(sum(r.seconds) for r in result.layers):.3f} s, wall {total:.3f} s, "
        f"peak RSS {_peak_mb():.0f} MB",
        err=True,
    )


# -------------------------------------------------------------------------- check
def check_network(path: str, seed: int, sample: int | None = None) -> int:
    """``convviz check NETWORK``: identities of every layer, then the chain numerically.

    Returns the exit status (0 only if everything passes).
    """
    from convviz.evaluation import evaluate_network, finite_differences, numeric_forward
    from convviz.identities import verify
    from convviz.network import derive_network, generic_values

    started = time.perf_counter()
    if seed < 0:
        raise OptionError(f"--seed: must be 0 or more for a network, got {seed}")
    net = _load(path)
    values = generic_values(net, seed)
    net = values.network or net
    click.echo(f"network {path}: {net.describe()}")
    derivation = derive_network(net)
    ok = True
    for layer, d in zip(net.layers, derivation.derivations, strict=True):
        small = layer.spec.products <= NETWORK_ENGINE_LIMIT
        for check in verify(d, engines=small):
            status = {True: "PASS", False: "FAIL", None: "SKIP"}[check.holds]
            ok = ok and check.holds is not False
            note = f" ({check.detail})" if check.detail else ""
            click.echo(f"{status}  symbolic  {layer.label}: {check.name}{note}")
    result = evaluate_network(derivation, values)
    click.echo(
        f"point: seed {seed}, in general position (input standard normal, parameters "
        "uniform in +-1/sqrt(fan_in))"
    )
    numeric = numeric_forward(net, values)
    from convviz.evaluation import max_abs_difference

    forward_error = max_abs_difference([r.output.value for r in result.layers], numeric)
    scale = max(1.0, *(float(abs(o).max()) if o.size else 0.0 for o in numeric))
    passed = forward_error <= 1e-9 * scale
    ok = ok and passed
    click.echo(
        f"{'PASS' if passed else 'FAIL'}  numeric   forward: derived expressions vs the "
        f"declarations' numeric forward, every layer: max abs error {forward_error:.2e}"
    )
    from convviz.evaluation import FD_SAMPLE

    for fd in finite_differences(result, values, sample=sample or FD_SAMPLE):
        ok = ok and fd.passed
        cells = (f"{fd.cells} cell{'s' if fd.cells != 1 else ''}" if fd.cells == fd.size
                 else f"{fd.cells:,} of {fd.size:,} cells sampled")
        click.echo(
            f"{'PASS' if fd.passed else 'FAIL'}  numeric   dL/d {fd.where} vs finite "
            f"differences ({cells}): max abs error {fd.max_error:.2e}"
        )
    click.echo(
        f"{'all checks passed' if ok else 'SOME CHECKS FAILED'} "
        f"in {time.perf_counter() - started:.2f} s"
    )
    return 0 if ok else 1


def run_check(path: str, seed: int) -> None:
    """Run :func:`check_network` and exit with its status."""
    sys.exit(check_network(str(Path(path)), seed))


COMMANDS = [evaluate_command]
