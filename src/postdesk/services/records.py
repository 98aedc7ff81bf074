"""The mail sending record: filter, page through, show, export as CSV and purge the records.

Every message is a record (SPEC section 1, "Sending records"). The filters, all combined
with AND:

- ``sender``: the sender address, exactly but in any case;
- ``recipient``: a substring of any to / cc / bcc address, in any case;
- ``template``: a substring of the template name, in any case;
- ``since`` / ``until``: the creation time, both ends inclusive; a date ``until`` takes
  in that whole day, a date-time without a zone is UTC;
- ``result``: ``success``, ``failure`` or ``pending``.

Records come newest first: ``ORDER BY created_at DESC, id DESC``. Not by id alone: a
date interval must be read in the listing order from one index, or a week three months
back costs a scan of everything newer (measured at a million records: 0.2 s on SQLite,
up to seconds on PostgreSQL). The two orders differ only for a record stored after a
newer one (a test mail is stored when its SMTP exchange ends). Pages follow a keyset
cursor (the last record's creation time and id, with a MAC under the installation's key):
a page never repeats or skips a record, however many records arrive meanwhile. "Sending
Time" in the CSV and the CLI table is ``created_at``, the time the interval selects by.

How each filter stays fast at a million records (the indexes: migration 0003):

- sender, result, since / until, and no filter: B-tree indexes ending in
  ``created_at, id`` yield the matching records already in order, so a page reads about
  ``limit`` index entries, and one bound per side keeps the planner on them.
- recipient, template (three characters or more), in up to three steps:
  1. read the newest SCAN_WINDOW candidates (the records the other filters let through)
     in order, stopping when the page is full: a common substring ends here;
  2. if that window found some matches, read on in order up to SCAN_BUDGET more
     candidates, where the window's rate of matches says the page should fill;
  3. otherwise, or if still short, a trigram index finds the candidates (PostgreSQL:
     ``pg_trgm`` GIN indexes; SQLite: an FTS5 ``trigram`` table), asked for the two or
     three trigrams of the substring that are rarest among the window's texts, so that
     it reads short posting lists; each candidate is then checked exactly.
  Neither planner can make these choices: SQLite keeps no statistics, and PostgreSQL
  underrates a trigram index that must read long posting lists.
- recipient, template of one or two characters: no trigram index can help; records are
  read newest first until the page is full: quick for a common substring, a scan of
  every candidate for one that (almost) never occurs (about a second at a million).

Case: recipients are stored lower-cased by Python, so any case matches. Sender and template
are lower-cased by the database: on SQLite that folds ASCII letters only.
"""

from __future__ import annotations

import base64
import csv
import hmac
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Text,
    column,
    delete,
    func,
    select,
    table,
    text,
    true,
    tuple_,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from postdesk.domain.records import FINAL_STATUSES, RESULTS, STATUSES_OF_RESULT, result_of
from postdesk.errors import NotFoundError, ValidationError
from postdesk.services.runtime import Runtime
from postdesk.storage.models import Attempt, Message

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# A substring search first reads this many of the newest candidates (and samples their texts).
SCAN_WINDOW = 2000
# It reads on in order up to this many more when the window suggests that fills the page.
SCAN_BUDGET = 20_000
# Records per query of a CSV export; each batch is one short read transaction.
CSV_BATCH = 1000
# Records deleted per transaction by purge_records.
PURGE_BATCH = 1000
# Trigram indexes need a substring of at least this many characters.
TRIGRAM = 3

FILTER_KEYS = ("sender", "recipient", "template", "since", "until", "result")
_MAX_TEXT = {"sender": 320, "recipient": 320, "template": 255}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")
# SQLite's trigram index over the searched texts (migration 0003); rowid = messages.id.
_FTS = table(
    "search_messages_fts",
    column("rowid", Integer),
    column("recipients_search", Text),
    column("template_name", Text),
)

CSV_COLUMNS = (
    "Sender",
    "Sender Name",
    "IP Address",
    "Receive Email",
    "Subject",
    "Template Name",
    "Accessed Resources",
    "Sending Time",
    "Sending Result",
    "Error Code",
    "Error Message",
)
# A spreadsheet takes a cell starting with one of these for a formula (or a field separator).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")

