"""One SMTP connection for a sender: connect (SSL, STARTTLS or plain), log in, send, close.

Built on the stdlib ``smtplib``. Each step records its ``Stage`` so that any failure is
diagnosed by ``postdesk.transport.diagnose`` with the stage it happened at; this module
raises ``DeliveryError`` only.
"""

from __future__ import annotations

import base64
import functools
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from postdesk.domain.diagnosis import (
    TOO_MANY_RECIPIENTS_REPLIES,
    Condition,
    Stage,
    is_transient_reply,
)
from postdesk.domain.senders import Encryption, SenderSettings
from postdesk.errors import DeliveryError
from postdesk.transport.data import MessageData, data_pieces, measure
from postdesk.transport.diagnose import (
    NotSmtpReplyError,
    condition_error,
    diagnose_for_sender,
    endpoint_of,
    refusals_error,
    reply_text,
    secrets_of,
)
from postdesk.transport.tls import sender_context

_MAX_LINE = 8192  # the longest reply line accepted, as smtplib's own limit
# What an SMTP reply line may start with: three digits, then a space, a hyphen or the end
# of the line. Checked on the first bytes of every line as soon as they arrive, so that a
# peer that is not an SMTP server is told at once, without waiting for a line end.
_REPLY_START = re.compile(rb"[1-5](?:\d(?:\d[- \t\r\n]?)?)?")
AUTH_MECHANISMS = ("PLAIN", "LOGIN")  # in order of preference

# A message: one buffer, or a sequence of chunks that the connection streams in order
# without joining them (``postdesk.domain.mail.OutgoingMail.chunks``). A sequence, not a
# one-shot iterator: it is read twice, once to measure it (SIZE) and once to send it.


Reply = tuple[int | None, str]  # an SMTP reply code (None when there was none) and its text


@dataclass
class SendReceipt:
    """What the server did with one message, over one transaction or several.

    ``accepted``: the recipients the server took the message for, each once, in order;
    ``replies`` maps each to the server's answer to the data of its copy. ``refused``:
    recipients refused for good (a 5xx reply at RCPT, but 552). ``deferred``: recipients
    not sent to this time: refused for now (4xx, or 552 read as 452), or their
    transaction failed after others had gone out. ``problem`` says why those refused
    or deferred did not get it; ``reply`` is the server's answer to the message data,
    one per transaction, joined.
    """

    accepted: list[str] = field(default_factory=list)
    refused: dict[str, Reply] = field(default_factory=dict)
    deferred: dict[str, Reply] = field(default_factory=dict)
    reply: str = ""
    replies: dict[str, Reply] = field(default_factory=dict)
    problem: DeliveryError | None = None

    def add(self, taken: _Transaction) -> None:
        """A transaction's outcome: recipients refused for now until then are settled."""
        for rcpt in (*taken.accepted, *taken.refused):
            self.deferred.pop(rcpt, None)
        self.accepted += taken.accepted
        self.refused.update(taken.refused)
        self.deferred.update(taken.deferred)
        if taken.reply is not None:
            self.replies.update(dict.fromkeys(taken.accepted, taken.reply))
            self.reply = "; ".join(filter(None, (self.reply, taken.reply[1])))

    def stop(self, recipients: Sequence[str], error: DeliveryError) -> None:
        """A transaction failed as a whole: its recipients did not get the message."""
        settled = self.deferred if error.transient else self.refused
        for rcpt in recipients:
            self.deferred.pop(rcpt, None)
            settled[rcpt] = (error.smtp_code, error.message)
        self.problem = error


@dataclass
class _Transaction:
    """One transaction's answers: taken, refused for good, refused for now; the data reply."""

    accepted: list[str] = field(default_factory=list)
    refused: dict[str, Reply] = field(default_factory=dict)
    deferred: dict[str, Reply] = field(default_factory=dict)
    reply: Reply | None = None


