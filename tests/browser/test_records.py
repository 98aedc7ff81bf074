"""The Mail Sending Record page in Chromium: filters, detail and back, CSV download, XSS,
the phone width and local times."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from tests.browser.conftest import DESKTOP, PHONE, LiveSite, log_in, new_page
from tests.support.smtp import SmtpTestServer
from tests.web.test_records_page import XSS, add_sender, send

ServerFactory = Callable[..., SmtpTestServer]
MAR_2 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
MAR_5 = datetime(2026, 3, 5, 11, 0, tzinfo=UTC)
MAR_9 = datetime(2026, 3, 9, 15, 45, tzinfo=UTC)


@pytest.fixture
def relay(live: LiveSite, smtp_server: ServerFactory) -> SmtpTestServer:
    server = smtp_server()
    add_sender(live.rt, server, "reports@example.com", "BI Reports")
    return server


def rows(page: Page) -> list[str]:
    """The Receive Email cell of every row, in order."""
    return [
        text.strip()
        for text in page.locator("tbody td[data-label='Receive Email']").all_inner_texts()
    ]


def test_filter_by_receiver_then_open_a_record_and_come_back(
    admin_page: Page, live: LiveSite, relay: SmtpTestServer
) -> None:
    page = admin_page
    send(live.rt, MAR_2, to=["alice@example.org"], subject="For Alice")
    send(live.rt, MAR_5, to=["bob@example.org"], subject="For Bob")
    send(live.rt, MAR_9, to=["carol@example.org"], subject="For Carol")
    page.goto(live.url("/mailbox/records"))
    assert rows(page) == ["carol@example.org", "bob@example.org", "alice@example.org"]
    page.get_by_label("Receiver Email").fill("BOB@")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(live.url("/mailbox/records?recipient=BOB%40"))  # empty fields left out
    assert rows(page) == ["bob@example.org"]
    page.locator("tbody tr").first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="For Bob")).to_be_visible()
    expect(page.get_by_role("heading", name="Attempts")).to_be_visible()
    expect(page.locator(".attempts-table tbody tr")).to_have_count(1)
    expect(page.locator(".attempts-table")).to_contain_text("queued as")
    page.get_by_role("link", name="« Back to the list").first.click()
    expect(page).to_have_url(live.url("/mailbox/records?recipient=BOB%40"))
    expect(page.get_by_label("Receiver Email")).to_have_value("BOB@")
    assert rows(page) == ["bob@example.org"]
    # A click anywhere on a row opens it too.
    page.locator("tbody tr td[data-label='Template Name']").first.click()
    expect(page.get_by_role("heading", name="For Bob")).to_be_visible()


def test_filter_by_date_interval_and_reset(
    admin_page: Page, live: LiveSite, relay: SmtpTestServer
) -> None:
    page = admin_page
    for moment, who in ((MAR_2, "alice"), (MAR_5, "bob"), (MAR_9, "carol")):
        send(live.rt, moment, to=[f"{who}@example.org"])
    page.goto(live.url("/mailbox/records"))
    interval = page.get_by_role("group", name="Date Interval")
    expect(page.get_by_label("Date Interval")).to_have_count(1)  # the group, by its legend
    interval.get_by_label("From", exact=True).fill("2026-03-03")
    interval.get_by_label("To", exact=True).fill("2026-03-09")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r".*since=2026-03-03&until=2026-03-09&tz=.*"))
    assert rows(page) == ["carol@example.org", "bob@example.org"]
    interval.get_by_label("To", exact=True).fill("2026-03-08")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    assert rows(page) == ["bob@example.org"]
    page.get_by_role("link", name="Reset").click()
    expect(page).to_have_url(live.url("/mailbox/records"))
    expect(page.locator("tbody tr")).to_have_count(3)
    expect(interval.get_by_label("From", exact=True)).to_have_value("")


def test_export_csv_downloads_the_filtered_rows(
    admin_page: Page, live: LiveSite, relay: SmtpTestServer
) -> None:
    page = admin_page
    send(live.rt, MAR_2, to=["alice@example.org"], template_name="Daily Sales Report")
    send(live.rt, MAR_5, to=["bob@example.org"], template_name="Daily Sales Report")
    send(live.rt, MAR_9, to=["alice@example.org"], template_name="Inventory Alert")
    page.goto(live.url("/mailbox/records"))
    page.get_by_label("Receiver Email").fill("alice")
    page.get_by_label("Template Name").fill("sales")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    with page.expect_download() as info:
        page.get_by_role("link", name="Export CSV").click()
    download = info.value
    assert download.suggested_filename.startswith("mail-sending-records-")
    assert download.suggested_filename.endswith(".csv")
    path = download.path()
    table = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert [(r["Receive Email"], r["Template Name"]) for r in table] == [
        ("alice@example.org", "Daily Sales Report")
    ]
    assert table[0]["Sending Time"] == "2026-03-02T09:30:00+00:00"


def test_a_script_in_a_template_name_is_shown_as_text(
    admin_page: Page, live: LiveSite, relay: SmtpTestServer
) -> None:
    page = admin_page
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    record = send(
        live.rt,
        MAR_2,
        template_name=XSS,
        subject='"><img src=x onerror=alert(2)>',
        resources=['"><svg onload=alert(3)>'],
    )
    page.goto(live.url("/mailbox/records"))
    expect(page.locator("tbody td[data-label='Template Name']")).to_contain_text(XSS)
    page.goto(live.url(f"/mailbox/records/{record}"))
    expect(page.locator("dl.facts")).to_contain_text(XSS)
    expect(page.get_by_role("heading", level=1)).to_contain_text('"><img src=x onerror=alert(2)>')
    page.goto(live.url(f"/mailbox/records?template={XSS}"))
    expect(page.get_by_label("Template Name")).to_have_value(XSS)
    expect(page.locator("tbody tr")).to_have_count(1)
    assert dialogs == []


def test_the_page_fits_a_phone(phone_page: Page, live: LiveSite, relay: SmtpTestServer) -> None:
    page = phone_page
    long_list = [f"regional.manager.{i}@subsidiary-{i}.example.org" for i in range(6)]
    record = send(
        live.rt,
        MAR_2,
        to=long_list,
        template_name="Quarterly KPI Summary for every regional subsidiary",
        resources=["https://bi.example.com/share/" + "x" * 120],
    )
    for path in ("/mailbox/records", f"/mailbox/records/{record}"):
        page.goto(live.url(path))
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
    page.goto(live.url("/mailbox/records"))
    expect(page.get_by_label("Receiver Email")).to_be_visible()
    expect(page.locator("tbody td[data-label='Receive Email']")).to_contain_text("+4 more")
    box = page.get_by_role("button", name="Search").bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]


def test_sending_time_is_shown_in_the_browsers_time_zone(
    browser: Browser, live: LiveSite, admin_user: str, relay: SmtpTestServer
) -> None:
    late = datetime(2026, 3, 2, 17, 30, tzinfo=UTC)  # 3 March 2026, 01:30 in Shanghai
    send(live.rt, late, to=["alice@example.org"])
    send(live.rt, MAR_2, to=["bob@example.org"])
    with new_page(browser, DESKTOP, timezone_id="Asia/Shanghai", locale="en-US") as page:
        log_in(page, live)
        page.goto(live.url("/mailbox/records"))
        first = page.locator("tbody tr").first.locator("time")
        expect(first).to_have_text("03/03/2026, 01:30:00 AM")
        assert first.get_attribute("datetime") == "2026-03-02T17:30:00+00:00"
        expect(page.locator(".display-zone")).to_have_text("Asia/Shanghai")
        # The Date Interval days are Shanghai days too.
        interval = page.get_by_role("group", name="Date Interval")
        interval.get_by_label("From", exact=True).fill("2026-03-03")
        interval.get_by_label("To", exact=True).fill("2026-03-03")
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(re.compile(r".*tz=Asia%2FShanghai$"))
        assert rows(page) == ["alice@example.org"]
