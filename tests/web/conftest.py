"""A real headless Chromium (Debian's ``chromium``) for the web-page tests, offline.

``scripts/setup.sh --browser`` (run by ``make test``) installs Debian's ``chromium``; the
Python side is Playwright's driver (``playwright`` in the ``dev`` extra), pointed at that
binary, so no browser is downloaded from anywhere.

Every page is opened from ``file://`` in a context that is offline and whose every
request is recorded; :class:`OfflinePage` lists the requests that went anywhere but the
page's own file (``data:`` and ``blob:`` URLs never leave the page). Without Chromium the
tests skip, except under CI (``CI`` set), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Where Debian's chromium package puts the browser.
CHROMIUM = os.environ.get("CONVVIZ_CHROMIUM", "/usr/bin/chromium")

#: The flags a root user on a closed network needs (no sandbox, no background traffic).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@dataclass
class OfflinePage:
    """A page opened from ``file://`` with the network cut off, and what it asked for."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def outside_requests(self) -> list[str]:
        """Requests that would leave the page: anything but its own file, data: and blob:."""
        return [u for u in self.requests
                if u != self.url and not u.startswith(("data:", "blob:"))]

    def screenshot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh --browser installs it")
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/setup.sh --browser installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def open_offline(browser: Any) -> Iterator[Any]:
    """``open_offline(path, width=, height=)``: the page at ``path``, loaded offline."""
    contexts: list[Any] = []

    def open_page(path: Path, *, width: int = 1280, height: int = 800,
                  color_scheme: str = "dark") -> OfflinePage:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      color_scheme=color_scheme)
        contexts.append(context)
        context.set_offline(True)
        url = path.resolve().as_uri()
        opened = OfflinePage(page=None, url=url)

        def block(route: Any) -> None:
            if route.request.url == url:
                route.continue_()
            else:
                route.abort()

        context.route("**/*", block)  # and the context is offline as well
        page = context.new_page()
        page.on("request", lambda r: opened.requests.append(r.url))
        page.on("console", lambda m: opened.console_errors.append(m.text)
                if m.type == "error" else None)
        page.on("pageerror", lambda e: opened.console_errors.append(str(e)))
        opened.page = page
        page.goto(url, wait_until="load")
        return opened

    yield open_page
    for context in contexts:
        context.close()
