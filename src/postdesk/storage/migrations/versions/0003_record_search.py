"""Record search: the indexes that keep every sending-record filter fast at a million records.

Every object created here is named ``search_…``; the models do not declare them (some
exist on one database only, some are expression indexes SQLite cannot reflect), and
``migrations/env.py`` leaves that prefix out of the model comparison. The records are
listed newest first, ``ORDER BY created_at DESC, id DESC``, so each filter is served by
an index that also yields that order, or by a text index that finds the few matches:

=========================  ===============================================================
filter                     index (both databases unless named)
=========================  ===============================================================
none, since / until        ``search_messages_created_at_id (created_at, id)``
sender (exact, any case)   ``search_messages_sender (lower(sender_address), created_at, id)``
result                     ``search_messages_status (status, created_at, id)``
sender and result          ``search_messages_sender_status (lower(sender_address), status,
                           created_at, id)``
recipient (substring)      PostgreSQL: GIN ``gin_trgm_ops`` on ``recipients_search``;
                           SQLite: FTS5 ``trigram`` table ``search_messages_fts``
template (substring)       PostgreSQL: GIN ``gin_trgm_ops`` on ``lower(template_name)``;
                           SQLite: the same FTS5 table
=========================  ===============================================================

Trigram indexes serve substrings of three or more characters; shorter ones are found by
scanning the records newest first (postdesk.storage.record_search says how).

SQLite: ``search_messages_fts`` is an external-content FTS5 table over
``messages.recipients_search`` and ``messages.template_name`` (rowid = ``messages.id``),
kept in step by the triggers ``search_messages_ai`` / ``_ad`` / ``_au``. It needs SQLite
3.34 or newer (the trigram tokenizer). A later migration that makes ``batch_alter_table``
copy ``messages`` (changing a column; adding one does not copy) loses those triggers
with the old table, and the two ``lower(sender_address)`` indexes too, which SQLite
cannot reflect: it must create them again (``create_sqlite_triggers`` below and the
``_BTREE`` entries). tests/integration/services/records/test_record_plans.py fails
if any is missing.

PostgreSQL: ``CREATE EXTENSION IF NOT EXISTS pg_trgm`` needs PostgreSQL 13 or newer (a
trusted extension the database owner may create) or a superuser. The downgrade drops
the indexes but leaves the extension: it may have been there before, for other users.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from postdesk.errors import ConfigError

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FTS_TABLE = "search_messages_fts"
FTS_COLUMNS = ("recipients_search", "template_name")
_MIN_SQLITE = (3, 34, 0)

# Indexes on both databases: (name, columns or SQL expressions), all ending created_at, id.
_BTREE: tuple[tuple[str, list[str | sa.TextClause]], ...] = (
    ("search_messages_created_at_id", ["created_at", "id"]),
    ("search_messages_sender", [sa.text("lower(sender_address)"), "created_at", "id"]),
    (
        "search_messages_sender_status",
        [sa.text("lower(sender_address)"), "status", "created_at", "id"],
    ),
    ("search_messages_status", ["status", "created_at", "id"]),
)
_TRIGRAM = (
    ("search_messages_recipients_trgm", "recipients_search"),
    ("search_messages_template_trgm", "lower(template_name)"),
)


def upgrade() -> None:
    for name, columns in _BTREE:
        # PostgreSQL reads an expression index alone (an index-only scan) only if the
        # column itself is in it too; SQLite ignores the option.
        include = ["sender_address"] if name.startswith("search_messages_sender") else []
        op.create_index(name, "messages", columns, unique=False, postgresql_include=include)
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, _ in _TRIGRAM:
            op.drop_index(name, table_name="messages")
    else:
        drop_sqlite_triggers()
        op.execute(f"DROP TABLE {FTS_TABLE}")
    for name, _ in reversed(_BTREE):
        op.drop_index(name, table_name="messages")


def _upgrade_postgresql() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expression in _TRIGRAM:
        op.execute(f"CREATE INDEX {name} ON messages USING gin ({expression} gin_trgm_ops)")


def _upgrade_sqlite() -> None:
    if sqlite3.sqlite_version_info < _MIN_SQLITE:
        raise ConfigError(
            f"postdesk needs SQLite 3.34 or newer for record search (the FTS5 trigram "
            f"tokenizer); this Python has SQLite {sqlite3.sqlite_version}",
            hint="Run postdesk on a Python built with a newer SQLite (python.org builds of "
            "3.11 have 3.39 or newer), or use PostgreSQL.",
        )
    columns = ", ".join(FTS_COLUMNS)
    # detail='none': no positions or columns, about a quarter of the size of detail='full';
    # single trigrams ("abc" AND "xyz") are all the search asks, and it checks each
    # candidate's text itself.
    op.execute(
        f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5({columns}, content='messages', "
        "content_rowid='id', tokenize='trigram', detail='none')"
    )
    op.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")  # noqa: S608
    create_sqlite_triggers()


def create_sqlite_triggers() -> None:
    """The triggers that keep ``search_messages_fts`` in step with ``messages``.

    (The SQL is built from this module's constant names only: S608 does not apply.)
    """
    columns = ", ".join(FTS_COLUMNS)
    new = ", ".join(f"new.{c}" for c in FTS_COLUMNS)
    old = ", ".join(f"old.{c}" for c in FTS_COLUMNS)
    insert = f"INSERT INTO {FTS_TABLE}(rowid, {columns}) VALUES (new.id, {new});"  # noqa: S608
    # An external-content FTS5 table forgets a row only when given the values it indexed.
    delete = (
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {columns}) "  # noqa: S608
        f"VALUES ('delete', old.id, {old});"
    )
    op.execute(f"CREATE TRIGGER search_messages_ai AFTER INSERT ON messages BEGIN {insert} END")
    op.execute(f"CREATE TRIGGER search_messages_ad AFTER DELETE ON messages BEGIN {delete} END")
    # Only when a searched column changes: the worker's status updates stay cheap.
    op.execute(
        f"CREATE TRIGGER search_messages_au AFTER UPDATE OF id, {columns} ON messages "
        f"BEGIN {delete} {insert} END"
    )


def drop_sqlite_triggers() -> None:
    for suffix in ("au", "ad", "ai"):
        op.execute(f"DROP TRIGGER IF EXISTS search_messages_{suffix}")
