"""Fixtures shared by every test: real SMTP servers, real databases, a service runtime."""

from collections.abc import Iterator

import pytest

from postdesk.config import Settings
from postdesk.services.runtime import Runtime, open_runtime

pytest_plugins = ["tests.support.smtp", "tests.support.database", "tests.support.clock"]


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    """A runtime on each database, built the way the front ends build it."""
    runtime = open_runtime(settings)
    try:
        yield runtime
    finally:
        runtime.close()
