"""``/records``: the mail sending record — filtered listing, detail, CSV export."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from postdesk.api.deps import AdminDep, RuntimeDep
from postdesk.services import record_export, record_filters, records

router = APIRouter(prefix="/records", tags=["records"])


def _filter(
    sender: str | None,
    recipient: str | None,
    template: str | None,
    since: str | None,
    until: str | None,
    result: str | None,
) -> record_filters.RecordFilter:
    return record_filters.parse_record_filter(
        {"sender": sender, "recipient": recipient, "template": template, "since": since,
         "until": until, "result": result}
    )  # fmt: skip


@router.get("")
def search(
    rt: RuntimeDep,
    caller: AdminDep,
    sender: str | None = None,
    recipient: str | None = None,
    template: str | None = None,
    since: str | None = None,
    until: str | None = None,
    result: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Records newest first, every filter combined with AND; follow ``next_cursor``."""
    flt = _filter(sender, recipient, template, since, until, result)
    page = records.search_records(rt, flt, limit=record_filters.parse_limit(limit), cursor=cursor)
    return {"items": [r.to_dict() for r in page.items], "next_cursor": page.next_cursor}


@router.get(".csv", response_class=StreamingResponse)
def export_csv(
    rt: RuntimeDep,
    caller: AdminDep,
    sender: str | None = None,
    recipient: str | None = None,
    template: str | None = None,
    since: str | None = None,
    until: str | None = None,
    result: str | None = None,
) -> StreamingResponse:
    flt = _filter(sender, recipient, template, since, until, result)
    return StreamingResponse(
        record_export.iter_records_csv(rt, flt),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="mail-sending-records.csv"'},
    )


@router.get("/{record_id}")
def detail(record_id: int, rt: RuntimeDep, caller: AdminDep) -> dict[str, Any]:
    return records.get_record(rt, record_id).to_dict()
