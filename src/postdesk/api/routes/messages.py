"""``/messages`` and ``/verification-codes``: what applications send (admin or send token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from postdesk.api.responses import (
    CALLER_ERRORS,
    Accepted,
    BatchAccepted,
    CodeChecked,
    CodeSent,
    MessageStatus,
    answers,
)
from postdesk.api.schemas import (
    BatchBody,
    MessageBody,
    PathId,
    VerificationCheckBody,
    VerificationRequestBody,
)
from postdesk.http.deps import CallerDep, RuntimeDep, requester_ip
from postdesk.services.messages import submission as service
from postdesk.services.messages.verification import check_code, request_code

router = APIRouter(tags=["messages"], responses=CALLER_ERRORS)


def _request(body: MessageBody) -> dict[str, Any]:
    data = body.model_dump(exclude_none=True)
    data.pop("client_ip", None)
    return data


@router.post(
    "/messages", status_code=202, response_model=None,
    responses=answers(202, Accepted, 404, 409, 413, 422),
)  # fmt: skip
def submit(body: MessageBody, request: Request, rt: RuntimeDep, caller: CallerDep) -> JSONResponse:
    """Queue one mail; it is committed before this answers 202."""
    ip = requester_ip(request, rt, body.client_ip)
    submitted = service.submit_message(rt, _request(body), caller=caller, client_ip=ip)
    return JSONResponse({"id": submitted.id, "status": submitted.status}, status_code=202)


@router.post(
    "/messages/batch", status_code=202, response_model=None,
    responses=answers(202, BatchAccepted, 404, 409, 413, 422),
)  # fmt: skip
def submit_batch(
    body: BatchBody, request: Request, rt: RuntimeDep, caller: CallerDep
) -> JSONResponse:
    """Queue up to 1000 mails at once: all are validated first, all or nothing is queued."""
    ips = {requester_ip(request, rt, m.client_ip) for m in body.messages}
    if len(ips) == 1:
        ids = service.submit_batch(
            rt, [_request(m) for m in body.messages], caller=caller, client_ip=ips.pop()
        )
    else:
        ids = service.submit_batch(
            rt,
            [{**_request(m), "client_ip": requester_ip(request, rt, m.client_ip)}
             for m in body.messages],
            caller=caller,
            client_ip=None,
        )  # fmt: skip
    return JSONResponse({"ids": ids}, status_code=202)


@router.get(
    "/messages/{message_id:row_id}", response_model=None,
    responses=answers(200, MessageStatus, 404, 422),
)  # fmt: skip
def status(message_id: PathId, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return service.get_message(rt, message_id, caller=caller).to_dict()


@router.post(
    "/verification-codes", status_code=202, response_model=None,
    responses=answers(202, CodeSent, 409, 413, 422, 429),
)  # fmt: skip
def request_verification_code(
    body: VerificationRequestBody, request: Request, rt: RuntimeDep, caller: CallerDep
) -> JSONResponse:
    sent = request_code(rt, body.email, caller=caller, client_ip=requester_ip(request, rt, None))
    return JSONResponse({"expires_in": sent.expires_in}, status_code=202)


@router.post(
    "/verification-codes/check", response_model=None,
    responses=answers(200, CodeChecked, 413, 422),
)  # fmt: skip
def check_verification_code(
    body: VerificationCheckBody, rt: RuntimeDep, _caller: CallerDep
) -> dict[str, bool]:
    return {"valid": check_code(rt, body.email, body.code)}
