"""``probe_host`` / ``probe_port`` (``postdesk doctor``) against real servers."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import asdict

import pytest

from postdesk.domain.senders import Encryption
from postdesk.transport import PortMode, probe_host, probe_port
from tests.support.smtp import HOST, SERVER_NAME, SilentServer, SmtpTestServer

StartServer = Callable[..., SmtpTestServer]
CREDENTIALS = ("reports@example.com", "s3cret")


def assert_nothing_sent(server: SmtpTestServer) -> None:
    assert server.messages == []
    assert server.logins == []
    assert not {"MAIL", "RCPT", "DATA"} & set(server.verbs())
    assert not any(verb.startswith("AUTH") for verb in server.verbs())


def test_implicit_tls_port(smtp_server: StartServer) -> None:
    server = smtp_server(tls="implicit", credentials=CREDENTIALS, size_limit=10_485_760)

    report = probe_port(HOST, server.port, timeout=2, ca_cert_pem=server.ca_pem)

    assert report.reachable
    assert report.mode is PortMode.IMPLICIT_TLS
    assert report.mode.encryption is Encryption.SSL
    assert report.greeting is not None
    assert SERVER_NAME in report.greeting
    assert report.auth_methods == ("LOGIN", "PLAIN")
    assert report.size_limit == 10_485_760
    assert report.error is None
    assert report.diagnosis is None
    certificate = report.certificate
    assert certificate is not None
    assert certificate.trusted
    assert certificate.problem is None
    assert "postdesk test CA" in certificate.issuer
    assert certificate.subject
    assert certificate.names == ("localhost", "127.0.0.1")
    assert certificate.not_after > datetime.datetime.now(datetime.UTC)
    assert_nothing_sent(server)


def test_starttls_port_shows_what_is_offered_after_starttls(smtp_server: StartServer) -> None:
    server = smtp_server(tls="starttls", credentials=CREDENTIALS, auth_requires_tls=True)

    report = probe_port(HOST, server.port, timeout=2, ca_cert_pem=server.ca_pem)

    assert report.mode is PortMode.STARTTLS
    assert report.mode.encryption is Encryption.TLS
    assert report.auth_methods == ("LOGIN", "PLAIN")  # offered only once encrypted
    assert report.certificate is not None
    assert report.certificate.trusted
    assert report.error is None
    assert "STARTTLS" in server.verbs()
    assert_nothing_sent(server)


def test_plain_port_without_starttls(smtp_server: StartServer) -> None:
    server = smtp_server(tls="none", credentials=CREDENTIALS)

    report = probe_port(HOST, server.port, timeout=2)

    assert report.reachable
    assert report.mode is PortMode.PLAIN
    assert report.mode.encryption is Encryption.NONE
    assert report.certificate is None
    assert report.auth_methods == ("LOGIN", "PLAIN")
    assert report.greeting is not None
    assert report.error is None
    assert_nothing_sent(server)


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_an_untrusted_certificate_is_still_read(smtp_server: StartServer, tls: str) -> None:
    server = smtp_server(tls=tls, certificate="unknown_ca")

    report = probe_port(HOST, server.port, timeout=2)

    assert report.mode is (PortMode.IMPLICIT_TLS if tls == "implicit" else PortMode.STARTTLS)
    assert report.diagnosis == "smtp_certificate_untrusted"
    certificate = report.certificate
    assert certificate is not None
    assert not certificate.trusted
    assert certificate.problem is not None
    assert "unable to get local issuer certificate" in certificate.problem
    assert "unknown CA" in certificate.issuer
    assert_nothing_sent(server)


def test_a_certificate_in_the_system_store_verifies(
    smtp_server: StartServer, trust_test_ca: object
) -> None:
    server = smtp_server(tls="implicit")

    report = probe_port(HOST, server.port, timeout=2)

    assert report.certificate is not None
    assert report.certificate.trusted


def test_a_certificate_for_another_name_is_reported(smtp_server: StartServer) -> None:
    server = smtp_server(tls="implicit", certificate="wrong_host")

    report = probe_port(HOST, server.port, timeout=2, ca_cert_pem=server.ca_pem)

    assert report.diagnosis == "smtp_certificate_untrusted"
    assert report.certificate is not None
    assert report.certificate.names == ("mail.elsewhere.example",)
    assert report.error is not None
    assert "another name" in (report.error.hint or "")


def test_closed_port(closed_port: int) -> None:
    report = probe_port(HOST, closed_port, timeout=2)

    assert not report.reachable
    assert report.mode is PortMode.NO_ANSWER
    assert report.mode.encryption is None
    assert report.diagnosis == "smtp_connect_failed"


def test_a_port_that_never_answers(silent_server: SilentServer) -> None:
    report = probe_port(HOST, silent_server.port, timeout=0.5)

    assert report.reachable
    assert report.mode is PortMode.NO_ANSWER
    assert report.diagnosis == "smtp_timeout"


def test_probe_host_reports_every_port_in_order(smtp_server: StartServer, closed_port: int) -> None:
    implicit = smtp_server(tls="implicit")
    starttls = smtp_server(tls="starttls")
    plain = smtp_server(tls="none")
    ports = (implicit.port, closed_port, starttls.port, plain.port)

    reports = probe_host(HOST, ports, timeout=2, ca_cert_pem=implicit.ca_pem)

    assert [r.port for r in reports] == list(ports)
    assert [r.mode for r in reports] == [
        PortMode.IMPLICIT_TLS,
        PortMode.NO_ANSWER,
        PortMode.STARTTLS,
        PortMode.PLAIN,
    ]
    for server in (implicit, starttls, plain):
        assert_nothing_sent(server)


def test_probe_host_without_ports() -> None:
    assert probe_host(HOST, ()) == []


def test_a_report_converts_to_plain_data(closed_port: int) -> None:
    report = probe_port(HOST, closed_port, timeout=2)

    data = asdict(report)

    assert data["error"]["code"] == "smtp_connect_failed"
    assert report.error is not None
    assert report.error.to_dict()["hint"] == report.error.hint
