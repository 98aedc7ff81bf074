"""Fixtures and helpers the tests share: real SMTP servers, databases, the live site."""

import socket


def free_port() -> int:
    """A loopback port nothing listens on right now (a server may take it, or a connect fail)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
