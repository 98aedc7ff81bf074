"""The mail sending record on both databases: filters, order, pages, detail, CSV, purge."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from postdesk.domain import records as record_filters
from postdesk.domain.records import RecordFilter, recipients_search_text, result_of
from postdesk.errors import NotFoundError, ValidationError
from postdesk.services.records import export as record_export
from postdesk.services.records import retention as record_retention
from postdesk.services.records.export import CSV_COLUMNS, iter_records_csv
from postdesk.services.records.filters import parse_limit, parse_record_filter
from postdesk.services.records.lookup import get_record, search_records
from postdesk.services.records.retention import purge_records
from postdesk.services.runtime import Runtime
from postdesk.storage import record_search
from postdesk.storage.models import Attachment, Attempt, Message

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def add_record(rt: Runtime, **given: Any) -> int:
    """Store one message as the pipeline would; ``to`` / ``cc`` / ``bcc`` are address lists."""
    to, cc, bcc = given.pop("to", ["alice@example.org"]), given.pop("cc", []), given.pop("bcc", [])
    status = given.pop("status", "sent")
    fields: dict[str, Any] = {
        "kind": "message",
        "status": status,
        "sender_address": "reports@example.com",
        "sender_name": "Reports",
        "client_ip": "10.0.0.1",
        "recipients": [*to, *cc, *bcc],
        "to_addrs": to,
        "cc_addrs": cc,
        "bcc_addrs": bcc,
        "recipients_search": recipients_search_text([*to, *cc, *bcc]),
        "subject": "Daily sales",
        "template_name": "Daily Sales Report",
        "resources": ["/reports/daily-sales.pdf"],
        "attempts": 1 if status in ("sent", "failed") else 0,
        "created_at": T0,
    }
    fields.update(given)
    if "sent_at" not in given and status in ("sent", "failed"):
        fields["sent_at"] = fields["created_at"] + timedelta(seconds=2)
    with rt.transaction() as session:
        row = Message(**fields)
        session.add(row)
        session.flush()
        return row.id


def ids(rt: Runtime, limit: int = 500, **filters: str) -> list[int]:
    page = search_records(rt, parse_record_filter(filters), limit=limit)
    return [r.id for r in page.items]


def walk(rt: Runtime, flt: RecordFilter, limit: int) -> list[int]:
    """Every page of ``flt``, first to last."""
    seen: list[int] = []
    cursor = None
    while True:
        page = search_records(rt, flt, limit=limit, cursor=cursor)
        seen += [r.id for r in page.items]
        if page.next_cursor is None:
            return seen
        assert len(page.items) == limit
        cursor = page.next_cursor


# ---------------------------------------------------------------- parsing


def test_empty_parameters_filter_nothing() -> None:
    empty = RecordFilter(None, None, None, None, None, None)
    assert parse_record_filter({}) == empty
    assert parse_record_filter(dict.fromkeys(record_filters.FILTER_KEYS, "  ")) == empty
    assert parse_record_filter({"limit": "5", "cursor": "x"}) == empty  # other keys ignored


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        ("2025-03-01", "2025-03-02", ("2025-03-01T00:00:00", "2025-03-02T23:59:59.999999")),
        ("2025-03-01T08:30", "2025-03-01T09:00:00", ("2025-03-01T08:30:00", "2025-03-01T09:00:00")),
        ("20250301", "20250301", ("2025-03-01T00:00:00", "2025-03-01T23:59:59.999999")),
        (
            "2025-03-01T08:30:00+08:00", "2025-03-01T01:00:00Z",
            ("2025-03-01T00:30:00", "2025-03-01T01:00:00"),
        ),
    ],
)  # fmt: skip
def test_dates_are_inclusive_utc(since: str, until: str, expected: tuple[str, str]) -> None:
    flt = parse_record_filter({"since": since, "until": until})
    assert flt.since == datetime.fromisoformat(expected[0]).replace(tzinfo=UTC)
    assert flt.until == datetime.fromisoformat(expected[1]).replace(tzinfo=UTC)


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_record_filter(
            {
                "sender": "a@b.c\r\nBcc: x@y.z",
                "recipient": "x" * 321,
                "template": "t\x00",
                "since": "yesterday",
                "until": "2025-02-30",
                "result": "sent",
            }
        )
    assert set(caught.value.fields) == set(record_filters.FILTER_KEYS)
    assert caught.value.hint


@pytest.mark.parametrize("raw", ["0001-01-01T00:00+01:00", "2025-03-01T24:00", "2025-13", "now"])
def test_impossible_moments_are_invalid(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_record_filter({"since": raw})
    assert set(caught.value.fields) == {"since"}


def test_since_after_until_is_invalid() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_record_filter({"since": "2025-03-02", "until": "2025-03-01"})
    assert set(caught.value.fields) == {"until"}
    # The same day on both ends is one whole day.
    flt = parse_record_filter({"since": "2025-03-01", "until": "2025-03-01"})
    assert flt.until is not None and flt.since is not None
    assert flt.until - flt.since == timedelta(days=1, microseconds=-1)


def test_result_in_any_case() -> None:
    assert parse_record_filter({"result": " Failure "}).result == "failure"


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 50), ("", 50), ("1", 1), (" 500 ", 500), (7, 7)]
)
def test_limit(raw: str | int | None, expected: int) -> None:
    assert parse_limit(raw) == expected


@pytest.mark.parametrize("raw", ["0", "501", "-1", "ten", "1.5", "²", "9" * 5000, 0, 501, True])
def test_bad_limit(raw: str | int) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_limit(raw)
    assert set(caught.value.fields) == {"limit"}


# ---------------------------------------------------------------- filters


@dataclass(frozen=True)
class Seeded:
    ids: dict[str, int]


@pytest.fixture
def seeded(rt: Runtime) -> Seeded:
    """Nine records, each named for what makes it stand out."""
    day = timedelta(days=1)
    made = {
        "plain": add_record(rt, created_at=T0 - 5 * day),
        "other_sender": add_record(
            rt, sender_address="Alerts@Example.com", created_at=T0 - 4 * day
        ),
        "cc_bob": add_record(rt, cc=["Bob.Lee@Corp.example"], created_at=T0 - 3 * day),
        "bcc_carol": add_record(rt, bcc=["carol@corp.example"], created_at=T0 - 2 * day),
        "weekly": add_record(rt, template_name="Weekly KPI Review", created_at=T0 - day),
        "failed": add_record(
            rt,
            status="failed",
            error_code="smtp_auth_failed",
            error_message="535 5.7.8 Authentication credentials invalid",
            error_hint="use the authorization code",
            smtp_code=535,
            created_at=T0,
        ),
        "queued": add_record(rt, status="queued", created_at=T0 + day),
        "retrying": add_record(rt, status="retrying", created_at=T0 + 2 * day),
        "no_template": add_record(rt, kind="test", template_name="", created_at=T0 + 3 * day),
    }
    return Seeded(made)


def named(seeded: Seeded, *names: str) -> list[int]:
    """The ids of ``names``, newest first."""
    return sorted((seeded.ids[n] for n in names), reverse=True)


def test_no_filter_lists_everything_newest_first(rt: Runtime, seeded: Seeded) -> None:
    assert ids(rt) == sorted(seeded.ids.values(), reverse=True)


def test_sender_is_exact_in_any_case(rt: Runtime, seeded: Seeded) -> None:
    assert ids(rt, sender="ALERTS@example.COM") == named(seeded, "other_sender")
    assert ids(rt, sender="alerts@example") == []
    assert ids(rt, sender="lerts@example.com") == []


def test_recipient_is_a_substring_of_to_cc_or_bcc_in_any_case(rt: Runtime, seeded: Seeded) -> None:
    assert ids(rt, recipient="bob.lee@corp") == named(seeded, "cc_bob")
    assert ids(rt, recipient="CORP.EXAMPLE") == named(seeded, "cc_bob", "bcc_carol")
    assert ids(rt, recipient="Alice@Example.Org") == sorted(set(seeded.ids.values()), reverse=True)


def test_template_is_a_substring_in_any_case(rt: Runtime, seeded: Seeded) -> None:
    assert ids(rt, template="kpi") == named(seeded, "weekly")
    assert ids(rt, template="SALES REP") == named(
        seeded, *(n for n in seeded.ids if n not in ("weekly", "no_template"))
    )


def test_dates_are_inclusive(rt: Runtime, seeded: Seeded) -> None:
    assert ids(rt, since=(T0 - timedelta(days=1)).isoformat(), until=T0.isoformat()) == named(
        seeded, "weekly", "failed"
    )
    # A date until takes in that whole day, to the last microsecond.
    last = add_record(rt, created_at=datetime(2025, 3, 10, 23, 59, 59, 999999, tzinfo=UTC))
    after = add_record(rt, created_at=datetime(2025, 3, 11, 0, 0, tzinfo=UTC))
    on_the_day = ids(rt, since="2025-03-10", until="2025-03-10")
    assert on_the_day == [last, seeded.ids["failed"]]
    assert after not in on_the_day


def test_result(rt: Runtime, seeded: Seeded) -> None:
    assert ids(rt, result="failure") == named(seeded, "failed")
    assert ids(rt, result="pending") == named(seeded, "queued", "retrying")
    assert ids(rt, result="success") == named(
        seeded, *(n for n in seeded.ids if n not in ("failed", "queued", "retrying"))
    )


def test_filters_combine_with_and(rt: Runtime, seeded: Seeded) -> None:
    assert ids(rt, recipient="corp.example", since=(T0 - timedelta(days=2)).isoformat()) == (
        named(seeded, "bcc_carol")
    )
    assert ids(rt, recipient="corp.example", result="failure") == []
    assert ids(
        rt, sender="REPORTS@example.com", template="report", result="pending", until="2025-03-11"
    ) == named(seeded, "queued")


def test_like_wildcards_are_literal(rt: Runtime) -> None:
    underscore = add_record(rt, to=["a_b@example.org"], template_name="100% done")
    plain = add_record(rt, to=["axb@example.org"], template_name="1000 done")
    assert ids(rt, recipient="a_b") == [underscore]
    assert ids(rt, recipient="ax") == [plain]
    assert ids(rt, template="0%") == [underscore]
    assert ids(rt, template="%") == [underscore]
    assert ids(rt, recipient="\\") == []


def test_one_and_two_characters_are_found_without_a_trigram_index(rt: Runtime) -> None:
    short = add_record(rt, to=["q@x.io"], template_name="Q3")
    add_record(rt, to=["someone@example.org"], template_name="Daily")
    assert ids(rt, recipient="Q@") == [short]
    assert ids(rt, template="q3") == [short]
    assert ids(rt, template="3") == [short]
    assert ids(rt, recipient="zz") == []


def test_international_recipients_in_any_case(rt: Runtime) -> None:
    mine = add_record(rt, to=["Ärger@Beispiel.de", "用户@例子.公司"])
    assert ids(rt, recipient="ärger@") == [mine]
    assert ids(rt, recipient="ÄRGER") == [mine]
    assert ids(rt, recipient="例子.公司") == [mine]


def test_equal_times_are_ordered_by_id(rt: Runtime) -> None:
    first, second, third = (add_record(rt) for _ in range(3))
    older = add_record(rt, created_at=T0 - timedelta(seconds=1))
    assert ids(rt) == [third, second, first, older]


# ---------------------------------------------------------------- pages


def test_pages_walk_everything_once_while_records_arrive(rt: Runtime) -> None:
    made = [add_record(rt, created_at=T0 + timedelta(minutes=n % 7)) for n in range(23)]
    flt = parse_record_filter({})
    seen: list[int] = []
    page = search_records(rt, flt, limit=4)
    while True:
        seen += [r.id for r in page.items]
        # New mail keeps arriving between pages: it is newer, so it never shifts the walk.
        add_record(rt, created_at=T0 + timedelta(days=1))
        if page.next_cursor is None:
            break
        page = search_records(rt, flt, limit=4, cursor=page.next_cursor)
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))
    assert seen == [r for r in ids(rt) if r in made]


def test_last_full_page_has_no_next_cursor(rt: Runtime) -> None:
    for _ in range(4):
        add_record(rt)
    page = search_records(rt, parse_record_filter({}), limit=4)
    assert len(page.items) == 4
    assert page.next_cursor is None
    assert search_records(rt, parse_record_filter({}), limit=3).next_cursor is not None


@pytest.mark.parametrize("cursor", ["nonsense", "cjEuMS4x", "=" * 8, "€", "cjEuMTIzNDU2Nzg5.AAAA"])
def test_a_bad_cursor_is_a_validation_error(rt: Runtime, cursor: str) -> None:
    with pytest.raises(ValidationError) as caught:
        search_records(rt, parse_record_filter({}), cursor=cursor)
    assert set(caught.value.fields) == {"cursor"}


def test_a_tampered_cursor_is_refused(rt: Runtime) -> None:
    for _ in range(3):
        add_record(rt)
    cursor = search_records(rt, parse_record_filter({}), limit=1).next_cursor
    assert cursor is not None
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    with pytest.raises(ValidationError):
        search_records(rt, parse_record_filter({}), cursor=tampered)


def test_limit_is_checked_by_search_too(rt: Runtime) -> None:
    with pytest.raises(ValidationError):
        search_records(rt, parse_record_filter({}), limit=501)


# ---------------------------------------------------------------- every plan, same answers


@dataclass(frozen=True)
class Row:
    id: int
    sender: str
    recipients: list[str]
    template: str
    created_at: datetime
    status: str


VOCABULARY = {
    "senders": ["bi@corp.example", "alerts@corp.example", "Ops@Branch.example"],
    "people": ["ann", "bob", "carol", "dan_x", "eve%", "zoé", "li.wei"],
    "domains": ["corp.example", "branch.example", "mail.example.org"],
    "templates": ["Daily Sales", "Weekly KPI", "Monthly Sales Review", "Alert", ""],
    "statuses": ["sent"] * 6 + ["failed", "queued", "retrying", "sending"],
}


def _random_rows(rnd: random.Random, count: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        people = rnd.sample(VOCABULARY["people"], rnd.randint(1, 3))
        rows.append(
            {
                "sender_address": rnd.choice(VOCABULARY["senders"]),
                "to": [f"{p}@{rnd.choice(VOCABULARY['domains'])}" for p in people],
                "template_name": rnd.choice(VOCABULARY["templates"]),
                "status": rnd.choice(VOCABULARY["statuses"]),
                # Creation times repeat and run against id order, as with concurrent callers.
                "created_at": T0 + timedelta(minutes=rnd.randrange(0, 400, 7) + (n % 3)),
            }
        )
    return rows


def _random_filter(rnd: random.Random) -> dict[str, str]:
    choices = {
        "sender": lambda: rnd.choice([*VOCABULARY["senders"], "OPS@branch.EXAMPLE"]),
        "recipient": lambda: rnd.choice(
            ["ann@", "n@c", "corp", "CORP.EX", "x@", "_x", "e%@", "zoé@", "li.we", "o", "zz"]
        ),
        "template": lambda: rnd.choice(["sales", "kpi", "SALES REV", "a", "ly ", "xyz"]),
        "since": lambda: (T0 + timedelta(minutes=rnd.randrange(0, 300))).isoformat(),
        "until": lambda: (T0 + timedelta(minutes=rnd.randrange(200, 500))).isoformat(),
        "result": lambda: rnd.choice(["success", "failure", "pending"]),
    }
    keys = rnd.sample(sorted(choices), rnd.randint(1, 3))
    return {key: choices[key]() for key in keys}


def _expected(rows: Sequence[Row], flt: RecordFilter) -> list[int]:
    def keep(row: Row) -> bool:
        text = "\n".join(r.lower() for r in row.recipients)
        return (
            (flt.sender is None or row.sender.lower() == flt.sender.lower())
            and (flt.recipient is None or flt.recipient.lower() in text)
            and (flt.template is None or flt.template.lower() in row.template.lower())
            and (flt.since is None or row.created_at >= flt.since)
            and (flt.until is None or row.created_at <= flt.until)
            and (flt.result is None or result_of(row.status) == flt.result)
        )

    matches = sorted((r for r in rows if keep(r)), key=lambda r: (r.created_at, r.id))
    return [r.id for r in reversed(matches)]


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows small enough for a hundred records to take every step of the search."""
    monkeypatch.setattr(record_search, "SCAN_WINDOW", 6)
    monkeypatch.setattr(record_search, "SCAN_BUDGET", 15)


