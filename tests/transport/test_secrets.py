"""No diagnosis ever carries the sender's password, not even when a server echoes it back."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from postdesk.errors import DeliveryError
from postdesk.transport import send_message
from tests.support.echoes import ECHO_FORMS, ECHO_LOGIN, ECHO_PASSWORD, echo_leaks
from tests.support.mail import raw_mail
from tests.support.smtp import SmtpTestServer

StartServer = Callable[..., SmtpTestServer]
PASSWORD = "Zebra-Kumquat-9931-ü"
LOGIN = "reports@example.com"
B64_PASSWORD = base64.b64encode(PASSWORD.encode()).decode()
B64_PLAIN = base64.b64encode(f"\0{LOGIN}\0{PASSWORD}".encode()).decode()
FORMS = (PASSWORD, B64_PASSWORD, B64_PLAIN)


def leaks(error: DeliveryError) -> list[str]:
    texts = [error.message, error.hint or "", repr(error), str(error), json.dumps(error.to_dict())]
    texts += [str(arg) for arg in error.args]
    return [form for form in FORMS for text in texts if form in text]


SCENARIOS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "wrong password": (
        {"tls": "starttls", "credentials": (LOGIN, "another one")},
        {},
    ),
    "server echoes the PLAIN response": (
        {
            "tls": "starttls",
            "credentials": (LOGIN, PASSWORD),
            "replies": {"AUTH": [f"535 5.7.8 Cannot decode {B64_PLAIN}"]},
        },
        {},
    ),
    "server echoes the raw password": (
        {
            "tls": "implicit",
            "credentials": (LOGIN, PASSWORD),
            "replies": {"AUTH": [f"535 5.7.8 password {PASSWORD} is wrong"]},
        },
        {},
    ),
    "server echoes the password in words shown as the hint": (
        {
            "credentials": (LOGIN, PASSWORD),
            "replies": {"DATA": [f"550 5.6.0 header said {PASSWORD}"]},
        },
        {},
    ),
    "login method missing": ({"tls": "starttls"}, {"password": PASSWORD}),
    "starttls missing": ({"tls": "none"}, {"encryption": "tls", "password": PASSWORD}),
    "certificate untrusted": (
        {"tls": "implicit", "certificate": "unknown_ca", "credentials": (LOGIN, PASSWORD)},
        {},
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=list(SCENARIOS))
def test_the_password_is_in_no_diagnosis(smtp_server: StartServer, scenario: str) -> None:
    server_options, sender_overrides = SCENARIOS[scenario]
    server = smtp_server(**server_options)
    sender = server.sender(**{"password": PASSWORD, **sender_overrides})

    with pytest.raises(DeliveryError) as caught:
        send_message(sender, recipients=["alice@example.com"], message=raw_mail())

    assert leaks(caught.value) == []
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_an_echoed_password_is_redacted_not_dropped(smtp_server: StartServer) -> None:
    server = smtp_server(
        tls="implicit",
        credentials=(LOGIN, PASSWORD),
        replies={"AUTH": [f"535 5.7.8 password {PASSWORD} is wrong"]},
    )

    with pytest.raises(DeliveryError) as caught:
        send_message(server.sender(), recipients=["alice@example.com"], message=raw_mail())

    assert caught.value.message == "535 5.7.8 password [redacted] is wrong"


def test_sender_repr_hides_the_password(smtp_server: StartServer) -> None:
    server = smtp_server(credentials=(LOGIN, PASSWORD))

    assert PASSWORD not in repr(server.sender())


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("form", ECHO_FORMS, ids=list(ECHO_FORMS))
def test_a_password_echoed_in_any_encoding_is_redacted(
    smtp_server: StartServer, mechanism: str, form: str
) -> None:
    server = smtp_server(
        tls="starttls",
        credentials=(ECHO_LOGIN, "what the server expects"),
        auth_mechanisms=(mechanism,),
        auth_echo=lambda _login, password: f"535 5.7.8 got {ECHO_FORMS[form](password)} no",
    )
    sender = server.sender(password=ECHO_PASSWORD)

    with pytest.raises(DeliveryError) as caught:
        send_message(sender, recipients=["alice@example.com"], message=raw_mail())

    error = caught.value
    assert error.message.startswith("535 5.7.8 got ") and "[redacted]" in error.message
    texts = [error.message, error.hint or "", repr(error), json.dumps(error.to_dict())]
    assert [echo_leaks(text) for text in texts] == [[]] * len(texts)
