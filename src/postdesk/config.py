"""Settings read from ``POSTDESK_*`` environment variables: one object, validated at start."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from postdesk.errors import ConfigError

DEFAULT_RETRY_DELAYS = (60, 300, 900, 1800)
DEFAULT_TEST_MAIL_PORTS = (25, 465, 587, 2525)

# An entry of POSTDESK_TEST_MAIL_ALLOWED_HOSTS: a host name (``*.example.com`` for any
# name below it) or an IP network (an address is a network of one).
HostRule = str | ipaddress.IPv4Network | ipaddress.IPv6Network
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")


@dataclass(frozen=True)
class Settings:
    """Everything postdesk reads from its environment (SPEC section 7)."""

    home: Path
    database_url: str
    secret_key: str | None = None
    broker_url: str | None = None
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    record_retention_days: int = 365
    retry_delays: tuple[int, ...] = DEFAULT_RETRY_DELAYS
    lease_s: int = 60
    public_url: str | None = None
    # Where test mails may go; None: any host (but link-local and metadata addresses) or port.
    test_mail_allowed_hosts: tuple[HostRule, ...] | None = None
    test_mail_allowed_ports: tuple[int, ...] | None = DEFAULT_TEST_MAIL_PORTS

    @property
    def key_file(self) -> Path:
        return self.home / "secret.key"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def https_only(self) -> bool:
        """The site is reached over HTTPS (a TLS-terminating proxy in front, say)."""
        return self.public_url is not None and self.public_url.startswith("https://")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("POSTDESK_HOME") or platformdirs.user_data_dir("postdesk")).expanduser()
        database_url = env.get("POSTDESK_DATABASE_URL") or f"sqlite:///{home / 'postdesk.db'}"
        if not database_url.startswith(("sqlite", "postgresql")):
            raise ConfigError(
                f"POSTDESK_DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL, "
                f"not {_scheme(database_url)!r}",
                hint="Example: postgresql+psycopg://user@127.0.0.1:5432/postdesk",
            )
        return cls(
            home=home,
            database_url=database_url,
            secret_key=env.get("POSTDESK_SECRET_KEY") or None,
            broker_url=env.get("POSTDESK_BROKER_URL") or None,
            trusted_proxies=_networks(env.get("POSTDESK_TRUSTED_PROXIES", "")),
            record_retention_days=_positive_int(env, "POSTDESK_RECORD_RETENTION_DAYS", 365),
            retry_delays=_delays(env.get("POSTDESK_RETRY_DELAYS", "")),
            lease_s=_positive_int(env, "POSTDESK_LEASE_S", 60),
            public_url=_public_url(env.get("POSTDESK_PUBLIC_URL", "")),
            test_mail_allowed_hosts=_allowed_hosts(env.get("POSTDESK_TEST_MAIL_ALLOWED_HOSTS", "")),
            test_mail_allowed_ports=_allowed_ports(env.get("POSTDESK_TEST_MAIL_ALLOWED_PORTS", "")),
        )


def _scheme(url: str) -> str:
    # Never echo the whole URL: it may carry a database password.
    return url.split(":", 1)[0]


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
    return value


def _delays(raw: str) -> tuple[int, ...]:
    if not raw.strip():
        return DEFAULT_RETRY_DELAYS
    try:
        delays = tuple(int(part) for part in raw.split(","))
    except ValueError:
        delays = ()
    if not delays or any(d < 0 for d in delays):
        raise ConfigError(
            f"POSTDESK_RETRY_DELAYS must be comma-separated seconds, not {raw!r}",
            hint="Example: 60,300,900,1800 (five attempts)",
        )
    return delays


def _public_url(raw: str) -> str | None:
    """An absolute http(s) URL without credentials, query or fragment, kept without its
    trailing slash."""
    value = raw.strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid or "@" in value or "?" in value or "#" in value:
        # Never echo credentials someone put into the URL.
        shown = f"{_scheme(value)}://…" if "@" in value else value
        raise ConfigError(
            "POSTDESK_PUBLIC_URL must be an absolute http:// or https:// URL without "
            f"credentials, query or fragment, not {shown!r}",
            hint="Example: https://mail.example.com (the address users and providers reach)",
        )
    return value.rstrip("/")


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"POSTDESK_TRUSTED_PROXIES: {part!r} is not an IP address or network",
                hint="Example: 127.0.0.1,10.0.0.0/8",
            ) from exc
    return tuple(nets)


def _any_or_parts(raw: str, name: str, example: str) -> list[str] | None:
    """None for ``*`` (or nothing set), else the comma-separated entries."""
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if parts == ["*"]:
        return None
    if "*" in parts or not parts:
        raise ConfigError(
            f"{name} must be * alone or a comma-separated list, not {raw!r}", hint=example
        )
    return parts


def _allowed_hosts(raw: str) -> tuple[HostRule, ...] | None:
    if not raw.strip():
        return None
    example = "Example: smtp.example.com,*.mail.example.com,10.0.0.0/8 (or * for any host)"
    parts = _any_or_parts(raw, "POSTDESK_TEST_MAIL_ALLOWED_HOSTS", example)
    return None if parts is None else tuple(_host_rule(part, example) for part in parts)


def _host_rule(part: str, example: str) -> HostRule:
    try:
        return ipaddress.ip_network(part, strict=False)
    except ValueError:
        pass
    name = ascii_host_name(part)
    if len(name) > 253 or not _HOST_NAME.fullmatch(name) or name.replace(".", "").isdigit():
        raise ConfigError(
            f"POSTDESK_TEST_MAIL_ALLOWED_HOSTS: {part!r} is not a host name, IP address or "
            "network",
            hint=example,
        )
    return name


def ascii_host_name(name: str) -> str:
    """A host name as compared: lower case, no trailing dot, international labels in
    their ASCII (IDNA) form; ``*.`` in front is kept."""
    name = name.strip().rstrip(".").lower()
    wildcard, rest = ("*.", name[2:]) if name.startswith("*.") else ("", name)
    try:
        return wildcard + rest.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _allowed_ports(raw: str) -> tuple[int, ...] | None:
    if not raw.strip():
        return DEFAULT_TEST_MAIL_PORTS
    example = "Example: 25,465,587,2525 (or * for any port)"
    parts = _any_or_parts(raw, "POSTDESK_TEST_MAIL_ALLOWED_PORTS", example)
    if parts is None:
        return None
    ports = tuple(int(p) for p in parts if p.isdigit() and 1 <= int(p) <= 65535)
    if len(ports) != len(parts):
        raise ConfigError(
            f"POSTDESK_TEST_MAIL_ALLOWED_PORTS must be ports from 1 to 65535, not {raw!r}",
            hint=example,
        )
    return ports