# The columns a record shows: never the bodies, attachments or queue bookkeeping.
_RECORD_COLUMNS = (
    Message.id,
    Message.kind,
    Message.status,
    Message.sender_address,
    Message.sender_name,
    Message.client_ip,
    Message.recipients,
    Message.subject,
    Message.template_name,
    Message.resources,
    Message.created_at,
    Message.sent_at,
    Message.attempts,
    Message.error_code,
    Message.error_message,
    Message.error_hint,
    Message.smtp_code,
)


# ---------------------------------------------------------------- records as shown


@dataclass(frozen=True)
class RecordFilter:
    """What to look for; ``None`` leaves a filter out. Build it with parse_record_filter."""

    sender: str | None = None
    recipient: str | None = None
    template: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    result: str | None = None


@dataclass(frozen=True)
class RecordView:
    """One sending record as the API, the CSV export and the CLI show it."""

    id: int
    kind: str
    status: str
    sender: str
    sender_name: str
    ip: str | None
    recipients: list[str]
    subject: str
    template_name: str
    resources: list[str]
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    error_code: str | None = None
    error_message: str | None = None
    error_hint: str | None = None
    smtp_code: int | None = None

    @property
    def result(self) -> str:
        return result_of(self.status)

    @property
    def error(self) -> dict[str, Any] | None:
        """``{code, message, hint, smtp_code}`` for a failure, else ``None``."""
        if self.result != "failure":
            return None
        return {
            "code": self.error_code,
            "message": self.error_message,
            "hint": self.error_hint,
            "smtp_code": self.smtp_code,
        }

    def to_dict(self) -> dict[str, Any]:
        """The SPEC's record: times in ISO 8601, UTC."""
        return {
            "id": self.id,
            "kind": self.kind,
            "sender": self.sender,
            "sender_name": self.sender_name,
            "ip": self.ip,
            "recipients": list(self.recipients),
            "subject": self.subject,
            "template_name": self.template_name,
            "resources": list(self.resources),
            "created_at": _iso(self.created_at),
            "sent_at": _iso(self.sent_at),
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
        }


@dataclass(frozen=True)
class AttemptView:
    """One SMTP attempt of a record and how it ended."""

    number: int
    started_at: datetime
    ended_at: datetime
    outcome: str
    error_code: str | None
    smtp_code: int | None
    reply: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "outcome": self.outcome,
            "error_code": self.error_code,
            "smtp_code": self.smtp_code,
            "reply": self.reply,
        }


@dataclass(frozen=True)
class RecordDetail:
    """A record with its Message-ID, status and attempt history (``GET /records/{id}``)."""

    record: RecordView
    message_id: str | None
    attempt_history: list[AttemptView] = field(default_factory=list)
    # Recipients the server refused while it accepted the others: address -> reply.
    refused_recipients: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.record.status

    def to_dict(self) -> dict[str, Any]:
        data = self.record.to_dict()
        data["message_id"] = self.message_id
        data["status"] = self.record.status
        data["attempt_history"] = [a.to_dict() for a in self.attempt_history]
        data["refused_recipients"] = self.refused_recipients
        return data


@dataclass(frozen=True)
class RecordPage:
    """One page of records, newest first; ``next_cursor`` is ``None`` on the last page."""

    items: list[RecordView]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [r.to_dict() for r in self.items], "next_cursor": self.next_cursor}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


# ---------------------------------------------------------------- parsing the filters


def parse_record_filter(params: Mapping[str, str | None]) -> RecordFilter:
    """A filter from query parameters or CLI options; other keys are ignored.

    Raises ``ValidationError`` naming every bad field at once.
    """
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    for key in ("sender", "recipient", "template"):
        values[key] = _text(params.get(key), key, problems)
    values["since"] = _moment(params.get("since"), "since", problems, end_of_day=False)
    values["until"] = _moment(params.get("until"), "until", problems, end_of_day=True)
    values["result"] = _result(params.get("result"), problems)
    since, until = values["since"], values["until"]
    if since is not None and until is not None and since > until:
        problems["until"] = "must not be before since"
    if problems:
        raise ValidationError(problems, hint=_FILTER_HINT)
    return RecordFilter(**values)


_FILTER_HINT = (
    "Dates are ISO 8601: 2025-03-01 or 2025-03-01T08:30:00 (UTC unless a zone is given); "
    "result is success, failure or pending."
)


