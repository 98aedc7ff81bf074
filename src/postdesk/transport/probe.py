"""The port probe behind ``postdesk doctor HOST``: which ports answer SMTP, with which
encryption, certificate, login methods and size limit. It never logs in and never sends mail.

Each port is tried with implicit TLS first: a plain SMTP server answers a TLS hello with its
greeting, which fails the handshake at once, so the plain attempt that follows costs no
waiting. A certificate that does not verify is read again over a non-verifying connection,
only to report what it is.
"""

from __future__ import annotations

import enum
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from postdesk.domain.diagnosis import DiagnosisCode, Endpoint, Failure, Stage
from postdesk.domain.senders import Encryption
from postdesk.errors import DeliveryError
from postdesk.transport.connection import StagedClient
from postdesk.transport.diagnose import diagnose
from postdesk.transport.tls import client_context, inspection_context

DEFAULT_PORTS = (25, 465, 587, 2525)
DEFAULT_TIMEOUT_S = 5.0


class PortMode(enum.StrEnum):
    """What answers on a port."""

    IMPLICIT_TLS = "implicit_tls"  # TLS from the first byte: choose SSL
    STARTTLS = "starttls"  # plain greeting, STARTTLS offered: choose TLS
    PLAIN = "plain"  # plain greeting, no STARTTLS: only None works
    NO_ANSWER = "no_answer"  # unreachable, or connected but nothing answered

    @property
    def encryption(self) -> Encryption | None:
        """The sender encryption that matches this port, if any."""
        return _ENCRYPTION_FOR_MODE.get(self)


_ENCRYPTION_FOR_MODE = {
    PortMode.IMPLICIT_TLS: Encryption.SSL,
    PortMode.STARTTLS: Encryption.TLS,
    PortMode.PLAIN: Encryption.NONE,
}


@dataclass(frozen=True)
class CertificateReport:
    """The server's certificate; ``problem`` says why it did not verify, when it did not."""

    subject: str
    issuer: str
    not_after: datetime
    names: tuple[str, ...]
    trusted: bool
    problem: str | None = None


@dataclass(frozen=True)
class PortReport:
    """What answers on one port; ``error`` says what failed there, if anything did."""

    host: str
    port: int
    reachable: bool
    mode: PortMode
    greeting: str | None = None
    certificate: CertificateReport | None = None
    auth_methods: tuple[str, ...] = ()
    size_limit: int | None = None
    error: Failure | None = None

    @property
    def diagnosis(self) -> str | None:
        """The diagnosis code when something failed on this port."""
        return self.error.code if self.error is not None else None


@dataclass
class _Findings:
    greeting: str | None = None
    starttls_offered: bool = False
    certificate_der: bytes | None = None
    auth_methods: tuple[str, ...] = ()
    size_limit: int | None = None


class _AttemptError(Exception):
    """One attempt failed at ``stage``, already diagnosed; ``found`` is what it saw before."""

    def __init__(self, stage: Stage, error: DeliveryError, found: _Findings) -> None:
        super().__init__(error.message)
        self.stage = stage
        self.error = Failure.of(error)
        self.found = found


def probe_host(
    host: str,
    ports: tuple[int, ...] = DEFAULT_PORTS,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    ca_cert_pem: str | None = None,
) -> list[PortReport]:
    """Probe every port (in parallel), in the order given."""
    if not ports:
        return []
    with ThreadPoolExecutor(max_workers=min(len(ports), 8)) as pool:
        return list(
            pool.map(lambda p: probe_port(host, p, timeout=timeout, ca_cert_pem=ca_cert_pem), ports)
        )


def probe_port(
    host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT_S, ca_cert_pem: str | None = None
) -> PortReport:
    """Find out what answers on one port; failures are reported, never raised."""
    verifying = client_context(ca_cert_pem)
    endpoint = Endpoint(host, port, Encryption.SSL.value, timeout)
    try:
        found = _attempt(endpoint, implicit=verifying)
        return _report(endpoint, PortMode.IMPLICIT_TLS, found)
    except _AttemptError as failed:
        if failed.stage is Stage.CONNECT:
            return PortReport(host, port, False, PortMode.NO_ANSWER, error=failed.error)
        if failed.error.code == DiagnosisCode.CERTIFICATE_UNTRUSTED:
            return _untrusted(endpoint, failed, implicit=True)
        if failed.error.code == DiagnosisCode.TIMEOUT:
            return PortReport(host, port, True, PortMode.NO_ANSWER, error=failed.error)
        if failed.stage is not Stage.TLS:  # TLS worked; SMTP over it failed
            return _report(endpoint, PortMode.IMPLICIT_TLS, failed.found, error=failed.error)
    return _probe_plain(Endpoint(host, port, Encryption.TLS.value, timeout), verifying)


