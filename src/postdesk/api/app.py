"""The web application served by ``postdesk serve``: created per runtime, never at import."""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from postdesk import __version__
from postdesk.api.errors import ErrorPage, install_error_handlers
from postdesk.api.limits import BodySizeLimit
from postdesk.api.routes import auth, messages, records, senders, tokens
from postdesk.services import queue_health
from postdesk.services.runtime import Runtime
from postdesk.services.senders import get_mail_settings
from postdesk.services.sessions import SetupLink

API_PREFIX = "/api/v1"


class WorkerState(Protocol):
    def state(self) -> dict[str, Any]: ...


def create_app(
    rt: Runtime,
    *,
    worker: WorkerState | None = None,
    setup_link: SetupLink | None = None,
    error_page: ErrorPage | None = None,
) -> FastAPI:
    """The REST API, /healthz and /metrics (``postdesk.web.site`` adds the pages)."""
    app = FastAPI(
        title="postdesk",
        version=__version__,
        summary="Outgoing-mail desk: senders, default sender, test mail, queue, sending records.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.rt = rt
    app.state.worker = worker
    app.state.setup_link = setup_link or SetupLink()
    app.state.login_limiter = MovingWindowRateLimiter(MemoryStorage())
    install_error_handlers(app, error_page)
    app.add_middleware(BodySizeLimit)
    api = APIRouter(prefix=API_PREFIX)
    for module in (auth, senders, tokens, messages, records):
        api.include_router(module.router)
    app.include_router(api)
    app.add_api_route("/healthz", healthz, include_in_schema=False)
    app.add_api_route("/metrics", metrics, include_in_schema=False)
    return app


def healthz(request: Request) -> JSONResponse:
    """Database reachability, the worker, held senders and whether mail is configured."""
    rt: Runtime = request.app.state.rt
    worker: WorkerState | None = request.app.state.worker
    body: dict[str, Any] = {"status": "ok", "version": __version__}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        body["database"] = "ok"
        body["mail_service_configured"] = get_mail_settings(rt).configured
        body["queue"] = queue_health.queue_depth(rt)
        body["held_senders"] = [h.to_dict() for h in queue_health.held_senders(rt)]
    except SQLAlchemyError:
        body.update(status="unavailable", database="unreachable")
        return JSONResponse(body, status_code=503)
    body["worker"] = worker.state() if worker is not None else {"running": False}
    if body["held_senders"]:
        body["status"] = "degraded"
    return JSONResponse(body)


def metrics(request: Request) -> Response:
    """Prometheus text format: counters from the worker, queue depth from the database."""
    rt: Runtime = request.app.state.rt
    queue_health.refresh_queue_gauges(rt)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
