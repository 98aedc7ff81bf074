"""``/records``: the mail sending record — filtered listing, detail, CSV export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from postdesk.api.responses import (
    CALLER_ERRORS,
    CSV_ANSWER,
    RecordDetail,
    RecordPage,
    answers,
    errors,
)
from postdesk.api.schemas import PathId
from postdesk.domain.records import RecordFilter
from postdesk.http.deps import AdminDep, RuntimeDep
from postdesk.services.records import export as record_export
from postdesk.services.records import filters as record_filters
from postdesk.services.records import lookup as records

router = APIRouter(prefix="/records", tags=["records"], responses=CALLER_ERRORS)


def record_filter(
    sender: str | None = None,
    recipient: str | None = None,
    template: str | None = None,
    since: str | None = None,
    until: str | None = None,
    result: str | None = None,
) -> RecordFilter:
    """The filter query parameters shared by the listing and the CSV export."""
    return record_filters.parse_record_filter(
        {"sender": sender, "recipient": recipient, "template": template, "since": since,
         "until": until, "result": result}
    )  # fmt: skip


FilterDep = Annotated[RecordFilter, Depends(record_filter)]


@router.get("", response_model=None, responses=answers(200, RecordPage, 422))
def search(
    rt: RuntimeDep,
    _caller: AdminDep,
    flt: FilterDep,
    limit: str | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Records newest first, every filter combined with AND; follow ``next_cursor``."""
    page = records.search_records(rt, flt, limit=record_filters.parse_limit(limit), cursor=cursor)
    return page.to_dict()


@router.get(".csv", response_class=StreamingResponse, responses={**CSV_ANSWER, **errors(422)})
def export_csv(rt: RuntimeDep, _caller: AdminDep, flt: FilterDep) -> StreamingResponse:
    return StreamingResponse(
        record_export.iter_records_csv(rt, flt),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="mail-sending-records.csv"'},
    )


@router.get(
    "/{record_id:row_id}", response_model=None, responses=answers(200, RecordDetail, 404, 422)
)
def detail(record_id: PathId, rt: RuntimeDep, _caller: AdminDep) -> dict[str, Any]:
    return records.get_record(rt, record_id).to_dict()
