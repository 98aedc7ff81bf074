"""Mail addresses and header values: strict parsing, never ``email.utils.parseaddr``.

Python 3.11's ``parseaddr`` misreads strings such as
``alice@example.org)<bob@example.com>`` (CVE-2023-27043), so every address is
checked as a bare RFC 5322 addr-spec by ``email-validator`` instead.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import email_validator
from email_validator import EmailNotValidError, validate_email

# Internal Exchange and Active Directory domains often end in ".local"; an
# on-premises sender such as reports@corp.local must stay valid. The library
# documents this list as the place to adjust which special-use names it refuses.
if "local" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
    email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("local")


class AddressError(ValueError):
    """The text is not a usable mail address or header value; ``str()`` says why."""


@dataclass(frozen=True)
class MailAddress:
    """A validated addr-spec.

    ``address`` is the normalised form shown to people (Unicode domain);
    ``envelope`` is what goes into MAIL FROM / RCPT TO (IDNA domain, so only a
    non-ASCII local part needs SMTPUTF8).
    """

    address: str
    envelope: str
    local_part: str
    domain: str
    needs_smtputf8: bool

    def __str__(self) -> str:
        return self.address


def check_header_value(value: str) -> str:
    """Refuse CR, LF and other control characters: they would forge headers."""
    if "\r" in value or "\n" in value:
        raise AddressError("must not contain line breaks")
    for char in value:
        if unicodedata.category(char) == "Cc" or char in "\u2028\u2029":
            raise AddressError(f"must not contain control characters ({ord(char):#06x})")
    return value


def parse_address(text: str) -> MailAddress:
    """Validate one addr-spec such as ``bi#reports&ops@example.com``."""
    check_header_value(text)
    candidate = text.strip()
    if not candidate:
        raise AddressError("is required")
    try:
        valid = validate_email(
            candidate,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            globally_deliverable=False,
        )
    except EmailNotValidError as exc:
        raise AddressError(f"is not a valid mail address ({exc})") from None
    envelope = f"{valid.local_part}@{valid.ascii_domain}"
    return MailAddress(
        address=valid.normalized,
        envelope=envelope,
        local_part=valid.local_part,
        domain=valid.domain,
        needs_smtputf8=not valid.local_part.isascii(),
    )


@lru_cache(maxsize=4096)
def parse_known_address(text: str) -> MailAddress:
    """``parse_address``, remembered: email-validator is slow, and the same addresses recur
    (within a batch, across a queue)."""
    return parse_address(text)
