"""The mail sending record: one page of the records a filter matches, and one record in full.

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

How each filter stays fast at a million records: postdesk.storage.record_search; the
other queries of the records: postdesk.storage.records. The rest of the record, beside
this module: filters (the filters, page size and cursor parsed), views (a record as
shown), export (CSV) and retention (the purge).

Case: recipients are stored lower-cased by Python, so any case matches. Sender and template
are lower-cased by the database: on SQLite that folds ASCII letters only.
"""

from __future__ import annotations

from postdesk.domain.records import RecordFilter, recipient_outcomes, refusals_of
from postdesk.errors import NotFoundError
from postdesk.services.records.filters import (
    DEFAULT_LIMIT,
    decode_cursor,
    encode_cursor,
    parse_limit,
)
from postdesk.services.records.views import AttemptView, RecordDetail, RecordPage, record_view
from postdesk.services.runtime import Runtime
from postdesk.storage.record_search import RecordSearch
from postdesk.storage.records import find_record, list_attempts


def search_records(
    rt: Runtime, flt: RecordFilter, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> RecordPage:
    """One page of the records matching ``flt``, newest first, after ``cursor``.

    ``ValidationError`` for a limit outside 1–500 or a cursor postdesk did not make.
    """
    limit = parse_limit(limit)
    after = decode_cursor(rt, cursor) if cursor else None
    with rt.transaction() as session:
        rows = RecordSearch(session, flt).rows(after, limit + 1)
    items = [record_view(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(rt, (items[-1].created_at, items[-1].id))
    return RecordPage(items=items, next_cursor=next_cursor)


def get_record(rt: Runtime, record_id: int) -> RecordDetail:
    """One record with its attempts, oldest first; ``NotFoundError`` if there is none."""
    with rt.transaction() as session:
        row = find_record(session, record_id)
        if row is None:
            raise NotFoundError(
                f"there is no record {record_id}",
                hint="Records older than POSTDESK_RECORD_RETENTION_DAYS are purged.",
            )
        # list_attempts reads exactly the fields of AttemptView, by their names.
        history = [AttemptView(**row._mapping) for row in list_attempts(session, record_id)]
    return RecordDetail(
        record=record_view(row),
        message_id=row.message_id,
        attempt_history=history,
        refused_recipients=refusals_of(row.recipient_results),
        recipient_results=recipient_outcomes(row.recipients, row.recipient_results, row.status),
    )