@pytest.mark.usefixtures("small_windows")
def test_every_step_of_the_search_gives_the_plain_answer(rt: Runtime) -> None:
    rnd = random.Random(20250310)
    rows = []
    for fields in _random_rows(rnd, 140):
        record_id = add_record(rt, **fields)
        rows.append(
            Row(
                record_id,
                fields["sender_address"],
                fields["to"],
                fields["template_name"],
                fields["created_at"],
                fields["status"],
            )
        )
    for _ in range(60):
        params = _random_filter(rnd)
        try:
            flt = parse_record_filter(params)
        except ValidationError:
            continue  # since after until
        limit = rnd.choice([1, 3, 8, 50])
        assert walk(rt, flt, limit) == _expected(rows, flt), (params, limit)


@pytest.mark.usefixtures("small_windows")
def test_the_trigram_index_follows_inserts_updates_and_deletes(rt: Runtime) -> None:
    for n in range(30):
        add_record(rt, to=[f"filler{n}@example.org"], created_at=T0 + timedelta(minutes=n))
    rare = add_record(rt, to=["needle@rare.example"], template_name="Quarterly Audit")
    for n in range(30):
        add_record(rt, to=[f"later{n}@example.org"], created_at=T0 + timedelta(hours=2, minutes=n))
    assert ids(rt, recipient="needle@rare") == [rare]
    assert ids(rt, template="quarterly aud") == [rare]
    with rt.transaction() as session:
        session.execute(
            update(Message)
            .where(Message.id == rare)
            .values(
                recipients_search="thread@moved.example",
                template_name="Annual Audit",
                status="failed",
            )
        )
    assert ids(rt, recipient="needle@rare") == []
    assert ids(rt, recipient="thread@moved") == [rare]
    assert ids(rt, template="annual aud", result="failure") == [rare]
    with rt.transaction() as session:
        session.delete(session.get(Message, rare))
    assert ids(rt, recipient="thread@moved") == []


