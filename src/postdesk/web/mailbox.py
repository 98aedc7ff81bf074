"""``/mailbox``: senders, the Add Sender dialog with Send Test Email, the default sender.

Every flow works as plain forms: a dialog opens through ``?dialog=add``, ``?dialog=edit``
or ``?dialog=delete`` (with ``&sender=ID``), forms post here, and the answer is a
redirect with a notice or the page again with the dialog open (422 for errors). The
page's script sends the same forms with the ``X-Postdesk-Fragment`` header: the answer
is then only the dialog (to put in place) or ``{"location": ...}`` (to go to).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response

from postdesk.domain.providers import PROVIDERS
from postdesk.errors import (
    ConflictError,
    DeliveryError,
    NotFoundError,
    TooFrequentError,
    ValidationError,
)
from postdesk.http.deps import RuntimeDep, peer_ip, row_id
from postdesk.http.errors import status_for
from postdesk.services.delivery.queue_health import held_senders
from postdesk.services.runtime import Runtime
from postdesk.services.senders.accounts import (
    SenderView,
    create_sender,
    delete_sender,
    get_mail_settings,
    get_sender,
    list_senders,
    set_default_sender,
    update_sender,
)
from postdesk.services.senders.test_mail import send_test_mail
from postdesk.web.sender_form import (
    ENCRYPTION_LABELS,
    USUAL_PORTS,
    SenderEntryDep,
    SenderForm,
)
from postdesk.web.session import FormSessionDep, PageSessionDep
from postdesk.web.templating import redirect, render

router = APIRouter(include_in_schema=False)

FRAGMENT_HEADER = "X-Postdesk-Fragment"
SENDER_DIALOG = "mailbox_sender_dialog.html"
DELETE_DIALOG = "mailbox_delete_dialog.html"

# Notices after a redirect: the query names one of these keys, never the text itself.
NOTICES: dict[str, tuple[str, str]] = {
    "sender_added": ("success", "Sender added."),
    "sender_added_unconfigured": (
        "success",
        "Sender added. Choose it as the System Default Sender below and click Save "
        "to configure the mail service.",
    ),
    "sender_saved": ("success", "Sender saved."),
    "sender_deleted": ("success", "Sender deleted."),
    "default_deleted": (
        "warning",
        "Sender deleted. It was the system default sender, so the mail service is not "
        "configured until you choose another System Default Sender.",
    ),
    "default_saved": ("success", "System default sender saved. The mail service is configured."),
    "default_cleared": (
        "warning",
        "System default sender cleared. The mail service is not configured until you "
        "choose one again.",
    ),
    "sender_missing": (
        "error",
        "That sender does not exist any more; it may have been deleted meanwhile.",
    ),
}
_FORM_ERRORS = (ValidationError, ConflictError, NotFoundError)


@router.get("/mailbox")
def mailbox_page(
    request: Request,
    rt: RuntimeDep,
    _page: PageSessionDep,
    dialog: str | None = None,
    sender: str | None = None,
    notice: str | None = None,
) -> Response:
    if dialog == "add":
        return _answer(request, rt, form=SenderForm.blank(), notice=notice)
    if dialog in ("edit", "delete"):
        found = _find_sender(rt, sender)
        if found is None:
            return _done(request, "sender_missing")
        if dialog == "delete":
            return _answer(request, rt, delete=found, notice=notice)
        return _answer(request, rt, form=SenderForm.for_sender(found), notice=notice)
    return _answer(request, rt, notice=notice)


@router.post("/mailbox/senders")
def add_sender(
    request: Request, rt: RuntimeDep, _page: FormSessionDep, entry: SenderEntryDep
) -> Response:
    form = SenderForm.from_entry(entry, None)
    try:
        create_sender(rt, entry.service_fields(editing=False))
    except _FORM_ERRORS as exc:
        return _answer(request, rt, form=form.with_error(exc), status=status_for(exc))
    configured = get_mail_settings(rt).configured
    return _done(request, "sender_added" if configured else "sender_added_unconfigured")


@router.post("/mailbox/senders/{sender_id}")
def edit_sender(
    request: Request,
    rt: RuntimeDep,
    _page: FormSessionDep,
    entry: SenderEntryDep,
    sender_id: int,
) -> Response:
    stored = _find_sender(rt, str(sender_id))
    if stored is None:
        return _done(request, "sender_missing")
    form = SenderForm.from_entry(entry, stored)
    try:
        update_sender(rt, sender_id, entry.service_fields(editing=True))
    except _FORM_ERRORS as exc:
        return _answer(request, rt, form=form.with_error(exc), status=status_for(exc))
    return _done(request, "sender_saved")


@router.post("/mailbox/senders/{sender_id}/delete")
def remove_sender(
    request: Request, rt: RuntimeDep, _page: FormSessionDep, sender_id: int
) -> Response:
    stored = _find_sender(rt, str(sender_id))
    if stored is None:
        return _done(request, "sender_missing")
    try:
        delete_sender(rt, sender_id)
    except NotFoundError:
        return _done(request, "sender_missing")
    return _done(request, "default_deleted" if stored.is_default else "sender_deleted")


@router.post("/mailbox/test")
def test_sender(
    request: Request,
    rt: RuntimeDep,
    page: FormSessionDep,
    entry: SenderEntryDep,
    recipient: Annotated[str, Form()] = "",
    sender_id: Annotated[str, Form()] = "",
) -> Response:
    """Send Test Email with the settings in the dialog, unsaved; nothing is saved."""
    stored = None
    if sender_id.strip():
        stored = _find_sender(rt, sender_id)
        if stored is None:
            return _done(request, "sender_missing")
    form = SenderForm.from_entry(entry, stored, recipient)
    try:
        result = send_test_mail(
            rt,
            to=recipient.strip(),
            sender_id=stored.id if stored else None,
            unsaved=entry.service_fields(editing=stored is not None),
            client_ip=peer_ip(request, rt),
            caller=page.caller,
        )
    except DeliveryError as exc:
        return _answer(request, rt, form=replace(form, test_failed=exc, test_open=True))
    except _FORM_ERRORS as exc:
        return _answer(request, rt, form=form.with_error(exc, tested=True), status=422)
    except TooFrequentError as exc:
        answer = _answer(request, rt, form=form.with_error(exc, tested=True), status=429)
        answer.headers["Retry-After"] = str(exc.retry_after)
        return answer
    return _answer(request, rt, form=replace(form, test_sent=result, test_open=True))


@router.post("/mailbox/default")
def choose_default(
    request: Request,
    rt: RuntimeDep,
    _page: FormSessionDep,
    default_sender_id: Annotated[str, Form()] = "",
) -> Response:
    chosen = _find_sender(rt, default_sender_id) if default_sender_id.strip() else None
    if default_sender_id.strip() and chosen is None:
        return _done(request, "sender_missing")
    set_default_sender(rt, chosen.id if chosen else None)
    return _done(request, "default_saved" if chosen else "default_cleared")


def _find_sender(rt: Runtime, sender_id: str | None) -> SenderView | None:
    number = row_id(sender_id)
    if number is None:
        return None
    try:
        return get_sender(rt, number)
    except NotFoundError:
        return None


def _wants_fragment(request: Request) -> bool:
    return request.headers.get(FRAGMENT_HEADER) == "1"


def _done(request: Request, notice: str) -> Response:
    """Back to the page with a notice: a 303, or its address for the page's script."""
    if _wants_fragment(request):
        return JSONResponse({"location": f"/mailbox?notice={notice}"})
    return redirect("/mailbox", notice=notice)


def _answer(
    request: Request,
    rt: Runtime,
    *,
    form: SenderForm | None = None,
    delete: SenderView | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    """The page (with a dialog open, if any), or only that dialog for the page's script."""
    shared: dict[str, Any] = {
        "form": form,
        "delete": delete,
        "providers": PROVIDERS,
        "encryption_labels": ENCRYPTION_LABELS,
        "usual_ports": USUAL_PORTS,
    }
    if _wants_fragment(request) and (form is not None or delete is not None):
        template = SENDER_DIALOG if form is not None else DELETE_DIALOG
        response = render(request, template, {**shared, "open": False}, status=status)
        response.headers[FRAGMENT_HEADER] = "sender" if form is not None else "delete"
        return response
    senders = list_senders(rt)
    settings = get_mail_settings(rt)
    level, text = NOTICES.get(notice or "", ("", ""))
    context = {
        **shared,
        "section": "mailbox",
        "open": True,
        "senders": senders,
        "holds": {held.id: held for held in held_senders(rt)},
        "default_sender_id": settings.default_sender_id,
        "configured": settings.configured,
        "notice": {"level": level, "text": text} if text else None,
    }
    return render(request, "mailbox.html", context, status=status)
