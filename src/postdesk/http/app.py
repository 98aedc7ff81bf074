"""The base application both front ends build on: created per runtime, never at import.

It carries the runtime and the worker in its state, answers errors in the SPEC's shape,
refuses oversized bodies, and serves /healthz and /metrics. ``postdesk.api`` adds the
REST API, ``postdesk.web`` the pages; ``postdesk.site`` puts them together.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from postdesk import __version__
from postdesk.http.deps import OptionalCallerDep
from postdesk.http.docs import install_docs
from postdesk.http.errors import ErrorPage, install_error_handlers
from postdesk.http.limits import BodySizeLimit
from postdesk.http.security import SecurityHeaders
from postdesk.services.access.login_guard import LoginGuard
from postdesk.services.access.sessions import SetupLink
from postdesk.services.delivery import queue_health
from postdesk.services.health import health_report
from postdesk.services.runtime import Runtime, memory_limiter

API_PREFIX = "/api/v1"


class WorkerState(Protocol):
    def state(self) -> dict[str, Any]: ...


def new_app(
    rt: Runtime,
    *,
    worker: WorkerState | None = None,
    setup_link: SetupLink | None = None,
    error_page: ErrorPage | None = None,
) -> FastAPI:
    """An application with postdesk's state, error answers, body limit and probes."""
    app = FastAPI(
        title="postdesk",
        version=__version__,
        summary="Outgoing-mail desk: senders, default sender, test mail, queue, sending records.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served by postdesk.http.docs, without a CDN
        redoc_url=None,
    )
    app.state.rt = rt
    app.state.worker = worker
    app.state.setup_link = setup_link or SetupLink()
    app.state.login_limiter = memory_limiter()
    app.state.login_guard = LoginGuard(lambda: rt.clock())  # rt.clock may be replaced
    install_error_handlers(app, error_page)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(SecurityHeaders, hsts=rt.settings.https_only)
    install_docs(app, f"{API_PREFIX}/openapi.json")
    app.add_api_route("/healthz", healthz, include_in_schema=False)
    app.add_api_route("/metrics", metrics, include_in_schema=False)
    return app


def healthz(request: Request, caller: OptionalCallerDep) -> JSONResponse:
    """For a load balancer: ``status`` and ``mail_service_configured``, 200 or 503. An
    administrator (session or admin token) also gets the database, queue, held senders
    with the servers' replies, the worker and the version."""
    rt: Runtime = request.app.state.rt
    report = health_report(rt)
    if report is None:
        # Nobody can be recognised without the database: the short answer for everyone.
        return JSONResponse({"status": "unavailable"}, status_code=503)
    status = "degraded" if report["held_senders"] else "ok"
    body: dict[str, Any] = {
        "status": status,
        "mail_service_configured": report["mail_service_configured"],
    }
    if caller is not None and caller.is_admin:
        worker: WorkerState | None = request.app.state.worker
        body.update(report, version=__version__)
        body["worker"] = worker.state() if worker is not None else {"running": False}
    return JSONResponse(body)


def metrics(request: Request) -> Response:
    """Prometheus text format: counters from the worker, queue depth from the database."""
    rt: Runtime = request.app.state.rt
    queue_health.refresh_queue_gauges(rt)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
