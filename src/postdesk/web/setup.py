"""``/setup``: the one-time page that creates the first administrator and logs it in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from postdesk.errors import PostdeskError, ValidationError
from postdesk.http.deps import RuntimeDep
from postdesk.http.login import set_session_cookie
from postdesk.services.access.sessions import SetupLink, log_in
from postdesk.web.templating import render

router = APIRouter(include_in_schema=False)


def _link(request: Request) -> SetupLink:
    link: SetupLink = request.app.state.setup_link
    return link


@router.get("/setup")
def setup_page(request: Request, token: str | None = None) -> Response:
    if not _link(request).is_valid(token):
        return render(request, "setup_gone.html", status=404)
    return render(request, "setup.html", {"token": token, "fields": {}, "username": ""})


@router.post("/setup")
def setup_submit(
    request: Request,
    rt: RuntimeDep,
    token: Annotated[str, Form()] = "",
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    link = _link(request)
    if not link.is_valid(token):
        return render(request, "setup_gone.html", status=404)
    try:
        link.use(rt, token, username, password)
    except ValidationError as exc:
        context = {"token": token, "fields": exc.fields, "username": username}
        return render(request, "setup.html", context, status=422)
    except PostdeskError:
        return render(request, "setup_gone.html", status=404)
    response = render(request, "setup_done.html", {"username": username})
    set_session_cookie(request, response, log_in(rt, username, password))
    return response