# ---------------------------------------------------------------- one record


def test_record_fields_as_in_the_specification(rt: Runtime) -> None:
    sent = add_record(rt, bcc=["hidden@example.org"], client_ip="2001:db8::1")
    failed = add_record(
        rt,
        status="failed",
        error_code="smtp_recipient_rejected",
        error_message="550 no such user",
        error_hint="check the recipient address",
        smtp_code=550,
        attempts=1,
    )
    pending = add_record(
        rt,
        status="retrying",
        error_code="smtp_throttled",
        error_message="451 4.7.1 try again later",
        error_hint="wait about a minute",
        smtp_code=451,
        attempts=2,
    )
    queued = add_record(rt, status="queued")
    items = {r.id: r.to_dict() for r in search_records(rt, parse_record_filter({})).items}
    assert set(items[sent]) == {
        "id", "kind", "sender", "sender_name", "ip", "recipients", "subject", "template_name",
        "resources", "created_at", "sent_at", "result", "error", "attempts",
    }  # fmt: skip
    assert items[sent]["recipients"] == ["alice@example.org", "hidden@example.org"]
    assert items[sent]["ip"] == "2001:db8::1"
    assert items[sent]["created_at"] == "2025-03-10T12:00:00+00:00"
    assert items[sent]["sent_at"] == "2025-03-10T12:00:02+00:00"
    assert (items[sent]["result"], items[sent]["error"]) == ("success", None)
    assert items[failed]["error"] == {
        "code": "smtp_recipient_rejected",
        "message": "550 no such user",
        "hint": "check the recipient address",
        "smtp_code": 550,
    }
    assert items[pending]["result"] == "pending"
    # A pending mail whose last attempt failed says why it is still waiting.
    assert items[pending]["error"] == {
        "code": "smtp_throttled",
        "message": "451 4.7.1 try again later",
        "hint": "wait about a minute",
        "smtp_code": 451,
    }
    assert items[pending]["sent_at"] is None
    assert (items[queued]["result"], items[queued]["error"]) == ("pending", None)


