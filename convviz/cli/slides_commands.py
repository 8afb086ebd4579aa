"""``convviz slides``: a manim-slides folder as one offline HTML presentation.

Shaped like the ``manim-slides convert`` command it replaces, whose reveal.js page needs
a network: ``convviz slides --folder media/slides ForwardConvolution forward.html``.
"""

from __future__ import annotations

from pathlib import Path

import click

from convviz.cli.options import OptionError

__all__ = ["COMMANDS", "slides_command"]


@click.command("slides")
@click.argument("names", nargs=-1, metavar="SCENE... OUTPUT.html")
@click.option(
    "--folder",
    type=click.Path(path_type=Path),
    default=Path("media/slides"),
    show_default=True,
    help="The manim-slides folder that render --slides wrote.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    metavar="OUTPUT.html",
    help="The page to write; then every argument is a scene.",
)
def slides_command(names: tuple[str, ...], folder: Path, output: Path | None) -> None:
    """Write SCENE's slides as ONE offline HTML presentation (OUTPUT.html).

    The page holds every slide video and its own small player: it needs no network (no
    reveal.js, no CDN), so it runs from a USB stick in any browser. Several scenes make
    one presentation, in the order given.

    \b
    Keys: Right/Space/PageDown/click next (a playing slide first jumps to its end),
          Left/PageUp previous, Home/End first/last, f fullscreen, n speaker notes.

    \b
    Example:
      convviz render forward --slides
      convviz slides --folder media/slides ForwardConvolution forward.html
    """
    from convviz.web.embed import PageError
    from convviz.web.slides import available_scenes, write_slides_page

    scenes = list(names)
    if output is None:
        if not scenes or (len(scenes) == 1 and not Path(scenes[0]).suffix):
            raise OptionError(_usage(folder, available_scenes(folder), scenes))
        if not scenes[-1].lower().endswith(".html"):
            raise OptionError(f"OUTPUT (the last argument) is an .html file, "
                              f"not {scenes[-1]!r}")
        output = Path(scenes.pop())
    elif scenes and scenes[-1].lower().endswith(".html"):
        raise OptionError(f"-o {output} and {scenes[-1]}: give the output once")
    if output.suffix.lower() != ".html":
        raise OptionError(f"-o: the presentation is an .html file, not {str(output)!r}")
    if not scenes:
        raise OptionError(_usage(folder, available_scenes(folder), scenes))
    try:
        written = write_slides_page(folder, scenes, output)
    except PageError as err:
        raise OptionError(str(err)) from None
    click.echo(str(written))


def _usage(folder: Path, available: list[str], given: list[str]) -> str:
    example = available[0] if available else "ForwardConvolution"
    what = "name a scene and the output" if not given else "name the output last"
    where = (f"scenes in {folder}: {', '.join(available)}" if available
             else f"no presentation files in {folder}")
    return (f"{what}: convviz slides --folder {folder} {example} {example.lower()}.html "
            f"({where})")


COMMANDS: list[click.Command] = [slides_command]
