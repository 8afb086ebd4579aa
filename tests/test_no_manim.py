"""The core works on a machine without Manim: import, derive, reflect, verify, CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["manim"] = None  # any "import manim" now raises ImportError
    sys.modules["manimpango"] = None

    try:
        import manim  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("manim was not blocked")

    import convviz
    from convviz import ConvSpec, derive, highlight_map, verify
    from convviz.cli import main

    d = derive(ConvSpec((5, 5), (3, 3), stride=2, padding=1))
    assert len(highlight_map(d, "da").steps) == 25
    checks = verify(d)
    assert checks and all(c.holds is True for c in checks), checks

    for args in (["derive", "forward", "--input", "4x4"], ["check", "--input", "4x4"]):
        try:
            main(args, prog_name="convviz")
        except SystemExit as done:
            assert done.code == 0, (args, done.code)

    leaked = sorted(m for m in sys.modules if m == "manim" or m.startswith("manim."))
    assert sys.modules["manim"] is None and leaked == ["manim"], leaked
    print("core ok without manim")
    """
)


def test_core_and_cli_work_without_manim():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "core ok without manim" in done.stdout
    assert "all checks passed" in done.stdout
    assert "z^{[2]}[1, 1] = " in done.stdout
