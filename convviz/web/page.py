r"""The interactive page of a clip: one HTML file, the video inside, every cell clickable.

``convviz page OP ...`` and ``convviz page NET.toml`` write it. The page plays the clip
with the timeline's steps as chapters (a list, and marks on the scrubber, with the
current cell's name). Every cell box of the timeline is a region over the video:
hovering names the cell, clicking shows its formula (the equation panel's text, typeset
to SVG by :mod:`convviz.web.svg`, so the page needs no math JavaScript) with its number
and gradient when the clip has numbers, and jumps the video into that cell's step.
Network pages add the layer strip: a layer's forward or backward phase is one click away.

What the page shows is read from the timeline (geometry and times, which belong to the
video) and from the clip's plan (the formulas). :func:`check_timeline` makes sure the two
describe the same clip and that the video is the one the timeline was written for.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convviz.rendering.latex import cell_tex
from convviz.rendering.values import format_number, number_latex
from convviz.web.embed import PageError, asset, blob_script, json_script, mime_type
from convviz.web.svg import formula_book, typeset_svgs

if TYPE_CHECKING:
    from convviz.rendering.network_plan import PreparedNetwork
    from convviz.rendering.plan import ScenePlan

__all__ = [
    "MAX_FORMULAS",
    "PageCell",
    "PageData",
    "check_video",
    "layer_page_data",
    "network_page_data",
    "page_html",
    "video_facts",
]

#: Formulas typeset for one page at most; past this, cells beyond the detailed steps
#: show their name and number (a LeNet-size network has tens of thousands of cells).
MAX_FORMULAS = 1500

Number = float | None


@dataclass
class PageCell:
    """One clickable cell: what hovering and clicking it show."""

    name: str
    tex: str
    step: int | None = None
    value: Number = None
    grad: Number = None
    formula: int = -1

    def to_json(self) -> dict[str, Any]:
        """What the page's script reads: name, formula slot, step, value, gradient."""
        doc: dict[str, Any] = {"name": self.name, "formula": self.formula, "tex": self.tex}
        if self.step is not None:
            doc["step"] = self.step
        if self.value is not None:
            doc["value"] = format_number(self.value)
        if self.grad is not None:
            doc["grad"] = format_number(self.grad)
        return doc


@dataclass
class PageData:
    """Everything the page's script reads (embedded as JSON)."""

    kind: str
    title: str
    subtitle: str
    timeline: Mapping[str, Any]
    cells: dict[str, PageCell] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    layouts: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    #: The clip's caption in LaTeX (layer pages), typeset under the title.
    caption: str = ""

    def to_json(self, formulas: Sequence[str]) -> dict[str, Any]:
        """The document embedded in the page, with the typeset ``formulas``."""
        t = self.timeline
        return {
            "kind": self.kind, "title": self.title, "subtitle": self.subtitle,
            "width": t["width"], "height": t["height"], "fps": t["fps"],
            "duration": t["duration"],
            "cells": {key: cell.to_json() for key, cell in self.cells.items()},
            "steps": self.steps, "layouts": self.layouts, "phases": self.phases,
            "layers": self.layers, "formulas": list(formulas),
        }


# ------------------------------------------------------------------ video and timeline
def video_facts(video: Path) -> tuple[int, int, float]:
    """``(width, height, duration in seconds)`` of a video file, read with PyAV."""
    import av

    if not video.is_file():
        raise PageError(f"{video}: no such video (the timeline's 'video', or give --video)")
    mime_type(video)
    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if container.duration is not None:
                duration = container.duration / 1_000_000
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                raise PageError(f"{video}: the video does not say how long it is")
    except (av.error.FFmpegError, IndexError) as err:
        raise PageError(f"{video}: not a readable video ({err})") from None
    return width, height, float(duration)


