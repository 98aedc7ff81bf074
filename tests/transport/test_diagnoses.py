"""Every row of SPEC section 4, produced by a real server (or a real absence of one).

Each test names the diagnosis code it proves; the transport raises ``DeliveryError`` only.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postdesk.domain.senders import SenderSettings
from postdesk.errors import DeliveryError
from postdesk.transport import SendReceipt, open_connection, send_message
from tests.support.echoes import ECHO_LOGIN, ECHO_PASSWORD, echo_everything, echo_leaks
from tests.support.mail import raw_mail
from tests.support.smtp import LOGIN_THROTTLED_REPLY, SilentServer, SmtpTestServer, make_sender

StartServer = Callable[..., SmtpTestServer]
FAST = 0.5  # seconds: the timeout for tests that wait for silence


def deliver(sender: SenderSettings, *recipients: str) -> SendReceipt:
    return send_message(
        sender, recipients=list(recipients or ["alice@example.com"]), message=raw_mail()
    )


def failure(sender: SenderSettings, *recipients: str) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        deliver(sender, *recipients)
    return caught.value


# smtp_connect_failed ---------------------------------------------------------------------


def test_connect_failed_on_a_closed_port(closed_port: int) -> None:
    error = failure(make_sender("127.0.0.1", closed_port))

    assert error.code == "smtp_connect_failed"
    assert error.transient
    assert f"127.0.0.1:{closed_port}" in error.message
    assert "cannot be reached from this server" in error.hint
    assert "firewall" in error.hint
    assert "external network access" in error.hint
    assert error.smtp_code is None


def test_connect_failed_on_an_unresolvable_host() -> None:
    error = failure(make_sender("smtp.postdesk-nowhere.invalid", 25))

    assert error.code == "smtp_connect_failed"
    assert error.transient
    assert "cannot resolve the host name smtp.postdesk-nowhere.invalid" in error.message
    assert "cannot be reached from this server" in error.hint


# smtp_timeout ----------------------------------------------------------------------------


@pytest.mark.parametrize("encryption", ["tls", "none"])
def test_timeout_when_the_server_never_greets(silent_server: SilentServer, encryption: str) -> None:
    error = failure(silent_server.sender(encryption=encryption, timeout_s=FAST))

    assert error.code == "smtp_timeout"
    assert error.transient
    assert "greeting" in error.message
    assert f"If port {silent_server.port} is 465 or another SSL port, choose SSL" in error.hint


@pytest.mark.parametrize("encryption", ["tls", "none"])
def test_timeout_with_tls_or_none_against_an_implicit_tls_port(
    smtp_server: StartServer, encryption: str
) -> None:
    server = smtp_server(tls="implicit")

    error = failure(server.sender(encryption=encryption, timeout_s=FAST))

    assert error.code == "smtp_timeout"
    assert error.transient
    assert "465 or another SSL port, choose SSL" in error.hint
    assert server.messages == []


def test_timeout_with_ssl_against_a_silent_port(silent_server: SilentServer) -> None:
    error = failure(silent_server.sender(encryption="ssl", timeout_s=FAST))

    assert error.code == "smtp_timeout"
    assert "SSL port (usually 465)" in error.hint


# smtp_tls_failed -------------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["none", "starttls"], ids=["plain-port", "starttls-port"])
def test_tls_failed_when_ssl_is_chosen_for_a_port_without_implicit_tls(
    smtp_server: StartServer, tls: str
) -> None:
    server = smtp_server(tls=tls)

    error = failure(server.sender(encryption="ssl", ca_cert_pem=server.ca_pem))

    assert error.code == "smtp_tls_failed"
    assert not error.transient
    assert "TLS handshake" in error.message
    assert (
        "choose TLS (STARTTLS) or None for this port, or the port that matches SSL (usually 465)"
        in error.hint
    )
    assert server.messages == []


# smtp_certificate_untrusted --------------------------------------------------------------


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_certificate_untrusted_from_an_unknown_ca(smtp_server: StartServer, tls: str) -> None:
    server = smtp_server(
        tls=tls, certificate="unknown_ca", credentials=("reports@example.com", "pw")
    )

    error = failure(server.sender())

    assert error.code == "smtp_certificate_untrusted"
    assert not error.transient
    assert "not trusted" in error.message
    assert "add the server's CA certificate to the sender (PEM)" in error.hint
    assert server.logins == []
    assert "MAIL" not in server.verbs()


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_an_unknown_ca_given_as_ca_cert_pem_is_trusted(smtp_server: StartServer, tls: str) -> None:
    server = smtp_server(tls=tls, certificate="unknown_ca")

    deliver(server.sender(ca_cert_pem=server.ca_pem))

    assert len(server.messages) == 1


def test_the_system_trust_store_counts_too(smtp_server: StartServer, trust_test_ca: object) -> None:
    server = smtp_server(tls="starttls")

    deliver(server.sender(ca_cert_pem=None))

    assert len(server.messages) == 1


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_certificate_for_another_host_name(smtp_server: StartServer, tls: str) -> None:
    server = smtp_server(tls=tls, certificate="wrong_host")

    error = failure(server.sender(smtp_host="localhost"))

    assert error.code == "smtp_certificate_untrusted"
    assert "mismatch" in error.message.lower()
    assert "another name" in error.hint
    assert "name on its certificate" in error.hint


def test_expired_certificate(smtp_server: StartServer) -> None:
    server = smtp_server(tls="implicit", certificate="expired")

    error = failure(server.sender())

    assert error.code == "smtp_certificate_untrusted"
    assert "expired" in error.message
    assert "renew" in error.hint


# smtp_starttls_unsupported ---------------------------------------------------------------


def test_starttls_unsupported_fails_closed(smtp_server: StartServer) -> None:
    server = smtp_server(tls="none", credentials=("reports@example.com", "s3cret"))

    error = failure(server.sender(encryption="tls"))

    assert error.code == "smtp_starttls_unsupported"
    assert not error.transient
    assert "choose SSL" in error.hint
    assert "or None, or fix the server" in error.hint
    # Nothing but the greeting exchange happened in plain text: no login, no mail.
    assert server.verbs() in (["EHLO"], ["EHLO", "QUIT"])
    assert server.logins == []
    assert server.messages == []


# smtp_auth_failed ------------------------------------------------------------------------


def test_auth_failed_on_a_wrong_password(smtp_server: StartServer) -> None:
    server = smtp_server(tls="starttls", credentials=("reports@example.com", "right"))

    error = failure(server.sender(password="wrong"))

    assert error.code == "smtp_auth_failed"
    assert error.smtp_code == 535
    assert not error.transient
    assert "535" in error.message
    assert "authorization code" in error.hint
    assert "QQ, 163, 126 and Gmail" in error.hint
    assert server.messages == []


@pytest.mark.parametrize(
    "reply",
    [
        "535 Error: authentication failed, system busy",
        "534 5.7.9 Application-specific password required",
    ],
)
def test_auth_failed_on_scripted_provider_replies(smtp_server: StartServer, reply: str) -> None:
    server = smtp_server(
        tls="implicit", credentials=("reports@example.com", "s3cret"), replies={"AUTH": [reply]}
    )

    error = failure(server.sender())

    assert error.code == "smtp_auth_failed"
    assert error.smtp_code == int(reply[:3])
    assert reply[4:] in error.message
    assert "app password" in error.hint


def test_auth_required_but_no_password_set(smtp_server: StartServer) -> None:
    server = smtp_server(tls="starttls", credentials=("reports@example.com", "s3cret"))

    error = failure(server.sender(password=None))

    assert error.code == "smtp_auth_failed"
    assert error.smtp_code == 530


def test_a_password_transition_is_an_auth_failure_with_its_own_hint(
    smtp_server: StartServer,
) -> None:
    server = smtp_server(
        tls="implicit",
        credentials=("reports@example.com", "s3cret"),
        replies={"AUTH": ["432 4.7.12 A password transition is needed"]},
    )

    error = failure(server.sender())

    assert (error.code, error.smtp_code) == ("smtp_auth_failed", 432)
    assert "password transition" in error.hint
    assert "PLAIN" in error.hint


# smtp_auth_throttled ---------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_too_many_login_attempts_is_a_throttled_login(
    smtp_server: StartServer, mechanism: str
) -> None:
    server = smtp_server(
        tls="starttls",
        credentials=("reports@example.com", "s3cret"),
        auth_mechanisms=(mechanism,),
        auth_throttle=1,
    )

    error = failure(server.sender())

    assert (error.code, error.smtp_code) == ("smtp_auth_throttled", 454)
    assert error.transient
    assert error.message == LOGIN_THROTTLED_REPLY
    assert "refuses logins for now" in error.hint
    assert "no other system" in error.hint
    assert server.logins == [(mechanism, "reports@example.com")]  # one try, no other method
    deliver(server.sender())  # the next login is accepted


@pytest.mark.parametrize(
    "reply",
    [
        "454 4.7.0 Temporary authentication failure",
        "421 4.7.0 Too many login attempts, closing connection",
        "451 4.7.0 Login rate exceeded",
    ],
)
def test_any_temporary_reply_to_auth_is_a_throttled_login(
    smtp_server: StartServer, reply: str
) -> None:
    server = smtp_server(
        tls="implicit", credentials=("reports@example.com", "s3cret"), replies={"AUTH": [reply]}
    )

    error = failure(server.sender())

    assert (error.code, error.smtp_code) == ("smtp_auth_throttled", int(reply[:3]))
    assert reply[4:] in error.message
    assert server.messages == []


def test_a_throttled_login_that_quotes_the_password_is_scrubbed(smtp_server: StartServer) -> None:
    def lock_out(login: str, password: str) -> str:
        return "454 4.7.0 Too many logins with " + echo_everything(login, password).removeprefix(
            "535 5.7.8 "
        )

    server = smtp_server(
        tls="starttls", credentials=(ECHO_LOGIN, ECHO_PASSWORD), auth_throttle=1, auth_echo=lock_out
    )

    error = failure(server.sender())

    assert error.code == "smtp_auth_throttled"
    assert echo_leaks(f"{error.message} {error.hint} {error!r}") == []
    assert "[redacted]" in error.message


# smtp_auth_unsupported -------------------------------------------------------------------


def test_auth_unsupported_when_the_server_offers_no_auth(smtp_server: StartServer) -> None:
    server = smtp_server(tls="starttls")

    error = failure(server.sender(password="s3cret"))

    assert error.code == "smtp_auth_unsupported"
    assert not error.transient
    assert "enable encryption" in error.hint
    assert "SMTP service" in error.hint


def test_auth_unsupported_when_login_over_plain_text_is_refused(smtp_server: StartServer) -> None:
    server = smtp_server(
        tls="starttls", credentials=("reports@example.com", "s3cret"), auth_requires_tls=True
    )

    error = failure(server.sender(encryption="none"))

    assert error.code == "smtp_auth_unsupported"
    assert "unencrypted" in error.hint
    assert "enable encryption" in error.hint
    # The same account works once the connection is encrypted.
    deliver(server.sender(encryption="tls"))


def test_auth_unsupported_answer_538_to_auth_in_plain_text(smtp_server: StartServer) -> None:
    server = smtp_server(
        credentials=("reports@example.com", "s3cret"),
        replies={"AUTH": ["538 5.7.11 Encryption required for requested authentication mechanism"]},
    )

    error = failure(server.sender())

    assert error.code == "smtp_auth_unsupported"
    assert error.smtp_code == 538
    assert "enable encryption" in error.hint


# smtp_sender_rejected --------------------------------------------------------------------


def test_sender_rejected_at_mail_from(smtp_server: StartServer) -> None:
    server = smtp_server(replies={"MAIL": ["553 5.7.1 Sender address rejected: not owned by user"]})

    error = failure(server.sender())

    assert error.code == "smtp_sender_rejected"
    assert error.smtp_code == 553
    assert "<reports@example.com>" in error.message
    assert "not owned by user" in error.message
    assert "may not send as this address" in error.hint


# smtp_recipient_rejected -----------------------------------------------------------------


def test_recipient_rejected_when_every_recipient_is_refused(smtp_server: StartServer) -> None:
    server = smtp_server(
        refuse={
            "nobody@example.com": "550 5.1.1 No such user",
            "gone@example.com": "551 5.1.6 User has moved",
        }
    )

    error = failure(server.sender(), "nobody@example.com", "gone@example.com")

    assert error.code == "smtp_recipient_rejected"
    assert error.smtp_code == 550
    assert not error.transient
    assert "<nobody@example.com>: 550 5.1.1 No such user" in error.message
    assert "<gone@example.com>: 551" in error.message
    assert "check the recipient address" in error.hint
    assert "DATA" not in server.verbs()


# smtp_rejected_as_spam -------------------------------------------------------------------


def test_rejected_as_spam_on_554_dt_spm(smtp_server: StartServer) -> None:
    reply = "554 DT:SPM 163 smtp14,EsCowAD3_0test, please see http://mail.163.com/help"
    server = smtp_server(replies={"DATA": [reply]})

    error = failure(server.sender())

    assert error.code == "smtp_rejected_as_spam"
    assert error.smtp_code == 554
    assert not error.transient
    assert "DT:SPM" in error.message
    assert 'avoid words like "test" in the subject' in error.hint


# smtp_throttled --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "421 4.7.0 Too many connections, try later",
        "450 4.2.1 Rate limit exceeded",
        "451 4.7.1 Please try again later",
        "452 4.5.3 Too many recipients this hour",
    ],
)
def test_throttled_replies_are_transient(smtp_server: StartServer, reply: str) -> None:
    server = smtp_server(replies={"DATA": [reply]})

    error = failure(server.sender())

    assert error.code == "smtp_throttled"
    assert error.transient
    assert error.smtp_code == int(reply[:3])
    assert "about a minute" in error.hint
    assert "max_per_minute" in error.hint


def test_throttled_twice_then_accepted_on_the_same_connection(smtp_server: StartServer) -> None:
    server = smtp_server(replies={"DATA": ["451 4.7.1 Try later", "451 4.7.1 Try later"]})
    codes = []

    with open_connection(server.sender()) as connection:
        for _ in range(3):
            try:
                connection.send(
                    envelope_from="reports@example.com",
                    recipients=["alice@example.com"],
                    message=raw_mail(),
                )
                codes.append("sent")
            except DeliveryError as exc:
                codes.append(exc.code)

    assert codes == ["smtp_throttled", "smtp_throttled", "sent"]
    assert len(server.messages) == 1


def test_421_closes_the_connection(smtp_server: StartServer) -> None:
    server = smtp_server(replies={"DATA": ["421 4.3.2 Service shutting down"]})

    with open_connection(server.sender()) as connection:
        with pytest.raises(DeliveryError):
            connection.send(
                envelope_from="reports@example.com",
                recipients=["alice@example.com"],
                message=raw_mail(),
            )
        assert not connection.is_open


def test_every_recipient_deferred_is_throttled(smtp_server: StartServer) -> None:
    server = smtp_server(replies={"RCPT": ["450 4.2.1 Mailbox busy", "452 4.5.3 Try later"]})

    error = failure(server.sender(), "alice@example.com", "bob@example.com")

    assert error.code == "smtp_throttled"
    assert error.transient


# smtp_message_too_large ------------------------------------------------------------------


def test_message_too_large_is_caught_before_data_by_the_size_check(
    smtp_server: StartServer,
) -> None:
    server = smtp_server(size_limit=1000)

    with pytest.raises(DeliveryError) as caught:
        send_message(
            server.sender(),
            recipients=["alice@example.com"],
            message=raw_mail(body="x" * 70 + "\n") * 30,
        )

    error = caught.value
    assert error.code == "smtp_message_too_large"
    assert not error.transient
    assert "at most 1000 bytes" in error.message
    assert "reduce attachments" in error.hint
    assert "MAIL" not in server.verbs()
    assert "DATA" not in server.verbs()


def test_message_too_large_on_552(smtp_server: StartServer) -> None:
    server = smtp_server(replies={"DATA": ["552 5.3.4 Message size exceeds fixed limit"]})

    error = failure(server.sender())

    assert error.code == "smtp_message_too_large"
    assert error.smtp_code == 552
    assert "reduce attachments" in error.hint


# smtp_error ------------------------------------------------------------------------------


def test_anything_else_is_smtp_error_with_the_servers_words(smtp_server: StartServer) -> None:
    server = smtp_server(replies={"DATA": ["550 5.6.0 Message header malformed"]})

    error = failure(server.sender())

    assert error.code == "smtp_error"
    assert error.smtp_code == 550
    assert not error.transient
    assert "5.6.0 Message header malformed" in error.message
    assert "5.6.0 Message header malformed" in error.hint


def test_other_4xx_is_a_transient_smtp_error(smtp_server: StartServer) -> None:
    server = smtp_server(replies={"DATA": ["432 4.7.12 A password transition is needed"]})

    error = failure(server.sender())

    assert error.code == "smtp_error"
    assert error.transient


def test_smtputf8_address_on_a_server_without_smtputf8(smtp_server: StartServer) -> None:
    server = smtp_server(smtputf8=False)

    error = failure(server.sender(), "jörg@example.com")

    assert error.code == "smtp_error"
    assert not error.transient
    assert "SMTPUTF8" in error.hint
    assert "MAIL" not in server.verbs()


def test_a_server_that_went_away_is_a_transient_error(smtp_server: StartServer) -> None:
    server = smtp_server()
    connection = open_connection(server.sender())
    server.stop()

    with pytest.raises(DeliveryError) as caught:
        connection.send(
            envelope_from="reports@example.com", recipients=["a@example.com"], message=raw_mail()
        )

    assert caught.value.code == "smtp_error"
    assert caught.value.transient
    assert not connection.is_open
