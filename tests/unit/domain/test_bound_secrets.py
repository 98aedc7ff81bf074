"""Where a stored password may go: its server, port, encryption and login, normalised."""

from typing import Any

import pytest

from postdesk.domain.bound_secrets import PASSWORD, check_secrets_stay
from postdesk.domain.senders import validate_sender
from postdesk.errors import ValidationError

SAVED = {
    "smtp_host": "smtp.example.com",
    "port": 587,
    "encryption": "tls",
    "address": "reports@example.com",
    "display_name": "Reports",
}


def moved(saved: dict[str, Any], **changes: Any) -> list[str]:
    return PASSWORD.moved(validate_sender(saved), validate_sender({**saved, **changes}))


@pytest.mark.parametrize(
    "changes",
    [
        {"smtp_host": "SMTP.Example.COM."},
        {"port": "587"},
        {"encryption": " TLS "},
        {"username": "reports@example.com"},
        {"address": "reports@EXAMPLE.com"},
        {"display_name": "Other", "timeout_s": 5, "max_per_minute": 3},
    ],
)
def test_the_same_destination_written_otherwise(changes: dict[str, Any]) -> None:
    assert moved(SAVED, **changes) == []


def test_ip_literals_compare_in_their_canonical_form() -> None:
    assert moved({**SAVED, "smtp_host": "[::1]"}, smtp_host="0:0:0:0:0:0:0:1") == []


@pytest.mark.parametrize(
    ("changes", "what"),
    [
        ({"smtp_host": "smtp.elsewhere.example"}, ["the mail server"]),
        ({"port": 2525}, ["the port"]),
        ({"encryption": "none"}, ["the encryption"]),
        ({"username": "other"}, ["the login name"]),
        ({"address": "alerts@example.com"}, ["the login name"]),  # the address is the login
        ({"smtp_host": "10.0.0.9", "port": 25}, ["the mail server", "the port"]),
    ],
)
def test_a_new_destination(changes: dict[str, Any], what: list[str]) -> None:
    assert moved(SAVED, **changes) == what


def test_an_address_change_keeps_a_given_username() -> None:
    with_login = {**SAVED, "username": "bi-login"}
    assert moved(with_login, address="alerts@example.com") == []
    assert moved(with_login, username="") == ["the login name"]  # back to the address


def test_the_refusal_names_the_field_and_says_why() -> None:
    saved = validate_sender(SAVED)
    edited = validate_sender({**SAVED, "smtp_host": "evil.example", "port": 25})
    with pytest.raises(ValidationError) as caught:
        check_secrets_stay(saved, edited, [PASSWORD])
    assert caught.value.fields == {
        "password": "the mail server and the port changed: enter the password again"
        " (the stored one is sent only to the server it was saved for)"
    }
    assert caught.value.hint == PASSWORD.hint
    check_secrets_stay(saved, edited, [])  # no secret kept: nothing to refuse
