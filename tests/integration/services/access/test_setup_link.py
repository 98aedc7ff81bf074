"""The one-time setup link: it expires, and two requests racing with it create one
administrator, not two."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from postdesk.errors import ForbiddenError
from postdesk.services.access.sessions import SetupLink
from postdesk.services.runtime import Runtime
from postdesk.storage import repositories as repo

PASSWORD = "correct horse battery"


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_setup_link_expires(rt: Runtime) -> None:
    ticks = Ticks()
    link = SetupLink(lifetime=timedelta(hours=24), monotonic=ticks)
    token = link.issue(rt)
    assert token is not None and link.is_valid(token)
    ticks.now += 24 * 3600 - 1
    assert link.is_valid(token)
    ticks.now += 1
    assert not link.is_valid(token)
    with pytest.raises(ForbiddenError):
        link.use(rt, token, "admin", PASSWORD)
    with rt.transaction() as session:
        assert repo.count_admins(session) == 0


def test_two_requests_racing_with_the_link_create_one_administrator(rt: Runtime) -> None:
    link = SetupLink()
    token = link.issue(rt)
    start = threading.Barrier(6)
    outcomes: list[str] = []

    def spend(n: int) -> None:
        start.wait()
        try:
            link.use(rt, token, f"admin{n}", PASSWORD)
            outcomes.append("created")
        except ForbiddenError:
            outcomes.append("refused")

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["created"] + ["refused"] * 5
    with rt.transaction() as session:
        assert repo.count_admins(session) == 1


def test_a_non_ascii_token_is_simply_not_valid(rt: Runtime) -> None:
    link = SetupLink()
    link.issue(rt)
    assert not link.is_valid("tökén")
