"""What the stand-in identity provider knows: its apps, mailboxes and service accounts, and
the codes and refresh tokens it handed out.

``Directory`` holds them under one lock. The test-facing controls live on
``tests.support.idp.IdentityProvider``; this module is its storage and key material.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.support.idp_errors import Style

SecretState = Literal["valid", "invalid", "expired"]
RevokeReason = Literal["refresh_inactive", "refresh_revoked", "refresh_scopes"]
CODE_LIFETIME_S = 600.0
MAIL_DOMAIN = "example.com"


@dataclass
class App:
    """An app registration (a client): its secret and/or certificate, where it may redirect
    and, for app-only tokens, which mailboxes it may send as (None: any)."""

    client_id: str
    secret: str | None
    certificate_pem: str | None = None
    redirect_uris: tuple[str, ...] = ()
    mailboxes: frozenset[str] | None = None
    secret_state: SecretState = "valid"

    def accepts_redirect(self, uri: str) -> bool:
        return not self.redirect_uris or uri in self.redirect_uris

    def certificate(self) -> x509.Certificate | None:
        if self.certificate_pem is None:
            return None
        return x509.load_pem_x509_certificate(self.certificate_pem.encode("ascii"))


@dataclass
class Mailbox:
    """A user who can sign in: the mailbox a delegated token acts as."""

    address: str
    name: str
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class ServiceAccount:
    """A Google service account with its own RSA key, delegated (domain-wide) the scopes in
    ``delegated_scopes`` for the mailboxes of ``domain``; None: no delegation at all."""

    client_email: str
    client_id: str
    private_key_id: str
    private_key_pem: str
    public_key_pem: str
    token_uri: str
    delegated_scopes: frozenset[str] | None
    domain: str = MAIL_DOMAIN

    def key_info(self) -> dict[str, str]:
        """The service-account key file, as the Google Cloud console downloads it."""
        return {
            "type": "service_account",
            "project_id": "postdesk-test",
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": self.token_uri.rsplit("/", 1)[0] + "/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }

    def key_json(self) -> str:
        return json.dumps(self.key_info(), indent=2)


@dataclass
class Code:
    """An authorization code, with what the sign-in that made it asked for."""

    value: str
    style: Style
    tenant: str
    client_id: str
    redirect_uri: str
    mailbox: Mailbox
    scopes: tuple[str, ...]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    offline: bool
    expires_at: float = field(default_factory=lambda: time.time() + CODE_LIFETIME_S)
    redeemed: bool = False

    def verifies(self, verifier: str | None) -> bool:
        """PKCE (RFC 7636): the verifier matches the challenge of the sign-in, if it had one."""
        if self.code_challenge is None:
            return True
        if verifier is None:
            return False
        if self.code_challenge_method == "plain":
            return secrets.compare_digest(verifier, self.code_challenge)
        return secrets.compare_digest(s256(verifier), self.code_challenge)


@dataclass
class RefreshGrant:
    value: str
    style: Style
    client_id: str
    mailbox: Mailbox
    scopes: tuple[str, ...]
    issued_at: float = field(default_factory=time.time)
    revoked: RevokeReason | None = None


@dataclass
class Directory:
    apps: dict[str, App] = field(default_factory=dict)
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    refresh_grants: dict[str, RefreshGrant] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def mailbox(self, address: str) -> Mailbox:
        """The mailbox for ``address``, made on first use (anyone may sign in)."""
        with self.lock:
            key = address.casefold()
            if key not in self.mailboxes:
                local = address.split("@", 1)[0]
                self.mailboxes[key] = Mailbox(address=address, name=local.title())
            return self.mailboxes[key]

    def new_refresh_grant(
        self, style: Style, client_id: str, mailbox: Mailbox, scopes: tuple[str, ...]
    ) -> RefreshGrant:
        grant = RefreshGrant(secrets.token_urlsafe(48), style, client_id, mailbox, scopes)
        with self.lock:
            self.refresh_grants[grant.value] = grant
        return grant

    def service_account_for(self, email: str) -> ServiceAccount | None:
        with self.lock:
            return self.service_accounts.get(email)


def s256(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return _b64url(digest)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


@cache
def signing_key() -> rsa.RSAPrivateKey:
    """The provider's own RSA key (ID tokens, JWKS), made once per test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_rsa_key_pem() -> tuple[str, str]:
    """A fresh RSA key as (private PKCS#8 PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private, public


@dataclass(frozen=True)
class ClientCertificate:
    """A self-signed certificate and its RSA key, as uploaded to an app registration."""

    certificate_pem: str
    private_key_pem: str
    sha1_thumbprint: str
    sha256_thumbprint: str


def client_certificate(common_name: str = "postdesk") -> ClientCertificate:
    """A new certificate credential for an app (Microsoft accepts RSA keys)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return ClientCertificate(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
        sha1_thumbprint=certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
        sha256_thumbprint=certificate.fingerprint(hashes.SHA256()).hex().upper(),
    )


def thumbprints(certificate: x509.Certificate) -> dict[str, str]:
    """The JWS header values that name ``certificate``: x5t (SHA-1) and x5t#S256."""
    return {
        "x5t": _b64url(certificate.fingerprint(hashes.SHA1())),  # noqa: S303
        "x5t#S256": _b64url(certificate.fingerprint(hashes.SHA256())),
    }
