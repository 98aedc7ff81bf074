"""The OAuth client settings of an oauth2 sender: what is accepted, what is refused, and where
its secrets would go."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from postdesk.domain.oauth import (
    AuthKind,
    OAuthFlow,
    OAuthProvider,
    check_auth_kind,
    missing_secrets,
    validate_oauth,
    xoauth2_response,
)
from postdesk.errors import ValidationError

MICROSOFT = {"provider": "microsoft", "flow": "authorization_code", "client_id": "app-1"}


def refused(data: Any, encryption: str = "tls") -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate_oauth(data, encryption=encryption)
    return caught.value.fields


def test_microsoft_defaults_authority_tenant_and_scopes() -> None:
    settings, secrets = validate_oauth(MICROSOFT, encryption="tls")

    assert settings.provider is OAuthProvider.MICROSOFT
    assert settings.microsoft_authority == "https://login.microsoftonline.com/organizations"
    assert settings.token_endpoint == (
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
    )
    assert settings.effective_scopes == ("https://outlook.office.com/SMTP.Send", "offline_access")
    assert secrets.present() == frozenset()


def test_app_only_microsoft_uses_the_default_scope_of_exchange_online() -> None:
    settings, _ = validate_oauth(
        {**MICROSOFT, "flow": "client_credentials", "tenant": "contoso.onmicrosoft.com"},
        encryption="ssl",
    )

    assert settings.effective_scopes == ("https://outlook.office365.com/.default",)
    assert settings.microsoft_authority.endswith("/contoso.onmicrosoft.com")


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("https://login.partner.microsoftonline.cn", "https://login.partner.microsoftonline.cn/t1"),
        (
            "https://login.partner.microsoftonline.cn/",
            "https://login.partner.microsoftonline.cn/t1",
        ),
        ("https://idp.example.com/other-tenant", "https://idp.example.com/other-tenant"),
    ],
)
def test_an_authority_with_a_tenant_path_is_used_as_given(authority: str, expected: str) -> None:
    settings, _ = validate_oauth(
        {**MICROSOFT, "tenant": "t1", "authority": authority}, encryption="tls"
    )

    assert settings.microsoft_authority == expected


def test_xoauth2_is_refused_without_tls() -> None:
    assert "encryption" in refused(MICROSOFT, encryption="none")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**MICROSOFT, "provider": ""}, "oauth.provider"),
        ({**MICROSOFT, "provider": "yahoo"}, "oauth.provider"),
        ({**MICROSOFT, "flow": ""}, "oauth.flow"),
        ({**MICROSOFT, "flow": "service_account"}, "oauth.flow"),
        ({"provider": "google", "flow": "client_credentials", "client_id": "x"}, "oauth.flow"),
        ({**MICROSOFT, "client_id": ""}, "oauth.client_id"),
        ({**MICROSOFT, "authority": "http://login.example.com"}, "oauth.authority"),
        ({**MICROSOFT, "token_url": "https://u:p@login.example.com/token"}, "oauth.token_url"),
        ({**MICROSOFT, "tenant": "a\r\nb"}, "oauth.tenant"),
        ({**MICROSOFT, "scopes": ["a b"]}, "oauth.scopes"),
        ({**MICROSOFT, "scopes": ["s"] * 21}, "oauth.scopes"),
        ({**MICROSOFT, "client_secret": "x" * 70000}, "oauth.client_secret"),
        ({"provider": "custom", "client_id": "c"}, "oauth.token_url"),
        (
            {"provider": "custom", "client_id": "c", "token_url": "https://i.example/t"},
            "oauth.authorization_url",
        ),
        (
            {"provider": "google", "flow": "service_account", "service_account_json": "{}"},
            "oauth.service_account_json",
        ),
    ],
)
def test_each_bad_field_is_named(data: dict[str, Any], field: str) -> None:
    assert field in refused(data)


def test_not_an_object_names_oauth() -> None:
    assert set(refused("microsoft")) == {"oauth"}


def test_custom_client_credentials_needs_no_authorization_url() -> None:
    settings, _ = validate_oauth(
        {
            "provider": "custom",
            "flow": "client_credentials",
            "client_id": "c",
            "token_url": "https://i.example/t",
        },
        encryption="tls",
    )

    assert settings.token_endpoint == "https://i.example/t"


def test_google_service_account_needs_no_client_id_but_its_key() -> None:
    key = json.dumps({"client_email": "sa@p.iam.gserviceaccount.com", "private_key": "-----BEGIN"})
    settings, secrets = validate_oauth(
        {"provider": "google", "flow": "service_account", "service_account_json": key},
        encryption="ssl",
    )

    assert settings.flow is OAuthFlow.SERVICE_ACCOUNT
    assert settings.token_endpoint == "https://oauth2.googleapis.com/token"
    assert secrets.present() == frozenset({"service_account_json"})
    assert missing_secrets(settings, secrets.present()) == {}
    assert "oauth.service_account_json" in missing_secrets(settings, frozenset())


def test_secrets_stay_out_of_repr() -> None:
    _, secrets = validate_oauth({**MICROSOFT, "client_secret": "s3cret-value"}, encryption="tls")

    assert "s3cret-value" not in repr(secrets)


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        (frozenset({"client_secret"}), set()),
        (frozenset({"certificate_pem", "private_key_pem"}), set()),
        (frozenset({"certificate_pem"}), {"oauth.private_key_pem"}),
        (frozenset(), {"oauth.client_secret"}),
    ],
)
def test_a_microsoft_client_needs_a_secret_or_a_whole_certificate(
    present: frozenset[str], missing: set[str]
) -> None:
    settings, _ = validate_oauth(MICROSOFT, encryption="tls")

    assert set(missing_secrets(settings, present)) == missing


def test_auth_kind_absent_is_password_but_empty_is_refused() -> None:
    assert check_auth_kind(None) is AuthKind.PASSWORD
    assert check_auth_kind(" OAuth2 ") is AuthKind.OAUTH2
    with pytest.raises(ValueError, match="password or oauth2"):
        check_auth_kind("")


def test_xoauth2_initial_response() -> None:
    raw = base64.b64decode(xoauth2_response("reports@example.com", "tok.en"))

    assert raw == b"user=reports@example.com\x01auth=Bearer tok.en\x01\x01"


@pytest.mark.parametrize("tenant", [None, "organizations", "common", "Consumers"])
def test_app_only_access_names_its_directory(tenant: str | None) -> None:
    data = {**MICROSOFT, "flow": "client_credentials", "tenant": tenant}
    with pytest.raises(ValidationError) as caught:
        validate_oauth(data, encryption="tls")
    assert "oauth.tenant" in caught.value.fields


def test_app_only_access_may_name_its_directory_in_the_authority() -> None:
    data = {
        **MICROSOFT,
        "flow": "client_credentials",
        "authority": "https://login.partner.microsoftonline.cn/contoso.partner.onmschina.cn",
    }
    settings, _ = validate_oauth(data, encryption="ssl")
    assert settings.microsoft_authority.endswith("/contoso.partner.onmschina.cn")
