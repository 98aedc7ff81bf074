"""What the Mail Sending Record page shows: its query string read, and records as table rows.

The page's query string uses the names of ``GET /api/v1/records`` (``sender``,
``recipient``, ``template``, ``since``, ``until``, ``result``, ``limit``, ``cursor``), so a
filtered view is a link that can be shared, plus two of its own:

- ``tz``: the browser's time zone (an IANA name that the page's script fills in). The two
  dates of "Date Interval" are days in that zone, the same zone "Sending Time" is shown
  in; without it they are UTC days, as in the API.
- ``page``: the page number shown next to the pager (the cursor alone decides the rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from postdesk.domain.recipients import RecipientStatus
from postdesk.domain.records import FILTER_KEYS, RecordFilter
from postdesk.domain.status import AttemptOutcome, MessageStatus, RecordKind
from postdesk.errors import ValidationError
from postdesk.services.records.filters import DEFAULT_LIMIT, parse_limit, parse_record_filter
from postdesk.services.records.views import AttemptView, RecordDetail, RecordView, iso_utc

LIST_PATH = "/mailbox/records"
# Every key the list page reads, in the order links write them.
LIST_KEYS = (*FILTER_KEYS, "limit", "tz", "cursor", "page")
PAGE_SIZES = (20, 50, 100, 200)
RESULT_CHOICES = (("", "All results"), ("success", "Sent"), ("failure", "Failed"),
                  ("pending", "Pending"))  # fmt: skip
SHOWN_ITEMS = 2  # recipients or resources a table cell lists before "+N more"
_MAX_ZONE_NAME = 64
_MAX_PAGE = 1_000_000

_BADGES = {"success": ("sent", "Sent"), "failure": ("failed", "Failed"),
           "pending": ("pending", "Pending")}  # fmt: skip
_KINDS: dict[str, str] = {
    RecordKind.MESSAGE: "Message",
    RecordKind.TEST: "Test mail",
    RecordKind.VERIFICATION_CODE: "Verification code",
}
_STATUS_NOTES: dict[str, str] = {
    MessageStatus.QUEUED: "queued",
    MessageStatus.SENDING: "sending now",
    MessageStatus.RETRYING: "waiting to retry",
}
# Any other outcome (``held``: the login was refused) shows as pending, by its name.
_OUTCOMES: dict[str, tuple[str, str]] = {
    AttemptOutcome.SENT: ("sent", "Sent"),
    AttemptOutcome.FAILED: ("failed", "Failed"),
    AttemptOutcome.RETRYING: ("pending", "Will retry"),
}
_RECIPIENT_BADGES: dict[str, tuple[str, str]] = {
    RecipientStatus.DELIVERED: ("sent", "Delivered"),
    RecipientStatus.REFUSED: ("failed", "Refused"),
    RecipientStatus.PENDING: ("pending", "Pending"),
    RecipientStatus.FAILED: ("failed", "Not delivered"),
}
# The service's words, said in the form's own terms where they name another field.
_FIELD_WORDS = {"must not be before since": "must not be before the From date"}


# ---------------------------------------------------------------- the query string


@dataclass
class RecordQuery:
    """The list page's query string, read: the form's values, the filter, its problems."""

    values: dict[str, str]
    flt: RecordFilter | None
    limit: int
    cursor: str | None
    page_number: int
    zone_name: str | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def filtered(self) -> bool:
        """Whether any filter narrows the records."""
        return any(self.values[key] for key in FILTER_KEYS)

    def url(self, path: str = LIST_PATH, **changes: str | int | None) -> str:
        """``path`` with this query (``changes`` applied), leaving out empty values."""
        merged: dict[str, Any] = {**self.values, **changes}
        if not (merged.get("since") or merged.get("until")):
            merged["tz"] = None  # the zone only matters for the dates
        if str(merged.get("limit") or "") == str(DEFAULT_LIMIT):
            merged["limit"] = None
        if str(merged.get("page") or "") == "1":
            merged["page"] = None
        pairs = [(key, merged[key]) for key in LIST_KEYS if merged.get(key) not in (None, "")]
        return f"{path}?{urlencode(pairs)}" if pairs else path

    def filter_url(self, path: str = LIST_PATH) -> str:
        """``path`` with the filters and page size only: the first page of this view."""
        return self.url(path, cursor=None, page=None)

    def next_url(self, cursor: str) -> str:
        return self.url(cursor=cursor, page=self.page_number + 1)


def read_query(params: Mapping[str, str]) -> RecordQuery:
    """The list page's query string; problems land in ``errors`` keyed by field, never raise."""
    values = {key: (params.get(key) or "").strip() for key in LIST_KEYS}
    zone = _zone(values["tz"])
    errors: dict[str, str] = {}
    filter_input: dict[str, str | None] = {key: values[key] for key in FILTER_KEYS}
    filter_input["since"] = _day_bound(values["since"], zone, end_of_day=False)
    filter_input["until"] = _day_bound(values["until"], zone, end_of_day=True)
    flt: RecordFilter | None = None
    try:
        flt = parse_record_filter(filter_input)
    except ValidationError as exc:
        errors.update({key: _FIELD_WORDS.get(text, text) for key, text in exc.fields.items()})
    limit = DEFAULT_LIMIT
    try:
        limit = parse_limit(values["limit"])
    except ValidationError as exc:
        errors.update(exc.fields)
    page_number = int(values["page"]) if values["page"].isdigit() else 1
    return RecordQuery(
        values=values,
        flt=flt if not errors else None,
        limit=limit,
        cursor=values["cursor"] or None,
        page_number=min(max(page_number, 1), _MAX_PAGE),
        zone_name=str(zone) if zone is not None else None,
        errors=errors,
    )


