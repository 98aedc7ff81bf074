"""A server that trickles its replies one byte at a time: ``timeout_s`` bounds each whole
reply, and missing it is diagnosed ``smtp_timeout``, not a closed connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from postdesk.domain.diagnosis import DiagnosisCode
from postdesk.domain.senders import SenderSettings
from postdesk.errors import DeliveryError
from postdesk.transport import send_message
from tests.support.smtp import HOST, make_sender

GREETING = b"220 trickle.example.com ESMTP ready\r\n"
EHLO_REPLY = b"250-trickle.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


@dataclass
class TricklingServer:
    """Answers with whole or trickled replies (one byte per ``interval``), per phase."""

    port: int
    trickle_greeting: bool
    interval: float
    stopping: threading.Event

    def sender(self, **overrides: object) -> SenderSettings:
        return make_sender(HOST, self.port, **{"encryption": "none", **overrides})


def _send(conn: socket.socket, data: bytes, trickle: bool, server: TricklingServer) -> None:
    if not trickle:
        conn.sendall(data)
        return
    for byte in data:
        if server.stopping.is_set():
            return
        conn.sendall(bytes([byte]))
        time.sleep(server.interval)


def _serve(listener: socket.socket, server: TricklingServer) -> None:
    listener.settimeout(0.1)
    while not server.stopping.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            try:
                _send(conn, GREETING, server.trickle_greeting, server)
                conn.settimeout(5)
                if conn.recv(1024).upper().startswith(b"EHLO"):
                    _send(conn, EHLO_REPLY, not server.trickle_greeting, server)
            except OSError:
                pass


@pytest.fixture
def trickling() -> Iterator[Callable[[bool], TricklingServer]]:
    started: list[tuple[threading.Thread, TricklingServer, socket.socket]] = []

    def start(trickle_greeting: bool) -> TricklingServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((HOST, 0))
        listener.listen(4)
        server = TricklingServer(
            listener.getsockname()[1], trickle_greeting, 0.05, threading.Event()
        )
        thread = threading.Thread(target=_serve, args=(listener, server), daemon=True)
        thread.start()
        started.append((thread, server, listener))
        return server

    yield start
    for thread, server, listener in started:
        server.stopping.set()
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("trickle_greeting", [True, False], ids=["greeting", "ehlo-reply"])
def test_a_trickled_reply_times_out_as_a_whole(
    trickling: Callable[[bool], TricklingServer], trickle_greeting: bool
) -> None:
    # Every byte comes well within the timeout, the whole reply does not.
    server = trickling(trickle_greeting)
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        send_message(server.sender(timeout_s=0.5), recipients=["a@example.com"], message=b"x")
    elapsed = time.monotonic() - started
    assert caught.value.code == DiagnosisCode.TIMEOUT
    assert "closed" not in caught.value.message.lower()
    # Bounded by the timeout of the one reply, not by the length of the trickle (the
    # greeting alone would take ~2 s, the EHLO reply ~4 s).
    whole = (len(GREETING) if trickle_greeting else len(EHLO_REPLY)) * server.interval
    assert elapsed < whole / 2
