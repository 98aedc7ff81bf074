"""``/tokens``: API tokens for scripts (shown once at creation, revocable)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from postdesk.api.responses import CALLER_ERRORS, NewToken, Token, answers
from postdesk.api.schemas import PathId, TokenBody
from postdesk.http.deps import AdminDep, RuntimeDep
from postdesk.services.access import tokens as service

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=CALLER_ERRORS)


@router.get("", response_model=None, responses=answers(200, list[Token]))
def list_tokens(rt: RuntimeDep, _caller: AdminDep) -> list[dict[str, Any]]:
    return [t.to_dict() for t in service.list_tokens(rt)]


@router.post("", status_code=201, response_model=None, responses=answers(201, NewToken, 413, 422))
def create_token(body: TokenBody, rt: RuntimeDep, _caller: AdminDep) -> dict[str, Any]:
    return service.create_token(rt, body.name, body.scope).to_dict()


@router.delete("/{token_id:row_id}", status_code=204, responses=answers(204, None, 404, 422))
def delete_token(token_id: PathId, rt: RuntimeDep, _caller: AdminDep) -> Response:
    service.delete_token(rt, token_id)
    return Response(status_code=204)
