"""The only code that talks SMTP: connections for a sender, the doctor's port probe, and the
translation of every library error into a diagnosis (``DeliveryError``)."""

from postdesk.transport.connection import (
    AUTH_MECHANISMS,
    SendReceipt,
    SmtpConnection,
    open_connection,
    resolve_server,
    send_message,
)
from postdesk.transport.diagnose import diagnose, endpoint_of
from postdesk.transport.probe import (
    DEFAULT_PORTS,
    CertificateReport,
    PortMode,
    PortReport,
    probe_host,
    probe_port,
)
from postdesk.transport.tls import client_context, sender_context

__all__ = [
    "AUTH_MECHANISMS",
    "DEFAULT_PORTS",
    "CertificateReport",
    "PortMode",
    "PortReport",
    "SendReceipt",
    "SmtpConnection",
    "client_context",
    "diagnose",
    "endpoint_of",
    "open_connection",
    "probe_host",
    "probe_port",
    "resolve_server",
    "send_message",
    "sender_context",
]
