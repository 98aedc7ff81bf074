"""The error answers of the stand-in identity provider, in each provider's own words.

``provider_error(style, failure, **details)`` builds the answer a real token endpoint gives
for a named failure: Microsoft's AADSTS bodies (``error``, ``error_description`` with the
trace lines, ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``,
``error_uri`` and, where Microsoft sends one, ``suberror``), Google's two-field bodies, and
for a custom IdP the same RFC 6749 bodies as Google's. ``details`` fill the placeholders
(``client_id``, ``tenant``, ``scope``, ``issued``, ``valid_from``, ``redirect_uri``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

Style = Literal["microsoft", "google", "custom"]
Failure = Literal[
    "unknown_client",
    "invalid_secret",
    "expired_secret",
    "missing_credentials",
    "bad_assertion",
    "bad_code",
    "expired_code",
    "code_redeemed",
    "pkce_mismatch",
    "redirect_mismatch",
    "bad_refresh",
    "refresh_inactive",
    "refresh_revoked",
    "refresh_scopes",
    "consent_required",
    "invalid_scope",
    "unsupported_grant",
    "invalid_tenant",
    "sa_unauthorized",
    "sa_bad_signature",
    "sa_bad_subject",
    "sa_bad_assertion",
]


class ProviderError(Exception):
    """A token endpoint's refusal: the HTTP status and the JSON body it answers with."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error_description") or body.get("error"))
        self.status = status
        self.body = body

    @property
    def error(self) -> str:
        return str(self.body["error"])


# failure: (HTTP status, error, AADSTS number, description, suberror)
_MICROSOFT: dict[str, tuple[int, str, int, str, str | None]] = {
    "unknown_client": (
        400,
        "unauthorized_client",
        700016,
        "Application with identifier '{client_id}' was not found in the directory "
        "'{tenant}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may "
        "have sent your authentication request to the wrong tenant.",
        None,
    ),
    "invalid_secret": (
        401,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        "client secret value, not the client secret ID, for a secret added to app "
        "'{client_id}'.",
        None,
    ),
    "expired_secret": (
        401,
        "invalid_client",
        7000222,
        "The provided client secret keys for app '{client_id}' are expired. Visit the Azure "
        "portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider "
        "using certificate credentials for added security: https://aka.ms/certCreds.",
        None,
    ),
    "missing_credentials": (
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
        None,
    ),
    "bad_assertion": (
        401,
        "invalid_client",
        700027,
        "Client assertion failed signature validation.",
        None,
    ),
    "bad_code": (
        400,
        "invalid_grant",
        9002313,
        "Invalid request. Request is malformed or invalid.",
        None,
    ),
    "expired_code": (
        400,
        "invalid_grant",
        70008,
        "The provided authorization code or refresh token has expired due to inactivity. "
        "Send a new interactive authorization request for this user and resource.",
        None,
    ),
    "code_redeemed": (
        400,
        "invalid_grant",
        54005,
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code "
        "or use an existing refresh token.",
        None,
    ),
    "pkce_mismatch": (
        400,
        "invalid_grant",
        501481,
        "The Code_Verifier does not match the code_challenge supplied in the authorization "
        "request.",
        None,
    ),
    "redirect_mismatch": (
        400,
        "invalid_grant",
        50011,
        "The redirect URI '{redirect_uri}' specified in the request does not match the "
        "redirect URIs configured for the application '{client_id}'.",
        None,
    ),
    "bad_refresh": (
        400,
        "invalid_grant",
        9002313,
        "Invalid request. Request is malformed or invalid.",
        None,
    ),
    "refresh_inactive": (
        400,
        "invalid_grant",
        700082,
        "The refresh token has expired due to inactivity. The token was issued on {issued} "
        "and was inactive for 90.00:00:00.",
        "bad_token",
    ),
    "refresh_revoked": (
        400,
        "invalid_grant",
        50173,
        "The provided grant has expired due to it being revoked, a fresh auth token is "
        "needed. The user might have changed or reset their password. The grant was issued "
        "on '{issued}' and the TokensValidFrom date (before which tokens are not valid) for "
        "this user is '{valid_from}'.",
        None,
    ),
    "refresh_scopes": (
        400,
        "invalid_grant",
        70000,
        "The request was denied because one or more scopes requested are unauthorized or "
        "expired. The user must first sign in and grant the client application access to "
        "the requested scope.",
        None,
    ),
    "consent_required": (
        400,
        "invalid_grant",
        65001,
        "The user or administrator has not consented to use the application with ID "
        "'{client_id}' named 'postdesk'. Send an interactive authorization request for this "
        "user and resource.",
        "consent_required",
    ),
    "invalid_scope": (
        400,
        "invalid_scope",
        1002012,
        "The provided value for scope {scope} is not valid. Client credential flows must "
        "have a scope value with /.default suffixed to the resource identifier (application "
        "ID URI).",
        None,
    ),
    "unsupported_grant": (
        400,
        "unsupported_grant_type",
        70003,
        "The app requested an unsupported grant type.",
        None,
    ),
    "invalid_tenant": (
        400,
        "invalid_tenant",
        90002,
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud. Check with your subscription administrator, "
        "this may happen if there are no active subscriptions for the tenant.",
        None,
    ),
}

