"""Where postdesk may connect: never to a link-local or cloud metadata address (no mail
server lives there, the instance's credentials do), and a test mail only to the hosts
and ports the operator allows (``POSTDESK_TEST_MAIL_ALLOWED_HOSTS`` and
``POSTDESK_TEST_MAIL_ALLOWED_PORTS``).

Pure rules: the addresses a host name resolves to are given, not looked up here. Numeric
spellings such as ``0xa9fea9fe`` are read as the address the system would connect to,
without any lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from postdesk.config import DEFAULT_TEST_MAIL_PORTS, HostRule, ascii_host_name
from postdesk.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, Azure, Google, Oracle, OpenStack
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

HOSTS_SETTING = "POSTDESK_TEST_MAIL_ALLOWED_HOSTS"
PORTS_SETTING = "POSTDESK_TEST_MAIL_ALLOWED_PORTS"
_RESERVED_HINT = (
    "Enter the mail server's own name or address: postdesk never connects to link-local "
    "addresses (169.254.0.0/16, fe80::/10) or to a cloud provider's metadata service."
)


def reserved_address(address: IPAddress) -> str | None:
    """Why nothing may be sent to ``address``, or None when it may be a mail server.

    An IPv4 address inside IPv6 (mapped, 6to4, NAT64) counts as that IPv4 address.
    """
    address = _plain(address)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if any(address in network for network in LINK_LOCAL):
        return "a link-local address"
    return None


def _plain(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv4Address):
        return address
    address = ipaddress.IPv6Address(int(address))  # without a %scope
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def numeric_address(host: str) -> IPAddress | None:
    """The address ``host`` spells without any lookup (``10.0.0.1``, ``::1``, but also
    ``0xa9fea9fe`` or ``169.254.43518``, which the system reads as addresses too)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return ipaddress.ip_address(str(found[0][4][0])) if found else None


def refuse_reserved_host(host: str, addresses: Iterable[IPAddress] = ()) -> None:
    """``422`` on ``smtp_host`` when the host is the name of a metadata service, or it or
    any address it resolves to is a link-local or metadata address."""
    problem = _reserved_problem(host, addresses)
    if problem is not None:
        raise ValidationError({"smtp_host": problem}, hint=_RESERVED_HINT)


def _reserved_problem(host: str, addresses: Iterable[IPAddress]) -> str | None:
    if host.rstrip(".").lower() in METADATA_NAMES:
        return "is a cloud metadata service"
    literal = numeric_address(host)
    if literal is not None and (reason := reserved_address(literal)):
        return f"is {reason}" if host == str(literal) else f"means {_plain(literal)}, {reason}"
    for address in addresses:
        if reason := reserved_address(address):
            return f"resolves to {_plain(address)}, {reason}"
    return None


@dataclass(frozen=True)
class DestinationRules:
    """The hosts and ports a test mail may go to; ``None`` means any.

    ``hosts`` holds names (exact, or ``*.example.com`` for any name below it) and
    networks: a host is allowed when its name matches, or every address it resolves
    to lies in an allowed network.
    """

    hosts: tuple[HostRule, ...] | None = None
    ports: tuple[int, ...] | None = DEFAULT_TEST_MAIL_PORTS

    def allows_port(self, port: int) -> bool:
        return self.ports is None or port in self.ports

    def port_refused(self, port: int) -> ValidationError:
        """``422`` on ``port``: not an allowed port (nor one a saved sender uses)."""
        usual = ", ".join(str(p) for p in self.ports or ())
        return ValidationError(
            {"port": f"port {port} is not a port test mails may use"},
            hint=(
                f"Test mails may use the ports {usual} ({PORTS_SETTING}) and those of saved "
                "senders. Mail servers listen on 465 (SSL Encryption), 587 (TLS "
                "Encryption) or 25; for another port, save the sender first, or ask the "
                f"operator to add the port to {PORTS_SETTING}."
            ),
        )

    def refuse_host(self, host: str, addresses: Iterable[IPAddress]) -> None:
        """``422`` on ``smtp_host`` unless the host is allowed."""
        if self.hosts is None or self._name_allowed(host):
            return
        networks = [rule for rule in self.hosts if not isinstance(rule, str)]
        found = [_plain(a) for a in addresses]
        if found and all(any(a in net for net in networks) for a in found):
            return
        raise ValidationError(
            {"smtp_host": f"{host} is not among the hosts test mails may go to"},
            hint=(
                "The operator allows test mails only to the mail servers listed in "
                f"{HOSTS_SETTING}: check the host, or ask the operator to add it."
            ),
        )

    def _name_allowed(self, host: str) -> bool:
        name = ascii_host_name(host)
        for rule in self.hosts or ():
            if not isinstance(rule, str):
                continue
            if rule == name or (rule.startswith("*.") and name.endswith(rule[1:])):
                return True
        return False
