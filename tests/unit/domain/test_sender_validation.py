"""Sender fields are validated all at once, with a message per bad field."""

from typing import Any

import pytest

from postdesk.domain.senders import Encryption, validate_sender
from postdesk.errors import ValidationError

VALID = {
    "smtp_host": "smtp.example.com",
    "address": "reports@example.com",
    "display_name": "Reports",
}


def fields_of(**changes: Any) -> dict[str, Any]:
    return {**VALID, **changes}


def errors_of(**changes: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate_sender(fields_of(**changes))
    return caught.value.fields


def test_defaults_are_port_25_and_tls() -> None:
    sender = validate_sender(VALID)
    assert (sender.port, sender.encryption, sender.timeout_s) == (25, Encryption.TLS, 30.0)
    assert sender.login == "reports@example.com"


def test_username_overrides_the_login() -> None:
    assert validate_sender(fields_of(username="rpt01")).login == "rpt01"


@pytest.mark.parametrize("name", ["", "   ", None])
def test_display_name_is_required(name: str | None) -> None:
    assert "display_name" in errors_of(display_name=name)


@pytest.mark.parametrize("field", ["display_name", "username", "smtp_host"])
def test_crlf_is_rejected_in_header_fields(field: str) -> None:
    assert field in errors_of(**{field: "Reports\r\nBcc: victim@example.org"})


@pytest.mark.parametrize("port", [0, 65536, -1, "abc", 25.5, True])
def test_port_out_of_range_is_rejected(port: Any) -> None:
    assert "port" in errors_of(port=port)


@pytest.mark.parametrize("port", [1, 465, "587", 65535])
def test_port_in_range_is_accepted(port: Any) -> None:
    assert validate_sender(fields_of(port=port)).port == int(port)


def test_encryption_must_be_ssl_tls_or_none() -> None:
    assert "encryption" in errors_of(encryption="starttls")
    assert validate_sender(fields_of(encryption="SSL")).encryption is Encryption.SSL


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("SMTP.QQ.com", "smtp.qq.com"),
        ("192.168.1.20", "192.168.1.20"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("mail-01.corp.local", "mail-01.corp.local"),
        ("exchange", "exchange"),
    ],
)
def test_host_names_and_ip_literals_are_accepted(host: str, expected: str) -> None:
    assert validate_sender(fields_of(smtp_host=host)).smtp_host == expected


@pytest.mark.parametrize(
    "host", ["smtp..example.com", "-bad.example.com", "smtp_example.com", "1.2.3"]
)
def test_invalid_host_names_are_rejected(host: str) -> None:
    assert "smtp_host" in errors_of(smtp_host=host)


def test_mail_address_in_host_field_gets_a_hint() -> None:
    message = errors_of(smtp_host="reports@qq.com")["smtp_host"]
    assert "mail address" in message and "smtp.qq.com" in message


def test_sender_address_with_hash_and_ampersand_is_valid() -> None:
    sender = validate_sender(fields_of(address="bi#reports&ops@example.com"))
    assert sender.address.envelope == "bi#reports&ops@example.com"


def test_parseaddr_confusion_is_rejected_as_sender_address() -> None:
    assert "address" in errors_of(address="alice@example.org)<bob@example.com>")


def test_every_bad_field_is_reported_at_once() -> None:
    fields = errors_of(smtp_host="", port=70000, display_name="", address="nope")
    assert set(fields) == {"smtp_host", "port", "display_name", "address"}


def test_password_is_never_in_repr() -> None:
    sender = validate_sender(fields_of(password="Zq9-unique-secret"))
    assert "Zq9-unique-secret" not in repr(sender)


def test_non_ascii_password_is_accepted_and_line_breaks_are_not() -> None:
    assert validate_sender(fields_of(password="密码-Äö")).password == "密码-Äö"
    assert "password" in errors_of(password="abc\r\ndef")


def test_ca_cert_must_be_pem() -> None:
    assert "ca_cert_pem" in errors_of(ca_cert_pem="not a certificate")
    bogus = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert "ca_cert_pem" in errors_of(ca_cert_pem=bogus)


def test_timeout_and_rate_limits() -> None:
    assert "timeout_s" in errors_of(timeout_s=0)
    assert "max_per_minute" in errors_of(max_per_minute=0)
    sender = validate_sender(fields_of(timeout_s="2.5", max_per_minute=30))
    assert (sender.timeout_s, sender.max_per_minute) == (2.5, 30)
