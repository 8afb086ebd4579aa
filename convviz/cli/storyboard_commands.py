"""``convviz storyboard``: a printable sheet of a clip's key frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from convviz.cli.options import OptionError, check_op, layer_options
from convviz.cli.render_commands import numbers_options, resolve_numbers
from convviz.layers import layer_type

__all__ = ["COMMANDS", "storyboard_command"]

_TITLES = {
    "forward": "Forward pass",
    "dw": "Weight gradient dL/dW",
    "da": "Input gradient dL/da",
    "db": "Bias gradient dL/db",
    "da-full": "dL/da as a full correlation",
}


def _title(spec: Any, op: str) -> str:
    if spec.TYPE == "conv2d":
        return _TITLES[op]
    declared = layer_type(spec)
    return f"{declared.torch_name} {op}"


@click.command("storyboard")
@click.argument("op")
@layer_options
@numbers_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="FILE.png, FILE.pdf or FILE.svg. Default: media/storyboard_<op>_<layer>.png.",
)
@click.option("--every", default=1, show_default=True, help="Keep every N-th step (and the last).")
@click.option("--columns", type=int, default=None, help="Frames per row (default: by count).")
@click.option("--max-steps", type=int, default=None, help="Only the first N steps.")
@click.option("--theme", type=click.Choice(["dark", "light"]), default="dark", show_default=True)
@click.option(
    "--palette", type=click.Choice(["article", "colorblind"]), default="article",
    show_default=True,
)
@click.option(
    "--tex", type=click.Choice(["auto", "latex", "none"]), default="auto", show_default=True,
    help="Typesetting: latex, none (Typst, no TeX needed) or auto.",
)
def storyboard_command(
    op: str,
    spec: Any,
    output: Path | None,
    every: int,
    columns: int | None,
    max_steps: int | None,
    theme: str,
    palette: str,
    tex: str,
    seed: int | None,
    values_file: Path | None,
    show: str | None,
) -> None:
    """Write one printable sheet with the key frames of OP's clip, for handouts.

    Each frame is labelled with the cell it computes.

    \b
    Examples:
      convviz storyboard forward -o forward.pdf
      convviz storyboard dw --input 8x8 --every 4 --theme light -o dw.svg
      convviz storyboard forward --type maxpool2d --seed 3 -o pool.png
    """
    check_op(spec, op)
    numbers, show = resolve_numbers(spec, seed, values_file, show)
    if numbers is not None:
        spec = numbers.spec
    kind = "" if spec.TYPE == "conv2d" else f"{spec.TYPE}_"
    target = output or Path("media") / f"storyboard_{op}_{kind}{spec.slug()}.png"
    if target.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise OptionError(f"-o: a storyboard is .png, .pdf or .svg, not {target.suffix or target}")
    if every < 1:
        raise OptionError(f"--every: must be at least 1, got {every}")
    if columns is not None and not 1 <= columns <= 12:
        raise OptionError(f"--columns: must be between 1 and 12, got {columns}")
    if max_steps is not None and max_steps < 1:
        raise OptionError(f"--max-steps: must be at least 1, got {max_steps}")

    from convviz.rendering.api import resolve_tex
    from convviz.rendering.layout import LayoutError
    from convviz.rendering.output import RenderError
    from convviz.rendering.storyboard import capture_frames, write_storyboard
    from convviz.rendering.theme import theme_for
    from convviz.rendering.typeset import TypesetError

    chosen = theme_for(theme, palette)
    try:
        frames = capture_frames(
            spec, op, every=every, theme=chosen, tex=resolve_tex(tex), max_steps=max_steps,
            values=numbers, show=show,
        )
        written = write_storyboard(
            target, frames, title=f"{_title(spec, op)}: {spec.describe()}", theme=chosen,
            columns=columns,
        )
    except (RenderError, LayoutError) as err:
        raise OptionError(str(err)) from None
    except TypesetError as err:
        raise click.ClickException(str(err)) from None
    click.echo(str(written))


COMMANDS: list[click.Command] = [storyboard_command]
