"""The web application served by ``postdesk serve``: created per runtime, never at import."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from postdesk import __version__
from postdesk.api.errors import install_error_handlers
from postdesk.services.runtime import Runtime
from postdesk.services.senders import get_mail_settings


def create_app(rt: Runtime) -> FastAPI:
    app = FastAPI(
        title="postdesk",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return health(rt)

    return app


def health(rt: Runtime) -> JSONResponse:
    """Database reachability and whether the mail service is configured."""
    body: dict[str, Any] = {"status": "ok", "version": __version__}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        body["database"] = "ok"
        body["mail_service_configured"] = get_mail_settings(rt).configured
    except SQLAlchemyError:
        body.update(status="unavailable", database="unreachable")
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
