"""The README's screenshots of postdesk's pages, at 1280 and 390 pixels wide.

Run from the repository root with the project's virtualenv::

    .venv/bin/python docs/screenshots/take.py

It starts two throw-away installations of postdesk, each with its own temporary
POSTDESK_HOME and a site on a free loopback port, and photographs them in Chromium
(``POSTDESK_TEST_CHROMIUM``, default ``/usr/bin/chromium``); the pictures go next to
this script.

- A new installation: the one-time setup page, the login page, the empty Mailbox, the
  Add Sender dialog after a test email that a local SMTP server refused (wrong
  password), and the Mailbox with three senders.
- An installation that sent some forty mails over two weeks of simulated time through
  postdesk's own queue and delivery, to a local SMTP server that accepts most mail and
  refuses some the way real servers do: the Mail Sending Record and a record's detail.

The pictures::

    setup-phone.png  login-desktop.png
    mailbox-empty-desktop.png  mailbox-dialog-desktop.png  mailbox-dialog-phone.png
    mailbox-desktop.png  mailbox-phone.png
    records-desktop.png  records-phone.png  record-detail-desktop.png  record-detail-phone.png
"""

from __future__ import annotations

import random
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from playwright.sync_api import Browser, Page, ViewportSize

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support import free_port  # noqa: E402
from tests.support.live import (  # noqa: E402
    ADMIN,
    ADMIN_PASSWORD,
    LiveSite,
    chromium,
    log_in,
    new_page,
    serve_site,
)
from tests.support.smtp import ServerOptions, SmtpTestServer  # noqa: E402

from postdesk.config import Settings  # noqa: E402
from postdesk.errors import DeliveryError  # noqa: E402
from postdesk.services.access.admins import create_admin  # noqa: E402
from postdesk.services.access.callers import SYSTEM  # noqa: E402
from postdesk.services.delivery.claims import claim_due  # noqa: E402
from postdesk.services.delivery.deliver import deliver_claimed  # noqa: E402
from postdesk.services.messages.submission import submit_message  # noqa: E402
from postdesk.services.runtime import Clock, Runtime, open_runtime, system_clock  # noqa: E402
from postdesk.services.senders import accounts as sender_service  # noqa: E402
from postdesk.services.senders.test_mail import send_test_mail  # noqa: E402

OUT = Path(__file__).resolve().parent
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


# Shared steps: a site on a loopback port, a browser, a page per viewport, logging in.


@contextmanager
def running_site(clock: Clock = system_clock) -> Iterator[LiveSite]:
    """A fresh installation (no administrator yet) served on a free loopback port."""
    with tempfile.TemporaryDirectory(prefix="postdesk-shots-") as home:
        rt = open_runtime(Settings.from_env({"POSTDESK_HOME": home}), clock=clock)
        try:
            with serve_site(rt) as site:
                yield site
        finally:
            rt.close()


@contextmanager
def shot_page(browser: Browser, viewport: ViewportSize) -> Iterator[Page]:
    with new_page(browser, viewport, timezone_id="Europe/Berlin", device_scale_factor=1) as page:
        yield page


def shoot(page: Page, name: str, *, full_page: bool = False) -> None:
    page.screenshot(path=OUT / f"{name}.png", full_page=full_page)


# The Mailbox, and the pages before it: setup and login.


@contextmanager
def refusing_smtp() -> Iterator[SmtpTestServer]:
    """An SMTP server whose password is not the one the Add Sender dialog will type."""
    smtp = SmtpTestServer(
        ServerOptions(credentials=("reports@example.com", "the-authorization-code")),
        trustme.CA(),
    )
    try:
        yield smtp
    finally:
        smtp.stop()


def failing_test_email(page: Page, smtp: SmtpTestServer) -> None:
    """The Add Sender dialog after a test email the server refused (wrong password)."""
    page.get_by_role("button", name="Add Sender").click()
    page.get_by_label("Provider").select_option(label="QQ Mail")
    page.get_by_label("Mail Server (SMTP)").fill(smtp.host)
    page.get_by_label("Port").fill(str(smtp.port))
    page.get_by_label("Encryption").select_option(label="No Encryption")
    page.get_by_label("Sender Address").fill("reports@example.com")
    page.get_by_label("Password", exact=True).fill("my-qq-password")
    page.get_by_label("Displayed Name").fill("BI Reports")
    page.get_by_role("button", name="Send Test Email").click()
    page.get_by_label("Recipient").fill("ops@example.com")
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator("#test-code").wait_for()


