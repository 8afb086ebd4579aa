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

from convviz.cli.network_render import network_inputs, network_options
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


_OUTPUT_OPTIONS = [
    click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
                 help="The page (.html). Default: media/<clip>.html."),
    click.option("--timeline", type=click.Path(path_type=Path), default=None,
                 help="Make the page from this existing render's timeline (and its video) "
                 "instead of rendering; give the options it was rendered with."),
    click.option("--video", type=click.Path(path_type=Path), default=None,
                 help="With --timeline: the video, when it is not where the timeline says."),
    click.option("-q", "--quality", type=click.Choice(["l", "m", "h", "k"]), default="l",
                 show_default=True, help="l 480p15, m 720p30, h 1080p60, k 2160p60."),
]
_LOOK_OPTIONS = [
    click.option("--tex", type=click.Choice(["auto", "latex", "none"]), default="auto",
                 show_default=True, help="Typesetting of clip and formulas: latex, none "
                 "(Typst) or auto."),
    click.option("--theme", type=click.Choice(["dark", "light"]), default="dark",
                 show_default=True, help="The clip's colours and the page's."),
    click.option("--palette", type=click.Choice(["article", "colorblind"]),
                 default="article", show_default=True),
]


def _options(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def apply(func: Any) -> Any:
        for decorator in reversed(options):
            func = decorator(func)
        return func

    return apply


@click.command("page")
@click.argument("op")
@layer_options
@numbers_options
@_options(_OUTPUT_OPTIONS + _LOOK_OPTIONS)
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
@network_options
@_options(_OUTPUT_OPTIONS)
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
    from convviz.web.api import write_network_page

    target = output or Path("media") / f"network_{Path(network).stem}.html"
    net, span, numbers = network_inputs(network, seed, values_path, layers)
    _run(lambda: write_network_page(
        net, target, values=numbers, detail=detail, only=only, layers=span,
        first_da=first_da, step_time=step_time, show=show, timeline=timeline, video=video,
        quality=quality, tex=tex, theme=theme, palette=palette, title=Path(network).name))


#: ``page`` for a layer's op, and the form for a network file.
COMMANDS: dict[str, click.Command] = {"layer": layer_page_command,
                                      "network": network_page_command}
