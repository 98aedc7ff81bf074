"""``postdesk worker`` processes on real Redis and RabbitMQ brokers send the queue exactly once.

Nothing is mocked: the workers are ``python -m postdesk worker`` subprocesses (Celery
prefork with the embedded beat), the brokers are the Redis and RabbitMQ servers on
127.0.0.1, the mail goes to an aiosmtpd server. Each test uses its own queue name
(``POSTDESK_CELERY_QUEUE``), deleted afterwards; on Redis also its own database number,
one that was empty, flushed afterwards (the shared rate-limit counters live there too).
A broker that cannot be reached skips its tests, except with ``CI=true``: then they fail.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import redis
from kombu.connection import Connection
from sqlalchemy import func, select

from postdesk.config import Settings
from postdesk.services.access.callers import SYSTEM
from postdesk.services.messages.submission import submit_batch
from postdesk.services.runtime import Runtime, open_runtime
from postdesk.services.senders import accounts as sender_service
from postdesk.storage.models import Message
from postdesk.worker import celery_app
from postdesk.worker.celery_app import (
    DRAIN_TASK,
    PURGE_TASK,
    CeleryOptions,
    install_submit_hook,
    make_celery,
)
from tests.support.processes import LoggedProcess, wait_until, worker_env
from tests.support.smtp import SmtpTestServer

ServerFactory = Callable[..., SmtpTestServer]
REDIS = "redis://127.0.0.1:6379"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"
DRAIN_EVERY = "0.5"


def _unreachable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {type(exc).__name__}: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the broker tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def queue_name() -> str:
    return f"postdesk-test-{secrets.token_hex(4)}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database number that was empty, flushed after the test."""
    try:
        probe = redis.Redis.from_url(f"{REDIS}/0", socket_connect_timeout=3)
        probe.ping()
    except redis.RedisError as exc:
        _unreachable("Redis at 127.0.0.1:6379", exc)
    number = None
    for candidate in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS}/{candidate}")
        if client.dbsize() == 0:
            number = candidate
            client.close()
            break
        client.close()
    probe.close()
    if number is None:
        pytest.fail("no empty Redis database number (1-15) for the test")
    try:
        yield f"{REDIS}/{number}"
    finally:
        client = redis.Redis.from_url(f"{REDIS}/{number}")
        client.flushdb()
        client.close()


@pytest.fixture
def amqp_url(queue_name: str) -> Iterator[str]:
    """RabbitMQ's default vhost; the test's queue and exchange are deleted afterwards."""
    try:
        with Connection(AMQP, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        _unreachable("RabbitMQ at 127.0.0.1:5672", exc)
    try:
        yield AMQP
    finally:
        with Connection(AMQP, connect_timeout=3) as conn:
            channel = conn.channel()
            channel.queue_delete(queue_name)
            channel.exchange_delete(queue_name)


@pytest.fixture(params=["redis", "amqp"])
def broker_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


class CeleryWorker(LoggedProcess):
    """``python -m postdesk worker`` in its own process group; logs to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        command = [sys.executable, "-m", "postdesk", "worker", "--drain-every", DRAIN_EVERY]
        # Its own session: the pool and beat children go with it in close().
        super().__init__([*command, *args], env, log_path, new_session=True)

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, f"the worker exited: {self.logs()}"
            return " ready." in self.log_path.read_text(errors="replace")

        wait_until(ready, timeout=60, what="the Celery worker to be ready")

    def stop(self) -> None:
        """SIGTERM: Celery's warm shutdown, after the task running now."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        assert self.process.returncode == 0, self.logs()

    def close(self) -> None:
        super().close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # pool or beat children left behind


def setup(
    home: Path, database_url: str, broker: str, queue: str, server: SmtpTestServer, **sender: int
) -> Runtime:
    """A runtime with the submit hook installed and a default sender pointing at ``server``."""
    rt = open_runtime(Settings(home=home, database_url=database_url, broker_url=broker))
    install_submit_hook(rt, CeleryOptions(queue=queue))
    smtp = server.sender()
    view = sender_service.create_sender(
        rt,
        {"smtp_host": smtp.smtp_host, "port": smtp.port, "encryption": "none",
         "address": "reports@example.com", "display_name": "Reports", "timeout_s": 5, **sender},
    )  # fmt: skip
    sender_service.set_default_sender(rt, view.id)
    return rt


def requests(count: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"to": [f"user{i}@example.org"], "subject": f"Report {i}", "text": "Numbers."}
        for i in range(start, start + count)
    ]


