"""The token endpoint of the stand-in identity provider: client authentication and grants.

``TokenEndpoint.answer(call)`` returns the JSON of a successful token response or raises
``ProviderError`` with the provider's own error body. Grants: ``authorization_code``
(client, redirect URI and PKCE verifier checked; each code redeemed once),
``refresh_token`` (revocation and rotation as the provider is set), ``client_credentials``
(secret or certificate assertion; Microsoft scopes must end in ``/.default``) and
``urn:ietf:params:oauth:grant-type:jwt-bearer`` (a Google service account's signed JWT;
``sub`` is the mailbox it acts as). Client authentication: ``client_secret_post``,
``client_secret_basic`` and ``private_key_jwt`` (RS256 or PS256, named by ``x5t`` or
``x5t#S256``, audience the token endpoint's URL).
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote_plus

import jwt

from tests.support.idp_directory import (
    App,
    Directory,
    Mailbox,
    RefreshGrant,
    b64url_json,
    signing_key,
    thumbprints,
)
from tests.support.idp_errors import Failure, ProviderError, Style, provider_error
from tests.support.oauth_tokens import TokenRegistry

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_JWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
SIGNING_KEY_ID = "postdesk-test-key"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
Rotation = Literal["provider", "keep", "reissue", "rotate"]
ClientAuth = Literal["client_secret_post", "client_secret_basic", "private_key_jwt", "none"]


@dataclass(frozen=True)
class TokenCall:
    """One POST to a token endpoint: its style, tenant (Microsoft), URL and form."""

    style: Style
    tenant: str
    endpoint: str
    form: Mapping[str, str]
    authorization: str | None = None

    @property
    def grant_type(self) -> str:
        return self.form.get("grant_type", "")

    def basic_credentials(self) -> tuple[str, str] | None:
        """client_secret_basic: the form-encoded id and secret of an HTTP Basic header."""
        if not self.authorization or not self.authorization.lower().startswith("basic "):
            return None
        decoded = base64.b64decode(self.authorization[6:]).decode("utf-8")
        client_id, _, secret = decoded.partition(":")
        return unquote_plus(client_id), unquote_plus(secret)

    def client_auth(self) -> ClientAuth:
        if self.basic_credentials() is not None:
            return "client_secret_basic"
        if self.form.get("client_assertion_type") == CLIENT_ASSERTION_JWT:
            return "private_key_jwt"
        if self.grant_type == JWT_BEARER:  # the grant is itself a JWT signed by the client
            return "private_key_jwt"
        return "client_secret_post" if "client_secret" in self.form else "none"

    def client_id(self) -> str | None:
        """The client the call claims to be (a service account: its email, the JWT's iss)."""
        basic = self.basic_credentials()
        if basic is not None:
            return basic[0]
        if self.grant_type == JWT_BEARER:
            return _unverified_claims(self.form.get("assertion", "")).get("iss")
        return self.form.get("client_id")

    def fail(self, failure: Failure, **details: str) -> ProviderError:
        values = {"client_id": self.client_id() or "", "tenant": self.tenant, **details}
        return provider_error(self.style, failure, grant_type=self.grant_type, **values)


@dataclass
class TokenSettings:
    """The knobs the grants read; the IdentityProvider exposes them to tests."""

    base_url: str
    tenant_id: str
    lifetime_s: float = 3599.0
    rotation: Rotation = "provider"


@dataclass
class TokenEndpoint:
    directory: Directory
    tokens: TokenRegistry
    settings: TokenSettings
    _grants: dict[str, Callable[[TokenCall], dict[str, Any]]] = field(init=False)

    def __post_init__(self) -> None:
        self._grants = {
            "authorization_code": self._authorization_code,
            "refresh_token": self._refresh_token,
            "client_credentials": self._client_credentials,
            JWT_BEARER: self._jwt_bearer,
        }

    def answer(self, call: TokenCall) -> dict[str, Any]:
        grant = self._grants.get(call.grant_type)
        if grant is None or (call.grant_type == JWT_BEARER and call.style == "microsoft"):
            raise call.fail("unsupported_grant")
        with self.directory.lock:
            return grant(call)

    # --- grants -----------------------------------------------------------------------

    def _authorization_code(self, call: TokenCall) -> dict[str, Any]:
        app = self._authenticate(call)
        code = self.directory.codes.get(call.form.get("code", ""))
        if code is None or code.client_id != app.client_id or code.style != call.style:
            raise call.fail("bad_code")
        if code.redeemed:
            raise call.fail("code_redeemed")
        if time.time() >= code.expires_at:
            raise call.fail("expired_code")
        redirect_uri = call.form.get("redirect_uri", "")
        if redirect_uri != code.redirect_uri:
            raise call.fail("redirect_mismatch", redirect_uri=redirect_uri)
        if not code.verifies(call.form.get("code_verifier")):
            raise call.fail("pkce_mismatch")
        code.redeemed = True
        refresh = None
        if code.offline:
            refresh = self.directory.new_refresh_grant(
                call.style, app.client_id, code.mailbox, code.scopes
            )
        return self._user_tokens(call, app, code.mailbox, code.scopes, refresh, code.nonce)

    def _refresh_token(self, call: TokenCall) -> dict[str, Any]:
        app = self._authenticate(call)
        grant = self.directory.refresh_grants.get(call.form.get("refresh_token", ""))
        if grant is None or grant.client_id != app.client_id or grant.style != call.style:
            raise call.fail("bad_refresh")
        if grant.revoked is not None:
            raise call.fail(grant.revoked, issued=_stamp(grant.issued_at))
        requested = tuple(call.form.get("scope", "").split()) or grant.scopes
        if not _resource(requested) <= _resource(grant.scopes):
            raise call.fail("refresh_scopes")
        refresh = self._rotated(grant, requested)
        return self._user_tokens(call, app, grant.mailbox, requested, refresh, None)

    def _client_credentials(self, call: TokenCall) -> dict[str, Any]:
        app = self._authenticate(call)
        scopes = call.form.get("scope", "").split()
        if call.style == "microsoft" and not all(s.endswith("/.default") for s in scopes):
            raise call.fail("invalid_scope", scope=" ".join(scopes))
        token = self.tokens.issue(
            client_id=app.client_id,
            grant_type=call.grant_type,
            mailboxes=app.mailboxes,
            scopes=frozenset(scopes),
            lifetime_s=self.settings.lifetime_s,
        )
        body = {"token_type": "Bearer", "expires_in": self._expires_in()}
        if call.style == "microsoft":
            body["ext_expires_in"] = self._expires_in()
        return {**body, "access_token": token.value}

    def _jwt_bearer(self, call: TokenCall) -> dict[str, Any]:
        assertion = call.form.get("assertion", "")
        account = self.directory.service_account_for(_unverified_claims(assertion).get("iss", ""))
        if account is None:
            raise call.fail("sa_bad_signature")
        try:
            claims = jwt.decode(
                assertion,
                account.public_key_pem,
                algorithms=["RS256"],
                # google-auth always names Google's endpoint, whatever the key's token_uri.
                audience=[call.endpoint, GOOGLE_TOKEN_AUDIENCE],
                options={"require": ["iss", "aud", "exp", "iat", "scope"]},
            )
        except jwt.InvalidSignatureError:
            raise call.fail("sa_bad_signature") from None
        except jwt.InvalidTokenError:
            raise call.fail("sa_bad_assertion") from None
        if claims["exp"] - claims["iat"] > 3600:
            raise call.fail("sa_bad_assertion")
        scopes = frozenset(str(claims["scope"]).split())
        subject = claims.get("sub")
        if subject is not None:
            if account.delegated_scopes is None or not scopes <= account.delegated_scopes:
                raise call.fail("sa_unauthorized")
            if not str(subject).casefold().endswith("@" + account.domain.casefold()):
                raise call.fail("sa_bad_subject")
        token = self.tokens.issue(
            client_id=account.client_email,
            grant_type=call.grant_type,
            mailboxes=frozenset({subject}) if subject else frozenset(),
            scopes=scopes,
            lifetime_s=self.settings.lifetime_s,
        )
        return {
            "access_token": token.value,
            "expires_in": self._expires_in(),
            "token_type": "Bearer",
        }

    # --- client authentication --------------------------------------------------------

    def _authenticate(self, call: TokenCall) -> App:
        app = self.directory.apps.get(call.client_id() or "")
        if app is None:
            raise call.fail("unknown_client")
        method = call.client_auth()
        if method == "private_key_jwt":
            self._check_assertion(call, app)
        elif method == "none":
            raise call.fail("missing_credentials")
        else:
            basic = call.basic_credentials()
            given = basic[1] if basic is not None else call.form.get("client_secret", "")
            self._check_secret(call, app, given)
        return app

    @staticmethod
    def _check_secret(call: TokenCall, app: App, given: str) -> None:
        if app.secret_state == "expired":
            raise call.fail("expired_secret")
        valid = app.secret is not None and app.secret_state == "valid"
        if not valid or not secrets.compare_digest(given.encode(), (app.secret or "").encode()):
            raise call.fail("invalid_secret")

    @staticmethod
    def _check_assertion(call: TokenCall, app: App) -> None:
        certificate = app.certificate()
        assertion = call.form.get("client_assertion", "")
        if certificate is None:
            raise call.fail("bad_assertion")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=call.endpoint,
                issuer=app.client_id,
                options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.InvalidTokenError:
            raise call.fail("bad_assertion") from None
        # msal pads the base64url thumbprints; JWS (RFC 7515) does not.
        names = thumbprints(certificate).items()
        named = any(str(header.get(k, "")).rstrip("=") == v for k, v in names)
        if not named or claims["sub"] != app.client_id:
            raise call.fail("bad_assertion")

    # --- answers ----------------------------------------------------------------------

    def _rotated(self, grant: RefreshGrant, scopes: tuple[str, ...]) -> RefreshGrant | None:
        rotation = self.settings.rotation
        if rotation == "provider":
            rotation = "reissue" if grant.style == "microsoft" else "keep"
        if rotation == "keep":
            return None
        if rotation == "rotate":
            grant.revoked = "refresh_revoked"
        return self.directory.new_refresh_grant(grant.style, grant.client_id, grant.mailbox, scopes)

    def _user_tokens(
        self,
        call: TokenCall,
        app: App,
        mailbox: Mailbox,
        scopes: tuple[str, ...],
        refresh: RefreshGrant | None,
        nonce: str | None,
    ) -> dict[str, Any]:
        token = self.tokens.issue(
            client_id=app.client_id,
            grant_type=call.grant_type,
            mailboxes=frozenset({mailbox.address}),
            scopes=_resource(scopes),
            lifetime_s=self.settings.lifetime_s,
        )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scopes if s != "offline_access"),
            "expires_in": self._expires_in(),
            "access_token": token.value,
        }
        if call.style == "microsoft":
            body["ext_expires_in"] = self._expires_in()
        if refresh is not None:
            body["refresh_token"] = refresh.value
        if "openid" in scopes:
            body["id_token"] = self.id_token(call.style, app.client_id, mailbox, nonce)
        if call.style == "microsoft" and call.form.get("client_info") == "1":
            body["client_info"] = b64url_json({"uid": mailbox.oid, "utid": self.settings.tenant_id})
        return body

    def _expires_in(self) -> int:
        return max(int(self.settings.lifetime_s), 0)

    def id_token(self, style: Style, client_id: str, mailbox: Mailbox, nonce: str | None) -> str:
        """A signed (RS256) ID token with the claims msal and others read for the account."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": self.issuer(style),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "sub": f"{mailbox.oid}:{client_id}" if style == "microsoft" else mailbox.oid,
            "email": mailbox.address,
            "name": mailbox.name,
        }
        if style == "microsoft":
            claims.update(
                oid=mailbox.oid,
                tid=self.settings.tenant_id,
                preferred_username=mailbox.address,
                ver="2.0",
                uti=uuid.uuid4().hex,
            )
        else:
            claims.update(email_verified=True, azp=client_id)
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(claims, signing_key(), algorithm="RS256", headers={"kid": SIGNING_KEY_ID})

    def issuer(self, style: Style) -> str:
        if style == "microsoft":
            return f"{self.settings.base_url}/{self.settings.tenant_id}/v2.0"
        return self.settings.base_url


def _resource(scopes: tuple[str, ...]) -> frozenset[str]:
    """The scopes that name a resource (what an access token is for), without OIDC's."""
    return frozenset(s for s in scopes if s not in OIDC_SCOPES)


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return {}
    return claims


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(epoch))
