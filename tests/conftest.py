"""Settings for the whole test session: a private cache directory, reproducible Hypothesis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Hypothesis draws the same examples on every run (and every machine), so a failure seen
# in CI is the failure seen locally. Loaded here, at import, so that the explicit
# ``@settings(...)`` of the test modules (imported later) inherit it. Set
# HYPOTHESIS_PROFILE=explore to search with fresh random examples instead.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The optional torch cross-checks run on one thread. With its default OpenMP pool, a
# process that forks after a torch op (mutmut forks one child per mutant) deadlocks in the
# child's next op, which mutmut then counts as a timeout, that is a killed mutant. Set
# before torch is imported (the tests import it lazily); the layers here are tiny.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``XDG_CACHE_HOME`` at a fresh directory for the whole session.

    convviz keeps compiled LaTeX, glyph outlines and clip plans under
    ``$XDG_CACHE_HOME/convviz`` (:func:`convviz.rendering.output.default_tex_cache`,
    :func:`convviz.rendering.plan_cache.plan_path`), and dvisvgm its own cache under
    ``$XDG_CACHE_HOME/dvisvgm``. Tests must neither depend on what earlier runs left in
    the user's ``~/.cache`` nor write to it. Within the session the cache warms up as
    usual; subprocesses (the CLI, notebook kernels, batch workers) inherit the variable.
    Tests that need a cold cache point the variable at their own ``tmp_path``.
    """
    cache = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


@pytest.fixture
def indexed_hashes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every ``Indexed`` cell hashed while the test runs, in order (``monkeypatch.undo()``
    stops the recording): speed shortcuts that find cells by ``id`` are pinned by it."""
    import sympy

    hashes: list[object] = []
    original = sympy.Indexed.__hash__

    def counted(self: object) -> int:
        hashes.append(self)
        return original(self)

    monkeypatch.setattr(sympy.Indexed, "__hash__", counted)
    return hashes
