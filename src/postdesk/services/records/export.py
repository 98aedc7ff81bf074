"""The CSV export of the sending records: its columns, its cells and the streamed text."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence

from postdesk.domain.records import RecordFilter, RecordKey
from postdesk.services.records.views import RecordView, iso_utc, record_view
from postdesk.services.runtime import Runtime
from postdesk.storage.record_search import RecordSearch

# Records per query of a CSV export; each batch is one short read transaction.
CSV_BATCH = 1000

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
    after: RecordKey | None = None
    left = limit
    while left is None or left > 0:
        batch = CSV_BATCH if left is None else min(CSV_BATCH, left)
        with rt.transaction() as session:
            rows = RecordSearch(session, flt).rows(after, batch)
        if not rows:
            return
        views = [record_view(row) for row in rows]
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
        iso_utc(record.created_at) or "",
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
