"""``/auth``: administrator login (session cookie + CSRF token) and logout."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter

from postdesk.api.deps import SESSION_COOKIE, CallerDep, RuntimeDep, peer_ip
from postdesk.api.schemas import LoginBody
from postdesk.errors import TooFrequentError
from postdesk.services.runtime import Runtime
from postdesk.services.sessions import SESSION_LIFETIME, Login, log_in, log_out

router = APIRouter(prefix="/auth", tags=["auth"])
LOGIN_RATE = RateLimitItemPerMinute(10)  # per client IP


@router.post("/login")
def login(body: LoginBody, request: Request, response: Response, rt: RuntimeDep) -> dict[str, str]:
    """Log in; the answer carries the CSRF token, the cookie carries the session."""
    count_login_attempt(request, rt)
    login = log_in(rt, body.username, body.password)
    set_session_cookie(request, response, login)
    return {"csrf_token": login.csrf_token}


def count_login_attempt(request: Request, rt: Runtime) -> None:
    """At most ``LOGIN_RATE`` attempts per client IP, from the API and the login page."""
    limiter: MovingWindowRateLimiter = request.app.state.login_limiter
    if not limiter.hit(LOGIN_RATE, "login", peer_ip(request, rt) or "unknown"):
        raise TooFrequentError("Too many login attempts. Try again in 60 s.", retry_after=60)


def set_session_cookie(request: Request, response: Response, login: Login) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over HTTPS."""
    response.set_cookie(
        SESSION_COOKIE,
        login.cookie,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


@router.post("/logout", status_code=204)
def logout(request: Request, caller: CallerDep, rt: RuntimeDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        log_out(rt, cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
