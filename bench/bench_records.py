"""Benchmark of the sending-record search: a million records, every filter, both databases.

    .venv/bin/python bench/bench_records.py          # 1,000,000 records, SQLite and PostgreSQL
    .venv/bin/python bench/bench_records.py --records 100000 --runs 20 --database sqlite

It generates the records (about 50 senders, 20,000 distinct recipients, 200 template
names, 90 days, 90 % success, 8 % failure, 2 % pending) straight into the tables —
``executemany`` on SQLite, ``COPY`` on PostgreSQL — into a database migrated to 0002, then
migrates to head so the search indexes are built over the loaded rows as an upgrade would.
PostgreSQL gets ``VACUUM ANALYZE`` afterwards (what autovacuum does on its own soon after
a bulk load); SQLite gets nothing. Then it times ``search_records(rt, filter, limit=50)``
— the service call the API and the CLI make, rows turned into records included — for
each filter alone and for the combined filter, with fresh random values on each run, and
prints p50 / p95 per filter and database. The bar is a p95 under 100 ms for every filter.

SQLite lives in a temporary folder; PostgreSQL in a throwaway database
``postdesk_bench_<hex>`` on 127.0.0.1:5432 (trust authentication, user postgres or
root), dropped afterwards. ``POSTDESK_BENCH_POSTGRES_URL`` names another server's admin
database (a SQLAlchemy URL, e.g. ``postgresql+psycopg://me@db:5432/postgres``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from postdesk.config import Settings
from postdesk.domain.records import RecordFilter
from postdesk.services.records.lookup import search_records
from postdesk.services.runtime import Runtime, open_runtime
from postdesk.storage.db import create_engine_for
from postdesk.storage.migrate import upgrade_database

BAR_MS = 100.0
DAYS = 90
FIRST = (
    "alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy "
    "rupert sybil trent victor walter xena yusuf zoe li wei fang jun mei ling hao yan "
    "anna bert chen dora emil fritz gita hugo ines jose"
).split()
LAST = (
    "smith jones brown taylor wilson davies evans thomas johnson roberts walker wright "
    "robinson thompson white hughes edwards green hall wood harris lewis martin jackson "
    "clarke clark turner hill scott cooper morris ward moore king watson baker harrison "
    "morgan patel young allen mitchell james anderson phillips lee bell parker wang zhang"
).split()[:50]
DOMAINS = [f"{name}.example.com" for name in ("corp", "finance", "sales", "ops", "hq")] + [
    f"branch{n:02d}.example.org" for n in range(20)
]
AREAS = (
    "Sales Finance Inventory HR Marketing Logistics Support Procurement Quality Operations"
).split()
METRICS = ("KPI", "Revenue", "Headcount", "Backlog", "Forecast")
PERIODS = ("Daily", "Weekly", "Monthly", "Quarterly")
TEMPLATES = [f"{p} {a} {m} Report" for p in PERIODS for a in AREAS for m in METRICS]
SENDERS = [
    (f"{area.lower()}-{kind}@{DOMAINS[n % 5]}", f"{area} {kind.title()}")
    for n, (area, kind) in enumerate(
        (a, k) for a in AREAS for k in ("reports", "alerts", "bi", "noreply", "ops")
    )
]
RECIPIENTS = [
    f"{FIRST[j % 40]}.{LAST[(j // 40) % 50]}{j // 2000}@{DOMAINS[j % 25]}" for j in range(20_000)
]
COLUMNS = (
    "kind", "status", "sender_address", "sender_name", "client_ip", "recipients", "subject",
    "template_name", "resources", "message_id", "attempts", "error_code", "error_message",
    "error_hint", "smtp_code", "created_at", "sent_at", "to_addrs", "cc_addrs", "bcc_addrs",
    "recipients_search", "html", "text",
)  # fmt: skip


# ---------------------------------------------------------------- generating the records


def generate(count: int, end: datetime, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """``count`` record rows in COLUMNS order, oldest first, spread over DAYS before ``end``."""
    rnd = random.Random(seed)  # noqa: S311 - test data, not secrets
    start = end - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / count
    body = "<p>" + "The attached report was generated for you. " * 10 + "</p>"
    for n in range(count):
        # Creation order is id order give or take a few seconds, as with concurrent callers.
        created = start + step * n + timedelta(seconds=rnd.uniform(-2.0, 0.0))
        yield _row(rnd, created, body)


def _row(rnd: random.Random, created: datetime, body: str) -> tuple[Any, ...]:
    roll = rnd.random()
    kind = "message" if roll < 0.95 else ("verification_code" if roll < 0.99 else "test")
    status = _status(rnd)
    address, name = rnd.choice(SENDERS)
    to = rnd.sample(RECIPIENTS, rnd.choices((1, 2, 3), (70, 20, 10))[0])
    cc = rnd.sample(RECIPIENTS, 1) if rnd.random() < 0.1 else []
    everyone = to + cc
    template = rnd.choice(TEMPLATES) if kind == "message" else ""
    failed = status == "failed"
    final = status in ("sent", "failed")
    return (
        kind,
        status,
        address,
        name,
        f"10.{rnd.randrange(4)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}",
        json.dumps(everyone),
        f"{template or 'Your verification code'} {created:%Y-%m-%d}",
        template,
        json.dumps([f"/reports/{template.replace(' ', '_')}.pdf"] if template else []),
        f"<{secrets.token_hex(8)}@postdesk>" if final else None,
        rnd.randint(1, 5) if failed else (1 if final else 0),
        "smtp_recipient_rejected" if failed else None,
        "550 5.1.1 mailbox unavailable" if failed else None,
        "check the recipient address" if failed else None,
        550 if failed else None,
        created,
        created + timedelta(seconds=rnd.uniform(0.5, 5)) if final else None,
        json.dumps(to),
        json.dumps(cc),
        "[]",
        "\n".join(a.lower() for a in everyone),
        body,
        None,
    )


def _status(rnd: random.Random) -> str:
    roll = rnd.random()
    if roll < 0.90:
        return "sent"
    if roll < 0.98:
        return "failed"
    return "queued" if roll < 0.99 else "retrying"


# ---------------------------------------------------------------- loading the databases


def load_sqlite(url: str, count: int, end: datetime) -> None:
    engine = create_engine_for(url)
    try:
        upgrade_database(engine, "0002")
    finally:
        engine.dispose()
    path = make_url(url).database
    assert path
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA synchronous = OFF")
        marks = ", ".join("?" for _ in COLUMNS)
        insert = f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES ({marks})"  # noqa: S608
        rows = (tuple(_sqlite_value(v) for v in row) for row in generate(count, end))
        with connection:
            connection.executemany(insert, rows)
    finally:
        connection.close()
    _upgrade(url)


def _sqlite_value(value: Any) -> Any:
    # As postdesk's UTCDateTime stores it on SQLite.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value


def load_postgres(url: str, count: int, end: datetime) -> None:
    engine = create_engine_for(url)
    try:
        upgrade_database(engine, "0002")
    finally:
        engine.dispose()
    with psycopg.connect(_conninfo(url)) as connection:
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        copy_sql = sql.SQL("COPY messages ({}) FROM STDIN").format(columns)
        with connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in generate(count, end):
                copy.write_row(row)
    _upgrade(url)
    with psycopg.connect(_conninfo(url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE messages")


def _upgrade(url: str) -> None:
    started = time.perf_counter()
    engine = create_engine_for(url)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()
    print(f"  migrated to head (search indexes built) in {time.perf_counter() - started:.0f} s")


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database; its URL."""
    admin = _postgres_admin_url()
    name = f"postdesk_bench_{secrets.token_hex(4)}"
    with psycopg.connect(_conninfo(admin), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # Building trigram indexes over a million rows is much faster with more memory.
        connection.execute(
            sql.SQL("ALTER DATABASE {} SET maintenance_work_mem = '256MB'").format(
                sql.Identifier(name)
            )
        )
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_conninfo(admin), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _postgres_admin_url() -> str:
    configured = os.environ.get("POSTDESK_BENCH_POSTGRES_URL")
    candidates = [configured] if configured else [
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        "postgresql+psycopg://root@127.0.0.1:5432/postgres",
    ]  # fmt: skip
    for url in candidates:
        try:
            with psycopg.connect(_conninfo(url), connect_timeout=3):
                return url
        except psycopg.Error:
            continue
    raise SystemExit("PostgreSQL is not reachable (set POSTDESK_BENCH_POSTGRES_URL)")


# ---------------------------------------------------------------- the filters measured


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[random.Random, datetime], RecordFilter]
    gated: bool = True  # held to the bar (short substrings are reported, not gated)


