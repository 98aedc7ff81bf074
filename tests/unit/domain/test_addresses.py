"""Addresses are parsed strictly as RFC 5322 addr-specs, never by parseaddr."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postdesk.domain.addresses import AddressError, check_header_value, parse_address


@pytest.mark.parametrize(
    "text",
    [
        "bi#reports&ops@example.com",
        "reports+daily@example.org",
        "o'brien@example.co.uk",
        "ops@corp.local",
    ],
)
def test_valid_addresses_are_accepted_unchanged(text: str) -> None:
    assert parse_address(text).address == text


@pytest.mark.parametrize(
    "text",
    [
        "alice@example.org)<bob@example.com>",  # CVE-2023-27043: parseaddr misreads this
        "Alice <alice@example.org>",
        "alice@example.org, bob@example.com",
        "alice",
        "@example.org",
        "alice@",
        "a@b@example.org",
        "alice@exa mple.org",
        "",
        "   ",
    ],
)
def test_malformed_addresses_are_rejected(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


def test_idn_domain_keeps_unicode_for_people_and_idna_for_the_envelope() -> None:
    address = parse_address("bob@münchen.de")
    assert address.address == "bob@münchen.de"
    assert address.envelope == "bob@xn--mnchen-3ya.de"
    assert not address.needs_smtputf8


def test_non_ascii_local_part_needs_smtputf8() -> None:
    address = parse_address("用户@例子.广告")
    assert address.needs_smtputf8
    assert address.envelope.startswith("用户@xn--")


@pytest.mark.parametrize(
    "text", ["a@example.org\r\nBcc: x@evil.test", "a@example.org\n", "a\x00@b.org"]
)
def test_line_breaks_and_controls_are_rejected(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


@given(st.text(alphabet=st.characters(categories=["Cc"]), min_size=1))
def test_any_control_character_is_rejected_in_header_values(controls: str) -> None:
    with pytest.raises(AddressError):
        check_header_value(f"Reports{controls}Team")


def test_ordinary_header_values_pass() -> None:
    assert check_header_value("报表 Reports & Alerts #1") == "报表 Reports & Alerts #1"
