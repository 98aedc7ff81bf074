"""API tokens: created with a scope, shown once, stored as a SHA-256 hash, revocable at once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from postdesk.domain.addresses import AddressError, check_header_value
from postdesk.errors import NotFoundError, ValidationError
from postdesk.services.access.callers import Caller, Scope
from postdesk.services.runtime import Runtime
from postdesk.storage.models import ApiToken

TOKEN_PREFIX = "pd_"  # noqa: S105 (a marker, not a secret)
SCOPES: tuple[Scope, ...] = ("admin", "send")
# last_used_at is refreshed at most this often: a write per request would cost throughput.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenView:
    id: int
    name: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


@dataclass(frozen=True)
class NewToken:
    view: TokenView
    token: str  # shown to the caller once, never stored

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.view.id, "name": self.view.name, "scope": self.view.scope,
                "token": self.token}  # fmt: skip


def create_token(rt: Runtime, name: str, scope: str) -> NewToken:
    clean_name, clean_scope = _check(name, scope)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=clean_name, scope=clean_scope, token_hash=token_hash(token), created_at=rt.clock()
    )
    with rt.transaction() as session:
        session.add(row)
        session.flush()
        return NewToken(_view(row), token)


def list_tokens(rt: Runtime) -> list[TokenView]:
    with rt.transaction() as session:
        return [_view(row) for row in session.scalars(select(ApiToken).order_by(ApiToken.id))]


def delete_token(rt: Runtime, token_id: int) -> None:
    """Revoke a token: the next request that presents it is refused."""
    with rt.transaction() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFoundError(f"No token has the id {token_id}.")
        session.delete(row)


def authenticate_token(rt: Runtime, token: str) -> Caller | None:
    """The caller a bearer token stands for, or ``None`` for an unknown or revoked token.

    Every request reads the token's row again (so a revoke counts at once, from any
    process), with one pre-built statement outside any write transaction; only the
    once-a-minute ``last_used_at`` refresh writes.
    """
    if not token.startswith(TOKEN_PREFIX):
        return None
    with rt.engine.connect() as connection:
        row = connection.execute(_FIND, {"digest": token_hash(token)}).first()
    if row is None:
        return None
    token_id, granted, last_used_at = row
    now = rt.clock()
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        with rt.transaction() as session:
            session.connection().execute(_TOUCH, {"token_id": token_id, "now": now})
    scope: Scope = "admin" if granted == "admin" else "send"
    return Caller(scope=scope, token_id=token_id)


_FIND = select(ApiToken.id, ApiToken.scope, ApiToken.last_used_at).where(
    ApiToken.token_hash == bindparam("digest")
)
_TOUCH = (
    update(ApiToken)
    .where(ApiToken.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now", type_=ApiToken.__table__.c.last_used_at.type))
)


def token_hash(token: str) -> str:
    # Tokens are 256-bit random values: a plain SHA-256 is enough (no need for a slow hash).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check(name: str, scope: str) -> tuple[str, str]:
    errors: dict[str, str] = {}
    clean = (name or "").strip()
    try:
        check_header_value(clean)
    except AddressError as exc:
        errors["name"] = str(exc)
    if not clean or len(clean) > 100:
        errors["name"] = "must be 1 to 100 characters"
    if scope not in SCOPES:
        errors["scope"] = "must be admin or send"
    if errors:
        raise ValidationError(errors, hint="Example: --name reports-server --scope send")
    return clean, scope


def _view(row: ApiToken) -> TokenView:
    return TokenView(row.id, row.name, row.scope, row.created_at, row.last_used_at)
