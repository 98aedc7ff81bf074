"""Time the test moves by hand: ``FakeClock`` and the ``clock`` fixture, which installs one
as the runtime's clock (``rt.clock``) starting at ``T0``, so retry schedules, leases and
expiries are proven without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postdesk.services.runtime import Runtime

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(rt: Runtime) -> FakeClock:
    fake = FakeClock()
    rt.clock = fake
    return fake
