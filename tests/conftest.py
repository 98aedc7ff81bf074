"""Fixtures shared by every test: real SMTP servers, real databases, a service runtime."""

from collections.abc import Iterator
from dataclasses import replace

import pytest

from postdesk.config import Settings
from postdesk.services.access.admins import create_admin
from postdesk.services.runtime import Runtime, open_runtime

pytest_plugins = [
    "tests.support.smtp",
    "tests.support.peers",
    "tests.support.database",
    "tests.support.clock",
    "tests.support.idp",
    "tests.support.xoauth2",
]


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    """A runtime on each database, built the way the front ends build it."""
    runtime = open_runtime(settings)
    try:
        yield runtime
    finally:
        runtime.close()


HTTPS_SITE = "https://mail.example.com"


@pytest.fixture(params=[HTTPS_SITE, "http://mail.example.com", None])
def public_url(request: pytest.FixtureRequest) -> str | None:
    """POSTDESK_PUBLIC_URL: an https:// site, an http:// one, or none set."""
    url: str | None = request.param
    return url


@pytest.fixture
def public_rt(settings: Settings, public_url: str | None) -> Iterator[Runtime]:
    """A runtime whose site is public at ``public_url``, with the administrator ``admin``
    (password "correct horse battery")."""
    runtime = open_runtime(replace(settings, public_url=public_url))
    try:
        create_admin(runtime, "admin", "correct horse battery")
        yield runtime
    finally:
        runtime.close()
