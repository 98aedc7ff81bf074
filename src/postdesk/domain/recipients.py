"""What became of each recipient of a message, and how a record keeps it.

A recipient is ``delivered`` once a server took the message for it, ``refused`` when the
server refused it for good (a 5xx reply at RCPT; 552 there means 452, "too many
recipients"), ``pending`` while it waits for a later attempt (refused for now, or its
attempt failed), and ``failed`` when the retries ran out before it got the message. Only
pending recipients are sent to again, so nobody gets two copies.

A record keeps them in one JSON column, address -> ``{status, smtp_code, reply}``; an
entry without a status, as older records have them, is a refusal.

Pure code (stdlib only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class RecipientStatus(StrEnum):
    DELIVERED = "delivered"
    REFUSED = "refused"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True)
class RecipientResult:
    """One recipient's outcome and the server's reply that decided it, when there was one."""

    status: RecipientStatus
    smtp_code: int | None = None
    reply: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "smtp_code": self.smtp_code, "reply": self.reply}


Results = dict[str, RecipientResult]


def outcome_dicts(outcomes: Iterable[tuple[str, RecipientResult]]) -> list[dict[str, Any]]:
    """Recipients and their outcomes as the API shows them: ``{address, status,
    smtp_code, reply}`` each."""
    return [{"address": address, **result.to_dict()} for address, result in outcomes]


@dataclass(frozen=True)
class Tally:
    """How many recipients got the message, were refused for good, wait for an attempt."""

    delivered: int
    refused: int
    pending: int

    @property
    def total(self) -> int:
        return self.delivered + self.refused + self.pending


def tally(results: Mapping[str, RecipientResult]) -> Tally:
    statuses = [result.status for result in results.values()]
    return Tally(
        delivered=statuses.count(RecipientStatus.DELIVERED),
        refused=statuses.count(RecipientStatus.REFUSED),
        pending=statuses.count(RecipientStatus.PENDING),
    )


def load_results(stored: Mapping[str, Any] | None) -> Results:
    """The record's column read back (see the module's docstring)."""
    return {address: _result(entry) for address, entry in (stored or {}).items()}


def _result(entry: Any) -> RecipientResult:
    if not isinstance(entry, Mapping):
        return RecipientResult(RecipientStatus.REFUSED, None, str(entry))
    try:
        status = RecipientStatus(entry.get("status", RecipientStatus.REFUSED))
    except ValueError:
        status = RecipientStatus.REFUSED
    code = entry.get("smtp_code")
    reply = entry.get("reply")
    return RecipientResult(
        status, code if isinstance(code, int) else None, None if reply is None else str(reply)
    )


def dump_results(results: Mapping[str, RecipientResult]) -> dict[str, Any] | None:
    """The column's value: ``None`` when no recipient has a result yet."""
    return {address: result.to_dict() for address, result in results.items()} or None


def to_send(addresses: Iterable[str], results: Mapping[str, RecipientResult]) -> list[str]:
    """The addresses still to be sent to: neither delivered nor refused for good."""
    done = (RecipientStatus.DELIVERED, RecipientStatus.REFUSED)
    return [a for a in addresses if a not in results or results[a].status not in done]


def given_up(results: Mapping[str, RecipientResult]) -> Results:
    """``results`` once the message is final: whoever still waited has ``failed``."""
    return {
        address: RecipientResult(RecipientStatus.FAILED, result.smtp_code, result.reply)
        if result.status is RecipientStatus.PENDING
        else result
        for address, result in results.items()
    }