def _filter(**given: Any) -> RecordFilter:
    fields = dict.fromkeys(("sender", "recipient", "template", "since", "until", "result"), None)
    fields.update(given)
    return RecordFilter(**fields)


def _recipient_part(rnd: random.Random) -> str:
    address = rnd.choice(RECIPIENTS)
    local = address.split("@")[0]
    return local.upper() if rnd.random() < 0.5 else local  # any case


def _week(rnd: random.Random, end: datetime) -> dict[str, datetime]:
    since = end - timedelta(days=rnd.uniform(7, DAYS))
    return {"since": since, "until": since + timedelta(days=7)}


def _days(rnd: random.Random, end: datetime) -> dict[str, datetime]:
    until = end - timedelta(days=rnd.uniform(0, 30))
    return {"since": until - timedelta(days=30), "until": until}


def _template_word(rnd: random.Random) -> str:
    return rnd.choice(TEMPLATES).split(" ", 1)[1].rsplit(" ", 1)[0].lower()  # "sales kpi"


CASES = (
    Case("no filter", lambda _rnd, _end: _filter()),
    Case("sender", lambda rnd, _end: _filter(sender=rnd.choice(SENDERS)[0].upper())),
    Case("recipient (name)", lambda rnd, _end: _filter(recipient=_recipient_part(rnd))),
    Case("recipient (address)", lambda rnd, _end: _filter(recipient=rnd.choice(RECIPIENTS))),
    Case("recipient (domain)", lambda rnd, _end: _filter(recipient=rnd.choice(DOMAINS))),
    Case("template (one name)", lambda rnd, _end: _filter(template=rnd.choice(TEMPLATES))),
    Case("template (word pair)", lambda rnd, _end: _filter(template=_template_word(rnd))),
    Case("template (common)", lambda _rnd, _end: _filter(template="report")),
    Case("since/until (a week)", lambda rnd, end: _filter(**_week(rnd, end))),
    Case("since/until (30 days)", lambda rnd, end: _filter(**_days(rnd, end))),
    Case("result success", lambda _rnd, _end: _filter(result="success")),
    Case("result failure", lambda _rnd, _end: _filter(result="failure")),
    Case("result pending", lambda _rnd, _end: _filter(result="pending")),
    Case(
        "combined",
        lambda rnd, end: _filter(
            sender=rnd.choice(SENDERS)[0],
            recipient=rnd.choice(DOMAINS[:5]),
            template=rnd.choice(AREAS),
            result=rnd.choice(("success", "failure")),
            **_days(rnd, end),
        ),
    ),
    Case(
        "recipient, 2 chars (scan)",
        lambda rnd, _end: _filter(recipient=rnd.choice(("zq", "x9", "qq", "7@"))),
        gated=False,
    ),
)


