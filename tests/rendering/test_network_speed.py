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


def test_light_copy_equals_manims_copy_and_is_independent() -> None:
    from manim import Rectangle, Square, VGroup

    from convviz.rendering.grid import light_copy

    square = Square(side_length=0.5)
    square.set_fill("#123456", opacity=0.5).set_stroke("#abcdef", width=2.0)
    for original in (square, Rectangle(width=1.0, height=2.0)):
        manims, ours = original.copy(), light_copy(original)
        assert type(ours) is type(manims)
        assert set(ours.__dict__) == set(manims.__dict__)
        for key, value in manims.__dict__.items():
            got = ours.__dict__[key]
            if isinstance(value, np.ndarray):
                assert got.dtype == value.dtype and np.array_equal(got, value), key
                assert got is not original.__dict__[key], key
            elif key == "grid_lines":
                assert type(got) is type(value) and got is not original.__dict__[key]
            else:
                assert got == value, key
        ours.points += 1.0
        ours.fill_rgbas[:, 3] = 0.0
        assert np.array_equal(original.points, manims.points)
        assert np.array_equal(original.fill_rgbas, manims.fill_rgbas)
    group = VGroup(Square(), Square())
    assert len(light_copy(group).submobjects) == 2  # with parts: manim's own copy


def test_restructured_mobject_list_equals_manims() -> None:
    from manim import Scene, Square, VGroup, tempconfig

    from convviz.rendering.segment import OneSegmentScene

    squares = [Square() for _ in range(8)]
    inner = VGroup(squares[2], squares[3])
    outer = VGroup(squares[1], inner, squares[4])
    scene_list = [squares[0], outer, VGroup(squares[5], squares[6]), squares[7]]
    with tempconfig({"dry_run": True}):
        scene = OneSegmentScene()
    cases = [[], [squares[0]], [squares[3]], [inner], [outer, squares[6]], [squares[2],
             squares[4], squares[7]], [Square()], scene_list]
    for to_remove in cases:
        ours = scene.get_restructured_mobject_list(scene_list, to_remove)
        manims = Scene.get_restructured_mobject_list(scene, scene_list, to_remove)
        assert [id(m) for m in ours] == [id(m) for m in manims]


def test_stretch_and_move_match_manim() -> None:
    from manim import Rectangle

    from convviz.rendering.grid import critical_point
    from convviz.rendering.scenes import _stretch_to

    rng = np.random.default_rng(0)
    for _ in range(200):
        ours = Rectangle(width=rng.uniform(0.01, 3), height=rng.uniform(0.01, 3))
        ours.shift([rng.uniform(-5, 5), rng.uniform(-3, 3), 0.0])
        manims = ours.copy()
        w, h = rng.uniform(1e-3, 4), rng.uniform(1e-3, 4)
        target = np.array([rng.uniform(-5, 5), rng.uniform(-3, 3), 0.0])
        manims.stretch_to_fit_width(w).stretch_to_fit_height(h).move_to(target)
        _stretch_to(ours, w, 0)
        _stretch_to(ours, h, 1)
        ours.points += target - critical_point(ours, np.zeros(3))
        assert ours.points.tobytes() == manims.points.tobytes()
