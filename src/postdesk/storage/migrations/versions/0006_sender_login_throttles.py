"""A sender whose server refuses logins for now is held for longer each time in a row
(``login_throttles``), and when a hold ends one worker at a time tries one of its mails
(``probe_until``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("senders") as batch:
        batch.add_column(
            sa.Column("login_throttles", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("probe_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("senders") as batch:
        batch.drop_column("probe_until")
        batch.drop_column("login_throttles")
