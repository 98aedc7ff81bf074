"""The sending pipeline: queue columns on messages, attachments, attempts, API tokens,
web sessions, verification codes, and the hold of a sender after an authentication failure.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("senders") as batch:
        batch.add_column(sa.Column("held_until", _utc(), nullable=True))
        batch.add_column(sa.Column("hold_code", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("hold_message", sa.Text(), nullable=True))

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("last_used_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["admins.id"],
            name=op.f("fk_admin_sessions_admin_id_admins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_admin_sessions_token_hash")),
    )
    op.create_index(
        op.f("ix_admin_sessions_admin_id"), "admin_sessions", ["admin_id"], unique=False
    )

    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("to_addrs", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("cc_addrs", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("bcc_addrs", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("recipients_search", sa.Text(), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("recipient_results", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("html", sa.Text(), nullable=True))
        batch.add_column(sa.Column("text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", _utc(), nullable=True))
        batch.add_column(sa.Column("lease_until", _utc(), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch.create_foreign_key(
            op.f("fk_messages_token_id_api_tokens"),
            "api_tokens",
            ["token_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_unique_constraint(op.f("uq_messages_idempotency_key"), ["idempotency_key"])
    # The defaults above only fill existing rows; the application always sets these.
    with op.batch_alter_table("messages") as batch:
        for column in ("to_addrs", "cc_addrs", "bcc_addrs", "recipients_search"):
            batch.alter_column(column, server_default=None)
    op.create_index(op.f("ix_messages_token_id"), "messages", ["token_id"], unique=False)
    op.create_index(op.f("ix_messages_sender_id"), "messages", ["sender_id"], unique=False)
    op.create_index(
        "ix_messages_status_next_attempt_at",
        "messages",
        ["status", "next_attempt_at"],
        unique=False,
    )

    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("content_id", sa.String(length=255), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("encoded", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_attachments_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index(op.f("ix_attachments_message_id"), "attachments", ["message_id"], unique=False)
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("smtp_code", sa.Integer(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_attempts_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
    )
    op.create_index(op.f("ix_attempts_message_id"), "attempts", ["message_id"], unique=False)
    op.create_table(
        "verification_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("code_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("failed_guesses", sa.Integer(), nullable=False),
        sa.Column("used_at", _utc(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_verification_codes_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_codes")),
    )
    op.create_index(
        "ix_verification_codes_email_key_created_at",
        "verification_codes",
        ["email_key", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_verification_codes_email_key_created_at", table_name="verification_codes")
    op.drop_table("verification_codes")
    op.drop_index(op.f("ix_attempts_message_id"), table_name="attempts")
    op.drop_table("attempts")
    op.drop_index(op.f("ix_attachments_message_id"), table_name="attachments")
    op.drop_table("attachments")
    op.drop_index("ix_messages_status_next_attempt_at", table_name="messages")
    op.drop_index(op.f("ix_messages_sender_id"), table_name="messages")
    op.drop_index(op.f("ix_messages_token_id"), table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint(op.f("uq_messages_idempotency_key"), type_="unique")
        batch.drop_constraint(op.f("fk_messages_token_id_api_tokens"), type_="foreignkey")
        for column in (
            "lease_owner", "lease_until", "next_attempt_at", "text", "html",
            "recipient_results", "recipients_search", "bcc_addrs", "cc_addrs", "to_addrs",
            "idempotency_key", "token_id",
        ):  # fmt: skip
            batch.drop_column(column)
    op.drop_index(op.f("ix_admin_sessions_admin_id"), table_name="admin_sessions")
    op.drop_table("admin_sessions")
    op.drop_table("api_tokens")
    with op.batch_alter_table("senders") as batch:
        batch.drop_column("hold_message")
        batch.drop_column("hold_code")
        batch.drop_column("held_until")
