"""The stand-in identity provider driven by the real libraries postdesk uses: msal,
google-auth and Authlib, over HTTPS with the test CA."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth.transport.requests
import msal
import pytest
import requests
import trustme
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from google.auth.exceptions import RefreshError
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from tests.support.idp import (
    GOOGLE_MAIL_SCOPE,
    MICROSOFT_APP_SCOPE,
    MICROSOFT_DELEGATED_SCOPE,
    App,
    IdentityProvider,
    client_certificate,
)

REDIRECT_URI = "https://mail.example.com/oauth/callback"
MAILBOX = "reports@example.com"
SMTP_SCOPES = frozenset({MICROSOFT_DELEGATED_SCOPE, MICROSOFT_APP_SCOPE, GOOGLE_MAIL_SCOPE})


@pytest.fixture
def http(identity_provider: IdentityProvider) -> Iterator[requests.Session]:
    """The HTTP client the libraries get (closed after the test: no socket left open)."""
    with identity_provider.http_session() as session:
        yield session


@pytest.fixture
def app(identity_provider: IdentityProvider) -> App:
    return identity_provider.register_app(redirect_uris=(REDIRECT_URI,))


def microsoft_client(
    idp: IdentityProvider, http: requests.Session, app: App, credential: Any = None, **kw: Any
) -> Any:
    return msal.ConfidentialClientApplication(
        app.client_id,
        client_credential=credential if credential is not None else app.secret,
        authority=kw.pop("authority", idp.tenant_authority()),
        instance_discovery=kw.pop("instance_discovery", False),
        http_client=http,
        **kw,
    )


def sign_in_with_msal(idp: IdentityProvider, client: Any, **flow_options: Any) -> dict[str, Any]:
    """The whole authorization-code flow: link, sign-in, redemption (PKCE by msal)."""
    flow = client.initiate_auth_code_flow(
        [MICROSOFT_DELEGATED_SCOPE],
        redirect_uri=REDIRECT_URI,
        login_hint=MAILBOX,
        response_mode="form_post",
        **flow_options,
    )
    result: dict[str, Any] = client.acquire_token_by_auth_code_flow(
        flow, idp.authorize(flow["auth_uri"])
    )
    return result


# --- the server itself ------------------------------------------------------------------


def test_starts_fast_serves_https_and_stops_without_leaving_threads_or_sockets(
    trusted_ca: trustme.CA, idp_ca_bundle: Path
) -> None:
    started = time.perf_counter()
    idp = IdentityProvider(trusted_ca, idp_ca_bundle)
    elapsed = time.perf_counter() - started
    try:
        with idp.http_session() as session:
            answer = session.get(idp.url("/.well-known/openid-configuration"), timeout=5)
        assert answer.json()["token_endpoint"] == idp.custom_token_url
        with pytest.raises(requests.exceptions.SSLError):  # TLS is verified, not skipped
            requests.get(idp.url("/jwks"), verify=True, timeout=5)
    finally:
        idp.stop()

    assert elapsed < 0.5
    assert not [t for t in threading.enumerate() if t.name == f"identity-provider-{idp.port}"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", idp.port), timeout=1).close()


# --- Microsoft: msal --------------------------------------------------------------------


def test_msal_signs_in_with_pkce_and_gets_tokens_for_the_mailbox(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    client = microsoft_client(identity_provider, http, app)

    result = sign_in_with_msal(identity_provider, client)

    assert result["token_type"] == "Bearer"
    assert result["refresh_token"]
    claims = result["id_token_claims"]
    assert claims["preferred_username"] == MAILBOX
    assert claims["tid"] == identity_provider.tenant_id
    assert claims["oid"] == identity_provider.mailbox(MAILBOX).oid
    [account] = client.get_accounts()
    assert account["username"] == MAILBOX
    tokens = identity_provider.tokens
    assert tokens.check(result["access_token"], MAILBOX, SMTP_SCOPES) == "ok"
    assert tokens.check(result["access_token"], "other@example.com", SMTP_SCOPES) == "mailbox"
    [authorize] = [s for s in identity_provider.seen if s.path.endswith("/authorize")]
    assert authorize.query["code_challenge_method"] == "S256"
    [redemption] = identity_provider.token_requests
    assert (redemption.grant_type, redemption.client_auth) == (
        "authorization_code",
        "client_secret_post",
    )


def test_the_query_response_mode_redirects_with_the_code_and_state(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    client = microsoft_client(identity_provider, http, app)
    with pytest.warns(UserWarning, match="form_post"):  # msal's advice for this mode
        flow = client.initiate_auth_code_flow(
            [MICROSOFT_DELEGATED_SCOPE], redirect_uri=REDIRECT_URI
        )

    location = identity_provider.follow_sign_in(flow["auth_uri"])

    assert location.startswith(REDIRECT_URI + "?code=")
    back = identity_provider.authorize(flow["auth_uri"])
    assert back["state"] == flow["state"]
    assert "access_token" in client.acquire_token_by_auth_code_flow(flow, back)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("code_verifier", "x" * 43, 501481),
        ("redirect_uri", REDIRECT_URI + "/other", 50011),
    ],
)
def test_a_code_is_redeemed_only_with_its_verifier_and_redirect_uri(
    identity_provider: IdentityProvider,
    http: requests.Session,
    app: App,
    field: str,
    value: str,
    code: int,
) -> None:
    client = microsoft_client(identity_provider, http, app)
    flow = client.initiate_auth_code_flow(
        [MICROSOFT_DELEGATED_SCOPE], redirect_uri=REDIRECT_URI, response_mode="form_post"
    )
    back = identity_provider.authorize(flow["auth_uri"])
    flow[field] = value

    result = client.acquire_token_by_auth_code_flow(flow, back)

    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [code]
    assert identity_provider.count("authorization_code", ok=False) == 1


def test_a_code_is_redeemed_once(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    client = microsoft_client(identity_provider, http, app)
    flow = client.initiate_auth_code_flow(
        [MICROSOFT_DELEGATED_SCOPE], redirect_uri=REDIRECT_URI, response_mode="form_post"
    )
    back = identity_provider.authorize(flow["auth_uri"])
    assert "access_token" in client.acquire_token_by_auth_code_flow(dict(flow), back)

    again = client.acquire_token_by_auth_code_flow(dict(flow), back)

    assert again["error_codes"] == [54005]


def test_a_declined_consent_comes_back_as_the_providers_error(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    identity_provider.deny_consent()
    client = microsoft_client(identity_provider, http, app)

    result = sign_in_with_msal(identity_provider, client)

    assert result["error"] == "access_denied"
    assert "AADSTS65004" in result["error_description"]
    assert identity_provider.count() == 0


def test_refreshing_issues_new_tokens_and_the_old_refresh_token_stays_valid(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    client = microsoft_client(identity_provider, http, app)
    first = sign_in_with_msal(identity_provider, client)
    identity_provider.expire_access_tokens()
    assert identity_provider.tokens.check(first["access_token"], MAILBOX, SMTP_SCOPES) == "expired"

    second = client.acquire_token_by_refresh_token(
        first["refresh_token"], [MICROSOFT_DELEGATED_SCOPE]
    )
    third = client.acquire_token_by_refresh_token(
        first["refresh_token"], [MICROSOFT_DELEGATED_SCOPE]
    )

    assert identity_provider.tokens.check(second["access_token"], MAILBOX, SMTP_SCOPES) == "ok"
    assert second["refresh_token"] != first["refresh_token"]
    assert "access_token" in third
    assert identity_provider.count("refresh_token", client_id=app.client_id, ok=True) == 2


def test_forced_rotation_refuses_a_refresh_token_used_twice(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    identity_provider.rotation = "rotate"
    client = microsoft_client(identity_provider, http, app)
    first = sign_in_with_msal(identity_provider, client)

    rotated = client.acquire_token_by_refresh_token(
        first["refresh_token"], [MICROSOFT_DELEGATED_SCOPE]
    )
    reused = client.acquire_token_by_refresh_token(
        first["refresh_token"], [MICROSOFT_DELEGATED_SCOPE]
    )
    following = client.acquire_token_by_refresh_token(
        rotated["refresh_token"], [MICROSOFT_DELEGATED_SCOPE]
    )

    assert reused["error"] == "invalid_grant"
    assert reused["error_codes"] == [50173]
    assert "access_token" in following


@pytest.mark.parametrize(
    ("reason", "code", "suberror"),
    [
        ("refresh_inactive", 700082, "bad_token"),
        ("refresh_revoked", 50173, None),
        ("refresh_scopes", 70000, None),
    ],
)
def test_a_revoked_refresh_token_is_refused_in_microsofts_words(
    identity_provider: IdentityProvider,
    http: requests.Session,
    app: App,
    reason: Any,
    code: int,
    suberror: str | None,
) -> None:
    client = microsoft_client(identity_provider, http, app)
    first = sign_in_with_msal(identity_provider, client)
    assert identity_provider.revoke_refresh_tokens(reason, mailbox=MAILBOX) == 1

    result = client.acquire_token_by_refresh_token(
        first["refresh_token"], [MICROSOFT_DELEGATED_SCOPE]
    )

    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [code]
    assert result["error_description"].startswith(f"AADSTS{code}: ")
    assert "Trace ID: " in result["error_description"]
    assert result.get("suberror") == suberror
    assert result["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"


def test_client_credentials_with_a_secret_and_twenty_calls_one_token_request(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    client = microsoft_client(identity_provider, http, app)

    results = [client.acquire_token_for_client([MICROSOFT_APP_SCOPE]) for _ in range(20)]

    assert len({r["access_token"] for r in results}) == 1
    assert identity_provider.count("client_credentials", client_id=app.client_id) == 1
    token = identity_provider.tokens.get(results[0]["access_token"])
    assert token is not None
    assert token.scopes == {MICROSOFT_APP_SCOPE}
    assert token.may_act_as("anyone@example.com")  # the app may send as every mailbox


@pytest.mark.parametrize(("expired", "code"), [(False, 7000215), (True, 7000222)])
def test_a_broken_client_secret_is_invalid_client(
    identity_provider: IdentityProvider, http: requests.Session, app: App, expired: bool, code: int
) -> None:
    identity_provider.break_client_secret(app.client_id, expired=expired)
    client = microsoft_client(identity_provider, http, app)

    result = client.acquire_token_for_client([MICROSOFT_APP_SCOPE])

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [code]
    assert app.client_id in result["error_description"]
    identity_provider.restore_client_secret(app.client_id)
    assert "access_token" in client.acquire_token_for_client([MICROSOFT_APP_SCOPE])


def test_client_credentials_need_a_default_scope(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    client = microsoft_client(identity_provider, http, app)

    result = client.acquire_token_for_client([MICROSOFT_DELEGATED_SCOPE])

    assert (result["error"], result["error_codes"]) == ("invalid_scope", [1002012])


@pytest.mark.parametrize("named_by", ["thumbprint", "public_certificate"])
def test_client_credentials_with_a_certificate(
    identity_provider: IdentityProvider, http: requests.Session, named_by: str
) -> None:
    certificate = client_certificate()
    app = identity_provider.register_app(secret=None, certificate_pem=certificate.certificate_pem)
    credential = {
        "private_key": certificate.private_key_pem,
        "thumbprint": certificate.sha1_thumbprint,  # RS256, x5t
        "public_certificate": certificate.certificate_pem,  # PS256, x5t#S256, x5c
    }
    del credential["public_certificate" if named_by == "thumbprint" else "thumbprint"]
    client = microsoft_client(identity_provider, http, app, credential)

    result = client.acquire_token_for_client([MICROSOFT_APP_SCOPE])

    assert "access_token" in result
    [request] = identity_provider.token_requests
    assert request.client_auth == "private_key_jwt"


@pytest.mark.parametrize("forged", ["key", "thumbprint"])
def test_an_assertion_by_another_key_or_naming_another_certificate_is_refused(
    identity_provider: IdentityProvider, http: requests.Session, forged: str
) -> None:
    registered, other = client_certificate(), client_certificate()
    app = identity_provider.register_app(secret=None, certificate_pem=registered.certificate_pem)
    credential = {"private_key": registered.private_key_pem, "thumbprint": other.sha1_thumbprint}
    if forged == "key":
        credential = {
            "private_key": other.private_key_pem,
            "thumbprint": registered.sha1_thumbprint,
        }
    client = microsoft_client(identity_provider, http, app, credential)

    result = client.acquire_token_for_client([MICROSOFT_APP_SCOPE])

    assert (result["error"], result["error_codes"]) == ("invalid_client", [700027])


def test_instance_discovery_on_the_stand_in(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    client = microsoft_client(
        identity_provider,
        http,
        app,
        authority=identity_provider.tenant_authority(identity_provider.tenant_domain),
        instance_discovery=identity_provider.instance_discovery_url,
    )

    assert "access_token" in client.acquire_token_for_client([MICROSOFT_APP_SCOPE])
    paths = [s.path for s in identity_provider.seen]
    assert paths[:2] == [
        "/common/discovery/instance",
        "/example.com/v2.0/.well-known/openid-configuration",
    ]


def test_an_unknown_tenant_fails_discovery(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        microsoft_client(
            identity_provider, http, app, authority=identity_provider.tenant_authority("elsewhere")
        )

    # msal keeps the answer to itself; it was Microsoft's:
    answer = http.get(identity_provider.url("/elsewhere/v2.0/.well-known/openid-configuration"))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_tenant"
    assert answer.json()["error_codes"] == [90002]


def test_scripted_answers_come_first_then_normal_ones(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    identity_provider.fail_token_requests(identity_provider.error("microsoft", "consent_required"))
    client = microsoft_client(identity_provider, http, app)

    refused = client.acquire_token_for_client([MICROSOFT_APP_SCOPE])
    # The same client would answer the same request from its memory of the 400 for 60 s.
    granted = microsoft_client(identity_provider, http, app).acquire_token_for_client(
        [MICROSOFT_APP_SCOPE]
    )

    assert (refused["error_codes"], refused["suberror"]) == ([65001], "consent_required")
    assert "access_token" in granted
    assert identity_provider.count(ok=False) == identity_provider.count(ok=True) == 1


# --- Google: google-auth and Authlib ----------------------------------------------------


def test_a_service_account_gets_a_token_acting_as_the_mailbox(
    identity_provider: IdentityProvider, http: requests.Session
) -> None:
    account = identity_provider.add_service_account()
    credentials = service_account.Credentials.from_service_account_info(
        account.key_info(), scopes=[GOOGLE_MAIL_SCOPE], subject=MAILBOX
    )

    credentials.refresh(google.auth.transport.requests.Request(session=http))

    tokens = identity_provider.tokens
    assert tokens.check(credentials.token, MAILBOX, SMTP_SCOPES) == "ok"
    assert tokens.check(credentials.token, "other@example.com", SMTP_SCOPES) == "mailbox"
    [request] = identity_provider.token_requests
    assert (request.style, request.client_id) == ("google", account.client_email)
    assert request.grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.mark.parametrize(
    ("delegated", "subject", "answer"),
    [
        (None, MAILBOX, "unauthorized_client: Client is unauthorized"),
        (
            (GOOGLE_MAIL_SCOPE,),
            "someone@elsewhere.example",
            "invalid_grant: Invalid email or User ID",
        ),
    ],
    ids=["no-delegation", "outside-the-domain"],
)
def test_a_service_account_is_refused_in_googles_words(
    identity_provider: IdentityProvider,
    http: requests.Session,
    delegated: tuple[str, ...] | None,
    subject: str,
    answer: str,
) -> None:
    account = identity_provider.add_service_account(delegated_scopes=delegated)
    credentials = service_account.Credentials.from_service_account_info(
        account.key_info(), scopes=[GOOGLE_MAIL_SCOPE], subject=subject
    )

    with pytest.raises(RefreshError, match=answer):
        credentials.refresh(google.auth.transport.requests.Request(session=http))


def test_a_key_the_account_does_not_have_is_an_invalid_signature(
    identity_provider: IdentityProvider, http: requests.Session
) -> None:
    account = identity_provider.add_service_account()
    stranger = identity_provider.add_service_account()
    key = {**account.key_info(), "private_key": stranger.private_key_pem}
    credentials = service_account.Credentials.from_service_account_info(
        key, scopes=[GOOGLE_MAIL_SCOPE], subject=MAILBOX
    )

    with pytest.raises(RefreshError, match=r"Invalid JWT Signature\."):
        credentials.refresh(google.auth.transport.requests.Request(session=http))


def google_sign_in(idp: IdentityProvider, app: App, **options: str) -> dict[str, Any]:
    """A Google sign-in with Authlib (PKCE S256), and the tokens it redeems for."""
    verifier = generate_token(48)
    with OAuth2Session(
        app.client_id,
        app.secret,
        scope=GOOGLE_MAIL_SCOPE,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",
    ) as session:
        session.verify, session.trust_env = str(idp.ca_bundle), False
        url, _ = session.create_authorization_url(
            idp.google_auth_uri, code_verifier=verifier, **options
        )
        back = idp.follow_sign_in(url)
        token: dict[str, Any] = session.fetch_token(
            idp.google_token_uri, authorization_response=back, code_verifier=verifier
        )
    return token


def test_google_gives_a_refresh_token_only_for_offline_access(
    identity_provider: IdentityProvider, app: App
) -> None:
    online = google_sign_in(identity_provider, app)
    offline = google_sign_in(identity_provider, app, access_type="offline", prompt="consent")

    assert "refresh_token" not in online
    assert offline["refresh_token"]
    assert offline["scope"] == GOOGLE_MAIL_SCOPE


def test_google_user_credentials_refresh_until_revoked(
    identity_provider: IdentityProvider, http: requests.Session, app: App
) -> None:
    token = google_sign_in(identity_provider, app, access_type="offline")
    credentials = user_credentials.Credentials(
        token=None,
        refresh_token=token["refresh_token"],
        token_uri=identity_provider.google_token_uri,
        client_id=app.client_id,
        client_secret=app.secret,
        scopes=[GOOGLE_MAIL_SCOPE],
    )
    request = google.auth.transport.requests.Request(session=http)

    credentials.refresh(request)
    assert credentials.token is not None
    assert identity_provider.tokens.check(credentials.token, MAILBOX, SMTP_SCOPES) == "ok"
    assert credentials.refresh_token == token["refresh_token"]  # Google keeps it
    identity_provider.revoke_refresh_tokens()

    with pytest.raises(RefreshError, match=r"invalid_grant: Token has been expired or revoked\."):
        credentials.refresh(request)


def test_a_custom_idp_with_authlib_basic_authentication_and_refresh(
    identity_provider: IdentityProvider, app: App
) -> None:
    verifier = generate_token(48)
    with OAuth2Session(
        app.client_id,
        app.secret,
        scope="smtp offline_access",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    ) as session:
        session.verify, session.trust_env = str(identity_provider.ca_bundle), False
        url, _ = session.create_authorization_url(
            identity_provider.custom_authorization_url, code_verifier=verifier
        )
        back = identity_provider.follow_sign_in(url)
        token = session.fetch_token(
            identity_provider.custom_token_url, authorization_response=back, code_verifier=verifier
        )
        refreshed = session.refresh_token(
            identity_provider.custom_token_url, refresh_token=token["refresh_token"]
        )

    assert refreshed["access_token"] != token["access_token"]
    auths = {(r.grant_type, r.client_auth) for r in identity_provider.token_requests}
    assert auths == {
        ("authorization_code", "client_secret_basic"),
        ("refresh_token", "client_secret_basic"),
    }
    assert (
        identity_provider.tokens.check(refreshed["access_token"], MAILBOX, frozenset({"smtp"}))
        == "ok"
    )