def measure(rt: Runtime, end: datetime, runs: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    for case in CASES:
        rnd = random.Random(case.name)  # noqa: S311 - test data, not secrets
        search_records(rt, case.make(rnd, end), limit=50)  # warm the cache once
        samples = []
        for _ in range(runs):
            flt = case.make(rnd, end)
            started = time.perf_counter()
            search_records(rt, flt, limit=50)
            samples.append((time.perf_counter() - started) * 1000)
        timings[case.name] = samples
    return timings


def _percentile(samples: Sequence[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def report(results: dict[str, dict[str, list[float]]], count: int, runs: int) -> bool:
    kinds = list(results)
    print(f"\nrecord search, {count:,} records, limit 50, {runs} runs each (ms)\n")
    header = f"{'filter':<28}" + "".join(f"{k + ' p50':>16}{k + ' p95':>16}" for k in kinds)
    print(header)
    print("-" * len(header))
    passed = True
    for case in CASES:
        line = f"{case.name:<28}"
        for kind in kinds:
            samples = results[kind][case.name]
            p95 = _percentile(samples, 95)
            flag = "" if p95 < BAR_MS or not case.gated else " !"
            passed = passed and (p95 < BAR_MS or not case.gated)
            line += f"{_percentile(samples, 50):>16.1f}{p95:>14.1f}{flag:<2}"
        print(line)
    verdict = "every gated filter" if passed else "NOT every gated filter"
    print(f"\n{verdict} has p95 < {BAR_MS:.0f} ms (! marks a miss; scans are not gated)")
    return passed


def run(kind: str, url: str, home: Path, count: int, runs: int) -> dict[str, list[float]]:
    end = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    print(f"{kind}: loading {count:,} records …")
    (load_sqlite if kind == "sqlite" else load_postgres)(url, count, end)
    print(f"  loaded in {time.perf_counter() - started:.0f} s; measuring")
    rt = open_runtime(Settings(home=home, database_url=url))
    try:
        return measure(rt, end, runs)
    finally:
        rt.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="postdesk-bench-") as tmp:
        home = Path(tmp)
        if args.database in ("sqlite", "both"):
            url = f"sqlite:///{home / 'bench.db'}"
            results["sqlite"] = run("sqlite", url, home, args.records, args.runs)
        if args.database in ("postgresql", "both"):
            with postgres_database() as url:
                results["postgresql"] = run("postgresql", url, home, args.records, args.runs)
    return 0 if report(results, args.records, args.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