def _zone(name: str) -> ZoneInfo | None:
    """The time zone called ``name``, or ``None`` (UTC) for no name or an unknown one."""
    if not name or len(name) > _MAX_ZONE_NAME or name.upper() == "UTC":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _day_bound(value: str, zone: ZoneInfo | None, *, end_of_day: bool) -> str:
    """A bare date as the first (or last) moment of that day in ``zone``; else as given.

    Anything else (a date-time, or a typo) goes to the service unchanged, which reads
    it, or names it in its message.
    """
    if zone is None or not value:
        return value
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return value
    if len(value) != len("2025-03-01"):
        return value  # "20250301" and other ISO shapes: let the service read them as UTC
    moment = datetime.combine(day, time.max if end_of_day else time.min, tzinfo=zone)
    return moment.isoformat()


# ---------------------------------------------------------------- rows and details


@dataclass(frozen=True)
class Shortened:
    """A list shown in a narrow cell: the first items, how many more, all of them."""

    shown: list[str]
    more: int
    full: str


def shorten(items: Sequence[str], keep: int = SHOWN_ITEMS) -> Shortened:
    return Shortened(list(items[:keep]), max(len(items) - keep, 0), ", ".join(items))


@dataclass(frozen=True)
class Moment:
    """A time as ``<time datetime="iso">UTC text</time>``; the page script shows it locally."""

    iso: str
    text: str


def moment(value: datetime | None) -> Moment | None:
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return Moment(iso_utc(utc) or "", utc.strftime("%Y-%m-%d %H:%M:%S UTC"))


@dataclass(frozen=True)
class RecordRow:
    """One record as a table row (and the head of its detail page)."""

    id: int
    kind: str
    kind_label: str
    sender: str
    sender_name: str
    ip: str
    recipients: Shortened
    subject: str
    template_name: str
    resources: Shortened
    created: Moment
    finished: Moment | None
    result: str
    badge: str
    result_label: str
    status_note: str
    attempts: int
    error: dict[str, Any] | None


def record_row(record: RecordView) -> RecordRow:
    badge, label = _BADGES[record.result]
    created = moment(record.created_at)
    assert created is not None
    return RecordRow(
        id=record.id,
        kind=record.kind,
        kind_label=_KINDS.get(record.kind, record.kind),
        sender=record.sender,
        sender_name=record.sender_name,
        ip=record.ip or "",
        recipients=shorten(record.recipients),
        subject=record.subject,
        template_name=record.template_name,
        resources=shorten(record.resources),
        created=created,
        finished=moment(record.sent_at),
        result=record.result,
        badge=badge,
        result_label=label,
        status_note=_status_note(record),
        attempts=record.attempts,
        error=record.error,
    )


def _status_note(record: RecordView) -> str:
    if record.refused_count and record.result == "success":
        return f"{record.refused_count} recipient{'s' if record.refused_count > 1 else ''} refused"
    return _STATUS_NOTES.get(record.status, "")


@dataclass(frozen=True)
class AttemptRow:
    number: int
    started: Moment | None
    badge: str
    label: str
    error_code: str
    smtp_code: int | None
    reply: str


def attempt_row(attempt: AttemptView) -> AttemptRow:
    badge, label = _OUTCOMES.get(attempt.outcome, ("pending", attempt.outcome))
    return AttemptRow(
        number=attempt.number,
        started=moment(attempt.started_at),
        badge=badge,
        label=label,
        error_code=attempt.error_code or "",
        smtp_code=attempt.smtp_code,
        reply=attempt.reply or "",
    )


@dataclass(frozen=True)
class RecipientRow:
    """One recipient of a record and what became of it."""

    address: str
    badge: str
    label: str
    smtp_code: int | None
    reply: str


def recipient_rows(detail: RecordDetail) -> list[RecipientRow]:
    """Every recipient of the record with its outcome, in the record's order."""
    return [
        RecipientRow(
            address, *_RECIPIENT_BADGES[result.status], result.smtp_code, result.reply or ""
        )  # fmt: skip
        for address, result in detail.recipient_results
    ]


def csv_file_name(now: datetime) -> str:
    return f"mail-sending-records-{now.astimezone(UTC):%Y%m%d-%H%M}.csv"
