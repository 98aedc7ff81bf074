"""The REST API under ``/api/v1``: its routers, mounted on the shared base application."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from postdesk.api.routes import auth, messages, records, senders, tokens
from postdesk.http.app import API_PREFIX, WorkerState, new_app
from postdesk.services.access.sessions import SetupLink
from postdesk.services.runtime import Runtime


def create_app(
    rt: Runtime, *, worker: WorkerState | None = None, setup_link: SetupLink | None = None
) -> FastAPI:
    """The REST API, /healthz and /metrics alone (``postdesk.site`` adds the pages)."""
    app = new_app(rt, worker=worker, setup_link=setup_link)
    install_api(app)
    return app


def install_api(app: FastAPI) -> None:
    """Mount the REST API's routers on ``app``."""
    api = APIRouter(prefix=API_PREFIX)
    for module in (auth, senders, tokens, messages, records):
        api.include_router(module.router)
    app.include_router(api)
