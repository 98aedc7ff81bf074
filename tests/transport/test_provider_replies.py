"""Microsoft 365 and Gmail replies, replayed by a real server, get the hint that fits them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postdesk.errors import DeliveryError
from postdesk.transport import send_message
from tests.support.mail import raw_mail
from tests.support.smtp import SmtpTestServer

StartServer = Callable[..., SmtpTestServer]
LOGIN = ("reports@example.com", "s3cret-code")

# The providers' own words (host names in brackets as Microsoft 365 adds them).
TENANT_SMTP_AUTH_OFF = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
    "[SN4PR0601CA0002.namprd06.prod.outlook.com]"
)
SECURITY_DEFAULTS = (
    "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security "
    "defaults policy. Contact your administrator. [AM0PR02CA0101.eurprd02.prod.outlook.com]"
)
BASIC_AUTH_OFF = (
    "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. "
    "[PH0PR07CA0091.namprd07.prod.outlook.com]"
)
CLIENT_SUBMISSION = (
    "550 5.7.30 Basic authentication is not supported for Client Submission. "
    "Visit https://aka.ms/smtp_auth_disabled for more information."
)
M365_WRONG_LOGIN = "535 5.7.3 Authentication unsuccessful [BN9PR03CA0123.namprd03.prod.outlook.com]"
NOT_AUTHENTICATED = (
    "530 5.7.57 Client not authenticated to send mail. [DM6PR02CA0042.namprd02.prod.outlook.com]"
)
SEND_AS_DENIED = (
    "554 5.2.252 SendAsDenied; reports@example.com not allowed to send as ceo@example.com; "
    "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
)
GMAIL_APP_PASSWORD = (
    "534 5.7.9 Application-specific password required. For more information, go to "
    "https://support.google.com/mail/?p=InvalidSecondFactor a1-20020a05 - gsmtp"
)
GMAIL_BAD_CREDENTIALS = (
    "535 5.7.8 Username and Password not accepted. For more information, go to "
    "https://support.google.com/mail/?p=BadCredentials a1-20020a05 - gsmtp"
)


def failure(server: SmtpTestServer) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        send_message(server.sender(), recipients=["alice@example.com"], message=raw_mail())
    return caught.value


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (TENANT_SMTP_AUTH_OFF, ["disabled for the whole tenant", "Exchange admin center"]),
        (SECURITY_DEFAULTS, ["security defaults", "Entra"]),
        (BASIC_AUTH_OFF, ["Authenticated SMTP", "Conditional Access"]),
        (CLIENT_SUBMISSION, ["no longer accepts passwords"]),
        (M365_WRONG_LOGIN, ["multi-factor", "full address"]),
        (GMAIL_APP_PASSWORD, ["2-Step Verification", "App passwords"]),
        (GMAIL_BAD_CREDENTIALS, ["never the account password", "Workspace administrator"]),
    ],
)
def test_provider_login_refusals_say_what_to_change(
    smtp_server: StartServer, reply: str, words: list[str]
) -> None:
    server = smtp_server(tls="starttls", credentials=LOGIN, replies={"AUTH": [reply]})

    error = failure(server)

    assert error.code == "smtp_auth_failed"
    assert error.smtp_code == int(reply[:3])
    assert reply[4:] in error.message  # the server's own words stay in the message
    assert error.hint is not None
    for word in words:
        assert word in error.hint
    assert server.messages == []


@pytest.mark.parametrize("reply", [TENANT_SMTP_AUTH_OFF, CLIENT_SUBMISSION, BASIC_AUTH_OFF])
def test_microsoft_password_refusals_point_to_oauth(smtp_server: StartServer, reply: str) -> None:
    server = smtp_server(tls="starttls", credentials=LOGIN, replies={"AUTH": [reply]})

    hint = failure(server).hint or ""

    assert "OAuth 2.0" in hint
    assert "December 2026" in hint


def test_microsoft_not_authenticated_at_mail_from(smtp_server: StartServer) -> None:
    server = smtp_server(tls="starttls", replies={"MAIL": [NOT_AUTHENTICATED]})

    error = failure(server)

    assert error.code == "smtp_auth_failed"
    assert error.smtp_code == 530
    assert "only after a login" in (error.hint or "")
    assert "587" in (error.hint or "")


def test_send_as_denied_after_the_data_is_the_sender_not_spam(smtp_server: StartServer) -> None:
    server = smtp_server(tls="starttls", replies={"DATA": [SEND_AS_DENIED]})

    error = failure(server)

    # A bare 554 after the data reads as spam; this one names the cause.
    assert error.code == "smtp_sender_rejected"
    assert error.smtp_code == 554
    assert not error.transient
    assert "Send As" in (error.hint or "")


def test_other_servers_535_5_7_8_keeps_the_general_hint(smtp_server: StartServer) -> None:
    server = smtp_server(
        tls="starttls",
        credentials=LOGIN,
        replies={"AUTH": ["535 5.7.8 Authentication credentials invalid"]},
    )

    hint = failure(server).hint or ""

    assert "QQ, 163, 126 and Gmail" in hint
    assert "Gmail did not accept" not in hint