def add_three_senders(rt: Runtime) -> None:
    first = sender_service.create_sender(
        rt,
        {
            "smtp_host": "smtp.qq.com",
            "port": 465,
            "encryption": "ssl",
            "address": "bi#reports&ops@qq.com",
            "password": "authorization-code",
            "display_name": "BI Reports",
            "preset": "qq",
        },
    )
    sender_service.create_sender(
        rt,
        {
            "smtp_host": "smtp.office365.com",
            "port": 587,
            "encryption": "tls",
            "address": "alerts@contoso.example",
            "display_name": "Platform Alerts",
        },
    )
    sender_service.create_sender(
        rt,
        {
            "smtp_host": "10.20.0.5",
            "port": 25,
            "encryption": "none",
            "address": "noreply@intranet.example",
            "username": "svc-reports",
            "display_name": "Intranet Relay",
        },
    )
    sender_service.set_default_sender(rt, first.id)


def shoot_mailbox(browser: Browser) -> None:
    with (
        refusing_smtp() as smtp,
        running_site() as site,
        shot_page(browser, DESKTOP) as desktop,
        shot_page(browser, PHONE) as phone,
    ):
        token = site.setup_link.issue(site.rt)
        phone.goto(f"{site.base}/setup?token={token}")
        phone.get_by_role("heading", name="Create the first administrator").wait_for()
        shoot(phone, "setup-phone", full_page=True)

        create_admin(site.rt, ADMIN, ADMIN_PASSWORD)
        desktop.goto(site.base + "/login")
        shoot(desktop, "login-desktop")

        log_in(desktop, site)
        shoot(desktop, "mailbox-empty-desktop", full_page=True)
        failing_test_email(desktop, smtp)
        shoot(desktop, "mailbox-dialog-desktop")
        desktop.keyboard.press("Escape")

        add_three_senders(site.rt)
        desktop.goto(site.base + "/mailbox?notice=default_saved")
        shoot(desktop, "mailbox-desktop", full_page=True)

        log_in(phone, site)
        shoot(phone, "mailbox-phone", full_page=True)
        failing_test_email(phone, smtp)
        phone.locator("#test-result").scroll_into_view_if_needed()
        shoot(phone, "mailbox-dialog-phone")


# The Mail Sending Record, after two weeks of mail.


