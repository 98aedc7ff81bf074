"""The Mail Sending Record page without a browser: filters, detail, pages, CSV, escaping.

Records come from the real pipeline: messages submitted and delivered to aiosmtpd servers
(or test mails sent to them), on a fake clock so that the dates are known.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient

from postdesk.services.access.callers import SYSTEM
from postdesk.services.delivery.drain import drain_once
from postdesk.services.messages.submission import submit_message
from postdesk.services.records.export import iter_records_csv
from postdesk.services.records.filters import parse_record_filter
from postdesk.services.records.lookup import get_record
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as sender_service
from tests.support.smtp import SmtpTestServer, sender_fields

ServerFactory = Callable[..., SmtpTestServer]
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
XSS = "<script>alert(1)</script>"


# ---------------------------------------------------------------- making records


@contextmanager
def at(rt: Runtime, moment: datetime) -> Iterator[None]:
    """Run the pipeline as if it were ``moment`` (the runtime's clock is put back after)."""
    before = rt.clock
    rt.clock = lambda: moment
    try:
        yield
    finally:
        rt.clock = before


def add_sender(rt: Runtime, server: SmtpTestServer, address: str, name: str) -> int:
    view = sender_service.create_sender(
        rt, sender_fields(server.sender(address=address, display_name=name))
    )
    if sender_service.get_mail_settings(rt).default_sender_id is None:
        sender_service.set_default_sender(rt, view.id)
    return view.id


def send(rt: Runtime, when: datetime = T0, **fields: Any) -> int:
    """Submit one message at ``when`` and deliver it at once; its record id."""
    request = {
        "to": ["alice@example.org"],
        "subject": "Daily sales",
        "html": "<p>Sales are up.</p>",
        "template_name": "Daily Sales Report",
        "resources": ["/reports/daily-sales.pdf"],
        **fields,
    }
    with at(rt, when):
        submitted = submit_message(rt, request, caller=SYSTEM, client_ip="10.1.2.3")
        drain(rt)
    return submitted.id


def drain(rt: Runtime) -> None:
    drain_once(rt, worker_id="page-tests", limit=100)


def row_ids(page_html: str) -> list[int]:
    """The record ids of the table rows, in order."""
    return [int(i) for i in re.findall(r'<tr data-href="/mailbox/records/(\d+)', page_html)]


def link(page_html: str, name: str) -> str:
    """The (unescaped) href of the link whose text contains ``name``."""
    for href, text in re.findall(r'<a[^>]*href="([^"]*)"[^>]*>(.*?)</a>', page_html, re.S):
        if name in text:
            return html.unescape(str(href))
    raise AssertionError(f"no link {name!r}")


class Markup(HTMLParser):
    """What a page really holds as markup: its tags, attribute names and inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        if tag == "script" and not dict(attrs).get("src"):
            self.inline_scripts += 1


@pytest.fixture
def relay(smtp_server: ServerFactory) -> SmtpTestServer:
    return smtp_server(refuse={"nobody@example.org": "550 5.1.1 No such user"})


@pytest.fixture
def reports(rt: Runtime, relay: SmtpTestServer) -> int:
    return add_sender(rt, relay, "reports@example.com", "BI Reports")


# ---------------------------------------------------------------- the list and its filters


def test_filters_combine_with_and(
    site: TestClient, logged_in: str, rt: Runtime, relay: SmtpTestServer, reports: int
) -> None:
    alerts = add_sender(rt, relay, "alerts@example.com", "Alerts")
    match = send(rt, T0, to=["Alice@Example.org"], template_name="Daily Sales Report")
    send(rt, T0, to=["bob@example.org"], template_name="Daily Sales Report")
    send(rt, T0, to=["alice@example.org"], template_name="Inventory Alert")
    send(rt, T0, to=["alice@example.org"], sender_id=alerts)
    send(rt, T0 + timedelta(days=3), to=["alice@example.org"])
    everything = site.get("/mailbox/records")
    assert everything.status_code == 200
    assert len(row_ids(everything.text)) == 5
    query = {
        "sender": "REPORTS@example.com",
        "recipient": "alice",
        "template": "sales",
        "since": "2026-03-01",
        "until": "2026-03-03",
        "result": "success",
    }
    page = site.get("/mailbox/records", params=query)
    assert page.status_code == 200
    assert row_ids(page.text) == [match]
    assert 'value="REPORTS@example.com"' in page.text  # the form shows the filter
    assert '<option value="success" selected>Sent</option>' in page.text
    assert row_ids(site.get("/mailbox/records", params={**query, "result": "failure"}).text) == []
    # The sender is an exact address: a part of it matches nothing.
    assert row_ids(site.get("/mailbox/records", params={"sender": "reports"}).text) == []


def test_the_date_interval_is_read_in_the_given_time_zone(
    site: TestClient, logged_in: str, rt: Runtime, reports: int
) -> None:
    late = send(rt, datetime(2026, 3, 2, 17, 30, tzinfo=UTC))  # 3 March, 01:30 in Shanghai
    early = send(rt, datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    day = {"since": "2026-03-03", "until": "2026-03-03"}
    assert row_ids(site.get("/mailbox/records", params=day).text) == []
    shanghai = site.get("/mailbox/records", params={**day, "tz": "Asia/Shanghai"})
    assert row_ids(shanghai.text) == [late]
    assert 'days in <span class="zone-name">Asia/Shanghai</span> time' in shanghai.text
    utc_day = {"since": "2026-03-02", "until": "2026-03-02"}
    assert row_ids(site.get("/mailbox/records", params=utc_day).text) == [late, early]
    # An unknown zone is ignored rather than trusted: the days are UTC days.
    unknown = site.get("/mailbox/records", params={**utc_day, "tz": "../../etc/passwd"})
    assert unknown.status_code == 200
    assert row_ids(unknown.text) == [late, early]


def test_a_bad_filter_is_named_next_to_its_field_with_the_form_kept(
    site: TestClient, logged_in: str, rt: Runtime, reports: int
) -> None:
    send(rt)
    page = site.get(
        "/mailbox/records",
        params={"recipient": "bob@example.org", "since": "yesterday", "result": "maybe"},
    )
    assert page.status_code == 422
    assert "text/html" in page.headers["content-type"]
    assert "Traceback" not in page.text
    since_error = re.search(r'<p class="field-error" id="f-since-error">(.*?)</p>', page.text)
    assert since_error is not None
    assert html.unescape(since_error.group(1)) == (
        "From: 'yesterday' is not an ISO 8601 date or date-time"
    )
    assert 'aria-describedby="f-since-error"' in page.text
    assert 'id="f-result-error">must be one of success, failure, pending<' in page.text
    assert 'value="bob@example.org"' in page.text  # what was typed is kept
    assert "<table" not in page.text and "Export CSV" not in page.text
    reversed_dates = site.get(
        "/mailbox/records", params={"since": "2026-03-05", "until": "2026-03-01"}
    )
    assert reversed_dates.status_code == 422
    assert "To: must not be before the From date" in reversed_dates.text
    assert site.get("/mailbox/records", params={"limit": "0"}).status_code == 422


def test_empty_states_tell_no_mail_from_no_match(
    site: TestClient, logged_in: str, rt: Runtime, reports: int
) -> None:
    empty = site.get("/mailbox/records")
    assert "No mail has been sent yet" in empty.text
    assert "No mail matches these filters" not in empty.text
    send(rt)
    none_match = site.get("/mailbox/records", params={"recipient": "nobody-like-this"})
    assert "No mail matches these filters" in none_match.text
    assert "No mail has been sent yet" not in none_match.text


def test_rows_show_the_columns_result_and_shortened_lists(
    site: TestClient, logged_in: str, rt: Runtime, relay: SmtpTestServer, reports: int
) -> None:
    many = [f"person{i}@example.org" for i in range(5)]
    sent = send(rt, to=many, resources=["/r/a.pdf", "/r/b.xlsx", "/r/c.png"])
    page = site.get("/mailbox/records").text
    headers = re.findall(r'<th scope="col"[^>]*>(.*?)</th>', page)
    assert headers == ["Sender", "IP Address", "Receive Email", "Template Name",
                       "Accessed Resources", "Sending Time", "Sending Result"]  # fmt: skip
    assert "+3 more" in page and "+1 more" in page
    assert f'title="{", ".join(many)}"' in page  # the full list on hover, all in the detail
    assert '<time datetime="2026-03-02T09:30:00+00:00">2026-03-02 09:30:00 UTC</time>' in page
    assert '<span class="badge sent">Sent</span>' in page
    assert row_ids(page) == [sent]


# ---------------------------------------------------------------- detail


def test_the_detail_shows_the_error_hint_attempts_and_refused_recipients(
    site: TestClient, logged_in: str, rt: Runtime, smtp_server: ServerFactory
) -> None:
    spam = smtp_server(replies={"DATA": ["451 4.7.1 Greylisted, try later",
                                          "554 5.7.1 Message rejected as spam"]})  # fmt: skip
    add_sender(rt, spam, "reports@example.com", "BI Reports")
    failed = send(rt, T0, subject="Quarterly figures")
    with at(rt, T0 + timedelta(hours=1)):
        drain(rt)
    record = get_record(rt, failed).record
    assert (record.result, record.error_code) == ("failure", "smtp_rejected_as_spam")
    page = site.get(f"/mailbox/records/{failed}", params={"recipient": "alice", "page": "2"})
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Message rejected as spam" in text
    assert record.error_hint and record.error_hint in text
    assert "smtp_rejected_as_spam" in text
    attempts = re.findall(r'<td class="nowrap" data-label="#"><span>(\d+)</span>', page.text)
    assert attempts == ["1", "2"]
    assert "Greylisted, try later" in text and "Will retry" in text
    assert link(page.text, "Back to the list") == "/mailbox/records?recipient=alice&page=2"

    partly = smtp_server(refuse={"nobody@example.org": "550 5.1.1 No such user"})
    other = add_sender(rt, partly, "ops@example.com", "Ops")
    refused = send(rt, T0, to=["alice@example.org", "nobody@example.org"], sender_id=other)
    listed = site.get("/mailbox/records", params={"recipient": "nobody@"}).text
    assert "1 recipient refused" in listed
    detail = html.unescape(site.get(f"/mailbox/records/{refused}").text)
    assert 'see "Recipients" below' in detail
    assert "nobody@example.org" in detail and "No such user" in detail


def recipient_cells(page_html: str) -> dict[str, str]:
    """The Recipients card's rows: address -> outcome label."""
    card = page_html.split('id="recipients-title"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r'<tr><td class="wrap">([^<]*)</td><td class="nowrap"><span class="badge '
                      r'[a-z]+">([^<]*)</span>', card)  # fmt: skip
    return dict(rows)


def test_the_detail_lists_each_recipient_delivered_refused_or_pending(
    site: TestClient, logged_in: str, rt: Runtime, smtp_server: ServerFactory
) -> None:
    limited = smtp_server(
        rcpt_limit=2,
        refuse={"nobody@example.org": "550 5.1.1 No such user"},
        greylist={"later@example.org": "451 4.7.1 Greylisted, try again later"},
    )
    add_sender(rt, limited, "reports@example.com", "BI Reports")
    to = ["a@example.org", "nobody@example.org", "b@example.org", "later@example.org"]
    record_id = send(rt, T0, to=to, cc=["c@example.org"])

    text = html.unescape(site.get(f"/mailbox/records/{record_id}").text)

    assert recipient_cells(text) == {
        "a@example.org": "Delivered",
        "nobody@example.org": "Refused",
        "b@example.org": "Delivered",
        "later@example.org": "Pending",
        "c@example.org": "Delivered",
    }
    assert "Greylisted, try again later" in text and "No such user" in text


def test_an_unknown_record_is_a_404_page(site: TestClient, logged_in: str) -> None:
    for path in ("/mailbox/records/999", "/mailbox/records/abc", "/mailbox/records/-1"):
        page = site.get(path, params={"template": "sales"})
        assert page.status_code == 404, path
        assert "text/html" in page.headers["content-type"]
        assert "Record not found" in page.text
        assert link(page.text, "Back to Mail Sending Record") == "/mailbox/records?template=sales"


def test_a_test_mail_is_a_record_with_its_kind(
    site: TestClient, logged_in: str, rt: Runtime, relay: SmtpTestServer, reports: int
) -> None:
    from postdesk.services.senders.test_mail import send_test_mail

    result = send_test_mail(rt, to="it@example.org", sender_id=reports)
    page = site.get("/mailbox/records")
    assert row_ids(page.text) == [result.record_id]
    assert "Test mail" in page.text
    detail = site.get(f"/mailbox/records/{result.record_id}").text
    assert "Test mail" in detail and result.message_id in html.unescape(detail)


# ---------------------------------------------------------------- pages


def test_pages_follow_the_cursor_and_keep_the_filters(
    site: TestClient, logged_in: str, rt: Runtime, reports: int
) -> None:
    alice = [send(rt, T0 + timedelta(minutes=i), to=["alice@example.org"]) for i in range(5)]
    send(rt, T0 + timedelta(minutes=9), to=["bob@example.org"])
    first = site.get("/mailbox/records", params={"recipient": "alice", "limit": "2"})
    assert row_ids(first.text) == [alice[4], alice[3]]
    assert "First page" not in first.text
    next_url = link(first.text, "Next")
    assert next_url.startswith("/mailbox/records?recipient=alice&limit=2&cursor=")
    second = site.get(next_url)
    assert row_ids(second.text) == [alice[2], alice[1]]
    assert "Page 2" in second.text
    assert link(second.text, "First page") == "/mailbox/records?recipient=alice&limit=2"
    # The detail of a row on page 2 comes back to page 2.
    detail_url = html.unescape(re.findall(r'<tr data-href="([^"]+)"', second.text)[0])
    back = link(site.get(detail_url).text, "Back to the list")
    assert row_ids(site.get(back).text) == [alice[2], alice[1]]
    third = site.get(link(second.text, "Next"))
    assert row_ids(third.text) == [alice[0]]
    assert 'rel="next"' not in third.text
    forged = site.get("/mailbox/records", params={"recipient": "alice", "cursor": "forged"})
    assert forged.status_code == 422
    assert "This page link is no longer valid." in forged.text


# ---------------------------------------------------------------- CSV export


def test_export_csv_streams_the_current_filter(
    site: TestClient, logged_in: str, rt: Runtime, reports: int
) -> None:
    send(rt, T0, to=["alice@example.org"], template_name='=HYPERLINK("http://evil")')
    send(rt, T0, to=["bob@example.org"], template_name='=HYPERLINK("http://evil")')
    send(rt, T0, to=["alice@example.org"], template_name="Daily Sales Report")
    query = {"recipient": "alice", "template": "hyperlink"}
    page = site.get("/mailbox/records", params=query)
    export_url = link(page.text, "Export CSV")
    assert export_url == "/mailbox/records.csv?recipient=alice&template=hyperlink"
    answer = site.get(export_url)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    disposition = answer.headers["content-disposition"]
    assert re.fullmatch(
        r'attachment; filename="mail-sending-records-\d{8}-\d{4}\.csv"', disposition
    )
    expected = "".join(iter_records_csv(rt, parse_record_filter(query)))
    assert answer.text == expected
    api = site.get("/api/v1/records.csv", params=query)
    assert answer.text == api.text  # the same CSV as the REST API
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0][:4] == ["Sender", "Sender Name", "IP Address", "Receive Email"]
    assert len(rows) == 2
    assert rows[1][3] == "alice@example.org"
    assert rows[1][5] == '\'=HYPERLINK("http://evil")'  # neutralised: never a formula
    bad = site.get("/mailbox/records.csv", params={"since": "soon"})
    assert bad.status_code == 422
    assert "text/html" in bad.headers["content-type"]
    site.cookies.clear()
    assert site.get(export_url).status_code == 303  # the session is required


# ---------------------------------------------------------------- escaping


def test_data_is_shown_as_text_never_as_markup(
    site: TestClient, logged_in: str, rt: Runtime, reports: int
) -> None:
    evil = send(
        rt,
        template_name=XSS,
        subject='"><img src=x onerror=alert(2)>',
        resources=["javascript:alert(3)", '"><svg onload=alert(4)>'],
    )
    for path in ("/mailbox/records", f"/mailbox/records/{evil}"):
        page = site.get(path, params={"template": XSS}).text
        assert "<script>alert" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
        assert "<img src=x" not in page and "<svg onload" not in page, path
        assert 'href="javascript:' not in page, path
        parsed = Markup()
        parsed.feed(page)
        assert parsed.inline_scripts == 0, path
        assert not [a for a in parsed.attributes if a.startswith("on") or a == "style"], path
        assert "img" not in parsed.tags and "svg" not in parsed.tags, path
