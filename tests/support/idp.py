"""A stand-in identity provider: Microsoft's, Google's and a custom IdP's OAuth 2.0 endpoints
over HTTPS on a loopback port, so that no test reaches a real provider.

The server runs in a thread (``http.server`` with TLS from the test CA, certificate for
``127.0.0.1`` and ``localhost``); every endpoint answers as its provider does, errors
included (``tests.support.idp_errors``). Access tokens go into a ``TokenRegistry``
(``tests.support.oauth_tokens``) that the XOAUTH2 server of ``tests.support.xoauth2``
checks logins against.

Fixtures
--------
``identity_provider``
    An ``IdentityProvider`` running until the test ends.
``idp_ca_bundle`` (session)
    The path of a PEM file with the test CA: what ``POSTDESK_CA_BUNDLE`` names for
    postdesk to trust the stand-in (also ``identity_provider.ca_bundle``).

Endpoints (``idp.base_url`` is ``https://127.0.0.1:PORT``)
---------------------------------------------------------
Microsoft, under ``/{tenant}`` where the tenant is ``idp.tenant_id``, ``idp.tenant_domain``
(``example.com``), ``example.onmicrosoft.com``, ``organizations`` or ``common`` (any
other: ``400 invalid_tenant``, AADSTS90002):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: OpenID discovery;
- ``GET /common/discovery/instance?authorization_endpoint=…``: instance discovery;
- ``GET /{tenant}/discovery/v2.0/keys``: the ID-token signing keys;
- ``GET /{tenant}/oauth2/v2.0/authorize``: the sign-in (see below);
- ``POST /{tenant}/oauth2/v2.0/token``: grants ``authorization_code``, ``refresh_token``,
  ``client_credentials``.

Google: ``GET /o/oauth2/auth`` (a refresh token only with ``access_type=offline``) and
``POST /token`` (also ``urn:ietf:params:oauth:grant-type:jwt-bearer`` for service
accounts; ``token_uri`` of ``add_service_account()``'s key file).

Custom (RFC 6749, answers like Google's): ``GET /oauth2/authorize`` and ``POST
/oauth2/token`` (a refresh token always), ``GET /.well-known/openid-configuration``,
``GET /jwks``.

The sign-in acts as if the user signed in and consented: it redirects (302) to
``redirect_uri`` with ``code`` and ``state`` (Microsoft adds ``session_state``, Google
``scope``), remembering ``code_challenge`` (S256 or plain), ``nonce``, the scopes and who
signed in: ``idp.sign_in(address)`` if set, else ``login_hint``, else
``reports@example.com``. With ``response_mode=form_post`` it answers, as Microsoft does, a
page whose hidden form posts the same fields to ``redirect_uri``. An unknown client or a
redirect URI the app did not register is a ``400`` page, never a redirect.

Token answers: ``access_token``, ``token_type``, ``expires_in`` (``idp.lifetime_s``,
default 3599; Microsoft also ``ext_expires_in``), ``scope`` (asked ones, without
``offline_access``), ``refresh_token`` (Microsoft: with ``offline_access``), ``id_token``
(with ``openid``; RS256, claims ``preferred_username``, ``oid``, ``tid``, ``name``,
``email``, ``nonce``) and, when asked ``client_info=1``, Microsoft's ``client_info``.

Controls
--------
``register_app(client_id=None, *, secret=..., certificate_pem=None, redirect_uris=(),
mailboxes=None) -> App``; ``client_certificate()`` makes a certificate credential;
``add_service_account(email=None, *, delegated_scopes=(GOOGLE_MAIL_SCOPE,),
domain="example.com") -> ServiceAccount`` (``.key_info()`` / ``.key_json()``: the key
file); ``sign_in(address)``; ``deny_consent(error, description)`` / ``allow_consent()``;
``lifetime_s``; ``rotation`` (``"provider"``: Microsoft issues a new refresh token and the
old one still works, Google and custom issue none; ``"keep"``, ``"reissue"`` or
``"rotate"``: a new one each time and the old one refused at once);
``expire_access_tokens(token=None)``; ``revoke_refresh_tokens(reason="refresh_revoked",
*, mailbox=None)`` (reasons ``refresh_revoked`` = AADSTS50173, ``refresh_inactive`` =
AADSTS700082, ``refresh_scopes`` = AADSTS70000; Google: "Token has been expired or
revoked."); ``break_client_secret(client_id, *, expired=False)`` (AADSTS7000215 /
AADSTS7000222) and ``restore_client_secret(client_id)``; ``fail_token_requests(*errors)``
answers the next token requests with these ``ProviderError``s (``None``: answer normally),
e.g. ``idp.error("microsoft", "consent_required")``; ``stop()`` (then it is unreachable).

Observations
------------
``token_requests`` (each ``TokenRequest``: ``style``, ``grant_type``, ``client_id``,
``client_auth``, ``scope``, ``error``), ``count(grant_type=None, *, client_id=None,
ok=None, style=None)``, ``seen`` (every ``SeenRequest``: ``method``, ``path``, ``query``,
``form``) and ``tokens`` (the ``TokenRegistry``).

Helpers
-------
``http_session()``: a ``requests.Session`` that trusts the test CA and ignores the
environment's ``REQUESTS_CA_BUNDLE`` and proxies; ``open_sign_in(url) -> SignInReply``:
what a browser does with a sign-in link (``method``, ``action``, ``params``);
``follow_sign_in(url) -> str``: the redirect's ``Location``; ``authorize(url) -> dict``:
the parameters sent back (msal's ``auth_response``).
"""

