"""``convviz batch``: render every clip of a lecture file, in parallel, skipping fresh ones."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from convviz.batch import (
    BatchInterrupted,
    JobResult,
    LectureError,
    load_lecture,
    run_batch,
    summary_table,
)
from convviz.cli.options import OptionError
from convviz.config import ConfigError, SettingError, check_setting, find_defaults
from convviz.rendering.output import FORMATS, QUALITIES

__all__ = ["COMMANDS", "batch_command"]

_ADDRESS = re.compile(r"^([a-z][a-z0-9+]*://)?[^\s/:]+:\d+$")


class BatchFailed(click.ClickException):
    """Some clips failed, or the cluster could not be reached: exit 1."""

    exit_code = 1


def _overrides(**options: Any) -> dict[str, Any]:
    """Command-line settings, checked by the same rules as the files' (``--fps 0``...)."""
    given: dict[str, Any] = {}
    for key, value in options.items():
        if value is None or value == ():
            continue
        if key == "output_dir":
            given[key] = Path(value).resolve()
            continue
        try:
            given[key] = check_setting(key, list(value) if key == "formats" else value)
        except SettingError as err:
            option = "--format" if key == "formats" else "--" + key.replace("_", "-")
            raise OptionError(f"{option}: {err.rule}") from None
    return given


def _reporter(total: int) -> tuple[Callable[[JobResult], None], Callable[[], None]]:
    """One progress display: a bar on a terminal, else one line per finished clip."""
    if sys.stderr.isatty():
        bar = click.progressbar(
            length=total,
            label="rendering",
            file=sys.stderr,
            show_pos=True,
            item_show_func=lambda text: text,
        )
        bar.__enter__()

        def update_bar(result: JobResult) -> None:
            bar.update(1, f"{result.job.output.name} {result.status}")

        return update_bar, lambda: bar.__exit__(None, None, None)
    done = [0]

    def line(result: JobResult) -> None:
        done[0] += 1
        detail = f" ({result.seconds:.1f} s)" if result.status != "up-to-date" else ""
        click.echo(
            f"[{done[0]}/{total}] {result.job.output.name}: {result.status}{detail}", err=True
        )

    return line, lambda: None


