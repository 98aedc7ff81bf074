"""The session cookie and the login rate limit: one place for the API's /auth and the login page."""

from __future__ import annotations

from fastapi import Request, Response
from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter

from postdesk.errors import TooFrequentError
from postdesk.http.deps import SESSION_COOKIE, peer_ip
from postdesk.http.https import served_over_https
from postdesk.services.access.sessions import SESSION_LIFETIME, Login
from postdesk.services.runtime import Runtime

LOGIN_RATE = RateLimitItemPerMinute(10)  # per client IP


def count_login_attempt(request: Request, rt: Runtime) -> None:
    """At most ``LOGIN_RATE`` attempts per client IP, from the API and the login page."""
    limiter: MovingWindowRateLimiter = request.app.state.login_limiter
    if not limiter.hit(LOGIN_RATE, "login", peer_ip(request, rt) or "unknown"):
        raise TooFrequentError("Too many login attempts. Try again in 60 s.", retry_after=60)


def set_session_cookie(request: Request, response: Response, login: Login) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over HTTPS (``served_over_https``)."""
    response.set_cookie(
        SESSION_COOKIE,
        login.cookie,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=served_over_https(request),
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
