"""``postdesk records``: look up the mail sending record, as a table, JSON or CSV.

The filters are the API's (``GET /records``): ``--sender`` (exact address, any case),
``--recipient`` and ``--template`` (a part, any case), ``--since`` / ``--until``
(inclusive ISO dates or date-times, UTC unless a zone is given) and ``--result``. The
table and JSON show the newest ``--limit`` records (50 unless given, at most 500); CSV
exports every matching record, like ``GET /records.csv``, or the newest ``--limit``.

The lead registers it on the root app: ``app.command("records")(records)``. Until then,
and for tests, ``python -m postdesk.cli.records`` runs it alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from postdesk.cli.output import print_json, stderr, stdout
from postdesk.errors import ValidationError

if TYPE_CHECKING:  # the services are imported when the command runs, not with the app
    from postdesk.domain.records import RecordFilter
    from postdesk.services.records.views import RecordView

FORMATS = ("table", "json", "csv")
TABLE_COLUMNS = (
    "Sender",
    "IP Address",
    "Receive Email",
    "Template Name",
    "Accessed Resources",
    "Sending Time",
    "Sending Result",
)


SenderOption = Annotated[
    str | None, typer.Option("--sender", help="Sender address (exact, any case).")
]
RecipientOption = Annotated[
    str | None, typer.Option("--recipient", help="Part of a recipient address (any case).")
]
TemplateOption = Annotated[
    str | None, typer.Option("--template", help="Part of the template name (any case).")
]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="From this date or date-time (UTC unless given), inclusive."),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="Up to this date (the whole day) or date-time, inclusive."),
]
ResultOption = Annotated[str | None, typer.Option("--result", help="success, failure or pending.")]
LimitOption = Annotated[
    int | None,
    typer.Option("--limit", help="Newest records to show, 1-500 (default 50; csv: all)."),
]
FormatOption = Annotated[
    str, typer.Option("--format", help="table, json (as the API) or csv (as /records.csv).")
]


def records(
    sender: SenderOption = None,
    recipient: RecipientOption = None,
    template: TemplateOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    result: ResultOption = None,
    limit: LimitOption = None,
    output_format: FormatOption = "table",
) -> None:
    """Look up sent mail, newest first: who sent what to whom, from which IP, and how it went."""
    from postdesk.services.records.filters import parse_limit, parse_record_filter
    from postdesk.services.records.lookup import search_records
    from postdesk.services.runtime import runtime

    flt = parse_record_filter(
        {
            "sender": sender,
            "recipient": recipient,
            "template": template,
            "since": since,
            "until": until,
            "result": result,
        }
    )
    if output_format not in FORMATS:
        raise ValidationError({"format": f"must be one of {', '.join(FORMATS)}"})
    if output_format == "csv":
        _write_csv(flt, None if limit is None else parse_limit(limit))
        return
    count = parse_limit(limit)
    with runtime() as rt:
        page = search_records(rt, flt, limit=count)
    if output_format == "json":
        print_json([record.to_dict() for record in page.items])
    else:
        _print_table(page.items)
    if page.next_cursor is not None:
        stderr.print(
            f"showing the newest {count} records; more match (raise --limit up to 500, "
            "or export them all with --format csv)"
        )


def _write_csv(flt: RecordFilter, limit: int | None) -> None:
    """UTF-8 bytes with CRLF row ends whatever the locale, as ``GET /records.csv`` sends."""
    from postdesk.services.records.export import iter_records_csv
    from postdesk.services.runtime import runtime

    sys.stdout.flush()
    out = sys.stdout.buffer
    with runtime() as rt, _progress() as advance:
        for chunk in iter_records_csv(rt, flt, limit=limit, on_batch=advance):
            out.write(chunk.encode("utf-8"))
    out.flush()


@contextmanager
def _progress() -> Iterator[Callable[[int], None]]:
    """A transient record count on a terminal's stderr while a CSV export runs."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    progress = Progress(
        SpinnerColumn(),
        TextColumn("exporting records: {task.completed:,}"),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    with progress:
        task = progress.add_task("export", total=None)
        yield lambda count: progress.advance(task, count)


def _print_table(items: list[RecordView]) -> None:
    from rich.table import Table

    if not items:
        stderr.print("No records match.")
        return
    table = Table()
    for title in TABLE_COLUMNS:
        table.add_column(title, overflow="fold")
    for record in items:
        table.add_row(
            escape(f"{record.sender_name} <{record.sender}>"),
            escape(record.ip or ""),
            escape(", ".join(record.recipients)),
            escape(record.template_name),
            escape(", ".join(record.resources)),
            _time(record.created_at),
            escape(_result(record)),
        )
    stdout.print(table)


def _time(moment: datetime) -> str:
    """Local time on a terminal; UTC (ISO 8601) when the output goes to a file or pipe."""
    if stdout.is_terminal:
        return f"{moment.astimezone():%Y-%m-%d %H:%M:%S}"
    return moment.isoformat()


def _result(record: RecordView) -> str:
    if record.result == "failure" and record.error_code:
        return f"failure ({record.error_code})"
    return record.result
