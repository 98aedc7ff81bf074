"""SMTP failure diagnosis: which SPEC section-4 code a failure is, what to do about it, and
whether a later attempt may succeed.

Pure code (stdlib only). The transport decides *what happened* (a reply at some stage, or a
condition such as a timeout or an untrusted certificate); this module owns the words.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from postdesk.domain.provider_replies import provider_reply
from postdesk.errors import DeliveryError, error_body

THROTTLING_REPLIES = frozenset({421, 450, 451, 452})
# "Too many recipients" at RCPT: 452, or 552 as RFC 821 had it, which RFC 5321
# (section 4.5.3.1.10) says to treat as the temporary 452.
TOO_MANY_RECIPIENTS_REPLIES = frozenset({452, 552})
AUTH_FAILED_REPLIES = frozenset({534, 535})
# RFC 4954: "A password transition is needed": the account must log in once with PLAIN.
PASSWORD_TRANSITION_REPLY = 432
_SPAM_WORDS = re.compile(r"spam|dt:spm|content|blocked|unsolicited|junk", re.IGNORECASE)
_STRONG_SPAM_WORDS = re.compile(r"spam|dt:spm|unsolicited", re.IGNORECASE)
_SIZE_WORDS = re.compile(r"\bsize\b|too (?:large|big)|exceeds", re.IGNORECASE)
_TLS_WORDS = re.compile(r"starttls|encrypt|\btls\b|\bssl\b", re.IGNORECASE)


class Stage(enum.StrEnum):
    """Where in the SMTP conversation a failure happened."""

    CONNECT = "connect"  # TCP connection (DNS included)
    TLS = "tls"  # the handshake of implicit TLS ("SSL" encryption)
    GREETING = "greeting"  # waiting for the server's 220
    EHLO = "ehlo"
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"


class DiagnosisCode(enum.StrEnum):
    """The stable diagnosis codes of SPEC section 4."""

    CONNECT_FAILED = "smtp_connect_failed"
    TIMEOUT = "smtp_timeout"
    TLS_FAILED = "smtp_tls_failed"
    CERTIFICATE_UNTRUSTED = "smtp_certificate_untrusted"
    STARTTLS_UNSUPPORTED = "smtp_starttls_unsupported"
    AUTH_FAILED = "smtp_auth_failed"
    AUTH_THROTTLED = "smtp_auth_throttled"
    AUTH_UNSUPPORTED = "smtp_auth_unsupported"
    SENDER_REJECTED = "smtp_sender_rejected"
    RECIPIENT_REJECTED = "smtp_recipient_rejected"
    REJECTED_AS_SPAM = "smtp_rejected_as_spam"
    THROTTLED = "smtp_throttled"
    MESSAGE_TOO_LARGE = "smtp_message_too_large"
    NOT_SMTP_SERVER = "smtp_not_smtp_server"
    OAUTH_TOKEN_FAILED = "oauth_token_failed"  # noqa: S105 (a code, not a token)
    OAUTH_CONSENT_REQUIRED = "oauth_consent_required"
    ERROR = "smtp_error"


class Condition(enum.StrEnum):
    """A failure the transport recognised that is not an SMTP reply."""

    UNREACHABLE = "unreachable"  # refused, unreachable, DNS failure, TCP connect timeout
    TIMEOUT = "timeout"  # connected, but no answer in time
    DISCONNECTED = "disconnected"  # the server closed the connection
    TLS_WRONG_PORT = "tls_wrong_port"  # SSL chosen, the port does not speak TLS first
    TLS_OLD_PROTOCOL = "tls_old_protocol"  # the server offers only TLS < 1.2
    TLS_HANDSHAKE = "tls_handshake"  # any other handshake failure
    CERT_UNTRUSTED = "cert_untrusted"
    CERT_WRONG_HOST = "cert_wrong_host"
    CERT_EXPIRED = "cert_expired"
    STARTTLS_MISSING = "starttls_missing"
    AUTH_UNAVAILABLE = "auth_unavailable"  # no AUTH, or no mechanism we can use
    SMTPUTF8_MISSING = "smtputf8_missing"
    MESSAGE_TOO_LARGE = "message_too_large"  # our own SIZE pre-check
    NOT_SMTP = "not_smtp"  # the peer answered with something that is not an SMTP reply


@dataclass(frozen=True)
class Endpoint:
    """The server a diagnosis talks about; ``encryption`` is ``ssl``, ``tls`` or ``none``."""

    host: str
    port: int
    encryption: str = "tls"
    timeout_s: float = 30.0

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Diagnosis:
    code: DiagnosisCode
    hint: str
    transient: bool


def is_transient_reply(code: int, stage: Stage | None = None) -> bool:
    """4xx replies are worth another attempt, and 552 at RCPT (read as 452, too many
    recipients); everything else is final."""
    return 400 <= code <= 499 or (code == 552 and stage is Stage.RCPT)


def classify_reply(
    code: int, text: str, stage: Stage, endpoint: Endpoint | None = None
) -> Diagnosis:
    """Diagnose an unexpected SMTP reply ``code text`` received at ``stage``."""
    transient = is_transient_reply(code, stage)
    known = provider_reply(code, text)
    if known is not None:
        return Diagnosis(DiagnosisCode(known.code), known.hint, transient)
    diagnosis_code = _login_reply_code(code, stage) or _reply_code(code, text, stage)
    if diagnosis_code is DiagnosisCode.ERROR:
        hint = _server_words_hint(code, text, transient)
    elif stage is Stage.AUTH and code == PASSWORD_TRANSITION_REPLY:
        hint = _TRANSITION_HINT.format(where=_where(endpoint))
    else:
        hint = _REPLY_HINTS[diagnosis_code](_where(endpoint))
    return Diagnosis(diagnosis_code, hint, transient)


def _login_reply_code(code: int, stage: Stage) -> DiagnosisCode | None:
    """A 4xx reply to AUTH. A password transition needs the account holder; any other is
    the server refusing logins for now (454 "Temporary authentication failure", or too
    many attempts), where trying again at once only prolongs a lock-out."""
    if stage is not Stage.AUTH or not is_transient_reply(code):
        return None
    if code == PASSWORD_TRANSITION_REPLY:
        return DiagnosisCode.AUTH_FAILED
    return DiagnosisCode.AUTH_THROTTLED


def _reply_code(code: int, text: str, stage: Stage) -> DiagnosisCode:
    in_transaction = stage in (Stage.MAIL, Stage.RCPT, Stage.DATA)
    permanent = 500 <= code <= 599
    if code in THROTTLING_REPLIES or (code == 552 and stage is Stage.RCPT):
        return DiagnosisCode.THROTTLED
    if code in AUTH_FAILED_REPLIES:
        return DiagnosisCode.AUTH_FAILED
    if code == 538 or (code == 530 and _TLS_WORDS.search(text)):
        return DiagnosisCode.AUTH_UNSUPPORTED
    if code == 530 or (stage is Stage.AUTH and permanent):
        # 530 without TLS words is "authentication required"; 504 is an unknown mechanism.
        return DiagnosisCode.AUTH_UNSUPPORTED if code == 504 else DiagnosisCode.AUTH_FAILED
    if in_transaction and _mentions_spam(code, text, stage):
        return DiagnosisCode.REJECTED_AS_SPAM
    if permanent and (_SIZE_WORDS.search(text) or (code == 552 and stage is not Stage.RCPT)):
        return DiagnosisCode.MESSAGE_TOO_LARGE
    if code == 554 and stage is Stage.DATA:
        # 163 and others answer a bare 554 after the data for content they take for spam.
        return DiagnosisCode.REJECTED_AS_SPAM
    if permanent and stage is Stage.MAIL:
        return DiagnosisCode.SENDER_REJECTED
    if permanent and stage is Stage.RCPT:
        return DiagnosisCode.RECIPIENT_REJECTED
    return DiagnosisCode.ERROR


def _mentions_spam(code: int, text: str, stage: Stage) -> bool:
    if code == 554:
        return bool(_SPAM_WORDS.search(text))
    return 500 <= code <= 599 and stage is Stage.DATA and bool(_STRONG_SPAM_WORDS.search(text))


def diagnose_condition(
    condition: Condition, endpoint: Endpoint, *, stage: Stage | None = None
) -> Diagnosis:
    """Diagnose a failure that is not an SMTP reply (network, TLS, missing extensions)."""
    code, transient = _CONDITION_CODES[condition]
    return Diagnosis(code, _condition_hint(condition, endpoint, stage), transient)


_CONDITION_CODES: dict[Condition, tuple[DiagnosisCode, bool]] = {
    Condition.UNREACHABLE: (DiagnosisCode.CONNECT_FAILED, True),
    Condition.TIMEOUT: (DiagnosisCode.TIMEOUT, True),
    Condition.DISCONNECTED: (DiagnosisCode.ERROR, True),
    Condition.TLS_WRONG_PORT: (DiagnosisCode.TLS_FAILED, False),
    Condition.TLS_OLD_PROTOCOL: (DiagnosisCode.TLS_FAILED, False),
    Condition.TLS_HANDSHAKE: (DiagnosisCode.TLS_FAILED, False),
    Condition.CERT_UNTRUSTED: (DiagnosisCode.CERTIFICATE_UNTRUSTED, False),
    Condition.CERT_WRONG_HOST: (DiagnosisCode.CERTIFICATE_UNTRUSTED, False),
    Condition.CERT_EXPIRED: (DiagnosisCode.CERTIFICATE_UNTRUSTED, False),
    Condition.STARTTLS_MISSING: (DiagnosisCode.STARTTLS_UNSUPPORTED, False),
    Condition.AUTH_UNAVAILABLE: (DiagnosisCode.AUTH_UNSUPPORTED, False),
    Condition.SMTPUTF8_MISSING: (DiagnosisCode.ERROR, False),
    Condition.MESSAGE_TOO_LARGE: (DiagnosisCode.MESSAGE_TOO_LARGE, False),
    Condition.NOT_SMTP: (DiagnosisCode.NOT_SMTP_SERVER, False),
}

_CHOOSE_OTHER_FOR_SSL_PORT = (
    "choose TLS (STARTTLS) or None for this port, or the port that matches SSL (usually 465)"
)


def _condition_hint(condition: Condition, endpoint: Endpoint, stage: Stage | None) -> str:
    where = str(endpoint)
    if condition is Condition.TIMEOUT:
        return _timeout_hint(endpoint, stage)
    if condition is Condition.DISCONNECTED:
        return _disconnected_hint(endpoint, stage)
    if condition is Condition.AUTH_UNAVAILABLE:
        plain = " over an unencrypted connection" if endpoint.encryption == "none" else ""
        return _AUTH_UNSUPPORTED_HINT.format(where=where, plain=plain)
    return _CONDITION_HINTS[condition].format(where=where, host=endpoint.host, port=endpoint.port)


def _timeout_hint(endpoint: Endpoint, stage: Stage | None) -> str:
    seconds = f"{endpoint.timeout_s:g} s"
    if stage in (Stage.GREETING, None) and endpoint.encryption != "ssl":
        return (
            f"{endpoint} accepted the connection but sent no greeting within {seconds}. "
            f"If port {endpoint.port} is 465 or another SSL port, choose SSL Encryption; "
            "otherwise check that this is the mail server's SMTP port, or raise the timeout "
            "for a slow server."
        )
    if stage in (Stage.TLS, Stage.GREETING):
        return (
            f"{endpoint} did not answer within {seconds}: check that port {endpoint.port} is "
            "the server's SSL port (usually 465); for a TLS (STARTTLS) or plain port choose "
            "TLS or None. Raise the timeout if the server is slow."
        )
    after_data = (
        " The mail may have been delivered even so: the final reply was missing."
        if stage is Stage.DATA
        else ""
    )
    return (
        f"{endpoint} stopped answering ({stage or 'reply'}: nothing within {seconds}): "
        "try again later, or raise the timeout if the server is slow." + after_data
    )


def _disconnected_hint(endpoint: Endpoint, stage: Stage | None) -> str:
    if stage in (Stage.GREETING, None) and endpoint.encryption != "ssl":
        return (
            f"{endpoint} closed the connection without greeting. If port {endpoint.port} is "
            "465 or another SSL port, choose SSL Encryption; otherwise the server may refuse "
            "this client (check the mail server's log)."
        )
    return (
        f"{endpoint} closed the connection during {stage or 'the session'}: try again later; "
        "if it keeps happening, check the mail server's log."
    )


_AUTH_UNSUPPORTED_HINT = (
    "{where} offers no login method postdesk can use (PLAIN or LOGIN){plain}: enable "
    "encryption (SSL or TLS), or enable the provider's SMTP service (for QQ, 163 and 126: "
    "the POP3/SMTP service in the mailbox settings). For an internal relay that needs no "
    "login, leave the password empty."
)

_TRANSITION_HINT = (
    "{where} asks for a password transition: the account must log in once with the PLAIN "
    "method (for example from a mail client) before the method postdesk chose works. Do "
    "that, then edit the sender or send a test mail; until then its mail waits."
)

_CONDITION_HINTS: dict[Condition, str] = {
    Condition.UNREACHABLE: (
        "{where} cannot be reached from this server: check the address and port, the "
        "firewall, and that this server has external network access (an internal mail "
        "server only needs to be reachable from here)."
    ),
    Condition.TLS_WRONG_PORT: (
        "{where} does not speak SSL (implicit TLS) on this port: "
        + _CHOOSE_OTHER_FOR_SSL_PORT
        + "."
    ),
    Condition.TLS_OLD_PROTOCOL: (
        "{where} offers only TLS versions older than 1.2, which postdesk refuses: update the "
        "mail server's TLS settings; or " + _CHOOSE_OTHER_FOR_SSL_PORT + "."
    ),
    Condition.TLS_HANDSHAKE: (
        "The TLS handshake with {where} failed: check the mail server's TLS settings "
        "(postdesk needs TLS 1.2 or newer); or " + _CHOOSE_OTHER_FOR_SSL_PORT + "."
    ),
    Condition.CERT_UNTRUSTED: (
        "The certificate of {host} is not signed by an authority this server trusts (for "
        "example a private CA or a self-signed certificate): add the server's CA certificate "
        "to the sender (PEM), or give the mail server a certificate from a public CA."
    ),
    Condition.CERT_WRONG_HOST: (
        "The certificate of the mail server is for another name than {host}: enter the mail "
        "server (SMTP) by the name on its certificate (for example smtp.example.com rather "
        "than an IP address), or fix the server's certificate. Adding the server's CA "
        "certificate to the sender (PEM) does not help here."
    ),
    Condition.CERT_EXPIRED: (
        "The certificate of {host} has expired or is not valid yet: renew it on the mail "
        "server, and check that this server's clock is right."
    ),
    Condition.STARTTLS_MISSING: (
        "{where} does not offer STARTTLS, and TLS never falls back to plain text, so nothing "
        "was sent: choose SSL (usually port 465) or None, or fix the server (enable STARTTLS)."
    ),
    Condition.SMTPUTF8_MISSING: (
        "{where} does not accept international (non-ASCII) addresses (no SMTPUTF8): use ASCII "
        "addresses for this sender and its recipients, or another mail server."
    ),
    Condition.MESSAGE_TOO_LARGE: (
        "The message is larger than {where} accepts: reduce attachments (or link to the "
        "report instead of attaching it)."
    ),
    Condition.NOT_SMTP: (
        "Port {port} of {host} answers, but not with SMTP: check the host and the port. "
        "Mail servers take mail on 465 (SSL Encryption), 587 (TLS Encryption, STARTTLS) "
        "or 25 (TLS or No Encryption)."
    ),
}


def _where(endpoint: Endpoint | None) -> str:
    return str(endpoint) if endpoint is not None else "the mail server"


def _server_words_hint(code: int, text: str, transient: bool) -> str:
    words = " ".join(text.split())
    said = f"The server said: {code} {words}" if words else f"The server answered {code}"
    if transient:
        return said + ". This is temporary: postdesk tries again later."
    return said + ". Fix what it names, or ask the mail server's administrator."


_REPLY_HINTS = {
    DiagnosisCode.THROTTLED: lambda where: (
        f"{where} is limiting the rate (or is busy): wait about a minute and try again; "
        "queued mail is retried by itself. If it keeps happening, lower max_per_minute for this "
        "sender."
    ),
    DiagnosisCode.AUTH_FAILED: lambda where: (
        f"{where} refused the login: check the login (the username, or the sender address "
        "when no username is set) and the password. For QQ, 163, 126 and Gmail the password "
        "must be the authorization code / app password from the mailbox settings, not the "
        "account password."
    ),
    DiagnosisCode.AUTH_THROTTLED: lambda where: (
        f"{where} refuses logins for now, usually after too many login attempts: postdesk "
        "pauses this sender's mail, which waits without spending attempts, and tries one "
        "login again after a pause that grows each time the server refuses. Check that no "
        "other system (an old mail client, a script, another server) keeps trying this "
        "account with a wrong password."
    ),
    DiagnosisCode.AUTH_UNSUPPORTED: lambda where: _AUTH_UNSUPPORTED_HINT.format(
        where=where, plain=" (it refuses to log in over plain text)"
    ),
    DiagnosisCode.REJECTED_AS_SPAM: lambda where: (
        f'{where} rejected the mail as spam: avoid words like "test" in the subject and '
        "check the content (links, attachments). If another mail goes through, the "
        "configuration is correct and the server's own rules apply."
    ),
    DiagnosisCode.MESSAGE_TOO_LARGE: lambda where: _CONDITION_HINTS[
        Condition.MESSAGE_TOO_LARGE
    ].format(where=where),
    DiagnosisCode.SENDER_REJECTED: lambda where: (
        f"{where} refused the sender address: the account may not send as this address. "
        "Use the address of the account you log in with (or one it may send as), and check "
        "that the account's SMTP service is enabled."
    ),
    DiagnosisCode.RECIPIENT_REJECTED: lambda where: (
        f"{where} refused the recipient: check the recipient address (spelling and domain); "
        "the mailbox may not exist or may not accept mail."
    ),
}


@dataclass(frozen=True)
class Failure:
    """Why an attempt failed, as plain data: a ``DeliveryError``'s fields, or one of
    postdesk's own codes (kept by the queue, reported by the port probe)."""

    code: str
    message: str
    hint: str | None = None
    smtp_code: int | None = None
    transient: bool = False

    @classmethod
    def of(cls, error: DeliveryError) -> Failure:
        return cls(error.code, error.message, error.hint, error.smtp_code, error.transient)

    def to_dict(self) -> dict[str, Any]:
        """The SPEC's error body, as ``DeliveryError.to_dict`` gives it."""
        return error_body(self.code, self.message, self.hint, smtp_code=self.smtp_code)