def test_detail_has_the_attempt_history(rt: Runtime) -> None:
    record_id = add_record(rt, status="sent", attempts=2, message_id="<abc@postdesk>")
    with rt.transaction() as session:
        for number, outcome, code, reply in (
            (2, "sent", None, "250 OK"),
            (1, "retrying", "smtp_throttled", "421 try later"),
        ):
            session.add(
                Attempt(
                    message_id=record_id,
                    number=number,
                    started_at=T0 + timedelta(minutes=number),
                    ended_at=T0 + timedelta(minutes=number, seconds=1),
                    outcome=outcome,
                    error_code=code,
                    smtp_code=int(reply[:3]),
                    reply=reply,
                )
            )
    detail = get_record(rt, record_id).to_dict()
    assert detail["message_id"] == "<abc@postdesk>"
    assert detail["status"] == "sent"
    assert detail["attempts"] == 2
    assert detail["attempt_history"] == [
        {
            "number": 1,
            "started_at": "2025-03-10T12:01:00+00:00",
            "ended_at": "2025-03-10T12:01:01+00:00",
            "outcome": "retrying",
            "error_code": "smtp_throttled",
            "smtp_code": 421,
            "reply": "421 try later",
        },
        {
            "number": 2,
            "started_at": "2025-03-10T12:02:00+00:00",
            "ended_at": "2025-03-10T12:02:01+00:00",
            "outcome": "sent",
            "error_code": None,
            "smtp_code": 250,
            "reply": "250 OK",
        },
    ]


