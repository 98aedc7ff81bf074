"""The XOAUTH2 SMTP server driven by smtplib, with tokens from the stand-in identity
provider's registry: Microsoft's and Gmail's answers, TLS first, replayed replies."""

from __future__ import annotations

import base64
import json
import smtplib
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.support.idp import GOOGLE_MAIL_SCOPE, MICROSOFT_DELEGATED_SCOPE, IdentityProvider
from tests.support.mail import raw_mail
from tests.support.oauth_tokens import TokenRegistry
from tests.support.xoauth2 import (
    GOOGLE_CHALLENGE,
    MICROSOFT_AUTH_FAILED,
    MICROSOFT_NOT_AUTHENTICATED,
    MICROSOFT_SMTP_AUTH_DISABLED,
    XOAuth2Server,
    send_as_denied,
    xoauth2_string,
)

StartServer = Callable[..., XOAuth2Server]
MAILBOX = "reports@example.com"


def issue(
    tokens: TokenRegistry,
    scope: str = MICROSOFT_DELEGATED_SCOPE,
    *,
    mailboxes: frozenset[str] = frozenset({MAILBOX}),
    lifetime_s: float = 3600.0,
) -> str:
    token = tokens.issue(
        client_id="postdesk",
        grant_type="authorization_code",
        mailboxes=mailboxes,
        scopes=frozenset({scope}),
        lifetime_s=lifetime_s,
    )
    return token.value


@contextmanager
def connect(server: XOAuth2Server, *, starttls: bool = True) -> Iterator[smtplib.SMTP]:
    context = ssl.create_default_context(cadata=server.ca_pem)
    if server.options.tls == "implicit":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            server.host, server.port, context=context, timeout=5
        )
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=5)
    with client:
        client.ehlo()
        if starttls and server.options.tls == "starttls":
            client.starttls(context=context)
            client.ehlo()
        yield client


def words(error: smtplib.SMTPResponseException) -> str:
    """The reply's text after its code (smtplib keeps it as bytes)."""
    text = error.smtp_error
    return text.decode() if isinstance(text, bytes) else text


def log_in(client: smtplib.SMTP, token: str, user: str = MAILBOX) -> tuple[int, bytes]:
    def respond(challenge: bytes | None = None) -> str:
        return xoauth2_string(user, token) if challenge is None else ""

    return client.auth("XOAUTH2", respond)


def test_a_valid_token_logs_in_after_starttls_and_the_mail_goes_through(
    identity_provider: IdentityProvider, xoauth2_server: StartServer
) -> None:
    server = xoauth2_server()
    token = issue(identity_provider.tokens)

    with connect(server) as client:
        assert client.has_extn("auth")
        assert "XOAUTH2" in client.esmtp_features["auth"].split()
        code, _ = log_in(client, token)
        client.sendmail(MAILBOX, ["alice@example.com"], raw_mail())

    assert code == 235
    [login] = server.xoauth2_logins
    assert (login.user, login.token, login.outcome) == (MAILBOX, token, "ok")
    [message] = server.messages
    assert message.secure
    assert server.verbs()[:3] == ["EHLO", "STARTTLS", "EHLO"]


def test_auth_is_neither_offered_nor_taken_before_tls(
    identity_provider: IdentityProvider, xoauth2_server: StartServer
) -> None:
    server = xoauth2_server()
    token = issue(identity_provider.tokens)

    with connect(server, starttls=False) as client:
        assert not client.has_extn("auth")
        blob = base64.b64encode(xoauth2_string(MAILBOX, token).encode()).decode()
        code, reply = client.docmd("AUTH", f"XOAUTH2 {blob}")
        mail_code, _ = client.docmd("MAIL", f"FROM:<{MAILBOX}>")

    assert (code, reply[:6]) == (538, b"5.7.11")
    assert mail_code == 530
    assert server.xoauth2_logins == []


def test_implicit_tls_offers_xoauth2_at_once(
    identity_provider: IdentityProvider, xoauth2_server: StartServer
) -> None:
    server = xoauth2_server(tls="implicit")

    with connect(server) as client:
        code, _ = log_in(client, issue(identity_provider.tokens))

    assert code == 235


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        ("expired", "expired"),
        ("other-mailbox", "mailbox"),
        ("other-scope", "scope"),
        ("unknown", "unknown"),
    ],
)
def test_microsoft_refuses_a_bad_token_with_535_5_7_3(
    identity_provider: IdentityProvider, xoauth2_server: StartServer, kind: str, outcome: str
) -> None:
    server = xoauth2_server(provider="microsoft")
    tokens = identity_provider.tokens
    token = "not-a-token"
    if kind == "expired":
        token = issue(tokens, lifetime_s=-1.0)
    elif kind == "other-mailbox":
        token = issue(tokens, mailboxes=frozenset({"other@example.com"}))
    elif kind == "other-scope":
        token = issue(tokens, scope="https://graph.microsoft.com/Mail.Send")

    with connect(server) as client, pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        log_in(client, token)

    assert refused.value.smtp_code == 535
    assert words(refused.value) == MICROSOFT_AUTH_FAILED[4:]
    assert [login.outcome for login in server.xoauth2_logins] == [outcome]


