"""A real headless browser for tests: Debian's Chromium (``apt install chromium``) driven by the
Python ``playwright`` package (dev extra).

Playwright's own browser download (``playwright install``) cannot run here (no internet), so the
browser is the system's ``/usr/bin/chromium``, started with the flags a container needs. Tests
use :func:`browser` (a context manager) or the ``browser_page`` fixture pattern::

    from tests.browser import browser, skip_without_browser

    @skip_without_browser
    def test_page(...):
        with browser() as b:
            page = b.new_page()
            page.goto(url)

Screenshots go to :data:`SCREENSHOTS` (``artifacts/screenshots/``, git-ignored), which CI keeps.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("YH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("YH_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))


def available() -> str | None:
    """Why no browser test can run here, or None when one can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (dev extra)"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} not found (apt install chromium)"
    return None


skip_without_browser = pytest.mark.skipif(available() is not None, reason=str(available()))


@contextlib.contextmanager
def browser(timeout_ms: int = 30_000) -> Iterator:
    """A launched headless Chromium (a playwright ``Browser``); closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=timeout_ms)
        try:
            yield b
        finally:
            b.close()


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` as ``SCREENSHOTS/<name>.png``; returns its path. Lazily loaded
    images below the fold are loaded first (the page is scrolled through)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if full_page:
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_function("[...document.images].every(i => i.complete)", timeout=20_000)
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=full_page)
    return path
