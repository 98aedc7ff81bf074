"""Sending records: how a message's status reads as a result, and what the filters search."""

from __future__ import annotations

from collections.abc import Iterable

from postdesk.domain.status import PENDING, MessageStatus

RESULTS = ("success", "failure", "pending")
KINDS = ("message", "test", "verification_code")

_RESULT_OF_STATUS: dict[str, str] = {MessageStatus.SENT: "success", MessageStatus.FAILED: "failure"}
STATUSES_OF_RESULT = {
    "success": (MessageStatus.SENT,),
    "failure": (MessageStatus.FAILED,),
    "pending": PENDING,
}


def result_of(status: str) -> str:
    """``success``, ``failure`` or ``pending`` (not finished yet)."""
    return _RESULT_OF_STATUS.get(status, "pending")


def recipients_search_text(addresses: Iterable[str]) -> str:
    """The lower-cased recipients, one per line: what the "Receive Email" filter searches."""
    return "\n".join(address.lower() for address in addresses)
