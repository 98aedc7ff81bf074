"""The one place where smtplib, ssl and socket errors become ``DeliveryError`` diagnoses.

Nothing else in postdesk catches those libraries' exceptions: the transport hands each one,
with the stage it happened at, to ``diagnose``; failures the transport detects itself (no
usable AUTH mechanism, the SIZE pre-check) go through ``condition_error``. Both build the
error from ``postdesk.domain.diagnosis``, which owns the codes and the hints, and both scrub
the sender's password from everything they put into the error.
"""

from __future__ import annotations

import base64
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from urllib.parse import quote, quote_plus

from postdesk.domain.diagnosis import (
    Condition,
    Diagnosis,
    Endpoint,
    Stage,
    classify_reply,
    diagnose_condition,
    is_transient_reply,
)
from postdesk.domain.senders import SenderSettings
from postdesk.errors import DeliveryError

_HOSTNAME_MISMATCH = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH
_NOT_IN_VALIDITY = frozenset({9, 10})  # X509_V_ERR_CERT_NOT_YET_VALID, _HAS_EXPIRED
_OLD_PROTOCOL_REASONS = frozenset(
    {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"}
)
_REPLY_STAGES: tuple[tuple[type[smtplib.SMTPResponseException], Stage], ...] = (
    (smtplib.SMTPConnectError, Stage.GREETING),
    (smtplib.SMTPHeloError, Stage.EHLO),
    (smtplib.SMTPAuthenticationError, Stage.AUTH),
    (smtplib.SMTPSenderRefused, Stage.MAIL),
    (smtplib.SMTPDataError, Stage.DATA),
)
_MAX_LISTED_REFUSALS = 5
_REDACTED = "[redacted]"
_MIN_SCRUBBED = 4


class NotSmtpReplyError(smtplib.SMTPException):
    """The peer sent something that is not an SMTP reply (an SSH banner, an HTTP answer,
    binary data). What it sent is not kept: no error, record or log line repeats it."""

    def __init__(self) -> None:
        super().__init__("the answer is not an SMTP reply")


def endpoint_of(sender: SenderSettings) -> Endpoint:
    return Endpoint(sender.smtp_host, sender.port, sender.encryption.value, sender.timeout_s)


def secrets_of(sender: SenderSettings) -> tuple[str, ...]:
    """What must never appear in an error: the password, and its forms on the wire.

    Those are the password itself, URL-encoded, and in base64 (standard and URL-safe, with
    and without padding) alone (AUTH LOGIN), inside the AUTH PLAIN string (with and without
    an authorisation identity) and at any offset of a longer base64 text. Longest first.
    """
    if not sender.password:
        return ()
    password, login = sender.password, sender.login
    forms = {password, quote(password, safe=""), quote_plus(password)}
    for text in (password, f"\0{login}\0{password}", f"{login}\0{login}\0{password}"):
        forms.update(_base64_forms(text.encode("utf-8")))
    forms.update(_base64_cores(password.encode("utf-8")))
    return tuple(sorted(forms, key=len, reverse=True))


def _base64_forms(data: bytes) -> set[str]:
    encoded = (base64.b64encode(data).decode("ascii"), base64.urlsafe_b64encode(data).decode())
    return {form for text in encoded for form in (text, text.rstrip("="))}


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters that carry only ``data``'s bits, wherever ``data`` starts."""
    cores = set()
    for shift in range(3):
        start, end = -(-8 * shift // 6), 8 * (shift + len(data)) // 6
        encoded = base64.b64encode(bytes(shift) + data).decode("ascii")[start:end]
        cores.update({encoded, encoded.replace("+", "-").replace("/", "_")})
    return cores


def diagnose_for_sender(error: OSError, *, stage: Stage, sender: SenderSettings) -> DeliveryError:
    """``diagnose`` for a sender's connection."""
    return diagnose(error, stage=stage, endpoint=endpoint_of(sender), secrets=secrets_of(sender))


def diagnose(
    error: OSError, *, stage: Stage, endpoint: Endpoint, secrets: Sequence[str] = ()
) -> DeliveryError:
    """Translate a library error raised at ``stage`` into a diagnosis.

    ``smtplib`` exceptions are ``OSError`` subclasses, as are ``ssl`` and ``socket`` errors,
    so this one signature covers them all.
    """
    if isinstance(error, NotSmtpReplyError):
        return _not_smtp(stage, endpoint)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return _recipients_refused(error, endpoint, secrets)
    if isinstance(error, smtplib.SMTPResponseException):
        return _reply(error, stage, endpoint, secrets)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return _not_supported(error, stage, endpoint, secrets)
    cause = _underlying(error)
    condition = _condition(cause, stage)
    message = _describe(cause, condition, stage, endpoint)
    return _build(diagnose_condition(condition, endpoint, stage=stage), message, None, secrets)


def condition_error(
    condition: Condition,
    message: str,
    *,
    endpoint: Endpoint,
    stage: Stage | None = None,
    secrets: Sequence[str] = (),
) -> DeliveryError:
    """A failure the transport detected itself, such as a message over the SIZE limit."""
    return _build(diagnose_condition(condition, endpoint, stage=stage), message, None, secrets)


def reply_text(raw: bytes | str) -> str:
    """An SMTP reply's text on one line; smtplib gives bytes joined by newlines."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())


def _reply(
    error: smtplib.SMTPResponseException, stage: Stage, endpoint: Endpoint, secrets: Sequence[str]
) -> DeliveryError:
    for kind, kind_stage in _REPLY_STAGES:
        if isinstance(error, kind):
            stage = kind_stage
            break
    text = reply_text(error.smtp_error)
    message = f"{error.smtp_code} {text}".strip()
    if isinstance(error, smtplib.SMTPSenderRefused):
        message = f"<{error.sender}>: {message}"
    diagnosis = classify_reply(error.smtp_code, text, stage, endpoint)
    return _build(diagnosis, message, error.smtp_code, secrets)


def _not_smtp(stage: Stage, endpoint: Endpoint) -> DeliveryError:
    if stage is Stage.GREETING:
        message = f"{endpoint} greeted with something that is not SMTP"
    else:
        message = f"{endpoint} answered {stage.value.upper()} with something that is not SMTP"
    return _build(diagnose_condition(Condition.NOT_SMTP, endpoint, stage=stage), message, None, ())


def _recipients_refused(
    error: smtplib.SMTPRecipientsRefused, endpoint: Endpoint, secrets: Sequence[str]
) -> DeliveryError:
    refusals = {rcpt: (code, reply_text(text)) for rcpt, (code, text) in error.recipients.items()}
    return refusals_error(refusals, every=True, endpoint=endpoint, secrets=secrets)


def refusals_error(
    refusals: Mapping[str, tuple[int | None, str]],
    *,
    every: bool,
    endpoint: Endpoint,
    secrets: Sequence[str] = (),
) -> DeliveryError:
    """Recipients refused at RCPT (address -> code and text): ``every`` one, or some while
    the server took the others.

    Diagnosed by a refusal that a later attempt can help if there is one (a 4xx, or 552
    read as 452), else by the first.
    """
    answered = [(rcpt, code, text) for rcpt, (code, text) in refusals.items() if code is not None]
    if not answered:
        diagnosis = diagnose_condition(Condition.DISCONNECTED, endpoint, stage=Stage.RCPT)
        return _build(diagnosis, "every recipient was refused", None, secrets)
    transient = (r for r in answered if is_transient_reply(r[1], Stage.RCPT))
    _, code, text = next(transient, answered[0])
    listed = "; ".join(f"<{rcpt}>: {c} {t}" for rcpt, c, t in answered[:_MAX_LISTED_REFUSALS])
    more = len(answered) - _MAX_LISTED_REFUSALS
    count = len(answered)
    lead = (
        "every recipient was refused" if every else f"{count} recipient{'s' * (count > 1)} refused"
    )
    message = f"{lead}: {listed}" + (f"; and {more} more" if more > 0 else "")
    return _build(classify_reply(code, text, Stage.RCPT, endpoint), message, code, secrets)


def _not_supported(
    error: smtplib.SMTPNotSupportedError, stage: Stage, endpoint: Endpoint, secrets: Sequence[str]
) -> DeliveryError:
    condition = {
        Stage.STARTTLS: Condition.STARTTLS_MISSING,
        Stage.AUTH: Condition.AUTH_UNAVAILABLE,
    }.get(stage, Condition.SMTPUTF8_MISSING)
    message = f"{endpoint}: {error}"
    return _build(diagnose_condition(condition, endpoint, stage=stage), message, None, secrets)


def _underlying(error: OSError) -> OSError:
    """smtplib reports a failed read or write as SMTPServerDisconnected; find the real cause."""
    if isinstance(error, smtplib.SMTPServerDisconnected):
        cause = error.__cause__ or error.__context__
        if isinstance(cause, OSError) and not isinstance(cause, smtplib.SMTPException):
            return cause
    return error


def _condition(error: OSError, stage: Stage) -> Condition:
    if isinstance(error, ssl.SSLCertVerificationError):
        if error.verify_code in _HOSTNAME_MISMATCH:
            return Condition.CERT_WRONG_HOST
        if error.verify_code in _NOT_IN_VALIDITY:
            return Condition.CERT_EXPIRED
        return Condition.CERT_UNTRUSTED
    if isinstance(error, ssl.SSLError) and getattr(error, "reason", None) in _OLD_PROTOCOL_REASONS:
        return Condition.TLS_OLD_PROTOCOL
    if isinstance(error, TimeoutError):
        # A TCP connect that times out is a host or port that cannot be reached (a firewall
        # dropping packets); once connected, silence is a timeout.
        return Condition.UNREACHABLE if stage is Stage.CONNECT else Condition.TIMEOUT
    if stage is Stage.CONNECT:
        return Condition.UNREACHABLE
    if stage is Stage.TLS:
        # SSL chosen, and the other side answered the handshake with something that is not
        # TLS (typically a plain "220" greeting) or hung up on it.
        return Condition.TLS_WRONG_PORT
    if stage is Stage.STARTTLS or isinstance(error, ssl.SSLError):
        return Condition.TLS_HANDSHAKE
    return Condition.DISCONNECTED


def _describe(error: OSError, condition: Condition, stage: Stage, endpoint: Endpoint) -> str:
    seconds = f"{endpoint.timeout_s:g} s"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name {endpoint.host}: {error.strerror or error}"
    if isinstance(error, ConnectionRefusedError):
        return f"{endpoint} refused the connection (nothing listens on port {endpoint.port})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the certificate of {endpoint} is not trusted: {error.verify_message or error}"
    if condition is Condition.UNREACHABLE:
        if isinstance(error, TimeoutError):
            return f"no connection to {endpoint} within {seconds}"
        return f"cannot connect to {endpoint}: {error.strerror or error}"
    if condition is Condition.TIMEOUT:
        waiting_for = "the greeting" if stage is Stage.GREETING else f"a reply ({stage})"
        return f"no answer from {endpoint} within {seconds} while waiting for {waiting_for}"
    if isinstance(error, ssl.SSLError):
        return f"the TLS handshake with {endpoint} failed: {error}"
    return f"{endpoint} closed the connection during {stage}: {error}"


def _build(
    diagnosis: Diagnosis, message: str, smtp_code: int | None, secrets: Sequence[str]
) -> DeliveryError:
    return DeliveryError(
        diagnosis.code.value,
        _scrub(message, secrets),
        hint=_scrub(diagnosis.hint, secrets),
        smtp_code=smtp_code,
        transient=diagnosis.transient,
    )


def _scrub(text: str, secrets: Sequence[str]) -> str:
    """Remove secrets in case a server echoed one back in its reply.

    Every occurrence is replaced, inside words too (``pass=SECRET``, ``SECRET==``), in one
    pass and regardless of case (a server may echo the URL-encoded form in either case);
    only secrets of a few characters or more: a one-letter password would otherwise redact
    every word that contains that letter.
    """
    scrubbed = [re.escape(secret) for secret in secrets if len(secret) >= _MIN_SCRUBBED]
    if not scrubbed:
        return text
    return re.sub("|".join(scrubbed), _REDACTED, text, flags=re.IGNORECASE)
