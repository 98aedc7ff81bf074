"""/healthz and /metrics: status for anyone; database, worker, queue and held senders for
an administrator."""

from collections.abc import Callable

from fastapi.testclient import TestClient

from postdesk.api.app import create_app
from postdesk.services.access.tokens import create_token
from postdesk.services.delivery.drain import drain_once
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as senders
from tests.api.conftest import ADMIN_PASSWORD
from tests.support.smtp import LOGIN_THROTTLED_REPLY, SmtpTestServer, sender_fields

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
        health = client.get("/healthz", headers=admin).json()
    assert health["status"] == "ok"
    assert health["database"] == "ok"
    assert health["mail_service_configured"] is True
    assert health["queue"]["queued"] == 1
    assert health["worker"] == {"running": True, "worker_id": "w1"}
    assert health["held_senders"] == []


def test_healthz_shows_a_sender_held_after_a_throttled_login(
    rt: Runtime, admin: dict[str, str], smtp_server: Callable[..., SmtpTestServer]
) -> None:
    server = smtp_server(credentials=("reports@example.com", "app-password"), auth_throttle=1)
    sender_id = senders.create_sender(rt, sender_fields(server.sender())).id
    senders.set_default_sender(rt, sender_id)
    with TestClient(create_app(rt, worker=StubState())) as client:
        assert client.post("/api/v1/messages", json=MAIL, headers=admin).status_code == 202
        drain_once(rt, worker_id="w1", limit=10)
        health = client.get("/healthz", headers=admin).json()
        anonymous = client.get("/healthz").json()
    assert health["status"] == "degraded"
    [held] = health["held_senders"]
    assert (held["id"], held["code"]) == (sender_id, "smtp_auth_throttled")
    assert held["message"] == LOGIN_THROTTLED_REPLY
    assert health["queue"]["retrying"] == 1
    assert anonymous == {"status": "degraded", "mail_service_configured": True}


SHORT_FORM = {"status": "ok", "mail_service_configured": True}


def test_healthz_tells_anyone_else_only_the_status_and_whether_mail_is_configured(
    rt: Runtime, configured: int, sender_token: dict[str, str]
) -> None:
    unknown = {"Authorization": "Bearer pd_not-a-token"}
    with TestClient(create_app(rt, worker=StubState())) as client:
        assert client.post("/api/v1/messages", json=MAIL, headers=sender_token).status_code == 202
        answers = [client.get("/healthz", headers=h) for h in ({}, sender_token, unknown)]
    for answer in answers:  # anonymous, a send token, an unknown token: never 401
        assert answer.status_code == 200
        assert answer.json() == SHORT_FORM
        assert "reports@example.com" not in answer.text


def test_healthz_details_for_a_logged_in_administrator(
    rt: Runtime, configured: int, admin_user: str
) -> None:
    with TestClient(create_app(rt, worker=StubState())) as client:
        login = {"username": admin_user, "password": ADMIN_PASSWORD}
        assert client.post("/api/v1/auth/login", json=login).status_code == 200
        health = client.get("/healthz").json()
        client.cookies.clear()
        anonymous = client.get("/healthz").json()
    assert health["database"] == "ok" and health["queue"]["queued"] == 0
    assert health["worker"] == {"running": True, "worker_id": "w1"}
    assert set(health) == {*SHORT_FORM, "database", "queue", "held_senders", "worker", "version"}
    assert anonymous == SHORT_FORM


def test_healthz_short_form_without_a_mail_service(rt: Runtime) -> None:
    token = {"Authorization": f"Bearer {create_token(rt, 'app', 'send').token}"}
    with TestClient(create_app(rt)) as client:
        answer = client.get("/healthz", headers=token)
    assert (answer.status_code, answer.json()) == (
        200,
        {"status": "ok", "mail_service_configured": False},
    )


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert 'postdesk_queue_messages{status="queued"}' in answer.text
    assert "postdesk_held_senders" in answer.text
