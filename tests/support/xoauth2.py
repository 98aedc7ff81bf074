"""An SMTP server that takes ``AUTH XOAUTH2`` the way Microsoft 365 and Gmail do, checking
the bearer token against the stand-in identity provider's ``TokenRegistry``.

It is the aiosmtpd server of ``tests.support.smtp`` (same options, ``replies`` included)
with an XOAUTH2 mechanism: the client sends ``user=<address>^Aauth=Bearer <token>^A^A``
(base64, as the initial response or after an empty ``334``); the token must be known, not
expired, allowed to act as ``user`` and carry one of the accepted scopes. Then ``235``;
otherwise, like Microsoft, ``535 5.7.3 Authentication unsuccessful``, or, like Gmail, a
``334`` challenge with base64 JSON ``{"status":"401","schemes":"Bearer","scope":
"https://mail.google.com/"}`` and, after the client's empty line, ``535 5.7.8``. AUTH is
offered only inside TLS (after STARTTLS, or on implicit TLS): before it, AUTH is not in
the EHLO answer and ``AUTH XOAUTH2`` answers ``538 5.7.11``. Password logins (LOGIN,
PLAIN) are refused in the provider's words.

Fixture
-------
``xoauth2_server`` (factory)
    ``xoauth2_server(**options) -> XOAuth2Server``, running until the test ends. Options:
    ``provider`` (``"microsoft"``, the default, or ``"google"``: the refusals, the
    mechanisms offered, the accepted scopes), ``tokens`` (a ``TokenRegistry``; default
    the ``identity_provider`` fixture's), ``accepted_scopes`` (default: the provider's
    SMTP scopes), ``auth_replies`` (replies to replay to the XOAUTH2 attempts in order,
    after the token was read and recorded; ``None``: check normally; a reply starting
    ``235`` logs in), ``tls`` (default ``"starttls"``) and every option of
    ``smtp_server`` (``replies={"MAIL": [MICROSOFT_NOT_AUTHENTICATED]}``, ``{"DATA":
    [send_as_denied(...)]}``, ``certificate``, ``refuse``…).

The server object
-----------------
An ``SmtpTestServer`` (``port``, ``ca_pem``, ``messages``, ``commands``, ``sender()``…)
with ``xoauth2_logins``: each ``XOAuth2Login`` (``user``, ``token``, ``outcome``: ``ok``,
``unknown``, ``expired``, ``mailbox``, ``scope``, ``malformed`` or ``replayed``).

Replies to replay: ``MICROSOFT_AUTH_FAILED`` (535 5.7.3), ``MICROSOFT_SMTP_AUTH_DISABLED``
and ``MICROSOFT_BASIC_AUTH_DISABLED`` (535 5.7.139), ``MICROSOFT_BASIC_AUTH_UNSUPPORTED``
(550 5.7.30), ``MICROSOFT_NOT_AUTHENTICATED`` (530 5.7.57, a MAIL reply),
``send_as_denied(login, address)`` (554 5.2.252, a DATA reply),
``GOOGLE_APP_PASSWORD_REQUIRED`` (534 5.7.9) and ``GOOGLE_BAD_CREDENTIALS`` (535 5.7.8).
``xoauth2_string(user, token)`` is what a client sends (before base64).
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd import smtp as aiosmtp
from aiosmtpd.smtp import MISSING, AuthResult

from tests.support.oauth_tokens import TokenRegistry
from tests.support.smtp import ServerOptions, SmtpTestServer, TlsMode, ca_for

Provider = Literal["microsoft", "google"]

_OUTLOOK = "[SN4PR0601CA0002.namprd06.prod.outlook.com 2026-03-02T09:30:00.000Z 08DE5A1B2C3D4E5F]"
_GSMTP = "5b1f17b1804b1-4317d8a4b5esm1234567f8f.1 - gsmtp"
MICROSOFT_AUTH_FAILED = f"535 5.7.3 Authentication unsuccessful {_OUTLOOK}"
MICROSOFT_SMTP_AUTH_DISABLED = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    f"Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. {_OUTLOOK}"
)
MICROSOFT_BASIC_AUTH_DISABLED = (
    f"535 5.7.139 Authentication unsuccessful, basic authentication is disabled. {_OUTLOOK}"
)
MICROSOFT_BASIC_AUTH_UNSUPPORTED = (
    f"550 5.7.30 Basic authentication is not supported for Client Submission. {_OUTLOOK}"
)
MICROSOFT_NOT_AUTHENTICATED = f"530 5.7.57 Client not authenticated to send mail. {_OUTLOOK}"
GOOGLE_BAD_CREDENTIALS = (
    "535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
    f"535 5.7.8  https://support.google.com/mail/?p=BadCredentials {_GSMTP}"
)
GOOGLE_APP_PASSWORD_REQUIRED = (
    "534-5.7.9 Application-specific password required. For more information, go to\r\n"
    f"534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor {_GSMTP}"
)
GOOGLE_CHALLENGE = {"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"}

SCOPES: dict[Provider, frozenset[str]] = {
    "microsoft": frozenset(
        {
            "https://outlook.office.com/SMTP.Send",
            "https://outlook.office365.com/SMTP.Send",
            "https://outlook.office.com/.default",
            "https://outlook.office365.com/.default",
        }
    ),
    "google": frozenset({"https://mail.google.com/"}),
}
_MECHANISMS: dict[Provider, tuple[str, ...]] = {
    "microsoft": ("LOGIN", "XOAUTH2"),
    "google": ("LOGIN", "PLAIN", "XOAUTH2"),
}
_PASSWORD_REFUSALS: dict[Provider, str] = {
    "microsoft": MICROSOFT_BASIC_AUTH_DISABLED,
    "google": GOOGLE_BAD_CREDENTIALS,
}


def send_as_denied(login: str, address: str) -> str:
    """Microsoft's reply after DATA when ``login`` may not send as ``address``."""
    return (
        f"554 5.2.252 SendAsDenied; {login} not allowed to send as {address}; "
        "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "
        "Failed to process message due to a permanent exception with message "
        "[BeginDiagnosticData]Cannot submit message.[EndDiagnosticData] "
        f"{_OUTLOOK}"
    )


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response, before base64."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def parse_xoauth2(blob: bytes) -> tuple[str, str] | None:
    """(user, token) of an XOAUTH2 response, or None when it is not one."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\x01\x01"):
        return None
    fields = dict(part.partition("=")[::2] for part in text[:-2].split("\x01"))
    scheme, _, token = fields.get("auth", "").partition(" ")
    user = fields.get("user", "")
    if not user or scheme.lower() != "bearer" or not token:
        return None
    return user, token


@dataclass(frozen=True)
class XOAuth2Login:
    user: str
    token: str
    outcome: str


class XOAuth2Authenticator:
    """aiosmtpd's ``auth_XOAUTH2`` hook: decode, check with the registry, answer."""

    def __init__(
        self,
        tokens: TokenRegistry,
        provider: Provider,
        accepted_scopes: frozenset[str],
        replies: Sequence[str | None] = (),
    ) -> None:
        self.tokens = tokens
        self.provider = provider
        self.accepted_scopes = accepted_scopes
        self.logins: list[XOAuth2Login] = []
        self._replies = collections.deque(replies)

    async def __call__(self, server: aiosmtp.SMTP, args: list[str]) -> AuthResult:
        blob = await _client_response(server, args)
        if blob is None:  # the client gave up ("*") or sent no base64: aiosmtpd answered
            return AuthResult(success=False, handled=True)
        parsed = parse_xoauth2(blob)
        if parsed is None:
            self.logins.append(XOAuth2Login("", "", "malformed"))
            return _refusal("501 5.5.2 Cannot decode response")
        user, token = parsed
        replay = self._replies.popleft() if self._replies else None
        if replay is not None:
            self.logins.append(XOAuth2Login(user, token, "replayed"))
            if replay.startswith("235"):
                return AuthResult(success=True, message=replay, auth_data=user)
            return _refusal(replay)
        outcome = self.tokens.check(token, user, self.accepted_scopes)
        self.logins.append(XOAuth2Login(user, token, outcome))
        if outcome == "ok":
            return AuthResult(success=True, auth_data=user)
        return await self._refuse(server)

    async def _refuse(self, server: aiosmtp.SMTP) -> AuthResult:
        if self.provider == "microsoft":
            return _refusal(MICROSOFT_AUTH_FAILED)
        challenge = json.dumps(GOOGLE_CHALLENGE, separators=(",", ":"))
        answer = await server.challenge_auth(challenge)
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        return _refusal(GOOGLE_BAD_CREDENTIALS)