class Relay:
    """An SMTP server that answers like a company relay: refuses unknown users and spam.

    aiosmtpd calls each hook with server, session and envelope; these read only some.
    """

    async def handle_RCPT(  # noqa: N802
        self,
        server: Any,  # noqa: ARG002
        session: Any,  # noqa: ARG002
        envelope: Any,
        address: str,
        options: Any,  # noqa: ARG002
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 <" + address + ">: Recipient address rejected: User unknown"
        if address.startswith("full@"):
            return "452 4.2.2 Mailbox full, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002
        content = bytes(envelope.original_content or b"")
        if b"Special offer" in content:
            return "554 5.7.1 Message rejected as spam (content filter score 9.1)"
        return f"250 2.0.0 Ok: queued as {random.randrange(16**8):08X}"  # noqa: S311


@contextmanager
def company_relay() -> Iterator[int]:
    relay = Controller(Relay(), hostname="127.0.0.1", port=free_port())
    relay.start()
    try:
        yield relay.port
    finally:
        relay.stop()


class SimulatedClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def drain(rt: Runtime) -> None:
    ids = claim_due(rt, worker_id="screenshots", limit=100)
    deliver_claimed(rt, ids, worker_id="screenshots", rng=random.Random(7))  # noqa: S311


def seed(rt: Runtime, clock: SimulatedClock, smtp_port: int) -> None:
    """Four senders and some forty mails over two weeks, with the failures real life brings."""

    def add_sender(address: str, name: str, port: int = smtp_port, **extra: Any) -> int:
        fields = {"smtp_host": "127.0.0.1", "port": port, "encryption": "none",
                  "address": address, "display_name": name, "timeout_s": 3, **extra}  # fmt: skip
        return sender_service.create_sender(rt, fields).id

    reports = add_sender("bi-reports@example.com", "BI Reports")
    alerts = add_sender("ops#alerts&stock@example.com", "Inventory Alerts")
    accounts = add_sender("no-reply@example.com", "Account Service")
    legacy = add_sender("legacy@example.com", "Legacy Relay", port=free_port())
    sender_service.set_default_sender(rt, reports)

    def mail(sender: int, to: list[str], subject: str, template: str, resources: list[str],
             ip: str, **extra: Any) -> None:  # fmt: skip
        request = {"to": to, "subject": subject, "html": f"<p>{subject}</p>",
                   "sender_id": sender, "template_name": template, "resources": resources,
                   "client_ip": ip, **extra}  # fmt: skip
        submit_message(rt, request, caller=SYSTEM, client_ip=ip)

    managers = ["sales.manager@example.com", "cfo@example.com", "regional.east@example.com",
                "regional.west@example.com", "regional.north@example.com"]  # fmt: skip
    for day in range(14):
        clock.now = START + timedelta(days=day)
        mail(reports, managers[: 2 + day % 4], f"Daily Sales Report {clock.now:%Y-%m-%d}",
             "Daily Sales Report",
             [f"/reports/sales/daily-{clock.now:%Y%m%d}.pdf", "/dashboards/sales-overview"],
             "10.20.0.15")  # fmt: skip
        drain(rt)
        clock.now += timedelta(hours=2, minutes=17)
        if day % 3 == 0:
            mail(alerts, ["warehouse@example.com", "purchasing@example.com"],
                 "Stock below minimum: 4 items", "Inventory Alert",
                 ["/reports/inventory/low-stock.xlsx"], "10.20.0.31")  # fmt: skip
            drain(rt)
        clock.now += timedelta(hours=3, minutes=41)
        mail(accounts, [f"user{day}@example.org"], "Your verification code", "Verification Code",
             [], f"203.0.113.{20 + day}")  # fmt: skip
        drain(rt)
        if day % 5 == 1:
            clock.now += timedelta(minutes=9)
            mail(accounts, ["nobody@example.org"], "Your verification code",
                 "Verification Code", [], "198.51.100.7")  # fmt: skip
            drain(rt)
    # A promotion the relay takes for spam, and a report where one address is unknown.
    clock.now = START + timedelta(days=12, hours=9)
    mail(reports, ["customers@example.org"], "Special offer: upgrade your dashboard plan",
         "Marketing Newsletter", ["https://bi.example.com/offers/spring"],
         "10.20.0.15")  # fmt: skip
    mail(reports, ["board@example.com", "nobody@example.com", "investors@example.com"],
         "Quarterly KPI Summary Q1", "Quarterly KPI Summary",
         ["/reports/kpi/q1-summary.pdf", "/reports/kpi/q1-details.xlsx",
          "/dashboards/kpi", "https://bi.example.com/share/kpi-q1"], "10.20.0.15")  # fmt: skip
    drain(rt)
    # The legacy relay is gone: five attempts over an hour, then given up.
    clock.now = START + timedelta(days=13, hours=6)
    mail(legacy, ["archive@example.com"], "Monthly Archive Export", "Monthly Archive",
         ["/exports/archive-2026-02.zip"], "10.20.0.44")  # fmt: skip
    for _ in range(5):
        drain(rt)
        clock.now += timedelta(minutes=31)
    # A mailbox that is full: retried, still pending.
    clock.now = START + timedelta(days=13, hours=8)
    mail(alerts, ["full@example.com"], "Stock below minimum: 2 items", "Inventory Alert",
         ["/reports/inventory/low-stock.xlsx"], "10.20.0.31")  # fmt: skip
    drain(rt)
    # Test mails from the Mailbox page: one that works, one before a wrong port was saved.
    clock.now = START + timedelta(days=13, hours=9, minutes=5)
    send_test_mail(rt, to="it-admin@example.com", sender_id=reports, client_ip="10.20.0.2")
    clock.now += timedelta(minutes=2)
    with suppress(DeliveryError):
        send_test_mail(rt, to="it-admin@example.com", sender_id=legacy, client_ip="10.20.0.2")
    # Fresh in the queue.
    clock.now = START + timedelta(days=13, hours=9, minutes=30)
    mail(reports, ["sales.manager@example.com"], "Weekly Pipeline", "Weekly Pipeline Report",
         ["/reports/sales/pipeline.pdf"], "10.20.0.15")  # fmt: skip


def search_all_records(page: Page, base: str) -> None:
    """The records page after a search, 20 to a page: every filter shown, then the mail."""
    page.goto(base + "/mailbox/records")
    page.get_by_label("Receiver Email").fill("@example.com")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**recipient=*")
    page.get_by_label("Receiver Email").fill("")
    page.get_by_label("Per page").select_option("20")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()


def scroll_to_first_records(page: Page) -> None:
    """What a phone shows after one swipe: the end of the filters, then the first cards."""
    page.locator(".record-filters .field", has=page.get_by_label("Per page")).evaluate(
        "field => window.scrollTo(0, field.getBoundingClientRect().top + window.scrollY - 8)"
    )


def shoot_records(browser: Browser) -> None:
    clock = SimulatedClock()
    with company_relay() as relay_port, running_site(clock) as site:
        create_admin(site.rt, ADMIN, ADMIN_PASSWORD)
        seed(site.rt, clock, relay_port)
        site.rt.clock = system_clock
        for name, viewport in VIEWPORTS.items():
            with shot_page(browser, viewport) as page:
                log_in(page, site)
                search_all_records(page, site.base)
                if name == "phone":
                    scroll_to_first_records(page)
                    shoot(page, "records-phone")
                else:
                    shoot(page, "records-desktop", full_page=True)
                page.locator("tr", has_text="Quarterly KPI Summary").get_by_role("link").click()
                page.get_by_role("heading", name="Attempts").wait_for()
                shoot(page, f"record-detail-{name}", full_page=True)


def main() -> None:
    with chromium() as browser:
        shoot_mailbox(browser)
        shoot_records(browser)
    for picture in sorted(OUT.glob("*.png")):
        print(picture.relative_to(ROOT))


if __name__ == "__main__":
    main()
