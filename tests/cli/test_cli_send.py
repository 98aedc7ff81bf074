"""``postdesk send`` as scripts run it: a real process, a real database, a real SMTP server."""

import os
import pty
import subprocess
import sys
import threading
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as sender_service
from postdesk.storage.models import Message
from tests.support.smtp import SmtpTestServer

ServerFactory = Callable[..., SmtpTestServer]
sqlite_only = pytest.mark.parametrize("database_kind", ["sqlite"])


def send_command() -> list[str]:
    return [sys.executable, "-m", "postdesk", "send"]


def run_send(
    rt: Runtime, *args: str, broker: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTDESK_")}
    env.update(
        POSTDESK_HOME=str(rt.settings.home),
        POSTDESK_DATABASE_URL=rt.settings.database_url,
        COLUMNS="200",
    )
    if broker:
        env["POSTDESK_BROKER_URL"] = broker
    return subprocess.run(
        [*send_command(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def add_sender(rt: Runtime, server: SmtpTestServer) -> int:
    settings = server.sender()
    view = sender_service.create_sender(
        rt,
        {
            "smtp_host": settings.smtp_host,
            "port": settings.port,
            "encryption": settings.encryption.value,
            "address": settings.address.address,
            "display_name": settings.display_name,
            "timeout_s": settings.timeout_s,
        },
    )
    sender_service.set_default_sender(rt, view.id)
    return view.id


def record(rt: Runtime, message_id: int) -> Message:
    with rt.transaction() as session:
        return session.scalars(select(Message).where(Message.id == message_id)).one()


def test_send_delivers_before_it_exits(
    rt: Runtime, smtp_server: ServerFactory, tmp_path: Path
) -> None:
    server = smtp_server()
    add_sender(rt, server)
    page = tmp_path / "weekly.html"
    page.write_text("<h1>Weekly sales</h1>\n<p>Up 4 %.</p>\n", encoding="utf-8")
    export = tmp_path / "sales-2026-w09.pdf"
    export.write_bytes(b"%PDF-1.7 weekly")
    done = run_send(
        rt,
        "--to", "alice@example.org", "--to", "bob@example.org", "--cc", "carol@example.org",
        "--bcc", "audit@example.org", "--subject", "Weekly sales", "--html-file", str(page),
        "--attach", str(export), "--template", "Weekly sales report",
        "--resource", "/reports/sales/weekly", "--resource", "https://bi.example.com/d/9",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    message_id = int(done.stdout)  # the id alone on stdout
    assert f"sent: message {message_id}" in done.stderr
    [received] = server.messages
    assert received.rcpt_tos == [
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
        "audit@example.org",
    ]
    mail = message_from_bytes(received.content, policy=policy.default)
    [pdf] = [part for part in mail.walk() if part.get_filename() == export.name]
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content() == b"%PDF-1.7 weekly"
    html = mail.get_body(("html",))
    assert html is not None and "Up 4 %." in html.get_content()
    row = record(rt, message_id)
    assert (row.status, row.attempts, row.template_name) == ("sent", 1, "Weekly sales report")
    assert row.resources == [
        "/reports/sales/weekly",
        "https://bi.example.com/d/9",
        "sales-2026-w09.pdf",
    ]
    assert mail["Message-ID"] == row.message_id


@sqlite_only
def test_a_failed_mail_exits_1_with_the_diagnosis(rt: Runtime, smtp_server: ServerFactory) -> None:
    server = smtp_server(replies={"DATA": ["554 5.7.1 Message rejected as spam"]})
    add_sender(rt, server)
    done = run_send(rt, "--to", "alice@example.org", "--subject", "Report", "--text", "Hi")
    assert done.returncode == 1
    message_id = int(done.stdout)
    assert f"message {message_id} failed after 1 attempt(s):" in done.stderr
    assert "error: smtp_rejected_as_spam: " in done.stderr
    assert "hint: " in done.stderr
    assert record(rt, message_id).status == "failed"


@sqlite_only
def test_a_transient_failure_is_left_to_the_retries(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(replies={"DATA": ["451 4.7.1 Try again later"]})
    add_sender(rt, server)
    done = run_send(rt, "--to", "alice@example.org", "--subject", "Report", "--text", "Hi")
    assert done.returncode == 0, done.stderr
    message_id = int(done.stdout)
    assert f"not sent yet: message {message_id} is retrying (smtp_throttled:" in done.stderr
    row = record(rt, message_id)
    assert (row.status, row.attempts, row.lease_owner) == ("retrying", 1, None)


@sqlite_only
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--to", "not-an-address", "--subject", "S", "--text", "T"), "to[0]: 'not-an-address'"),
        (("--to", "a@example.org", "--subject", "S"), "--html-file FILE or --text TEXT"),
        (("--to", "a@example.org", "--subject", "S", "--text", "T", "--attach", "/nope.pdf"),
         "cannot read /nope.pdf"),
        (("--to", "a@example.org", "--subject", "S", "--text", "T", "--sender", "99"),
         "no sender has the id 99"),
    ],
)  # fmt: skip
def test_invalid_input_exits_2_and_queues_nothing(
    rt: Runtime, smtp_server: ServerFactory, args: tuple[str, ...], words: str
) -> None:
    add_sender(rt, smtp_server())
    done = run_send(rt, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "error: validation_error: " in done.stderr and words in done.stderr
    with rt.transaction() as session:
        assert session.scalars(select(Message)).all() == []


@sqlite_only
def test_an_unconfigured_service_queues_nothing(rt: Runtime) -> None:
    done = run_send(rt, "--to", "alice@example.org", "--subject", "S", "--text", "T")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "error: mail_service_unconfigured: " in done.stderr


@sqlite_only
def test_with_a_broker_the_mail_is_only_queued(
    rt: Runtime, smtp_server: ServerFactory, closed_port: int
) -> None:
    server = smtp_server()
    add_sender(rt, server)
    # A broker nobody answers on: the mail must still be queued (workers catch up later),
    # and no test leaves keys behind in a real Redis.
    done = run_send(
        rt, "--to", "alice@example.org", "--subject", "S", "--text", "T",
        broker=f"redis://127.0.0.1:{closed_port}/0",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "a worker sends it" in done.stderr
    assert record(rt, int(done.stdout)).status == "queued"
    assert server.messages == []


@sqlite_only
def test_on_a_terminal_the_progress_bar_leaves_stdout_to_the_id(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    add_sender(rt, smtp_server())
    controller, terminal = pty.openpty()  # stderr is a terminal, stdout a pipe: $(postdesk send)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTDESK_")}
    env.update(POSTDESK_HOME=str(rt.settings.home), POSTDESK_DATABASE_URL=rt.settings.database_url)
    env.update(TERM="xterm-256color", COLUMNS="100")
    env.pop("NO_COLOR", None)
    seen = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the process is gone and the terminal closed
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    with subprocess.Popen(
        [*send_command(), "--to", "alice@example.org", "--subject", "S", "--text", "T"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    ) as process:
        out, _ = process.communicate(timeout=60)
    os.close(terminal)
    reader.join(timeout=10)
    os.close(controller)
    assert process.returncode == 0, seen.decode(errors="replace")
    assert out.strip().isdigit()
    shown = seen.decode(errors="replace")
    assert "Sending" in shown  # the progress bar was drawn
    assert f"sent: message {out.strip()}" in shown
