"""The network clip's speed-ups give what they replace: the cached plan, manim's geometry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "tiny_cnn.toml"


def test_network_plan_is_cached_and_equal(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from convviz.network import load_network
    from convviz.rendering import network_plan
    from convviz.rendering.network_plan import prepare_network_parts
    from convviz.rendering.network_scene import prepare_network
    from convviz.rendering.plan_cache import network_plan_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    net = load_network(TINY)
    made = prepare_network(net, detail=1)
    path = network_plan_path(net, {"detail": 1})
    assert path is not None and path.is_file()
    assert network_plan_path(net, {"detail": 2}) != path

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("derived again")

    monkeypatch.setattr(network_plan, "prepare_network_parts", fail)
    cached = prepare_network(net, detail=1)
    assert [p.title for p in cached.phases] == [p.title for p in made.phases]
    assert cached.schedule() == made.schedule()
    assert cached.strip == made.strip
    assert [dataclasses.astuple(p.plan.steps[0].target) for p in cached.phases] == [
        dataclasses.astuple(p.plan.steps[0].target) for p in made.phases]
    fresh = prepare_network_parts(net, detail=1).plan
    assert cached.result is not None and fresh.result is not None
    assert cached.result.loss == fresh.result.loss


def test_bad_options_are_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from convviz.network import load_network
    from convviz.rendering.network_plan import PlanError
    from convviz.rendering.network_scene import prepare_network

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    net = load_network(TINY)
    for _ in range(2):
        with pytest.raises(PlanError):
            prepare_network(net, only="sideways")
    assert not list((tmp_path / "convviz" / "plans").glob("network-*"))


def test_geometry_helpers_match_manim() -> None:
    from manim import DashedVMobject, Square, Text, VGroup

    from convviz.rendering.grid import critical_point, extent, move_centre, scale_about

    def shapes() -> list[VGroup]:
        text = Text("Wg1", font_size=30).shift(np.array([0.3, -0.2, 0.0]))
        curvy = DashedVMobject(Square(side_length=0.7), num_dashes=8)
        return [VGroup(text, Square(0.4).shift(np.array([1.0, 2.0, 0.0]))), VGroup(curvy)]

    for ours, theirs in zip(shapes(), shapes(), strict=True):
        for direction in ([0, 0, 0], [0, 1, 0], [-1, -1, 0], [1, 0, 0]):
            assert np.array_equal(critical_point(ours, np.array(direction, dtype=float)),
                                  theirs.get_critical_point(direction))
        assert extent(ours) == (theirs.width, theirs.height)
        scale_about(ours, 0.37)
        theirs.scale(0.37)
        target = np.array([-1.25, 0.5, 0.0])
        move_centre(ours, target)
        theirs.move_to(target)
        for a, b in zip(ours.get_family(), theirs.get_family(), strict=True):
            assert np.array_equal(a.points, b.points)


def test_a_cached_network_plan_loads_without_sympy() -> None:
    """A warm network render reads its plan back without importing SymPy (the numbers it
    holds live in convviz.results, apart from the evaluator)."""
    import subprocess
    import sys

    from convviz.network import load_network
    from convviz.rendering.plan_cache import cached_network_plan

    example = Path(__file__).resolve().parents[2] / "examples" / "tiny_cnn.toml"
    warm = cached_network_plan(load_network(example), detail=1)  # writes the cache
    script = (
        "import sys\n"
        "from convviz.network import load_network\n"
        "from convviz.rendering.plan_cache import cached_network_plan\n"
        f"plan = cached_network_plan(load_network({str(example)!r}), detail=1)\n"
        "assert 'sympy' not in sys.modules, 'sympy was imported'\n"
        "print(len(plan.phases), plan.result.loss)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert warm.result is not None
    assert done.stdout.split() == [str(len(warm.phases)), str(warm.result.loss)]