def _probe_plain(endpoint: Endpoint, verifying: ssl.SSLContext) -> PortReport:
    try:
        found = _attempt(endpoint, starttls=verifying)
    except _AttemptError as failed:
        if failed.error.code == DiagnosisCode.CERTIFICATE_UNTRUSTED:
            return _untrusted(endpoint, failed, implicit=False)
        no_smtp = failed.found.greeting is None and failed.error.smtp_code is None
        if no_smtp:
            reachable = failed.stage is not Stage.CONNECT
            return PortReport(
                endpoint.host, endpoint.port, reachable, PortMode.NO_ANSWER, error=failed.error
            )
        return _report(endpoint, _plain_mode(failed.found), failed.found, error=failed.error)
    return _report(endpoint, _plain_mode(found), found)


def _plain_mode(found: _Findings) -> PortMode:
    return PortMode.STARTTLS if found.starttls_offered else PortMode.PLAIN


def _untrusted(endpoint: Endpoint, failed: _AttemptError, *, implicit: bool) -> PortReport:
    """The certificate did not verify: read it over a non-verifying connection to show it."""
    inspecting = inspection_context()
    mode = PortMode.IMPLICIT_TLS if implicit else PortMode.STARTTLS
    try:
        if implicit:
            found = _attempt(endpoint, implicit=inspecting)
        else:
            found = _attempt(endpoint, starttls=inspecting)
    except _AttemptError as again:
        found = again.found
    return _report(endpoint, mode, found, error=failed.error, problem=failed.error.message)


def _attempt(
    endpoint: Endpoint,
    *,
    implicit: ssl.SSLContext | None = None,
    starttls: ssl.SSLContext | None = None,
) -> _Findings:
    """Greet, EHLO and (when offered and asked) STARTTLS; note what the server shows."""
    client = StagedClient(timeout=endpoint.timeout_s, implicit_tls=implicit)
    found = _Findings()
    try:
        found.greeting = client.greet(endpoint.host, endpoint.port)
        found.certificate_der = _peer_certificate(client)
        client.hello()
        found.starttls_offered = client.has_extn("starttls")
        _note_extensions(found, client)
        if starttls is not None and found.starttls_offered:
            client.secure(starttls)
            found.certificate_der = _peer_certificate(client)
            _note_extensions(found, client)
    except OSError as exc:  # every library error goes to the one translator
        error = diagnose(exc, stage=client.stage, endpoint=endpoint)
        raise _AttemptError(client.stage, error, found) from None
    finally:
        client.quit_quietly()
    return found


def _note_extensions(found: _Findings, client: StagedClient) -> None:
    found.auth_methods = client.auth_methods
    found.size_limit = client.size_limit


def _peer_certificate(client: StagedClient) -> bytes | None:
    sock = client.sock
    if isinstance(sock, ssl.SSLSocket):
        return sock.getpeercert(binary_form=True)
    return None


def _report(
    endpoint: Endpoint,
    mode: PortMode,
    found: _Findings,
    *,
    error: Failure | None = None,
    problem: str | None = None,
) -> PortReport:
    certificate = None
    if found.certificate_der is not None:
        certificate = _certificate_report(found.certificate_der, problem)
    return PortReport(
        host=endpoint.host,
        port=endpoint.port,
        reachable=True,
        mode=mode,
        greeting=found.greeting,
        certificate=certificate,
        auth_methods=found.auth_methods,
        size_limit=found.size_limit,
        error=error,
    )


def _certificate_report(der: bytes, problem: str | None) -> CertificateReport:
    cert = x509.load_der_x509_certificate(der)
    return CertificateReport(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        names=_names(cert),
        trusted=problem is None,
        problem=problem,
    )


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return (*dns, *ips)
