"""Sending records: a status read as a result, the filter, what it searches, a record's key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from postdesk.domain.recipients import RecipientResult, RecipientStatus, load_results
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


# What a recipient the record keeps no result for has come to: its message's outcome.
_RECIPIENT_STATUS_OF_STATUS: dict[str, RecipientStatus] = {
    MessageStatus.SENT: RecipientStatus.DELIVERED,
    MessageStatus.FAILED: RecipientStatus.FAILED,
}


def recipient_outcomes(
    recipients: Sequence[str], stored: Mapping[str, Any] | None, status: str
) -> list[tuple[str, RecipientResult]]:
    """Each recipient of a record and its outcome, in the record's order.

    ``stored`` is the record's column of per-recipient results; a recipient without one
    (every recipient of a mail sent or failed as a whole) has the message's outcome:
    delivered once sent, failed once failed, else pending.
    """
    results = load_results(stored)
    unrecorded = RecipientResult(_RECIPIENT_STATUS_OF_STATUS.get(status, RecipientStatus.PENDING))
    addresses = dict.fromkeys([*recipients, *results])
    return [(address, results.get(address, unrecorded)) for address in addresses]


def refusals_of(stored: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The recipients refused for good: address -> ``{smtp_code, reply}``."""
    return {
        address: {"smtp_code": result.smtp_code, "reply": result.reply}
        for address, result in load_results(stored).items()
        if result.status is RecipientStatus.REFUSED
    }


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