from __future__ import annotations

import collections
import html
import json
import re
import secrets
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
import pytest
import requests
import trustme

pytest_plugins = ["tests.support.tls"]
pytest.register_assert_rewrite("tests.support.tls")

from tests.support.idp_directory import (  # noqa: E402
    MAIL_DOMAIN,
    App,
    Code,
    Directory,
    Mailbox,
    RevokeReason,
    ServiceAccount,
    client_certificate,
    new_rsa_key_pem,
    signing_key,
)
from tests.support.idp_errors import (  # noqa: E402
    Failure,
    ProviderError,
    Style,
    microsoft_error,
    provider_error,
)
from tests.support.idp_grants import (  # noqa: E402
    CLIENT_ASSERTION_JWT,
    JWT_BEARER,
    SIGNING_KEY_ID,
    ClientAuth,
    Rotation,
    TokenCall,
    TokenEndpoint,
    TokenSettings,
)
from tests.support.oauth_tokens import TokenRegistry  # noqa: E402
from tests.support.tls import ca_pem, server_context  # noqa: E402

__all__ = [
    "CLIENT_ASSERTION_JWT",
    "JWT_BEARER",
    "App",
    "IdentityProvider",
    "ProviderError",
    "ServiceAccount",
    "client_certificate",
]

HOST = "127.0.0.1"
DEFAULT_MAILBOX = "reports@example.com"
MICROSOFT_DELEGATED_SCOPE = "https://outlook.office.com/SMTP.Send"
MICROSOFT_APP_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_MAIL_SCOPE = "https://mail.google.com/"
SHARED_TENANTS = frozenset({"organizations", "common"})


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class TokenRequest:
    style: Style
    grant_type: str
    client_id: str | None
    client_auth: ClientAuth
    scope: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    location: str | None = None

    @classmethod
    def json(cls, status: int, value: dict[str, Any]) -> Answer:
        return cls(status, json.dumps(value).encode("utf-8"))

    @classmethod
    def redirect(cls, uri: str, params: dict[str, str]) -> Answer:
        parts = urlsplit(uri)
        query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
        return cls(302, b"", "text/plain", urlunsplit(parts._replace(query=query)))

    @classmethod
    def form_post(cls, uri: str, params: dict[str, str]) -> Answer:
        """``response_mode=form_post``: a page whose form the browser posts to ``uri``."""
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}" />'
            for k, v in params.items()
        )
        page = (
            "<html><head><title>Working...</title></head><body>"
            f'<form method="POST" name="hiddenform" action="{html.escape(uri)}">{fields}'
            "<noscript><p>Script is disabled. Click Submit to continue.</p>"
            '<input type="submit" value="Submit" /></noscript></form>'
            "<script>document.forms[0].submit();</script></body></html>"
        )
        return cls(200, page.encode("utf-8"), "text/html; charset=utf-8")

    @classmethod
    def back(cls, uri: str, params: dict[str, str], response_mode: str | None) -> Answer:
        """The sign-in's way back to the client: a redirect, or a form to post."""
        if response_mode == "form_post":
            return cls.form_post(uri, params)
        return cls.redirect(uri, params)