def count(rt: Runtime, status: str) -> int:
    with rt.transaction() as session:
        query = select(func.count()).select_from(Message).where(Message.status == status)
        return int(session.scalar(query) or 0)


def received_ids(server: SmtpTestServer) -> Counter[str]:
    return Counter(
        str(message_from_bytes(m.content, policy=policy.default)["Message-ID"])
        for m in server.messages
    )


def start_workers(
    workers: list[CeleryWorker], env: dict[str, str], tmp_path: Path, *args: str, n: int
) -> None:
    """Start ``n`` workers, each in ``workers`` (closed by the caller) before it is awaited."""
    workers.extend(CeleryWorker(env, tmp_path / f"worker-{i}.log", *args) for i in range(n))
    for worker in workers:
        worker.wait_ready()


def test_two_celery_workers_deliver_every_message_exactly_once(
    broker_url: str,
    queue_name: str,
    database_url: str,
    tmp_path: Path,
    smtp_server: ServerFactory,
) -> None:
    server = smtp_server()
    home = tmp_path / "home"
    rt = setup(home, database_url, broker_url, queue_name, server)
    env = worker_env(
        home, database_url, POSTDESK_BROKER_URL=broker_url, POSTDESK_CELERY_QUEUE=queue_name
    )
    workers: list[CeleryWorker] = []
    try:
        start_workers(workers, env, tmp_path, "--concurrency", "2", n=2)
        for batch in range(3):  # three submissions, three triggers
            submit_batch(rt, requests(40, 40 * batch), caller=SYSTEM, client_ip=None)
        wait_until(lambda: count(rt, "sent") == 120, timeout=90, what="every message sent")
        for worker in workers:
            worker.stop()
        with rt.transaction() as session:
            expected = set(session.scalars(select(Message.message_id)))
    finally:
        for worker in workers:
            worker.close()
        rt.close()
    received = received_ids(server)
    assert set(received) == expected and len(expected) == 120
    assert max(received.values()) == 1  # exactly once


@pytest.mark.parametrize("database_kind", ["postgresql"])
def test_beat_sends_retries_and_mail_queued_without_a_trigger(
    redis_url: str,
    queue_name: str,
    database_url: str,
    tmp_path: Path,
    smtp_server: ServerFactory,
) -> None:
    """No submit hook ran and the first attempt was deferred: the schedule alone sends it."""
    server = smtp_server(replies={"DATA": ["451 4.7.1 Try again later"]})
    home = tmp_path / "home"
    rt = setup(home, database_url, redis_url, queue_name, server)
    rt.submitted_hooks.clear()  # queued as if the broker had been down at submission
    env = worker_env(
        home,
        database_url,
        POSTDESK_BROKER_URL=redis_url,
        POSTDESK_CELERY_QUEUE=queue_name,
        POSTDESK_RETRY_DELAYS="1",
    )
    workers: list[CeleryWorker] = []
    try:
        [message_id] = submit_batch(rt, requests(1), caller=SYSTEM, client_ip=None)
        start_workers(workers, env, tmp_path, "--concurrency", "1", n=1)
        wait_until(lambda: count(rt, "sent") == 1, timeout=30, what="the retry to be sent")
        workers[0].stop()
        with rt.transaction() as session:
            row = session.get(Message, message_id)
            assert row is not None and row.attempts == 2
    finally:
        for worker in workers:
            worker.close()
        rt.close()
    assert len(server.messages) == 1


