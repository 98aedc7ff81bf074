"""The session cookie and the login limits: one place for the API's /auth and the login page."""

from __future__ import annotations

import ipaddress

from fastapi import Request, Response
from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter

from postdesk.errors import TooFrequentError
from postdesk.http.deps import SESSION_COOKIE, peer_ip
from postdesk.http.security import served_over_https
from postdesk.services.access.login_guard import LoginGuard
from postdesk.services.access.sessions import SESSION_LIFETIME, Login, log_in
from postdesk.services.runtime import Runtime

LOGIN_RATE = RateLimitItemPerMinute(10)  # per client: an IPv4 address or an IPv6 /64


def count_login_attempt(request: Request, rt: Runtime) -> None:
    """At most ``LOGIN_RATE`` attempts per client, from the API and the login page."""
    limiter: MovingWindowRateLimiter = request.app.state.login_limiter
    if not limiter.hit(LOGIN_RATE, "login", client_key(peer_ip(request, rt))):
        raise TooFrequentError("Too many login attempts. Try again in 60 s.", retry_after=60)


def client_key(ip: str | None) -> str:
    """Who a limit counts: an IPv4 address, or the /64 of an IPv6 one (one host's share)."""
    if ip is None:
        return "unknown"
    address = ipaddress.ip_address(ip)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def attempt_login(request: Request, rt: Runtime, username: str, password: str) -> Login:
    """A login counted against the client's limit and the user name's back-off."""
    count_login_attempt(request, rt)
    guard: LoginGuard = request.app.state.login_guard
    return log_in(rt, username, password, guard=guard)


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
