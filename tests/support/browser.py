"""Debian's Chromium under Playwright, offline: what the report browser tests share.

Every request that is not a `file://` one is recorded and aborted (a report must not reach
the network), and console errors and page errors are collected for the test to assert on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1366, "height": 900}


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser, closed on exit."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), ("Debian's chromium is not installed (/usr/bin/chromium): "
                               "apt-get install chromium (.ci/run does)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS, chromium_sandbox=False)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OfflineTab:
    """One page in its own context; `blocked` and `errors` fill as it runs."""

    context: Any
    page: Any
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def offline_tab(browser: Any) -> OfflineTab:
    """A new context and page that load only `file://` URLs and collect errors."""
    context = browser.new_context(viewport=VIEWPORT)
    tab = OfflineTab(context, None)

    def route(r: Any) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            tab.blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    tab.page = context.new_page()
    tab.page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.page.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    return tab
