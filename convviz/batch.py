"""Render a lecture's worth of clips, listed in a TOML file, in parallel.

A lecture file names every clip once::

    [defaults]              # optional: any clip setting or layer option
    quality = "m"
    formats = ["mp4", "gif"]

    [[clip]]
    name = "forward-intro"  # output stem: <output dir>/forward-intro.mp4
    op = "forward"          # forward, dw, da, db or da-full
    input = "6x6"
    kernel = "3x3"

    [[clip]]
    name = "strided-dw"
    op = "dw"
    stride = 2
    max_steps = 4

    [[clip]]
    name = "pooling-numbers"
    op = "forward"
    type = "maxpool2d"
    seed = 3                # draw the clip at numbers (or values = "pool.json",
    show = "both"           # relative to this file); show: symbols, values or both

Settings are resolved, last one winning: built-in defaults, the project's defaults
(:mod:`convviz.config`), the lecture's ``[defaults]``, the clip, then command-line
overrides. Each (clip, format) pair is a :class:`Job`; a job is skipped when its output
exists and the ``<output>.convviz-hash`` file beside it holds the hash of the job's
settings and the convviz version.

Jobs run through any :class:`concurrent.futures.Executor`: a process pool on one machine
(:func:`process_executor`) or a Dask cluster (:func:`dask_executor`). The worker function
:func:`render_job` takes and returns plain dicts, and is the only code that imports manim.
Parsing and the up-to-date check import neither manim nor the derivation machinery.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from convviz import __version__
from convviz.config import (
    BUILTIN,
    SETTING_KEYS,
    ConfigError,
    ProjectDefaults,
    SettingError,
    check_setting,
    read_toml,
)
from convviz.spec import SpecError

__all__ = [
    "CLIP_OPS",
    "HASH_SUFFIX",
    "BatchInterrupted",
    "Job",
    "JobResult",
    "Lecture",
    "LectureError",
    "dask_executor",
    "load_lecture",
    "process_executor",
    "render_job",
    "run_batch",
    "spec_from_fields",
    "summary_table",
]

#: Clips a lecture can ask for (the ops of ``convviz render``).
CLIP_OPS: tuple[str, ...] = ("forward", "dw", "da", "db", "da-full")

#: Suffix of the file beside each output that holds the hash it was rendered from.
HASH_SUFFIX = ".convviz-hash"

def _layer_keys() -> tuple[str, ...]:
    """``type`` and every layer option key of every layer type, as lecture files take them."""
    from convviz.layers import types

    keys = ["type"]
    for declared in types().values():
        keys.extend(o.key for o in declared.options if o.key not in keys)
    return tuple(keys)


#: Layer options, as in ``convviz render``: ``type`` plus the keys the types declare
#: (``bias = false`` is ``--no-bias``, ``output_padding`` is ``--output-padding``).
LAYER_KEYS: tuple[str, ...] = _layer_keys()

_CLIP_SETTINGS = ("formats", "quality", "theme", "palette", "step_time", "max_steps", "fps")
_DEFAULTS_KEYS = (*SETTING_KEYS, "max_steps", *LAYER_KEYS)
#: A clip's numbers: ``seed``, ``values`` (a values file beside the lecture) and ``show``.
_NUMBER_KEYS = ("seed", "values", "show")
#: Keys of a network clip (``network = "cnn.toml"``) besides name, numbers and settings.
_NETWORK_KEYS = ("network", "detail", "only", "layers", "first_da")
_CLIP_KEYS = ("name", "op", *LAYER_KEYS, *_CLIP_SETTINGS, *_NUMBER_KEYS, *_NETWORK_KEYS)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class LectureError(ValueError):
    """A lecture file is malformed; the message names the file, the entry and the field."""


# ----------------------------------------------------------------------------- parsing
def _check_layer_value(key: str, value: Any) -> None:
    """Check one layer option on its own, by the first type that takes it."""
    from convviz.layers import layer_type, types

    if key == "type":
        if not isinstance(value, str):
            raise SpecError("type", f"must be a layer type name, got {value!r}")
        try:
            layer_type(value)
        except ValueError as err:
            raise SpecError("type", str(err)) from None
        return
    for declared in types().values():
        for option in declared.options:
            if option.key == key:
                option.parse(value)
                return


def spec_from_fields(fields: Mapping[str, Any], *, defaults: Mapping[str, Any] | None = None
                     ) -> Any:
    """Build a layer from lecture-file values (``type = "maxpool2d"``, ``stride = 2``, ...).

    ``type`` defaults to ``conv2d``. Missing options take the command line's defaults;
    ``defaults`` (from ``[defaults]``) apply where the type takes them. The rules and
    their messages are those of the command-line layer options.

    Raises
    ------
    SettingError
        Naming the lecture-file key (``input``, ``stride``, ...) and the rule.
    """
    from convviz.layers import DEFAULT_TYPE, layer_type

    merged = {**(defaults or {}), **fields}
    name = merged.pop("type", DEFAULT_TYPE)
    try:
        declared = layer_type(name) if isinstance(name, str) else None
    except ValueError as err:
        raise SettingError("type", str(err)) from None
    if declared is None:
        raise SettingError("type", f"must be a layer type name, got {name!r}")
    takes = {o.key for o in declared.options}
    values = {k: v for k, v in merged.items() if k in takes or k in fields}
    try:
        return declared.build(values)
    except SpecError as err:
        raise SettingError(err.field_name, err.rule) from None


@dataclass(frozen=True)
class Job:
    """One output file: a clip rendered in one format, with every setting resolved."""

    name: str
    op: str
    spec: Any
    fmt: str
    quality: str
    theme: str
    palette: str
    step_time: float
    max_steps: int | None
    fps: int | None
    output: Path
    seed: int | None = None
    #: The contents of the clip's values file (``None``: no file).
    values: Mapping[str, Any] | None = None
    show: str | None = None
    #: A network clip: the network file's text and its clip options (``None``: a layer).
    network: Mapping[str, Any] | None = None

    @property
    def hash_path(self) -> Path:
        """``<output>.convviz-hash``."""
        return self.output.with_name(self.output.name + HASH_SUFFIX)

    def digest(self) -> str:
        """sha256 of everything that decides the output's content, and the convviz version."""
        document = {
            "convviz": __version__,
            **self._settings(),
            # LaTeX and Typst draw slightly different glyphs; renders follow --tex auto.
            "typesetting": "latex" if _latex_available() else "typst",
        }
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def is_up_to_date(self) -> bool:
        """Whether the output exists and was rendered from exactly these settings."""
        try:
            stored = self.hash_path.read_text(encoding="utf-8").strip()
        except OSError:
            return False
        return stored == self.digest() and self.output.is_file()

    def payload(self) -> dict[str, Any]:
        """The job as a plain dict, for :func:`render_job` in another process or machine."""
        return {
            "name": self.name,
            **self._settings(),
            "output": str(self.output),
            "digest": self.digest(),
        }

    def _settings(self) -> dict[str, Any]:
        """Everything that decides the output's content."""
        numbers = {
            key: value
            for key, value in (("seed", self.seed), ("values", self.values),
                               ("show", self.show))
            if value is not None
        }  # only when given: clips without numbers keep the hashes they had
        if self.network is not None:
            return {
                **numbers,
                "network": dict(self.network),
                "format": self.fmt,
                "quality": self.quality,
                "theme": self.theme,
                "palette": self.palette,
                "step_time": self.step_time,
                "fps": self.fps,
            }
        return {
            **numbers,
            "op": self.op,
            "type": self.spec.TYPE,
            "spec": asdict(self.spec),
            "format": self.fmt,
            "quality": self.quality,
            "theme": self.theme,
            "palette": self.palette,
            "step_time": self.step_time,
            "max_steps": self.max_steps,
            "fps": self.fps,
        }


