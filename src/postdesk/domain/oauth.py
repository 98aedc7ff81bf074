"""OAuth 2.0 senders: the client settings of an ``oauth2`` sender and the rules that check them.

Pure code. The endpoints a sender's secrets go to are derived here, once, so that the rule
"a stored secret goes only to the endpoints it was saved for" compares like with like.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from postdesk.domain.addresses import check_header_value
from postdesk.errors import ValidationError

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
MICROSOFT_DEFAULT_TENANT = "organizations"
GOOGLE_AUTHORIZATION_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
MAX_SECRET = 64 * 1024  # a PEM certificate chain or a service-account key file fits
MAX_FIELD = 2048
MAX_SCOPES = 20


class AuthKind(enum.StrEnum):
    PASSWORD = "password"  # noqa: S105 (the kind of login)
    OAUTH2 = "oauth2"


class OAuthProvider(enum.StrEnum):
    MICROSOFT = "microsoft"
    GOOGLE = "google"
    CUSTOM = "custom"


class OAuthFlow(enum.StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    CLIENT_CREDENTIALS = "client_credentials"
    SERVICE_ACCOUNT = "service_account"


FLOWS: dict[OAuthProvider, tuple[OAuthFlow, ...]] = {
    OAuthProvider.MICROSOFT: (OAuthFlow.AUTHORIZATION_CODE, OAuthFlow.CLIENT_CREDENTIALS),
    OAuthProvider.GOOGLE: (OAuthFlow.AUTHORIZATION_CODE, OAuthFlow.SERVICE_ACCOUNT),
    OAuthProvider.CUSTOM: (OAuthFlow.AUTHORIZATION_CODE, OAuthFlow.CLIENT_CREDENTIALS),
}

DEFAULT_SCOPES: dict[tuple[OAuthProvider, OAuthFlow], tuple[str, ...]] = {
    (OAuthProvider.MICROSOFT, OAuthFlow.AUTHORIZATION_CODE): (
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ),
    (OAuthProvider.MICROSOFT, OAuthFlow.CLIENT_CREDENTIALS): (
        "https://outlook.office365.com/.default",
    ),
    (OAuthProvider.GOOGLE, OAuthFlow.AUTHORIZATION_CODE): ("https://mail.google.com/",),
    (OAuthProvider.GOOGLE, OAuthFlow.SERVICE_ACCOUNT): ("https://mail.google.com/",),
}

SECRET_FIELDS = ("client_secret", "certificate_pem", "private_key_pem", "service_account_json")
# A stored secret goes only to the endpoints it was saved for: changing one of these needs it again.
SECRET_BOUND_FIELDS = ("authority", "token_url", "client_id")


@dataclass(frozen=True)
class OAuthSecrets:
    """The write-only parts of an OAuth client; never part of a ``repr``."""

    client_secret: str | None = field(default=None, repr=False)
    certificate_pem: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)
    service_account_json: str | None = field(default=None, repr=False)

    def present(self) -> frozenset[str]:
        return frozenset(name for name in SECRET_FIELDS if getattr(self, name))


@dataclass(frozen=True)
class OAuthSettings:
    """A validated OAuth client of one sender (no secrets: see ``OAuthSecrets``)."""

    provider: OAuthProvider
    flow: OAuthFlow
    client_id: str | None = None
    tenant: str | None = None
    authority: str | None = None
    token_url: str | None = None
    authorization_url: str | None = None
    scopes: tuple[str, ...] = ()

    @property
    def effective_scopes(self) -> tuple[str, ...]:
        return self.scopes or DEFAULT_SCOPES.get((self.provider, self.flow), ())

    @property
    def microsoft_authority(self) -> str:
        """The authority URL msal is given: the base URL plus the tenant, unless the base
        already names a tenant (a path after the host)."""
        base = (self.authority or MICROSOFT_AUTHORITY).rstrip("/")
        if urlsplit(base).path.strip("/"):
            return base
        return f"{base}/{self.tenant or MICROSOFT_DEFAULT_TENANT}"

    @property
    def token_endpoint(self) -> str:
        """Where the client's secrets are sent (the binding compares this)."""
        if self.provider is OAuthProvider.MICROSOFT:
            return self.token_url or f"{self.microsoft_authority}/oauth2/v2.0/token"
        return self.token_url or GOOGLE_TOKEN_URL

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider.value,
            "flow": self.flow.value,
            "tenant": self.tenant,
            "client_id": self.client_id,
            "authority": self.authority,
            "token_url": self.token_url,
            "authorization_url": self.authorization_url,
            "scopes": list(self.effective_scopes),
        }


