"""Sending records: a status read as a result, the filter, what it searches, a record's key."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from postdesk.domain.status import PENDING, MessageStatus

RESULTS = ("success", "failure", "pending")

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


# The filters of a records request, by the names of its query parameters.
FILTER_KEYS = ("sender", "recipient", "template", "since", "until", "result")
# A record's place in the listing (newest first): its creation time and id.
RecordKey = tuple[datetime, int]


@dataclass(frozen=True)
class RecordFilter:
    """What to look for; ``None`` leaves a filter out. Build it with parse_record_filter."""

    sender: str | None = None
    recipient: str | None = None
    template: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    result: str | None = None
