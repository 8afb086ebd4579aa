"""The files under scenes/ work with the plain manim command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIM = Path(sys.executable).with_name("manim")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("file", "scene"),
    [
        ("convolution.py", "ForwardConvolution"),
        ("variants.py", "TwoChannelWeightGradient"),
    ],
)
def test_manim_cli_renders_scene_file(tmp_path: Path, file: str, scene: str) -> None:
    result = subprocess.run(
        [
            str(MANIM),
            "-ql",
            "-s",
            "--disable_caching",
            "--media_dir",
            str(tmp_path),
            str(ROOT / "scenes" / file),
            scene,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    images = list(tmp_path.rglob(f"{scene}*.png"))
    assert len(images) == 1
    import numpy as np
    from PIL import Image

    with Image.open(images[0]) as image:
        assert image.size == (854, 480)
        # The last frame shows the verified identity: not a blank picture.
        assert len(np.unique(np.asarray(image.convert("L")))) > 10
