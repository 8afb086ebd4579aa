"""``derive``, ``highlights`` and ``check``: the commands that need no rendering."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from convviz.cli.options import check_op, layer_options
from convviz.layers import layer_type, types

if TYPE_CHECKING:
    from convviz.highlights import Cell

__all__ = ["check_command", "derive_command", "highlights_command", "types_command"]


def _cell_text(symbol: str, cell: Cell) -> str:
    return f"{symbol}[{', '.join(str(i) for i in cell.index)}]" if cell.index else symbol


def _cell_latex(label: str, cell: Cell) -> str:
    if not cell.index:
        return label
    return f"{{{label}}}_{{{','.join(str(i) for i in cell.index)}}}"


@click.command("derive")
@click.argument("op")
@layer_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "latex", "json"]),
    default="text",
    show_default=True,
    help="text: one line per cell; latex: one equation per cell; json: machine-readable.",
)
@click.option(
    "--engine",
    type=click.Choice(["product-rule", "sympy"]),
    default="product-rule",
    show_default=True,
    help="How chain-rule terms are differentiated (sympy: sympy.diff on whole cells).",
)
def derive_command(op: str, spec: Any, fmt: str, engine: str) -> None:
    """Print the expression of every cell that OP computes.

    OP is one of the layer type's ops: for conv2d forward (z), dw (dL/dW), da (dL/da)
    or db (dL/db); `convviz types` lists every type's ops.

    \b
    Example:
      convviz derive dw --input 5x5 --kernel 2x2 --format latex
    """
    check_op(spec, op)
    import numpy as np
    import sympy

    from convviz.derivation import derive
    from convviz.highlights import Cell

    target = layer_type(spec).op(op).target
    derivation = derive(spec, engine=engine, only=(target,))  # type: ignore[arg-type]
    info = derivation.array_info(target)
    arrays = derivation.arrays_for(op)
    cells = []
    for pos, expr in np.ndenumerate(derivation.targets(op)):
        cells.append((Cell(info.role, tuple(i + 1 for i in pos)), expr))
    if fmt == "json":
        doc = {
            "op": op,
            "arrays": {role: a.to_json() for role, a in arrays.items()},
            "cells": [
                {"target": c.to_json(), "expr": sympy.srepr(e), "latex": sympy.latex(e)}
                for c, e in cells
            ],
        }
        click.echo(json.dumps(doc))  # no indent: the C encoder, 10x faster
    elif fmt == "latex":
        for cell, expr in cells:
            click.echo(f"{_cell_latex(info.label, cell)} = {sympy.latex(expr)}")
    else:
        for cell, expr in cells:
            click.echo(f"{_cell_text(info.symbol, cell)} = {sympy.sstr(expr)}")


@click.command("highlights")
@click.argument("op")
@layer_options
@click.option("--json", "as_json", is_flag=True, help="Print the highlight map as JSON.")
def highlights_command(op: str, spec: Any, as_json: bool) -> None:
    """Print which cells combine to compute each cell of OP's result.

    Steps follow the target array in row-major order.

    \b
    Example:
      convviz highlights forward --input 6x6 --kernel 3x3 --json
    """
    check_op(spec, op)
    from convviz.derivation import derive
    from convviz.reflection import highlight_map

    hmap = highlight_map(derive(spec, only=(layer_type(spec).op(op).target,)), op, expressions=0)
    if as_json:
        click.echo(json.dumps(hmap.to_json()))  # no indent: the C encoder
        return
    for step in hmap.steps:
        parts = []
        for role, indices in step.highlights.items():
            cells = " ".join("(" + ",".join(map(str, i)) + ")" if i else "()" for i in indices)
            parts.append(f"{role}: {cells}")
        target = ",".join(map(str, step.target.index))
        click.echo(f"{step.target.role}[{target}] <- " + " | ".join(parts))


@click.command("check")
@click.argument("network", required=False, type=click.Path(exists=True, dir_okay=False))
@layer_options
@click.option("--seed", default=0, show_default=True, help="Seed of the random test point.")
def check_command(network: str | None, spec: Any, seed: int) -> None:
    """Verify the derivation: symbolic identities and numeric cross-checks.

    Without NETWORK, checks the layer the options describe. With a NETWORK file (TOML,
    as for `convviz evaluate`; layer options are then an error), checks every layer's
    identities and the whole chain: symbolic gradients of every parameter and input cell
    (a spread sample of large arrays) against finite differences of the loss, at a point
    in general position drawn from --seed (input standard normal, parameters uniform in
    +-1/sqrt(fan_in)). Exits 0 only if everything passes.

    \b
    Examples:
      convviz check --input 2x7x7 --kernel 3x3 --stride 2 --padding 1 --filters 2
      convviz check examples/tiny_cnn.toml
    """
    if network is not None:
        from convviz.cli.network_commands import run_check
        from convviz.cli.options import OptionError

        ctx = click.get_current_context()
        given = [
            p.opts[0] for p in ctx.command.params
            if (p.name or "").startswith("layer_") or p.name == "type_name"
            if ctx.get_parameter_source(p.name or "") is click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise OptionError(
                f"{given[0]}: layer options cannot be combined with a NETWORK file "
                "(the file gives every layer's options)"
            )
        run_check(network, seed)
        return
    from convviz.derivation import derive
    from convviz.identities import verify
    from convviz.numeric import cross_check

    started = time.perf_counter()
    derivation = derive(spec)
    output = "x".join(map(str, spec.display_shape("output"))) or "scalar"
    click.echo(f"layer: {layer_type(spec).name}, {spec.describe()}; output {output}")
    ok = True
    for check in verify(derivation):
        status = {True: "PASS", False: "FAIL", None: "SKIP"}[check.holds]
        ok = ok and check.holds is not False
        note = f" ({check.detail})" if check.detail else ""
        click.echo(f"{status}  symbolic  {check.name}{note}")
        if check.latex:
            click.echo(f"          {check.latex}")
    for numeric in cross_check(derivation, seed=seed):
        status = "PASS" if numeric.passed else "FAIL"
        ok = ok and numeric.passed
        click.echo(f"{status}  numeric   {numeric.name}: max abs error {numeric.max_error:.2e}")
    click.echo(
        f"{'all checks passed' if ok else 'SOME CHECKS FAILED'} "
        f"in {time.perf_counter() - started:.2f} s"
    )
    sys.exit(0 if ok else 1)


@click.command("types")
def types_command() -> None:
    """List the layer types, their options and their ops.

    \b
    Example:
      convviz types
    """
    for name, declared in types().items():
        click.echo(f"{name}  ({declared.torch_name}): {declared.summary}")
        options = []
        for option in declared.options:
            default = "" if option.flag or option.default is None else f" {option.default}"
            options.append(f"{option.cli}{default}")
        click.echo("  options: --type " + name + ", " + ", ".join(options))
        ops = ", ".join(
            f"{op.name}" + (f" ({op.summary})" if op.summary else "") for op in declared.ops
        )
        click.echo(f"  ops:     {ops}")
