"""A cold render derives its plan and compiles its LaTeX in a child while manim loads.

The prefetch is only an optimisation: the plan it caches must be the plan derived the
ordinary way, the SVG it compiles must give the outlines manim's own compile gives,
and when it cannot run (manim already imported, an unwritable cache, a LaTeX error)
the render must come out the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from convviz import ConvSpec
from convviz.rendering.labels import clip_layout, clip_text
from convviz.rendering.latex import (
    DEFAULT_COMPILER,
    document,
    join_snippets,
    precompile,
    prepare_snippets,
    svg_cache_path,
    unique_snippets,
)

from .conftest import needs_latex

ROOT = Path(__file__).resolve().parents[2]


def test_default_template_is_manims() -> None:
    from manim import config

    template = config.tex_template
    joined = join_snippets(prepare_snippets(["a_{1,1}", "{{x}}", r"\ast"]))
    assert document(joined) == template.get_texcode_for_expression_in_env(joined, "align*")
    assert (template.tex_compiler, template.output_format) == DEFAULT_COMPILER


def test_snippets_are_prepared_as_before() -> None:
    strings = [f"x_{{{n}}}" for n in range(40)] + ["", " ", "x_{0}", "{{y}}"]
    unique = unique_snippets(strings)
    assert unique == [f"x_{{{n}}}" for n in range(40)] + ["{{y}}"]
    prepared = prepare_snippets(unique)
    assert prepared[15].endswith(r" \\") and prepared[31].endswith(r" \\")
    assert not prepared[14].endswith(r" \\") and not prepared[-1].endswith(r" \\")
    assert prepared[-1] == "{ {y}}"
    joined = join_snippets(prepared)
    assert joined.count("dvisvgm:raw <g id='unique") == len(unique)


@needs_latex
def test_precompiled_svg_is_used_and_gives_manims_outlines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import manim.utils.tex_file_writing as tfw
    from manim import tempconfig

    from convviz.rendering import typeset as ts

    snippets = ["a_{1,2}", r"\frac{\partial \mathcal{L}}{\partial z^{[2]}}", "0", r"\ast"]
    with tempconfig({"tex_dir": str(tmp_path / "fresh"), "verbosity": "WARNING"}):
        reference = ts._compile_outlines(prepare_snippets(snippets), 36.0)
    ahead = precompile(snippets, tmp_path / "tex")
    assert ahead is not None and ahead.is_file()

    def no_latex(*args: object, **kwargs: object) -> None:
        raise AssertionError("LaTeX ran although the document was compiled ahead")

    monkeypatch.setattr(tfw, "tex_to_svg_file", no_latex)
    with tempconfig({"tex_dir": str(tmp_path / "tex"), "verbosity": "WARNING"}):
        ours = ts._compile_outlines(prepare_snippets(snippets), 36.0)
    assert len(ours) == len(reference) == len(snippets)
    for mine, theirs in zip(ours, reference, strict=True):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-12)


@needs_latex
def test_precompile_leaves_nothing_on_a_latex_error(tmp_path: Path) -> None:
    assert precompile([r"\undefinedcommandxyz"], tmp_path / "tex") is None
    folder = tmp_path / "tex-svg"
    assert not folder.exists() or not any(folder.iterdir())


def test_precompile_without_latex_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert precompile(["x"], tmp_path / "tex") is None


CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from convviz import ConvSpec
    from convviz.rendering.plan_cache import start_plan

    spec = ConvSpec(input_size=(5, 5), stride=2, padding=1)
    job = start_plan(spec, "da", None, latex_dir=Path(sys.argv[1]))
    forked = job.forked
    manim_before = "manim" in sys.modules
    plan = job.result()
    print(json.dumps({"forked": forked, "manim": manim_before, "steps": len(plan.steps),
                      "sympy_here": "sympy" in sys.modules}))
    """
)


def _run_child(tmp_path: Path, cache: Path) -> dict[str, object]:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "tex")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cold_plan_is_derived_in_a_child_and_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from convviz.derivation import derive
    from convviz.rendering.plan import plan_scene
    from convviz.rendering.plan_cache import cached_plan

    report = _run_child(tmp_path, tmp_path / "cache")
    # The parent forked before importing manim and never imported SymPy itself.
    assert report == {"forked": True, "manim": False, "steps": 25, "sympy_here": False}
    spec = ConvSpec(input_size=(5, 5), stride=2, padding=1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cached_plan(spec, "da", None) == plan_scene(derive(spec), "da")
    if precompile(["x"], tmp_path / "probe") is not None:  # LaTeX is installed
        plan = plan_scene(derive(spec), "da")
        strings = clip_text(plan, clip_layout(plan)).strings
        source = document(join_snippets(prepare_snippets(unique_snippets(strings))))
        assert svg_cache_path(tmp_path / "tex", source, DEFAULT_COMPILER).is_file()


@pytest.mark.slow
def test_cold_cache_render_fills_the_cache_and_matches_a_warm_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From an empty cache directory a render works, and leaves what the next one reuses.

    The session's cache (tests/conftest.py) is warm after the first renders; this test
    starts from nothing on purpose. The warm render derives no plan and runs no LaTeX.
    """
    import manim.utils.tex_file_writing as tfw
    from PIL import Image

    import convviz
    from convviz.rendering import plan_cache

    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    spec = ConvSpec(input_size=(4, 4), kernel_size=(2, 2))
    assert not cache.exists()
    cold = convviz.render(spec, "forward", output=tmp_path / "cold.png", max_steps=2)
    plan = plan_cache.plan_path(spec, "forward", 2)
    assert plan.is_file() and plan.is_relative_to(cache / "convviz")
    latex = precompile(["x"], tmp_path / "probe") is not None
    if latex:
        assert any((cache / "convviz" / "tex-outlines").glob("*.npz"))

    def not_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the warm render redid work the cold one cached")

    monkeypatch.setattr(plan_cache, "_derive_and_store", not_again)
    if latex:
        monkeypatch.setattr(tfw, "compile_tex", not_again)
        monkeypatch.setattr(tfw, "tex_to_svg_file", not_again)
    warm = convviz.render(spec, "forward", output=tmp_path / "warm.png", max_steps=2)
    with Image.open(cold) as a, Image.open(warm) as b:
        assert a.size == b.size == (854, 480)
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_unwritable_cache_falls_back_to_deriving_here(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    report = _run_child(tmp_path, blocker)
    assert report["steps"] == 25 and report["sympy_here"] is True


def test_no_fork_once_manim_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import manim  # noqa: F401

    from convviz.rendering.plan_cache import start_plan

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    job = start_plan(ConvSpec(input_size=(4, 4)), "forward", 3)
    assert not job.forked
    assert len(job.result().steps) == 3


def test_render_command_reaches_the_prefetch_before_manim() -> None:
    """What ``convviz render`` imports before calling ``render`` leaves manim unloaded."""
    script = textwrap.dedent(
        """
        import sys
        import convviz.cli.render_commands
        from convviz.rendering.api import default_output, render
        from convviz.rendering.latex import TypesetError
        from convviz.rendering.layout import LayoutError
        from convviz.rendering.output import RenderError
        from convviz.rendering.plan_cache import start_plan
        from convviz.rendering.theme import theme_for
        print("manim" in sys.modules, "sympy" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
