"""The REST API in process (FastAPI's TestClient) on a real runtime and database."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from postdesk.api.app import create_app
from postdesk.services.access.admins import create_admin
from postdesk.services.access.tokens import create_token
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as senders

ADMIN_PASSWORD = "correct horse battery"


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
def configured(rt: Runtime) -> int:
    """A default sender (nothing listens on its port: these tests only queue)."""
    sender = senders.create_sender(
        rt,
        {"smtp_host": "127.0.0.1", "port": 2525, "encryption": "none",
         "address": "reports@example.com", "display_name": "Reports"},
    )  # fmt: skip
    senders.set_default_sender(rt, sender.id)
    return sender.id


@pytest.fixture
def admin_user(rt: Runtime) -> str:
    create_admin(rt, "admin", ADMIN_PASSWORD)
    return "admin"
