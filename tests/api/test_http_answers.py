"""Answers of the HTTP layer itself: a method a path does not take."""

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/api/v1/senders", "GET, POST"),
        ("PUT", "/api/v1/senders/1", "DELETE, GET, PATCH"),
        ("DELETE", "/api/v1/settings/mail", "GET, PUT"),
        ("GET", "/api/v1/tokens/1", "DELETE"),
        # Not ids: these paths are their own, with their own methods.
        ("PATCH", "/api/v1/senders/test", "POST"),
        ("GET", "/api/v1/messages/batch", "POST"),
    ],
)
def test_a_method_not_allowed_names_every_method_of_the_path(
    client: TestClient, admin: dict[str, str], method: str, path: str, allowed: str
) -> None:
    answer = client.request(method, path, headers=admin)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == allowed
    assert answer.json()["error"]["code"] == "method_not_allowed"
