"""The site in a real browser: ``postdesk`` served by uvicorn on a loopback port, driven
by Debian's Chromium through Playwright (``tests/support/live.py``).

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
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from postdesk.services.access.admins import create_admin
from postdesk.services.runtime import Runtime
from tests.support.live import (
    ADMIN,
    ADMIN_PASSWORD,
    CHROMIUM,
    DESKTOP,
    PHONE,
    LiveSite,
    chromium,
    log_in,
    new_page,
    serve_site,
)

__all__ = ["ADMIN_PASSWORD", "DESKTOP", "PHONE", "LiveSite", "log_in", "new_page"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests, but {CHROMIUM} is missing")
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with chromium() as launched:
        yield launched


@pytest.fixture
def database_kind() -> str:
    return "sqlite"


@pytest.fixture
def live(rt: Runtime) -> Iterator[LiveSite]:
    with serve_site(rt) as site:
        yield site


@pytest.fixture
def anonymous_page(browser: Browser) -> Iterator[Page]:
    with new_page(browser, DESKTOP) as page:
        yield page


@pytest.fixture
def admin_user(live: LiveSite) -> str:
    create_admin(live.rt, ADMIN, ADMIN_PASSWORD)
    return ADMIN


@pytest.fixture
def admin_page(browser: Browser, live: LiveSite, admin_user: str) -> Iterator[Page]:
    with new_page(browser, DESKTOP) as page:
        log_in(page, live)
        yield page


@pytest.fixture
def phone_page(browser: Browser, live: LiveSite, admin_user: str) -> Iterator[Page]:
    with new_page(browser, PHONE) as page:
        log_in(page, live)
        yield page