@dataclass(frozen=True)
class _Envelope:
    """What every transaction of one message sends: the same sender, options and bytes."""

    sender: str
    message: MessageData
    size: int
    eight_bit: bool
    smtputf8: bool


@functools.cache
def local_hostname() -> str:
    """The name this host gives in EHLO: its FQDN, or a domain literal as RFC 5321 asks."""
    fqdn = socket.getfqdn()
    if "." in fqdn:
        return fqdn
    try:
        return f"[{socket.gethostbyname(socket.gethostname())}]"
    except OSError:
        return "[127.0.0.1]"


class StagedClient(smtplib.SMTP):
    """``smtplib.SMTP`` that opens its own socket and remembers the stage it is at.

    Implicit TLS ("SSL") wraps the socket here, as ``smtplib.SMTP_SSL`` does, so that a
    failed TCP connect and a failed TLS handshake are told apart. Given ``addresses``, it
    connects to those (in order) instead of looking the host name up again, while TLS
    still checks the certificate against the name.
    """

    def __init__(
        self,
        *,
        timeout: float,
        implicit_tls: ssl.SSLContext | None = None,
        addresses: Sequence[str] = (),
    ) -> None:
        self.stage = Stage.CONNECT
        self._implicit_tls = implicit_tls
        self._addresses = tuple(addresses)
        self._unread = bytearray()  # received, not yet read as a reply line
        super().__init__(local_hostname=local_hostname(), timeout=timeout)

    def getreply(self) -> tuple[int, bytes]:
        """One reply, read within ``timeout`` as a whole (smtplib bounds each read only).

        A server that trickles its greeting or a reply one byte at a time never lets a
        single read time out; here the reply's lines share one deadline, and missing it
        is a ``TimeoutError`` (diagnosed ``smtp_timeout``), not a lost connection.
        """
        if self.sock is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        deadline = time.monotonic() + float(self.timeout)
        lines: list[bytes] = []
        while True:
            line = self._read_line(deadline)
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                return int(line[:3]), b"\n".join(lines)

    def _read_line(self, deadline: float) -> bytes:
        """A line of the reply, CRLF included, from the buffer and then the socket.

        Bytes that cannot begin a reply line end the conversation with
        ``NotSmtpReplyError``, whatever follows them.
        """
        assert self.sock is not None
        while True:
            if self._unread and not _REPLY_START.fullmatch(self._unread[:4]):
                self.close()
                raise NotSmtpReplyError
            end = self._unread.find(b"\n")
            if end >= 0:
                line, self._unread = bytes(self._unread[: end + 1]), self._unread[end + 1 :]
                return line
            if len(self._unread) > _MAX_LINE:
                self.close()
                raise smtplib.SMTPResponseException(500, b"Line too long.")
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise TimeoutError(f"the reply took longer than {float(self.timeout):g} s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except OSError as exc:
                self.close()
                raise smtplib.SMTPServerDisconnected(
                    f"Connection unexpectedly closed: {exc}"
                ) from exc
            finally:
                if self.sock is not None:
                    self.sock.settimeout(self.timeout)
            if not chunk:
                self.close()
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            self._unread += chunk

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        # Whatever arrived in plain text after the STARTTLS reply is not the encrypted
        # conversation (an injection attempt at worst): it is dropped, as smtplib does.
        reply = super().starttls(*args, **kwargs)
        self._unread = bytearray()
        return reply

    def close(self) -> None:
        self._unread = bytearray()
        super().close()

    def quit_quietly(self) -> None:
        """QUIT, then close: a server that is already gone is fine."""
        try:
            if self.is_open:
                self.quit()
        except OSError:
            pass
        finally:
            self.close()

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # smtplib's starttls() checks the certificate against self._host, which it sets only
        # when the constructor connects; we connect later, so set it here.
        self._host = host
        self.stage = Stage.CONNECT
        sock = self._connect_tcp(host, port, timeout)
        if self._implicit_tls is not None:
            self.stage = Stage.TLS
            try:
                sock = self._implicit_tls.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        self.stage = Stage.GREETING
        return sock

    def _connect_tcp(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection to the host, or to the first of its given addresses that takes it."""
        if not self._addresses:
            return socket.create_connection((host, port), timeout)
        failure: OSError | None = None
        for address in self._addresses:
            try:
                return socket.create_connection((address, port), timeout)
            except OSError as exc:
                failure = exc
        assert failure is not None
        raise failure

    def greet(self, host: str, port: int) -> str:
        """Connect and read the greeting; anything but 220 is a failure."""
        code, text = self.connect(host, port)
        if code != 220:
            raise smtplib.SMTPConnectError(code, text)
        return reply_text(text)

    def hello(self) -> None:
        self.stage = Stage.EHLO
        self.ehlo_or_helo_if_needed()

    def secure(self, context: ssl.SSLContext) -> None:
        """STARTTLS, then EHLO again; never continues in plain text."""
        self.stage = Stage.STARTTLS
        if not self.has_extn("starttls"):
            raise smtplib.SMTPNotSupportedError(
                "the server does not offer STARTTLS; nothing was sent in plain text"
            )
        self.starttls(context=context)
        self.hello()

    @property
    def auth_methods(self) -> tuple[str, ...]:
        return tuple(self.esmtp_features.get("auth", "").upper().split())

    @property
    def size_limit(self) -> int | None:
        """The SIZE the server announced, or None when it announced no fixed limit."""
        value = self.esmtp_features.get("size", "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    @property
    def is_open(self) -> bool:
        return self.sock is not None


class SmtpConnection:
    """An open, logged-in connection; reusable for several messages of the same sender."""

    def __init__(self, client: StagedClient, sender: SenderSettings) -> None:
        self._client = client
        self._sender = sender

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """False once the server hung up or the connection was closed."""
        return self._client.is_open

    @property
    def size_limit(self) -> int | None:
        return self._client.size_limit

    def send(
        self,
        *,
        envelope_from: str,
        recipients: Sequence[str],
        message: MessageData,
        smtputf8: bool = False,
    ) -> SendReceipt:
        """Send one message so that each recipient gets one copy.

        ``message`` is a whole RFC 5322 message: bytes, or a sequence of byte chunks
        (``bytes`` or ``memoryview``) streamed in order without being joined. Bare LF and
        lone CR line ends become CRLF, even across chunk boundaries. SMTPUTF8 is asked for
        when ``smtputf8`` is set or an address is not ASCII.

        A server that takes only so many recipients per transaction (452 "too many
        recipients", or 552 at RCPT, which RFC 5321 section 4.5.3.1.10 reads as 452) gets
        those it refused for now in further transactions on this connection, with the
        same bytes, until one of them takes nobody. Raises ``DeliveryError`` when the
        first transaction fails as a whole (nothing was sent); once some recipients got
        the message, a failed transaction ends the sending and the receipt reports its
        recipients instead. A receipt may have accepted nobody: ``problem`` says why.
        """
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        smtputf8 = smtputf8 or not all(a.isascii() for a in (envelope_from, *recipients))
        size, eight_bit = measure(message)
        self._check_size(size)
        envelope = _Envelope(envelope_from, message, size, eight_bit, smtputf8)
        receipt = SendReceipt()
        remaining = list(dict.fromkeys(recipients))
        while remaining:
            try:
                taken = self._transaction(envelope, remaining)
            except OSError as exc:
                error = self._diagnosed(exc)
                if not receipt.accepted:
                    raise error from None
                receipt.stop(remaining, error)
                return receipt
            receipt.add(taken)
            remaining = list(taken.deferred) if taken.accepted else []
        receipt.problem = self._refusals(receipt)
        return receipt

    def close(self) -> None:
        """QUIT, quietly: a server that is already gone is fine."""
        self._client.quit_quietly()

    def _diagnosed(self, exc: OSError) -> DeliveryError:
        self._after_failure(exc)
        # The library error may quote the server, which may echo a secret; the diagnosis
        # carries its words, scrubbed (callers raise it "from None").
        return diagnose_for_sender(exc, stage=self._client.stage, sender=self._sender)

    def _refusals(self, receipt: SendReceipt) -> DeliveryError | None:
        refusals = {**receipt.refused, **receipt.deferred}
        if not refusals:
            return None
        return refusals_error(
            refusals,
            every=not receipt.accepted,
            endpoint=endpoint_of(self._sender),
            secrets=secrets_of(self._sender),
        )

    def _transaction(self, envelope: _Envelope, recipients: Sequence[str]) -> _Transaction:
        client = self._client
        client.stage = Stage.MAIL
        options = self._mail_options(envelope.size, envelope.eight_bit, envelope.smtputf8)
        client.command_encoding = "utf-8" if envelope.smtputf8 else "ascii"
        code, text = client.docmd("MAIL", f"FROM:<{envelope.sender}>{options}")
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, text, envelope.sender)
        client.stage = Stage.RCPT
        taken = self._recipients(recipients)
        if not taken.accepted:
            self._reset()
            return taken
        client.stage = Stage.DATA
        taken.reply = self._data(envelope.message)
        return taken

    def _check_size(self, size: int) -> None:
        limit = self._client.size_limit
        if limit is not None and size > limit:
            raise condition_error(
                Condition.MESSAGE_TOO_LARGE,
                f"the message is {size} bytes; {endpoint_of(self._sender)} accepts at most "
                f"{limit} bytes (SIZE)",
                endpoint=endpoint_of(self._sender),
                stage=Stage.MAIL,
                secrets=secrets_of(self._sender),
            )

    def _mail_options(self, size: int, eight_bit: bool, smtputf8: bool) -> str:
        client = self._client
        options = []
        if client.has_extn("size"):
            options.append(f"SIZE={size}")
        if eight_bit and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if smtputf8:
            if not client.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError(
                    "the server does not support SMTPUTF8, needed for a non-ASCII address"
                )
            options.append("SMTPUTF8")
        return "".join(f" {option}" for option in options)

    def _recipients(self, recipients: Sequence[str]) -> _Transaction:
        """RCPT for each; once the transaction is full (a "too many recipients" reply
        after some were taken), the rest wait for the next one without being named."""
        taken = _Transaction()
        for index, rcpt in enumerate(recipients):
            code, text = self._client.docmd("RCPT", f"TO:<{rcpt}>")
            if code == 421:  # the server is closing the connection: no use going on
                raise smtplib.SMTPRecipientsRefused({rcpt: (code, text)})
            reply: Reply = (code, reply_text(text))
            if code in (250, 251):
                taken.accepted.append(rcpt)
            elif not is_transient_reply(code, Stage.RCPT):
                taken.refused[rcpt] = reply
            elif code in TOO_MANY_RECIPIENTS_REPLIES and taken.accepted:
                taken.deferred.update(dict.fromkeys(recipients[index:], reply))
                break
            else:
                taken.deferred[rcpt] = reply
        return taken

    def _data(self, message: MessageData) -> Reply:
        client = self._client
        code, text = client.docmd("DATA")
        if code != 354:
            raise smtplib.SMTPDataError(code, text)
        # Send in pieces: a socket timeout bounds each sendall() as a whole, and the timeout
        # is meant for the server's replies, not for pushing 25 MiB through a slow link.
        for piece in data_pieces(message):
            client.send(piece)
        code, text = client.getreply()
        if not 200 <= code <= 299:
            raise smtplib.SMTPDataError(code, text)
        return code, reply_text(text)

    def _after_failure(self, exc: OSError) -> None:
        """Leave the connection ready for the next message, or closed if it cannot be."""
        client = self._client
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return  # refused before MAIL was sent: nothing to reset
        answered = isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused)
        closing = getattr(exc, "smtp_code", None) == 421
        if answered and not closing and client.is_open:
            self._reset()
        else:
            # After a timeout or a lost connection the conversation is out of step: start over.
            client.close()

    def _reset(self) -> None:
        """RSET, ending a transaction that did not reach the end of its data."""
        try:
            self._client.rset()
        except OSError:
            self._client.close()


def resolve_server(sender: SenderSettings) -> tuple[str, ...]:
    """Every address a connection to the sender's server would try, in order.

    A name that does not resolve is the ``smtp_connect_failed`` a connection would give.
    """
    try:
        found = socket.getaddrinfo(sender.smtp_host, sender.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise diagnose_for_sender(exc, stage=Stage.CONNECT, sender=sender) from None
    return tuple(dict.fromkeys(str(info[4][0]) for info in found))


def open_connection(sender: SenderSettings, *, addresses: Sequence[str] = ()) -> SmtpConnection:
    """Connect to the sender's server, secure the connection as configured and log in.

    ``addresses`` (from ``resolve_server``, checked) pins the connection to those: the
    name is not looked up again, so a second answer of DNS cannot send it elsewhere.
    """
    implicit = sender_context(sender) if sender.encryption is Encryption.SSL else None
    client = StagedClient(timeout=sender.timeout_s, implicit_tls=implicit, addresses=addresses)
    try:
        client.greet(sender.smtp_host, sender.port)
        client.hello()
        if sender.encryption is Encryption.TLS:
            client.secure(sender_context(sender))
        if sender.password:
            _log_in(client, sender.login, sender.password)
    except OSError as exc:
        client.close()
        raise diagnose_for_sender(exc, stage=client.stage, sender=sender) from None
    return SmtpConnection(client, sender)


def send_message(
    sender: SenderSettings,
    *,
    recipients: Sequence[str],
    message: MessageData,
    envelope_from: str | None = None,
    smtputf8: bool = False,
    addresses: Sequence[str] = (),
) -> SendReceipt:
    """Open a connection, send one message, close: for test mails and one-off sends.

    ``envelope_from`` defaults to the sender's address; ``addresses`` as for
    ``open_connection``. Raises ``DeliveryError`` when the message reached none of the
    recipients.
    """
    with open_connection(sender, addresses=addresses) as connection:
        receipt = connection.send(
            envelope_from=envelope_from or sender.address.envelope,
            recipients=recipients,
            message=message,
            smtputf8=smtputf8,
        )
    if not receipt.accepted and receipt.problem is not None:
        raise receipt.problem
    return receipt


def _log_in(client: StagedClient, login: str, password: str) -> None:
    """AUTH with the first mechanism both sides know; UTF-8 credentials, never ASCII-only."""
    client.stage = Stage.AUTH
    offered = client.auth_methods
    for mechanism in (m for m in AUTH_MECHANISMS if m in offered):
        code, text = _AUTHENTICATORS[mechanism](client, login, password)
        if code == 235:
            return
        if code == 504:  # announced but refused as unknown: try the next one
            continue
        raise smtplib.SMTPAuthenticationError(code, text)
    announced = " ".join(offered) or "none"
    raise smtplib.SMTPNotSupportedError(
        f"no login method postdesk can use (the server offers: {announced}; postdesk "
        f"uses {' or '.join(AUTH_MECHANISMS)})"
    )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _auth_plain(client: StagedClient, login: str, password: str) -> tuple[int, bytes]:
    response = _b64(f"\0{login}\0{password}")
    code, text = client.docmd("AUTH", f"PLAIN {response}")
    if code == 334:  # a server that ignores the initial response asks for it again
        code, text = client.docmd(response)
    return code, text


def _auth_login(client: StagedClient, login: str, password: str) -> tuple[int, bytes]:
    code, text = client.docmd("AUTH", "LOGIN")
    for answer in (login, password):
        if code != 334:
            return code, text
        code, text = client.docmd(_b64(answer))
    return code, text


_AUTHENTICATORS: dict[str, Callable[[StagedClient, str, str], tuple[int, bytes]]] = {
    "PLAIN": _auth_plain,
    "LOGIN": _auth_login,
}
