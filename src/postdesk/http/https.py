"""A site reached over HTTPS: when its cookies are ``Secure``, and Strict-Transport-Security.

Behind a TLS-terminating proxy the request arrives over plain HTTP, so the scheme alone
cannot tell; an ``https://`` ``POSTDESK_PUBLIC_URL`` says so for every request.
"""

from __future__ import annotations

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postdesk.services.runtime import Runtime

HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000")


def served_over_https(request: Request) -> bool:
    """This request came over HTTPS, or the site is public at an ``https://`` URL."""
    rt: Runtime = request.app.state.rt
    return request.url.scheme == "https" or rt.settings.https_only


class StrictTransportSecurity:
    """Add ``Strict-Transport-Security`` to every answer (install it only for HTTPS sites)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), HSTS_HEADER]
            await send(message)

        await self.app(scope, receive, with_header)
