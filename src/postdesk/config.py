"""Settings read from ``POSTDESK_*`` environment variables: one object, validated at start."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from postdesk.errors import ConfigError

DEFAULT_RETRY_DELAYS = (60, 300, 900, 1800)


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
