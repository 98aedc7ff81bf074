"""End-to-end sending throughput of ``postdesk serve`` against two stdlib baselines, one run.

All three send to the same local SMTP sink (Postfix's ``smtp-sink`` on a free loopback
port), each message about 5 KB of HTML, each one different:

baseline A
    the stdlib loop: ``email.message.EmailMessage`` (From, To, Subject, Date, Message-ID,
    a text part and the HTML alternative) sent with ``smtplib.SMTP.send_message`` over one
    reused connection;
baseline B
    ``smtplib.SMTP.sendmail`` of pre-rendered bytes over one connection: the wire's ceiling;
postdesk
    ``python -m postdesk serve`` as a subprocess on a fresh ``POSTDESK_HOME`` (SQLite), the
    sink as default sender (no encryption), an admin token. The messages carry HTML only, so
    postdesk generates the text alternative. Measured from the first request until the
    database holds every message as ``sent``: once submitted with single
    ``POST /api/v1/messages`` calls from a few keep-alive ``httpx`` clients in threads, once
    with ``POST /api/v1/messages/batch`` in batches of 500, each on its own fresh server.

Prints messages per second for each and the ratios postdesk / baseline A and postdesk /
baseline B (the project's bar: postdesk end to end through the batch endpoint at least
1.5 x baseline A; single POSTs are reported beside it).

    .venv/bin/python bench/bench_throughput.py [--messages 10000] [--clients 8] [--batch 500]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import httpx
from bench_builder import DATE, report_html

from postdesk.config import Settings
from postdesk.domain.html_text import html_to_text
from postdesk.services.access import tokens
from postdesk.services.runtime import open_runtime
from postdesk.services.senders import accounts as senders

SMTP_SINK = "/usr/sbin/smtp-sink"
FROM = "reports@example.com"
TO = "alice@example.org"
BAR = 1.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    """``smtp-sink`` on a free loopback port (backlog 1000); yields the port."""
    if not Path(SMTP_SINK).exists():
        sys.exit(f"{SMTP_SINK} is missing: apt-get install -y postfix (make bench does)")
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - a fixed program, our own arguments
        [SMTP_SINK, "-u", "root", f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(10)


# --- the baselines -------------------------------------------------------------------------


def stdlib_message(number: int, html: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f'"BI Reports" <{FROM}>'
    message["To"] = TO
    message["Subject"] = f"Daily sales report #{number}"
    message["Date"] = format_datetime(DATE)
    message["Message-ID"] = make_msgid(domain="example.com")
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def baseline_a(port: int, bodies: Sequence[str]) -> float:
    """EmailMessage built and sent with ``send_message``, one connection; msgs/s.

    The text alternatives are generated before the clock starts (as in bench_builder):
    the baseline is an application that already has both bodies.
    """
    texts = [html_to_text(html) for html in bodies]
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for number, html in enumerate(bodies):
            smtp.send_message(stdlib_message(number, html, texts[number]))
    return len(bodies) / (time.perf_counter() - started)


def baseline_b(port: int, bodies: Sequence[str]) -> float:
    """Pre-rendered bytes sent with ``sendmail``, one connection; msgs/s."""
    rendered = [
        stdlib_message(number, html, html_to_text(html)).as_bytes(policy=policy.SMTP)
        for number, html in enumerate(bodies)
    ]
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for data in rendered:
            smtp.sendmail(FROM, [TO], data)
    return len(rendered) / (time.perf_counter() - started)


# --- postdesk serve ------------------------------------------------------------------------


@dataclass
class Server:
    """A running ``postdesk serve``: its process, base URL, admin token and database file."""

    process: subprocess.Popen[bytes]
    url: str
    token: str
    database: Path
    log: Path

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout
        )

    def count(self, status: str) -> int:
        with contextlib.closing(sqlite3.connect(self.database, timeout=30)) as db:
            row = db.execute("SELECT count(*) FROM messages WHERE status = ?", (status,)).fetchone()
            return int(row[0])

    def pending(self) -> int:
        """Messages not final yet (queued, sending, retrying) as ``/healthz`` reports them."""
        with self.client(timeout=30) as client:
            queue = client.get("/healthz").json()["queue"]
        return sum(int(v) for v in queue.values())


def prepare_home(home: Path, smtp_port: int) -> tuple[Settings, str]:
    """A database with the sink as default sender (no encryption) and an admin token."""
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'postdesk.db'}")
    rt = open_runtime(settings)
    try:
        sender = senders.create_sender(
            rt,
            {
                "smtp_host": "127.0.0.1",
                "port": smtp_port,
                "encryption": "none",
                "address": FROM,
                "display_name": "BI Reports",
            },
        )
        senders.set_default_sender(rt, sender.id)
        token = tokens.create_token(rt, "bench", "admin").token
    finally:
        rt.close()
    return settings, token


@contextlib.contextmanager
def postdesk_server(smtp_port: int) -> Iterator[Server]:
    """``python -m postdesk serve`` on a fresh home and a free port; stopped afterwards."""
    home = Path(tempfile.mkdtemp(prefix="postdesk-bench-"))
    try:
        _, token = prepare_home(home, smtp_port)
        port = free_port()
        env = {**os.environ, "POSTDESK_HOME": str(home)}
        env.pop("POSTDESK_DATABASE_URL", None)
        log = home / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - a fixed program, our own arguments
                [sys.executable, "-m", "postdesk", "serve", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(port, timeout=60)
            yield Server(process, f"http://127.0.0.1:{port}", token, home / "postdesk.db", log)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def message_request(number: int, html: str) -> dict[str, Any]:
    return {"to": [TO], "subject": f"Daily sales report #{number}", "html": html}


def submit_single(server: Server, bodies: Sequence[str], clients: int) -> None:
    """Every message in its own ``POST /messages``, from ``clients`` keep-alive threads."""
    errors: list[str] = []

    def work(start: int) -> None:
        with server.client() as client:
            for number in range(start, len(bodies), clients):
                response = client.post(
                    "/api/v1/messages", json=message_request(number, bodies[number])
                )
                if response.status_code != 202:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"submission failed: {errors[0]}")


def submit_batches(server: Server, bodies: Sequence[str], batch: int) -> None:
    """``POST /messages/batch`` with ``batch`` messages each, one connection."""
    with server.client() as client:
        for start in range(0, len(bodies), batch):
            messages = [
                message_request(n, bodies[n]) for n in range(start, min(start + batch, len(bodies)))
            ]
            response = client.post("/api/v1/messages/batch", json={"messages": messages})
            if response.status_code != 202:
                raise RuntimeError(f"batch failed: {response.status_code} {response.text[:200]}")


def wait_until_sent(server: Server, count: int, timeout: float) -> None:
    """Poll ``/healthz`` until the queue is empty, then check every message is ``sent``."""
    deadline = time.monotonic() + timeout
    while server.pending():
        if time.monotonic() > deadline:
            raise RuntimeError(f"still {server.pending()} pending after {timeout:.0f} s")
        if server.process.poll() is not None:
            raise RuntimeError(f"postdesk serve exited; see {server.log}")
        time.sleep(0.05)
    sent = server.count("sent")
    if sent != count:
        raise RuntimeError(f"{sent} of {count} messages sent ({server.count('failed')} failed)")


@dataclass(frozen=True)
class Timing:
    rate: float  # msgs/s, first request to every message sent
    submit_rate: float  # msgs/s accepted by the API alone


def run_postdesk(
    smtp_port: int, bodies: Sequence[str], submit: Callable[[Server, Sequence[str]], None]
) -> Timing:
    with postdesk_server(smtp_port) as server:
        started = time.perf_counter()
        submit(server, bodies)
        submitted = time.perf_counter()
        wait_until_sent(server, len(bodies), timeout=max(600.0, len(bodies) / 5))
        ended = time.perf_counter()
    return Timing(len(bodies) / (ended - started), len(bodies) / (submitted - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8, help="threads for single submission")
    parser.add_argument("--batch", type=int, default=500, help="messages per batch request")
    args = parser.parse_args()
    count: int = args.messages
    bodies = [report_html(number) for number in range(count)]
    size = sum(len(html) for html in bodies) / count
    with smtp_sink() as port:
        rate_a = baseline_a(port, bodies)
        rate_b = baseline_b(port, bodies)
        single = run_postdesk(port, bodies, lambda s, b: submit_single(s, b, args.clients))
        batch = run_postdesk(port, bodies, lambda s, b: submit_batches(s, b, args.batch))
    print(f"{count} messages, {size:.0f} characters of HTML each, to smtp-sink on loopback")
    print(f"baseline A  EmailMessage + send_message:  {rate_a:8.0f} msgs/s")
    print(f"baseline B  sendmail of rendered bytes:   {rate_b:8.0f} msgs/s")
    for name, timing in (("single POSTs", single), (f"batches of {args.batch}", batch)):
        print(
            f"postdesk    {name + ', end to end:':29s} {timing.rate:8.0f} msgs/s"
            f"  = {timing.rate / rate_a:4.2f} x A, {timing.rate / rate_b:4.2f} x B"
            f"  (API accepted {timing.submit_rate:.0f} msgs/s)"
        )
    ratio = batch.rate / rate_a
    verdict = "meets" if ratio >= BAR else "misses"
    print(
        f"bar: postdesk batches >= {BAR} x baseline A: {verdict} it ({ratio:.2f} x); "
        f"single POSTs {single.rate / rate_a:.2f} x"
    )


if __name__ == "__main__":
    main()
