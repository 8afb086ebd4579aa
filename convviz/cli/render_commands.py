"""``convviz render``: the command that makes videos (manim is imported only when it runs)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from convviz.cli.options import OptionError, check_op, layer_options
from convviz.config import ConfigError, SettingError, check_setting, find_defaults
from convviz.layers import layer_type

__all__ = ["COMMANDS", "clip_ops", "numbers_options", "render_command", "resolve_numbers"]


def clip_ops(spec: Any) -> list[str]:
    """The clips ``all`` renders for a layer: every op the spec has (no db without bias)."""
    declared = layer_type(spec)
    return [op.name for op in declared.ops if not op.needs or getattr(spec, op.needs)]


class RenderFailed(click.ClickException):
    """A render could not be done (missing system piece, manim failure): exit 1."""

    exit_code = 1


def _progress(label: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A step counter on a terminal (stderr), nothing otherwise."""
    if not sys.stderr.isatty():
        return (lambda done, total: None), (lambda: None)
    state: dict[str, Any] = {"bar": None}  # click's ProgressBar class is private

    def update(done: int, total: int) -> None:
        bar = state["bar"]
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr)
            bar.__enter__()
            state["bar"] = bar
        bar.update(done - bar.pos)

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)

    return update, close


def numbers_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--seed``, ``--values`` and ``--show``: draw a clip at numbers."""
    options = [
        click.option(
            "--seed",
            type=click.IntRange(min=0),
            default=None,
            help="Draw the clip at numbers from this seed (inputs 0..3, weights and biases "
            "multiples of 0.25 in [-0.5, 0.5], grad_output multiples of 0.25 in [-1, 1]).",
        ),
        click.option(
            "--values",
            "values_file",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            metavar="FILE.json",
            help="Draw the clip at these numbers: a values file as for networks, for the "
            "one layer ({\"input\": ..., \"layers\": [{\"weight\": ..., \"bias\": ...}], "
            "\"grad_output\": ...}); what it leaves out comes from --seed.",
        ),
        click.option(
            "--show",
            type=click.Choice(["symbols", "values", "both"]),
            default=None,
            help="What the cells show: symbols, values, or both (the name above the "
            "number). [default: values with --seed/--values, else symbols]",
        ),
    ]
    for decorator in reversed(options):
        func = decorator(func)
    return func


def resolve_numbers(
    spec: Any, seed: int | None, values_file: Path | None, show: str | None
) -> tuple[Any, str]:
    """The clip's numbers (a LayerValues, or None) and show mode, as an OptionError."""
    from convviz.rendering.values import ValuesInputError, layer_values, resolve_show

    try:
        numbers = layer_values(
            spec, seed=seed, values=values_file,
            where=f"--values {values_file}" if values_file is not None else "--seed",
        )
        return numbers, resolve_show(show, numbers is not None, where="--show",
                                     hint="give --seed N or --values FILE.json")
    except ValuesInputError as err:
        raise OptionError(str(err)) from None


