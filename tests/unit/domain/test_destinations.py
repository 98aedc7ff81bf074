"""Where postdesk may connect (postdesk.domain.destinations): never link-local or cloud
metadata addresses, however spelt; test mails only to the hosts and ports allowed."""

from __future__ import annotations

import ipaddress

import pytest

from postdesk.domain.destinations import (
    DestinationRules,
    numeric_address,
    refuse_reserved_host,
    reserved_address,
)
from postdesk.errors import ValidationError


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("169.254.0.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%2", "a link-local address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),  # IPv4-mapped
        ("2002:a9fe:a9fe::1", "a cloud metadata address"),  # 6to4
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),  # NAT64
        ("::ffff:169.254.1.1", "a link-local address"),
    ],
)
def test_reserved_addresses_however_spelt(address: str, reason: str) -> None:
    assert reserved_address(ip(address)) == reason


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.5", "192.168.1.1", "203.0.113.7", "::1", "2001:db8::25"]
)
def test_mail_servers_may_live_on_loopback_private_and_public_addresses(address: str) -> None:
    assert reserved_address(ip(address)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("169.254.169.254", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("169.254.169.0xfe", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("::1", "::1"),
    ],
)
def test_numeric_spellings_are_read_as_the_system_reads_them(host: str, address: str) -> None:
    assert numeric_address(host) == ip(address)


@pytest.mark.parametrize("host", ["smtp.example.com", "localhost", "例え.jp"])
def test_names_are_not_numeric(host: str) -> None:
    assert numeric_address(host) is None


@pytest.mark.parametrize(
    ("host", "addresses", "problem"),
    [
        ("169.254.169.254", [], "is a cloud metadata address"),
        ("0xa9fea9fe", [], "means 169.254.169.254, a cloud metadata address"),
        ("fe80::1", [], "is a link-local address"),
        ("metadata.google.internal", [], "is a cloud metadata service"),
        ("Metadata.Google.Internal.", [], "is a cloud metadata service"),
        ("mail.example.com", ["10.0.0.5", "169.254.1.2"], "resolves to 169.254.1.2, which"),
    ],
)
def test_a_reserved_host_is_refused_on_smtp_host(
    host: str, addresses: list[str], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        refuse_reserved_host(host, [ip(a) for a in addresses])
    assert set(caught.value.fields) == {"smtp_host"}
    assert caught.value.fields["smtp_host"].startswith(problem.removesuffix(", which"))
    assert caught.value.hint and "link-local" in caught.value.hint


def test_an_ordinary_host_passes() -> None:
    refuse_reserved_host("smtp.example.com", [ip("203.0.113.7"), ip("2001:db8::25")])
    refuse_reserved_host("127.0.0.1")


RULES = DestinationRules(
    hosts=(
        "smtp.example.com",
        "*.mail.example.org",
        "xn--r8jz45g.jp",
        ipaddress.ip_network("10.0.0.0/8"),
    ),
    ports=(25, 587),
)


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("smtp.example.com", ["203.0.113.7"]),
        ("SMTP.Example.com.", ["203.0.113.7"]),
        ("relay.mail.example.org", ["203.0.113.8"]),
        ("例え.jp", ["203.0.113.9"]),
        ("relay.internal", ["10.1.2.3", "10.9.9.9"]),
        ("10.0.0.25", ["10.0.0.25"]),
    ],
)
def test_allowed_hosts_by_name_or_by_every_address(host: str, addresses: list[str]) -> None:
    RULES.refuse_host(host, [ip(a) for a in addresses])


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("smtp.example.net", ["203.0.113.7"]),
        ("mail.example.org", ["203.0.113.8"]),  # the wildcard is for names below it
        ("evilsmtp.example.com", ["203.0.113.7"]),
        ("relay.internal", ["10.1.2.3", "192.168.0.1"]),  # one address outside
        ("127.0.0.1", ["127.0.0.1"]),
    ],
)
def test_other_hosts_are_refused_naming_the_setting(host: str, addresses: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        RULES.refuse_host(host, [ip(a) for a in addresses])
    assert set(caught.value.fields) == {"smtp_host"}
    assert caught.value.hint and "POSTDESK_TEST_MAIL_ALLOWED_HOSTS" in caught.value.hint


def test_ports() -> None:
    assert RULES.allows_port(587) and not RULES.allows_port(22)
    assert DestinationRules(ports=None).allows_port(22)
    assert DestinationRules().allows_port(2525) and not DestinationRules().allows_port(8080)
    refused = RULES.port_refused(22)
    assert refused.fields == {"port": "port 22 is not a port test mails may use"}
    assert refused.hint and "25, 587 (POSTDESK_TEST_MAIL_ALLOWED_PORTS)" in refused.hint


def test_any_host_when_no_list_is_set() -> None:
    DestinationRules(hosts=None).refuse_host("anything.example", [ip("198.51.100.1")])
