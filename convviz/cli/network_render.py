"""``convviz render NET.toml`` and ``convviz storyboard NET.toml``: whole-network clips.

``render`` and ``storyboard`` take an op as their first argument; when it is a network
file instead (a name ending in ``.toml``), :mod:`convviz.cli` hands the command line to
the commands here (see :func:`network_argument`), so ``convviz render forward ...``
is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from convviz.cli.options import OptionError

if TYPE_CHECKING:
    from convviz.network import Network, NetworkValues
    from convviz.rendering.network_plan import NetworkPlan

__all__ = ["COMMANDS", "network_argument", "network_inputs", "network_options",
           "network_render_command", "network_storyboard_command"]


def network_argument(args: Sequence[str]) -> str | None:
    """The network file among a command's arguments (the first ending in ``.toml``)."""
    for arg in args:
        if not arg.startswith("-") and arg.lower().endswith(".toml"):
            return arg
    return None


def network_inputs(network: str, seed: int, values_path: str | None, layers: str | None
                   ) -> tuple[Network, tuple[int, int], NetworkValues]:
    """The network file, its ``--layers`` span and its numbers, as one-line errors."""
    from convviz.cli.network_commands import _load, _values
    from convviz.rendering.network_plan import PlanError, parse_layers

    net = _load(network)
    try:
        span = parse_layers(layers, len(net.layers))
    except PlanError as err:
        raise OptionError(str(err)) from None
    return net, span, _values(net, values_path, seed)


def _plan(network: str, seed: int, values_path: str | None, detail: int, only: str | None,
          layers: str | None, first_da: bool, step_time: float, show: str | None
          ) -> NetworkPlan:
    from convviz.rendering.network_plan import PlanError
    from convviz.rendering.network_scene import prepare_network
    from convviz.rendering.values import ValuesInputError

    net, span, values = network_inputs(network, seed, values_path, layers)
    try:
        return prepare_network(net, values=values, detail=detail, only=only, layers=span,
                               first_da=first_da, step_time=step_time, show=show)
    except (PlanError, ValuesInputError) as err:
        raise OptionError(str(err)) from None


def _progress(label: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    from convviz.cli.render_commands import _progress as progress

    return progress(label)


_COMMON = [
    click.argument("network", type=click.Path(exists=True, dir_okay=False)),
    click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
                 help="Seed of the drawn values (see `convviz evaluate --help`)."),
    click.option("--values", "values_path", type=click.Path(exists=True, dir_okay=False),
                 metavar="FILE.json", help="Numbers for the network (as `convviz evaluate`)."),
    click.option("--show", type=click.Choice(["values", "both", "symbols"]), default=None,
                 help="What the cells show: their numbers (default), name and number, or "
                 "names only."),
    click.option("--detail", default=2, show_default=True, type=click.IntRange(min=0),
                 help="Cells per layer phase shown step by step with their equation; the "
                 "rest fill in one quick sweep."),
    click.option("--only", type=click.Choice(["forward", "backward"]), default=None,
                 help="Only the forward or only the backward pass."),
    click.option("--layers", default=None, metavar="A-B",
                 help="Only these [[layer]] entries (1-based, e.g. 2-4 or 3)."),
    click.option("--first-da", is_flag=True,
                 help="Also show the first layer's dL/da (skipped by default)."),
    click.option("--step-time", type=click.FloatRange(min=0.05), default=1.0,
                 show_default=True, help="Seconds per detailed step."),
    click.option("--tex", type=click.Choice(["auto", "latex", "none"]), default="auto",
                 show_default=True, help="Typesetting: latex, none (Typst) or auto."),
    click.option("--theme", type=click.Choice(["dark", "light"]), default="dark",
                 show_default=True),
    click.option("--palette", type=click.Choice(["article", "colorblind"]), default="article",
                 show_default=True),
]


def network_options(func: Any) -> Any:
    """The arguments every network form takes: the file, its numbers, phases and look."""
    for decorator in reversed(_COMMON):
        func = decorator(func)
    return func


@click.command("render")
@network_options
@click.option("-q", "--quality", type=click.Choice(["l", "m", "h", "k"]), default="l",
              show_default=True, help="l 480p15, m 720p30, h 1080p60, k 2160p60.")
@click.option("--format", "fmt", type=click.Choice(["mp4", "gif", "png"]), default=None,
              help="Output format (default: from -o, else mp4); png: the last frame.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output file. Default: media/network_<name>.<format>.")
@click.option("--timeline", type=click.Path(path_type=Path), default=None,
              help="Also write the timeline JSON (phases, steps, pixel boxes).")
@click.option("--chapters", type=click.Path(path_type=Path), default=None,
              help="Also write WebVTT chapters: one per layer phase, cells inside.")
