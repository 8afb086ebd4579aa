"""The ``convviz`` command line: thin over the library.

Errors in what the user typed are printed as one line (``Error: --stride: must be at
least 1, got '0'``) with exit status 2, never as a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from convviz import __version__

__all__ = ["main"]


class _Group(click.Group):
    """A group that reports usage errors on one line and exits 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)
        except click.ClickException as err:
            message = " ".join(err.format_message().split())
            if isinstance(err, click.UsageError) and err.ctx is not None:
                message = f"{err.ctx.command_path}: {message}"
            click.echo(f"Error: {message}", err=True)
            sys.exit(err.exit_code)
        sys.exit(result if isinstance(result, int) else 0)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """``render NET.toml`` and ``storyboard NET.toml`` go to the network commands.

        ``convviz render forward ...`` takes a layer's op; when one of the arguments
        after ``render`` (or ``storyboard``, or ``page``) is a network file (a name ending in
        ``.toml``), the whole command line goes to the network form instead
        (:mod:`convviz.cli.network_render`).
        """
        if args and args[0] in ("render", "storyboard", "page"):
            from convviz.cli import network_render

            if network_render.network_argument(args[1:]) is not None:
                if args[0] == "page":
                    from convviz.cli import page_commands

                    return args[0], page_commands.COMMANDS["network"], args[1:]
                return args[0], network_render.COMMANDS[args[0]], args[1:]
        return super().resolve_command(ctx, args)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convviz")
def main() -> None:
    """Derive and animate the layers of a CNN, forward and backward.

    \b
    Examples:
      convviz derive forward --input 6x6 --kernel 3x3
      convviz highlights dw --stride 2 --json
      convviz check --input 3x8x8 --filters 2 --padding 1
      convviz derive da --type maxpool2d --input 4x4 --kernel 2
      convviz types
      convviz render examples/tiny_cnn.toml --timeline cnn.json
      convviz page forward -o forward.html
      convviz slides --folder media/slides ForwardConvolution forward.html
    """


def _register() -> None:
    from convviz.cli import core_commands

    main.add_command(core_commands.derive_command)
    main.add_command(core_commands.highlights_command)
    main.add_command(core_commands.check_command)
    main.add_command(core_commands.types_command)
    from convviz.cli import render_commands

    for command in render_commands.COMMANDS:
        if command.name == "render":
            command.epilog = (
                "A network file in place of OP (convviz render NET.toml ...) renders the "
                "whole network, forward and backward: see convviz render NET.toml --help."
            )
        main.add_command(command)
    from convviz.cli import storyboard_commands

    for command in storyboard_commands.COMMANDS:
        main.add_command(command)
    from convviz.cli import network_commands

    for command in network_commands.COMMANDS:
        main.add_command(command)
    from convviz.cli import page_commands

    page = page_commands.COMMANDS["layer"]
    page.epilog = ("A network file in place of OP (convviz page NET.toml ...) makes the page of "
                   "the whole network's clip: see convviz page NET.toml --help.")
    main.add_command(page)
    from convviz.cli import slides_commands

    for command in slides_commands.COMMANDS:
        main.add_command(command)
    from convviz.cli import batch_commands

    for command in batch_commands.COMMANDS:
        main.add_command(command)


_register()
