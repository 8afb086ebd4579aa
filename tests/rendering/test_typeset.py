import shutil

import numpy as np
import pytest

from convviz.rendering.typeset import cell_tex, protect_braces

needs_latex = pytest.mark.skipif(
    shutil.which("latex") is None or shutil.which("dvisvgm") is None,
    reason="LaTeX not installed (run make setup)",
)


def test_cell_tex():
    assert cell_tex("a^{[1]}", (1, 2)) == "{a^{[1]}}_{1,2}"
    assert cell_tex("b^{[2]}", ()) == "b^{[2]}"


def test_protect_braces():
    assert protect_braces("{{a}}") == "{ {a}}"
    assert "{{" not in protect_braces("{{{x}}}")


@needs_latex
def test_one_latex_run_for_many_labels(tmp_path, monkeypatch):
    import manim.utils.tex_file_writing as tfw
    from manim import tempconfig

    from convviz.rendering.typeset import typeset, typeset_map

    calls = []
    original = tfw.compile_tex

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(tfw, "compile_tex", counting)
    strings = [cell_tex("a^{[1]}", (i, j)) for i in range(1, 7) for j in range(1, 7)]
    strings += ["0", "0", "", r"\ast", "="]
    with tempconfig({"tex_dir": str(tmp_path)}):
        mobs = typeset(strings)
        assert len(calls) == 1
        assert len(mobs) == len(strings)
        assert mobs[36] is not mobs[37]  # duplicates are independent copies
        assert len(mobs[38].submobjects) == 0  # empty string: empty mobject
        assert all(m.width > 0 for i, m in enumerate(mobs) if i != 38)
        # a(1,1) and a(6,6) are different glyph runs: their outlines differ, also once
        # both are moved to the origin
        first, last = (
            np.concatenate([m.points for m in mobs[k].family_members_with_points()])
            for k in (0, 35)
        )
        assert len(first) > 0 and len(last) > 0
        assert first.shape != last.shape or not np.allclose(
            first - first.mean(axis=0), last - last.mean(axis=0)
        )
        by_key = typeset_map({"t": "z^{[2]}"})
        assert by_key["t"].width > 0


@needs_latex
def test_latex_errors_become_typeset_errors(tmp_path):
    from manim import tempconfig

    from convviz.rendering.typeset import TypesetError, typeset

    with tempconfig({"tex_dir": str(tmp_path)}), pytest.raises(TypesetError):
        typeset([r"\undefinedcommandxyz"])


def test_missing_latex_is_explained(tmp_path, monkeypatch):
    from manim import tempconfig

    from convviz.rendering.typeset import TypesetError, typeset

    monkeypatch.setenv("PATH", str(tmp_path))
    with tempconfig({"tex_dir": str(tmp_path)}), pytest.raises(TypesetError, match="make setup"):
        typeset(["x_{1}"])