def test_detail_of_a_missing_record(rt: Runtime) -> None:
    with pytest.raises(NotFoundError):
        get_record(rt, 424242)


# ---------------------------------------------------------------- CSV


def _parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_has_the_ui_columns_and_the_same_records(rt: Runtime) -> None:
    add_record(rt, subject='Sales, "Q1"\nsummary', sender_name="报表中心")
    add_record(
        rt,
        status="failed",
        error_code="smtp_auth_failed",
        error_message="535 auth failed",
        to=["a@example.org", "b@example.org"],
        resources=["/r/1.pdf", "https://bi.example/r/2"],
    )
    text = "".join(iter_records_csv(rt, parse_record_filter({})))
    assert text.startswith(",".join(CSV_COLUMNS) + "\r\n")
    header, failed, sent = _parse_csv(text)
    assert header == list(CSV_COLUMNS)
    assert sent[:5] == [
        "reports@example.com", "报表中心", "10.0.0.1", "alice@example.org", 'Sales, "Q1"\nsummary',
    ]  # fmt: skip
    assert sent[7:] == ["2025-03-10T12:00:00+00:00", "success", "", ""]
    assert failed[3] == "a@example.org; b@example.org"
    assert failed[6] == "/r/1.pdf; https://bi.example/r/2"
    assert failed[8:] == ["failure", "smtp_auth_failed", "535 auth failed"]
    text.encode("utf-8")  # all of it is text a UTF-8 stream carries


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "＝"])
def test_csv_cells_cannot_run_as_formulas(rt: Runtime, start: str) -> None:
    payload = f'{start}HYPERLINK("http://evil.example","x")'
    add_record(
        rt,
        sender_name=payload,
        subject=payload,
        template_name=payload,
        resources=[payload],
        to=[f"{start}cmd@example.org"],
        client_ip=payload[:45],
        status="failed",
        error_code=payload[:64],
        error_message=payload,
    )
    [_, row] = _parse_csv("".join(iter_records_csv(rt, parse_record_filter({}))))
    # Every text cell but the sender address (a validated sender's) and the two postdesk
    # writes itself: Sending Time and Sending Result.
    assert [cell.startswith("'") for cell in row] == [False, *[True] * 6, False, False, True, True]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r", "＝")) for cell in row)


