"""Request body size limit: bodies over 40 MiB are refused before they are read whole."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postdesk.errors import error_body

MAX_BODY_BYTES = 40 * 1024 * 1024


class BodySizeLimit:
    """Refuses a declared Content-Length over the limit at once, and stops reading a
    chunked body as soon as it grows past it (413 ``payload_too_large``)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # An HTTPException passes FastAPI's body parsing untouched (others become 400).
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {"error": error_body("payload_too_large", self._message())}
        response = JSONResponse(body, status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)

    def _message(self) -> str:
        return f"The request body is larger than {self.max_bytes // (1024 * 1024)} MiB."
