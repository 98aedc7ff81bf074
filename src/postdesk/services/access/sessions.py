"""Web sessions of administrators: login, the CSRF token, logout, and the one-time setup link."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select

from postdesk.errors import ForbiddenError, UnauthorizedError
from postdesk.services.access.admins import admin_exists, check_admin_password, create_admin
from postdesk.services.access.callers import Caller
from postdesk.services.access.login_guard import LoginGuard
from postdesk.services.runtime import Runtime
from postdesk.storage.models import AdminSession

SESSION_LIFETIME = timedelta(hours=12)
# How long the setup link printed at start works.
SETUP_LINK_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class Login:
    cookie: str  # the session cookie's value, given to the browser only
    csrf_token: str


@dataclass(frozen=True)
class SessionCaller:
    caller: Caller
    csrf_token: str


def log_in(rt: Runtime, username: str, password: str, *, guard: LoginGuard | None = None) -> Login:
    """A new session for the administrator; with ``guard``, failures of the user name back
    off and the password check waits for a free slot."""
    if guard is not None:
        guard.before(username)
        with guard.check_slot():
            admin_id = check_admin_password(rt, username, password)
        if admin_id is None:
            guard.failed(username)
        else:
            guard.succeeded(username)
    else:
        admin_id = check_admin_password(rt, username, password)
    if admin_id is None:
        raise UnauthorizedError(
            "Wrong user name or password.", hint="Check both; names are case-sensitive."
        )
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = rt.clock()
    with rt.transaction() as session:
        # Expired sessions are swept here, where a write happens anyway.
        session.execute(delete(AdminSession).where(AdminSession.expires_at < now))
        session.add(
            AdminSession(
                token_hash=_hash(cookie),
                admin_id=admin_id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + SESSION_LIFETIME,
            )
        )
    return Login(cookie, csrf)


def find_session(rt: Runtime, cookie: str) -> SessionCaller | None:
    with rt.transaction() as session:
        row = session.scalars(
            select(AdminSession).where(AdminSession.token_hash == _hash(cookie))
        ).first()
        if row is None or row.expires_at <= rt.clock():
            return None
        return SessionCaller(Caller(scope="admin", admin_id=row.admin_id), row.csrf_token)


def check_csrf(expected: str, given: str | None) -> None:
    # compare_digest refuses str with non-ASCII characters: compare the UTF-8 bytes.
    if not given or not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        raise ForbiddenError(
            "Missing or wrong CSRF token.",
            hint="Send the csrf_token from POST /auth/login in the X-CSRF-Token header.",
        )


def log_out(rt: Runtime, cookie: str) -> None:
    with rt.transaction() as session:
        session.execute(delete(AdminSession).where(AdminSession.token_hash == _hash(cookie)))


class SetupLink:
    """The one-time link ``serve`` prints while no administrator exists.

    The token lives in this process only, for ``SETUP_LINK_LIFETIME`` (a restart prints a
    new one); it is spent by the first administrator created. Spending it is atomic:
    of two requests racing with the same link, one creates the administrator.
    """

    def __init__(
        self,
        *,
        lifetime: timedelta = SETUP_LINK_LIFETIME,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token: str | None = None
        self._expires = 0.0
        self._lifetime = lifetime.total_seconds()
        self._monotonic = monotonic
        self._spending = threading.Lock()

    def issue(self, rt: Runtime) -> str | None:
        if admin_exists(rt):
            return None
        self._token = secrets.token_urlsafe(24)
        self._expires = self._monotonic() + self._lifetime
        return self._token

    def is_valid(self, token: str | None) -> bool:
        if not (self._token and token) or self._monotonic() >= self._expires:
            return False
        return hmac.compare_digest(self._token.encode(), token.encode("utf-8", "replace"))

    def use(self, rt: Runtime, token: str | None, username: str, password: str) -> int:
        with self._spending:
            if not self.is_valid(token) or admin_exists(rt):
                raise ForbiddenError(
                    "This setup link is no longer valid.",
                    hint="Create administrators with: postdesk admin create --username NAME",
                )
            admin_id = create_admin(rt, username, password)
            self._token = None
            return admin_id


def _hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8")).hexdigest()
