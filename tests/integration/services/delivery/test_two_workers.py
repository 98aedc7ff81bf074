"""Two worker processes draining one PostgreSQL queue deliver every message exactly once.

PostgreSQL only (the ``postgres_url`` fixture marks it ``postgres``): claims there use
``SELECT … FOR UPDATE SKIP LOCKED``, so the workers never take the same message and never
wait for each other's rows. Counted at the server by Message-ID.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

from sqlalchemy import func, select

from postdesk.config import Settings
from postdesk.services.access.callers import SYSTEM
from postdesk.services.messages.submission import submit_batch
from postdesk.services.runtime import Runtime, open_runtime
from postdesk.services.senders import accounts as sender_service
from postdesk.storage.models import Message
from tests.support.processes import WorkerProcess, wait_until, worker_env
from tests.support.smtp import SmtpTestServer

MESSAGES = 240


def sent_count(rt: Runtime) -> int:
    with rt.transaction() as session:
        query = select(func.count()).select_from(Message).where(Message.status == "sent")
        return int(session.scalar(query) or 0)


def test_two_workers_deliver_every_message_exactly_once(
    postgres_url: str, tmp_path: Path, smtp_server: Callable[..., SmtpTestServer]
) -> None:
    server = smtp_server()
    home = tmp_path / "home"
    rt = open_runtime(Settings(home=home, database_url=postgres_url))
    workers: list[WorkerProcess] = []
    try:
        settings = server.sender()
        sender = sender_service.create_sender(
            rt,
            {"smtp_host": settings.smtp_host, "port": settings.port, "encryption": "none",
             "address": "reports@example.com", "display_name": "Reports", "timeout_s": 5},
        )  # fmt: skip
        sender_service.set_default_sender(rt, sender.id)
        env = worker_env(home, postgres_url)
        workers += [WorkerProcess(env, tmp_path / f"worker-{i}.log") for i in (1, 2)]
        for worker in workers:
            worker.wait_ready()
        requests = [
            {"to": [f"user{i}@example.org"], "subject": f"Report {i}", "text": "Numbers."}
            for i in range(MESSAGES)
        ]
        submit_batch(rt, requests, caller=SYSTEM, client_ip=None)
        wait_until(lambda: sent_count(rt) == MESSAGES, timeout=120, what="every message sent")
        states = [worker.stop() for worker in workers]
        with rt.transaction() as session:
            expected = set(session.scalars(select(Message.message_id)))
    finally:
        for worker in workers:
            worker.close()
        rt.close()

    received = Counter(
        str(message_from_bytes(m.content, policy=policy.default)["Message-ID"])
        for m in server.messages
    )
    assert set(received) == expected and len(expected) == MESSAGES
    assert max(received.values()) == 1  # exactly once
    sent_by = [state["delivered"].get("sent", 0) for state in states]
    assert sum(sent_by) == MESSAGES
    print(f"\ntwo workers: sent {sent_by[0]} + {sent_by[1]}")  # noqa: T201 - for `pytest -s`
    assert all(count > 0 for count in sent_by), sent_by  # both workers took part
