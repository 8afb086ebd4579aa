"""Clip plans kept between renders, and derived in parallel with importing manim.

Deriving a clip's plan needs SymPy (a third to a half of a second just to import) and a
few hundredths of a second of work; a clip rendered again needs neither. Plans are
cached under ``$XDG_CACHE_HOME/convviz/plans``, keyed by the layer, the clip, the numbers
it is drawn at and what its cells show, and a digest of the source of every module that
decides a plan, so any change to the derivation invalidates them.

A cold render has to derive, and also has to import manim (over half a second); the
two do not depend on each other. :func:`start_plan` therefore derives in a forked child
process while the caller imports manim, on the machine's other core. The child only
writes the plan cache; the parent reads it back, and if anything went wrong in the
child it simply derives itself, so errors surface in the parent exactly as before.

This module imports neither manim nor SymPy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convviz.rendering.plan import ScenePlan

if TYPE_CHECKING:
    from convviz.network import Network
    from convviz.rendering.network_plan import NetworkPlan
    from convviz.rendering.values import LayerValues

__all__ = [
    "PlanJob",
    "cached_network_plan",
    "cached_plan",
    "network_plan_path",
    "plan_path",
    "start_plan",
]

_DIGEST: list[str] = []


def _source_digest() -> str:
    """sha256 of the source of every module of the package (computed once per process).

    Hashing the whole package, rather than a hand-kept list of the modules that decide a
    plan, means no change to any declaration or core module can serve a stale plan.
    """
    if not _DIGEST:
        root = Path(__file__).resolve().parents[1]
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
        _DIGEST.append(digest.hexdigest())
    return _DIGEST[0]


def plan_path(
    spec: Any,
    op: str,
    max_steps: int | None,
    values: LayerValues | None = None,
    show: str = "symbols",
) -> Path:
    """Where the plan of this clip is cached (drawn at ``values``, cells showing ``show``)."""
    from convviz import __version__
    from convviz.rendering.output import default_tex_cache

    numbers = values.digest() if values is not None else None
    key = hashlib.sha256(
        json.dumps(
            [__version__, _source_digest(), spec.TYPE, dataclasses.asdict(spec), op,
             max_steps, numbers, show if values is not None else "symbols"],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:32]
    return default_tex_cache().parent / "plans" / f"{key}.pickle"


def _unpickle(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)  # our own cache, written by _store
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        return None


def _load(path: Path) -> ScenePlan | None:
    plan = _unpickle(path)
    return plan if isinstance(plan, ScenePlan) else None


def _store(plan: Any, path: Path) -> None:
    """Write ``plan`` to ``path`` atomically; a cache that cannot be written only costs time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(plan, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass


def _derive_and_store(
    spec: Any,
    op: str,
    max_steps: int | None,
    path: Path,
    values: LayerValues | None = None,
    show: str = "symbols",
) -> ScenePlan:
    from convviz.derivation import derive
    from convviz.rendering.plan import plan_scene

    plan = plan_scene(
        derive(spec),
        op,
        max_steps=max_steps,
        values=values.arrays if values is not None else None,
        show=show,
    )
    _store(plan, path)
    return plan


@dataclasses.dataclass
class PlanJob:
    """A plan on its way: :meth:`result` returns it (waiting for the child, if any)."""

    spec: Any
    op: str
    max_steps: int | None
    path: Path
    child: int | None = None
    values: LayerValues | None = None
    show: str = "symbols"

    @property
    def forked(self) -> bool:
        """Whether a child process is deriving the plan."""
        return self.child is not None

    def result(self) -> ScenePlan:
        """The plan: the child's (from the cache it wrote), or derived here."""
        if self.child is not None:
            child, self.child = self.child, None
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
        return _load(self.path) or _derive_and_store(
            self.spec, self.op, self.max_steps, self.path, self.values, self.show
        )


def cached_plan(
    spec: Any,
    op: str,
    max_steps: int | None,
    values: LayerValues | None = None,
    show: str = "symbols",
) -> ScenePlan:
    """The plan of a clip: from the plan cache, or derived here (and then cached)."""
    path = plan_path(spec, op, max_steps, values, show)
    return PlanJob(spec, op, max_steps, path, values=values, show=show).result()


def _can_fork() -> bool:
    """Forking is worth it (manim not imported yet) and safe (no other Python threads)."""
    return (
        hasattr(os, "fork")
        and sys.platform != "darwin"  # macOS frameworks do not survive fork well
        and "manim" not in sys.modules
        and threading.active_count() == 1
    )


def start_plan(
    spec: Any,
    op: str,
    max_steps: int | None,
    *,
    latex_dir: Path | None = None,
    values: LayerValues | None = None,
    show: str = "symbols",
) -> PlanJob:
    """Start getting a clip's plan: cached, or derived by a child process in parallel.

    Call this before importing manim and :meth:`PlanJob.result` after: on a cold cache
    the derivation (SymPy's import included) then costs no wall time on a machine with
    a second core. With ``latex_dir`` (the render's TeX cache) the child also compiles
    the clip's LaTeX document (see :func:`convviz.rendering.latex.precompile`). Where
    forking is not possible or not useful, the plan is derived in :meth:`~PlanJob.result`
    instead, and LaTeX runs when the scene typesets.
    """
    path = plan_path(spec, op, max_steps, values, show)
    job = PlanJob(spec, op, max_steps, path, values=values, show=show)
    if path.exists() or not _can_fork():
        return job
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: derive, store, and leave without running any cleanup
        status = 1
        try:
            plan = _derive_and_store(spec, op, max_steps, path, values, show)
            if latex_dir is not None:
                from convviz.rendering.labels import clip_layout, clip_text
                from convviz.rendering.latex import precompile

                precompile(clip_text(plan, clip_layout(plan)).strings, latex_dir)
            status = 0
        except BaseException:  # the parent derives again, and reports any error
            pass
        finally:
            os._exit(status)
    job.child = pid
    return job


# ------------------------------------------------------------------ network clips
def network_plan_path(network: Network, options: dict[str, Any]) -> Path | None:
    """Where the plan of a network clip is cached (``None``: its inputs cannot be keyed).

    The key is a digest of the package's source and of the pickled network and options
    (numbers included), so equal inputs find the plan and any other input misses.
    """
    from convviz import __version__
    from convviz.rendering.output import default_tex_cache

    try:
        given = pickle.dumps([network, sorted(options.items())], protocol=4)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    digest = hashlib.sha256(json.dumps([__version__, _source_digest()]).encode())
    digest.update(given)
    return default_tex_cache().parent / "plans" / f"network-{digest.hexdigest()[:32]}.pickle"


def cached_network_plan(network: Network, **options: Any) -> NetworkPlan:
    """A network clip's plan: from the plan cache, or made here (and then cached).

    ``options`` are those of :func:`~convviz.rendering.network_plan.prepare_network_parts`;
    bad options raise its errors (nothing is cached for them).
    """
    from convviz.rendering.network_plan import NetworkPlan, prepare_network_parts

    path = network_plan_path(network, options)
    if path is not None:
        plan = _unpickle(path)
        if isinstance(plan, NetworkPlan):
            return plan
    plan = prepare_network_parts(network, **options).plan
    if path is not None:
        _store(plan, path)
    return plan