@click.option("--slides", is_flag=True,
              help="Also write a manim-slides folder (one slide per layer phase) to "
              "'slides' beside the video; turn it into one offline HTML presentation "
              "with: convviz slides --folder media/slides NetworkClip deck.html")
def network_render_command(
    network: str, seed: int, values_path: str | None, show: str | None, detail: int,
    only: str | None, layers: str | None, first_da: bool, step_time: float, tex: str,
    theme: str, palette: str, quality: str, fmt: str | None, output: Path | None,
    timeline: Path | None, chapters: Path | None, slides: bool,
) -> None:
    """Render a whole network: forward layer by layer to the loss, then backward.

    NETWORK is a TOML network file (see `convviz evaluate --help`). A strip across the
    top shows every array, the current layer outlined; below it each layer phase is
    drawn as the single-layer clip of that op: its first --detail cells step by step,
    the rest in one sweep.

    \b
    Examples:
      convviz render examples/tiny_cnn.toml
      convviz render examples/tiny_cnn.toml --only backward --layers 4-6 --detail 1
      convviz render examples/tiny_cnn.toml -o cnn.mp4 --timeline cnn.json --chapters cnn.vtt
    """
    suffix = output.suffix.lstrip(".").lower() if output is not None and output.suffix else ""
    chosen = fmt or suffix or "mp4"
    if suffix and fmt and suffix != fmt:
        raise OptionError(f"-o: {output} does not end in .{fmt}")
    if chosen not in ("mp4", "gif", "png"):
        raise OptionError(f"-o: a network clip is .mp4, .gif or .png, not .{chosen}")
    if slides and chosen != "mp4":
        raise OptionError(f"--slides: needs the mp4 format, not {chosen}")
    plan = _plan(network, seed, values_path, detail, only, layers, first_da, step_time,
                 show)
    target = output or Path("media") / f"network_{Path(network).stem}.{chosen}"

    from convviz.rendering.latex import TypesetError
    from convviz.rendering.layout import LayoutError
    from convviz.rendering.network_scene import render_network
    from convviz.rendering.output import RenderError
    from convviz.rendering.theme import theme_for

    update, close = _progress(f"network {Path(network).name}")
    try:
        result = render_network(
            plan, output=target, quality=quality, fmt=chosen, theme=theme_for(theme, palette),
            tex=tex, timeline=timeline, chapters=chapters,
            slides=target.parent / "slides" if slides else None, on_step=update,
        )
    except (RenderError, LayoutError) as err:
        raise OptionError(str(err)) from None
    except TypesetError as err:
        raise click.ClickException(str(err)) from None
    finally:
        close()
    click.echo(str(result.video))


@click.command("storyboard")
@network_options
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="FILE.png, FILE.pdf or FILE.svg. Default: media/storyboard_network_<name>.png.")
@click.option("--columns", type=click.IntRange(1, 12), default=None,
              help="Frames per row (default: by count).")
def network_storyboard_command(
    network: str, seed: int, values_path: str | None, show: str | None, detail: int,
    only: str | None, layers: str | None, first_da: bool, step_time: float, tex: str,
    theme: str, palette: str, output: Path | None, columns: int | None,
) -> None:
    """Write one printable sheet with a network clip's key frames: one per layer phase.

    \b
    Examples:
      convviz storyboard examples/tiny_cnn.toml -o cnn.pdf
      convviz storyboard examples/tiny_cnn.toml --only backward --theme light
    """
    target = output or Path("media") / f"storyboard_network_{Path(network).stem}.png"
    if target.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise OptionError(f"-o: a storyboard is .png, .pdf or .svg, not {target.suffix or target}")
    plan = _plan(network, seed, values_path, detail, only, layers, first_da, step_time,
                 show)

    from convviz.rendering.api import resolve_tex
    from convviz.rendering.layout import LayoutError
    from convviz.rendering.network_scene import capture_network_frames
    from convviz.rendering.output import RenderError
    from convviz.rendering.storyboard import write_storyboard
    from convviz.rendering.theme import theme_for
    from convviz.rendering.typeset import TypesetError

    chosen = theme_for(theme, palette)
    try:
        frames = capture_network_frames(plan, theme=chosen, tex=resolve_tex(tex))
        written = write_storyboard(target, frames, title=f"{Path(network).name}: "
                                   f"{plan.network.describe()}", theme=chosen, columns=columns)
    except (RenderError, LayoutError) as err:
        raise OptionError(str(err)) from None
    except TypesetError as err:
        raise click.ClickException(str(err)) from None
    click.echo(str(written))


#: The network forms, by the name of the command they stand in for.
COMMANDS: dict[str, click.Command] = {
    "render": network_render_command,
    "storyboard": network_storyboard_command,
}
