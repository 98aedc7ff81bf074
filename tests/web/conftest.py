"""The whole site in process (TestClient) on a real runtime, for what needs no browser."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from postdesk.services.access.admins import create_admin
from postdesk.services.runtime import Runtime
from postdesk.site import create_site

ADMIN_PASSWORD = "correct horse battery"


@pytest.fixture
def database_kind() -> str:
    return "sqlite"  # the pages run the same services as the API, tested on both databases


@pytest.fixture
def site(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_site(rt), follow_redirects=False) as client:
        yield client


@pytest.fixture
def admin_user(rt: Runtime) -> str:
    create_admin(rt, "admin", ADMIN_PASSWORD)
    return "admin"


def submit_login(site: TestClient, **fields: str) -> Response:
    """The login form as a browser sends it: fetched first (for its token), then posted."""
    site.get("/login")
    form = {"username": "admin", "password": ADMIN_PASSWORD}
    form["csrf_token"] = site.cookies["postdesk_login_csrf"]
    response: Response = site.post("/login", data={**form, **fields})
    return response


@pytest.fixture
def logged_in(site: TestClient, admin_user: str) -> str:
    """Log ``site`` in as an administrator through the login form; returns the CSRF token."""
    assert submit_login(site).status_code == 303
    page: Response = site.get("/mailbox")
    marker = 'name="csrf-token" content="'
    return page.text.split(marker, 1)[1].split('"', 1)[0]
