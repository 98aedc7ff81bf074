"""TLS contexts for SMTP: verified against the system trust store plus a sender's own CAs.

Every context that carries mail checks the certificate chain and the host name and refuses
TLS older than 1.2. The one exception, ``inspection_context``, exists only so that
``postdesk doctor`` can *read* a certificate it cannot verify; nothing is ever sent over it.
"""

from __future__ import annotations

import ssl

from postdesk.domain.senders import SenderSettings


def client_context(ca_cert_pem: str | None = None) -> ssl.SSLContext:
    """A verifying client context: system trust store, plus ``ca_cert_pem`` when given."""
    # create_default_context reads the system store at each call, so SSL_CERT_FILE and
    # updates of the store take effect without a restart.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if ca_cert_pem:
        context.load_verify_locations(cadata=ca_cert_pem)
    return context


def sender_context(sender: SenderSettings) -> ssl.SSLContext:
    """The context for one sender's connections."""
    return client_context(sender.ca_cert_pem)


def inspection_context() -> ssl.SSLContext:
    """A context that accepts any certificate, for reading one in a diagnosis only."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
