"""``/login`` and ``/logout``: the administrator's session in the browser."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from postdesk.errors import PostdeskError, TooFrequentError, UnauthorizedError
from postdesk.http.deps import SESSION_COOKIE, RuntimeDep
from postdesk.http.login import attempt_login, clear_session_cookie, set_session_cookie
from postdesk.http.security import served_over_https
from postdesk.services.access.sessions import log_out
from postdesk.web.session import (
    LOGIN_CSRF_COOKIE,
    FormSessionDep,
    check_login_csrf,
    new_login_csrf,
)
from postdesk.web.templating import local_path, redirect, render

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return _form(request, next_path=local_path(next), status=200)


@router.post("/login")
def login_submit(
    request: Request,
    rt: RuntimeDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str | None, Form()] = None,
    next: Annotated[str | None, Form()] = None,
) -> Response:
    target = local_path(next)
    try:
        check_login_csrf(request, csrf_token)
        session = attempt_login(request, rt, username, password)
    except (UnauthorizedError, TooFrequentError) as exc:
        status = 429 if isinstance(exc, TooFrequentError) else 401
        return _form(request, next_path=target, status=status, error=exc, username=username)
    except PostdeskError as exc:  # an expired login form
        return _form(request, next_path=target, status=403, error=exc, username=username)
    response = redirect(target)
    set_session_cookie(request, response, session)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, rt: RuntimeDep, _page: FormSessionDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        log_out(rt, cookie)
    response = redirect("/login", notice="logged_out")
    clear_session_cookie(response)
    return response


def _form(
    request: Request,
    *,
    next_path: str,
    status: int,
    error: PostdeskError | None = None,
    username: str = "",
) -> Response:
    csrf = new_login_csrf()
    context = {
        "csrf_token": csrf,
        "next": next_path,
        "error": error,
        "username": username,
        "logged_out": request.query_params.get("notice") == "logged_out",
    }
    response = render(request, "login.html", context, status=status)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=served_over_https(request),
        path="/login",
    )
    return response
