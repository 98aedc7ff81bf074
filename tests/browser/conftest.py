"""The site in a real browser: ``postdesk`` served by uvicorn on a loopback port, driven
by Debian's Chromium through Playwright.

Fixtures
--------
``browser`` (session)
    Chromium at ``POSTDESK_TEST_CHROMIUM`` (default ``/usr/bin/chromium``), headless.
    Skipped when it is missing, except with ``CI=true``: then the tests fail.
``live``
    A ``LiveSite``: the whole site (API and pages, no worker) on a free port of
    127.0.0.1, on SQLite — the pages are the same on both databases, which the API and
    service tests cover. ``live.rt`` is its runtime, ``live.url(path)`` an address.
``admin_page`` / ``phone_page``
    A logged-in page at 1280 x 800, or at 390 x 844 (a phone), as administrator ``admin``.
``anonymous_page``
    A page at 1280 x 800 with no session.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from postdesk.services.admins import create_admin
from postdesk.services.runtime import Runtime
from postdesk.services.sessions import SetupLink
from postdesk.web.site import create_site

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
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class LiveSite:
    rt: Runtime
    base: str
    setup_link: SetupLink

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests, but {CHROMIUM} is missing")
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def database_kind() -> str:
    return "sqlite"


@pytest.fixture
def live(rt: Runtime) -> Iterator[LiveSite]:
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


def new_page(browser: Browser, viewport: dict[str, int]) -> Iterator[Page]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def log_in(
    page: Page, live: LiveSite, username: str = ADMIN, password: str = ADMIN_PASSWORD
) -> None:
    page.goto(live.url("/login"))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live.url("/mailbox"))


@pytest.fixture
def anonymous_page(browser: Browser) -> Iterator[Page]:
    yield from new_page(browser, DESKTOP)


@pytest.fixture
def admin_user(live: LiveSite) -> str:
    create_admin(live.rt, ADMIN, ADMIN_PASSWORD)
    return ADMIN


@pytest.fixture
def admin_page(browser: Browser, live: LiveSite, admin_user: str) -> Iterator[Page]:
    for page in new_page(browser, DESKTOP):
        log_in(page, live)
        yield page


@pytest.fixture
def phone_page(browser: Browser, live: LiveSite, admin_user: str) -> Iterator[Page]:
    for page in new_page(browser, PHONE):
        log_in(page, live)
        yield page
