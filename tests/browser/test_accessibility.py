"""Every page checked by axe-core (the accessibility engine of Deque, bundled by
``axe-playwright-python``) in Chromium, at 1280 px and at 390 px: labels, names,
contrast, landmarks, ARIA use. A page passes with no violation at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page

from tests.browser.conftest import DESKTOP, PHONE, LiveSite, log_in, new_page
from tests.support.smtp import SmtpTestServer
from tests.web.test_records_page import add_sender, send

ServerFactory = Callable[..., SmtpTestServer]
AXE = Axe()


def violations(page: Page) -> list[str]:
    """One line per violated rule: its id, impact, and the first offending element."""
    found = AXE.run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {v['nodes'][0]['html'][:160]}" for v in found
    ]


@pytest.fixture(params=["desktop", "phone"])
def page(request: pytest.FixtureRequest, browser: Browser, admin_user: str) -> Iterator[Page]:
    with new_page(browser, DESKTOP if request.param == "desktop" else PHONE) as page:
        yield page


def test_login_and_setup_pages(page: Page, live: LiveSite) -> None:
    page.goto(live.url("/login"))
    assert violations(page) == []
    page.goto(live.url(f"/setup?token={live.setup_link.issue(live.rt) or 'spent'}"))
    assert violations(page) == []


def test_mailbox_empty_with_senders_and_with_the_dialog_open(
    page: Page, live: LiveSite, smtp_server: ServerFactory
) -> None:
    log_in(page, live)
    assert violations(page) == []
    server = smtp_server()
    add_sender(live.rt, server, "reports@example.com", "BI Reports")
    page.goto(live.url("/mailbox"))
    assert violations(page) == []
    page.get_by_role("button", name="Add Sender").click()
    page.get_by_label("Mail Server (SMTP)").fill("127.0.0.1")
    page.get_by_label("Port").fill("1")  # nothing listens there: a diagnosis shows
    page.get_by_label("Sender Address").fill("ops@example.com")
    page.get_by_label("Displayed Name").fill("Ops")
    toggle = page.get_by_role("button", name="Send Test Email")
    if toggle.is_visible():
        toggle.click()
    page.get_by_label("Recipient").fill("you@example.com")
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator("#test-code").wait_for()
    assert violations(page) == []


def test_records_list_and_detail(page: Page, live: LiveSite, smtp_server: ServerFactory) -> None:
    add_sender(live.rt, smtp_server(), "reports@example.com", "BI Reports")
    record_id = send(live.rt, to=["alice@example.org", "bob@example.org"])
    log_in(page, live)
    page.goto(live.url("/mailbox/records"))
    assert violations(page) == []
    page.goto(live.url("/mailbox/records?recipient=nobody-matches"))
    assert violations(page) == []
    page.goto(live.url(f"/mailbox/records/{record_id}"))
    assert violations(page) == []
