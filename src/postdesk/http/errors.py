"""The one place where errors become HTTP answers with the SPEC's error shape.

``{"error": {"code", "message", "hint"?, "fields"?, "smtp_code"?}}`` for postdesk errors,
FastAPI's own validation errors (422 ``validation_error`` with ``fields``), HTTP errors
such as unknown paths, storage outages (503 ``unavailable``) and anything unexpected
(500, logged, never a stack trace in the answer). Outside the API the same errors are
rendered as a page, when the web pages are installed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match

from postdesk import errors
from postdesk.storage.db import STORAGE_ERRORS

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: tuple[tuple[type[errors.PostdeskError], int], ...] = (
    (errors.ValidationError, 422),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.UnauthorizedError, 401),
    (errors.ForbiddenError, 403),
    (errors.PayloadTooLargeError, 413),
    (errors.TooFrequentError, 429),
    (errors.UnavailableError, 503),
    (errors.DeliveryError, 502),
    (errors.ConfigError, 503),
)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def status_for(error: errors.PostdeskError) -> int:
    return next((status for cls, status in STATUS_BY_ERROR if isinstance(error, cls)), 500)


def error_response(error: errors.PostdeskError) -> JSONResponse:
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if isinstance(error, errors.UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": error.to_dict()}, status_code=status_for(error), headers=headers)


def field_name(location: Sequence[Any]) -> str:
    """``("body", "messages", 3, "to", 0)`` -> ``messages[3].to[0]``."""
    skip = 1 if location and location[0] in ("body", "query", "path") else 0
    parts = list(location[skip:])
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    fields: dict[str, str] = {}
    for item in exc.errors():
        fields.setdefault(field_name(item.get("loc", ())), str(item.get("msg", "is invalid")))
    error = errors.ValidationError(fields, hint="Correct the fields named and send it again.")
    return error_response(error)


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path, for ``Allow`` (Starlette names only
    those of the first route whose path matches)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def _unreadable_body(exc: HTTPException) -> bool:
    """FastAPI's 400 for a JSON body that is not UTF-8: bad input like any broken JSON."""
    return exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError)


def _http_response(request: Request, exc: HTTPException) -> JSONResponse:
    if _unreadable_body(exc):
        error = errors.ValidationError(
            {"body": "is not text in UTF-8"}, hint="Send the body as JSON encoded in UTF-8."
        )
        return error_response(error)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    if exc.status_code == 404:
        message = "Nothing is here; see /api/docs for the API."
    body = {"error": errors.error_body(code, message)}
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


ErrorPage = Callable[[Request, int, dict[str, Any]], Response]
"""Renders an error for a person in a browser: (request, status, the error's dict)."""

_NOT_PAGES = ("/api/", "/healthz", "/metrics")


def install_error_handlers(app: FastAPI, page: ErrorPage | None = None) -> None:
    """JSON errors for the API; ``page`` renders them for web pages when given."""

    def answer(request: Request, response: JSONResponse) -> Response:
        if page is None or request.url.path.startswith(_NOT_PAGES):
            return response
        error = json.loads(bytes(response.body))["error"]
        html = page(request, response.status_code, error)
        if "Retry-After" in response.headers:
            html.headers["Retry-After"] = response.headers["Retry-After"]
        return html

    async def postdesk_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.PostdeskError)
        return answer(request, error_response(exc))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return answer(request, _validation_response(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return answer(request, _http_response(request, exc))

    async def storage_error(request: Request, exc: Exception) -> Response:
        log.error("storage unavailable: %s", type(exc).__name__)
        unavailable = errors.UnavailableError(
            "The database cannot take the request right now.",
            hint="Try again shortly; check the database server and free disk space.",
        )
        return answer(request, error_response(unavailable))

    async def unexpected(request: Request, _exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        body = {"error": errors.error_body("internal_error", "An unexpected error happened.")}
        return answer(request, JSONResponse(body, status_code=500))

    app.add_exception_handler(errors.PostdeskError, postdesk_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    for storage_failure in STORAGE_ERRORS:  # OperationalError among them
        app.add_exception_handler(storage_failure, storage_error)
    app.add_exception_handler(Exception, unexpected)
