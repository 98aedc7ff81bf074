"""Real SMTP servers for tests: aiosmtpd on loopback ports the OS picks, with scripted replies.

No test mocks SMTP: every transport, service and end-to-end test talks to one of these.

Fixtures
--------
``smtp_server`` (factory)
    ``smtp_server(**options) -> SmtpTestServer``, a server running until the test ends.
    Options (all keyword, all optional):

    ``tls``
        ``"none"`` (plain, no STARTTLS offered; the default), ``"starttls"`` (plain
        greeting, STARTTLS offered) or ``"implicit"`` (TLS from the first byte, like 465).
    ``certificate``
        ``"trusted"`` (signed by the test CA; the default), ``"unknown_ca"`` (signed by a
        CA no sender trusts), ``"wrong_host"`` (trusted CA, issued for
        ``mail.elsewhere.example`` only) or ``"expired"`` (trusted CA, expired yesterday).
    ``credentials``
        ``(login, password)``: AUTH is offered and MAIL answers 530 until a client logged
        in with exactly these (compared as UTF-8). ``None`` (default): no AUTH is offered
        and no login is needed, like an internal relay.
    ``auth_requires_tls``
        With ``tls="starttls"`` or ``"none"``: AUTH is offered only after STARTTLS, and
        AUTH in plain text answers ``538 5.7.11 Encryption required``. Default False.
    ``auth_mechanisms``
        The mechanisms offered, default ``("PLAIN", "LOGIN")``; ``()`` offers none.
        ``"XOAUTH2"`` needs ``xoauth2``.
    ``xoauth2``
        The ``AUTH XOAUTH2`` mechanism: an async callable ``(server, args) -> AuthResult``
        (``tests.support.xoauth2`` makes one, and its ``xoauth2_server`` fixture the whole
        server). With it, AUTH is offered and MAIL answers 530 until a client logged in,
        as with ``credentials``.
    ``auth_echo``
        ``(login, password) -> str``: the reply to a failed login, built from what the
        client sent, decoded (``"535 5.7.8 {password} is wrong"``, like a server that
        quotes the credentials back). Default: aiosmtpd's ``535 5.7.8``.
    ``auth_throttle``
        ``n``: the first n logins that reach the credential check are answered
        ``454 4.7.0 Too many login attempts, please try again later`` (or with the words
        of ``auth_echo``), whatever was sent, like a provider locking an account out for
        a while; later ones are checked as usual. Default 0.
    ``size_limit``
        Announced as ``SIZE n`` and enforced (552 beyond it). Default: no SIZE.
    ``smtputf8``
        Offer SMTPUTF8 (default True).
    ``replies``
        Scripted replies per verb, used in order, one per command:
        ``{"DATA": ["451 4.7.1 Try later", "451 4.7.1 Try later"]}`` answers the first
        two messages' data with 451 and the third normally. ``None`` in the list means
        "answer normally this time". Verbs: ``EHLO`` (replaces the whole EHLO answer),
        ``AUTH``, ``MAIL``, ``RCPT``, ``DATA`` (the reply after the final dot), ``RSET``.
    ``refuse``
        ``{"nobody@example.com": "550 5.1.1 No such user"}``: RCPT answer for those
        recipients, every time.
    ``host`` / ``port``
        Where to listen: default ``127.0.0.1`` and a port the OS picks. Another loopback
        address (``127.0.0.2``) on the port of a running server is a second server that
        only the host name tells apart.
    ``greylist``
        Like ``refuse``, but only on the connection that first names the address; on
        any later connection it is accepted (a greylisting server, which wants the
        client to come back later, not to ask again at once).
    ``rcpt_limit``
        Recipients per transaction: RCPT beyond this many accepted ones answers
        ``rcpt_limit_reply`` (default ``"452 4.5.3 Too many recipients"``); a new
        transaction (after DATA or RSET) starts counting again. Default: no limit.

``closed_port``
    A loopback port on which nothing listens.
``silent_server``
    A ``SilentServer`` that accepts TCP connections and never says a word.

The server object
-----------------
``SmtpTestServer`` has ``host`` (``127.0.0.1``), ``port``, ``ca_pem`` (PEM of the CA that
signed its certificate), ``connections`` (how many clients connected, the server's own
start-up check aside), ``messages`` (every accepted ``ReceivedMessage``: ``mail_from``,
``rcpt_tos``, ``content`` = the bytes exactly as on the wire between DATA and the final
dot, after dot-unstuffing, ``mail_options``, ``peer`` = the client's address, the same
for messages sent over one connection, and ``secure``), ``copies()`` (how many accepted
envelopes named each recipient), ``commands`` (every ``Command``
seen: ``verb`` and whether it came over TLS; AUTH shows only the mechanism), ``logins``
(``(mechanism, login)`` of each AUTH attempt that reached the credential check) and
``sender(**overrides) -> SenderSettings``: a validated sender pointing at the server
(encryption matching ``tls``, its credentials, the test CA's PEM unless the certificate
is ``unknown_ca``, ``timeout_s=5``), any field overridable.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd import smtp as aiosmtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, Envelope, LoginPassword, Session

from postdesk.domain.senders import SenderSettings, validate_sender

# The TLS fixtures come along with this plugin; registered before the import below so that
# pytest can still rewrite that module's asserts.
pytest_plugins = ["tests.support.tls"]
pytest.register_assert_rewrite("tests.support.tls")

from tests.support import free_port  # noqa: E402
from tests.support.tls import OTHER_NAME, ca_pem, server_context  # noqa: E402

HOST = "127.0.0.1"
SERVER_NAME = "mail.postdesk.test"
SENDER_ADDRESS = "reports@example.com"
TEST_TIMEOUT_S = 5.0
LOGIN_THROTTLED_REPLY = "454 4.7.0 Too many login attempts, please try again later"

TlsMode = Literal["none", "starttls", "implicit"]
CertificateKind = Literal["trusted", "unknown_ca", "wrong_host", "expired"]
SaslMechanism = Callable[[aiosmtp.SMTP, list[str]], Awaitable[AuthResult]]
_ENCRYPTION = {"none": "none", "starttls": "tls", "implicit": "ssl"}
_MECHANISMS = ("PLAIN", "LOGIN", "XOAUTH2")


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    peer: Any
    secure: bool


@dataclass(frozen=True)
class Command:
    verb: str
    secure: bool


@dataclass
class ServerOptions:
    tls: TlsMode = "none"
    certificate: CertificateKind = "trusted"
    credentials: tuple[str, str] | None = None
    auth_requires_tls: bool = False
    auth_mechanisms: Sequence[str] = ("PLAIN", "LOGIN")
    auth_echo: Callable[[str, str], str] | None = None
    auth_throttle: int = 0
    size_limit: int | None = None
    smtputf8: bool = True
    replies: Mapping[str, Sequence[str | None]] = field(default_factory=dict)
    refuse: Mapping[str, str] = field(default_factory=dict)
    host: str = HOST
    port: int = 0
    greylist: Mapping[str, str] = field(default_factory=dict)
    rcpt_limit: int | None = None
    rcpt_limit_reply: str = "452 4.5.3 Too many recipients"
    xoauth2: SaslMechanism | None = None

    @property
    def login_required(self) -> bool:
        return self.credentials is not None or self.xoauth2 is not None


def make_sender(host: str, port: int, **fields: Any) -> SenderSettings:
    """A validated sender for a test server; ``fields`` override the defaults."""
    data: dict[str, Any] = {
        "smtp_host": host,
        "port": port,
        "encryption": "none",
        "address": SENDER_ADDRESS,
        "display_name": "Postdesk Reports",
        "timeout_s": TEST_TIMEOUT_S,
    }
    data.update(fields)
    return validate_sender(data)


class SmtpTestServer:
    """One running aiosmtpd server and what it received."""

    def __init__(self, options: ServerOptions, ca: trustme.CA) -> None:
        self.options = options
        self.host = options.host
        self.ca_pem = ca_pem(ca)
        self.messages: list[ReceivedMessage] = []
        self.commands: list[Command] = []
        self.logins: list[tuple[str, str]] = []
        self._replies = {verb.upper(): collections.deque(r) for verb, r in options.replies.items()}
        self._greylisted_on: dict[str, Session] = {}  # address -> the connection's session
        self._controller = _PortZeroController(
            _Handler(self), listen_port=options.port, **self._smtp_arguments(ca)
        )
        self._controller.start()
        self._stopped = False
        self.port: int = self._controller.port
        self.connections = 0  # the controller's own check when it started is not counted
        self._controller.connected = self._connected

    def _connected(self) -> None:
        self.connections += 1

    def sender(self, **overrides: Any) -> SenderSettings:
        fields: dict[str, Any] = {"encryption": _ENCRYPTION[self.options.tls]}
        if self.options.credentials is not None:
            login, password = self.options.credentials
            fields["password"] = password
            if login != overrides.get("address", SENDER_ADDRESS):
                fields["username"] = login
        if self.options.tls != "none" and self.options.certificate != "unknown_ca":
            fields["ca_cert_pem"] = self.ca_pem
        fields.update(overrides)
        return make_sender(self.host, self.port, **fields)

    def verbs(self) -> list[str]:
        return [command.verb for command in self.commands]

    def copies(self) -> collections.Counter[str]:
        """How many accepted envelopes named each recipient."""
        return collections.Counter(rcpt for message in self.messages for rcpt in message.rcpt_tos)

    def refusal(self, address: str, session: Session, accepted: int) -> str | None:
        """The RCPT answer for ``address`` in a transaction that took ``accepted`` so far."""
        options = self.options
        if address in options.refuse:
            return options.refuse[address]
        greylisted = address in options.greylist
        if greylisted and self._greylisted_on.setdefault(address, session) is session:
            return options.greylist[address]
        if options.rcpt_limit is not None and accepted >= options.rcpt_limit:
            return options.rcpt_limit_reply
        return None

    def stop(self) -> None:
        """Stop listening and drop every connection (safe to call twice)."""
        if not self._stopped:
            self._stopped = True
            self._controller.stop()

    def scripted(self, verb: str) -> str | None:
        queue = self._replies.get(verb)
        return queue.popleft() if queue else None

    def _smtp_arguments(self, ca: trustme.CA) -> dict[str, Any]:
        options = self.options
        arguments: dict[str, Any] = {
            "hostname": options.host,
            "server_hostname": SERVER_NAME,
            "data_size_limit": options.size_limit,
            "enable_SMTPUTF8": options.smtputf8,
            "authenticator": self._authenticate,
            # MAIL enforces the login itself (see _Handler), so aiosmtpd never needs
            # auth_required, which warns when combined with AUTH over plain text.
            "auth_require_tls": options.auth_requires_tls and options.tls != "implicit",
            "auth_exclude_mechanism": [
                m
                for m in _MECHANISMS
                if m not in options.auth_mechanisms or (m == "XOAUTH2" and not options.xoauth2)
            ],
        }
        if options.tls != "none":
            context = _certificate_context(options.certificate, ca)
            key = "ssl_context" if options.tls == "implicit" else "tls_context"
            arguments[key] = context
        return arguments

    def _authenticate(
        self,
        server: aiosmtp.SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: LoginPassword,
    ) -> AuthResult:
        login = auth_data.login.decode("utf-8", "replace")
        self.logins.append((mechanism, login))
        expected = self.options.credentials
        given = (login, auth_data.password.decode("utf-8", "replace"))
        throttled = len(self.logins) <= self.options.auth_throttle
        success = expected is not None and given == expected and not throttled
        echo = self.options.auth_echo
        message = echo(*given) if echo is not None and not success else None
        if throttled and message is None:
            message = LOGIN_THROTTLED_REPLY
        return AuthResult(success=success, handled=False, message=message)


class _PortZeroController(Controller):
    """aiosmtpd's Controller, listening on a port the OS picks (no fixed ports, no races),
    or on ``listen_port``; ``connected`` is called for every connection."""

    def __init__(self, handler: Any, *, listen_port: int = 0, **kwargs: Any) -> None:
        super().__init__(handler, port=listen_port, **kwargs)
        self._listen_port = listen_port
        self.connected: Callable[[], None] = lambda: None

    def factory(self) -> aiosmtp.SMTP:
        self.connected()
        return aiosmtp.SMTP(self.handler, **self.SMTP_kwargs)  # as the base class builds it

    async def _create_server(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self._listen_port, ssl=self.ssl_context
        )
        self.port = server.sockets[0].getsockname()[1]
        return server


class _Handler:
    """aiosmtpd hooks: record every command, answer from the script, enforce the login.

    aiosmtpd finds the hooks by their names, ``handle_<VERB>``; hence the noqa: N802.
    """

    def __init__(self, server: SmtpTestServer) -> None:
        self._server = server

    def _secure(self, session: Session) -> bool:
        return session.ssl is not None or self._server.options.tls == "implicit"

    def _seen(self, verb: str, session: Session) -> None:
        self._server.commands.append(Command(verb, self._secure(session)))

    async def handle_EHLO(  # noqa: N802
        self,
        server: aiosmtp.SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self._seen("EHLO", session)
        session.host_name = hostname
        scripted = self._server.scripted("EHLO")
        if scripted is not None:
            return [scripted]
        options = self._server.options
        no_auth = not options.login_required or not options.auth_mechanisms
        return [r for r in responses if not (no_auth and r[4:].upper().startswith("AUTH"))]

    def handle_STARTTLS(  # noqa: N802
        self, server: aiosmtp.SMTP, session: Session, envelope: Envelope
    ) -> bool:
        self._seen("STARTTLS", session)
        return True

    async def handle_AUTH(  # noqa: N802
        self, server: aiosmtp.SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> Any:
        self._seen(f"AUTH {args[0].upper()}" if args else "AUTH", session)
        return self._server.scripted("AUTH") or MISSING

    async def auth_XOAUTH2(self, server: aiosmtp.SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        """Offered only with ``xoauth2`` (aiosmtpd finds ``auth_<MECHANISM>`` hooks)."""
        mechanism = self._server.options.xoauth2
        if mechanism is None:
            return AuthResult(success=False)
        return await mechanism(server, args)

    async def handle_MAIL(  # noqa: N802
        self,
        server: aiosmtp.SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> Any:
        self._seen("MAIL", session)
        scripted = self._server.scripted("MAIL")
        if scripted is not None:
            return scripted
        if self._server.options.login_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        return MISSING

    async def handle_RCPT(  # noqa: N802
        self,
        server: aiosmtp.SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> Any:
        self._seen("RCPT", session)
        refusal = self._server.refusal(address, session, len(envelope.rcpt_tos))
        return refusal or self._server.scripted("RCPT") or MISSING

    async def handle_DATA(  # noqa: N802
        self, server: aiosmtp.SMTP, session: Session, envelope: Envelope
    ) -> str:
        self._seen("DATA", session)
        scripted = self._server.scripted("DATA")
        if scripted is not None:
            return scripted
        received = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            content=bytes(envelope.original_content or b""),
            mail_options=list(envelope.mail_options),
            peer=session.peer,
            secure=self._secure(session),
        )
        self._server.messages.append(received)
        return f"250 2.0.0 Ok: queued as {len(self._server.messages)}"

    async def handle_RSET(  # noqa: N802
        self, server: aiosmtp.SMTP, session: Session, envelope: Envelope
    ) -> Any:
        self._seen("RSET", session)
        return self._server.scripted("RSET") or MISSING

    async def handle_QUIT(  # noqa: N802
        self, server: aiosmtp.SMTP, session: Session, envelope: Envelope
    ) -> Any:
        self._seen("QUIT", session)
        return MISSING


def _certificate_context(kind: CertificateKind, ca: trustme.CA) -> ssl.SSLContext:
    if kind == "wrong_host":
        return server_context(ca, OTHER_NAME)
    if kind == "expired":
        return server_context(ca, expired=True)
    return server_context(ca)


@dataclass(frozen=True)
class SilentServer:
    """Accepts TCP connections (the kernel completes them) and never answers."""

    host: str
    port: int

    def sender(self, **overrides: Any) -> SenderSettings:
        return make_sender(self.host, self.port, **{"timeout_s": 0.5, **overrides})


@pytest.fixture
def smtp_server(
    trusted_ca: trustme.CA, unknown_ca: trustme.CA
) -> Iterator[Callable[..., SmtpTestServer]]:
    servers: list[SmtpTestServer] = []

    def start(**options: Any) -> SmtpTestServer:
        settings = ServerOptions(**options)
        server = SmtpTestServer(settings, ca_for(settings.certificate, trusted_ca, unknown_ca))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def ca_for(kind: CertificateKind, trusted_ca: trustme.CA, unknown_ca: trustme.CA) -> trustme.CA:
    """The CA that signs a server's certificate of this kind."""
    return unknown_ca if kind == "unknown_ca" else trusted_ca


@pytest.fixture
def closed_port() -> int:
    return free_port()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        listener.listen(8)
        yield SilentServer(HOST, listener.getsockname()[1])


def sender_fields(settings: SenderSettings, **extra: Any) -> dict[str, Any]:
    """A validated sender as the input fields an administrator would type (API, services)."""
    return {
        "smtp_host": settings.smtp_host,
        "port": settings.port,
        "encryption": settings.encryption.value,
        "address": settings.address.address,
        "display_name": settings.display_name,
        "username": settings.username,
        "password": settings.password,
        "ca_cert_pem": settings.ca_cert_pem,
        "timeout_s": settings.timeout_s,
        **extra,
    }
