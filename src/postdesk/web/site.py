"""The whole site ``postdesk serve`` runs: the REST API plus the administrator's pages."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from postdesk.api.app import WorkerState, create_app
from postdesk.services.runtime import Runtime
from postdesk.services.sessions import SetupLink
from postdesk.web import login, mailbox, records, setup
from postdesk.web.security import SecurityHeaders
from postdesk.web.session import LoginRequiredError
from postdesk.web.templating import STATIC_DIR, redirect, render

PAGE_ROUTERS = (login.router, setup.router, mailbox.router, records.router)


def create_site(
    rt: Runtime, *, worker: WorkerState | None = None, setup_link: SetupLink | None = None
) -> FastAPI:
    app = create_app(rt, worker=worker, setup_link=setup_link, error_page=error_page)
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(LoginRequiredError, _to_login)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.add_api_route("/", _home, include_in_schema=False)
    return app


def error_page(request: Request, status: int, error: dict[str, Any]) -> Response:
    """A postdesk error, an unknown page or a failure, as a page a person can act on."""
    return render(request, "error.html", {"status": status, "error": error}, status=status)


async def _to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequiredError)
    return redirect("/login", next=exc.next_path)


def _home() -> RedirectResponse:
    return RedirectResponse("/mailbox", status_code=303)