def check_video(timeline: Mapping[str, Any], video: Path) -> None:
    """The video must be the one the timeline describes: its size and its length."""
    width, height, duration = video_facts(video)
    if (width, height) != (timeline["width"], timeline["height"]):
        raise PageError(
            f"{video}: the video is {width}x{height} but the timeline is for "
            f"{timeline['width']}x{timeline['height']}: not the video of this timeline")
    slack = max(2.0 / float(timeline["fps"]), 0.1)
    if abs(duration - float(timeline["duration"])) > slack:
        raise PageError(
            f"{video}: the video lasts {duration:.2f} s but the timeline {timeline['duration']}"
            " s: not the video of this timeline")


def _key(index: Sequence[int]) -> str:
    return ",".join(str(i) for i in index)


def _named(name: str, index: Sequence[int]) -> str:
    return f"{name}[{_key(index)}]" if index else name


def _valued(tex: str, value: Number) -> str:
    return tex if value is None else f"{tex} = {number_latex(value)}"


def _mismatch(what: str) -> PageError:
    return PageError(f"--timeline: {what}: the timeline is not of this clip "
                     "(give the options it was rendered with)")


# ------------------------------------------------------------------------ layer pages
def _numbers(derivation: Any, values: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """Every array of a single-layer clip as numbers (display shape), gradients included."""
    if values is None:
        return {}
    from convviz.rendering.values import evaluate_roles

    roles = list(derivation.arrays)
    numbers, _ = evaluate_roles(derivation, values, roles)
    return numbers


def _grad_role(role: str) -> str:
    return "grad_output" if role == "output" else f"grad_{role}"


def layer_page_data(timeline: Mapping[str, Any], plan: ScenePlan, derivation: Any,
                    values: Mapping[str, Any] | None) -> PageData:
    """The page of a single-layer clip from its timeline, plan and numbers (if any)."""
    steps = timeline.get("steps")
    arrays = timeline.get("arrays")
    if not isinstance(steps, list) or not isinstance(arrays, dict):
        raise PageError("--timeline: not a clip timeline (no 'steps' and 'arrays')")
    if timeline.get("op") != plan.op:
        raise _mismatch(f"it is of op {timeline.get('op')!r}, not {plan.op!r}")
    if timeline.get("layer") != derivation.spec.describe():
        raise _mismatch(f"it is of the layer '{timeline.get('layer')}', not "
                        f"'{derivation.spec.describe()}'")
    if len(steps) != len(plan.steps):
        raise _mismatch(f"it has {len(steps)} steps, the clip {len(plan.steps)}")
    for n, (entry, step) in enumerate(zip(steps, plan.steps, strict=True)):
        target = entry.get("target", {})
        if (target.get("role"), list(target.get("index", []))) != (
                step.target.role, list(step.target.index)):
            raise _mismatch(f"step {n + 1} computes {target}, the clip "
                            f"{step.target.role}{list(step.target.index)}")
    numbers = _numbers(derivation, values)
    data = PageData("layer", f"{plan.op}: {derivation.spec.describe()}",
                    _plain_caption(plan.caption), timeline, caption=plan.caption)
    by_role = {a.role: a for a in plan.arrays}
    targets = {(s.target.role, tuple(s.target.index)): n for n, s in enumerate(plan.steps)}
    uses: dict[tuple[str, tuple[int, ...]], int] = {}
    for n, step in enumerate(plan.steps):
        for role, cells in step.highlights.items():
            for index in cells:
                uses.setdefault((role, tuple(index)), n)
    boxes: list[list[Any]] = []
    for role, array in arrays.items():
        if role not in by_role:
            raise _mismatch(f"the clip draws no array {role!r}")
        label = by_role[role].label
        for key, box in array["cells"].items():
            index = tuple(int(i) for i in key.split(",")) if key else ()
            cell_id = f"{role}:{key}"
            value = _at(numbers.get(role), index)
            grad = None if role.startswith("grad_") else _at(numbers.get(_grad_role(role)),
                                                            index)
            step_no = targets.get((role, index))
            if step_no is not None:
                tex = plan.steps[step_no].equation
            else:
                tex = _valued(cell_tex(label, index), value)
                step_no = uses.get((role, index))
            data.cells[cell_id] = PageCell(_named(array["name"], index), tex, step_no,
                                           value, grad)
            boxes.append([cell_id, *box, step_no])
    data.layouts.append({"start": 0.0, "end": float(timeline["duration"]), "boxes": boxes})
    for n, (entry, step) in enumerate(zip(steps, plan.steps, strict=True)):
        role, index = step.target.role, tuple(step.target.index)
        name = arrays.get(role, {}).get("name", role)
        data.steps.append({"start": entry["start"], "end": entry["end"], "hold": entry["hold"],
                           "cell": f"{role}:{_key(index)}", "label": _named(name, index),
                           "phase": None})
        data.cells.setdefault(f"{role}:{_key(index)}",
                              PageCell(_named(name, index), step.equation, n))
    return data


def _at(array: np.ndarray | None, index: tuple[int, ...]) -> Number:
    if array is None:
        return None
    position = tuple(i - 1 for i in index)
    try:
        return float(array[position]) if position else float(np.asarray(array).reshape(-1)[0])
    except (IndexError, ValueError):
        return None


def _plain_caption(caption: str) -> str:
    """A clip caption as plain text: the words of its ``text`` groups, its math as written."""
    out = caption
    for token in (r"\text{", r"\mathcal{L}", "}", "{", r"\quad"):
        out = out.replace(token, "L" if token == r"\mathcal{L}" else " " if token == r"\quad"
                          else "")
    return " ".join(out.split()).replace(" ,", ",").replace(" .", ".")


# ---------------------------------------------------------------------- network pages
def network_page_data(timeline: Mapping[str, Any], prepared: PreparedNetwork,
                      *, title: str = "", max_formulas: int = MAX_FORMULAS) -> PageData:
    """The page of a network clip from its timeline and the prepared network.

    ``title`` heads the page (the network file's name); the network's layers follow.
    """
    from convviz.rendering.network_plan import array_name
    from convviz.rendering.plan import plan_scene

    plan = prepared.plan
    steps = timeline.get("steps")
    phases = timeline.get("phases")
    if not isinstance(steps, list) or not isinstance(phases, list):
        raise PageError("--timeline: not a network timeline (no 'steps' and 'phases')")
    if timeline.get("network") != plan.network.describe():
        raise _mismatch(f"it is of the network '{timeline.get('network')}'")
    if len(phases) != len(plan.phases):
        raise _mismatch(f"it has {len(phases)} phases, the clip {len(plan.phases)}")
    expected = [(p, c) for p in plan.phases for c in p.cells]
    if len(steps) != len(expected):
        raise _mismatch(f"it has {len(steps)} steps, the clip {len(expected)}")
    for n, (entry, (phase, index)) in enumerate(zip(steps, expected, strict=True)):
        got = (entry["layer"], entry["op"], entry["target"]["array"],
               tuple(entry["target"]["index"]))
        if got != (phase.layer.index, phase.op, phase.target_name, tuple(index)):
            raise _mismatch(f"step {n + 1} computes {entry['target']['array']}"
                            f"{entry['target']['index']}")
    # the formulas: every phase planned in full (cheap) unless the page would be huge
    full = len(expected) <= max_formulas
    equations: dict[tuple[int, tuple[int, ...]], str] = {}
    labels: dict[str, str] = {}
    for phase in plan.phases:
        for array in phase.plan.arrays:
            labels[phase.names[array.role]] = array.label
        for step in phase.plan.steps:
            equations[(phase.number, tuple(step.target.index))] = step.equation
        if full and phase.sweep:
            layer_derivation = prepared.derivation.derivations[phase.layer.index - 1]
            given = prepared.numbers[phase.layer.index - 1]
            shown = plan.phases[0].plan.show
            whole = (plan_scene(layer_derivation, phase.op, verify_identity=False,
                                values=given, show=shown) if shown != "symbols"
                     else plan_scene(layer_derivation, phase.op, verify_identity=False))
            for step in whole.steps:
                equations.setdefault((phase.number, tuple(step.target.index)), step.equation)
    numbers = _network_numbers(prepared, array_name)
    described = plan.network.describe().replace(" -> ", " → ")
    if plan.result is not None and plan.result.loss is not None:
        described += f" · loss {format_number(plan.result.loss)}"
    data = PageData("network", title or "network", described, timeline)
    phase_of: list[int] = []
    for n, (entry, (phase, index)) in enumerate(zip(steps, expected, strict=True)):
        phase_of.append(phase.number - 1)
        cell_id = f"{phase.target_name}:{_key(index)}"
        tex = equations.get((phase.number, tuple(index)))
        value, grad = numbers.get(phase.target_name, {}).get(tuple(index), (None, None))
        if tex is None:
            tex = _valued(cell_tex(labels.get(phase.target_name, phase.target_name), index),
                          value)
        data.cells[cell_id] = PageCell(_named(phase.target_name, index), tex, n, value, grad)
        data.steps.append({"start": entry["start"], "end": entry["end"], "hold": entry["hold"],
                           "cell": cell_id, "label": _named(phase.target_name, index),
                           "phase": phase.number - 1, "sweep": bool(entry.get("sweep"))})
    for k, entry in enumerate(phases):
        mine = [n for n, p in enumerate(phase_of) if p == k]
        boxes: dict[str, list[Any]] = {}
        for n in mine:
            target = data.steps[n]["cell"]
            for name, cells in steps[n].get("boxes", {}).items():
                for key, box in cells.items():
                    cell_id = f"{name}:{key}"
                    # a click jumps to the cell's own step, else to the first that uses it
                    if cell_id == target or cell_id not in boxes:
                        boxes[cell_id] = [cell_id, *box, n]
                    if cell_id not in data.cells:
                        index = tuple(int(i) for i in key.split(",")) if key else ()
                        value, grad = numbers.get(name, {}).get(index, (None, None))
                        data.cells[cell_id] = PageCell(
                            _named(name, index), _valued(cell_tex(labels.get(name, name), index),
                                                         value), n, value, grad)
        data.layouts.append({"start": entry["start"], "end": entry["end"],
                             "boxes": list(boxes.values())})
        data.phases.append({"layer": entry["layer"], "type": entry["type"],
                            "phase": entry["phase"], "op": entry["op"],
                            "title": entry["title"], "start": entry["start"],
                            "end": entry["end"], "step": mine[0] if mine else None})
    for layer in plan.network.layers:
        chosen = {p["phase"]: k for k, p in reversed(list(enumerate(data.phases)))
                  if p["layer"] == layer.index}
        if chosen:
            data.layers.append({"index": layer.index, "type": layer.type,
                                "forward": chosen.get("forward"),
                                "backward": chosen.get("backward")})
    return data


def _network_numbers(prepared: PreparedNetwork, array_name: Any
                     ) -> dict[str, dict[tuple[int, ...], tuple[Number, Number]]]:
    """``{array name: {index: (value, gradient)}}`` for every array of the network."""
    result = prepared.result
    out: dict[str, dict[tuple[int, ...], tuple[Number, Number]]] = {}
    for layer in result.network.layers:
        k = layer.index - 1
        layer_result = result.layers[k]
        derivation = prepared.derivation.derivations[k]
        known = {"input": result.input if k == 0 else result.layers[k - 1].output,
                 "output": layer_result.output, **layer_result.params}
        for role, numbers in known.items():
            if role not in derivation.arrays:
                continue
            try:
                shape = layer.spec.display_shape(role)
            except (KeyError, AttributeError):
                continue
            name = array_name(layer.names[role]) if role in layer.names else None
            # a gradient's array is named dL/d<name> (network_plan.array_name)
            grad_name = f"dL/d{name}" if name else None
            value = np.asarray(numbers.value, dtype=float).reshape(shape)
            grad = np.asarray(numbers.grad, dtype=float).reshape(shape)
            for position in np.ndindex(*shape):
                index = tuple(i + 1 for i in position)
                v, g = float(value[position]), float(grad[position])
                if name is not None:
                    out.setdefault(name, {})[index] = (v, g)
                if grad_name is not None:
                    out.setdefault(grad_name, {})[index] = (g, None)
    return out


# ------------------------------------------------------------------------------- HTML
def page_html(data: PageData, video: Path, *, theme: str = "dark",
              backend: str = "latex") -> str:
    """The page as one HTML document: video, formulas, data, script and styles inside."""
    cells = list(data.cells.values())
    snippets = list(dict.fromkeys(c.tex for c in cells))
    slot = {tex: n for n, tex in enumerate(snippets)}
    for cell in cells:
        cell.formula = slot[cell.tex]
    typeset = typeset_svgs([*snippets, data.caption] if data.caption else snippets,
                           backend=backend)
    book, formulas = formula_book(typeset)
    caption = formulas.pop() if data.caption else None
    payload = video.read_bytes()
    title = html.escape(data.title)
    return "\n".join([
        "<!DOCTYPE html>",
        f'<html lang="en" data-theme="{html.escape(theme)}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # nothing may leave the page: no request of any kind is allowed by the page itself
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "media-src blob: data:; img-src data: blob:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'\">",
        f"<title>convviz: {title}</title>",
        f"<style>{asset('page.css')}</style>",
        "</head>",
        "<body>",
        book,
        _body(data, caption),
        json_script("convviz-data", data.to_json(formulas)),
        blob_script("convviz-video", payload, mime_type(video)),
        f"<script>{asset('page.js')}</script>",
        "</body>",
        "</html>",
        "",
    ])


def _body(data: PageData, caption: str | None) -> str:
    strip = ('<nav id="strip" aria-label="Layers"></nav>' if data.kind == "network" else "")
    words = html.escape(data.subtitle)
    return f"""<header>
<h1>{html.escape(data.title)}</h1>
<p class="subtitle" aria-label="{words}">{caption or words}</p>
</header>
{strip}
<main>
<section id="stage" aria-label="Clip">
<div id="frame" style="aspect-ratio: {data.timeline['width']} / {data.timeline['height']}">
<video id="video" playsinline muted preload="auto"></video>
<div id="regions" role="group" aria-label="Cells of the clip"></div>
<div id="hover" role="tooltip" hidden></div>
</div>
<div id="controls">
<button id="prev" type="button" title="Previous step (←)"
 aria-label="Previous step">&#9664;&#9664;</button>
<button id="play" type="button" title="Play or pause (space)" aria-label="Play">&#9654;</button>
<button id="next" type="button" title="Next step (→)"
 aria-label="Next step">&#9654;&#9654;</button>
<div id="scrub"><input id="seek" type="range" min="0" step="0.01" aria-label="Time">
<div id="marks" aria-hidden="true"></div></div>
<span id="time">0:00</span>
</div>
<p id="now" aria-live="polite"></p>
<section id="panel" aria-live="polite">
<h2 id="cell-name">Click a cell to see its formula</h2>
<div id="cell-formula"></div>
<dl id="cell-numbers"></dl>
</section>
</section>
<aside>
<section id="chapters-box">
<h2>Steps</h2>
<ol id="chapters"></ol>
</section>
</aside>
</main>
<footer>Made with convviz. Keys: &larr;/&rarr; step, space play/pause, Home/End first/last step.
Everything is inside this file: it works offline.</footer>"""
