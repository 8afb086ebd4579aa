"""The fast LaTeX path gives exactly the glyph outlines manim's MathTex gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .conftest import needs_latex

SNIPPETS = [
    "a_{1,2}",
    r"\frac{\partial \mathcal{L}}{\partial z^{[2]}}",
    r"z_{1,2} = W_{1,1}\,a_{1,2} + \cdots + b",
    "0",
    r"\ast",
    r"\text{Forward pass: each } z \text{ cell}",
    r"\frac{\partial \mathcal{L}}{\partial a^{[1]}} = \frac{\partial \mathcal{L}}{\partial "
    r"z^{[2]}} *_{\mathrm{full}} \operatorname{rot180}(W^{[2]})",
]


@needs_latex
@pytest.mark.parametrize("font_size", [36.0, 48.0])
def test_outlines_match_mathtex(tmp_path: Path, font_size: float) -> None:
    from manim import MathTex, tempconfig

    from convviz.rendering.typeset import _compile_outlines

    with tempconfig({"tex_dir": str(tmp_path / "tex"), "verbosity": "WARNING"}):
        ours = _compile_outlines(SNIPPETS, font_size)
        reference = MathTex(*SNIPPETS, font_size=font_size, use_svg_cache=False)
    assert len(ours) == len(reference.submobjects) == len(SNIPPETS)
    for mine, part in zip(ours, reference.submobjects, strict=True):
        glyphs = part.family_members_with_points()
        assert len(mine) == len(glyphs)
        for points, glyph in zip(mine, glyphs, strict=True):
            assert points.shape == glyph.points.shape
            np.testing.assert_allclose(points, glyph.points, atol=1e-9)