def _refusal(reply: str) -> AuthResult:
    """A failed login answered with ``reply`` (aiosmtpd ignores the message when handled)."""
    return AuthResult(success=False, handled=False, message=reply)


async def _client_response(server: aiosmtp.SMTP, args: list[str]) -> bytes | None:
    """The initial response of ``AUTH XOAUTH2 <base64>``, or the answer to an empty 334."""
    if len(args) > 1:
        try:
            return base64.b64decode(args[1], validate=True)
        except binascii.Error:
            await server.push("501 5.5.2 Can't decode base64")
            return None
    answer = await server.challenge_auth("")
    return None if answer is MISSING else bytes(answer)


class XOAuth2Server(SmtpTestServer):
    """An ``SmtpTestServer`` whose AUTH is the provider's XOAUTH2."""

    def __init__(self, options: ServerOptions, ca: trustme.CA, auth: XOAuth2Authenticator) -> None:
        self.xoauth2 = auth
        super().__init__(replace(options, xoauth2=auth), ca)

    @property
    def xoauth2_logins(self) -> list[XOAuth2Login]:
        return self.xoauth2.logins


@pytest.fixture
def xoauth2_server(
    request: pytest.FixtureRequest, trusted_ca: trustme.CA, unknown_ca: trustme.CA
) -> Iterator[Callable[..., XOAuth2Server]]:
    servers: list[XOAuth2Server] = []

    def start(
        *,
        provider: Provider = "microsoft",
        tokens: TokenRegistry | None = None,
        accepted_scopes: frozenset[str] | None = None,
        auth_replies: Sequence[str | None] = (),
        tls: TlsMode = "starttls",
        **options: Any,
    ) -> XOAuth2Server:
        if tokens is None:
            tokens = request.getfixturevalue("identity_provider").tokens
        auth = XOAuth2Authenticator(
            tokens, provider, accepted_scopes or SCOPES[provider], auth_replies
        )
        refusal = _PASSWORD_REFUSALS[provider]
        settings = ServerOptions(
            tls=tls,
            auth_requires_tls=True,
            **{
                "auth_mechanisms": _MECHANISMS[provider],
                "auth_echo": lambda *_: refusal,
                **options,
            },
        )
        server = XOAuth2Server(settings, ca_for(settings.certificate, trusted_ca, unknown_ca), auth)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
