"""Sender accounts: the settings of one SMTP account and the rules that validate them."""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from postdesk.domain.addresses import AddressError, MailAddress, check_header_value, parse_address
from postdesk.domain.encryption import Encryption as Encryption  # re-exported
from postdesk.domain.oauth import (
    AuthKind,
    OAuthSecrets,
    OAuthSettings,
    check_auth_kind,
    validate_oauth,
)
from postdesk.errors import ValidationError

DEFAULT_PORT = 25
DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 600.0
MAX_DISPLAY_NAME = 200
MAX_PASSWORD = 1024
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


# The port each encryption usually runs on, for hints and for the UI's suggestion.
USUAL_PORT = {Encryption.SSL: 465, Encryption.TLS: 587, Encryption.NONE: 25}


@dataclass(frozen=True)
class SenderSettings:
    """A validated sender: everything needed to connect, log in and send.

    ``password``, ``oauth_secrets`` and ``access_token`` are plain secrets in memory only;
    they are never part of ``repr``. An ``oauth2`` sender logs in with XOAUTH2 and the
    ``access_token`` its caller got for it (``with_access_token``); it has no password.
    """

    smtp_host: str
    port: int
    encryption: Encryption
    address: MailAddress
    display_name: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_cert_pem: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_per_minute: int | None = None
    auth: AuthKind = AuthKind.PASSWORD
    oauth: OAuthSettings | None = None
    oauth_secrets: OAuthSecrets = field(default=OAuthSecrets(), repr=False)
    access_token: str | None = field(default=None, repr=False)

    @property
    def login(self) -> str:
        """The name used for AUTH: the username, or the address when none is set."""
        return self.username or self.address.envelope

    @property
    def uses_oauth(self) -> bool:
        return self.auth is AuthKind.OAUTH2

    def with_password(self, password: str | None) -> SenderSettings:
        return replace(self, password=password)

    def with_access_token(self, access_token: str | None) -> SenderSettings:
        return replace(self, access_token=access_token)


@dataclass(frozen=True)
class SenderWarning:
    """Something about working settings the administrator should know; ``code`` is stable."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


PASSWORD_UNENCRYPTED = SenderWarning(
    "password_unencrypted",
    "The password crossed the network unencrypted (No Encryption): anyone on the way can "
    "read it. Choose SSL or TLS if the server offers either; keep No Encryption only for a "
    "server on a network you trust, such as an on-premises Exchange relay.",
)


def sender_warnings(settings: SenderSettings) -> tuple[SenderWarning, ...]:
    """The warnings that go with a mail sent with these settings."""
    if settings.password and settings.encryption is Encryption.NONE:
        return (PASSWORD_UNENCRYPTED,)
    return ()


SENDER_FIELDS = (
    "smtp_host",
    "port",
    "encryption",
    "address",
    "display_name",
    "username",
    "password",
    "ca_cert_pem",
    "timeout_s",
    "max_per_minute",
    "auth",
    "oauth",
)


def validate_sender(data: Mapping[str, Any]) -> SenderSettings:
    """Check every field at once; raise one ``ValidationError`` naming each bad field."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, check in _CHECKS.items():
        try:
            values[name] = check(data.get(name))
        except (AddressError, ValueError) as exc:
            errors[name] = str(exc)
    hint = None
    if values.get("auth") is AuthKind.OAUTH2:
        hint = _add_oauth(data, values, errors)
    if errors:
        raise ValidationError(errors, hint=_HINTS.get(next(iter(errors)), hint))
    return SenderSettings(**values)


def _add_oauth(
    data: Mapping[str, Any], values: dict[str, Any], errors: dict[str, str]
) -> str | None:
    """Add the ``oauth`` part of an ``oauth2`` sender; its errors join the others' (the
    hint of those is returned)."""
    if values.get("password"):
        errors["password"] = "is not used by an OAuth 2.0 sender (auth oauth2): leave it empty"  # noqa: S105
    encryption = values.get("encryption", Encryption.TLS)
    try:
        oauth, secrets = validate_oauth(data.get("oauth"), encryption=encryption.value)
    except ValidationError as exc:
        errors.update(exc.fields)
        return exc.hint
    values.update(oauth=oauth, oauth_secrets=secrets)
    return None


