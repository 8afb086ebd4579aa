"""``convviz render``: the command that makes videos (manim is imported only when it runs)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from convviz.cli.options import OptionError, layer_options
from convviz.spec import ConvSpec

__all__ = ["COMMANDS", "render_command"]

CLIPS = ("forward", "dw", "da", "db", "da-full")


class RenderFailed(click.ClickException):
    """A render could not be done (missing system piece, manim failure): exit 1."""

    exit_code = 1


def _progress(label: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A step counter on a terminal (stderr), nothing otherwise."""
    if not sys.stderr.isatty():
        return (lambda done, total: None), (lambda: None)
    state = {"bar": None}

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


@click.command("render")
@click.argument("op", type=click.Choice([*CLIPS, "all"]))
@layer_options
@click.option(
    "-q",
    "--quality",
    type=click.Choice(["l", "m", "h", "k"]),
    default="l",
    show_default=True,
    help="As in manim: l 480p15, m 720p30, h 1080p60, k 2160p60.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mp4", "gif", "webm", "mov", "png"]),
    default=None,
    help="Output format (default: from -o, else mp4). png saves the last frame.",
)
@click.option("--transparent", is_flag=True, help="Transparent background (webm, mov, png).")
@click.option("--fps", type=int, default=None, help="Frame rate instead of the quality's.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file (a directory for 'all'). Default: media/<op>_<layer>.<format>.",
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
@click.option(
    "--step-time", type=float, default=1.0, show_default=True, help="Seconds per step."
)
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
    default="dark",
    show_default=True,
    help="dark (the article's look) or light (white slides, paper).",
)
@click.option(
    "--palette",
    type=click.Choice(["article", "colorblind"]),
    default="article",
    show_default=True,
    help="Highlight colours: article (teal/yellow) or colorblind (Okabe-Ito blue/orange).",
)
def render_command(
    op: str,
    spec: ConvSpec,
    quality: str,
    fmt: str | None,
    transparent: bool,
    fps: int | None,
    output: Path | None,
    timeline: Path | None,
    chapters: Path | None,
    step_time: float,
    max_steps: int | None,
    tex: str,
    theme: str,
    palette: str,
) -> None:
    """Render the animation of OP to a video.

    OP is forward, dw, da, db, da-full (dL/da as a full correlation) or all.

    \b
    Examples:
      convviz render forward
      convviz render dw --input 5x5 --stride 2 -q h -o dw.mp4 --timeline dw.json
      convviz render all --input 3x6x6 --filters 2 -o lecture/
    """
    ops = list(CLIPS) if op == "all" else [op]
    if op == "all" and output is not None and output.suffix:
        raise OptionError("-o: with 'all', give a directory, not a file name")
    chosen = fmt or (output.suffix.lstrip(".").lower() if output and output.suffix else "mp4")
    if output is not None and output.suffix and fmt and output.suffix.lstrip(".") != fmt:
        raise OptionError(f"-o: {output} does not end in .{fmt}")
    if chosen not in ("mp4", "gif", "webm", "mov", "png"):
        raise OptionError(f"-o: unsupported format .{chosen} (mp4, gif, webm, mov, png)")
    if transparent and chosen not in ("webm", "mov", "png"):
        raise OptionError(f"--transparent: needs webm, mov or png, not {chosen}")
    if fps is not None and not 1 <= fps <= 120:
        raise OptionError(f"--fps: must be between 1 and 120, got {fps}")
    if not 0.2 <= step_time <= 60:
        raise OptionError(f"--step-time: must be between 0.2 and 60 seconds, got {step_time}")
    if max_steps is not None and max_steps < 1:
        raise OptionError(f"--max-steps: must be at least 1, got {max_steps}")

    from convviz.rendering.api import default_output, render
    from convviz.rendering.layout import LayoutError
    from convviz.rendering.output import RenderError
    from convviz.rendering.theme import theme_for
    from convviz.rendering.typeset import TypesetError

    for clip in ops:
        if op == "all":
            folder = output or Path("media")
            target = default_output(spec, clip, chosen, folder)
            tl = timeline / f"{target.stem}.timeline.json" if timeline else None
            ch = chapters / f"{target.stem}.vtt" if chapters else None
        else:
            target = output or default_output(spec, clip, chosen)
            tl, ch = timeline, chapters
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
            )
        except (RenderError, LayoutError) as err:
            raise OptionError(str(err)) from None
        except TypesetError as err:
            raise RenderFailed(str(err)) from None
        finally:
            close()
        click.echo(str(written))


COMMANDS: list[click.Command] = [render_command]
