"""Request bodies of the REST API, for validation of shapes and for the OpenAPI document.

Field rules (addresses, ports, limits) are checked by the services, so the answer for a
bad value is the same from the API, the CLI and the web UI.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import Convertor, register_url_convertor

from postdesk.storage.models import MAX_ROW_ID

# A row's id, in a body or in a path: beyond the id columns' range it is a 422 naming the
# field, before any query (SQLite and PostgreSQL would each fail in their own way).
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


class RowIdSegment(Convertor[str]):
    """A path segment that may name a row: digits, perhaps signed, checked by ``PathId``.
    Any other segment is another path, so ``PATCH /senders/test`` is a 405 naming the
    methods of ``/senders/test``, not a 422 about a sender id."""

    regex = "-?[0-9]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("row_id", RowIdSegment())


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(Body):
    username: str
    password: str


class SenderBody(Body):
    smtp_host: str | None = None
    port: int | None = None
    encryption: str | None = Field(default=None, description="ssl, tls (STARTTLS) or none")
    address: str | None = None
    display_name: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, description="write-only; never returned")
    ca_cert_pem: str | None = None
    timeout_s: float | None = None
    max_per_minute: int | None = None
    preset: str | None = Field(default=None, description="a provider key from GET /providers")


class SenderPatchBody(SenderBody):
    clear_password: bool = False


class SenderTestBody(Body):
    to: str
    sender_id: RowId | None = None
    sender: SenderPatchBody | None = None


class SavedSenderTestBody(Body):
    to: str


class MailSettingsBody(Body):
    default_sender_id: RowId | None


class TokenBody(Body):
    name: str
    scope: str = Field(description="admin or send")


class AttachmentBody(Body):
    filename: str
    content_type: str = "application/octet-stream"
    content_base64: str
    content_id: str | None = Field(default=None, description="for inline images: cid:<id>")


class MessageBody(Body):
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    subject: str
    html: str | None = None
    text: str | None = None
    sender_id: RowId | None = None
    template_name: str | None = None
    resources: list[str] = Field(default_factory=list)
    attachments: list[AttachmentBody] = Field(default_factory=list)
    idempotency_key: str | None = None
    client_ip: str | None = Field(
        default=None, description="the end user's IP when acting for one (else the peer's)"
    )


class BatchBody(Body):
    messages: list[MessageBody] = Field(min_length=1, max_length=1000)


class VerificationRequestBody(Body):
    email: str


class VerificationCheckBody(Body):
    email: str
    code: str
