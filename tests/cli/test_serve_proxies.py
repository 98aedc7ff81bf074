"""``postdesk serve`` believes X-Forwarded-For only from ``POSTDESK_TRUSTED_PROXIES``.

A real serve process on loopback: a client that sends its own X-Forwarded-For header is
recorded with its own address and cannot spread its login attempts over made-up
addresses; behind a configured proxy the forwarded address is the one recorded, and an
https:// POSTDESK_PUBLIC_URL is the base of the setup link and turns on HSTS.
"""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import Cli
from tests.support import free_port
from tests.support.processes import ServeProcess

FORGED = "203.0.113.9"
MAIL = {"to": ["alice@example.org"], "subject": "Daily report", "text": "Sales are up."}


class Site:
    """A serve process on a fresh home with a default sender, a send and an admin token."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.cli = Cli(tmp_path / "home")
        self.cli.env.update(env)
        added = self.cli(
            "sender", "add", "--host", "127.0.0.1", "--port", str(free_port()),
            "--encryption", "none", "--address", "reports@example.com",
            "--display-name", "Reports",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert self.cli("sender", "default", added.stdout.strip()).returncode == 0
        self.send_token = self._token("app", "send")
        self.admin_token = self._token("ops", "admin")
        self.process = ServeProcess(self.cli.env, tmp_path / "serve.log", free_port())

    def _token(self, name: str, scope: str) -> str:
        done = self.cli("token", "create", "--name", name, "--scope", scope)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def call(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 (loopback only)
            self.process.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            with refused:
                return refused.code, json.loads(refused.read())

    def recorded_ip(self, forwarded_for: str) -> str | None:
        """Submit a mail with the send token and this X-Forwarded-For; the record's IP."""
        status, queued = self.call(
            "POST",
            "/api/v1/messages",
            MAIL,
            {"Authorization": f"Bearer {self.send_token}", "X-Forwarded-For": forwarded_for},
        )
        assert status == 202, queued
        status, record = self.call(
            "GET",
            f"/api/v1/records/{queued['id']}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )
        assert status == 200, record
        ip: str | None = record["ip"]
        return ip


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    sites: list[Site] = []

    def started(**env: str) -> Site:
        site = Site(tmp_path / str(len(sites)), **env)
        sites.append(site)
        site.process.wait_ready()
        return site

    try:
        yield started
        for site in sites:
            site.process.stop()
    finally:
        for site in sites:
            site.process.close()


def test_a_forged_forwarded_header_is_not_believed_without_trusted_proxies(start: Any) -> None:
    site = start()
    assert site.recorded_ip(FORGED) == "127.0.0.1"
    answers = [
        site.call(
            "POST",
            "/api/v1/auth/login",
            {"username": "admin", "password": f"guess {n}"},
            {"X-Forwarded-For": f"198.51.100.{n}"},
        )[0]
        for n in range(11)
    ]
    assert answers == [401] * 10 + [429]


def test_behind_a_trusted_https_proxy_the_forwarded_address_is_recorded(start: Any) -> None:
    site = start(
        POSTDESK_TRUSTED_PROXIES="127.0.0.1/32", POSTDESK_PUBLIC_URL="https://mail.example.com"
    )
    assert site.recorded_ip(FORGED) == FORGED
    # The chain is read from the right: the hop the trusted proxy saw is the client.
    assert site.recorded_ip(f"192.0.2.1, {FORGED}") == FORGED
    assert "https://mail.example.com/setup?token=" in site.process.logs()
    with urllib.request.urlopen(f"{site.process.url}/healthz", timeout=5) as answer:  # noqa: S310
        assert answer.headers.get_all("Strict-Transport-Security") == ["max-age=31536000"]
