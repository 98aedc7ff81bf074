"""Test certificate authorities and server TLS contexts, made with trustme.

Fixtures
--------
``trusted_ca`` (session)
    The test CA: the servers of ``tests.support.smtp`` use it by default and their
    ``.sender()`` helper puts its PEM into the sender's ``ca_cert_pem``.
``unknown_ca`` (session)
    A second CA nobody trusts, for "certificate not trusted" cases.
``trust_test_ca``
    Makes ``trusted_ca`` part of the *system* trust store for one test (through
    ``SSL_CERT_FILE``), for code paths that build senders without ``ca_cert_pem``.

Helper: ``server_context(ca, *names, expired=False)`` returns a server-side
``ssl.SSLContext`` with a fresh certificate for ``names`` signed by ``ca``.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
import trustme

SERVER_NAMES = ("localhost", "127.0.0.1")
OTHER_NAME = "mail.elsewhere.example"


@pytest.fixture(scope="session")
def trusted_ca() -> trustme.CA:
    return trustme.CA(organization_name="postdesk test CA")


@pytest.fixture(scope="session")
def unknown_ca() -> trustme.CA:
    return trustme.CA(organization_name="unknown CA")


@pytest.fixture
def trust_test_ca(
    trusted_ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> trustme.CA:
    bundle = tmp_path / "trusted-ca.pem"
    trusted_ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return trusted_ca


def ca_pem(ca: trustme.CA) -> str:
    return ca.cert_pem.bytes().decode("ascii")


def server_context(ca: trustme.CA, *names: str, expired: bool = False) -> ssl.SSLContext:
    """A server context presenting a new certificate for ``names`` (default: loopback)."""
    not_after = None
    not_before = None
    if expired:
        now = datetime.datetime.now(datetime.UTC)
        not_before = now - datetime.timedelta(days=30)
        not_after = now - datetime.timedelta(days=1)
    leaf = ca.issue_cert(*(names or SERVER_NAMES), not_before=not_before, not_after=not_after)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context
