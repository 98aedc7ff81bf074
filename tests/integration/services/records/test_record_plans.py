"""Record search uses its indexes: the search structures exist, and EXPLAIN shows them used.

With tens of thousands of records each filter's queries are explained as the database
would run them (PostgreSQL after ANALYZE, SQLite with no statistics at all): no query
reads the messages table from end to end, and each filter's own index is among those
used. bench/bench_records.py measures the same at a million records.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, inspect, text

from postdesk.config import Settings
from postdesk.domain.records import recipients_search_text
from postdesk.errors import ConfigError
from postdesk.services.records.filters import parse_record_filter
from postdesk.services.records.lookup import search_records
from postdesk.services.runtime import Runtime, open_runtime
from postdesk.storage import record_search
from postdesk.storage.db import create_engine_for
from postdesk.storage.migrate import current_revision, downgrade_database, upgrade_database
from postdesk.storage.models import Message
from tests.support.database import PostgresServer

RECORDS = 30_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)
SEARCH_INDEXES = {
    "search_messages_created_at_id",
    "search_messages_sender",
    "search_messages_sender_status",
    "search_messages_status",
}
TRIGRAM_INDEXES = {"search_messages_recipients_trgm", "search_messages_template_trgm"}
SQLITE_TRIGGERS = {"search_messages_ai", "search_messages_ad", "search_messages_au"}


# ---------------------------------------------------------------- the structures


def _search_objects(engine: Engine) -> set[str]:
    if engine.dialect.name == "sqlite":
        query = text(
            "SELECT name FROM sqlite_master WHERE name LIKE :prefix AND type != 'table' "
            "UNION SELECT name FROM sqlite_master WHERE name = 'search_messages_fts'"
        )
    else:
        query = text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'messages' "
            "AND indexname LIKE :prefix"
        )
    with engine.connect() as connection:
        return set(connection.execute(query, {"prefix": "search%"}).scalars())


def _expected_objects(engine: Engine) -> set[str]:
    if engine.dialect.name == "sqlite":
        return SEARCH_INDEXES | SQLITE_TRIGGERS | {"search_messages_fts"}
    return SEARCH_INDEXES | TRIGRAM_INDEXES


def test_the_search_structures_exist_at_head(engine: Engine) -> None:
    assert _search_objects(engine) == _expected_objects(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            extensions = connection.exec_driver_sql("SELECT extname FROM pg_extension").scalars()
            assert "pg_trgm" in set(extensions)
            definitions = connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname LIKE :name"),
                {"name": "search_messages_sender%"},
            ).scalars()
            # The column itself rides along, so that PostgreSQL can scan the index alone.
            assert all("INCLUDE (sender_address)" in d for d in definitions)


@pytest.fixture
def blank_engine(blank_database_url: str) -> Iterator[Engine]:
    engine = create_engine_for(blank_database_url)
    yield engine
    engine.dispose()


def test_downgrade_removes_them_and_upgrade_indexes_existing_records(
    blank_engine: Engine,
) -> None:
    upgrade_database(blank_engine, "0002")
    with blank_engine.begin() as connection:
        connection.execute(insert(Message), [_row(random.Random(1), 0, "old@kept.example")])
    upgrade_database(blank_engine)
    assert _search_objects(blank_engine) == _expected_objects(blank_engine)
    downgrade_database(blank_engine, "0002")
    assert _search_objects(blank_engine) == set()
    assert not any(t.startswith("search") for t in inspect(blank_engine).get_table_names())
    upgrade_database(blank_engine)
    if blank_engine.dialect.name == "sqlite":
        # The FTS5 table was rebuilt from the records already there.
        with blank_engine.connect() as connection:
            found = connection.exec_driver_sql(
                "SELECT rowid FROM search_messages_fts WHERE search_messages_fts MATCH '\"kep\"'"
            ).all()
        assert len(found) == 1


@pytest.mark.parametrize("database_kind", ["sqlite"])
def test_an_sqlite_without_trigrams_is_a_clear_config_error(
    blank_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    with pytest.raises(ConfigError, match="3.34") as caught:
        upgrade_database(blank_engine)
    assert caught.value.hint
    assert current_revision(blank_engine) is None  # the whole upgrade rolled back


# ---------------------------------------------------------------- the plans


SENDERS = [f"team{n}@corp.example" for n in range(200)]
RECIPIENTS = [f"user{n}@dept{n % 30}.example.org" for n in range(2000)]
TEMPLATES = [f"{p} {a} Report" for p in ("Daily", "Weekly") for a in ("Sales", "Stock", "HR")]


def _row(rnd: random.Random, n: int, recipient: str | None = None) -> dict[str, Any]:
    to = [recipient] if recipient else rnd.sample(RECIPIENTS, rnd.randint(1, 2))
    roll = rnd.random()
    status = "sent" if roll < 0.97 else ("failed" if roll < 0.99 else "queued")
    created = T0 + timedelta(minutes=3 * n)
    return {
        "kind": "message",
        "status": status,
        "sender_address": rnd.choice(SENDERS),
        "sender_name": "Team",
        "recipients": to,
        "to_addrs": to,
        "cc_addrs": [],
        "bcc_addrs": [],
        "recipients_search": recipients_search_text(to),
        "subject": "Report",
        "template_name": "Quarterly Audit" if recipient else rnd.choice(TEMPLATES),
        "resources": [],
        "attempts": 1,
        "created_at": created,
        "sent_at": created if status != "queued" else None,
    }


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def many(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """A database of RECORDS records, shared by this module's plan tests (read only).

    Three old records carry a rare recipient and template; PostgreSQL is analysed, as
    autovacuum would soon do, SQLite keeps no statistics.
    """
    home = tmp_path_factory.mktemp("plans")
    drop: Callable[[], None] = lambda: None  # noqa: E731
    url = f"sqlite:///{home / 'postdesk.db'}"
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = server.create_database()
        url = server.url_for(name)
        drop = partial(server.drop_database, name)
    rt = open_runtime(Settings(home=home, database_url=url))
    try:
        rnd = random.Random(7)
        rare = {5: "needle@rare.example", 50: "needle@rare.example", 500: "needle@rare.example"}
        rows = [_row(rnd, n, rare.get(n)) for n in range(RECORDS)]
        with rt.transaction() as session:
            session.execute(insert(Message), rows)
        if request.param == "postgresql":
            with rt.engine.connect() as connection:
                autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
                autocommit.exec_driver_sql("VACUUM ANALYZE messages")
        yield rt
    finally:
        rt.close()
        drop()


def _plans(rt: Runtime, **filters: str) -> list[str]:
    """The plans of every query one search runs, as text."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    event.listen(rt.engine, "before_cursor_execute", capture)
    try:
        search_records(rt, parse_record_filter(filters), limit=50)
    finally:
        event.remove(rt.engine, "before_cursor_execute", capture)
    plans = []
    with rt.engine.connect() as connection:
        if rt.engine.dialect.name == "postgresql":
            # Explained as planned in the search's transaction, with its planner settings.
            connection.execute(record_search._POSTGRES_SEARCH_SETTINGS)
        for statement, params in statements:
            if rt.engine.dialect.name == "sqlite":
                rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                plans.append("\n".join(str(row[3]) for row in rows))
            else:
                rows = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params)
                plans.append(json.dumps(rows.scalar()))
    return plans


