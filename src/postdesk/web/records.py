"""``/mailbox/records``: the mail sending record, its filters, detail and CSV export."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from postdesk.web.session import PageSessionDep
from postdesk.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/mailbox/records")
def records_page(request: Request, page: PageSessionDep) -> Response:
    return render(request, "records.html", {"section": "records"})
