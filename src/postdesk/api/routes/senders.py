"""``/senders``, ``/settings/mail`` and ``/providers``: sender accounts, the default, presets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from postdesk.api.responses import (
    CALLER_ERRORS,
    MailSettings,
    Provider,
    Sender,
    TestMailSent,
    answers,
)
from postdesk.api.schemas import (
    MailSettingsBody,
    PathId,
    SavedSenderTestBody,
    SenderBody,
    SenderPatchBody,
    SenderTestBody,
)
from postdesk.domain.providers import PROVIDERS
from postdesk.http.deps import AdminDep, RuntimeDep, peer_ip
from postdesk.services.senders import accounts as service
from postdesk.services.senders.test_mail import send_test_mail

router = APIRouter(tags=["senders"], responses=CALLER_ERRORS)


@router.get("/senders", response_model=None, responses=answers(200, list[Sender]))
def list_senders(rt: RuntimeDep, _caller: AdminDep) -> list[dict[str, Any]]:
    return [s.to_dict() for s in service.list_senders(rt)]


@router.post(
    "/senders", status_code=201, response_model=None,
    responses=answers(201, Sender, 409, 413, 422),
)  # fmt: skip
def create_sender(body: SenderBody, rt: RuntimeDep, _caller: AdminDep) -> dict[str, Any]:
    return service.create_sender(rt, body.model_dump(exclude_unset=True)).to_dict()


@router.post(
    "/senders/test", response_model=None,
    responses=answers(200, TestMailSent, 404, 409, 413, 422, 502),
)  # fmt: skip
def test_unsaved(
    body: SenderTestBody,
    request: Request,
    rt: RuntimeDep,
    caller: AdminDep,
) -> dict[str, Any]:
    """Send the test mail from unsaved settings (or a saved sender with changes on top)."""
    unsaved = body.sender.model_dump(exclude_unset=True) if body.sender else None
    result = send_test_mail(
        rt, to=body.to, sender_id=body.sender_id, unsaved=unsaved,
        client_ip=peer_ip(request, rt), caller=caller,
    )  # fmt: skip
    return result.to_dict()


@router.get(
    "/senders/{sender_id:row_id}", response_model=None, responses=answers(200, Sender, 404, 422)
)
def get_sender(sender_id: PathId, rt: RuntimeDep, _caller: AdminDep) -> dict[str, Any]:
    return service.get_sender(rt, sender_id).to_dict()


@router.patch(
    "/senders/{sender_id:row_id}", response_model=None,
    responses=answers(200, Sender, 404, 409, 413, 422),
)  # fmt: skip
def update_sender(
    sender_id: PathId, body: SenderPatchBody, rt: RuntimeDep, _caller: AdminDep
) -> dict[str, Any]:
    return service.update_sender(rt, sender_id, body.model_dump(exclude_unset=True)).to_dict()


@router.delete(
    "/senders/{sender_id:row_id}", status_code=204, responses=answers(204, None, 404, 422)
)
def delete_sender(sender_id: PathId, rt: RuntimeDep, _caller: AdminDep) -> Response:
    service.delete_sender(rt, sender_id)
    return Response(status_code=204)


@router.post(
    "/senders/{sender_id:row_id}/test", response_model=None,
    responses=answers(200, TestMailSent, 404, 413, 422, 502),
)  # fmt: skip
def test_saved(
    sender_id: PathId,
    body: SavedSenderTestBody,
    request: Request,
    rt: RuntimeDep,
    caller: AdminDep,
) -> dict[str, Any]:
    result = send_test_mail(
        rt, to=body.to, sender_id=sender_id, client_ip=peer_ip(request, rt), caller=caller
    )
    return result.to_dict()


@router.get("/settings/mail", response_model=None, responses=answers(200, MailSettings))
def get_mail_settings(rt: RuntimeDep, _caller: AdminDep) -> dict[str, Any]:
    return service.get_mail_settings(rt).to_dict()


@router.put(
    "/settings/mail", response_model=None, responses=answers(200, MailSettings, 404, 413, 422)
)
def put_mail_settings(body: MailSettingsBody, rt: RuntimeDep, _caller: AdminDep) -> dict[str, Any]:
    return service.set_default_sender(rt, body.default_sender_id).to_dict()


@router.get("/providers", response_model=None, responses=answers(200, list[Provider]))
def providers(_caller: AdminDep) -> list[dict[str, Any]]:
    return [p.to_dict() for p in PROVIDERS]
