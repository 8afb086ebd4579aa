"""``convviz page``: one self-contained, interactive HTML page per clip.

``convviz page OP [layer options] -o clip.html`` renders the clip and writes the page;
``convviz page NET.toml -o net.html`` does the same for a whole network (:mod:`convviz.cli`
hands a command line with a ``.toml`` argument to :data:`COMMANDS` ``["network"]``).
With ``--timeline T.json`` the page is made from an existing render instead: the video is
the timeline's (or ``--video``'s), and the options must be those it was rendered with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from convviz.cli.options import OptionError, check_op, layer_options
from convviz.cli.render_commands import RenderFailed, numbers_options, resolve_numbers

__all__ = ["COMMANDS", "layer_page_command", "network_page_command"]


def _run(make: Callable[[], Path]) -> None:
    """Write a page; bad input as one line (exit 2), a missing program as exit 1."""
    from convviz.rendering.latex import TypesetError
    from convviz.rendering.layout import LayoutError
    from convviz.rendering.network_plan import PlanError
    from convviz.rendering.output import RenderError
    from convviz.rendering.values import ValuesInputError
    from convviz.web.embed import PageError

    try:
        written = make()
    except (PageError, RenderError, LayoutError, PlanError, ValuesInputError) as err:
        raise OptionError(str(err)) from None
    except TypesetError as err:
        raise RenderFailed(str(err)) from None
    click.echo(str(written))


_PAGE_OPTIONS = [
    click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
                 help="The page (.html). Default: media/<clip>.html."),
    click.option("--timeline", type=click.Path(path_type=Path), default=None,
                 help="Make the page from this existing render's timeline (and its video) "
                 "instead of rendering; give the options it was rendered with."),
    click.option("--video", type=click.Path(path_type=Path), default=None,
                 help="With --timeline: the video, when it is not where the timeline says."),
    click.option("-q", "--quality", type=click.Choice(["l", "m", "h", "k"]), default="l",
                 show_default=True, help="l 480p15, m 720p30, h 1080p60, k 2160p60."),
    click.option("--tex", type=click.Choice(["auto", "latex", "none"]), default="auto",
                 show_default=True, help="Typesetting of clip and formulas: latex, none "
                 "(Typst) or auto."),
    click.option("--theme", type=click.Choice(["dark", "light"]), default="dark",
                 show_default=True, help="The clip's colours and the page's."),
    click.option("--palette", type=click.Choice(["article", "colorblind"]),
                 default="article", show_default=True),
]


def _page_options(func: Any) -> Any:
    for decorator in reversed(_PAGE_OPTIONS):
        func = decorator(func)
    return func


@click.command("page")
@click.argument("op")
@layer_options
@numbers_options
@_page_options
@click.option("--step-time", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds per step.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Only the first N steps.")
def layer_page_command(
    op: str, spec: Any, seed: int | None, values_file: Path | None, show: str | None,
    output: Path | None, timeline: Path | None, video: Path | None, quality: str, tex: str,
    theme: str, palette: str, step_time: float, max_steps: int | None,
) -> None:
    """Write one HTML page of the clip of OP: the video, and every cell clickable.

    The page is one file that works offline: the video plays with its steps as
    chapters; hovering a cell names it, clicking shows its formula (typeset) with its
    number and gradient (with --seed/--values) and jumps to its step. Keys: left/right
    step, space play/pause.

    \b
    Examples:
      convviz page forward -o forward.html
      convviz page da --type maxpool2d --seed 0 --theme light -o pool.html
      convviz render dw --timeline dw.json -o dw.mp4 && convviz page dw --timeline dw.json
    """
    from convviz.rendering.api import default_output
    from convviz.web.api import write_page

    op = check_op(spec, op)
    numbers, show = resolve_numbers(spec, seed, values_file, show)
    if numbers is not None:
        spec = numbers.spec
    target = output or default_output(spec, op, "mp4").with_suffix(".html")
    _run(lambda: write_page(spec, op, target, timeline=timeline, video=video,
                            quality=quality, tex=tex, theme=theme, palette=palette,
                            step_time=step_time, max_steps=max_steps, values=numbers,
                            show=show))


@click.command("page")
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of the drawn values (see `convviz evaluate --help`).")
@click.option("--values", "values_path", type=click.Path(dir_okay=False), default=None,
              metavar="FILE.json", help="Numbers for the network (as `convviz evaluate`).")
@click.option("--show", type=click.Choice(["values", "both", "symbols"]), default=None,
              help="What the cells show: numbers (default), name and number, or names.")
@click.option("--detail", default=2, show_default=True, type=click.IntRange(min=0),
              help="Cells per layer phase shown step by step; the rest in one sweep.")
@click.option("--only", type=click.Choice(["forward", "backward"]), default=None,
              help="Only the forward or only the backward pass.")
@click.option("--layers", default=None, metavar="A-B",
              help="Only these [[layer]] entries (1-based, e.g. 2-4 or 3).")
@click.option("--first-da", is_flag=True, help="Also show the first layer's dL/da.")
@click.option("--step-time", type=click.FloatRange(min=0.05), default=1.0,
              show_default=True, help="Seconds per detailed step.")
@_page_options
def network_page_command(
    network: str, seed: int, values_path: str | None, show: str | None, detail: int,
    only: str | None, layers: str | None, first_da: bool, step_time: float,
    output: Path | None, timeline: Path | None, video: Path | None, quality: str, tex: str,
    theme: str, palette: str,
) -> None:
    """Write one HTML page of a whole network's clip, with the layer strip.

    As `convviz page OP`, and a strip of the layers: click one to jump to its forward
    or backward phase. Clicking a cell jumps into its step and shows its formula, its
    value and its gradient.

    \b
    Examples:
      convviz page examples/tiny_cnn.toml -o net.html
      convviz page examples/xor_mlp.toml --values examples/xor_mlp.values.json
      convviz render examples/tiny_cnn.toml --timeline net.json -o net.mp4
      convviz page examples/tiny_cnn.toml --timeline net.json -o net.html
    """
    from convviz.cli.network_commands import _load, _values
    from convviz.rendering.network_plan import PlanError, parse_layers
    from convviz.web.api import write_network_page

    if not Path(network).is_file():
        raise OptionError(f"NETWORK: {network}: no such file")
    if values_path is not None and not Path(values_path).is_file():
        raise OptionError(f"--values: {values_path}: no such file")
    target = output or Path("media") / f"network_{Path(network).stem}.html"
    net = _load(network)
    try:
        span = parse_layers(layers, len(net.layers))
    except PlanError as err:
        raise OptionError(str(err)) from None
    numbers = _values(net, values_path, seed)
    _run(lambda: write_network_page(
        net, target, values=numbers, detail=detail, only=only, layers=span,
        first_da=first_da, step_time=step_time, show=show, timeline=timeline, video=video,
        quality=quality, tex=tex, theme=theme, palette=palette, title=Path(network).name))


#: ``page`` for a layer's op, and the form for a network file.
COMMANDS: dict[str, click.Command] = {"layer": layer_page_command,
                                      "network": network_page_command}