def test_google_challenges_with_json_then_refuses_after_the_empty_line(
    identity_provider: IdentityProvider, xoauth2_server: StartServer
) -> None:
    server = xoauth2_server(provider="google")
    token = issue(identity_provider.tokens, scope=GOOGLE_MAIL_SCOPE, lifetime_s=-1.0)
    challenges: list[bytes] = []

    def respond(challenge: bytes | None = None) -> str:
        if challenge is None:
            return xoauth2_string(MAILBOX, token)
        challenges.append(challenge)
        return ""

    with connect(server) as client, pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        client.auth("XOAUTH2", respond)

    assert [json.loads(c) for c in challenges] == [GOOGLE_CHALLENGE]
    assert refused.value.smtp_code == 535
    assert words(refused.value).startswith("5.7.8 Username and Password not accepted.")
    assert "BadCredentials" in words(refused.value)  # the second line of the reply


def test_google_takes_a_valid_token(
    identity_provider: IdentityProvider, xoauth2_server: StartServer
) -> None:
    server = xoauth2_server(provider="google")

    with connect(server) as client:
        code, _ = log_in(client, issue(identity_provider.tokens, scope=GOOGLE_MAIL_SCOPE))

    assert code == 235


def test_the_token_may_come_after_an_empty_challenge(
    identity_provider: IdentityProvider, xoauth2_server: StartServer
) -> None:
    server = xoauth2_server()
    token = issue(identity_provider.tokens)

    with connect(server) as client:
        code, _ = client.auth(
            "XOAUTH2",
            lambda _challenge=None: xoauth2_string(MAILBOX, token),
            initial_response_ok=False,
        )

    assert code == 235


def test_a_malformed_response_is_a_syntax_error(
    identity_provider: IdentityProvider, xoauth2_server: StartServer
) -> None:
    server = xoauth2_server()

    with connect(server) as client:
        blob = base64.b64encode(b"user=reports@example.com\x01auth=Basic abc\x01\x01").decode()
        code, _ = client.docmd("AUTH", f"XOAUTH2 {blob}")

    assert code == 501
    assert [login.outcome for login in server.xoauth2_logins] == ["malformed"]


def test_replayed_replies_come_first_then_the_token_is_checked(
    identity_provider: IdentityProvider, xoauth2_server: StartServer
) -> None:
    server = xoauth2_server(auth_replies=[MICROSOFT_SMTP_AUTH_DISABLED])
    token = issue(identity_provider.tokens)

    with connect(server) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            log_in(client, token)
        code, _ = log_in(client, token)

    assert refused.value.smtp_code == 535
    assert words(refused.value).startswith("5.7.139 Authentication unsuccessful, Smtp")
    assert code == 235
    assert [login.outcome for login in server.xoauth2_logins] == ["replayed", "ok"]


def test_mail_and_data_replies_replay_through_the_smtp_options(
    identity_provider: IdentityProvider, xoauth2_server: StartServer
) -> None:
    denied = send_as_denied(MAILBOX, "ceo@example.com")
    server = xoauth2_server(replies={"MAIL": [MICROSOFT_NOT_AUTHENTICATED], "DATA": [denied]})

    with connect(server) as client:
        log_in(client, issue(identity_provider.tokens))
        with pytest.raises(smtplib.SMTPSenderRefused) as not_authenticated:
            client.sendmail(MAILBOX, ["alice@example.com"], raw_mail())
        with pytest.raises(smtplib.SMTPDataError) as send_as:
            client.sendmail(MAILBOX, ["alice@example.com"], raw_mail())

    assert not_authenticated.value.smtp_code == 530
    assert words(not_authenticated.value).startswith("5.7.57 ")
    assert send_as.value.smtp_code == 554
    assert words(send_as.value).startswith("5.2.252 SendAsDenied")
    assert server.messages == []


def test_a_password_login_is_refused_in_microsofts_words(
    identity_provider: IdentityProvider, xoauth2_server: StartServer
) -> None:
    server = xoauth2_server()

    with connect(server) as client, pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        client.login(MAILBOX, "an-old-password")

    assert refused.value.smtp_code == 535
    assert "basic authentication is disabled" in words(refused.value)


def test_a_registry_of_its_own_needs_no_identity_provider(xoauth2_server: StartServer) -> None:
    tokens = TokenRegistry()
    server = xoauth2_server(tokens=tokens)

    with connect(server) as client:
        code, _ = log_in(client, issue(tokens))

    assert code == 235