def _required_text(value: Any, what: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{what} is required")
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text")
    return value.strip()


def check_host(value: Any) -> str:
    host = _required_text(value, "the mail server (SMTP host)")
    check_header_value(host)
    if "@" in host:
        raise ValueError(
            "looks like a mail address; enter the mail server's name, such as smtp.qq.com"
        )
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        pass
    try:
        ascii_host = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("is not a valid host name or IP address") from None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("is not a valid host name or IP address")
    if all(label.isdigit() for label in labels):
        raise ValueError("is not a valid host name or IP address")
    return host.rstrip(".").lower()


def check_port(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_PORT
    port = _whole_number(value, "the port")
    if not 1 <= port <= 65535:
        raise ValueError("the port must be between 1 and 65535")
    return port


def check_encryption(value: Any) -> Encryption:
    """Absent means TLS; an empty string is a choice left blank, not the default."""
    if value is None:
        return Encryption.TLS
    try:
        return Encryption(str(value).strip().lower())
    except ValueError:
        raise ValueError("must be one of ssl, tls or none") from None


def check_sender_address(value: Any) -> MailAddress:
    if value is None:
        raise AddressError("the sender address is required")
    if not isinstance(value, str):
        raise AddressError("must be text")
    return parse_address(value)


def check_display_name(value: Any) -> str:
    name = _required_text(value, "the displayed name")
    check_header_value(name)
    if len(name) > MAX_DISPLAY_NAME:
        raise ValueError(f"must be at most {MAX_DISPLAY_NAME} characters")
    return name


def check_username(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError("must be text")
    return check_header_value(value.strip())


def check_password(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("must be text")
    if len(value) > MAX_PASSWORD:
        raise ValueError(f"must be at most {MAX_PASSWORD} characters")
    if "\r" in value or "\n" in value or "\x00" in value:
        # These cannot travel through AUTH LOGIN / PLAIN intact.
        raise ValueError("must not contain line breaks or NUL characters")
    return value


def check_ca_cert(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or "-----BEGIN CERTIFICATE-----" not in value:
        raise ValueError("must be one or more PEM certificates (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cadata=value)
    except (ssl.SSLError, ValueError):
        raise ValueError("is not a readable PEM certificate bundle") from None
    return value.strip() + "\n"


def check_timeout(value: Any) -> float:
    if value is None or value == "":
        return DEFAULT_TIMEOUT_S
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number of seconds") from None
    if not 0 < timeout <= MAX_TIMEOUT_S:
        raise ValueError(f"must be more than 0 and at most {MAX_TIMEOUT_S:.0f} seconds")
    return timeout


def check_max_per_minute(value: Any) -> int | None:
    if value is None or value == "":
        return None
    rate = _whole_number(value, "the rate")
    if rate < 1:
        raise ValueError("must be at least 1 mail per minute (leave empty for no cap)")
    return rate


def _whole_number(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError(f"{what} must be a whole number")


_CHECKS = {
    "smtp_host": check_host,
    "port": check_port,
    "encryption": check_encryption,
    "address": check_sender_address,
    "display_name": check_display_name,
    "username": check_username,
    "password": check_password,
    "ca_cert_pem": check_ca_cert,
    "timeout_s": check_timeout,
    "max_per_minute": check_max_per_minute,
    "auth": check_auth_kind,
}

_HINTS = {
    "smtp_host": "Enter the SMTP server, e.g. smtp.qq.com, or pick a provider preset.",
    "address": "Enter the full sender address, e.g. reports@example.com.",
    "display_name": "The displayed name is required: it is shown as the From name.",
    "encryption": "ssl = implicit TLS (port 465), tls = STARTTLS (587 or 25), none = plain.",
    "auth": "password = log in with the password or authorization code; oauth2 = OAuth 2.0.",
}
