"""What every page promises without a browser: headers, redirects, CSRF, error pages."""

import re

from fastapi.testclient import TestClient

from postdesk.http.security import CONTENT_SECURITY_POLICY
from tests.web.conftest import ADMIN_PASSWORD, submit_login


def test_pages_carry_a_strict_content_security_policy(site: TestClient) -> None:
    page = site.get("/login")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"


def test_pages_hold_no_inline_script_or_style(site: TestClient, logged_in: str) -> None:
    for path in ("/login", "/mailbox", "/mailbox/records"):
        html = site.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert "<style" not in html, path
        assert not re.search(r"\son[a-z]+=", html), path
        assert ' style="' not in html, path


def test_api_answers_keep_json_and_the_api_docs_are_under_the_page_policy(
    site: TestClient,
) -> None:
    api = site.get("/api/v1/senders")
    assert api.status_code == 401
    assert api.json()["error"]["code"] == "unauthorized"
    assert api.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in api.headers
    assert site.get("/api/docs").headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_a_page_without_a_session_redirects_to_login_with_the_page_to_return_to(
    site: TestClient,
) -> None:
    answer = site.get("/mailbox/records?receiver=bob")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fmailbox%2Frecords%3Freceiver%3Dbob"
    assert site.get("/").headers["location"] == "/mailbox"


def test_login_returns_only_to_pages_of_this_site(site: TestClient, admin_user: str) -> None:
    for target, expected in (
        ("//evil.example/", "/mailbox"),
        ("https://evil.example/", "/mailbox"),
        ("/\\evil.example", "/mailbox"),
        ("/mailbox/records", "/mailbox/records"),
    ):
        site.cookies.clear()
        done = submit_login(site, next=target)
        assert done.headers["location"] == expected, target


def test_login_without_its_form_token_is_refused(site: TestClient, admin_user: str) -> None:
    answer = site.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert answer.status_code == 403
    assert "This login form has expired." in answer.text
    assert "postdesk_session" not in answer.cookies


def test_session_cookie_is_http_only_and_same_site(site: TestClient, admin_user: str) -> None:
    cookie = submit_login(site).headers["set-cookie"]
    assert "postdesk_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(
    site: TestClient, logged_in: str
) -> None:
    refused = site.post("/logout", data={})
    assert refused.status_code == 403
    assert "text/html" in refused.headers["content-type"]
    assert "This form has expired or did not come from postdesk." in refused.text
    assert site.get("/mailbox").status_code == 200  # still logged in
    done = site.post("/logout", data={"csrf_token": logged_in})
    assert done.status_code == 303
    assert site.get("/mailbox").status_code == 303


def test_unknown_pages_answer_with_a_page_and_unknown_api_paths_with_json(
    site: TestClient,
) -> None:
    page = site.get("/no-such-page")
    assert page.status_code == 404
    assert "Page not found" in page.text
    assert "text/html" in page.headers["content-type"]
    api = site.get("/api/v1/no-such-thing")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"


def test_too_many_logins_from_one_address_are_slowed_down(site: TestClient) -> None:
    statuses = []
    for _ in range(12):
        answer = submit_login(site, username="nobody", password="wrong password")
        statuses.append(answer.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    assert "Too many login attempts" in answer.text
