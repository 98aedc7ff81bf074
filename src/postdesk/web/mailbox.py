"""``/mailbox``: senders, the Add Sender dialog with Send Test Email, the default sender."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from postdesk.web.session import PageSessionDep
from postdesk.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/mailbox")
def mailbox_page(request: Request, page: PageSessionDep) -> Response:
    return render(request, "mailbox.html", {"section": "mailbox"})