def validate_oauth(data: Any, *, encryption: str) -> tuple[OAuthSettings, OAuthSecrets]:
    """Check an ``oauth`` object; one ``ValidationError`` names every bad ``oauth.*`` field."""
    if not isinstance(data, Mapping):
        raise ValidationError(
            {"oauth": "is required for auth oauth2: an object with provider, flow and client_id"},
            hint="Choose the provider (microsoft, google or custom) and the sign-in flow.",
        )
    errors: dict[str, str] = {}
    if encryption == "none":
        errors["encryption"] = "must be ssl or tls: XOAUTH2 is sent only inside TLS"
    provider = _choice(data, "provider", OAuthProvider, errors)
    flow = _choice(data, "flow", OAuthFlow, errors, default=OAuthFlow.AUTHORIZATION_CODE)
    values = {name: _text(data, name, errors) for name in _TEXT_FIELDS}
    secrets = OAuthSecrets(**{name: _secret(data, name, errors) for name in SECRET_FIELDS})
    scopes = _scopes(data.get("scopes"), errors)
    if provider is not None and flow is not None:
        _check_combination(provider, flow, values, errors)
    if errors or provider is None or flow is None:
        raise ValidationError(errors, hint=_hint(errors))
    settings = OAuthSettings(provider=provider, flow=flow, scopes=scopes, **values)
    return settings, secrets


_TEXT_FIELDS = ("client_id", "tenant", "authority", "token_url", "authorization_url")
_URL_FIELDS = frozenset({"authority", "token_url", "authorization_url"})


E = TypeVar("E", bound=enum.StrEnum)


def _choice(
    data: Mapping[str, Any],
    name: str,
    kind: type[E],
    errors: dict[str, str],
    default: E | None = None,
) -> E | None:
    value = data.get(name)
    if value is None and default is not None:
        return default
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value.strip().lower())
    except ValueError:
        errors[f"oauth.{name}"] = "must be one of " + ", ".join(member.value for member in kind)
        return None


def _text(data: Mapping[str, Any], name: str, errors: dict[str, str]) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if not isinstance(value, str):
            raise ValueError("must be text")
        text = check_header_value(value.strip())
        if len(text) > MAX_FIELD:
            raise ValueError(f"must be at most {MAX_FIELD} characters")
        if name in _URL_FIELDS:
            _check_https(text)
    except ValueError as exc:
        errors[f"oauth.{name}"] = str(exc)
        return None
    return text.rstrip("/") if name == "authority" else text


