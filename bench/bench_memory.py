"""Peak memory of ``postdesk serve`` while it drains the queue and while it sends a big attachment.

Starts ``smtp-sink`` and ``python -m postdesk serve`` exactly as ``bench_throughput.py``
does (fresh ``POSTDESK_HOME`` on SQLite, the sink as default sender, an admin token),
waits for the server to settle and reads its idle resident size (``VmRSS`` in
``/proc/<pid>/status``). Then, for each phase, it resets the kernel's high-water mark
(writing ``5`` to ``/proc/<pid>/clear_refs``; when that is not allowed, ``VmRSS`` is
sampled every 5 ms instead) and reports the peak (``VmHWM``) minus the RSS before the phase:

drain
    N messages of about 5 KB of HTML submitted with ``POST /api/v1/messages/batch`` (500
    a request) and sent until every one is ``sent``;
attachment
    one message with a 20 MiB attachment of random bytes, submitted as base64 in one
    ``POST /api/v1/messages`` (a body of about 27 MiB), then sent. Reported twice: the
    whole phase (the request's JSON, its decoded bytes and the stored encoding are all
    alive at once during submission), and from the ``202`` on: the worker loading and
    streaming the message, but also the server releasing the request's objects after it
    answered (the worker is woken by the submission itself), so that second figure is an
    upper bound on what sending holds. Both are compared with the encoded size of the
    attachment (about 1 x would mean the attachment is held once).

    .venv/bin/python bench/bench_memory.py [--messages 10000] [--attachment-mib 20]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench_builder import report_html
from bench_throughput import (
    Server,
    postdesk_server,
    smtp_sink,
    submit_batches,
    wait_until_sent,
)

from postdesk.domain.attachments import base64_lines

MIB = 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS; False when the kernel does not let us."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def peak_of(pid: int) -> Iterator[Callable[[], int]]:
    """Measure the peak RSS (KiB) of ``pid`` over the block; call the result afterwards."""
    exact = reset_peak(pid)
    sampled = [status_kib(pid, "VmRSS")]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            with contextlib.suppress(OSError, KeyError):
                sampled.append(status_kib(pid, "VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: max(status_kib(pid, "VmHWM") if exact else 0, max(sampled))
    finally:
        done.set()
        sampler.join()


def settle(pid: int, seconds: float = 2.0) -> int:
    """RSS (KiB) after the process has been left alone for ``seconds``."""
    time.sleep(seconds)
    return status_kib(pid, "VmRSS")


def mib(kib: float) -> str:
    return f"{kib / 1024:7.1f} MiB"


def drain_phase(server: Server, count: int) -> tuple[int, int]:
    """(RSS before, peak) in KiB while ``count`` messages are submitted and sent."""
    pid = server.process.pid
    before = settle(pid)
    bodies = [report_html(number) for number in range(count)]
    with peak_of(pid) as peak:
        submit_batches(server, bodies, 500)
        wait_until_sent(server, count, timeout=max(600.0, count / 5))
        high = peak()
    return before, high


def attachment_phase(server: Server, size: int, already_sent: int) -> dict[str, int]:
    """RSS figures (KiB) around one message carrying ``size`` random bytes."""
    pid = server.process.pid
    data = os.urandom(size)
    request = {
        "to": ["alice@example.org"],
        "subject": "Monthly export",
        "html": "<p>The export is attached.</p>",
        "attachments": [
            {
                "filename": "export.bin",
                "content_type": "application/octet-stream",
                "content_base64": base64.b64encode(data).decode("ascii"),
            }
        ],
    }
    before = settle(pid)
    with peak_of(pid) as whole, server.client() as client:
        response = client.post("/api/v1/messages", json=request)
        if response.status_code != 202:
            raise RuntimeError(f"{response.status_code} {response.text[:300]}")
        after_submit = status_kib(pid, "VmRSS")
        with peak_of(pid) as sending:
            wait_until_sent(server, already_sent + 1, timeout=300)
            send_peak = sending()
        whole_peak = whole()
    return {
        "before": before,
        "after_submit": after_submit,
        "send_peak": send_peak,
        "whole_peak": whole_peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--attachment-mib", type=float, default=20.0)
    args = parser.parse_args()
    count: int = args.messages
    size = int(args.attachment_mib * MIB)
    encoded = len(base64_lines(b"\0" * size))  # the stored form: base64 lines with CRLF
    with smtp_sink() as port, postdesk_server(port) as server:
        pid = server.process.pid
        idle = settle(pid)
        exact = reset_peak(pid)
        drain_before, drain_peak = drain_phase(server, count)
        figures = attachment_phase(server, size, count)
    print(f"postdesk serve, pid {pid}; peak from VmHWM{'' if exact else ' (sampled VmRSS)'}")
    print(f"idle RSS after start:                         {mib(idle)}")
    print(
        f"drain {count} messages: peak {mib(drain_peak)}, "
        f"+{mib(drain_peak - drain_before)} over the RSS before"
    )
    print(
        f"attachment {size / MIB:.0f} MiB (encoded {encoded / MIB:.1f} MiB): "
        f"RSS before {mib(figures['before'])}"
    )
    whole = figures["whole_peak"] - figures["before"]
    print(f"  submit + send peak: {mib(figures['whole_peak'])}, +{mib(whole)} over before")
    sending = figures["send_peak"] - figures["after_submit"]
    print(
        f"  from the 202 on:    {mib(figures['send_peak'])}, +{mib(sending)} over the RSS at"
        f" the 202 ({mib(figures['after_submit'])})"
    )
    print(
        f"  peak over idle: {mib(figures['whole_peak'] - idle)} = "
        f"{(figures['whole_peak'] - idle) * 1024 / encoded:.2f} x the encoded attachment; "
        f"while sending: {max(0, sending) * 1024 / encoded:.2f} x"
    )


if __name__ == "__main__":
    main()
