"""``/mailbox/records``: the mail sending record, its filters, detail and CSV export.

- ``GET /mailbox/records``: the filter form (a GET form: a filtered view is a link) and
  one page of matching records, newest first, with a cursor to the next page. Invalid
  filters answer 422 with the form kept and the problem next to its field.
- ``GET /mailbox/records/{id}``: one record in full, with its error, each recipient's
  outcome and the attempts; it takes the list's query string, so "Back" returns to the same view.
- ``GET /mailbox/records.csv``: the CSV of ``GET /api/v1/records.csv`` for the page's
  filters, as a download.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from postdesk.domain.records import RecordFilter
from postdesk.errors import NotFoundError, ValidationError
from postdesk.http.deps import RuntimeDep, row_id
from postdesk.services.records.export import iter_records_csv
from postdesk.services.records.lookup import get_record, search_records
from postdesk.services.senders.accounts import list_senders
from postdesk.web.record_page import (
    PAGE_SIZES,
    RESULT_CHOICES,
    attempt_row,
    csv_file_name,
    read_query,
    recipient_rows,
    record_row,
)
from postdesk.web.session import PageSessionDep
from postdesk.web.templating import render

router = APIRouter(include_in_schema=False)

_FORM_HINT = "Dates are days such as 2025-03-01; leave a filter empty to leave it out."


@router.get("/mailbox/records")
def records_page(request: Request, rt: RuntimeDep, _page: PageSessionDep) -> Response:
    query = read_query(request.query_params)
    context: dict[str, Any] = {
        "section": "records",
        "query": query,
        "errors": query.errors,
        "senders": list_senders(rt),
        "result_choices": RESULT_CHOICES,
        "page_sizes": PAGE_SIZES,
        "form_hint": _FORM_HINT,
        "rows": [],
        "next_url": None,
        "cursor_lost": False,
        "any_records": True,
    }
    if query.flt is None:
        return render(request, "records.html", context, status=422)
    try:
        found = search_records(rt, query.flt, limit=query.limit, cursor=query.cursor)
    except ValidationError:  # a cursor postdesk did not make, or from another installation
        context["cursor_lost"] = True
        return render(request, "records.html", context, status=422)
    context["rows"] = [record_row(record) for record in found.items]
    if found.next_cursor:
        context["next_url"] = query.next_url(found.next_cursor)
    if not found.items and not query.filtered:
        context["any_records"] = bool(search_records(rt, RecordFilter(), limit=1).items)
    return render(request, "records.html", context)


@router.get("/mailbox/records.csv")
def records_csv(request: Request, rt: RuntimeDep, _page: PageSessionDep) -> Response:
    query = read_query(request.query_params)
    if query.flt is None:
        raise ValidationError(query.errors, hint=_FORM_HINT)
    name = csv_file_name(rt.clock())
    return StreamingResponse(
        iter_records_csv(rt, query.flt),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/mailbox/records/{record_id}")
def record_detail(
    request: Request, record_id: str, rt: RuntimeDep, _page: PageSessionDep
) -> Response:
    query = read_query(request.query_params)
    context: dict[str, Any] = {"section": "records", "back_url": query.url()}
    try:
        number = row_id(record_id)
        if number is None:
            raise NotFoundError(f"there is no record {record_id}")
        detail = get_record(rt, number)
    except NotFoundError as exc:
        context["missing"] = exc
        return render(request, "record_detail.html", context, status=404)
    context.update(
        record=record_row(detail.record),
        recipients=detail.record.recipients,
        resources=detail.record.resources,
        message_id=detail.message_id,
        attempts=[attempt_row(attempt) for attempt in detail.attempt_history],
        recipient_rows=recipient_rows(detail),
        refused=detail.refused_recipients,
    )
    return render(request, "record_detail.html", context)