@pytest.mark.parametrize("database_kind", ["postgresql"])
def test_max_per_minute_holds_across_two_workers_on_redis(
    redis_url: str,
    queue_name: str,
    database_url: str,
    tmp_path: Path,
    smtp_server: ServerFactory,
) -> None:
    limit = 5
    server = smtp_server()
    home = tmp_path / "home"
    rt = setup(home, database_url, redis_url, queue_name, server, max_per_minute=limit)
    env = worker_env(
        home, database_url, POSTDESK_BROKER_URL=redis_url, POSTDESK_CELERY_QUEUE=queue_name
    )
    workers: list[CeleryWorker] = []
    try:
        start_workers(workers, env, tmp_path, "--concurrency", "2", n=2)
        started = time.monotonic()
        for batch in range(4):  # several triggers, taken by different worker processes
            submit_batch(rt, requests(4, 4 * batch), caller=SYSTEM, client_ip=None)
        wait_until(lambda: len(server.messages) >= limit, timeout=30, what="the first mails")
        time.sleep(3)  # six scheduled drains per worker: none may send more this minute
        received = len(server.messages)
        elapsed = time.monotonic() - started
        waiting = count(rt, "queued")
        for worker in workers:
            worker.stop()
    finally:
        for worker in workers:
            worker.close()
        rt.close()
    assert elapsed < 60  # all counted within one window
    assert received == limit, f"{received} mails within {elapsed:.1f} s, limit {limit}/min"
    assert waiting == 16 - limit  # put back, due when the window has room


def test_submit_hook_survives_a_broker_outage(
    tmp_path: Path,
    closed_port: int,
    smtp_server: ServerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The message is committed; the hook logs the outage instead of failing the request."""
    server = smtp_server()
    brokers = (f"redis://127.0.0.1:{closed_port}/0", f"amqp://127.0.0.1:{closed_port}//")
    for index, broker in enumerate(brokers):
        home = tmp_path / f"home-{index}"
        home.mkdir(mode=0o700)
        rt = setup(home, f"sqlite:///{home / 'pd.db'}", broker, "unused", server)
        try:
            started = time.monotonic()
            [message_id] = submit_batch(rt, requests(1), caller=SYSTEM, client_ip=None)
            assert time.monotonic() - started < 3  # one connection attempt, no retries
            with rt.transaction() as session:
                row = session.get(Message, message_id)
                assert row is not None and row.status == "queued"
        finally:
            rt.close()
    assert caplog.text.count("could not send postdesk.drain") == 2


@pytest.mark.parametrize(
    ("broker", "words"),
    [(None, "POSTDESK_BROKER_URL is not set"), ("http://127.0.0.1:1/", "redis:// or amqp://")],
)
def test_worker_refuses_to_start_without_a_broker(
    tmp_path: Path, broker: str | None, words: str
) -> None:
    env = worker_env(tmp_path / "home", f"sqlite:///{tmp_path / 'home' / 'pd.db'}")
    if broker:
        env["POSTDESK_BROKER_URL"] = broker
    done = subprocess.run(
        [sys.executable, "-m", "postdesk", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: config_error: "), done.stderr
    assert words in done.stderr
    assert "\nhint: " in done.stderr


@pytest.mark.parametrize("database_kind", ["sqlite"])
def test_drain_and_purge_tasks_run_in_process(
    tmp_path: Path, database_url: str, smtp_server: ServerFactory
) -> None:
    """The task bodies as a worker process runs them (``apply``: no broker involved)."""
    server = smtp_server()
    home = tmp_path / "home"
    rt = setup(home, database_url, f"{REDIS}/0", "unused", server)
    rt.submitted_hooks.clear()
    app = make_celery(rt.settings, CeleryOptions(queue="unused"))
    try:
        submit_batch(rt, requests(3), caller=SYSTEM, client_ip=None)
        assert app.tasks[DRAIN_TASK].apply().get() == 3
        assert app.tasks[DRAIN_TASK].apply().get() == 0  # nothing due any more
        assert app.tasks[PURGE_TASK].apply().get() == 0  # nothing old enough
    finally:
        state = celery_app._STATE.pop(os.getpid(), None)
        if state is not None:
            state.rt.close()
        rt.close()
    assert len(server.messages) == 3
