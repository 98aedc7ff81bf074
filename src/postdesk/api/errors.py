"""The one place where postdesk errors become HTTP answers with the SPEC's error shape."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from postdesk import errors

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


def status_for(error: errors.PostdeskError) -> int:
    return next((status for cls, status in STATUS_BY_ERROR if isinstance(error, cls)), 500)


def error_response(error: errors.PostdeskError) -> JSONResponse:
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": error.to_dict()}, status_code=status_for(error), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.PostdeskError)
        return error_response(exc)

    app.add_exception_handler(errors.PostdeskError, handle)
