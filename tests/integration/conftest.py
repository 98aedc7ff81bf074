"""A service runtime on each database, built the way the front ends build it."""

from collections.abc import Iterator

import pytest

from postdesk.config import Settings
from postdesk.services.runtime import Runtime, open_runtime


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = open_runtime(settings)
    try:
        yield runtime
    finally:
        runtime.close()