def _text(raw: str | None, key: str, problems: dict[str, str]) -> str | None:
    value = (raw or "").strip()
    if not value:
        return None
    if _CONTROL.search(value):
        problems[key] = "must not contain line breaks or control characters"
    elif len(value) > _MAX_TEXT[key]:
        problems[key] = f"must be at most {_MAX_TEXT[key]} characters"
    return value


def _moment(
    raw: str | None, key: str, problems: dict[str, str], *, end_of_day: bool
) -> datetime | None:
    value = (raw or "").strip()
    if not value:
        return None
    try:
        return parse_moment(value, end_of_day=end_of_day)
    except (ValueError, OverflowError):
        problems[key] = f"{value!r} is not an ISO 8601 date or date-time"
        return None


def parse_moment(value: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time as an aware UTC datetime (``ValueError`` if it is neither).

    A bare date means its first moment, or with ``end_of_day`` its last microsecond, so
    that an inclusive ``until`` takes in the whole day. A date-time without a zone is UTC.
    """
    try:
        day = date.fromisoformat(value)
    except ValueError:
        moment = datetime.fromisoformat(value)
    else:
        moment = datetime.combine(day, time.max if end_of_day else time.min)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _result(raw: str | None, problems: dict[str, str]) -> str | None:
    value = (raw or "").strip().lower()
    if not value:
        return None
    if value not in RESULTS:
        problems["result"] = f"must be one of {', '.join(RESULTS)}"
        return None
    return value


def parse_limit(value: str | int | None) -> int:
    """The page size: 1–500, 50 when absent; ``ValidationError`` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_LIMIT
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None or not 1 <= number <= MAX_LIMIT:
        raise ValidationError(
            {"limit": f"must be a whole number from 1 to {MAX_LIMIT}"},
            hint=f"Leave it out for {DEFAULT_LIMIT} records a page.",
        )
    return number


# ---------------------------------------------------------------- the cursor

_CURSOR_VERSION = "r1"
_Key = tuple[datetime, int]


def encode_cursor(rt: Runtime, key: _Key) -> str:
    """An opaque cursor for the records after ``key`` (creation time, id)."""
    created_at, record_id = key
    micros = _epoch_micros(created_at)
    payload = f"{_CURSOR_VERSION}.{micros}.{record_id}"
    mac = rt.secrets.mac(f"records cursor {payload}")[:16]
    return base64.urlsafe_b64encode(f"{payload}.{mac}".encode()).decode().rstrip("=")


def decode_cursor(rt: Runtime, cursor: str) -> _Key:
    """The key a cursor stands for; ``ValidationError`` if it is not one postdesk made."""
    try:
        padded = cursor.strip() + "=" * (-len(cursor.strip()) % 4)
        version, micros, record_id, mac = (
            base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii").split(".")
        )
        payload = f"{version}.{micros}.{record_id}"
        expected = rt.secrets.mac(f"records cursor {payload}")[:16]
        if version != _CURSOR_VERSION or not hmac.compare_digest(mac, expected):
            raise ValueError("not signed")
        return _from_epoch_micros(int(micros)), int(record_id)
    except (ValueError, UnicodeError, OverflowError):
        raise ValidationError(
            {"cursor": "is not a cursor from this postdesk"},
            hint="Start again from the first page (leave the cursor out).",
        ) from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _from_epoch_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


# ---------------------------------------------------------------- searching


def search_records(
    rt: Runtime, flt: RecordFilter, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> RecordPage:
    """One page of the records matching ``flt``, newest first, after ``cursor``.

    ``ValidationError`` for a limit outside 1–500 or a cursor postdesk did not make.
    """
    limit = parse_limit(limit)
    after = decode_cursor(rt, cursor) if cursor else None
    with rt.transaction() as session:
        rows = _Search(session, flt).rows(after, limit + 1)
    items = [_view(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(rt, (items[-1].created_at, items[-1].id))
    return RecordPage(items=items, next_cursor=next_cursor)


def get_record(rt: Runtime, record_id: int) -> RecordDetail:
    """One record with its attempts, oldest first; ``NotFoundError`` if there is none."""
    with rt.transaction() as session:
        query = select(*_RECORD_COLUMNS, Message.message_id, Message.recipient_results).where(
            Message.id == record_id
        )
        row = session.execute(query).first()
        if row is None:
            raise NotFoundError(
                f"there is no record {record_id}",
                hint="Records older than POSTDESK_RECORD_RETENTION_DAYS are purged.",
            )
        attempts = session.scalars(
            select(Attempt).where(Attempt.message_id == record_id).order_by(Attempt.number)
        ).all()
        history = [_attempt_view(attempt) for attempt in attempts]
    return RecordDetail(
        record=_view(row),
        message_id=row.message_id,
        attempt_history=history,
        refused_recipients=dict(row.recipient_results or {}),
    )


def _view(row: Row[Any]) -> RecordView:
    return RecordView(
        id=row.id,
        kind=row.kind,
        status=row.status,
        sender=row.sender_address,
        sender_name=row.sender_name,
        ip=row.client_ip,
        recipients=list(row.recipients or []),
        subject=row.subject,
        template_name=row.template_name,
        resources=list(row.resources or []),
        created_at=row.created_at,
        sent_at=row.sent_at,
        attempts=row.attempts,
        error_code=row.error_code,
        error_message=row.error_message,
        error_hint=row.error_hint,
        smtp_code=row.smtp_code,
    )


def _attempt_view(attempt: Attempt) -> AttemptView:
    return AttemptView(
        number=attempt.number,
        started_at=attempt.started_at,
        ended_at=attempt.ended_at,
        outcome=attempt.outcome,
        error_code=attempt.error_code,
        smtp_code=attempt.smtp_code,
        reply=attempt.reply,
    )


_ORDER = (Message.created_at.desc(), Message.id.desc())
# PostgreSQL planner settings for the search's own transaction (set_config(..., true) is
# SET LOCAL):
# - plan_cache_mode: psycopg prepares statements that run often, and PostgreSQL may then
#   plan one once for all values; but trigram index or ordered scan depends on the values.
# - random_page_cost at most 1.1 (the usual value for SSDs and cached tables): with the
#   default 4.0 (spinning disks) the planner prefers reading a hundred thousand records in
#   created_at order to fetching two thousand through the sender index (measured at a
#   million records: 77 ms against 3 ms). A lower value the server has is kept.
_POSTGRES_SEARCH_SETTINGS = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('random_page_cost', "
    "least(current_setting('random_page_cost')::float8, 1.1)::text, true)"
)
_Wrap = Callable[[Any], Any]


def _as_is(column: Any) -> Any:
    return column


def _unindexed(column: Any) -> Any:
    """``+column``: the same value, which SQLite's planner will not look up in an index."""
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


@dataclass(frozen=True)
class _Span:
    """A stretch of the listing: below ``after`` (excluded) down to ``end`` (included)."""

    after: _Key | None = None
    end: _Key | None = None


class _Search:
    """One search on one session: the filter as conditions, and the plan of the module doc."""

    def __init__(self, session: Session, flt: RecordFilter) -> None:
        # Plain Core execution: the ORM's row handling costs milliseconds on a window.
        self.db = session.connection()
        self.flt = flt
        self.sqlite = self.db.dialect.name == "sqlite"
        self.needles = _Needles.of(flt)
        self.checks = self.needles.checks(postgresql=not self.sqlite)
        if not self.sqlite:
            self.db.execute(_POSTGRES_SEARCH_SETTINGS)

    def rows(self, after: _Key | None, count: int) -> list[Row[Any]]:
        """Up to ``count`` matching rows after ``after``, newest first.

        Each step reads a stretch of the listing between explicit keys, right below the
        last: no record is read twice or skipped, even while records arrive meanwhile.
        """
        if not self.needles.indexable:
            # Nothing for a trigram index to do: read in order until the page is full.
            return self._fetch(_Span(after), count)
        # 1. The newest SCAN_WINDOW candidates, read in order: a common substring ends here.
        rows = self._scan(_Span(after), SCAN_WINDOW, count)
        if len(rows) >= count:
            return rows
        window = self._window(after)
        if window.end is None:
            return rows  # the window held every candidate
        rows = self._between(_Span(after, window.end), SCAN_WINDOW, count)  # to a fixed end
        after = window.end
        # 2. Common enough that reading on in order should fill the page within SCAN_BUDGET
        #    (a cost no planner can judge: SQLite keeps no statistics, and PostgreSQL
        #    underrates a trigram index that must read long posting lists).
        if (count - len(rows)) * SCAN_WINDOW <= len(rows) * SCAN_BUDGET:
            end = self._nth_key(_Span(after), SCAN_BUDGET)
            rows += self._between(_Span(after, end), SCAN_BUDGET, count - len(rows))
            if len(rows) >= count or end is None:
                return rows
            after = end
        # 3. Rare: the trigram index finds the candidates; only the page is read whole.
        ids = self._rare_ids(_Span(after), window, count - len(rows))
        return rows + self._fetch_ids(ids)

    def _between(self, span: _Span, budget: int, count: int) -> list[Row[Any]]:
        """The first ``count`` matches in a stretch of at most ``budget`` candidates.

        On PostgreSQL through _scan: planned with the substring checks in the query, an
        ordered scan of created_at (whose estimate assumes the checks pass a third of all
        records) can look cheaper than the index of the other filters and then read a
        hundred times more. SQLite has no such estimates: the bounds keep it on the index.
        """
        if self.sqlite:
            return self._fetch(span, count)
        return self._scan(span, budget, count)

    def _scan(self, span: _Span, budget: int, count: int) -> list[Row[Any]]:
        """Matches among the first ``budget`` candidates of ``span``, read in order.

        The reading stops as soon as ``count`` matches are found (the subquery's LIMIT
        bounds the work, the outer LIMIT ends it early). Where it stopped is not known:
        use the rows only if there are ``count`` of them.
        """
        columns = [*_RECORD_COLUMNS, Message.recipients_search]
        candidates = (
            select(*columns)
            .where(*self._conditions(span))
            .order_by(*_ORDER)
            .limit(budget)
            .subquery()
        )
        checks = self.needles.checks(postgresql=not self.sqlite, source=candidates)
        query = (
            select(*(candidates.c[column.key] for column in _RECORD_COLUMNS))
            .where(*checks)
            .order_by(candidates.c.created_at.desc(), candidates.c.id.desc())
            .limit(count)
        )
        return list(self.db.execute(query).all())

    def _conditions(self, span: _Span, wrap: _Wrap = _as_is) -> list[ColumnElement[bool]]:
        """The filters an index ending in ``created_at, id`` answers in order, and the span.

        One bound on each side: two upper bounds on created_at (``until`` and the cursor)
        make SQLite pick one of them for the index range, not always the tighter.
        """
        flt = self.flt
        conditions: list[ColumnElement[bool]] = []
        if flt.sender is not None:
            conditions.append(wrap(func.lower(Message.sender_address)) == func.lower(flt.sender))
        if flt.result is not None:
            statuses = STATUSES_OF_RESULT[flt.result]
            status = wrap(Message.status)
            conditions.append(status == statuses[0] if len(statuses) == 1 else status.in_(statuses))
        key = tuple_(wrap(Message.created_at), wrap(Message.id))
        if span.after is not None and (flt.until is None or span.after[0] <= flt.until):
            conditions.append(key < span.after)
        elif flt.until is not None:
            conditions.append(wrap(Message.created_at) <= flt.until)
        if span.end is not None and (flt.since is None or span.end[0] >= flt.since):
            conditions.append(key >= span.end)
        elif flt.since is not None:
            conditions.append(wrap(Message.created_at) >= flt.since)
        return conditions

    def _fetch(self, span: _Span, count: int) -> list[Row[Any]]:
        query = (
            select(*_RECORD_COLUMNS)
            .where(*self._conditions(span), *self.checks)
            .order_by(*_ORDER)
            .limit(count)
        )
        return list(self.db.execute(query).all())

    def _fetch_ids(self, ids: Sequence[int]) -> list[Row[Any]]:
        if not ids:
            return []
        query = select(*_RECORD_COLUMNS).where(Message.id.in_(ids)).order_by(*_ORDER)
        return list(self.db.execute(query).all())

    def _window(self, after: _Key | None) -> _Window:
        query = (
            select(Message.id, Message.recipients_search, Message.template_name)
            .where(*self._conditions(_Span(after)))
            .order_by(*_ORDER)
            .limit(SCAN_WINDOW)
        )
        rows = self.db.execute(query).all()
        end = None
        if len(rows) == SCAN_WINDOW:
            # Only the last creation time is needed: converting them all costs milliseconds.
            last = rows[-1][0]
            created_at = self.db.scalar(select(Message.created_at).where(Message.id == last))
            end = None if created_at is None else (created_at, last)
        return _Window([row[1] for row in rows], [row[2].lower() for row in rows], end)

    def _nth_key(self, span: _Span, n: int) -> _Key | None:
        """The key of the ``n``-th candidate in ``span``, or ``None`` if there are fewer."""
        query = (
            select(Message.created_at, Message.id)
            .where(*self._conditions(span))
            .order_by(*_ORDER)
            .offset(n - 1)
            .limit(1)
        )
        row = self.db.execute(query).first()
        return None if row is None else (row[0], row[1])

    def _rare_ids(self, span: _Span, window: _Window, count: int) -> list[int]:
        """The ids of the newest matches in ``span``, found through the trigram index."""
        if self.sqlite:
            # An index on created_at (say) would give the order but read every record: make
            # SQLite start from the FTS5 candidates (unary + keeps a term off the indexes).
            conditions = [*self._conditions(span, _unindexed), self.needles.fts5_match(window)]
        else:
            conditions = [*self._conditions(span), *self.needles.trigram_like(window)]
        query = select(Message.id).where(*conditions, *self.checks).order_by(*_ORDER).limit(count)
        return list(self.db.scalars(query).all())


@dataclass(frozen=True)
class _Window:
    """The texts of the newest candidates (lower-case), and the key of the oldest of them.

    ``end`` is ``None`` when the window holds every candidate there is.
    """

    recipients: list[str]
    templates: list[str]
    end: _Key | None


@dataclass(frozen=True)
class _Needles:
    """The recipient (lower-cased, as stored) and template substrings of a filter."""

    recipient: str | None
    template: str | None

    @classmethod
    def of(cls, flt: RecordFilter) -> _Needles:
        recipient = flt.recipient.lower() if flt.recipient is not None else None
        return cls(recipient=recipient, template=flt.template)

    @property
    def indexable(self) -> bool:
        """Whether a trigram index can narrow the search (a substring of 3+ characters)."""
        return any(len(s) >= TRIGRAM for s in (self.recipient, self.template) if s)

    def checks(
        self, *, postgresql: bool, source: Any = Message.__table__
    ) -> list[ColumnElement[bool]]:
        """The exact conditions, checked against each candidate record of ``source``.

        Plain string positions, not LIKE: on PostgreSQL a LIKE of fewer than three
        characters would send the planner to a whole trigram index (seconds).
        """
        position = func.strpos if postgresql else func.instr
        conditions: list[ColumnElement[bool]] = []
        if self.recipient is not None:
            conditions.append(position(source.c.recipients_search, self.recipient) > 0)
        if self.template is not None:
            template = func.lower(source.c.template_name)
            conditions.append(position(template, func.lower(self.template)) > 0)
        return conditions

    def trigram_like(self, window: _Window) -> list[ColumnElement[bool]]:
        """PostgreSQL: a LIKE the pg_trgm index answers for each rare trigram.

        pg_trgm keeps only letters and digits in its trigrams, so only such pieces serve;
        a substring without one gets no index condition (it is found by reading on).
        """
        conditions: list[ColumnElement[bool]] = []
        if self.recipient is not None:
            for piece in rarest_trigrams(self.recipient, window.recipients, usable=str.isalnum):
                conditions.append(Message.recipients_search.like(_contains(piece), escape="\\"))
        if self.template is not None:
            lowered = func.lower(Message.template_name)
            for piece in rarest_trigrams(self.template, window.templates, usable=str.isalnum):
                conditions.append(lowered.like(func.lower(_contains(piece)), escape="\\"))
        return conditions

    def fts5_match(self, window: _Window) -> ColumnElement[bool]:
        """SQLite: the records whose FTS5 trigram index holds every rare trigram.

        The FTS5 table keeps no column detail, so a trigram may come from the other text:
        the candidates are a superset, which the checks narrow.
        """
        pieces: list[str] = []
        if self.recipient is not None:
            pieces += rarest_trigrams(self.recipient, window.recipients)
        if self.template is not None:
            pieces += rarest_trigrams(self.template, window.templates)
        if not pieces:
            return true()  # pragma: no cover - some substring has three characters or more
        query = " AND ".join('"' + piece.replace('"', '""') + '"' for piece in pieces)
        match = text(f"{_FTS.name} MATCH :fts_query").bindparams(fts_query=query)
        return Message.id.in_(select(_FTS.c.rowid).where(match))


def rarest_trigrams(
    needle: str,
    texts: Sequence[str],
    *,
    usable: Callable[[str], bool] = lambda piece: True,
    most: int = 3,
) -> list[str]:
    """Up to ``most`` three-character pieces of ``needle`` that few of ``texts`` contain.

    Greedy: each piece is the one that the fewest texts still in play contain, and only
    those texts stay in play. It stops at a piece that would rule out no text, or once two
    pieces leave no text at all. ``texts`` are lower-case; the pieces keep the case of
    ``needle``. An empty list when ``needle`` has no usable trigram.
    """
    pieces = {needle[i : i + TRIGRAM] for i in range(len(needle) - TRIGRAM + 1)}
    candidates = sorted(piece for piece in pieces if usable(piece))
    chosen: list[str] = []
    remaining = list(texts)
    while candidates and len(chosen) < most:
        blob = "\n".join(remaining)
        best = min(candidates, key=lambda piece: blob.count(piece.lower()))
        kept = [t for t in remaining if best.lower() in t]
        if chosen and len(kept) == len(remaining):
            break
        chosen.append(best)
        candidates.remove(best)
        remaining = kept
        if not remaining and len(chosen) >= 2:
            break
    return chosen


def _contains(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ---------------------------------------------------------------- CSV export


def iter_records_csv(
    rt: Runtime,
    flt: RecordFilter,
    *,
    limit: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """The records matching ``flt`` as CSV text, newest first: the header, then chunks.

    Each chunk is one batch of up to CSV_BATCH records read in its own short transaction
    (keyset batches), so an export of a million records neither holds the database nor
    holds the records in memory. ``limit`` stops after that many records (all by
    default); ``on_batch`` hears how many records each chunk holds (a progress bar).
    Columns are the UI's (CSV_COLUMNS); a cell a spreadsheet would run as a formula
    starts with ``'``. Errors in ``flt`` were caught by parse_record_filter, so the
    stream itself fails only if the database does.
    """
    yield _csv_text([CSV_COLUMNS])
    after: _Key | None = None
    left = limit
    while left is None or left > 0:
        batch = CSV_BATCH if left is None else min(CSV_BATCH, left)
        with rt.transaction() as session:
            rows = _Search(session, flt).rows(after, batch)
        if not rows:
            return
        views = [_view(row) for row in rows]
        yield _csv_text(csv_cells(view) for view in views)
        if on_batch is not None:
            on_batch(len(views))
        if len(rows) < batch:
            return
        after = (views[-1].created_at, views[-1].id)
        left = None if left is None else left - len(rows)


def csv_cells(record: RecordView) -> list[str]:
    """One CSV row: a record in CSV_COLUMNS order, every cell made safe for spreadsheets."""
    cells = [
        record.sender,
        record.sender_name,
        record.ip or "",
        "; ".join(record.recipients),
        record.subject,
        record.template_name,
        "; ".join(record.resources),
        _iso(record.created_at) or "",
        record.result,
        record.error_code or "" if record.result == "failure" else "",
        record.error_message or "" if record.result == "failure" else "",
    ]
    return [neutralise_cell(cell) for cell in cells]


def neutralise_cell(value: str) -> str:
    """``value``, or ``'value`` when a spreadsheet would take it for a formula (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _csv_text(rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


# ---------------------------------------------------------------- retention


def purge_records(rt: Runtime, *, now: datetime | None = None) -> int:
    """Delete the finished records older than POSTDESK_RECORD_RETENTION_DAYS; how many.

    In batches of PURGE_BATCH, one short transaction each, oldest first, so the worker
    never holds the database for long. Their attempts and attachments go with them. A
    message not finished yet is kept whatever its age: queued mail is never dropped.
    """
    cutoff = (now or rt.clock()) - timedelta(days=rt.settings.record_retention_days)
    purged = 0
    while True:
        with rt.transaction() as session:
            ids = session.scalars(
                select(Message.id)
                .where(Message.created_at < cutoff, Message.status.in_(FINAL_STATUSES))
                .order_by(Message.created_at, Message.id)
                .limit(PURGE_BATCH)
            ).all()
            if ids:
                session.execute(delete(Message).where(Message.id.in_(ids)))
        purged += len(ids)
        if len(ids) < PURGE_BATCH:
            return purged
