"""Request dependencies: the runtime, who the caller is (token or session + CSRF), client IP."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request

from postdesk.errors import ForbiddenError, UnauthorizedError, ValidationError
from postdesk.services.access.callers import Caller
from postdesk.services.access.sessions import check_csrf, find_session
from postdesk.services.access.tokens import authenticate_token
from postdesk.services.runtime import Runtime
from postdesk.storage.models import MAX_ROW_ID

SESSION_COOKIE = "postdesk_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_caller(request: Request, rt: RuntimeDep) -> Caller:
    """A bearer token, else the session cookie (state changes need the CSRF header)."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        caller = authenticate_token(rt, credentials.strip())
        if caller is None:
            raise UnauthorizedError(
                "The API token is unknown or was revoked.",
                hint="Create a token with postdesk token create --name NAME --scope send.",
            )
        return caller
    cookie = request.cookies.get(SESSION_COOKIE)
    found = find_session(rt, cookie) if cookie else None
    if found is None:
        raise UnauthorizedError(
            "Log in first, or send an API token.",
            hint="POST /api/v1/auth/login, or the header Authorization: Bearer <token>.",
        )
    if request.method not in SAFE_METHODS:
        check_csrf(found.csrf_token, request.headers.get(CSRF_HEADER))
    return found.caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def find_caller(request: Request, rt: RuntimeDep) -> Caller | None:
    """``get_caller`` for a public answer that says more to some callers: ``None`` for
    anonymous requests and unknown tokens, never a 401."""
    try:
        return get_caller(request, rt)
    except UnauthorizedError:
        return None


OptionalCallerDep = Annotated[Caller | None, Depends(find_caller)]


def require_admin(caller: CallerDep) -> Caller:
    if not caller.is_admin:
        raise ForbiddenError(
            "This needs an administrator; a send token may only send mail, request "
            "verification codes and read the status of its own messages."
        )
    return caller


AdminDep = Annotated[Caller, Depends(require_admin)]


def peer_ip(request: Request, rt: Runtime) -> str | None:
    """The requester's IP: the HTTP peer, or X-Forwarded-For when the peer is a trusted proxy.

    The forwarded chain is read from the right, skipping trusted proxies, so a client
    cannot forge its address by sending its own X-Forwarded-For header.
    """
    peer = request.client.host if request.client else None
    if peer is None or not _is_ip(peer):
        return None  # a Unix socket or a test transport: no address to record
    proxies = rt.settings.trusted_proxies
    if not proxies or not _is_in(peer, proxies):
        return peer
    forwarded = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([p for p in forwarded if p]):
        if not _is_ip(hop):
            break
        if not _is_in(hop, proxies):
            return hop
    return peer


def requester_ip(request: Request, rt: Runtime, client_ip: str | None) -> str | None:
    """The IP a record shows: ``client_ip`` given by an authenticated caller, else the peer."""
    if client_ip is None or client_ip == "":
        return peer_ip(request, rt)
    if not _is_ip(client_ip):
        raise ValidationError({"client_ip": "must be an IPv4 or IPv6 address"})
    return str(ipaddress.ip_address(client_ip))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_in(
    address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def row_id(text: str | None) -> int | None:
    """The row id ``text`` names, or ``None`` when it cannot name one: not digits, or past
    the range of the databases' id columns (a bigger number would fail in the query)."""
    value = (text or "").strip()
    if not value.isdigit() or len(value) > 10:
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ROW_ID else None
