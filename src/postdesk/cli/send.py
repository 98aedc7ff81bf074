"""``postdesk send``: queue one mail, print its id, and (without a broker) deliver it now.

The id goes alone to stdout for scripts; the result goes to stderr. Without
``POSTDESK_BROKER_URL`` the command claims its own message and delivers it before it
exits, exactly as the worker would (same lease, attempt record and retry schedule). Exit
codes: 0 sent (or queued for a later retry), 1 the mail failed, 2 invalid input.

The lead registers it on the root app: ``app.command("send")(send)``. Until then, and
for tests, ``python -m postdesk.cli.send`` runs it alone.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from postdesk.cli.output import print_value, stderr
from postdesk.errors import DeliveryError, ValidationError

if TYPE_CHECKING:  # the services are imported when the command runs, not with the app
    from rich.progress import Progress, TaskID

    from postdesk.services.messages.submission import MessageView
    from postdesk.services.runtime import Runtime

# How often to look at a message another process (a running server) is sending.
_POLL_S = 0.2


def _option(name: str, metavar: str, help_text: str) -> Any:
    return typer.Option(name, metavar=metavar, help=help_text)


Subject = Annotated[str, _option("--subject", "TEXT", "Subject (at most 500 characters).")]
To = Annotated[list[str] | None, _option("--to", "ADDR", "Recipient; repeat for more.")]
Cc = Annotated[list[str] | None, _option("--cc", "ADDR", "Copy recipient; repeatable.")]
Bcc = Annotated[list[str] | None, _option("--bcc", "ADDR", "Blind copy; repeatable.")]
HtmlFile = Annotated[Path | None, _option("--html-file", "FILE", "HTML body from a UTF-8 file.")]
Text = Annotated[str | None, _option("--text", "TEXT", "Plain-text body.")]
Attach = Annotated[list[Path] | None, _option("--attach", "FILE", "Attach a file; repeatable.")]
Template = Annotated[
    str | None, _option("--template", "NAME", "Report template or task that sends it.")
]
Resource = Annotated[
    list[str] | None,
    _option("--resource", "PATH_OR_URL", "A report path or URL the mail carries; repeatable."),
]
SenderId = Annotated[
    int | None, _option("--sender", "ID", "Sender id; else the system default sender.")
]


def send(
    subject: Subject,
    to: To = None,
    cc: Cc = None,
    bcc: Bcc = None,
    html_file: HtmlFile = None,
    text: Text = None,
    attach: Attach = None,
    template: Template = None,
    resource: Resource = None,
    sender: SenderId = None,
) -> None:
    """Send a mail: print its id on stdout and its result on stderr (exit 1 if it failed)."""
    if html_file is None and text is None:
        raise ValidationError(
            {"text": "give the body with --html-file FILE or --text TEXT"},
            hint="postdesk send --to ADDR --subject S --text 'Hello'",
        )
    files = attach or []
    with _progress(total=len(files) + 2) as step:
        request: dict[str, Any] = {
            "to": to or [],
            "cc": cc or [],
            "bcc": bcc or [],
            "subject": subject,
            "text": text,
            "html": _read_html(html_file) if html_file else None,
            "sender_id": sender,
            "template_name": template,
            "resources": resource or [],
            "attachments": [_read_attachment(path, step) for path in files],
        }
        from postdesk.services.runtime import runtime

        with runtime() as rt:
            view = _queue_and_deliver(rt, request, step)
    if view is not None:
        _report(view)


def _queue_and_deliver(rt: Runtime, request: dict[str, Any], step: _Step) -> MessageView | None:
    """Queue the mail and print its id; deliver it here unless a broker's workers will."""
    from postdesk.services.access.callers import SYSTEM
    from postdesk.services.messages.submission import submit_message

    step("Queueing")
    if rt.settings.broker_url:
        from postdesk.worker.celery_app import install_submit_hook

        install_submit_hook(rt)  # a worker hears of the mail as soon as it is committed
    submitted = submit_message(rt, request, caller=SYSTEM, client_ip=None)
    print_value(submitted.id)
    if rt.settings.broker_url:
        stderr.print(f"queued: message {submitted.id}; a worker sends it")
        return None
    step("Sending")
    return _deliver_now(rt, submitted.id)


def _read_html(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(
            {"html_file": f"cannot read {path}: {_reason(exc)}"},
            hint="Give a readable UTF-8 HTML file.",
        ) from None


def _read_attachment(path: Path, step: _Step) -> dict[str, str]:
    step(f"Reading {path.name}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(
            {"attach": f"cannot read {path}: {_reason(exc)}"}, hint="Check the file's path."
        ) from None
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {
        "filename": path.name,
        "content_type": content_type,
        "content_base64": base64.b64encode(data).decode("ascii"),
    }


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def _deliver_now(rt: Runtime, message_id: int) -> MessageView:
    """Claim this one message and deliver it here; if a server got to it first, wait for it."""
    from postdesk.domain.status import MessageStatus
    from postdesk.services.access.callers import SYSTEM
    from postdesk.services.delivery.drain import drain_once
    from postdesk.services.messages.submission import get_message

    worker_id = f"cli:{os.getpid()}"
    drain_once(rt, worker_id=worker_id, limit=1, ids=[message_id])
    view = get_message(rt, message_id, caller=SYSTEM)
    deadline = time.monotonic() + rt.settings.lease_s + 5
    while view.status == MessageStatus.SENDING and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        view = get_message(rt, message_id, caller=SYSTEM)
    return view


def _report(view: MessageView) -> None:
    """The result on stderr; a failed mail raises, so that the exit code is 1."""
    from postdesk.domain.status import MessageStatus

    error = view.error or {}
    if view.status == MessageStatus.SENT:
        stderr.print(f"sent: message {view.id}")
        return
    if view.status == MessageStatus.FAILED:
        stderr.print(f"message {view.id} failed after {view.attempts} attempt(s):")
        raise DeliveryError(
            str(error.get("code") or "smtp_error"),
            str(error.get("message") or "the mail was not sent"),
            hint=str(error.get("hint") or ""),
            smtp_code=error.get("smtp_code"),
        )
    why = f" ({error.get('code')}: {error.get('message')})" if error else ""
    stderr.print(
        f"not sent yet: message {view.id} is {view.status}{escape(why)}; postdesk serve "
        "(or a worker) sends it when it is due",
        highlight=False,
    )


class _Step:
    """Advances the progress bar by one step with a description."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def __call__(self, description: str) -> None:
        self._progress.update(self._task, description=escape(description), advance=1)


@contextmanager
def _progress(total: int) -> Iterator[_Step]:
    """A transient progress bar on a terminal's stderr; nothing when piped."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
        # The id must reach stdout itself, even when stdout is captured by a script.
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with progress:
        yield _Step(progress, progress.add_task("Preparing", total=total))