@click.command("batch")
@click.argument("lecture", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Clips rendered at once, each in its own worker process. Default: one per core.",
)
@click.option(
    "--scheduler",
    metavar="tcp://HOST:PORT",
    default=None,
    help="Render on a Dask cluster instead (needs `pip install 'dask[distributed]'`; "
    "workers need convviz, LaTeX and the output directory).",
)
@click.option(
    "--scheduler-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="How long to try reaching the --scheduler before giving up. [default: 10]",
)
@click.option("--force", is_flag=True, help="Render every clip, even those up to date.")
@click.option(
    "--dry-run", is_flag=True, help="Only list the outputs and whether they are up to date."
)
@click.option(
    "-q",
    "--quality",
    type=click.Choice(list(QUALITIES)),
    default=None,
    help="Quality of every clip, over the files' settings.",
)
@click.option("--theme", default=None, help="Colour theme of every clip (dark, light).")
@click.option(
    "--palette", default=None, help="Highlight colours of every clip (article, colorblind)."
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(list(FORMATS)),
    multiple=True,
    help="Format of every clip; repeat for several (--format mp4 --format gif).",
)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where outputs go. Default: output_dir of the files, else media/ beside LECTURE.",
)
@click.option("--step-time", type=float, default=None, help="Seconds per step of every clip.")
@click.option("--fps", type=int, default=None, help="Frame rate of every clip.")
@click.option("--max-steps", type=int, default=None, help="Animate only the first N steps.")
def batch_command(
    lecture: Path,
    jobs: int | None,
    scheduler: str | None,
    scheduler_timeout: float | None,
    force: bool,
    dry_run: bool,
    quality: str | None,
    theme: str | None,
    palette: str | None,
    formats: tuple[str, ...],
    output_dir: Path | None,
    step_time: float | None,
    fps: int | None,
    max_steps: int | None,
) -> None:
    """Render every clip listed in the lecture file LECTURE (TOML).

    Each [[clip]] has a name (the output's file stem), an op (forward, dw, da, db,
    da-full), layer options as in `convviz render` (input = "6x6", stride = 2, bias =
    false, ...) and optionally formats, quality, theme, palette, step_time, max_steps, fps. A
    [defaults] table sets any of these for every clip. Project defaults come from the
    first convviz.toml or pyproject.toml [tool.convviz] above LECTURE; options given
    here override everything.

    A clip is skipped when its output is up to date: the file <output>.convviz-hash
    beside it holds the hash of the clip's settings and the convviz version. A failing
    clip does not stop the others; the exit status is 1 if any failed.

    \b
    Examples:
      convviz batch lecture.toml
      convviz batch lecture.toml -j 2 -q h --format mp4 --format gif
      convviz batch course.toml --scheduler tcp://10.0.0.5:8786
    """
    if scheduler is not None:
        if jobs is not None:
            raise OptionError("-j: not used with --scheduler (the cluster's workers decide)")
        if not _ADDRESS.match(scheduler):
            raise OptionError(
                f"--scheduler: expected an address like tcp://HOST:PORT, got {scheduler!r}"
            )
    elif scheduler_timeout is not None:
        raise OptionError("--scheduler-timeout: only used with --scheduler")
    overrides = _overrides(
        quality=quality,
        theme=theme,
        palette=palette,
        formats=formats,
        output_dir=output_dir,
        step_time=step_time,
        fps=fps,
        max_steps=max_steps,
    )
    try:
        project = find_defaults(lecture.parent)
        plan = load_lecture(lecture, project, overrides)
    except (ConfigError, LectureError) as err:
        raise OptionError(str(err)) from None

    if dry_run:
        for job in plan.jobs:
            state = "up-to-date" if job.is_up_to_date() and not force else "to render"
            click.echo(
                f"{job.name}  {job.op}  {job.fmt}  q={job.quality}  theme={job.theme}  "
                f"palette={job.palette}  "
                f"step_time={job.step_time:g}  fps={job.fps or '-'}  "
                f"max_steps={job.max_steps or '-'}  {state}  {job.output}"
            )
        return

    def make_executor() -> Any:
        if scheduler is not None:
            from convviz.batch import dask_executor

            try:
                return dask_executor(
                    scheduler, timeout=10.0 if scheduler_timeout is None else scheduler_timeout
                )
            except ImportError:
                raise OptionError(
                    "--scheduler: needs Dask's distributed package: "
                    "pip install 'dask[distributed]'"
                ) from None
            except (OSError, TimeoutError) as err:
                raise BatchFailed(
                    f"--scheduler: cannot reach {scheduler}: {' '.join(str(err).split())}"
                ) from None
        from convviz.batch import process_executor

        pending = sum(1 for job in plan.jobs if force or not job.is_up_to_date())
        return process_executor(max(1, min(jobs or os.cpu_count() or 1, pending)))

    start = time.perf_counter()
    report, close = _reporter(len(plan.jobs))
    stopped: BatchInterrupted | None = None
    try:
        results = run_batch(plan.jobs, make_executor, force=force, on_result=report)
    except BatchInterrupted as err:  # Ctrl-C: say what was done, then "Aborted." (130)
        stopped, results = err, err.results
    finally:
        close()
    elapsed = time.perf_counter() - start
    click.echo(summary_table(results, relative_to=Path.cwd()))
    statuses = ("rendered", "up-to-date", "FAILED", "interrupted")
    counts = {s: sum(r.status == s for r in results) for s in statuses}
    click.echo(
        f"{len(results)} outputs: {counts['rendered']} rendered, {counts['up-to-date']} up to "
        f"date, {counts['FAILED']} failed"
        + (f", {counts['interrupted']} interrupted" if stopped else "")
        + f", in {elapsed:.1f} s"
    )
    if stopped is not None:
        raise click.exceptions.Abort() from None
    if counts["FAILED"]:
        raise BatchFailed(f"{counts['FAILED']} of {len(results)} outputs failed (see the table)")


COMMANDS: list[click.Command] = [batch_command]
