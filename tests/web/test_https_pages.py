"""The pages of a site public at an ``https://`` POSTDESK_PUBLIC_URL, reached over plain
HTTP from its TLS-terminating proxy: the login form's CSRF cookie and the session cookie
are Secure, every page carries Strict-Transport-Security. Otherwise nothing changes."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from postdesk.services.runtime import Runtime
from postdesk.site import create_site
from tests.conftest import HTTPS_SITE
from tests.web.conftest import ADMIN_PASSWORD


@pytest.fixture
def site_behind_proxy(public_rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_site(public_rt), follow_redirects=False) as client:
        yield client


def test_login_cookies_are_secure_and_pages_carry_hsts_for_an_https_public_url(
    site_behind_proxy: TestClient, public_url: str | None
) -> None:
    secure = public_url == HTTPS_SITE
    form = site_behind_proxy.get("/login")
    csrf_cookie = form.headers["set-cookie"]
    assert "postdesk_login_csrf=" in csrf_cookie
    assert ("Secure" in csrf_cookie) == secure
    # A browser sends a Secure cookie over the proxy's HTTPS; the proxy passes it on.
    csrf = csrf_cookie.split("postdesk_login_csrf=", 1)[1].split(";", 1)[0]
    done = site_behind_proxy.post(
        "/login",
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf},
        headers={"Cookie": f"postdesk_login_csrf={csrf}"},
    )
    assert done.status_code == 303, done.text
    [session_cookie] = [c for c in done.headers.get_list("set-cookie") if "postdesk_session=" in c]
    assert ("Secure" in session_cookie) == secure
    for answer in (form, done):
        hsts = answer.headers.get_list("strict-transport-security")
        assert hsts == (["max-age=31536000"] if secure else [])
    assert "content-security-policy" in form.headers  # the page headers stay
