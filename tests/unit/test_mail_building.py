"""Outgoing mail is built as CRLF bytes before any network call."""

from datetime import UTC, datetime
from email import message_from_bytes, policy

from postdesk.domain.addresses import parse_address
from postdesk.domain.mail import TEST_MAIL_SENTENCE, TEST_MAIL_SUBJECT, build_mail, build_test_mail
from postdesk.domain.senders import validate_sender

NOW = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
SENDER = validate_sender(
    {
        "smtp_host": "smtp.example.com",
        "address": "bi#reports&ops@example.com",
        "display_name": "报表 Reports",
    }
)


def parsed(data: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(data, policy=policy.default)


def test_test_mail_has_the_sentence_in_html_and_a_text_alternative() -> None:
    mail = build_test_mail(SENDER, parse_address("alice@example.org"), NOW)
    msg = parsed(mail.data)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert TEST_MAIL_SENTENCE in html and TEST_MAIL_SENTENCE in text
    assert "test" not in msg["Subject"].lower() and msg["Subject"] == TEST_MAIL_SUBJECT
    assert msg["From"].addresses[0].display_name == "报表 Reports"
    assert msg["From"].addresses[0].addr_spec == "bi#reports&ops@example.com"
    assert msg["Message-ID"] == mail.message_id and mail.message_id.endswith("@example.com>")


def test_every_line_ends_with_crlf() -> None:
    mail = build_test_mail(SENDER, parse_address("alice@example.org"), NOW)
    assert b"\n" not in mail.data.replace(b"\r\n", b"")


def test_bcc_gets_the_mail_but_is_not_in_the_headers() -> None:
    mail = build_mail(
        sender=SENDER,
        to=[parse_address("a@example.org")],
        cc=[parse_address("c@example.org")],
        bcc=[parse_address("hidden@example.org")],
        subject="Daily report",
        html_body="<p>hi</p>",
        text_body=None,
        message_id="<daily@example.com>",
        date=NOW,
    )
    assert mail.recipients == ("a@example.org", "c@example.org", "hidden@example.org")
    assert b"hidden@example.org" not in mail.data


def test_idn_recipient_goes_out_as_idna_without_smtputf8() -> None:
    mail = build_test_mail(SENDER, parse_address("bob@münchen.de"), NOW)
    assert mail.recipients == ("bob@xn--mnchen-3ya.de",)
    assert not mail.smtputf8


def test_utf8_local_part_switches_to_smtputf8() -> None:
    mail = build_test_mail(SENDER, parse_address("用户@example.org"), NOW)
    assert mail.smtputf8
    assert "用户@example.org".encode() in mail.data
