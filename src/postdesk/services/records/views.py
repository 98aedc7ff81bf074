"""How a sending record is shown: the views of a record and its attempts, and a page of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Row

from postdesk.domain.recipients import RecipientResult, outcome_dicts
from postdesk.domain.records import refusals_of, result_of
from postdesk.errors import error_body


@dataclass(frozen=True)
class RecordView:
    """One sending record as the API, the CSV export and the CLI show it."""

    id: int
    kind: str
    status: str
    sender: str
    sender_name: str
    ip: str | None
    recipients: list[str]
    subject: str
    template_name: str
    resources: list[str]
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    error_code: str | None = None
    error_message: str | None = None
    error_hint: str | None = None
    smtp_code: int | None = None
    refused_count: int = 0  # recipients refused while the others got the mail

    @property
    def result(self) -> str:
        return result_of(self.status)

    @property
    def error(self) -> dict[str, Any] | None:
        """``{code, message, hint, smtp_code}`` for a failure, and for a pending mail whose
        last attempt failed (why it still waits); else ``None``."""
        if self.result == "success" or (self.result == "pending" and not self.error_code):
            return None
        return error_body(
            self.error_code or "",
            self.error_message or "",
            self.error_hint,
            smtp_code=self.smtp_code,
            complete=True,
        )

    def to_dict(self) -> dict[str, Any]:
        """The SPEC's record: times in ISO 8601, UTC."""
        return {
            "id": self.id,
            "kind": self.kind,
            "sender": self.sender,
            "sender_name": self.sender_name,
            "ip": self.ip,
            "recipients": list(self.recipients),
            "subject": self.subject,
            "template_name": self.template_name,
            "resources": list(self.resources),
            "created_at": iso_utc(self.created_at),
            "sent_at": iso_utc(self.sent_at),
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
        }


@dataclass(frozen=True)
class AttemptView:
    """One SMTP attempt of a record and how it ended."""

    number: int
    started_at: datetime
    ended_at: datetime
    outcome: str
    error_code: str | None
    smtp_code: int | None
    reply: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(self.ended_at),
            "outcome": self.outcome,
            "error_code": self.error_code,
            "smtp_code": self.smtp_code,
            "reply": self.reply,
        }


@dataclass(frozen=True)
class RecordDetail:
    """A record with its Message-ID, status and attempt history (``GET /records/{id}``)."""

    record: RecordView
    message_id: str | None
    attempt_history: list[AttemptView] = field(default_factory=list)
    # Recipients the server refused for good: address -> reply.
    refused_recipients: dict[str, Any] = field(default_factory=dict)
    # Every recipient and its outcome, in the record's order.
    recipient_results: list[tuple[str, RecipientResult]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.record.status

    def to_dict(self) -> dict[str, Any]:
        data = self.record.to_dict()
        data["message_id"] = self.message_id
        data["status"] = self.record.status
        data["attempt_history"] = [a.to_dict() for a in self.attempt_history]
        data["refused_recipients"] = self.refused_recipients
        data["recipient_results"] = outcome_dicts(self.recipient_results)
        return data


@dataclass(frozen=True)
class RecordPage:
    """One page of records, newest first; ``next_cursor`` is ``None`` on the last page."""

    items: list[RecordView]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [r.to_dict() for r in self.items], "next_cursor": self.next_cursor}


def iso_utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def record_view(row: Row[Any]) -> RecordView:
    """A row of postdesk.storage.records.RECORD_COLUMNS as a record."""
    return RecordView(
        id=row.id,
        kind=row.kind,
        status=row.status,
        sender=row.sender_address,
        sender_name=row.sender_name,
        ip=row.client_ip,
        recipients=list(row.recipients or []),
        subject=row.subject,
        template_name=row.template_name,
        resources=list(row.resources or []),
        created_at=row.created_at,
        sent_at=row.sent_at,
        attempts=row.attempts,
        error_code=row.error_code,
        error_message=row.error_message,
        error_hint=row.error_hint,
        smtp_code=row.smtp_code,
        refused_count=len(refusals_of(row.recipient_results)),
    )
