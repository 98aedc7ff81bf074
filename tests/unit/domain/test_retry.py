"""Retry arithmetic: attempt counts, delays with jitter, and their bounds (property-based)."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postdesk.config import DEFAULT_RETRY_DELAYS
from postdesk.domain.retry import (
    JITTER,
    MAX_LOGIN_COOLDOWN_S,
    jitter_factor,
    login_cooldown,
    max_attempts,
    retries_left,
    retry_delay,
)

delays_lists = st.lists(st.integers(min_value=0, max_value=86_400), min_size=1, max_size=10)


class FixedRandom:
    """A random source that always answers the same number."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_the_default_schedule_is_five_attempts() -> None:
    assert max_attempts(DEFAULT_RETRY_DELAYS) == 5
    assert [retries_left(n, DEFAULT_RETRY_DELAYS) for n in range(1, 6)] == [
        True,
        True,
        True,
        True,
        False,
    ]


def test_without_jitter_the_delays_are_the_configured_ones() -> None:
    middle = FixedRandom(0.5)  # factor exactly 1
    assert [retry_delay(n, DEFAULT_RETRY_DELAYS, middle) for n in range(1, 5)] == [
        60.0,
        300.0,
        900.0,
        1800.0,
    ]


def test_the_jitter_reaches_both_ends() -> None:
    assert retry_delay(1, (100,), FixedRandom(0.0)) == pytest.approx(100 * (1 - JITTER))
    assert retry_delay(1, (100,), FixedRandom(0.999999)) == pytest.approx(100 * (1 + JITTER))


@given(delays=delays_lists, seed=st.integers(), data=st.data())
def test_every_delay_stays_within_the_jitter_band(
    delays: list[int], seed: int, data: st.DataObject
) -> None:
    attempt = data.draw(st.integers(min_value=1, max_value=len(delays)))
    delay = retry_delay(attempt, delays, random.Random(seed))
    base = delays[attempt - 1]
    assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)


@given(delays=delays_lists, extra=st.integers(min_value=0, max_value=5), seed=st.integers())
def test_no_delay_after_the_last_attempt(delays: list[int], extra: int, seed: int) -> None:
    last = max_attempts(delays) + extra
    assert not retries_left(last, delays)
    with pytest.raises(ValueError, match="last"):
        retry_delay(last, delays, random.Random(seed))


@given(value=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_the_jitter_factor_grows_with_the_random_number(value: float) -> None:
    factor = jitter_factor(FixedRandom(value))
    assert 1 - JITTER <= factor <= 1 + JITTER
    higher = value + (1.0 - value) / 2
    assert jitter_factor(FixedRandom(higher)) >= factor


@given(seed=st.integers())
def test_jitter_spreads_a_batch_out(seed: int) -> None:
    rng = random.Random(seed)
    delays = {round(retry_delay(1, (60,), rng), 3) for _ in range(50)}
    assert len(delays) > 10  # fifty messages failing together do not all return together


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempt_numbers_start_at_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        retry_delay(attempt, DEFAULT_RETRY_DELAYS, FixedRandom(0.5))


def test_spread_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="spread"):
        jitter_factor(FixedRandom(0.5), 1.5)


def test_the_login_cooldown_doubles_up_to_thirty_minutes() -> None:
    middle = FixedRandom(0.5)  # factor exactly 1
    minutes = [login_cooldown(n, middle) / 60 for n in range(1, 9)]
    assert minutes == [1, 2, 4, 8, 16, 30, 30, 30]
    assert login_cooldown(10_000, middle) == MAX_LOGIN_COOLDOWN_S


@given(throttles=st.integers(min_value=1, max_value=100), seed=st.integers())
def test_the_login_cooldown_is_jittered_and_never_shrinks_below_the_last(
    throttles: int, seed: int
) -> None:
    rng = random.Random(seed)
    base = min(60.0 * 2.0 ** min(throttles - 1, 16), MAX_LOGIN_COOLDOWN_S)
    assert base * (1 - JITTER) <= login_cooldown(throttles, rng) <= base * (1 + JITTER)
    assert login_cooldown(throttles + 1, FixedRandom(0.5)) >= login_cooldown(
        throttles, FixedRandom(0.5)
    )


def test_throttled_logins_are_counted_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        login_cooldown(0, FixedRandom(0.5))
