"""Login limits beyond one client: a user name backs off whoever guesses it, an IPv6
client counts by its /64, and only a few Argon2 checks run at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from postdesk.api.app import create_app
from postdesk.errors import TooFrequentError
from postdesk.services.access import admins
from postdesk.services.access.login_guard import CONCURRENT_CHECKS, FREE_FAILURES, LoginGuard
from postdesk.services.access.sessions import log_in
from postdesk.services.runtime import Runtime
from tests.api.conftest import ADMIN_PASSWORD
from tests.support.clock import FakeClock

LOGIN = "/api/v1/auth/login"


@pytest.fixture
def app(rt: Runtime) -> FastAPI:
    return create_app(rt)


def attempt(app: FastAPI, ip: str, username: str, password: str) -> Any:
    with TestClient(app, client=(ip, 50000)) as client:
        return client.post(LOGIN, json={"username": username, "password": password})


def test_a_user_name_backs_off_whichever_address_guesses_it(
    app: FastAPI, admin_user: str, clock: FakeClock
) -> None:
    for n in range(FREE_FAILURES):
        assert attempt(app, f"198.51.100.{n}", admin_user, "wrong guess").status_code == 401
    # Locked now: even the right password from a new address waits.
    locked = attempt(app, "198.51.100.200", admin_user, ADMIN_PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "too_frequent"
    assert locked.headers["Retry-After"] == "30"
    clock.advance(seconds=31)
    assert attempt(app, "198.51.100.201", admin_user, "wrong again").status_code == 401
    # The next lock is longer: 60 s.
    assert attempt(app, "198.51.100.202", admin_user, ADMIN_PASSWORD).headers["Retry-After"] == "60"
    clock.advance(seconds=61)
    assert attempt(app, "198.51.100.203", admin_user, ADMIN_PASSWORD).status_code == 200
    # A success clears the count: five more failures are free again.
    for n in range(FREE_FAILURES):
        assert attempt(app, "198.51.100.204", admin_user, f"wrong {n}").status_code == 401


def test_another_user_name_is_not_locked(app: FastAPI, admin_user: str) -> None:
    for n in range(FREE_FAILURES):
        attempt(app, f"198.51.100.{n}", "someone-else", "wrong")
    assert attempt(app, "198.51.100.99", admin_user, ADMIN_PASSWORD).status_code == 200


def test_an_ipv6_client_counts_by_its_slash_64(app: FastAPI) -> None:
    # Different user names each time, so only the client limit (10 a minute) applies.
    codes = [attempt(app, f"2001:db8:1:2::{n:x}", f"user{n}", "x").status_code for n in range(10)]
    assert codes == [401] * 10
    assert attempt(app, "2001:db8:1:2:ffff::1", "user-a", "x").status_code == 429
    assert attempt(app, "2001:db8:1:3::1", "user-b", "x").status_code == 401


class CountingHasher(PasswordHasher):
    """The real Argon2 hasher, counting how many checks run at the same moment."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def _counted(self, work: Callable[[], Any]) -> Any:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)  # widen the window in which checks overlap
            return work()
        finally:
            with self._lock:
                self.running -= 1

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        checked: Literal[True] = self._counted(lambda: PasswordHasher.verify(self, hash, password))
        return checked

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        return str(self._counted(lambda: PasswordHasher.hash(self, password, salt=salt)))


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    hasher = CountingHasher()
    monkeypatch.setattr(admins, "_hasher", hasher)
    return hasher


def test_only_a_few_password_checks_run_at_once(
    rt: Runtime, admin_user: str, counting: CountingHasher
) -> None:
    guard = LoginGuard(rt.clock)
    outcomes: list[str] = []

    def one(n: int) -> None:
        try:
            log_in(rt, f"user{n}" if n % 2 else admin_user, ADMIN_PASSWORD, guard=guard)
            outcomes.append("in")
        except TooFrequentError:
            outcomes.append("busy")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert counting.most == CONCURRENT_CHECKS
    assert sorted(outcomes) == ["UnauthorizedError"] * 4 + ["in"] * 4