@dataclass(frozen=True)
class SignInReply:
    """Where a sign-in sends the browser back: ``method`` GET (a redirect, ``action`` its
    whole ``Location``) or POST (``response_mode=form_post``: ``action`` the form's
    target), and the parameters it carries (``code``, ``state``… or ``error``)."""

    method: str
    action: str
    params: dict[str, str]


class _FormFields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[values.get("name", "")] = values.get("value", "")


Route = Callable[[SeenRequest, dict[str, str]], Answer]


class IdentityProvider:
    """One running stand-in provider (see the module's documentation)."""

    def __init__(self, ca: trustme.CA, ca_bundle: Path) -> None:
        self.ca_pem = ca_pem(ca)
        self.ca_bundle = ca_bundle
        self.directory = Directory()
        self.tokens = TokenRegistry()
        self.tenant_id = str(uuid.uuid4())
        self.tenant_domain = MAIL_DOMAIN
        self.seen: list[SeenRequest] = []
        self.token_requests: list[TokenRequest] = []
        self.sign_in_address: str | None = None
        self.consent_error: tuple[str, str] | None = None
        self._scripted: collections.deque[ProviderError | None] = collections.deque()
        self._lock = threading.Lock()
        self._server = _Server(self, server_context(ca))
        self.port: int = self._server.server_address[1]
        self.base_url = f"https://{HOST}:{self.port}"
        self.settings = TokenSettings(base_url=self.base_url, tenant_id=self.tenant_id)
        self.endpoint = TokenEndpoint(self.directory, self.tokens, self.settings)
        self._routes = self._route_table()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"identity-provider-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    # --- addresses --------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def authority(self) -> str:
        """The sign-in base URL (a sender's ``authority``); postdesk appends ``/{tenant}``."""
        return self.base_url

    def tenant_authority(self, tenant: str | None = None) -> str:
        """An authority with its tenant, as msal takes it (default: ``tenant_id``)."""
        return f"{self.base_url}/{tenant or self.tenant_id}"

    @property
    def instance_discovery_url(self) -> str:
        return self.url("/common/discovery/instance")

    @property
    def google_token_uri(self) -> str:
        return self.url("/token")

    @property
    def google_auth_uri(self) -> str:
        return self.url("/o/oauth2/auth")

    @property
    def custom_authorization_url(self) -> str:
        return self.url("/oauth2/authorize")

    @property
    def custom_token_url(self) -> str:
        return self.url("/oauth2/token")

    # --- registrations ----------------------------------------------------------------

    def register_app(
        self,
        client_id: str | None = None,
        *,
        secret: str | None = "",
        certificate_pem: str | None = None,
        redirect_uris: tuple[str, ...] = (),
        mailboxes: frozenset[str] | None = None,
    ) -> App:
        """An app registration. ``secret=""`` (default) makes one up; ``None``: no secret.
        ``mailboxes``: what its app-only tokens may send as (None: any)."""
        app = App(
            client_id=client_id or str(uuid.uuid4()),
            secret=secrets.token_urlsafe(30) if secret == "" else secret,
            certificate_pem=certificate_pem,
            redirect_uris=redirect_uris,
            mailboxes=mailboxes,
        )
        with self.directory.lock:
            self.directory.apps[app.client_id] = app
        return app

    def add_service_account(
        self,
        email: str | None = None,
        *,
        delegated_scopes: tuple[str, ...] | None = (GOOGLE_MAIL_SCOPE,),
        domain: str = MAIL_DOMAIN,
    ) -> ServiceAccount:
        """A Google service account with a new RSA key; ``delegated_scopes=None``: no
        domain-wide delegation (a token for a mailbox is ``unauthorized_client``)."""
        private_pem, public_pem = new_rsa_key_pem()
        account = ServiceAccount(
            client_email=email
            or f"postdesk-{secrets.token_hex(3)}@postdesk-test.iam.gserviceaccount.com",
            client_id=str(secrets.randbelow(10**21)),
            private_key_id=secrets.token_hex(20),
            private_key_pem=private_pem,
            public_key_pem=public_pem,
            token_uri=self.google_token_uri,
            delegated_scopes=None if delegated_scopes is None else frozenset(delegated_scopes),
            domain=domain,
        )
        with self.directory.lock:
            self.directory.service_accounts[account.client_email] = account
        return account

    def mailbox(self, address: str) -> Mailbox:
        return self.directory.mailbox(address)

    # --- controls ---------------------------------------------------------------------

    def sign_in(self, address: str | None) -> None:
        """Who signs in at the next sign-ins (None: the ``login_hint``, or the default)."""
        self.sign_in_address = address

    def deny_consent(
        self,
        error: str = "access_denied",
        description: str = "AADSTS65004: User declined to consent to access the app.",
    ) -> None:
        """Sign-ins redirect back with this error instead of a code."""
        self.consent_error = (error, description)

    def allow_consent(self) -> None:
        self.consent_error = None

    @property
    def lifetime_s(self) -> float:
        return self.settings.lifetime_s

    @lifetime_s.setter
    def lifetime_s(self, seconds: float) -> None:
        self.settings.lifetime_s = seconds

    @property
    def rotation(self) -> Rotation:
        return self.settings.rotation

    @rotation.setter
    def rotation(self, rotation: Rotation) -> None:
        self.settings.rotation = rotation

    def expire_access_tokens(self, token: str | None = None) -> None:
        self.tokens.expire(token)

    def revoke_refresh_tokens(
        self, reason: RevokeReason = "refresh_revoked", *, mailbox: str | None = None
    ) -> int:
        """Refuse the refresh tokens issued so far (of one mailbox); returns how many."""
        with self.directory.lock:
            grants = [
                g
                for g in self.directory.refresh_grants.values()
                if g.revoked is None
                and (mailbox is None or g.mailbox.address.casefold() == mailbox.casefold())
            ]
            for grant in grants:
                grant.revoked = reason
        return len(grants)

    def break_client_secret(self, client_id: str, *, expired: bool = False) -> None:
        with self.directory.lock:
            self.directory.apps[client_id].secret_state = "expired" if expired else "invalid"

    def restore_client_secret(self, client_id: str) -> None:
        with self.directory.lock:
            self.directory.apps[client_id].secret_state = "valid"

    def fail_token_requests(self, *errors: ProviderError | None) -> None:
        """Answer the next token requests, in order, with these errors (None: normally)."""
        with self._lock:
            self._scripted.extend(errors)

    @staticmethod
    def error(style: Style, failure: Failure, **details: str) -> ProviderError:
        return provider_error(style, failure, **details)

    # --- observations -----------------------------------------------------------------

    def count(
        self,
        grant_type: str | None = None,
        *,
        client_id: str | None = None,
        ok: bool | None = None,
        style: Style | None = None,
    ) -> int:
        """How many token requests matched every filter given."""
        with self._lock:
            requests_ = list(self.token_requests)
        return sum(
            1
            for r in requests_
            if (grant_type is None or r.grant_type == grant_type)
            and (client_id is None or r.client_id == client_id)
            and (ok is None or r.ok == ok)
            and (style is None or r.style == style)
        )

    # --- helpers ----------------------------------------------------------------------

    def http_session(self) -> requests.Session:
        """A session that trusts the test CA whatever REQUESTS_CA_BUNDLE says."""
        session = requests.Session()
        session.verify = str(self.ca_bundle)
        session.trust_env = False
        return session

    def open_sign_in(self, url: str) -> SignInReply:
        """Open a sign-in link as a browser would: where it sends the browser back."""
        with self.http_session() as session:
            answer = session.get(url, allow_redirects=False, timeout=5)
        if answer.status_code == 302:
            location = answer.headers["Location"]
            return SignInReply("GET", location, dict(parse_qsl(urlsplit(location).query)))
        if answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html"):
            form = _FormFields()
            form.feed(answer.text)
            return SignInReply("POST", form.action, form.fields)
        raise AssertionError(f"sign-in answered {answer.status_code}: {answer.text}")

    def follow_sign_in(self, url: str) -> str:
        """The ``Location`` a sign-in link redirects to (the query response mode)."""
        reply = self.open_sign_in(url)
        if reply.method != "GET":
            raise AssertionError(f"the sign-in posts a form to {reply.action}, not a redirect")
        return reply.action

    def authorize(self, url: str) -> dict[str, str]:
        """What the sign-in at ``url`` sends back (``code``, ``state``…), in either mode."""
        return self.open_sign_in(url).params

    def stop(self) -> None:
        """Stop serving, close the socket and join the thread (safe to call twice)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- HTTP -------------------------------------------------------------------------

    def handle(self, request: SeenRequest) -> Answer:
        with self._lock:
            self.seen.append(request)
        for method, pattern, route in self._routes:
            match = pattern.fullmatch(request.path)
            if match is not None and method == request.method:
                return route(request, match.groupdict())
        return Answer.json(404, {"error": "not_found", "error_description": request.path})

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Route]]:
        tenant = "/(?P<tenant>[^/]+)"
        table: list[tuple[str, str, Route]] = [
            ("GET", "/common/discovery/instance", self._instance_discovery),
            ("GET", tenant + r"/v2\.0/\.well-known/openid-configuration", self._ms_configuration),
            ("GET", tenant + r"/discovery/v2\.0/keys", self._jwks),
            ("GET", tenant + r"/oauth2/v2\.0/authorize", self._ms_authorize),
            ("POST", tenant + r"/oauth2/v2\.0/token", self._ms_token),
            ("GET", "/o/oauth2/auth", lambda r, _: self._authorize("google", "", r)),
            ("POST", "/token", lambda r, _: self._token("google", "", r)),
            ("GET", "/oauth2/authorize", lambda r, _: self._authorize("custom", "", r)),
            ("POST", "/oauth2/token", lambda r, _: self._token("custom", "", r)),
            ("GET", r"/\.well-known/openid-configuration", self._custom_configuration),
            ("GET", "/jwks", self._jwks),
        ]
        return [(method, re.compile(path), route) for method, path, route in table]

    def _known_tenant(self, tenant: str) -> bool:
        names = {self.tenant_id, self.tenant_domain, "example.onmicrosoft.com", *SHARED_TENANTS}
        return tenant.casefold() in {n.casefold() for n in names}

    def _tenant_refusal(self, tenant: str) -> Answer:
        refusal = provider_error("microsoft", "invalid_tenant", tenant=tenant)
        return Answer.json(refusal.status, refusal.body)

    def _ms_configuration(self, _request: SeenRequest, path: dict[str, str]) -> Answer:
        tenant = path["tenant"]
        if not self._known_tenant(tenant):
            return self._tenant_refusal(tenant)
        base = f"{self.base_url}/{tenant}"
        issuer_tenant = "{tenantid}" if tenant in SHARED_TENANTS else self.tenant_id
        return Answer.json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{self.base_url}/{issuer_tenant}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "nonce",
                    "name",
                    "oid",
                    "tid",
                    "preferred_username",
                    "email",
                ],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            },
        )

    def _instance_discovery(self, request: SeenRequest, _path: dict[str, str]) -> Answer:
        endpoint = urlsplit(request.query.get("authorization_endpoint", ""))
        here = f"{HOST}:{self.port}"
        # msal names the authority by its host alone (it drops the port).
        if endpoint.hostname not in (HOST, "localhost"):
            refusal = microsoft_error(
                400, "invalid_instance", 50049, "Unknown or invalid instance.", None
            )
            return Answer.json(refusal.status, refusal.body)
        tenant = [*endpoint.path.split("/"), "", ""][1] or "common"
        return Answer.json(
            200,
            {
                "tenant_discovery_endpoint": (
                    f"{self.base_url}/{tenant}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": here, "preferred_cache": here, "aliases": [here]}
                ],
            },
        )

    def _custom_configuration(self, _request: SeenRequest, _path: dict[str, str]) -> Answer:
        return Answer.json(
            200,
            {
                "issuer": self.base_url,
                "authorization_endpoint": self.custom_authorization_url,
                "token_endpoint": self.custom_token_url,
                "jwks_uri": self.url("/jwks"),
                "response_types_supported": ["code"],
                "grant_types_supported": [
                    "authorization_code",
                    "refresh_token",
                    "client_credentials",
                ],
                "code_challenge_methods_supported": ["S256", "plain"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            },
        )

    def _jwks(self, _request: SeenRequest, _path: dict[str, str]) -> Answer:
        key = jwt.algorithms.RSAAlgorithm.to_jwk(signing_key().public_key(), as_dict=True)
        key.update(kid=SIGNING_KEY_ID, use="sig", alg="RS256")
        return Answer.json(200, {"keys": [key]})

    def _ms_authorize(self, request: SeenRequest, path: dict[str, str]) -> Answer:
        if not self._known_tenant(path["tenant"]):
            return self._tenant_refusal(path["tenant"])
        return self._authorize("microsoft", path["tenant"], request)

    def _ms_token(self, request: SeenRequest, path: dict[str, str]) -> Answer:
        if not self._known_tenant(path["tenant"]):
            return self._tenant_refusal(path["tenant"])
        return self._token("microsoft", path["tenant"], request)

    def _authorize(self, style: Style, tenant: str, request: SeenRequest) -> Answer:
        query = request.query
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        with self.directory.lock:
            app = self.directory.apps.get(client_id)
        if app is None:
            refusal = provider_error(style, "unknown_client", client_id=client_id, tenant=tenant)
            return Answer.json(400, refusal.body)
        if not redirect_uri or not app.accepts_redirect(redirect_uri):
            refusal = provider_error(
                style, "redirect_mismatch", client_id=client_id, redirect_uri=redirect_uri
            )
            return Answer.json(400, refusal.body)
        state = {"state": query["state"]} if "state" in query else {}
        mode = query.get("response_mode")
        if query.get("response_type") != "code":
            params = {"error": "unsupported_response_type", **state}
            return Answer.back(redirect_uri, params, mode)
        if self.consent_error is not None:
            error, description = self.consent_error
            params = {"error": error, "error_description": description, **state}
            return Answer.back(redirect_uri, params, mode)
        code = self._new_code(style, tenant, query)
        extra = {"session_state": str(uuid.uuid4())} if style == "microsoft" else {}
        if style == "google":
            extra = {"scope": " ".join(code.scopes), "authuser": "0", "prompt": "consent"}
        return Answer.back(redirect_uri, {"code": code.value, **state, **extra}, mode)

    def _new_code(self, style: Style, tenant: str, query: dict[str, str]) -> Code:
        scopes = tuple(query.get("scope", "").split())
        offline = {
            "microsoft": "offline_access" in scopes,
            "google": query.get("access_type") == "offline",
            "custom": True,
        }[style]
        challenge = query.get("code_challenge")
        address = self.sign_in_address or query.get("login_hint") or DEFAULT_MAILBOX
        code = Code(
            value=secrets.token_urlsafe(32),
            style=style,
            tenant=tenant,
            client_id=query["client_id"],
            redirect_uri=query["redirect_uri"],
            mailbox=self.directory.mailbox(address),
            scopes=scopes,
            nonce=query.get("nonce"),
            code_challenge=challenge,
            code_challenge_method=query.get("code_challenge_method", "plain"),
            offline=offline,
        )
        with self.directory.lock:
            self.directory.codes[code.value] = code
        return code

    def _token(self, style: Style, tenant: str, request: SeenRequest) -> Answer:
        call = TokenCall(
            style=style,
            tenant=tenant,
            endpoint=self.url(request.path),
            form=request.form,
            authorization=request.headers.get("authorization"),
        )
        record = TokenRequest(
            style, call.grant_type, call.client_id(), call.client_auth(), request.form.get("scope")
        )
        with self._lock:
            self.token_requests.append(record)
            scripted = self._scripted.popleft() if self._scripted else None
        try:
            if scripted is not None:
                raise scripted
            status, body = 200, self.endpoint.answer(call)
        except ProviderError as refusal:
            record.error = refusal.error
            status, body = refusal.status, refusal.body
        return Answer.json(status, body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, idp: IdentityProvider, context: ssl.SSLContext) -> None:
        super().__init__((HOST, 0), _Handler)
        self.idp = idp
        # The handshake happens in the connection's thread, so a client that never
        # completes it cannot hold up the others.
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (or refuses the certificate) is not a server error."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads ``seen`` instead."""

    def _answer(self, method: str) -> None:
        parts = urlsplit(self.path)
        form: dict[str, str] = {}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode("utf-8"), keep_blank_values=True))
        request = SeenRequest(
            method=method,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            form=form,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        answer = self.server.idp.handle(request)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Cache-Control", "no-store")
        if answer.location is not None:
            self.send_header("Location", answer.location)
        self.end_headers()
        self.wfile.write(answer.body)


@pytest.fixture(scope="session")
def idp_ca_bundle(trusted_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("idp") / "ca.pem"
    trusted_ca.cert_pem.write_to_path(str(bundle))
    return bundle


@pytest.fixture
def identity_provider(trusted_ca: trustme.CA, idp_ca_bundle: Path) -> Iterator[IdentityProvider]:
    idp = IdentityProvider(trusted_ca, idp_ca_bundle)
    try:
        yield idp
    finally:
        idp.stop()
