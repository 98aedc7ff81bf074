"""SQLAlchemy models: the tables postdesk keeps. The schema itself comes from the migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from postdesk.domain.status import MessageStatus, RecordKind

# Ids are INTEGER columns: 32-bit on PostgreSQL, 64-bit on SQLite. A larger one names no row.
MAX_ROW_ID = 2**31 - 1

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class Sender(Base):
    """An SMTP account postdesk may send from. The password is stored encrypted."""

    __tablename__ = "senders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    smtp_host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    encryption: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(320))
    # Lower-cased address: uniqueness is case-insensitive on every database.
    address_key: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    username: Mapped[str | None] = mapped_column(String(320))
    password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    ca_cert_pem: Mapped[str | None] = mapped_column(Text)
    timeout_s: Mapped[float] = mapped_column(Float, default=30.0)
    max_per_minute: Mapped[int | None] = mapped_column(Integer)
    preset: Mapped[str | None] = mapped_column(String(32))
    # An authentication failure holds the sender's queue (instead of burning every
    # message's retries) until the sender is edited, a test mail passes, or held_until.
    held_until: Mapped[datetime | None] = mapped_column()
    hold_code: Mapped[str | None] = mapped_column(String(64))
    hold_message: Mapped[str | None] = mapped_column(Text)
    # Logins the server refused for now, in a row: each such hold lasts longer.
    login_throttles: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Once a hold ends, one worker tries one mail (the probe) and no other claims the
    # sender's mail until it is done or this time has passed.
    probe_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MailSettings(Base):
    """The single row of mail settings: which sender is the system default."""

    __tablename__ = "mail_settings"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    # SET NULL: deleting the default sender leaves no default (never another one).
    default_sender_id: Mapped[int | None] = mapped_column(
        ForeignKey("senders.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Admin(Base):
    """An administrator; the password is an Argon2 hash."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """An API token (scope ``admin`` or ``send``); only its SHA-256 hash is kept."""

    __tablename__ = "api_tokens"
    # Ids are never reused (SQLite would reuse the highest after a delete): idempotency
    # keys are scoped by token id, and a new token must not inherit a deleted one's.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (declarative config)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(8))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()


class AdminSession(Base):
    """A web login: the cookie's SHA-256 hash, its CSRF token and its expiry."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class Message(Base):
    """One mail and its sending record (kinds: message, test, verification_code).

    The sender's address and display name are copied so the record outlives the sender.
    """

    __tablename__ = "messages"
    __table_args__ = (
        # The worker's claim query: due messages of a status, oldest due first.
        Index("ix_messages_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24), default=RecordKind.MESSAGE)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.QUEUED, index=True)
    sender_id: Mapped[int | None] = mapped_column(
        ForeignKey("senders.id", ondelete="SET NULL"), index=True
    )
    sender_address: Mapped[str] = mapped_column(String(320))
    sender_name: Mapped[str] = mapped_column(String(200))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(String(500), default="")
    template_name: Mapped[str] = mapped_column(String(255), default="")
    resources: Mapped[list[str]] = mapped_column(JSON, default=list)
    message_id: Mapped[str | None] = mapped_column(String(255))
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL"), index=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    to_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    bcc_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Lower-cased recipients, one per line: what the "Receive Email" filter searches.
    recipients_search: Mapped[str] = mapped_column(Text, default="")
    # Per-recipient outcome when only some recipients were refused: address -> reply.
    recipient_results: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    # A claimed message belongs to lease_owner until lease_until; then anyone may retry it.
    lease_until: Mapped[datetime | None] = mapped_column()
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_hint: Mapped[str | None] = mapped_column(Text)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column()


class Attachment(Base):
    """A file carried by a message, stored base64-encoded as it goes on the wire."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    content_id: Mapped[str | None] = mapped_column(String(255))  # inline images (cid:)
    size: Mapped[int] = mapped_column(Integer)  # decoded bytes
    encoded: Mapped[bytes] = mapped_column(LargeBinary)


class Attempt(Base):
    """One SMTP attempt of a message and how it ended."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(16))  # an AttemptOutcome
    error_code: Mapped[str | None] = mapped_column(String(64))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    reply: Mapped[str | None] = mapped_column(Text)  # the server's words


class VerificationCode(Base):
    """A one-time code mailed to an address; only its hash is kept."""

    __tablename__ = "verification_codes"
    __table_args__ = (
        Index("ix_verification_codes_email_key_created_at", "email_key", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_key: Mapped[str] = mapped_column(String(320))
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    failed_guesses: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column()
    # Indexed: purging a record nulls its codes' reference, which must not scan the table.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )


class KeyCheck(Base):
    """A value encrypted under the secret key, so a wrong key is caught at start."""

    __tablename__ = "key_check"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    token: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
