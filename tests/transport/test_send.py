"""Sending through real aiosmtpd servers: encryption modes, login, the wire format, reuse."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postdesk.errors import DeliveryError
from postdesk.transport import open_connection, send_message
from tests.support.mail import raw_mail
from tests.support.smtp import SmtpTestServer

StartServer = Callable[..., SmtpTestServer]


@pytest.mark.parametrize("tls", ["none", "starttls", "implicit"])
def test_each_encryption_delivers_and_records_the_envelope(
    smtp_server: StartServer, tls: str
) -> None:
    server = smtp_server(tls=tls)

    outcome = send_message(server.sender(), recipients=["alice@example.com"], message=raw_mail())

    assert outcome.accepted == ["alice@example.com"]
    assert outcome.refused == {}
    assert "queued as 1" in outcome.reply
    [received] = server.messages
    assert received.mail_from == "reports@example.com"
    assert received.rcpt_tos == ["alice@example.com"]
    assert received.secure is (tls != "none")
    assert b"Subject: postdesk: monthly report\r\n" in received.content


def test_starttls_comes_before_anything_else(smtp_server: StartServer) -> None:
    server = smtp_server(tls="starttls", credentials=("reports@example.com", "s3cret"))

    send_message(server.sender(), recipients=["alice@example.com"], message=raw_mail())

    verbs = server.verbs()
    assert verbs[:2] == ["EHLO", "STARTTLS"]
    assert all(c.secure for c in server.commands[2:])


def test_bare_lf_and_lone_cr_go_on_the_wire_as_crlf(smtp_server: StartServer) -> None:
    server = smtp_server()
    message = b"Subject: lines\n\nfirst\nsecond\rthird\r\nfourth\n"

    send_message(server.sender(), recipients=["alice@example.com"], message=message)

    content = server.messages[0].content
    assert content == b"Subject: lines\r\n\r\nfirst\r\nsecond\r\nthird\r\nfourth\r\n"
    assert b"\n" not in content.replace(b"\r\n", b"")
    assert b"\r" not in content.replace(b"\r\n", b"")


def test_lines_starting_with_a_dot_arrive_intact(smtp_server: StartServer) -> None:
    server = smtp_server()
    message = raw_mail(body=".hidden\n..two\n.\nend")

    send_message(server.sender(), recipients=["alice@example.com"], message=message)

    assert server.messages[0].content.endswith(b"\r\n.hidden\r\n..two\r\n.\r\nend\r\n")


def test_one_connection_carries_several_messages(smtp_server: StartServer) -> None:
    server = smtp_server(tls="starttls", credentials=("reports@example.com", "s3cret"))

    with open_connection(server.sender()) as connection:
        connection.send(
            envelope_from="reports@example.com", recipients=["a@example.com"], message=raw_mail()
        )
        connection.send(
            envelope_from="reports@example.com", recipients=["b@example.com"], message=raw_mail()
        )

    first, second = server.messages
    assert first.peer == second.peer
    assert server.verbs().count("STARTTLS") == 1
    assert len(server.logins) == 1
    assert server.verbs()[-1] == "QUIT"


def test_a_failed_transaction_is_reset_and_the_connection_reused(smtp_server: StartServer) -> None:
    server = smtp_server(replies={"MAIL": ["553 5.7.1 Sender address rejected"]})

    with open_connection(server.sender()) as connection:
        with pytest.raises(DeliveryError):
            connection.send(
                envelope_from="reports@example.com",
                recipients=["a@example.com"],
                message=raw_mail(),
            )
        assert connection.is_open
        connection.send(
            envelope_from="reports@example.com", recipients=["a@example.com"], message=raw_mail()
        )

    assert server.verbs().count("RSET") == 1
    assert len(server.messages) == 1


def test_some_recipients_refused_the_rest_still_get_the_message(smtp_server: StartServer) -> None:
    server = smtp_server(
        refuse={"nobody@example.com": "550 5.1.1 <nobody@example.com>: no such user"}
    )

    outcome = send_message(
        server.sender(),
        recipients=["alice@example.com", "nobody@example.com", "bob@example.com"],
        message=raw_mail(),
    )

    assert outcome.accepted == ["alice@example.com", "bob@example.com"]
    assert outcome.refused == {
        "nobody@example.com": (550, "5.1.1 <nobody@example.com>: no such user")
    }
    assert server.messages[0].rcpt_tos == ["alice@example.com", "bob@example.com"]


@pytest.mark.parametrize(
    "password",
    ["pässwörd-授权码", "Пароль 123", "emoji 🔑 key"],
    ids=["latin", "cyrillic", "emoji"],
)
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_non_ascii_passwords_log_in(
    smtp_server: StartServer, password: str, mechanism: str
) -> None:
    server = smtp_server(
        tls="starttls",
        credentials=("reports@example.com", password),
        auth_mechanisms=(mechanism,),
    )

    send_message(server.sender(), recipients=["alice@example.com"], message=raw_mail())

    assert server.logins == [(mechanism, "reports@example.com")]
    assert len(server.messages) == 1


def test_plain_is_preferred_over_login(smtp_server: StartServer) -> None:
    server = smtp_server(tls="implicit", credentials=("reports@example.com", "s3cret"))

    send_message(server.sender(), recipients=["alice@example.com"], message=raw_mail())

    assert server.logins == [("PLAIN", "reports@example.com")]


def test_the_username_is_the_login_when_set(smtp_server: StartServer) -> None:
    server = smtp_server(tls="starttls", credentials=("bi-reports", "s3cret"))

    send_message(server.sender(), recipients=["alice@example.com"], message=raw_mail())

    assert server.logins == [("PLAIN", "bi-reports")]


def test_without_a_password_there_is_no_auth(smtp_server: StartServer) -> None:
    server = smtp_server(tls="starttls")

    send_message(server.sender(), recipients=["alice@example.com"], message=raw_mail())

    assert not any(verb.startswith("AUTH") for verb in server.verbs())


def test_size_and_8bitmime_are_declared(smtp_server: StartServer) -> None:
    server = smtp_server(size_limit=100_000)
    message = raw_mail(body="Grüße\n")
    wire_size = len(message.replace(b"\n", b"\r\n"))

    send_message(server.sender(), recipients=["alice@example.com"], message=message)

    options = server.messages[0].mail_options
    assert f"SIZE={wire_size}" in options
    assert "BODY=8BITMIME" in options


def test_smtputf8_is_asked_for_when_an_address_needs_it(smtp_server: StartServer) -> None:
    server = smtp_server()

    send_message(server.sender(), recipients=["jörg@example.com"], message=raw_mail())

    [received] = server.messages
    assert "SMTPUTF8" in received.mail_options
    assert received.rcpt_tos == ["jörg@example.com"]


def test_smtputf8_is_passed_when_the_caller_asks(smtp_server: StartServer) -> None:
    server = smtp_server()

    send_message(
        server.sender(), recipients=["alice@example.com"], message=raw_mail(), smtputf8=True
    )

    assert "SMTPUTF8" in server.messages[0].mail_options


def test_an_international_sender_address_goes_out_as_smtputf8(smtp_server: StartServer) -> None:
    server = smtp_server()
    sender = server.sender(address="berichte.müller@example.com")

    send_message(sender, recipients=["alice@example.com"], message=raw_mail())

    assert server.messages[0].mail_from == "berichte.müller@example.com"
    assert "SMTPUTF8" in server.messages[0].mail_options


def test_send_needs_a_recipient(smtp_server: StartServer) -> None:
    server = smtp_server()

    with (
        open_connection(server.sender()) as connection,
        pytest.raises(ValueError, match="recipient"),
    ):
        connection.send(envelope_from="reports@example.com", recipients=[], message=raw_mail())


def test_close_is_quiet_when_the_server_is_gone(smtp_server: StartServer) -> None:
    server = smtp_server()
    connection = open_connection(server.sender())
    server.stop()

    connection.close()
    connection.close()

    assert not connection.is_open


def test_a_refused_smtputf8_send_keeps_the_connection(smtp_server: StartServer) -> None:
    server = smtp_server(smtputf8=False)

    with open_connection(server.sender()) as connection:
        with pytest.raises(DeliveryError):
            connection.send(
                envelope_from="reports@example.com",
                recipients=["jörg@example.com"],
                message=raw_mail(),
            )
        assert connection.is_open
        connection.send(
            envelope_from="reports@example.com", recipients=["a@example.com"], message=raw_mail()
        )

    assert len(server.messages) == 1