@click.command("render")
@click.argument("op")
@layer_options
@numbers_options
@click.option(
    "-q",
    "--quality",
    type=click.Choice(["l", "m", "h", "k"]),
    default=None,
    help="As in manim: l 480p15, m 720p30, h 1080p60, k 2160p60. [default: l]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mp4", "gif", "webm", "mov", "png"]),
    default=None,
    help="Output format (default: from -o, else the project's formats, else mp4). "
    "png saves the last frame.",
)
@click.option("--transparent", is_flag=True, help="Transparent background (webm, mov, png).")
@click.option("--fps", type=int, default=None, help="Frame rate instead of the quality's.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file (a directory for 'all'). Default: media/<op>_<layer>.<format>, "
    "or the project's output_dir.",
)
@click.option(
    "--timeline",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the clip's timeline JSON (cell boxes in pixels, step times).",
)
@click.option(
    "--chapters",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write WebVTT chapters, one per step.",
)
@click.option("--step-time", type=float, default=None, help="Seconds per step. [default: 1]")
@click.option("--max-steps", type=int, default=None, help="Animate only the first N steps.")
@click.option(
    "--tex",
    type=click.Choice(["auto", "latex", "none"]),
    default="auto",
    show_default=True,
    help="Typesetting: latex (needs TeX), none (Typst, no TeX needed), auto (latex if "
    "installed).",
)
@click.option(
    "--theme",
    type=click.Choice(["dark", "light"]),
    default=None,
    help="dark (the article's look) or light (white slides, paper). [default: dark]",
)
@click.option(
    "--palette",
    type=click.Choice(["article", "colorblind"]),
    default=None,
    help="Highlight colours: article (teal/yellow) or colorblind (Okabe-Ito blue/orange). "
    "[default: article]",
)
@click.option(
    "--slides",
    is_flag=True,
    help="Also write a manim-slides presentation (one slide per step) to a 'slides' "
    "folder beside the video; turn it into one offline HTML presentation with: convviz "
    "slides --folder media/slides ForwardConvolution forward.html",
)
def render_command(
    op: str,
    spec: Any,
    quality: str | None,
    fmt: str | None,
    transparent: bool,
    fps: int | None,
    output: Path | None,
    timeline: Path | None,
    chapters: Path | None,
    step_time: float | None,
    max_steps: int | None,
    tex: str,
    theme: str | None,
    palette: str | None,
    slides: bool,
    seed: int | None,
    values_file: Path | None,
    show: str | None,
) -> None:
    """Render the animation of OP to a video.

    OP is one of the layer type's ops or all: for conv2d forward, dw, da, db or da-full
    (dL/da as a full correlation); `convviz types` lists every type's ops.

    \b
    Examples:
      convviz render forward
      convviz render dw --input 5x5 --stride 2 -q h -o dw.mp4 --timeline dw.json
      convviz render all --input 3x6x6 --filters 2 -o lecture/
      convviz render forward --seed 0 --show both
      convviz render da --type maxpool2d --values pool.json

    Options not given come from the project's defaults, if any: the first convviz.toml,
    or pyproject.toml with a [tool.convviz] table, in this directory or above it.
    """
    try:
        project = find_defaults(Path.cwd())
    except ConfigError as err:
        raise OptionError(str(err)) from None
    quality = quality or project.quality or "l"
    theme = theme or project.theme or "dark"
    palette = palette or project.palette or "article"
    step_time = step_time if step_time is not None else project.step_time or 1.0
    fps = fps if fps is not None else project.fps
    media = project.output_dir or Path("media")
    ops = clip_ops(spec) if op == "all" else [check_op(spec, op)]
    numbers, show = resolve_numbers(spec, seed, values_file, show)
    if numbers is not None:
        spec = numbers.spec
    if op == "all" and output is not None and output.suffix:
        raise OptionError("-o: with 'all', give a directory, not a file name")
    chosen = fmt or (output.suffix.lstrip(".").lower() if output and output.suffix else "mp4")
    if output is not None and output.suffix and fmt and output.suffix.lstrip(".") != fmt:
        raise OptionError(f"-o: {output} does not end in .{fmt}")
    if chosen not in ("mp4", "gif", "webm", "mov", "png"):
        raise OptionError(f"-o: unsupported format .{chosen} (mp4, gif, webm, mov, png)")
    formats = [chosen] if fmt or (output and output.suffix) else list(project.formats or [chosen])
    for chosen in formats:
        if slides and chosen != "mp4":
            raise OptionError(f"--slides: needs the mp4 format, not {chosen}")
        if transparent and chosen not in ("webm", "mov", "png"):
            raise OptionError(f"--transparent: needs webm, mov or png, not {chosen}")
    for key, value in (("fps", fps), ("step_time", step_time), ("max_steps", max_steps)):
        if value is not None:
            try:
                check_setting(key, value)
            except SettingError as err:
                raise OptionError(f"--{key.replace('_', '-')}: {err.rule}") from None

    from convviz.rendering.api import default_output, render
    from convviz.rendering.latex import TypesetError
    from convviz.rendering.layout import LayoutError
    from convviz.rendering.output import RenderError
    from convviz.rendering.theme import theme_for

    for clip, chosen in ((c, f) for c in ops for f in formats):
        first = chosen == formats[0]  # timeline and chapters come with the first format
        if op == "all":
            folder = output or media
            target = default_output(spec, clip, chosen, folder)
            tl = timeline / f"{target.stem}.timeline.json" if timeline and first else None
            ch = chapters / f"{target.stem}.vtt" if chapters and first else None
        else:
            target = output or default_output(spec, clip, chosen, media)
            tl, ch = (timeline, chapters) if first else (None, None)
        update, close = _progress(f"{clip} {spec.describe()}")
        try:
            written = render(
                spec,
                clip,
                quality=quality,
                output=target,
                fmt=chosen,
                transparent=transparent,
                fps=fps,
                timeline=tl,
                chapters=ch,
                step_time=step_time,
                max_steps=max_steps,
                on_step=update,
                tex=tex,
                theme=theme_for(theme, palette),
                slides=target.parent / "slides" if slides else None,
                values=numbers,
                show=show,
            )
        except (RenderError, LayoutError) as err:
            raise OptionError(str(err)) from None
        except TypesetError as err:
            raise RenderFailed(str(err)) from None
        finally:
            close()
        click.echo(str(written))


COMMANDS: list[click.Command] = [render_command]
