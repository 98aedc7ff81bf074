"""The administrator's pages, mounted on the shared base application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from postdesk.web import login, mailbox, records, setup
from postdesk.web.session import LoginRequiredError
from postdesk.web.templating import STATIC_DIR, redirect, render

PAGE_ROUTERS = (login.router, setup.router, mailbox.router, records.router)


def install_pages(app: FastAPI) -> None:
    """Mount the pages and their static files on ``app`` (the base app adds their headers)."""
    app.add_exception_handler(LoginRequiredError, _to_login)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.add_api_route("/", _home, include_in_schema=False)


def error_page(request: Request, status: int, error: dict[str, Any]) -> Response:
    """A postdesk error, an unknown page or a failure, as a page a person can act on."""
    return render(request, "error.html", {"status": status, "error": error}, status=status)


async def _to_login(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequiredError)
    return redirect("/login", next=exc.next_path)


def _home() -> RedirectResponse:
    return RedirectResponse("/mailbox", status_code=303)