def _reads_whole_table(plan: str, sqlite: bool) -> bool:
    if sqlite:
        return any(
            line.startswith("SCAN messages") and "INDEX" not in line for line in plan.splitlines()
        )
    return '"Node Type": "Seq Scan"' in plan


WEEK = {"since": "2025-01-20", "until": "2025-01-26"}
CASES: dict[str, tuple[dict[str, str], set[str]]] = {
    # filter -> (parameters, indexes of which one must be used)
    "no filter": ({}, {"search_messages_created_at_id", "ix_messages_created_at"}),
    "sender": ({"sender": "TEAM3@corp.example"}, {"search_messages_sender"}),
    "since/until": (WEEK, {"search_messages_created_at_id", "ix_messages_created_at"}),
    "result": ({"result": "failure"}, {"search_messages_status"}),
    "sender and result": (
        {"sender": "team3@corp.example", "result": "failure"},
        {"search_messages_sender_status"},
    ),
    "recipient (rare)": (
        {"recipient": "NEEDLE@rare"},
        {"search_messages_fts", "search_messages_recipients_trgm"},
    ),
    "template (rare)": (
        {"template": "quarterly aud"},
        {"search_messages_fts", "search_messages_template_trgm"},
    ),
    "recipient (common)": (
        {"recipient": "example.org"},
        {"search_messages_created_at_id", "ix_messages_created_at"},
    ),
    "combined": (
        {"sender": "team3@corp.example", "recipient": "user1", "template": "sales", **WEEK},
        {"search_messages_sender"},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_filter_uses_an_index(many: Runtime, case: str) -> None:
    filters, wanted = CASES[case]
    sqlite = many.engine.dialect.name == "sqlite"
    plans = _plans(many, **filters)
    assert plans
    for plan in plans:
        assert not _reads_whole_table(plan, sqlite), plan
    used = "\n".join(plans)
    if not sqlite:
        wanted = wanted - {"search_messages_fts"}
    assert any(name in used for name in wanted), used


def test_one_or_two_characters_never_ask_the_trigram_index(many: Runtime) -> None:
    # On PostgreSQL a LIKE of fewer than three characters reads the whole trigram index
    # (seconds at a million records): short substrings are scanned for in order instead.
    plans = "\n".join(_plans(many, recipient="zq", template="x"))
    assert "trgm" not in plans
    assert "search_messages_fts" not in plans
