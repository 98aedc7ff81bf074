"""``/auth``: administrator login (session cookie + CSRF token) and logout."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from postdesk.api.responses import CALLER_ERRORS, LoginAnswer, answers
from postdesk.api.schemas import LoginBody
from postdesk.http.deps import SESSION_COOKIE, CallerDep, RuntimeDep
from postdesk.http.login import attempt_login, clear_session_cookie, set_session_cookie
from postdesk.services.access.sessions import log_out

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login", response_model=None, responses=answers(200, LoginAnswer, 401, 413, 422, 429, 503)
)
def login(body: LoginBody, request: Request, response: Response, rt: RuntimeDep) -> dict[str, str]:
    """Log in; the answer carries the CSRF token, the cookie carries the session."""
    login = attempt_login(request, rt, body.username, body.password)
    set_session_cookie(request, response, login)
    return {"csrf_token": login.csrf_token}


@router.post("/logout", status_code=204, responses=CALLER_ERRORS)
def logout(request: Request, _caller: CallerDep, rt: RuntimeDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        log_out(rt, cookie)
    response = Response(status_code=204)
    clear_session_cookie(response)
    return response