def _check_https(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("must be a plain https:// URL (no login, query or fragment)")


def _secret(data: Mapping[str, Any], name: str, errors: dict[str, str]) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors[f"oauth.{name}"] = "must be text"
        return None
    if len(value) > MAX_SECRET:
        errors[f"oauth.{name}"] = f"must be at most {MAX_SECRET // 1024} KiB"
        return None
    if name == "service_account_json" and not _is_service_account_key(value):
        errors[f"oauth.{name}"] = (
            "is not a Google service-account key file (JSON with client_email and private_key)"
        )
        return None
    return value


def _is_service_account_key(text: str) -> bool:
    try:
        key = json.loads(text)
    except ValueError:
        return False
    return isinstance(key, dict) and all(
        isinstance(key.get(name), str) and key[name] for name in ("client_email", "private_key")
    )


def _scopes(value: Any, errors: dict[str, str]) -> tuple[str, ...]:
    if value is None or value == []:
        return ()
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or len(items) > MAX_SCOPES:
        errors["oauth.scopes"] = f"must be a list of at most {MAX_SCOPES} scopes"
        return ()
    if not all(
        isinstance(item, str) and item and not any(c.isspace() for c in item) for item in items
    ):
        errors["oauth.scopes"] = "each scope must be text without spaces"
        return ()
    return tuple(items)


def _check_combination(
    provider: OAuthProvider,
    flow: OAuthFlow,
    values: Mapping[str, str | None],
    errors: dict[str, str],
) -> None:
    if flow not in FLOWS[provider]:
        allowed = ", ".join(f.value for f in FLOWS[provider])
        errors["oauth.flow"] = f"{provider.value} senders sign in with {allowed}"
    if flow is not OAuthFlow.SERVICE_ACCOUNT and not values.get("client_id"):
        errors["oauth.client_id"] = "is required: the application (client) id of the OAuth client"
    if _needs_tenant(provider, flow, values):
        # App-only tokens are issued by one directory; "organizations" or "common" has none.
        errors["oauth.tenant"] = (
            "is required for app-only access: the directory (tenant) id or domain, "
            "e.g. contoso.onmicrosoft.com"
        )
    if provider is OAuthProvider.CUSTOM:
        # Every flow asks the token endpoint; only a sign-in needs the authorization one.
        needed = ["token_url"]
        if flow is OAuthFlow.AUTHORIZATION_CODE:
            needed.append("authorization_url")
        for name in needed:
            if not values.get(name):
                errors.setdefault(f"oauth.{name}", "is required for a custom provider")


def _needs_tenant(
    provider: OAuthProvider, flow: OAuthFlow, values: Mapping[str, str | None]
) -> bool:
    if provider is not OAuthProvider.MICROSOFT or flow is not OAuthFlow.CLIENT_CREDENTIALS:
        return False
    authority = values.get("authority")
    if authority and urlsplit(authority).path.strip("/"):
        return False  # the authority names its tenant
    tenant = (values.get("tenant") or "").lower()
    return tenant in {"", "organizations", "common", "consumers"}


def missing_secrets(settings: OAuthSettings, present: frozenset[str]) -> dict[str, str]:
    """What the flow needs that is neither given nor stored (``present``: secret field names)."""
    if settings.flow is OAuthFlow.SERVICE_ACCOUNT:
        if "service_account_json" in present:
            return {}
        return {"oauth.service_account_json": "is required: paste the service-account key file"}
    if "client_secret" in present or {"certificate_pem", "private_key_pem"} <= present:
        return {}
    if settings.provider is OAuthProvider.MICROSOFT and present & {
        "certificate_pem",
        "private_key_pem",
    }:
        name = "private_key_pem" if "certificate_pem" in present else "certificate_pem"
        return {f"oauth.{name}": "is required with a client certificate: give both halves"}
    what = (
        " (or certificate_pem and private_key_pem)"
        if settings.provider is OAuthProvider.MICROSOFT
        else ""
    )
    return {"oauth.client_secret": f"is required{what}: the OAuth client's secret"}


def _hint(errors: Mapping[str, str]) -> str:
    if "encryption" in errors:
        return "Choose SSL (465) or TLS (STARTTLS, 587): OAuth tokens never travel in plain text."
    return "Check the OAuth client settings against the provider's console."


def check_auth_kind(value: Any) -> AuthKind:
    """Absent means password; an empty string is a choice left blank, not the default."""
    if value is None:
        return AuthKind.PASSWORD
    try:
        return AuthKind(str(value).strip().lower())
    except ValueError:
        raise ValueError("must be password or oauth2") from None


def xoauth2_response(address: str, access_token: str) -> str:
    """The SASL XOAUTH2 initial client response, base64 encoded."""
    raw = f"user={address}\x01auth=Bearer {access_token}\x01\x01"
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")
