"""The answers of the REST API as the OpenAPI document states them: every body's shape,
the SPEC's error shape, and which error statuses each operation may answer.

These models document; they do not filter. The routes return their views' dicts, and
the property tests check that every answer matches what is written here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from postdesk.domain.encryption import Encryption
from postdesk.domain.status import AttemptOutcome, RecordKind
from postdesk.domain.status import MessageStatus as Status
from postdesk.services.access.callers import Scope

Result = Literal["success", "failure", "pending"]


class ErrorDetail(BaseModel):
    code: str = Field(description="a stable code: validation_error, not_found, smtp_auth_failed…")
    message: str
    hint: str | None = Field(default=None, description="what to change")
    fields: dict[str, str] | None = Field(
        default=None, description="validation errors: each bad field and what is wrong with it"
    )
    smtp_code: int | None = Field(default=None, description="the SMTP server's reply code")


class ErrorAnswer(BaseModel):
    """Every error: ``{"error": {code, message, hint?, fields?, smtp_code?}}``."""

    error: ErrorDetail


# What each error status means anywhere in the API; an operation lists those it can answer.
ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "unauthorized: no session or API token, an unknown or revoked token, or wrong "
    "credentials",
    403: "forbidden: an administrator is needed (a send token cannot do this), or a "
    "session's state change lacks its X-CSRF-Token header",
    404: "not_found: nothing has this id (or it belongs to another send token)",
    409: "sender_exists, or mail_service_unconfigured when no default sender is set",
    413: "payload_too_large: the body is over 40 MiB, or the attachments over their limit",
    422: "validation_error: `fields` names every bad field",
    429: "too_frequent: try again after Retry-After seconds",
    502: "the test mail failed: the SMTP diagnosis (smtp_* code, the server's words, a hint)",
    503: "unavailable: the database cannot take the request now; try again after Retry-After",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the error ``statuses`` an operation may answer."""
    return {
        status: {"model": ErrorAnswer, "description": ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


def answers(status: int, model: Any, *error_statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for an operation: its success ``status`` with the body ``model``
    (``None`` for no body) and the error statuses it may answer."""
    success: dict[str, Any] = {"description": "Successful Response"}
    if model is not None:
        success["model"] = model
    return {status: success, **errors(*error_statuses)}


# Every operation that needs a caller: no caller, the wrong caller, storage down.
CALLER_ERRORS = errors(401, 403, 503)


class LoginAnswer(BaseModel):
    csrf_token: str = Field(description="send it as X-CSRF-Token with every state change")


class Sender(BaseModel):
    id: int
    smtp_host: str
    port: int
    encryption: Encryption
    address: str
    username: str | None
    display_name: str
    has_password: bool
    has_ca_cert: bool
    timeout_s: float
    max_per_minute: int | None
    is_default: bool
    created_at: datetime
    updated_at: datetime


class TestMailSent(BaseModel):
    ok: Literal[True]
    message_id: str = Field(description="the test mail's Message-ID header")
    record_id: int


class MailSettings(BaseModel):
    default_sender_id: int | None
    configured: bool


class Provider(BaseModel):
    key: str
    name: str
    smtp_host: str
    port: int
    encryption: Encryption
    authorization_code: bool
    help: str


class Token(BaseModel):
    id: int
    name: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None


class NewToken(BaseModel):
    id: int
    name: str
    scope: Scope
    token: str = Field(description="shown only in this answer")


class Accepted(BaseModel):
    id: int
    status: str


class BatchAccepted(BaseModel):
    ids: list[int]


class MessageStatus(BaseModel):
    id: int
    status: Status
    attempts: int
    error: ErrorDetail | None
    created_at: datetime
    sent_at: datetime | None


class CodeSent(BaseModel):
    expires_in: int = Field(description="seconds the code stays valid")


class CodeChecked(BaseModel):
    valid: bool


class Record(BaseModel):
    id: int
    kind: RecordKind
    sender: str
    sender_name: str
    ip: str | None
    recipients: list[str]
    subject: str
    template_name: str
    resources: list[str]
    created_at: datetime
    sent_at: datetime | None
    result: Result
    error: ErrorDetail | None
    attempts: int


class RecordPage(BaseModel):
    items: list[Record]
    next_cursor: str | None


class Attempt(BaseModel):
    number: int
    started_at: datetime
    ended_at: datetime
    outcome: AttemptOutcome
    error_code: str | None
    smtp_code: int | None
    reply: str | None


class RecordDetail(Record):
    message_id: str | None = Field(description="the mail's Message-ID header")
    status: Status
    attempt_history: list[Attempt]


CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The records as CSV, one row each, with a header row",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