# failure: (HTTP status, error, error_description); also the custom IdP's answers.
_GOOGLE: dict[str, tuple[int, str, str]] = {
    "unknown_client": (401, "invalid_client", "The OAuth client was not found."),
    "invalid_secret": (401, "invalid_client", "Unauthorized"),
    "expired_secret": (401, "invalid_client", "Unauthorized"),
    "missing_credentials": (401, "invalid_client", "Unauthorized"),
    "bad_assertion": (401, "invalid_client", "Unauthorized"),
    "bad_code": (400, "invalid_grant", "Malformed auth code."),
    "expired_code": (400, "invalid_grant", "Bad Request"),
    "code_redeemed": (400, "invalid_grant", "Bad Request"),
    "pkce_mismatch": (400, "invalid_grant", "Invalid code verifier."),
    "redirect_mismatch": (400, "redirect_uri_mismatch", "Bad Request"),
    "bad_refresh": (400, "invalid_grant", "Bad Request"),
    "refresh_inactive": (400, "invalid_grant", "Token has been expired or revoked."),
    "refresh_revoked": (400, "invalid_grant", "Token has been expired or revoked."),
    "refresh_scopes": (400, "invalid_scope", "Bad Request"),
    "consent_required": (400, "invalid_grant", "Token has been expired or revoked."),
    "invalid_scope": (400, "invalid_scope", "Some requested scopes were invalid."),
    "unsupported_grant": (400, "unsupported_grant_type", "Invalid grant_type: {grant_type}"),
    "invalid_tenant": (400, "invalid_request", "Bad Request"),
    "sa_unauthorized": (
        401,
        "unauthorized_client",
        "Client is unauthorized to retrieve access tokens using this method, or client not "
        "authorized for any of the scopes requested.",
    ),
    "sa_bad_signature": (400, "invalid_grant", "Invalid JWT Signature."),
    "sa_bad_subject": (400, "invalid_grant", "Invalid email or User ID"),
    "sa_bad_assertion": (
        400,
        "invalid_grant",
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
        "timeframe. Check your iat and exp values in the JWT claim.",
    ),
}

_DETAILS = {
    "client_id": "00000000-0000-0000-0000-000000000000",
    "tenant": "organizations",
    "scope": "",
    "issued": "2025-11-30T09:30:00.0000000Z",
    "valid_from": "2026-03-01T09:30:00.0000000Z",
    "redirect_uri": "",
    "grant_type": "",
}


def provider_error(style: Style, failure: Failure, **details: str) -> ProviderError:
    """The answer of ``style``'s token endpoint to ``failure``."""
    values = {**_DETAILS, **details}
    if style == "microsoft":
        status, error, code, text, suberror = _MICROSOFT[failure]
        return microsoft_error(status, error, code, text.format(**values), suberror)
    status, error, description = _GOOGLE[failure]
    return ProviderError(
        status, {"error": error, "error_description": description.format(**values)}
    )


def microsoft_error(
    status: int, error: str, code: int, text: str, suberror: str | None = None
) -> ProviderError:
    """An AADSTS body as Microsoft's token endpoint writes it."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    body: dict[str, Any] = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {text}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    if suberror is not None:
        body["suberror"] = suberror
    return ProviderError(status, body)