@dataclass(frozen=True)
class Lecture:
    """A parsed lecture file: its jobs in file order, clip by clip, format by format."""

    path: Path
    jobs: tuple[Job, ...]
    output_dir: Path


def _read(path: Path) -> dict[str, Any]:
    try:
        return read_toml(path)
    except ConfigError as err:
        raise LectureError(str(err)) from None


def _check_keys(where: str, table: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in table:
        if key not in allowed:
            raise LectureError(f"{where}: {key}: unknown key (known: {', '.join(allowed)})")


def load_lecture(
    path: Path,
    project: ProjectDefaults | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Lecture:
    """Parse and validate a lecture file into jobs.

    Parameters
    ----------
    path
        The lecture TOML file.
    project
        Project defaults (see :func:`convviz.config.find_defaults`); none by default.
    overrides
        Settings that win over everything in the files (from command-line options), with
        keys of :data:`convviz.config.SETTING_KEYS` or ``max_steps``; ``output_dir`` as a
        :class:`~pathlib.Path`. Values must already be valid.

    Raises
    ------
    LectureError
        On anything malformed, e.g.
        ``lecture.toml: clip 3 ("pooling-intro"): stride: must be at least 1, got '0'``.
    """
    path = Path(path)
    document = _read(path)
    _check_keys(str(path), document, ("defaults", "clip"))
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        raise LectureError(f"{path}: defaults: must be a table ([defaults])")
    clips = document.get("clip")
    if clips is None:
        raise LectureError(f"{path}: clip: no [[clip]] entries")
    if not isinstance(clips, list) or not all(isinstance(c, dict) for c in clips):
        raise LectureError(f"{path}: clip: must be an array of tables ([[clip]])")

    where = f"{path}: [defaults]"
    _check_keys(where, defaults, _DEFAULTS_KEYS)
    settings: dict[str, Any] = dict(BUILTIN)
    settings["max_steps"] = None
    settings.update((project or ProjectDefaults()).settings())
    for key, value in defaults.items():
        if key in LAYER_KEYS:
            continue
        try:
            settings[key] = check_setting(key, value)
        except SettingError as err:
            raise LectureError(f"{where}: {key}: {err.rule}") from None
    if "output_dir" in defaults:
        settings["output_dir"] = (path.parent / settings["output_dir"]).resolve()
    layer_defaults = {k: v for k, v in defaults.items() if k in LAYER_KEYS}
    for key, value in layer_defaults.items():
        try:
            _check_layer_value(key, value)
        except SpecError as err:
            raise LectureError(f"{where}: {key}: {err.rule}") from None

    fixed = dict(overrides or {})
    output_dir = Path(fixed.pop("output_dir", None) or settings.pop("output_dir", None)
                      or path.parent / "media")
    settings.pop("output_dir", None)

    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(clips, start=1):
        name = entry.get("name")
        label = f"clip {number}" + (f" ({json.dumps(name)})" if isinstance(name, str) else "")
        where = f"{path}: {label}"
        _check_keys(where, entry, _CLIP_KEYS)
        if name is None:
            raise LectureError(f"{where}: name: required (the output file's stem)")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise LectureError(
                f"{where}: name: must be a file name of letters, digits, '.', '_' and '-' "
                f"(starting with a letter or digit, at most 100), got {name!r}"
            )
        if name in seen:
            raise LectureError(f"{where}: name: same as clip {seen[name]}")
        seen[name] = number
        op = entry.get("op")
        resolved = dict(settings)
        for key in _CLIP_SETTINGS:
            if key in entry:
                try:
                    resolved[key] = check_setting(key, entry[key])
                except SettingError as err:
                    raise LectureError(f"{where}: {key}: {err.rule}") from None
        resolved.update(fixed)
        if "network" in entry:
            network = _network_clip(where, path.parent, entry)
            for fmt in resolved["formats"]:
                jobs.append(
                    Job(
                        name=name,
                        op="network",
                        spec=None,
                        fmt=fmt,
                        quality=resolved["quality"],
                        theme=resolved["theme"],
                        palette=resolved["palette"],
                        step_time=float(resolved["step_time"]),
                        max_steps=None,
                        fps=resolved["fps"],
                        output=output_dir / f"{name}.{fmt}",
                        seed=entry.get("seed"),
                        values=network.pop("values_document"),
                        show=entry.get("show"),
                        network=network,
                    )
                )
            continue
        layer = {k: v for k, v in entry.items() if k in LAYER_KEYS}
        try:
            spec = spec_from_fields(layer, defaults=layer_defaults)
        except SettingError as err:
            origin = " (from [defaults])" if err.key not in entry and err.key in defaults else ""
            raise LectureError(f"{where}: {err.key}{origin}: {err.rule}") from None
        spec, seed, values, show = _clip_numbers(where, path.parent, entry, spec)
        from convviz.layers import layer_type

        ops = layer_type(spec).op_names
        if op is None:
            raise LectureError(f"{where}: op: required (one of {', '.join(ops)})")
        if op not in ops:
            raise LectureError(f"{where}: op: must be one of {', '.join(ops)}, got {op!r}")
        for fmt in resolved["formats"]:
            jobs.append(
                Job(
                    name=name,
                    op=op,
                    spec=spec,
                    fmt=fmt,
                    quality=resolved["quality"],
                    theme=resolved["theme"],
                    palette=resolved["palette"],
                    step_time=float(resolved["step_time"]),
                    max_steps=resolved["max_steps"],
                    fps=resolved["fps"],
                    output=output_dir / f"{name}.{fmt}",
                    seed=seed,
                    values=values,
                    show=show,
                )
            )
    if not jobs:
        raise LectureError(f"{path}: clip: no [[clip]] entries")
    return Lecture(path=path, jobs=tuple(jobs), output_dir=output_dir)


def _clip_numbers(
    where: str, folder: Path, entry: Mapping[str, Any], spec: Any
) -> tuple[Any, int | None, dict[str, Any] | None, str | None]:
    """A clip's ``seed``, ``values`` (read and checked now) and ``show``.

    Returns the spec (a values file may set a softmax-cross-entropy's class), the seed,
    the values file's contents and the show mode (``None`` where not given).
    """
    from convviz.rendering.values import ValuesInputError, layer_values, resolve_show

    seed = entry.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise LectureError(f"{where}: seed: a whole number of at least 0 expected, got "
                           f"{seed!r}")
    given = entry.get("values")
    document: dict[str, Any] | None = None
    if given is not None:
        if not isinstance(given, str):
            raise LectureError(f"{where}: values: a path to a values file expected, got "
                               f"{given!r}")
        try:
            document = json.loads((folder / given).read_text(encoding="utf-8"))
        except OSError as err:
            raise LectureError(f"{where}: values: {given}: cannot read: "
                               f"{err.strerror or err}") from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise LectureError(f"{where}: values: {given}: not valid JSON: "
                               f"{_one_line(err)}") from None
    show = entry.get("show")
    try:
        numbers = layer_values(spec, seed=seed, values=document, where=f"values: {given}")
        resolve_show(show, numbers is not None, where="show")
    except ValuesInputError as err:
        raise LectureError(f"{where}: {err}") from None
    return (numbers.spec if numbers is not None else spec), seed, document, show


def _network_clip(where: str, folder: Path, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Check a network clip's keys now (file, numbers, pacing); what the worker needs."""
    from convviz.network import NetworkError, ValuesError, load_network, parse_values
    from convviz.rendering.network_plan import PlanError, parse_layers

    for key in LAYER_KEYS:
        if key in entry:
            raise LectureError(f"{where}: {key}: a network clip takes its layers from the "
                               "network file")
    if "op" in entry:
        raise LectureError(f"{where}: op: a network clip plays every layer (use only/layers)")
    given = entry["network"]
    if not isinstance(given, str):
        raise LectureError(f"{where}: network: a path to a network file expected, got "
                           f"{given!r}")
    try:
        text = (folder / given).read_text(encoding="utf-8")
        net = load_network(folder / given)
    except OSError as err:
        raise LectureError(f"{where}: network: {given}: cannot read: "
                           f"{err.strerror or err}") from None
    except NetworkError as err:
        raise LectureError(f"{where}: network: {err}") from None
    seed = entry.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise LectureError(f"{where}: seed: a whole number of at least 0 expected, got "
                           f"{seed!r}")
    document: Any = None
    if "values" in entry:
        try:
            document = json.loads((folder / str(entry["values"])).read_text(encoding="utf-8"))
            parse_values(document, net, seed)
        except OSError as err:
            raise LectureError(f"{where}: values: cannot read: {err.strerror or err}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise LectureError(f"{where}: values: not valid JSON: {_one_line(err)}") from None
        except ValuesError as err:
            raise LectureError(f"{where}: values: {err}") from None
    detail = entry.get("detail", 2)
    if isinstance(detail, bool) or not isinstance(detail, int) or detail < 0:
        raise LectureError(f"{where}: detail: a whole number of at least 0 expected, got "
                           f"{detail!r}")
    only = entry.get("only")
    if only is not None and only not in ("forward", "backward"):
        raise LectureError(f"{where}: only: forward or backward, got {only!r}")
    layers = entry.get("layers")
    try:
        parse_layers(layers if layers is None else str(layers), len(net.layers))
    except PlanError as err:
        raise LectureError(f"{where}: layers: {err}") from None
    first_da = entry.get("first_da", False)
    if not isinstance(first_da, bool):
        raise LectureError(f"{where}: first_da: true or false, got {first_da!r}")
    return {
        "path": str((folder / given).resolve()),
        "text": text,
        "detail": detail,
        "only": only,
        "layers": None if layers is None else str(layers),
        "first_da": first_da,
        "values_document": document,
    }


def _render_network_job(payload: Mapping[str, Any], output: Path) -> None:
    from convviz.network import load_network, parse_values, random_values
    from convviz.rendering.network_plan import parse_layers
    from convviz.rendering.network_scene import prepare_network, render_network
    from convviz.rendering.theme import load_theme

    options = payload["network"]
    net = load_network(options["path"])
    seed = payload.get("seed") or 0
    document = payload.get("values")
    values = parse_values(document, net, seed) if document is not None else random_values(
        net, seed
    )
    plan = prepare_network(
        net, values=values, detail=options["detail"], only=options["only"],
        layers=parse_layers(options["layers"], len(net.layers)),
        first_da=options["first_da"], step_time=payload["step_time"],
        show=payload.get("show"),
    )
    render_network(plan, output=output, quality=payload["quality"], fmt=payload["format"],
                   fps=payload["fps"], theme=load_theme(payload["theme"], payload["palette"]),
                   encoder_threads=1, inline_encoding=_INLINE_ENCODING)


# ------------------------------------------------------------------------------ worker
def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, ValueError | RuntimeError | OSError):
        text = f"{type(err).__name__}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."


def _spec_of(payload: Mapping[str, Any]) -> Any:
    """The spec of a job payload (lists from JSON back to tuples)."""
    from convviz.layers import layer_type

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in payload["spec"].items()}
    return layer_type(payload.get("type", "conv2d")).spec_class(**fields)


def render_job(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Render one job (a :meth:`Job.payload`) and write its hash file; never raises.

    Returns ``{"ok": True, "seconds": ...}`` or ``{"ok": False, "seconds": ...,
    "error": "one line"}``. Runs in a worker process: manim keeps global state, so jobs
    must not run in threads of one process at once.
    """
    start = time.perf_counter()
    try:
        from convviz.rendering.api import render
        from convviz.rendering.output import atomic_write_text
        from convviz.rendering.theme import load_theme

        output = Path(payload["output"])
        if payload.get("network") is not None:
            _render_network_job(payload, output)
            atomic_write_text(output.with_name(output.name + HASH_SUFFIX),
                              payload["digest"] + "\n")
            return {"ok": True, "seconds": time.perf_counter() - start}
        render(
            _spec_of(payload),
            payload["op"],
            quality=payload["quality"],
            output=output,
            fmt=payload["format"],
            fps=payload["fps"],
            step_time=payload["step_time"],
            max_steps=payload["max_steps"],
            theme=load_theme(payload["theme"], payload["palette"]),
            seed=payload.get("seed"),
            values=payload.get("values"),
            show=payload.get("show"),
            # x264's own threads do not make these small frames faster (measured), and
            # with a worker per core they would only compete with the other workers.
            encoder_threads=1,
            inline_encoding=_INLINE_ENCODING,
        )
        atomic_write_text(output.with_name(output.name + HASH_SUFFIX), payload["digest"] + "\n")
    except (Exception, SystemExit) as err:  # a failed clip is reported, never a traceback
        return {"ok": False, "seconds": time.perf_counter() - start, "error": _one_line(err)}
    return {"ok": True, "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- running
@dataclass(frozen=True)
class JobResult:
    """What happened to one job: ``rendered``, ``up-to-date``, ``FAILED`` or ``interrupted``."""

    job: Job
    status: str
    seconds: float = 0.0
    error: str | None = None

    @property
    def failed(self) -> bool:
        """Whether the job failed."""
        return self.status == "FAILED"


#: Set in each worker of :func:`process_executor`: encode in the drawing thread.
_INLINE_ENCODING = False


def _init_worker(inline_encoding: bool) -> None:
    global _INLINE_ENCODING
    _INLINE_ENCODING = inline_encoding


def process_executor(jobs: int) -> cf.Executor:
    """A pool of ``jobs`` worker processes, forked from a server that imported manim.

    Importing manim takes over half a second; a forkserver that has done it once (and
    started no threads) hands every worker a ready interpreter. Where forkserver is not
    available, workers are spawned fresh. When there are at least as many workers as
    cores, each worker encodes in its drawing thread
    (:func:`~convviz.rendering.output.encode_inline`): a worker that has one core to
    itself only loses time handing frames to a second thread. A single worker on a
    machine with more cores keeps manim's encoder thread, so drawing and encoding
    overlap.
    """
    methods = multiprocessing.get_all_start_methods()
    context: multiprocessing.context.BaseContext
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["convviz.rendering.api", "convviz.rendering.scenes"])
    else:  # pragma: no cover - not POSIX
        context = multiprocessing.get_context("spawn")
    inline = jobs >= (os.cpu_count() or 1)
    return cf.ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(inline,)
    )


class _DaskExecutor(cf.Executor):
    """A Dask distributed client used as a :class:`concurrent.futures.Executor`."""

    def __init__(self, address: str, timeout: float) -> None:
        import distributed

        client_class: Any = distributed.Client  # untyped
        self._client: Any = client_class(address, timeout=timeout, set_as_default=False)
        self._executor: Any = self._client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = self._executor.submit(fn, *args, **kwargs)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._executor.shutdown(wait=wait)
        finally:
            self._client.close()


def dask_executor(address: str, *, timeout: float = 10.0) -> cf.Executor:
    """An executor that runs jobs on the Dask cluster whose scheduler is at ``address``.

    Every worker needs convviz (and LaTeX) installed, and must see the output paths:
    run it on a shared file system. Give workers one thread each (``--nthreads 1``),
    since manim renders one scene per process at a time.

    Raises
    ------
    ImportError
        When ``distributed`` is not installed.
    OSError
        When the scheduler cannot be reached within ``timeout`` seconds.
    """
    return _DaskExecutor(address, timeout)


def run_batch(
    jobs: Iterable[Job],
    make_executor: Callable[[], cf.Executor],
    *,
    force: bool = False,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Render every job that is not up to date, and report each as it finishes.

    Parameters
    ----------
    jobs
        From :func:`load_lecture`.
    make_executor
        Called once, and only if something needs rendering, e.g.
        ``lambda: process_executor(2)``; the executor is shut down at the end.
    force
        Render even jobs that are up to date.
    on_result
        Called with each :class:`JobResult` as it is known (up-to-date ones first).

    Returns
    -------
    list[JobResult]
        In the order of ``jobs``. A failed job never stops the others.

    Raises
    ------
    BatchInterrupted
        On Ctrl-C (``KeyboardInterrupt``), once the running jobs have ended; it carries
        the results so far.
    """
    jobs = list(jobs)
    results: dict[int, JobResult] = {}

    def record(index: int, result: JobResult) -> None:
        results[index] = result
        if on_result is not None:
            on_result(result)

    def finish(future: cf.Future[Any], index: int) -> None:
        try:
            outcome = future.result()
        except Exception as err:  # the worker died, or the cluster lost it
            outcome = {"ok": False, "seconds": 0.0, "error": _lost(err)}
        record(
            index,
            JobResult(
                jobs[index],
                "rendered" if outcome["ok"] else "FAILED",
                float(outcome["seconds"]),
                outcome.get("error"),
            ),
        )

    pending: list[int] = []
    for index, job in enumerate(jobs):
        if not force and job.is_up_to_date():
            record(index, JobResult(job, "up-to-date"))
        else:
            pending.append(index)
    if pending:
        # Longest first: a long clip started last would leave the other workers idle.
        pending.sort(key=lambda i: -estimated_cost(jobs[i]))
        executor = make_executor()
        futures: dict[cf.Future[Any], int] = {}
        interrupted = False
        try:
            for i in pending:
                futures[executor.submit(render_job, jobs[i].payload())] = i
            for future in cf.as_completed(futures):
                finish(future, futures[future])
        except KeyboardInterrupt:  # Ctrl-C here, or in a worker (it leaves no partial file)
            interrupted = True
        finally:
            # Queued jobs are dropped; running ones end (Ctrl-C reaches local workers too).
            executor.shutdown(wait=True, cancel_futures=True)
        if interrupted:
            for future, index in futures.items():
                if index not in results and future.done() and not future.cancelled():
                    with contextlib.suppress(KeyboardInterrupt):
                        finish(future, index)
            raise BatchInterrupted(
                [
                    results.get(i) or JobResult(jobs[i], "interrupted", error="not rendered")
                    for i in range(len(jobs))
                ]
            )
    return [results[i] for i in range(len(jobs))]


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`run_batch`; ``results`` says what was done.

    Every job is in ``results``, in order: those finished before the interrupt (or while
    the running ones ended) as usual, the others ``interrupted`` (nothing written).
    """

    def __init__(self, results: list[JobResult]) -> None:
        super().__init__("batch interrupted")
        self.results = results


def estimated_cost(job: Job) -> float:
    """Rough render cost of a job: its steps, each costing more as the picture grows."""
    spec = job.spec
    if job.network is not None:
        return 10_000.0  # a whole network: start it first
    if spec.TYPE != "conv2d":
        return float(spec.products) if job.max_steps is None else float(job.max_steps)
    steps: int = {
        "forward": spec.filters * spec.output_size[0] * spec.output_size[1],
        "dw": spec.filters * spec.channels * spec.kernel_size[0] * spec.kernel_size[1],
        "da": spec.channels * spec.input_size[0] * spec.input_size[1],
        "da-full": spec.channels * spec.input_size[0] * spec.input_size[1],
        "db": spec.filters,
    }.get(job.op, 1)
    if job.max_steps is not None:
        steps = min(steps, job.max_steps)
    return 1.0 + steps


def _lost(err: BaseException) -> str:
    if isinstance(err, cf.process.BrokenProcessPool):
        return "the worker process died (out of memory, or killed)"
    return f"lost by the executor: {_one_line(err)}"


# ----------------------------------------------------------------------------- summary
def summary_table(results: Sequence[JobResult], *, relative_to: Path | None = None) -> str:
    """A plain-text table: name, op, format, status, seconds, output or error."""
    header = ("name", "op", "format", "status", "seconds", "output / error")
    rows = [header]
    for r in results:
        where = r.job.output
        if relative_to is not None:
            with contextlib.suppress(ValueError):
                where = where.relative_to(relative_to)
        rows.append(
            (
                r.job.name,
                r.job.op,
                r.job.fmt,
                r.status,
                f"{r.seconds:.1f}" if r.status != "up-to-date" else "-",
                r.error if r.error is not None else str(where),
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [
            row[c].rjust(widths[c]) if c == 4 else row[c].ljust(widths[c])
            for c in range(len(widths))
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _latex_available() -> bool:
    """Whether ``latex`` and ``dvisvgm`` are on PATH (what ``--tex auto`` decides by)."""
    import shutil

    return shutil.which("latex") is not None and shutil.which("dvisvgm") is not None
