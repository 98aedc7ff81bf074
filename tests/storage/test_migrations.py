"""The Alembic migrations: they build exactly the models' schema, both ways, on both databases."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from postdesk.errors import ConfigError
from postdesk.storage import migrate
from postdesk.storage.db import create_engine_for
from postdesk.storage.migrate import (
    MIGRATIONS,
    current_revision,
    downgrade_database,
    is_up_to_date,
    upgrade_database,
)
from postdesk.storage.models import Base

TABLES = set(Base.metadata.tables)
HEAD = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
# Record-search tables and indexes (revision 0003: FTS5, trigram and expression indexes) are
# not in the models; migrations/env.py leaves them out of the comparison by this same prefix.
# tests/integration/services/records/test_record_plans.py checks that they exist.
SEARCH_PREFIX = "search_"


# SQLite cannot reflect the expression index search_messages_sender and says so.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index search_"
)


def _not_search(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ in ("table", "index") and (name or "").startswith(SEARCH_PREFIX))


@pytest.fixture
def blank_engine(blank_database_url: str) -> Iterator[Engine]:
    engine = create_engine_for(blank_database_url)
    yield engine
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    return {name for name in names if not name.startswith(SEARCH_PREFIX)}


def test_upgrade_downgrade_upgrade(blank_engine: Engine) -> None:
    assert current_revision(blank_engine) is None
    assert not is_up_to_date(blank_engine)

    upgrade_database(blank_engine)
    assert current_revision(blank_engine) == HEAD
    assert is_up_to_date(blank_engine)
    assert _tables(blank_engine) == TABLES

    downgrade_database(blank_engine, "0001")
    assert current_revision(blank_engine) == "0001"
    assert _tables(blank_engine) == {"senders", "mail_settings", "admins", "messages", "key_check"}

    downgrade_database(blank_engine, "base")
    assert current_revision(blank_engine) is None
    assert _tables(blank_engine) == set()

    upgrade_database(blank_engine)
    assert is_up_to_date(blank_engine)
    assert _tables(blank_engine) == TABLES


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade_database(engine)
    assert is_up_to_date(engine)


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": _not_search}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_constraints_and_indexes_are_named_as_in_the_models(engine: Engine) -> None:
    inspector = inspect(engine)
    assert {u["name"] for u in inspector.get_unique_constraints("senders")} == {
        "uq_senders_address_key"
    }
    for name, table in Base.metadata.tables.items():
        # Some dialects list the index behind a unique constraint as an index too.
        unique = {u["name"] for u in inspector.get_unique_constraints(name)}
        indexes = {i["name"] for i in inspector.get_indexes(name)} - unique
        indexes = {i for i in indexes if not (i or "").startswith(SEARCH_PREFIX)}
        assert indexes == {i.name for i in table.indexes}, name
    for single in ("mail_settings", "key_check"):
        checks = inspector.get_check_constraints(single)
        assert [c["name"] for c in checks] == [f"ck_{single}_single_row"]
    for child, column in (("mail_settings", "default_sender_id"), ("messages", "sender_id")):
        (fk,) = [
            f for f in inspector.get_foreign_keys(child) if f["constrained_columns"] == [column]
        ]
        assert fk["referred_table"] == "senders"
        assert fk["options"].get("ondelete") == "SET NULL"


def test_failed_upgrade_changes_nothing(
    blank_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(connection: object) -> None:
        raise ConfigError("simulated failure at the end of the upgrade")

    # The last step before commit fails: every table created before it must be gone.
    monkeypatch.setattr(migrate, "_check_foreign_keys", fail)
    with pytest.raises(ConfigError, match="simulated"):
        upgrade_database(blank_engine)
    assert _tables(blank_engine) == set()
    assert current_revision(blank_engine) is None


def test_unknown_revision_is_a_config_error(blank_engine: Engine) -> None:
    upgrade_database(blank_engine)
    with blank_engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    with pytest.raises(ConfigError, match="cannot migrate the database"):
        upgrade_database(blank_engine)
    assert current_revision(blank_engine) == "f00d"


def test_migrations_leave_logging_alone(blank_engine: Engine) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("alembic").handlers[:])
    upgrade_database(blank_engine)
    after = (list(root.handlers), root.level, logging.getLogger("alembic").handlers[:])
    assert after == before


def test_migrations_ship_inside_the_package() -> None:
    assert MIGRATIONS.parent.name == "storage"
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert not (MIGRATIONS.parents[3] / "alembic.ini").exists()
