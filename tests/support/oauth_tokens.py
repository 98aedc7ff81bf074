"""The access tokens the stand-in identity provider issues, shared with the XOAUTH2 server.

``TokenRegistry`` is the one place both stand-ins look: ``tests.support.idp`` issues into
it, ``tests.support.xoauth2`` checks ``AUTH XOAUTH2`` against it. A token knows the
client it was issued to, the grant that got it, the mailboxes it may act as, its scopes
and when it expires (``time.time()`` seconds; ``expire()`` ends it at once).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Literal

TokenCheck = Literal["ok", "unknown", "expired", "mailbox", "scope"]


@dataclass
class IssuedToken:
    value: str
    client_id: str
    grant_type: str
    # The mailboxes the token may act as, compared without case; None: any (an app-only
    # token of an app allowed every mailbox).
    mailboxes: frozenset[str] | None
    scopes: frozenset[str]
    expires_at: float

    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def may_act_as(self, address: str) -> bool:
        return self.mailboxes is None or address.casefold() in self.mailboxes


class TokenRegistry:
    """Every access token issued, by value; thread-safe (HTTP threads issue, SMTP checks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}

    def issue(
        self,
        *,
        client_id: str,
        grant_type: str,
        mailboxes: frozenset[str] | None,
        scopes: frozenset[str],
        lifetime_s: float,
    ) -> IssuedToken:
        folded = None if mailboxes is None else frozenset(m.casefold() for m in mailboxes)
        token = IssuedToken(
            value=secrets.token_urlsafe(48),
            client_id=client_id,
            grant_type=grant_type,
            mailboxes=folded,
            scopes=scopes,
            expires_at=time.time() + lifetime_s,
        )
        with self._lock:
            self._tokens[token.value] = token
        return token

    def get(self, value: str) -> IssuedToken | None:
        with self._lock:
            return self._tokens.get(value)

    @property
    def issued(self) -> list[IssuedToken]:
        """Every token issued so far, oldest first."""
        with self._lock:
            return list(self._tokens.values())

    def check(self, value: str, address: str, accepted_scopes: frozenset[str]) -> TokenCheck:
        """Whether ``value`` lets its bearer log in as ``address`` with one of the scopes."""
        token = self.get(value)
        if token is None:
            return "unknown"
        if token.expired():
            return "expired"
        if not token.may_act_as(address):
            return "mailbox"
        if not token.scopes & accepted_scopes:
            return "scope"
        return "ok"

    def expire(self, value: str | None = None) -> None:
        """End one token (by value) or, by default, every token issued so far."""
        now = time.time()
        with self._lock:
            targets = self._tokens.values() if value is None else [self._tokens[value]]
            for token in targets:
                token.expires_at = min(token.expires_at, now)
