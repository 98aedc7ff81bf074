"""/healthz and /metrics: database, worker, queue and held senders."""

from fastapi.testclient import TestClient

from postdesk.api.app import create_app
from postdesk.services.runtime import Runtime

MAIL = {"to": ["alice@example.org"], "subject": "Daily report", "text": "Sales are up."}


class StubState:
    """Stands in for the worker thread, which these tests do not need: only its report."""

    def state(self) -> dict[str, object]:
        return {"running": True, "worker_id": "w1"}


def test_healthz_reports_database_queue_and_worker(
    rt: Runtime, admin: dict[str, str], configured: int
) -> None:
    with TestClient(create_app(rt, worker=StubState())) as client:
        queued = client.post("/api/v1/messages", json=MAIL, headers=admin)
        assert queued.status_code == 202, queued.text
        health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["database"] == "ok"
    assert health["mail_service_configured"] is True
    assert health["queue"]["queued"] == 1
    assert health["worker"] == {"running": True, "worker_id": "w1"}
    assert health["held_senders"] == []


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert 'postdesk_queue_messages{status="queued"}' in answer.text
    assert "postdesk_held_senders" in answer.text
