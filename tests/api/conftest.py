"""The REST API in process (FastAPI's TestClient) on a real runtime and database."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from postdesk.api.app import create_app
from postdesk.config import Settings
from postdesk.services.admins import create_admin
from postdesk.services.runtime import Runtime, open_runtime
from postdesk.services.tokens import create_token

ADMIN_PASSWORD = "correct horse battery"


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = open_runtime(settings)
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt), client=("203.0.113.7", 50000)) as test_client:
        yield test_client


@pytest.fixture
def admin_token(rt: Runtime) -> str:
    return create_token(rt, "tests", "admin").token


@pytest.fixture
def admin(admin_token: str) -> dict[str, str]:
    """Headers of an admin-scope API token."""
    return {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture
def sender_token(rt: Runtime) -> dict[str, str]:
    """Headers of a send-scope API token."""
    return {"Authorization": f"Bearer {create_token(rt, 'app', 'send').token}"}


@pytest.fixture
def admin_user(rt: Runtime) -> str:
    create_admin(rt, "admin", ADMIN_PASSWORD)
    return "admin"
