"""Who is looking at a page: the administrator's session, and the CSRF check of its forms.

A page without a valid session redirects to ``/login?next=<page>``. Every form that
changes something carries the session's CSRF token in a hidden ``csrf_token`` field;
the login form, which has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Request

from postdesk.errors import ForbiddenError
from postdesk.http.deps import SESSION_COOKIE, RuntimeDep
from postdesk.services.access.admins import admin_name
from postdesk.services.access.callers import Caller
from postdesk.services.access.sessions import find_session

LOGIN_CSRF_COOKIE = "postdesk_login_csrf"


class LoginRequiredError(Exception):
    """No administrator session: the page answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


@dataclass(frozen=True)
class PageSession:
    caller: Caller
    csrf_token: str
    username: str


def page_session(request: Request, rt: RuntimeDep) -> PageSession:
    """The administrator behind this request, kept on ``request.state.page`` for templates."""
    cookie = request.cookies.get(SESSION_COOKIE)
    found = find_session(rt, cookie) if cookie else None
    name = admin_name(rt, found.caller.admin_id) if found and found.caller.admin_id else None
    if found is None or name is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequiredError(request.url.path + query)
    page = PageSession(found.caller, found.csrf_token, name)
    request.state.page = page
    return page


PageSessionDep = Annotated[PageSession, Depends(page_session)]


def form_session(
    page: PageSessionDep, csrf_token: Annotated[str | None, Form()] = None
) -> PageSession:
    """``page_session`` for a form that changes something: its CSRF token must match."""
    if not csrf_token or not hmac.compare_digest(page.csrf_token, csrf_token):
        raise ForbiddenError(
            "This form has expired or did not come from postdesk.",
            hint="Reload the page and submit the form again.",
        )
    return page


FormSessionDep = Annotated[PageSession, Depends(form_session)]


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def check_login_csrf(request: Request, given: str | None) -> None:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not given or not hmac.compare_digest(expected, given):
        raise ForbiddenError(
            "This login form has expired.", hint="Reload the login page and try again."
        )
