"""The whole site on a free loopback port, and Chromium to look at it.

Shared by the browser tests (``tests/browser/conftest.py``) and the README's screenshots
(``docs/screenshots/take.py``).

``serve_site(rt)``
    A context manager: ``create_site(rt)`` served by uvicorn in a thread on a port the OS
    chooses; yields a ``LiveSite`` (``rt``, ``base``, ``setup_link``, ``url(path)``).
``chromium()``
    Debian's Chromium (``POSTDESK_TEST_CHROMIUM``, default ``/usr/bin/chromium``),
    headless, through Playwright.
``log_in(page, site)``
    The login form filled in as administrator ``admin``; waits for the Mailbox.
``new_page(browser, viewport)``
    A context manager: a page in a fresh browser context (``DESKTOP``, ``PHONE``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from postdesk.services.access.sessions import SetupLink
from postdesk.services.runtime import Runtime
from postdesk.site import create_site

CHROMIUM = Path(os.environ.get("POSTDESK_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
]
ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass
class LiveSite:
    rt: Runtime
    base: str
    setup_link: SetupLink

    def url(self, path: str) -> str:
        return self.base + path


@contextmanager
def serve_site(rt: Runtime) -> Iterator[LiveSite]:
    link = SetupLink()
    app = create_site(rt, setup_link=link)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-site", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live site did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveSite(rt, f"http://127.0.0.1:{port}", link)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(
    page: Page, site: LiveSite, username: str = ADMIN, password: str = ADMIN_PASSWORD
) -> None:
    page.goto(site.url("/login"))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(site.url("/mailbox"))


@contextmanager
def new_page(browser: Browser, viewport: ViewportSize, **options: Any) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies) of ``viewport``; ``options`` go to
    ``Browser.new_context`` (``timezone_id``, say)."""
    context = browser.new_context(viewport=viewport, **options)
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()
