"""Sending records: how a message's status reads as a result, and what the filters search."""

from __future__ import annotations

from collections.abc import Iterable

MESSAGE_STATUSES = ("queued", "sending", "retrying", "sent", "failed")
FINAL_STATUSES = frozenset({"sent", "failed"})
RESULTS = ("success", "failure", "pending")
KINDS = ("message", "test", "verification_code")

_RESULT_OF_STATUS = {"sent": "success", "failed": "failure"}
STATUSES_OF_RESULT = {
    "success": ("sent",),
    "failure": ("failed",),
    "pending": ("queued", "sending", "retrying"),
}


def result_of(status: str) -> str:
    """``success``, ``failure`` or ``pending`` (not finished yet)."""
    return _RESULT_OF_STATUS.get(status, "pending")


def recipients_search_text(addresses: Iterable[str]) -> str:
    """The lower-cased recipients, one per line: what the "Receive Email" filter searches."""
    return "\n".join(address.lower() for address in addresses)
