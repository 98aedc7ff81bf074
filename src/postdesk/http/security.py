"""The headers of every answer: ``nosniff``; for pages a strict Content-Security-Policy and
friends; for a site reached over HTTPS, Strict-Transport-Security.

Behind a TLS-terminating proxy the request arrives over plain HTTP, so the scheme alone
cannot tell HTTPS; an ``https://`` ``POSTDESK_PUBLIC_URL`` says so for every request.
"""

from __future__ import annotations

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postdesk.services.runtime import Runtime

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
PAGE_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)
HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000")


def served_over_https(request: Request) -> bool:
    """This request came over HTTPS, or the site is public at an ``https://`` URL."""
    rt: Runtime = request.app.state.rt
    return request.url.scheme == "https" or rt.settings.https_only


class SecurityHeaders:
    """Add ``nosniff`` (and with ``hsts`` Strict-Transport-Security) to every answer, and
    the page headers to every HTML answer."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.every_answer = [(b"x-content-type-options", b"nosniff")]
        if hsts:
            self.every_answer.append(HSTS_HEADER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self.every_answer)
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    headers.extend(PAGE_HEADERS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