def test_csv_is_streamed_in_batches_and_follows_the_filter(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(record_export, "CSV_BATCH", 2)
    made = [add_record(rt, created_at=T0 + timedelta(minutes=n)) for n in range(5)]
    add_record(rt, template_name="Other")
    batches: list[int] = []
    chunks = iter_records_csv(
        rt, parse_record_filter({"template": "sales"}), on_batch=batches.append
    )
    header = next(chunks)
    assert header == ",".join(CSV_COLUMNS) + "\r\n"
    # Between chunks no transaction is open: a writer goes ahead at once.
    first = next(chunks)
    add_record(rt, created_at=T0 + timedelta(days=1))
    rest = list(chunks)
    assert batches == [2, 2, 1]
    rows = _parse_csv(first + "".join(rest))
    assert len(rows) == len(made)
    assert [r[7] for r in rows] == [
        (T0 + timedelta(minutes=n)).isoformat() for n in reversed(range(5))
    ]
    limited = list(iter_records_csv(rt, parse_record_filter({}), limit=3))
    assert len(_parse_csv("".join(limited[1:]))) == 3


def test_csv_of_nothing_is_the_header(rt: Runtime) -> None:
    assert list(iter_records_csv(rt, parse_record_filter({"sender": "no@one.example"}))) == [
        ",".join(CSV_COLUMNS) + "\r\n"
    ]


# ---------------------------------------------------------------- retention


def test_purge_deletes_finished_records_older_than_the_retention(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(record_retention, "PURGE_BATCH", 2)
    now = T0 + timedelta(days=rt.settings.record_retention_days)
    old = [
        add_record(rt, status=status, created_at=T0 - timedelta(seconds=n + 1))
        for n, status in enumerate(["sent", "failed", "sent", "sent", "failed"])
    ]
    with rt.transaction() as session:
        session.add(
            Attempt(message_id=old[0], number=1, started_at=T0, ended_at=T0, outcome="sent")
        )
        session.add(
            Attachment(
                message_id=old[0],
                position=0,
                filename="r.pdf",
                content_type="application/pdf",
                size=1,
                encoded=b"QQ==",
            )
        )
    stuck = add_record(rt, status="retrying", created_at=T0 - timedelta(days=1))
    boundary = add_record(rt, created_at=T0)  # exactly retention days old: kept
    young = add_record(rt, created_at=now)
    assert purge_records(rt, now=now) == len(old)
    assert sorted(ids(rt)) == sorted([stuck, boundary, young])
    with rt.transaction() as session:
        assert session.query(Attempt).count() == 0
        assert session.query(Attachment).count() == 0
    assert purge_records(rt, now=now) == 0


def test_purge_uses_the_clock(rt: Runtime) -> None:
    add_record(rt, created_at=rt.clock() - timedelta(days=rt.settings.record_retention_days + 1))
    kept = add_record(rt, created_at=rt.clock())
    assert purge_records(rt) == 1
    assert ids(rt) == [kept]


def test_detail_lists_the_recipients_refused_while_others_got_the_mail(rt: Runtime) -> None:
    record_id = add_record(rt, status="sent")
    refused = {"nobody@example.org": {"smtp_code": 550, "reply": "5.1.1 No such user"}}
    with rt.transaction() as session:
        row = session.get(Message, record_id)
        assert row is not None
        row.recipient_results = refused
    assert get_record(rt, record_id).to_dict()["refused_recipients"] == refused
    # The listing keeps the SPEC's record fields; the refusals belong to the detail.
    [listed] = search_records(rt, parse_record_filter({})).items
    assert "refused_recipients" not in listed.to_dict()
