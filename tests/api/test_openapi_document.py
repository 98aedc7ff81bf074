"""The OpenAPI document states every answer: success bodies and the SPEC's error shape."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

ERROR_REF = "#/components/schemas/ErrorAnswer"


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    data: dict[str, Any] = answer.json()
    return data


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def schema_of(response: dict[str, Any]) -> dict[str, Any] | None:
    media = response.get("content", {}).get("application/json")
    return None if media is None else media["schema"]


def test_every_error_answer_has_the_error_shape(document: dict[str, Any]) -> None:
    for name, operation in operations(document):
        statuses = {int(status) for status in operation["responses"]}
        assert {401, 503} <= statuses or name == "POST /api/v1/auth/login", name
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert schema_of(response) == {"$ref": ERROR_REF}, (name, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error = document["components"]["schemas"]["ErrorAnswer"]
    assert error["required"] == ["error"]


def test_operations_list_the_errors_they_can_answer(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert {"401", "413", "422", "429"} <= set(paths["/api/v1/auth/login"]["post"]["responses"])
    assert {"404", "422"} <= set(paths["/api/v1/senders/{sender_id}"]["get"]["responses"])
    assert "409" in paths["/api/v1/senders"]["post"]["responses"]
    assert "502" in paths["/api/v1/senders/{sender_id}/test"]["post"]["responses"]
    assert "429" in paths["/api/v1/verification-codes"]["post"]["responses"]
    assert "409" in paths["/api/v1/messages"]["post"]["responses"]


def test_every_success_answer_has_its_body_shape(document: dict[str, Any]) -> None:
    for name, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 300 and int(status) != 204:
                [body] = response["content"].values()
                assert body["schema"], (name, status)
    schemas = document["components"]["schemas"]
    assert "password" not in schemas["Sender"]["properties"]
    assert set(schemas["Sender"]["required"]) >= {"id", "smtp_host", "has_password"}
    detail = document["paths"]["/api/v1/records/{record_id}"]["get"]["responses"]["200"]
    assert schema_of(detail) == {"$ref": "#/components/schemas/RecordDetail"}
    csv = document["paths"]["/api/v1/records.csv"]["get"]["responses"]["200"]
    assert list(csv["content"]) == ["text/csv"]
