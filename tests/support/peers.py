"""Peers that are not SMTP servers: raw asyncio servers on loopback ports the OS picks.

Fixtures
--------
``not_smtp_peer`` (factory)
    ``not_smtp_peer(greeting, *, after_ehlo=None) -> RawPeer``: a server running until the
    test ends that sends ``greeting`` as soon as a client connects (an SSH banner, an HTTP
    answer, binary junk). With ``after_ehlo`` it greets with a proper ``220`` instead and
    answers the first line the client sends (its EHLO) with ``after_ehlo``. Either way it
    then reads until the client hangs up.

Canned banners: ``SSH_BANNER``, ``HTTP_ANSWER``, ``BINARY_JUNK`` (no line end at all), and
``BANNER_WORDS``: words of them that no diagnosis of postdesk's own may contain.

``RawPeer`` has ``host``, ``port`` and ``sender(**overrides)``: a validated sender pointing
at it (no encryption, ``timeout_s=5``).

``connect_attempts()``
    A context manager yielding the list of every address any thread of the process tried
    to connect a Python socket to while it is open (from the ``socket.connect`` audit
    event): proof that nothing was connected to, even where a connect would hang.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from postdesk.domain.senders import SenderSettings
from tests.support.smtp import HOST, make_sender

SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.25.3\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)
BINARY_JUNK = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03junkpeer\xff\xfe"
BANNER_WORDS = ("SSH-2.0", "OpenSSH", "deb12u3", "nginx", "400 Bad Request", "junkpeer")


_WATCHING: list[list[Any]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _WATCHING:
        _WATCHING[-1].append(args[1])


sys.addaudithook(_audit)  # hooks cannot be removed: it records only inside connect_attempts()


@contextmanager
def connect_attempts() -> Iterator[list[Any]]:
    attempts: list[Any] = []
    _WATCHING.append(attempts)
    try:
        yield attempts
    finally:
        _WATCHING.remove(attempts)


@dataclass
class RawPeer:
    host: str
    port: int
    _server: asyncio.AbstractServer | None = field(default=None, repr=False)

    def sender(self, **overrides: Any) -> SenderSettings:
        return make_sender(self.host, self.port, **{"encryption": "none", **overrides})


class _Loop:
    """An event loop in a thread, for the peers of one test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def _start(peer: RawPeer, greeting: bytes, after_ehlo: bytes | None) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if after_ehlo is None:
                writer.write(greeting)
            else:
                writer.write(b"220 mail.example.test ESMTP\r\n")
                await writer.drain()
                await reader.readline()
                writer.write(after_ehlo)
            await writer.drain()
            while await reader.read(4096):
                pass
        except OSError:
            pass
        finally:
            writer.close()

    peer._server = await asyncio.start_server(answer, HOST, 0)
    peer.port = peer._server.sockets[0].getsockname()[1]


async def _stop(peer: RawPeer) -> None:
    if peer._server is not None:
        peer._server.close()


@pytest.fixture
def not_smtp_peer() -> Iterator[Callable[..., RawPeer]]:
    loop = _Loop()
    peers: list[RawPeer] = []

    def start(greeting: bytes = b"", *, after_ehlo: bytes | None = None) -> RawPeer:
        peer = RawPeer(HOST, 0)
        loop.run(_start(peer, greeting, after_ehlo))
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        loop.run(_stop(peer))
    loop.stop()
