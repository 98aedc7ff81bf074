"""What bounds a test mail: where it may connect.

A test mail connects at once to whatever host and port it is given and reports what
happened, so it goes only to destinations that may be mail servers: never a link-local
or cloud metadata address (checked on every address the host resolves to, and the
connection then uses exactly those addresses), and only to the hosts and ports the
operator allows.
"""

from __future__ import annotations

import ipaddress

from postdesk.domain.destinations import DestinationRules, refuse_reserved_host
from postdesk.domain.senders import SenderSettings
from postdesk.services.runtime import Runtime
from postdesk.storage.repositories import sender_uses_port
from postdesk.transport import resolve_server


def checked_addresses(rt: Runtime, settings: SenderSettings) -> tuple[str, ...]:
    """The addresses the test mail may connect to, all checked; ``422`` on ``smtp_host``
    or ``port`` when the destination is not allowed. A name that does not resolve is the
    usual ``smtp_connect_failed`` diagnosis."""
    rules = DestinationRules(
        rt.settings.test_mail_allowed_hosts, rt.settings.test_mail_allowed_ports
    )
    refuse_reserved_host(settings.smtp_host)
    if not rules.allows_port(settings.port) and not _saved_port(rt, settings.port):
        raise rules.port_refused(settings.port)
    addresses = resolve_server(settings)
    resolved = [ipaddress.ip_address(address) for address in addresses]
    refuse_reserved_host(settings.smtp_host, resolved)
    rules.refuse_host(settings.smtp_host, resolved)
    return addresses


def _saved_port(rt: Runtime, port: int) -> bool:
    with rt.transaction() as session:
        return sender_uses_port(session, port)
