"""``/setup``: the one-time page that creates the first administrator."""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from postdesk.api.deps import RuntimeDep
from postdesk.errors import PostdeskError, ValidationError
from postdesk.services.sessions import SetupLink

router = APIRouter(include_in_schema=False)

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>postdesk setup</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main>
<h1>Create the first administrator</h1>
{notice}
<form method="post" action="/setup">
<input type="hidden" name="token" value="{token}">
<p><label for="username">User name</label><br>
<input id="username" name="username" autocomplete="username" required></p>
<p><label for="password">Password</label><br>
<input id="password" name="password" type="password" autocomplete="new-password"
 minlength="10" required></p>
<p><button type="submit">Create administrator</button></p>
</form></main></body></html>
"""
_DONE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>postdesk setup</title></head>
<body><main><h1>Administrator created</h1>
<p>This setup link is now spent. Log in at <a href="/login">/login</a>.</p></main></body></html>
"""
_GONE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>postdesk setup</title></head>
<body><main><h1>This setup link is no longer valid</h1>
<p>An administrator exists already, or the server was restarted. Create administrators
with <code>postdesk admin create --username NAME</code>.</p></main></body></html>
"""


def _link(request: Request) -> SetupLink:
    link: SetupLink = request.app.state.setup_link
    return link


@router.get("/setup", response_class=HTMLResponse)
def setup_page(request: Request, token: str | None = None) -> HTMLResponse:
    if not _link(request).is_valid(token):
        return HTMLResponse(_GONE, status_code=404)
    return HTMLResponse(_PAGE.format(notice="", token=escape(token or "")))


@router.post("/setup", response_class=HTMLResponse)
def setup_submit(
    request: Request,
    rt: RuntimeDep,
    token: Annotated[str, Form()],
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
) -> HTMLResponse:
    link = _link(request)
    if not link.is_valid(token):
        return HTMLResponse(_GONE, status_code=404)
    try:
        link.use(rt, token, username, password)
    except ValidationError as exc:
        notice = "".join(f"<p role='alert'>{escape(m)}</p>" for m in exc.fields.values())
        return HTMLResponse(_PAGE.format(notice=notice, token=escape(token)), status_code=422)
    except PostdeskError:
        return HTMLResponse(_GONE, status_code=404)
    return HTMLResponse(_DONE)
