"""``postdesk records`` on both databases: table, JSON as the API, CSV as /records.csv.

Most tests call the command function in-process through Typer's CliRunner, on a small
app of its own; one runs it as a real process, ``python -m postdesk records``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from postdesk.cli import output
from postdesk.cli.errors import exit_code_for
from postdesk.cli.records import TABLE_COLUMNS, records
from postdesk.config import Settings
from postdesk.errors import PostdeskError, ValidationError
from postdesk.services.records.export import CSV_COLUMNS, iter_records_csv
from postdesk.services.records.filters import parse_record_filter
from postdesk.services.records.lookup import search_records
from postdesk.services.runtime import Runtime, open_runtime
from tests.integration.services.records.test_records import T0, add_record


@pytest.fixture
def home_rt(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A runtime on the test database, and the environment the command reads it from."""
    monkeypatch.setattr(output.stdout, "width", 300)  # a wide terminal: no folded cells
    monkeypatch.setenv("POSTDESK_HOME", str(settings.home))
    monkeypatch.setenv("POSTDESK_DATABASE_URL", settings.database_url)
    rt = open_runtime(settings)
    try:
        yield rt
    finally:
        rt.close()


def run(*args: str) -> tuple[int, str, str]:
    """``records`` with ``args`` in-process: exit code (as the root app maps it), out, err."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(records)
    done = CliRunner().invoke(app, list(args))
    out = done.stdout_bytes.decode("utf-8")  # .stdout would turn CRLF into LF
    if isinstance(done.exception, PostdeskError):
        return exit_code_for(done.exception), out, done.stderr
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception
    return done.exit_code, out, done.stderr


def _seed(rt: Runtime) -> list[int]:
    return [
        add_record(rt, created_at=T0 - timedelta(days=2), template_name="Weekly KPI"),
        add_record(
            rt,
            created_at=T0 - timedelta(days=1),
            status="failed",
            error_code="smtp_auth_failed",
            error_message="535 no",
            to=["Bob@Corp.example"],
            cc=["carol@corp.example"],
        ),
        add_record(rt, created_at=T0, status="queued", resources=["/r/a.pdf", "/r/b.xlsx"]),
    ]


def test_json_is_the_api_records(home_rt: Runtime) -> None:
    _seed(home_rt)
    code, out, _ = run("--format", "json", "--recipient", "CORP.example")
    assert code == 0
    expected = search_records(home_rt, parse_record_filter({"recipient": "corp.example"}))
    assert json.loads(out) == [r.to_dict() for r in expected.items]
    assert len(json.loads(out)) == 1


def test_every_filter_is_an_option(home_rt: Runtime) -> None:
    weekly, failed, queued = _seed(home_rt)
    options = {
        ("--sender", "REPORTS@example.com"): [queued, failed, weekly],
        ("--template", "kpi"): [weekly],
        ("--since", (T0 - timedelta(days=1)).isoformat()): [queued, failed],
        ("--until", "2025-03-08"): [weekly],
        ("--result", "pending"): [queued],
        ("--result", "failure"): [failed],
    }
    for option, expected in options.items():
        code, out, err = run("--format", "json", *option)
        assert code == 0, err
        assert [r["id"] for r in json.loads(out)] == expected, option


def test_csv_is_the_export(home_rt: Runtime) -> None:
    _seed(home_rt)
    code, out, _ = run("--format", "csv")
    assert code == 0
    assert out == "".join(iter_records_csv(home_rt, parse_record_filter({})))
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 4


def test_csv_exports_everything_unless_limited(home_rt: Runtime) -> None:
    for n in range(60):
        add_record(home_rt, created_at=T0 + timedelta(minutes=n))
    _, everything, _ = run("--format", "csv")
    _, newest, _ = run("--format", "csv", "--limit", "7")
    assert len(list(csv.reader(io.StringIO(everything, newline="")))) == 61
    assert len(list(csv.reader(io.StringIO(newest, newline="")))) == 8


def test_table_shows_the_ui_columns_and_says_when_more_match(home_rt: Runtime) -> None:
    weekly, failed, queued = _seed(home_rt)
    code, out, err = run("--limit", "2")
    assert code == 0
    for title in TABLE_COLUMNS:
        assert all(word in out for word in title.split()), title
    assert "failure (smtp_auth_failed)" in out
    assert "pending" in out
    assert "Weekly KPI" not in out  # the third newest is past the limit
    assert "more match" in err
    # Not on a terminal: times in UTC, ISO 8601.
    assert "2025-03-10T12:00:00+00:00" in out


def test_no_records(home_rt: Runtime) -> None:
    code, out, err = run("--sender", "nobody@example.com")
    assert (code, out) == (0, "")
    assert "No records match" in err


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--result", "sent"), "result"),
        (("--since", "last week"), "since"),
        (("--since", "2025-03-02", "--until", "2025-03-01"), "until"),
        (("--limit", "0"), "limit"),
        (("--limit", "501", "--format", "csv"), "limit"),
        (("--format", "xml"), "format"),
    ],
)
def test_invalid_input_exits_2(home_rt: Runtime, args: tuple[str, ...], field: str) -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(records)
    done = CliRunner().invoke(app, list(args))
    assert isinstance(done.exception, ValidationError)
    assert field in done.exception.fields
    assert exit_code_for(done.exception) == 2


def _command() -> list[str]:
    return [sys.executable, "-m", "postdesk", "records"]


def test_as_a_process(home_rt: Runtime, settings: Settings) -> None:
    _seed(home_rt)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTDESK_")}
    env |= {"POSTDESK_HOME": str(settings.home), "POSTDESK_DATABASE_URL": settings.database_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_command(), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    listed = cli("--format", "json", "--result", "failure")
    assert listed.returncode == 0, listed.stderr
    assert [r["error"]["code"] for r in json.loads(listed.stdout)] == ["smtp_auth_failed"]
    bad = cli("--since", "2025-13-01", "--result", "lost")
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert lines[0].startswith("error: validation_error: ")
    assert "since" in lines[0] and "result" in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in bad.stderr
    assert bad.stdout == ""


def test_needs_no_server(tmp_path: Path) -> None:
    """A fresh home: the command migrates the database itself and finds nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTDESK_")}
    env["POSTDESK_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [*_command(), "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
